"""Read CSV, TSV, XLSX, JSON (array) and JSON Lines files (optionally gzip-compressed) into rows
that remember the line they came from, so every later message can say `file:line`.

Everything that goes wrong raises DataFileError naming the file, and the line and field where
known; files with several bad lines report all of them at once.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.data import safejson
from tunelab.data.chat import (clean_messages, last_reply, transcript, validate_example,  # noqa: F401 (re-exported)
                               validate_messages)
from tunelab.data.labels import normalize_label
from tunelab.errors import DataFileError, MissingFileError, RawTableError

FORMATS = ("csv", "tsv", "xlsx", "json", "jsonl")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".xlsx": "xlsx", ".xlsm": "xlsx",
             ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# A report with thousands of bad lines is unreadable; the count of the rest is still given.
MAX_PROBLEMS = 50
# No model reads more than a few thousand tokens of a row (about 4 characters each), so a row of a
# million characters is not data but an accident or an attack; refusing it early spares the memory
# and the minutes of tokenizing it.
MAX_ROW_CHARS = 1_000_000
_LONG_ROW_HINT = (f"A row may hold at most {MAX_ROW_CHARS:,} characters; models read a few thousand tokens. "
                  "Shorten or split the long rows.")


@dataclass
class Table:
    """Rows of a data file. `lines[i]` is the 1-based physical line where row i starts
    (for XLSX, the sheet row number)."""

    path: Path
    format: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Example:
    prompt: str
    """The input text; for a chat example, the conversation before `completion` as a transcript
    (tunelab.data.chat.transcript)."""
    completion: str
    """The desired output; for a chat example, the text of its last learnt assistant message."""
    line: int
    """The file line the row starts on."""
    messages: list[dict] | None = field(default=None, compare=False)
    """A chat example's messages (role, content, name, weight); None for prompt/completion rows."""


def raise_problems(message: str, problems: Sequence[str], hint: str | None = None) -> None:
    """Raise one DataFileError listing every problem (capped, with the count of the rest)."""
    shown = list(problems[:MAX_PROBLEMS])
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
    raise DataFileError(message, problems=shown, hint=hint)


def detect_format(path: str | Path) -> tuple[str, bool]:
    """(format, gzip-compressed) from the file name, e.g. `x.jsonl.gz` -> ("jsonl", True)."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        if suffixes and suffixes[-1] == ".xls":
            hint = "Open it in a spreadsheet program and save it as .xlsx or .csv."
        else:
            hint = "Supported: .csv, .tsv, .xlsx, .json (an array of objects), .jsonl (optionally .gz)."
        raise DataFileError(f"{path}: cannot tell the file format from its name.", hint=hint)
    if compressed and fmt == "xlsx":
        raise DataFileError(f"{path}: compressed spreadsheets are not supported.",
                            hint="Decompress it first.")
    return fmt, compressed


def read_table(path: str | Path, *, format: str | None = None, default_format: str | None = None) -> Table:
    """Read a data file into a Table. `format` overrides detection from the file name;
    `default_format` is used when the name does not tell (e.g. a stored upload `file-abc.gz`)."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file.")
    if path.is_dir():
        raise DataFileError(f"{path} is a directory, not a data file.")
    compressed = path.suffix.lower() == ".gz"
    if format is None:
        try:
            format, compressed = detect_format(path)
        except DataFileError:
            if default_format is None:
                raise
            format = default_format
    fmt = format
    if fmt not in FORMATS:
        raise DataFileError(f"Unknown format {fmt!r}.", hint=f"Use one of: {', '.join(FORMATS)}.")
    if fmt == "xlsx":
        return _read_xlsx(path)
    text = _read_text(path, compressed)
    if not text.strip():
        raise DataFileError(f"{path} is empty.", hint="The file has no rows; check that it was exported completely.")
    if fmt == "jsonl":
        return _read_jsonl(path, text)
    if fmt == "json":
        return _read_json(path, text)
    return _read_delimited(path, text, fmt)


BINARY_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "gzip-compressed data without a .gz name"), (b"SQLite format 3\x00", "an SQLite database"),
    (b"PAR1", "a Parquet file"), (b"\xd0\xcf\x11\xe0", "an old Office document (.xls/.doc)"),
)
"""The first bytes of files that are sometimes picked or renamed by mistake (a picker's filter bypassed)."""


