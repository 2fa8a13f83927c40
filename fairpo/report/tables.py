"""Our Tables 1–4: the :class:`Table` object, and :func:`results_table`, which builds it from the run store.

Two sources, one shape (:class:`Table`): the paper's numbers as printed
(:func:`fairpo.report.paper.paper_table`) and ours, from :func:`fairpo.run.store.collect_records`: mean ±
std over seeds in percent, in the paper's layout (:mod:`fairpo.report.layout`), with significance marks
from a named test (:mod:`fairpo.report.stats`).

Conventions of our tables
-------------------------
- Values are percent (the store keeps fractions), shown with 2 decimals.
- ``±`` is the sample standard deviation over seeds (``ddof=1``, pandas' and numpy's
  ``std(ddof=1)``), our reading of the paper's "std. dev. over 3 runs"; with one seed it is undefined
  and not shown.
- Δ columns and parentheses follow the paper (see :mod:`fairpo.report.layout`).
- Bold marks the best (largest) displayed value of each column, ties included (:func:`best_cells`). All
  six metrics and the Δs are "higher is better".
- Marks come from Welch's t-test across seeds or the paired bootstrap over test images, always against
  the row the Δ or the parenthesis refers to; the caption of every table names the test.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fairpo.report.layout import (BCE, DATASET_NAMES, DELTA, FULL_CPO, GROUP_KEYS, LAYOUT_ROWS, METRIC_COLUMNS,
                                  METRIC_KEYS, Key, check_layout, delta_spec, display_columns, row_name)
from fairpo.report.rendering import Rendered, display_strings, render
from fairpo.report.stats import (NOT_SIGNIFICANT, SIGNIFICANT, TESTS, Test, bootstrap_summary, group_map, holm,
                                 mark_for, resample_counts, resampled_average_precision, welch_test)
from fairpo.run import store

SIGNIFICANCE_COLUMNS = ["row", "column", "reference", "group", "difference", "welch_t", "welch_p", "n_a", "n_b",
                        "pairs", "bootstrap_difference", "ci_low", "ci_high", "bootstrap_p", "mark_welch",
                        "mark_bootstrap"]
"""Columns of a table's ``significance`` frame before ``welch_p_holm`` (see :func:`results_table`)."""


