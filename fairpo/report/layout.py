"""The paper's table layouts: which rows (method, arm) each table has, its columns, and what its Δ
columns are measured against. Shared by the paper's tables (:mod:`fairpo.report.paper`), ours
(:mod:`fairpo.report.tables`) and their rendering (:mod:`fairpo.report.rendering`).

Layouts: ``"main"`` (Tables 1 and 2: six methods), ``"components"`` (Table 3: FairPO-CPO and four
component ablations), ``"preference"`` (Table 4: FairPO-CPO and two preference ablations), and
``"beyond"`` (FairPO-CPO against rows the paper does not have: its copy start, and the asymmetric and
distribution-balanced losses).

Δ columns follow the paper: in the main layout ΔmAP(P) against Focal Loss and ΔmAP(P̄) against BCE-SFT
(the row marked ``Ref``); in the ablation layouts ΔmAP(P) against BCE-SFT (the ``bce`` runs, not a row
of the table) and, in parentheses after each value, the change against the full FairPO-CPO row.
"""

from __future__ import annotations

import pandas as pd

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
        (("asl", "none"), "Asymmetric loss (not in the paper)"),
        (("dbloss", "none"), "Distribution-balanced loss (not in the paper)"),
    ],
}
"""Rows of each layout in the paper's order, as ((variant, ablation), the paper's name)."""

LAYOUTS = tuple(LAYOUT_ROWS)
DATASET_NAMES = {"coco": "MS-COCO 2014", "nuswide": "NUS-WIDE", "digits": "digits (embedded)"}

MAIN_DELTAS = {"P vs Focal": ("P", FOCAL), "P̄ vs BCE": ("P̄", BCE)}
ABLATION_DELTAS = {"P vs BCE-SFT": ("P", BCE)}
DELTA = "ΔmAP"


def delta_spec(layout: str) -> dict[str, tuple[str, Key]]:
    """Δ column → (group, the row it is measured against) of ``layout``."""
    return MAIN_DELTAS if layout == "main" else ABLATION_DELTAS


def check_layout(layout: str) -> None:
    """Raise ``ValueError`` naming the layouts unless ``layout`` is one."""
    if layout not in LAYOUT_ROWS:
        raise ValueError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")


def row_name(layout: str, key: Key) -> str:
    """The paper's name of the row ``key`` in ``layout`` (BCE-SFT for the ablations' reference runs)."""
    return dict(LAYOUT_ROWS[layout]).get(key) or {BCE: "BCE-SFT"}[key]


def display_columns(layout: str) -> pd.MultiIndex:
    """The displayed columns: the six (metric, group) columns, then (ΔmAP, which Δ)."""
    return pd.MultiIndex.from_tuples(list(METRIC_COLUMNS) + [(DELTA, c) for c in delta_spec(layout)])
