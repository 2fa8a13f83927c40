"""The one entry point to the data sets, :func:`load_dataset`, its :class:`DataBundle`, and the
privileged/non-privileged label split (:func:`privileged_split`).

Four data sets, each loaded by its own module:

- ``digits`` (default, :mod:`fairpo.data.digits`): long-tailed multi-digit images pasted together from
  scikit-learn's bundled handwritten digits, so everything runs offline on a laptop;
- ``coco`` (:mod:`fairpo.data.images`): MS-COCO 2014 from the user's copy (val2014 is the test split,
  as in the paper);
- ``nuswide`` (:mod:`fairpo.data.images`): NUS-WIDE from the user's copy in its official layout,
  tolerant of partial copies;
- ``features`` (:mod:`fairpo.data.features`): any multi-label data given as vectors (``.npz`` or
  headerless ``.csv``).

The validation split is always carved from the training split with a seeded generator; the test
split never takes part in model selection. The feature cache lives in :mod:`fairpo.data.cache`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset

from fairpo.data.checks import check_fraction
from fairpo.data.digits import DIGITS_OPTIONS, digits_splits
from fairpo.data.features import FEATURES_LAYOUT, FEATURES_OPTIONS, features_splits
from fairpo.data.images import COCO_LAYOUT, COCO_OPTIONS, NUSWIDE_LAYOUT, NUSWIDE_OPTIONS, coco_splits, nuswide_splits

_OPTIONS: dict[str, dict[str, Any]] = {"digits": DIGITS_OPTIONS, "coco": COCO_OPTIONS, "nuswide": NUSWIDE_OPTIONS,
                                       "features": FEATURES_OPTIONS}
_FROM_FILES = {"coco": (coco_splits, COCO_LAYOUT), "nuswide": (nuswide_splits, NUSWIDE_LAYOUT),
               "features": (features_splits, FEATURES_LAYOUT)}


@dataclass
class DataBundle:
    """Everything a run needs from its data set.

    ``train``/``val``/``test`` yield ``(x, y)`` with y float32 (T,) 0/1 and expose ``.labels``
    (N, T) without touching inputs; ``privileged`` holds the sorted indices of P and
    ``train_frequencies`` the positives per label on ``train``. ``input_shape`` is one x's shape;
    ``skipped`` counts, per split, the images left out by screening (``coco``, ``nuswide``).
    """

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    label_names: list[str]
    privileged: list[int]
    train_frequencies: list[int]
    kind: str  # "images" or "features"
    input_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def non_privileged(self) -> list[int]:
        return sorted(set(range(len(self.label_names))) - set(self.privileged))

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary for run records."""
        return dict(
            name=self.name, kind=self.kind, input_shape=list(self.input_shape),
            sizes={s: len(getattr(self, s)) for s in ("train", "val", "test")},
            label_names=list(self.label_names), train_frequencies=[int(f) for f in self.train_frequencies],
            privileged=list(self.privileged), privileged_names=[self.label_names[i] for i in self.privileged],
            options=json.loads(json.dumps(self.options, default=str)), skipped=self.skipped,
        )


