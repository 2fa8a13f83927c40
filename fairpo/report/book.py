"""The book: the reproduction audit's measurements, and the build (``python -m fairpo.report.book``).

The audit (``book/audit.md``, executed page ``book/audit_measure.md``) compares, on the *same* stored
predictions, the way this companion evaluates with the way the authors' released code does:

- :func:`evaluation_audit`: dataset-level metrics (ours, :func:`fairpo.method.metrics.group_metrics`) against
  metrics computed per batch of 32 and averaged over batches
  (:func:`fairpo.method.metrics.batch_averaged_metrics`), and the two conventions for the sample F1 of a
  sample with no true and no predicted label (1, ours; 0, the released code's);
- :func:`selection_audit`: the checkpoint chosen on the held-out validation split (ours) against the
  one the test split itself would choose (the released code early-stops on the split it reports).

:func:`build` is what ``make book`` runs: it trains whatever runs of the ``digits`` grid the store
lacks, clears the notebook execution cache when the store or the package changed (jupyter-cache keys a
notebook on its code cells only), builds the book with warnings as errors and checks the HTML.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from fairpo.run import store
from fairpo.method.metrics import GROUPS, batch_averaged_metrics, group_metrics

TEST_PREFIX = "audit.test."  # the per-epoch test metrics the trainer logs for this audit only

TEST_LOGITS_FILE = "test_logits.safetensors"
"""File in each run folder holding the test split's ``logits`` and ``labels``, ``(N_test, T)``, at the best checkpoint."""

RELEASED_BATCH_SIZE = 32
"""Evaluation batch size of the released code."""

BUILD_COMMAND = ("jupyter-book", "build", ".", "-W", "-n", "--keep-going")
FINGERPRINT_FILE = Path("_build") / ".store-fingerprint"
STAGING = Path("_build") / "staging"
"""Where the book is built (``--path-output``; its execution cache lives there too). The HTML is copied
to ``_build/html`` only after the build and the HTML checks pass, so a failed build publishes nothing."""
PUBLISHED = Path("_build") / "html"


# ---------------------------------------------------------------- measurements


def _finished_runs(results_dir: str | os.PathLike, dataset: str) -> list[tuple[dict, Path]]:
    """``(ids, folder)`` of every finished run of ``dataset``, in store order."""
    runs = []
    for record_path in sorted(Path(results_dir).glob(f"{dataset}/*/seed*/{store.RECORD_FILE}")):
        folder = record_path.parent
        try:
            ids = store.parse_run_dir(folder)
        except ValueError:
            continue
        if store.is_finished(folder):
            runs.append((ids, folder))
    return runs


def evaluation_audit(results_dir: str | os.PathLike, dataset: str = "digits",
                     batch_size: int = RELEASED_BATCH_SIZE) -> pd.DataFrame:
    """Every finished run's test predictions scored both ways, one row per (run, group).

    Reads ``test_logits.safetensors`` of each finished run of ``dataset`` (runs without it are
    skipped). Columns: ``variant``, ``ablation``, ``seed``, ``group`` (privileged, non_privileged,
    overall), then, as fractions:

    - ``mAP``: dataset-level mAP (ours); ``mAP_batched``: mean over batches of ``batch_size`` of the
      per-batch mAP, a batch with no positive in the group counting 0 (the released code);
    - ``f1_one`` / ``f1_zero``: dataset-level sample F1 with a sample that has no true and no
      predicted label in the group counting 1 (ours) or 0 (the released code);
    - ``f1_batched``: the released code's F1 (convention 0, averaged over batches);
    - ``accuracy``.

    An empty or missing store gives an empty frame with these columns.
    """
    columns = ["variant", "ablation", "seed", "group", "mAP", "mAP_batched", "f1_one", "f1_zero",
               "f1_batched", "accuracy"]
    rows = []
    for ids, folder in _finished_runs(results_dir, dataset):
        path = folder / TEST_LOGITS_FILE
        if not path.is_file():
            continue
        record = store.read_record(folder)
        tensors, _ = store.load_checkpoint(path)
        logits, labels = tensors["logits"], tensors["labels"]
        privileged = record["data"]["privileged"]
        ours = group_metrics(logits, labels, privileged, empty="one")
        zero = group_metrics(logits, labels, privileged, empty="zero")
        released = batch_averaged_metrics(logits, labels, privileged, batch_size=batch_size, empty="zero",
                                          no_positive_batch="zero")
        for group in GROUPS:
            rows.append(dict(variant=ids["variant"], ablation=ids["ablation"], seed=ids["seed"], group=group,
                             mAP=ours[group]["mAP"], mAP_batched=released[group]["mAP"],
                             f1_one=ours[group]["f1"], f1_zero=zero[group]["f1"],
                             f1_batched=released[group]["f1"], accuracy=ours[group]["accuracy"]))
    return pd.DataFrame(rows, columns=columns)


