"""LoRA against its maths: a fresh adapter changes nothing, merged equals unmerged, and only
the adapter trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from practicum.config import LMConfig
from practicum.errors import UserError
from practicum.models.lm import TransformerLM
from practicum.peft.lora import LoRALinear, add_lora, lora_layers, matches, merge_lora, unmerge_lora


def tiny_lm(**kw) -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(LMConfig(preset="gpt-tiny", vocab_size=50, block_size=16, **kw)).eval()


def randomize_adapters(model: nn.Module) -> None:
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.normal_(std=0.1)


def test_a_fresh_adapter_leaves_the_layer_unchanged():
    base = nn.Linear(12, 7)
    x = torch.randn(5, 12)
    before = base(x)
    layer = LoRALinear(base, r=4, alpha=8.0)
    assert torch.equal(layer(x), before)
    assert layer.lora_A.abs().sum() > 0 and torch.count_nonzero(layer.lora_B) == 0


def test_the_update_is_scaled_low_rank():
    layer = LoRALinear(nn.Linear(12, 7), r=3, alpha=6.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 12)
    expected = x @ layer.weight.T + layer.bias + x @ (layer.lora_B @ layer.lora_A).T * 2.0
    torch.testing.assert_close(layer(x), expected)
    assert torch.linalg.matrix_rank(layer.delta()) == 3


def test_adapted_model_keeps_the_base_parameter_names():
    model = tiny_lm()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, ["attn.qkv", "mlp.fc"], r=2, alpha=2.0)
    adapted = model.state_dict()
    assert set(base) <= set(adapted)  # a base checkpoint loads into the adapted model unchanged
    assert {k for k in set(adapted) - set(base)} == {k for k in adapted if ".lora_" in k}
    model.load_state_dict(base, strict=False)


def test_lora_on_a_whole_model_starts_equal_to_the_base():
    model = tiny_lm()
    tokens = torch.randint(0, 50, (3, 10))
    before = model(tokens)
    names = add_lora(model, ["attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"], r=4, alpha=8.0)
    assert len(names) == 4 * model.cfg.n_layer
    torch.testing.assert_close(model(tokens), before, rtol=0, atol=0)


def test_merged_equals_unmerged_and_unmerge_restores_the_base():
    model = tiny_lm()
    base_weights = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, ["qkv", "mlp.*"], r=2, alpha=4.0)
    randomize_adapters(model)
    tokens = torch.randint(0, 50, (2, 12))
    unmerged = model(tokens)
    merge_lora(model)
    assert all(layer.merged for layer in lora_layers(model))
    torch.testing.assert_close(model(tokens), unmerged, rtol=1e-5, atol=1e-5)
    merge_lora(model)  # merging twice is a no-op
    torch.testing.assert_close(model(tokens), unmerged, rtol=1e-5, atol=1e-5)
    unmerge_lora(model)
    torch.testing.assert_close(model(tokens), unmerged, rtol=1e-5, atol=1e-5)
    for name, layer in model.named_modules():
        if isinstance(layer, LoRALinear):
            torch.testing.assert_close(layer.weight, base_weights[f"{name}.weight"], rtol=0, atol=1e-6)


def test_only_the_adapters_train_and_gradients_reach_them():
    model = tiny_lm()
    add_lora(model, ["attn.qkv"], r=2, alpha=2.0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    # the base weights of wrapped layers are frozen; everything else keeps its flag
    assert not any(n.endswith("attn.qkv.weight") or n.endswith("attn.qkv.bias") for n in trainable)
    assert any(n.endswith("lora_A") for n in trainable) and any(n.endswith("lora_B") for n in trainable)
    loss = model(torch.randint(0, 50, (2, 8))).sum()
    loss.backward()
    for layer in lora_layers(model):
        assert layer.lora_B.grad is not None and layer.lora_B.grad.abs().sum() > 0
        assert layer.weight.grad is None


def test_target_patterns():
    assert matches("blocks.0.attn.qkv", ["attn.qkv"])
    assert matches("blocks.0.attn.qkv", ["qkv"])
    assert not matches("blocks.0.attn.qkv", ["kv"])  # a suffix match is by whole name parts
    assert matches("blocks.3.mlp.proj", ["blocks.[0-3].mlp.*"])
    assert not matches("blocks.4.mlp.proj", ["blocks.[0-3].mlp.*"])


def test_targets_that_match_nothing_are_a_clear_error():
    with pytest.raises(UserError, match=r"match no Linear layer; names end in: .*qkv"):
        add_lora(tiny_lm(), ["query"], r=2, alpha=2.0)