@dataclass(repr=False)
class Table:
    """One table in the paper's layout, numbers in percent.

    Fields:

    - ``layout``: ``"main"``, ``"components"`` or ``"preference"``;
    - ``dataset``: the data set the numbers come from; ``source``: ``"paper"`` or ``"ours"``;
    - ``mean``: (rows, :data:`~fairpo.report.layout.METRIC_COLUMNS`) means, NaN for a row without runs;
      ``std``: the same shape, sample std over seeds (NaN where unknown or with a single seed);
    - ``delta``: (rows, Δ columns) ΔmAP as in the paper's last columns, NaN in the reference row;
    - ``change``: ablation layouts only, (rows, :data:`~fairpo.report.layout.METRIC_COLUMNS`) change
      against the full FairPO-CPO row (NaN in that row); None for the main layout;
    - ``marks``: (rows, display columns) the † or ‡ shown after a Δ or a parenthesis, "" for none;
    - ``bold``: (rows, display columns) bool, the cells shown in bold;
    - ``n_seeds``: (rows,) runs behind each row (paper: 3 for Tables 1-2, 0 = not stated for 3-4);
      ``seeds``: row → the seeds used;
    - ``significance``: ours only, one row per comparison (see :func:`results_table`);
    - ``test``: the test behind the marks (a key of :data:`~fairpo.report.stats.TESTS`), None for the
      paper's own marks;
    - ``missing``: rows without any run; ``message``: set when there is nothing to show;
    - ``references``: values the Δ columns are taken against that are not rows of the table
      (ablation layouts: BCE-SFT's mAP(P)); ``number``: the paper's table number, for the paper's;
    - ``budget``: rows with a run that its epoch budget stopped (not converged); ``dead``: row → heads
      with a constant test output, summed over its runs (ours only).
    """

    layout: str
    dataset: str
    source: str
    mean: pd.DataFrame
    std: pd.DataFrame
    delta: pd.DataFrame
    change: pd.DataFrame | None
    marks: pd.DataFrame
    bold: pd.DataFrame
    n_seeds: pd.Series
    significance: pd.DataFrame | None = None
    test: str | None = None
    missing: list[str] = field(default_factory=list)
    message: str | None = None
    references: dict[str, float] = field(default_factory=dict)
    number: int | None = None
    seeds: dict[str, list[int]] = field(default_factory=dict)
    budget: list[str] = field(default_factory=list)
    dead: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Whether there is nothing to show (``message`` says why)."""
        return self.message is not None

    @property
    def reference_rows(self) -> dict[str, str]:
        """Δ column → the row it is measured against (``"Ref"`` in that row)."""
        return {col: row_name(self.layout, key) for col, (_, key) in delta_spec(self.layout).items()
                if key in dict(LAYOUT_ROWS[self.layout])}

    def numbers(self) -> pd.DataFrame:
        """All numbers in one frame: columns (part, column, group) with part mean/std/change/Δ."""
        parts = {"mean": self.mean, "std": self.std}
        if self.change is not None:
            parts["change"] = self.change
        frame = pd.concat(parts, axis=1)
        delta = self.delta.copy()
        delta.columns = pd.MultiIndex.from_tuples([(DELTA, DELTA, c) for c in delta.columns])
        return pd.concat([frame, delta], axis=1)

    def caption(self) -> str:
        where = DATASET_NAMES.get(self.dataset, self.dataset)
        if self.source == "paper":
            kind = ("mean ± std over 3 runs" if self.layout == "main" else "single numbers")
            text = (f"Paper, Table {self.number} ({where}): {kind}, in %, as printed (bold and marks "
                    f"included; the paper does not name its test: † 'significant improvement, p < 0.05', "
                    f"‡ 'not significant, p > 0.1').")
        else:
            text = self._our_caption(where)
        if self.layout == "main":
            text += " ΔmAP(P) against Focal Loss, ΔmAP(P̄) against BCE-SFT (Ref)."
        else:
            ref = self.references.get("BCE-SFT mAP(P)")
            ref_text = f" = {ref:.2f}" if ref is not None and math.isfinite(ref) else " (no runs)"
            text += (f" ΔmAP(P) against BCE-SFT's mAP(P){ref_text}; parentheses: change against the "
                     f"full FairPO-CPO row.")
        return text

    def _our_caption(self, where: str) -> str:
        present = self.n_seeds[self.n_seeds > 0]
        ns = sorted(set(int(n) for n in present))
        runs = (f"{ns[0]} seed{'s' if ns[0] != 1 else ''}" if len(ns) == 1
                else "seeds per row: " + ", ".join(f"{r} {int(n)}" for r, n in present.items()))
        text = f"Ours ({where}, {runs}): mean ± sample std (ddof=1) over seeds, in %. Best per column in bold."
        if self.test is not None:
            text += (f" Marks from {TESTS[self.test]} (two-sided) against the reference: "
                     f"† p < {SIGNIFICANT}, ‡ p > {NOT_SIGNIFICANT}.")
        if self.missing:
            text += " No runs yet for: " + ", ".join(self.missing) + "."
        if self.budget:
            text += (" Not converged (a run stopped by its epoch budget, not by patience): "
                     + ", ".join(self.budget) + ".")
        else:
            text += " Every run stopped by patience."
        if self.dead:
            text += (" Heads that never learned (constant test output), summed over seeds: "
                     + ", ".join(f"{name} {n}" for name, n in self.dead.items()) + ".")
        return text

    def display_frame(self) -> pd.DataFrame:
        """The table as display strings (what :meth:`style` shows), same index and columns."""
        return display_strings(self)

    def style(self, uuid: str | None = None) -> Rendered:
        """The table rendered for a notebook (see :func:`~fairpo.report.rendering.render`); ``.styler`` is
        the pandas Styler."""
        return render(self, uuid=uuid)

    def _repr_html_(self) -> str:
        return render(self)._repr_html_()

    def __str__(self) -> str:
        if self.empty:
            return self.message
        return f"{self.caption()}\n{self.display_frame().to_string()}"

    __repr__ = __str__  # Jupyter's text/plain: the table as text, never an object address


def empty_table(layout: str, dataset: str, source: str, **fields) -> Table:
    """A :class:`Table` of ``layout`` with NaN numbers, no marks, no bold and no seeds."""
    names = [name for _, name in LAYOUT_ROWS[layout]]
    columns = display_columns(layout)
    numbers = pd.DataFrame(np.nan, index=names, columns=METRIC_COLUMNS)
    return Table(layout=layout, dataset=dataset, source=source, mean=numbers.copy(), std=numbers.copy(),
                 delta=pd.DataFrame(np.nan, index=names, columns=list(delta_spec(layout))),
                 change=numbers.copy() if layout != "main" else None,
                 marks=pd.DataFrame("", index=names, columns=columns),
                 bold=pd.DataFrame(False, index=names, columns=columns),
                 n_seeds=pd.Series(0, index=names), **fields)


def best_cells(table: Table) -> pd.DataFrame:
    """Bool (rows, display columns): the cells equal to their column's largest *displayed* value.

    Values are compared after rounding to the 2 decimals shown, so a displayed tie is bold twice;
    rows without runs and the ``Ref`` cells never are.
    """
    columns = display_columns(table.layout)
    values = pd.concat([table.mean, table.delta.set_axis(columns[6:], axis=1)], axis=1).round(2)
    best = values.max(axis=0, skipna=True)
    return (values == best) & values.notna()


def best_rows(table: Table) -> pd.Series:
    """Display column → the row(s) in bold, joined by " / "."""
    bold = table.bold
    return pd.Series({col: " / ".join(bold.index[bold[col]]) for col in bold.columns})


# ---------------------------------------------------------------- our tables, from the store


def missing_message(dataset: str, results_dir: str | os.PathLike) -> str:
    """What to say, and what to run, when the store has no run for ``dataset``."""
    where = Path(results_dir).as_posix().rstrip("/") + "/"
    if dataset in ("coco", "nuswide"):
        how = (f"`fairpo reproduce --dataset {dataset} --data-root PATH --seeds 0 1 2` with your copy of "
               f"{DATASET_NAMES[dataset]} (a GPU is advised)")
    else:
        how = f"`fairpo reproduce --dataset {dataset} --seeds 0 1 2`"
    return f"No runs for {dataset} in {where}: run {how}."


class _Logits:
    """Test logits and bootstrap AP of each run, loaded and computed once per table."""

    def __init__(self, results_dir: Path, dataset: str, resamples: int, seed: int):
        self.results_dir, self.dataset = results_dir, dataset
        self.resamples, self.seed = resamples, seed
        self.labels: np.ndarray | None = None
        self.counts: np.ndarray | None = None
        self.masks: dict[str, np.ndarray] = {}
        self._ap: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def ap(self, key: Key, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(full-sample AP (T,), bootstrap AP (B, T)) of one run."""
        if (key, seed) in self._ap:
            return self._ap[(key, seed)]
        folder = store.run_dir(self.results_dir, self.dataset, key[0], key[1], seed)
        path = folder / store.TEST_LOGITS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the run finished without its test logits; "
                                    f"retrain it (fairpo.run.train.train(..., force=True)) for the bootstrap")
        tensors, _ = store.load_checkpoint(path)
        logits, labels = tensors["logits"].double().numpy(), tensors["labels"].numpy()
        if self.labels is None:
            self._first_run(folder, labels)
        elif labels.shape != self.labels.shape or not np.array_equal(labels, self.labels):
            raise ValueError(f"{path} holds other test labels than the first run read: every run of a "
                             f"table must be evaluated on the same test images")
        result = (resampled_average_precision(logits, labels)[0],
                  resampled_average_precision(logits, labels, self.counts))
        self._ap[(key, seed)] = result
        return result

    def _first_run(self, folder: Path, labels: np.ndarray) -> None:
        """Keep the test labels, draw the resamples and read the label groups of the first run read."""
        self.labels = labels
        self.counts = resample_counts(labels.shape[0], self.resamples, self.seed)
        privileged = (store.read_record(folder) or {}).get("data", {}).get("privileged")
        if privileged is None:
            raise ValueError(f"{folder / store.RECORD_FILE} does not say which labels are privileged")
        mask = np.zeros(labels.shape[1], dtype=bool)
        mask[list(privileged)] = True
        self.masks = {"P": mask, "P̄": ~mask}

    def compare(self, a: Key, b: Key, seeds: Sequence[int], group: str, confidence: float) -> dict:
        full_a, boot_a, full_b, boot_b = [], [], [], []
        for s in seeds:
            fa, ba = self.ap(a, s)
            fb, bb = self.ap(b, s)
            mask = self.masks[group]
            full_a.append(group_map(fa[None], mask)[0]), boot_a.append(group_map(ba, mask))
            full_b.append(group_map(fb[None], mask)[0]), boot_b.append(group_map(bb, mask))
        observed = float(np.mean(np.array(full_a) - np.array(full_b)) * 100)
        diffs = np.mean(np.array(boot_a) - np.array(boot_b), axis=0) * 100
        return bootstrap_summary(observed, diffs, confidence, len(seeds))


