"""The run store: one folder per run, written atomically, read by the results notebooks.

Layout: ``<results_dir>/<dataset>/<variant>[+<ablation>][+from-reference]/seed<k>/`` holding

- ``record.json`` (:data:`RECORD_FILE`): configuration, environment, test and validation metrics per
  group, best epoch, ``"status"`` (``"finished"`` once the run is complete) and timings;
- ``steps.jsonl`` / ``epochs.jsonl`` (:data:`STEP_HISTORY_FILE`, :data:`EPOCH_HISTORY_FILE`): the
  per-step and per-epoch histories, one JSON object per line;
- ``best.safetensors`` (:data:`CHECKPOINT_FILE`): the best checkpoint.

Every file is written to a temporary file in the same folder, flushed, fsynced and renamed over the
target (``os.replace`` is atomic on POSIX and Windows), so a crash leaves either the old file or
the new one, never half of one.

JSON encoding is canonical: sorted keys, two-space indent, floats as Python's shortest round-trip
``repr``, so the same record always gives the same bytes and floats read back bit-exact. Strict JSON
has no NaN or infinity; they are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (the names Python's own ``json`` uses) and read back as floats. To keep that
symmetric, writing a *string* equal to one of those three names is refused.

Records are byte-identical across reruns on the same machine except the ``"timings"`` field
(:data:`TIMINGS_KEY`), where callers put wall-clock times: compare ``without_timings(record)``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

#: The run's record (configuration, environment, metrics per group, best epoch, timings).
RECORD_FILE = "record.json"
#: Per-step history, one JSON object per line.
STEP_HISTORY_FILE = "steps.jsonl"
#: Per-epoch history (validation metrics), one JSON object per line.
EPOCH_HISTORY_FILE = "epochs.jsonl"
#: The best checkpoint (safetensors).
CHECKPOINT_FILE = "best.safetensors"
#: The test split's logits and labels at the best checkpoint (safetensors), for paired tests.
TEST_LOGITS_FILE = "test_logits.safetensors"
#: Everything needed to resume an unfinished run (a torch file of tensors and plain containers).
RESUME_FILE = "last.pt"
#: The record field that holds wall-clock times, the only part that changes between reruns.
TIMINGS_KEY = "timings"
FINISHED = "finished"
METRIC_SECTIONS = ("test", "validation")
ID_COLUMNS = ("dataset", "variant", "ablation", "seed")
NO_ABLATION = "none"
FROM_REFERENCE = "from-reference"

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# ---------------------------------------------------------------- paths


def _check_name(value: str, what: str, forbidden: str) -> str:
    if not isinstance(value, str) or not value or value in (".", ".."):
        raise ValueError(f"{what} must be a non-empty name, got {value!r}")
    bad = [c for c in forbidden + "/\\" if c in value]
    if bad:
        raise ValueError(f"{what} {value!r} may not contain {bad}")
    return value


def run_dir(
    results_dir: str | os.PathLike,
    dataset: str,
    variant: str,
    ablation: str | None,
    seed: int,
    init: str = "fresh",
) -> Path:
    """``<results_dir>/<dataset>/<variant>[+<ablation>][+from-reference]/seed<seed>``.

    ``ablation`` None or ``"none"`` adds no suffix; ``init="reference"`` (a FairPO run that starts from
    a copy of its reference) adds ``+from-reference``. Names may not contain path separators, and the
    variant and ablation may not contain ``+`` (the separator), so :func:`parse_run_dir` inverts it.
    """
    _check_name(dataset, "dataset", "")
    _check_name(variant, "variant", "+")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    method = variant
    if ablation is not None and ablation != NO_ABLATION:
        method = f"{variant}+{_check_name(ablation, 'ablation', '+')}"
    if init != "fresh":
        method = f"{method}+{FROM_REFERENCE}"
    return Path(results_dir) / dataset / method / f"seed{int(seed)}"


def run_dir_of(results_dir: str | os.PathLike, config) -> Path:
    """The run folder of a :class:`fairpo.run.config.RunConfig`."""
    return run_dir(results_dir, config.dataset, config.variant, config.ablation, config.seed, init=config.init)


def parse_run_dir(path: str | os.PathLike) -> dict[str, Any]:
    """Inverse of :func:`run_dir`: ``{"dataset", "variant", "ablation", "seed", "init"}`` from a run folder.

    ``ablation`` is the folder's *arm* — everything after the variant: ``"no-grpo"``,
    ``"from-reference"``, ``"no-grpo+from-reference"``, or ``"none"`` for a plain run (a string, so
    pandas groups it); ``init`` is ``"reference"`` when the arm ends in ``from-reference``.
    """
    path = Path(path)
    seed_part, method, dataset = path.name, path.parent.name, path.parent.parent.name
    if not seed_part.startswith("seed") or not seed_part[4:].isdigit():
        raise ValueError(f"not a run folder (expected .../seed<k>): {path}")
    variant, _, ablation = method.partition("+")
    init = "reference" if ablation.split("+")[-1] == FROM_REFERENCE else "fresh"
    return {"dataset": dataset, "variant": variant, "ablation": ablation or NO_ABLATION,
            "seed": int(seed_part[4:]), "init": init}


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


# ---------------------------------------------------------------- records


def write_record(folder: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Atomically write ``record.json`` in a run folder."""
    return atomic_write_json(Path(folder) / RECORD_FILE, record)


class BrokenRunError(ValueError):
    """A run folder whose record cannot be read: the message names the file and the remedy."""


class StaleRunError(ValueError):
    """A finished run that was trained with another configuration than the one asked for."""


RETRAIN_HINT = ("retrain it with force=True (fairpo train --force; papermill -p force True; "
                "fairpo reproduce --force), or use another results_dir")

