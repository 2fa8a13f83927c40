"""Data sets, the privileged/non-privileged label split, and image transforms.

One entry point, :func:`load_dataset`, returns a :class:`DataBundle` for any of the four data sets:

- ``digits`` (default): long-tailed multi-digit images pasted together from scikit-learn's bundled
  handwritten digits, so everything runs offline on a laptop;
- ``coco``: MS-COCO 2014 from the user's copy (val2014 is the test split, as in the paper);
- ``nuswide``: NUS-WIDE from the user's copy in its official layout, tolerant of partial copies;
- ``features``: any multi-label data given as vectors (``.npz`` or headerless ``.csv``).

The validation split is always carved from the training split with a seeded generator; the test
split never takes part in model selection. The feature cache lives in :mod:`fairpo.data.cache`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from fairpo.data.cache import FeatureDataset, _digest, cached_features

__all__ = ["BatchLoader", "DataBundle", "DigitsDataset", "digit_pretraining_set", "FeatureDataset", "ImageFileDataset", "ImageTransform",
           "TensorImageDataset", "cached_features", "load_dataset", "make_loader", "privileged_split"]

logger = logging.getLogger(__name__)

VIT_MEAN = (0.5, 0.5, 0.5)
VIT_STD = (0.5, 0.5, 0.5)
"""google/vit-base-patch16-224's own normalisation (its preprocessor config), our default backbone."""

DIGIT_RATES = (0.22, 0.60, 0.30, 0.55, 0.18, 0.35, 0.14, 0.10, 0.03, 0.045)
"""Chance that each digit 0–9 is on a canvas, before conditioning on 1…max_digits digits.
8 and 9 are rare; their nearest look-alikes in the handwritten set (1 for 8, 3 for 9, by class-mean
distance) are the two most frequent, so the rare digits meet their confusers all the time."""
DIGITS_CANVAS, DIGITS_GLYPH, DIGITS_CELL = 32, 8, 16  # 2 × 2 cells of 16 px, one 8 px glyph per cell
DIGITS_MEAN, DIGITS_STD = 0.046, 0.184  # of default training canvases in [0, 1] (seeds 0–2 agree to 0.001)

COCO_LAYOUT = """<root>/
  annotations/instances_train2014.json
  annotations/instances_val2014.json     (val2014 is the test split)
  train2014/COCO_train2014_000000000009.jpg …
  val2014/COCO_val2014_000000000042.jpg …"""
NUSWIDE_LAYOUT = """<root>/
  Concepts81.txt  (or ConceptsList/Concepts81.txt)   81 concept names, one a line
  ImageList/TrainImagelist.txt, ImageList/TestImagelist.txt   one image a line, e.g. actor\\0001_2124494179.jpg
  Groundtruth/TrainTestLabels/Labels_<concept>_Train.txt, …_Test.txt   one 0/1 a line, aligned with the lists
  Flickr/actor/0001_2124494179.jpg …   (the option image_dir names this folder)"""
FEATURES_LAYOUT = """<root>/
  train.npz, test.npz   arrays x (N, d) features, y (N, T) 0/1 labels, optional label_names (T,)
or
  train.csv, test.csv   headerless: feature columns, then T label columns
  label_names.txt       optional, one name a line; with CSVs it (or the option num_labels) gives T"""

_IMAGE_OPTIONS = dict(image_size=224, mean=VIT_MEAN, std=VIT_STD, augment=False, crop_scale=(0.08, 1.0))
_OPTIONS: dict[str, dict[str, Any]] = {
    "digits": dict(num_train=2400, num_test=2000, max_digits=4, test_pool_fraction=0.3, image_size=32,
                   channels=1, mean=None, std=None, augment=False, crop_scale=(0.8, 1.0)),
    # COCO ships as whole archives, so a cheap existence check is enough; NUS-WIDE copies are often partial
    "coco": dict(_IMAGE_OPTIONS, verify="exists", drop_empty=False),
    "nuswide": dict(_IMAGE_OPTIONS, verify="header", image_dir="Flickr"),
    "features": dict(num_labels=None),
}
VERIFY_MODES = ("exists", "header", "full")


# ---------------------------------------------------------------------------------------------
# privileged split


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
        _check_fraction("privileged_fraction", fraction)
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


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")


# ---------------------------------------------------------------------------------------------
# transforms and datasets


