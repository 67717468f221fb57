"""A Transformer encoder text classifier, written out (see layers.py for attention and blocks).

tokens -> token embedding (+ [CLS]) + positions -> dropout -> pre-norm blocks -> LayerNorm
-> pool ([CLS] state or mean over real tokens) -> dropout -> linear head.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from practicum.config import TransformerConfig
from practicum.errors import UserError
from practicum.models.build import SpecLike, register_model, require_vocab
from practicum.models.layers import Block, SelfAttention, gpt_init, sinusoidal_positions

INIT_STD = 0.02
"""Std of the normal init of every linear and embedding weight (as in GPT-2)."""


class TransformerClassifier(nn.Module):
    """Encoder-only Transformer over padded token ids; `forward(tokens, mask)` -> (B, num_outputs)."""

    def __init__(
        self,
        cfg: TransformerConfig,
        vocab_size: int,
        max_length: int,
        num_outputs: int,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_id = pad_id
        self.max_length = max_length
        n_positions = max_length + (1 if cfg.pooling == "cls" else 0)
        self.tok_emb = nn.Embedding(vocab_size, cfg.d_model, padding_idx=pad_id)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model)) if cfg.pooling == "cls" else None
        if cfg.positions == "learned":
            self.pos_emb: nn.Embedding | None = nn.Embedding(n_positions, cfg.d_model)
        else:
            self.pos_emb = None
            # fixed, so not saved with the weights (persistent=False) and rebuilt on load;
            # scaled to the token embeddings' init so position does not drown token identity
            table = INIT_STD * sinusoidal_positions(n_positions, cfg.d_model)  # (T', C)
            self.register_buffer("pos_table", table, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model) if cfg.norm == "layer" else nn.Identity()
        self.head_drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, num_outputs)
        self.apply(lambda m: gpt_init(m, INIT_STD))
        if self.cls is not None:
            nn.init.normal_(self.cls, std=INIT_STD)
        with torch.no_grad():
            self.tok_emb.weight[pad_id].zero_()

    # ------------------------------------------------------------ attention maps

    @property
    def keep_attention(self) -> bool:
        """When True every block stores its attention weights (see attention_maps)."""
        return all(m.keep_attention for m in self.modules() if isinstance(m, SelfAttention))

    @keep_attention.setter
    def keep_attention(self, value: bool) -> None:
        for m in self.modules():
            if isinstance(m, SelfAttention):
                m.keep_attention = value
                m.attention = None

    def attention_maps(self) -> list[Tensor]:
        """The last call's weights, one (B, nh, T', T') tensor per block (T' = T + 1 with [CLS])."""
        maps = [b.attn.attention for b in self.blocks]
        if any(m is None for m in maps):
            raise RuntimeError("set model.keep_attention = True and run a forward pass first")
        return maps  # type: ignore[return-value]

    # ------------------------------------------------------------ forward

    def positions(self, n: int) -> Tensor:
        """Position vectors for the first n positions: (n, C)."""
        limit = self.pos_emb.num_embeddings if self.pos_emb is not None else self.pos_table.size(0)
        if n > limit:
            extra = 1 if self.cls is not None else 0
            raise ValueError(
                f"sequence of {n - extra} tokens is longer than max_length {self.max_length}"
            )
        if self.pos_emb is not None:
            return self.pos_emb.weight[:n]  # (n, C)
        return self.pos_table[:n]  # (n, C)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """tokens: (B, T) int64; mask: (B, T) bool, True = real token (default tokens != pad_id)."""
        mask = tokens != self.pad_id if mask is None else mask.bool()
        B, T = tokens.shape
        x = self.tok_emb(tokens)  # (B, T, C)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(B, -1, -1), x], dim=1)  # (B, 1 + T, C)
            mask = torch.cat([mask.new_ones(B, 1), mask], dim=1)  # (B, 1 + T)
        x = self.drop(x + self.positions(x.size(1)))  # (B, T', C)
        # an all-padding row would have no key to attend to (softmax of all -inf = NaN)
        keys = mask.clone()
        keys[:, 0] |= ~mask.any(dim=1)
        for block in self.blocks:
            x = block(x, keys)  # (B, T', C)
        x = self.ln_f(x)  # (B, T', C)
        if self.cls is not None:
            pooled = x[:, 0]  # (B, C) the [CLS] state
        else:
            m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, C)
        return self.head(self.head_drop(pooled))  # (B, num_outputs)



@register_model("transformer", kinds=("text",))
def build_transformer(cfg: TransformerConfig, spec: SpecLike, num_outputs: int) -> nn.Module:
    if cfg.d_model % cfg.n_heads != 0:
        raise UserError(
            f"model.n_heads ({cfg.n_heads}) must divide model.d_model ({cfg.d_model}); "
            f"change one of them (e.g. d_model {cfg.n_heads * max(1, cfg.d_model // cfg.n_heads)})"
        )
    return TransformerClassifier(
        cfg, require_vocab(spec), max(1, spec.max_length), num_outputs, pad_id=spec.pad_id
    )
