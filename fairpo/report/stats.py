"""Significance statistics of the report: the two tests behind the tables' marks, Holm's correction, and
the small tests the notebooks quote.

The two tests, both two-sided, always against the row the Δ or the parenthesis of a table refers to
(:data:`TESTS`):

(a) **Welch's t-test across seeds** (:func:`welch_test`, ``scipy.stats.ttest_ind(equal_var=False)``) on
    the per-seed metric of the two rows. It asks whether another training seed would give the same
    difference.
(b) **A paired bootstrap over test images** (:func:`paired_bootstrap`): the test images are resampled
    with replacement (``resamples`` times, ``numpy.random.default_rng(seed)``, :func:`resample_counts`),
    the same resample is used for both rows, and the group mAP of each run is recomputed on it. Seed *k*
    of one method is paired with seed *k* of the other (they share the heads' initialisation, the batch
    order and, for FairPO, the reference model), the per-seed differences are averaged, and that
    average — the table's Δ when both rows have the same seeds — is bootstrapped. We pair seeds rather
    than averaging the seeds' logits because an ensemble of three runs is a different model from the
    ones whose mean the table reports. It asks whether another test set from the same distribution
    would give the same difference *for these trained models*; it says nothing about seed variance. The
    p-value is ``min(1, 2 · min(1 + #{d* ≤ 0}, 1 + #{d* ≥ 0}) / (B + 1))`` (:func:`bootstrap_p_value`)
    and the interval is the percentile interval of ``d*``.

Marks, as in the paper (:func:`mark_for`): ``†`` p < 0.05, ``‡`` p > 0.1, none in between. The paper's †
says "significant improvement"; our tests are two-sided, so † means a significant *difference* and the
sign of the Δ gives its direction.

Average precision itself is :func:`fairpo.method.metrics.batched_average_precision`; a resample counts
each image as often as it was drawn (its ``weights``).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal, Sequence

import numpy as np
import torch
from scipy import optimize, stats

from fairpo.method.metrics import batched_average_precision

LEVEL = 0.05
"""The level of every claim the book makes (after Holm's correction within a family)."""
DAGGER, DOUBLE_DAGGER = "†", "‡"
SIGNIFICANT, NOT_SIGNIFICANT = 0.05, 0.1
TESTS = {"welch": "Welch's t-test across seeds", "bootstrap": "paired bootstrap over test images"}
"""The two significance tests, by the name the ``test`` arguments take."""

Test = Literal["welch", "bootstrap"]


def mark_for(p: float) -> str:
    """The paper's mark for a p-value: † below 0.05, ‡ above 0.1, nothing in between or for NaN."""
    if p is None or not math.isfinite(p):
        return ""
    if p < SIGNIFICANT:
        return DAGGER
    if p > NOT_SIGNIFICANT:
        return DOUBLE_DAGGER
    return ""


# ---------------------------------------------------------------- across seeds


def welch_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's two-sided t-test of mean(a) vs mean(b): ``(t, p)``; NaN when a side has < 2 values."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance on both sides: scipy says NaN
        res = stats.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries stay NaN and are not counted).

    With the m finite p-values sorted, ``p_(1) ≤ … ≤ p_(m)``, the adjusted value of the i-th is
    ``max_{j ≤ i} min(1, (m − j + 1) · p_(j))``; rejecting where it is below α controls the chance of any
    false claim in the family at α.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out


def trend_test(values: Sequence[float]) -> tuple[float, float]:
    """Mean and two-sided one-sample t-test p-value of ``values`` against 0 (NaN with < 2 values or
    no spread)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2 or np.ptp(v) == 0:
        return (float(v.mean()) if len(v) else math.nan), math.nan
    return float(v.mean()), float(stats.ttest_1samp(v, 0.0).pvalue)


def detectable_difference(std: float, n: int, level: float = LEVEL, power: float = 0.8) -> float:
    """The smallest true difference (same unit as ``std``) that Welch's two-sided test at ``level``
    finds with probability ``power``, with ``n`` seeds a side and seed-to-seed spread ``std`` on both.

    With equal sizes and spreads Welch's test is Student's: t has ``2n − 2`` degrees of freedom and,
    under a true difference d, a noncentral t distribution with noncentrality ``d / (std·√(2/n))``;
    the power is the chance that t exceeds the two-sided critical value.
    """
    if not (std > 0) or n < 2:
        return math.nan
    df, se = 2 * n - 2, std * math.sqrt(2 / n)
    critical = stats.t.ppf(1 - level / 2, df)

    def shortfall(d: float) -> float:
        # the lower rejection region adds < 0.003 at the differences that matter; its cdf is NaN far out
        return stats.nct.sf(critical, df, d / se) - power

    return float(optimize.brentq(shortfall, 1e-9 * se, 20 * se))  # power at 20 standard errors is ~1


# ---------------------------------------------------------------- over test images


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``resamples`` draws of ``n`` with replacement.

    Returns (resamples, n) int64, rows summing to n; the same ``seed`` gives the same counts. Equals
    ``np.bincount(idx[b], minlength=n)`` for ``idx = default_rng(seed).integers(0, n, (resamples, n))``.
    """
    if n < 1 or resamples < 1:
        raise ValueError(f"need n >= 1 and resamples >= 1, got n={n}, resamples={resamples}")
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    flat = (idx + np.arange(resamples)[:, None] * n).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n)