class ImageTransform:
    """Image (PIL or (C, H, W) tensor) -> normalised float32 (C', S, S), S = ``image_size``.

    Evaluation: resize to S × S. Training (``augment``): a random resized crop to S × S (area in
    ``crop_scale``, aspect in ``crop_ratio``) and, if ``flip``, a horizontal flip with chance 1/2.
    Both end with ``(x − mean) / std``. ``channels`` repeats a grey channel to 3 if asked.

    The random draws come from a generator seeded by (seed, epoch, item index), not from torch's global
    RNG, so augmentation is the same whatever the number of loader workers; :meth:`set_epoch` (which
    :func:`make_loader` calls) gives every epoch fresh draws.
    """

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], *, augment: bool = False,
                 flip: bool = True, crop_scale: tuple[float, float] = (0.08, 1.0),
                 crop_ratio: tuple[float, float] = (3 / 4, 4 / 3), channels: int | None = None, seed: int = 0) -> None:
        self.image_size, self.mean, self.std = int(image_size), [float(m) for m in mean], [float(s) for s in std]
        self.augment, self.flip, self.channels, self.seed = bool(augment), bool(flip), channels, int(seed)
        self.crop_scale, self.crop_ratio = tuple(crop_scale), tuple(crop_ratio)
        self.epoch = 0
        self._resize = v2.Resize((self.image_size, self.image_size), antialias=True)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def describe(self) -> dict[str, Any]:
        return dict(image_size=self.image_size, mean=self.mean, std=self.std, augment=self.augment,
                    flip=self.flip, crop_scale=list(self.crop_scale), channels=self.channels)

    def __call__(self, image, index: int = 0) -> Tensor:
        x = image if torch.is_tensor(image) else TF.pil_to_tensor(image)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            top, left, h, w = _crop_box(rng, x.shape[-2], x.shape[-1], self.crop_scale, self.crop_ratio)
            x = TF.resized_crop(x, top, left, h, w, [self.image_size, self.image_size], antialias=True)
            if self.flip and rng.random() < 0.5:
                x = TF.horizontal_flip(x)
        elif x.shape[-2:] != (self.image_size, self.image_size):
            x = self._resize(x)
        x = TF.to_dtype(x, torch.float32, scale=True)
        if self.channels and x.shape[-3] != self.channels:
            x = x.expand(*x.shape[:-3], self.channels, *x.shape[-2:])
        return TF.normalize(x, self.mean, self.std)


