"""The baselines' losses (fairpo.method.baselines) against the literal loops of tests/reference.py and
values worked out by hand."""

import math

import pytest
import torch

import reference as ref
from fairpo.method import baselines as B


def batch(seed, rows=5, labels=6):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, labels, generator=gen, dtype=torch.float64) * 2
    y = (torch.rand(rows, labels, generator=gen) < 0.4).double()
    return z, y


@pytest.mark.parametrize("gamma_pos, gamma_neg, margin", [(1.0, 4.0, 0.05), (0.0, 0.0, 0.0), (2.0, 1.0, 0.3)])
def test_asymmetric_loss_equals_its_loop(gamma_pos, gamma_neg, margin):
    z, y = batch(0)
    torch.testing.assert_close(B.asymmetric_loss(z, y, gamma_pos, gamma_neg, margin),
                               ref.asymmetric_loss(z, y, gamma_pos, gamma_neg, margin))


def test_asymmetric_loss_by_hand():
    # one positive at p = 0.5 and one negative at p = 0.5 (z = 0), γ⁺ = 1, γ⁻ = 4, m = 0.05:
    # positive: (1 − 0.5)·log 2 = 0.5 log 2; negative: 0.45⁴·(−log 0.55); the mean of the two
    z = torch.zeros(1, 2, dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    expected = (0.5 * math.log(2) - 0.45 ** 4 * math.log(0.55)) / 2
    assert B.asymmetric_loss(z, y).item() == pytest.approx(expected, rel=1e-12)


def test_asymmetric_loss_without_focusing_or_margin_is_bce_and_easy_negatives_are_free():
    z, y = batch(1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    torch.testing.assert_close(B.asymmetric_loss(z, y, 0.0, 0.0, 0.0), bce)
    easy = torch.full((2, 3), -5.0, dtype=torch.float64, requires_grad=True)  # p ≈ 0.0067 < m
    loss = B.asymmetric_loss(easy, torch.zeros(2, 3, dtype=torch.float64), margin=0.05)
    loss.backward()
    assert loss.item() == 0.0 and torch.all(easy.grad == 0)


def test_distribution_balanced_loss_equals_its_loop():
    z, y = batch(2)
    train = (torch.rand(40, 6, generator=torch.Generator().manual_seed(3)) < torch.linspace(0.05, 0.7, 6)).double()
    y[0] = 0  # a sample without positives takes the weight α + 1
    counts, prior = B.label_prior(train)
    args = dict(alpha=0.1, beta=10.0, mu=0.2, lam=2.0, kappa=0.05)
    torch.testing.assert_close(B.distribution_balanced_loss(z, y, counts, prior, **args),
                               ref.distribution_balanced_loss(z, y, train, **args))


def test_distribution_balanced_loss_by_hand():
    # two labels seen 1 and 3 times in 4 training samples; one sample with both labels, logits 0
    counts, prior = B.label_prior(torch.tensor([[1.0, 1.0], [0, 1.0], [0, 1.0], [0, 0]]))
    assert counts.tolist() == [1.0, 3.0] and prior.tolist() == [0.25, 0.75]
    z = torch.zeros(1, 2, dtype=torch.float64)
    y = torch.ones(1, 2, dtype=torch.float64)
    rate = 1 + 1 / 3
    weights = [0.1 + 1 / (1 + math.exp(-10 * (r / rate - 0.2))) for r in (1.0, 1 / 3)]
    shifted = [0.05 * math.log(0.25 / 0.75), 0.05 * math.log(0.75 / 0.25)]
    expected = sum(w * math.log1p(math.exp(-s)) for w, s in zip(weights, shifted)) / 2
    got = B.distribution_balanced_loss(z, y, counts, prior)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_distribution_balanced_loss_with_flat_weights_and_no_shift_is_bce():
    z, y = batch(4)
    counts, prior = B.label_prior(torch.ones(3, 6))
    # β = 0: σ(0) = 1/2, so α = 1/2 makes every weight 1; κ = 0 and λ = 1 leave plain BCE
    got = B.distribution_balanced_loss(z, y, counts, prior, alpha=0.5, beta=0.0, kappa=0.0, lam=1.0)
    torch.testing.assert_close(got, torch.nn.functional.binary_cross_entropy_with_logits(z, y))


def test_baselines_refuse_bad_inputs():
    z, y = batch(5)
    with pytest.raises(ValueError, match="0 or 1"):
        B.asymmetric_loss(z, y * 2)
    counts, prior = B.label_prior(torch.ones(3, 4))
    with pytest.raises(ValueError, match="one entry per label"):
        B.distribution_balanced_loss(z, y, counts, prior)


def test_the_objective_runs_each_baseline_with_its_configured_parameters():
    from fairpo.method.objective import BASELINES, Objective, VARIANTS
    from fairpo.run.config import RunConfig

    z, y = batch(6)
    z, y = z.float(), y.float()
    train = (torch.rand(50, 6, generator=torch.Generator().manual_seed(7)) < 0.3).float()
    asl = Objective(RunConfig(variant="asl", asl_gamma_neg=2.0, asl_margin=0.1), [4, 5], 6)
    torch.testing.assert_close(asl.step(z, y, None, None)[0], B.asymmetric_loss(z, y, 1.0, 2.0, 0.1))
    db = Objective(RunConfig(variant="dbloss", db_lambda=3.0), [4, 5], 6, train_labels=train)
    torch.testing.assert_close(db.step(z, y, None, None)[0],
                               B.distribution_balanced_loss(z, y, *B.label_prior(train), lam=3.0))
    with pytest.raises(ValueError, match="train_labels"):
        Objective(RunConfig(variant="dbloss"), [4, 5], 6)
    assert {"asl", "dbloss"} <= set(BASELINES) and set(BASELINES) < set(VARIANTS)
