"""The photo data sets from the user's own copies: MS-COCO 2014 and NUS-WIDE.

Each loader reads its copy's annotations into paths and 0/1 labels, screens every image once (see
:func:`screen_images`), carves the validation split from the training split and returns the three
splits as :class:`ImageFileDataset`. The dispatcher is :func:`fairpo.data.load.load_dataset`.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from fairpo.data.cache import digest
from fairpo.data.checks import carve, require
from fairpo.data.transform import ImageTransform

logger = logging.getLogger(__name__)

VIT_MEAN = (0.5, 0.5, 0.5)
VIT_STD = (0.5, 0.5, 0.5)
"""google/vit-base-patch16-224's own normalisation (its preprocessor config), our default backbone."""

COCO_LAYOUT = """<root>/
  annotations/instances_train2014.json
  annotations/instances_val2014.json     (val2014 is the test split)
  train2014/COCO_train2014_000000000009.jpg …
  val2014/COCO_val2014_000000000042.jpg …"""
"""The folder layout a COCO 2014 copy needs; every error about a missing piece shows it."""
NUSWIDE_LAYOUT = """<root>/
  Concepts81.txt  (or ConceptsList/Concepts81.txt)   81 concept names, one a line
  ImageList/TrainImagelist.txt, ImageList/TestImagelist.txt   one image a line, e.g. actor\\0001_2124494179.jpg
  Groundtruth/TrainTestLabels/Labels_<concept>_Train.txt, …_Test.txt   one 0/1 a line, aligned with the lists
  Flickr/actor/0001_2124494179.jpg …   (the option image_dir names this folder)"""
"""The folder layout a NUS-WIDE copy needs; every error about a missing piece shows it."""

VERIFY_MODES = ("exists", "header", "full")
"""The values of the option ``verify``, from the cheapest screening to the most thorough."""
# COCO ships as whole archives, so a cheap existence check is enough; NUS-WIDE copies are often partial
COCO_OPTIONS = dict(image_size=224, mean=VIT_MEAN, std=VIT_STD, verify="exists", drop_empty=False)
"""The options of ``coco`` and their defaults."""
NUSWIDE_OPTIONS = dict(image_size=224, mean=VIT_MEAN, std=VIT_STD, verify="header", image_dir="Flickr")
"""The options of ``nuswide`` and their defaults."""


class ImageFileDataset(Dataset):
    """Images on disk: paths (N,), labels (N, T) 0/1; yields ``(transform(RGB image), labels[i])``."""

    def __init__(self, paths: Sequence[str], labels: Tensor, transform: ImageTransform) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} label rows")
        self.paths, self.labels, self.transform = list(paths), labels.float(), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        with Image.open(self.paths[index]) as image:
            x = self.transform(image.convert("RGB"))
        return x, self.labels[index]

    def fingerprint(self) -> str:
        """A digest of the paths, labels and transform, for the feature cache's key."""
        return digest("\n".join(self.paths).encode(), self.labels.numpy().tobytes(),
                      json.dumps(self.transform.describe(), sort_keys=True).encode())


def coco_splits(root: Path, seed: int, val_fraction: float, opts: dict) -> dict[str, Any]:
    """The three splits of the COCO 2014 copy at ``root`` (val2014 is the test split), laid out as
    :data:`COCO_LAYOUT`; labels follow category-id order."""
    require(root, "coco", COCO_LAYOUT)
    splits, names = {}, None
    for split, folder in (("train", "train2014"), ("test", "val2014")):
        path = require(root / "annotations" / f"instances_{folder}.json", "coco", COCO_LAYOUT)
        require(root / folder, "coco", COCO_LAYOUT)
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
    return _image_splits("coco", seed, val_fraction, opts, splits["train"], splits["test"], names)


def nuswide_splits(root: Path, seed: int, val_fraction: float, opts: dict) -> dict[str, Any]:
    """The three splits of the NUS-WIDE copy at ``root``, laid out as :data:`NUSWIDE_LAYOUT`; labels
    follow the order of ``Concepts81.txt``."""
    require(root, "nuswide", NUSWIDE_LAYOUT)
    concepts = next((p for p in (root / "Concepts81.txt", root / "ConceptsList" / "Concepts81.txt") if p.exists()),
                    None)
    if concepts is None:
        raise FileNotFoundError(f"nuswide: no Concepts81.txt in {root} or {root / 'ConceptsList'}; expected layout:\n"
                                f"{NUSWIDE_LAYOUT}")
    names = [line.strip() for line in concepts.read_text().splitlines() if line.strip()]
    image_dir = require(root / opts["image_dir"], "nuswide", NUSWIDE_LAYOUT)
    splits = {}
    for split, tag in (("train", "Train"), ("test", "Test")):
        listing = require(root / "ImageList" / f"{tag}Imagelist.txt", "nuswide", NUSWIDE_LAYOUT)
        relative = [line.strip().replace("\\", "/") for line in listing.read_text().splitlines() if line.strip()]
        # the all-images list writes C:\ImageData\Flickr\actor\…: keep what follows "Flickr/"
        paths = [str(image_dir / r.rsplit("Flickr/", 1)[-1].lstrip("/")) for r in relative]
        columns = []
        for concept in names:
            path = require(root / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_{tag}.txt", "nuswide",
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
    return _image_splits("nuswide", seed, val_fraction, opts, splits["train"], splits["test"], names)


def _image_splits(name: str, seed: int, val_fraction: float, opts: dict, train: tuple[list[str], np.ndarray],
                  test: tuple[list[str], np.ndarray], label_names: list[str]) -> dict[str, Any]:
    """Screen images, carve validation from train, build the three image datasets."""
    if opts["verify"] not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, got {opts['verify']!r}")
    size, mean, std = int(opts["image_size"]), tuple(opts["mean"]), tuple(opts["std"])
    if size < 1 or len(mean) != 3 or len(std) != 3:
        raise ValueError(f"image_size must be positive and mean/std have 3 values, got {size}, {mean}, {std}")
    skipped, kept = {}, {}
    for split, (paths, labels) in (("train", train), ("test", test)):
        status = screen_images(paths, opts["verify"])
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
    transform = ImageTransform(size, mean, std)
    paths, labels = kept["train"]
    rows_train, rows_val = carve(len(paths), val_fraction, np.random.default_rng(seed), f"{name} train")
    return dict(train=ImageFileDataset([paths[i] for i in rows_train], labels[rows_train], transform),
                val=ImageFileDataset([paths[i] for i in rows_val], labels[rows_val], transform),
                test=ImageFileDataset(*kept["test"], transform), label_names=label_names, kind="images",
                input_shape=(3, size, size), skipped=skipped)


def screen_images(paths: list[str], mode: str) -> np.ndarray:
    """(N,) int8 status of each image: 0 readable, 1 missing, 2 unreadable (empty, not an image, a
    truncated JPEG, …), as ``mode`` (one of :data:`VERIFY_MODES`) checks it; on threads (I/O bound)."""
    if len(paths) < 64:
        return np.array([_image_status(p, mode) for p in paths], dtype=np.int8)
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        return np.fromiter(pool.map(_image_status, paths, [mode] * len(paths)), dtype=np.int8, count=len(paths))


def _image_status(path: str, mode: str) -> int:
    """The status of one image; see :func:`screen_images`."""
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
