"""Evaluation metrics per label group: mAP, sample F1 and accuracy.

Everything here works on a whole evaluation split at once (the standard), from logits:

- ``logits``: (N, T) float, the model's raw outputs ``z``; the score ``m = sigmoid(z)``.
- ``labels``: (N, T), values in {0, 1} (any dtype).
- ``privileged``: the privileged label set P, as label indices or a bool mask of shape (T,);
  the non-privileged group is its complement, "overall" is all T labels.

Thresholding happens in logit space: a label is predicted present when ``z >= 0``, which is
``sigmoid(z) >= 0.5`` with the boundary (z = 0, m = 0.5) counted as *present*, as the released code
(``prob >= 0.5``) does. Comparing logits avoids float32 sigmoid rounding a logit of -1e-9 up to 0.5.

:func:`batch_averaged_metrics` reproduces the released code's per-batch averaging so the audit can
show how far it moves the numbers; it is not what we report.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from torchmetrics.functional.classification import multilabel_average_precision

EmptyConvention = Literal["one", "zero", "exclude"]
GROUPS = ("privileged", "non_privileged", "overall")
METRICS = ("mAP", "f1", "accuracy")


# ---------------------------------------------------------------- validation


def _check_logits_labels(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Validate (N, T) scores and 0/1 labels; return (scores, labels as bool)."""
    if not isinstance(logits, Tensor) or not isinstance(labels, Tensor):
        raise ValueError("logits and labels must be torch tensors")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, T), got {tuple(logits.shape)}")
    if labels.shape != logits.shape:
        raise ValueError(
            f"shape mismatch: logits {tuple(logits.shape)} vs labels {tuple(labels.shape)}"
        )
    if logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ValueError(f"need at least one sample and one label, got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinite values")
    return logits.detach(), _binary(labels, "labels")


def _binary(values: Tensor, name: str) -> Tensor:
    """Return ``values`` as bool after checking every entry is 0 or 1."""
    if values.dtype == torch.bool:
        return values.detach()
    if not ((values == 0) | (values == 1)).all():
        raise ValueError(f"{name} must be binary (0/1); found other values")
    return values.detach() != 0


