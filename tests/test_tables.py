"""Tests for the report's tables: the paper's transcribed numbers (fairpo.report.paper), our tables from a fake
run store (fairpo.report.tables), the significance tests (fairpo.report.stats) and the rendering
(fairpo.report.rendering).

The fake store is built here with fairpo.run.store (record.json + test_logits.safetensors per run); every
expected value is computed in the test from the numbers written, independently of the report modules.
Standard deviations are sample std (ddof=1), computed with the statistics module.
"""

import math
import re
import statistics

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from fairpo.method.metrics import average_precision, group_metrics
from fairpo.report import layout, paper, rendering, stats as report_stats
from fairpo.report.layout import DELTA, METRIC_COLUMNS
from fairpo.report.paper import paper_arithmetic, paper_table
from fairpo.report.stats import paired_bootstrap, resample_counts, resampled_average_precision
from fairpo.report.tables import results_table
from fairpo.run import params, store

PRIVILEGED = [3]
N_TEST, N_LABELS = 240, 4
MAIN_KEYS = [("bce", "none"), ("gdro", "none"), ("focal", "none"), ("dpo", "none"), ("simpo", "none"),
             ("cpo", "none")]
ABLATION_KEYS = [("cpo", a) for a in ("no-pref", "no-constraint", "no-grpo", "global", "neg-only", "no-fallback")]


def make_labels(seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(N_TEST, N_LABELS, generator=g) < torch.tensor([0.5, 0.4, 0.3, 0.15])).float()
    labels[0] = 1  # every label has a positive
    return labels


def logits_with_skill(labels, skill, seed):
    """Logits whose ranking gets better with ``skill`` (0 = noise)."""
    g = torch.Generator().manual_seed(seed)
    return skill * (2 * labels - 1) + torch.randn(labels.shape, generator=g)


def write_run(root, variant, ablation, seed, logits, labels, test=None, dataset="digits"):
    """A finished run: record.json (test metrics from the logits unless ``test`` is given) + logits."""
    folder = store.run_dir(root, dataset, variant, ablation, seed)
    metrics = group_metrics(logits, labels, PRIVILEGED)
    if test is not None:
        for group, values in test.items():
            metrics[group].update(values)
    store.write_record(folder, {"status": store.FINISHED, "data": {"privileged": PRIVILEGED},
                                "test": metrics, "best_epoch": 0})
    store.save_checkpoint(folder / "test_logits.safetensors", {"logits": logits, "labels": labels})
    return folder


# Hand-chosen per-seed test metrics (fractions) for the checks on means, stds, Δs, bold and Welch.
# mAP(P) per seed; the other metrics follow simple offsets so each column has a known winner.
PER_SEED_MAP_P = {
    "bce": [0.50, 0.52, 0.57],
    "gdro": [0.55, 0.56, 0.54],
    "focal": [0.60, 0.61, 0.65],
    "dpo": [0.58, 0.60, 0.59],
    "simpo": [0.40, 0.45, 0.44],
    "cpo": [0.70, 0.69, 0.74],
}
PER_SEED_MAP_N = {
    "bce": [0.90, 0.91, 0.92],
    "gdro": [0.89, 0.90, 0.90],
    "focal": [0.86, 0.88, 0.87],
    "dpo": [0.88, 0.89, 0.89],
    "simpo": [0.80, 0.82, 0.81],
    "cpo": [0.90, 0.90, 0.905],
}


@pytest.fixture(scope="module")
def main_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    labels = make_labels()
    for i, (variant, ablation) in enumerate(MAIN_KEYS):
        for seed in range(3):
            p, n = PER_SEED_MAP_P[variant][seed], PER_SEED_MAP_N[variant][seed]
            test = {"privileged": {"mAP": p, "f1": p - 0.1, "accuracy": p + 0.2},
                    "non_privileged": {"mAP": n, "f1": n - 0.3, "accuracy": 0.95 + 0.001 * i}}
            write_run(root, variant, ablation, seed, logits_with_skill(labels, 0.5 + 0.1 * i, seed), labels, test)
    return root


def pct(values):
    return [100 * v for v in values]


# ---------------------------------------------------------------- our main table


