"""Tables 1–4 of the paper: the paper's own numbers, ours from the run store, and the tests between rows.

Two sources, one shape (:class:`Table`):

- :func:`paper_table` — the paper's numbers, transcribed cell by cell from its Tables 1–4
  (Mondal, Chanda, Varmora, Ramakrishnan, *FairPO: Fair Preference Optimization for Multi-Label
  Learning*, section 4 and section 5). Numbers are facts and may be
  cited; the transcription keeps what the paper prints (bold, ``Ref``, the † and ‡ marks, the
  parentheses of Tables 3–4) so the tests can check its arithmetic.
- :func:`results_table` — ours, from :func:`fairpo.run.store.collect_records`: mean ± std over seeds in
  percent, in the paper's layout, with significance marks from a named test.

Layouts (``layout``): ``"main"`` (Tables 1 and 2: six methods), ``"components"`` (Table 3: FairPO-CPO
and four component ablations), ``"preference"`` (Table 4: FairPO-CPO and two preference ablations).

Conventions of our tables
-------------------------
- Values are percent (the store keeps fractions), shown with 2 decimals.
- ``±`` is the sample standard deviation over seeds (``ddof=1``, pandas' and numpy's
  ``std(ddof=1)``), our reading of the paper's "std. dev. over 3 runs"; with one seed it is undefined
  and not shown.
- Δ columns follow the paper: in the main layout ΔmAP(P) against Focal Loss and ΔmAP(P̄) against
  BCE-SFT (the row marked ``Ref``); in the ablation layouts ΔmAP(P) against BCE-SFT (the ``bce`` runs,
  not a row of the table) and, in parentheses after each value, the change against the full
  FairPO-CPO row.
- Bold marks the best (largest) displayed value of each column, ties included. All six metrics and
  the Δs are "higher is better".
- Significance, two tests, both two-sided, always against the row the Δ or the parenthesis refers to:

  (a) **Welch's t-test across seeds** (``scipy.stats.ttest_ind(equal_var=False)``) on the per-seed
      metric of the two rows. It asks whether another training seed would give the same difference.
  (b) **A paired bootstrap over test images**: the test images are resampled with replacement
      (``resamples`` times, ``numpy.random.default_rng(seed)``), the same resample is used for both
      rows, and the group mAP of each run is recomputed on it. Seed *k* of one method is paired with
      seed *k* of the other (they share the heads' initialisation, the batch order and, for FairPO,
      the reference model), the per-seed differences are averaged, and that average — the table's Δ
      when both rows have the same seeds — is bootstrapped. We pair seeds rather than averaging the
      seeds' logits because an ensemble of three runs is a different model from the ones whose mean
      the table reports. It asks whether another test set from the same distribution would give the
      same difference *for these trained models*; it says nothing about seed variance. The p-value is
      ``min(1, 2 · min(1 + #{d* ≤ 0}, 1 + #{d* ≥ 0}) / (B + 1))`` and the interval is the percentile
      interval of ``d*``.

  Marks, as in the paper: ``†`` p < 0.05, ``‡`` p > 0.1, none in between. The paper's † says
  "significant improvement"; our tests are two-sided, so † means a significant *difference* and the
  sign of the Δ gives its direction. The caption of every table names the test its marks come from.

Where the paper's tables disagree with themselves
-------------------------------------------------
(:func:`paper_arithmetic` recomputes every derived cell; :data:`PAPER_NOTES` lists these points.)

- FairPO-CPO's ΔmAP(P) on MS-COCO is +1.41 in Table 1 (against Focal Loss, 89.76 − 88.35) and +3.44
  in Table 3 and in the text of section 4 (against BCE-SFT, 89.76 − 86.32). Both subtractions are
  right; the references differ, and section 3 says BCE-SFT is the reference while Table 1's caption
  says the strongest baseline is. The abstract's "up to 3.59%" is Table 2's FairPO-CPO minus BCE-SFT
  (67.12 − 63.53), a difference neither table prints.
- Every Δ of Tables 1 and 2 and every ΔmAP(P) of Tables 3 and 4 equals the subtraction it claims to
  be. Of the 36 parentheses of Tables 3 and 4, one does not: Global CPO's Sample F1 (P̄) is printed
  64.85 (+0.47), but 64.85 − 64.32 = +0.53.
- Bold is not always the best: Table 3 bolds the full model in every column, yet "w/o Preference
  Loss" and "Global CPO" are higher on all three P̄ columns; Tables 1 and 2 bold FairPO-CPO's
  ΔmAP(P̄) (−0.31, −0.41) though GDRO + BCE's (−0.24, −0.33) is higher.
- The ‡ marks ("not significant, p > 0.1") do not fit the printed spreads: from the printed means
  and std over 3 runs, Welch's t-test gives p ≈ 0.008 for FairPO-CPO's −0.31 (Table 1, P̄ vs BCE-SFT),
  p ≈ 0.027 for GDRO + BCE's −0.24, and p ≈ 0.009 for Table 2's −0.41 (:func:`paper_welch_from_stats`).
  The paper does not name its test.
- Tables 3 and 4 give single numbers (no std, no number of runs), yet section 5 calls the drops
  "significant".
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from fairpo.run import store

PAPER_CITATION = (
    "Mondal, Chanda, Varmora, Ramakrishnan. FairPO: Fair Preference Optimization for Multi-Label "
    "Learning. Tables 1-4."
)

GROUP_KEYS = {"P": "privileged", "P̄": "non_privileged"}
"""Display name of a label group → its key in the run store."""
METRIC_KEYS = {"mAP": "mAP", "Sample F1": "f1", "Accuracy": "accuracy"}
"""Display name of a metric → its key in the run store."""
METRIC_COLUMNS = pd.MultiIndex.from_product([list(METRIC_KEYS), list(GROUP_KEYS)])
"""The six value columns of every table, as (metric, group) pairs."""

Key = tuple[str, str]  # (variant, ablation)
BCE: Key = ("bce", "none")
FOCAL: Key = ("focal", "none")
FULL_CPO: Key = ("cpo", "none")
FROM_REFERENCE: Key = ("cpo", "from-reference")
"""FairPO-CPO started from a copy of its BCE reference (``init="reference"``), a row beyond the paper."""

LAYOUT_ROWS: dict[str, list[tuple[Key, str]]] = {
    "main": [
        (BCE, "BCE-SFT"),
        (("gdro", "none"), "GDRO + BCE"),
        (FOCAL, "Focal Loss"),
        (("dpo", "none"), "FairPO-DPO"),
        (("simpo", "none"), "FairPO-SimPO"),
        (FULL_CPO, "FairPO-CPO"),
    ],
    "components": [
        (FULL_CPO, "FairPO-CPO (Full)"),
        (("cpo", "no-pref"), "w/o Preference Loss (L_P is BCE)"),
        (("cpo", "no-constraint"), "w/o P̄ Constraint (L_P̄ is BCE)"),
        (("cpo", "no-grpo"), "w/o GRPO (fixed 0.5/0.5 weights)"),
        (("cpo", "global"), "Global CPO (no P/P̄ split, no GRPO)"),
    ],
    "preference": [
        (FULL_CPO, "FairPO-CPO (Full)"),
        (("cpo", "neg-only"), "Only Confusing Negatives"),
        (("cpo", "no-fallback"), "w/o BCE Fallback"),
    ],
    "beyond": [
        (FULL_CPO, "FairPO-CPO (Full)"),
        (FROM_REFERENCE, "Start from the reference (not in the paper)"),
    ],
}
"""Rows of each layout in the paper's order, as ((variant, ablation), the paper's name)."""

LAYOUTS = tuple(LAYOUT_ROWS)
PAPER_LAYOUT = {1: "main", 2: "main", 3: "components", 4: "preference"}
PAPER_DATASET = {1: "coco", 2: "nuswide", 3: "coco", 4: "coco"}
DATASET_NAMES = {"coco": "MS-COCO 2014", "nuswide": "NUS-WIDE", "digits": "digits (embedded)"}

MAIN_DELTAS = {"P vs Focal": ("P", FOCAL), "P̄ vs BCE": ("P̄", BCE)}
ABLATION_DELTAS = {"P vs BCE-SFT": ("P", BCE)}
DELTA = "ΔmAP"

DAGGER, DOUBLE_DAGGER = "†", "‡"
SIGNIFICANT, NOT_SIGNIFICANT = 0.05, 0.1
TESTS = {"welch": "Welch's t-test across seeds", "bootstrap": "paired bootstrap over test images"}
"""The two significance tests, by the name the ``test`` arguments take."""

Test = Literal["welch", "bootstrap"]


def _delta_spec(layout: str) -> dict[str, tuple[str, Key]]:
    return MAIN_DELTAS if layout == "main" else ABLATION_DELTAS


def _check_layout(layout: str) -> None:
    if layout not in LAYOUT_ROWS:
        raise ValueError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")


def _row_name(layout: str, key: Key) -> str:
    return dict(LAYOUT_ROWS[layout])[key]


def mark_for(p: float) -> str:
    """The paper's mark for a p-value: † below 0.05, ‡ above 0.1, nothing in between or for NaN."""
    if p is None or not math.isfinite(p):
        return ""
    if p < SIGNIFICANT:
        return DAGGER
    if p > NOT_SIGNIFICANT:
        return DOUBLE_DAGGER
    return ""