def _read_text(path: Path, compressed: bool) -> str:
    try:
        data = path.read_bytes()
        if compressed:
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataFileError(f"{path}: cannot read the file: {exc}") from None
    kind = next((name for magic, name in BINARY_SIGNATURES if data.startswith(magic)), None)
    if kind:  # re-encoding advice would be wrong: this is no text at all
        raise DataFileError(
            f"{path} is {kind}{' after decompression' if compressed else ''}, not a text data file.",
            hint=(f"Add .gz to its name (…{path.suffix}.gz), so that it is decompressed first." if kind.startswith("gzip") else
                  "Give the data as UTF-8 text: JSON Lines (prompt/completion or messages), CSV/TSV, JSON, "
                  "or an .xlsx spreadsheet named .xlsx."))
    # A UTF-16 (Windows "Unicode") file would otherwise get the latin1 advice below, which garbles it.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)):
        encoding = "utf-32" if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) else "utf-16"
        raise DataFileError(
            f"{path} is {encoding.upper()} text{' after decompression' if compressed else ''} (it starts with a "
            f"{encoding.upper()} byte-order mark), not UTF-8.",
            hint=f"Re-save the file as UTF-8, e.g. `iconv -f {encoding} -t utf-8 IN > OUT`, or 'Save as: CSV UTF-8' "
                 "in a spreadsheet program.")
    try:
        text = data.decode("utf-8-sig")  # -sig: a leading BOM (Excel, Notepad) is not data
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        where = " of the decompressed data" if compressed else ""
        raise DataFileError(
            f"{path} is not valid UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start}{where} "
            f"(line {line}) cannot be decoded ({exc.reason}).",
            hint="Re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT` "
                 "or 'Save as: CSV UTF-8' in a spreadsheet program.",
        ) from None
    nul = text.find("\x00")
    if nul >= 0:  # no text format allows it: a binary file, or UTF-16 text without its BOM
        raise DataFileError(
            f"{path}: line {text.count(chr(10), 0, nul) + 1} holds a NUL byte (\\x00), so this is not a text file"
            + (" (after decompression)" if compressed else "") + ".",
            hint="Export the data as UTF-8 text (CSV or JSON Lines); a file saved as UTF-16 has a NUL byte in "
                 "every other position.")
    return text


def _columns_of(rows: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} (column {exc.colno})"


def _too_long(length: int) -> str:
    return f"{length:,} characters long; a row may hold at most {MAX_ROW_CHARS:,}"


def _read_jsonl(path: Path, text: str) -> Table:
    rows, lines, problems = [], [], []
    # split("\n") rather than splitlines(): JSON strings may legally hold U+2028 etc., and the
    # line numbers must match what an editor shows.
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue  # blank lines (e.g. a trailing one) carry no row
        if len(raw) > MAX_ROW_CHARS:
            problems.append(f"line {number}: {_too_long(len(raw))}")
            continue
        try:
            obj = safejson.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: malformed JSON: {_json_error(exc)}")
            continue
        except safejson.JSONValueError as exc:
            problems.append(f"line {number}: {exc.message}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {number}: expected a JSON object {{...}}, found {type(obj).__name__}")
            continue
        rows.append(obj)
        lines.append(number)
    if problems:
        long_rows = any("characters long" in p for p in problems)
        raise_problems(f"{path}: {len(problems)} line(s) cannot be read as JSON Lines:", problems,
                       hint=_LONG_ROW_HINT if long_rows else
                       _looks_like_csv(text) or "Each line must hold one complete JSON object.")
    return Table(path, "jsonl", _columns_of(rows), rows, lines)


def _looks_like_csv(text: str) -> str | None:
    """A hint when a .json or .jsonl file's first line reads like a CSV header (comma-separated
    names, no brace): the file was saved under the wrong extension."""
    first = text.lstrip().split("\n", 1)[0]
    if "," in first and not first.startswith(("{", "[")):
        return (f"Its first line looks like a CSV header ({first[:80]!r}); if the file is CSV, give it a .csv "
                "name so that it is read as a table.")
    return None