def test_mean_and_sample_std_in_percent(main_store):
    table = results_table(main_store, "digits", "main", bootstrap=False)
    for variant, name in [("bce", "BCE-SFT"), ("cpo", "FairPO-CPO"), ("simpo", "FairPO-SimPO")]:
        p = pct(PER_SEED_MAP_P[variant])
        assert table.mean.loc[name, ("mAP", "P")] == pytest.approx(statistics.mean(p), abs=1e-9)
        assert table.std.loc[name, ("mAP", "P")] == pytest.approx(statistics.stdev(p), abs=1e-9)  # ddof=1
        f1 = pct([v - 0.1 for v in PER_SEED_MAP_P[variant]])
        assert table.mean.loc[name, ("Sample F1", "P")] == pytest.approx(statistics.mean(f1), abs=1e-9)
    assert list(table.mean.index) == ["BCE-SFT", "GDRO + BCE", "Focal Loss", "FairPO-DPO", "FairPO-SimPO",
                                      "FairPO-CPO"]
    assert (table.n_seeds == 3).all() and table.missing == [] and table.message is None


def test_delta_columns_against_the_papers_reference_rows(main_store):
    table = results_table(main_store, "digits", "main", bootstrap=False)
    focal_p = statistics.mean(pct(PER_SEED_MAP_P["focal"]))
    bce_n = statistics.mean(pct(PER_SEED_MAP_N["bce"]))
    cpo_p = statistics.mean(pct(PER_SEED_MAP_P["cpo"]))
    dpo_n = statistics.mean(pct(PER_SEED_MAP_N["dpo"]))
    assert table.delta.loc["FairPO-CPO", "P vs Focal"] == pytest.approx(cpo_p - focal_p, abs=1e-9)
    assert table.delta.loc["FairPO-DPO", "P̄ vs BCE"] == pytest.approx(dpo_n - bce_n, abs=1e-9)
    assert math.isnan(table.delta.loc["Focal Loss", "P vs Focal"])
    assert math.isnan(table.delta.loc["BCE-SFT", "P̄ vs BCE"])
    shown = table.display_frame()
    assert shown.loc["Focal Loss", (DELTA, "P vs Focal")] == "Ref"
    assert shown.loc["BCE-SFT", (DELTA, "P̄ vs BCE")] == "Ref"
    assert shown.loc["FairPO-CPO", (DELTA, "P vs Focal")].startswith(f"{cpo_p - focal_p:+.2f}")
    assert shown.loc["FairPO-CPO", ("mAP", "P")] == (f"{statistics.mean(pct(PER_SEED_MAP_P['cpo'])):.2f} ± "
                                                     f"{statistics.stdev(pct(PER_SEED_MAP_P['cpo'])):.2f}")


def test_bold_is_the_argmax_of_each_column(main_store):
    table = results_table(main_store, "digits", "main", bootstrap=False)
    values = table.mean.round(2)
    for col in METRIC_COLUMNS:
        expected = set(values.index[values[col] == values[col].max()])
        assert set(table.bold.index[table.bold[col]]) == expected
    assert table.bold["mAP"]["P"].tolist() == [False] * 5 + [True]  # cpo: 71.0
    # mAP(P̄): bce 91.0 beats cpo 90.17 (0.90, 0.91, 0.92 vs 0.90, 0.90, 0.905)
    assert table.bold[("mAP", "P̄")].tolist() == [True, False, False, False, False, False]
    # Δ columns: the largest Δ among the non-reference rows
    assert table.bold[(DELTA, "P vs Focal")].tolist() == [False] * 5 + [True]
    assert not table.bold.loc["Focal Loss", (DELTA, "P vs Focal")]


def test_bold_marks_ties_twice(tmp_path):
    labels = make_labels()
    for variant, _ in MAIN_KEYS:
        for seed in range(2):
            test = {"privileged": {"mAP": 0.8 if variant in ("dpo", "cpo") else 0.5}}
            write_run(tmp_path, variant, "none", seed, logits_with_skill(labels, 1, seed), labels, test)
    table = results_table(tmp_path, "digits", "main", bootstrap=False)
    assert set(table.bold.index[table.bold[("mAP", "P")]]) == {"FairPO-DPO", "FairPO-CPO"}


