"""The trained top computes the last block at [CLS] only: the same outputs and gradients as the whole block."""

import pytest
import torch
from transformers import ViTConfig, ViTModel

from fairpo.data.backbone import TrainedTop, at_cls_supported, split_backbone


def tiny_vit(**changes) -> ViTModel:
    config = ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=24, num_hidden_layers=3,
                       num_attention_heads=4, intermediate_size=40, **changes)
    with torch.random.fork_rng():  # the test's own seed, not the session's global stream
        torch.manual_seed(0)
        vit = ViTModel(config, add_pooling_layer=False)
    return vit


def both_tops(vit: ViTModel, blocks: int) -> tuple[TrainedTop, TrainedTop]:
    whole = TrainedTop(vit, blocks, cls_only=False)
    fast = TrainedTop(vit, blocks)
    fast.load_state_dict(whole.state_dict())
    return whole, fast


@pytest.mark.parametrize("blocks", [1, 2])
def test_the_cls_only_block_gives_the_whole_blocks_cls_output_and_gradients(blocks):
    vit = tiny_vit()
    encoder, _ = split_backbone(vit, blocks)
    whole, fast = both_tops(vit, blocks)
    assert fast.cls_only and not whole.cls_only
    generator = torch.Generator().manual_seed(1)
    hidden = encoder(torch.randn(6, 3, 16, 16, generator=generator))  # (6, 17 tokens, 24)
    weights = torch.randn(6, 24, generator=generator)
    outputs = []
    for top in (whole, fast):
        out = top(hidden)
        (out * weights).sum().backward()  # a loss that weighs every output unit differently
        outputs.append(out)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)
    grads = {name: p.grad for name, p in fast.named_parameters()}
    for name, p in whole.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name  # every trained weight reaches the loss
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_a_block_with_dropout_runs_whole_on_every_token():
    vit = tiny_vit(hidden_dropout_prob=0.1)
    assert not at_cls_supported(vit.layers[-1])
    assert not TrainedTop(vit, 1).cls_only
    assert at_cls_supported(tiny_vit().layers[-1])


def test_an_unknown_block_layout_runs_whole():
    assert not at_cls_supported(torch.nn.Linear(3, 3))
