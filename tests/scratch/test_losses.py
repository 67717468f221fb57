"""Losses and L2 regularisation against PyTorch."""

import numpy as np
import pytest
import torch

from practicum import scratch
from practicum.scratch import twins

RTOL = 1e-6


def _inputs(name, rng):
    if name == "CrossEntropyLoss":
        return rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6)
    if name == "BCEWithLogitsLoss":
        return rng.standard_normal(7) * 5, rng.integers(0, 2, 7).astype(np.float64)
    return rng.standard_normal((3, 2)), rng.standard_normal((3, 2))


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss"])
def test_loss_matches_torch_and_finite_differences(name):
    rng = np.random.default_rng(0)
    logits, target = _inputs(name, rng)
    errors = twins.compare_with_torch(getattr(scratch, name)(), getattr(twins, name)(), logits, target)
    assert max(errors.values()) < RTOL, errors
    check = scratch.check_gradients(getattr(scratch, name)(), logits, target)
    assert check.ok(RTOL), str(check)


def test_cross_entropy_is_stable_for_huge_logits():
    loss = scratch.CrossEntropyLoss()(np.array([[1000.0, 0.0], [0.0, -1000.0]]), np.array([0, 1]))
    assert np.isclose(loss, 500.0)


def test_l2_penalty_matches_torch_on_weights_only():
    model = scratch.MLP([4, 5, 3], seed=0)
    twin = twins.MLP([4, 5, 3])
    twins.copy_to_torch(model, twin)
    model.zero_grad()
    ours = scratch.l2_penalty(model, 0.1)
    theirs = twins.l2_penalty(twin, 0.1)
    theirs.backward()
    assert np.isclose(ours, theirs.item(), rtol=1e-12)
    grads = {k: p.grad for k, p in twin.named_parameters()}
    for name, p in model.named_parameters():
        expected = grads[name].numpy() if grads[name] is not None else np.zeros_like(p.value)
        np.testing.assert_allclose(p.grad, expected, rtol=1e-12)
    assert np.all(model[0].bias.grad == 0)  # biases are not penalised
    assert isinstance(theirs, torch.Tensor)