def selection_audit(results_dir: str | os.PathLike, dataset: str = "digits",
                    metric: tuple[str, str] = ("overall", "mAP")) -> pd.DataFrame:
    """Checkpoint chosen on the validation split against the one the test split would choose.

    Needs the per-epoch test metrics in each run's ``epochs.jsonl`` (columns ``audit.test.<group>.<metric>``
    beside ``val.<group>.<metric>``); runs without them are skipped. Selection follows the trainer:
    the first epoch with the highest ``metric`` (overall mAP by default). One row per run: ``variant``,
    ``ablation``, ``seed``, ``epoch_val`` and ``epoch_test`` (the epochs each split selects), then for
    each group ``<group>.val_selected`` and ``<group>.test_selected``: the test mAP reported under each
    selection (fractions). ``test_selected >= val_selected`` for the selection metric by construction;
    the gap is the optimism of selecting on the split one reports.
    """
    group, name = metric
    key_val, key_test = f"val.{group}.{name}", f"{TEST_PREFIX}{group}.{name}"
    rows = []
    for ids, folder in _finished_runs(results_dir, dataset):
        path = folder / store.EPOCH_HISTORY_FILE
        if not path.is_file():
            continue
        history = store.load_history(path)
        if key_val not in history or key_test not in history:
            continue
        # idxmax returns the first maximum, as the trainer's strict "score > best" keeps the first
        at_val = history.loc[history[key_val].idxmax()]
        at_test = history.loc[history[key_test].idxmax()]
        row = dict(variant=ids["variant"], ablation=ids["ablation"], seed=ids["seed"],
                   epoch_val=int(at_val["epoch"]), epoch_test=int(at_test["epoch"]))
        for g in GROUPS:
            row[f"{g}.val_selected"] = float(at_val[f"{TEST_PREFIX}{g}.mAP"])
            row[f"{g}.test_selected"] = float(at_test[f"{TEST_PREFIX}{g}.mAP"])
        rows.append(row)
    columns = ["variant", "ablation", "seed", "epoch_val", "epoch_test"] + [
        f"{g}.{s}" for g in GROUPS for s in ("val_selected", "test_selected")]
    return pd.DataFrame(rows, columns=columns)


