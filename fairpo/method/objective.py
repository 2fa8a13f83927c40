"""Which losses each method and ablation combines (Tables 1–4), as one step's objective; the one list of
method names and the one place that dispatches on them.

``Objective(config, privileged, num_labels).step(logits, labels, ref_logits, generator)`` returns the
scalar to descend on and the step's diagnostics, as detached tensors on the logits' device (the caller
reads them once per epoch: the step never waits for the host). The group weights are its state; under
data parallelism the caller passes ``reduce`` so the group losses are averaged across ranks before the
weights move. ``config`` is any object with the method's fields (a :class:`fairpo.run.config.RunConfig`).

| variant / ablation | objective |
| --- | --- |
| ``bce`` | mean BCE over all labels |
| ``focal`` | mean sigmoid focal loss over all labels |
| ``asl`` | mean asymmetric loss over all labels (not in the paper) |
| ``dbloss`` | mean distribution-balanced loss over all labels (not in the paper) |
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

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from fairpo.method import baselines, losses
from fairpo.method.checks import LabelGroups
from fairpo.method.group_weights import GroupWeights

BASELINE_LOSSES: dict[str, Callable[[Tensor, Tensor, Any, "Objective"], Tensor]] = {
    "bce": lambda logits, labels, c, o: baselines.bce_loss(logits, labels, check=False),
    "focal": lambda logits, labels, c, o: baselines.focal_loss(logits, labels, c.focal_alpha, c.focal_gamma,
                                                               check=False),
    "asl": lambda logits, labels, c, o: baselines.asymmetric_loss(logits, labels, c.asl_gamma_pos, c.asl_gamma_neg,
                                                                  c.asl_margin, check=False),
    "dbloss": lambda logits, labels, c, o: baselines.distribution_balanced_loss(
        logits, labels, *o.prior, alpha=c.db_alpha, beta=c.db_beta, mu=c.db_mu, lam=c.db_lambda, kappa=c.db_kappa,
        check=False),
}
"""The baselines trained on one loss over all labels (a function of logits, labels, the config and the
objective, which holds the training split's label prior)."""
GROUP_BASELINES = ("gdro",)
"""Baselines that weight the two groups' BCE (Group DRO)."""
NEEDS_PRIOR = ("dbloss",)
"""Methods whose loss reads the training split's label counts (given as ``train_labels``)."""
PAPER_BASELINES = ("bce", "focal", "gdro")
"""The baselines of the paper's Tables 1–2."""
BEYOND_BASELINES = ("asl", "dbloss")
"""Baselines practitioners use that the paper does not compare with."""
BASELINES = (*PAPER_BASELINES, *BEYOND_BASELINES)
FAIRPO_VARIANTS = tuple(losses.PREFERENCE_LOSSES)
VARIANTS = (*BASELINES, *FAIRPO_VARIANTS)
"""The list of every method — the baselines, then FairPO with each preference loss."""

ABLATIONS = ("none", "no-pref", "no-constraint", "no-grpo", "global", "neg-only", "no-fallback")
"""Ablations of Tables 3–4; they apply to FairPO variants only."""


class Objective:
    def __init__(self, config: Any, privileged: Sequence[int], num_labels: int,
                 reduce: Callable[[Tensor], Tensor] | None = None, device: torch.device | str = "cpu",
                 train_labels: Tensor | None = None) -> None:
        if config.variant not in VARIANTS:
            raise ValueError(f"unknown variant {config.variant!r}; choose one of: {', '.join(VARIANTS)}")
        if config.variant in NEEDS_PRIOR:
            if train_labels is None:
                raise ValueError(f"{config.variant!r} weighs labels by their training frequency: pass train_labels")
            self.prior = tuple(t.to(device) for t in baselines.label_prior(train_labels))
        if config.ablation not in ABLATIONS:
            raise ValueError(f"unknown ablation {config.ablation!r}; choose one of: {', '.join(ABLATIONS)}")
        self.config = config
        self.groups = LabelGroups.of(list(privileged), num_labels, device)  # checked once, here
        self.all_labels = LabelGroups.of(list(range(num_labels)), num_labels, device)
        self.num_labels = num_labels
        self.reduce = reduce or (lambda t: t)
        c = config
        if c.variant in GROUP_BASELINES:
            self.weights = GroupWeights(mode="exponentiated", step_size=c.gdro_step_size, device=device)
        elif c.variant in FAIRPO_VARIANTS and c.ablation != "global":
            mode = "fixed" if c.ablation == "no-grpo" else "scaled"
            self.weights = GroupWeights(mode=mode, step_size=c.group_step_size, ema_decay=c.ema_decay,
                                        scale_eps=c.scale_eps, device=device)
        else:
            self.weights = None

    def step(self, logits: Tensor, labels: Tensor, ref_logits: Tensor | None,
             generator: torch.Generator | None) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss of one batch (logits, labels, ref_logits: (B, T)) and its diagnostics.

        Diagnostics hold the group losses ``loss_P``/``loss_N`` (for every method, so the dynamics of a
        baseline can be plotted beside FairPO's) and, where they exist, ``alpha_P``/``alpha_N``, the
        fallback rate, the mean confusing-set size and the share of active hinges: detached scalars.
        """
        c = self.config
        if c.variant in BASELINES:
            group = losses.group_bce(logits, labels, self.groups, check=False)
            if c.variant in BASELINE_LOSSES:
                total = BASELINE_LOSSES[c.variant](logits, labels, c, self)
            else:
                self.weights.update(self.reduce(group.detach()), check=False)
                total = self.weights.combine(group)
            return total, self._diagnostics(group, {})

        pref = dict(variant=c.variant, ref_logits=ref_logits, beta=c.beta, gamma=c.gamma, lam=c.lam,
                    generator=generator, check=False)
        if c.ablation == "global":
            total, stats = losses.privileged_loss(logits, labels, self.all_labels, **pref)
            return total, self._diagnostics(torch.stack([total, total.new_zeros(())]), stats)

        loss_p, stats = losses.privileged_loss(
            logits, labels, self.groups, preference=c.ablation != "no-pref",
            negatives_only=c.ablation == "neg-only", fallback=c.ablation != "no-fallback", **pref)
        if c.ablation == "no-constraint":
            loss_n = losses.group_bce(logits, labels, self.groups, check=False)[1]
        else:
            loss_n, hinge = losses.non_privileged_loss(logits, labels, self.groups, ref_logits=ref_logits,
                                                       epsilon=c.epsilon, check=False)
            stats.update(hinge)
        group = torch.stack([loss_p, loss_n])
        self.weights.update(self.reduce(group.detach()), check=False)
        return self.weights.combine(group), self._diagnostics(group, stats)

    def _diagnostics(self, group: Tensor, stats: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {"loss_P": group[0], "loss_N": group[1], **stats}
        out = {k: v.detach() for k, v in out.items()}
        if self.weights is not None:
            out["alpha_P"], out["alpha_N"] = self.weights.weights.clone()
        return out

    def state_dict(self) -> dict:
        return self.weights.state_dict() if self.weights is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.weights is not None:
            self.weights.load_state_dict(state)
