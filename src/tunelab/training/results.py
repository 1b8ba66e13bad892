"""The results CSV, with OpenAI's legacy columns (plus classification columns when asked); a job of
the current endpoint (/v1/fine_tuning/jobs) gets its result file in the current columns too."""

from __future__ import annotations

import csv
from pathlib import Path

BASE_COLUMNS = [
    "step", "elapsed_tokens", "elapsed_examples", "training_loss", "training_sequence_accuracy",
    "training_token_accuracy", "validation_loss", "validation_sequence_accuracy", "validation_token_accuracy",
]
MULTICLASS_COLUMNS = ["classification/accuracy", "classification/weighted_f1_score"]
BINARY_COLUMNS = ["classification/accuracy", "classification/precision", "classification/recall",
                  "classification/auroc", "classification/auprc", "classification/f1.0"]


def columns_for(classification: str | None, betas: list[float] = ()) -> list[str]:
    """classification: None, "multiclass" or "binary"."""
    if classification == "multiclass":
        return BASE_COLUMNS + MULTICLASS_COLUMNS
    if classification == "binary":
        return BASE_COLUMNS + BINARY_COLUMNS + [f"classification/f{b}" for b in betas if float(b) != 1.0]
    return list(BASE_COLUMNS)

CURRENT_COLUMNS = {"step": "step", "train_loss": "training_loss", "train_accuracy": "training_token_accuracy",
                   "valid_loss": "validation_loss", "valid_mean_token_accuracy": "validation_token_accuracy"}
"""The current endpoint's result-file columns, each with the legacy column it is read from."""


def write_current(legacy: Path, out: Path) -> Path:
    """The legacy results CSV in the current endpoint's columns; the classification columns follow
    unchanged (tunelab's extension)."""
    with open(legacy, newline="") as fh:
        rows = list(csv.DictReader(fh))
        header = list(rows[0]) if rows else []
    extra = [c for c in header if c.startswith("classification/")]
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*CURRENT_COLUMNS, *extra])
        for row in rows:
            writer.writerow([row.get(c, "") for c in CURRENT_COLUMNS.values()] + [row.get(c, "") for c in extra])
    return Path(out)


class ResultsWriter:
    """Appends one row per step and flushes, so `fine_tunes.results` shows a running job's progress.
    On resume the file is cut back to the rows the checkpoint covers."""

    def __init__(self, path: Path, columns: list[str]):
        self.path = Path(path)
        self.columns = columns
        self.rows = 0

    def reset(self) -> None:
        with open(self.path, "w", newline="") as fh:
            csv.writer(fh).writerow(self.columns)
        self.rows = 0

    def truncate(self, keep_rows: int) -> None:
        """Keep the header and the first `keep_rows` rows (those a resumed checkpoint covers)."""
        if not self.path.exists():
            self.reset()
            return
        with open(self.path, newline="") as fh:
            rows = list(csv.reader(fh))[: keep_rows + 1]
        with open(self.path, "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
        self.rows = self._count()

    def _count(self) -> int:
        with open(self.path, newline="") as fh:
            return max(0, sum(1 for _ in fh) - 1)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh).writerow(["" if row.get(c) is None else _fmt(row[c]) for c in self.columns])
        self.rows += 1


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
