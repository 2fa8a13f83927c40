"""The image transform every image data set shares: resize, scale to [0, 1], normalise.

It is deterministic (no augmentation): a frozen encoder maps each image to the same features in
every epoch, so the feature cache (:mod:`fairpo.data.cache`) can hold them.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

# The settings of the augmentation this transform once offered. They stay in describe(), which goes
# into each split's content fingerprint, so the feature caches already on disk keep their names.
_FORMER_AUGMENTATION = dict(augment=False, flip=True, crop_scale=[0.08, 1.0])


class ImageTransform:
    """Image (PIL, or a (C, H, W) or (N, C, H, W) tensor) → normalised float32 (…, C', S, S).

    Resizes to S × S, S = ``image_size`` (unless already that size), scales to [0, 1], repeats a grey
    channel to ``channels`` if asked, and ends with ``(x − mean) / std``.
    """

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], *,
                 channels: int | None = None) -> None:
        self.image_size, self.mean, self.std = int(image_size), [float(m) for m in mean], [float(s) for s in std]
        self.channels = channels
        self._resize = v2.Resize((self.image_size, self.image_size), antialias=True)

    def describe(self) -> dict[str, Any]:
        """The settings, JSON-serialisable; part of a split's fingerprint in the feature cache."""
        return dict(_FORMER_AUGMENTATION, image_size=self.image_size, mean=self.mean, std=self.std,
                    channels=self.channels)

    def __call__(self, image) -> Tensor:
        x = image if torch.is_tensor(image) else TF.pil_to_tensor(image)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = self._resize(x)
        x = TF.to_dtype(x, torch.float32, scale=True)
        if self.channels and x.shape[-3] != self.channels:
            x = x.expand(*x.shape[:-3], self.channels, *x.shape[-2:])
        return TF.normalize(x, self.mean, self.std)
