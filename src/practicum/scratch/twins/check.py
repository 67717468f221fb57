"""Run a scratch module and its PyTorch twin on the same weights and inputs and compare
outputs, input gradients and parameter gradients: PyTorch's autograd is the oracle.

    errors = compare_with_torch(scratch.Linear(4, 3, seed=0), twins.Linear(4, 3), x)
    assert max(errors.values()) < 1e-6
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from practicum.scratch.core import Module


def copy_to_torch(src: Module, dst: nn.Module) -> None:
    """Load a scratch module's parameters into its twin (same names), as float64."""
    dst.double()
    state = {k: torch.from_numpy(v) for k, v in src.state_dict().items()}
    dst.load_state_dict(state, strict=True)


def copy_from_torch(src: nn.Module, dst: Module) -> None:
    """Load a twin's parameters into a scratch module."""
    dst.load_state_dict({k: v.detach().double().cpu().numpy() for k, v in src.state_dict().items()})


def compare_with_torch(scratch: Module, twin: nn.Module, *inputs: np.ndarray,
                       seed: int = 0) -> dict[str, float]:
    """The worst relative difference (element-wise |a - b| / (|b| + 1e-9 max|b|)) of the output,
    each input's gradient and each parameter's gradient, scratch against torch.

    The loss is sum(output * G) for a random G, so every element of the output matters.
    """
    copy_to_torch(scratch, twin)
    scratch.train(twin.training)
    xs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) if _is_float(x) else torch.as_tensor(x)
          for x in inputs]
    out_t = _as_tuple(twin(*xs))
    scratch.zero_grad()
    out_s = _as_tuple(scratch.forward(*[np.asarray(x) for x in inputs]))
    rng = np.random.default_rng(seed)
    upstream = tuple(rng.standard_normal(o.shape) for o in out_s)
    errors = {f"output {i}": _rel(a, b.detach().numpy()) for i, (a, b) in enumerate(zip(out_s, out_t, strict=True))}
    grads_s = _as_tuple(scratch.backward(upstream if len(upstream) > 1 else upstream[0]))
    torch.autograd.backward(list(out_t), [torch.from_numpy(g) for g in upstream])
    # the scratch backward returns one gradient per float input (none for targets or masks)
    float_inputs = [(i, xt) for i, xt in enumerate(xs) if xt.requires_grad]
    for (i, xt), gs in zip(float_inputs, grads_s, strict=False):
        errors[f"grad input {i}"] = _rel(gs, xt.grad.numpy())
    torch_params = dict(twin.named_parameters())
    for name, p in scratch.named_parameters():
        errors[f"grad {name}"] = _rel(p.grad, torch_params[name].grad.numpy())
    return errors


def _is_float(x: Any) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    if np.shape(a) != np.shape(b):
        raise ValueError(f"shapes differ: scratch {np.shape(a)}, torch {np.shape(b)}")
    floor = 1e-9 * float(np.max(np.abs(b), initial=0.0)) + 1e-300  # values that cancel to ~0
    return float(np.max(np.abs(a - b) / (np.abs(b) + floor), initial=0.0))
