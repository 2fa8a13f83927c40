"""One validated run configuration.

Every knob of a run lives in :class:`RunConfig`. Construction validates names and ranges, so a typo in
``variant`` or a negative learning rate fails at once, with the list of valid choices, instead of inside
the first training step. Defaults follow the paper, and the authors' released code where the paper is
silent (our own documented choice for the SimPO margin γ and the CPO weight λ, which neither gives).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from fairpo.method.objective import (ABLATIONS, BASELINES, BEYOND_BASELINES, FAIRPO_VARIANTS,  # noqa: F401
                                     PAPER_BASELINES, VARIANTS)

DATASETS = ("digits", "coco", "nuswide", "features")

DEVICES = ("auto", "cpu", "cuda")

INITS = ("fresh", "reference")
"""The two places a FairPO run's trained weights can start from — newly initialised heads (the released
code) or a copy of its BCE reference (Algorithm 2, line 1's example)."""

HEAD_ACTIVATIONS = ("relu", "leaky_relu", "gelu")
"""The heads' hidden activations — the paper's ReLU, or one that cannot leave a head dead (see
:data:`fairpo.method.heads.ACTIVATIONS`)."""

SELECTIONS = ("overall", "privileged")
"""The validation mAP that picks the best epoch and drives early stopping — over all labels (the paper's
appendix G.1), or over the privileged labels only (the released code's choice for FairPO runs)."""

PROFILES = {
    "digits": dict(epochs=80, lr=1e-3),
    "features": dict(epochs=80, lr=1e-3),
    "coco": dict(epochs=25, lr=1e-4),
    "nuswide": dict(epochs=25, lr=1e-4),
}
"""Per data set defaults of the epoch budget and the learning rate (used where a run leaves them None).

COCO and NUS-WIDE keep the paper's 25 epochs and the released code's lr 1e-4. On the small embedded
``digits`` set (and on users' feature files) lr 1e-4 needs about 60 epochs before patience stops the BCE
reference; lr 1e-3 converges in about 30, so the whole grid fits a CPU. The budget of 80 is large
enough that every run of the digits grid stops by patience, not by the budget; each record says which
(``stopped``)."""


METHOD_FIELDS = ("init", "selection", "beta", "gamma", "lam", "epsilon", "group_step_size", "ema_decay",
                 "scale_eps", "gdro_step_size", "focal_alpha", "focal_gamma", "asl_gamma_pos", "asl_gamma_neg",
                 "asl_margin", "db_alpha", "db_beta", "db_mu", "db_lambda", "db_kappa")
"""Fields that only some methods read; a BCE reference is trained with all of them at their defaults."""


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"unknown {name} {value!r}; choose one of: {', '.join(choices)}"
        )


