"""FairPO losses: closed forms, the literal reference, the counterpart draw, gradients, bad input."""

import math

import pytest
import torch
from scipy.stats import chisquare

import reference as ref
from fairpo.method import baselines as B
from fairpo.method import losses as L

LOG2 = math.log(2.0)
VARIANTS = ("dpo", "simpo", "cpo")
SWITCHES = [
    {},
    {"preference": False},
    {"negatives_only": True},
    {"fallback": False},
]


def random_batch(seed, B=6, T=7, scale=2.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(B, T, generator=g, dtype=dtype) * scale)
    zr = z + 0.7 * torch.randn(B, T, generator=g, dtype=dtype)
    y = (torch.rand(B, T, generator=g) < 0.4).to(dtype)
    return z, zr, y


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("variant", VARIANTS)
def test_zero_margin_costs_log2(variant):
    z = torch.tensor([-3.0, 0.0, 2.5])
    loss = L.preference_loss(variant, z, z, z, z, beta=0.7, gamma=0.0)
    torch.testing.assert_close(loss, torch.full_like(z, LOG2))


def test_simpo_margin_closed_form():
    z = torch.tensor([1.0, -2.0])
    gamma = 0.8  # σ(−γ) → −log σ(−γ) = log(1 + e^γ)
    loss = L.preference_loss("simpo", z, z, beta=0.5, gamma=gamma)
    torch.testing.assert_close(loss, torch.full_like(z, math.log1p(math.exp(gamma))))


def _all_pairs_confused():
    # privileged labels 0 (positive, scored lowest) and 1 (negative, scored highest): every pair has a
    # non-empty confusing set
    z = torch.tensor([[-2.0, 3.0, 0.5, 1.0], [-1.0, 2.0, -0.5, 0.0]])
    y = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    return z, y


def test_dpo_with_logits_equal_to_reference_costs_log2_per_pair():
    z, y = _all_pairs_confused()
    loss, stats = L.privileged_loss(z, y, [0, 1], variant="dpo", ref_logits=z.clone(), beta=0.5)
    assert stats["fallback_rate"] == 0
    torch.testing.assert_close(loss, torch.tensor(LOG2))


def test_cpo_pair_adds_lambda_times_the_privileged_bce():
    z = torch.tensor([[0.3, 0.3]])  # privileged label 0 positive, label 1 negative with the same score
    y = torch.tensor([[1.0, 0.0]])
    lam = 0.6
    loss, _ = L.privileged_loss(z, y, [0], variant="cpo", lam=lam)
    bce0 = -math.log(1 / (1 + math.exp(-0.3)))
    torch.testing.assert_close(loss, torch.tensor(LOG2 + lam * bce0))


def test_pair_without_counterpart_costs_exactly_its_bce():
    # positive privileged label scored above every negative; negative privileged label scored below
    # every positive: both confusing sets are empty
    z = torch.tensor([[4.0, -3.0, 1.0, -1.0]])
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    for variant in VARIANTS:
        loss, stats = L.privileged_loss(z, y, [0, 1], variant=variant, ref_logits=z + 1)
        expected = torch.nn.functional.binary_cross_entropy_with_logits(z[:, :2], y[:, :2])
        assert stats["fallback_rate"] == 1 and stats["confusing_size"] == 0
        torch.testing.assert_close(loss, expected)
        loss, _ = L.privileged_loss(z, y, [0, 1], variant=variant, ref_logits=z, fallback=False)
        assert loss == 0


def test_ties_count_as_confusing():
    z = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    y = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    mask = L.confusing_mask(z, y, [0, 1])
    # label 0 (positive): both negatives tie with it; label 1 (negative): both positives tie with it
    assert mask[0, 0].tolist() == [False, True, True, False]
    assert mask[0, 1].tolist() == [True, False, False, True]


def test_mask_matches_the_literal_sets():
    for seed in range(5):
        z, _, y = random_batch(seed, B=8, T=9)
        z[0, 3] = z[0, 5]  # force a tie
        P = [0, 3, 5, 8]
        mask = L.confusing_mask(z, y, P)
        for negatives_only in (False, True):
            fast = mask & (y[:, P] == 1).unsqueeze(-1) if negatives_only else mask
            for i in range(z.shape[0]):
                for a, l in enumerate(P):
                    expected = ref.confusing_set(z, y, i, l, negatives_only)
                    assert fast[i, a].nonzero().flatten().tolist() == expected


