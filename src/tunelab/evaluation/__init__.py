"""Evaluation of fine-tuned models: metrics (chapter 4.6.1), baselines, plots, reports and the
Table 4.1 comparison."""

from tunelab.evaluation.compare import compare_models, training_summary
from tunelab.evaluation.metrics import classification_report
from tunelab.evaluation.plots import plot_training_curves
from tunelab.evaluation.report import evaluate_model, format_report

__all__ = ["classification_report", "compare_models", "evaluate_model", "format_report", "plot_training_curves",
           "training_summary"]
