"""One config-driven Transformer language model: GPT-2, BERT and LLaMA are settings of LMConfig.

    tokens -> token embedding (+ learned/sinusoidal positions) (+ token types) [-> norm]
           -> n_layer blocks (causal or bidirectional attention, rotary or not; GELU or SwiGLU MLP;
              pre- or post-norm) [-> final norm] [-> head transform] -> lm_head -> logits (B, T, V)

Attention runs through F.scaled_dot_product_attention; `use_sdpa = False` (or keep_attention)
switches every layer to the written-out reference path, which tests compare against.
Generation passes a KVCache: keys and values of earlier positions are kept per layer, so
each new token costs one position's work. Parameter names are ours; models/hf.py maps
Hugging Face checkpoints onto them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from practicum.config import LMConfig
from practicum.errors import UserError
from practicum.models.build import SpecLike, register_model
from practicum.models.layers import gpt_init, sinusoidal_positions

INIT_STD = 0.02
"""Std of the normal init of linear and embedding weights (GPT-2)."""


# ---------------------------------------------------------------- pieces


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (LLaMA), computed in float32."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def make_norm(cfg: LMConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.n_embd, cfg.norm_eps)
    return nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_tables(n: int, head_size: int, base: float) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotary angles for positions 0..n-1: two (n, head_size) tables."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_size, 2, dtype=torch.float32) / head_size))
    angles = torch.arange(n, dtype=torch.float32)[:, None] * inv_freq  # (n, hs/2)
    angles = torch.cat((angles, angles), dim=-1)  # (n, hs): the two halves share frequencies
    return angles.cos(), angles.sin()


class KVCache:
    """Keys and values of the positions seen so far, per layer: (B, n_kv_head, max_len, hs)."""

    def __init__(self, cfg: LMConfig, batch: int, max_len: int, device: torch.device,
                 dtype: torch.dtype) -> None:
        shape = (cfg.n_layer, batch, cfg.kv_heads, max_len, cfg.head_size)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # positions already stored
        self.max_len = max_len

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store this call's (B, nkv, T, hs) keys/values after the cached ones; return all of them."""
        start, end = self.length, self.length + k.size(2)
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def select(self, rows: Tensor) -> None:
        """Keep only these batch rows (finished sequences dropped)."""
        self.k, self.v = self.k[:, rows], self.v[:, rows]


class Attention(nn.Module):
    """Multi-head (or grouped-/multi-query) self-attention with optional rotary positions."""

    def __init__(self, cfg: LMConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.n_head, self.n_kv_head, self.hs = cfg.n_head, cfg.kv_heads, cfg.head_size
        self.causal, self.rotary = cfg.causal, cfg.positions == "rotary"
        self.dropout = cfg.dropout
        width = (self.n_head + 2 * self.n_kv_head) * self.hs
        self.qkv = nn.Linear(cfg.n_embd, width, bias=cfg.bias)  # queries, keys, values side by side
        self.proj = nn.Linear(self.n_head * self.hs, cfg.n_embd, bias=cfg.bias)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.use_sdpa = True
        """Use F.scaled_dot_product_attention; False runs the written-out reference path."""
        self.keep_attention = False
        """Store the softmax weights of each call in `attention` (forces the reference path)."""
        self.attention: Tensor | None = None

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None, allowed: Tensor | None,
                cache: KVCache | None) -> Tensor:
        """x (B, T, C); rope: cos, sin (B, 1, T, hs); allowed: (B|1, 1, T, S) bool or None for
        plain causal/full attention over this call's T positions."""
        B, T, _ = x.shape
        nh, nkv, hs = self.n_head, self.n_kv_head, self.hs
        q, k, v = self.qkv(x).split((nh * hs, nkv * hs, nkv * hs), dim=-1)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        if rope is not None:
            cos, sin = rope
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, nkv, S, hs), S = cached + T
        if nkv != nh:  # grouped-query: each key/value head serves nh // nkv query heads
            k = k.repeat_interleave(nh // nkv, dim=1)  # (B, nh, S, hs)
            v = v.repeat_interleave(nh // nkv, dim=1)
        is_causal = allowed is None and self.causal

        if self.keep_attention or not self.use_sdpa:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, S)
            if allowed is not None:
                att = att.masked_fill(~allowed, float("-inf"))
            elif is_causal:
                S = k.size(2)
                future = torch.ones(T, S, dtype=torch.bool, device=x.device).triu(S - T + 1)
                att = att.masked_fill(future, float("-inf"))
            att = F.softmax(att.float(), dim=-1).to(q.dtype)
            self.attention = att if self.keep_attention else None
            y = self.attn_drop(att) @ v  # (B, nh, T, hs)
        else:
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p,
                                               is_causal=is_causal)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, nh * hs)  # heads side by side
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    """GELU: proj(gelu(fc(x))). SwiGLU: proj(silu(gate(x)) * up(x)), gate and up fused in fc."""

    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.swiglu = cfg.mlp == "swiglu"
        width = cfg.mlp_width
        self.fc = nn.Linear(cfg.n_embd, 2 * width if self.swiglu else width, bias=cfg.bias)
        self.proj = nn.Linear(width, cfg.n_embd, bias=cfg.bias)
        self.approximate = cfg.gelu_approximate
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)  # (B, T, I) or (B, T, 2I)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate=self.approximate)
        return self.drop(self.proj(h))  # (B, T, C)


