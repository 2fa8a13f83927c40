"""Plots for the notebooks: the style every plot shares, then the plot functions.

The data they draw comes from :mod:`fairpo.report.histories` (runs in the store) and
:mod:`fairpo.report.data_summary` (a data set). Plot functions take data and an optional ``ax`` (one Axes, or
a sequence of Axes for multi-panel plots) and return the figure. Colours come from the Okabe–Ito palette,
which stays distinguishable under the common colour-vision deficiencies. Privileged labels are marked the same
way in every plot: the colour :data:`PRIVILEGED_COLOR` (vermillion; the other labels get
:data:`NON_PRIVILEGED_COLOR`, blue) *and* a shape or a ``*`` after the name (:data:`PRIVILEGED_MARK`), so the
mark survives printing in grey.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import ListedColormap

from fairpo.method import losses
from fairpo.report.data_summary import head_tail_ratio, label_frequency_table
from fairpo.report.histories import aggregate_seeds, smooth_histories, summarize_per_label, truncate_to_shortest

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
GROUP_COLUMNS = {"alpha": ("alpha_P", "alpha_N"), "loss": ("loss_P", "loss_N")}


def method_title(variant: str) -> str:
    """A method's name as the paper writes it: ``BCE``, ``Focal``, ``GDRO``, ``FairPO-DPO``, ``FairPO-SimPO``…"""
    names = {"bce": "BCE", "focal": "Focal", "gdro": "GDRO", "dpo": "FairPO-DPO", "simpo": "FairPO-SimPO",
             "cpo": "FairPO-CPO"}
    return names.get(variant, variant)


def group_color(is_privileged: bool) -> str:
    return PRIVILEGED_COLOR if is_privileged else NON_PRIVILEGED_COLOR


def marked_name(name: str, is_privileged: bool) -> str:
    """``name`` with :data:`PRIVILEGED_MARK` appended for a privileged label."""
    return f"{name}{PRIVILEGED_MARK}" if is_privileged else str(name)


def _variant_color(variant: str, index: int) -> str:
    spare = ["#F0E442", "#56B4E9", "#999999", "#000000"]
    return VARIANT_COLORS.get(str(variant).partition("+")[0], spare[index % len(spare)])


FIGURE_WIDTH = 10.0
"""Width in inches of a full-width figure. The book shows figures at its text width (about 800 px), so
with :data:`THEME`'s fonts a label reads at about the size of the body text at 100 % zoom."""

OKABE_ITO = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]

THEME = dict(context="notebook", style="ticks", palette=OKABE_ITO, font_scale=1.15,
             rc={"axes.grid": True, "grid.color": "0.92", "axes.spines.top": False, "axes.spines.right": False,
                 "legend.frameon": False, "figure.dpi": 100, "savefig.dpi": 100})
"""The seaborn theme every plot of the book uses (set by :func:`use_theme` when this module is imported):
the Okabe–Ito palette, fonts sized for :data:`FIGURE_WIDTH`, light grid lines, no top or right spine."""


def use_theme() -> None:
    """Apply :data:`THEME` to matplotlib (done once when this module is imported)."""
    import seaborn as sns

    sns.set_theme(**THEME)


use_theme()


def _panels(ax, n: int, *, height: float = 3.6, sharey: bool = True, max_columns: int = 3) -> tuple:
    """(figure, list of n Axes): a new full-width figure of at most ``max_columns`` panels a row when
    ``ax`` is None, else the given Axes."""
    if ax is None:
        columns = min(n, max_columns)
        rows = -(-n // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(FIGURE_WIDTH, height * rows), sharey=sharey,
                                 squeeze=False, layout="constrained")
        axes = list(axes.ravel())
        for spare in axes[n:]:
            fig.delaxes(spare)
        return fig, axes[:n]
    axes = [ax] if isinstance(ax, plt.Axes) else list(np.ravel(ax))
    if len(axes) != n:
        raise ValueError(f"this plot draws {n} panel(s) but ax holds {len(axes)} Axes; pass {n} Axes or none")
    return axes[0].figure, axes


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
        ax.text(left + w / 2, top - 1, text, ha="center", va="bottom", fontsize="small",
                color=PRIVILEGED_COLOR if has_priv else "black", fontweight="bold" if has_priv else "normal")
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"Example images with their labels ({PRIVILEGED_MARK} privileged)")
    return ax.figure


def plot_label_frequencies(frequencies: Sequence[int], label_names: Sequence[str], privileged: Sequence[int], *,
                           log: bool = True, annotate: bool = True, ax=None):
    """Positives per label on the training split, most frequent first, privileged labels highlighted.

    Privileged bars are vermillion and hatched, the others blue; privileged tick labels carry
    :data:`PRIVILEGED_MARK`. The title gives the head/tail ratio
    (:func:`~fairpo.report.data_summary.head_tail_ratio`).
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
            ax.annotate(f"{count}", (xi, count), ha="center", va="bottom", fontsize="x-small",
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
        axis.set_title(method_title(variant) if variant in VARIANT_COLORS else variant)
        axis.set_xlabel("training step")
        axis.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize="small")
    if own_figure:
        fig.suptitle(f"{ylabel} ({_seed_note(steps)}, moving average over {window} steps)", fontsize="medium")
    return fig, axes


def plot_alpha(steps: pd.DataFrame, *, window: int = 20, ax=None):
    """Group weights α_P (solid, vermillion) and α_N (dashed, blue) over training, a panel per variant.

    steps: a :func:`~fairpo.report.histories.load_histories` frame with ``alpha_P``/``alpha_N``. Each run is
    smoothed with a ``window``-step moving average, cut to the steps every seed reaches, then averaged over seeds
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
                     f"moving average over {window} steps)", fontsize="medium")
    return fig


def plot_per_label_ap(per_label: pd.DataFrame, variants: Sequence[str] = ("bce", "cpo"), *, ax=None):
    """Test AP of each label against its training frequency, one panel per variant, side by side.

    per_label: a :func:`~fairpo.report.histories.load_per_label_ap` frame. One point per label: the mean over
    seeds, error bar ±1 std (ddof = 1); privileged labels are vermillion diamonds with :data:`PRIVILEGED_MARK` after
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
                              xytext=(4, 3), textcoords="offset points", fontsize="small", color=group_color(is_priv))
        axis.set_xscale("log")
        axis.set_xlabel("training positives (log scale)")
        axis.set_title(method_title(variant))
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
        _, ax = plt.subplots(figsize=(FIGURE_WIDTH * 0.75, 3.6))
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