# ---------------------------------------------------------------- the table object


@dataclass(repr=False)
class Table:
    """One table in the paper's layout, numbers in percent.

    Fields:

    - ``layout``: ``"main"``, ``"components"`` or ``"preference"``;
    - ``dataset``: the data set the numbers come from; ``source``: ``"paper"`` or ``"ours"``;
    - ``mean``: (rows, :data:`METRIC_COLUMNS`) means, NaN for a row without runs; ``std``: the same
      shape, sample std over seeds (NaN where unknown or with a single seed);
    - ``delta``: (rows, Δ columns) ΔmAP as in the paper's last columns, NaN in the reference row;
    - ``change``: ablation layouts only, (rows, :data:`METRIC_COLUMNS`) change against the full
      FairPO-CPO row (NaN in that row); None for the main layout;
    - ``marks``: (rows, display columns) the † or ‡ shown after a Δ or a parenthesis, "" for none;
    - ``bold``: (rows, display columns) bool, the cells shown in bold;
    - ``n_seeds``: (rows,) runs behind each row (paper: 3 for Tables 1-2, 0 = not stated for 3-4);
      ``seeds``: row → the seeds used;
    - ``significance``: ours only, one row per comparison (see :func:`results_table`);
    - ``test``: the test behind the marks (a key of :data:`TESTS`), None for the paper's own marks;
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
        return self.message is not None

    @property
    def reference_rows(self) -> dict[str, str]:
        """Δ column → the row it is measured against (``"Ref"`` in that row)."""
        return {col: _row_name(self.layout, key) for col, (_, key) in _delta_spec(self.layout).items()
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
            present = self.n_seeds[self.n_seeds > 0]
            ns = sorted(set(int(n) for n in present))
            runs = (f"{ns[0]} seed{'s' if ns[0] != 1 else ''}" if len(ns) == 1
                    else "seeds per row: " + ", ".join(f"{r} {int(n)}" for r, n in present.items()))
            text = (f"Ours ({where}, {runs}): mean ± sample std (ddof=1) over seeds, in %. "
                    f"Best per column in bold.")
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
        if self.layout == "main":
            text += " ΔmAP(P) against Focal Loss, ΔmAP(P̄) against BCE-SFT (Ref)."
        else:
            ref = self.references.get("BCE-SFT mAP(P)")
            ref_text = f" = {ref:.2f}" if ref is not None and math.isfinite(ref) else " (no runs)"
            text += (f" ΔmAP(P) against BCE-SFT's mAP(P){ref_text}; parentheses: change against the "
                     f"full FairPO-CPO row.")
        return text

    def display_frame(self) -> pd.DataFrame:
        """The table as display strings (what :meth:`style` shows), same index and columns."""
        return _display_strings(self)

    def style(self, uuid: str | None = None) -> Rendered:
        """The table rendered for a notebook (see :func:`render`); ``.styler`` is the pandas Styler."""
        return render(self, uuid=uuid)

    def _repr_html_(self) -> str:
        return render(self)._repr_html_()

    def __str__(self) -> str:
        if self.empty:
            return self.message
        return f"{self.caption()}\n{self.display_frame().to_string()}"

    __repr__ = __str__  # Jupyter's text/plain: the table as text, never an object address


@dataclass(repr=False)
class Rendered:
    """A rendered table for notebooks: HTML for Jupyter / Jupyter Book, plain text as its repr.

    ``styler`` is the pandas Styler behind the HTML (None for a message).
    """

    html: str
    text: str
    styler: object | None = None

    def _repr_html_(self) -> str:
        return self.html

    def to_html(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def display_columns(layout: str) -> pd.MultiIndex:
    """The displayed columns: the six (metric, group) columns, then (ΔmAP, which Δ)."""
    return pd.MultiIndex.from_tuples(list(METRIC_COLUMNS) + [(DELTA, c) for c in _delta_spec(layout)])


# ---------------------------------------------------------------- the paper's numbers

# Transcribed from the paper (sections 4 and 5), one row per line, cells separated by
# "|", exactly as printed: "**x**" bold, "± s" the std, "(c)" the change in parentheses, † / ‡ marks,
# "Ref" the reference row. The row names are the paper's, shortened in Tables 3-4 to match LAYOUT_ROWS.
_PAPER_TEXT = {
    1: """