def _crop_box(rng: np.random.Generator, height: int, width: int, scale, ratio) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop with area ∈ scale·H·W and aspect w/h ∈ ratio (log-uniform)."""
    area = rng.uniform(*scale, size=10) * height * width
    aspect = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), size=10))
    ws, hs = np.round(np.sqrt(area * aspect)).astype(int), np.round(np.sqrt(area / aspect)).astype(int)
    fits = (ws > 0) & (hs > 0) & (ws <= width) & (hs <= height)
    if fits.any():  # ten tries, the first that fits (all drawn at once, so the stream stays fixed)
        h, w = int(hs[fits.argmax()]), int(ws[fits.argmax()])
    else:  # the whole image, trimmed to the nearest allowed aspect
        w, h = width, height
        if width / height < ratio[0]:
            h = max(1, round(width / ratio[0]))
        elif width / height > ratio[1]:
            w = max(1, round(height * ratio[1]))
    return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w


class TensorImageDataset(Dataset):
    """Images held in memory: images (N, C, H, W) float in [0, 1], labels (N, T) 0/1.

    Yields ``(transform(images[i]), labels[i])``. Without augmentation the transformed images are
    computed once for the whole set (if they fit in 512 MiB); the dataset then also takes a 1-d index
    tensor and returns a whole batch.
    """

    def __init__(self, images: Tensor, labels: Tensor, transform: ImageTransform) -> None:
        self.images, self.labels, self.transform = images, labels.float(), transform
        c = transform.channels or images.shape[1]
        small = len(images) * c * transform.image_size ** 2 * 4 <= 512 * 2 ** 20
        self._ready = transform(images) if small and not transform.augment else None

    augment = property(lambda self: self.transform.augment)
    batch_indexable = property(lambda self: self._ready is not None)

    def set_epoch(self, epoch: int) -> None:
        self.transform.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> tuple[Tensor, Tensor]:
        if self._ready is not None:
            return self._ready[index], self.labels[index]
        return self.transform(self.images[index], index), self.labels[index]

    def fingerprint(self) -> str:
        return _digest(self.images.numpy().tobytes(), self.labels.numpy().tobytes(),
                       json.dumps(self.transform.describe(), sort_keys=True).encode())


class DigitsDataset(TensorImageDataset):
    """A split of ``digits``: canvases (N, 1, 32, 32) in [0, 1], labels (N, 10).

    ``placements`` (K, 5) int64 records every pasted glyph: canvas index, digit, index of the
    handwritten sample in ``sklearn.datasets.load_digits()``, top row, left column.
    """

    def __init__(self, images: Tensor, labels: Tensor, transform: ImageTransform, placements: np.ndarray) -> None:
        super().__init__(images, labels, transform)
        self.placements = placements

    @property
    def sources(self) -> np.ndarray:
        """Sorted indices of the handwritten samples this split uses."""
        return np.unique(self.placements[:, 2])


class ImageFileDataset(Dataset):
    """Images on disk: paths (N,), labels (N, T) 0/1; yields ``(transform(RGB image), labels[i])``."""

    def __init__(self, paths: Sequence[str], labels: Tensor, transform: ImageTransform) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} label rows")
        self.paths, self.labels, self.transform = list(paths), labels.float(), transform

    augment = property(lambda self: self.transform.augment)

    def set_epoch(self, epoch: int) -> None:
        self.transform.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        with Image.open(self.paths[index]) as image:
            x = self.transform(image.convert("RGB"), index)
        return x, self.labels[index]

    def fingerprint(self) -> str:
        return _digest("\n".join(self.paths).encode(), self.labels.numpy().tobytes(),
                       json.dumps(self.transform.describe(), sort_keys=True).encode())


class BatchLoader:
    """Batches ``(x (B, …), y (B, T))`` of a split, reshuffled each pass from (seed, pass number).

    Datasets that take index tensors (cached features, in-memory digits) are gathered a batch at a
    time; others go through a ``DataLoader``. Each pass first calls ``dataset.set_epoch`` with a
    number drawn from (seed, pass number), so augmentation changes from pass to pass.
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int, drop_last: bool,
                 num_workers: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, batch_size, shuffle, seed
        self.drop_last, self.num_workers, self.epoch = drop_last, num_workers, 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        pass_seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        if hasattr(self.dataset, "set_epoch"):
            # augmentation follows (loader seed, pass): fresh draws also for a new loader per epoch
            self.dataset.set_epoch(pass_seed)
        generator = torch.Generator().manual_seed(pass_seed)
        if not getattr(self.dataset, "batch_indexable", False):
            yield from DataLoader(self.dataset, self.batch_size, shuffle=self.shuffle, generator=generator,
                                  drop_last=self.drop_last, num_workers=self.num_workers)
            return
        n = len(self.dataset)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for batch in order[: len(self) * self.batch_size].split(self.batch_size):
            yield self.dataset[batch]


def make_loader(dataset: Dataset, batch_size: int = 32, *, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False, num_workers: int = 0) -> BatchLoader:
    """A seeded, re-iterable loader over any split; see :class:`BatchLoader`."""
    return BatchLoader(dataset, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, num_workers=num_workers)


# ---------------------------------------------------------------------------------------------
# the bundle


