"""Tables and plots for the notebooks: small data-shaping functions, then plot functions.

Data shaping (tested exactly in ``tests/test_report.py``): :func:`load_histories` reads the per-step
or per-epoch histories of runs in the store into one tidy DataFrame, :func:`moving_average` and
:func:`smooth_histories` smooth them within each run, :func:`aggregate_seeds` gives mean, std and
count over seeds, :func:`load_per_label_ap` and :func:`summarize_per_label` shape the per-label test
AP, :func:`alpha_summary` and :func:`fallback_vs_quality` sum up, per run, how the group weights and
the fallback rate move as training goes on, and
:func:`class_mean_distances` measures how alike two classes of images are.

Plot functions take data and an optional ``ax`` (one Axes, or a sequence of Axes for multi-panel
plots) and return the figure. Colours come from the Okabe–Ito palette, which stays distinguishable
under the common colour-vision deficiencies. Privileged labels are marked the same way in every plot:
the colour :data:`PRIVILEGED_COLOR` (vermillion; the other labels get :data:`NON_PRIVILEGED_COLOR`,
blue) *and* a shape or a ``*`` after the name (:data:`PRIVILEGED_MARK`), so the mark survives
printing in grey.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import ListedColormap

from fairpo.method import losses
from fairpo.run import store

# ---------------------------------------------------------------- style

#: Colour of the privileged labels in every plot (Okabe–Ito vermillion).
PRIVILEGED_COLOR = "#D55E00"
#: Colour of the non-privileged labels (Okabe–Ito blue).
NON_PRIVILEGED_COLOR = "#0072B2"
#: Appended to a privileged label's name wherever names are printed.
PRIVILEGED_MARK = "*"
PRIVILEGED_MARKER, NON_PRIVILEGED_MARKER = "D", "o"  # scatter shapes
PRIVILEGED_HATCH = "//"  # bar hatching
VARIANT_COLORS = {  # Okabe–Ito, none of them vermillion or blue (those mean P and N)
    "bce": "#000000", "focal": "#56B4E9", "gdro": "#999999",
    "dpo": "#E69F00", "simpo": "#CC79A7", "cpo": "#009E73",
}
RUN_KEYS = ("variant", "ablation", "seed")
"""Columns that identify one run in the tidy frames below."""

GROUP_COLUMNS = {"alpha": ("alpha_P", "alpha_N"), "loss": ("loss_P", "loss_N")}


def group_color(is_privileged: bool) -> str:
    return PRIVILEGED_COLOR if is_privileged else NON_PRIVILEGED_COLOR


def marked_name(name: str, is_privileged: bool) -> str:
    """``name`` with :data:`PRIVILEGED_MARK` appended for a privileged label."""
    return f"{name}{PRIVILEGED_MARK}" if is_privileged else str(name)


def _variant_color(variant: str, index: int) -> str:
    spare = ["#F0E442", "#56B4E9", "#999999", "#000000"]
    return VARIANT_COLORS.get(str(variant).partition("+")[0], spare[index % len(spare)])


def _panels(ax, n: int, *, width: float = 4.2, height: float = 3.2, sharey: bool = True) -> tuple:
    """(figure, list of n Axes): new ones side by side when ``ax`` is None, else the given ones."""
    if ax is None:
        fig, axes = plt.subplots(1, n, figsize=(width * n, height), sharey=sharey, squeeze=False,
                                 layout="constrained")
        return fig, list(axes[0])
    axes = [ax] if isinstance(ax, plt.Axes) else list(np.ravel(ax))
    if len(axes) != n:
        raise ValueError(f"this plot draws {n} panel(s) but ax holds {len(axes)} Axes; pass {n} Axes or none")
    return axes[0].figure, axes


# ---------------------------------------------------------------- reading the run store


def _finished_runs(results_dir, dataset: str, variants: Sequence[str], seeds: Sequence[int] | None,
                   ablation: str) -> list[tuple[str, int, Path, dict]]:
    """(variant, seed, run folder, record) of every requested finished run, in the order asked.

    ``seeds=None`` takes every finished seed found for each variant. A missing run raises one error
    listing all that are missing and how to create them.
    """
    if isinstance(variants, str):
        variants = [variants]
    found, missing = [], []
    for variant in variants:
        if seeds is None:
            method = store.run_dir(results_dir, dataset, variant, ablation, 0).parent
            wanted = sorted(int(p.name[4:]) for p in method.glob("seed*") if p.name[4:].isdigit())
            wanted = [s for s in wanted if store.is_finished(method / f"seed{s}")]
            if not wanted:
                missing.append(f"{method}/seed*")
        else:
            wanted = list(seeds)
        for seed in wanted:
            folder = store.run_dir(results_dir, dataset, variant, ablation, seed)
            record = store.read_record(folder)
            if record is None or record.get("status") != store.FINISHED:
                missing.append(str(folder))
                continue
            found.append((variant, int(seed), folder, record))
    if missing:
        raise FileNotFoundError(
            f"no finished run in {', '.join(missing)}; fill the store first, e.g. "
            f"fairpo.run.grid.ensure_grid(dataset={dataset!r}, results_dir={str(results_dir)!r}), "
            f"or train the run with fairpo.run.train.train")
    return found


def load_histories(results_dir: str | os.PathLike, dataset: str = "digits",
                   variants: Sequence[str] = ("dpo", "simpo", "cpo"), seeds: Sequence[int] | None = None,
                   *, ablation: str = "none", kind: str = "steps") -> pd.DataFrame:
    """The histories of finished runs as one tidy DataFrame, one row per step (or epoch) per run.

    Columns: ``variant``, ``ablation``, ``seed``, then the history's own columns — for ``kind="steps"``
    (``steps.jsonl``) ``step``, ``epoch``, ``loss``, ``loss_P``, ``loss_N``, ``alpha_P``, ``alpha_N``,
    ``fallback_rate``, ``confusing_size``…; for ``kind="epochs"`` (``epochs.jsonl``) ``epoch`` and
    ``val.<group>.<metric>``. Rows come variant by variant in the order given, then by seed, then in
    the history's own order. ``seeds=None`` reads every finished seed of each variant.
    """
    files = {"steps": store.STEP_HISTORY_FILE, "epochs": store.EPOCH_HISTORY_FILE}
    if kind not in files:
        raise ValueError(f"unknown history kind {kind!r}; choose 'steps' or 'epochs'")
    frames = []
    for variant, seed, folder, _ in _finished_runs(results_dir, dataset, variants, seeds, ablation):
        history = store.load_history(folder / files[kind])
        history.insert(0, "seed", seed)
        history.insert(0, "ablation", ablation)
        history.insert(0, "variant", variant)
        frames.append(history)
    return pd.concat(frames, ignore_index=True)


def load_per_label_ap(results_dir: str | os.PathLike, dataset: str = "digits",
                      variants: Sequence[str] = ("bce", "cpo"), seeds: Sequence[int] | None = None,
                      *, ablation: str = "none") -> pd.DataFrame:
    """Per-label test AP of finished runs, one row per (run, label).

    Columns: ``variant``, ``ablation``, ``seed``, ``label`` (index), ``name``, ``train_frequency``
    (positives on the training split), ``privileged`` (bool), ``ap`` (NaN for a label without a
    positive on the test split). Read from each record's ``test.per_label_ap`` and ``data``.
    """
    rows = []
    for variant, seed, folder, record in _finished_runs(results_dir, dataset, variants, seeds, ablation):
        data, ap = record["data"], record["test"].get("per_label_ap")
        if ap is None:
            raise ValueError(f"{folder} has no test.per_label_ap in its record; retrain it with force=True")
        privileged = set(data["privileged"])
        for label, (name, freq, value) in enumerate(zip(data["label_names"], data["train_frequencies"], ap)):
            rows.append(dict(variant=variant, ablation=ablation, seed=seed, label=label, name=name,
                             train_frequency=int(freq), privileged=label in privileged, ap=float(value)))
    return pd.DataFrame.from_records(rows)


# ---------------------------------------------------------------- smoothing and aggregation


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average: ``out[t] = mean(values[max(0, t - window + 1) : t + 1])``, (N,) → (N,).

    The first ``window - 1`` points average what is there so far; NaN values are skipped (NaN only
    where the whole window is NaN). ``window=1`` returns the values unchanged.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive whole number of steps, got {window!r}")
    return pd.Series(np.asarray(values, dtype=float)).rolling(int(window), min_periods=1).mean().to_numpy()


def smooth_histories(frame: pd.DataFrame, columns: Sequence[str], window: int, *,
                     order: str = "step") -> pd.DataFrame:
    """A copy of a tidy history frame with ``columns`` replaced by their :func:`moving_average`.

    The average runs within each run (the :data:`RUN_KEYS` columns), in ``order``, so one seed's
    steps never leak into another's.
    """
    out = frame.copy()
    keys = [k for k in RUN_KEYS if k in frame.columns]
    for _, group in frame.sort_values(keys + [order], kind="stable").groupby(keys, sort=False):
        for column in columns:
            out.loc[group.index, column] = moving_average(group[column].to_numpy(), window)
    return out


def aggregate_seeds(frame: pd.DataFrame, columns: Sequence[str] | str,
                    by: Sequence[str] = ("variant", "step")) -> pd.DataFrame:
    """Mean and spread over seeds, long format: one row per ``by`` value and column.

    Columns: ``*by``, ``metric`` (the column's name), ``mean``, ``std`` (sample std, ddof = 1: NaN
    with one seed), ``n`` (seeds with a value there). Rows are sorted by ``by`` (in the frame's own
    order of first appearance for ``variant``), then by ``metric`` in the order given.
    """
    columns = [columns] if isinstance(columns, str) else list(columns)
    by = list(by)
    long = frame.melt(id_vars=by, value_vars=columns, var_name="metric", value_name="value")
    grouped = long.groupby(by + ["metric"], sort=False)["value"]
    out = grouped.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index()
    out["metric"] = pd.Categorical(out["metric"], categories=columns, ordered=True)
    sort_keys = []
    for key in by:  # keep the order in which variants etc. first appear, sort numbers
        if not pd.api.types.is_numeric_dtype(out[key]):
            first = {value: i for i, value in enumerate(pd.unique(frame[key]))}
            sort_keys.append(out[key].map(first).rename(f"_{key}"))
        else:
            sort_keys.append(out[key])
    order = pd.concat(sort_keys + [out["metric"].cat.codes.rename("_metric")], axis=1)
    out = out.loc[order.sort_values(list(order.columns), kind="stable").index].reset_index(drop=True)
    out["metric"] = out["metric"].astype(str)
    return out


def truncate_to_shortest(frame: pd.DataFrame, order: str = "step", by: str = "variant") -> pd.DataFrame:
    """Rows up to the last ``order`` value that every seed of the same ``by`` group reaches.

    Runs stop early at different epochs; without this the seed mean jumps where a seed drops out.
    """
    last = frame.groupby([by, "seed"], sort=False)[order].max().groupby(level=0, sort=False).min()
    return frame[frame[order] <= frame[by].map(last)]


def summarize_per_label(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-label AP over seeds: one row per (variant, label) of a :func:`load_per_label_ap` frame.

    Columns: ``variant``, ``label``, ``name``, ``train_frequency``, ``privileged``, ``ap_mean``,
    ``ap_std`` (ddof = 1), ``n``; sorted by variant (order of appearance) then label.
    """
    keys = ["variant", "label", "name", "train_frequency", "privileged"]
    out = (frame.groupby(keys, sort=False)["ap"]
           .agg(ap_mean="mean", ap_std=lambda v: v.std(ddof=1), n="count").reset_index())
    first = {v: i for i, v in enumerate(pd.unique(frame["variant"]))}
    return (out.assign(_v=out["variant"].map(first)).sort_values(["_v", "label"], kind="stable")
            .drop(columns="_v").reset_index(drop=True))


