"""FairPO's losses as pure functions on logits.

Notation (the book's notation page): logits ``z`` (B, T), scores ``m = sigmoid(z)``,
labels ``y`` in {0, 1}, privileged labels ``P`` (the rest ``N``), frozen reference logits ``zr``.
Everything is computed in logit space (``log m = logsigmoid(z)``), so no score is ever clamped, and
everything is batched: no Python loop over samples, labels or pairs. ``tests/reference.py`` holds the
slow, literal version of each function, written from the paper's equations with loops.

Equation numbers refer to the paper (appendix B).

Every public function checks its inputs (:mod:`fairpo.method.checks`) unless called with
``check=False`` and the label groups already resolved (:class:`~fairpo.method.checks.LabelGroups`), as
the training step does: it then runs without reading a value back from the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fairpo.method.checks import LabelGroups, Privileged, check_logits_labels


# --------------------------------------------------------------------------- building blocks


def bce(logits: Tensor, labels: Tensor) -> Tensor:
    """Element-wise binary cross-entropy (Eq. 11) from logits: (B, T) -> (B, T)."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")


@torch.no_grad()
def confusing_mask(logits: Tensor, labels: Tensor, privileged: Privileged | LabelGroups, *,
                   check: bool = True) -> Tensor:
    """Confusing counterparts of every privileged pair (Eqs. 9–10), chosen with no gradient.

    Returns a bool tensor ``(B, |P|, T)`` whose entry ``[i, a, k]`` says that label ``k`` is in the
    confusing set ``S_il`` of sample ``i`` and privileged label ``l = P[a]``:

    - ``y_il = 1``: ``k`` is a negative scored at least as high, ``y_ik = 0 and z_ik >= z_il``;
    - ``y_il = 0``: ``k`` is a positive scored at most as high, ``y_ik = 1 and z_ik <= z_il``.

    Ties count as confusing. Comparing logits is the same as comparing scores (sigmoid is increasing),
    without the float ties that a saturated sigmoid would invent. Equals the loop::

        for i, (a, l), k: mask[i, a, k] = (y[i,l] == 1 and y[i,k] == 0 and z[i,k] >= z[i,l]) or
                                          (y[i,l] == 0 and y[i,k] == 1 and z[i,k] <= z[i,l])
    """
    p = _groups(logits, labels, privileged, check).p
    z, y = logits.detach(), labels.bool()
    z_l, y_l = z[:, p, None], y[:, p, None]  # (B, |P|, 1)
    z_k, y_k = z[:, None, :], y[:, None, :]  # (B, 1, T)
    negatives = y_l & ~y_k & (z_k >= z_l)
    positives = ~y_l & y_k & (z_k <= z_l)
    return negatives | positives


