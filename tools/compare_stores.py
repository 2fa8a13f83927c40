"""Compare the finished runs of two run stores, record by record and history by history.

    python tools/compare_stores.py STORE_A STORE_B [--ignore data.options ...]

Prints, for every run present in either store, whether its record (timings aside) and its step and
epoch histories are identical, and for a differing record the dotted paths of the fields that differ.
Exit code 0 when every run matches, 1 otherwise. Used to show that a change of code leaves the grid's
results as they were (e.g. a refactoring: fill one store before, one after, compare).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fairpo.run import store

VOLATILE = ("timings", "environment")
"""Fields that differ between two fills of a store on the same machine for reasons other than the code
under test: wall-clock times, and the environment (package versions, host name)."""


def differences(a, b, path: str = "") -> list[str]:
    """Dotted paths where two JSON-like values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += differences(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{path}.{key}".lstrip("."))
        return out
    return [] if a == b else [path or "<root>"]


def compare(store_a: Path, store_b: Path, ignore: tuple[str, ...] = ()) -> list[tuple[str, list[str]]]:
    """(run folder, differing fields) for every run of either store; an empty list means identical."""
    runs_a = {folder.relative_to(store_a).as_posix(): (folder, record) for _, folder, record in store.finished_runs(store_a)}
    runs_b = {folder.relative_to(store_b).as_posix(): (folder, record) for _, folder, record in store.finished_runs(store_b)}
    report = []
    for name in sorted(set(runs_a) | set(runs_b)):
        if name not in runs_a or name not in runs_b:
            report.append((name, [f"only in {'A' if name in runs_a else 'B'}"]))
            continue
        (folder_a, rec_a), (folder_b, rec_b) = runs_a[name], runs_b[name]
        diff = [d for d in differences({k: v for k, v in rec_a.items() if k not in VOLATILE},
                                       {k: v for k, v in rec_b.items() if k not in VOLATILE})
                if not any(d == i or d.startswith(i + ".") for i in ignore)]
        for history in (store.STEP_HISTORY_FILE, store.EPOCH_HISTORY_FILE):
            if not store.load_history(folder_a / history).equals(store.load_history(folder_b / history)):
                diff.append(history)
        report.append((name, diff))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store_a", type=Path)
    parser.add_argument("store_b", type=Path)
    parser.add_argument("--ignore", nargs="*", default=[], help="dotted record fields to leave out of the comparison")
    args = parser.parse_args(argv)
    report = compare(args.store_a, args.store_b, tuple(args.ignore))
    for name, diff in report:
        print(f"{name:40} {'identical' if not diff else 'DIFFERS: ' + ', '.join(diff)}")
    same = sum(not diff for _, diff in report)
    print(f"{same} of {len(report)} runs identical (records without {', '.join(VOLATILE)}"
          f"{', ' + ', '.join(args.ignore) if args.ignore else ''}; step and epoch histories)")
    return 0 if same == len(report) else 1


if __name__ == "__main__":
    sys.exit(main())