# ----------------------------------------------------------------------------- literal reference


def _replayed_counterparts(z, y, P, seed, negatives_only):
    mask = L.confusing_mask(z, y, P)
    if negatives_only:
        mask &= (y[:, P] == 1).unsqueeze(-1)
    k, _ = L.draw_counterparts(mask, torch.Generator().manual_seed(seed))
    return k


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: ",".join(s) or "full")
def test_fast_equals_literal_for_the_same_draws(variant, switches):
    for seed in range(3):
        z, zr, y = random_batch(seed)
        P = [1, 4, 5]
        kw = dict(beta=0.7, gamma=0.3, lam=0.8)
        z_fast = z.clone().requires_grad_()
        fast, _ = L.privileged_loss(z_fast, y, P, variant=variant, ref_logits=zr, **kw, **switches,
                                    generator=torch.Generator().manual_seed(seed))
        fast.backward()
        k = _replayed_counterparts(z, y, P, seed, switches.get("negatives_only", False))
        z_lit = z.clone().requires_grad_()
        literal = ref.privileged_loss(z_lit, y, P, variant, zr=zr, counterparts=k.tolist(), **kw, **switches)
        literal.backward()
        torch.testing.assert_close(fast, literal)
        torch.testing.assert_close(z_fast.grad, z_lit.grad)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: ",".join(s) or "full")
def test_fast_equals_literal_in_expectation_over_draws(variant, switches):
    z, zr, y = random_batch(11, B=4, T=6)
    P = [0, 2]
    expected = ref.privileged_loss(z, y, P, variant, zr=zr, **switches)
    # replicate the batch so one call averages many independent draws of every pair
    reps = 4000
    g = torch.Generator().manual_seed(0)
    mean, _ = L.privileged_loss(z.repeat(reps, 1), y.repeat(reps, 1), P, variant=variant,
                                ref_logits=zr.repeat(reps, 1), generator=g, **switches)
    torch.testing.assert_close(mean, torch.as_tensor(expected, dtype=mean.dtype), atol=5e-3, rtol=5e-3)


def test_non_privileged_equals_literal_value_and_gradient():
    for seed in range(3):
        z, zr, y = random_batch(seed, B=5, T=6)
        P = [2, 3]
        z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
        fast, stats = L.non_privileged_loss(z1, y, P, ref_logits=zr, epsilon=0.05)
        literal = ref.non_privileged_loss(z2, zr, y, P, epsilon=0.05)
        fast.backward()
        literal.backward()
        torch.testing.assert_close(fast, literal)
        torch.testing.assert_close(z1.grad, z2.grad)
        assert 0 < stats["active_rate"] < 1


def test_hinge_gives_no_gradient_within_slack():
    z, _, y = random_batch(3, B=4, T=5)
    z = z.requires_grad_()
    loss, stats = L.non_privileged_loss(z, y, [0], ref_logits=z.detach() - 0.0, epsilon=0.01)
    loss.backward()
    assert loss == 0 and stats["active_rate"] == 0
    assert torch.count_nonzero(z.grad) == 0


def test_empty_non_privileged_group_costs_zero_with_a_graph():
    z, zr, y = random_batch(4, B=3, T=3)
    z = z.requires_grad_()
    loss, _ = L.non_privileged_loss(z, y, [0, 1, 2], ref_logits=zr)
    loss.backward()
    assert loss == 0 and torch.count_nonzero(z.grad) == 0


def test_group_bce_is_the_mean_bce_of_each_group():
    z, _, y = random_batch(5, B=4, T=6)
    P = [1, 4]
    N = [0, 2, 3, 5]
    got = L.group_bce(z, y, P)
    torch.testing.assert_close(got[0], ref.bce(z[:, P], y[:, P]).mean())
    torch.testing.assert_close(got[1], ref.bce(z[:, N], y[:, N]).mean())


