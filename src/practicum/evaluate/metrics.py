"""Classification and regression metrics, computed by scikit-learn.

Every function returns plain Python numbers, lists and dicts, so the result can go
straight into `json.dumps`, metrics.jsonl, summary.json and bundle/metrics.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

_AVERAGES = ("macro", "micro", "weighted")
# Metrics where smaller is better; every other metric name is "higher is better".
_LOWER_IS_BETTER = {"loss", "log_loss", "mse", "rmse", "mae", "perplexity"}
_SPLIT_PREFIXES = ("train_", "val_", "test_")


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    label_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 (macro, micro, weighted), per-class scores and more.

    y_true, y_pred: class indices (N,). proba: class probabilities (N, K), or (N,) for the
    positive class of a binary task. label_names: index -> label; when omitted the labels
    are "0".."K-1". The averages follow scikit-learn's default (the labels present in
    y_true or y_pred); per_class and confusion_matrix cover every label, so classes absent
    from the test set still appear (with support 0). roc_auc is included only when it is
    defined (>= 2 classes present in y_true); log_loss whenever proba is given.
    """
    from sklearn import metrics as skm  # lazy: keeps `import practicum` fast

    yt = _as_labels(y_true, "y_true")
    yp = _as_labels(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has {yt.size} rows but y_pred has {yp.size}")
    if yt.size == 0:
        raise ValueError("classification_metrics needs at least one example")
    p = None if proba is None else _to_numpy(proba, np.float64)
    names = _label_names(label_names, yt, yp, p)
    k = len(names)
    if max(yt.max(), yp.max()) >= k or min(yt.min(), yp.min()) < 0:
        raise ValueError(f"class indices must lie in 0..{k - 1} for {k} label names")

    out: dict[str, Any] = {"n": int(yt.size), "accuracy": float(skm.accuracy_score(yt, yp))}
    for avg in _AVERAGES:
        prec, rec, f1, _ = skm.precision_recall_fscore_support(
            yt, yp, average=avg, zero_division=0
        )
        out[f"precision_{avg}"] = float(prec)
        out[f"recall_{avg}"] = float(rec)
        out[f"f1_{avg}"] = float(f1)
    if p is not None:
        out.update(_probability_metrics(yt, p, k))

    labels = list(range(k))
    prec, rec, f1, support = skm.precision_recall_fscore_support(
        yt, yp, labels=labels, average=None, zero_division=0
    )
    out["labels"] = list(names)
    out["per_class"] = {
        name: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    out["confusion_matrix"] = skm.confusion_matrix(yt, yp, labels=labels).tolist()
    return out


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """MSE, RMSE, MAE and R² (R² only with >= 2 examples, where it is defined)."""
    from sklearn import metrics as skm

    yt = _to_numpy(y_true, np.float64).reshape(-1)
    yp = _to_numpy(y_pred, np.float64).reshape(-1)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has {yt.size} values but y_pred has {yp.size}")
    if yt.size == 0:
        raise ValueError("regression_metrics needs at least one example")
    out: dict[str, Any] = {
        "n": int(yt.size),
        "mse": float(skm.mean_squared_error(yt, yp)),
        "rmse": float(skm.root_mean_squared_error(yt, yp)),
        "mae": float(skm.mean_absolute_error(yt, yp)),
    }
    if yt.size >= 2:
        out["r2"] = float(skm.r2_score(yt, yp))
    return out


def higher_is_better(metric_name: str) -> bool:
    """False for losses and errors (loss, log_loss, mse, rmse, mae, perplexity), else True.

    Accepts split-qualified names such as "val_loss", "val/mae" or "test_rmse".
    """
    name = metric_name.strip().lower().rsplit("/", 1)[-1]
    for prefix in _SPLIT_PREFIXES:
        if name.startswith(prefix) and name[len(prefix):] in _LOWER_IS_BETTER:
            name = name[len(prefix):]
    return not (name in _LOWER_IS_BETTER or name.endswith("_loss"))


def scalar_metrics(d: dict[str, Any]) -> dict[str, float]:
    """The float-valued top-level entries of a metrics dict (what gets logged per step)."""
    return {
        k: float(v)
        for k, v in d.items()
        if isinstance(v, (float, np.floating)) and math.isfinite(float(v))
    }


# ---------------------------------------------------------------- helpers


def _to_numpy(values: Any, dtype: Any = None) -> np.ndarray:
    """Lists, NumPy arrays or torch tensors (any device, any float dtype) -> NumPy."""
    if hasattr(values, "detach"):  # a torch.Tensor; torch is not imported here
        values = values.detach().cpu()
        values = values.double() if values.is_floating_point() else values
        values = values.numpy()
    return np.asarray(values, dtype=dtype)


def _as_labels(values: Any, what: str) -> np.ndarray:
    arr = _to_numpy(values).reshape(-1)
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
        return arr.astype(np.int64)
    raise ValueError(f"{what} must hold class indices (integers), got dtype {arr.dtype}")


def _label_names(
    label_names: Sequence[str] | None, yt: np.ndarray, yp: np.ndarray, p: np.ndarray | None
) -> list[str]:
    if label_names is not None:
        return [str(n) for n in label_names]
    k = int(max(yt.max(), yp.max())) + 1
    if p is not None and p.ndim == 2:
        k = max(k, p.shape[1])
    elif p is not None:
        k = max(k, 2)
    return [str(i) for i in range(k)]


def _probability_metrics(yt: np.ndarray, p: np.ndarray, k: int) -> dict[str, float]:
    """roc_auc (when defined) and log_loss from class probabilities."""
    from sklearn import metrics as skm

    if p.ndim == 1:
        if k != 2:
            raise ValueError(f"1-D proba means a binary task, but there are {k} labels")
        p = np.stack([1.0 - p, p], axis=1)
    if p.shape != (yt.size, k):
        raise ValueError(f"proba must have shape ({yt.size}, {k}), got {tuple(p.shape)}")
    if not np.all(np.isfinite(p)):
        return {}
    p = np.clip(p, 0.0, None)
    totals = p.sum(axis=1, keepdims=True)
    p = np.divide(p, totals, out=np.full_like(p, 1.0 / k), where=totals > 0)
    out: dict[str, float] = {}
    present = np.unique(yt)
    if present.size >= 2:
        if k == 2:
            out["roc_auc"] = float(skm.roc_auc_score(yt, p[:, 1]))
        else:
            # macro one-vs-rest over the classes present in y_true
            per_class = [skm.roc_auc_score(yt == c, p[:, c]) for c in present]
            out["roc_auc"] = float(np.mean(per_class))
    out["log_loss"] = float(skm.log_loss(yt, p, labels=list(range(k))))
    return out