def _check_predictions(preds: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Validate hard (N, T) predictions against labels; return both as bool."""
    if not isinstance(preds, Tensor) or not isinstance(labels, Tensor):
        raise ValueError("preds and labels must be torch tensors")
    if preds.shape != labels.shape or preds.ndim != 2:
        raise ValueError(
            f"preds and labels must share a shape (N, T): {tuple(preds.shape)} vs "
            f"{tuple(labels.shape)}"
        )
    if preds.is_floating_point():
        # Float 0/1 predictions and logits are indistinguishable; refuse rather than guess.
        raise ValueError(
            "preds must be hard predictions (bool or 0/1 integers); threshold logits with "
            "predict(logits) first"
        )
    return _binary(preds, "preds"), _binary(labels, "labels")


def privileged_mask(privileged: Sequence[int] | Tensor, num_labels: int) -> Tensor:
    """Bool mask (T,) of the privileged labels.

    Args:
        privileged: label indices (any order, no duplicates) or a bool mask of shape (T,).
        num_labels: T.
    """
    if isinstance(privileged, Tensor) and privileged.dtype == torch.bool:
        if privileged.shape != (num_labels,):
            raise ValueError(
                f"privileged mask must have shape ({num_labels},), got {tuple(privileged.shape)}"
            )
        return privileged.detach().cpu()
    if isinstance(privileged, Tensor):
        privileged = privileged.tolist()
    indices = [int(i) for i in privileged]
    bad = [i for i in indices if not 0 <= i < num_labels]
    if bad:
        raise ValueError(f"privileged indices out of range [0, {num_labels}): {bad}")
    if len(set(indices)) != len(indices):
        raise ValueError(f"privileged indices contain duplicates: {sorted(indices)}")
    mask = torch.zeros(num_labels, dtype=torch.bool)
    mask[indices] = True
    return mask


def _group_masks(privileged: Sequence[int] | Tensor, num_labels: int) -> dict[str, Tensor]:
    mask = privileged_mask(privileged, num_labels)
    return {"privileged": mask, "non_privileged": ~mask, "overall": torch.ones_like(mask)}


# ---------------------------------------------------------------- per-label and per-sample parts


def predict(logits: Tensor) -> Tensor:
    """Hard predictions (N, T) bool: ``logits >= 0``, i.e. ``sigmoid(logits) >= 0.5``.

    The boundary z = 0 (probability exactly 0.5) counts as a predicted positive.
    """
    return logits.detach() >= 0


def _dense_rank(scores: Tensor) -> Tensor:
    """Per column, the scores' dense rank scaled into [0, 1] (float64), ties kept as ties.

    AP depends only on the order of the scores and on which are tied, so this changes no AP. It
    keeps torchmetrics from applying a sigmoid to logits, which ties large logits: in float32
    sigmoid(17) == sigmoid(30) == 1.0.
    """
    n = scores.shape[0]
    sorted_scores, order = scores.sort(dim=0, stable=True)
    new_value = torch.ones_like(sorted_scores, dtype=torch.bool)
    new_value[1:] = sorted_scores[1:] != sorted_scores[:-1]
    dense = (new_value.cumsum(dim=0) - 1).to(torch.float64)
    ranks = torch.empty_like(dense).scatter_(0, order, dense)
    return ranks / max(n - 1, 1)


def average_precision(scores: Tensor, labels: Tensor) -> Tensor:
    """Per-label average precision over the whole split, as sklearn's ``average_precision_score``.

    For one label with P positives, ``AP = (1/P) * sum over positives i of precision(s_i)``, where
    ``precision(t) = #{positives with score >= t} / #{samples with score >= t}``; tied scores form
    one threshold, exactly as sklearn does. Computed by torchmetrics' exact (``thresholds=None``)
    multilabel AP.

    Args:
        scores: (N, T) logits or any monotone transform of them (probabilities give the same AP).
        labels: (N, T) in {0, 1}.

    Returns:
        (T,) float64; NaN for a label with no positive (torchmetrics returns 0 there, which would
        drag a mean down, and sklearn returns 0 with a warning). torchmetrics accumulates the
        curve in float32, so values agree with sklearn to about 1e-7.
    """
    scores, truth = _check_logits_labels(scores, labels)
    with warnings.catch_warnings():
        # Labels without positives are masked to NaN below; the warning adds nothing.
        warnings.filterwarnings("ignore", message="No positive samples found in target")
        ap = multilabel_average_precision(
            _dense_rank(scores),
            truth.long(),
            num_labels=scores.shape[1],
            average=None,
            thresholds=None,
            validate_args=False,
        ).to(torch.float64)
    return torch.where(truth.any(dim=0), ap, torch.full_like(ap, math.nan))


def batched_average_precision(scores: Tensor, labels: Tensor) -> Tensor:
    """Per-(batch, label) average precision, vectorised over batches and labels.

    Equals the loop (same tie handling, float64 throughout)::

        for b in range(B):
            out[b] = average_precision(scores[b], labels[b])

    Used for the per-batch audit, where calling torchmetrics once per batch costs about 30 ms
    each (a COCO validation split has some 1,250 batches).

    Args:
        scores: (B, n, T) logits, B batches of n samples.
        labels: (B, n, T) in {0, 1} (bool accepted).

    Returns:
        (B, T) float64; NaN where a batch has no positive for a label.
    """
    if scores.ndim != 3 or labels.shape != scores.shape:
        raise ValueError(
            f"need scores and labels of one shape (B, n, T): {tuple(scores.shape)} vs "
            f"{tuple(labels.shape)}"
        )
    truth = labels.bool()
    sorted_scores, order = scores.sort(dim=1, descending=True, stable=True)
    hits = truth.gather(1, order)
    true_positives = hits.cumsum(dim=1).to(torch.float64)
    # Every member of a run of tied scores sits at the threshold of the run's last member.
    n = scores.shape[1]
    position = torch.arange(n, device=scores.device).view(1, n, 1).expand_as(sorted_scores)
    last_of_run = torch.ones_like(hits)
    last_of_run[:, :-1] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    run_end = torch.where(last_of_run, position, torch.full_like(position, n))
    run_end = run_end.flip(1).cummin(dim=1).values.flip(1)
    precision = true_positives.gather(1, run_end) / (run_end + 1).to(torch.float64)
    positives = hits.sum(dim=1).to(torch.float64)
    ap = (precision * hits).sum(dim=1) / positives
    return torch.where(positives > 0, ap, torch.full_like(ap, math.nan))


def per_sample_f1(preds: Tensor, labels: Tensor) -> Tensor:
    """F1 of each sample over its labels: ``2 TP / (2 TP + FP + FN)`` (= 2PR / (P + R)).

    Args:
        preds, labels: (N, T) bool.

    Returns:
        (N,) float64; NaN for a sample with no true and no predicted label (0/0).
    """
    true_pos = (preds & labels).sum(dim=1).to(torch.float64)
    denominator = (preds.sum(dim=1) + labels.sum(dim=1)).to(torch.float64)
    return torch.where(denominator > 0, 2 * true_pos / denominator, math.nan)


def _mean_f1(per_sample: Tensor, empty: EmptyConvention) -> float:
    undefined = per_sample.isnan()
    if empty == "exclude":
        kept = per_sample[~undefined]
        return kept.mean().item() if kept.numel() else math.nan
    fill = 1.0 if empty == "one" else 0.0
    return torch.where(undefined, fill, per_sample).mean().item()


def sample_f1(preds: Tensor, labels: Tensor, empty: EmptyConvention = "one") -> float:
    """Sample F1: per-sample F1 over the given labels, averaged over samples.

    ``preds`` are hard predictions; from logits use ``predict(logits)`` (``z >= 0``, i.e.
    probability >= 0.5, the boundary counting as positive).

    A sample with no true and no predicted label has F1 0/0. ``empty`` decides it:

    - ``"one"`` (default, sklearn's ``zero_division=1``): the prediction equals the truth, so it
      scores 1. It is the only convention under which a perfect predictor scores 1.0 *and* every
      sample counts (the denominator is always N). Its cost: on a rare group (P) most samples have
      no label there, so F1(P) leans toward the share of correct rejections.
    - ``"zero"`` (sklearn's default behaviour, and the released FairPO code): it scores 0, so even a
      perfect predictor scores below 1 on a group where some samples have no label.
    - ``"exclude"``: such samples are left out of the mean; the number averaged over then depends
      on the model's predictions. NaN if no sample remains.

    Args:
        preds: (N, T) bool or 0/1 integers (floats are refused: logits or probabilities? say which
            by thresholding first).
        labels: (N, T) in {0, 1}.
        empty: "one", "zero" or "exclude".

    Returns:
        A float in [0, 1] (NaN only with ``"exclude"`` and nothing left).
    """
    if empty not in ("one", "zero", "exclude"):
        raise ValueError(f"empty must be 'one', 'zero' or 'exclude', got {empty!r}")
    preds, truth = _check_predictions(preds, labels)
    return _mean_f1(per_sample_f1(preds, truth), empty)


def dead_heads(logits: Tensor) -> list[int]:
    """Labels whose head gives the same logit for every sample of ``logits`` (N, T): a head whose
    narrow ReLU layer died outputs its last bias whatever the input, so its AP is the label's
    prevalence. Equals ``[t for t in range(T) if len(set(logits[:, t].tolist())) == 1]``."""
    spread = logits.max(dim=0).values - logits.min(dim=0).values
    return [int(t) for t in torch.nonzero(spread == 0).flatten()]


def accuracy(preds: Tensor, labels: Tensor) -> float:
    """Element-wise accuracy: the fraction of the N·T entries where prediction equals label.

    Args:
        preds: (N, T) bool or 0/1 integers (threshold logits with :func:`predict`).
        labels: (N, T) in {0, 1}.
    """
    preds, truth = _check_predictions(preds, labels)
    return (preds == truth).to(torch.float64).mean().item()


def _nanmean(values: Tensor) -> float:
    """Mean over the non-NaN entries; NaN when there are none (no division by zero)."""
    kept = values[~values.isnan()]
    return kept.mean().item() if kept.numel() else math.nan


# ---------------------------------------------------------------- per group


def _group_values(
    ap: Tensor, preds: Tensor, truth: Tensor, mask: Tensor, empty: EmptyConvention
) -> dict[str, float]:
    if not mask.any():
        return {name: math.nan for name in METRICS}
    p, y = preds[:, mask], truth[:, mask]
    return {
        "mAP": _nanmean(ap[mask]),
        "f1": _mean_f1(per_sample_f1(p, y), empty),
        "accuracy": (p == y).to(torch.float64).mean().item(),
    }


def group_metrics(
    logits: Tensor,
    labels: Tensor,
    privileged: Sequence[int] | Tensor,
    empty: EmptyConvention = "one",
    per_label: bool = False,
) -> dict:
    """mAP, sample F1 and accuracy for the privileged group, its complement and all labels.

    mAP is the mean AP over the group's labels that have at least one positive in the split.

    Args:
        logits: (N, T) float.
        labels: (N, T) in {0, 1}.
        privileged: indices of P or a bool mask (T,).
        empty: the sample-F1 convention for a sample with no true and no predicted label
            (see :func:`sample_f1`).
        per_label: also return ``"per_label_ap"``, a list of T floats (NaN: no positive).

    Returns:
        ``{"privileged": {"mAP", "f1", "accuracy"}, "non_privileged": {...}, "overall": {...}}``,
        plain Python floats in [0, 1] (fractions); every value of an empty group is NaN.
    """
    if empty not in ("one", "zero", "exclude"):
        raise ValueError(f"empty must be 'one', 'zero' or 'exclude', got {empty!r}")
    scores, truth = _check_logits_labels(logits, labels)
    masks = _group_masks(privileged, scores.shape[1])
    ap = average_precision(scores, truth).cpu()
    preds, truth = predict(scores).cpu(), truth.cpu()
    out: dict = {g: _group_values(ap, preds, truth, masks[g], empty) for g in GROUPS}
    if per_label:
        out["per_label_ap"] = ap.tolist()
    return out


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
    :func:`group_metrics` (the zero for batches without positives pulls the other way on rare
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
        The same layout as :func:`group_metrics` (without per-label AP).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if empty not in ("one", "zero", "exclude"):
        raise ValueError(f"empty must be 'one', 'zero' or 'exclude', got {empty!r}")
    if no_positive_batch not in ("zero", "skip"):
        raise ValueError(f"no_positive_batch must be 'zero' or 'skip', got {no_positive_batch!r}")
    scores, truth = _check_logits_labels(logits, labels)
    scores, truth = scores.cpu(), truth.cpu()
    masks = _group_masks(privileged, scores.shape[1])
    # Batch sizes: all batch_size except a shorter last one (a DataLoader without drop_last).
    weights = torch.bincount(torch.arange(scores.shape[0]) // batch_size).to(torch.float64)
    per_batch = _batch_group_values(scores, truth, masks, batch_size, empty)
    out = {}
    for group in GROUPS:
        if not masks[group].any():
            out[group] = {name: math.nan for name in METRICS}
            continue
        values = dict(per_batch[group])
        if no_positive_batch == "zero":
            values["mAP"] = values["mAP"].nan_to_num(0.0)
        out[group] = {name: _weighted_mean(values[name], weights) for name in METRICS}
    return out