@dataclass
class DataBundle:
    """Everything a run needs from its data set.

    ``train``/``val``/``test`` yield ``(x, y)`` with y float32 (T,) 0/1 and expose ``.labels``
    (N, T) without touching inputs; ``privileged`` holds the sorted indices of P and
    ``train_frequencies`` the positives per label on ``train``. ``input_shape`` is one x's shape.
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
    # split -> (file-level source name, un-augmented source dataset, rows of it this split uses or None)
    sources: dict[str, tuple[str, Dataset, Tensor | None]] = field(default_factory=dict, repr=False)

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

    def cached_split(self, split: str, encoder: torch.nn.Module, *, key: dict[str, Any],
                     cache_dir: str | os.PathLike, **kwargs) -> FeatureDataset:
        """``split`` as a :class:`FeatureDataset` of ``encoder``'s output, through the feature cache.

        The cache holds the whole file-level split the split was carved from (e.g. all of train2014
        for both ``train`` and ``val``), so every seed, whatever validation rows it draws, reads the
        same file. ``kwargs`` go to :func:`fairpo.data.cache.cached_features`.
        """
        if split not in self.sources:
            raise ValueError(f"unknown split {split!r}; choose train, val or test")
        source_name, source, rows = self.sources[split]
        features = cached_features(source, encoder, key={**key, "dataset": self.name, "split": source_name},
                                   cache_dir=cache_dir, **kwargs)
        return FeatureDataset(features, getattr(self, split).labels, rows)


def load_dataset(name: str = "digits", root: str | os.PathLike | None = None, *, seed: int = 0,
                 privileged: Sequence[int | str] | str | None = None, privileged_fraction: float = 0.2,
                 val_fraction: float = 0.1, **options) -> DataBundle:
    """Load data set ``name`` with a seeded validation split and its privileged labels.

    Options (an option set to None takes its default):

    - digits: num_train=2400 (train + val canvases), num_test=2000, max_digits=4,
      test_pool_fraction=0.3 (handwritten samples kept for test), image_size=32, channels=1,
      mean/std (default 0.046/0.184), augment=False, crop_scale=(0.8, 1.0); no flip (a mirrored
      digit is another symbol).
    - coco: image_size=224, mean/std (default ViT-B/16's 0.5/0.5), augment=False,
      crop_scale=(0.08, 1.0), verify="exists", drop_empty=False.
    - nuswide: as coco without drop_empty, but verify="header", plus image_dir="Flickr".
    - features: num_labels (trailing label columns of a CSV).

    ``verify`` screens every image once: "exists", "header" (opens it and, for a JPEG, checks the
    end-of-image marker, which catches truncated downloads) or "full" (decodes it). Images that fail
    are left out and counted in one logged line and in ``bundle.skipped``.
    """
    if name not in _OPTIONS:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(_OPTIONS)}")
    _check_fraction("privileged_fraction", privileged_fraction)
    _check_fraction("val_fraction", val_fraction)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(_OPTIONS[name]))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {name!r}; it takes: {', '.join(_OPTIONS[name])}")
    opts = {**_OPTIONS[name], **given}
    if name == "digits":
        if root is not None:
            raise ValueError("digits is built from scikit-learn's bundled data; leave root=None")
        parts = _load_digits(int(seed), val_fraction, opts)
    else:
        if root is None:
            layout = {"coco": COCO_LAYOUT, "nuswide": NUSWIDE_LAYOUT, "features": FEATURES_LAYOUT}[name]
            raise FileNotFoundError(f"{name} needs root=, the folder holding your copy, laid out as\n{layout}")
        root = Path(root).expanduser()
        loader = {"coco": _load_coco, "nuswide": _load_nuswide, "features": _load_features}[name]
        parts = loader(root, int(seed), val_fraction, opts)
    frequencies = parts["train"].labels.sum(0).round().long().tolist()
    chosen = privileged_split(frequencies, parts["label_names"], privileged=privileged, fraction=privileged_fraction)
    given_list = privileged if privileged is None or isinstance(privileged, str) else [
        int(p) if isinstance(p, (int, np.integer)) else str(p) for p in privileged]
    opts.update(seed=int(seed), val_fraction=val_fraction, privileged_fraction=privileged_fraction,
                privileged_given=given_list)
    if root is not None:
        opts["root"] = str(root)
    return DataBundle(name=name, privileged=chosen, train_frequencies=frequencies, options=opts, **parts)


def _carve(n: int, val_fraction: float, rng: np.random.Generator, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train rows, validation rows) of n training items; the validation share rounds half up."""
    n_val = math.floor(val_fraction * n + 0.5)
    if n_val < 1 or n - n_val < 1:
        raise ValueError(f"{what}: val_fraction={val_fraction} of {n} training items leaves a train split of "
                         f"{n - n_val} and a validation split of {n_val}; each needs at least 1 (use more data "
                         f"or another val_fraction)")
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _check_binary(y: np.ndarray, where: str) -> None:
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{where}: labels must be 0 or 1, found {y[row, col].item()!r} at row {row}, "
                         f"label column {col} ({int(bad.sum())} such entries in all)")


