"""Backprop checked numerically.

A backward pass is only believable once it agrees with the definition of a derivative.
This lesson writes out the chain rule for a two-layer network by hand, then checks every
scratch layer with central finite differences (f(x + eps) - f(x - eps)) / 2 eps, shows the
checker catching a classic mistake, and finally holds each layer to PyTorch's autograd.
"""

import numpy as np

from practicum import scratch
from practicum.learn import lesson_parser
from practicum.scratch.core import Module


def by_hand(rng: np.random.Generator) -> None:
    """loss = mean((tanh(x W1^T) W2^T - y)^2): forward, then the chain rule backwards."""
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 1))
    W1, W2 = rng.standard_normal((5, 3)), rng.standard_normal((1, 5))
    h = np.tanh(x @ W1.T)  # (4, 5)
    out = h @ W2.T  # (4, 1)
    d_out = 2 * (out - y) / out.size  # dL/d(out)
    d_W2 = d_out.T @ h  # (1, 5)
    d_h = d_out @ W2  # (4, 5)
    d_W1 = (d_h * (1 - h**2)).T @ x  # tanh' = 1 - tanh^2

    def loss() -> float:
        return float(np.mean((np.tanh(x @ W1.T) @ W2.T - y) ** 2))

    num_W1 = scratch.numerical_gradient(loss, W1)
    num_W2 = scratch.numerical_gradient(loss, W2)
    print("by hand: a 2-layer tanh network, gradients from the chain rule vs finite differences")
    print(f"  dL/dW1 max difference {np.abs(d_W1 - num_W1).max():.1e}, "
          f"dL/dW2 {np.abs(d_W2 - num_W2).max():.1e}")


class WrongTanh(Module):
    """A common bug: tanh's derivative written as 1 - x^2 instead of 1 - tanh(x)^2."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.tanh(x)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * (1 - self._x**2)


def main() -> None:
    lesson_parser(__doc__).parse_args()  # --fast changes nothing: this lesson takes a second
    rng = np.random.default_rng(0)
    by_hand(rng)

    x = rng.standard_normal((3, 4))
    layers = {
        "Linear(4, 3)": (scratch.Linear(4, 3, seed=0), (x,)),
        "GELU": (scratch.GELU(), (x,)),
        "LayerNorm(4)": (scratch.LayerNorm(4), (x,)),
        "Dropout(0.5)": (scratch.Dropout(0.5, seed=0), (x,)),
        "MLP[4, 6, 2]": (scratch.MLP([4, 6, 2], seed=0), (x,)),
        "Conv2d(2, 3, 3, padding=1)": (scratch.Conv2d(2, 3, 3, padding=1, seed=0),
                                       (rng.standard_normal((2, 2, 5, 5)),)),
        "RNN(3, 4)": (scratch.RNN(3, 4, seed=0), (rng.standard_normal((2, 5, 3)),)),
        "MultiHeadSelfAttention(8, 2, causal)": (scratch.MultiHeadSelfAttention(8, 2, causal=True, seed=0),
                                                 (rng.standard_normal((2, 4, 8)),)),
    }
    print("\nfinite differences vs each layer's backward (relative error; < 1e-6 passes)")
    worst = 0.0
    for name, (layer, inputs) in layers.items():
        check = scratch.check_gradients(layer, *inputs)
        worst = max(worst, check.worst())
        print(f"  {name:<38} worst {check.worst():.1e}  {'ok' if check.ok() else 'WRONG'}")
    bad = scratch.check_gradients(WrongTanh(), x)
    print(f"  {'tanh with the 1 - x^2 bug':<38} worst {bad.worst():.1e}  {'ok' if bad.ok() else 'WRONG'}")

    from practicum.scratch import twins  # PyTorch's autograd as the second opinion

    print("\nthe same layers against PyTorch autograd (same weights, same inputs)")
    pairs = [("Linear", (scratch.Linear(4, 3, seed=1), twins.Linear(4, 3))),
             ("LayerNorm", (scratch.LayerNorm(4), twins.LayerNorm(4))),
             ("GELU", (scratch.GELU(), twins.GELU()))]
    for name, (ours, theirs) in pairs:
        errors = twins.compare_with_torch(ours, theirs, x)
        print(f"  {name:<10} output and every gradient within {max(errors.values()):.1e}")
    print(f"result: every backward agrees with finite differences within {worst:.1e}; "
          f"the buggy one is off by {bad.worst():.1e}")


if __name__ == "__main__":
    main()