def _read_json(path: Path, text: str) -> Table:
    decoder = safejson.decoder()
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        # A .json file holding one object per line is common; read it as JSON Lines.
        try:
            _, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}: malformed JSON at line {exc.lineno}: {_json_error(exc)}",
                                hint=_looks_like_csv(text)) from None
        except RecursionError:
            raise DataFileError(f"{path}: line 1: nested more than {safejson.MAX_DEPTH} levels deep.") from None
        if text[end:].strip():
            return _read_jsonl(path, text)
        raise DataFileError(f"{path}: expected a JSON array of objects, found a single value.",
                            hint="Write the rows as [{...}, {...}] or as JSON Lines (.jsonl).")
    try:
        safejson.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}: malformed JSON at line {exc.lineno}: {_json_error(exc)}") from None
    except safejson.JSONValueError:
        pass  # the element-by-element pass below says on which line
    # Decode element by element to learn the line each row starts on.
    rows, lines, problems = [], [], []
    pos, line, counted = start + 1, 1, 0
    ws = re.compile(r"[\s,]*")
    while True:
        pos = ws.match(text, pos).end()
        if text.startswith("]", pos):
            break
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            obj, end = decoder.raw_decode(text, pos)
            safejson.check(obj, max_depth=safejson.MAX_DEPTH - 1)  # the array is the first level
        except RecursionError:
            raise DataFileError(f"{path}: line {line}: nested more than {safejson.MAX_DEPTH} levels deep.") from None
        except safejson.JSONValueError as exc:
            problems.append(f"line {line}: {exc.message}")
            pos = end
            continue
        if end - pos > MAX_ROW_CHARS:
            problems.append(f"line {line}: the element is {_too_long(end - pos)}")
            pos = end
            continue
        if isinstance(obj, dict):
            rows.append(obj)
            lines.append(line)
        else:
            problems.append(f"line {line}: expected a JSON object {{...}}, found {type(obj).__name__}")
        pos = end
    if problems:
        raise_problems(f"{path}: {len(problems)} element(s) cannot be read as rows:", problems)
    return Table(path, "json", _columns_of(rows), rows, lines)


def _read_delimited(path: Path, text: str, fmt: str) -> Table:
    # The csv module rather than pandas: it reports where each record starts, and records may
    # span several physical lines (quoted fields with line breaks).
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    header: list[str] | None = None
    rows, lines, problems = [], [], []
    previous_end = 0
    try:
        for record in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line
            if header is None:
                header = [name.strip() or f"Unnamed: {i}" for i, name in enumerate(record)]
                dupes = sorted({n for n in header if header.count(n) > 1})
                if dupes:
                    raise DataFileError(f"{path}: line {start}: the header repeats column(s) {dupes}.")
                continue
            if len(record) != len(header):
                problems.append(f"line {start}: {len(record)} fields, but the header has {len(header)} "
                                "(an unquoted separator or quote in a field?)")
                continue
            size = sum(len(value) for value in record)
            if size > MAX_ROW_CHARS:
                problems.append(f"line {start}: the row is {_too_long(size)}")
                continue
            rows.append(dict(zip(header, record)))
            lines.append(start)
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    if problems:
        raise_problems(f"{path}: {len(problems)} line(s) cannot be read as {fmt.upper()}:", problems,
                       hint="Fields containing separators, quotes or line breaks must be quoted.")
    if header is None:
        raise DataFileError(f"{path} is empty.")
    return Table(path, fmt, header, rows, lines)


def _read_xlsx(path: Path) -> Table:
    import pandas as pd

    try:
        # dtype=str and no NA conversion: cells stay text, like CSV, and "NA" stays "NA".
        frame = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many types for corrupt files; all mean "unreadable"
        raise DataFileError(f"{path}: cannot read the spreadsheet: {exc}") from None
    columns = [str(c) for c in frame.columns]
    if not columns:
        raise DataFileError(f"{path} is empty.")
    frame.columns = columns
    rows = frame.to_dict(orient="records")
    # Sheet row 1 is the header, so data row i sits on sheet row i + 2.
    return Table(path, "xlsx", columns, rows, [i + 2 for i in range(len(rows))])


# --- Validation of prepared files (used by training and by prepare_data) -------------------------


def detect_classification(completions: Sequence[str]) -> bool:
    """True when the completions look like class labels: fewer distinct values than a third of
    the rows (the legacy OpenAI rule). Surrounding whitespace does not make a new class."""
    if not completions:
        return False
    return len({normalize_label(c) for c in completions}) < len(completions) / 3


PREFERENCE_FIELDS = frozenset({"input", "preferred_output", "non_preferred_output"})
"""A row of OpenAI's preference (DPO) fine-tuning format."""


