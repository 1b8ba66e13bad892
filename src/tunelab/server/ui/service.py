"""What the dashboard needs beyond the OpenAI-shaped API, each a thin call into the library:
a job's results rows (the curves), `prepare_data`'s report on an uploaded file, a model's prompt
separator, evaluation reports kept in the store, Table 4.1 for ticked models, the monitor report
and the review queue, and `datasets build` on a raw review table. Everything here reads; the only
writes are evaluation reports under TUNELAB_HOME/ui-reports (files and jobs are created through
/v1/files and /v1/fine_tuning/jobs; built files go back to the page, which uploads them)."""

from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

from tunelab.errors import NotFoundError, TunelabError
from tunelab.evaluation.plots import finite_number
from tunelab.fsutil import write_json
from tunelab.jobs import files as job_files
from tunelab.server.errors import APIError, bad_request, from_tunelab_error, not_found
from tunelab.server.files.service import clean_filename, spool
from tunelab.server.fine_tuning.service import check_training_file, get_job
from tunelab.server.models.service import servable_id
from tunelab.store import Store
from tunelab.store.ids import model_dir_name

REPORTS_DIR = "ui-reports"
REPORT_IMAGES = ("confusion_matrix", "reliability", "per_class_f1")
MAX_ROWS_LISTED = 50
"""Line numbers sent per finding or action; the count says how many there are in all."""


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def job_results(store: Store, job_id: str) -> dict[str, Any]:
    """The job's results CSV (the growing one while it runs) as columns and numeric rows."""
    job = get_job(store, job_id)
    try:
        path = job_files.results_path(store, job)
    except TunelabError:
        return {"object": "tunelab.results", "job": job.id, "columns": [], "rows": []}
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        columns = next(reader, [])
        rows = [[finite_number(v) for v in row] for row in reader if len(row) == len(columns)]
    return {"object": "tunelab.results", "job": job.id, "columns": columns, "rows": rows}


def _rows(rows) -> dict[str, Any]:
    rows = list(rows)
    return {"rows": rows[:MAX_ROWS_LISTED], "n_rows": len(rows)}


def prepare_report(store: Store, file_id: str, accept: list[str] | None, split: bool) -> dict[str, Any]:
    """`fine_tunes.prepare_data` on an uploaded file: what it found (with file lines), what it
    proposes, the class table, and the prepared JSONL text(s) with the accepted fixes (`accept`:
    action keys; None: all) and, with `split`, the stratified validation split. Necessary fixes
    are always applied, as the CLI does."""
    from tunelab.data import prepare

    check_training_file(store, file_id, "file_id")
    record = store.get_file(file_id)
    try:
        analysis = prepare.analyze(record.path)
        chosen = [a for a in analysis.actions if a.necessary or accept is None or a.key in accept]
        data = prepare.apply_actions(analysis.data, chosen, record.filename)
        labels = prepare.classes(data)
        plan = prepare.plan_split(data) if split else None
        with tempfile.TemporaryDirectory(prefix="tunelab-prepare-") as tmp:
            written = prepare.write_prepared(Path(tmp) / record.filename, data, plan)
            texts = [p.read_text(encoding="utf-8") for p in written]
    except TunelabError as exc:
        raise bad_request(f"{record.filename}: {exc.render()}".replace(str(record.path), record.filename),
                          param="file_id", code="invalid_file") from None
    counts = data["completion"].value_counts() if labels else None
    stem = Path(record.filename).stem
    return {
        "object": "tunelab.prepare_report", "file": record.id, "filename": record.filename,
        "format": analysis.format, "kind": analysis.kind, "n_rows": int(len(analysis.data)),
        "n_prepared": int(len(data)), "classification": bool(labels),
        "findings": [{"message": f.message, "warning": f.warning, **_rows(f.rows)} for f in analysis.findings],
        "actions": [{"key": a.key, "message": a.message, "necessary": a.necessary, "applied": any(a is c for c in chosen),
                     **_rows(a.rows)} for a in analysis.actions],
        "classes": [{"label": label, "count": int(counts[label])} for label in labels] if labels else None,
        "split": ({"n_train": int(len(plan.train)), "n_valid": int(len(plan.valid)), "stratified": plan.stratified,
                   "note": plan.note} if plan else None),
        "changed": bool(chosen) or plan is not None,
        "prepared": [{"filename": f"{stem}_prepared{'_' + role if plan else ''}.jsonl", "role": role, "text": text}
                     for role, text in zip(("train", "valid") if plan else ("train",), texts)],
    }


# -- raw review tables: `datasets build` from the browser ---------------------------------------------

