"""`tunelab monitor`: a model's logged predictions, cut into windows, each checked against its
reference (tunelab.monitoring.reference) with the statistics of tunelab.monitoring.stats.

Checks per window, and the default thresholds (each a `tunelab monitor` flag):

| check | alarm when | flag |
|---|---|---|
| label drift | chi-square p < alpha **and** Jensen-Shannon distance > 0.1 | --alpha 0.01, --max-label-js |
| confidence drift | KS p < alpha **and** KS statistic > 0.1 | --max-ks |
| text drift | cross-validated ROC-AUC of reference-vs-served > 0.7 | --max-text-auc |
| estimated accuracy | more than 5 points below the same estimate on the reference | --max-accuracy-drop |
| realized accuracy | (off by default) more than N points below the reference's accuracy | --max-realized-drop |
| empty / non-text prompts | share > 5 % each | --max-empty, --max-non-text |
| truncated prompts | share > 25 % (longer than the model's max_length) | --max-truncated |
| duplicates | share > 50 % | --max-duplicates |
| latency | p95 above N ms (off by default) | --max-p95-ms |

A window with fewer than `min_rows` (30) predictions is reported but raises no alarm (the
statistical checks need rows; a quiet hour is not an incident). Significance alone does not alarm:
with thousands of rows a chi-square test finds differences nobody cares about, hence the effect
sizes; with few rows an effect size alone is noise, hence the p-values.

Realized accuracy has no alarm by default because feedback is rarely a random sample: the review
queue sends people the most uncertain predictions, whose accuracy is far below the model's.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np

from tunelab import textwidth
from tunelab.data.labels import display_label
from tunelab.errors import InvalidInputError
from tunelab.monitoring import stats as S
from tunelab.monitoring.reference import Reference, load_reference, model_data
from tunelab.monitoring.thresholds import Thresholds
from tunelab.store.predictions import FeedbackRecord, PredictionLog, PredictionRecord

SPECIAL_TOKENS = 2  # [CLS]/[SEP] or BOS/EOS that tokenizing adds to a prompt's own tokens


@dataclass
class WindowData:
    """The rows of one window, as arrays the statistics take."""

    start: float
    end: float
    times: list[float]
    latency_ms: list[float | None]
    predictions: list[str | None]
    probs: np.ndarray  # [rows with a distribution, labels]
    texts: list[str | None]
    digests: list[str | None]
    empty: list[bool | None]
    non_text: list[bool | None]
    truncated: list[bool | None]
    feedback: list[str | None]  # the latest label people gave, per row

    @property
    def n(self) -> int:
        return len(self.times)

    @classmethod
    def from_records(cls, records: Sequence[PredictionRecord], labels: Sequence[str] | None, *,
                     feedback: dict[tuple[str, int], FeedbackRecord] | None = None, max_length: int | None = None,
                     start: float | None = None, end: float | None = None) -> "WindowData":
        feedback = feedback or {}
        k = len(labels or [])
        probs = [[r.label_probs.get(label, 0.0) for label in labels] for r in records if labels and r.label_probs]
        times = [r.created_at for r in records]

        def truncated(r: PredictionRecord) -> bool | None:
            if r.prompt_tokens is None or not max_length:
                return None
            return r.prompt_tokens + SPECIAL_TOKENS > max_length

        fb = [feedback.get((r.response_id, r.prompt_index)) for r in records]
        return cls(start=start if start is not None else (min(times) if times else 0.0),
                   end=end if end is not None else (max(times) if times else 0.0), times=times,
                   latency_ms=[r.latency_ms for r in records], predictions=[r.prediction for r in records],
                   probs=np.asarray(probs, dtype=np.float64).reshape(-1, k),
                   texts=[r.prompt for r in records], digests=[r.prompt_sha256 for r in records],
                   empty=[r.empty_prompt for r in records], non_text=[r.non_text for r in records],
                   truncated=[truncated(r) for r in records], feedback=[f.label if f else None for f in fb])


def _check(name: str, value, threshold, alarm: bool, detail: str) -> dict:
    return {"name": name, "value": value, "threshold": threshold, "alarm": bool(alarm), "detail": detail}


def evaluate_window(data: WindowData, labels: Sequence[str] | None, reference: Reference | None,
                    thresholds: Thresholds | None = None, *, text_drift: bool = True, seed: int = 0) -> dict:
    """Every statistic of one window and the checks against `thresholds` (a pure function: the
    window's rows and the reference in, a JSON-able dict out)."""
    th = thresholds or Thresholds()
    n = data.n
    enough = n >= th.min_rows
    latencies = np.array([v for v in data.latency_ms if v is not None], dtype=np.float64)
    out: dict = {
        "start": _iso(data.start), "end": _iso(data.end), "start_ts": data.start, "end_ts": data.end, "n": n,
        "latency_ms": ({"p50": float(np.percentile(latencies, 50)), "p95": float(np.percentile(latencies, 95)),
                        "mean": float(latencies.mean())} if len(latencies) else None),
        "predicted": None, "label_drift": None, "confidence_drift": None, "text_drift": None,
        "expected": None, "realized": None, "checks": [],
    }
    checks = out["checks"]
    if labels and len(data.probs):
        probs = S.normalise(data.probs)
        top1, _ = S.top1_and_margin(probs)
        argmax = [labels[i] for i in probs.argmax(axis=1)]
        counts = S.label_counts(argmax, labels)
        out["predicted"] = {label: float(c / counts.sum()) for label, c in zip(labels, counts)}
        out["expected"] = S.expected_performance(probs, labels)
        if reference is not None:
            ld = out["label_drift"] = S.label_drift(counts, reference.predicted_counts)
            checks.append(_check(
                "label_drift", ld["js_distance"], th.max_label_js,
                enough and ld["p_value"] is not None and ld["p_value"] < th.alpha and ld["js_distance"] > th.max_label_js,
                f"JS distance {_f(ld['js_distance'])}, chi-square p {_p(ld['p_value'])}"))
            cd = out["confidence_drift"] = S.confidence_drift(top1, reference.top1)
            checks.append(_check(
                "confidence_drift", cd["ks"], th.max_ks,
                enough and cd["p_value"] is not None and cd["p_value"] < th.alpha and cd["ks"] > th.max_ks,
                f"KS {_f(cd['ks'])}, p {_p(cd['p_value'])}; mean top-1 {_f(cd['window_mean'])} "
                f"(reference {_f(cd['reference_mean'])})"))
            ref_exp = reference.expected.get("accuracy")
            est = out["expected"]["accuracy"]
            drop = (ref_exp - est) if ref_exp is not None and est is not None else None
            checks.append(_check("estimated_accuracy", est, th.max_accuracy_drop,
                                 enough and drop is not None and drop > th.max_accuracy_drop,
                                 f"{_f(est)} expected from the probabilities (reference {_f(ref_exp)})"))
    if labels:
        pairs = [(p, t) for p, t in zip(data.predictions, data.feedback) if p is not None and t is not None]
        if pairs:
            realized = out["realized"] = S.realized_performance([p for p, _ in pairs], [t for _, t in pairs], labels)
            if th.max_realized_drop is not None and reference is not None and reference.accuracy is not None:
                drop = reference.accuracy - realized["accuracy"]
                checks.append(_check("realized_accuracy", realized["accuracy"], th.max_realized_drop,
                                     len(pairs) >= th.min_feedback and drop > th.max_realized_drop,
                                     f"{_f(realized['accuracy'])} on {len(pairs)} labelled predictions "
                                     f"(reference {_f(reference.accuracy)})"))
    if text_drift and reference is not None and reference.texts:
        texts = [t for t in data.texts if t]
        td = out["text_drift"] = S.text_drift(reference.texts, texts, seed=seed)
        if td["auc"] is not None:
            # Gated by min_rows like every check: with 20-29 prompts a side the AUC is noise.
            checks.append(_check("text_drift", td["auc"], th.max_text_auc, enough and td["auc"] > th.max_text_auc,
                                 f"ROC-AUC {_f(td['auc'])} telling {td['n_window']} served prompts from "
                                 f"{td['n_reference']} training prompts"))
    quality = out["quality"] = S.data_quality(empty=data.empty, non_text=data.non_text, truncated=data.truncated,
                                              digests=data.digests)
    for key, limit in (("empty", th.max_empty), ("non_text", th.max_non_text), ("truncated", th.max_truncated),
                       ("duplicates", th.max_duplicates)):
        value = quality[key]
        if value is not None:
            checks.append(_check(key, value, limit, enough and value > limit,
                                 f"{value:.1%} of the prompts" + (" (longer than max_length)" if key == "truncated"
                                                                  else "")))
    if th.max_p95_ms is not None and out["latency_ms"]:
        p95 = out["latency_ms"]["p95"]
        checks.append(_check("latency_p95_ms", p95, th.max_p95_ms, enough and p95 > th.max_p95_ms, f"p95 {p95:.0f} ms"))
    out["alarms"] = [c["name"] for c in checks if c["alarm"]]
    out["enough_rows"] = enough
    return out


def monitor(store, model_id: str, *, window: str = "1d", since: float | None = None, until: float | None = None,
            thresholds: Thresholds | None = None, reference_file=None, text_drift: bool = True,
            scorer: Callable | None = None, on_scoring: Callable | None = None, seed: int = 0,
            last_windows: int | None = None) -> dict:
    """The monitor report of `model_id` (see the module docstring) as a dict; `alarm` is True when
    any window crossed a threshold. `last_windows`: only the newest N windows (time windows: those
    since the start of the one N-1 before the current; count windows: the newest N x size rows),
    so that a log of weeks is not read whole to show its latest state."""
    spec = S.WindowSpec.parse(window)
    th = thresholds or Thresholds()
    data = model_data(store, model_id)  # NotFoundError for an unknown model
    log = PredictionLog(store)
    if last_windows is not None and spec.kind == "time":
        now = until if until is not None else time.time()
        recent = (math.floor(now / spec.size) - (last_windows - 1)) * spec.size
        since = recent if since is None else max(since, recent)
    if last_windows is not None and spec.kind == "count":
        records = log.predictions(model_id, since=since, until=until, limit=int(spec.size) * last_windows,
                                  newest_first=True)[::-1]
    else:
        records = log.predictions(model_id, since=since, until=until)
    reference = None
    if data.labels:
        reference = load_reference(store, model_id, reference_file=reference_file, scorer=scorer,
                                   on_scoring=on_scoring)
    feedback = log.latest_feedback(model_id)
    windows = []
    for i, (a, b) in enumerate(S.split_windows([r.created_at for r in records], spec)):
        chunk = records[a:b]
        if spec.kind == "time":
            start = math.floor(chunk[0].created_at / spec.size) * spec.size
            bounds = (start, start + spec.size)
        else:
            bounds = (chunk[0].created_at, chunk[-1].created_at)
        wd = WindowData.from_records(chunk, data.labels, feedback=feedback, max_length=data.max_length,
                                     start=bounds[0], end=bounds[1])
        windows.append(evaluate_window(wd, data.labels, reference, th, text_drift=text_drift, seed=seed + i))
    feedback_n = sum(1 for r in records if (r.response_id, r.prompt_index) in feedback)
    return {
        "object": "tunelab.monitor", "model": model_id, "window": spec.describe(),
        "since": _iso(since) if since is not None else None, "until": _iso(until) if until is not None else None,
        "generated_at": _iso(time.time()), "n": len(records), "feedback": feedback_n, "labels": data.labels,
        "temperature": data.temperature, "calibrated": data.temperature != 1.0,
        "reference": reference.summary() if reference is not None else None,
        "thresholds": asdict(th), "windows": windows,
        "alarm": any(w["alarms"] for w in windows),
    }


# --- times ----------------------------------------------------------------------------------------

_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


def parse_time(text: str | None, *, now: float | None = None) -> float | None:
    """`--since`/`--until`: an ISO date or time (2026-11-25, 2026-11-25T14:00, UTC unless it says),
    a duration ago (`7d`, `24h`, `30m`), or Unix seconds."""
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    now = time.time() if now is None else now
    m = _AGO.match(text)
    if m:
        return now - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2).lower()]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"Cannot read the time {text!r}.",
                                hint="Give an ISO date or time (2026-11-25, 2026-11-25T14:00), a duration ago "
                                     "(7d, 24h) or Unix seconds.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _f(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def _p(x) -> str:
    return "—" if x is None else (f"{x:.2g}" if x >= 1e-4 else "<1e-4")


