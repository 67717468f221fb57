"""The gradient checker itself: it agrees with known gradients and catches wrong ones."""

import numpy as np

from practicum import scratch
from practicum.scratch.core import Module
from practicum.scratch.gradcheck import numerical_gradient, relative_error


def test_numerical_gradient_of_a_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = numerical_gradient(lambda: float(np.sum(np.sin(x) * x)), x)
    np.testing.assert_allclose(grad, np.cos(x) * x + np.sin(x), rtol=1e-8)
    np.testing.assert_array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # restored


class WrongTanh(Module):
    """tanh with the classic mistake: the derivative of tanh taken as 1 - x^2."""

    def forward(self, x):
        self._x = x
        return np.tanh(x)

    def backward(self, grad_output):
        return grad_output * (1 - self._x**2)


def test_checker_catches_a_wrong_backward():
    x = np.random.default_rng(0).standard_normal((3, 3))
    assert not scratch.check_gradients(WrongTanh(), x).ok(1e-6)
    assert scratch.check_gradients(scratch.Tanh(), x).ok(1e-6)


def test_checker_reports_every_parameter_by_name():
    layer = scratch.Linear(3, 2, seed=0)
    result = scratch.check_gradients(layer, np.ones((2, 3)))
    assert set(result.errors) == {"input", "weight", "bias"}
    assert "weight" in str(result)


def test_relative_error_bounds():
    a = np.array([1.0, 2.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, -a) == 1.0
