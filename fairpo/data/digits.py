"""The embedded ``digits`` data set, and the small ViT pretrained on its handwriting.

``digits`` pastes scikit-learn's bundled 8 × 8 handwritten digits onto 32 × 32 canvases, one to
``max_digits`` per canvas, at long-tailed rates (:data:`DIGIT_RATES`), so everything runs offline on a
laptop. The handwritten samples are first divided, per digit, into disjoint train/validation/test
pools, and each split is painted only from its own pool.

Its backbone is a small ViT (:data:`DIGITS_VIT`), "pretrained" once on a different task — 10-way
classification of single-digit canvases from the training pool only (:func:`digit_pretraining_set`)
— then frozen, so the paper's "pretrained, frozen backbone plus heads" holds offline.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from fairpo.data.cache import digest
from fairpo.data.checks import check_fraction
from fairpo.data.transform import ImageTransform
from fairpo.rng import generator, private_global_rng

DIGIT_RATES = (0.22, 0.60, 0.30, 0.55, 0.18, 0.35, 0.14, 0.10, 0.03, 0.045)
"""Chance that each digit 0–9 is on a canvas, before conditioning on 1…max_digits digits.
8 and 9 are rare; their nearest look-alikes in the handwritten set (1 for 8, 3 for 9, by class-mean
distance) are the two most frequent, so the rare digits meet their confusers all the time."""
DIGITS_CANVAS, DIGITS_GLYPH, DIGITS_CELL = 32, 8, 16  # 2 × 2 cells of 16 px, one 8 px glyph per cell
DIGITS_MEAN, DIGITS_STD = 0.046, 0.184  # of default training canvases in [0, 1] (seeds 0–2 agree to 0.001)
DIGITS_OPTIONS = dict(num_train=2400, num_test=2000, max_digits=4, test_pool_fraction=0.3, image_size=32,
                      channels=1, mean=None, std=None)
"""The options of ``digits`` and their defaults."""

DIGITS_BACKBONE = "digits-vit"
DIGITS_VIT = dict(image_size=32, patch_size=8, num_channels=1, hidden_size=64, num_hidden_layers=4,
                  num_attention_heads=4, intermediate_size=128)
"""A ViT small enough to pretrain and run on a 2-core CPU in seconds — 16 patches of 8×8 px, width 64."""
DIGITS_PRETRAIN = dict(epochs=6, batch_size=128, lr=2e-3, num_images=4000, seed=0, threads=1, streams="rng-v2")
"""The pretraining recipe; ``streams`` names the version of its random streams (``fairpo.rng``), so a
change of stream gives the backbone a new id and a new cache."""


class DigitsDataset(Dataset):
    """A split of ``digits``: canvases (N, 1, 32, 32) in [0, 1], labels (N, 10) 0/1; yields
    ``(transform(images[i]), labels[i])``.

    ``placements`` (K, 5) int64 records every pasted glyph: canvas index, digit, index of the
    handwritten sample in ``sklearn.datasets.load_digits()``, top row, left column. The transformed
    images are computed once for the whole split when they fit in 512 MiB; the dataset then also takes
    a 1-d index tensor and returns a whole batch.
    """

    def __init__(self, images: Tensor, labels: Tensor, transform: ImageTransform, placements: np.ndarray) -> None:
        self.images, self.labels, self.transform, self.placements = images, labels.float(), transform, placements
        channels = transform.channels or images.shape[1]
        small = len(images) * channels * transform.image_size ** 2 * 4 <= 512 * 2 ** 20
        self._ready = transform(images) if small else None

    batch_indexable = property(lambda self: self._ready is not None)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> tuple[Tensor, Tensor]:
        if self._ready is not None:
            return self._ready[index], self.labels[index]
        return self.transform(self.images[index]), self.labels[index]

    def fingerprint(self) -> str:
        """A digest of the canvases, labels and transform, for the feature cache's key."""
        return digest(self.images.numpy().tobytes(), self.labels.numpy().tobytes(),
                      json.dumps(self.transform.describe(), sort_keys=True).encode())


