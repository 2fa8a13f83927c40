"""Benchmark the paper's setup on one GPU with COCO-shaped synthetic data: nothing downloads.

    python benchmarks/bench_gpu.py            # on a GPU: a ViT-B/16 built from its config (random weights)
    python benchmarks/bench_gpu.py --tiny     # the same code at toy sizes on a CPU (checks the script)

Prints one table: feature extraction in images/s; a FairPO-CPO training step (the trainer's step: the
last ViT block and 80 per-label heads on cached 197×768 tokens, bfloat16 autocast, fused AdamW) at batch
32 and at the largest batch that fits; an epoch of COCO's training split with the float16 cache on the
host and on the GPU (steps measured, epoch extrapolated to COCO's 2,329 steps, plus scoring the
validation and test splits); host synchronisations per step; peak GPU memory; and the GPU-hours the
paper's whole grid (Tables 1–4: 12 configurations × 3 seeds on COCO and on NUS-WIDE) would take at the
full 25-epoch budget, an upper bound since early stopping ends most runs sooner. Issue 12's goal: that
grid in at most 2 GPU-hours after extraction on one H100-class GPU.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import timed  # noqa: E402

from fairpo.data.backbone import split_backbone  # noqa: E402
from fairpo.method.heads import Network, PerLabelHeads  # noqa: E402
from fairpo.method.objective import Objective  # noqa: E402
from fairpo.rng import private_global_rng  # noqa: E402
from fairpo.run.config import RunConfig  # noqa: E402

# (training, validation, test) images: COCO 2014 with the trainer's 10 % validation carve-out of train2014,
# NUS-WIDE's official 161,789 / 107,859 split likewise
SPLITS = {"COCO 2014": (74_505, 8_278, 40_504), "NUS-WIDE": (145_610, 16_179, 107_859)}
GRID_RUNS = 12 * 3  # Tables 1–4: 6 methods + 6 ablations of CPO, 3 seeds
EPOCHS = 25  # the paper's budget


def vit(tiny: bool):
    from transformers import ViTConfig, ViTModel

    config = (ViTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128) if tiny else ViTConfig())  # ViTConfig() is ViT-B/16 at 224 px
    with private_global_rng("bench-gpu", 0):  # random weights from a private stream
        return ViTModel(config, add_pooling_layer=False), config


def autocast(device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)


def extraction_rate(encoder, config, device, batch: int, batches: int) -> float:
    images = torch.randn(batch, 3, config.image_size, config.image_size, device=device)
    with torch.no_grad(), autocast(device):
        seconds = timed(lambda: encoder(images), batches, device)
    return batch / seconds


class Step:
    """The trainer's step on batches drawn from a cache held on ``cache_device``."""

    def __init__(self, network, cache, labels, device, num_labels: int) -> None:
        self.network, self.cache, self.labels, self.device = network, cache, labels, device
        self.reference = torch.zeros(len(labels), num_labels, device=device)  # the reference's logits, precomputed
        self.params = [p for p in network.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-4, fused=device.type == "cuda")
        self.objective = Objective(RunConfig(variant="cpo"), list(range(num_labels - num_labels // 5, num_labels)),
                                   num_labels, device=device)
        self.draws = torch.Generator().manual_seed(0)
        self.order = torch.Generator().manual_seed(1)

    def __call__(self, batch: int) -> None:
        idx = torch.randint(len(self.cache), (batch,), generator=self.order)
        x = self.cache[idx.to(self.cache.device)]
        y = self.labels[idx.to(self.labels.device)]
        if x.device.type == "cpu" and self.device.type == "cuda":
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(self.device, torch.float32, non_blocking=True), y.to(self.device, non_blocking=True)
        with autocast(self.device):
            logits = self.network(x)
        total, _ = self.objective.step(logits.float(), y, self.reference[idx.to(self.device)], self.draws)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()


def largest_batch(try_batch, start: int = 32, limit: int = 4096) -> int:
    """The largest power-of-two multiple of ``start`` (up to ``limit``) for which ``try_batch(b)`` does not
    run out of memory."""
    best, batch = None, start
    while batch <= limit:
        try:
            try_batch(batch)
        except torch.OutOfMemoryError:
            break
        best, batch = batch, batch * 2
    if best is None:
        raise RuntimeError(f"not even batch {start} fits in this GPU's memory")
    return best


def syncs_per_step(step, device, steps: int = 10) -> float | None:
    """Host synchronisations per training step, counted by CUDA's sync debug mode (None on a CPU)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                step(32)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes, for a CPU")
    parser.add_argument("--cache-images", type=int, default=8192,
                        help="synthetic cached images per location (the epoch is extrapolated from steps)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.tiny:
        parser.error("no GPU visible: run on a GPU, or pass --tiny to check the script on a CPU")
    num_labels, n_cache = 80, (256 if args.tiny else args.cache_images)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {name}; torch {torch.__version__}; {'tiny sizes' if args.tiny else 'ViT-B/16, 224 px, 80 labels'}")

    model, config = vit(args.tiny)
    encoder, top = split_backbone(model, 1)
    encoder = encoder.to(device)
    rate = extraction_rate(encoder, config, device, batch=32 if args.tiny else 256, batches=5 if args.tiny else 20)
    tokens = (config.image_size // config.patch_size) ** 2 + 1

    gen = torch.Generator().manual_seed(2)
    host = torch.randn(n_cache, tokens, config.hidden_size, generator=gen).to(torch.float16)
    labels = (torch.rand(n_cache, num_labels, generator=gen) < 0.05).float()
    network = Network(top, PerLabelHeads(config.hidden_size, num_labels, generator=gen)).to(device)
    on_device = Step(network, host.to(device), labels.to(device), device, num_labels)
    on_host = Step(network, host, labels, device, num_labels)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_device = timed(lambda: on_device(32), args.repeats, device)
    step_host = timed(lambda: on_host(32), args.repeats, device)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    big = largest_batch(on_device, limit=128 if args.tiny else 4096)
    step_big = timed(lambda: on_device(big), max(3, args.repeats // 3), device)
    syncs = syncs_per_step(on_device, device)
    with torch.no_grad(), autocast(device):  # scoring: forward only, batch 1024 as the trainer's predict
        chunk = on_device.cache[:min(1024, n_cache)].float()
        score = timed(lambda: network(chunk), max(3, args.repeats // 3), device) / len(chunk)

    rows = [("feature extraction", f"{rate:,.0f} images/s"),
            ("training step, batch 32, cache on the GPU", f"{1e3 * step_device:.2f} ms"),
            ("training step, batch 32, cache on the host", f"{1e3 * step_host:.2f} ms"),
            (f"training step, batch {big} (largest that fits, up to 4096)", f"{1e3 * step_big:.2f} ms"),
            ("host synchronisations per step", "n/a on a CPU" if syncs is None else f"{syncs:.1f}"),
            ("peak GPU memory, training at batch 32", "n/a on a CPU" if peak is None else f"{peak:.1f} GiB")]
    hours = 0.0
    for data, (n_train, n_val, n_test) in SPLITS.items():
        steps = math.ceil(n_train / 32)
        scoring = (n_val + n_test) * score
        rows.append((f"{data}: extraction of {n_train + n_val + n_test:,} images", f"{(n_train + n_val + n_test) / rate / 60:.1f} min"))
        rows.append((f"{data}: epoch ({steps:,} steps + scoring), cache on the GPU / on the host",
                     f"{steps * step_device + scoring:.0f} s / {steps * step_host + scoring:.0f} s"))
        hours += GRID_RUNS * EPOCHS * (steps * step_device + scoring) / 3600
    rows.append((f"paper's grid, {GRID_RUNS} runs × 2 data sets × {EPOCHS} epochs (upper bound), cache on the GPU",
                 f"{hours:.1f} GPU-hours"))
    print("| measure | value |")
    print("| --- | ---: |")
    for label, value in rows:
        print(f"| {label} | {value} |")
    if args.tiny:
        print("(tiny sizes: the figures only show that the script runs, not what a GPU does)")


if __name__ == "__main__":
    main()