IDENTITY_EXCLUDED = ("device", "cpu_threads")
"""Configuration fields that do not shape a run's result (where and how fast it runs), so a finished
run is reused whatever they are."""


def read_record(folder: str | os.PathLike) -> dict | None:
    """The run's record, or None if it has none yet; a damaged record raises :class:`BrokenRunError`."""
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = read_json(path)
    except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
        raise BrokenRunError(f"{path} is damaged and cannot be read ({err.__class__.__name__}: {err}); "
                             f"{RETRAIN_HINT}") from None
    if not isinstance(record, dict):
        raise BrokenRunError(f"{path} does not hold a run record (a JSON object); {RETRAIN_HINT}")
    return record


def identity_differences(stored: Mapping[str, Any], asked: Mapping[str, Any],
                         defaults: Mapping[str, Any] | None = None) -> list[str]:
    """``"field: stored X, asked Y"`` for every field of two run identities that differs (fields in
    :data:`IDENTITY_EXCLUDED` left out). A field the stored identity lacks — one added to the
    configuration after that run was trained — counts as its value in ``defaults``: the run was trained
    with the only behaviour that existed then."""
    defaults = defaults or {}
    keys = sorted((set(stored) | set(asked)) - set(IDENTITY_EXCLUDED))
    old = {key: stored[key] if key in stored else defaults.get(key) for key in keys}
    return [f"{key}: stored {old[key]!r}, asked {asked.get(key)!r}" for key in keys if old[key] != asked.get(key)]


def reusable_record(folder: str | os.PathLike, identity: Mapping[str, Any],
                    defaults: Mapping[str, Any] | None = None) -> dict | None:
    """The finished record in ``folder`` if it was trained with exactly ``identity`` (its configuration
    and data fingerprint), None if the folder holds no finished run. A finished run with another identity
    raises :class:`StaleRunError` naming each differing field and the remedy; ``defaults`` as in
    :func:`identity_differences`."""
    record = read_record(folder)
    if record is None or record.get("status") != FINISHED:
        return None
    differences = identity_differences(record.get("identity", record.get("config", {})), identity, defaults)
    if differences:
        raise StaleRunError(f"{folder} holds a finished run trained with another configuration — "
                            + "; ".join(differences) + f". To replace it, {RETRAIN_HINT}.")
    return record


def is_finished(folder: str | os.PathLike) -> bool:
    """True when the run folder holds a record with ``"status": "finished"``."""
    record = read_record(folder)
    return record is not None and record.get("status") == FINISHED


def without_timings(record: Mapping[str, Any]) -> dict:
    """The record minus its ``"timings"`` field: the part that is identical across reruns."""
    return {key: value for key, value in record.items() if key != TIMINGS_KEY}


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment_info() -> dict[str, Any]:
    """What produced a run: versions, platform, CPU and thread counts, GPU, determinism flag.

    Nothing time-dependent and no host name, so two runs on the same machine give the same dict.
    Versions come from package metadata (importing transformers just to read its version costs
    seconds); None for a package that is not installed.
    """
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "packages": {
            # torch's own string keeps the build tag (e.g. "+cu130") that metadata drops.
            "torch": torch.__version__,
            **{name: _package_version(name) for name in
               ("torchvision", "transformers", "torchmetrics", "numpy", "safetensors", "fairpo")},
        },
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_version": torch.version.cuda,
        "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
    }


# ---------------------------------------------------------------- collecting for the tables


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    """Nested dicts to dotted keys; lists (per-label values) are left out of the table."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(f"{prefix}.{key}", value, out)
    elif not isinstance(obj, list):
        out[prefix] = obj


def finished_runs(results_dir: str | os.PathLike, dataset: str = "*") -> list[tuple[dict[str, Any], Path, dict]]:
    """``(ids, folder, record)`` of every finished run under ``results_dir`` (of one ``dataset``, or of
    all), sorted by folder: the one reader of the store's finished runs. ``ids`` is
    :func:`parse_run_dir` of the folder; folders that are not run folders, and unfinished runs, are
    left out."""
    runs = []
    for record_path in sorted(Path(results_dir).glob(f"{dataset}/*/seed*/{RECORD_FILE}")):
        folder = record_path.parent
        try:
            ids = parse_run_dir(folder)
        except ValueError:
            continue
        record = read_record(folder)
        if record.get("status") == FINISHED:
            runs.append((ids, folder, record))
    return runs


def collect_records(results_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per finished run under ``results_dir``, for the tables.

    Columns: ``dataset``, ``variant``, ``ablation`` (``"none"`` without one), ``seed`` (taken from
    the folder names), then every scalar under the record's ``"test"`` and ``"validation"``
    sections flattened with dots (``test.privileged.mAP``), and, when recorded, ``best_epoch``,
    ``epochs_run``, ``stopped`` (``patience`` or ``budget``), ``init`` and ``dead_heads`` (how many
    labels' heads output a constant on the test split). Rows are sorted by the id columns; unfinished
    runs are left out.
    """
    rows = []
    for ids, _, record in finished_runs(results_dir):
        row = dict(ids)
        for section in METRIC_SECTIONS:
            if section in record:
                _flatten(section, record[section], row)
        for key in ("best_epoch", "epochs_run", "stopped"):
            if key in record:
                row[key] = record[key]
        if "dead_heads" in record:
            row["dead_heads"] = len(record["dead_heads"])
        rows.append(row)
    frame = pd.DataFrame.from_records(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(ID_COLUMNS))
    others = sorted(c for c in frame.columns if c not in ID_COLUMNS)
    frame = frame[list(ID_COLUMNS) + others]
    return frame.sort_values(list(ID_COLUMNS), kind="stable").reset_index(drop=True)
