"""The embedded model: llama.cpp's own server engine (xllamacpp), in this process.

`Engine` starts `xllamacpp.Server` on a loader thread: bound to 127.0.0.1 on a free port,
with a random API key that only this process knows (it is never logged), so nothing else
on the machine can use it. From then on the embedded model is an OpenAI-compatible
endpoint like any other, and `Backend` talks to it through the `openai` client: requests,
streaming, cancellation (closing the connection stops the generation), continuous
batching of concurrent requests, the prompt cache (a request that shares its beginning
with an earlier one evaluates only the rest) and error statuses are the engine's.

What stays here is what only an in-process engine needs: finding the model file, load
progress for the editor, a clear message when the file is not a usable model, and
llama.cpp's own log lines, which go to our log instead of the editor's stderr.

Nothing here imports `xllamacpp` at module import: the server must start fast without it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import json
import logging
import os
import secrets
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctx_lsp.backends.local_model import (
    EXTRA_HINT,
    ModelError,
    ProgressFn,
    describe_model,
    extra_installed,
    inspect_gguf,
    resolve_model_path,
)

log = logging.getLogger(__name__)

#: Requests the engine runs at once (continuous batching): a completion need not wait for
#: a chat answer. The context is shared by the slots (kv_unified), not split between them.
PARALLEL = 2


@dataclass(frozen=True)
class LoadState:
    #: idle (not asked yet), loading, ready, failed
    phase: str
    message: str = ""
    fraction: float | None = None
    seconds: float | None = None  # load time, once ready


@dataclass(frozen=True)
class Served:
    """What the started engine offers."""

    base_url: str  # .../v1
    model: str  # the name it serves the model under (the file name)
    path: Path
    n_ctx: int
    chat_template: bool  # the GGUF has its own chat template (an instruction-tuned model)
    fim: bool  # the model has fill-in-the-middle tokens (llama.cpp's /infill works)


def default_threads() -> int:
    """Threads for the model: one core is left to the editor and the server's event loop
    (llama.cpp's threads spin at barriers, and on an oversubscribed machine two threads on
    two cores were 10x slower than one), at most 4 (a small model gains little more)."""
    env = os.environ.get("CTX_LSP_LOCAL_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores - 1))


class Engine:
    """One model file served by llama.cpp in this process."""

    def __init__(self, setting: str, n_ctx: int, n_threads: int | None = None) -> None:
        self.setting = setting
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.api_key = secrets.token_urlsafe(24)
        self.state = LoadState("idle")
        self.served: Served | None = None
        self._server: Any = None
        self._error: ModelError | None = None
        self._loader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ctx-llama")
        self._listeners: list[ProgressFn] = []
        self._lock = threading.Lock()

    # -- progress ----------------------------------------------------------------------------
    def add_listener(self, fn: ProgressFn) -> Callable[[], None]:
        """fn(message, fraction) on every load step, called from the loader thread."""
        with self._lock:
            self._listeners.append(fn)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(fn)

        return remove

    def _progress(self, message: str, fraction: float | None) -> None:
        if fraction is None or fraction < 1.0:
            self.state = LoadState("loading", message, fraction)
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(message, fraction)
            except Exception:  # a listener never breaks the load
                log.exception("progress listener failed")

    # -- loading -----------------------------------------------------------------------------
    def submit_load(self) -> concurrent.futures.Future[Served]:
        """Start loading in the background (no-op once loaded); errors stay in `state`."""
        return self._loader.submit(self._load)

    async def ready(self, on_progress: ProgressFn | None = None) -> Served:
        """The running engine, loading it first if needed; `on_progress(message, fraction)`
        runs on the event loop. Raises ModelError."""
        if self.served is not None:
            return self.served
        loop = asyncio.get_running_loop()
        remove = None
        if on_progress is not None:

            def relay(message: str, fraction: float | None) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is gone
                    loop.call_soon_threadsafe(on_progress, message, fraction)

            remove = self.add_listener(relay)
        try:
            return await asyncio.wrap_future(self.submit_load())
        except RuntimeError:  # the loader was shut down: a newer engine has the model now
            raise ModelError(
                "server", "The local model was reloaded for new settings: try again"
            ) from None
        finally:
            if remove is not None:
                remove()

    def _load(self) -> Served:
        """Loader thread: resolve the file, start the engine, read what it serves."""
        if self.served is not None:
            return self.served
        if self._error is not None:
            raise self._error
        t0 = time.perf_counter()
        name = describe_model(self.setting)
        try:
            if not extra_installed():
                raise ModelError("no_local", f"The local backend needs xllamacpp: {EXTRA_HINT}")
            self._progress("preparing the local model", 0.0)
            last = [0.0]

            def assembling(message: str, fraction: float | None) -> None:
                if fraction is None or fraction - last[0] >= 0.05 or fraction >= 1.0:
                    last[0] = fraction or 0.0
                    self._progress(message, None if fraction is None else 0.8 * fraction)

            path = resolve_model_path(self.setting, assembling)
            name = path.name
            gguf = inspect_gguf(path)  # a clear message for a file that is not a model
            self._progress(f"loading {name}", 0.85)
            self._server = self._start(path, name)
            self.served = self._describe(path, name, gguf.chat_template)
        except ModelError as exc:
            self._fail(exc)
            raise
        except Exception as exc:  # llama.cpp refuses the file, out of memory, ...
            error = ModelError("bad_model", f"Cannot load the local model {name}: {exc}")
            self._fail(error)
            raise error from exc
        seconds = time.perf_counter() - t0
        self.state = LoadState("ready", f"{name} loaded", 1.0, seconds)
        log.info("local model %s served in %.2f s (%d threads)", path, seconds, self.n_threads)
        self._progress("local model ready", 1.0)
        return self.served

    def _params(self, path: Path, name: str, verbosity: int) -> Any:
        import xllamacpp as xlc

        p = xlc.CommonParams()
        p.model.path = str(path)
        p.model_alias = {name}  # served as its file name, not its full path
        p.hostnames = ["127.0.0.1"]
        p.port = 0  # a free port
        p.api_keys = [self.api_key]
        p.n_ctx = self.n_ctx
        # a cancelled or timed-out request stops between batches: small ones stop it soon
        p.n_batch = p.n_ubatch = 256
        p.n_parallel = PARALLEL
        p.kv_unified = True
        p.swa_full = True  # Gemma 3 has sliding-window layers: keeps prefix reuse possible
        p.cpuparams.n_threads = self.n_threads
        p.cpuparams_batch.n_threads = self.n_threads
        p.endpoint_props = True
        p.warmup = False  # a warm-up decode costs a second on 2 cores and serves nobody
        p.verbosity = verbosity
        return p

    def _start(self, path: Path, name: str) -> Any:
        import xllamacpp as xlc

        # llama.cpp writes its log to file descriptor 2 itself: at verbosity 0 it writes
        # nothing. When the load fails, it is repeated with the log captured, for the reason.
        try:
            return xlc.Server(self._params(path, name, 0))
        except RuntimeError:
            reason = self._failed_load_reason(path, name)
        hint = f" ({reason})" if reason else ""
        raise ModelError(
            "bad_model",
            f"llama.cpp cannot load the local model {path}{hint}: is it a complete GGUF "
            "file of a model architecture that this llama.cpp supports? Set ctx.localModel "
            "to another file, or leave it empty for the bundled model",
        )

    def _failed_load_reason(self, path: Path, name: str) -> str:
        import xllamacpp as xlc

        lines = _captured_fd2(lambda: xlc.Server(self._params(path, name, 1)))
        for line in lines:
            log.info("llama.cpp: %s", line)
        said = [
            ln.split("error loading model:", 1)[1].strip()
            for ln in lines
            if "error loading model:" in ln
        ]
        return said[0] if said else ""

    def _describe(self, path: Path, name: str, chat_template: bool) -> Served:
        base = self._server.listening_address.rstrip("/")
        props = self._get(base + "/props")
        n_ctx = props.get("default_generation_settings", {}).get("n_ctx") or self.n_ctx
        # the engine answers 501 at once for a model without fill-in-the-middle tokens
        fim = self._post(base + "/infill", {"input_prefix": "", "input_suffix": "", "n_predict": 0})
        return Served(base + "/v1", name, path, int(n_ctx), chat_template, fim)

    def _get(self, url: str) -> dict[str, Any]:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.api_key}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def _post(self, url: str, body: dict[str, Any]) -> bool:
        req = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30):
                return True
        except urllib.error.HTTPError:
            return False

    def _fail(self, exc: ModelError) -> None:
        self._error = exc
        self.state = LoadState("failed", exc.message)
        log.error("local model: %s", exc.message)

    # -- unloading ---------------------------------------------------------------------------
    def unload(self) -> concurrent.futures.Future[None]:
        """Stop the engine and free the model (after a load under way), then refuse new work."""

        def stop() -> None:
            server, self._server, self.served = self._server, None, None
            self.state = LoadState("idle")
            del server  # the engine's destructor stops its threads and frees the model
            gc.collect()

        future = self._loader.submit(stop)
        self._loader.shutdown(wait=False)
        return future


_fd2_lock = threading.Lock()


def _captured_fd2(fn: Callable[[], Any]) -> list[str]:
    """Run fn() with file descriptor 2 sent to a temp file; return the lines written there
    (llama.cpp's). Held for the length of a failing load: a fraction of a second."""
    with _fd2_lock, tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            with contextlib.suppress(RuntimeError):
                fn()
            time.sleep(0.05)  # llama.cpp's log thread writes behind the caller
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return [
            ln.strip() for ln in tmp.read().decode("utf-8", "replace").splitlines() if ln.strip()
        ]


_engines: dict[tuple[str, int, int], Engine] = {}
_engines_lock = threading.Lock()


def get_engine(setting: str, n_ctx: int, n_threads: int | None = None) -> Engine:
    """The one engine per (model, context size, threads) in this process: settings that
    change other things (temperature, timeout) reuse the loaded model."""
    key = (setting, n_ctx, n_threads or default_threads())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            # a model loaded under other parameters is dropped: one model in memory at a time
            for old_key in list(_engines):
                _engines.pop(old_key).unload()
            engine = _engines[key] = Engine(setting, n_ctx, n_threads)
        return engine