def fallback_vs_quality(steps: pd.DataFrame, epochs: pd.DataFrame,
                        metric: str = "val.overall.mAP") -> pd.DataFrame:
    """How the fallback rate moves as training goes on, one row per run.

    The per-step fallback rate is averaged within each epoch and set against that epoch's ``metric``.
    Columns: ``variant``, ``ablation``, ``seed``, ``epochs``, ``fallback_first``/``fallback_last``
    (epoch means of the first and last epoch), ``fallback_rise`` (last − first), ``metric_first``,
    ``metric_last`` and ``spearman`` (rank correlation over epochs between the epoch's mean fallback
    rate and its ``metric``; NaN with fewer than 3 epochs or a constant series).
    """
    keys = [k for k in RUN_KEYS if k in steps.columns]
    per_epoch = steps.groupby(keys + ["epoch"], sort=False)["fallback_rate"].mean().reset_index()
    joined = per_epoch.merge(epochs[keys + ["epoch", metric]], on=keys + ["epoch"], how="inner")
    rows = []
    for run, group in joined.groupby(keys, sort=False):
        group = group.sort_values("epoch")
        fb, q = group["fallback_rate"].to_numpy(), group[metric].to_numpy()
        rho = math.nan
        if len(group) >= 3 and np.ptp(fb) > 0 and np.ptp(q) > 0:
            rho = float(pd.Series(fb).corr(pd.Series(q), method="spearman"))
        rows.append(dict(zip(keys, run), epochs=len(group), fallback_first=fb[0], fallback_last=fb[-1],
                         fallback_rise=fb[-1] - fb[0], metric_first=q[0], metric_last=q[-1], spearman=rho))
    return pd.DataFrame.from_records(rows)