def _image_parts(name: str, root: Path, seed: int, val_fraction: float, opts: dict,
                 train: tuple[list[str], np.ndarray], test: tuple[list[str], np.ndarray],
                 label_names: list[str]) -> dict[str, Any]:
    """Screen images, carve validation from train, build the three image datasets."""
    if opts["verify"] not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, got {opts['verify']!r}")
    size, mean, std = int(opts["image_size"]), tuple(opts["mean"]), tuple(opts["std"])
    if size < 1 or len(mean) != 3 or len(std) != 3:
        raise ValueError(f"image_size must be positive and mean/std have 3 values, got {size}, {mean}, {std}")
    skipped, kept = {}, {}
    for split, (paths, labels) in (("train", train), ("test", test)):
        status = _screen_images(paths, opts["verify"])
        skipped[split] = {"total": len(paths), "missing": int((status == 1).sum()),
                          "unreadable": int((status == 2).sum())}
        keep = status == 0
        kept[split] = ([p for p, k in zip(paths, keep) if k], torch.from_numpy(labels[keep]).float())
        if not keep.any():
            raise FileNotFoundError(f"{name}: none of the {len(paths)} {split} images could be read "
                                    f"(e.g. {paths[0] if paths else '—'}); expected layout:\n"
                                    f"{COCO_LAYOUT if name == 'coco' else NUSWIDE_LAYOUT}")
    if any(s["missing"] + s["unreadable"] for s in skipped.values()):
        logger.warning("%s: left out %s", name, "; ".join(
            f"{s['missing'] + s['unreadable']} of {s['total']} {split} images "
            f"({s['missing']} missing, {s['unreadable']} unreadable)" for split, s in skipped.items()))
    evaluate = ImageTransform(size, mean, std)
    augment = ImageTransform(size, mean, std, augment=True, crop_scale=opts["crop_scale"], seed=seed)
    paths, labels = kept["train"]
    rows_train, rows_val = _carve(len(paths), val_fraction, np.random.default_rng(seed), f"{name} train")
    source = ImageFileDataset(paths, labels, evaluate)
    train_ds = ImageFileDataset([paths[i] for i in rows_train], labels[rows_train],
                                augment if opts["augment"] else evaluate)
    val_ds = ImageFileDataset([paths[i] for i in rows_val], labels[rows_val], evaluate)
    test_ds = ImageFileDataset(*kept["test"], evaluate)
    return dict(train=train_ds, val=val_ds, test=test_ds, label_names=label_names, kind="images",
                input_shape=(3, size, size), skipped=skipped,
                sources={"train": ("train", source, torch.from_numpy(rows_train)),
                         "val": ("train", source, torch.from_numpy(rows_val)), "test": ("test", test_ds, None)})


