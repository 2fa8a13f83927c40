"""Run histories and per-label results read from the run store, and the tidy frames the plots draw.

:func:`load_histories` reads the per-step or per-epoch histories of finished runs into one tidy
DataFrame (one row per step or epoch per run, the run named by :data:`RUN_KEYS`),
:func:`moving_average` and :func:`smooth_histories` smooth them within each run, :func:`aggregate_seeds`
gives mean, std and count over seeds, :func:`truncate_to_shortest` cuts them to the steps every seed
reaches, :func:`load_per_label_ap` and :func:`summarize_per_label` shape the per-label test AP, and
:func:`alpha_summary` and :func:`fallback_vs_quality` sum up, per run, how the group weights and the
fallback rate move as training goes on. Tested exactly in ``tests/test_report.py``; drawn by
:mod:`fairpo.report.plots`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fairpo.run import store

RUN_KEYS = ("variant", "ablation", "seed")
"""Columns that identify one run in the tidy frames below."""


# ---------------------------------------------------------------- reading the run store


def finished_runs(results_dir: str | os.PathLike, dataset: str, variants: Sequence[str] | str,
                  seeds: Sequence[int] | None, ablation: str) -> list[tuple[str, int, Path, dict]]:
    """(variant, seed, run folder, record) of every requested finished run, in the order asked.

    Reads :func:`fairpo.run.store.finished_runs`. ``seeds=None`` takes every finished seed found for
    each variant. A missing run raises one error listing all that are missing and how to create them.
    """
    if isinstance(variants, str):
        variants = [variants]
    finished = {(ids["variant"], ids["ablation"], ids["seed"]): (folder, record)
                for ids, folder, record in store.finished_runs(results_dir, dataset)}
    found, missing = [], []
    for variant in variants:
        if seeds is None:
            wanted = sorted(s for v, a, s in finished if (v, a) == (variant, ablation))
            if not wanted:
                missing.append(f"{store.run_dir(results_dir, dataset, variant, ablation, 0).parent}/seed*")
        else:
            wanted = list(seeds)
        for seed in wanted:
            run = finished.get((variant, ablation, seed))
            if run is None:
                missing.append(str(store.run_dir(results_dir, dataset, variant, ablation, seed)))
                continue
            found.append((variant, int(seed), *run))
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
    (:data:`~fairpo.run.store.STEP_HISTORY_FILE`) ``step``, ``epoch``, ``loss``, ``loss_P``, ``loss_N``,
    ``alpha_P``, ``alpha_N``, ``fallback_rate``, ``confusing_size``…; for ``kind="epochs"``
    (:data:`~fairpo.run.store.EPOCH_HISTORY_FILE`) ``epoch`` and ``val.<group>.<metric>``. Rows come variant
    by variant in the order given, then by seed, then in the history's own order. ``seeds=None`` reads every
    finished seed of each variant.
    """
    files = {"steps": store.STEP_HISTORY_FILE, "epochs": store.EPOCH_HISTORY_FILE}
    if kind not in files:
        raise ValueError(f"unknown history kind {kind!r}; choose 'steps' or 'epochs'")
    frames = []
    for variant, seed, folder, _ in finished_runs(results_dir, dataset, variants, seeds, ablation):
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
    for variant, seed, folder, record in finished_runs(results_dir, dataset, variants, seeds, ablation):
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
