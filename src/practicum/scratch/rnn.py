"""Elman recurrent networks: one step (RNNCell) and a whole sequence (RNN), with
backpropagation through time written out.

    h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   act = tanh or relu

Parameter names and initialisation follow torch.nn.RNNCell / torch.nn.RNN (every weight and
bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))), so weights copy across by state_dict.
Gradients are not clipped here: exploding gradients are for the caller to see and clip.
"""

from __future__ import annotations

import math

import numpy as np

from practicum.scratch.core import Array, Module, Parameter, as_rng

NONLINEARITIES = ("tanh", "relu")


def _check_nonlinearity(nonlinearity: str) -> str:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


def _activate(nonlinearity: str, a: Array) -> Array:
    return np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)


def _activation_grad(nonlinearity: str, h: Array) -> Array:
    """d act(a) / da written in terms of the output h = act(a), so a need not be kept."""
    return 1.0 - h**2 if nonlinearity == "tanh" else (h > 0).astype(h.dtype)


def _init(input_size: int, hidden_size: int, bias: bool, seed: int | np.random.Generator | None
          ) -> tuple[Parameter, Parameter, Parameter | None, Parameter | None]:
    """weight_ih, weight_hh, bias_ih, bias_hh, drawn in torch's order."""
    rng, bound = as_rng(seed), 1.0 / math.sqrt(hidden_size)

    def draw(*shape: int) -> Parameter:
        return Parameter(rng.uniform(-bound, bound, shape))

    w_ih, w_hh = draw(hidden_size, input_size), draw(hidden_size, hidden_size)
    return (w_ih, w_hh, draw(hidden_size), draw(hidden_size)) if bias else (w_ih, w_hh, None, None)


class RNNCell(Module):
    """One recurrent step: forward(x (B, I), h (B, H)) -> h' (B, H); backward(dh') -> (dx, dh)."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 bias: bool = True, seed: int | np.random.Generator | None = None) -> None:
        self.nonlinearity = _check_nonlinearity(nonlinearity)
        self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh = _init(
            input_size, hidden_size, bias, seed)

    def forward(self, x: Array, h: Array) -> Array:
        self._x, self._h = x, h
        a = x @ self.weight_ih.value.T + h @ self.weight_hh.value.T  # (B, H)
        if self.bias_ih is not None:
            a = a + self.bias_ih.value + self.bias_hh.value
        self._h_new = _activate(self.nonlinearity, a)  # (B, H)
        return self._h_new

    def backward(self, grad_output: Array) -> tuple[Array, Array]:
        da = grad_output * _activation_grad(self.nonlinearity, self._h_new)  # (B, H)
        self.weight_ih.grad += da.T @ self._x
        self.weight_hh.grad += da.T @ self._h
        if self.bias_ih is not None:
            self.bias_ih.grad += da.sum(axis=0)
            self.bias_hh.grad += da.sum(axis=0)
        return da @ self.weight_ih.value, da @ self.weight_hh.value


class RNN(Module):
    """A single-layer RNN over batch-first sequences, as torch.nn.RNN(batch_first=True).

    forward(x (B, T, I), h0 (B, H) or omitted for zeros) -> (output (B, T, H), h_n (1, B, H)).
    backward((d_output, d_h_n)) returns one gradient per forward input: dx when forward was
    called without h0, (dx, dh0) when it was given. d_h_n may be None (h_n unused).
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 bias: bool = True, seed: int | np.random.Generator | None = None) -> None:
        self.nonlinearity = _check_nonlinearity(nonlinearity)
        self.hidden_size = hidden_size
        self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0 = _init(
            input_size, hidden_size, bias, seed)

    def forward(self, x: Array, h0: Array | None = None) -> tuple[Array, Array]:
        b, t, _ = x.shape
        self._x, self._h0_given = x, h0 is not None
        h = np.zeros((b, self.hidden_size)) if h0 is None else h0  # (B, H)
        xw = x @ self.weight_ih_l0.value.T  # (B, T, H): the input part of every step at once
        if self.bias_ih_l0 is not None:
            xw = xw + self.bias_ih_l0.value + self.bias_hh_l0.value
        hs = np.empty((b, t + 1, self.hidden_size))  # (B, T+1, H): h0, h1, ..., hT
        hs[:, 0] = h
        for step in range(t):
            hs[:, step + 1] = _activate(self.nonlinearity, xw[:, step] + hs[:, step] @ self.weight_hh_l0.value.T)
        self._hs = hs
        return hs[:, 1:].copy(), hs[None, :, -1].copy()  # (B, T, H), (1, B, H)

    def backward(self, grad_output: tuple[Array, Array | None]) -> Array | tuple[Array, Array]:
        d_output, d_h_n = grad_output
        hs, w_hh = self._hs, self.weight_hh_l0.value
        dh = np.zeros_like(hs[:, 0]) if d_h_n is None else d_h_n[0].copy()  # (B, H)
        da = np.empty_like(d_output)  # (B, T, H): dL/d(pre-activation) at every step
        for step in reversed(range(d_output.shape[1])):
            dh += d_output[:, step]  # the step's output feeds the loss and the next step
            da[:, step] = dh * _activation_grad(self.nonlinearity, hs[:, step + 1])
            dh = da[:, step] @ w_hh  # (B, H): gradient flowing to h_{step}
        flat_da = da.reshape(-1, da.shape[-1])  # (B*T, H)
        self.weight_ih_l0.grad += flat_da.T @ self._x.reshape(-1, self._x.shape[-1])
        self.weight_hh_l0.grad += flat_da.T @ hs[:, :-1].reshape(-1, hs.shape[-1])
        if self.bias_ih_l0 is not None:
            self.bias_ih_l0.grad += flat_da.sum(axis=0)
            self.bias_hh_l0.grad += flat_da.sum(axis=0)
        dx = da @ self.weight_ih_l0.value  # (B, T, I)
        return (dx, dh) if self._h0_given else dx