SAMPLE_CHARS = 120
"""A sample value shown per column, cut to this length."""


def inspect_raw(stream: BinaryIO, filename: str | None, max_bytes: int | None = None) -> dict[str, Any]:
    """The columns of a raw table (a file /v1/files refused with code `raw_table`), a sample value of
    each, and every `datasets build` preset, those that fit the columns first."""
    from tunelab.data.bundled import PRESETS, presets_fitting
    from tunelab.data.readers import read_table

    name = clean_filename(filename)
    with tempfile.TemporaryDirectory(prefix="tunelab-raw-") as tmp:
        path, shown = spool(stream, name, Path(tmp), max_bytes)
        try:
            table = read_table(path, default_format="jsonl")
        except TunelabError as exc:
            raise bad_request(exc.render().replace(str(path), shown), param="file", code="invalid_file") from None
    columns = list(table.columns or (table.rows[0] if table.rows else []))
    first = table.rows[0] if table.rows else {}
    fitting = presets_fitting(columns)
    presets = sorted(PRESETS.values(), key=lambda p: p.name not in fitting)
    return {
        "object": "tunelab.raw_table", "filename": shown, "n_rows": len(table.rows), "columns": columns,
        "sample": {c: str(first.get(c, ""))[:SAMPLE_CHARS] for c in columns},
        "presets": [{"name": p.name, "description": p.description, "text_columns": list(p.text_columns),
                     "label_column": p.label_column, "fits": p.name in fitting} for p in presets],
    }


def build_raw(stream: BinaryIO, filename: str | None, *, preset: str | None, text_columns: list[str] | None,
              label_column: str | None, train_size: int | None = None, seed: int = 42,
              max_bytes: int | None = None) -> dict[str, Any]:
    """`tunelab datasets build` on an uploaded raw table: the train, valid and test JSONL texts
    (which the page uploads through POST /v1/files) and the build's summary."""
    from tunelab.data.builder import build_dataset

    from tunelab.data.bundled import PRESETS

    if not preset and not (text_columns and label_column):
        raise bad_request("Choose a preset, or the text column(s) and the label column.", param="preset")
    if preset and preset not in PRESETS:
        raise bad_request(f"Unknown preset {preset!r}; one of {', '.join(PRESETS)}.", param="preset")
    name = clean_filename(filename)
    with tempfile.TemporaryDirectory(prefix="tunelab-build-") as tmp:
        path, shown = spool(stream, name, Path(tmp), max_bytes)
        try:
            result = build_dataset(path, out_dir=Path(tmp) / "out", preset=preset or None,
                                   text_columns=text_columns or None, label_column=label_column or None,
                                   train_size=train_size, seed=seed)
        except TunelabError as exc:
            # The builder's hints name the CLI's flags; the page's own fields are the fix here.
            raise bad_request(f"{exc.message.replace(str(path), shown)}", param="file", code="invalid_file") from None
        stem = Path(shown).stem
        files = [{"role": role, "filename": f"{stem}_{role}.jsonl",
                  "text": result.paths[role].read_text(encoding="utf-8"), "n_rows": result.counts[role]}
                 for role in ("train", "valid", "test") if result.counts.get(role)]
    return {
        "object": "tunelab.built_dataset", "filename": shown, "labels": result.labels, "ordinal": result.ordinal,
        "counts": result.counts, "label_counts": result.label_counts, "dropped": result.dropped,
        "stratified": result.stratified, "notes": result.notes, "files": files,
    }


def separator(store: Store, model_id: str) -> dict[str, Any]:
    """The prompt separator of a fine-tuned model's training data (None when unknown)."""
    return {"object": "tunelab.separator", "model": model_id,
            "separator": job_files.prompt_separator(store, model_id)}


# -- evaluation reports ----------------------------------------------------------------------------

def _report_dir(store: Store, model_id: str, test_file: str) -> Path:
    return store.home / REPORTS_DIR / model_dir_name(model_id) / model_dir_name(test_file)


def _summary(report: dict[str, Any], test_file: str, train_file: str | None) -> dict[str, Any]:
    """The report without what a page does not show (per-row calibration bins, local paths)."""
    keep = {k: v for k, v in report.items() if k not in ("calibration", "files", "out_dir", "test_file", "train_file")}
    images = [name for name in REPORT_IMAGES if (report.get("files") or {}).get(name)]
    return {**keep, "object": "tunelab.evaluation", "test_file": test_file, "train_file": train_file,
            "images": images}


