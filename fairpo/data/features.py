"""The ``features`` data set: the user's own multi-label data, given as vectors in ``.npz`` or
headerless ``.csv`` files laid out as :data:`FEATURES_LAYOUT`, and the fingerprint of those files
that a run's identity includes (:func:`data_fingerprint`)."""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fairpo.data.cache import FeatureDataset
from fairpo.data.checks import carve, require

FEATURES_LAYOUT = """<root>/
  train.npz, test.npz   arrays x (N, d) features, y (N, T) 0/1 labels, optional label_names (T,)
or
  train.csv, test.csv   headerless: feature columns, then T label columns
  label_names.txt       optional, one name a line; with CSVs it (or the option num_labels) gives T"""
"""The files a ``features`` folder holds; every error about a missing file shows it."""
FEATURES_OPTIONS = dict(num_labels=None)
"""The options of ``features`` and their defaults."""


def data_fingerprint(name: str, root: str | os.PathLike | None) -> str | None:
    """SHA-256 over the relative paths and bytes of every file under ``root`` for a ``features`` data
    set (the user's files can change under the same folder name); None for the other data sets, whose
    content is fixed by their name (digits) or too large to hash on every reuse (COCO, NUS-WIDE).

    The hash is remembered per (path, size, modification time) of the files, so checking every run of a
    grid reads the files once, and any rewrite of a file is hashed again.
    """
    if name != "features" or root is None or not Path(root).is_dir():
        return None
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and not p.name.startswith("."))
    signature = tuple((p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_files(str(Path(root).resolve()), signature)


@functools.lru_cache(maxsize=64)
def _hash_files(root: str, signature: tuple) -> str:
    digest = hashlib.sha256()
    for relative, _, _ in signature:
        digest.update(relative.encode() + b"\0")
        with open(Path(root) / relative, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def features_splits(root: Path, seed: int, val_fraction: float, opts: dict) -> dict[str, Any]:
    """The three splits of the feature files under ``root`` as :class:`~fairpo.data.cache.FeatureDataset`;
    ``train`` and ``val`` are index views into the one training array."""
    require(root, "features", FEATURES_LAYOUT)
    names_file = root / "label_names.txt"
    file_names = ([line.strip() for line in names_file.read_text().splitlines() if line.strip()]
                  if names_file.exists() else None)
    num_labels = opts["num_labels"]
    if num_labels is not None and file_names is not None and int(num_labels) != len(file_names):
        raise ValueError(f"features: num_labels={num_labels} but {names_file} names {len(file_names)} labels")
    count = int(num_labels) if num_labels is not None else len(file_names) if file_names else None
    arrays, npz_names = {}, None
    for split in ("train", "test"):
        x, y, names = _read_split(root, split, count, names_file.name)
        arrays[split], npz_names = (x, y), names or npz_names
    num = arrays["train"][1].shape[1]
    if arrays["test"][1].shape[1] != num or arrays["test"][0].shape[1:] != arrays["train"][0].shape[1:]:
        raise ValueError("features: train and test files disagree on the number of features or labels")
    names = file_names or npz_names or [f"label_{t}" for t in range(num)]
    if len(names) != num or (num_labels is not None and int(num_labels) != num):
        raise ValueError(f"features: the files hold {num} labels but the names/num_labels say {len(names)}")
    x, y = arrays["train"]
    rows_train, rows_val = (torch.from_numpy(r) for r in
                            carve(len(y), val_fraction, np.random.default_rng(seed), "features train"))
    return dict(train=FeatureDataset(x, y[rows_train], rows_train), val=FeatureDataset(x, y[rows_val], rows_val),
                test=FeatureDataset(*arrays["test"]), label_names=names, kind="features",
                input_shape=tuple(x.shape[1:]))


def _read_split(root: Path, split: str, count: int | None, names_file: str) -> tuple[Tensor, Tensor, list[str] | None]:
    """x (N, d) float32, y (N, T) float32 and the label names an ``.npz`` holds (else None) of one split;
    ``count`` is the number of trailing label columns of a CSV."""
    found = [root / f"{split}.{ext}" for ext in ("npz", "csv") if (root / f"{split}.{ext}").exists()]
    if len(found) != 1:
        problem = "no" if not found else "both a .npz and a .csv as"
        raise FileNotFoundError(f"features: {problem} {split} file in {root}; expected layout:\n{FEATURES_LAYOUT}")
    path, names = found[0], None
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data or "y" not in data:
                raise ValueError(f"features: {path} must hold arrays 'x' and 'y', it holds {sorted(data.files)}")
            x, y = data["x"], data["y"]
            if "label_names" in data:
                names = [str(n) for n in data["label_names"]]
    else:
        if count is None:
            raise ValueError(f"features: {path} is a CSV, so say how many trailing columns are labels: "
                             f"pass num_labels= or add {names_file} (one name a line)")
        try:
            table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        except ValueError as err:
            raise ValueError(f"features: {path} is not an all-numeric headerless CSV ({err})") from None
        if not 0 < count < table.shape[1]:
            raise ValueError(f"features: {path} has {table.shape[1]} columns, too few for {count} labels "
                             f"and at least one feature")
        x, y = table[:, :-count], table[:, -count:]
    if y.ndim != 2 or x.ndim < 2 or len(x) != len(y):
        raise ValueError(f"features: {path} needs x (N, d) and y (N, T), got {x.shape} and {y.shape}")
    _check_binary(y, f"features: {path}")
    if not np.isfinite(x).all():
        raise ValueError(f"features: {path} has non-finite features (NaN or inf)")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.float32)), names


def _check_binary(y: np.ndarray, where: str) -> None:
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{where}: labels must be 0 or 1, found {y[row, col].item()!r} at row {row}, "
                         f"label column {col} ({int(bad.sum())} such entries in all)")