def test_welch_p_values_match_scipy(main_store):
    table = results_table(main_store, "digits", "main", bootstrap=False)
    sig = table.significance.set_index(["row", "column"])
    for variant, name in [("cpo", "FairPO-CPO"), ("bce", "BCE-SFT"), ("dpo", "FairPO-DPO")]:
        expected = stats.ttest_ind(pct(PER_SEED_MAP_P[variant]), pct(PER_SEED_MAP_P["focal"]), equal_var=False)
        got = sig.loc[(name, f"{DELTA} P vs Focal")]
        assert got["welch_p"] == pytest.approx(expected.pvalue, rel=1e-9)
        assert got["welch_t"] == pytest.approx(expected.statistic, rel=1e-9)
        mark = "†" if expected.pvalue < 0.05 else ("‡" if expected.pvalue > 0.1 else "")
        assert got["mark_welch"] == mark
        assert table.marks.loc[name, (DELTA, "P vs Focal")] == mark
    expected = stats.ttest_ind(pct(PER_SEED_MAP_N["cpo"]), pct(PER_SEED_MAP_N["bce"]), equal_var=False)
    assert sig.loc[("FairPO-CPO", f"{DELTA} P̄ vs BCE"), "welch_p"] == pytest.approx(expected.pvalue, rel=1e-9)
    # the reference rows are not compared with themselves
    assert ("Focal Loss", f"{DELTA} P vs Focal") not in sig.index
    assert ("BCE-SFT", f"{DELTA} P̄ vs BCE") not in sig.index
    assert "Welch's t-test" in table.caption()


def test_mark_rule():
    assert report_stats.mark_for(0.049) == "†"
    assert report_stats.mark_for(0.05) == ""
    assert report_stats.mark_for(0.1) == ""
    assert report_stats.mark_for(0.1001) == "‡"
    assert report_stats.mark_for(math.nan) == ""


def test_missing_rows_show_a_dash_and_are_listed(tmp_path):
    labels = make_labels()
    for variant, _ in MAIN_KEYS:
        if variant == "gdro":
            continue
        write_run(tmp_path, variant, "none", 0, logits_with_skill(labels, 1, 0), labels)
    table = results_table(tmp_path, "digits", "main", bootstrap=False)
    assert table.missing == ["GDRO + BCE"]
    assert table.mean.loc["GDRO + BCE"].isna().all()
    assert (table.display_frame().loc["GDRO + BCE", list(METRIC_COLUMNS)] == "—").all()
    assert "No runs yet for: GDRO + BCE" in table.caption()
    # one seed: no std, no Welch test (NaN), no mark
    assert table.std.isna().all().all()
    assert table.significance["welch_p"].isna().all()
    assert (table.marks == "").all().all()


# ---------------------------------------------------------------- missing data


def test_no_runs_for_a_dataset_gives_a_message_not_an_exception(main_store):
    table = results_table(main_store, "coco", "main")
    assert table.empty
    assert table.message.startswith(f"No runs for coco in {main_store.as_posix()}/")
    assert "fairpo reproduce --dataset coco" in table.message
    assert table.message in table._repr_html_()
    assert str(table) == table.message
    rendered = rendering.render(table)
    assert "No runs for coco" in rendered.to_html() and repr(rendered) == table.message
    assert "No runs for coco" in rendering.side_by_side(table, paper_table(1)).to_html()
    with pytest.raises(ValueError, match="nothing to style: No runs for coco"):
        rendering.styler(table)


def test_empty_or_absent_store(tmp_path):
    table = results_table(tmp_path / "nowhere", "digits", "components")
    assert table.message == f"No runs for digits in {(tmp_path / 'nowhere').as_posix()}/: run " \
                            "`fairpo reproduce --dataset digits --seeds 0 1 2`."


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown layout 'table5'"):
        results_table("results", "digits", "table5")
    with pytest.raises(ValueError, match="unknown test 'mann-whitney'"):
        results_table("results", "digits", "main", test="mann-whitney")
    with pytest.raises(ValueError, match="Tables 1-4"):
        paper_table(5)


# ---------------------------------------------------------------- the ablation tables