def digits_splits(seed: int, val_fraction: float, opts: dict) -> dict[str, Any]:
    """The three splits of ``digits`` for options ``opts`` (:data:`DIGITS_OPTIONS` filled in); fills in
    ``opts``'s mean, std and label rates."""
    num_train, num_test, max_digits = int(opts["num_train"]), int(opts["num_test"]), int(opts["max_digits"])
    if not 1 <= max_digits <= 4:
        raise ValueError(f"max_digits must be 1…4 (a 2 × 2 grid of cells), got {max_digits}")
    if num_test < 1:
        raise ValueError(f"num_test must be at least 1, got {num_test}")
    check_fraction("test_pool_fraction", opts["test_pool_fraction"])
    channels = int(opts["channels"])
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    mean = tuple(opts["mean"] or (DIGITS_MEAN,) * channels)
    std = tuple(opts["std"] or (DIGITS_STD,) * channels)
    glyphs, glyph_digits = _handwriting()
    n_val = math.floor(val_fraction * num_train + 0.5)
    if n_val < 1 or num_train - n_val < 1:
        raise ValueError(f"digits: val_fraction={val_fraction} of num_train={num_train} leaves a train split of "
                         f"{num_train - n_val} and a validation split of {n_val}; each needs at least 1")
    # independent streams: changing one split's size leaves the others' canvases unchanged
    pools_rng, *split_rngs = _streams(seed)
    pools = _digit_pools(glyph_digits, val_fraction, opts["test_pool_fraction"], pools_rng)
    transform = ImageTransform(opts["image_size"], mean, std, channels=channels)
    out = {}
    for split, n, rng in zip(("train", "val", "test"), (num_train - n_val, n_val, num_test), split_rngs):
        images, labels, placements = _digit_canvases(glyphs, glyph_digits, pools[split], n, max_digits, rng)
        out[split] = DigitsDataset(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).float(),
                                   transform, placements)
    size = int(opts["image_size"])
    opts.update(mean=list(mean), std=list(std), label_rates=list(DIGIT_RATES))
    return dict(**out, label_names=[str(d) for d in range(10)], kind="images", input_shape=(channels, size, size))


def digit_pretraining_set(n: int = 4000, *, seed: int = 0, val_fraction: float = 0.1,
                          test_pool_fraction: float = 0.3) -> tuple[Tensor, Tensor]:
    """Single-digit canvases for pretraining the digits backbone on a task other than the benchmark's.

    Returns normalised images (n, 1, 32, 32) and their digits (n,) — every digit equally often, one
    glyph at a random patch-aligned place — drawn only from the *training* pool of handwritten samples
    that :func:`fairpo.data.load.load_dataset` would use with the same ``seed`` and fractions, so no
    validation or test handwriting is ever seen by the backbone.
    """
    glyphs, glyph_digits = _handwriting()
    pools_rng = _streams(seed)[0]
    pool = _digit_pools(glyph_digits, val_fraction, test_pool_fraction, pools_rng)["train"]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    digit = np.arange(n) % 10
    source = _sample_glyphs(digit, pool, glyph_digits, rng)
    slots = DIGITS_CANVAS // DIGITS_GLYPH
    top, left = (rng.integers(0, slots, size=(2, n)) * DIGITS_GLYPH)
    images = (_paste(glyphs[source], n, np.arange(n), top, left) - DIGITS_MEAN) / DIGITS_STD
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(digit)


