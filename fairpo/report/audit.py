"""The reproduction audit's measurements: the same stored predictions scored our way and the released
code's way.

The audit (``book/audit.md``, executed page ``book/audit_measure.md``) compares the way this companion
evaluates with the way the authors' released code does:

- :func:`evaluation_audit`: dataset-level metrics (ours, :func:`fairpo.method.metrics.group_metrics`) against
  metrics computed per batch of 32 and averaged over batches (:func:`batch_averaged_metrics`, the
  released code's averaging), and the two conventions for the sample F1 of a sample with no true and no
  predicted label (1, ours; 0, the released code's);
- :func:`selection_audit`: the checkpoint chosen on the held-out validation split (ours) against the
  one the test split itself would choose (the released code early-stops on the split it reports).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Literal

import pandas as pd
import torch
from torch import Tensor

from fairpo.method.metrics import (GROUPS, EmptyConvention, batched_average_precision, check_scores,
                                   group_masks, group_metrics, per_sample_f1, predict)
from fairpo.run import store

TEST_PREFIX = "audit.test."  # the per-epoch test metrics the trainer logs for this audit only

RELEASED_BATCH_SIZE = 32
"""Evaluation batch size of the released code."""

RELEASED_METRICS = ("mAP", "f1", "accuracy")
"""The metrics the released code computes per batch."""


# ---------------------------------------------------------------- the released code's averaging


def _batch_group_values(
    logits: Tensor, truth: Tensor, masks: dict[str, Tensor], batch_size: int, empty: str
) -> dict[str, dict[str, Tensor]]:
    """Per batch (in order) and group: mAP (NaN: no label with a positive), F1, accuracy."""
    n, num_labels = logits.shape
    full = (n // batch_size) * batch_size
    aps = []
    if full:
        aps.append(
            batched_average_precision(
                logits[:full].reshape(-1, batch_size, num_labels),
                truth[:full].reshape(-1, batch_size, num_labels),
            )
        )
    if full < n:
        aps.append(batched_average_precision(logits[None, full:], truth[None, full:]))
    ap = torch.cat(aps)  # (number of batches, T)
    preds = predict(logits)
    batch_of = torch.arange(n) // batch_size
    f1_fill = {"one": 1.0, "zero": 0.0, "exclude": math.nan}[empty]
    out = {}
    for group, mask in masks.items():
        group_ap = ap[:, mask]
        counted = (~group_ap.isnan()).sum(dim=1)
        batch_map = torch.where(
            counted > 0, group_ap.nan_to_num(0.0).sum(dim=1) / counted.clamp(min=1), math.nan
        )
        f1 = per_sample_f1(preds[:, mask], truth[:, mask]).nan_to_num(f1_fill)
        correct = (preds[:, mask] == truth[:, mask]).to(torch.float64).mean(dim=1)
        out[group] = {
            "mAP": batch_map,
            "f1": _per_batch_nanmean(f1, batch_of, ap.shape[0]),
            "accuracy": _per_batch_nanmean(correct, batch_of, ap.shape[0]),
        }
    return out


def _per_batch_nanmean(values: Tensor, batch_of: Tensor, num_batches: int) -> Tensor:
    """Mean of ``values`` (N,) within each batch, skipping NaN; NaN for a batch with none left."""
    kept = ~values.isnan()
    sums = torch.zeros(num_batches, dtype=torch.float64).index_add_(
        0, batch_of, values.nan_to_num(0.0)
    )
    counts = torch.zeros(num_batches, dtype=torch.float64).index_add_(
        0, batch_of, kept.to(torch.float64)
    )
    return torch.where(counts > 0, sums / counts.clamp(min=1), math.nan)


def _weighted_mean(values: Tensor, weights: Tensor) -> float:
    """Mean of ``values`` weighted by ``weights``, skipping NaN values; NaN if nothing is left."""
    kept = ~values.isnan()
    if not kept.any():
        return math.nan
    return ((values[kept] * weights[kept]).sum() / weights[kept].sum()).item()


def batch_averaged_metrics(
    logits: Tensor,
    labels: Tensor,
    privileged: Sequence[int] | Tensor,
    batch_size: int = 32,
    empty: EmptyConvention = "zero",
    no_positive_batch: Literal["zero", "skip"] = "zero",
) -> dict:
    """The released FairPO code's evaluation: metrics per batch, averaged over batches.

    The split is cut into consecutive batches of ``batch_size`` (the last one shorter, as a
    DataLoader without ``drop_last``). In each batch and group, mAP is the mean AP over the labels
    with a positive *in that batch* (the others are skipped), sample F1 uses ``empty`` for a sample
    with no true and no predicted label, accuracy is element-wise. Each batch's value is weighted
    by its size (the released code sums ``value * batch_size`` and divides by the sample count).

    A batch where no label of a group has a positive gets mAP 0 in the released code
    (``no_positive_batch="zero"``); ``"skip"`` leaves such batches out of that group's mAP.

    Ranking inside a batch sees only that batch's negatives, so a positive outranks fewer of them
    and AP rises: batch-averaged mAP is inflated against the dataset-level mAP of
    :func:`~fairpo.method.metrics.group_metrics` (the zero for batches without positives pulls the other way on rare
    groups). Accuracy, and F1 under the same ``empty`` ("one" or "zero"), are per-sample means
    weighted back by batch size, so they do not change.

    Differences from the released code, deliberately left out so the audit isolates the batching:
    it ranks float32 probabilities (tying logits above about 17), we rank logits.

    Args:
        logits: (N, T) float, in evaluation order.
        labels: (N, T) in {0, 1}.
        privileged: indices of P or a bool mask (T,).
        batch_size: evaluation batch size (32 in the released code).
        empty: sample-F1 convention; ``"zero"`` is what the released code (sklearn,
            ``zero_division=0``) does.
        no_positive_batch: ``"zero"`` (released code) or ``"skip"``.

    Returns:
        The same layout as :func:`~fairpo.method.metrics.group_metrics`, with the released code's three
        metrics (:data:`RELEASED_METRICS`; no macro F1, no per-label AP).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if empty not in ("one", "zero", "exclude"):
        raise ValueError(f"empty must be 'one', 'zero' or 'exclude', got {empty!r}")
    if no_positive_batch not in ("zero", "skip"):
        raise ValueError(f"no_positive_batch must be 'zero' or 'skip', got {no_positive_batch!r}")
    scores, truth = check_scores(logits, labels)
    scores, truth = scores.cpu(), truth.cpu()
    masks = group_masks(privileged, scores.shape[1])
    # Batch sizes: all batch_size except a shorter last one (a DataLoader without drop_last).
    weights = torch.bincount(torch.arange(scores.shape[0]) // batch_size).to(torch.float64)
    per_batch = _batch_group_values(scores, truth, masks, batch_size, empty)
    out = {}
    for group in GROUPS:
        if not masks[group].any():
            out[group] = {name: math.nan for name in RELEASED_METRICS}
            continue
        values = dict(per_batch[group])
        if no_positive_batch == "zero":
            values["mAP"] = values["mAP"].nan_to_num(0.0)
        out[group] = {name: _weighted_mean(values[name], weights) for name in RELEASED_METRICS}
    return out


# ---------------------------------------------------------------- measurements


def evaluation_audit(results_dir: str | os.PathLike, dataset: str = "digits",
                     batch_size: int = RELEASED_BATCH_SIZE) -> pd.DataFrame:
    """Every finished run's test predictions scored both ways, one row per (run, group).

    Reads the test logits (:data:`~fairpo.run.store.TEST_LOGITS_FILE`) of each finished run of ``dataset``
    (runs without them are skipped). Columns: ``variant``, ``ablation``, ``seed``, ``group`` (privileged,
    non_privileged, overall), then, as fractions:

    - ``mAP``: dataset-level mAP (ours); ``mAP_batched``: mean over batches of ``batch_size`` of the
      per-batch mAP, a batch with no positive in the group counting 0 (the released code);
    - ``f1_one`` / ``f1_zero``: dataset-level sample F1 with a sample that has no true and no
      predicted label in the group counting 1 (ours) or 0 (the released code);
    - ``f1_batched``: the released code's F1 (convention 0, averaged over batches);
    - ``accuracy``.

    An empty or missing store gives an empty frame with these columns.
    """
    columns = ["variant", "ablation", "seed", "group", "mAP", "mAP_batched", "f1_one", "f1_zero",
               "f1_batched", "accuracy"]
    rows = []
    for ids, folder, record in store.finished_runs(results_dir, dataset):
        path = folder / store.TEST_LOGITS_FILE
        if not path.is_file():
            continue
        tensors, _ = store.load_checkpoint(path)
        logits, labels = tensors["logits"], tensors["labels"]
        privileged = record["data"]["privileged"]
        ours = group_metrics(logits, labels, privileged, empty="one")
        zero = group_metrics(logits, labels, privileged, empty="zero")
        released = batch_averaged_metrics(logits, labels, privileged, batch_size=batch_size, empty="zero",
                                          no_positive_batch="zero")
        for group in GROUPS:
            rows.append(dict(variant=ids["variant"], ablation=ids["ablation"], seed=ids["seed"], group=group,
                             mAP=ours[group]["mAP"], mAP_batched=released[group]["mAP"],
                             f1_one=ours[group]["f1"], f1_zero=zero[group]["f1"],
                             f1_batched=released[group]["f1"], accuracy=ours[group]["accuracy"]))
    return pd.DataFrame(rows, columns=columns)


def selection_audit(results_dir: str | os.PathLike, dataset: str = "digits",
                    metric: tuple[str, str] = ("overall", "mAP")) -> pd.DataFrame:
    """Checkpoint chosen on the validation split against the one the test split would choose.

    Needs the per-epoch test metrics in each run's epoch history
    (:data:`~fairpo.run.store.EPOCH_HISTORY_FILE`, columns ``audit.test.<group>.<metric>`` beside
    ``val.<group>.<metric>``); runs without them are skipped. Selection follows the trainer: the first epoch
    with the highest ``metric`` (overall mAP by default). One row per run: ``variant``, ``ablation``,
    ``seed``, ``epoch_val`` and ``epoch_test`` (the epochs each split selects), then for each group
    ``<group>.val_selected`` and ``<group>.test_selected``: the test mAP reported under each selection
    (fractions). ``test_selected >= val_selected`` for the selection metric by construction; the gap is the
    optimism of selecting on the split one reports.
    """
    group, name = metric
    key_val, key_test = f"val.{group}.{name}", f"{TEST_PREFIX}{group}.{name}"
    rows = []
    for ids, folder, _ in store.finished_runs(results_dir, dataset):
        path = folder / store.EPOCH_HISTORY_FILE
        if not path.is_file():
            continue
        history = store.load_history(path)
        if key_val not in history or key_test not in history:
            continue
        # idxmax returns the first maximum, as the trainer's strict "score > best" keeps the first
        at_val = history.loc[history[key_val].idxmax()]
        at_test = history.loc[history[key_test].idxmax()]
        row = dict(variant=ids["variant"], ablation=ids["ablation"], seed=ids["seed"],
                   epoch_val=int(at_val["epoch"]), epoch_test=int(at_test["epoch"]))
        for g in GROUPS:
            row[f"{g}.val_selected"] = float(at_val[f"{TEST_PREFIX}{g}.mAP"])
            row[f"{g}.test_selected"] = float(at_test[f"{TEST_PREFIX}{g}.mAP"])
        rows.append(row)
    columns = ["variant", "ablation", "seed", "epoch_val", "epoch_test"] + [
        f"{g}.{s}" for g in GROUPS for s in ("val_selected", "test_selected")]
    return pd.DataFrame(rows, columns=columns)


def mean_over_seeds(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean of every numeric column over seeds, grouped by ``by``, with the number of seeds ``n``."""
    values = [c for c in frame.columns if c not in (*by, "seed") and pd.api.types.is_numeric_dtype(frame[c])]
    grouped = frame.groupby(by, sort=False)
    out = grouped[values].mean()
    out.insert(0, "n", grouped.size())
    return out.reset_index()