def _our_records(results_dir: Path, dataset: str, seeds: Sequence[int] | None,
                 records: pd.DataFrame | None) -> pd.DataFrame:
    """The store's finished runs of ``dataset`` (restricted to ``seeds``), one row per run."""
    frame = store.collect_records(results_dir) if records is None else records
    if not frame.empty:
        frame = frame[frame["dataset"] == dataset]
        if seeds is not None:
            frame = frame[frame["seed"].isin([int(s) for s in seeds])]
    return frame


def _per_seed(frame: pd.DataFrame, key: Key) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """(percent values (seeds, :data:`~fairpo.report.layout.METRIC_COLUMNS`) or None, the run rows) of
    one row's runs."""
    runs = frame[(frame["variant"] == key[0]) & (frame["ablation"] == key[1])].sort_values("seed")
    if runs.empty:
        return None, runs
    values = {c: runs[f"test.{GROUP_KEYS[c[1]]}.{METRIC_KEYS[c[0]]}"].to_numpy(float) * 100 for c in METRIC_COLUMNS}
    return pd.DataFrame(values, index=runs["seed"].to_numpy(int)), runs


def _fill_rows(table: Table, frame: pd.DataFrame) -> dict[Key, pd.DataFrame | None]:
    """Means, stds, seeds, budget and dead heads of each row; returns the per-seed values of every row
    and of BCE-SFT (the ablations' reference)."""
    rows = LAYOUT_ROWS[table.layout]
    per_seed: dict[Key, pd.DataFrame | None] = {}
    for key, name in rows + [(BCE, "BCE-SFT")]:
        values, runs = _per_seed(frame, key)
        per_seed[key] = values
        if name in table.mean.index and values is not None:
            if "stopped" in runs and (runs["stopped"] == "budget").any():
                table.budget.append(name)
            if "dead_heads" in runs and runs["dead_heads"].fillna(0).sum() > 0:
                table.dead[name] = int(runs["dead_heads"].fillna(0).sum())
            table.mean.loc[name] = values.mean(axis=0).to_numpy()
            table.std.loc[name] = values.std(axis=0, ddof=1).to_numpy()
            table.n_seeds[name] = len(values)
            table.seeds[name] = list(values.index)
    table.missing = [name for key, name in rows if per_seed[key] is None]
    return per_seed