@pytest.fixture(scope="module")
def ablation_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablations")
    labels = make_labels()
    values = {("bce", "none"): 0.50, ("cpo", "none"): 0.70, ("cpo", "no-pref"): 0.60,
              ("cpo", "no-constraint"): 0.69, ("cpo", "no-grpo"): 0.65, ("cpo", "global"): 0.62,
              ("cpo", "neg-only"): 0.30, ("cpo", "no-fallback"): 0.68}
    for (variant, ablation), p in values.items():
        for seed in range(3):
            test = {"privileged": {"mAP": p + 0.01 * seed}, "non_privileged": {"mAP": 0.9 - p / 10}}
            write_run(root, variant, ablation, seed, logits_with_skill(labels, 4 * p, seed), labels, test)
    return root, values


def test_ablation_delta_vs_bce_and_change_vs_full(ablation_store):
    root, values = ablation_store
    table = results_table(root, "digits", "components", bootstrap=False)
    bce = 100 * (values[("bce", "none")] + 0.01)  # mean over seeds of p + 0.01·seed
    full = 100 * (values[("cpo", "none")] + 0.01)
    row = "w/o Preference Loss (L_P is BCE)"
    ours = 100 * (values[("cpo", "no-pref")] + 0.01)
    assert table.references["BCE-SFT mAP(P)"] == pytest.approx(bce)
    assert table.delta.loc[row, "P vs BCE-SFT"] == pytest.approx(ours - bce)
    assert table.delta.loc["FairPO-CPO (Full)", "P vs BCE-SFT"] == pytest.approx(full - bce)
    assert table.change.loc[row, ("mAP", "P")] == pytest.approx(ours - full)
    assert table.change.loc[row, ("mAP", "P̄")] == pytest.approx(-(values[("cpo", "no-pref")] - 0.70) * 10)
    assert table.change.loc["FairPO-CPO (Full)"].isna().all()
    assert list(table.mean.index) == [name for _, name in layout.LAYOUT_ROWS["components"]]
    shown = table.display_frame().loc[row, ("mAP", "P")]
    assert f"({ours - full:+.2f}" in shown
    preference = results_table(root, "digits", "preference", bootstrap=False)
    assert preference.delta.loc["Only Confusing Negatives", "P vs BCE-SFT"] == pytest.approx(30 - 50)
    assert preference.bold.loc["FairPO-CPO (Full)", ("mAP", "P")]


# ---------------------------------------------------------------- the paired bootstrap


def test_resampled_ap_equals_ap_on_the_resampled_images():
    rng = np.random.default_rng(1)
    labels = (rng.random((60, 3)) < 0.3).astype(float)
    labels[0] = 1
    scores = np.round(rng.normal(size=(60, 3)), 1)  # rounding makes ties
    counts = resample_counts(60, 5, seed=3)
    fast = resampled_average_precision(scores, labels, counts)
    for b in range(5):
        idx = np.repeat(np.arange(60), counts[b])
        slow = average_precision(torch.tensor(scores[idx]), torch.tensor(labels[idx])).numpy()
        np.testing.assert_allclose(fast[b], slow, atol=1e-6, equal_nan=True)
    plain = resampled_average_precision(scores, labels)[0]
    np.testing.assert_allclose(plain, average_precision(torch.tensor(scores), torch.tensor(labels)).numpy(),
                               atol=1e-6)
    # small chunks give the same numbers
    np.testing.assert_array_equal(resampled_average_precision(scores, labels, counts, max_elements=1), fast)


def test_resample_counts_are_draws_with_replacement():
    counts = resample_counts(50, 7, seed=11)
    assert counts.shape == (7, 50) and (counts.sum(axis=1) == 50).all()
    idx = np.random.default_rng(11).integers(0, 50, size=(7, 50))
    for b in range(7):
        np.testing.assert_array_equal(counts[b], np.bincount(idx[b], minlength=50))


def test_bootstrap_p_value_formula():
    assert report_stats.bootstrap_p_value(np.zeros(99)) == 1.0
    assert report_stats.bootstrap_p_value(np.ones(99)) == pytest.approx(2 / 100)
    d = np.array([-1.0] * 10 + [1.0] * 89)
    assert report_stats.bootstrap_p_value(d) == pytest.approx(2 * 11 / 100)


