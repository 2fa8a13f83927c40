"""``fairpo`` command line: ``fairpo reproduce`` runs the grid of Tables 1–4, ``fairpo train`` one run.

Every field of :class:`fairpo.run.config.RunConfig` is an option of both commands (``--field-name``), with
the field's default and, where the field has a fixed set of values, its choices; the grid forwards all
of them to every run. Paths are relative to the folder the command runs in. A user error (a bad value,
a missing data folder, a stale or damaged run) is one line on stderr and exit code 2; ``--debug`` shows
the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing

from fairpo.run import config as cfg
from fairpo.run.config import RunConfig

CHOICES = {"dataset": cfg.DATASETS, "variant": cfg.VARIANTS, "ablation": cfg.ABLATIONS, "device": cfg.DEVICES,
           "init": cfg.INITS, "selection": cfg.SELECTIONS, "head_activation": cfg.HEAD_ACTIVATIONS}
GRID_FIXED = ("variant", "ablation", "init", "seed")
"""Fields the grid sets itself (every method, ablation and seed), so ``reproduce`` does not take them."""


def _privileged(text: str) -> tuple:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    return tuple(int(x) if x.lstrip("-").isdigit() else x for x in items)


def _option_type(field: dataclasses.Field):
    hint = typing.get_type_hints(RunConfig)[field.name]
    if typing.get_origin(hint) is dict:
        return None  # data-set options (extra) are set from Python, not the command line
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if field.name == "privileged":
        return _privileged
    for kind in (int, float, str):
        if kind in args:
            return kind
    return None


def _add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    group = parser.add_argument_group("run configuration (fairpo.run.config.RunConfig)")
    for field in dataclasses.fields(RunConfig):
        kind = _option_type(field)
        if field.name in skip or kind is None:
            continue
        default = field.default
        shown = "the data set's profile" if default is None and field.name in ("epochs", "lr") else default
        group.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, type=kind, default=default,
                           choices=CHOICES.get(field.name), metavar=None if field.name in CHOICES else "X",
                           help=f"default: {shown}" + (" (comma-separated names or indices)"
                                                       if field.name == "privileged" else ""))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fairpo", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="train every run of Tables 1-4 that the run store lacks")
    rep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    rep.add_argument("--jobs", type=int, default=1, help="runs trained in parallel (one thread each)")
    rep.add_argument("--results-dir", default="results")
    rep.add_argument("--via", choices=("papermill", "python"), default="papermill",
                     help="papermill keeps each run's executed train notebook beside its record")
    rep.add_argument("--force", action="store_true",
                     help="retrain the runs whose folder is damaged or holds another configuration")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.add_argument("--executor", choices=("none", "local", "slurm"), default="none",
                     help="none: this machine (--jobs); slurm: one submitit job per run, references first; "
                          "local: submitit's local executor, for testing")
    rep.add_argument("--slurm-partition", default=None, help="slurm: the partition to submit to")
    rep.add_argument("--gpus-per-job", type=int, default=None, help="slurm: GPUs for each run (e.g. 1)")
    rep.add_argument("--job-minutes", type=int, default=240, help="slurm/local: each job's time limit")
    rep.add_argument("--array-parallelism", type=int, default=None, help="slurm: jobs of a wave at once")
    _add_config_options(rep, skip=GRID_FIXED)

    one = sub.add_parser("train", help="train one run (what notebooks/train.ipynb calls)")
    one.add_argument("--results-dir", default="results")
    one.add_argument("--force", action="store_true", help="retrain even if the run store holds the run")
    one.add_argument("--force-reference", action="store_true", help="FairPO: retrain its BCE reference too")
    one.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_options(one)

    ex = sub.add_parser("example-features", help="write a small long-tailed features data set to a folder, "
                                                 "to try the grid on data of your own layout")
    ex.add_argument("folder", help="where train.npz and test.npz go (created if missing)")
    ex.add_argument("--seed", type=int, default=0)
    return parser


def _config_fields(args: argparse.Namespace) -> dict:
    names = {f.name for f in dataclasses.fields(RunConfig)}
    return {k: v for k, v in vars(args).items() if k in names}


def _run(args: argparse.Namespace) -> int:
    if args.command == "example-features":
        from fairpo.data.features import write_example

        folder = write_example(args.folder, seed=args.seed)
        print(f"wrote {folder}/train.npz and {folder}/test.npz (12 labels, 24 features; "
              f"fairpo reproduce --dataset features --data-root {folder})")
        return 0
    fields = _config_fields(args)
    if args.command == "reproduce":
        from fairpo.run.grid import run_grid

        start = time.perf_counter()
        dataset = fields.pop("dataset")
        cluster = dict(timeout_min=args.job_minutes, slurm_partition=args.slurm_partition,
                       gpus_per_node=args.gpus_per_job, slurm_array_parallelism=args.array_parallelism)
        records = run_grid(dataset, args.seeds, args.results_dir, jobs=args.jobs, via=args.via, quiet=args.quiet,
                           force=args.force, executor=args.executor, cluster=cluster, **fields)
        print(f"{len(records)} finished runs for {dataset} in {args.results_dir}/{dataset}/ "
              f"({time.perf_counter() - start:.0f} s)")
        return 0
    from fairpo.run.train import train

    config = RunConfig(**fields)
    record = train(config, args.results_dir, force=args.force, force_reference=args.force_reference,
                   quiet=args.quiet)
    print(f"{record['run_dir']}: test mAP privileged {record['test']['privileged']['mAP']:.4f}, "
          f"non-privileged {record['test']['non_privileged']['mAP']:.4f} (stopped by {record['stopped']})")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        if args.debug:
            raise
        print(f"fairpo: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