def _fill_deltas(table: Table, per_seed: dict[Key, pd.DataFrame | None]) -> None:
    """The Δ columns (NaN in the ``Ref`` row) and, for the ablation layouts, the change against the full row."""
    layout, rows = table.layout, dict(LAYOUT_ROWS[table.layout])
    for col, (group, ref_key) in delta_spec(layout).items():
        ref_value = per_seed[ref_key][("mAP", group)].mean() if per_seed[ref_key] is not None else math.nan
        table.delta[col] = table.mean[("mAP", group)] - ref_value
        if ref_key in rows:
            table.delta.loc[row_name(layout, ref_key), col] = math.nan  # the "Ref" row
    if layout != "main":
        table.references["BCE-SFT mAP(P)"] = float(
            per_seed[BCE]["mAP"]["P"].mean() if per_seed[BCE] is not None else math.nan)
        full = row_name(layout, FULL_CPO)
        table.change = table.mean - table.mean.loc[full]
        table.change.loc[full] = math.nan


def _comparisons(layout: str) -> list[tuple[Key, tuple[str, str], Key, str]]:
    """(row, display column, reference row, group) of every mark the layout shows."""
    out = []
    for key, _ in LAYOUT_ROWS[layout]:
        for col, (group, ref_key) in delta_spec(layout).items():
            if key != ref_key:
                out.append((key, (DELTA, col), ref_key, group))
        if layout != "main" and key != FULL_CPO:
            out += [(key, ("mAP", g), FULL_CPO, g) for g in GROUP_KEYS]
    return out


