"""PyTorch twins of practicum.scratch.attention: same constructor arguments, same parameter
names, torch's own attention inside (the oracle)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from practicum.scratch.twins.seeding import seeded


class ScaledDotProductAttention(nn.Module):
    """F.scaled_dot_product_attention; the boolean `mask` is True where a query may attend."""

    def __init__(self, is_causal: bool = False) -> None:
        super().__init__()
        self.is_causal = is_causal

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None and self.is_causal:  # torch takes one or the other: combine them
            causal = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask & causal)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.is_causal)


class MultiHeadSelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention (batch_first, float64) used as self-attention: forward(x,
    key_padding_mask=None) -> output only; `causal` masks the future."""

    def __init__(self, embed_dim: int, num_heads: int, causal: bool = False, bias: bool = True,
                 seed: int | None = None) -> None:
        with seeded(seed):
            super().__init__(embed_dim, num_heads, bias=bias, batch_first=True, dtype=torch.float64)
        self.causal = causal

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        # nn.MultiheadAttention's boolean attn_mask is True where attending is *not* allowed
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1) if self.causal else None
        out, _ = super().forward(x, x, x, key_padding_mask=key_padding_mask, attn_mask=future,
                                 need_weights=False, is_causal=self.causal)
        return out
