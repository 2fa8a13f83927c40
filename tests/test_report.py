"""Report helpers: the data shaping exactly (hand-made run store), the plots by what they draw."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from fairpo.report import data_summary, histories, plots, run_plots  # noqa: E402
from fairpo.run import store  # noqa: E402

P_RGBA, N_RGBA = to_rgba(plots.PRIVILEGED_COLOR), to_rgba(plots.NON_PRIVILEGED_COLOR)
NAMES = ["a", "b", "c", "d"]
PRIVILEGED = [2, 3]
FREQS = [50, 200, 5, 12]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def same_color(a, b):
    return np.allclose(to_rgba(a), to_rgba(b))


# ---------------------------------------------------------------- a fake run store


def step_rows(seed, n_steps, steps_per_epoch=5, variant="cpo"):
    """Deterministic, seed- and variant-dependent histories; α on the simplex."""
    shift = {"dpo": 0.0, "simpo": 0.1, "cpo": 0.2}.get(variant, 0.3)
    rows = []
    for t in range(n_steps):
        a_p = 0.5 + 0.01 * t * (seed + 1) * (1 if variant != "dpo" else -1) / n_steps
        row = dict(step=t, epoch=t // steps_per_epoch, loss=1.0 / (t + 1), loss_P=shift + 1.0 / (t + 1 + seed),
                   loss_N=0.3 + 0.01 * seed, alpha_P=a_p, alpha_N=1 - a_p,
                   fallback_rate=min(1.0, 0.4 + 0.02 * t + 0.05 * seed + shift),
                   confusing_size=2.0 - 0.05 * t + 0.1 * seed)
        rows.append(row)
    return rows


def epoch_rows(seed, n_epochs):
    return [{"epoch": e, "val.overall.mAP": 0.5 + 0.05 * e + 0.01 * seed, "val.privileged.mAP": 0.3}
            for e in range(n_epochs)]


def write_run(results, variant, seed, steps, epochs, per_label_ap=None, finished=True):
    folder = store.run_dir(results, "toy", variant, None, seed)
    store.save_history(folder / store.STEP_HISTORY_FILE, steps)
    store.save_history(folder / store.EPOCH_HISTORY_FILE, epochs)
    record = dict(status=store.FINISHED if finished else "running",
                  data=dict(label_names=NAMES, privileged=PRIVILEGED, train_frequencies=FREQS),
                  test=dict(per_label_ap=per_label_ap or [0.5] * 4))
    store.write_record(folder, record)
    return folder


def ap_of(variant, seed):
    base = {"bce": [0.9, 0.95, 0.2, 0.4], "cpo": [0.88, 0.94, 0.35, 0.5]}[variant]
    return [b + 0.01 * seed * (i + 1) for i, b in enumerate(base)]


@pytest.fixture
def fake_store(tmp_path):
    lengths = {0: 20, 1: 15, 2: 20}  # seed 1 stopped early
    for variant in ("dpo", "cpo", "bce"):
        for seed, n in lengths.items():
            write_run(tmp_path, variant, seed, step_rows(seed, n, variant=variant), epoch_rows(seed, n // 5),
                      per_label_ap=ap_of(variant, seed) if variant in ("bce", "cpo") else None)
    write_run(tmp_path, "simpo", 0, step_rows(0, 10), epoch_rows(0, 2), finished=False)
    return tmp_path


# ---------------------------------------------------------------- loading


def test_load_histories_reads_every_row_in_order(fake_store):
    frame = histories.load_histories(fake_store, "toy", ["cpo", "dpo"], seeds=[0, 1])
    assert list(frame.columns[:3]) == ["variant", "ablation", "seed"]
    assert list(pd.unique(frame["variant"])) == ["cpo", "dpo"]  # the order asked, not alphabetical
    assert len(frame) == 2 * (20 + 15)
    mine = frame[(frame.variant == "dpo") & (frame.seed == 1)].drop(columns=["variant", "ablation", "seed"])
    expected = pd.DataFrame(step_rows(1, 15, variant="dpo"))
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), expected[mine.columns], check_dtype=False)
    assert (frame["ablation"] == "none").all()


def test_load_histories_discovers_finished_seeds_only(fake_store):
    frame = histories.load_histories(fake_store, "toy", ["dpo"])
    assert sorted(frame["seed"].unique()) == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="ensure_grid"):
        histories.load_histories(fake_store, "toy", ["simpo"])  # its only run is unfinished


def test_missing_runs_are_all_named(fake_store):
    with pytest.raises(FileNotFoundError) as err:
        histories.load_histories(fake_store, "toy", ["cpo", "dpo"], seeds=[0, 7, 8])
    message = str(err.value)
    assert "cpo/seed7" in message and "dpo/seed8" in message and "cpo/seed0" not in message


def test_load_epoch_histories(fake_store):
    frame = histories.load_histories(fake_store, "toy", ["cpo"], seeds=[2], kind="epochs")
    assert frame["epoch"].tolist() == [0, 1, 2, 3]
    assert frame["val.overall.mAP"].tolist() == pytest.approx([0.52, 0.57, 0.62, 0.67])
    with pytest.raises(ValueError, match="steps"):
        histories.load_histories(fake_store, "toy", ["cpo"], kind="minutes")


def test_load_per_label_ap(fake_store):
    frame = histories.load_per_label_ap(fake_store, "toy", ["bce", "cpo"])
    assert len(frame) == 2 * 3 * 4
    row = frame[(frame.variant == "cpo") & (frame.seed == 2) & (frame.label == 3)].iloc[0]
    assert row["name"] == "d" and row["train_frequency"] == 12 and row["privileged"]
    assert row["ap"] == pytest.approx(0.5 + 0.01 * 2 * 4)
    assert frame.groupby("label")["privileged"].first().tolist() == [False, False, True, True]


# ---------------------------------------------------------------- smoothing and aggregation


def literal_moving_average(values, window):
    out = []
    for t in range(len(values)):
        chunk = [v for v in values[max(0, t - window + 1):t + 1] if not math.isnan(v)]
        out.append(sum(chunk) / len(chunk) if chunk else math.nan)
    return np.array(out)


@pytest.mark.parametrize("window", [1, 2, 3, 7, 50])
def test_moving_average_matches_a_literal_loop(window):
    values = np.random.default_rng(window).normal(size=30)
    values[[4, 5, 17]] = np.nan
    np.testing.assert_allclose(histories.moving_average(values, window), literal_moving_average(list(values), window),
                               rtol=1e-12, equal_nan=True)


def test_moving_average_window_of_one_and_bad_windows():
    values = [3.0, 1.0, 4.0]
    np.testing.assert_array_equal(histories.moving_average(values, 1), values)
    np.testing.assert_allclose(histories.moving_average([np.nan, np.nan, 2.0], 2), [np.nan, np.nan, 2.0])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="window"):
            histories.moving_average(values, bad)


def test_smoothing_stays_inside_each_run(fake_store):
    frame = histories.load_histories(fake_store, "toy", ["dpo", "cpo"], seeds=[0, 1])
    shuffled = frame.sample(frac=1.0, random_state=0)  # row order must not matter
    smooth = histories.smooth_histories(shuffled, ["loss_P", "fallback_rate"], window=4)
    for (variant, seed), group in frame.groupby(["variant", "seed"]):
        mine = smooth.loc[group.index]
        for column in ("loss_P", "fallback_rate"):
            np.testing.assert_allclose(mine[column], literal_moving_average(group[column].tolist(), 4), rtol=1e-12)
    pd.testing.assert_series_equal(smooth["alpha_P"], shuffled["alpha_P"])  # untouched columns stay
    pd.testing.assert_frame_equal(shuffled.sort_index(), frame)  # the input is left as it was


def test_aggregate_seeds_matches_numpy(fake_store):
    frame = histories.load_histories(fake_store, "toy", ["cpo", "dpo"])
    agg = histories.aggregate_seeds(frame, ["alpha_P", "loss_P"])
    assert list(agg.columns) == ["variant", "step", "metric", "mean", "std", "n"]
    assert list(pd.unique(agg["variant"])) == ["cpo", "dpo"]
    for variant in ("cpo", "dpo"):
        for step in (3, 17):
            for metric in ("alpha_P", "loss_P"):
                seeds = (0, 1, 2) if step < 15 else (0, 2)
                values = np.array([step_rows(s, 20 if s != 1 else 15, variant=variant)[step][metric] for s in seeds])
                row = agg[(agg.variant == variant) & (agg.step == step) & (agg.metric == metric)].iloc[0]
                assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
                assert row["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
                assert row["n"] == len(seeds)
    assert agg["step"].is_monotonic_increasing is False  # sorted by variant first…
    assert agg[agg.variant == "cpo"]["step"].is_monotonic_increasing  # …then by step


def test_aggregate_with_one_seed_has_no_spread(fake_store):
    frame = histories.load_histories(fake_store, "toy", ["cpo"], seeds=[2])
    agg = histories.aggregate_seeds(frame, "fallback_rate")
    np.testing.assert_allclose(agg["mean"], frame["fallback_rate"])
    assert agg["std"].isna().all() and (agg["n"] == 1).all()


def test_truncate_to_shortest(fake_store):
    frame = histories.load_histories(fake_store, "toy", ["cpo"])
    cut = histories.truncate_to_shortest(frame)
    assert cut["step"].max() == 14 and len(cut) == 3 * 15


def test_summarize_per_label_matches_numpy(fake_store):
    summary = histories.summarize_per_label(histories.load_per_label_ap(fake_store, "toy", ["cpo", "bce"]))
    assert len(summary) == 8 and list(pd.unique(summary["variant"])) == ["cpo", "bce"]
    for variant in ("bce", "cpo"):
        values = np.array([ap_of(variant, s) for s in (0, 1, 2)])  # (seeds, labels)
        mine = summary[summary.variant == variant]
        np.testing.assert_allclose(mine["ap_mean"], values.mean(0), rtol=1e-12)
        np.testing.assert_allclose(mine["ap_std"], values.std(0, ddof=1), rtol=1e-12)
        assert mine["train_frequency"].tolist() == FREQS and mine["privileged"].tolist() == [False, False, True, True]


def test_fallback_vs_quality(fake_store):
    steps = histories.load_histories(fake_store, "toy", ["cpo"], seeds=[0, 1])
    epochs = histories.load_histories(fake_store, "toy", ["cpo"], seeds=[0, 1], kind="epochs")
    out = histories.fallback_vs_quality(steps, epochs)
    assert out["seed"].tolist() == [0, 1] and out["epochs"].tolist() == [4, 3]
    row = out.iloc[0]
    first = np.mean([r["fallback_rate"] for r in step_rows(0, 20)[:5]])
    last = np.mean([r["fallback_rate"] for r in step_rows(0, 20)[15:]])
    assert row["fallback_first"] == pytest.approx(first) and row["fallback_last"] == pytest.approx(last)
    assert row["fallback_rise"] == pytest.approx(last - first)
    assert row["metric_first"] == pytest.approx(0.5) and row["metric_last"] == pytest.approx(0.65)
    assert row["spearman"] == pytest.approx(1.0)  # both rise every epoch


def test_fallback_vs_quality_rank_correlation_by_hand():
    fb = [0.5, 0.7, 0.6, 0.9, 0.8]
    q = [0.1, 0.2, 0.5, 0.3, 0.4]
    steps = pd.DataFrame(dict(variant="cpo", ablation="none", seed=0, epoch=range(5), fallback_rate=fb))
    epochs = pd.DataFrame({"variant": "cpo", "ablation": "none", "seed": 0, "epoch": range(5),
                           "val.overall.mAP": q})
    rank_fb, rank_q = np.argsort(np.argsort(fb)), np.argsort(np.argsort(q))  # no ties
    expected = np.corrcoef(rank_fb, rank_q)[0, 1]
    assert histories.fallback_vs_quality(steps, epochs)["spearman"].iloc[0] == pytest.approx(expected)
    flat = steps.assign(fallback_rate=0.5)
    assert math.isnan(histories.fallback_vs_quality(flat, epochs)["spearman"].iloc[0])


def test_alpha_summary():
    rows = [dict(step=t, epoch=t // 3, alpha_P=a, loss_N=l) for t, (a, l) in
            enumerate(zip([0.5, 0.4, 0.005, 0.02, 0.003, 0.001], [0.0, 0.0, 0.1, 0.0, 0.2, 0.0]))]
    frame = pd.DataFrame(rows).assign(variant="dpo", ablation="none", seed=3)
    flat = pd.DataFrame(rows).assign(variant="cpo", ablation="none", seed=0, alpha_P=0.5, loss_N=0.0)
    out = histories.alpha_summary(pd.concat([frame, flat], ignore_index=True))
    assert out[["variant", "seed"]].values.tolist() == [["dpo", 3], ["cpo", 0]]
    first = out.iloc[0]
    assert (first["alpha_P_first"], first["alpha_P_last"]) == (0.5, 0.001)
    assert first["step_below"] == 2 and first["first_loss_N_step"] == 2
    assert first["alpha_P_max_later"] == 0.02  # steps 3-5 (epoch 1)
    assert first["loss_N_mean"] == pytest.approx(0.3 / 6)
    assert math.isnan(out.iloc[1]["step_below"]) and math.isnan(out.iloc[1]["first_loss_N_step"])


# ---------------------------------------------------------------- data-set summaries


def test_label_frequency_table_and_ratio():
    table = data_summary.label_frequency_table([5, 9, 5, 1], ["w", "x", "y", "z"], privileged=[3])
    assert table["name"].tolist() == ["x", "w", "y", "z"]  # ties keep the lower index first
    assert table["count"].tolist() == [9, 5, 5, 1]
    assert table["privileged"].tolist() == [False, False, False, True]
    assert table["share"].sum() == pytest.approx(1.0)
    assert data_summary.head_tail_ratio([5, 9, 5, 1]) == 9.0
    assert data_summary.head_tail_ratio([3, 0]) == math.inf
    with pytest.raises(ValueError, match="label names"):
        data_summary.label_frequency_table([1, 2], ["a"], [])


def test_class_mean_distances_match_a_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2, 3))
    y = rng.integers(0, 4, size=40)
    d = data_summary.class_mean_distances(x, y, names=["p", "q", "r", "s"])
    for i in range(4):
        for j in range(4):
            mi = sum(x[k].ravel() for k in range(40) if y[k] == i) / (y == i).sum()
            mj = sum(x[k].ravel() for k in range(40) if y[k] == j) / (y == j).sum()
            assert d.iloc[i, j] == pytest.approx(math.sqrt(sum((mi - mj) ** 2)), abs=1e-12)
    assert list(d.index) == ["p", "q", "r", "s"]


def test_nearest_lookalikes():
    x = np.array([[0.0], [0.1], [5.0], [5.5], [20.0]])
    d = data_summary.class_mean_distances(x, np.arange(5))
    assert data_summary.nearest_lookalikes(d).tolist() == ["1", "0", "3", "2", "3"]


# ---------------------------------------------------------------- plots


def test_plot_examples_titles_mark_privileged():
    images = np.random.default_rng(0).random((5, 1, 8, 8))
    labels = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [1, 1, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]])
    fig = plots.plot_examples(images, labels, NAMES, PRIVILEGED, n=4, ncols=2)
    ax = fig.axes[0]
    texts = [t for t in ax.texts]
    assert [t.get_text() for t in texts] == ["a", "c*", "a b d*", "b"]
    assert [same_color(t.get_color(), plots.PRIVILEGED_COLOR) for t in texts] == [False, True, True, False]
    assert len(ax.images) == 1 and len(ax.patches) == 4  # one frame per image
    mosaic = ax.images[0].get_array()
    assert mosaic.shape[1] == 2 * (8 + 1)  # two tiles of 8 px and a 1 px gap each
    title = max(4, 8 // 3)
    np.testing.assert_allclose(mosaic[title:title + 8, :8], 1 - images[0, 0])  # ink inverted onto white


def test_plot_examples_shows_the_chosen_indices():
    images = np.arange(6, dtype=float).reshape(6, 1, 1, 1).repeat(4, 2).repeat(4, 3) / 10
    labels = np.eye(4)[[0, 1, 2, 3, 0, 1]]
    ax = plots.plot_examples(images, labels, NAMES, PRIVILEGED, indices=[5, 2]).axes[0]
    assert [t.get_text() for t in ax.texts] == ["b", "c*"]
    mosaic = ax.images[0].get_array()
    assert mosaic[4, 0] == pytest.approx(1 - 0.5) and mosaic[4, 5] == pytest.approx(1 - 0.2)


def test_pick_examples():
    labels = np.zeros((10, 4), dtype=int)
    labels[[3, 6, 7, 9], 2] = 1  # privileged label c
    labels[:, 0] = 1
    assert plots.pick_examples(labels, PRIVILEGED, n=6, privileged_share=0.5).tolist() == [0, 1, 2, 3, 6, 7]
    assert plots.pick_examples(labels, PRIVILEGED, n=3, privileged_share=1 / 3).tolist() == [0, 1, 3]
    # fewer privileged examples than asked: the rest are ordinary ones
    assert plots.pick_examples(labels, PRIVILEGED, n=8, privileged_share=1.0).tolist() == [0, 1, 2, 3, 4, 6, 7, 9]


def test_plot_label_frequencies_draws_sorted_highlighted_bars():
    fig, ax = plt.subplots()
    assert plots.plot_label_frequencies(FREQS, NAMES, PRIVILEGED, ax=ax) is fig
    bars = ax.patches[:4]  # the legend's handles are not in ax.patches
    assert len(ax.patches) == 4
    assert [b.get_height() for b in bars] == [200, 50, 12, 5]
    privileged = [same_color(b.get_facecolor(), plots.PRIVILEGED_COLOR) for b in bars]
    assert privileged == [False, False, True, True]
    assert [b.get_hatch() for b in bars] == [None, None, "//", "//"]
    assert all(same_color(b.get_facecolor(), plots.NON_PRIVILEGED_COLOR) for b, p in zip(bars, privileged) if not p)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["b", "a", "d*", "c*"]
    assert ax.get_yscale() == "log" and "log" in ax.get_ylabel() and ax.get_xlabel()
    assert "40.0×" in ax.get_title()  # 200 / 5
    linear = plots.plot_label_frequencies(FREQS, NAMES, PRIVILEGED, log=False).axes[0]
    assert linear.get_yscale() == "linear"


def test_plot_alpha_draws_mean_lines_and_bands(fake_store):
    steps = histories.load_histories(fake_store, "toy", ["dpo", "cpo"])
    fig = plots.plot_alpha(steps, window=3)
    assert len(fig.axes) == 2
    for ax, variant in zip(fig.axes, ["dpo", "cpo"]):
        assert variant.upper() in ax.get_title()
        lines = [line for line in ax.lines if line.get_label() in ("α_P (privileged*)", "α_N (non-privileged)")]
        assert len(lines) == 2
        solid, dashed = lines
        assert same_color(solid.get_color(), plots.PRIVILEGED_COLOR) and solid.get_linestyle() == "-"
        assert same_color(dashed.get_color(), plots.NON_PRIVILEGED_COLOR) and dashed.get_linestyle() == "--"
        assert len(ax.collections) == 2  # one ±std band per line
        x, y = solid.get_data()
        assert x.max() == 14  # cut to the shortest seed
        smooth = histories.smooth_histories(steps[steps.variant == variant], ["alpha_P"], 3)
        expected = smooth[smooth.step <= 14].groupby("step")["alpha_P"].mean()
        np.testing.assert_allclose(y, expected.to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(y + dashed.get_data()[1], 1.0, rtol=1e-12)  # α on the simplex
        assert ax.get_ylim() == (0, 1) and ax.get_xlabel() == "training step"
    assert "α" in fig.axes[0].get_ylabel()


def test_figures_read_at_body_text_size_in_the_book_and_wrap_beyond_three_panels(fake_store):
    # the book shows a figure at its text width, about 800 px: a font of s points in a figure W inches wide
    # appears at s * 800 / (72 W) px on screen; matplotlib's defaults in a 3-panel figure gave under 9 px
    steps = histories.load_histories(fake_store, "toy", ["dpo", "cpo"])
    four = pd.concat([steps.assign(variant=v) for v in ("dpo", "cpo", "simpo", "other")], ignore_index=True)
    fig = plots.plot_alpha(four, window=3)
    assert len(fig.axes) == 4 and fig.get_size_inches()[0] == plots.FIGURE_WIDTH
    rows = sorted({round(ax.get_position().y0, 3) for ax in fig.axes})
    assert len(rows) == 2  # three panels a row at most, the fourth below
    texts = [t for ax in fig.axes for t in (ax.xaxis.label, ax.yaxis.label, ax.title, *ax.get_xticklabels())
             if t.get_text()]
    smallest = min(t.get_fontsize() for t in texts)
    assert smallest * 800 / (72 * fig.get_size_inches()[0]) >= 11


def test_plot_run_history_shows_one_run_and_says_which_panels_it_does_not_log():
    rows = pd.DataFrame(step_rows(0, 30))
    fig = run_plots.plot_run_history(rows, "cpo", window=5)
    alpha, loss, fallback, size = fig.axes
    solid, dashed = alpha.lines
    assert same_color(solid.get_color(), plots.PRIVILEGED_COLOR) and dashed.get_linestyle() == "--"
    np.testing.assert_allclose(solid.get_data()[1], rows["alpha_P"].rolling(5, min_periods=1).mean())
    assert fallback.get_ylabel() == "fallback rate" and len(size.lines) == 1
    baseline = run_plots.plot_run_history(rows[["step", "epoch", "loss"]], "bce")
    assert all(not ax.lines and "not used by bce" in ax.texts[0].get_text() for ax in baseline.axes)


def test_plot_alpha_into_given_axes_and_wrong_count(fake_store):
    steps = histories.load_histories(fake_store, "toy", ["dpo", "cpo", "bce"], seeds=[0])
    fig, axes = plt.subplots(2, 2)
    assert plots.plot_alpha(steps, ax=axes.ravel()[:3]) is fig
    assert not axes.ravel()[3].lines  # untouched
    assert fig.get_suptitle() == ""  # a figure we did not create keeps its own title
    assert all(len(ax.collections) == 0 for ax in axes.ravel()[:3])  # one seed: no band
    with pytest.raises(ValueError, match="3 panel"):
        plots.plot_alpha(steps, ax=axes[0])


def test_plot_group_losses(fake_store):
    steps = histories.load_histories(fake_store, "toy", ["cpo"])
    fig = plots.plot_group_losses(steps, window=1)
    ax = fig.axes[0]
    solid = ax.lines[0]
    assert same_color(solid.get_color(), plots.PRIVILEGED_COLOR)
    expected = steps[steps.step <= 14].groupby("step")["loss_P"].mean()
    np.testing.assert_allclose(solid.get_ydata(), expected.to_numpy(), rtol=1e-12)
    assert ax.get_ylabel() == "group loss"


def test_plot_fallback_one_line_per_variant(fake_store):
    steps = histories.load_histories(fake_store, "toy", ["dpo", "cpo"])
    fig = plots.plot_fallback(steps, window=5)
    rate_ax, size_ax = fig.axes
    assert rate_ax.get_ylabel() == "fallback rate" and size_ax.get_ylabel() == "mean confusing-set size"
    for ax, column in ((rate_ax, "fallback_rate"), (size_ax, "confusing_size")):
        assert [line.get_label() for line in ax.lines] == ["dpo", "cpo"]
        assert [same_color(line.get_color(), plots.VARIANT_COLORS[v]) for line, v in zip(ax.lines, ["dpo", "cpo"])] \
            == [True, True]
        smooth = histories.smooth_histories(steps[steps.variant == "cpo"], [column], 5)
        expected = smooth[smooth.step <= 14].groupby("step")[column].mean()
        np.testing.assert_allclose(ax.lines[1].get_ydata(), expected.to_numpy(), rtol=1e-12)
        assert len(ax.collections) == 2


def test_plot_per_label_ap_points_and_marks(fake_store):
    frame = histories.load_per_label_ap(fake_store, "toy", ["bce", "cpo"])
    fig = plots.plot_per_label_ap(frame)
    assert len(fig.axes) == 2
    for ax, variant in zip(fig.axes, ["bce", "cpo"]):
        assert variant.upper() in ax.get_title()
        scatters = [c for c in ax.collections if c.get_offsets().shape[0] and c.get_label() in
                    ("privileged*", "non-privileged")]
        assert sorted(c.get_label() for c in scatters) == ["non-privileged", "privileged*"]
        points = np.concatenate([c.get_offsets() for c in scatters])
        assert len(points) == 4  # one point per label
        values = np.array([ap_of(variant, s) for s in (0, 1, 2)])
        expected = {(f, m) for f, m in zip(FREQS, values.mean(0))}
        got = {(f, m) for f, m in points}
        assert all(any(f == g[0] and math.isclose(m, g[1], rel_tol=1e-12) for g in got) for f, m in expected)
        priv = next(c for c in scatters if c.get_label() == "privileged*")
        assert sorted(priv.get_offsets()[:, 0]) == [5, 12]
        assert np.allclose(priv.get_facecolor()[0], P_RGBA)
        other = next(c for c in scatters if c.get_label() == "non-privileged")
        assert np.allclose(other.get_facecolor()[0], N_RGBA)
        # error bars: one vertical segment per label, half-length = std over seeds
        segments = [seg for c in ax.collections if c not in scatters for seg in c.get_segments()]
        half = sorted(round((seg[1][1] - seg[0][1]) / 2, 12) for seg in segments)
        assert half == pytest.approx(sorted(values.std(0, ddof=1)), rel=1e-9)
        names = sorted(t.get_text() for t in ax.texts)
        assert names == ["a", "b", "c*", "d*"]
        assert ax.get_xscale() == "log" and ax.get_xlabel()
    assert "AP" in fig.axes[0].get_ylabel()
    with pytest.raises(ValueError, match="dpo"):
        plots.plot_per_label_ap(frame, variants=("bce", "dpo"))


def test_plot_group_weights_keeps_its_behaviour():
    alphas = [[0.5, 0.5], [0.6, 0.4], [0.7, 0.3]]
    group_losses = [[1.0, 0.5], [1.2, 0.5], [1.4, 0.5]]
    fig = plots.plot_group_weights(alphas, group_losses)
    ax, twin = fig.axes
    assert [line.get_ydata().tolist() for line in ax.lines] == [[0.5, 0.6, 0.7], [0.5, 0.4, 0.3]]
    assert same_color(ax.lines[0].get_color(), plots.PRIVILEGED_COLOR)
    assert [line.get_linestyle() for line in twin.lines] == ["--", "--"]


def test_plot_methods_shows_every_seed_and_the_t_interval_of_each_row():
    from scipy import stats

    rows = []
    for variant, base in (("bce", 0.50), ("cpo", 0.60), ("dpo", 0.55)):
        for seed, wiggle in enumerate((-0.02, 0.0, 0.05)):
            rows.append(dict(variant=variant, ablation="none", seed=seed, **{
                "test.privileged.mAP": base + wiggle, "test.non_privileged.mAP": 0.8 - wiggle}))
    records = pd.DataFrame(rows)
    fig = run_plots.plot_methods(records, "main")
    privileged, others = fig.axes
    labels = [t.get_text() for t in privileged.get_yticklabels()]
    assert labels[0] == "BCE-SFT" and labels[-1] == "FairPO-CPO"
    cpo_row = labels.index("FairPO-CPO")
    seeds = [c for c in privileged.collections if len(c.get_offsets()) == 3 and
             np.allclose(c.get_offsets()[:, 1], cpo_row + 0.18)]
    np.testing.assert_allclose(sorted(seeds[0].get_offsets()[:, 0]), [58, 60, 65])
    values = np.array([58.0, 60.0, 65.0])
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    bars = [c for c in privileged.collections if c.__class__.__name__ == "LineCollection"]
    spans = [seg for bar in bars for seg in bar.get_segments() if np.isclose(seg[0][1], cpo_row)]
    np.testing.assert_allclose(spans[0][:, 0], [values.mean() - half, values.mean() + half])
    assert np.isclose(privileged.lines[-1].get_xdata()[0], 100 * np.mean([0.48, 0.50, 0.55]))  # BCE's mean
    assert "non-privileged" in others.get_xlabel() and "(%)" in others.get_xlabel()
    assert 0 <= privileged.get_xlim()[0] and privileged.get_xlim()[1] <= 100  # percent: the interval is cut
    missing = labels.index("Focal Loss")  # no runs: nothing drawn on its row
    assert not any(np.isclose(c.get_offsets()[:, 1], missing).any() for c in privileged.collections
                   if len(c.get_offsets()))
