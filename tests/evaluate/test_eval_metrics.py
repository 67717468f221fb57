"""Metrics: hand-checkable toy cases, scikit-learn as the oracle, JSON-safe outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from practicum.evaluate import (
    classification_metrics,
    higher_is_better,
    regression_metrics,
    scalar_metrics,
)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def test_hand_checkable_binary_case():
    # TP=2 (rows 0,1), FN=1 (row 2), FP=1 (row 3), TN=1 (row 4)
    m = classification_metrics([1, 1, 1, 0, 0], [1, 1, 0, 1, 0], label_names=["neg", "pos"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["per_class"]["pos"] == {"precision": pytest.approx(2 / 3),
                                     "recall": pytest.approx(2 / 3),
                                     "f1": pytest.approx(2 / 3), "support": 3}
    assert m["per_class"]["neg"]["precision"] == pytest.approx(1 / 2)
    assert m["per_class"]["neg"]["recall"] == pytest.approx(1 / 2)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["f1_micro"] == pytest.approx(3 / 5)
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["labels"] == ["neg", "pos"]
    assert m["n"] == 5


def test_imbalanced_multiclass_matches_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.choice(4, size=200, p=[0.7, 0.2, 0.08, 0.02])
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, size=200))
    m = classification_metrics(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    for avg in ("macro", "micro", "weighted"):
        assert m[f"f1_{avg}"] == pytest.approx(skm.f1_score(y_true, y_pred, average=avg, zero_division=0))
        assert m[f"precision_{avg}"] == pytest.approx(
            skm.precision_score(y_true, y_pred, average=avg, zero_division=0))
        assert m[f"recall_{avg}"] == pytest.approx(
            skm.recall_score(y_true, y_pred, average=avg, zero_division=0))
    # macro F1 weights the rare classes equally, so on this imbalanced set it trails accuracy
    assert m["f1_macro"] < m["accuracy"]
    per_f1 = skm.f1_score(y_true, y_pred, average=None, labels=[0, 1, 2, 3], zero_division=0)
    assert [m["per_class"][str(i)]["f1"] for i in range(4)] == pytest.approx(per_f1.tolist())


def test_macro_f1_on_a_majority_class_predictor():
    # always predicting the majority class: accuracy 0.9, but macro F1 only ~0.47
    y_true = [0] * 9 + [1]
    y_pred = [0] * 10
    m = classification_metrics(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(0.9)
    assert m["f1_macro"] == pytest.approx((18 / 19 + 0.0) / 2)
    assert m["per_class"]["1"]["precision"] == 0.0  # zero_division=0, no warning value


def test_confusion_matrix_includes_classes_absent_from_y_true():
    names = ["a", "b", "c", "d"]
    m = classification_metrics([0, 0, 1], [0, 2, 1], label_names=names)
    assert m["confusion_matrix"] == [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert list(m["per_class"]) == names
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_roc_auc_binary_and_multiclass_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=60)
    p1 = np.clip(0.3 * y + rng.random(60) * 0.7, 0, 1)
    m = classification_metrics(y, (p1 > 0.5).astype(int), proba=np.stack([1 - p1, p1], 1))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    m1 = classification_metrics(y, (p1 > 0.5).astype(int), proba=p1)  # 1-D = P(class 1)
    assert m1["roc_auc"] == pytest.approx(m["roc_auc"])
    assert m1["log_loss"] == pytest.approx(skm.log_loss(y, p1))

    y3 = rng.integers(0, 3, size=90)
    proba = _softmax(rng.normal(size=(90, 3)) + 2.0 * np.eye(3)[y3])
    m3 = classification_metrics(y3, proba.argmax(1), proba=proba)
    assert m3["roc_auc"] == pytest.approx(skm.roc_auc_score(y3, proba, multi_class="ovr", average="macro"))
    assert m3["log_loss"] == pytest.approx(skm.log_loss(y3, proba))


def test_roc_auc_over_present_classes_only_and_absent_when_undefined():
    proba = _softmax(np.array([[3.0, 0, 0, 0], [0, 3, 0, 0], [2, 1, 0, 0], [0, 1.5, 2, 0]]))
    m = classification_metrics([0, 1, 0, 1], [0, 1, 0, 2], proba=proba)
    expected = np.mean([skm.roc_auc_score(np.array([0, 1, 0, 1]) == c, proba[:, c]) for c in (0, 1)])
    assert m["roc_auc"] == pytest.approx(expected)

    one_class = classification_metrics([2, 2, 2, 2], [2, 2, 0, 2], proba=proba)
    assert "roc_auc" not in one_class and "log_loss" in one_class
    assert "roc_auc" not in classification_metrics([0, 1], [0, 1])  # no proba, no AUC


def test_outputs_are_plain_json_types():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, size=30)
    proba = _softmax(rng.normal(size=(30, 3))).astype(np.float32)
    m = classification_metrics(y, proba.argmax(1), proba=proba, label_names=["x", "y", "z"])
    r = regression_metrics(np.arange(5.0), np.arange(5.0) + 0.5)
    json.loads(json.dumps(m, allow_nan=False))
    json.loads(json.dumps(r, allow_nan=False))

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                assert type(k) is str
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        else:
            assert type(v) in (int, float, str), type(v)

    walk(m)
    walk(r)


def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    m = classification_metrics(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]),
                               proba=torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    assert m["accuracy"] == pytest.approx(2 / 3)
    r = regression_metrics(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.0], dtype=torch.bfloat16))
    assert r["mae"] == pytest.approx(0.25)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="0..1"):
        classification_metrics([0, 2], [0, 1], label_names=["a", "b"])
    with pytest.raises(ValueError, match="rows"):
        classification_metrics([0, 1], [0])
    with pytest.raises(ValueError, match="at least one"):
        classification_metrics([], [])
    with pytest.raises(ValueError, match="shape"):
        classification_metrics([0, 1], [0, 1], proba=np.ones((2, 3)) / 3, label_names=["a", "b"])


def test_regression_hand_checked_and_sklearn():
    m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0])
    assert m["mse"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(1.0)
    assert m["mae"] == pytest.approx(0.5)
    assert m["r2"] == pytest.approx(1 - 4.0 / 5.0)

    rng = np.random.default_rng(3)
    yt, yp = rng.normal(size=50), rng.normal(size=50)
    m = regression_metrics(yt.reshape(-1, 1), yp)
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(yt, yp)))
    assert m["r2"] == pytest.approx(skm.r2_score(yt, yp))
    assert "r2" not in regression_metrics([1.0], [2.0])  # undefined for one example


@pytest.mark.parametrize(("name", "higher"), [
    ("loss", False), ("val_loss", False), ("val/loss", False), ("log_loss", False),
    ("mse", False), ("rmse", False), ("test_mae", False), ("MAE", False),
    ("accuracy", True), ("f1_macro", True), ("r2", True), ("roc_auc", True),
])
def test_higher_is_better(name, higher):
    assert higher_is_better(name) is higher


def test_scalar_metrics_keeps_only_floats():
    m = classification_metrics([0, 1, 1], [0, 1, 0], proba=[[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    s = scalar_metrics(m)
    assert {"accuracy", "f1_macro", "roc_auc", "log_loss"} <= set(s)
    assert not {"per_class", "confusion_matrix", "labels", "n"} & set(s)
    assert all(type(v) is float for v in s.values())
    assert scalar_metrics({"a": np.float32(0.5), "b": float("nan"), "c": True}) == {"a": 0.5}
