"""Slow, literal FairPO losses written straight from the paper's equations (appendix B, Algorithm 2).

Loops over samples, privileged labels and candidate counterparts; scores ``m = σ(z)`` and their logs
exactly as the paper writes them (``log m``, ``log(1 − m)``), in whatever dtype the inputs have (the
tests use float64, where this is accurate for moderate logits). Nothing here imports ``fairpo``: it is
the independent oracle the fast code is checked against.
"""

from __future__ import annotations

import math

import torch


def m(z):
    return torch.sigmoid(z)


def bce(z, y):
    """Eq. 11: −[y log m + (1 − y) log(1 − m)]."""
    return -(y * torch.log(m(z)) + (1 - y) * torch.log(1 - m(z)))


def confusing_set(z, y, i, l, negatives_only=False):
    """Eqs. 9–10 for sample i and privileged label l: the list of confusing counterparts k."""
    T = z.shape[1]
    if y[i, l] == 1:
        return [k for k in range(T) if y[i, k] == 0 and m(z[i, k]) >= m(z[i, l])]
    if negatives_only:
        return []
    return [k for k in range(T) if y[i, k] == 1 and m(z[i, k]) <= m(z[i, l])]


def pair_loss(variant, z, zr, y, i, l, k, beta, gamma, lam):
    """Eqs. 12, 14, 15 for the pair formed by privileged label l and counterpart k of sample i."""
    p, d = (l, k) if y[i, l] == 1 else (k, l)  # Algorithm 2, lines 18–23
    if variant == "dpo":
        h = (torch.log(m(z[i, p]) / m(zr[i, p])) - torch.log(m(z[i, d]) / m(zr[i, d])))
        return -torch.log(m(beta * h))
    if variant == "simpo":
        return -torch.log(m(beta * torch.log(m(z[i, p]) / m(z[i, d])) - gamma))
    if variant == "cpo":
        return -torch.log(m(beta * torch.log(m(z[i, p]) / m(z[i, d])))) + lam * bce(z[i, l], y[i, l])
    raise ValueError(variant)


def privileged_loss(z, y, P, variant, *, zr=None, counterparts=None, beta=0.5, gamma=0.25, lam=1.0,
                    preference=True, negatives_only=False, fallback=True):
    """Eq. 13 (and its SimPO/CPO analogues) averaged over every pair (i, l ∈ P).

    ``counterparts[i][a]`` is the k drawn for pair (i, P[a]); if None, the loss is the exact expectation
    over a uniform draw (the mean pair loss over the confusing set).
    """
    B = z.shape[0]
    total = 0.0
    for i in range(B):
        for a, l in enumerate(P):
            S = confusing_set(z, y, i, l, negatives_only)
            if not preference:
                total = total + bce(z[i, l], y[i, l])
            elif not S:
                total = total + (bce(z[i, l], y[i, l]) if fallback else 0.0)
            elif counterparts is None:
                total = total + sum(pair_loss(variant, z, zr, y, i, l, k, beta, gamma, lam) for k in S) / len(S)
            else:
                k = int(counterparts[i][a])
                assert k in S, f"drawn counterpart {k} of pair ({i}, {l}) is not in its confusing set {S}"
                total = total + pair_loss(variant, z, zr, y, i, l, k, beta, gamma, lam)
    return total / (B * len(P))


def non_privileged_loss(z, zr, y, P, epsilon):
    """Eq. 16: mean over (i, j ∉ P) of max(0, BCE(w_j) − BCE(ŵ_j) − ε)."""
    B, T = z.shape
    N = [j for j in range(T) if j not in P]
    if not N:
        return 0.0
    total = 0.0
    for i in range(B):
        for j in N:
            total = total + torch.clamp(bce(z[i, j], y[i, j]) - bce(zr[i, j], y[i, j]) - epsilon, min=0)
    return total / (B * len(N))


def group_weights(losses_per_step, step_size=0.05, ema_decay=0.9, scale_eps=1e-6):
    """Section 2.3 / appendix E's scaled mirror ascent, in plain Python floats, for two or more groups."""
    G = len(losses_per_step[0])
    alpha = [1.0 / G] * G
    ema = None
    out = []
    for losses in losses_per_step:
        if ema is None:
            scaled = list(losses)
            ema = list(losses)
        else:
            scaled = [(L - e) / (abs(e) + scale_eps) for L, e in zip(losses, ema)]
            ema = [ema_decay * e + (1 - ema_decay) * L for L, e in zip(losses, ema)]
        alpha = [a * math.exp(max(-10.0, min(10.0, step_size * s))) for a, s in zip(alpha, scaled)]
        Z = sum(alpha)
        alpha = [a / Z for a in alpha]
        out.append(alpha)
    return out


def asymmetric_loss(z, y, gamma_pos, gamma_neg, margin):
    """ASL (Ridnik et al. 2021) entry by entry: −[y (1−p)^γ⁺ log p + (1−y) p_m^γ⁻ log(1−p_m)], p_m = max(p−m, 0)."""
    B, T = z.shape
    total = 0.0
    for i in range(B):
        for j in range(T):
            p = m(z[i, j])
            if y[i, j] == 1:
                total = total - (1 - p) ** gamma_pos * torch.log(p)
            else:
                p_m = max(p - margin, torch.zeros_like(p))
                total = total - p_m ** gamma_neg * torch.log(1 - p_m)
    return total / (B * T)


def distribution_balanced_loss(z, y, train_y, alpha, beta, mu, lam, kappa):
    """DB loss (Wu et al. 2020) entry by entry, from the training labels' counts and prior."""
    N, T = train_y.shape
    n = [max(float(train_y[:, i].sum()), 1.0) for i in range(T)]
    prior = [n_i / N for n_i in n]
    total = 0.0
    for k in range(z.shape[0]):
        rate = sum(1.0 / n[j] for j in range(T) if y[k, j] == 1)
        for i in range(T):
            r = (1.0 / n[i]) / rate if rate > 0 else math.inf
            weight = alpha + 1.0 / (1.0 + math.exp(-beta * (r - mu))) if r != math.inf else alpha + 1.0
            shifted = z[k, i] + kappa * -math.log(1.0 / prior[i] - 1.0)
            if y[k, i] == 1:
                entry = torch.log(1 + torch.exp(-shifted))
            else:
                entry = torch.log(1 + torch.exp(lam * shifted)) / lam
            total = total + weight * entry
    return total / (z.shape[0] * T)