def resampled_average_precision(scores: np.ndarray, labels: np.ndarray, counts: np.ndarray | None = None,
                                max_elements: int = 2**24) -> np.ndarray:
    """Per-label AP of one run on every resample: :func:`fairpo.method.metrics.batched_average_precision`
    with ``counts`` as the sample weights, in chunks of resamples.

    Args:
        scores: (N, T) logits (any monotone transform gives the same AP).
        labels: (N, T) in {0, 1}.
        counts: (B, N) times each image is drawn in each resample (:func:`resample_counts`); None for
            the test split itself (B = 1).
        max_elements: memory bound; resamples are processed in chunks of about this many B·N·T entries.

    Returns:
        (B, T) float64; NaN where a label has no (drawn) positive.
    """
    scores = torch.as_tensor(np.asarray(scores, dtype=np.float64))[None]
    labels = torch.as_tensor(np.asarray(labels))[None]
    if counts is None:
        return batched_average_precision(scores, labels).numpy()
    counts = np.atleast_2d(counts)
    n, t = scores.shape[1:]
    out = np.empty((counts.shape[0], t))
    chunk = max(1, max_elements // (n * t))
    for start in range(0, counts.shape[0], chunk):
        weights = torch.as_tensor(counts[start:start + chunk])
        out[start:start + chunk] = batched_average_precision(scores, labels, weights).numpy()
    return out


def group_map(ap: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean AP over the labels in ``mask`` (T,) that have a positive: (B, T) → (B,) (NaN if none)."""
    part = ap[:, np.asarray(mask, dtype=bool)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(part, axis=1)


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference" from resampled differences d* (NaNs dropped).

    ``min(1, 2 · min(1 + #{d* ≤ 0}, 1 + #{d* ≥ 0}) / (B + 1))``; identical models (every d* = 0) give 1.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan
    low, high = np.count_nonzero(d <= 0), np.count_nonzero(d >= 0)
    return float(min(1.0, 2 * (1 + min(low, high)) / (d.size + 1)))


def bootstrap_summary(observed: float, diffs: np.ndarray, confidence: float, pairs: int) -> dict[str, float]:
    """``difference`` (``observed``), the percentile interval ``ci_low``/``ci_high`` of ``diffs`` at
    ``confidence``, ``p`` (:func:`bootstrap_p_value`), ``resamples`` and ``pairs``."""
    finite = diffs[np.isfinite(diffs)]
    tail = (1 - confidence) / 2
    low, high = (np.quantile(finite, [tail, 1 - tail]) if finite.size else (math.nan, math.nan))
    return dict(difference=observed, ci_low=float(low), ci_high=float(high), p=bootstrap_p_value(diffs),
                resamples=int(diffs.size), pairs=pairs)


def paired_bootstrap(logits_a: Sequence[np.ndarray], logits_b: Sequence[np.ndarray], labels: np.ndarray,
                     mask: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, float]:
    """Paired bootstrap over test images of the group mAP difference between two methods.

    Seed k of method A is paired with seed k of B: ``logits_a[k]`` and ``logits_b[k]`` are (N, T)
    test logits of the same N images. Each resample draws N images with replacement (the same draw
    for every run), recomputes each run's group mAP, and averages the per-seed differences A − B.

    Args:
        logits_a, logits_b: K arrays (N, T) each, K >= 1, paired by position.
        labels: (N, T) in {0, 1}, shared by all runs.
        mask: (T,) bool, the group's labels.
        resamples: B.
        seed: seeds the resampling (numpy ``default_rng``).
        confidence: level of the percentile interval.

    Returns:
        ``difference`` (observed, percent points), ``ci_low``, ``ci_high``, ``p`` (two-sided,
        :func:`bootstrap_p_value`), ``resamples``, ``pairs`` (K).
    """
    if len(logits_a) != len(logits_b) or not len(logits_a):
        raise ValueError(f"need the same number (>= 1) of paired runs, got {len(logits_a)} and {len(logits_b)}")
    labels = np.asarray(labels)
    counts = resample_counts(labels.shape[0], resamples, seed)

    def group(logits, weights):
        return group_map(resampled_average_precision(logits, labels, weights), mask)

    observed = np.mean([group(a, None) - group(b, None) for a, b in zip(logits_a, logits_b)]) * 100
    diffs = np.mean([group(a, counts) - group(b, counts) for a, b in zip(logits_a, logits_b)], axis=0) * 100
    return bootstrap_summary(float(observed), diffs, confidence, len(logits_a))
