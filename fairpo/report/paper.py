"""The paper's Tables 1–4 as printed, and checks of their own arithmetic.

:func:`paper_table` gives the paper's numbers, transcribed cell by cell from its Tables 1–4 (Mondal,
Chanda, Varmora, Ramakrishnan, *FairPO: Fair Preference Optimization for Multi-Label Learning*, section 4
and section 5), in the shape of our tables (:class:`~fairpo.report.tables.Table`). Numbers are facts and
may be cited; the transcription keeps what the paper prints (bold, ``Ref``, the † and ‡ marks, the
parentheses of Tables 3–4) so the tests can check its arithmetic.

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
import re
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from fairpo.report.layout import (DELTA, FULL_CPO, LAYOUT_ROWS, MAIN_DELTAS, METRIC_COLUMNS, delta_spec,
                                  display_columns, row_name)
from fairpo.report.stats import mark_for
from fairpo.report.tables import Table

PAPER_CITATION = (
    "Mondal, Chanda, Varmora, Ramakrishnan. FairPO: Fair Preference Optimization for Multi-Label "
    "Learning. Tables 1-4."
)
PAPER_LAYOUT = {1: "main", 2: "main", 3: "components", 4: "preference"}
PAPER_DATASET = {1: "coco", 2: "nuswide", 3: "coco", 4: "coco"}

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
    deltas = list(delta_spec(layout))
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
                ref_name = row_name("main", ref_key)
                for row in table.mean.index:
                    if row == ref_name:
                        continue
                    out.append((number, row, f"{DELTA} {col}", table.delta.loc[row, col],
                                table.mean.loc[row, ("mAP", group)] - table.mean.loc[ref_name, ("mAP", group)]))
        else:
            full = row_name(table.layout, FULL_CPO)
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
            ref = row_name("main", ref_key)
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
