"""The ViT backbone: loading it, pretraining the small digits ViT, and splitting frozen from trained.

The paper freezes a ViT-B/16 except its last encoder block and puts per-label heads on the [CLS]
token. We cut the ViT in two: the *frozen* part (patch embeddings and the first ``L − k`` blocks) runs
once per data set into the feature cache; the *trained* part (the last ``k = trainable_blocks`` blocks
and the final layer norm) runs every step, followed by the heads.

For the embedded ``digits`` data set the backbone is a small ViT (``DIGITS_VIT``), "pretrained" once per
data set on a different task — 10-way classification of single-digit canvases drawn from the training
pool only — then frozen, so the paper's "pretrained, frozen backbone plus heads" holds offline.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from fairpo.rng import generator, private_global_rng

PAPER_BACKBONE = "google/vit-base-patch16-224"
DIGITS_BACKBONE = "digits-vit"
DIGITS_VIT = dict(image_size=32, patch_size=8, num_channels=1, hidden_size=64, num_hidden_layers=4,
                  num_attention_heads=4, intermediate_size=128)
"""A ViT small enough to pretrain and run on a 2-core CPU in seconds — 16 patches of 8×8 px, width 64."""
DIGITS_PRETRAIN = dict(epochs=6, batch_size=128, lr=2e-3, num_images=4000, seed=0, threads=1, streams="rng-v2")
"""The pretraining recipe; ``streams`` names the version of its random streams (``fairpo.rng``), so a
change of stream gives the backbone a new id and a new cache."""


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


def digits_backbone_id() -> str:
    """Name of the pretrained digits backbone, hashed from its architecture and pretraining recipe, so
    caches built on it are rebuilt whenever either changes."""
    key = hashlib.sha256(json.dumps([DIGITS_VIT, DIGITS_PRETRAIN], sort_keys=True).encode()).hexdigest()[:16]
    return f"{DIGITS_BACKBONE}-{key}"


def digits_backbone(cache_dir: str | os.PathLike, *, quiet: bool = True) -> nn.Module:
    """The small digits ViT, pretrained on single-digit classification once and cached on disk."""
    from safetensors.torch import load_file, save_file
    from transformers import ViTConfig, ViTModel

    path = Path(cache_dir) / "backbones" / f"{digits_backbone_id()}.safetensors"
    # transformers initialises modules from torch's global generator: give it a private, seeded one,
    # so building (or not building) the backbone never shifts any other stream of the process
    with private_global_rng("digits-backbone", DIGITS_PRETRAIN["seed"]):
        vit = ViTModel(ViTConfig(**DIGITS_VIT), add_pooling_layer=False)
        if path.exists():
            vit.load_state_dict(load_file(path))
            return vit.eval()
        # floats depend on the thread count, so pin it: the same backbone whoever asks first
        threads = torch.get_num_threads()
        torch.set_num_threads(DIGITS_PRETRAIN["threads"])
        try:
            _pretrain_on_single_digits(vit, quiet=quiet)
        finally:
            torch.set_num_threads(threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, tmp)
    os.replace(tmp, path)
    return vit.eval()


def _pretrain_on_single_digits(vit: nn.Module, *, quiet: bool) -> None:
    """10-way classification of one-digit canvases, every digit equally often, drawn from the training
    pool of handwriting only (``fairpo.data.digit_pretraining_set``): a task other than the benchmark's."""
    from fairpo.data import digit_pretraining_set

    cfg = DIGITS_PRETRAIN
    images, digits = digit_pretraining_set(cfg["num_images"], seed=cfg["seed"])
    classifier = nn.Linear(vit.config.hidden_size, 10)
    params = list(vit.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=0.05)
    batches = -(-len(images) // cfg["batch_size"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg["lr"], total_steps=cfg["epochs"] * batches,
                                                   pct_start=0.1)
    order_gen = generator("digits-backbone", cfg["seed"], "order")
    vit.train()
    for epoch in range(cfg["epochs"]):
        for idx in torch.randperm(len(images), generator=order_gen).split(cfg["batch_size"]):
            feature = vit(pixel_values=images[idx]).last_hidden_state[:, 0]
            loss = nn.functional.cross_entropy(classifier(feature), digits[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if not quiet:
            print(f"digits backbone pretraining: epoch {epoch + 1}/{cfg['epochs']}, loss {loss.item():.3f}")
    vit.eval()
