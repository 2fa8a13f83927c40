"""Summaries of a data set for the data chapter: labels by training frequency, the head/tail ratio, and
how alike the classes of images are."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd


def label_frequency_table(frequencies: Sequence[int], label_names: Sequence[str],
                          privileged: Sequence[int]) -> pd.DataFrame:
    """Labels sorted by training frequency, most frequent first (ties: lower index first).

    Columns: ``label`` (index), ``name``, ``count``, ``share`` (count / total positives),
    ``privileged`` (bool).
    """
    counts = np.asarray(frequencies, dtype=np.int64)
    if counts.shape != (len(label_names),):
        raise ValueError(f"{counts.size} frequencies for {len(label_names)} label names")
    order = np.lexsort((np.arange(len(counts)), -counts))
    priv = set(int(p) for p in privileged)
    return pd.DataFrame(dict(label=order, name=[str(label_names[i]) for i in order], count=counts[order],
                             share=counts[order] / max(counts.sum(), 1),
                             privileged=[int(i) in priv for i in order]))


def head_tail_ratio(frequencies: Sequence[int]) -> float:
    """Positives of the most frequent label over those of the least frequent (inf if one has none)."""
    counts = np.asarray(frequencies, dtype=float)
    return math.inf if counts.min() == 0 else float(counts.max() / counts.min())


def class_mean_distances(x: np.ndarray, y: np.ndarray, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Euclidean distances between class means: x (N, ...) samples, y (N,) class ids → (C, C) frame.

    Classes are the sorted unique values of ``y``; rows and columns are named by ``names`` (or the
    ids). The diagonal is 0. A small distance means two classes look alike on average.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y)
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(0) for c in classes])
    distance = np.sqrt(((means[:, None] - means[None]) ** 2).sum(-1))
    index = [str(n) for n in names] if names is not None else [str(c) for c in classes]
    return pd.DataFrame(distance, index=index, columns=index)


def nearest_lookalikes(distances: pd.DataFrame) -> pd.Series:
    """For each class (row) of a :func:`class_mean_distances` frame, the closest *other* class."""
    d = distances.to_numpy(copy=True)
    np.fill_diagonal(d, np.inf)
    return pd.Series(distances.columns[d.argmin(1)], index=distances.index, name="nearest")
