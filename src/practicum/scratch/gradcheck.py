"""Central finite differences: the gradient any backward pass must agree with.

    result = check_gradients(Linear(3, 2, seed=0), x)
    print(result)            # the worst relative error of every input and parameter
    assert result.ok()       # all below 1e-6

Works on any scratch Module: several inputs, tuple outputs, parameters found by name.
Random layers (dropout) draw the same numbers on every evaluation, because the state of
each generator in the module is put back before each forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from practicum.scratch.core import Array, Module, as_rng


def numerical_gradient(f: Callable[[], float], x: Array, eps: float = 1e-6) -> Array:
    """d f() / d x by central differences, perturbing x in place one element at a time.

    f takes no arguments and reads x itself; x is restored exactly afterwards.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("x must be contiguous so it can be perturbed in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def relative_error(analytic: Array, numeric: Array) -> float:
    """||a - n|| / (||a|| + ||n||): 0 for equal arrays, about 1 for unrelated ones."""
    denom = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if denom == 0.0 else float(np.linalg.norm(analytic - numeric) / denom)


@dataclass
class GradCheck:
    """Relative error between backward and finite differences, per input and parameter."""

    errors: dict[str, float] = field(default_factory=dict)

    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)

    def ok(self, tol: float = 1e-6) -> bool:
        return self.worst() < tol

    def __str__(self) -> str:
        width = max((len(k) for k in self.errors), default=4)
        return "\n".join(f"{name:<{width}}  relative error {err:.2e}" for name, err in self.errors.items())


def check_gradients(module: Module, *inputs: Array, eps: float = 1e-6,
                    seed: int | np.random.Generator | None = 0) -> GradCheck:
    """Compare `module.backward` with finite differences of L = sum(output * G), G random.

    Float inputs are checked; integer or boolean ones (targets, masks) are held fixed.
    backward returns one gradient per float input.
    """
    # float inputs are perturbed (in place, then restored); others (targets, masks) stay fixed
    inputs = tuple(np.ascontiguousarray(x, dtype=np.float64) if _is_float(x) else np.asarray(x)
                   for x in inputs)
    rngs = list(_generators(module))
    states = [g.bit_generator.state for g in rngs]

    def run() -> tuple[Array, ...]:
        for g, s in zip(rngs, states, strict=True):
            g.bit_generator.state = s
        out = module.forward(*inputs)
        return out if isinstance(out, tuple) else (out,)

    rng = as_rng(seed)
    upstream = tuple(rng.standard_normal(np.shape(o)) for o in run())

    def loss() -> float:
        return float(sum(np.sum(o * g) for o, g in zip(run(), upstream, strict=True)))

    module.zero_grad()
    run()
    grads = module.backward(upstream if len(upstream) > 1 else upstream[0])
    grads = grads if isinstance(grads, tuple) else (grads,)
    result = GradCheck()
    floats = [(i, x) for i, x in enumerate(inputs) if _is_float(x)]
    for (i, x), g in zip(floats, grads, strict=False):
        result.errors[f"input {i}" if len(inputs) > 1 else "input"] = relative_error(
            g, numerical_gradient(loss, x, eps))
    for name, p in module.named_parameters():
        analytic = p.grad.copy()
        result.errors[name] = relative_error(analytic, numerical_gradient(loss, p.value, eps))
    return result


def _is_float(x: object) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def _generators(module: Module) -> Iterator[np.random.Generator]:
    for value in vars(module).values():
        if isinstance(value, np.random.Generator):
            yield value
    for _, child in module.children():
        yield from _generators(child)
