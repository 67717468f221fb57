"""Building blocks shared by the models: activations, norms, and the Transformer's layers.

The attention is written out by hand (no nn.MultiheadAttention) so it can be read, tested
against PyTorch and inspected: set `keep_attention = True` on a SelfAttention (or on the whole
TransformerClassifier) and `attention` holds the last (B, nh, T, T) weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from practicum.config import TransformerConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by config name (relu, gelu, tanh, sigmoid, silu)."""
    return ACTIVATIONS[name]()


def norm1d(kind: str, width: int) -> nn.Module:
    """Normalisation of (N, width) features: BatchNorm1d, LayerNorm or nothing."""
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


def sinusoidal_positions(n: int, d: int) -> Tensor:
    """The fixed sin/cos position table of "Attention Is All You Need": (n, d)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]  # (n, 1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)  # (n, ceil(d/2))
    table[:, 1::2] = torch.cos(pos * freq[: d // 2])  # (n, floor(d/2))
    return table


class SelfAttention(nn.Module):
    """Multi-head self-attention with a key padding mask.

    Two paths compute the same thing: the explicit one (scores, mask, softmax, dropout,
    weighted sum) runs when `keep_attention` is set or `use_sdpa` is off; otherwise
    F.scaled_dot_product_attention runs, which is faster and never materialises the weights.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.n_heads != 0:
            raise ValueError(f"n_heads ({cfg.n_heads}) must divide d_model ({cfg.d_model})")
        self.n_heads = cfg.n_heads
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)  # query, key, value for all heads
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.keep_attention = False
        """Store the softmax weights of each call in `attention` (forces the explicit path)."""
        self.use_sdpa = True
        """Use F.scaled_dot_product_attention when the weights are not kept."""
        self.attention: Tensor | None = None
        """(B, nh, T, T) weights of the last call (before dropout), when keep_attention is on."""

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: (B, T, C); mask: (B, T) bool, True where the key is a real token."""
        B, T, C = x.shape
        hs = C // self.n_heads
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_heads, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_heads, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_heads, hs).transpose(1, 2)  # (B, nh, T, hs)
        keys = mask[:, None, None, :]  # (B, 1, 1, T) which keys each query may look at

        if self.keep_attention or not self.use_sdpa:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, T)
            att = att.masked_fill(~keys, float("-inf"))
            att = F.softmax(att, dim=-1)
            self.attention = att if self.keep_attention else None
            y = self.attn_drop(att) @ v  # (B, nh, T, T) x (B, nh, T, hs) -> (B, nh, T, hs)
        else:
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keys, dropout_p=p)  # (B, nh, T, hs)

        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C) heads side by side
        return self.resid_drop(self.proj(y))


class FeedForward(nn.Module):
    """The per-position MLP of a block: C -> d_ff -> C."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.act = activation(cfg.activation)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.proj(self.act(self.fc(x))))  # (B, T, C)


class Block(nn.Module):
    """A pre-norm encoder block: x + attn(ln(x)), then x + ffn(ln(x))."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model) if cfg.norm == "layer" else nn.Identity()
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model) if cfg.norm == "layer" else nn.Identity()
        self.ffn = FeedForward(cfg)

    checkpointing = False
    """Training only: recompute this block in backward (train.activation_checkpointing)."""

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self._forward, x, mask, use_reentrant=False)
        return self._forward(x, mask)

    def _forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x), mask)  # (B, T, C)
        x = x + self.ffn(self.ln_2(x))  # (B, T, C)
        return x


def gpt_init(module: nn.Module, std: float = 0.02) -> None:
    """GPT-2's init, for `model.apply`: N(0, std) for linear and embedding weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
