"""SGD, momentum, Nesterov, Adam and AdamW take the same steps as torch.optim."""

import numpy as np
import pytest
import torch

from practicum import scratch
from practicum.scratch import twins

SETTINGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
]


@pytest.mark.parametrize(("name", "kwargs"), SETTINGS)
def test_steps_match_torch(name, kwargs):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    ours = [scratch.Parameter(v.copy()) for v in start]
    theirs = [torch.tensor(v.copy(), requires_grad=True) for v in start]
    opt_s = getattr(scratch, name)(ours, **kwargs)
    opt_t = getattr(twins, name)(theirs, **kwargs)
    for _ in range(10):
        grads = [rng.standard_normal(v.shape) for v in start]
        opt_s.zero_grad()
        opt_t.zero_grad()
        for p, q, g in zip(ours, theirs, grads, strict=True):
            p.grad += g
            q.grad = torch.from_numpy(g.copy())
        opt_s.step()
        opt_t.step()
    for p, q in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.value, q.detach().numpy(), rtol=1e-6, atol=1e-12)


def test_gradient_descent_minimises_a_quadratic():
    p = scratch.Parameter(np.array([3.0, -2.0]))
    opt = scratch.SGD([p], lr=0.1, momentum=0.5)
    for _ in range(200):
        opt.zero_grad()
        p.grad += 2 * p.value  # d/dp ||p||^2
        opt.step()
    assert np.abs(p.value).max() < 1e-6


def test_an_optimizer_needs_parameters():
    with pytest.raises(ValueError, match="no parameters"):
        scratch.Adam([])