BCE-SFT           | 86.32 ± 0.11     | **90.65** ± 0.08 | 61.43 ± 0.15     | **64.89** ± 0.12 | 94.89 ± 0.09     | **98.12** ± 0.05 | -2.03     | Ref
GDRO + BCE        | 87.92 ± 0.12     | 90.41 ± 0.09     | 62.31 ± 0.20     | 64.75 ± 0.13     | 95.72 ± 0.10     | 98.05 ± 0.05     | -0.43     | -0.24‡
Focal Loss        | 88.35 ± 0.14     | 89.81 ± 0.12     | 63.15 ± 0.16     | 64.18 ± 0.15     | 96.11 ± 0.12     | 97.90 ± 0.07     | Ref       | -0.84
FairPO-DPO        | 88.02 ± 0.15     | 89.97 ± 0.11     | 63.45 ± 0.17     | 63.65 ± 0.16     | 97.89 ± 0.13     | 98.04 ± 0.06     | -0.33     | -0.68
FairPO-SimPO      | 87.67 ± 0.18     | 88.76 ± 0.21     | 62.34 ± 0.22     | 63.12 ± 0.19     | 95.69 ± 0.15     | 97.78 ± 0.09     | -0.68     | -1.89
FairPO-CPO        | **89.76** ± 0.09 | 90.34 ± 0.07     | **64.01** ± 0.13 | 64.32 ± 0.10     | **98.03** ± 0.07 | 98.06 ± 0.05     | **+1.41**† | **-0.31**‡
""",
    2: """
BCE-SFT           | 63.53 ± 0.15     | **70.24** ± 0.11 | 48.12 ± 0.21     | **55.83** ± 0.14 | 91.51 ± 0.12     | **95.22** ± 0.08 | -2.28     | Ref
GDRO + BCE        | 64.84 ± 0.16     | 69.91 ± 0.12     | 49.13 ± 0.22     | 55.62 ± 0.15     | 92.11 ± 0.13     | 95.13 ± 0.09     | -0.97     | -0.33
Focal Loss        | 65.81 ± 0.17     | 68.95 ± 0.15     | 50.33 ± 0.20     | 54.31 ± 0.18     | 93.05 ± 0.11     | 94.75 ± 0.11     | Ref       | -1.29
FairPO-DPO        | 66.34 ± 0.20     | 69.05 ± 0.14     | 51.71 ± 0.25     | 54.52 ± 0.19     | 93.92 ± 0.16     | 95.04 ± 0.09     | +0.53     | -1.19
FairPO-SimPO      | 64.11 ± 0.22     | 68.03 ± 0.24     | 48.82 ± 0.28     | 53.81 ± 0.22     | 91.94 ± 0.18     | 94.52 ± 0.13     | -1.70     | -2.21
FairPO-CPO        | **67.12** ± 0.14 | 69.83 ± 0.10     | **52.21** ± 0.19 | 55.24 ± 0.13     | **94.31** ± 0.10 | 95.12 ± 0.08     | **+1.31**† | **-0.41**‡
""",
    3: """
FairPO-CPO (Full)                   | **89.76**     | **90.34**     | **64.01**     | **64.32**     | **98.03**     | **98.06**     | **+3.44**
w/o Preference Loss (L_P is BCE)    | 88.12 (-1.64) | 90.45 (+0.11) | 62.45 (-1.56) | 64.80 (+0.48) | 95.80 (-2.23) | 98.09 (+0.03) | +1.80
w/o P̄ Constraint (L_P̄ is BCE)       | 89.55 (-0.21) | 88.98 (-1.36) | 63.70 (-0.31) | 62.95 (-1.37) | 97.90 (-0.13) | 97.55 (-0.51) | +3.23
w/o GRPO (fixed 0.5/0.5 weights)    | 88.48 (-1.28) | 89.75 (-0.59) | 62.88 (-1.13) | 63.50 (-0.82) | 96.53 (-1.50) | 97.88 (-0.18) | +2.16
Global CPO (no P/P̄ split, no GRPO)  | 88.55 (-1.21) | 90.68 (+0.34) | 62.75 (-1.26) | 64.85 (+0.47) | 96.95 (-1.08) | 98.11 (+0.05) | +2.23
""",
    4: """
FairPO-CPO (Full)                   | **89.76**      | **90.34**     | **64.01**      | **64.32**     | **98.03**     | **98.06**     | **+3.44**
Only Confusing Negatives            | 73.15 (-16.61) | 90.25 (-0.09) | 47.88 (-16.13) | 64.20 (-0.12) | 94.67 (-3.36) | 98.01 (-0.05) | -13.17
w/o BCE Fallback                    | 89.05 (-0.71)  | 90.21 (-0.13) | 63.20 (-0.81)  | 64.10 (-0.22) | 97.55 (-0.48) | 97.99 (-0.07) | +2.73
""",
}

PAPER_BCE_PRIVILEGED_MAP = 86.32
"""BCE-SFT's mAP(P) on MS-COCO in Table 1, the reference of the ΔmAP(P) of Tables 3-4 (not printed there)."""