def draw_counterparts(mask: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw one member of each confusing set uniformly at random, for the whole batch at once.

    ``mask`` ``(B, |P|, T)`` bool. Returns ``(index, nonempty)``, both ``(B, |P|)``: the drawn label index ``k``
    (0 where the set is empty) and whether the set is non-empty. One uniform number per pair picks the
    ``r``-th member, ``r = floor(u * |S|)``; the same generator state gives the same draws. Equals::

        for i, a: members = [k for k in range(T) if mask[i, a, k]]
                  index[i, a] = members[floor(u[i, a] * len(members))] if members else 0
    """
    size = mask.sum(-1)  # (B, |P|)
    device = generator.device if generator is not None else mask.device
    u = torch.rand(size.shape, generator=generator, device=device).to(mask.device)
    rank = (u * size).floor().long().clamp(max=(size - 1).clamp(min=0))
    hit = mask & (mask.cumsum(-1) == (rank + 1).unsqueeze(-1))
    return hit.int().argmax(-1), size > 0


def _dpo(margin: Tensor, ref_margin: Tensor | None, beta: float, gamma: float) -> Tensor:
    if ref_margin is None:
        raise ValueError("the DPO preference loss needs the reference model's logits (ref_logits)")
    return -F.logsigmoid(beta * (margin - ref_margin.detach()))


def _simpo(margin: Tensor, ref_margin: Tensor | None, beta: float, gamma: float) -> Tensor:
    return -F.logsigmoid(beta * margin - gamma)


def _cpo(margin: Tensor, ref_margin: Tensor | None, beta: float, gamma: float) -> Tensor:
    return -F.logsigmoid(beta * margin)


PREFERENCE_LOSSES = {"dpo": _dpo, "simpo": _simpo, "cpo": _cpo}
"""The pair losses of the margin ``log m_p − log m_d`` (and the reference's margin, for DPO); the one
list of FairPO's variants. A new preference loss is one function here and its tests."""
NEEDS_REFERENCE_MARGIN = ("dpo",)
ADDS_BCE = ("cpo",)
"""Variants whose privileged pairs also pay ``λ·BCE(z_il, y_il)`` (CPO's behaviour-cloning term)."""


def preference_loss(
    variant: str,
    preferred: Tensor,
    dispreferred: Tensor,
    ref_preferred: Tensor | None = None,
    ref_dispreferred: Tensor | None = None,
    *,
    beta: float = 0.5,
    gamma: float = 0.25,
) -> Tensor:
    """Element-wise preference loss of (preferred p, dispreferred d) logit pairs, any shape.

    - ``dpo`` (Eq. 12):  ``-log σ(β·[(log m_p − log m̂_p) − (log m_d − log m̂_d)])``, m̂ the reference;
    - ``simpo`` (Eq. 14): ``-log σ(β·(log m_p − log m_d) − γ)``;
    - ``cpo`` (Eq. 15, preference term): ``-log σ(β·(log m_p − log m_d))``; :func:`privileged_loss`
      adds CPO's ``λ·BCE`` term, which belongs to the privileged label, not to the pair.
    """
    if variant not in PREFERENCE_LOSSES:
        raise ValueError(f"unknown preference variant {variant!r}; choose one of: {', '.join(PREFERENCE_LOSSES)}")
    margin = F.logsigmoid(preferred) - F.logsigmoid(dispreferred)
    ref_margin = None
    if ref_preferred is not None and ref_dispreferred is not None:
        ref_margin = F.logsigmoid(ref_preferred) - F.logsigmoid(ref_dispreferred)
    return PREFERENCE_LOSSES[variant](margin, ref_margin, beta, gamma)


def _groups(logits: Tensor, labels: Tensor, privileged: Privileged | LabelGroups, check: bool,
            ref_logits: Tensor | None = None) -> LabelGroups:
    """The label groups for these logits, checking the inputs first when ``check``."""
    if check:
        check_logits_labels(logits, labels, ref_logits)
    return LabelGroups.of(privileged, logits.shape[1], logits.device)


# --------------------------------------------------------------------------- group losses


def privileged_loss(
    logits: Tensor,
    labels: Tensor,
    privileged: Privileged | LabelGroups,
    *,
    variant: str,
    ref_logits: Tensor | None = None,
    beta: float = 0.5,
    gamma: float = 0.25,
    lam: float = 1.0,
    preference: bool = True,
    negatives_only: bool = False,
    fallback: bool = True,
    generator: torch.Generator | None = None,
    check: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The privileged group's loss ``L_P`` (Eq. 13 and its SimPO/CPO analogues).

    For every pair (sample ``i``, privileged label ``l``): draw one confusing counterpart ``k`` (see
    :func:`confusing_mask`, :func:`draw_counterparts`); ``y_il = 1`` makes ``(p, d) = (l, k)`` and
    ``y_il = 0`` makes ``(p, d) = (k, l)``; the pair costs :func:`preference_loss` (plus
    ``λ·BCE(z_il, y_il)`` for CPO); a pair with an empty confusing set costs ``BCE(z_il, y_il)`` (the
    fallback). ``L_P`` is the mean over all ``B·|P|`` pairs. Ablation switches:

    - ``preference=False``: every pair costs plain BCE (Table 3, "w/o preference loss");
    - ``negatives_only=True``: only pairs with ``y_il = 1`` look for (negative) counterparts; the others
      have an empty set and fall back (Table 4, "only confusing negatives");
    - ``fallback=False``: a pair with an empty set costs 0 (still counted in the mean; Table 4).

    Shapes: ``logits``, ``labels``, ``ref_logits`` (B, T). Returns ``(loss, stats)`` where ``loss`` is a
    scalar and ``stats`` holds detached scalars: ``fallback_rate`` (share of pairs with an empty set),
    ``preference_rate`` (share of pairs that got a preference loss) and ``confusing_size`` (mean set size).
    """
    if variant not in PREFERENCE_LOSSES:  # checks of Python values: no device read, so always made
        raise ValueError(f"unknown preference variant {variant!r}; choose one of: {', '.join(PREFERENCE_LOSSES)}")
    if variant in NEEDS_REFERENCE_MARGIN and ref_logits is None and preference:
        raise ValueError(f"FairPO-{variant.upper()} needs ref_logits, the frozen reference model's logits "
                         f"for the same batch")
    groups = _groups(logits, labels, privileged, check, ref_logits)
    p = groups.p
    labels = labels.to(logits.dtype)
    z_l, y_l = logits[:, p], labels[:, p]  # (B, |P|)
    positive = y_l == 1
    bce_l = bce(z_l, y_l)

    mask = confusing_mask(logits, labels, groups, check=False)
    if negatives_only:
        mask &= positive.unsqueeze(-1)
    k, nonempty = draw_counterparts(mask, generator)
    stats = {
        "fallback_rate": (~nonempty).float().mean(),
        "confusing_size": mask.sum(-1).float().mean(),
    }
    if not preference:
        stats["preference_rate"] = torch.zeros((), device=logits.device)
        return bce_l.mean(), stats

    k = torch.where(nonempty, k, p.expand_as(k))  # an empty set pairs l with itself; masked below
    z_k = logits.gather(1, k)
    z_p, z_d = torch.where(positive, z_l, z_k), torch.where(positive, z_k, z_l)
    ref_p = ref_d = None
    if variant in NEEDS_REFERENCE_MARGIN:
        r_l, r_k = ref_logits[:, p], ref_logits.gather(1, k)
        ref_p, ref_d = torch.where(positive, r_l, r_k), torch.where(positive, r_k, r_l)
    pair = preference_loss(variant, z_p, z_d, ref_p, ref_d, beta=beta, gamma=gamma)
    if variant in ADDS_BCE:
        pair = pair + lam * bce_l
    empty_cost = bce_l if fallback else torch.zeros_like(bce_l)
    stats["preference_rate"] = nonempty.float().mean()
    return torch.where(nonempty, pair, empty_cost).mean(), stats


def non_privileged_loss(
    logits: Tensor, labels: Tensor, privileged: Privileged | LabelGroups, *, ref_logits: Tensor,
    epsilon: float = 0.05, check: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The non-privileged group's hinge constraint ``L_N`` (Eq. 16).

    ``mean over (i, j in N) of max(0, BCE(z_ij, y_ij) − BCE(zr_ij, y_ij) − ε)``: no gradient while a
    label stays within ``ε`` of the reference model's loss. ``stats["active_rate"]`` is the share of
    entries where the hinge is active. An empty ``N`` (every label privileged) costs 0.
    """
    if ref_logits is None:
        raise ValueError("the non-privileged hinge needs ref_logits, the frozen reference model's logits")
    groups = _groups(logits, labels, privileged, check, ref_logits)
    if groups.n_empty:
        zero = logits.sum() * 0.0
        return zero, {"active_rate": zero.detach()}
    n = groups.n
    labels = labels.to(logits.dtype)
    excess = bce(logits[:, n], labels[:, n]) - bce(ref_logits[:, n].detach(), labels[:, n]) - epsilon
    return F.relu(excess).mean(), {"active_rate": (excess > 0).float().mean()}


def group_bce(logits: Tensor, labels: Tensor, privileged: Privileged | LabelGroups, *, check: bool = True) -> Tensor:
    """Mean BCE of each label group, ``[L_P, L_N]`` (2,): Group DRO's group losses and the plain-BCE
    group losses of the ``no-pref``/``no-constraint`` ablations. An empty group costs 0."""
    in_p = _groups(logits, labels, privileged, check).mask
    per_entry = bce(logits, labels)
    groups = torch.stack([in_p, ~in_p]).to(per_entry.dtype)  # (2, T)
    count = groups.sum(1) * logits.shape[0]
    return (per_entry @ groups.T).sum(0) / count.clamp(min=1)