def test_bootstrap_detects_a_clear_difference():
    labels = make_labels().numpy()
    good = [logits_with_skill(torch.tensor(labels), 3.0, s).numpy() for s in range(3)]
    weak = [logits_with_skill(torch.tensor(labels), 0.3, s + 10).numpy() for s in range(3)]
    mask = np.array([False, False, False, True])
    result = paired_bootstrap(good, weak, labels, mask, resamples=500, seed=0)
    expected = np.mean([average_precision(torch.tensor(g), torch.tensor(labels))[3].item()
                        - average_precision(torch.tensor(w), torch.tensor(labels))[3].item()
                        for g, w in zip(good, weak)]) * 100
    assert result["difference"] == pytest.approx(expected, abs=1e-4)
    assert result["difference"] > 20
    assert result["p"] < 0.01 and result["ci_low"] > 0
    assert result["pairs"] == 3 and result["resamples"] == 500


def test_bootstrap_finds_no_difference_between_identical_models():
    labels = make_labels().numpy()
    same = [logits_with_skill(torch.tensor(labels), 0.5, s).numpy() for s in range(2)]
    mask = np.array([True, True, True, False])
    result = paired_bootstrap(same, [x.copy() for x in same], labels, mask, resamples=300, seed=0)
    assert result["p"] == 1.0
    assert result["difference"] == 0.0 and result["ci_low"] == 0.0 and result["ci_high"] == 0.0


def test_bootstrap_is_deterministic_for_a_seed():
    labels = make_labels().numpy()
    a = [logits_with_skill(torch.tensor(labels), 0.6, 1).numpy()]
    b = [logits_with_skill(torch.tensor(labels), 0.5, 2).numpy()]
    mask = np.array([False, True, True, True])
    first = paired_bootstrap(a, b, labels, mask, resamples=200, seed=5)
    assert paired_bootstrap(a, b, labels, mask, resamples=200, seed=5) == first
    other = paired_bootstrap(a, b, labels, mask, resamples=200, seed=6)
    assert other["difference"] == first["difference"]  # the observed value does not depend on the draws
    assert (other["ci_low"], other["ci_high"]) != (first["ci_low"], first["ci_high"])


def test_table_bootstrap_pairs_seeds_and_marks(tmp_path):
    labels = make_labels()
    skills = {"bce": 0.3, "gdro": 0.3, "focal": 0.3, "dpo": 0.3, "simpo": 0.3, "cpo": 3.0}
    for variant, skill in skills.items():
        for seed in range(3):
            # gdro's logits are bce's: a null comparison on P̄ against BCE
            noise_seed = seed if variant in ("bce", "gdro") else 100 * len(variant) + seed
            write_run(tmp_path, variant, "none", seed, logits_with_skill(labels, skill, noise_seed), labels)
    table = results_table(tmp_path, "digits", "main", test="bootstrap", resamples=300)
    sig = table.significance.set_index(["row", "column"])
    cpo = sig.loc[("FairPO-CPO", f"{DELTA} P vs Focal")]
    assert cpo["pairs"] == 3 and cpo["bootstrap_p"] < 0.01 and cpo["mark_bootstrap"] == "†"
    assert table.marks.loc["FairPO-CPO", (DELTA, "P vs Focal")] == "†"
    # with the same seeds on both sides the bootstrap's observed Δ is the table's Δ
    assert cpo["bootstrap_difference"] == pytest.approx(table.delta.loc["FairPO-CPO", "P vs Focal"], abs=1e-4)
    gdro = sig.loc[("GDRO + BCE", f"{DELTA} P̄ vs BCE")]
    assert gdro["bootstrap_p"] == 1.0 and gdro["mark_bootstrap"] == "‡"
    assert "paired bootstrap over test images" in table.caption()
    again = results_table(tmp_path, "digits", "main", test="bootstrap", resamples=300)
    pd.testing.assert_frame_equal(again.significance, table.significance)