def write_example(root: str | os.PathLike, *, seed: int = 0, num_train: int = 1200, num_test: int = 800,
                  num_labels: int = 12, dim: int = 24) -> Path:
    """Write a small long-tailed ``features`` data set to ``root`` (``train.npz``, ``test.npz`` with label
    names), for trying the whole pipeline on data no one tuned for; returns ``root``.

    The generator, so the files can be judged: label ``t`` is present with chance ``0.5·(t+1)^-1.1``
    (the head label in half of the samples, the rarest in about 3 %), drawn independently; each label has
    a random unit direction in ``dim`` dimensions, and the rarer half of the labels each take most of
    their direction from one frequent label (their look-alike), so a rare label is easily confused with
    a frequent one, as FairPO assumes. A sample's features are the sum of its labels' directions plus
    Gaussian noise of standard deviation 0.7. Every draw comes from ``numpy.random.default_rng(seed)``, so
    the same arguments give the same arrays on every machine. Label names are ``common_0`` … for the
    frequent half and ``rare_0`` … for the rest.
    """
    gen = np.random.default_rng(seed)
    rates = 0.5 * np.arange(1, num_labels + 1) ** -1.1
    directions = gen.standard_normal((num_labels, dim))
    half = num_labels // 2
    for t in range(half, num_labels):  # a rare label looks mostly like one frequent label
        directions[t] = 0.8 * directions[t - half] + 0.6 * directions[t]
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    names = np.array([f"common_{t}" for t in range(half)] + [f"rare_{t - half}" for t in range(half, num_labels)])
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", num_train), ("test", num_test)):
        y = (gen.random((n, num_labels)) < rates).astype(np.float32)
        x = (y @ directions + 0.7 * gen.standard_normal((n, dim))).astype(np.float32)
        _write_npz(root / f"{split}.npz", x=x, y=y, label_names=names)
    return root


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` with a fixed time stamp on every member, so the same arrays give the same bytes (and
    the same :func:`data_fingerprint`) whenever they are written."""
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
