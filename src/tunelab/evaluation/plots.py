"""PNG plots for reports. matplotlib's object API with the Agg canvas: no pyplot, no global backend
switch, so plotting works on headless machines and from server threads. Every PNG is written
atomically."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from tunelab.data.labels import display_label
from tunelab.errors import DataFileError, NotFoundError
from tunelab.fsutil import atomic_open


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_png: str | Path) -> Path:
    out_png = Path(out_png)
    fig.tight_layout()
    with atomic_open(out_png, "wb") as fh:
        fig.savefig(fh, format="png")
    return out_png


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], out_png: str | Path,
                          *, title: str = "Confusion matrix") -> Path:
    import numpy as np

    cm = np.asarray(matrix, dtype=float)
    k = len(labels)
    size = min(16.0, max(4.5, 0.45 * k + 2.5))
    fig = _figure(size, size * 0.9)
    ax = fig.add_subplot(1, 1, 1)
    # Colour by row share (recall per true class) so rare classes stay readable; print counts.
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    names = [display_label(l) for l in labels]
    ax.set_xticks(range(k), names, rotation=90 if k > 8 else 0, fontsize=8 if k > 12 else 10)
    ax.set_yticks(range(k), names, fontsize=8 if k > 12 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8 if k > 10 else 10,
                        color="white" if share[i, j] > 0.5 else "black")
    return _save(fig, out_png)


def plot_reliability(calibration: dict, out_png: str | Path, *, title: str = "Reliability diagram") -> Path:
    """Accuracy against mean confidence per bin, with the diagonal of perfect calibration."""
    bins = calibration["bins"]
    fig = _figure(6, 6.5)
    grid = fig.add_gridspec(2, 1, height_ratios=[3, 1])
    ax = fig.add_subplot(grid[0])
    width = bins[0]["upper"] - bins[0]["lower"] if bins else 1 / 15
    centers = [(b["lower"] + b["upper"]) / 2 for b in bins]
    acc = [b["accuracy"] if b["accuracy"] is not None else 0.0 for b in bins]
    conf = [b["confidence"] if b["confidence"] is not None else (b["lower"] + b["upper"]) / 2 for b in bins]
    ax.bar(centers, acc, width=width * 0.95, color="#4C72B0", edgecolor="black", linewidth=0.5, label="accuracy")
    ax.bar(centers, [c - a if b["count"] else 0 for c, a, b in zip(conf, acc, bins)], bottom=acc,
           width=width * 0.95, color="#DD8452", alpha=0.5, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ece = calibration.get("ece")
    ax.set_title(f"{title} (ECE {ece:.3f})" if ece is not None else title)
    ax.legend(loc="upper left", fontsize=8)
    ax2 = fig.add_subplot(grid[1], sharex=ax)
    ax2.bar(centers, [b["count"] for b in bins], width=width * 0.95, color="gray")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("confidence of the top label")
    ax2.set_ylabel("rows")
    return _save(fig, out_png)


def plot_per_class_f1(per_class: dict, out_png: str | Path, *, title: str = "F1 per class") -> Path:
    labels = list(per_class)
    k = len(labels)
    fig = _figure(min(18.0, max(5.0, 0.4 * k + 2)), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    f1 = [per_class[l]["f1"] for l in labels]
    ax.bar(range(k), f1, color="#55A868", edgecolor="black", linewidth=0.5)
    ax.set_xticks(range(k), [f"{display_label(l)}\n(n={per_class[l]['support']})" if k <= 12 else display_label(l)
                             for l in labels], rotation=90 if k > 12 else 0, fontsize=8 if k > 12 else 9)
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.set_title(title, fontsize=10)
    return _save(fig, out_png)


def plot_grouped_bars(metrics: Sequence[str], series: dict[str, Sequence[float | None]], out_png: str | Path,
                      *, title: str = "Comparison", ylabel: str = "score") -> Path:
    """One group of bars per metric, one bar per series (model or baseline); None is left out."""
    import numpy as np

    m, s = len(metrics), max(1, len(series))
    fig = _figure(max(7.0, 1.3 * m * max(1, s / 3) + 2), 5)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / s
    x = np.arange(m)
    for i, (name, values) in enumerate(series.items()):
        heights = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
        bars = ax.bar(x + (i - (s - 1) / 2) * width, heights, width * 0.95, label=name)
        for bar, v in zip(bars, values):
            if v is not None:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, f"{v:.2f}",
                        ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, list(metrics))
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(3, s))
    return _save(fig, out_png)


# Columns of the results CSV (tunelab.training.results), drawn when present.
LOSS_COLUMNS = ("training_loss", "validation_loss")
ACCURACY_COLUMNS = ("training_sequence_accuracy", "validation_sequence_accuracy",
                    "classification/accuracy", "classification/weighted_f1_score")


def plot_training_curves(results_csv_path: str | Path, out_png: str | Path) -> Path:
    """Training loss, validation loss and validation/classification accuracy over steps, from a
    job's results CSV. Columns that are missing or empty are skipped. Returns the PNG's path."""
    path = Path(results_csv_path)
    if not path.is_file():
        raise NotFoundError(f"No results file at {path}.")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "step" not in rows[0]:
        raise DataFileError(f"{path} has no training steps to plot yet.",
                            hint="Results appear once the job has run its first step.")

    def series(column: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for row in rows:
            x, y = _number(row.get("step")), _number(row.get(column))
            if x is not None and y is not None:
                xs.append(x)
                ys.append(y)
        return xs, ys

    losses = {c: series(c) for c in LOSS_COLUMNS if c in rows[0]}
    accs = {c: series(c) for c in ACCURACY_COLUMNS if c in rows[0]}
    losses = {c: v for c, v in losses.items() if v[0]}
    accs = {c: v for c, v in accs.items() if v[0]}
    if not losses and not accs:
        raise DataFileError(f"{path} has no loss or accuracy values to plot.")
    panels = [p for p in (("loss", losses), ("accuracy", accs)) if p[1]]
    fig = _figure(6.5 * len(panels), 4.5)
    for i, (name, curves) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for column, (xs, ys) in curves.items():
            sparse = len(xs) < 0.5 * len(rows)  # validation rows come every few steps: mark them
            ax.plot(xs, ys, marker="o" if sparse else None, markersize=3, linewidth=1.2, label=column)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        if name == "accuracy":
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{'Loss' if name == 'loss' else 'Accuracy'} over steps")
    return _save(fig, out_png)


def _number(text) -> float | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
