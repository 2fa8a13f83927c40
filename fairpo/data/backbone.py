"""The ViT backbone: loading it and splitting its frozen bottom from its trained top.

The paper freezes a ViT-B/16 except its last encoder block and puts per-label heads on the [CLS]
token. We cut the ViT in two: the *frozen* part (patch embeddings and the first ``L − k`` blocks) runs
once per data set into the feature cache; the *trained* part (the last ``k = trainable_blocks`` blocks
and the final layer norm) runs every step, followed by the heads.

The small ViT of the embedded ``digits`` data set and its pretraining live with that data set, in
:mod:`fairpo.data.digits`.
"""

from __future__ import annotations

import copy
import os

from torch import Tensor, nn

from fairpo.rng import private_global_rng

PAPER_BACKBONE = "google/vit-base-patch16-224"


def _blocks(vit: nn.Module) -> nn.ModuleList:
    # transformers ≥ 5 keeps the blocks in `vit.layers`, earlier releases in `vit.encoder.layer`
    return vit.layers if hasattr(vit, "layers") else vit.encoder.layer


def _run_blocks(blocks, hidden: Tensor) -> Tensor:
    for block in blocks:
        out = block(hidden)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class FrozenEncoder(nn.Module):
    """Pixels (B, C, H, W) → hidden states after the frozen blocks: (B, tokens, d), or the normalised
    [CLS] feature (B, d) when no block is trained."""

    def __init__(self, vit: nn.Module, trainable_blocks: int) -> None:
        super().__init__()
        blocks = _blocks(vit)
        self.embeddings = vit.embeddings
        self.blocks = nn.ModuleList(list(blocks)[: len(blocks) - trainable_blocks])
        self.layernorm = vit.layernorm if trainable_blocks == 0 else None
        self.requires_grad_(False)
        self.eval()

    def forward(self, pixels: Tensor) -> Tensor:
        hidden = _run_blocks(self.blocks, self.embeddings(pixels))
        return self.layernorm(hidden)[:, 0] if self.layernorm is not None else hidden


class TrainedTop(nn.Module):
    """Cached hidden states (B, tokens, d) → [CLS] feature (B, d) through the last ``k`` blocks and the
    final layer norm; the identity on (B, d) features when ``k = 0``."""

    def __init__(self, vit: nn.Module | None, trainable_blocks: int) -> None:
        super().__init__()
        if vit is None or trainable_blocks == 0:
            self.blocks, self.layernorm = nn.ModuleList(), None
        else:
            blocks = _blocks(vit)
            self.blocks = copy.deepcopy(nn.ModuleList(list(blocks)[len(blocks) - trainable_blocks:]))
            self.layernorm = copy.deepcopy(vit.layernorm)

    def forward(self, hidden: Tensor) -> Tensor:
        if self.layernorm is None:
            return hidden
        return self.layernorm(_run_blocks(self.blocks, hidden))[:, 0]


def split_backbone(vit: nn.Module, trainable_blocks: int) -> tuple[FrozenEncoder, TrainedTop]:
    """Cut a ``ViTModel`` into its frozen bottom and a trainable copy of its top."""
    depth = len(_blocks(vit))
    if not 0 <= trainable_blocks <= depth:
        raise ValueError(f"trainable_blocks = {trainable_blocks}, but the backbone has {depth} blocks (0…{depth})")
    return FrozenEncoder(vit, trainable_blocks), TrainedTop(vit, trainable_blocks)


def feature_size(vit: nn.Module) -> int:
    return vit.config.hidden_size


def load_vit(spec: str, *, local_only: bool | None = None) -> nn.Module:
    """A ``ViTModel`` from a hub id or a local folder, without its pooler.

    Offline (``HF_HUB_OFFLINE=1``, or no network) and with no local copy this fails at once with a
    message that says how to get one, before any data is touched.
    """
    from transformers import ViTModel

    if local_only is None:
        local_only = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    try:
        with private_global_rng("vit", spec):  # initialised, then overwritten by the stored weights
            return ViTModel.from_pretrained(spec, add_pooling_layer=False, local_files_only=local_only)
    except OSError as err:
        raise FileNotFoundError(
            f"cannot load the backbone {spec!r}: no local copy and no download ({err.__class__.__name__}). "
            f"Download it once where there is a network (python -c \"from transformers import ViTModel; "
            f"ViTModel.from_pretrained('{spec}')\"), or pass a local folder as `backbone`."
        ) from None
