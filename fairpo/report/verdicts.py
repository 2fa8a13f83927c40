"""The paper's claims, one row each, tested on the runs in the store: what the book says, generated.

Every claim the book makes about our runs comes from :func:`claims`, never from typed prose: each
claim of the paper (Tables 1–4 and its text) is turned into a comparison between two sets of runs of
the store — per-seed test mAP of one group — and tested with Welch's two-sided t-test across seeds.
The p-values of one *family* (the claims of one table) are adjusted with Holm's method
(:func:`fairpo.report.stats.holm`), so the chance of any false claim in a family stays at ``level``.

Verdicts:

- ``reproduced`` — the difference is significant (adjusted p < level) in the paper's direction; for a
  "no harm" claim, the difference is *not* significantly negative;
- ``not reproduced`` — significant the other way, or no significant difference where the paper claims
  one (the ``detail`` column says which);
- ``not testable here`` — a row has no runs, or fewer than two seeds.

A statement across seeds is what can hold on another machine: floats differ between CPUs, a
significant difference between methods should not.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from fairpo.report.paper import paper_table
from fairpo.report.stats import LEVEL, holm, welch_test
from fairpo.run import store

VERDICTS = ("reproduced", "not reproduced", "not testable here")


@dataclass(frozen=True)
class Claim:
    """``a`` beats ``b`` on the test mAP of ``group`` (``"higher"``), or is not below it (``"no harm"``).

    ``a`` and ``b`` are (variant, arm) keys of the store (``arm`` is the store's ``ablation`` column);
    ``tables`` names, per data set, the paper's table and the names of the two rows there, so the
    paper's difference is read from the transcription (:func:`fairpo.report.paper.paper_table`).
    """

    family: str
    text: str
    a: tuple[str, str]
    b: tuple[str, str]
    group: str  # "privileged" | "non_privileged"
    kind: str = "higher"  # "higher" | "no harm"
    tables: tuple[tuple[str, int, str, str], ...] = ()  # (data set, table number, row a, row b)
    question: bool = False  # a reader's question beyond the paper: answered yes / no, not "reproduced"


CPO, BCE, FOCAL = ("cpo", "none"), ("bce", "none"), ("focal", "none")
P, N = "privileged", "non_privileged"
FULL = "FairPO-CPO (Full)"


def _main(a: str, b: str) -> tuple[tuple[str, int, str, str], ...]:
    return (("coco", 1, a, b), ("nuswide", 2, a, b))


CLAIMS: tuple[Claim, ...] = (
    Claim("Tables 1-2", "FairPO-CPO beats Focal Loss on mAP(P)", CPO, FOCAL, P,
          tables=_main("FairPO-CPO", "Focal Loss")),
    Claim("Tables 1-2", "FairPO-CPO beats BCE-SFT on mAP(P)", CPO, BCE, P, tables=_main("FairPO-CPO", "BCE-SFT")),
    Claim("Tables 1-2", "FairPO-CPO does not lower mAP(P̄) against BCE-SFT", CPO, BCE, N, kind="no harm",
          tables=_main("FairPO-CPO", "BCE-SFT")),
    Claim("Tables 1-2", "FairPO-CPO beats FairPO-DPO on mAP(P)", CPO, ("dpo", "none"), P,
          tables=_main("FairPO-CPO", "FairPO-DPO")),
    Claim("Tables 1-2", "FairPO-CPO beats FairPO-SimPO on mAP(P)", CPO, ("simpo", "none"), P,
          tables=_main("FairPO-CPO", "FairPO-SimPO")),
    Claim("Table 3", "the preference loss raises mAP(P) (full beats w/o preference loss)", CPO,
          ("cpo", "no-pref"), P, tables=(("coco", 3, FULL, "w/o Preference Loss (L_P is BCE)"),)),
    Claim("Table 3", "the P̄ constraint protects mAP(P̄) (full beats w/o constraint)", CPO,
          ("cpo", "no-constraint"), N, tables=(("coco", 3, FULL, "w/o P̄ Constraint (L_P̄ is BCE)"),)),
    Claim("Table 3", "the group weights raise mAP(P) (full beats fixed 0.5/0.5)", CPO, ("cpo", "no-grpo"), P,
          tables=(("coco", 3, FULL, "w/o GRPO (fixed 0.5/0.5 weights)"),)),
    Claim("Table 3", "targeting P raises mAP(P) (full beats global CPO)", CPO, ("cpo", "global"), P,
          tables=(("coco", 3, FULL, "Global CPO (no P/P̄ split, no GRPO)"),)),
    Claim("Table 4", "confusing positives matter for mAP(P) (full beats only confusing negatives)", CPO,
          ("cpo", "neg-only"), P, tables=(("coco", 4, FULL, "Only Confusing Negatives"),)),
    Claim("Table 4", "the BCE fallback raises mAP(P) (full beats w/o fallback)", CPO, ("cpo", "no-fallback"), P,
          tables=(("coco", 4, FULL, "w/o BCE Fallback"),)),
)
"""The paper's claims about its tables, as comparisons of two rows (differences are a − b, in points)."""

BEYOND = "Beyond the paper: does FairPO help?"
QUESTIONS: tuple[Claim, ...] = (
    Claim(BEYOND, "FairPO-CPO beats the asymmetric loss on mAP(P)", CPO, ("asl", "none"), P, question=True),
    Claim(BEYOND, "FairPO-CPO beats the distribution-balanced loss on mAP(P)", CPO, ("dbloss", "none"), P,
          question=True),
    Claim(BEYOND, "FairPO-CPO does not lower mAP(P̄) against the asymmetric loss", CPO, ("asl", "none"), N,
          kind="no harm", question=True),
    Claim(BEYOND, "starting FairPO-CPO from its reference beats fresh heads on mAP(P)", ("cpo", "from-reference"),
          CPO, P, question=True),
)
"""A reader's questions the paper does not ask — FairPO against the losses practitioners use for rare
labels, and the start Algorithm 2 suggests — tested the same way, answered *yes* or *no*."""
ANSWERS = {"reproduced": "yes", "not reproduced": "no", "not testable here": "not testable here"}


def paper_difference(claim: Claim, dataset: str) -> float:
    """The paper's a − b for ``dataset`` (COCO's where the paper has no table for it; NaN if none)."""
    by_dataset = {d: rest for d, *rest in claim.tables}
    spec = by_dataset.get(dataset, by_dataset.get("coco"))
    if spec is None:
        return math.nan
    number, row_a, row_b = spec
    mean = paper_table(number).mean[("mAP", "P" if claim.group == P else "P̄")]
    return float(mean[row_a] - mean[row_b])


def _per_seed(records: pd.DataFrame, key: tuple[str, str], group: str) -> pd.Series:
    rows = records[(records["variant"] == key[0]) & (records["ablation"] == key[1])]
    return pd.Series(rows[f"test.{group}.mAP"].to_numpy(float) * 100, index=rows["seed"].to_numpy(int))


def _verdict(claim: Claim, difference: float, p_adjusted: float, level: float) -> tuple[str, str]:
    if not math.isfinite(p_adjusted):
        return "not testable here", "fewer than two seeds in a row, or no spread at all"
    significant = p_adjusted < level
    if claim.kind == "no harm":
        if significant and difference < 0:
            return "not reproduced", "significantly lower"
        return "reproduced", "no significant drop" if not significant else "significantly higher"
    if significant:
        return ("reproduced", "significantly higher") if difference > 0 else ("not reproduced", "significantly lower")
    return "not reproduced", "no significant difference"


def claims(results_dir: str | os.PathLike, dataset: str = "digits", *, seeds: Sequence[int] | None = None,
           level: float = LEVEL, records: pd.DataFrame | None = None,
           selected: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """One row per claim: ``family``, ``claim``, ``group``, ``paper`` (the paper's difference for this
    data set, else COCO's; NaN if it prints none), ``ours`` (mean difference a − b, points), ``n_a``,
    ``n_b``, ``p`` (Welch), ``p_holm`` (Holm within the family), ``verdict``, ``detail``."""
    frame = store.collect_records(results_dir) if records is None else records
    if not frame.empty:
        frame = frame[frame["dataset"] == dataset]
        if seeds is not None:
            frame = frame[frame["seed"].isin([int(s) for s in seeds])]
    rows = []
    for claim in selected:
        a = _per_seed(frame, claim.a, claim.group) if not frame.empty else pd.Series(dtype=float)
        b = _per_seed(frame, claim.b, claim.group) if not frame.empty else pd.Series(dtype=float)
        _, p = welch_test(a, b)
        rows.append(dict(family=claim.family, claim=claim.text, group=claim.group,
                         paper=paper_difference(claim, dataset),
                         ours=float(a.mean() - b.mean()) if len(a) and len(b) else math.nan,
                         n_a=len(a), n_b=len(b), p=p))
    out = pd.DataFrame(rows)
    out["p_holm"] = np.nan
    for _, index in out.groupby("family", sort=False).groups.items():
        out.loc[index, "p_holm"] = holm(out.loc[index, "p"])
    verdicts = [_verdict(c, d, p, level) for c, d, p in zip(selected, out["ours"], out["p_holm"])]
    out["verdict"] = [ANSWERS[v] if c.question else v for c, (v, _) in zip(selected, verdicts)]
    out["detail"] = [d for _, d in verdicts]
    return out


def _fmt(value: float, signed: bool = True, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def as_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The claims table for readers: strings, no index, an em dash where there is no number."""
    return pd.DataFrame({
        "claim": frame["claim"],
        "paper Δ (points)": frame["paper"].map(_fmt),
        "ours Δ (points)": frame["ours"].map(_fmt),
        "seeds": [f"{a} vs {b}" for a, b in zip(frame["n_a"], frame["n_b"])],
        "Welch p (Holm)": frame["p_holm"].map(_fmt_p),
        "verdict": [f"{v} ({d})" for v, d in zip(frame["verdict"], frame["detail"])],
    })


def summary_sentence(frame: pd.DataFrame) -> str:
    """``k of n claims reproduced, …`` for a claims frame."""
    counts = frame["verdict"].value_counts()
    if len(frame) and (frame["family"] == BEYOND).all():
        parts = [f"{int(counts.get(v, 0))} {v}" for v in ("yes", "no", "not testable here") if counts.get(v, 0)]
        return f"Of {len(frame)} questions tested at level {LEVEL} (Welch across seeds, Holm across them): " \
               + ", ".join(parts) + "."
    parts = [f"{int(counts.get(v, 0))} {v}" for v in VERDICTS if counts.get(v, 0)]
    return f"Of {len(frame)} claims tested at level {LEVEL} (Welch across seeds, Holm within each table): " \
           + ", ".join(parts) + "."