def read_prompt_completion(path: str | Path) -> list[Example]:
    """Read a prepared training file: prompt/completion rows, or chat rows (`{"messages": [...]}`,
    tunelab.data.chat) when its first row has `messages`. Every problem is reported at once, each as
    `file:line: field ...`. Extra keys are ignored. A name without a known extension is read as JSON
    Lines, the training format."""
    table = read_table(path, default_format="jsonl")
    if table.rows and "messages" in table.rows[0] and "prompt" not in table.rows[0]:
        return _read_chat(table)
    if table.rows and PREFERENCE_FIELDS <= set(table.rows[0]):
        raise DataFileError(f"{table.path} is a preference (DPO) file (`input`, `preferred_output`, "
                            "`non_preferred_output`): tunelab trains supervised only.",
                            hint='Give the preferred answers as chat examples, {"messages": [..., '
                                 '{"role": "assistant", "content": ...}]}, one per line.')
    if table.rows and not {"prompt", "completion"} & set(table.rows[0]):
        raise _raw_table(table)
    examples, problems = [], []
    for row, line in zip(table.rows, table.lines):
        bad = []
        if "messages" in row and "prompt" not in row:
            bad.append("is a chat example (`messages`), but the file's first row is prompt/completion; "
                       "use one format per file")
        else:
            for key in ("prompt", "completion"):
                value = row.get(key)
                if key not in row:
                    bad.append(f"field `{key}` is missing")
                elif not isinstance(value, str):
                    bad.append(f"field `{key}` must be text, found {type(value).__name__}")
        if not bad and not row["completion"].strip():
            bad.append("field `completion` is empty")
        problems += [f"{table.path}:{line}: {p}" for p in bad]
        if not bad:
            examples.append(Example(row["prompt"], row["completion"], line))
    if problems:
        raise_problems(f"{table.path} is not a valid prompt/completion file:", problems,
                       hint=f"Run `tunelab tools fine_tunes.prepare_data -f {table.path}` to fix it.")
    if not examples:
        raise DataFileError(f"{table.path} has no examples.")
    return examples


def _raw_table(table: Table) -> RawTableError:
    """A file of reviews as published (Amazon's review_body/stars, a CSV export) given where a
    prompt/completion file belongs: one error that names the command building one, not a
    `prompt is missing` line per row."""
    from tunelab.data.bundled import presets_fitting

    columns = list(table.rows[0])
    fitting = presets_fitting(columns)
    # The command is one that runs when pasted; other fitting presets are named after it.
    how = f"--preset {fitting[0]}" if fitting else "--text COLUMN[,COLUMN...] --label COLUMN"
    others = "".join(f" (or --preset {name})" for name in fitting[1:])
    # never the raw file's own folder: data/train.jsonl with --out data would be written over
    out = "data" if Path(table.path).resolve().parent != Path("data").resolve() else "prompts"
    return RawTableError(
        f"{table.path} has no `prompt`/`completion` fields (its first row has {', '.join(f'`{c}`' for c in columns[:8])}"
        f"{', ...' if len(columns) > 8 else ''}): it looks like a table of raw reviews, not a prompt/completion file.",
        hint=f"Build prompt/completion files from it first: `tunelab datasets build {table.path} {how} --out {out}`"
             f"{others} (or give the folder that holds its train, dev and test files, to keep a published split), "
             f"then use {out}/train.jsonl, {out}/valid.jsonl and {out}/test.jsonl.",
        columns=columns, presets=fitting)


def _read_chat(table: Table) -> list[Example]:
    examples, problems = [], []
    for row, line in zip(table.rows, table.lines):
        if "messages" not in row:
            bad = ["field `messages` is missing (the file's first row is a chat example; use one format per file)"]
        else:
            bad = validate_example(row)
        problems += [f"{table.path}:{line}: {p}" for p in bad]
        if not bad:
            messages = clean_messages(row["messages"])
            reply = last_reply(messages)
            examples.append(Example(transcript(messages[:reply]), messages[reply]["content"], line, messages))
    if problems:
        raise_problems(f"{table.path} is not a valid chat file:", problems,
                       hint="Each line holds {\"messages\": [{\"role\": \"system\"|\"user\"|\"assistant\", "
                            "\"content\": \"...\"}, ...]} with at least one assistant message; check it with "
                            f"`tunelab tools fine_tunes.prepare_data -f {table.path}`.")
    return examples
