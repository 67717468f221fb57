"""Evaluation: metrics (scikit-learn), plots (matplotlib, Agg) and the HTML run report."""

from practicum.evaluate.metrics import (
    classification_metrics,
    higher_is_better,
    regression_metrics,
    scalar_metrics,
)
from practicum.evaluate.plots import plot_confusion, plot_curves, plot_regression
from practicum.evaluate.report import write_report
from practicum.evaluate.run_files import write_plots

__all__ = [
    "classification_metrics",
    "higher_is_better",
    "plot_confusion",
    "plot_curves",
    "plot_regression",
    "regression_metrics",
    "scalar_metrics",
    "write_plots",
    "write_report",
]