PAPER_NOTES = [
    "FairPO-CPO's ΔmAP(P) on MS-COCO is +1.41 in Table 1 (against Focal Loss) and +3.44 in Table 3 and "
    "section 4 (against BCE-SFT): both subtractions are right, the references differ.",
    "The abstract's 'up to 3.59%' is Table 2's FairPO-CPO minus BCE-SFT (67.12 - 63.53), printed nowhere.",
    "Table 3, Global CPO, Sample F1 (P̄): printed 64.85 (+0.47), but 64.85 - 64.32 = +0.53.",
    "Table 3 bolds the full model in every column although two ablations are higher on all P̄ columns; "
    "Tables 1-2 bold FairPO-CPO's ΔmAP(P̄) although GDRO + BCE's is higher.",
    "The ‡ marks (p > 0.1) do not fit the printed std over 3 runs: Welch's t-test on the printed numbers "
    "gives p < 0.05 for every ‡ of Tables 1-2.",
    "Tables 3-4 print single numbers, without std or number of runs.",
]
"""What does not fit in the paper's tables, one sentence each (details in the module docstring)."""

_CELL = re.compile(
    r"^(?P<bold>\*\*)?(?P<value>[+-]?\d+\.\d+)(?:\*\*)?"
    r"(?:\s*±\s*(?P<std>\d+\.\d+))?"
    r"(?:\s*\((?P<change>[+-]\d+\.\d+)\))?"
    r"(?P<mark>[†‡])?$"
)


def _parse_cell(text: str) -> dict:
    text = text.strip()
    if text == "Ref":
        return dict(value=math.nan, std=math.nan, change=math.nan, mark="", bold=False, ref=True)
    match = _CELL.match(text)
    if match is None:
        raise ValueError(f"cannot read the transcribed cell {text!r}")
    groups = match.groupdict()
    return dict(value=float(groups["value"]),
                std=float(groups["std"]) if groups["std"] else math.nan,
                change=float(groups["change"]) if groups["change"] else math.nan,
                mark=groups["mark"] or "", bold=bool(groups["bold"]), ref=False)


def paper_table(number: int) -> Table:
    """The paper's Table ``number`` (1-4) as printed, in the same shape as our tables.

    ``delta`` and ``change`` are the printed values, not recomputed (see :func:`paper_arithmetic`).
    """
    if number not in _PAPER_TEXT:
        raise ValueError(f"the paper has Tables 1-4; got {number!r}")
    layout = PAPER_LAYOUT[number]
    names = [name for _, name in LAYOUT_ROWS[layout]]
    rows = [line.split("|") for line in _PAPER_TEXT[number].strip().splitlines()]
    if [r[0].strip() for r in rows] != names:
        raise AssertionError(f"Table {number}: transcribed rows {[r[0].strip() for r in rows]} != {names}")
    cells = [[_parse_cell(c) for c in r[1:]] for r in rows]
    deltas = list(_delta_spec(layout))
    columns = display_columns(layout)

    def grid(field_name: str, cols: Sequence, offset: int = 0) -> pd.DataFrame:
        return pd.DataFrame([[row[offset + j][field_name] for j in range(len(cols))] for row in cells],
                            index=names, columns=cols)

    mean = grid("value", METRIC_COLUMNS)
    std = grid("std", METRIC_COLUMNS)
    delta = grid("value", deltas, offset=6)
    change = grid("change", METRIC_COLUMNS) if layout != "main" else None
    marks = pd.DataFrame([[c["mark"] for c in row] for row in cells], index=names, columns=columns)
    bold = pd.DataFrame([[c["bold"] for c in row] for row in cells], index=names, columns=columns)
    n = pd.Series(3 if layout == "main" else 0, index=names)
    refs = {"BCE-SFT mAP(P)": PAPER_BCE_PRIVILEGED_MAP} if layout != "main" else {}
    return Table(layout=layout, dataset=PAPER_DATASET[number], source="paper", mean=mean, std=std,
                 delta=delta, change=change, marks=marks, bold=bold, n_seeds=n, references=refs,
                 number=number)


def paper_arithmetic() -> pd.DataFrame:
    """Every derived number the paper prints, recomputed from the values it prints beside it.

    One row per derived cell: ``table``, ``row``, ``column``, ``printed``, ``recomputed``,
    ``consistent`` (equal to the printed 2 decimals). Derived cells: the Δ columns of Tables 1-2 (row
    minus the reference row), the ΔmAP(P) of Tables 3-4 (row minus Table 1's BCE-SFT) and the
    parentheses of Tables 3-4 (row minus the full row).
    """
    out = []
    for number in (1, 2, 3, 4):
        table = paper_table(number)
        if table.layout == "main":
            for col, (group, ref_key) in MAIN_DELTAS.items():
                ref_name = _row_name("main", ref_key)
                for row in table.mean.index:
                    if row == ref_name:
                        continue
                    out.append((number, row, f"{DELTA} {col}", table.delta.loc[row, col],
                                table.mean.loc[row, ("mAP", group)] - table.mean.loc[ref_name, ("mAP", group)]))
        else:
            full = _row_name(table.layout, FULL_CPO)
            for row in table.mean.index:
                out.append((number, row, f"{DELTA} P vs BCE-SFT", table.delta.loc[row, "P vs BCE-SFT"],
                            table.mean.loc[row, ("mAP", "P")] - PAPER_BCE_PRIVILEGED_MAP))
                if row == full:
                    continue
                for col in METRIC_COLUMNS:
                    out.append((number, row, f"{col[0]} {col[1]} (change)", table.change.loc[row, col],
                                table.mean.loc[row, col] - table.mean.loc[full, col]))
    frame = pd.DataFrame(out, columns=["table", "row", "column", "printed", "recomputed"])
    frame["recomputed"] = frame["recomputed"].round(2)
    frame["consistent"] = np.isclose(frame["printed"], frame["recomputed"], atol=0.005)
    return frame


