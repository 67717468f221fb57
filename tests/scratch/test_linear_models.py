"""Linear, logistic and softmax regression recover what they should."""

import numpy as np
import pytest

from practicum import scratch
from practicum.scratch import twins


def _planted(n=2000, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    w, b = np.array([2.0, -3.4, 0.5]), 4.2
    X = rng.standard_normal((n, 3))
    return X, X @ w + b + noise * rng.standard_normal(n), w, b


def test_closed_form_recovers_planted_weights():
    X, y, w, b = _planted()
    w_hat, b_hat = scratch.linear_regression_closed_form(X, y)
    assert np.abs(w_hat - w).max() < 1e-3 and abs(b_hat - b) < 1e-3


def test_closed_form_ridge_shrinks_towards_zero():
    X, y, w, _ = _planted()
    w_ridge, _ = scratch.linear_regression_closed_form(X, y, l2=1e4)
    assert np.linalg.norm(w_ridge) < 0.5 * np.linalg.norm(w)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_gradient_descent_recovers_planted_weights(optimizer):
    X, y, w, b = _planted()
    model = scratch.LinearRegression(3, seed=0)
    lr = 0.05 if optimizer == "sgd" else 0.02
    history = scratch.fit(model, X, y, loss="mse", optimizer=optimizer, lr=lr, epochs=30, batch_size=64)
    assert history[-1]["loss"] < 2e-4  # the noise variance is 1e-4
    w_hat, b_hat = model.linear.weight.value[0], model.linear.bias.value[0]
    assert np.abs(w_hat - w).max() < 1e-3 and abs(b_hat - b) < 1e-3


def test_logistic_regression_separates_two_blobs():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(-2, 1, (100, 2)), rng.normal(2, 1, (100, 2))])
    y = np.repeat([0.0, 1.0], 100)
    model = scratch.LogisticRegression(2, seed=0)
    history = scratch.fit(model, X, y, loss="bce", optimizer="sgd", lr=0.5, epochs=20, val=(X, y))
    assert history[-1]["val_accuracy"] > 0.95


def test_softmax_regression_trains_like_its_twin():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((120, 5)), rng.integers(0, 3, 120)
    ours, theirs = scratch.SoftmaxRegression(5, 3, seed=0), twins.SoftmaxRegression(5, 3)
    twins.copy_to_torch(ours, theirs)
    h1 = scratch.fit(ours, X, y, optimizer="sgd", lr=0.1, momentum=0.9, epochs=3, batch_size=16)
    h2 = twins.fit(theirs, X, y, optimizer="sgd", lr=0.1, momentum=0.9, epochs=3, batch_size=16)
    assert np.isclose(h1[-1]["loss"], h2[-1]["loss"], rtol=1e-9)
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, theirs.state_dict()[name].numpy(), rtol=1e-9, atol=1e-12)