def alpha_summary(steps: pd.DataFrame, threshold: float = 0.01) -> pd.DataFrame:
    """How the group weights moved in each run of a :func:`load_histories` steps frame.

    One row per run: ``variant``, ``ablation``, ``seed``, ``alpha_P_first`` (α_P after the first
    update), ``alpha_P_last``, ``step_below`` (first step with α_P < ``threshold``; NaN if never),
    ``alpha_P_max_later`` (largest α_P from the second epoch on; NaN for a one-epoch run),
    ``first_loss_N_step`` (first step with L_N > 0; NaN if never) and ``loss_N_mean``.
    """
    keys = [k for k in RUN_KEYS if k in steps.columns]
    rows = []
    for run, group in steps.groupby(keys, sort=False):
        group = group.sort_values("step")
        below = group.loc[group["alpha_P"] < threshold, "step"]
        positive = group.loc[group["loss_N"] > 0, "step"]
        later = group.loc[group["epoch"] > group["epoch"].min(), "alpha_P"]
        rows.append(dict(zip(keys, run), alpha_P_first=group["alpha_P"].iloc[0],
                         alpha_P_last=group["alpha_P"].iloc[-1],
                         step_below=below.iloc[0] if len(below) else math.nan,
                         alpha_P_max_later=later.max() if len(later) else math.nan,
                         first_loss_N_step=positive.iloc[0] if len(positive) else math.nan,
                         loss_N_mean=group["loss_N"].mean()))
    return pd.DataFrame.from_records(rows)