def load_dataset(name: str = "digits", root: str | os.PathLike | None = None, *, seed: int = 0,
                 privileged: Sequence[int | str] | str | None = None, privileged_fraction: float = 0.2,
                 val_fraction: float = 0.1, **options) -> DataBundle:
    """Load data set ``name`` with a seeded validation split and its privileged labels.

    Options (an option set to None takes its default):

    - digits: num_train=2400 (train + val canvases), num_test=2000, max_digits=4,
      test_pool_fraction=0.3 (handwritten samples kept for test), image_size=32, channels=1,
      mean/std (default 0.046/0.184).
    - coco: image_size=224, mean/std (default ViT-B/16's 0.5/0.5), verify="exists", drop_empty=False.
    - nuswide: as coco without drop_empty, but verify="header", plus image_dir="Flickr".
    - features: num_labels (trailing label columns of a CSV).

    ``verify`` screens every image once: "exists", "header" (opens it and, for a JPEG, checks the
    end-of-image marker, which catches truncated downloads) or "full" (decodes it). Images that fail
    are left out and counted in one logged line and in ``bundle.skipped``.
    """
    if name not in _OPTIONS:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(_OPTIONS)}")
    check_fraction("privileged_fraction", privileged_fraction)
    check_fraction("val_fraction", val_fraction)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(_OPTIONS[name]))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {name!r}; it takes: {', '.join(_OPTIONS[name])}")
    opts = {**_OPTIONS[name], **given}
    if name == "digits":
        if root is not None:
            raise ValueError("digits is built from scikit-learn's bundled data; leave root=None")
        parts = digits_splits(int(seed), val_fraction, opts)
    else:
        splits, layout = _FROM_FILES[name]
        if root is None:
            raise FileNotFoundError(f"{name} needs root=, the folder holding your copy, laid out as\n{layout}")
        root = Path(root).expanduser()
        parts = splits(root, int(seed), val_fraction, opts)
    frequencies = parts["train"].labels.sum(0).round().long().tolist()
    chosen = privileged_split(frequencies, parts["label_names"], privileged=privileged, fraction=privileged_fraction)
    given_list = privileged if privileged is None or isinstance(privileged, str) else [
        int(p) if isinstance(p, (int, np.integer)) else str(p) for p in privileged]
    opts.update(seed=int(seed), val_fraction=val_fraction, privileged_fraction=privileged_fraction,
                privileged_given=given_list)
    if root is not None:
        opts["root"] = str(root)
    return DataBundle(name=name, privileged=chosen, train_frequencies=frequencies, options=opts, **parts)


def privileged_split(frequencies: Sequence[int], label_names: Sequence[str], *,
                     privileged: Sequence[int | str] | str | None = None, fraction: float = 0.2) -> list[int]:
    """Sorted indices of the privileged labels P.

    frequencies: (T,) positives per label on the training split. Default: the ``round(fraction·T)``
    least frequent labels (half rounds up; at least 1, at most T − 1), ties broken by the lower index.
    ``privileged``: an explicit list of label names and/or indices (a string is split on commas),
    which overrides ``fraction``.
    """
    names = [str(n) for n in label_names]
    freqs = np.asarray(frequencies)
    if freqs.shape != (len(names),):
        raise ValueError(f"{freqs.shape[0] if freqs.ndim else 0} frequencies for {len(names)} labels")
    if len(names) < 2:
        raise ValueError(f"a privileged split needs at least 2 labels, got {len(names)}")
    if privileged is None:
        check_fraction("privileged_fraction", fraction)
        count = min(max(math.floor(fraction * len(names) + 0.5), 1), len(names) - 1)
        by_frequency = np.lexsort((np.arange(len(names)), freqs))  # frequency first, then index
        return sorted(by_frequency[:count].tolist())
    items = [s.strip() for s in privileged.split(",")] if isinstance(privileged, str) else list(privileged)
    chosen = [_label_index(item, names) for item in items]
    if len(set(chosen)) != len(chosen):
        twice = sorted({names[i] for i in chosen if chosen.count(i) > 1})
        raise ValueError(f"privileged labels listed twice: {twice}")
    if not 0 < len(chosen) < len(names):
        raise ValueError(f"the privileged set must hold between 1 and {len(names) - 1} of the {len(names)} "
                         f"labels (both groups non-empty), got {len(chosen)}")
    return sorted(chosen)


def _label_index(item: int | str, names: list[str]) -> int:
    if isinstance(item, str) and item in names:
        return names.index(item)
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool) or (isinstance(item, str) and item.isdigit()):
        index = int(item)
        if not 0 <= index < len(names):
            raise ValueError(f"privileged label index {index} is outside 0…{len(names) - 1}")
        return index
    shown = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
    raise ValueError(f"unknown privileged label {item!r}; label names are: {shown}")
