"""The timeline PNG of `tunelab monitor --plot`: volume, predicted-label shares, drift statistics
with their thresholds, and estimated against realized accuracy, one point per window. matplotlib's
object API on the Agg canvas (no pyplot), written atomically, as tunelab.evaluation.plots does."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from tunelab.data.labels import display_label
from tunelab.evaluation.fonts import readable_text
from tunelab.fsutil import atomic_open


@readable_text
def plot_timeline(report: dict, out_png: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    windows = report["windows"]
    x = list(range(len(windows)))
    names = [_short(w["start_ts"]) for w in windows]
    labels = report.get("labels") or []
    columns = 1 + (len(labels) - 1) // 12 if labels else 1  # one legend column per 12 labels
    # Constrained layout makes room for the legends outside the axes (tight_layout cut them off),
    # and the figure widens with the label legend so that the plots keep their width.
    fig = Figure(figsize=(max(8.0, 0.45 * len(windows) + 4) + 2.2 * columns, 10), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True)
    th = report["thresholds"]

    ax = axes[0]
    ax.bar(x, [w["n"] for w in windows], color="#6b8fb5")
    for i, w in enumerate(windows):
        if w["alarms"]:
            ax.axvspan(i - 0.5, i + 0.5, color="#e34a33", alpha=0.15, lw=0)
    ax.set_ylabel("predictions")
    fig.suptitle(f"{report['model']}: windows of {report['window']} (red: alarm)", fontsize=10)

    ax = axes[1]
    colours = _distinct_colours(len(labels))
    bottom = [0.0] * len(windows)
    for label, colour in zip(labels, colours):
        shares = [(w["predicted"] or {}).get(label, 0.0) for w in windows]
        ax.bar(x, shares, bottom=bottom, label=display_label(label), color=colour)
        bottom = [b + s for b, s in zip(bottom, shares)]
    ax.set_ylabel("predicted labels")
    ax.set_ylim(0, 1)
    if labels:
        ax.legend(fontsize=7, ncol=columns, loc="upper left", bbox_to_anchor=(1.0, 1.0))

    ax = axes[2]
    for key, stat, name, limit in (("label_drift", "js_distance", "label JS distance", th["max_label_js"]),
                                   ("confidence_drift", "ks", "confidence KS", th["max_ks"]),
                                   ("text_drift", "auc", "text drift AUC", th["max_text_auc"])):
        values = [(w.get(key) or {}).get(stat) for w in windows]
        line = ax.plot(x, [float("nan") if v is None else v for v in values], marker="o", ms=3, label=name)[0]
        ax.axhline(limit, color=line.get_color(), ls=":", lw=1)
    ax.set_ylabel("drift (dotted: threshold)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))

    ax = axes[3]
    est = [(w.get("expected") or {}).get("accuracy") for w in windows]
    real = [(w.get("realized") or {}).get("accuracy") for w in windows]
    ax.plot(x, [float("nan") if v is None else v for v in est], marker="o", ms=3, label="estimated (no labels)")
    ax.plot(x, [float("nan") if v is None else v for v in real], marker="s", ms=3, ls="--",
            label="realized (feedback)")
    ref = report.get("reference") or {}
    if ref.get("accuracy") is not None:
        ax.axhline(ref["accuracy"], color="grey", ls=":", lw=1, label="reference accuracy")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xticks(x, names, rotation=60 if len(windows) > 6 else 0, fontsize=7)

    out_png = Path(out_png)
    with atomic_open(out_png, "wb") as fh:
        fig.savefig(fh, format="png")
    return out_png


def _distinct_colours(n: int) -> list:
    """n colours no two labels share: matplotlib's default 10 up to 10 labels, then tab20 + tab20b
    (40), then as many evenly spaced hues as needed (the default cycle repeats after 10)."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 40:
        return [colormaps["tab20"](i) for i in range(20)][:n] + [colormaps["tab20b"](i) for i in range(max(0, n - 20))]
    return [colormaps["hsv"](i / n) for i in range(n)]


def _short(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%m-%d %H:%M")