def paper_welch_from_stats() -> pd.DataFrame:
    """Welch's t-test on the paper's printed mean ± std (n = 3 runs) for every Δ of Tables 1-2.

    Shows which printed marks the printed spreads support. Columns: ``table``, ``row``, ``column``,
    ``printed_delta``, ``printed_mark``, ``t``, ``p``, ``mark`` (what p gives under the paper's rule).
    """
    out = []
    for number in (1, 2):
        table = paper_table(number)
        for col, (group, ref_key) in MAIN_DELTAS.items():
            ref = _row_name("main", ref_key)
            for row in table.mean.index:
                if row == ref:
                    continue
                c = ("mAP", group)
                res = stats.ttest_ind_from_stats(table.mean.loc[row, c], table.std.loc[row, c], 3,
                                                 table.mean.loc[ref, c], table.std.loc[ref, c], 3,
                                                 equal_var=False)
                out.append((number, row, f"{DELTA} {col}", table.delta.loc[row, col],
                            table.marks.loc[row, (DELTA, col)], float(res.statistic), float(res.pvalue),
                            mark_for(float(res.pvalue))))
    return pd.DataFrame(out, columns=["table", "row", "column", "printed_delta", "printed_mark", "t", "p",
                                      "mark"])


# ---------------------------------------------------------------- significance tests


