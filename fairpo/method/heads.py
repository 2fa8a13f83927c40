"""Per-label MLP heads, computed for all labels at once.

The paper gives every label ``t`` its own MLP ``d → 256 → 64 → 16 → 4 → 1`` with ReLU (appendix G.2).
Run as ``T`` separate modules that is ``5·T`` small kernel launches per step; here the ``T`` heads are
stacked: the first layer, whose input is shared, is one matrix product for all labels, and every later
layer is one batched matrix product over labels. Weights are stored exactly as ``T`` stacked
``nn.Linear`` weights (``(T, out, in)``), so converting to and from separate heads is a copy.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

PAPER_HIDDEN = (256, 64, 16, 4)

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}
"""Hidden activations of the heads — the paper's ReLU (default), or one whose gradient never vanishes on
a whole unit. A head whose 4-unit ReLU layer is negative for every input outputs a constant and never
learns again (a *dead head*, recorded in each run's ``dead_heads``)."""


class PerLabelHeads(nn.Module):
    """``num_labels`` independent MLPs on a shared input: (B, in_features) -> logits (B, T).

    Equals, for separate heads ``heads[t] = Sequential(Linear, ReLU, …, Linear(h_last, 1))``::

        logits[:, t] = heads[t](x).squeeze(-1)   for t in range(T)

    Layer ``j`` has ``weight_j`` (T, out_j, in_j) and ``bias_j`` (T, out_j), initialised like
    ``nn.Linear`` (uniform in ±1/√in_j), each head independently, from ``generator`` when one is given
    (the trainer always gives one: see ``fairpo.rng``).
    """

    def __init__(self, in_features: int, num_labels: int, hidden: Sequence[int] = PAPER_HIDDEN,
                 generator: torch.Generator | None = None, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown head activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        self.activation = activation
        self.act = ACTIVATIONS[activation]()
        if in_features < 1 or num_labels < 1 or any(h < 1 for h in hidden):
            raise ValueError(
                f"in_features, num_labels and hidden sizes must be positive, got "
                f"{in_features}, {num_labels}, {tuple(hidden)}"
            )
        self.in_features, self.num_labels, self.hidden = in_features, num_labels, tuple(hidden)
        sizes = (in_features, *self.hidden, 1)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(num_labels, out, inp)) for inp, out in zip(sizes[:-1], sizes[1:])
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(num_labels, out)) for out in sizes[1:])
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for weight, bias in zip(self.weights, self.biases):
            bound = 1.0 / math.sqrt(weight.shape[-1])
            nn.init.uniform_(weight, -bound, bound, generator=generator)
            nn.init.uniform_(bias, -bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, in_features) -> logits (B, T)."""
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected input (batch, {self.in_features}), got {tuple(x.shape)}")
        first_w, first_b = self.weights[0], self.biases[0]
        t, h1, _ = first_w.shape
        # shared input: one (T·h1, d) × (d, B) product for every label's first layer
        h = (first_w.reshape(t * h1, -1) @ x.T).view(t, h1, -1) + first_b.unsqueeze(-1)  # (T, h1, B)
        for weight, bias in zip(self.weights[1:], self.biases[1:]):
            h = torch.baddbmm(bias.unsqueeze(-1), weight, self.act(h))  # (T, out, B)
        return h.squeeze(1).T

    def to_heads(self) -> nn.ModuleList:
        """The same heads as ``T`` separate ``nn.Sequential`` MLPs (copies of the weights)."""
        heads = []
        for t in range(self.num_labels):
            layers: list[nn.Module] = []
            for j, (weight, bias) in enumerate(zip(self.weights, self.biases)):
                linear = nn.Linear(weight.shape[2], weight.shape[1])
                with torch.no_grad():
                    linear.weight.copy_(weight[t])
                    linear.bias.copy_(bias[t])
                layers += [linear, ACTIVATIONS[self.activation]()] if j < len(self.weights) - 1 else [linear]
            heads.append(nn.Sequential(*layers))
        return nn.ModuleList(heads).to(self.weights[0].device)

    @classmethod
    def from_heads(cls, heads: Sequence[nn.Sequential]) -> "PerLabelHeads":
        """Stack ``T`` separate MLPs of identical shape (Linear/ReLU alternating) into one module.

        The activation is taken from the first head (ReLU, LeakyReLU or GELU)."""
        linears = [[m for m in head if isinstance(m, nn.Linear)] for head in heads]
        if not linears or not linears[0]:
            raise ValueError("from_heads needs at least one head made of nn.Linear layers")
        shapes = [tuple(lin.weight.shape for lin in head) for head in linears]
        if any(s != shapes[0] for s in shapes) or shapes[0][-1][0] != 1:
            raise ValueError("all heads must have the same layer sizes and end in one output")
        sizes = [lin.in_features for lin in linears[0]]
        kinds = {type(m) for m in heads[0] if not isinstance(m, nn.Linear)}
        names = [name for name, kind in ACTIVATIONS.items() if kind in kinds] or ["relu"]
        module = cls(sizes[0], len(heads), sizes[1:], activation=names[0])
        with torch.no_grad():
            for j in range(len(sizes)):
                module.weights[j].copy_(torch.stack([head[j].weight for head in linears]))
                module.biases[j].copy_(torch.stack([head[j].bias for head in linears]))
        return module.to(linears[0][0].weight.device)


class Network(nn.Module):
    """Cached features → logits: the trained top of the backbone (any module, the identity when only
    the heads train), then the per-label heads."""

    def __init__(self, top: nn.Module, heads: PerLabelHeads) -> None:
        super().__init__()
        self.top, self.heads = top, heads

    def forward(self, features: Tensor) -> Tensor:
        with torch.profiler.record_function("fairpo.forward.top"):  # named for benchmarks/bench_train.py --profile
            hidden = self.top(features)
        with torch.profiler.record_function("fairpo.forward.heads"):
            return self.heads(hidden)