def _check_range(name: str, value: Any, low: float, high: float, *, low_open=False, high_open=False,
                 integer=False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} = {value!r} is outside its valid range {lo}{low}, {high}{hi}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (and therefore its place in the run store).

    Hyperparameters carry the paper's symbols in their comments.
    """

    dataset: str = "digits"
    variant: str = "cpo"  # bce | focal | gdro | asl | dbloss | dpo | simpo | cpo
    ablation: str = "none"  # none | no-pref | no-constraint | no-grpo | global | neg-only | no-fallback
    seed: int = 0

    # data
    data_root: str | None = None
    num_labels: int | None = None  # `features` CSVs: how many trailing columns are labels
    privileged: tuple[int | str, ...] | None = None  # None: the least frequent fraction
    privileged_fraction: float = 0.2
    val_fraction: float = 0.1

    # model
    backbone: str | None = None  # None: the data set's default (a small ViT for digits, ViT-B/16 else)
    trainable_blocks: int = 1  # last encoder blocks that train; 0 = heads only
    head_activation: str = "relu"  # relu (the paper) | leaky_relu | gelu: the heads' hidden activation

    # optimisation (AdamW)
    epochs: int | None = None  # budget; None: the data set's profile (PROFILES)
    patience: int = 5  # early stopping on validation mAP
    selection: str = "overall"  # overall | privileged: the validation mAP that selects the best epoch
    batch_size: int = 32
    lr: float | None = None  # η_w; None: the data set's profile (PROFILES)
    weight_decay: float = 0.01
    grad_clip: float = 1.0

    # FairPO losses
    init: str = "fresh"  # fresh | reference: where a FairPO run's weights start
    beta: float = 0.5  # β, preference temperature
    gamma: float = 0.25  # γ, SimPO target margin (paper gives none; β/2)
    lam: float = 1.0  # λ_CPO, weight of CPO's BCE term (paper gives none)
    epsilon: float = 0.05  # ε, slack of the non-privileged hinge constraint

    # group-robust weights
    group_step_size: float = 0.05  # η_α
    ema_decay: float = 0.9  # ρ, running average of each group loss
    scale_eps: float = 1e-6  # δ, keeps the relative change finite
    gdro_step_size: float = 0.01  # Group DRO's η (Sagawa et al. default)

    # focal baseline
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    # asymmetric loss (Ridnik et al. 2021), a baseline beyond the paper
    asl_gamma_pos: float = 1.0  # γ⁺, focusing on positives
    asl_gamma_neg: float = 4.0  # γ⁻, focusing on negatives
    asl_margin: float = 0.05  # m, probability shift that discards easy negatives

    # distribution-balanced loss (Wu et al. 2020), a baseline beyond the paper
    db_alpha: float = 0.1  # α, floor of the re-balancing weight
    db_beta: float = 10.0  # β, steepness of the weight's smoothing
    db_mu: float = 0.2  # μ, centre of the weight's smoothing
    db_lambda: float = 2.0  # λ, scale of negative logits (negative-tolerant regularisation)
    db_kappa: float = 0.05  # κ, scale of the prior's logit added to every logit

    device: str = "auto"
    cpu_threads: int = 1  # PyTorch threads on a CPU; 0 = PyTorch's default (one per core)
    extra: dict[str, Any] = field(default_factory=dict)  # data-set options (sizes, image size, …)

    def __post_init__(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        _choice("variant", self.variant, VARIANTS)
        # papermill passes strings; accept the spellings people type for "no ablation"
        if self.ablation in (None, "", "None", "full"):
            object.__setattr__(self, "ablation", "none")
        _choice("ablation", self.ablation, ABLATIONS)
        if self.ablation != "none" and self.variant not in FAIRPO_VARIANTS:
            raise ValueError(
                f"ablation {self.ablation!r} applies to FairPO variants only "
                f"({', '.join(FAIRPO_VARIANTS)}), not to {self.variant!r}"
            )
        _choice("device", self.device, DEVICES)
        _choice("init", self.init, INITS)
        _choice("selection", self.selection, SELECTIONS)
        _choice("head_activation", self.head_activation, HEAD_ACTIVATIONS)
        if self.init != "fresh" and not self.is_fairpo:
            raise ValueError(f"init {self.init!r} applies to FairPO variants only ({', '.join(FAIRPO_VARIANTS)}): "
                             f"{self.variant!r} has no reference to start from; leave init 'fresh'")
        for name, value in PROFILES[self.dataset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        _check_range("seed", self.seed, 0, 2**63 - 1, integer=True)
        _check_range("cpu_threads", self.cpu_threads, 0, 4096, integer=True)
        if self.num_labels is not None:
            _check_range("num_labels", self.num_labels, 1, 10**6, integer=True)
        if self.dataset == "features" and self.data_root is None:
            raise ValueError("dataset 'features' needs data_root: the folder holding your train and test files")
        if self.dataset in ("coco", "nuswide") and self.data_root is None:
            raise ValueError(f"dataset {self.dataset!r} needs data_root: the folder of your copy of it")
        if self.privileged is not None:
            if isinstance(self.privileged, (str, int)):
                object.__setattr__(self, "privileged", (self.privileged,))
            object.__setattr__(self, "privileged", tuple(self.privileged))
            if not self.privileged:
                raise ValueError("privileged is empty; give at least one label, or None for the default split")
        _check_range("privileged_fraction", self.privileged_fraction, 0, 1, low_open=True, high_open=True)
        _check_range("val_fraction", self.val_fraction, 0, 1, low_open=True, high_open=True)
        _check_range("trainable_blocks", self.trainable_blocks, 0, 1000, integer=True)
        _check_range("epochs", self.epochs, 1, 10**6, integer=True)
        _check_range("patience", self.patience, 1, 10**6, integer=True)
        _check_range("batch_size", self.batch_size, 1, 10**7, integer=True)
        _check_range("lr", self.lr, 0, 10, low_open=True)
        _check_range("weight_decay", self.weight_decay, 0, 10)
        _check_range("grad_clip", self.grad_clip, 0, math.inf, low_open=True, high_open=True)
        _check_range("beta", self.beta, 0, 1e3, low_open=True)
        _check_range("gamma", self.gamma, 0, 1e3)
        _check_range("lam", self.lam, 0, 1e3)
        _check_range("epsilon", self.epsilon, 0, 1e3)
        _check_range("group_step_size", self.group_step_size, 0, 1e3)
        _check_range("ema_decay", self.ema_decay, 0, 1, high_open=True)
        _check_range("scale_eps", self.scale_eps, 0, 1, low_open=True)
        _check_range("gdro_step_size", self.gdro_step_size, 0, 1e3)
        _check_range("focal_alpha", self.focal_alpha, 0, 1)
        _check_range("focal_gamma", self.focal_gamma, 0, 100)
        _check_range("asl_gamma_pos", self.asl_gamma_pos, 0, 100)
        _check_range("asl_gamma_neg", self.asl_gamma_neg, 0, 100)
        _check_range("asl_margin", self.asl_margin, 0, 1, high_open=True)
        _check_range("db_alpha", self.db_alpha, 0, 100)
        _check_range("db_beta", self.db_beta, 0, 1e3)
        _check_range("db_mu", self.db_mu, 0, 1e3)
        _check_range("db_lambda", self.db_lambda, 0, 1e3, low_open=True)
        _check_range("db_kappa", self.db_kappa, 0, 10)
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a dict of data-set options, got {type(self.extra).__name__}")

    @property
    def is_fairpo(self) -> bool:
        return self.variant in FAIRPO_VARIANTS

    @property
    def needs_reference(self) -> bool:
        """FairPO runs start from, and compare against, the BCE reference model."""
        return self.is_fairpo

    @property
    def arm(self) -> str:
        """What the run changes beside its variant — the ablation, ``+from-reference`` when it starts from
        a copy of its reference, ``"none"`` for neither. The run store's ``ablation`` column."""
        parts = ([self.ablation] if self.ablation != "none" else []) + (["from-reference"] if self.init == "reference" else [])
        return "+".join(parts) or "none"

    @property
    def run_name(self) -> str:
        """``<variant>[+<ablation>][+from-reference]``, the run store's folder name."""
        return self.variant if self.arm == "none" else f"{self.variant}+{self.arm}"

    def reference(self) -> "RunConfig":
        """The configuration of this run's BCE reference: the same data, model and optimisation, with
        every method-specific field at its default (a FairPO run's β or ε does not change its reference)."""
        defaults = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name in METHOD_FIELDS}
        return self.replace(variant="bce", ablation="none", **defaults)

    @staticmethod
    def defaults() -> dict[str, Any]:
        """Every field's default value (``extra``: an empty dict)."""
        return {f.name: ({} if f.name == "extra" else f.default) for f in dataclasses.fields(RunConfig)}

    def identity(self) -> dict[str, Any]:
        """Everything that shapes the run's result: the configuration and, for a ``features`` data set,
        a fingerprint of its files. A finished run is reused only for the same identity."""
        from fairpo.data import data_fingerprint

        return dict(self.to_dict(), data_fingerprint=data_fingerprint(self.dataset, self.data_root))

    def replace(self, **changes: Any) -> "RunConfig":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["privileged"] is not None:
            out["privileged"] = list(out["privileged"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys {unknown}; valid keys: {', '.join(sorted(known))}")
        data = dict(data)
        if data.get("privileged") is not None:
            data["privileged"] = tuple(data["privileged"])
        return cls(**data)
