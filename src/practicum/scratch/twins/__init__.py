"""The PyTorch twins of practicum.scratch: the same names, constructor signatures and
parameter names, with torch's operators and autograd inside. Swap the import and a
lesson runs on PyTorch; `compare_with_torch` holds a scratch module to its twin.
"""

from torch.nn import Sequential

from practicum.scratch.twins.attention import MultiHeadSelfAttention, ScaledDotProductAttention
from practicum.scratch.twins.check import compare_with_torch, copy_from_torch, copy_to_torch
from practicum.scratch.twins.conv import Conv2d, MaxPool2d
from practicum.scratch.twins.layers import (
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
from practicum.scratch.twins.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, l2_penalty
from practicum.scratch.twins.models import (
    MLP,
    LinearRegression,
    LogisticRegression,
    SoftmaxRegression,
)
from practicum.scratch.twins.optim import SGD, Adam
from practicum.scratch.twins.rnn import RNN, RNNCell
from practicum.scratch.twins.train import accuracy, evaluate, fit, predict

__all__ = [
    "Conv2d", "MaxPool2d", "MultiHeadSelfAttention", "RNN", "RNNCell", "ScaledDotProductAttention",
    "GELU", "MLP", "SGD", "Adam", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "Flatten",
    "LayerNorm", "Linear", "LinearRegression", "LogisticRegression", "MSELoss", "ReLU",
    "Sequential", "Sigmoid", "SoftmaxRegression", "Tanh", "accuracy", "activation",
    "compare_with_torch", "copy_from_torch", "copy_to_torch", "evaluate", "fit", "l2_penalty",
    "predict",
]
