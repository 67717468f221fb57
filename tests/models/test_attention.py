"""The hand-written attention against PyTorch's (values and gradients, float64)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from practicum.config import TransformerConfig
from practicum.models.layers import Block, SelfAttention, sinusoidal_positions

CFG = TransformerConfig(d_model=16, n_heads=4, d_ff=32, dropout=0.0)


def inputs(B: int = 3, T: int = 5, C: int = 16):
    torch.manual_seed(0)
    x = torch.randn(B, T, C, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    return x, mask


def reference(attn: SelfAttention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The same layer computed with F.linear + F.scaled_dot_product_attention."""
    B, T, C = x.shape
    nh = attn.n_heads
    q, k, v = F.linear(x, attn.qkv.weight, attn.qkv.bias).split(C, dim=2)
    q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    return F.linear(y.transpose(1, 2).reshape(B, T, C), attn.proj.weight, attn.proj.bias)


def test_explicit_attention_matches_sdpa_values_and_gradients():
    x, mask = inputs()
    ours = SelfAttention(CFG).double()
    ours.use_sdpa = False
    y = ours(x, mask)
    y_ref = reference(ours, x, mask)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=1e-10)

    g = torch.randn_like(y)
    params = [x, *ours.parameters()]
    grads = torch.autograd.grad(y, params, g)
    grads_ref = torch.autograd.grad(y_ref, params, g)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_attention_matches_nn_multihead_attention_with_copied_weights():
    x, mask = inputs()
    ours = SelfAttention(CFG).double()
    ours.keep_attention = True
    mha = nn.MultiheadAttention(16, 4, batch_first=True, dtype=torch.float64)
    with torch.no_grad():  # same (3C, C) packed layout: query, key, value
        mha.in_proj_weight.copy_(ours.qkv.weight)
        mha.in_proj_bias.copy_(ours.qkv.bias)
        mha.out_proj.weight.copy_(ours.proj.weight)
        mha.out_proj.bias.copy_(ours.proj.bias)
    y_ref, w_ref = mha(x, x, x, key_padding_mask=~mask, average_attn_weights=False)
    y = ours(x, mask)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(ours.attention, w_ref, atol=1e-12, rtol=1e-10)
    gx = torch.autograd.grad(y.square().sum(), x)[0]
    gx_ref = torch.autograd.grad(y_ref.square().sum(), x)[0]
    torch.testing.assert_close(gx, gx_ref, atol=1e-12, rtol=1e-10)


def test_fast_and_explicit_paths_agree():
    x, mask = inputs()
    attn = SelfAttention(CFG).eval()
    x = x.detach().float()
    fast = attn(x, mask)
    attn.use_sdpa = False
    torch.testing.assert_close(attn(x, mask), fast, atol=1e-5, rtol=1e-5)


def test_kept_weights_are_a_distribution_over_real_keys():
    x, mask = inputs()
    attn = SelfAttention(CFG).double()
    attn.keep_attention = True
    attn(x, mask)
    w = attn.attention
    assert w.shape == (3, 4, 5, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, 5, dtype=torch.float64))
    assert (w.masked_select(~mask[:, None, None, :].expand_as(w)) == 0).all()
    assert w.requires_grad  # explanations can take gradients through the maps


def test_weights_are_not_kept_by_default():
    x, mask = inputs()
    attn = SelfAttention(CFG).double()
    attn(x, mask)
    assert attn.attention is None


def test_attention_dropout_is_applied_in_training_only():
    x, mask = inputs()
    attn = SelfAttention(CFG.model_copy(update={"dropout": 0.5})).double()
    for use_sdpa in (False, True):
        attn.use_sdpa = use_sdpa
        attn.train()
        torch.manual_seed(1)
        assert not torch.allclose(attn(x, mask), attn(x, mask))
        attn.eval()
        torch.testing.assert_close(attn(x, mask), attn(x, mask))


def test_block_is_pre_norm_residual():
    x, mask = inputs()
    block = Block(CFG).double()
    expected = x + block.attn(block.ln_1(x), mask)
    expected = expected + block.ffn(block.ln_2(expected))
    torch.testing.assert_close(block(x, mask), expected)


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="must divide"):
        SelfAttention(TransformerConfig(d_model=10, n_heads=4))


@pytest.mark.parametrize("d", [16, 7])
def test_sinusoidal_table(d):
    table = sinusoidal_positions(6, d)
    assert table.shape == (6, d)
    torch.testing.assert_close(table[0, 0::2], torch.zeros((d + 1) // 2))  # sin(0)
    torch.testing.assert_close(table[0, 1::2], torch.ones(d // 2))  # cos(0)
    torch.testing.assert_close(table[3, 0], torch.tensor(math.sin(3.0)))
    torch.testing.assert_close(table[3, 1], torch.tensor(math.cos(3.0)))
