"""Evaluation metrics per label group: mAP, sample F1, accuracy and macro F1.

Everything here works on a whole evaluation split at once (the standard), from logits:

- ``logits``: (N, T) float, the model's raw outputs ``z``; the score ``m = sigmoid(z)``.
- ``labels``: (N, T), values in {0, 1} (any dtype).
- ``privileged``: the privileged label set P, as label indices or a bool mask of shape (T,);
  the non-privileged group is its complement, "overall" is all T labels.

Thresholding happens in logit space: a label is predicted present when ``z >= 0``, which is
``sigmoid(z) >= 0.5`` with the boundary (z = 0, m = 0.5) counted as *present*, as the released code
(``prob >= 0.5``) does. Comparing logits avoids float32 sigmoid rounding a logit of -1e-9 up to 0.5.

Input checks come from :mod:`fairpo.method.checks`; the released code's per-batch averaging, which the
audit compares with these metrics, is :func:`fairpo.report.audit.batch_averaged_metrics`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from torchmetrics.functional.classification import multilabel_average_precision

from fairpo.method.checks import binary, check_logits_labels, privileged_mask

EmptyConvention = Literal["one", "zero", "exclude"]
GROUPS = ("privileged", "non_privileged", "overall")
METRICS = ("mAP", "f1", "accuracy", "macro_f1")


# ---------------------------------------------------------------- validation


def check_scores(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Validate (N, T) scores and 0/1 labels for a metric (:func:`~fairpo.method.checks.check_logits_labels`,
    then non-empty and finite); return (scores, labels as bool)."""
    check_logits_labels(logits, labels)
    if logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ValueError(f"need at least one sample and one label, got {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinite values")
    return logits.detach(), binary(labels, "labels")


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
    return binary(preds, "preds"), binary(labels, "labels")


def group_masks(privileged: Sequence[int] | Tensor, num_labels: int) -> dict[str, Tensor]:
    """Masks (T,) on the CPU of the privileged labels (possibly none), their complement and all labels."""
    if isinstance(privileged, Tensor):
        privileged = privileged.detach().cpu()
    mask = privileged_mask(privileged, num_labels, allow_empty=True)
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
    scores, truth = check_scores(scores, labels)
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


