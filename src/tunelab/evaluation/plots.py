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
from tunelab.evaluation.fonts import readable_text
from tunelab.fsutil import atomic_open


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_labels(labels: Sequence[str]) -> list[str]:
    """Labels as axis ticks: without the leading space of a completion (" 4" -> "4"), since ␣ in a
    chart reads as noise; display_label's visible spaces only where two labels would look alike."""
    names = [display_label(str(l).strip(" ")) if str(l).strip(" ") else display_label(l) for l in labels]
    return names if len(set(names)) == len(names) else [display_label(l) for l in labels]


def _save(fig, out_png: str | Path) -> Path:
    out_png = Path(out_png)
    fig.tight_layout()
    with atomic_open(out_png, "wb") as fh:
        fig.savefig(fh, format="png")
    return out_png


@readable_text
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
    names = plot_labels(labels)
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


# Colours of the report plots, named so that every one has a legend entry.
ACCURACY_BLUE = "#4C72B0"
CONFIDENCE_RED = "#C44E52"
F1_GREEN = "#55A868"


def faded_below(n_rows: int) -> int:
    """Rows from which a reliability bin is drawn at full strength: 5 % of the test rows, at least
    10. Below it a bin's accuracy is mostly noise (one row is 0 or 1), so it is drawn fainter."""
    return max(10, math.ceil(0.05 * n_rows))


def bin_alpha(count: int, solid_from: int) -> float:
    return 0.15 + 0.85 * min(1.0, count / solid_from)


@readable_text
def plot_reliability(calibration: dict, out_png: str | Path, *, title: str = "Reliability diagram") -> Path:
    """Accuracy per confidence bin (bars) against the bin's mean confidence (red ticks) and the
    diagonal of perfect calibration. Each non-empty bin is labelled with its number of rows, and
    bins with few rows are faded in proportion: a bin of one row, 0 % or 100 % accurate, would
    otherwise look as weighty as the bin holding most of the test set."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    bins = calibration["bins"]
    n = sum(b["count"] for b in bins)
    solid_from = faded_below(n)
    fig = _figure(6.5, 5.6)
    ax = fig.add_subplot(1, 1, 1)
    width = bins[0]["upper"] - bins[0]["lower"] if bins else 1 / 15
    for b in bins:
        if not b["count"] or b["accuracy"] is None:
            continue
        center = (b["lower"] + b["upper"]) / 2
        alpha = bin_alpha(b["count"], solid_from)
        ax.bar(center, b["accuracy"], width=width * 0.9, color=ACCURACY_BLUE, alpha=alpha, linewidth=0)
        ax.plot([b["lower"] + width * 0.1, b["upper"] - width * 0.1], [b["confidence"]] * 2, color=CONFIDENCE_RED,
                linewidth=2.2, alpha=max(alpha, 0.5), solid_capstyle="butt")
        ax.text(center, max(b["accuracy"], b["confidence"]) + 0.015, f"{b['count']:,}", ha="center", va="bottom",
                fontsize=7, color="black" if b["count"] >= solid_from else "gray")
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel(f"confidence of the top label ({len(bins)} bins; the number over a bar: its rows)")
    ax.set_ylabel("accuracy in the bin")
    ece = calibration.get("ece")
    ax.set_title(f"{title}\n{n:,} rows" + (f", ECE {ece:.3f}" if ece is not None else ""), fontsize=10)
    handles = [
        Patch(color=ACCURACY_BLUE, label=f"accuracy of a bin with ≥ {solid_from} rows"),
        Patch(color=ACCURACY_BLUE, alpha=bin_alpha(1, solid_from), label="fewer rows: fainter (mostly noise)"),
        Line2D([], [], color=CONFIDENCE_RED, linewidth=2.2, label="mean confidence in the bin"),
        Line2D([], [], color="gray", linestyle="--", linewidth=1, label="perfect calibration"),
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    return _save(fig, out_png)


@readable_text
def plot_per_class_f1(per_class: dict, out_png: str | Path, *, title: str = "F1 per class",
                      predicted: Sequence[int] | None = None) -> Path:
    """F1 per class with its value over every bar, so that a class at F1 = 0 reads "0.00" (and
    "never predicted" when `predicted`, the column sums of the confusion matrix, says so) instead
    of a gap."""
    labels = list(per_class)
    k = len(labels)
    fig = _figure(min(18.0, max(5.0, 0.4 * k + 2)), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    f1 = [per_class[l]["f1"] for l in labels]
    ax.bar(range(k), f1, color=F1_GREEN, edgecolor="black", linewidth=0.5)
    small = k > 12
    for i, (label, value) in enumerate(zip(labels, f1)):
        never = predicted is not None and predicted[i] == 0
        text = f"{value:.2f}" + ("\nnever\npredicted" if never and not small else "")
        ax.text(i, value + 0.02, text, ha="center", va="bottom", fontsize=6 if small else 8,
                rotation=90 if small else 0, color="#B03030" if value == 0 else "black")
    names = plot_labels(labels)
    ax.set_xticks(range(k), [f"{name}\n(n={per_class[l]['support']})" if not small else name
                             for name, l in zip(names, labels)], rotation=90 if small else 0,
                  fontsize=8 if small else 9)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("F1")
    ax.set_xlabel("true label (n: rows in the test file)" if not small else "true label")
    ax.set_title(title, fontsize=10)
    return _save(fig, out_png)


BASELINE_COLOURS = ("#B0B0B0", "#707070")


@readable_text
def plot_grouped_bars(metrics: Sequence[str], series: dict[str, Sequence[float | None]], out_png: str | Path,
                      *, title: str = "Comparison", ylabel: str = "score", muted: Sequence[str] = ()) -> Path:
    """One group of bars per metric, one bar per series (model or baseline); None is left out.
    Series named in `muted` (the baselines) are drawn in hatched greys after the models' colours."""
    import numpy as np

    m, s = len(metrics), max(1, len(series))
    fig = _figure(max(7.0, 1.3 * m * max(1, s / 3) + 2), 5)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / s
    x = np.arange(m)
    greys = iter(BASELINE_COLOURS * len(series))
    for i, (name, values) in enumerate(series.items()):
        heights = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
        style = ({"color": next(greys), "hatch": "//", "edgecolor": "white", "linewidth": 0} if name in muted
                 else {"color": f"C{i}"})
        bars = ax.bar(x + (i - (s - 1) / 2) * width, heights, width * 0.95, label=name, **style)
        for bar, v in zip(bars, values):
            if v is not None:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, f"{v:.2f}",
                        ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, list(metrics))
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(5, s))
    return _save(fig, out_png)


