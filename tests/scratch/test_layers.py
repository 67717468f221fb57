"""Dense layers, activations, dropout and layer norm against PyTorch autograd and finite
differences (float64, rtol 1e-6)."""

import inspect

import numpy as np
import pytest

from practicum import scratch
from practicum.scratch import twins

RTOL = 1e-6


def _pair(name, *args, **kwargs):
    return getattr(scratch, name)(*args, **kwargs), getattr(twins, name)(*args, **kwargs)


LAYERS = [
    ("Linear", (5, 3), {"seed": 0}),
    ("Linear", (5, 4), {"bias": False, "seed": 1}),
    ("ReLU", (), {}),
    ("Tanh", (), {}),
    ("Sigmoid", (), {}),
    ("GELU", (), {}),
    ("GELU", (), {"approximate": "tanh"}),
    ("LayerNorm", (5,), {}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), LAYERS)
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
def test_layer_matches_torch_and_finite_differences(name, args, kwargs, shape):
    layer, twin = _pair(name, *args, **kwargs)
    rng = np.random.default_rng(0)
    if name == "LayerNorm":  # non-trivial affine parameters, so their gradients matter
        layer.weight.value[:] = rng.standard_normal(5)
        layer.bias.value[:] = rng.standard_normal(5)
    x = rng.standard_normal(shape) * 2
    errors = twins.compare_with_torch(layer, twin, x)
    assert max(errors.values()) < RTOL, errors
    check = scratch.check_gradients(layer, x)
    assert check.ok(RTOL), str(check)


def test_activations_are_exact_at_large_inputs():
    x = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    with np.errstate(over="raise"):
        y = scratch.Sigmoid()(x)
    assert np.isfinite(y).all() and y[0] == 0.0 and y[-1] == 1.0


def test_dropout_zeroes_about_p_and_keeps_the_mean():
    x = np.ones((200, 500))
    drop = scratch.Dropout(0.3, seed=0)
    y = drop(x)
    assert abs((y == 0).mean() - 0.3) < 0.01
    assert abs(y.mean() - 1.0) < 0.02  # inverted dropout: survivors are scaled by 1/(1-p)
    grad = drop.backward(np.ones_like(x))
    np.testing.assert_array_equal(grad, y)  # the same mask routes the gradient
    drop.eval()
    np.testing.assert_array_equal(drop(x), x)


def test_dropout_gradient_check_holds_with_the_same_draws():
    x = np.random.default_rng(1).standard_normal((3, 4))
    assert scratch.check_gradients(scratch.Dropout(0.5, seed=3), x).ok(RTOL)


def test_dropout_matches_torch_when_off():
    layer, twin = _pair("Dropout", 0.4, seed=0)
    twin.eval()
    x = np.random.default_rng(2).standard_normal((3, 4))
    assert max(twins.compare_with_torch(layer, twin, x).values()) < RTOL


def test_flatten_round_trips():
    x = np.arange(24.0).reshape(2, 3, 4)
    flat = scratch.Flatten()
    assert flat(x).shape == (2, 12)
    assert flat.backward(np.ones((2, 12))).shape == x.shape


@pytest.mark.parametrize("name", ["Linear", "ReLU", "Tanh", "Sigmoid", "Flatten", "GELU", "Dropout", "LayerNorm", "MLP",
                                  "LinearRegression", "LogisticRegression", "SoftmaxRegression",
                                  "SGD", "Adam"])
def test_twin_has_the_same_signature(name):
    ours = list(inspect.signature(getattr(scratch, name)).parameters)
    theirs = list(inspect.signature(getattr(twins, name)).parameters)
    assert ours == theirs


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="relu, tanh, sigmoid, gelu"):
        scratch.activation("swish")