def _image_status(path: str, mode: str) -> int:
    """0 readable, 1 missing, 2 unreadable (empty, not an image, truncated JPEG, …)."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return 1
    if mode == "exists":
        return 0 if size > 0 else 2
    try:
        with Image.open(path) as image:
            if mode == "full":
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))  # JPEG: decode at 1/8
                image.load()
            elif image.format == "JPEG":
                with open(path, "rb") as f:
                    f.seek(max(0, size - 1024))
                    if b"\xff\xd9" not in f.read():  # no end-of-image marker: a cut-off download
                        return 2
    except Exception:  # any failure to open is what we screen for
        return 2
    return 0


def _screen_images(paths: list[str], mode: str) -> np.ndarray:
    """(N,) int8 status of each image (see :func:`_image_status`), checked on threads (I/O bound)."""
    if len(paths) < 64:
        return np.array([_image_status(p, mode) for p in paths], dtype=np.int8)
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        return np.fromiter(pool.map(_image_status, paths, [mode] * len(paths)), dtype=np.int8, count=len(paths))


def _require(path: Path, name: str, layout: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{name}: {path} not found; expected layout:\n{layout}")
    return path


# ---------------------------------------------------------------------------------------------
# digits


def _load_digits(seed: int, val_fraction: float, opts: dict) -> dict[str, Any]:
    from sklearn.datasets import load_digits

    num_train, num_test, max_digits = int(opts["num_train"]), int(opts["num_test"]), int(opts["max_digits"])
    if not 1 <= max_digits <= 4:
        raise ValueError(f"max_digits must be 1…4 (a 2 × 2 grid of cells), got {max_digits}")
    if num_test < 1:
        raise ValueError(f"num_test must be at least 1, got {num_test}")
    _check_fraction("test_pool_fraction", opts["test_pool_fraction"])
    channels = int(opts["channels"])
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    mean = tuple(opts["mean"] or (DIGITS_MEAN,) * channels)
    std = tuple(opts["std"] or (DIGITS_STD,) * channels)
    digits = load_digits()
    glyphs, glyph_digits = (digits.images / 16.0).astype(np.float32), digits.target
    n_val = math.floor(val_fraction * num_train + 0.5)
    if n_val < 1 or num_train - n_val < 1:
        raise ValueError(f"digits: val_fraction={val_fraction} of num_train={num_train} leaves a train split of "
                         f"{num_train - n_val} and a validation split of {n_val}; each needs at least 1")
    # independent streams: changing one split's size leaves the others' canvases unchanged
    pools_rng, *split_rngs = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    pools = _digit_pools(glyph_digits, val_fraction, opts["test_pool_fraction"], pools_rng)
    evaluate = ImageTransform(opts["image_size"], mean, std, channels=channels)
    augment = ImageTransform(opts["image_size"], mean, std, channels=channels, augment=True, flip=False,
                             crop_scale=opts["crop_scale"], crop_ratio=(0.9, 1.1), seed=seed)
    out, sources = {}, {}
    for split, n, rng in zip(("train", "val", "test"), (num_train - n_val, n_val, num_test), split_rngs):
        images, labels, placements = _digit_canvases(glyphs, glyph_digits, pools[split], n, max_digits, rng)
        images, labels = torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).float()
        out[split] = DigitsDataset(images, labels, augment if split == "train" and opts["augment"] else evaluate,
                                   placements)
        source = out[split] if not out[split].augment else DigitsDataset(images, labels, evaluate, placements)
        sources[split] = (split, source, None)
    size = int(opts["image_size"])
    opts.update(mean=list(mean), std=list(std), label_rates=list(DIGIT_RATES))
    return dict(**out, label_names=[str(d) for d in range(10)], kind="images", input_shape=(channels, size, size),
                sources=sources)


def digit_pretraining_set(n: int = 4000, *, seed: int = 0, val_fraction: float = 0.1,
                          test_pool_fraction: float = 0.3) -> tuple[Tensor, Tensor]:
    """Single-digit canvases for pretraining the digits backbone on a task other than the benchmark's.

    Returns normalised images (n, 1, 32, 32) and their digits (n,) — every digit equally often, one
    glyph at a random patch-aligned place — drawn only from the *training* pool of handwritten samples
    that :func:`load_dataset` would use with the same ``seed`` and fractions, so no validation or test
    handwriting is ever seen by the backbone.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    glyphs, glyph_digits = (digits.images / 16.0).astype(np.float32), digits.target
    pools_rng, _, _, _ = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    pool = _digit_pools(glyph_digits, val_fraction, test_pool_fraction, pools_rng)["train"]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    digit = np.arange(n) % 10
    source = np.empty(n, dtype=np.int64)
    for d in range(10):
        members = pool[glyph_digits[pool] == d]
        source[digit == d] = members[rng.integers(0, len(members), size=int((digit == d).sum()))]
    slots = DIGITS_CANVAS // DIGITS_GLYPH
    top, left = (rng.integers(0, slots, size=(2, n)) * DIGITS_GLYPH)
    images = np.zeros((n, DIGITS_CANVAS, DIGITS_CANVAS), dtype=np.float32)
    span = np.arange(DIGITS_GLYPH)
    images[np.arange(n)[:, None, None], (top[:, None] + span)[:, :, None], (left[:, None] + span)[:, None, :]] = glyphs[source]
    images = (images - DIGITS_MEAN) / DIGITS_STD
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(digit)