def _compare(layout: str, key: Key, column: tuple[str, str], ref_key: Key, group: str, a: pd.DataFrame,
             b: pd.DataFrame, logits: _Logits | None, confidence: float) -> dict:
    """One row of :attr:`Table.significance`: Welch across seeds and, with ``logits``, the paired bootstrap."""
    t_stat, p_welch = welch_test(a[("mAP", group)], b[("mAP", group)])
    pairs = sorted(set(a.index) & set(b.index))
    row = dict(row=row_name(layout, key), column=" ".join(column), reference=row_name(layout, ref_key),
               group=group, difference=float(a[("mAP", group)].mean() - b[("mAP", group)].mean()),
               welch_t=t_stat, welch_p=p_welch, n_a=len(a), n_b=len(b), pairs=len(pairs))
    if logits is not None and pairs:
        boot = logits.compare(key, ref_key, pairs, group, confidence)
        row.update(bootstrap_difference=boot["difference"], ci_low=boot["ci_low"], ci_high=boot["ci_high"],
                   bootstrap_p=boot["p"])
    else:
        row.update(bootstrap_difference=math.nan, ci_low=math.nan, ci_high=math.nan, bootstrap_p=math.nan)
    row["mark_welch"] = mark_for(row["welch_p"])
    row["mark_bootstrap"] = mark_for(row["bootstrap_p"])
    return row


def results_table(results_dir: str | os.PathLike = "results", dataset: str = "digits", layout: str = "main", *,
                  test: Test = "welch", seeds: Sequence[int] | None = None, bootstrap: bool = True,
                  resamples: int = 1000, bootstrap_seed: int = 0, confidence: float = 0.95,
                  records: pd.DataFrame | None = None) -> Table:
    """Our table in the paper's layout, from the run store.

    Args:
        results_dir: the run store.
        dataset: which data set's runs.
        layout: ``"main"`` (Tables 1-2), ``"components"`` (Table 3) or ``"preference"`` (Table 4).
        test: which test's p-values give the marks: ``"welch"`` or ``"bootstrap"``.
        seeds: restrict to these seeds (default: every seed in the store).
        bootstrap: run the paired bootstrap (needs each run's test logits, :data:`~fairpo.run.store.TEST_LOGITS_FILE`).
        resamples, bootstrap_seed, confidence: the bootstrap's B, its numpy seed, its interval level.
        records: :func:`fairpo.run.store.collect_records` output to use instead of reading the store.

    Returns:
        A :class:`Table`. With no run for ``dataset`` it carries ``message`` (what to run) and empty
        frames, rather than raising. Its ``significance`` frame has one row per comparison: ``row``,
        ``column`` (the display column whose mark it gives), ``reference``, ``group``, ``difference``
        (percent points, the Δ shown), ``welch_t``, ``welch_p``, ``n_a``, ``n_b``, ``pairs`` (seeds
        both rows have), ``bootstrap_difference`` (mean over those pairs), ``ci_low``, ``ci_high``,
        ``bootstrap_p``, ``mark_welch``, ``mark_bootstrap``, ``welch_p_holm`` (Welch's p adjusted
        by Holm's method over the comparisons of this table: what the book's claims use).
    """
    check_layout(layout)
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of: {', '.join(TESTS)}")
    if test == "bootstrap" and not bootstrap:
        raise ValueError("test='bootstrap' needs bootstrap=True")
    results_dir = Path(results_dir)
    frame = _our_records(results_dir, dataset, seeds, records)
    table = empty_table(layout, dataset, "ours", test=test)
    keys = [key for key, _ in LAYOUT_ROWS[layout]]
    if frame.empty or all(_per_seed(frame, key)[0] is None for key in keys):
        table.message = missing_message(dataset, results_dir)
        return table
    per_seed = _fill_rows(table, frame)
    _fill_deltas(table, per_seed)
    logits = _Logits(results_dir, dataset, resamples, bootstrap_seed) if bootstrap else None
    out = []
    for key, column, ref_key, group in _comparisons(layout):
        a, b = per_seed[key], per_seed[ref_key]
        if a is None or b is None:
            continue
        row = _compare(layout, key, column, ref_key, group, a, b, logits, confidence)
        table.marks.loc[row["row"], column] = row[f"mark_{test}"]
        out.append(row)
    table.significance = pd.DataFrame(out, columns=SIGNIFICANCE_COLUMNS)
    table.significance["welch_p_holm"] = holm(table.significance["welch_p"])
    table.bold = best_cells(table)
    return table