def mean_over_seeds(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean of every numeric column over seeds, grouped by ``by``, with the number of seeds ``n``."""
    values = [c for c in frame.columns if c not in (*by, "seed") and pd.api.types.is_numeric_dtype(frame[c])]
    grouped = frame.groupby(by, sort=False)
    out = grouped[values].mean()
    out.insert(0, "n", grouped.size())
    return out.reset_index()


# ---------------------------------------------------------------- build


def toc_pages(toc_path: Path) -> list[str]:
    """The documents of ``_toc.yml`` (root first), as paths without extension."""
    import yaml

    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return files


def store_fingerprint(results_dir: str | os.PathLike, package_dir: str | os.PathLike) -> str:
    """Hash of what the executed notebooks read besides their own code: every run record of the store
    (timings left out, so a rerun that changed nothing keeps the hash) and the package's source."""
    digest = hashlib.sha256()
    results_dir, package_dir = Path(results_dir), Path(package_dir)
    for path in sorted(results_dir.glob(f"*/*/seed*/{store.RECORD_FILE}")):
        digest.update(path.relative_to(results_dir).as_posix().encode())
        digest.update(store.json_bytes(store.without_timings(store.read_json(path))))
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _find_root() -> Path:
    root = Path(__file__).resolve().parents[1]
    if not (root / "_toc.yml").is_file():
        raise FileNotFoundError(f"{root} holds no _toc.yml: run the build from a checkout of the repository")
    return root


def _invalidate_cache_if_changed(root: Path, results_dir: Path) -> bool:
    """Forget every execution when the store or the package changed since the last build.

    Both the execution cache and Sphinx's saved environment go: without the environment Sphinx
    re-reads every page, and without the cache every notebook is executed again (clearing only the
    cache would leave Sphinx reusing the pages it read before, with their old outputs).
    """
    marker = root / FINGERPRINT_FILE
    current = store_fingerprint(results_dir, root / "fairpo")
    if marker.is_file() and marker.read_text().strip() == current:
        return False
    for stale in (".jupyter_cache", ".doctrees", "jupyter_execute"):
        shutil.rmtree(root / STAGING / "_build" / stale, ignore_errors=True)
    return True


def publish(built: Path, published: Path) -> None:
    """Replace ``published`` by a copy of ``built`` (the old site is removed only once the copy exists)."""
    fresh = published.with_name(published.name + ".new")
    old = published.with_name(published.name + ".old")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(built, fresh)
    if published.exists():
        published.rename(old)
    fresh.rename(published)
    shutil.rmtree(old, ignore_errors=True)


def build(*, fill_store: bool = True, check: bool = True, jobs: int = 1, quiet: bool = False) -> float:
    """Build the book from the repository root; returns the seconds the whole build took.

    Steps: train what the ``digits`` grid lacks (:func:`fairpo.run.grid.ensure_grid`), clear the
    notebook cache if the store or the package changed, ``jupyter-book build . -W -n --keep-going``
    into :data:`STAGING`, record the fingerprint, ``tools/check_book.py`` on the HTML, and only then
    publish it to ``_build/html``. Raises ``RuntimeError`` naming the failed step; a failed step leaves
    the previously published book as it was.
    """
    root = _find_root()
    results_dir = root / "results"
    started = time.perf_counter()
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONHASHSEED=os.environ.get("PYTHONHASHSEED", "0"))
    os.environ["TQDM_DISABLE"] = "1"
    if fill_store:
        from fairpo.run.grid import ensure_grid

        ensure_grid("digits", results_dir=results_dir, jobs=jobs, quiet=quiet)
    if _invalidate_cache_if_changed(root, results_dir) and not quiet:
        print("store or package changed since the last build: notebooks will be re-executed")
    executable = Path(sys.executable).with_name("jupyter-book")
    staging = root / STAGING
    built = staging / "_build" / "html"
    shutil.rmtree(built, ignore_errors=True)  # never check or publish the pages of an earlier build
    command = [str(executable) if executable.is_file() else BUILD_COMMAND[0], *BUILD_COMMAND[1:3],
               "--path-output", str(staging), *BUILD_COMMAND[3:]]
    if subprocess.run(command, cwd=root, env=env).returncode != 0:
        raise RuntimeError(f"the book build failed: {' '.join(BUILD_COMMAND)} reported errors or warnings "
                           f"(see above and {STAGING}/_build/html/reports/); nothing was published")
    # after the build: the notebooks may have added runs (the training chapter trains one)
    (root / FINGERPRINT_FILE).write_text(store_fingerprint(results_dir, root / "fairpo") + "\n")
    if check and subprocess.run([sys.executable, str(root / "tools" / "check_book.py"), str(built)],
                                cwd=root).returncode != 0:
        raise RuntimeError("the built HTML failed tools/check_book.py (see above); nothing was published")
    publish(built, root / PUBLISHED)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fairpo.report.book", description=build.__doc__.splitlines()[0])
    parser.add_argument("--no-fill", action="store_true", help="do not train missing runs of the digits grid")
    parser.add_argument("--no-check", action="store_true", help="skip tools/check_book.py")
    parser.add_argument("--jobs", type=int, default=1, help="runs of the grid trained in parallel")
    args = parser.parse_args(argv)
    try:
        seconds = build(fill_store=not args.no_fill, check=not args.no_check, jobs=args.jobs)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"book built in {seconds:.0f} s: open _build/html/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
