"""2-D convolution and max pooling on (B, C, H, W) arrays, with their backward passes.

Convolution is im2col + one matrix multiply: every receptive field is copied out as a row
of a matrix, so the layer is as fast as NumPy's matmul. Its backward (col2im) and the
pooling backward loop over the kh * kw kernel offsets, adding one strided slice at a time,
which is faster than np.add.at over every element.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from practicum.scratch.core import Array, Module, Parameter, as_rng

Pair = int | tuple[int, int]


def _pair(value: Pair, name: str) -> tuple[int, int]:
    """(v, v) from an int, or the pair itself, as torch accepts either."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def _windows(x: Array, kernel: tuple[int, int], stride: tuple[int, int]) -> Array:
    """A strided view of every (kh, kw) window of x (no copy): (B, C, Ho, Wo, kh, kw)."""
    if x.shape[2] < kernel[0] or x.shape[3] < kernel[1]:
        raise ValueError(f"input of spatial size {x.shape[2:]} is smaller than the kernel {kernel}")
    view = sliding_window_view(x, kernel, axis=(2, 3))  # (B, C, H-kh+1, W-kw+1, kh, kw)
    return view[:, :, :: stride[0], :: stride[1]]  # (B, C, Ho, Wo, kh, kw)


def _scatter_windows(dwin: Array, shape: tuple[int, ...], stride: tuple[int, int]) -> Array:
    """The adjoint of `_windows`: add each window's gradient back onto the input positions it
    was read from (windows overlap when stride < kernel, hence the +=)."""
    _, _, ho, wo, kh, kw = dwin.shape
    sh, sw = stride
    dx = np.zeros(shape)  # (B, C, H, W)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i : i + sh * ho : sh, j : j + sw * wo : sw] += dwin[..., i, j]
    return dx


class Conv2d(Module):
    """Cross-correlation of (B, C_in, H, W) with weight (C_out, C_in, kh, kw), as torch.nn.Conv2d.

    Output size per axis: (H + 2 * padding - kh) // stride + 1. Initialised as PyTorch does:
    weight, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C_in * kh * kw.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Pair, stride: Pair = 1,
                 padding: Pair = 0, bias: bool = True,
                 seed: int | np.random.Generator | None = None) -> None:
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        kh, kw = self.kernel_size
        rng, bound = as_rng(seed), 1.0 / math.sqrt(in_channels * kh * kw)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_channels, in_channels, kh, kw)))
        self.bias = Parameter(rng.uniform(-bound, bound, out_channels)) if bias else None

    def forward(self, x: Array) -> Array:
        ph, pw = self.padding
        self._x_shape = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x  # (B, C, Hp, Wp)
        win = _windows(xp, self.kernel_size, self.stride)  # (B, C, Ho, Wo, kh, kw)
        b, c, ho, wo, kh, kw = win.shape
        self._padded_shape = xp.shape
        self._cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(b * ho * wo, c * kh * kw)  # (N, C*kh*kw)
        w = self.weight.value.reshape(self.weight.shape[0], -1)  # (O, C*kh*kw)
        y = self._cols @ w.T  # (N, O)
        if self.bias is not None:
            y += self.bias.value
        return y.reshape(b, ho, wo, -1).transpose(0, 3, 1, 2)  # (B, O, Ho, Wo)

    def backward(self, grad_output: Array) -> Array:
        b, o, ho, wo = grad_output.shape
        g = grad_output.transpose(0, 2, 3, 1).reshape(-1, o)  # (N, O)
        self.weight.grad += (g.T @ self._cols).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += g.sum(axis=0)
        c, kh, kw = self.weight.shape[1:]
        dcols = g @ self.weight.value.reshape(o, -1)  # (N, C*kh*kw)
        dwin = dcols.reshape(b, ho, wo, c, kh, kw).transpose(0, 3, 1, 2, 4, 5)  # (B, C, Ho, Wo, kh, kw)
        dxp = _scatter_windows(dwin, self._padded_shape, self.stride)  # (B, C, Hp, Wp)
        ph, pw = self.padding
        h, w = self._x_shape[2:]
        return dxp[:, :, ph : ph + h, pw : pw + w]  # (B, C, H, W)


class MaxPool2d(Module):
    """The maximum of each (kh, kw) window of (B, C, H, W), stride defaulting to the kernel,
    no padding; output size (H - kh) // stride + 1, as torch.nn.MaxPool2d.

    The gradient goes to the window's first maximum only (row-major order), as in PyTorch,
    so tied values do not share it.
    """

    def __init__(self, kernel_size: Pair, stride: Pair | None = None) -> None:
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")

    def forward(self, x: Array) -> Array:
        win = _windows(x, self.kernel_size, self.stride)  # (B, C, Ho, Wo, kh, kw)
        flat = win.reshape(*win.shape[:4], -1)  # (B, C, Ho, Wo, kh*kw)
        self._x_shape = x.shape
        self._argmax = flat.argmax(axis=-1)  # (B, C, Ho, Wo), first maximum on ties
        return np.take_along_axis(flat, self._argmax[..., None], axis=-1)[..., 0]  # (B, C, Ho, Wo)

    def backward(self, grad_output: Array) -> Array:
        kh, kw = self.kernel_size
        winner = self._argmax[..., None] == np.arange(kh * kw)  # (B, C, Ho, Wo, kh*kw)
        dwin = (winner * grad_output[..., None]).reshape(*grad_output.shape, kh, kw)  # (B, C, Ho, Wo, kh, kw)
        return _scatter_windows(dwin, self._x_shape, self.stride)  # (B, C, H, W)