def _handwriting() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits: glyphs (1797, 8, 8) float32 in [0, 1] and their digits (1797,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target


def _streams(seed: int) -> list[np.random.Generator]:
    """The four independent streams of a seed: the handwriting pools', then the train, validation and
    test canvases'."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]


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
    (a multiple of the glyph size) and a random handwritten sample of that digit from ``pool``. Cells
    never overlap, so every pasted glyph is intact.
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
    # so a small ViT pretrained for seconds on a CPU sees whole digits
    slots = DIGITS_CELL // DIGITS_GLYPH
    top = (cell // 2) * DIGITS_CELL + rng.integers(0, slots, size=len(cell)) * DIGITS_GLYPH
    left = (cell % 2) * DIGITS_CELL + rng.integers(0, slots, size=len(cell)) * DIGITS_GLYPH
    source = _sample_glyphs(digit, pool, glyph_digits, rng)
    images = _paste(glyphs[source], n, canvas_of, top, left)
    placements = np.stack([canvas_of, digit, source, top, left], axis=1).astype(np.int64)
    return images, labels, placements


def _sample_glyphs(digit: np.ndarray, pool: np.ndarray, glyph_digits: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """For each entry of ``digit`` (K,), a random handwritten sample of that digit from ``pool``: (K,)
    indices into the handwriting, drawn digit by digit, 0 to 9."""
    source = np.empty(len(digit), dtype=np.int64)
    for d in range(10):
        members = pool[glyph_digits[pool] == d]
        source[digit == d] = members[rng.integers(0, len(members), size=int((digit == d).sum()))]
    return source


def _paste(glyphs: np.ndarray, n: int, canvas: np.ndarray, top: np.ndarray, left: np.ndarray) -> np.ndarray:
    """n blank canvases (n, 32, 32) float32 with glyph k (K, 8, 8) pasted on ``canvas[k]`` at
    (``top[k]``, ``left[k]``)."""
    images = np.zeros((n, DIGITS_CANVAS, DIGITS_CANVAS), dtype=np.float32)
    span = np.arange(DIGITS_GLYPH)
    rows, cols = (top[:, None] + span)[:, :, None], (left[:, None] + span)[:, None, :]
    images[canvas[:, None, None], rows, cols] = glyphs
    return images


# ---------------------------------------------------------------------------------------------
# the digits backbone


def digits_backbone_id() -> str:
    """Name of the pretrained digits backbone, hashed from its architecture and pretraining recipe, so
    caches built on it are rebuilt whenever either changes."""
    key = hashlib.sha256(json.dumps([DIGITS_VIT, DIGITS_PRETRAIN], sort_keys=True).encode()).hexdigest()[:16]
    return f"{DIGITS_BACKBONE}-{key}"


def digits_backbone(cache_dir: str | os.PathLike, *, quiet: bool = True) -> nn.Module:
    """The small digits ViT, pretrained on single-digit classification once and cached on disk."""
    from safetensors.torch import load_file, save_file
    from transformers import ViTConfig, ViTModel

    path = Path(cache_dir) / "backbones" / f"{digits_backbone_id()}.safetensors"
    # transformers initialises modules from torch's global generator: give it a private, seeded one,
    # so building (or not building) the backbone never shifts any other stream of the process
    with private_global_rng("digits-backbone", DIGITS_PRETRAIN["seed"]):
        vit = ViTModel(ViTConfig(**DIGITS_VIT), add_pooling_layer=False)
        if path.exists():
            vit.load_state_dict(load_file(path))
            return vit.eval()
        # floats depend on the thread count, so pin it: the same backbone whoever asks first
        threads = torch.get_num_threads()
        torch.set_num_threads(DIGITS_PRETRAIN["threads"])
        try:
            _pretrain_on_single_digits(vit, quiet=quiet)
        finally:
            torch.set_num_threads(threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, tmp)
    os.replace(tmp, path)
    return vit.eval()


def _pretrain_on_single_digits(vit: nn.Module, *, quiet: bool) -> None:
    """10-way classification of one-digit canvases, every digit equally often, drawn from the training
    pool of handwriting only (:func:`digit_pretraining_set`): a task other than the benchmark's."""
    cfg = DIGITS_PRETRAIN
    images, digits = digit_pretraining_set(cfg["num_images"], seed=cfg["seed"])
    classifier = nn.Linear(vit.config.hidden_size, 10)
    params = list(vit.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=0.05)
    batches = -(-len(images) // cfg["batch_size"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg["lr"], total_steps=cfg["epochs"] * batches,
                                                   pct_start=0.1)
    order_gen = generator("digits-backbone", cfg["seed"], "order")
    vit.train()
    for epoch in range(cfg["epochs"]):
        for idx in torch.randperm(len(images), generator=order_gen).split(cfg["batch_size"]):
            feature = vit(pixel_values=images[idx]).last_hidden_state[:, 0]
            loss = nn.functional.cross_entropy(classifier(feature), digits[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if not quiet:
            print(f"digits backbone pretraining: epoch {epoch + 1}/{cfg['epochs']}, loss {loss.item():.3f}")
    vit.eval()
