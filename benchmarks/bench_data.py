"""Benchmark the data side: an epoch over cached features at COCO scale, feature extraction, image screening.
Prints a table; run with ``python benchmarks/bench_data.py [--quick]``.

Target (issue 3): one epoch over cached features at COCO scale (82,783 × 768, batch 32) in under
5 s on a CPU. Also reported: images per second through the frozen part of the small digits ViT
(CPU) and of ViT-B/16 (CPU, and GPU when there is one; random weights, same compute), and how fast
``verify`` screens COCO-sized JPEGs.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from fairpo.data import ImageFileDataset, ImageTransform, load_dataset
from fairpo.data.cache import FeatureDataset, cached_features
from fairpo.data.images import screen_images

REPEATS = 3


def seconds(fn, repeats: int = 1) -> float:
    """Best of ``repeats`` wall-clock runs: the machine is shared, and the minimum is the least disturbed."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def epoch(loader) -> None:
    for x, y in loader:
        pass


def gathered(features: torch.Tensor, labels: torch.Tensor, batch_size: int):
    """The batches of one shuffled pass, taken as the trainer takes them: a permutation, then one gather each."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    for idx in order.split(batch_size):
        yield features[idx].to(torch.float32), labels[idx]


def bench_cached_epoch(tmp: Path, n: int, d: int, rows: list) -> None:
    g = torch.Generator().manual_seed(0)
    source = FeatureDataset(torch.randn(n, d, generator=g), (torch.rand(n, 80, generator=g) < 0.04).float())
    for dtype in (torch.float32, torch.float16):
        cache: list[torch.Tensor] = []
        t = seconds(lambda: cache.append(cached_features(source, nn.Identity(), key={"bench": d}, cache_dir=tmp,
                                                         batch_size=4096, dtype=dtype)))
        mb = cache[0].numel() * cache[0].element_size() / 2 ** 20
        tag = str(dtype).replace("torch.", "")
        rows.append((f"write cache {n:,} x {d} {tag}", f"{t:.2f} s", f"{mb / t:.0f} MB/s"))
        t = seconds(lambda: epoch(gathered(cache[0], source.labels, 32)), REPEATS)
        rows.append((f"epoch, trainer's gather, {tag} cache, batch 32", f"{t:.2f} s", f"{n / t:,.0f} items/s"))
        if dtype == torch.float32:
            ds = FeatureDataset(cache[0], source.labels)
            loader = DataLoader(ds, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
            t = seconds(lambda: epoch(loader), REPEATS)
            rows.append(("epoch, torch DataLoader per item, batch 32", f"{t:.2f} s", f"{n / t:,.0f} items/s"))


def bench_digits(tmp: Path, rows: list) -> None:
    load_dataset("digits", num_train=20, num_test=10)  # warm-up: imports and scikit-learn's digits
    bundle: list = []
    t = seconds(lambda: bundle.append(load_dataset("digits", seed=0)), REPEATS)
    data = bundle[0]
    rows.append(("build digits (2,400 + 2,000 canvases)", f"{t:.2f} s", ""))
    try:
        from transformers import ViTConfig, ViTModel

        from fairpo.data.backbone import split_backbone
        from fairpo.data.digits import DIGITS_VIT
    except ImportError as err:
        rows.append(("digits ViT extraction", "skipped", f"{err}"))
        return
    torch.manual_seed(0)
    vit = ViTModel(ViTConfig(**DIGITS_VIT), add_pooling_layer=False).eval()
    for blocks in (1, 0):
        frozen, _ = split_backbone(vit, blocks)
        with torch.no_grad():
            frozen(data.train[torch.arange(256)][0])  # warm-up
        run = iter(range(REPEATS))  # a new key each time, so every repeat really extracts
        t = seconds(lambda: cached_features(data.train, frozen, key={"bench": "digits", "blocks": blocks,
                                                                     "repeat": next(run)},
                                            cache_dir=tmp, batch_size=256), REPEATS)
        rows.append((f"extract digits ViT, {4 - blocks} of 4 blocks, CPU", f"{t:.2f} s",
                     f"{len(data.train) / t:,.0f} images/s"))


def bench_vit_b16(rows: list, devices: list[str], quick: bool) -> None:
    from transformers import ViTConfig, ViTModel

    from fairpo.data.backbone import split_backbone

    torch.manual_seed(0)
    vit = ViTModel(ViTConfig(), add_pooling_layer=False).eval()  # ViT-B/16 at 224 px, random weights
    frozen, _ = split_backbone(vit, 1)
    for device in devices:
        batch = 8 if device == "cpu" else 256
        steps = (1 if quick else 4) if device == "cpu" else 10
        dtype = torch.float32 if device == "cpu" else torch.float16
        enc = frozen.to(device, dtype)
        x = torch.randn(batch, 3, 224, 224, device=device, dtype=dtype)
        with torch.no_grad():
            enc(x)  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(steps):
                enc(x)
            if device == "cuda":
                torch.cuda.synchronize()
        t = time.perf_counter() - start
        rows.append((f"ViT-B/16 frozen 11 blocks, {device} {str(dtype)[6:]}, batch {batch}",
                     f"{t / steps:.2f} s/batch", f"{batch * steps / t:,.1f} images/s"))
    if "cuda" not in devices:
        rows.append(("ViT-B/16 on a GPU", "skipped", "no GPU on this machine"))


def bench_images(tmp: Path, rows: list, count: int) -> None:
    rng = np.random.default_rng(0)
    folder = tmp / "jpegs"
    folder.mkdir()
    base = rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)
    paths = []
    for i in range(count):  # COCO-sized photos: 500 × 375, some texture so decoding is not trivial
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(np.roll(base, i, axis=1)).save(path, quality=90)
        paths.append(str(path))
    for mode in ("header", "full"):
        t = seconds(lambda: screen_images(paths, mode), REPEATS)
        rows.append((f"screen {count} JPEGs 500x375, verify={mode}", f"{t:.2f} s", f"{count / t:,.0f} images/s"))
    ds = ImageFileDataset(paths, torch.zeros(count, 80), ImageTransform(224, (0.5,) * 3, (0.5,) * 3))
    # workers run torch single-threaded; in the main process, 2 intra-op threads on a busy 2-core machine
    # made each small resize up to 10x slower
    t = seconds(lambda: epoch(DataLoader(ds, batch_size=32, num_workers=2)))
    rows.append(("decode + resize to 224 + normalise, 2 workers", f"{t:.2f} s", f"{count / t:,.0f} images/s"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, for a smoke check")
    args = parser.parse_args()
    global REPEATS
    REPEATS = 1 if args.quick else 3
    n, d = (8192, 768) if args.quick else (82_783, 768)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bench_cached_epoch(Path(tmp) / "cache", n, d, rows)
        bench_digits(Path(tmp) / "digits-cache", rows)
        bench_vit_b16(rows, devices, args.quick)
        bench_images(Path(tmp), rows, 64 if args.quick else 400)
    print(f"# fairpo data benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'time (best of ' + str(REPEATS) + ')':>16}  rate")
    for what, time_, rate in rows:
        print(f"{what:<{width}}  {time_:>16}  {rate}")


if __name__ == "__main__":
    main()