def evaluate(store: Store, model_id: str, test_file: str, train_file: str | None) -> dict[str, Any]:
    """`tunelab evaluate` on uploaded files; the report (metrics.json and the PNGs) is kept in the
    store, one per model and test file, so the models page shows it again later."""
    from tunelab.evaluation.report import evaluate_model

    # The models completions serve, nothing else: a path would load any model folder on the
    # server's disk into this process, a hub id would download one.
    _servable(store, [model_id], "model")
    check_training_file(store, test_file, "test_file")
    check_training_file(store, train_file, "train_file")
    out = _report_dir(store, model_id, test_file)
    try:
        report = evaluate_model(model_id, test_file, train_path=train_file, out_dir=out, store=store, progress=False)
    except TunelabError as exc:
        raise from_tunelab_error(exc, param="model" if isinstance(exc, NotFoundError) else None) from None
    summary = _summary(report, test_file, train_file)
    write_json(out / "ui.json", {"test_file": test_file, "train_file": train_file})
    return summary


def _servable(store: Store, models: list[str], param: str) -> None:
    for model in models:
        try:
            servable_id(store, model)
        except APIError as exc:
            exc.param = param
            raise


def _saved(folder: Path) -> dict[str, Any] | None:
    try:
        report = read_json(folder / "metrics.json")
        files = read_json(folder / "ui.json")
    except (OSError, ValueError):
        return None
    return _summary(report, files.get("test_file"), files.get("train_file"))


def list_evaluations(store: Store, model_id: str | None = None) -> list[dict[str, Any]]:
    root = store.home / REPORTS_DIR
    folders = [root / model_dir_name(model_id)] if model_id else sorted(root.glob("*")) if root.exists() else []
    out = []
    for model_folder in folders:
        for folder in sorted(model_folder.glob("*")) if model_folder.is_dir() else ():
            summary = _saved(folder)
            if summary is not None:
                out.append(summary)
    return out


def report_image(store: Store, model_id: str, test_file: str, name: str) -> Path:
    if name not in REPORT_IMAGES:
        raise bad_request(f"Unknown report image {name!r}; one of {', '.join(REPORT_IMAGES)}.", param="name")
    path = _report_dir(store, model_id, test_file) / f"{name}.png"
    if not path.is_file():
        raise not_found(f"No {name} image for {model_id} on {test_file}; evaluate the model on that file first.",
                        param="test_file")
    return path


def compare(store: Store, models: list[str], test_file: str, train_file: str | None) -> dict[str, Any]:
    """Table 4.1 for `models` (with the majority and TF-IDF baselines when `train_file` is given),
    reusing the reports already kept for this test file."""
    from tunelab.evaluation.compare import compare_models

    _servable(store, models, "models")
    check_training_file(store, test_file, "test_file")
    check_training_file(store, train_file, "train_file")
    reports = {}
    for model in models:
        try:
            reports[model] = read_json(_report_dir(store, model, test_file) / "metrics.json")
        except (OSError, ValueError):
            pass
    try:
        result = compare_models(models, test_file, train_path=train_file, store=store, progress=False,
                                reports=reports)
    except TunelabError as exc:
        raise from_tunelab_error(exc, param="models") from None
    return {"object": "tunelab.compare", "models": result["models"], "names": result["names"],
            "columns": result["columns"], "rows": result["rows"], "n": result["n"], "labels": result["labels"],
            "test_file": test_file, "train_file": train_file}


# -- monitoring ----------------------------------------------------------------------------------

DASHBOARD_WINDOWS = 48


def monitor_report(store: Store, model_id: str, window: str) -> dict[str, Any]:
    from tunelab.monitoring.report import monitor

    try:
        # The page shows the newest windows: a log of weeks read whole took seconds (5 s for 200k rows)
        # after every click in the review queue, and windows of 100 made a table of thousands of rows.
        return monitor(store, model_id, window=window, text_drift=False, last_windows=DASHBOARD_WINDOWS)
    except TunelabError as exc:
        raise from_tunelab_error(exc, param="model") from None


def review(store: Store, model_id: str, limit: int) -> dict[str, Any]:
    from tunelab.monitoring.feedback import review_queue

    try:
        records = review_queue(store, model_id, limit=limit)
    except TunelabError as exc:
        raise from_tunelab_error(exc, param="model") from None
    keep = ("response_id", "prompt_index", "created_at", "endpoint", "prompt", "prediction", "label_probs",
            "top1_prob", "margin")
    record = store.find_model(model_id)
    return {"object": "tunelab.review_queue", "model": model_id, "labels": record.labels if record else None,
            "data": [{k: v for k, v in asdict(r).items() if k in keep} for r in records]}
