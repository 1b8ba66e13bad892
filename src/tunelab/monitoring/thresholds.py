"""The thresholds of `tunelab monitor` (the table is in tunelab.monitoring.report). A module of its
own, without numpy or scipy, so that the CLI can show the defaults in its help cheaply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Thresholds:
    alpha: float = 0.01
    max_label_js: float = 0.1
    max_ks: float = 0.1
    max_text_auc: float = 0.7
    max_accuracy_drop: float = 0.05
    max_realized_drop: float | None = None
    max_empty: float = 0.05
    max_non_text: float = 0.05
    max_truncated: float = 0.25
    max_duplicates: float = 0.5
    max_p95_ms: float | None = None
    min_rows: int = 30
    min_feedback: int = 30