def welch_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's two-sided t-test of mean(a) vs mean(b): ``(t, p)``; NaN when a side has < 2 values."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance on both sides: scipy says NaN
        res = stats.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries stay NaN and are not counted).

    With the m finite p-values sorted, ``p_(1) ≤ … ≤ p_(m)``, the adjusted value of the i-th is
    ``max_{j ≤ i} min(1, (m − j + 1) · p_(j))``; rejecting where it is below α controls the chance of any
    false claim in the family at α.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``resamples`` draws of ``n`` with replacement.

    Returns (resamples, n) int64, rows summing to n; the same ``seed`` gives the same counts. Equals
    ``np.bincount(idx[b], minlength=n)`` for ``idx = default_rng(seed).integers(0, n, (resamples, n))``.
    """
    if n < 1 or resamples < 1:
        raise ValueError(f"need n >= 1 and resamples >= 1, got n={n}, resamples={resamples}")
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    flat = (idx + np.arange(resamples)[:, None] * n).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n)


def weighted_average_precision(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                               max_elements: int = 2**24) -> np.ndarray:
    """Per-label average precision when sample i is counted ``weights[b, i]`` times, for every b.

    Equals, for each resample b (ties between scores form one threshold, as in sklearn and
    :func:`fairpo.method.metrics.average_precision`)::

        idx = np.repeat(np.arange(N), weights[b])
        out[b] = average_precision(scores[idx], labels[idx])

    Args:
        scores: (N, T) logits (any monotone transform gives the same AP).
        labels: (N, T) in {0, 1}.
        weights: (B, N) non-negative integer counts (see :func:`resample_counts`); a (N,) vector of
            ones gives the plain AP.
        max_elements: memory bound; resamples are processed in chunks of about this many B·N·T
            entries.

    Returns:
        (B, T) float64; NaN where a label has no (weighted) positive.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    n, t = scores.shape
    if labels.shape != (n, t) or weights.shape[1] != n:
        raise ValueError(f"shapes do not fit: scores {scores.shape}, labels {labels.shape}, "
                         f"weights {weights.shape} (need (N, T), (N, T), (B, N))")
    order = np.argsort(-scores, axis=0, kind="stable")  # (N, T) descending per label
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    hits = np.take_along_axis(labels, order, axis=0)  # (N, T)
    # index of the last member of each run of tied scores: every member is scored at that threshold
    last = np.ones((n, t), dtype=bool)
    last[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    position = np.where(last, np.arange(n)[:, None], n)
    run_end = np.minimum.accumulate(position[::-1], axis=0)[::-1]  # (N, T)
    out = np.empty((weights.shape[0], t))
    chunk = max(1, max_elements // (n * t))
    cols = np.arange(t)[None, :]
    for start in range(0, weights.shape[0], chunk):
        w = weights[start:start + chunk][:, order]  # (b, N, T): weight of the k-th ranked sample
        tp = np.cumsum(w * hits, axis=1)
        seen = np.cumsum(w, axis=1)
        tp_end = tp[:, run_end, cols]
        seen_end = seen[:, run_end, cols]
        precision = np.divide(tp_end, seen_end, out=np.zeros_like(tp_end), where=seen_end > 0)
        positives = tp[:, -1, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            ap = (w * hits * precision).sum(axis=1) / positives
        out[start:start + chunk] = np.where(positives > 0, ap, np.nan)
    return out


def group_map(ap: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean AP over the labels in ``mask`` (T,) that have a positive: (B, T) → (B,) (NaN if none)."""
    part = ap[:, np.asarray(mask, dtype=bool)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(part, axis=1)


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference" from resampled differences d* (NaNs dropped).

    ``min(1, 2 · min(1 + #{d* ≤ 0}, 1 + #{d* ≥ 0}) / (B + 1))``; identical models (every d* = 0) give 1.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan
    low, high = np.count_nonzero(d <= 0), np.count_nonzero(d >= 0)
    return float(min(1.0, 2 * (1 + min(low, high)) / (d.size + 1)))


def paired_bootstrap(logits_a: Sequence[np.ndarray], logits_b: Sequence[np.ndarray], labels: np.ndarray,
                     mask: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, float]:
    """Paired bootstrap over test images of the group mAP difference between two methods.

    Seed k of method A is paired with seed k of B: ``logits_a[k]`` and ``logits_b[k]`` are (N, T)
    test logits of the same N images. Each resample draws N images with replacement (the same draw
    for every run), recomputes each run's group mAP, and averages the per-seed differences A − B.

    Args:
        logits_a, logits_b: K arrays (N, T) each, K >= 1, paired by position.
        labels: (N, T) in {0, 1}, shared by all runs.
        mask: (T,) bool, the group's labels.
        resamples: B.
        seed: seeds the resampling (numpy ``default_rng``).
        confidence: level of the percentile interval.

    Returns:
        ``difference`` (observed, percent points), ``ci_low``, ``ci_high``, ``p`` (two-sided,
        :func:`bootstrap_p_value`), ``resamples``, ``pairs`` (K).
    """
    if len(logits_a) != len(logits_b) or not len(logits_a):
        raise ValueError(f"need the same number (>= 1) of paired runs, got {len(logits_a)} and {len(logits_b)}")
    labels = np.asarray(labels)
    counts = resample_counts(labels.shape[0], resamples, seed)
    full = np.ones((1, labels.shape[0]))

    def group(logits, weights):
        return group_map(weighted_average_precision(np.asarray(logits), labels, weights), mask)

    observed = np.mean([group(a, full) - group(b, full) for a, b in zip(logits_a, logits_b)]) * 100
    diffs = np.mean([group(a, counts) - group(b, counts) for a, b in zip(logits_a, logits_b)], axis=0) * 100
    return _bootstrap_summary(float(observed), diffs, confidence, len(logits_a))


def _bootstrap_summary(observed: float, diffs: np.ndarray, confidence: float, pairs: int) -> dict[str, float]:
    finite = diffs[np.isfinite(diffs)]
    tail = (1 - confidence) / 2
    low, high = (np.quantile(finite, [tail, 1 - tail]) if finite.size else (math.nan, math.nan))
    return dict(difference=observed, ci_low=float(low), ci_high=float(high), p=bootstrap_p_value(diffs),
                resamples=int(diffs.size), pairs=pairs)


# ---------------------------------------------------------------- our tables


def missing_message(dataset: str, results_dir: str | os.PathLike) -> str:
    """What to say, and what to run, when the store has no run for ``dataset``."""
    where = Path(results_dir).as_posix().rstrip("/") + "/"
    if dataset in ("coco", "nuswide"):
        how = (f"`fairpo reproduce --dataset {dataset} --data-root PATH --seeds 0 1 2` with your copy of "
               f"{DATASET_NAMES[dataset]} (a GPU is advised)")
    else:
        how = f"`fairpo reproduce --dataset {dataset} --seeds 0 1 2`"
    return f"No runs for {dataset} in {where}: run {how}."


def _metric_column(group: str, metric: str) -> str:
    return f"test.{GROUP_KEYS[group]}.{METRIC_KEYS[metric]}"


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
        path = folder / "test_logits.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the run finished without its test logits; "
                                    f"retrain it (fairpo.run.train.train(..., force=True)) for the bootstrap")
        tensors, _ = store.load_checkpoint(path)
        logits, labels = tensors["logits"].double().numpy(), tensors["labels"].numpy()
        if self.labels is None:
            self.labels = labels
            self.counts = resample_counts(labels.shape[0], self.resamples, self.seed)
            privileged = (store.read_record(folder) or {}).get("data", {}).get("privileged")
            if privileged is None:
                raise ValueError(f"{folder}/record.json does not say which labels are privileged")
            mask = np.zeros(labels.shape[1], dtype=bool)
            mask[list(privileged)] = True
            self.masks = {"P": mask, "P̄": ~mask}
        elif labels.shape != self.labels.shape or not np.array_equal(labels, self.labels):
            raise ValueError(f"{path} holds other test labels than the first run read: every run of a "
                             f"table must be evaluated on the same test images")
        result = (weighted_average_precision(logits, labels, np.ones((1, labels.shape[0])))[0],
                  weighted_average_precision(logits, labels, self.counts))
        self._ap[(key, seed)] = result
        return result

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
        return _bootstrap_summary(observed, diffs, confidence, len(seeds))


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
        bootstrap: run the paired bootstrap (needs each run's ``test_logits.safetensors``).
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
    _check_layout(layout)
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of: {', '.join(TESTS)}")
    if test == "bootstrap" and not bootstrap:
        raise ValueError("test='bootstrap' needs bootstrap=True")
    results_dir = Path(results_dir)
    frame = store.collect_records(results_dir) if records is None else records
    if not frame.empty:
        frame = frame[frame["dataset"] == dataset]
        if seeds is not None:
            frame = frame[frame["seed"].isin([int(s) for s in seeds])]
    rows = LAYOUT_ROWS[layout]
    names = [name for _, name in rows]
    columns = display_columns(layout)
    deltas = list(_delta_spec(layout))

    def runs(key: Key) -> pd.DataFrame:
        if frame.empty:
            return frame
        return frame[(frame["variant"] == key[0]) & (frame["ablation"] == key[1])].sort_values("seed")

    empty_numbers = pd.DataFrame(np.nan, index=names, columns=METRIC_COLUMNS)
    table = Table(layout=layout, dataset=dataset, source="ours", mean=empty_numbers.copy(),
                  std=empty_numbers.copy(), delta=pd.DataFrame(np.nan, index=names, columns=deltas),
                  change=empty_numbers.copy() if layout != "main" else None,
                  marks=pd.DataFrame("", index=names, columns=columns),
                  bold=pd.DataFrame(False, index=names, columns=columns),
                  n_seeds=pd.Series(0, index=names), test=test)
    if frame.empty or all(runs(key).empty for key, _ in rows):
        table.message = missing_message(dataset, results_dir)
        return table

    per_seed: dict[Key, pd.DataFrame] = {}
    for key, name in rows + [(BCE, "BCE-SFT")]:
        r = runs(key)
        values = pd.DataFrame({c: r[_metric_column(c[1], c[0])].to_numpy(float) * 100 for c in METRIC_COLUMNS},
                              index=r["seed"].to_numpy(int)) if not r.empty else None
        per_seed[key] = values
        if name in names and values is not None:
            if "stopped" in r and (r["stopped"] == "budget").any():
                table.budget.append(name)
            if "dead_heads" in r and r["dead_heads"].fillna(0).sum() > 0:
                table.dead[name] = int(r["dead_heads"].fillna(0).sum())
            table.mean.loc[name] = values.mean(axis=0).to_numpy()
            table.std.loc[name] = values.std(axis=0, ddof=1).to_numpy()
            table.n_seeds[name] = len(values)
            table.seeds[name] = list(values.index)
    table.missing = [name for key, name in rows if per_seed[key] is None]

    # Δ columns
    bce_map = per_seed[BCE]["mAP"]["P"].mean() if per_seed[BCE] is not None else math.nan
    for col, (group, ref_key) in _delta_spec(layout).items():
        ref_value = (per_seed[ref_key][("mAP", group)].mean() if per_seed[ref_key] is not None else math.nan)
        table.delta[col] = table.mean[("mAP", group)] - ref_value
        if ref_key in dict(rows):
            table.delta.loc[_row_name(layout, ref_key), col] = math.nan  # the "Ref" row
    if layout != "main":
        table.references["BCE-SFT mAP(P)"] = float(bce_map)
        full = _row_name(layout, FULL_CPO)
        table.change = table.mean - table.mean.loc[full]
        table.change.loc[full] = math.nan

    # comparisons: (row key, display column, reference key, group)
    comparisons = []
    for key, name in rows:
        for col, (group, ref_key) in _delta_spec(layout).items():
            if key != ref_key:
                comparisons.append((key, (DELTA, col), ref_key, group))
        if layout != "main" and key != FULL_CPO:
            comparisons += [(key, ("mAP", g), FULL_CPO, g) for g in GROUP_KEYS]
    logits = _Logits(results_dir, dataset, resamples, bootstrap_seed) if bootstrap else None
    out = []
    for key, column, ref_key, group in comparisons:
        a, b = per_seed[key], per_seed[ref_key]
        if a is None or b is None:
            continue
        t_stat, p_welch = welch_test(a[("mAP", group)], b[("mAP", group)])
        row = dict(row=_row_name(layout, key), column=" ".join(column), reference=_reference_name(layout, ref_key),
                   group=group, difference=float(a[("mAP", group)].mean() - b[("mAP", group)].mean()),
                   welch_t=t_stat, welch_p=p_welch, n_a=len(a), n_b=len(b))
        pairs = sorted(set(a.index) & set(b.index))
        row["pairs"] = len(pairs)
        if logits is not None and pairs:
            boot = logits.compare(key, ref_key, pairs, group, confidence)
            row.update(bootstrap_difference=boot["difference"], ci_low=boot["ci_low"], ci_high=boot["ci_high"],
                       bootstrap_p=boot["p"])
        else:
            row.update(bootstrap_difference=math.nan, ci_low=math.nan, ci_high=math.nan, bootstrap_p=math.nan)
        row["mark_welch"] = mark_for(row["welch_p"])
        row["mark_bootstrap"] = mark_for(row["bootstrap_p"])
        table.marks.loc[row["row"], column] = row[f"mark_{test}"]
        out.append(row)
    table.significance = pd.DataFrame(out, columns=[
        "row", "column", "reference", "group", "difference", "welch_t", "welch_p", "n_a", "n_b", "pairs",
        "bootstrap_difference", "ci_low", "ci_high", "bootstrap_p", "mark_welch", "mark_bootstrap"])
    table.significance["welch_p_holm"] = holm(table.significance["welch_p"])
    table.bold = best_cells(table)
    return table


def _reference_name(layout: str, key: Key) -> str:
    return dict(LAYOUT_ROWS[layout]).get(key) or {BCE: "BCE-SFT"}[key]


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


# ---------------------------------------------------------------- rendering


def _fmt(value: float, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if round(value, 2) == 0:
        value = 0.0  # no "-0.00"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _display_strings(table: Table) -> pd.DataFrame:
    columns = display_columns(table.layout)
    out = pd.DataFrame("", index=table.mean.index, columns=columns)
    refs = table.reference_rows
    for row in table.mean.index:
        for col in METRIC_COLUMNS:
            text = _fmt(table.mean.loc[row, col])
            std = table.std.loc[row, col]
            if math.isfinite(table.mean.loc[row, col]) and math.isfinite(std):
                text += f" ± {std:.2f}"
            if table.change is not None and math.isfinite(table.change.loc[row, col]):
                text += f" ({_fmt(table.change.loc[row, col], signed=True)}{table.marks.loc[row, col]})"
            out.loc[row, col] = text
        for col in table.delta.columns:
            if refs.get(col) == row:
                out.loc[row, (DELTA, col)] = "Ref"
            else:
                out.loc[row, (DELTA, col)] = (_fmt(table.delta.loc[row, col], signed=True)
                                              + table.marks.loc[row, (DELTA, col)])
    return out


def _uuid(table: Table) -> str:
    # Styler's default id is random; a fixed one keeps the HTML identical between runs (nbval).
    return f"fairpo-{table.source}-{table.layout}-{table.dataset}" + (f"-{table.number}" if table.number else "")


def _message(text: str) -> Rendered:
    return Rendered(html=f"<p><strong>{_html_escape(text)}</strong></p>", text=text)


def render(table: Table, uuid: str | None = None) -> Rendered:
    """``table`` for display: the Styler of :func:`styler` as HTML, the text table as plain text.

    With nothing to show (``table.message``) both are the message.
    """
    if table.empty:
        return _message(table.message)
    style = styler(table, uuid)
    return Rendered(html=style.to_html(), text=str(table), styler=style)


def styler(table: Table, uuid: str | None = None):
    """A pandas Styler of ``table``: display strings, bold cells, caption naming the test.

    The HTML ids come from ``uuid`` (default: from the table's source, layout and data set), never
    random, so the same table gives the same HTML.
    """
    if table.empty:
        raise ValueError(f"nothing to style: {table.message}")
    shown = _display_strings(table)
    bold = table.bold.reindex(index=shown.index, columns=shown.columns, fill_value=False)
    style = shown.style.set_uuid(uuid or _uuid(table)).set_caption(table.caption())
    style = style.apply(lambda _: np.where(bold.to_numpy(), "font-weight: bold", ""), axis=None)
    return style.set_table_styles([
        {"selector": "caption", "props": "caption-side: top; text-align: left; font-size: 0.9em;"},
        {"selector": "th, td", "props": "text-align: center; padding: 2px 6px;"},
        {"selector": "th.row_heading", "props": "text-align: left;"},
    ])


def comparison(ours: Table, paper: Table) -> pd.DataFrame:
    """Numbers side by side: rows of the layout, columns (display column, paper|ours).

    Means for the six metric columns, Δ for the Δ columns (NaN in the reference row). Raises if the
    two tables have different layouts.
    """
    if ours.layout != paper.layout:
        raise ValueError(f"cannot compare a {ours.layout!r} table with a {paper.layout!r} table")
    columns = display_columns(ours.layout)

    def values(t: Table) -> pd.DataFrame:
        return pd.concat([t.mean, t.delta.set_axis(columns[6:], axis=1)], axis=1)

    parts = {"paper": values(paper), "ours": values(ours)}
    frame = pd.concat(parts, axis=1)  # (source, metric, group)
    frame.columns = frame.columns.reorder_levels([1, 2, 0])
    return frame[pd.MultiIndex.from_tuples([(m, g, s) for m, g in columns for s in ("paper", "ours")])]


def sign_agreement(ours: Table, paper: Table) -> pd.DataFrame:
    """For each Δ column and row: the paper's Δ, ours, and whether their signs agree (NaN if either is)."""
    out = []
    for col in ours.delta.columns:
        for row in ours.delta.index:
            p, o = paper.delta.loc[row, col], ours.delta.loc[row, col]
            agree = (np.sign(p) == np.sign(o)) if math.isfinite(p) and math.isfinite(o) else math.nan
            out.append((row, col, p, o, agree))
    return pd.DataFrame(out, columns=["row", "column", "paper", "ours", "same_sign"])


def side_by_side(ours: Table, paper: Table) -> Rendered:
    """For every column the paper's value next to ours (means and Δs, with marks); bold: the paper's
    as printed, ours the best per column. If ``ours`` is empty, its message instead."""
    if ours.empty:
        return _message(ours.message)
    if ours.layout != paper.layout:
        raise ValueError(f"cannot compare a {ours.layout!r} table with a {paper.layout!r} table")
    columns = display_columns(ours.layout)
    shown = {}
    for name, t in (("paper", paper), ("ours", ours)):
        strings = _display_strings(t)
        for col in METRIC_COLUMNS:  # the means only: the ± and parentheses make the view too wide
            strings[col] = [_fmt(v) for v in t.mean[col]]
        shown[name] = strings
    frame = pd.concat(shown, axis=1)
    frame.columns = frame.columns.reorder_levels([1, 2, 0])
    order = pd.MultiIndex.from_tuples([(m, g, s) for m, g in columns for s in ("paper", "ours")])
    frame = frame[order]
    bold = pd.concat({"paper": paper.bold, "ours": ours.bold}, axis=1)
    bold.columns = bold.columns.reorder_levels([1, 2, 0])
    bold = bold[order].to_numpy()
    caption = (f"Paper (Table {paper.number}, {DATASET_NAMES.get(paper.dataset, paper.dataset)}) beside ours "
               f"({DATASET_NAMES.get(ours.dataset, ours.dataset)}), in %: means only. Bold: the paper's as "
               f"printed, ours the best per column. Our marks: {TESTS[ours.test] if ours.test else 'none'}.")
    style = frame.style.set_uuid(f"fairpo-vs-{ours.layout}-{ours.dataset}-{paper.number}").set_caption(caption)
    style = style.apply(lambda _: np.where(bold, "font-weight: bold", ""), axis=None)
    style = style.set_table_styles([
        {"selector": "caption", "props": "caption-side: top; text-align: left; font-size: 0.9em;"},
        {"selector": "th, td", "props": "text-align: center; padding: 2px 5px;"},
        {"selector": "th.row_heading", "props": "text-align: left;"},
    ])
    return Rendered(html=style.to_html(), text=f"{caption}\n{frame.to_string()}", styler=style)


# ---------------------------------------------------------------- notebook parameters

TABLE_PARAMETERS = ("results_dir", "dataset", "seeds", "test", "resamples", "jobs")
"""Parameters of ``notebooks/results.ipynb`` and ``notebooks/ablations.ipynb``."""


def parse_seeds(seeds: str | int | Sequence[int]) -> tuple[int, ...]:
    """``"0,1,2"``, ``"0 1 2"``, ``2`` or ``[0, 1, 2]`` → ``(0, 1, 2)``; non-negative, no duplicates."""
    if isinstance(seeds, str):
        parts = [p for p in re.split(r"[,\s]+", seeds.strip()) if p]
        if not parts or not all(p.isdigit() for p in parts):
            raise ValueError(f"seeds must be non-negative integers separated by commas, e.g. '0,1,2'; got {seeds!r}")
        values = [int(p) for p in parts]
    elif isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        values = [int(seeds)]
    else:
        values = [int(s) for s in seeds]
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise ValueError(f"seeds must be distinct non-negative integers, at least one; got {seeds!r}")
    return tuple(values)


def table_parameters(namespace: dict, before: set[str]) -> dict:
    """Validate the parameters a results notebook gained since ``before`` (papermill only warns about
    a misspelt name) and return them cleaned: ``results_dir`` (Path), ``dataset``, ``seeds`` (tuple),
    ``test``, ``resamples``, ``jobs``."""
    from fairpo.run.config import DATASETS

    new = {name for name in set(namespace) - set(before) if not name.startswith("_")}
    unknown = sorted(new - set(TABLE_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; this notebook takes: {', '.join(TABLE_PARAMETERS)}")
    p = {name: namespace[name] for name in TABLE_PARAMETERS}
    if p["dataset"] not in DATASETS:
        raise ValueError(f"unknown dataset {p['dataset']!r}; choose one of: {', '.join(DATASETS)}")
    if p["test"] not in TESTS:
        raise ValueError(f"unknown test {p['test']!r}; choose one of: {', '.join(TESTS)}")
    for name in ("resamples", "jobs"):
        if isinstance(p[name], bool) or not isinstance(p[name], int) or p[name] < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {p[name]!r}")
    return dict(results_dir=Path(p["results_dir"]), dataset=p["dataset"], seeds=parse_seeds(p["seeds"]),
                test=p["test"], resamples=p["resamples"], jobs=p["jobs"])
