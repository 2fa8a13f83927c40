"""The ViT backbone: loading it and splitting its frozen bottom from its trained top.

The paper freezes a ViT-B/16 except its last encoder block and puts per-label heads on the [CLS]
token. We cut the ViT in two: the *frozen* part (patch embeddings and the first ``L − k`` blocks) runs
once per data set into the feature cache; the *trained* part (the last ``k = trainable_blocks`` blocks
and the final layer norm) runs every step, followed by the heads.

Only the [CLS] token of the last block's output reaches the heads, so the trained part computes that
block for [CLS] alone (:func:`last_block_at_cls`): keys and values for every token, but the query, the
attention, the output projection and the MLP for one token instead of all of them. The result is the
same function (the other tokens' outputs were thrown away), with a fraction of the arithmetic: about
a quarter for the digits block (17 tokens), a sixth for ViT-B/16's (197 tokens).

The small ViT of the embedded ``digits`` data set and its pretraining live with that data set, in
:mod:`fairpo.data.digits`.
"""

from __future__ import annotations

import copy
import os

import torch.nn.functional as F
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
    final layer norm; the identity on (B, d) features when ``k = 0``.

    With ``cls_only`` (the default) the last block runs for [CLS] alone where it can
    (:func:`last_block_at_cls`); ``cls_only=False`` runs every block on every token (what the tests
    compare against).
    """

    def __init__(self, vit: nn.Module | None, trainable_blocks: int, cls_only: bool = True) -> None:
        super().__init__()
        if vit is None or trainable_blocks == 0:
            self.blocks, self.layernorm = nn.ModuleList(), None
        else:
            blocks = _blocks(vit)
            self.blocks = copy.deepcopy(nn.ModuleList(list(blocks)[len(blocks) - trainable_blocks:]))
            self.layernorm = copy.deepcopy(vit.layernorm)
        self.cls_only = cls_only and len(self.blocks) > 0 and at_cls_supported(self.blocks[-1])

    def forward(self, hidden: Tensor) -> Tensor:
        if self.layernorm is None:
            return hidden
        if self.cls_only:
            return self.layernorm(last_block_at_cls(self.blocks[-1], _run_blocks(self.blocks[:-1], hidden)))
        return self.layernorm(_run_blocks(self.blocks, hidden))[:, 0]


def at_cls_supported(block: nn.Module) -> bool:
    """Whether :func:`last_block_at_cls` computes ``block``: a pre-norm ViT block laid out as in
    transformers ≥ 5 (``q_proj`` … ``o_proj``, ``mlp``), without dropout (dropout would draw from
    torch's global generator; the paper's ViT-B/16 and the digits ViT have none). Any other block runs
    whole, on every token."""
    attention = getattr(block, "attention", None)
    parts = ("q_proj", "k_proj", "v_proj", "o_proj", "num_attention_heads", "head_dim", "scaling")
    return (attention is not None and all(hasattr(attention, name) for name in parts)
            and all(hasattr(block, name) for name in ("layernorm_before", "layernorm_after", "mlp"))
            and getattr(attention, "attention_dropout", 0.0) == 0.0
            and getattr(getattr(block, "dropout", None), "p", 0.0) == 0.0)


def last_block_at_cls(block: nn.Module, hidden: Tensor) -> Tensor:
    """A ViT block's output at the [CLS] token (B, d), from its input (B, tokens, d).

    The block is ``h = x + Attn(LN₁(x))``, ``out = h + MLP(LN₂(h))``, token by token except for the
    attention's keys and values; so [CLS]'s output needs the keys and values of every token but the
    query, attention, output projection, second layer norm and MLP of [CLS] only.
    """
    attention, (batch, tokens, _) = block.attention, hidden.shape
    heads, size = attention.num_attention_heads, attention.head_dim
    normed = block.layernorm_before(hidden)

    def split(x: Tensor, n: int) -> Tensor:  # (B, n, heads·size) -> (B, heads, n, size)
        return x.view(batch, n, heads, size).transpose(1, 2)

    query = split(attention.q_proj(normed[:, :1]), 1)
    keys, values = split(attention.k_proj(normed), tokens), split(attention.v_proj(normed), tokens)
    mixed = F.scaled_dot_product_attention(query, keys, values, scale=attention.scaling)  # (B, heads, 1, size)
    cls = hidden[:, 0] + attention.o_proj(mixed.reshape(batch, heads * size))
    return cls + block.mlp(block.layernorm_after(cls))


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
