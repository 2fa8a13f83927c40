"""The run store: one folder per run, written atomically, read by the results notebooks.

Layout: ``<results_dir>/<dataset>/<variant>[+<ablation>][+from-reference]/seed<k>/`` holding

- ``record.json`` (:data:`RECORD_FILE`): configuration, environment, test and validation metrics per
  group, best epoch, ``"status"`` (``"finished"`` once the run is complete) and timings;
- ``steps.jsonl`` / ``epochs.jsonl`` (:data:`STEP_HISTORY_FILE`, :data:`EPOCH_HISTORY_FILE`): the
  per-step and per-epoch histories, one JSON object per line;
- ``best.safetensors`` (:data:`CHECKPOINT_FILE`): the best checkpoint.

The store is the only owner of this layout: every other module names a run's files through the
constants below and finds runs through :func:`run_dir_of` and :func:`finished_runs`. Files are written
atomically and read back bit-exact by :mod:`fairpo.run.files`, whose functions the store re-exports.

Records are byte-identical across reruns on the same machine except the ``"timings"`` field
(:data:`TIMINGS_KEY`), where callers put wall-clock times: compare ``without_timings(record)``.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fairpo.run.files import (atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text,  # noqa: F401
                              json_bytes, load_checkpoint, load_history, loads_json, read_json, save_checkpoint,
                              save_history)

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


def rank_step_history(rank: int) -> str:
    """The per-step history file of data-parallel rank ``rank`` > 0 (rank 0 writes :data:`STEP_HISTORY_FILE`)."""
    return f"steps.rank{rank}.jsonl"


#: The record field that holds wall-clock times, the only part that changes between reruns.
TIMINGS_KEY = "timings"
FINISHED = "finished"
METRIC_SECTIONS = ("test", "validation")
ID_COLUMNS = ("dataset", "variant", "ablation", "seed")
NO_ABLATION = "none"
FROM_REFERENCE = "from-reference"



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
