"""Checks the data-set loaders share: fractions, required paths, and the seeded validation carve.

They live apart from :mod:`fairpo.data.load`, which imports every loader, so that a loader can use
them without importing the dispatcher back.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def check_fraction(name: str, value: float) -> None:
    """Raise unless ``value`` lies strictly between 0 and 1; ``name`` is the option the error names."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")


def carve(n: int, val_fraction: float, rng: np.random.Generator, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train rows, validation rows) of n training items; the validation share rounds half up."""
    n_val = math.floor(val_fraction * n + 0.5)
    if n_val < 1 or n - n_val < 1:
        raise ValueError(f"{what}: val_fraction={val_fraction} of {n} training items leaves a train split of "
                         f"{n - n_val} and a validation split of {n_val}; each needs at least 1 (use more data "
                         f"or another val_fraction)")
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def require(path: Path, name: str, layout: str) -> Path:
    """``path`` if it exists, else a FileNotFoundError that shows data set ``name``'s expected layout."""
    if not path.exists():
        raise FileNotFoundError(f"{name}: {path} not found; expected layout:\n{layout}")
    return path
