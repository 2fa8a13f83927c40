"""Claims and verdicts: Holm's correction, the verdict rules, the paper's differences."""

import math

import numpy as np
import pandas as pd
import pytest

from fairpo.report import stats, verdicts
from fairpo.report.stats import holm


def test_holm_matches_a_hand_computed_example():
    # sorted: 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04, raised to the running max 0.06)
    assert np.allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    out = holm([0.5, math.nan, 0.6])  # NaN is not counted in m
    assert math.isnan(out[1]) and np.allclose(out[[0, 2]], [1.0, 1.0])


def _records(values: dict) -> pd.DataFrame:
    """values: (variant, arm) -> list of (privileged, non_privileged) mAP fractions, one per seed."""
    rows = []
    for (variant, arm), per_seed in values.items():
        for seed, (p, n) in enumerate(per_seed):
            rows.append({"dataset": "toy", "variant": variant, "ablation": arm, "seed": seed,
                         "test.privileged.mAP": p, "test.non_privileged.mAP": n})
    return pd.DataFrame(rows)


CPO_VS_BCE = [c for c in verdicts.CLAIMS if c.a == verdicts.CPO and c.b == verdicts.BCE]


@pytest.mark.parametrize("cpo, expected", [
    ([(0.80, 0.90), (0.81, 0.90), (0.82, 0.91)], ("reproduced", "reproduced")),          # better on P, same on P̄
    ([(0.55, 0.80), (0.56, 0.81), (0.54, 0.80)], ("not reproduced", "not reproduced")),  # worse on both
    ([(0.75, 0.90), (0.62, 0.91), (0.66, 0.90)], ("not reproduced", "reproduced")),      # no significant change
])
def test_verdicts_follow_the_direction_and_significance(cpo, expected):
    bce = [(0.65, 0.90), (0.66, 0.905), (0.64, 0.90)]
    frame = verdicts.claims("unused", "toy", records=_records({("bce", "none"): bce, ("cpo", "none"): cpo}),
                            selected=CPO_VS_BCE)
    assert tuple(frame["verdict"]) == expected
    assert np.allclose(frame["ours"], [100 * (np.mean([c[0] for c in cpo]) - np.mean([b[0] for b in bce])),
                                       100 * (np.mean([c[1] for c in cpo]) - np.mean([b[1] for b in bce]))])


def test_a_missing_row_or_a_single_seed_is_not_testable():
    records = _records({("bce", "none"): [(0.6, 0.9), (0.61, 0.9)], ("cpo", "none"): [(0.8, 0.9)]})
    frame = verdicts.claims("unused", "toy", records=records)
    assert set(frame["verdict"]) == {"not testable here"}
    assert len(frame) == len(verdicts.CLAIMS)


def test_paper_differences_are_read_from_the_transcribed_tables():
    by_text = {c.text: c for c in verdicts.CLAIMS}
    # Table 1: 89.76 - 86.32; Table 2: 67.12 - 63.53; Table 4: 89.76 - 73.15
    assert verdicts.paper_difference(by_text["FairPO-CPO beats BCE-SFT on mAP(P)"], "coco") == pytest.approx(3.44)
    assert verdicts.paper_difference(by_text["FairPO-CPO beats BCE-SFT on mAP(P)"], "nuswide") == pytest.approx(3.59)
    neg_only = next(c for c in verdicts.CLAIMS if c.b == ("cpo", "neg-only"))
    assert verdicts.paper_difference(neg_only, "digits") == pytest.approx(16.61)  # COCO's, for other data sets


def test_trend_test_detects_a_consistent_rise_and_not_noise():
    mean, p = stats.trend_test([0.010, 0.012, 0.011, 0.009, 0.013])
    assert mean == pytest.approx(0.011) and p < 0.01
    _, p_noise = stats.trend_test([0.01, -0.012, 0.004, -0.003])
    assert p_noise > 0.1


def test_detectable_difference_approaches_the_normal_formula_and_shrinks_with_seeds():
    # many seeds: t ≈ normal, so d = (z_0.975 + z_0.8) · std · √(2/n) = 2.8016 · std · √(2/n)
    assert stats.detectable_difference(1.0, 400) == pytest.approx(2.8016 * math.sqrt(2 / 400), rel=0.01)
    three, five = stats.detectable_difference(1.0, 3), stats.detectable_difference(1.0, 5)
    assert three > five > 0
    assert math.isnan(stats.detectable_difference(0.0, 3)) and math.isnan(stats.detectable_difference(1.0, 1))


def test_questions_beyond_the_paper_are_answered_yes_or_no_without_a_paper_difference():
    asl = [(0.60, 0.90), (0.61, 0.90), (0.59, 0.905)]
    cpo = [(0.80, 0.90), (0.81, 0.905), (0.82, 0.90)]
    records = _records({("asl", "none"): asl, ("cpo", "none"): cpo})
    questions = [q for q in verdicts.QUESTIONS if q.b == ("asl", "none")]
    frame = verdicts.claims("unused", "toy", records=records, selected=questions)
    assert list(frame["verdict"]) == ["yes", "yes"]  # higher on P, no drop on P̄
    assert frame["paper"].isna().all()
    assert verdicts.summary_sentence(frame).startswith("Of 2 questions") and "2 yes" in verdicts.summary_sentence(frame)
    worse = _records({("asl", "none"): cpo, ("cpo", "none"): asl})
    assert verdicts.claims("unused", "toy", records=worse, selected=questions[:1])["verdict"].tolist() == ["no"]


def test_a_summary_says_claims_or_questions_by_family_even_when_nothing_is_testable():
    empty = pd.DataFrame(columns=["dataset", "variant", "ablation", "seed"])
    claims = verdicts.claims("unused", "toy", records=empty)
    questions = verdicts.claims("unused", "toy", records=empty, selected=verdicts.QUESTIONS)
    assert verdicts.summary_sentence(claims).startswith(f"Of {len(verdicts.CLAIMS)} claims")
    assert verdicts.summary_sentence(questions).startswith(f"Of {len(verdicts.QUESTIONS)} questions")
