"""Files written so a crash never leaves half of one, and read back bit-exact: atomic writes,
canonical JSON, canonical safetensors checkpoints and JSON-lines histories. The run store
(:mod:`fairpo.run.store`) names the files; this module only writes and reads them.

Every file is written to a temporary file in the same folder, flushed, fsynced and renamed over the
target (``os.replace`` is atomic on POSIX and Windows), so a crash leaves either the old file or
the new one, never half of one.

JSON encoding is canonical: sorted keys, two-space indent, floats as Python's shortest round-trip
``repr``, so the same record always gives the same bytes and floats read back bit-exact. Strict JSON
has no NaN or infinity; they are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (the names Python's own ``json`` uses) and read back as floats. To keep that
symmetric, writing a *string* equal to one of those three names is refused.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# ---------------------------------------------------------------- atomic writes


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file atomically: ``write(f)`` fills a temporary file that then replaces ``path``.

    If ``write`` raises, the temporary file is removed, the previous ``path`` (if any) is left
    untouched and the exception propagates. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_path = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new hidden file next to ``path``, created with mode 0666 minus the umask like open()
    (tempfile.mkstemp would make it 0600, and the rename would keep that)."""
    while True:
        tmp_path = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return os.open(tmp_path, flags, 0o666), tmp_path
        except FileExistsError:
            continue


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable where the OS allows opening a folder (POSIX)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` as UTF-8 (newlines kept as given, no platform translation)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------- canonical JSON


def _to_jsonable(obj: Any, where: str = "$") -> Any:
    """Plain JSON values, non-finite floats as their names; refuse what would not read back."""
    if obj is None or isinstance(obj, (bool, str)):
        if isinstance(obj, str) and obj in _NON_FINITE:
            raise ValueError(f"{where}: the string {obj!r} is reserved for non-finite floats")
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings (got {key!r}) to read back alike")
            out[key] = _to_jsonable(value, f"{where}.{key}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(value, f"{where}[{i}]") for i, value in enumerate(obj)]
    raise TypeError(
        f"{where}: cannot store {type(obj).__name__} in JSON; convert it first "
        "(tensors: .item() or .tolist(); paths: str)"
    )


def _from_jsonable(obj: Any) -> Any:
    if isinstance(obj, str):
        return _NON_FINITE.get(obj, obj)
    if isinstance(obj, dict):
        return {key: _from_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_from_jsonable(value) for value in obj]
    return obj


def json_bytes(obj: Any, indent: int | None = 2) -> bytes:
    """Canonical UTF-8 JSON of ``obj``: sorted keys, ``repr`` floats, non-finite floats as names.

    ``indent=None`` gives one line (used for JSON lines). Ends with a newline.
    """
    text = json.dumps(
        _to_jsonable(obj),
        sort_keys=True,
        indent=indent,
        separators=(",", ": ") if indent is not None else (",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return (text + "\n").encode("utf-8")


def loads_json(text: str | bytes) -> Any:
    """Inverse of :func:`json_bytes`: the names ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` become
    floats again."""
    return _from_jsonable(json.loads(text))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as canonical JSON (see :func:`json_bytes`).

    The object is fully encoded before the file is touched, so an unstorable value leaves the old
    file as it was.
    """
    return atomic_write_bytes(path, json_bytes(obj))


def read_json(path: str | os.PathLike) -> Any:
    """Read a file written by :func:`atomic_write_json`."""
    return loads_json(Path(path).read_bytes())


# ---------------------------------------------------------------- checkpoints


def _canonical_safetensors(blob: bytes) -> bytes:
    """Rewrite a safetensors header with sorted keys.

    safetensors writes ``__metadata__`` in hash-map order, which changes from call to call; the
    tensor data and their offsets are untouched, so the file stays valid and becomes reproducible.
    """
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + header_len])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format pads the header with spaces to 8 bytes
    return len(text).to_bytes(8, "little") + text + blob[8 + header_len:]


def save_checkpoint(
    path: str | os.PathLike,
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Atomically save named tensors (copied to CPU) and string metadata as safetensors.

    The same tensors and metadata always give the same bytes.
    """
    if metadata is not None:
        bad = {k: type(v).__name__ for k, v in metadata.items()
               if not isinstance(k, str) or not isinstance(v, str)}
        if bad:
            raise ValueError(f"checkpoint metadata must map str to str; offending entries: {bad}")
    # Clones: safetensors refuses views and tensors that share storage (tied weights).
    cpu = {name: t.detach().to("cpu").clone(memory_format=torch.contiguous_format)
           for name, t in tensors.items()}
    blob = safetensors_bytes(cpu, metadata=dict(metadata) if metadata is not None else None)
    return atomic_write_bytes(path, _canonical_safetensors(blob))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a checkpoint written by :func:`save_checkpoint`: ``(tensors on CPU, metadata)``;
    metadata is ``{}`` when none was saved."""
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        return tensors, dict(handle.metadata() or {})


# ---------------------------------------------------------------- histories


def save_history(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Atomically write a history as JSON lines, one canonical object per row.

    Rows may have different keys (e.g. validation metrics only every epoch); floats round-trip
    exactly, NaN and infinities included.
    """
    data = b"".join(json_bytes(row, indent=None) for row in rows)
    return atomic_write_bytes(path, data)


def load_history(path: str | os.PathLike) -> pd.DataFrame:
    """Read a history written by :func:`save_history` into a DataFrame, one row per line.

    A key missing from a row reads as NaN in that row.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return pd.DataFrame.from_records([loads_json(line) for line in lines if line.strip()])
