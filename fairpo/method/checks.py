"""Input checks of the method layer, run once where inputs enter (a public loss or metric function, an
:class:`~fairpo.method.objective.Objective`'s construction), never inside a training step.

Each check raises ``ValueError`` naming the problem and the fix. The checks read tensor values (labels
are 0/1, indices in range), so on a GPU each one synchronises with the host: that is why the step calls
the unchecked internals with groups resolved once (:class:`LabelGroups`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

Privileged = Tensor | Sequence[int] | Sequence[bool]


def privileged_indices(privileged: Privileged, num_labels: int, device=None, *, allow_empty: bool = False) -> Tensor:
    """Sorted label indices of the privileged group ``P``.

    ``privileged`` is a boolean mask over the ``T`` labels or a list (or tensor) of label indices.
    Raises ``ValueError`` for an index outside ``[0, T)``, a repeated index, a mask of the wrong length
    and, unless ``allow_empty``, an empty group.
    """
    p = torch.as_tensor(privileged)
    if p.dtype == torch.bool:
        if p.shape != (num_labels,):
            raise ValueError(
                f"privileged mask has shape {tuple(p.shape)}, expected ({num_labels},): one entry per label"
            )
        p = p.nonzero().flatten()
    elif p.numel():
        if p.dtype.is_floating_point or p.dim() != 1:
            raise ValueError("privileged must be a boolean mask over labels or a 1-D list of label indices")
        if p.min() < 0 or p.max() >= num_labels:
            bad = p[(p < 0) | (p >= num_labels)].tolist()
            raise ValueError(f"privileged label indices {bad} are outside [0, {num_labels}) for {num_labels} labels")
        if p.unique().numel() != p.numel():
            raise ValueError(f"privileged label indices repeat: {p.tolist()}")
        p = p.sort().values
    if p.numel() == 0 and not allow_empty:
        raise ValueError("the privileged group is empty; give at least one privileged label")
    return p.to(device=device, dtype=torch.long)


def privileged_mask(privileged: Privileged, num_labels: int, device=None, *, allow_empty: bool = False) -> Tensor:
    """Boolean mask (T,) of the privileged labels (see :func:`privileged_indices`)."""
    mask = torch.zeros(num_labels, dtype=torch.bool, device=device)
    mask[privileged_indices(privileged, num_labels, device, allow_empty=allow_empty)] = True
    return mask


def binary(values: Tensor, name: str) -> Tensor:
    """``values`` as bool after checking every entry is 0 or 1."""
    if values.dtype == torch.bool:
        return values.detach()
    if not ((values == 0) | (values == 1)).all():
        raise ValueError(f"{name} must be 0 or 1 (multi-hot); found other values")
    return values.detach() != 0


def check_logits_labels(logits: Tensor, labels: Tensor, ref_logits: Tensor | None = None) -> None:
    """Raise ``ValueError`` unless logits and labels are matching (B, T) tensors and labels are 0/1."""
    if not isinstance(logits, Tensor) or not isinstance(labels, Tensor):
        raise ValueError("logits and labels must be torch tensors")
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, labels), got shape {tuple(logits.shape)}")
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if labels.shape != logits.shape:
        raise ValueError(f"labels have shape {tuple(labels.shape)} but logits have {tuple(logits.shape)}")
    binary(labels, "labels")
    if ref_logits is not None and ref_logits.shape != logits.shape:
        raise ValueError(
            f"reference logits have shape {tuple(ref_logits.shape)} but logits have {tuple(logits.shape)}"
        )


@dataclass(frozen=True)
class LabelGroups:
    """The privileged/non-privileged split of ``T`` labels, resolved once on a device.

    ``p`` and ``n`` are sorted index tensors, ``mask`` the privileged mask (T,); ``n_empty`` says whether
    every label is privileged (known on the host, so the step never asks the device).
    """

    p: Tensor
    n: Tensor
    mask: Tensor
    n_empty: bool

    @classmethod
    def of(cls, privileged: "Privileged | LabelGroups", num_labels: int, device=None) -> "LabelGroups":
        """Validate ``privileged`` (see :func:`privileged_indices`) and resolve both groups."""
        if isinstance(privileged, LabelGroups):
            if privileged.mask.numel() != num_labels:
                raise ValueError(f"the label groups cover {privileged.mask.numel()} labels, the logits {num_labels}")
            return privileged
        mask = privileged_mask(privileged, num_labels, device)
        n = (~mask).nonzero().flatten()
        return cls(p=mask.nonzero().flatten(), n=n, mask=mask, n_empty=n.numel() == 0)