def _digit_pools(glyph_digits: np.ndarray, val_fraction: float, test_fraction: float,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Disjoint train/val/test sets of handwritten sample indices, stratified by digit."""
    pools: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(glyph_digits == digit))
        n_test = math.floor(test_fraction * len(members) + 0.5)
        n_val = math.floor(val_fraction * (len(members) - n_test) + 0.5)
        parts = np.split(members, [n_test, n_test + n_val])
        for split, part in zip(("test", "val", "train"), parts):
            if len(part) == 0:
                raise ValueError(f"digits: the {split} pool of handwritten {digit}s is empty; "
                                 f"move val_fraction/test_pool_fraction away from 0 and 1")
            pools[split].append(part)
    return {split: np.sort(np.concatenate(parts)) for split, parts in pools.items()}


def _digit_canvases(glyphs: np.ndarray, glyph_digits: np.ndarray, pool: np.ndarray, n: int, max_digits: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n canvases (n, 32, 32) in [0, 1], their labels (n, 10) and placements (K, 5); see DigitsDataset.

    Each digit d is present with chance DIGIT_RATES[d], redrawn until a canvas holds 1…max_digits
    digits; each present digit gets its own random cell of the 2 × 2 grid, a random offset inside it
    (a multiple of the glyph size)
    and a random handwritten sample of that digit from ``pool``. Cells never overlap, so every pasted
    glyph is intact.
    """
    labels, todo = np.zeros((n, 10), dtype=bool), np.arange(n)
    while todo.size:  # rejection rounds, each vectorised over the canvases still to draw
        draw = rng.random((todo.size, 10)) < np.asarray(DIGIT_RATES)
        ok = (draw.sum(1) >= 1) & (draw.sum(1) <= max_digits)
        labels[todo[ok]] = draw[ok]
        todo = todo[~ok]
    canvas_of, digit = np.nonzero(labels)
    rank = (np.cumsum(labels, axis=1) - 1)[canvas_of, digit]  # 0 for a canvas's first digit, 1 for its second…
    cell = np.argsort(rng.random((n, 4)), axis=1)[canvas_of, rank]
    # offsets on the 8-px grid: each glyph fills exactly one patch of the digits ViT (patch size 8),
    # so a small ViT pretrained for seconds on a CPU sees whole digits (see fairpo.data.backbone)
    slots = DIGITS_CELL // DIGITS_GLYPH
    top = (cell // 2) * DIGITS_CELL + rng.integers(0, slots, size=len(cell)) * DIGITS_GLYPH
    left = (cell % 2) * DIGITS_CELL + rng.integers(0, slots, size=len(cell)) * DIGITS_GLYPH
    source = np.empty(len(digit), dtype=np.int64)
    for d in range(10):
        members = pool[glyph_digits[pool] == d]
        source[digit == d] = members[rng.integers(0, len(members), size=int((digit == d).sum()))]
    images = np.zeros((n, DIGITS_CANVAS, DIGITS_CANVAS), dtype=np.float32)
    span = np.arange(DIGITS_GLYPH)
    rows, cols = (top[:, None] + span)[:, :, None], (left[:, None] + span)[:, None, :]
    images[canvas_of[:, None, None], rows, cols] = glyphs[source]
    placements = np.stack([canvas_of, digit, source, top, left], axis=1).astype(np.int64)
    return images, labels, placements


# ---------------------------------------------------------------------------------------------
# COCO 2014 and NUS-WIDE


def _load_coco(root: Path, seed: int, val_fraction: float, opts: dict) -> dict[str, Any]:
    _require(root, "coco", COCO_LAYOUT)
    splits, names = {}, None
    for split, folder in (("train", "train2014"), ("test", "val2014")):
        path = _require(root / "annotations" / f"instances_{folder}.json", "coco", COCO_LAYOUT)
        _require(root / folder, "coco", COCO_LAYOUT)
        with open(path) as f:
            info = json.load(f)
        categories = sorted(info["categories"], key=lambda c: c["id"])
        cat_ids = np.array([c["id"] for c in categories])
        if names is None:
            names, first_ids = [c["name"] for c in categories], cat_ids
        elif not np.array_equal(cat_ids, first_ids):
            raise ValueError(f"coco: {path.name} lists other categories than instances_train2014.json")
        images = sorted(info["images"], key=lambda im: im["id"])
        image_ids = np.array([im["id"] for im in images])
        ann_images = np.array([a["image_id"] for a in info["annotations"]], dtype=np.int64)
        ann_cats = np.array([a["category_id"] for a in info["annotations"]], dtype=np.int64)
        rows, cols = np.searchsorted(image_ids, ann_images), np.searchsorted(cat_ids, ann_cats)
        rows, cols = np.minimum(rows, len(image_ids) - 1), np.minimum(cols, len(cat_ids) - 1)
        known = (image_ids[rows] == ann_images) & (cat_ids[cols] == ann_cats)
        if not known.all():
            raise ValueError(f"coco: {path.name} has {int((~known).sum())} annotations of unknown images or categories")
        labels = np.zeros((len(images), len(cat_ids)), dtype=np.int8)
        labels[rows, cols] = 1
        paths = [str(root / folder / im["file_name"]) for im in images]
        if opts["drop_empty"]:
            has = labels.any(1)
            paths, labels = [p for p, h in zip(paths, has) if h], labels[has]
        splits[split] = (paths, labels)
    return _image_parts("coco", root, seed, val_fraction, opts, splits["train"], splits["test"], names)


def _load_nuswide(root: Path, seed: int, val_fraction: float, opts: dict) -> dict[str, Any]:
    _require(root, "nuswide", NUSWIDE_LAYOUT)
    concepts = next((p for p in (root / "Concepts81.txt", root / "ConceptsList" / "Concepts81.txt") if p.exists()),
                    None)
    if concepts is None:
        raise FileNotFoundError(f"nuswide: no Concepts81.txt in {root} or {root / 'ConceptsList'}; expected layout:\n"
                                f"{NUSWIDE_LAYOUT}")
    names = [line.strip() for line in concepts.read_text().splitlines() if line.strip()]
    image_dir = _require(root / opts["image_dir"], "nuswide", NUSWIDE_LAYOUT)
    splits = {}
    for split, tag in (("train", "Train"), ("test", "Test")):
        listing = _require(root / "ImageList" / f"{tag}Imagelist.txt", "nuswide", NUSWIDE_LAYOUT)
        relative = [line.strip().replace("\\", "/") for line in listing.read_text().splitlines() if line.strip()]
        # the all-images list writes C:\ImageData\Flickr\actor\…: keep what follows "Flickr/"
        paths = [str(image_dir / r.rsplit("Flickr/", 1)[-1].lstrip("/")) for r in relative]
        columns = []
        for concept in names:
            path = _require(root / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_{tag}.txt", "nuswide",
                            NUSWIDE_LAYOUT)
            tokens = np.array(path.read_bytes().split())
            if len(tokens) != len(paths):
                raise ValueError(f"nuswide: {path} has {len(tokens)} labels but {listing.name} lists {len(paths)} "
                                 f"images; they must align line by line")
            column = np.where(tokens == b"1", 1, np.where(tokens == b"0", 0, -1)).astype(np.int8)
            if (column < 0).any():
                row = int(np.argmax(column < 0))
                raise ValueError(f"nuswide: {path} line {row + 1} holds {tokens[row].decode()!r}; "
                                 f"labels must be 0 or 1")
            columns.append(column)
        splits[split] = (paths, np.stack(columns, axis=1))
    return _image_parts("nuswide", root, seed, val_fraction, opts, splits["train"], splits["test"], names)


# ---------------------------------------------------------------------------------------------
# features


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


def _load_features(root: Path, seed: int, val_fraction: float, opts: dict) -> dict[str, Any]:
    _require(root, "features", FEATURES_LAYOUT)
    names_file = root / "label_names.txt"
    file_names = ([line.strip() for line in names_file.read_text().splitlines() if line.strip()]
                  if names_file.exists() else None)
    num_labels = opts["num_labels"]
    if num_labels is not None and file_names is not None and int(num_labels) != len(file_names):
        raise ValueError(f"features: num_labels={num_labels} but {names_file} names {len(file_names)} labels")
    arrays, npz_names = {}, None
    for split in ("train", "test"):
        found = [root / f"{split}.{ext}" for ext in ("npz", "csv") if (root / f"{split}.{ext}").exists()]
        if len(found) != 1:
            problem = "no" if not found else "both a .npz and a .csv as"
            raise FileNotFoundError(f"features: {problem} {split} file in {root}; expected layout:\n{FEATURES_LAYOUT}")
        path = found[0]
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data or "y" not in data:
                    raise ValueError(f"features: {path} must hold arrays 'x' and 'y', it holds {sorted(data.files)}")
                x, y = data["x"], data["y"]
                if "label_names" in data:
                    npz_names = [str(n) for n in data["label_names"]]
        else:
            count = int(num_labels) if num_labels is not None else len(file_names) if file_names else None
            if count is None:
                raise ValueError(f"features: {path} is a CSV, so say how many trailing columns are labels: "
                                 f"pass num_labels= or add {names_file.name} (one name a line)")
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
        arrays[split] = (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                         torch.from_numpy(y.astype(np.float32)))
    num = arrays["train"][1].shape[1]
    if arrays["test"][1].shape[1] != num or arrays["test"][0].shape[1:] != arrays["train"][0].shape[1:]:
        raise ValueError("features: train and test files disagree on the number of features or labels")
    names = file_names or npz_names or [f"label_{t}" for t in range(num)]
    if len(names) != num or (num_labels is not None and int(num_labels) != num):
        raise ValueError(f"features: the files hold {num} labels but the names/num_labels say {len(names)}")
    x, y = arrays["train"]
    rows_train, rows_val = (torch.from_numpy(r) for r in
                            _carve(len(y), val_fraction, np.random.default_rng(seed), "features train"))
    source = FeatureDataset(x, y)
    return dict(train=FeatureDataset(x, y[rows_train], rows_train), val=FeatureDataset(x, y[rows_val], rows_val),
                test=FeatureDataset(*arrays["test"]), label_names=names, kind="features",
                input_shape=tuple(x.shape[1:]),
                sources={"train": ("train", source, rows_train), "val": ("train", source, rows_val),
                         "test": ("test", FeatureDataset(*arrays["test"]), None)})