# --- the terminal table ---------------------------------------------------------------------------


def format_report(report: dict, *, examples: int = 3) -> str:
    """The report as the terminal table, then what each alarm was about."""
    lines = [f"Model {report['model']}: {report['n']} predictions in windows of {report['window']}"
             + (f", {report['feedback']} with feedback" if report["feedback"] else "") + "."]
    ref = report.get("reference")
    if ref:
        acc = f", accuracy {ref['accuracy']:.3f}" if ref.get("accuracy") is not None else ""
        lines.append(f"Reference: {ref['source']} {ref['path']} ({ref['n']} rows{acc}; estimated accuracy "
                     f"{_f(ref['expected'].get('accuracy'))}; mean top-1 {_f(ref['mean_top1'])})"
                     + (" [cached]" if ref.get("cached") else "") + ".")
    lines.append("Probabilities: " + (f"calibrated by the model's temperature {report['temperature']:.3g}."
                                      if report["calibrated"] else "as the model gives them (no temperature fitted)."))
    if not report["windows"]:
        lines.append("No predictions logged in this range.")
        return "\n".join(lines)
    header = ["window", "n", "p50 ms", "top label", "JS", "chi2 p", "KS", "text AUC", "quality", "est.acc",
              "real.acc", "alarms"]
    rows = []
    for w in report["windows"]:
        top = "—"
        if w["predicted"]:
            label, share = max(w["predicted"].items(), key=lambda kv: kv[1])
            top = f"{display_label(label)} {share:.0%}"
        ld, cd, td, q = w["label_drift"] or {}, w["confidence_drift"] or {}, w["text_drift"] or {}, w["quality"]
        bad = [v for v in (q.get("empty"), q.get("non_text")) if v is not None]
        quality = f"{sum(bad):.0%} bad" if bad else "—"
        if q.get("duplicates"):
            quality += f", {q['duplicates']:.0%} dup"
        realized = w["realized"]
        real = f"{realized['accuracy']:.3f} ({realized['n']})" if realized else "—"
        rows.append([w["start"][:16].replace("T", " "), str(w["n"]),
                     f"{w['latency_ms']['p50']:.0f}" if w["latency_ms"] else "—", top,
                     _f(ld.get("js_distance")), _p(ld.get("p_value")), _f(cd.get("ks")), _f(td.get("auc")), quality,
                     _f((w["expected"] or {}).get("accuracy")), real,
                     ", ".join(w["alarms"]) or ("ok" if w["enough_rows"] else "few rows")])
    widths = [max(textwidth.columns(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {1, 2, 4, 5, 6, 7, 9}
    for r in [header, *rows]:
        lines.append("  ".join((textwidth.rjust if i in right else textwidth.ljust)(c, widths[i])
                               for i, c in enumerate(r)).rstrip())
    alarmed = [w for w in report["windows"] if w["alarms"]]
    for w in alarmed:
        lines.append("")
        lines.append(f"ALARM {w['start']} ({w['n']} predictions):")
        for check in w["checks"]:
            if check["alarm"]:
                lines.append(f"  {check['name']}: {check['detail']} (threshold {check['threshold']})")
        td = w.get("text_drift") or {}
        if "text_drift" in w["alarms"] and td.get("examples"):
            if td.get("terms"):
                lines.append(f"  words that mark served prompts: {', '.join(td['terms'][:8])}")
            lines.append("  most telling served prompts:")
            for ex in td["examples"][:examples]:
                text = ex["text"].replace("\n", " ").strip()
                lines.append(f"    {ex['score']:.2f}  {text[:90] + ('…' if len(text) > 90 else '')}")
    lines.append("")
    lines.append(f"{len(alarmed)} of {len(report['windows'])} window(s) crossed a threshold." if alarmed
                 else "No window crossed a threshold.")
    return "\n".join(lines)