# ---------------------------------------------------------------- data-set summaries


def label_frequency_table(frequencies: Sequence[int], label_names: Sequence[str],
                          privileged: Sequence[int]) -> pd.DataFrame:
    """Labels sorted by training frequency, most frequent first (ties: lower index first).

    Columns: ``label`` (index), ``name``, ``count``, ``share`` (count / total positives),
    ``privileged`` (bool).
    """
    counts = np.asarray(frequencies, dtype=np.int64)
    if counts.shape != (len(label_names),):
        raise ValueError(f"{counts.size} frequencies for {len(label_names)} label names")
    order = np.lexsort((np.arange(len(counts)), -counts))
    priv = set(int(p) for p in privileged)
    return pd.DataFrame(dict(label=order, name=[str(label_names[i]) for i in order], count=counts[order],
                             share=counts[order] / max(counts.sum(), 1),
                             privileged=[int(i) in priv for i in order]))


def head_tail_ratio(frequencies: Sequence[int]) -> float:
    """Positives of the most frequent label over those of the least frequent (inf if one has none)."""
    counts = np.asarray(frequencies, dtype=float)
    return math.inf if counts.min() == 0 else float(counts.max() / counts.min())


def class_mean_distances(x: np.ndarray, y: np.ndarray, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Euclidean distances between class means: x (N, ...) samples, y (N,) class ids → (C, C) frame.

    Classes are the sorted unique values of ``y``; rows and columns are named by ``names`` (or the
    ids). The diagonal is 0. A small distance means two classes look alike on average.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y)
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(0) for c in classes])
    distance = np.sqrt(((means[:, None] - means[None]) ** 2).sum(-1))
    index = [str(n) for n in names] if names is not None else [str(c) for c in classes]
    return pd.DataFrame(distance, index=index, columns=index)


