"""Benchmark one training step on cached features: FairPO's extra cost over BCE (issue 4 target: a
FairPO-CPO step at most 1.3× a BCE step at B=32, T=80), and the whole digits grid.

    python benchmarks/bench_train.py            # step timings (seconds)
    python benchmarks/bench_train.py --grid     # also the digits grid (every run of the book), in a scratch store
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import timed  # noqa: E402  (one timing helper for every benchmark)

from fairpo.run.config import RunConfig  # noqa: E402
from fairpo.method.objective import Objective  # noqa: E402
from fairpo.method.heads import PerLabelHeads  # noqa: E402


def step_time(variant: str, device: torch.device, B=32, d=768, T=80, P=16, repeats=200) -> float:
    torch.manual_seed(0)
    heads = PerLabelHeads(d, T).to(device)
    optimizer = torch.optim.AdamW(heads.parameters(), lr=1e-4)
    objective = Objective(RunConfig(variant=variant), list(range(T - P, T)), T, device=device)
    x = torch.randn(B, d, device=device)
    y = (torch.rand(B, T, device=device) < 0.1).float()
    ref = torch.randn(B, T, device=device)
    draws = torch.Generator().manual_seed(0)

    def step():
        total, _ = objective.step(heads(x), y, ref, draws)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(heads.parameters(), 1.0)
        optimizer.step()

    return timed(step, repeats, device)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--grid", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (training's default is 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    print("one step on cached features (heads d=768, T=80, |P|=16, B=32), median ms:")
    base = step_time("bce", device)
    for variant in ("bce", "focal", "gdro", "dpo", "simpo", "cpo"):
        t = step_time(variant, device) if variant != "bce" else base
        print(f"  {variant:6} {t * 1e3:7.3f} ms   {t / base:5.2f}x BCE")
    if args.grid:
        grid_time(args.jobs)


def grid_time(jobs: int) -> None:
    """The digits grid from an empty store: wall time, runs per minute, and the speed-up over training the
    same runs one after another (the sum of the runs' own times, which the records keep)."""
    from fairpo.run.grid import run_grid

    with tempfile.TemporaryDirectory() as results:
        start = time.perf_counter()
        records = run_grid("digits", (0, 1, 2), results, jobs=jobs, via="python", quiet=True)
        wall = time.perf_counter() - start
        from fairpo.run import store

        one_by_one = sum(record["timings"]["seconds"] for _, _, record in store.finished_runs(results))
    print(f"| digits grid, {len(records)} runs, {jobs} jobs, empty store | {wall:.0f} s wall | "
          f"{60 * len(records) / wall:.1f} runs/min | {one_by_one:.0f} s one run at a time "
          f"({one_by_one / wall:.2f}x) |")
    print("(wall time includes the digits backbone's pretraining and the feature caches; the one-at-a-time "
          "sum does not)")

if __name__ == "__main__":
    main()
