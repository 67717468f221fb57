"""RNNCell and RNN against torch (values and every gradient) and finite differences."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from practicum.scratch import rnn
from practicum.scratch.gradcheck import check_gradients
from practicum.scratch.twins import rnn as twins
from practicum.scratch.twins.check import compare_with_torch

CELL_CASES = [("tanh", True), ("relu", True), ("tanh", False)]
SEQ_CASES = {  # B, T, I, H, nonlinearity, bias
    "tanh": (2, 5, 3, 4, "tanh", True),
    "relu": (3, 4, 2, 5, "relu", True),
    "no-bias": (2, 3, 4, 3, "tanh", False),
    "one-step": (1, 1, 2, 3, "tanh", True),
}


def _rand(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize(("nonlinearity", "bias"), CELL_CASES)
def test_rnn_cell_matches_torch(nonlinearity, bias):
    args = (3, 4, nonlinearity, bias)
    errors = compare_with_torch(rnn.RNNCell(*args, seed=0), twins.RNNCell(*args), _rand(5, 3), _rand(5, 4, seed=2))
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize(("nonlinearity", "bias"), CELL_CASES)
def test_rnn_cell_gradcheck(nonlinearity, bias):
    cell = rnn.RNNCell(3, 4, nonlinearity, bias, seed=0)
    assert check_gradients(cell, _rand(2, 3), _rand(2, 4, seed=2)).ok(1e-6)


@pytest.mark.parametrize("with_h0", [False, True], ids=["zeros", "h0"])
@pytest.mark.parametrize("case", SEQ_CASES.values(), ids=SEQ_CASES.keys())
def test_rnn_matches_torch(case, with_h0):
    b, t, i, h, nonlinearity, bias = case
    inputs = (_rand(b, t, i), _rand(b, h, seed=2))[: 1 + with_h0]
    errors = compare_with_torch(rnn.RNN(i, h, nonlinearity, bias, seed=0), twins.RNN(i, h, nonlinearity, bias), *inputs)
    assert ("grad input 1" in errors) == with_h0
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("with_h0", [False, True], ids=["zeros", "h0"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_gradcheck(nonlinearity, with_h0):
    inputs = (_rand(2, 4, 3), _rand(2, 3, seed=2))[: 1 + with_h0]
    result = check_gradients(rnn.RNN(3, 3, nonlinearity, seed=0), *inputs)
    assert result.ok(1e-6), str(result)


def test_rnn_shapes_and_conventions():
    layer = rnn.RNN(3, 4, seed=0)
    out, h_n = layer.forward(_rand(2, 5, 3))
    assert out.shape == (2, 5, 4) and h_n.shape == (1, 2, 4)
    np.testing.assert_array_equal(out[:, -1], h_n[0])
    d_out = _rand(2, 5, 4, seed=3)
    dx_none = layer.backward((d_out, None))  # h_n unused: same as a zero gradient
    dx_zero = layer.backward((d_out, np.zeros_like(h_n)))
    assert isinstance(dx_none, np.ndarray) and dx_none.shape == (2, 5, 3)
    np.testing.assert_array_equal(dx_none, dx_zero)
    layer.forward(_rand(2, 5, 3), np.zeros((2, 4)))
    dx, dh0 = layer.backward((d_out, None))
    np.testing.assert_array_equal(dx, dx_none)
    assert dh0.shape == (2, 4)


def test_rnn_parameter_names_like_torch():
    assert [n for n, _ in rnn.RNN(3, 4).named_parameters()] == list(dict(twins.RNN(3, 4).named_parameters()))
    assert [n for n, _ in rnn.RNNCell(3, 4).named_parameters()] == list(dict(twins.RNNCell(3, 4).named_parameters()))
    assert [n for n, _ in rnn.RNN(3, 4, bias=False).named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn.RNN(3, 4, "sigmoid")


@pytest.mark.parametrize("name", ["RNNCell", "RNN"])
def test_twin_signature_matches(name):
    scratch, twin = getattr(rnn, name), getattr(twins, name)
    assert list(inspect.signature(twin).parameters) == list(inspect.signature(scratch).parameters)
