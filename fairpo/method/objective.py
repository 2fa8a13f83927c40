"""Which losses each method and ablation combines (Tables 1–4), as one step's objective.

``Objective(config, privileged).step(logits, labels, ref_logits, generator)`` returns the scalar to
descend on and the step's diagnostics. The group weights are its state; under data parallelism the
caller passes ``reduce`` so the group losses are averaged across ranks before the weights move.

| variant / ablation | objective |
| --- | --- |
| ``bce`` | mean BCE over all labels |
| ``focal`` | mean sigmoid focal loss over all labels |
| ``gdro`` | Group DRO: ``α·[BCE_P, BCE_N]``, α by exponentiated gradient on the group BCEs |
| ``dpo``/``simpo``/``cpo`` | ``α_P·L_P + α_N·L_N``, α by scaled mirror ascent |
| ``+no-pref`` | ``L_P`` is plain BCE on P |
| ``+no-constraint`` | ``L_N`` is plain BCE on N |
| ``+no-grpo`` | α fixed at (0.5, 0.5) |
| ``+global`` | the preference loss with fallback over all labels; no split, no group weights |
| ``+neg-only`` | only pairs whose privileged label is present get a preference loss |
| ``+no-fallback`` | pairs without a confusing counterpart cost 0 |
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from fairpo.method import losses
from fairpo.run.config import RunConfig
from fairpo.method.group_weights import GroupWeights


class Objective:
    def __init__(self, config: RunConfig, privileged: Sequence[int], num_labels: int,
                 reduce: Callable[[Tensor], Tensor] | None = None) -> None:
        self.config = config
        self.privileged = list(privileged)
        self.num_labels = num_labels
        self.reduce = reduce or (lambda t: t)
        c = config
        if c.variant == "gdro":
            self.weights = GroupWeights(mode="exponentiated", step_size=c.gdro_step_size)
        elif c.is_fairpo and c.ablation != "global":
            mode = "fixed" if c.ablation == "no-grpo" else "scaled"
            self.weights = GroupWeights(mode=mode, step_size=c.group_step_size, ema_decay=c.ema_decay,
                                        scale_eps=c.scale_eps)
        else:
            self.weights = None

    def step(self, logits: Tensor, labels: Tensor, ref_logits: Tensor | None,
             generator: torch.Generator | None) -> tuple[Tensor, dict[str, float]]:
        """The loss of one batch (logits, labels, ref_logits: (B, T)) and its diagnostics.

        Diagnostics hold the group losses ``loss_P``/``loss_N`` (for every method, so the dynamics of a
        baseline can be plotted beside FairPO's) and, where they exist, ``alpha_P``/``alpha_N``, the
        fallback rate, the mean confusing-set size and the share of active hinges.
        """
        c = self.config
        if c.variant in ("bce", "focal", "gdro"):
            group = losses.group_bce(logits, labels, self.privileged)
            if c.variant == "bce":
                total = losses.bce(logits, labels).mean()
            elif c.variant == "focal":
                total = losses.focal_loss(logits, labels, c.focal_alpha, c.focal_gamma)
            else:
                self.weights.update(self.reduce(group.detach()))
                total = self.weights.combine(group)
            return total, self._diagnostics(group, {})

        pref = dict(variant=c.variant, ref_logits=ref_logits, beta=c.beta, gamma=c.gamma, lam=c.lam,
                    generator=generator)
        if c.ablation == "global":
            total, stats = losses.privileged_loss(logits, labels, range(self.num_labels), **pref)
            return total, self._diagnostics(torch.stack([total, total.new_zeros(())]), stats)

        loss_p, stats = losses.privileged_loss(
            logits, labels, self.privileged, preference=c.ablation != "no-pref",
            negatives_only=c.ablation == "neg-only", fallback=c.ablation != "no-fallback", **pref)
        if c.ablation == "no-constraint":
            loss_n = losses.group_bce(logits, labels, self.privileged)[1]
        else:
            loss_n, hinge = losses.non_privileged_loss(logits, ref_logits, labels, self.privileged, c.epsilon)
            stats.update(hinge)
        group = torch.stack([loss_p, loss_n])
        self.weights.update(self.reduce(group.detach()))
        return self.weights.combine(group), self._diagnostics(group, stats)

    def _diagnostics(self, group: Tensor, stats: dict[str, Tensor]) -> dict[str, float]:
        out = {"loss_P": group[0], "loss_N": group[1], **stats}
        out = {k: float(v.detach()) for k, v in out.items()}
        if self.weights is not None:
            out["alpha_P"], out["alpha_N"] = (float(w) for w in self.weights.weights)
        return out

    def state_dict(self) -> dict:
        return self.weights.state_dict() if self.weights is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.weights is not None:
            self.weights.load_state_dict(state)
