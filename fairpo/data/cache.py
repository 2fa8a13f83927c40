"""Feature cache: run the frozen part of a backbone once, keep its output on disk, memory-mapped.

The inputs are never augmented, so a frozen encoder maps every input to the same features in every
epoch, method and seed: computing them once per (data set, split, backbone, trained blocks,
resolution) turns the many training runs of the grid into runs of the small trainable part. The
cache file is a plain ``.npy`` named by a hash of the caller's key; it is written to a temporary name
and renamed into place, so a run killed halfway leaves no file a later run could mistake for a
finished cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

_STORAGE_DTYPES = {torch.float32: np.float32, torch.float16: np.float16}


class FeatureDataset(Dataset):
    """Precomputed inputs and their labels: yields ``(features[indices[i]], labels[i])``.

    features: ``(M, *feature_shape)``, any dtype (often a memory-mapped float16 or float32 cache);
    labels: (N, T) 0/1; indices: (N,) rows of ``features`` this dataset sees (default: all, N = M).
    The view through ``indices`` lets a training and a validation split share one cache of the
    file-level split they were carved from, without copying it. Items come out as ``dtype``
    (float32 by default, whatever the storage).

    Indexing with a 1-d index tensor or list returns a whole batch, ``(B, *feature_shape), (B, T)``,
    with one gather instead of B item lookups and a collate.
    """

    def __init__(self, features: Tensor, labels: Tensor, indices: Tensor | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        labels = torch.as_tensor(labels, dtype=torch.float32)
        if indices is not None:
            indices = torch.as_tensor(indices, dtype=torch.long)
            if indices.dim() != 1 or len(indices) != len(labels):
                raise ValueError(f"indices must be (N,) with N = {len(labels)} labels, got {tuple(indices.shape)}")
            if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= len(features)):
                raise ValueError(f"indices must lie in [0, {len(features)}), the rows of features")
        elif len(features) != len(labels):
            raise ValueError(f"features has {len(features)} rows but labels has {len(labels)}")
        if labels.dim() != 2:
            raise ValueError(f"labels must be (N, T), got {tuple(labels.shape)}")
        self.features, self.labels, self.indices, self.dtype = features, labels, indices, dtype

    batch_indexable = True

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.features.shape[1:])

    def __getitem__(self, index) -> tuple[Tensor, Tensor]:
        rows = index if self.indices is None else self.indices[index]
        if not isinstance(rows, int) and not torch.is_tensor(rows):
            rows = torch.as_tensor(rows, dtype=torch.long)
        return self.features[rows].to(self.dtype), self.labels[index]

    def fingerprint(self) -> str:
        return digest(self.labels.numpy().tobytes(), str(self.feature_shape).encode(),
                       b"" if self.indices is None else self.indices.numpy().tobytes())


def cache_key(key: dict[str, Any]) -> str:
    """A stable 20-hex-digit name for a JSON-able key (order of the dict does not matter)."""
    if not isinstance(key, dict) or not key:
        raise ValueError(f"key must be a non-empty dict (data set, split, backbone, …), got {key!r}")
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def digest(*parts: bytes) -> str:
    """16 hex digits of SHA-256 over the SHA-256 of each part, so parts cannot run into each other."""
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _input_batches(dataset: Dataset, batch_size: int, num_workers: int) -> Iterator[Tensor]:
    """The inputs of ``dataset`` in order, ``batch_size`` at a time (labels are not needed here)."""
    if hasattr(dataset, "batch_indexable") and dataset.batch_indexable:
        for start in range(0, len(dataset), batch_size):
            yield dataset[torch.arange(start, min(start + batch_size, len(dataset)))][0]
        return
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for x, _ in loader:
        yield x


def cached_features(dataset: Dataset, encoder: nn.Module, *, key: dict[str, Any], cache_dir: str | os.PathLike,
                    batch_size: int = 256, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                    num_workers: int = 0, in_memory: bool = False) -> Tensor:
    """``encoder`` applied to every input of ``dataset``, from disk if this key was computed before.

    dataset: yields ``(x, y)``; only x is encoded. encoder: a frozen module, ``(B, *input)`` ->
    ``(B, *feature_shape)``, e.g. (B, d) or (B, tokens, d); it runs in eval mode under ``no_grad`` and
    its training flag is restored afterwards. key: what determines the features (data set, split,
    backbone id, trained blocks, resolution, …); the storage dtype, the dataset length and, when the
    dataset offers one, a fingerprint of its content are added, so a changed key or a changed data
    set rebuilds. dtype: storage, float32 or float16 (half the disk at GPU scale).

    Returns ``(N, *feature_shape)`` in ``dtype``, memory-mapped copy-on-write from
    ``cache_dir/<hash>.npy`` (writes to it never reach the file), or read whole into memory with
    ``in_memory`` (one sequential read; shuffled epochs then never wait on the disk, should the OS
    have dropped the file from its page cache). A ``<hash>.json`` beside it records the key.
    """
    if dtype not in _STORAGE_DTYPES:
        raise ValueError(f"dtype must be torch.float32 or torch.float16, got {dtype}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    full_key = {"key": key, "dtype": str(dtype), "length": len(dataset)}
    if hasattr(dataset, "fingerprint"):
        full_key["content"] = dataset.fingerprint()
    name = cache_key(full_key)
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{name}.npy"
    mode = None if in_memory else "c"
    if path.exists():
        array = np.load(path, mmap_mode="c")
        if array.shape[:1] == (len(dataset),) and array.dtype == _STORAGE_DTYPES[dtype]:
            return torch.from_numpy(array if mode else np.load(path))
    cache_dir.mkdir(parents=True, exist_ok=True)
    _build(dataset, encoder, path, full_key, batch_size, dtype, torch.device(device), num_workers)
    return torch.from_numpy(np.load(path, mmap_mode=mode))


def _build(dataset, encoder, path: Path, full_key, batch_size, dtype, device, num_workers) -> None:
    # a unique temporary name: two processes building the same key never write into one file
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    was_training = encoder.training
    out = None
    try:
        encoder.eval()
        start = 0
        with torch.no_grad():
            for x in _input_batches(dataset, batch_size, num_workers):
                feats = encoder(x.to(device)).to("cpu", dtype)
                if out is None:  # the feature shape is only known after the first batch
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=_STORAGE_DTYPES[dtype],
                                                    shape=(len(dataset), *feats.shape[1:]))
                out[start:start + len(feats)] = feats.numpy()
                start += len(feats)
        if out is None or start != len(dataset):
            raise ValueError(f"the dataset yielded {start} inputs, expected {len(dataset)}")
        out.flush()
        del out
        out = None
        meta = path.with_suffix(".json")
        meta_tmp = meta.with_name(tmp.name + ".json")
        meta_tmp.write_text(json.dumps(full_key, sort_keys=True, indent=1, default=str))
        os.replace(meta_tmp, meta)
        os.replace(tmp, path)  # the commit point: before it no <hash>.npy, after it a complete one
    except BaseException:
        del out
        for leftover in (tmp, path.with_name(tmp.name + ".json")):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        encoder.train(was_training)
