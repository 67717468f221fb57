"""Softmax, scaled dot-product attention and multi-head self-attention, each with its
backward pass.

Masks follow PyTorch: a boolean `mask` for attention is True where a query *may* attend
(as in `torch.nn.functional.scaled_dot_product_attention`), while `key_padding_mask` is
True at *padding* positions (as in `torch.nn.MultiheadAttention`). A query row with every
key masked gets all-zero weights, output and gradients, as torch's SDPA does.
"""

from __future__ import annotations

import math

import numpy as np

from practicum.scratch.core import Array, Module, Parameter, as_rng
from practicum.scratch.layers import Linear


def softmax(x: Array, axis: int = -1) -> Array:
    """exp(x) / sum(exp(x)) along `axis`, shifted by the maximum so nothing overflows.

    Entries of -inf get weight 0; a slice that is all -inf gives all zeros (not NaN).
    """
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)  # an all -inf slice: exp(-inf - 0) = 0
    e = np.exp(x - m)
    s = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(s == 0.0, 1.0, s)


def softmax_backward(y: Array, grad_output: Array, axis: int = -1) -> Array:
    """dL/dx from y = softmax(x) and dL/dy: y * (dL/dy - sum(dL/dy * y))."""
    return y * (grad_output - np.sum(grad_output * y, axis=axis, keepdims=True))


def causal_mask(q_len: int, k_len: int) -> Array:
    """(L, S) boolean, True on and below the diagonal from the top-left corner, like torch's is_causal."""
    return np.tril(np.ones((q_len, k_len), dtype=bool))


def _unbroadcast(grad: Array, shape: tuple[int, ...]) -> Array:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting of the leading (batch) axes."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


class ScaledDotProductAttention(Module):
    """softmax(q k^T / sqrt(d) + masking) v over the last two axes; no parameters.

    forward(q (..., L, d), k (..., S, d), v (..., S, dv), mask=None) -> (..., L, dv), where
    `mask` is boolean, broadcastable to (..., L, S), True = may attend. With `is_causal`
    the causal mask is combined (AND) with `mask`. The weights (..., L, S) are kept in
    `self.weights` for visualisation; backward(d_out) returns (dq, dk, dv).
    """

    def __init__(self, is_causal: bool = False) -> None:
        self.is_causal = is_causal
        self.weights: Array | None = None

    def allowed(self, mask: Array | None, q_len: int, k_len: int) -> Array | None:
        """The boolean (..., L, S) where-may-attend mask, or None when nothing is masked."""
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_:
                raise TypeError(f"mask must be boolean (True = may attend), got dtype {mask.dtype}")
        if not self.is_causal:
            return mask
        causal = causal_mask(q_len, k_len)  # (L, S)
        return causal if mask is None else mask & causal

    def forward(self, q: Array, k: Array, v: Array, mask: Array | None = None) -> Array:
        self._q, self._k, self._v = q, k, v
        self._scale = 1.0 / math.sqrt(q.shape[-1])
        scores = (q @ k.swapaxes(-1, -2)) * self._scale  # (..., L, S)
        allowed = self.allowed(mask, q.shape[-2], k.shape[-2])
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
        self.weights = softmax(scores, axis=-1)  # (..., L, S)
        return self.weights @ v  # (..., L, dv)

    def backward(self, grad_output: Array) -> tuple[Array, Array, Array]:
        q, k, v, w = self._q, self._k, self._v, self.weights
        dw = grad_output @ v.swapaxes(-1, -2)  # (..., L, S)
        dv = w.swapaxes(-1, -2) @ grad_output  # (..., S, dv)
        ds = softmax_backward(w, dw, axis=-1) * self._scale  # (..., L, S); 0 where masked
        dq = ds @ k  # (..., L, d)
        dk = ds.swapaxes(-1, -2) @ q  # (..., S, d)
        return _unbroadcast(dq, q.shape), _unbroadcast(dk, k.shape), _unbroadcast(dv, v.shape)


class MultiHeadSelfAttention(Module):
    """Self-attention with `num_heads` heads of size embed_dim // num_heads, parameters named
    as torch.nn.MultiheadAttention's: in_proj_weight (3E, E) stacking the q, k, v
    projections, in_proj_bias (3E), out_proj.weight (E, E), out_proj.bias (E).

    forward(x (B, T, E), key_padding_mask=None (B, T) bool, True = padding) -> (B, T, E).
    Per-head weights (B, nh, T, T) are kept in `self.weights`; backward(d_out) -> dx.
    Initialised as torch: xavier-uniform in_proj_weight, out_proj as a default Linear,
    biases zero.
    """

    def __init__(self, embed_dim: int, num_heads: int, causal: bool = False, bias: bool = True,
                 seed: int | np.random.Generator | None = None) -> None:
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        rng = as_rng(seed)
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        bound = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))  # xavier: fan_in E, fan_out 3E
        self.in_proj_weight = Parameter(rng.uniform(-bound, bound, (3 * embed_dim, embed_dim)))
        self.in_proj_bias = Parameter(np.zeros(3 * embed_dim)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, seed=rng)
        if bias:
            self.out_proj.bias.value[...] = 0.0
        self.attn = ScaledDotProductAttention(is_causal=causal)
        self.weights: Array | None = None

    def _split_heads(self, x: Array) -> Array:
        B, T, _ = x.shape
        return x.reshape(B, T, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)  # (B, nh, T, hs)

    def _merge_heads(self, x: Array) -> Array:
        B, _, T, _ = x.shape
        return x.transpose(0, 2, 1, 3).reshape(B, T, self.embed_dim)  # (B, T, E)

    def forward(self, x: Array, key_padding_mask: Array | None = None) -> Array:
        self._x = x
        qkv = x @ self.in_proj_weight.value.T  # (B, T, 3E)
        if self.in_proj_bias is not None:
            qkv = qkv + self.in_proj_bias.value
        q, k, v = (self._split_heads(t) for t in np.split(qkv, 3, axis=-1))  # (B, nh, T, hs) each
        allowed = None
        if key_padding_mask is not None:
            pad = np.asarray(key_padding_mask)
            if pad.dtype != np.bool_:
                raise TypeError(f"key_padding_mask must be boolean (True = padding), got dtype {pad.dtype}")
            allowed = ~pad[:, None, None, :]  # (B, 1, 1, T)
        y = self.attn(q, k, v, allowed)  # (B, nh, T, hs)
        self.weights = self.attn.weights  # (B, nh, T, T)
        return self.out_proj(self._merge_heads(y))  # (B, T, E)

    def backward(self, grad_output: Array) -> Array:
        dy = self._split_heads(self.out_proj.backward(grad_output))  # (B, nh, T, hs)
        dq, dk, dv = self.attn.backward(dy)
        dqkv = np.concatenate([self._merge_heads(g) for g in (dq, dk, dv)], axis=-1)  # (B, T, 3E)
        g2 = dqkv.reshape(-1, dqkv.shape[-1])  # (N, 3E)
        self.in_proj_weight.grad += g2.T @ self._x.reshape(-1, self._x.shape[-1])
        if self.in_proj_bias is not None:
            self.in_proj_bias.grad += g2.sum(axis=0)
        return dqkv @ self.in_proj_weight.value  # (B, T, E)