def nearest_lookalikes(distances: pd.DataFrame) -> pd.Series:
    """For each class (row) of a :func:`class_mean_distances` frame, the closest *other* class."""
    d = distances.to_numpy(copy=True)
    np.fill_diagonal(d, np.inf)
    return pd.Series(distances.columns[d.argmin(1)], index=distances.index, name="nearest")


# ---------------------------------------------------------------- plots: data


def pick_examples(labels, privileged: Sequence[int], n: int, privileged_share: float = 1 / 3) -> np.ndarray:
    """Indices of ``n`` examples for a gallery: the first ``round(privileged_share · n)`` that hold a
    privileged label, then the first that hold none, in data order. labels: (N, T) 0/1 → (n,) sorted.

    Rare labels seldom appear among the first images of a split; this makes them visible.
    """
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    has = labels[:, list(privileged)].any(1) if len(privileged) else np.zeros(len(labels), dtype=bool)
    k = min(int(round(privileged_share * n)), int(has.sum()))
    chosen = np.concatenate([np.flatnonzero(has)[:k], np.flatnonzero(~has)[:n - k]])
    return np.sort(chosen)


def plot_examples(images, labels, label_names: Sequence[str], privileged: Sequence[int] = (), *,
                  n: int = 12, ncols: int = 6, indices: Sequence[int] | None = None, ax=None):
    """Images as a framed mosaic, each titled with the names of its labels.

    images: (N, H, W) or (N, C, H, W), values in [0, 1] (C = 1 or 3); labels: (N, T) 0/1. Shows
    ``images[indices]`` (default: the first ``n``). Privileged names carry :data:`PRIVILEGED_MARK`,
    and a title holding one is drawn in :data:`PRIVILEGED_COLOR`, bold.
    """
    images = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images, dtype=float)
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if indices is not None:
        images, labels, n = images[np.asarray(indices)], labels[np.asarray(indices)], len(indices)
    if images.ndim == 4:
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    n = min(n, len(images))
    if n < 1:
        raise ValueError("plot_examples needs at least one image")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    h, w = images.shape[1:3]
    gap, title = max(1, w // 16), max(4, h // 3)  # pixels between tiles, pixel rows kept for a title
    tile_h, tile_w = h + title + gap, w + gap
    mosaic = np.ones((nrows * tile_h, ncols * tile_w) + images.shape[3:])
    priv = set(int(p) for p in privileged)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.3 * ncols, 1.5 * nrows))
    for k in range(n):
        r, c = divmod(k, ncols)
        top, left = r * tile_h + title, c * tile_w
        mosaic[top:top + h, left:left + w] = 1.0 - images[k]  # dark ink on white reads like a page
        ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor="0.6", lw=0.8))
        present = np.flatnonzero(labels[k]).tolist()
        text = " ".join(marked_name(label_names[t], t in priv) for t in present) or "(none)"
        has_priv = any(t in priv for t in present)
        ax.text(left + w / 2, top - 1, text, ha="center", va="bottom", fontsize=9,
                color=PRIVILEGED_COLOR if has_priv else "black", fontweight="bold" if has_priv else "normal")
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"Example images with their labels ({PRIVILEGED_MARK} privileged)")
    return ax.figure