# Columns of the results CSV (tunelab.training.results), drawn when present.
LOSS_COLUMNS = ("training_loss", "validation_loss")
ACCURACY_COLUMNS = ("training_sequence_accuracy", "validation_sequence_accuracy",
                    "classification/accuracy", "classification/weighted_f1_score")


# What the curves are called in the legend.
CURVE_NAMES = {"training_loss": "training loss", "validation_loss": "validation loss",
               "training_sequence_accuracy": "training accuracy (whole completion, this batch)",
               "validation_sequence_accuracy": "validation accuracy (whole completion)",
               "classification/accuracy": "validation accuracy (classification)",
               "classification/weighted_f1_score": "validation weighted F1 (classification)"}


@readable_text
def plot_training_curves(results_csv_path: str | Path, out_png: str | Path, *, title: str | None = None) -> Path:
    """Training loss, validation loss, and validation accuracy and weighted F1 over steps, from a
    job's results CSV. Columns that are missing or empty are skipped. `title` names the job (the
    CLI passes its id and model). Returns the PNG's path."""
    from matplotlib.ticker import MaxNLocator

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
            x, y = finite_number(row.get("step")), finite_number(row.get(column))
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
    has_f1 = "classification/weighted_f1_score" in accs
    score = "accuracy and F1" if has_f1 else "accuracy"
    panels = [p for p in (("loss", losses), (score, accs)) if p[1]]
    fig = _figure(6.5 * len(panels), 4.8 if title else 4.5)
    for i, (name, curves) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for column, (xs, ys) in curves.items():
            sparse = len(xs) < 0.5 * len(rows)  # validation rows come every few steps: mark them
            ax.plot(xs, ys, marker="o" if sparse else None, markersize=3, linewidth=1.2,
                    label=CURVE_NAMES.get(column, column))
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.set_ylabel(name)
        if name != "loss":
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.set_title(f"{name[0].upper() + name[1:]} over steps")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, out_png)


def finite_number(text) -> float | None:
    """A results-CSV cell as a float; None for an empty cell, text or a non-finite value."""
    if text is None or str(text).strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@readable_text
def plot_class_counts(counts: dict[str, dict[str, int]], labels: Sequence[str], out_png: str | Path, *,
                      title: str = "Examples per class") -> Path:
    """Horizontal bars of every class's rows per split, largest training class on top, on a log
    scale so that the rare classes stay visible next to the large ones."""
    order = sorted(labels, key=lambda l: counts["train"].get(l, 0))
    k = len(order)
    fig = _figure(8.0, min(14.0, max(3.0, 0.32 * k + 1.5)))
    ax = fig.add_subplot(1, 1, 1)
    splits = list(counts)
    height = 0.8 / max(1, len(splits))
    for s, split in enumerate(splits):
        values = [max(counts[split].get(l, 0), 0) for l in order]
        ax.barh([i + s * height for i in range(k)], values, height=height, label=split)
    ax.set_yticks([i + height * (len(splits) - 1) / 2 for i in range(k)], plot_labels(order), fontsize=8 if k > 15 else 10)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("examples (log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, out_png)