def test_runs_on_different_test_images_are_refused(tmp_path):
    labels = make_labels()
    write_run(tmp_path, "bce", "none", 0, logits_with_skill(labels, 1, 0), labels)
    other = make_labels(seed=9)
    for variant in ("gdro", "focal", "dpo", "simpo", "cpo"):
        write_run(tmp_path, variant, "none", 0, logits_with_skill(other, 1, 0), other)
    with pytest.raises(ValueError, match="same test images"):
        results_table(tmp_path, "digits", "main")


# ---------------------------------------------------------------- rendering


def test_render_bolds_exactly_the_best_cells_and_is_deterministic(main_store):
    table = results_table(main_store, "digits", "main", bootstrap=False)
    html = table.style().to_html()
    assert html == results_table(main_store, "digits", "main", bootstrap=False).style().to_html()
    # Styler writes one CSS rule listing every bold cell's id
    rule = re.search(r"([^}]*)\{\s*font-weight: bold;\s*\}", html).group(1)
    bold_cells = {(int(r), int(c)) for r, c in re.findall(r"_row(\d+)_col(\d+)", rule)}
    assert bold_cells == {(int(r), int(c)) for r, c in zip(*np.nonzero(table.bold.to_numpy()))}
    assert len(bold_cells) == 8
    assert "Welch's t-test across seeds" in html
    # Jupyter's text/plain is the table as text, with no object address
    assert repr(table.style()) == str(table) and " at 0x" not in repr(table.style())
    assert repr(table) == str(table) and "FairPO-CPO" in repr(table)


def test_side_by_side_puts_paper_and_ours_in_one_frame(main_store):
    ours = results_table(main_store, "digits", "main", bootstrap=False)
    paper = paper_table(1)
    frame = rendering.comparison(ours, paper)
    assert frame.loc["FairPO-CPO", ("mAP", "P", "paper")] == 89.76
    assert frame.loc["FairPO-CPO", ("mAP", "P", "ours")] == pytest.approx(71.0)
    assert frame.loc["FairPO-CPO", (DELTA, "P vs Focal", "paper")] == 1.41
    html = rendering.side_by_side(ours, paper).to_html()
    assert "89.76" in html and "71.00" in html
    agree = rendering.sign_agreement(ours, paper).set_index(["row", "column"])
    assert agree.loc[("FairPO-CPO", "P vs Focal"), "same_sign"]  # +1.41 and +6.0
    with pytest.raises(ValueError, match="cannot compare"):
        rendering.comparison(ours, paper_table(3))


# ---------------------------------------------------------------- the paper's numbers


def test_paper_main_tables_deltas_are_the_differences_they_claim():
    for number in (1, 2):
        t = paper_table(number)
        m = t.mean
        for row in m.index:
            if row != "Focal Loss":
                assert t.delta.loc[row, "P vs Focal"] == pytest.approx(
                    round(m.loc[row, ("mAP", "P")] - m.loc["Focal Loss", ("mAP", "P")], 2), abs=1e-9)
            if row != "BCE-SFT":
                assert t.delta.loc[row, "P̄ vs BCE"] == pytest.approx(
                    round(m.loc[row, ("mAP", "P̄")] - m.loc["BCE-SFT", ("mAP", "P̄")], 2), abs=1e-9)


def test_paper_ablation_parentheses_are_row_minus_full_except_one():
    wrong = []
    for number in (3, 4):
        t = paper_table(number)
        full = t.mean.loc["FairPO-CPO (Full)"]
        for row in t.mean.index[1:]:
            for col in METRIC_COLUMNS:
                if abs(t.change.loc[row, col] - round(t.mean.loc[row, col] - full[col], 2)) > 1e-9:
                    wrong.append((number, row, col))
            # ΔmAP(P) vs BCE-SFT uses Table 1's BCE-SFT mAP(P)
            assert t.delta.loc[row, "P vs BCE-SFT"] == pytest.approx(
                round(t.mean.loc[row, ("mAP", "P")] - paper_table(1).mean.loc["BCE-SFT", ("mAP", "P")], 2))
    assert wrong == [(3, "Global CPO (no P/P̄ split, no GRPO)", ("Sample F1", "P̄"))]  # 64.85 - 64.32 = 0.53, printed 0.47
    arithmetic = paper_arithmetic()
    assert (~arithmetic["consistent"]).sum() == 1
    # Tables 1-2: 5 Δs per column, 2 columns; Table 3: 5 ΔmAP(P) + 4 rows × 6; Table 4: 3 + 2 × 6
    assert len(arithmetic) == 2 * 2 * 5 + (5 + 4 * 6) + (3 + 2 * 6)