def test_focal_loss_matches_its_definition():
    z, _, y = random_batch(6, B=4, T=5)
    alpha, gamma = 0.25, 2.0
    p = torch.sigmoid(z)
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    expected = (-alpha_t * (1 - p_t) ** gamma * torch.log(p_t)).mean()
    torch.testing.assert_close(B.focal_loss(z, y, alpha, gamma), expected)


# ----------------------------------------------------------------------------- the draw


def test_draw_is_uniform_over_the_confusing_set():
    mask = torch.zeros(1, 1, 10, dtype=torch.bool)
    members = [1, 4, 5, 9]
    mask[0, 0, members] = True
    n = 40000
    k, nonempty = L.draw_counterparts(mask.expand(n, 1, 10), torch.Generator().manual_seed(0))
    assert nonempty.all()
    counts = torch.bincount(k.flatten(), minlength=10)
    assert counts[[i for i in range(10) if i not in members]].sum() == 0  # never outside the set
    assert chisquare(counts[members].numpy()).pvalue > 1e-3  # a wrong draw fails with p ≈ 0


def test_draw_is_reproducible_for_a_fixed_generator():
    z, _, y = random_batch(7, B=32, T=20)
    mask = L.confusing_mask(z, y, list(range(0, 20, 3)))
    a, _ = L.draw_counterparts(mask, torch.Generator().manual_seed(5))
    b, _ = L.draw_counterparts(mask, torch.Generator().manual_seed(5))
    c, _ = L.draw_counterparts(mask, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_gradient_reaches_reference_logits_or_selection(variant):
    z, zr, y = random_batch(8)
    zr = zr.requires_grad_()
    z = z.requires_grad_()
    mask = L.confusing_mask(z, y, [0, 3])
    assert not mask.requires_grad
    loss, _ = L.privileged_loss(z, y, [0, 3], variant=variant, ref_logits=zr)
    hinge, _ = L.non_privileged_loss(z, y, [0, 3], ref_logits=zr)
    (loss + hinge).backward()
    assert zr.grad is None
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_losses_stay_finite_for_extreme_logits():
    # log(sigmoid(z)) in float32 underflows to -inf near z = -104; logsigmoid does not
    z = torch.tensor([[-120.0, 120.0, -90.0, 100.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    for variant in VARIANTS:
        loss, _ = L.privileged_loss(z, y, [0, 2], variant=variant, ref_logits=z.detach())
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
        z.grad = None


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda z, y: L.privileged_loss(z, y[:, :3], [0], variant="cpo"), "labels have shape"),
        (lambda z, y: L.privileged_loss(z[0], y[0], [0], variant="cpo"), "logits must be"),
        (lambda z, y: L.privileged_loss(z, y * 2, [0], variant="cpo"), "0 or 1"),
        (lambda z, y: L.privileged_loss(z, y, [], variant="cpo"), "empty"),
        (lambda z, y: L.privileged_loss(z, y, [0, 9], variant="cpo"), "outside"),
        (lambda z, y: L.privileged_loss(z, y, [1, 1], variant="cpo"), "repeat"),
        (lambda z, y: L.privileged_loss(z, y, [True, False], variant="cpo"), "mask has shape"),
        (lambda z, y: L.privileged_loss(z, y, [0], variant="dpo"), "ref_logits"),
        (lambda z, y: L.privileged_loss(z, y, [0], variant="ipo"), "choose one of"),
        (lambda z, y: L.non_privileged_loss(z, y, [0], ref_logits=z[:, :2]), "reference logits have shape"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(call, message):
    z, _, y = random_batch(9, B=3, T=4, dtype=torch.float32)
    with pytest.raises(ValueError, match=message):
        call(z, y)


def test_privileged_accepts_mask_or_indices():
    z, _, y = random_batch(10, B=3, T=5)
    mask = torch.tensor([False, True, False, True, False])
    a, _ = L.privileged_loss(z, y, mask, variant="cpo", generator=torch.Generator().manual_seed(0))
    b, _ = L.privileged_loss(z, y, [3, 1], variant="cpo", generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
