"""The golden trajectory: a short run of every method on a tiny fixed input, step by step.

``python tests/golden/trajectory.py --write --reason "…"`` trains each method of the grid (baselines,
FairPO variants, ablations, the copy start) for two epochs on a 96-sample ``features`` data set drawn
from a fixed NumPy generator (the same bytes on every machine), and stores in ``trajectory.json`` the
per-step total loss, group losses, group weights α and fallback rate, with the environment that made
them. ``tests/test_golden.py`` retrains and compares within the file's tolerance: any change to the
losses, the weights, the heads, the streams or the trainer shows up here, across processes and
releases, not just within one test session. Rewrite the file only with a stated reason (it is kept in
the file's ``reasons`` list, newest last).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).with_name("trajectory.json")
COLUMNS = ("loss", "loss_P", "loss_N", "alpha_P", "alpha_N", "fallback_rate")
RUNS = (dict(variant="bce"), dict(variant="focal"), dict(variant="gdro"), dict(variant="asl"), dict(variant="dbloss"),
        dict(variant="dpo"), dict(variant="simpo"), dict(variant="cpo"),
        *(dict(variant="cpo", ablation=a) for a in ("no-pref", "no-constraint", "no-grpo", "global",
                                                     "neg-only", "no-fallback")),
        dict(variant="dpo", init="reference"))
TOLERANCE = dict(rtol=1e-4, atol=1e-5)
"""Float32 sums in another order (other CPU kernels, another BLAS) move the sixth digit; a changed
formula, stream or update moves the first."""


def write_features(root: Path) -> None:
    """96 training and 32 test samples, 8 features, 6 labels with long-tailed rates, fixed bytes."""
    gen = np.random.default_rng(2025)
    rates = np.array([0.6, 0.45, 0.3, 0.2, 0.08, 0.05])
    for split, n in (("train", 96), ("test", 32)):
        y = (gen.random((n, len(rates))) < rates).astype(np.float32)
        x = (y @ gen.standard_normal((len(rates), 8)) + 0.8 * gen.standard_normal((n, 8))).astype(np.float32)
        np.savez(root / f"{split}.npz", x=x, y=y)


def trajectory() -> dict[str, list[dict[str, float]]]:
    """Every run's per-step history (the columns of :data:`COLUMNS` that the method has)."""
    from fairpo.run import store
    from fairpo.run.config import RunConfig
    from fairpo.run.train import train

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        write_features(root)
        for changes in RUNS:
            config = RunConfig(dataset="features", data_root=str(root), epochs=2, batch_size=16, lr=1e-2,
                               device="cpu", **changes)
            record = train(config, Path(tmp) / "results", quiet=True)
            steps = store.load_history(Path(tmp) / "results" / record["run_dir"] / store.STEP_HISTORY_FILE)
            out[config.run_name] = [{c: float(row[c]) for c in COLUMNS if c in steps and row[c] == row[c]}
                                    for _, row in steps.iterrows()]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite trajectory.json")
    parser.add_argument("--reason", help="why the trajectory changed (required with --write)")
    args = parser.parse_args(argv)
    if not args.write:
        print(json.dumps(trajectory(), indent=1))
        return 0
    if not args.reason:
        parser.error("--write needs --reason: say why the golden trajectory changes")
    from fairpo.run.store import environment_info

    reasons = json.loads(GOLDEN.read_text())["reasons"] if GOLDEN.exists() else []
    golden = dict(tolerance=TOLERANCE, reasons=[*reasons, args.reason], environment=environment_info(),
                  runs=trajectory())
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
