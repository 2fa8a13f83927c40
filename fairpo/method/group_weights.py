"""Group weights on the simplex: FairPO's group-robust balancing and Group DRO's.

The min–max problem (Eq. 17) keeps one weight per label group, ``α = (α_P, α_N)``, and moves it by
mirror ascent (exponentiated gradient) toward the group that is doing worse; the model then descends on
``α_P·L_P + α_N·L_N``. Three modes:

- ``"scaled"`` — FairPO (section 2.3, appendix E): the step uses each group loss's *relative change*
  from its running average, so groups with different loss scales move α comparably. First step:
  ``s_g = L_g`` and ``ema_g = L_g``; later ``s_g = (L_g − ema_g) / (|ema_g| + δ)``, then
  ``ema_g ← ρ·ema_g + (1 − ρ)·L_g``. Then ``α_g ← α_g·exp(clamp(η_α·s_g, −10, 10))`` and normalise.
- ``"exponentiated"`` — Group DRO (Sagawa et al.): ``α_g ← α_g·exp(η·L_g)``, normalise.
- ``"fixed"`` — α never moves (the ``no-grpo`` ablation).

"GRPO" in the paper means Group *Robust* Preference Optimization (Ramesh et al.), not the Group
*Relative* Policy Optimization of LLM fine-tuning libraries; hence the neutral name here.
"""

from __future__ import annotations

import torch
from torch import Tensor

MODES = ("scaled", "exponentiated", "fixed")

STEP_CLAMP = 10.0
"""Bound on one step's log-weight change, so a single spike in a loss cannot zero a group."""


class GroupWeights:
    """Weights ``α`` over ``num_groups`` groups, updated from detached group losses.

    ``step_size`` is η_α (η for Group DRO), ``ema_decay`` is ρ and ``scale_eps`` is δ. State lives in
    float64 on ``device`` (the losses' device, so an update never waits for the host): a handful of
    numbers whose exact values checkpoints must restore (:meth:`state_dict` copies them to the CPU).
    """

    def __init__(self, num_groups: int = 2, *, mode: str = "scaled", step_size: float = 0.05,
                 ema_decay: float = 0.9, scale_eps: float = 1e-6, device: torch.device | str = "cpu") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown group-weight mode {mode!r}; choose one of: {', '.join(MODES)}")
        if num_groups < 1:
            raise ValueError(f"num_groups must be at least 1, got {num_groups}")
        self.mode = mode
        self.step_size = float(step_size)
        self.ema_decay = float(ema_decay)
        self.scale_eps = float(scale_eps)
        self.device = torch.device(device)
        self.weights = torch.full((num_groups,), 1.0 / num_groups, dtype=torch.float64, device=self.device)
        self.ema = torch.zeros(num_groups, dtype=torch.float64, device=self.device)
        self.steps = 0

    def update(self, losses: Tensor, *, check: bool = True) -> Tensor:
        """One mirror-ascent step from the current group losses (G,); returns the new weights (G,).

        The losses are detached: α is a function of the losses' values, never part of the graph.
        ``check=False`` skips the finiteness check (which reads the losses on the host); the trainer
        checks its losses once per epoch instead.
        """
        losses = torch.as_tensor(losses).detach().to(device=self.device, dtype=torch.float64).flatten()
        if losses.shape != self.weights.shape:
            raise ValueError(f"expected {self.weights.numel()} group losses, got shape {tuple(losses.shape)}")
        if check and not torch.isfinite(losses).all():
            raise ValueError(f"group losses must be finite to move the group weights, got {losses.tolist()}")
        if self.mode == "scaled":
            if self.steps == 0:
                signal = losses
                self.ema = losses.clone()
            else:
                signal = (losses - self.ema) / (self.ema.abs() + self.scale_eps)
                self.ema = self.ema_decay * self.ema + (1 - self.ema_decay) * losses
            step = (self.step_size * signal).clamp(-STEP_CLAMP, STEP_CLAMP)
        elif self.mode == "exponentiated":
            step = self.step_size * losses
        else:
            step = torch.zeros_like(losses)
        # α·exp(step) / Σ α·exp(step), computed as a softmax of log-weights so it cannot overflow
        self.weights = torch.softmax(self.weights.log() + step, dim=0)
        self.steps += 1
        return self.weights.clone()

    def combine(self, losses: Tensor) -> Tensor:
        """``Σ_g α_g·L_g`` with the current weights (constants), keeping the losses' graph."""
        return (self.weights.to(device=losses.device, dtype=losses.dtype) * losses).sum()

    def state_dict(self) -> dict[str, Tensor]:
        return {"weights": self.weights.cpu().clone(), "ema": self.ema.cpu().clone(),
                "steps": torch.tensor(self.steps, dtype=torch.int64)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        weights = torch.as_tensor(state["weights"], dtype=torch.float64).to(self.device).clone()
        if weights.shape != self.weights.shape:
            raise ValueError(f"state holds {weights.numel()} group weights, this object has {self.weights.numel()}")
        self.weights = weights
        self.ema = torch.as_tensor(state["ema"], dtype=torch.float64).to(self.device).clone()
        self.steps = int(state["steps"])
