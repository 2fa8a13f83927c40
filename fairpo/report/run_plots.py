"""Plots of finished runs: the rows of a table seed by seed (:func:`plot_methods`) and one run's training
dynamics (:func:`plot_run_history`), in the style of :mod:`fairpo.report.plots`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairpo.report.plots import PRIVILEGED_MARK, _panels, _variant_color, group_color


def plot_run_history(steps: pd.DataFrame, run_name: str = "this run", *, window: int = 20, ax=None):
    """One run's training dynamics in four panels: group weights, group losses, fallback rate and mean
    confusing-set size, each a ``window``-step moving average against the step. A panel whose columns
    the run does not log (a baseline has no group weights) says so instead.

    steps: the run's step history (:data:`fairpo.run.store.STEP_HISTORY_FILE`).
    """
    panels = [("group weight α", ("alpha_P", "alpha_N")), ("group loss", ("loss_P", "loss_N")),
              ("fallback rate", ("fallback_rate",)), ("mean confusing-set size", ("confusing_size",))]
    fig, axes = _panels(ax, len(panels), height=3.2, sharey=False, max_columns=2)
    smooth = steps.rolling(window, min_periods=1).mean()
    for axis, (label, columns) in zip(axes, panels):
        for column in columns:
            if column in smooth:
                privileged = not column.endswith("_N")
                axis.plot(smooth["step"], smooth[column], color=group_color(privileged), ls="-" if privileged else "--",
                          label={"_P": f"privileged{PRIVILEGED_MARK}", "_N": "non-privileged"}.get(column[-2:]))
        axis.set_xlabel("training step")
        axis.set_ylabel(label)
        if not axis.lines:
            axis.text(0.5, 0.5, f"not used by {run_name}", ha="center", transform=axis.transAxes)
        elif len(columns) > 1:
            axis.legend(fontsize="small")
    if ax is None:
        fig.suptitle(f"{run_name}: moving average over {window} steps", fontsize="medium")
    return fig


def plot_methods(records: pd.DataFrame, layout: str = "main", *, metric: str = "mAP", confidence: float = 0.95,
                 ax=None):
    """Each row of a table as its seeds (small dots) and the mean with its ``confidence`` t-interval, one
    panel per label group (privileged, then the others), a dashed line at BCE-SFT's mean.

    records: :func:`fairpo.run.store.collect_records` of one data set; layout: a key of
    :data:`fairpo.report.layout.LAYOUT_ROWS`; metric: ``mAP``, ``Sample F1`` or ``Accuracy`` (test split,
    percent). A row without runs is left empty; with one seed there is no interval.
    """
    from scipy import stats

    from fairpo.report.layout import BCE, GROUP_KEYS, LAYOUT_ROWS, METRIC_KEYS

    rows = LAYOUT_ROWS[layout]
    fig, axes = _panels(ax, 2, height=0.55 * len(rows) + 1.4, sharey=True)
    for axis, (group, key) in zip(axes, GROUP_KEYS.items()):
        column = f"test.{key}.{METRIC_KEYS[metric]}"
        for y, ((variant, ablation), name) in enumerate(rows):
            runs = records[(records["variant"] == variant) & (records["ablation"] == ablation)] if len(records) else []
            if not len(runs):
                continue
            values = runs[column].to_numpy(float) * 100
            color = _variant_color(variant, y)
            axis.scatter(values, np.full(len(values), y) + 0.18, s=14, color=color, alpha=0.6, lw=0)
            mean = values.mean()
            if len(values) > 1:
                half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
                axis.errorbar(mean, y, xerr=half, fmt="none", ecolor=color, elinewidth=2, capsize=3)
            axis.scatter([mean], [y], s=46, color=color, zorder=3, edgecolor="white")
        bce = records[(records["variant"] == BCE[0]) & (records["ablation"] == BCE[1])][column] if len(records) else []
        if len(bce):
            axis.axvline(float(bce.mean()) * 100, color="0.5", ls="--", lw=1)
        low, high = axis.get_xlim()  # a metric in percent lies in [0, 100], whatever a wide interval says
        axis.set_xlim(max(low, 0), min(high, 100))
        axis.set_xlabel(f"test {metric} on {'privileged' if group == 'P' else 'non-privileged'} labels (%)")
        axis.set_yticks(range(len(rows)), [name for _, name in rows])
        axis.set_ylim(len(rows) - 0.5, -0.7)
    if ax is None:
        fig.suptitle(f"Dots: seeds; bar: {confidence:.0%} interval of the mean (cut at 0 and 100); "
                     f"dashed: BCE-SFT's mean",
                     fontsize="medium")
    return fig