def test_cpo_delta_in_table_1_and_table_3_use_different_references():
    t1, t3 = paper_table(1), paper_table(3)
    assert t1.delta.loc["FairPO-CPO", "P vs Focal"] == 1.41
    assert t3.delta.loc["FairPO-CPO (Full)", "P vs BCE-SFT"] == 3.44
    cpo, bce, focal = (t1.mean.loc[r, ("mAP", "P")] for r in ("FairPO-CPO", "BCE-SFT", "Focal Loss"))
    assert round(cpo - focal, 2) == 1.41 and round(cpo - bce, 2) == 3.44
    # the abstract's "up to 3.59%" is Table 2's CPO minus BCE-SFT
    t2 = paper_table(2).mean
    assert round(t2.loc["FairPO-CPO", ("mAP", "P")] - t2.loc["BCE-SFT", ("mAP", "P")], 2) == 3.59


def test_paper_bold_and_marks_as_printed():
    t1, t3 = paper_table(1), paper_table(3)
    assert t1.bold.loc["FairPO-CPO", ("mAP", "P")] and t1.bold.loc["BCE-SFT", ("mAP", "P̄")]
    assert t1.marks.loc["FairPO-CPO", (DELTA, "P vs Focal")] == "†"
    assert t1.marks.loc["GDRO + BCE", (DELTA, "P̄ vs BCE")] == "‡"
    assert t1.std.loc["FairPO-SimPO", ("mAP", "P̄")] == 0.21
    # Tables 1-2: the printed bold of the metric columns is the argmax
    for number in (1, 2, 4):
        t = paper_table(number)
        for col in METRIC_COLUMNS:
            assert set(t.bold.index[t.bold[col]]) == {t.mean[col].idxmax()}, (number, col)
    # Table 3 bolds the full model where two ablations are higher (all three P̄ columns)
    for metric in ("mAP", "Sample F1", "Accuracy"):
        col = (metric, "P̄")
        assert t3.bold.loc["FairPO-CPO (Full)", col]
        assert t3.mean[col].idxmax() == "Global CPO (no P/P̄ split, no GRPO)"


def test_paper_welch_from_printed_stats():
    frame = paper.paper_welch_from_stats().set_index(["table", "row", "column"])
    got = frame.loc[(1, "FairPO-CPO", f"{DELTA} P̄ vs BCE")]
    se = math.sqrt(0.07 ** 2 / 3 + 0.08 ** 2 / 3)
    t = (90.34 - 90.65) / se
    df = se ** 4 / ((0.07 ** 2 / 3) ** 2 / 2 + (0.08 ** 2 / 3) ** 2 / 2)  # Welch–Satterthwaite
    assert got["t"] == pytest.approx(t, rel=1e-9)
    assert got["p"] == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
    assert got["printed_mark"] == "‡" and got["mark"] == "†"


def test_the_tests_are_the_ones_the_notebooks_take():
    assert tuple(report_stats.TESTS) == params.TABLE_TESTS


def test_plain_tables_have_no_index_an_em_dash_for_missing_and_a_csv_of_the_unrounded_values():
    import base64
    import re

    from fairpo.report.rendering import csv_link, plain

    frame = pd.DataFrame({"row": ["a", "b"], "p": [0.123456, float("nan")]}, index=[7, 8])
    shown = plain(frame, "my table")
    assert "<th>7</th>" not in shown.html and "—" in shown.html and "0.123" in shown.html
    encoded = re.search(r'download="my-table.csv" href="data:text/csv;charset=utf-8;base64,([^"]+)"', shown.html)
    assert base64.b64decode(encoded.group(1)).decode() == frame.to_csv(index=False)
    wide = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("mAP", "P"), ("mAP", "P̄")]))
    link = csv_link(wide, "x")
    assert base64.b64decode(re.search(r"base64,([^\"]+)", link).group(1)).decode().splitlines()[0] == ",mAP P,mAP P̄"