def batched_average_precision(scores: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
    """Per-(batch, label) average precision, vectorised over batches and labels.

    Equals the loop (same tie handling, float64 throughout)::

        for b in range(B):
            idx = torch.arange(n).repeat_interleave(weights[b])  # every sample once without weights
            out[b] = average_precision(scores[b, idx], labels[b, idx])

    Used for the per-batch audit, where calling torchmetrics once per batch costs about 30 ms
    each (a COCO validation split has some 1,250 batches), and, with ``weights``, for the bootstrap
    over test images, where each resample counts every image as often as it was drawn.

    Args:
        scores: (B, n, T) logits, B batches of n samples; with ``weights`` B may be 1, one split
            shared by every row of ``weights`` (its scores are sorted once).
        labels: (B, n, T) in {0, 1} (bool accepted), B as for ``scores``.
        weights: optional (B, n) sample multiplicities (non-negative whole numbers): sample i of
            batch b counts ``weights[b, i]`` times.

    Returns:
        (B, T) float64; NaN where a batch has no (counted) positive for a label.
    """
    if scores.ndim != 3 or labels.shape != scores.shape:
        raise ValueError(
            f"need scores and labels of one shape (B, n, T): {tuple(scores.shape)} vs "
            f"{tuple(labels.shape)}"
        )
    if weights is not None and (weights.ndim != 2 or weights.shape[1] != scores.shape[1]
                                or scores.shape[0] not in (1, weights.shape[0])):
        raise ValueError(
            f"weights must be (B, n) for scores (B, n, T) or (1, n, T): {tuple(weights.shape)} vs "
            f"{tuple(scores.shape)}"
        )
    truth = labels.bool()
    sorted_scores, order = scores.sort(dim=1, descending=True, stable=True)
    hits = truth.gather(1, order)
    # Every member of a run of tied scores sits at the threshold of the run's last member.
    n = scores.shape[1]
    position = torch.arange(n, device=scores.device).view(1, n, 1).expand_as(sorted_scores)
    last_of_run = torch.ones_like(hits)
    last_of_run[:, :-1] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    run_end = torch.where(last_of_run, position, torch.full_like(position, n))
    run_end = run_end.flip(1).cummin(dim=1).values.flip(1)
    if weights is None:
        counted = hits.to(torch.float64)
        seen = (run_end + 1).to(torch.float64)
    else:  # the weight of the k-th ranked sample, per batch and label
        w = weights.to(torch.float64)[:, :, None].expand(-1, -1, scores.shape[2])
        w = w.gather(1, order.expand(w.shape[0], -1, -1))
        counted = w * hits
        run_end = run_end.expand_as(w)
        seen = w.cumsum(dim=1).gather(1, run_end)
    true_positives = counted.cumsum(dim=1)
    precision = torch.where(seen > 0, true_positives.gather(1, run_end) / seen, 0.0)
    positives = true_positives[:, -1]
    # summed in rank order (the last partial sum), the same additions in the same order as a loop
    ap = (precision * counted).cumsum(dim=1)[:, -1] / positives
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


def per_label_f1(preds: Tensor, labels: Tensor) -> Tensor:
    """F1 of each label over the samples: ``2 TP / (2 TP + FP + FN)``, (N, T) bool → (T,) float64;
    NaN for a label with no true and no predicted positive in the split (0/0)."""
    true_pos = (preds & labels).sum(dim=0).to(torch.float64)
    denominator = (preds.sum(dim=0) + labels.sum(dim=0)).to(torch.float64)
    return torch.where(denominator > 0, 2 * true_pos / denominator, math.nan)


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
        "macro_f1": _nanmean(per_label_f1(p, y)),
    }


def group_metrics(
    logits: Tensor,
    labels: Tensor,
    privileged: Sequence[int] | Tensor,
    empty: EmptyConvention = "one",
    per_label: bool = False,
) -> dict:
    """mAP, sample F1, accuracy and macro F1 for the privileged group, its complement and all labels.

    mAP is the mean AP over the group's labels that have at least one positive in the split. Sample F1
    and accuracy are the paper's; on a group of rare labels both mostly count correct rejections (a
    model that never predicts a privileged label scores sample F1(P) = the share of samples without one,
    under the default ``empty="one"``). ``macro_f1`` is the mean over the group's labels of each label's
    F1 over the samples (:func:`per_label_f1`), leaving out a label with no true and no predicted
    positive: it drops to 0 for a group whose labels are never predicted.

    Args:
        logits: (N, T) float.
        labels: (N, T) in {0, 1}.
        privileged: indices of P or a bool mask (T,).
        empty: the sample-F1 convention for a sample with no true and no predicted label
            (see :func:`sample_f1`).
        per_label: also return ``"per_label_ap"``, a list of T floats (NaN: no positive).

    Returns:
        ``{"privileged": {"mAP", "f1", "accuracy", "macro_f1"}, "non_privileged": {...}, "overall": {...}}``,
        plain Python floats in [0, 1] (fractions); every value of an empty group is NaN.
    """
    if empty not in ("one", "zero", "exclude"):
        raise ValueError(f"empty must be 'one', 'zero' or 'exclude', got {empty!r}")
    scores, truth = check_scores(logits, labels)
    masks = group_masks(privileged, scores.shape[1])
    ap = average_precision(scores, truth).cpu()
    preds, truth = predict(scores).cpu(), truth.cpu()
    out: dict = {g: _group_values(ap, preds, truth, masks[g], empty) for g in GROUPS}
    if per_label:
        out["per_label_ap"] = ap.tolist()
    return out
