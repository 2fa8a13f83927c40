"""Stacked per-label heads equal T separate MLPs, forward and backward."""

import math

import pytest
import torch
from torch import nn

from fairpo.method.heads import PAPER_HIDDEN, PerLabelHeads


def separate_heads(in_features, num_labels, hidden, seed, activation=nn.ReLU):
    torch.manual_seed(seed)
    heads = []
    for _ in range(num_labels):
        sizes = (in_features, *hidden, 1)
        layers = []
        for j, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if j < len(sizes) - 2:
                layers.append(activation())
        heads.append(nn.Sequential(*layers))
    return nn.ModuleList(heads)


def test_forward_and_backward_equal_separate_mlps():
    d, T, B = 24, 7, 5
    heads = separate_heads(d, T, PAPER_HIDDEN, seed=0)
    stacked = PerLabelHeads.from_heads(heads)
    x = torch.randn(B, d, dtype=torch.float32)
    expected = torch.stack([h(x).squeeze(-1) for h in heads], dim=1)
    got = stacked(x)
    torch.testing.assert_close(got, expected)

    target = torch.randn(B, T)
    ((expected - target) ** 2).sum().backward()
    ((got - target) ** 2).sum().backward()
    for t, head in enumerate(heads):
        linears = [m for m in head if isinstance(m, nn.Linear)]
        for j, lin in enumerate(linears):
            torch.testing.assert_close(stacked.weights[j].grad[t], lin.weight.grad)
            torch.testing.assert_close(stacked.biases[j].grad[t], lin.bias.grad)


def test_to_heads_round_trip_and_equal_outputs():
    stacked = PerLabelHeads(16, 4, hidden=(8, 3))
    heads = stacked.to_heads()
    x = torch.randn(3, 16)
    torch.testing.assert_close(stacked(x), torch.cat([h(x) for h in heads], dim=1))
    again = PerLabelHeads.from_heads(heads)
    for a, b in zip(stacked.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_heads_are_independent():
    stacked = PerLabelHeads(10, 3, hidden=(6, 4))
    x = torch.randn(8, 10)
    stacked(x)[:, 1].sum().backward()
    for w in stacked.weights:  # only head 1 receives gradient
        assert torch.count_nonzero(w.grad[0]) == 0 and torch.count_nonzero(w.grad[2]) == 0
        assert torch.count_nonzero(w.grad[1]) > 0


def test_initialisation_follows_nn_linear_bounds_and_differs_per_head():
    torch.manual_seed(0)
    stacked = PerLabelHeads(64, 5)
    for w in stacked.weights:
        bound = 1 / math.sqrt(w.shape[-1])
        assert w.abs().max() <= bound
        assert w.abs().max() > 0.9 * bound  # spread over the whole range, not a narrower law
    assert not torch.equal(stacked.weights[0][0], stacked.weights[0][1])


def test_paper_architecture_shapes():
    stacked = PerLabelHeads(768, 80)
    assert [tuple(w.shape) for w in stacked.weights] == [
        (80, 256, 768), (80, 64, 256), (80, 16, 64), (80, 4, 16), (80, 1, 4)]


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="expected input"):
        PerLabelHeads(8, 2)(torch.randn(3, 9))
    with pytest.raises(ValueError, match="positive"):
        PerLabelHeads(8, 0)
    with pytest.raises(ValueError, match="same layer sizes"):
        PerLabelHeads.from_heads([nn.Sequential(nn.Linear(4, 1)), nn.Sequential(nn.Linear(5, 1))])


@pytest.mark.parametrize("activation", [nn.LeakyReLU, nn.GELU])
def test_other_activations_equal_separate_mlps_with_that_activation(activation):
    heads = separate_heads(12, 4, (8, 4), seed=3, activation=activation)
    stacked = PerLabelHeads.from_heads(heads)
    x = torch.randn(6, 12)
    torch.testing.assert_close(stacked(x), torch.stack([h(x).squeeze(-1) for h in heads], dim=1))
    assert isinstance(stacked.to_heads()[0][1], activation)


def test_a_dead_relu_head_gets_no_gradient_and_a_leaky_one_does():
    for activation, learns in (("relu", False), ("leaky_relu", True)):
        heads = PerLabelHeads(3, 1, hidden=(2,), activation=activation)
        with torch.no_grad():  # every hidden unit negative for non-negative inputs: a dead ReLU layer
            heads.weights[0].fill_(-1.0)
            heads.biases[0].fill_(-1.0)
        heads(torch.rand(5, 3)).sum().backward()
        assert bool(heads.weights[0].grad.abs().sum() > 0) == learns, activation


def test_unknown_activation_lists_the_choices():
    with pytest.raises(ValueError, match="relu, leaky_relu, gelu"):
        PerLabelHeads(3, 1, activation="tanh")


def test_the_walkthrough_exercises_are_answered_by_hand_derivations():
    from fairpo.method.explain import EXERCISES, check

    # confusing set of the positive label 1 (logit −1): the negatives scored at least as high, labels 0 and 2
    assert EXERCISES["confusing set"]() == {0, 2}
    # first scaled step from (0.5, 0.5): α_P = σ(0.05·(1.2 − 0.4)) = σ(0.04)
    assert EXERCISES["first alpha"]() == round(1 / (1 + math.exp(-0.04)), 3)
    assert check("confusing set", [2, 0]).endswith("correct") and check("first alpha", 0.51).endswith("correct")
    assert "not yet" in check("first alpha", 0.5) and "not answered" in check("hardest push", None)
    assert check("hardest push", EXERCISES["hardest push"]().upper()).endswith("correct")
