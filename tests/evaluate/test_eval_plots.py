"""Plots: each writes a non-empty, valid PNG, with odd inputs too."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from practicum.evaluate import plot_confusion, plot_curves, plot_regression

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    assert len(data) > 1000, path


def test_curves_write_loss_and_metric_png(tmp_path, make_history):
    paths = plot_curves(make_history(("accuracy", "f1_macro")), tmp_path / "plots")
    assert [p.name for p in paths] == ["loss.png", "metric.png"]
    for p in paths:
        _assert_png(p)


def test_curves_handle_single_points_missing_keys_and_empty(tmp_path):
    rows = [
        {"split": "train", "step": 1, "loss": 1.0},
        {"split": "train", "loss": None},  # no step, no loss
        {"split": "val", "epoch": 1, "loss": float("nan"), "mae": 0.4, "r2": 0.6},  # no step
    ]
    paths = plot_curves(rows, tmp_path)
    assert [p.name for p in paths] == ["loss.png", "metric.png"]
    for p in paths:
        _assert_png(p)
    assert plot_curves([], tmp_path / "empty") == []
    only_train = plot_curves([{"split": "train", "step": 3, "loss": 0.5}], tmp_path / "t")
    assert [p.name for p in only_train] == ["loss.png"]


@pytest.mark.parametrize("k", [2, 12, 80])
def test_confusion_png_from_few_to_many_classes(tmp_path, k):
    rng = np.random.default_rng(k)
    matrix = rng.integers(0, 20, size=(k, k)) + np.eye(k, dtype=int) * 50
    matrix[0] = 0  # a class absent from y_true: an all-zero row must not divide by zero
    labels = [f"class-{i}-with-a-rather-long-name" for i in range(k)]
    path = plot_confusion(matrix.tolist(), labels, tmp_path / "cm.png")
    _assert_png(path)


def test_confusion_rejects_mismatched_labels(tmp_path):
    with pytest.raises(ValueError, match="2x2"):
        plot_confusion([[1, 0, 0], [0, 1, 0], [0, 0, 1]], ["a", "b"], tmp_path / "x.png")


def test_regression_png(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    _assert_png(plot_regression(y, y + rng.normal(0, 0.3, size=300), tmp_path / "r.png"))
    _assert_png(plot_regression([1.0], [1.0], tmp_path / "one.png"))  # one point, flat range
    _assert_png(plot_regression([], [], tmp_path / "none.png"))


def test_plots_are_thread_safe(tmp_path, make_history):
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            plot_curves(make_history(("accuracy",)), tmp_path / f"t{i}")
            plot_confusion(np.eye(5, dtype=int) * (i + 1), list("abcde"), tmp_path / f"c{i}.png")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        _assert_png(tmp_path / f"c{i}.png")
