"""The baselines' losses, as pure functions on logits ``(B, T)`` and 0/1 labels: what a practitioner
would train instead of FairPO. Each checks its inputs unless called with ``check=False`` (the training
step, whose inputs were checked where they entered)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fairpo.method.checks import check_logits_labels
from fairpo.method.losses import bce


def bce_loss(logits: Tensor, labels: Tensor, *, check: bool = True) -> Tensor:
    """Mean binary cross-entropy over every entry (Eq. 11): the reference model's objective."""
    if check:
        check_logits_labels(logits, labels)
    return bce(logits, labels).mean()


def focal_loss(logits: Tensor, labels: Tensor, alpha: float = 0.25, gamma: float = 2.0, *,
               check: bool = True) -> Tensor:
    """Sigmoid focal loss (Lin et al.) averaged over all entries, via torchvision's implementation."""
    from torchvision.ops import sigmoid_focal_loss  # imported here: torchvision is slow to import

    if check:
        check_logits_labels(logits, labels)
    return sigmoid_focal_loss(logits, labels.to(logits.dtype), alpha=alpha, gamma=gamma, reduction="mean")


def asymmetric_loss(logits: Tensor, labels: Tensor, gamma_pos: float = 1.0, gamma_neg: float = 4.0,
                    margin: float = 0.05, *, check: bool = True) -> Tensor:
    """Asymmetric loss (ASL; Ridnik et al., ICCV 2021), averaged over all entries.

    With ``p = σ(z)`` and the shifted probability ``p_m = max(p − m, 0)`` of a negative::

        L = −[ y·(1 − p)^γ⁺·log p  +  (1 − y)·p_m^γ⁻·log(1 − p_m) ]

    Positives are down-weighted by ``(1 − p)^γ⁺`` once they are easy; negatives by the steeper
    ``p_m^γ⁻``, and a negative scored below ``m`` costs nothing at all (the margin discards easy
    negatives, which dominate in multi-label data). The focusing weights keep their gradient, as in the
    paper's equations. The paper's implementation sums over the batch; we average, like every other
    loss here, so the learning rate and the gradient clipping mean the same for every method (AdamW is
    otherwise insensitive to a constant scale of the loss).
    """
    if check:
        check_logits_labels(logits, labels)
    y = labels.to(logits.dtype)
    p = torch.sigmoid(logits)
    positive = (1 - p).pow(gamma_pos) * F.logsigmoid(logits)
    if margin > 0:
        p_m = (p - margin).clamp(min=0)
        negative = p_m.pow(gamma_neg) * torch.log1p(-p_m)  # 1 − p_m ≥ m > 0: finite
    else:
        negative = p.pow(gamma_neg) * F.logsigmoid(-logits)
    return -(y * positive + (1 - y) * negative).mean()


def label_prior(train_labels: Tensor) -> tuple[Tensor, Tensor]:
    """Positives per label ``n_i`` (at least 1) and the prior ``p_i = n_i / N`` (inside (0, 1)) of a
    training split's labels (N, T): what the distribution-balanced loss needs from the data."""
    counts = train_labels.float().sum(0).clamp(min=1)
    prior = (counts / max(len(train_labels), 1)).clamp(1e-6, 1 - 1e-6)
    return counts, prior


def distribution_balanced_loss(logits: Tensor, labels: Tensor, counts: Tensor, prior: Tensor, *,
                               alpha: float = 0.1, beta: float = 10.0, mu: float = 0.2, lam: float = 2.0,
                               kappa: float = 0.05, check: bool = True) -> Tensor:
    """Distribution-balanced loss (Wu et al., ECCV 2020), averaged over all entries.

    ``counts`` (T,) positives per label in the training split and ``prior`` (T,) their rates
    (:func:`label_prior`). Two changes to BCE:

    - **re-balanced weights**: a sample with several labels is seen once per label by class-aware
      sampling; the ratio of label ``i``'s sampling chance to the sample's,
      ``r_ki = (1/n_i) / Σ_{j: y_kj = 1} 1/n_j``, smoothed to ``r̂ = α + σ(β·(r − μ))``, weighs every
      entry of sample ``k`` (a sample without positives has ``r = ∞``, so ``r̂ = α + 1``);
    - **negative-tolerant regularisation**: each logit is shifted by the label's prior,
      ``ẑ_i = z_i + κ·b̂_i`` with ``b̂_i = −log(1/p_i − 1)`` (the prior's logit; our sign convention:
      rare labels start below 0.5, so their many negatives start cheap), and negatives are scored
      with a sharper, ``λ``-scaled loss: ``y·log(1 + e^{−ẑ}) + (1 − y)·(1/λ)·log(1 + e^{λ·ẑ})``.

    Defaults are the paper's (α = 0.1, β = 10, μ = 0.2, λ = 2, κ = 0.05).
    """
    if check:
        check_logits_labels(logits, labels)
        if counts.shape != (logits.shape[1],) or prior.shape != (logits.shape[1],):
            raise ValueError(f"counts and prior need one entry per label ({logits.shape[1]}), got "
                             f"{tuple(counts.shape)} and {tuple(prior.shape)}")
    y = labels.to(logits.dtype)
    inverse = 1.0 / counts.to(logits.dtype)
    rate = (y * inverse).sum(1, keepdim=True)  # (B, 1): Σ over the sample's positives of 1/n_j
    ratio = inverse / rate  # a sample without positives: 1/0 = inf
    weight = alpha + torch.sigmoid(beta * (ratio - mu))
    shifted = logits + kappa * torch.logit(prior.to(logits.dtype))
    per_entry = y * F.softplus(-shifted) + (1 - y) * F.softplus(lam * shifted) / lam
    return (weight * per_entry).mean()
