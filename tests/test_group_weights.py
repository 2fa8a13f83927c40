"""Group weights: simplex, direction, the hand computation of section 2.3, checkpoint round trip."""

import math

import pytest
import torch

import reference as ref
from fairpo.method.group_weights import GroupWeights


def loss_sequence(seed, steps=50, groups=2):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, groups, generator=g) * 3).tolist()


@pytest.mark.parametrize("mode", ["scaled", "exponentiated", "fixed"])
def test_weights_stay_on_the_simplex(mode):
    gw = GroupWeights(3, mode=mode, step_size=2.0)
    for losses in loss_sequence(0, groups=3):
        w = gw.update(torch.tensor(losses))
        assert torch.all(w > 0)
        assert math.isclose(w.sum().item(), 1.0, rel_tol=1e-12)


def test_scaled_mode_matches_the_hand_computation():
    seq = loss_sequence(1, steps=8)
    gw = GroupWeights(mode="scaled", step_size=0.05, ema_decay=0.9, scale_eps=1e-6)
    got = [gw.update(torch.tensor(l)).tolist() for l in seq]
    expected = ref.group_weights(seq, 0.05, 0.9, 1e-6)
    for a, b in zip(got, expected):
        assert a == pytest.approx(b, rel=1e-12)


def test_exponentiated_mode_is_group_dro():
    seq = loss_sequence(2, steps=6)
    gw = GroupWeights(mode="exponentiated", step_size=0.3)
    for losses in seq:
        w = gw.update(torch.tensor(losses))
    totals = torch.tensor(seq, dtype=torch.float64).sum(0)  # α_g ∝ exp(η Σ_t L_g,t) from uniform
    torch.testing.assert_close(w, torch.softmax(0.3 * totals, 0))


def test_fixed_mode_never_moves():
    gw = GroupWeights(mode="fixed")
    for losses in loss_sequence(3, steps=5):
        assert gw.update(torch.tensor(losses)).tolist() == [0.5, 0.5]


def test_weight_moves_toward_the_group_whose_loss_rises():
    gw = GroupWeights(mode="scaled", step_size=0.5)
    for _ in range(5):
        gw.update(torch.tensor([1.0, 1.0]))
    before = gw.weights[0].item()
    for step in range(5):
        gw.update(torch.tensor([1.0 + 0.5 * (step + 1), 1.0]))  # privileged loss rises
    assert gw.weights[0].item() > before + 0.05
    assert gw.weights[0] > gw.weights[1]


def test_first_step_uses_the_raw_losses():
    gw = GroupWeights(mode="scaled", step_size=0.05)
    w = gw.update(torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(w, torch.softmax(torch.tensor([0.1, 0.05], dtype=torch.float64), 0))


def test_state_dict_round_trip_continues_identically():
    seq = loss_sequence(4, steps=20)
    a = GroupWeights(mode="scaled", step_size=0.2)
    for losses in seq[:10]:
        a.update(torch.tensor(losses))
    b = GroupWeights(mode="scaled", step_size=0.2)
    b.load_state_dict({k: v.clone() for k, v in a.state_dict().items()})
    for losses in seq[10:]:
        assert torch.equal(a.update(torch.tensor(losses)), b.update(torch.tensor(losses)))
    assert torch.equal(a.ema, b.ema) and a.steps == b.steps == 20


def test_combine_weights_the_losses_without_a_graph_through_alpha():
    gw = GroupWeights(mode="fixed")
    gw.weights = torch.tensor([0.25, 0.75], dtype=torch.float64)
    losses = torch.tensor([2.0, 4.0], requires_grad=True)
    total = gw.combine(losses)
    total.backward()
    assert total.item() == pytest.approx(0.25 * 2 + 0.75 * 4)
    assert losses.grad.tolist() == [0.25, 0.75]


def test_bad_updates_are_rejected():
    gw = GroupWeights()
    with pytest.raises(ValueError, match="expected 2 group losses"):
        gw.update(torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="finite"):
        gw.update(torch.tensor([float("nan"), 1.0]))
    with pytest.raises(ValueError, match="choose one of"):
        GroupWeights(mode="mirror")
