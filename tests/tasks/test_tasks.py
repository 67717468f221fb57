import pytest
import torch
import torch.nn.functional as F

from practicum.errors import UserError
from practicum.tasks import build_task


def test_classification_loss_is_a_sum_and_matches_torch():
    task = build_task("classification", label_names=["a", "b", "c"])
    logits, target = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    assert task.loss(logits, target) == pytest.approx(float(F.cross_entropy(logits, target, reduction="sum")))
    rows = task.predictions(torch.tensor([[0.0, 5.0, 0.0]]))
    assert rows[0]["prediction"] == "b" and rows[0]["confidence"] > 0.98
    metrics = task.metrics(torch.eye(3), torch.tensor([0, 1, 2]))
    assert metrics["accuracy"] == 1.0 and metrics["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_regression_metrics_are_in_original_units():
    task = build_task("regression", decode=lambda v: (v * 10 + 100).tolist())
    out, target = torch.tensor([[0.0], [1.0]]), torch.tensor([0.0, 0.5])
    assert task.loss(out, target) == pytest.approx(0.25)
    metrics = task.metrics(out, target)
    assert metrics["mae"] == pytest.approx(2.5) and metrics["mse"] == pytest.approx(12.5)
    assert task.predictions(out) == [{"prediction": 100.0}, {"prediction": 110.0}]


def test_unknown_task():
    with pytest.raises(UserError, match="unknown task 'clasification'.*did you mean 'classification'"):
        build_task("clasification")
