"""``fairpo`` command line: ``fairpo reproduce`` runs the grid of Tables 1–4, ``fairpo train`` one run."""

from __future__ import annotations

import argparse
import sys
import time

from fairpo.config import ABLATIONS, DATASETS, INITS, SELECTIONS, VARIANTS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fairpo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="train every run of Tables 1-4 that the run store lacks")
    rep.add_argument("--dataset", default="digits", choices=DATASETS)
    rep.add_argument("--data-root", default=None, help="your copy of coco / nuswide / your features")
    rep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    rep.add_argument("--jobs", type=int, default=1, help="runs trained in parallel (one thread each)")
    rep.add_argument("--results-dir", default="results")
    rep.add_argument("--via", choices=("papermill", "python"), default="papermill",
                     help="papermill keeps each run's executed train notebook beside its record")
    rep.add_argument("--epochs", type=int, default=None)

    one = sub.add_parser("train", help="train one run (what notebooks/train.ipynb calls)")
    one.add_argument("--dataset", default="digits", choices=DATASETS)
    one.add_argument("--data-root", default=None)
    one.add_argument("--variant", default="cpo", choices=VARIANTS)
    one.add_argument("--ablation", default="none", choices=ABLATIONS)
    one.add_argument("--init", default="fresh", choices=INITS,
                     help="FairPO only: start from fresh heads (released code) or a copy of the reference")
    one.add_argument("--selection", default="overall", choices=SELECTIONS,
                     help="validation mAP that selects the best epoch: overall or privileged")
    one.add_argument("--seed", type=int, default=0)
    one.add_argument("--epochs", type=int, default=None)
    one.add_argument("--results-dir", default="results")
    one.add_argument("--force", action="store_true")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    extra = {} if args.epochs is None else {"epochs": args.epochs}
    if args.command == "reproduce":
        from fairpo.reproduce import run_grid

        start = time.perf_counter()
        records = run_grid(args.dataset, args.seeds, args.results_dir, jobs=args.jobs, via=args.via,
                           data_root=args.data_root, **extra)
        print(f"{len(records)} finished runs for {args.dataset} in {args.results_dir}/{args.dataset}/ "
              f"({time.perf_counter() - start:.0f} s)")
        return 0
    from fairpo.config import RunConfig
    from fairpo.train import train

    config = RunConfig(dataset=args.dataset, data_root=args.data_root, variant=args.variant,
                       ablation=args.ablation, init=args.init, selection=args.selection, seed=args.seed, **extra)
    record = train(config, args.results_dir, force=args.force)
    print(f"{record['run_dir']}: test mAP privileged {record['test']['privileged']['mAP']:.4f}, "
          f"non-privileged {record['test']['non_privileged']['mAP']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
