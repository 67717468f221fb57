"""Deep learning from scratch in NumPy: every forward and backward pass written out.

No torch here (the `twins` subpackage holds the PyTorch versions). Each piece has a
PyTorch twin with the same signature and parameter names, so a lesson can swap one for
the other, and the tests hold every gradient to PyTorch's autograd (float64, rtol 1e-6):

    from practicum import scratch
    from practicum.scratch import twins      # same names, torch inside

    model = scratch.MLP([64, 128, 10], seed=0)           # or twins.MLP(...)
    scratch.fit(model, X, y, optimizer="adam", lr=1e-3, epochs=20)   # or twins.fit(...)
    scratch.check_gradients(scratch.Linear(4, 3, seed=0), x)        # finite differences

Contents: Linear, ReLU, Tanh, Sigmoid, GELU, Dropout, Flatten, LayerNorm; Conv2d, MaxPool2d;
RNNCell, RNN (backprop through time); ScaledDotProductAttention, MultiHeadSelfAttention;
CrossEntropyLoss, MSELoss, BCEWithLogitsLoss, l2_penalty; SGD (momentum), Adam;
linear/logistic/softmax regression and the closed-form least squares; MLP; fit, predict,
evaluate, accuracy; check_gradients, numerical_gradient.
"""

from practicum.scratch.attention import (
    MultiHeadSelfAttention,
    ScaledDotProductAttention,
    causal_mask,
    softmax,
)
from practicum.scratch.conv import Conv2d, MaxPool2d
from practicum.scratch.core import Module, Parameter, Sequential
from practicum.scratch.gradcheck import GradCheck, check_gradients, numerical_gradient
from practicum.scratch.layers import (
    GELU,
    Dropout,
    Flatten,
    LayerNorm,
    Linear,
    ReLU,
    Sigmoid,
    Tanh,
    activation,
)
from practicum.scratch.linear_models import (
    LinearRegression,
    LogisticRegression,
    SoftmaxRegression,
    linear_regression_closed_form,
)
from practicum.scratch.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, l2_penalty
from practicum.scratch.models import MLP
from practicum.scratch.optim import SGD, Adam
from practicum.scratch.rnn import RNN, RNNCell
from practicum.scratch.train import accuracy, evaluate, fit, predict

__all__ = [
    "Conv2d", "MaxPool2d", "MultiHeadSelfAttention", "RNN", "RNNCell", "ScaledDotProductAttention",
    "causal_mask", "softmax",
    "GELU", "MLP", "SGD", "Adam", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "Flatten",
    "GradCheck", "LayerNorm", "Linear", "LinearRegression", "LogisticRegression", "MSELoss",
    "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "SoftmaxRegression", "Tanh",
    "accuracy", "activation", "check_gradients", "evaluate", "fit", "l2_penalty",
    "linear_regression_closed_form", "numerical_gradient", "predict",
]