def plot_label_frequencies(frequencies: Sequence[int], label_names: Sequence[str], privileged: Sequence[int], *,
                           log: bool = True, annotate: bool = True, ax=None):
    """Positives per label on the training split, most frequent first, privileged labels highlighted.

    Privileged bars are vermillion and hatched, the others blue; privileged tick labels carry
    :data:`PRIVILEGED_MARK`. The title gives the head/tail ratio (:func:`head_tail_ratio`).
    """
    table = label_frequency_table(frequencies, label_names, privileged)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(table) + 1.5), 3.4))
    x = np.arange(len(table))
    colors = [group_color(p) for p in table["privileged"]]
    bars = ax.bar(x, table["count"], color=colors, edgecolor="white", linewidth=0.5)
    for bar, is_priv in zip(bars, table["privileged"]):
        if is_priv:
            bar.set_hatch(PRIVILEGED_HATCH)
    ax.set_xticks(x, [marked_name(n, p) for n, p in zip(table["name"], table["privileged"])],
                  rotation=90 if len(table) > 20 else 0)
    for tick, is_priv in zip(ax.get_xticklabels(), table["privileged"]):
        tick.set_color(group_color(is_priv))
    if log:
        ax.set_yscale("log")
    if annotate and len(table) <= 30:
        for xi, count in zip(x, table["count"]):
            ax.annotate(f"{count}", (xi, count), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 1), textcoords="offset points")
    ax.set_xlabel("label (most to least frequent)")
    ax.set_ylabel("training positives" + (" (log scale)" if log else ""))
    ratio = head_tail_ratio(frequencies)
    ax.set_title(f"Label frequencies: head/tail ratio {ratio:.1f}×")
    handles = [plt.Rectangle((0, 0), 1, 1, color=PRIVILEGED_COLOR, hatch=PRIVILEGED_HATCH, ec="white"),
               plt.Rectangle((0, 0), 1, 1, color=NON_PRIVILEGED_COLOR)]
    ax.legend(handles, [f"privileged{PRIVILEGED_MARK}", "non-privileged"], frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return ax.figure


# ---------------------------------------------------------------- plots: training dynamics


def _band(ax, agg: pd.DataFrame, color: str, label: str, ls: str = "-", x: str = "step") -> None:
    """A mean line with a ±1 std band (no band where only one seed has a value)."""
    agg = agg.sort_values(x)
    ax.plot(agg[x], agg["mean"], color=color, ls=ls, lw=1.8, label=label)
    if (agg["n"] > 1).any():
        ax.fill_between(agg[x], agg["mean"] - agg["std"], agg["mean"] + agg["std"], color=color, alpha=0.2,
                        lw=0)


def _seed_note(frame: pd.DataFrame) -> str:
    counts = frame.groupby("variant", sort=False)["seed"].nunique()
    n = counts.min()
    return f"mean of {n} seed{'s' if n > 1 else ''}" + (" ± std" if n > 1 else "")


def _plot_groups(steps: pd.DataFrame, which: str, window: int, ax, ylabel: str):
    col_p, col_n = GROUP_COLUMNS[which]
    symbol = {"alpha": "α", "loss": "L"}[which]
    variants = list(pd.unique(steps["variant"]))
    own_figure = ax is None
    fig, axes = _panels(ax, len(variants), sharey=which == "alpha")
    smooth = truncate_to_shortest(smooth_histories(steps, [col_p, col_n], window))
    agg = aggregate_seeds(smooth, [col_p, col_n])
    for axis, variant in zip(axes, variants):
        mine = agg[agg["variant"] == variant]
        _band(axis, mine[mine["metric"] == col_p], PRIVILEGED_COLOR, f"{symbol}_P (privileged{PRIVILEGED_MARK})")
        _band(axis, mine[mine["metric"] == col_n], NON_PRIVILEGED_COLOR, f"{symbol}_N (non-privileged)", ls="--")
        axis.set_title(f"FairPO-{variant.upper()}" if variant in VARIANT_COLORS else variant)
        axis.set_xlabel("training step")
        axis.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(frameon=False, fontsize=8)
    if own_figure:
        fig.suptitle(f"{ylabel} ({_seed_note(steps)}, moving average over {window} steps)", fontsize=10)
    return fig, axes


def plot_alpha(steps: pd.DataFrame, *, window: int = 20, ax=None):
    """Group weights α_P (solid, vermillion) and α_N (dashed, blue) over training, a panel per variant.

    steps: a :func:`load_histories` frame with ``alpha_P``/``alpha_N``. Each run is smoothed with a
    ``window``-step moving average, cut to the steps every seed reaches, then averaged over seeds
    (band: ±1 std). The y axis spans the simplex, [0, 1].
    """
    fig, axes = _plot_groups(steps, "alpha", window, ax, "group weight α")
    for axis in axes:
        axis.set_ylim(0, 1)
        axis.axhline(0.5, color="0.6", lw=0.8, ls=":")
    return fig


def plot_group_losses(steps: pd.DataFrame, *, window: int = 20, ax=None):
    """Group losses L_P (solid, vermillion) and L_N (dashed, blue) over training, a panel per variant.

    Same smoothing and seed aggregation as :func:`plot_alpha`. The panels do not share a y axis:
    each variant's L_P is a different loss.
    """
    return _plot_groups(steps, "loss", window, ax, "group loss")[0]


def plot_fallback(steps: pd.DataFrame, *, window: int = 20, ax=None):
    """Fallback rate (left) and mean confusing-set size (right) over training, a line per variant.

    The fallback rate is the share of privileged (sample, label) pairs with no confusing counterpart,
    which therefore pay plain BCE; a better ranking leaves fewer confused pairs, so it should rise as
    the model improves. Same smoothing and seed aggregation as :func:`plot_alpha`; the y axes are
    scaled to the data, so read their ranges before reading a slope.
    """
    metrics = [("fallback_rate", "fallback rate"), ("confusing_size", "mean confusing-set size")]
    own_figure = ax is None
    fig, axes = _panels(ax, 2, sharey=False)
    smooth = truncate_to_shortest(smooth_histories(steps, [m for m, _ in metrics], window))
    agg = aggregate_seeds(smooth, [m for m, _ in metrics])
    for axis, (metric, label) in zip(axes, metrics):
        for i, variant in enumerate(pd.unique(steps["variant"])):
            mine = agg[(agg["variant"] == variant) & (agg["metric"] == metric)]
            _band(axis, mine, _variant_color(variant, i), str(variant))
        axis.set_xlabel("training step")
        axis.set_ylabel(label)
        axis.spines[["top", "right"]].set_visible(False)
    axes[0].legend(frameon=False, title="variant")
    if own_figure:
        fig.suptitle(f"Privileged pairs without a confusing counterpart ({_seed_note(steps)}, "
                     f"moving average over {window} steps)", fontsize=10)
    return fig


def plot_per_label_ap(per_label: pd.DataFrame, variants: Sequence[str] = ("bce", "cpo"), *, ax=None):
    """Test AP of each label against its training frequency, one panel per variant, side by side.

    per_label: a :func:`load_per_label_ap` frame. One point per label: the mean over seeds, error bar
    ±1 std (ddof = 1); privileged labels are vermillion diamonds with :data:`PRIVILEGED_MARK` after
    their name, the others blue circles. The x axis (training positives) is logarithmic.
    """
    summary = summarize_per_label(per_label)
    fig, axes = _panels(ax, len(variants))
    for axis, variant in zip(axes, variants):
        mine = summary[summary["variant"] == variant]
        if mine.empty:
            raise ValueError(f"no per-label AP for variant {variant!r}; the frame holds "
                             f"{sorted(summary['variant'].unique())}")
        for is_priv in (False, True):
            part = mine[mine["privileged"] == is_priv]
            if part.empty:
                continue
            axis.errorbar(part["train_frequency"], part["ap_mean"], yerr=part["ap_std"].fillna(0), fmt="none",
                          ecolor=group_color(is_priv), elinewidth=1, capsize=2)
            axis.scatter(part["train_frequency"], part["ap_mean"], color=group_color(is_priv), zorder=3,
                         marker=PRIVILEGED_MARKER if is_priv else NON_PRIVILEGED_MARKER, s=36,
                         label=f"privileged{PRIVILEGED_MARK}" if is_priv else "non-privileged")
            for _, row in part.iterrows():
                axis.annotate(marked_name(row["name"], is_priv), (row["train_frequency"], row["ap_mean"]),
                              xytext=(4, 3), textcoords="offset points", fontsize=8, color=group_color(is_priv))
        axis.set_xscale("log")
        axis.set_xlabel("training positives (log scale)")
        axis.set_title(variant.upper() if variant == "bce" else f"FairPO-{variant.upper()}")
        axis.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel("test AP (mean over seeds ± std)")
    axes[0].legend(frameon=False, loc="best")
    return fig


# ---------------------------------------------------------------- plots: the classroom walkthrough


def plot_confusing_sets(logits: torch.Tensor, labels: torch.Tensor, privileged: Sequence[int],
                        label_names: Sequence[str] | None = None, ax=None):
    """Every privileged pair (sample i, label l) as a row; each label k coloured by its role in S_il.

    Cells: the pair's own label (grey), a confusing negative (red: a negative scored at least as high as
    a positive l), a confusing positive (blue: a positive scored at most as high as a negative l), any
    other label (white). Each cell shows the label's score σ(z_ik) and a ``+`` for a true label.
    """
    mask = losses.confusing_mask(logits, labels, privileged)  # (B, |P|, T)
    B, P, T = mask.shape
    role = np.zeros((B * P, T), dtype=int)
    scores = torch.sigmoid(logits).detach().cpu().numpy()
    y = labels.cpu().numpy()
    rows = []
    for i in range(B):
        for a, l in enumerate(privileged):
            r = i * P + a
            role[r, l] = 1
            members = mask[i, a].cpu().numpy()
            role[r, members] = 2 if y[i, l] == 1 else 3
            rows.append(f"sample {i}, label {label_names[l] if label_names else l} (y={int(y[i, l])})")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.75 * T, 0.9 + 0.45 * B * P))
    cmap = ListedColormap(["white", "0.75", "#d6604d", "#4393c3"])
    ax.imshow(role, cmap=cmap, vmin=0, vmax=3, aspect="auto")
    for r in range(B * P):
        i = r // P
        for k in range(T):
            mark = "+" if y[i, k] == 1 else ""
            ax.text(k, r, f"{scores[i, k]:.2f}{mark}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(T), label_names if label_names else range(T))
    ax.set_yticks(range(B * P), rows)
    ax.set_xticks(np.arange(-0.5, T), minor=True)
    ax.set_yticks(np.arange(-0.5, B * P), minor=True)
    ax.grid(which="minor", color="0.85")
    ax.tick_params(which="minor", length=0)
    ax.set_title("Confusing sets: red = confusing negatives, blue = confusing positives")
    return ax.figure


def plot_group_weights(history: Sequence[Sequence[float]], losses_history: Sequence[Sequence[float]],
                       names=("privileged", "non-privileged"), ax=None):
    """Group weights α over steps (left axis) with the group losses that drive them (right axis).

    history, losses_history: (S, 2) — column 0 the privileged group (vermillion), 1 the other (blue).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    w = np.asarray(history)
    g = np.asarray(losses_history)
    colors = [PRIVILEGED_COLOR, NON_PRIVILEGED_COLOR]
    for j, name in enumerate(names):
        ax.plot(w[:, j], color=colors[j], lw=2, label=f"α {name}")
    ax.set_xlabel("step")
    ax.set_ylabel("group weight α")
    ax.set_ylim(0, 1)
    twin = ax.twinx()
    for j, name in enumerate(names):
        twin.plot(g[:, j], color=colors[j], ls="--", lw=1, label=f"loss {name}")
    twin.set_ylabel("group loss (dashed)")
    ax.legend(loc="upper left", frameon=False)
    return ax.figure