class Block(nn.Module):
    """pre-norm: x + attn(norm_1(x)), then + mlp(norm_2(.)); post-norm: norm_1(x + attn(x)), ..."""

    def __init__(self, cfg: LMConfig, layer: int) -> None:
        super().__init__()
        self.pre = cfg.norm_placement == "pre"
        self.norm_1 = make_norm(cfg)
        self.attn = Attention(cfg, layer)
        self.norm_2 = make_norm(cfg)
        self.mlp = MLP(cfg)

    checkpointing = False
    """Training only: recompute this block in backward (train.activation_checkpointing)."""

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None, allowed: Tensor | None,
                cache: KVCache | None) -> Tensor:
        if self.checkpointing and self.training and cache is None and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self._forward, x, rope, allowed, None, use_reentrant=False)
        return self._forward(x, rope, allowed, cache)

    def _forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None, allowed: Tensor | None,
                 cache: KVCache | None) -> Tensor:
        if self.pre:
            x = x + self.attn(self.norm_1(x), rope, allowed, cache)
            return x + self.mlp(self.norm_2(x))
        x = self.norm_1(x + self.attn(x, rope, allowed, cache))
        return self.norm_2(x + self.mlp(x))


# ---------------------------------------------------------------- the model


class TransformerLM(nn.Module):
    """`forward(tokens, mask=None, token_types=None, positions=None, cache=None)` -> logits (B, T, V).

    With `pooler` on (BERT), forward returns (logits, nsp_logits (B, 2)).
    """

    def __init__(self, cfg: LMConfig, vocab_size: int | None = None) -> None:
        super().__init__()
        vocab = vocab_size or cfg.vocab_size
        if vocab is None:
            raise UserError("model.vocab_size is not set and no tokenizer gives it; set model.vocab_size")
        check_shape(cfg)
        self.cfg, self.vocab_size = cfg, int(vocab)
        C = cfg.n_embd
        self.wte = nn.Embedding(self.vocab_size, C)
        self.wpe = nn.Embedding(cfg.block_size, C) if cfg.positions == "learned" else None
        if cfg.positions == "sinusoidal":  # fixed, rebuilt on load; scaled like the embeddings
            self.register_buffer("pos_table", INIT_STD * sinusoidal_positions(cfg.block_size, C),
                                 persistent=False)
        if cfg.positions == "rotary":
            cos, sin = rope_tables(cfg.block_size, cfg.head_size, cfg.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.wtt = nn.Embedding(cfg.token_types, C) if cfg.token_types else None
        self.emb_norm = make_norm(cfg) if cfg.embedding_norm else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm_f = make_norm(cfg) if cfg.final_norm else None
        if cfg.head_transform:
            self.head_dense: nn.Linear | None = nn.Linear(C, C)
            self.head_norm: nn.Module | None = make_norm(cfg)
        else:
            self.head_dense = self.head_norm = None
        self.lm_head = nn.Linear(C, self.vocab_size, bias=cfg.lm_head_bias)
        if cfg.pooler:
            self.pooler: nn.Linear | None = nn.Linear(C, C)
            self.nsp_head: nn.Linear | None = nn.Linear(C, 2)
        else:
            self.pooler = self.nsp_head = None
        self.apply(lambda m: gpt_init(m, INIT_STD))
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=INIT_STD / math.sqrt(2 * cfg.n_layer))
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight

    # ------------------------------------------------------------ introspection

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Distinct parameters (a tied weight counts once)."""
        params = {id(p): p for p in self.parameters() if p.requires_grad or not trainable_only}
        return sum(p.numel() for p in params.values())

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        """An empty KVCache for `batch` sequences of up to max_len (default block_size) positions."""
        ref = self.wte.weight
        return KVCache(self.cfg, batch, max_len or self.cfg.block_size, ref.device, ref.dtype)

    def set_reference_attention(self, on: bool = True) -> None:
        """Run every layer through the written-out attention (True) or SDPA (False)."""
        for block in self.blocks:
            block.attn.use_sdpa = not on

    @property
    def keep_attention(self) -> bool:
        return all(b.attn.keep_attention for b in self.blocks)

    @keep_attention.setter
    def keep_attention(self, value: bool) -> None:
        for b in self.blocks:
            b.attn.keep_attention, b.attn.attention = value, None

    def attention_maps(self) -> list[Tensor]:
        """The last call's weights, one (B, nh, T, S) tensor per layer (set keep_attention first)."""
        maps = [b.attn.attention for b in self.blocks]
        if any(m is None for m in maps):
            raise RuntimeError("set model.keep_attention = True and run a forward pass first")
        return maps  # type: ignore[return-value]

    # ------------------------------------------------------------ forward

    def forward(self, tokens: Tensor, mask: Tensor | None = None, token_types: Tensor | None = None,
                positions: Tensor | None = None, cache: KVCache | None = None):
        hidden = self.hidden_states(tokens, mask, token_types, positions, cache)
        logits = self.logits(hidden)
        if self.nsp_head is not None:
            return logits, self.next_sentence_logits(hidden)
        return logits

    def hidden_states(self, tokens: Tensor, mask: Tensor | None = None,
                      token_types: Tensor | None = None, positions: Tensor | None = None,
                      cache: KVCache | None = None, prefix: Tensor | None = None) -> Tensor:
        """The last layer's states (after the final norm): (B, T, C).

        tokens (B, T) int64. mask: (B, S) bool, True = a real token, over every key position
        (S = cached + T); None = all real. positions: (B, T) int64; None = cached .. cached + T - 1.
        prefix: (P, C) embeddings put before the tokens' (prompt tuning); T then counts them too,
        and mask, token_types and positions must cover all P + T positions.
        """
        x = self.wte(tokens)  # (B, T, C)
        if prefix is not None:
            x = torch.cat((prefix.to(x.dtype).expand(x.size(0), -1, -1), x), dim=1)
        B, T = x.shape[:2]
        start = cache.length if cache is not None else 0
        if cache is not None and start + T > cache.max_len:
            raise UserError(f"the KV cache holds {cache.max_len} positions and is full; "
                            "make a larger one with model.new_cache(batch, max_len)")
        plain_positions = positions is None
        if positions is None:
            if start + T > self.cfg.block_size:
                raise UserError(
                    f"sequence of {start + T} tokens is longer than the context "
                    f"(model.block_size {self.cfg.block_size}); shorten the input"
                )
            positions = torch.arange(start, start + T, device=tokens.device).expand(B, T)
        elif start == 0 and int(positions.max()) >= self.cfg.block_size:  # decode steps skip the sync
            raise UserError(
                f"position {int(positions.max())} is past the context "
                f"(model.block_size {self.cfg.block_size}); shorten the input"
            )
        if self.wpe is not None and plain_positions:  # one (T, C) slice, broadcast over the batch
            x = x + self.wpe.weight[start : start + T]
        elif self.wpe is not None:
            x = x + self.wpe(positions)
        elif self.cfg.positions == "sinusoidal":
            x = x + self.pos_table[positions]
        if self.wtt is not None:
            types = token_types if token_types is not None else torch.zeros_like(x[..., 0], dtype=torch.long)
            x = x + self.wtt(types)
        if self.emb_norm is not None:
            x = self.emb_norm(x)
        x = self.drop(x)
        rope = None
        if self.cfg.positions == "rotary":
            rope = (self.rope_cos[positions].unsqueeze(1).to(x.dtype),  # (B, 1, T, hs)
                    self.rope_sin[positions].unsqueeze(1).to(x.dtype))
        allowed = self._allowed(mask, B, T, start, tokens.device)
        for block in self.blocks:
            x = block(x, rope, allowed, cache)
        if cache is not None:
            cache.length += T
        if self.norm_f is not None:
            x = self.norm_f(x)
        return x

    def logits(self, hidden: Tensor) -> Tensor:
        """Vocabulary logits (B, T, V) from last-layer states."""
        if self.head_dense is not None:
            hidden = self.head_norm(F.gelu(self.head_dense(hidden), approximate=self.cfg.gelu_approximate))
        return self.lm_head(hidden)

    def next_sentence_logits(self, hidden: Tensor) -> Tensor:
        """BERT's is-next (0) / random (1) logits from the first position: (B, 2)."""
        return self.nsp_head(torch.tanh(self.pooler(hidden[:, 0])))

    def _allowed(self, mask: Tensor | None, B: int, T: int, start: int,
                 device: torch.device) -> Tensor | None:
        """Which keys each query may attend to: (B|1, 1, T, S) bool, or None for the plain case
        (full attention, or causal attention over exactly this call's positions)."""
        if mask is None and (start == 0 or (not self.cfg.causal)):
            return None
        S = start + T
        allowed = torch.ones(1, 1, T, S, dtype=torch.bool, device=device)
        if self.cfg.causal:
            query_at = torch.arange(start, S, device=device)[:, None]  # (T, 1)
            allowed = allowed & (torch.arange(S, device=device)[None, :] <= query_at)
        if mask is not None:
            if mask.shape != (B, S):
                raise ValueError(f"mask must be (B, S) = ({B}, {S}), got {tuple(mask.shape)}")
            allowed = allowed & mask.bool()[:, None, None, :]  # (B, 1, T, S)
            # a query with no visible key (a padding position) would give NaN: let it see itself
            own = torch.zeros(T, S, dtype=torch.bool, device=device)
            own[torch.arange(T), torch.arange(start, S)] = True
            allowed = allowed | own
        return allowed


def check_shape(cfg: LMConfig) -> None:
    """Errors a user can fix: head counts that do not divide the widths."""
    if cfg.n_embd % cfg.n_head:
        raise UserError(f"model.n_head ({cfg.n_head}) must divide model.n_embd ({cfg.n_embd})")
    if cfg.n_head % cfg.kv_heads:
        raise UserError(f"model.n_kv_head ({cfg.kv_heads}) must divide model.n_head ({cfg.n_head})")
    if cfg.positions == "rotary" and cfg.head_size % 2:
        raise UserError(f"rotary positions need an even head size, got {cfg.head_size}")



@register_model("lm", kinds=("corpus",))
def build_lm(cfg: LMConfig, spec: SpecLike, num_outputs: int) -> nn.Module:
    """The registry entry: the vocabulary comes from the tokenizer (spec.vocab_size)."""
    return TransformerLM(cfg, cfg.vocab_size or spec.vocab_size or None)
