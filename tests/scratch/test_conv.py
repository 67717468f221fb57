"""Conv2d and MaxPool2d against torch (values and every gradient) and finite differences."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from practicum.scratch import conv
from practicum.scratch.gradcheck import check_gradients
from practicum.scratch.twins import conv as twins
from practicum.scratch.twins.check import compare_with_torch

CONV_CASES = {  # (B, C, H, W), out_channels, kernel_size, stride, padding, bias
    "3x3": ((2, 3, 6, 6), 4, 3, 1, 0, True),
    "stride2-pad1": ((2, 2, 7, 5), 3, 3, 2, 1, True),
    "non-square-kernel": ((1, 3, 5, 8), 2, (2, 3), (2, 1), (1, 0), False),
    "1x1": ((3, 2, 4, 4), 5, 1, 1, 0, True),
    "5x5-pad2": ((2, 2, 6, 6), 3, 5, 1, 2, True),
}
POOL_CASES = {  # (B, C, H, W), kernel_size, stride
    "2x2-odd": ((2, 3, 5, 7), 2, None),
    "3x3-stride2-overlap": ((2, 2, 7, 6), 3, 2),
    "non-square": ((1, 2, 6, 9), (2, 3), None),
    "stride1": ((1, 1, 4, 5), 2, 1),
}


def _rand(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_matches_torch(case):
    shape, out, k, s, p, bias = case
    args = (shape[1], out, k, s, p, bias)
    errors = compare_with_torch(conv.Conv2d(*args, seed=0), twins.Conv2d(*args), _rand(shape))
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("name", ["stride2-pad1", "non-square-kernel"])
def test_conv2d_gradcheck(name):
    (b, c, h, w), out, k, s, p, bias = CONV_CASES[name]
    result = check_gradients(conv.Conv2d(c, out, k, s, p, bias, seed=0), _rand((1, c, h, w)))
    assert result.ok(1e-6), str(result)


def test_conv2d_init_like_torch():
    layer = conv.Conv2d(4, 16, 3, seed=0)
    bound = 1 / np.sqrt(4 * 3 * 3)
    assert layer.weight.shape == (16, 4, 3, 3) and layer.bias.shape == (16,)
    assert 0.9 * bound < np.abs(layer.weight.value).max() <= bound
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert conv.Conv2d(4, 16, 3, bias=False).num_parameters() == 16 * 4 * 9


@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_maxpool2d_matches_torch(case):
    shape, k, s = case
    errors = compare_with_torch(conv.MaxPool2d(k, s), twins.MaxPool2d(k, s), _rand(shape))
    assert max(errors.values()) < 1e-6, errors


def test_maxpool2d_ties_go_to_first_max_like_torch():
    x = np.random.default_rng(0).integers(0, 2, (2, 2, 6, 7)).astype(np.float64)  # many ties
    for k, s in [(2, None), (3, 2), (3, 1)]:
        errors = compare_with_torch(conv.MaxPool2d(k, s), twins.MaxPool2d(k, s), x)
        assert max(errors.values()) < 1e-12, errors  # a wrong winner would be off by O(1)
    pool = conv.MaxPool2d(2)
    pool.forward(np.ones((1, 1, 2, 2)))
    assert pool.backward(np.ones((1, 1, 1, 1))).tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]


@pytest.mark.parametrize("name", ["2x2-odd", "3x3-stride2-overlap"])
def test_maxpool2d_gradcheck(name):
    shape, k, s = POOL_CASES[name]
    assert check_gradients(conv.MaxPool2d(k, s), _rand(shape)).ok(1e-6)


@pytest.mark.parametrize("name", ["Conv2d", "MaxPool2d"])
def test_twin_signature_matches(name):
    scratch, twin = getattr(conv, name), getattr(twins, name)
    assert list(inspect.signature(twin).parameters) == list(inspect.signature(scratch).parameters)
