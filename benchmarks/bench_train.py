"""Benchmark one training step on cached features: FairPO's extra cost over BCE (issue 4 target: a
FairPO-CPO step at most 1.3× a BCE step at B=32, T=80), and the whole digits grid.

    python benchmarks/bench_train.py            # step timings (seconds)
    python benchmarks/bench_train.py --grid     # also the digits grid (every run of the book), in a scratch store
    python benchmarks/bench_train.py --profile  # where a digits FairPO-CPO step's time goes (torch.profiler)
    python benchmarks/bench_train.py --seed-batching  # three seeds in one vmapped step vs one after another
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
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--seed-batching", action="store_true")
    parser.add_argument("--results-dir", help="keep the grid's store here (default: a scratch folder)")
    parser.add_argument("--steps", action=argparse.BooleanOptionalAction, default=True,
                        help="the one-step table (--no-steps: only the grid or the profile)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (training's default is 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    if args.profile:
        profile_digits_run()
        return
    if args.seed_batching:
        seed_batching()
        return
    if args.steps:
        print("one step on cached features (heads d=768, T=80, |P|=16, B=32), median ms:")
        base = step_time("bce", device)
        for variant in ("bce", "focal", "gdro", "dpo", "simpo", "cpo"):
            t = step_time(variant, device) if variant != "bce" else base
            print(f"  {variant:6} {t * 1e3:7.3f} ms   {t / base:5.2f}x BCE")
    if args.grid:
        grid_time(args.jobs, args.results_dir)


def grid_time(jobs: int, results_dir: str | None = None) -> None:
    """The digits grid from an empty store: wall time, runs per minute, and the speed-up over training the
    same runs one after another (the sum of the runs' own times, which the records keep). The store is a
    scratch folder, or ``results_dir`` (kept; it must hold no run yet)."""
    from fairpo.run import store
    from fairpo.run.grid import run_grid

    with tempfile.TemporaryDirectory() as scratch:
        results = results_dir or scratch
        if list(store.finished_runs(results)):
            raise SystemExit(f"{results} already holds runs; the grid benchmark starts from an empty store")
        start = time.perf_counter()
        records = run_grid("digits", (0, 1, 2), results, jobs=jobs, via="python", quiet=True)
        wall = time.perf_counter() - start
        one_by_one = sum(record["timings"]["seconds"] for _, _, record in store.finished_runs(results))
    print("| grid | wall | runs/min | one run at a time (sum of the runs' own times) | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| digits, {len(records)} runs, {jobs} jobs, empty store | {wall:.0f} s | {60 * len(records) / wall:.1f} | "
          f"{one_by_one:.0f} s | {one_by_one / wall:.2f}x |")
    print("(wall time includes the digits backbone's pretraining and the feature caches; the one-at-a-time "
          "sum does not)")


PARTS = ("fairpo.batch", "fairpo.forward.top", "fairpo.forward.heads", "fairpo.objective", "fairpo.backward",
         "fairpo.clip", "fairpo.optimizer")


def matmul_throughput(rows=544, inner=64, out=128, repeats=300) -> float:
    """GFLOP/s of one float32 matrix product of the digits block's size on this machine (1 thread)."""
    a, w = torch.randn(rows, inner), torch.randn(out, inner)
    seconds = timed(lambda: torch.nn.functional.linear(a, w), repeats, torch.device("cpu"))
    return 2 * rows * inner * out / seconds / 1e9


def profile_digits_run(epochs: int = 3) -> None:
    """Profile ``epochs`` epochs of a digits FairPO-CPO run (its reference trained first, unprofiled):
    the share of each part of a step and of the per-epoch evaluation and checkpoint, the floating-point
    operations of one step, and how long this CPU needs for them at its matrix-product throughput."""
    from torch.profiler import ProfilerActivity, profile, record_function
    from torch.utils.flop_counter import FlopCounterMode

    from fairpo.run import store
    from fairpo.run.train import _Run, train

    with tempfile.TemporaryDirectory() as results:
        config = RunConfig(variant="cpo")
        train(config.reference(), results, quiet=True)
        def epochs_of_a_new_run():
            run = _Run(config, store.run_dir_of(results, config), results, None, False, True)
            run._resume(True)
            run.model = run.net
            start = time.perf_counter()
            for epoch in range(epochs):
                run._train_epoch(epoch)
                with record_function("fairpo.evaluate"):
                    run._validate(epoch)
                with record_function("fairpo.checkpoint"):
                    run._save_resume_point()
            return run, time.perf_counter() - start

        _, plain = epochs_of_a_new_run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run, wall = epochs_of_a_new_run()
        steps = len(run.state["steps"])
        x, y = run.prepared.features["train"][:32].float(), run.prepared.labels["train"][:32]
        with FlopCounterMode(display=False) as flops:
            total, _ = run.objective.step(run.net(x), y, run.ref_train[:32], torch.Generator().manual_seed(0))
            total.backward()
    inside = {}  # time of each part, counting the forward's parts only inside training steps
    for event in prof.events():
        if not event.name.startswith("fairpo."):
            continue
        parent, in_eval = event.cpu_parent, False
        while parent is not None:
            in_eval |= parent.name == "fairpo.evaluate"
            parent = parent.cpu_parent
        if not in_eval:
            inside[event.name] = inside.get(event.name, 0.0) + event.cpu_time_total / 1e6
    print(f"digits FairPO-CPO, {epochs} epochs, {steps} steps of batch 32: {plain:.1f} s "
          f"({1e3 * plain / steps:.1f} ms per step, evaluation included); under the profiler {wall:.1f} s")
    print("| part | ms per step | share of the time |")
    print("| --- | ---: | ---: |")
    for name in PARTS:
        print(f"| {name.removeprefix('fairpo.')} | {1e3 * inside.get(name, 0) / steps:.2f} | "
              f"{100 * inside.get(name, 0) / wall:.0f} % |")
    for name, what in (("fairpo.evaluate", "validation and test splits"), ("fairpo.checkpoint", "resume file")):
        print(f"| {name.removeprefix('fairpo.')} (once per epoch: {what}) | "
              f"{1e3 * inside.get(name, 0) / steps:.2f} | {100 * inside.get(name, 0) / wall:.0f} % |")
    rest = wall - sum(inside.get(n, 0) for n in (*PARTS, "fairpo.evaluate", "fairpo.checkpoint"))
    print(f"| the rest (the loop, the history, the profiler's own cost; ± timing noise) | {1e3 * rest / steps:.2f} | {100 * rest / wall:.0f} % |")
    gflop = flops.get_total_flops() / 1e9
    speed = matmul_throughput()
    print(f"one training step (forward, objective, backward) is {gflop:.3f} GFLOP; this CPU multiplies the "
          f"block's matrices at {speed:.1f} GFLOP/s on one thread, so the arithmetic alone takes "
          f"{1e3 * gflop / speed:.1f} ms of the {1e3 * sum(inside.get(n, 0) for n in PARTS) / steps:.1f} ms a "
          f"step costs")


def seed_batching(seeds: int = 3, batch: int = 32, repeats: int = 100) -> None:
    """The lever issue 12 proposed for the laptop grid, measured before building it: ``seeds`` copies of
    the digits network trained in one step (weights stacked, ``torch.func.vmap`` over them, one fused
    AdamW) against the same copies trained one after another. Only forward, a BCE loss, backward and
    AdamW are timed — the per-seed objective, clipping and early stopping a real batched trainer would
    add are left out, so the batched figure is the most batching could gain. (On a CPU, vmap has no
    batching rule for the attention kernel and loops over the seeds there; its warning is silenced.)"""
    import copy
    import warnings

    from torch.func import functional_call, stack_module_state, vmap

    from fairpo.run.train import prepare

    with tempfile.TemporaryDirectory() as scratch:
        prepared = prepare(RunConfig(), scratch, torch.device("cpu"))
    x_all, y_all = prepared.features["train"], prepared.labels["train"]
    nets = [copy.deepcopy(prepared.network) for _ in range(seeds)]
    params, buffers = stack_module_state(nets)
    skeleton = copy.deepcopy(nets[0]).to("meta")
    together = torch.optim.AdamW(list(params.values()), lr=1e-4, fused=True)
    apart = [torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True) for net in nets]
    draws = torch.Generator().manual_seed(0)
    loss = torch.nn.functional.binary_cross_entropy_with_logits
    warnings.filterwarnings("ignore", message="There is a performance drop")

    def batched():
        idx = torch.randint(0, len(y_all), (seeds, batch), generator=draws)
        logits = vmap(lambda p, b, x: functional_call(skeleton, (p, b), (x,)))(params, buffers, x_all[idx])
        together.zero_grad(set_to_none=True)
        sum(loss(logits[s], y_all[idx[s]]) for s in range(seeds)).backward()
        together.step()

    def one_after_another():
        for net, optimizer in zip(nets, apart):
            idx = torch.randint(0, len(y_all), (batch,), generator=draws)
            optimizer.zero_grad(set_to_none=True)
            loss(net(x_all[idx]), y_all[idx]).backward()
            optimizer.step()

    apart_s = timed(one_after_another, repeats, torch.device("cpu"))
    together_s = timed(batched, repeats, torch.device("cpu"))
    print(f"| {seeds} seeds of the digits network, batch {batch} | ms per step of all seeds | speed-up |")
    print("| --- | ---: | ---: |")
    print(f"| one after another | {1e3 * apart_s:.1f} | 1.00x |")
    print(f"| stacked, one vmapped step | {1e3 * together_s:.1f} | {apart_s / together_s:.2f}x |")


if __name__ == "__main__":
    main()
