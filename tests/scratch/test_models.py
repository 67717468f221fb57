"""The scratch MLP: it learns digits, and trains step for step like its PyTorch twin."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from practicum import scratch
from practicum.scratch import twins


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.2, stratify=y, random_state=0)


def test_mlp_reaches_95_percent_on_digits(digits):
    X_train, X_test, y_train, y_test = digits
    model = scratch.MLP([64, 128, 10], dropout=0.1, seed=0)
    scratch.fit(model, X_train, y_train, optimizer="adam", lr=2e-3, epochs=30, batch_size=32,
                weight_decay=1e-4)
    assert scratch.accuracy(model, X_test, y_test) >= 0.95


@pytest.mark.parametrize(("optimizer", "kwargs"), [("sgd", {"momentum": 0.9, "lr": 0.05}),
                                                    ("adam", {"lr": 1e-3})])
def test_fit_takes_the_same_steps_as_the_twin(digits, optimizer, kwargs):
    X_train, _, y_train, _ = digits
    ours = scratch.MLP([64, 32, 16, 10], activation="tanh", seed=1)
    theirs = twins.MLP([64, 32, 16, 10], activation="tanh")
    twins.copy_to_torch(ours, theirs)
    common = {"optimizer": optimizer, "epochs": 2, "batch_size": 32, "weight_decay": 1e-3, **kwargs}
    h1 = scratch.fit(ours, X_train, y_train, val=(X_train, y_train), **common)
    h2 = twins.fit(theirs, X_train, y_train, val=(X_train, y_train), **common)
    for a, b in zip(h1, h2, strict=True):
        assert np.isclose(a["loss"], b["loss"], rtol=1e-9)
        assert a["val_accuracy"] == b["val_accuracy"]
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, theirs.state_dict()[name].numpy(), rtol=1e-6, atol=1e-10)


def test_mlp_parameter_names_follow_torch():
    ours = scratch.MLP([4, 8, 8, 2], dropout=0.5, seed=0)
    theirs = twins.MLP([4, 8, 8, 2], dropout=0.5)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())


def test_mlp_whole_network_gradient_check():
    model = scratch.MLP([3, 4, 2], activation="gelu", seed=0)
    x = np.random.default_rng(0).standard_normal((5, 3))
    assert scratch.check_gradients(model, x).ok(1e-6)


def test_mlp_needs_two_sizes():
    with pytest.raises(ValueError, match="input and an output"):
        scratch.MLP([4])
