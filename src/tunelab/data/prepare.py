"""The legacy `fine_tunes.prepare_data` checker as pure functions.

`analyze(path)` reads a file and returns what it found (Findings) and what it proposes (Actions).
The checks run in (nearly) the legacy order, each on the data as it would be after the earlier actions,
so every count it reports is what accepting that action will actually do. `apply_actions`,
`plan_split` and `write_prepared` then produce the output; the CLI only asks and prints.

Choices (the legacy tool's, where it had one):
- Length limit: the legacy tool dropped examples over ~2048 tokens. Without a tokenizer here we
  use a character proxy: len(prompt) + len(completion) > MAX_EXAMPLE_CHARS (8000, ~4 chars a token).
- Lowercasing is proposed for a column when more than a third of its letters are upper case.
- Classification: fewer distinct completions than a third of the rows (readers.detect_classification).
- Binary classification: the positive class is a completion that reads as positive (yes, true, 1,
  positive, ...); otherwise the first of the two in sorted order, as the legacy tool did
  (tunelab.data.labels.positive_class).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.data.labels import has_leading_space, most_frequent_class, positive_class, with_leading_space
from tunelab.data.chat import clean_messages, last_reply
from tunelab.data.readers import detect_classification, raise_problems, read_table, validate_example
from tunelab.errors import DataFileError, MissingFileError, TunelabError
from tunelab.fsutil import atomic_open

if TYPE_CHECKING:
    import pandas as pd

SEPARATORS = ("\n\n###\n\n", "\n\n===\n\n", "\n\n---\n\n", " ->")
STOP_SEQUENCES = ("\n", " END")
MAX_EXAMPLE_CHARS = 8000
UPPER_CASE_SHARE = 1 / 3
MIN_EXAMPLES = 100
MAX_VALID = 1000
VALID_FRACTION = 0.2
MAX_ROWS_SHOWN = 50

PROMPT_COMPLETION = "prompt-completion"
CHAT = "chat"


@dataclass(frozen=True)
class Finding:
    message: str
    rows: tuple[int, ...] = ()  # file lines the finding is about
    warning: bool = False


@dataclass(frozen=True)
class Action:
    key: str
    message: str
    apply: Callable[[pd.DataFrame], pd.DataFrame] = field(repr=False)
    rows: tuple[int, ...] = ()
    necessary: bool = False

    @property
    def label(self) -> str:
        return "[Necessary]" if self.necessary else "[Recommended]"


@dataclass
class Analysis:
    path: Path
    format: str
    kind: str  # PROMPT_COMPLETION or CHAT
    data: pd.DataFrame  # as read; index = file line
    findings: list[Finding]
    actions: list[Action]
    classification: bool  # with every action accepted


@dataclass(frozen=True)
class SplitPlan:
    train: pd.DataFrame
    valid: pd.DataFrame
    stratified: bool
    note: str | None = None


# --- small helpers ------------------------------------------------------------------------------


def show(text: str) -> str:
    """Make separators visible in one-line messages: "\\n\\n###\\n\\n"."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def there_are(count: int, noun: str) -> str:
    return f"There {'is' if count == 1 else 'are'} {plural(count, noun)}"


def rows_text(rows: Sequence[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:MAX_ROWS_SHOWN])
    more = f", ... and {len(rows) - MAX_ROWS_SHOWN} more" if len(rows) > MAX_ROWS_SHOWN else ""
    return f"[{shown}{more}]"


def _lines(index) -> tuple[int, ...]:
    return tuple(int(i) for i in index)


def _where(df: pd.DataFrame, mask: Sequence[bool]) -> tuple[int, ...]:
    """File lines of the rows where mask is true."""
    import numpy as np

    return _lines(df.index[np.asarray(mask, dtype=bool)])


def _common_suffix(values: Sequence[str]) -> str:
    return os.path.commonprefix([v[::-1] for v in values])[::-1]


def prompt_separator(prompts: Sequence[str]) -> str:
    """The separator every prompt ends with ("\\n\\n###\\n\\n", " ->", ...), as prepare_data finds
    it; "" when there is none (or fewer than two prompts to tell). Blank prompts are left out: one
    of them would hide the separator all the others share (prepare_data flags them itself)."""
    prompts = [p for p in prompts if p.strip()]
    return _marker(_common_suffix(prompts), SEPARATORS) if len(prompts) > 1 else ""


def _marker(suffix: str, known: Sequence[str]) -> str:
    """The separator/stop sequence inside a common suffix: a known one it ends with, else the
    suffix without the word characters that prompts share by chance ("ing ->" -> " ->").
    "" when what is left is only words, spaces and sentence punctuation: prompts that all end in
    "." or " is here" have no separator, while "\\n", " ->" or " Sentiment:" are ones."""
    for marker in sorted(known, key=len, reverse=True):
        if suffix.endswith(marker):
            return marker
    marker = re.sub(r"^[\w.,!?;'\")\]]+", "", suffix)
    if re.fullmatch(r"[\w .,!?;'\")\]]*", marker) and not marker.endswith(":"):
        return ""
    return marker


def _word_prefix(values: Sequence[str]) -> str:
    """Common prefix cut back to a word boundary, so "positive"/"possible" share nothing."""
    prefix = os.path.commonprefix(list(values))
    if prefix and prefix[-1].isalnum() and any(len(v) > len(prefix) and v[len(prefix)].isalnum() for v in values):
        prefix = re.sub(r"\w+$", "", prefix)
    return prefix


def _drop(lines: Sequence[int]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda df: df.drop(index=[i for i in lines if i in df.index])


def _map_column(column: str, fn: Callable[[str], str]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        out[column] = [fn(v) for v in out[column]]
        return out

    return apply


def replies(data: pd.DataFrame) -> list[str]:
    """What each row teaches as its answer: the completion, or for chat rows the text of the last
    learnt assistant message (the label when the replies form a small set)."""
    if "messages" in data and "completion" not in data:
        return [msgs[last_reply(msgs)]["content"] for msgs in data["messages"]]
    return list(data["completion"])


def _example_text(df: pd.DataFrame, kind: str) -> list[str]:
    if kind == CHAT:
        return ["".join(m["content"] for m in msgs) for msgs in df["messages"]]
    return [p + c for p, c in zip(df["prompt"], df["completion"])]


# --- loading ------------------------------------------------------------------------------------


def _as_text(value: Any) -> str | None:
    """Prompt/completion cell as text; None for a value that cannot be text (list, object)."""
    if value is None or (isinstance(value, float) and value != value):  # NaN
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    return None


def load(path: str | Path) -> tuple[str, str, pd.DataFrame, list[Finding]]:
    """Read `path` for prepare_data: (format, kind, data indexed by file line, notes).
    Raises MissingFileError (a NotFoundError) for a missing file, DataFileError for unusable ones,
    listing every problem."""
    import pandas as pd

    if not Path(path).exists():
        raise MissingFileError(f"The data file {path} does not exist.")
    if str(path).lower().endswith(".txt"):
        fmt, columns, rows, lines = "txt", ["prompt", "completion"], *_read_txt(Path(path))
        as_written = columns
    else:
        table = read_table(path)
        path, fmt, columns, rows, lines = table.path, table.format, table.columns, table.rows, table.lines
        as_written = columns  # presets name the headers as written, before they are lower-cased
        if not rows:
            raise DataFileError(f"{path} has no rows, only a header.")
        columns, rows = _lower_headers(columns, rows)
    if "prompt" in columns and "completion" in columns:
        kind = PROMPT_COMPLETION
    elif "messages" in columns:
        kind = CHAT
    else:
        missing = [c for c in ("prompt", "completion") if c not in columns]
        found = ", ".join(f"`{c}`" for c in columns) or "none"
        from tunelab.data.bundled import presets_fitting

        fitting = presets_fitting(as_written)
        how = f"--preset {fitting[0]}" if fitting else "--text COL --label COL"
        others = "".join(f" (or --preset {name})" for name in fitting[1:])
        raise DataFileError(
            f"{path} has no {' or '.join(f'`{c}`' for c in missing)} column. Columns found: {found}.",
            hint="Rename the column holding the input text to `prompt` and the one holding the desired "
                 "output to `completion` (or give chat data a `messages` key). To make prompt/completion "
                 f"pairs from text and label columns, use `tunelab datasets build {path} {how} --out DIR`{others}.",
        )
    problems, records, numbers = [], [], 0
    for row, line in zip(rows, lines):
        record = dict(row)
        if kind == CHAT:
            bad = validate_example(row)
            problems += [f"line {line}: {p}" for p in bad]
            if not bad:  # text parts joined: the checks below read each message's text
                record["messages"] = clean_messages(row["messages"])
        else:
            for key in ("prompt", "completion"):
                text = _as_text(row.get(key))
                if text is None:
                    problems.append(f"line {line}: field `{key}` must be text, found {type(row[key]).__name__}")
                else:
                    numbers += isinstance(row.get(key), (int, float, bool))
                    record[key] = text
        records.append(record)
    if problems:
        what = "chat examples" if kind == CHAT else "prompt/completion values"
        raise_problems(f"{path} has {len(problems)} invalid {what}:", problems)
    data = pd.DataFrame(records, index=pd.Index(lines, name="line"))
    notes = [Finding(f"{numbers} prompt/completion values are numbers; they will be written as text")]
    return fmt, kind, data, notes if numbers else []


def _read_txt(path: Path) -> tuple[list[dict], list[int]]:
    """A .txt file as the legacy tool read it: each line a completion with an empty prompt (data for
    open-ended generation)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path} is not valid UTF-8 (byte offset {exc.start}).") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataFileError(f"{path} is empty.", hint="The file has no lines of text.")
    return [{"prompt": "", "completion": line} for line in lines], list(range(1, len(lines) + 1))


def _lower_headers(columns: list[str], rows: list[dict]) -> tuple[list[str], list[dict]]:
    """`Prompt`/`COMPLETION` headers (a spreadsheet's habit) read as `prompt`/`completion`, as the
    legacy tool lower-cased them; a column already named in lower case wins."""
    rename = {c: c.lower() for c in columns
              if c.lower() in ("prompt", "completion", "messages") and c != c.lower() and c.lower() not in columns}
    if not rename:
        return columns, rows
    return [rename.get(c, c) for c in columns], [{rename.get(k, k): v for k, v in row.items()} for row in rows]


# --- the checks ---------------------------------------------------------------------------------
# Each takes the data as it would be after the earlier actions and returns (findings, action).

Check = tuple[list[Finding], Action | None]


def _check_columns(df: pd.DataFrame, kind: str) -> Check:
    keep = ["messages"] if kind == CHAT else ["prompt", "completion"]
    extra = [c for c in df.columns if c not in keep]
    if not extra:
        return [], None
    names = ", ".join(f"`{c}`" for c in extra)
    return (
        [Finding(f"Your file contains additional columns/keys besides {' and '.join(keep)}: {names}")],
        Action("drop_columns", f"Remove additional columns/keys: {names}",
               lambda d: d[[c for c in d.columns if c in keep]]),
    )


def _check_empty_completions(df: pd.DataFrame) -> Check:
    empty = _where(df, [not c.strip() for c in df["completion"]])
    if not empty:
        return [], None
    return (
        [Finding(f"{there_are(len(empty), 'example')} with an empty completion. These are rows: {rows_text(empty)}",
                 empty)],
        Action("drop_empty", f"Remove {plural(len(empty), 'row')} with empty completions", _drop(empty), empty,
               necessary=True),
    )


def _check_empty_prompts(df: pd.DataFrame) -> Check:
    # All prompts empty is open-ended generation (a .txt file), not a problem.
    blank = [not p.strip() for p in df["prompt"]]
    empty = _where(df, blank)
    if not empty or all(blank):
        return [], None
    return (
        [Finding(f"{there_are(len(empty), 'example')} with an empty prompt, while the other prompts have text. "
                 f"These are rows: {rows_text(empty)}", empty)],
        Action("drop_empty_prompts", f"Remove {plural(len(empty), 'row')} with empty prompts", _drop(empty), empty),
    )


def _check_duplicates(df: pd.DataFrame, kind: str) -> Check:
    if kind == CHAT:
        keys = df["messages"].map(lambda m: json.dumps(m, sort_keys=True, ensure_ascii=False))
        dup, what = keys.duplicated(), "chat"
    else:
        dup, what = df.duplicated(subset=["prompt", "completion"]), "prompt-completion"
    rows = _lines(df.index[dup.to_numpy()])
    if not rows:
        return [], None
    return (
        [Finding(f"{there_are(len(rows), f'duplicated {what} set')}. These are rows: {rows_text(rows)} "
                 "(the first of each is kept)", rows)],
        Action("drop_duplicates", f"Remove {plural(len(rows), 'duplicate row')}", _drop(rows), rows),
    )


def _check_long(df: pd.DataFrame, kind: str) -> Check:
    rows = _where(df, [len(t) > MAX_EXAMPLE_CHARS for t in _example_text(df, kind)])
    if not rows:
        return [], None
    return (
        [Finding(f"{there_are(len(rows), 'very long example')}: over {MAX_EXAMPLE_CHARS} characters "
                 "(prompt + completion), our stand-in for the legacy limit of about 2048 tokens. "
                 f"These are rows: {rows_text(rows)}", rows, warning=True)],
        Action("drop_long", f"Remove {plural(len(rows), 'long example')}", _drop(rows), rows),
    )


def _check_prompt_prefix(df: pd.DataFrame) -> Check:
    prompts = list(df["prompt"])
    if len(prompts) < 2:
        return [], None
    prefix, suffix = _word_prefix(prompts), _common_suffix(prompts)
    # Only a visible prefix, and only if every prompt keeps some text of its own.
    if not prefix.strip() or any(not p[len(prefix):len(p) - len(suffix)].strip() for p in prompts):
        return [], None
    return (
        [Finding(f"All prompts start with prefix `{show(prefix)}`. Fine-tuning does not need an instruction "
                 "repeated in every prompt; the model learns the task from the examples")],
        Action("strip_prompt_prefix", f"Remove prefix `{show(prefix)}` from all prompts",
               _map_column("prompt", lambda p: p[len(prefix):] if p.startswith(prefix) else p)),
    )


def _check_completion_prefix(df: pd.DataFrame) -> Check:
    # Compared without leading whitespace: the leading space is wanted, the text after it is not.
    stripped = [c.lstrip() for c in df["completion"]]
    if len(stripped) < 2:
        return [], None
    prefix = _word_prefix(stripped)
    if not prefix.strip() or any(not s[len(prefix):].strip() for s in stripped):
        return [], None

    def strip(c: str) -> str:
        body = c.lstrip()
        return c[: len(c) - len(body)] + body[len(prefix):] if body.startswith(prefix) else c

    return (
        [Finding(f"All completions start with prefix `{show(prefix)}`. Most of the time you should put only "
                 "the desired output in the completion")],
        Action("strip_completion_prefix", f"Remove prefix `{show(prefix)}` from all completions",
               _map_column("completion", strip)),
    )


def _suffix_findings(df: pd.DataFrame, column: str, suffix: str) -> list[Finding]:
    what, values = column, list(df[column])
    findings = [Finding(f"All {what}s end with suffix `{show(suffix)}`")]
    inside = _where(df, [suffix in v[: -len(suffix)] for v in values])
    if inside:
        findings.append(Finding(
            f"The suffix `{show(suffix)}` also appears inside {len(inside)} {what}s, so the model cannot tell "
            f"where the {what} ends. Consider a unique separator. These are rows: {rows_text(inside)}",
            inside, warning=True))
    return findings


def _check_separator(df: pd.DataFrame) -> Check:
    prompts = list(df["prompt"])
    if not any(prompts):
        return [Finding("All prompts are empty: the model will learn open-ended generation")], None
    suffix = prompt_separator(prompts)
    if suffix:
        return _suffix_findings(df, "prompt", suffix), None
    message = ("Your data does not contain a common separator at the end of your prompts. A separator "
               "appended to every prompt tells the fine-tuned model where the completion begins")
    sep = next((s for s in SEPARATORS if not any(s in p for p in prompts)), None)
    if sep is None:
        tried = ", ".join(f"`{show(s)}`" for s in SEPARATORS)
        return [Finding(f"{message}. Every candidate ({tried}) already occurs in some prompt; "
                        "add a separator of your own", warning=True)], None
    return (
        [Finding(message)],
        Action("add_separator", f"Add a suffix separator `{show(sep)}` to all prompts",
               _map_column("prompt", lambda p: p if p.endswith(sep) else p + sep)),
    )


def _check_leading_space(df: pd.DataFrame) -> Check:
    rows = _where(df, [not has_leading_space(c) for c in df["completion"]])
    if not rows:
        return [], None
    return (
        [Finding(f"The completion should start with a whitespace character (` `); {len(rows)} do not. This tends "
                 f"to produce better results due to the tokenization. These are rows: {rows_text(rows)}", rows)],
        Action("add_leading_space", "Add a whitespace character to the beginning of the completion",
               _map_column("completion", with_leading_space), rows),
    )


def _check_lowercase(df: pd.DataFrame, column: str) -> Check:
    text = "".join(df[column])
    upper = sum(ch.isupper() for ch in text)
    letters = upper + sum(ch.islower() for ch in text)
    if not letters or upper / letters <= UPPER_CASE_SHARE:
        return [], None
    return (
        [Finding(f"{upper / letters:.0%} of the letters in your {column}s are upper case (more than a third). "
                 "Lowercase text usually fine-tunes better")],
        Action(f"lowercase_{column}", f"Lowercase all your data in column/key `{column}`",
               _map_column(column, str.lower)),
    )


def _check_stop(df: pd.DataFrame) -> Check:
    completions = list(df["completion"])
    suffix = _marker(_common_suffix(completions), STOP_SEQUENCES) if len(completions) > 1 else ""
    if suffix.strip(" "):  # a common ending other than plain spaces already works as a stop
        return _suffix_findings(df, "completion", suffix), None
    message = ("Your data does not contain a common ending at the end of your completions. A stop sequence "
               "appended to every completion tells the fine-tuned model where to stop")
    stop = next((s for s in STOP_SEQUENCES if not any(s in c for c in completions)), None)
    if stop is None:
        return [Finding(f"{message}. `\\n` and ` END` already occur inside completions; add a stop sequence "
                        "of your own", warning=True)], None
    return (
        [Finding(message)],
        Action("add_stop", f"Add a suffix ending `{show(stop)}` to all completions",
               _map_column("completion", lambda c: c if c.endswith(stop) else c + stop)),
    )


def _classification_findings() -> list[Finding]:
    return [
        Finding("Based on your data it seems like you're trying to fine-tune a model for classification"),
        Finding("For classification, you can estimate the expected model performance by keeping a held out "
                "validation set, which is not used for training"),
    ]


def analyze(path: str | Path) -> Analysis:
    """Read `path` and run every check. Raises MissingFileError (a NotFoundError) when there is no
    such file, DataFileError when the file cannot be used."""
    fmt, kind, data, notes = load(path)
    what = "chat examples" if kind == CHAT else "prompt-completion pairs"
    findings = [
        Finding(f"Your file contains {len(data)} {what}; rows are numbered by their line in the file"),
        Finding(f"Based on your file extension, your file is formatted as a {fmt.upper()} file"),
        *notes,
    ]
    actions: list[Action] = []
    df = data

    def run(check: Callable[..., Check], *args: Any) -> None:
        nonlocal df
        if df.empty:
            return
        found, action = check(df, *args)
        findings.extend(found)
        if action:
            actions.append(action)
            df = action.apply(df)

    run(_check_columns, kind)
    classification = False
    if kind == PROMPT_COMPLETION:
        run(_check_empty_completions)
        run(_check_empty_prompts)
    run(_check_duplicates, kind)
    run(_check_long, kind)
    if kind == CHAT and not df.empty:
        for role in ("system", "user"):  # as OpenAI's checker counts them: worth knowing, not wrong
            missing = _where(df, [not any(m["role"] == role for m in msgs) for msgs in df["messages"]])
            if missing and len(missing) < len(df):
                findings.append(Finding(f"{there_are(len(missing), 'example')} without a {role} message. These are "
                                        f"rows: {rows_text(missing)}", missing, warning=True))
        classification = detect_classification(replies(df))
        if classification:
            findings.extend(_classification_findings())
            findings.append(Finding(f"The last assistant replies form {len(set(replies(df)))} labels; a classifier "
                                    "learns them from the conversation before them"))
    if kind == PROMPT_COMPLETION and not df.empty:
        _refuse_identical(df, path)
        classification = detect_classification(list(df["completion"]))
        if classification:
            findings.extend(_classification_findings())
        run(_check_prompt_prefix)
        run(_check_completion_prefix)
        run(_check_separator)
        run(_check_leading_space)
        run(_check_lowercase, "prompt")
        run(_check_lowercase, "completion")
        if not classification:
            run(_check_stop)
    if len(df) < MIN_EXAMPLES:
        findings.append(Finding(
            f"Your data contains {len(df)} examples. We recommend at least a few hundred; below "
            f"{MIN_EXAMPLES} fine-tuning rarely works well, and quality tends to rise with every doubling "
            "of the data", warning=True))
    return Analysis(Path(path), fmt, kind, data, findings, actions, classification)


def _refuse_identical(df: pd.DataFrame, path: str | Path) -> None:
    """The legacy tool's two fatal findings: every prompt the same (unless all empty: open-ended
    generation), or every completion the same (the model would only repeat it)."""
    if len(df) < 2:
        return
    prompts, completions = set(df["prompt"]), set(df["completion"])
    if len(prompts) == 1 and next(iter(prompts)):
        raise DataFileError(f"All prompts in {path} are identical: `{show(next(iter(prompts)))}`.",
                            hint="Leave the prompts blank for open-ended generation; otherwise each prompt must "
                                 "hold its own input.")
    if len(completions) == 1:
        raise DataFileError(f"All completions in {path} are identical: `{show(next(iter(completions)))}`.",
                            hint="The completions must differ, otherwise the model only learns to repeat that one.")


# --- applying, splitting, writing ---------------------------------------------------------------


def apply_actions(data: pd.DataFrame, actions: Sequence[Action], path: str | Path = "the file") -> pd.DataFrame:
    """Apply the accepted actions in order. Raises DataFileError when no rows are left."""
    for action in actions:
        data = action.apply(data)
    if data.empty:
        raise DataFileError(f"No rows are left in {path} after the fixes; nothing to write.",
                            hint="Check that the completions are not all empty or duplicated.")
    return data


def classes(data: pd.DataFrame) -> list[str] | None:
    """The class labels (exact completion strings, sorted) when the data is classification."""
    if ("completion" not in data and "messages" not in data) or not detect_classification(replies(data)):
        return None
    return sorted(set(replies(data)))


def plan_split(data: pd.DataFrame, seed: int = 42) -> SplitPlan | None:
    """Stratified train/validation split for classification data; None when not classification
    or too small. Validation gets min(1000, 20 % of rows)."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    labels = classes(data)
    n_valid = min(MAX_VALID, int(len(data) * VALID_FRACTION))
    if labels is None or n_valid < 1:
        return None
    answers = pd.Series(replies(data), index=data.index)
    counts = answers.value_counts()
    single = [str(c) for c in counts.index[counts < 2]]
    # A class with one example cannot be in both sets; it stays in training (a validation-only
    # class makes fine_tunes.create refuse the pair), and the other classes are still stratified.
    pool = data[~answers.isin(single)]
    note = None
    if single:
        note = (f"{len(single)} class(es) have a single example ({', '.join(repr(s) for s in single[:5])}); "
                "each stays in the training set")
    n_classes = len(labels) - len(single)
    if n_valid >= len(pool):
        return None
    if n_valid < n_classes or len(pool) - n_valid < n_classes:
        note = "; ".join(filter(None, [note, f"too few rows to put each of the {n_classes} classes in both sets, "
                                              "so the split is random"]))
        train, valid = train_test_split(pool, test_size=n_valid, random_state=seed)
        stratified = False
    else:
        train, valid = train_test_split(pool, test_size=n_valid, random_state=seed, stratify=answers[pool.index])
        stratified = True
    # Whatever the split, no class may be in validation only.
    unseen = ~answers[valid.index].isin(set(answers[train.index]))
    train = pd.concat([train, valid[unseen], data[answers.isin(single)]])
    valid = valid[~unseen]
    return SplitPlan(train, valid, stratified=stratified, note=note)


def output_paths(path: str | Path, split: bool) -> list[Path]:
    """`<name>_prepared.jsonl`, or `_prepared_train.jsonl` and `_prepared_valid.jsonl`, next to `path`.
    Existing files are never overwritten: as the legacy tool did, ` (1)`, ` (2)`, ... is added to the
    names until none of them exists."""
    path = Path(path)
    name = re.sub(r"(\.(csv|tsv|tab|xlsx|xlsm|json|jsonl|ndjson|txt))?(\.gz)?$", "", path.name, flags=re.IGNORECASE)
    parts = ["_train", "_valid"] if split else [""]
    for i in range(10000):
        index = f" ({i})" if i else ""
        candidates = [path.with_name(f"{name}_prepared{part}{index}.jsonl") for part in parts]
        if not any(c.exists() for c in candidates):
            return candidates
    raise DataFileError(f"Too many prepared files next to {path}; remove some of them.")


def _records(data: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in data.to_dict(orient="records"):
        # Keys a row never had come back from pandas as NaN/None; leave them out.
        out.append({k: v for k, v in row.items() if not (v is None or (isinstance(v, float) and v != v))})
    return out


def write_prepared(path: str | Path, data: pd.DataFrame, split: SplitPlan | None = None) -> list[Path]:
    """Write the prepared JSONL file(s) atomically: all of them appear, or none."""
    parts = [split.train, split.valid] if split else [data]
    targets = output_paths(path, split is not None)
    # Renames happen only when every file is fully written; an error removes all temporaries.
    try:
        with contextlib.ExitStack() as stack:
            for target, part in zip(targets, parts):
                fh = stack.enter_context(atomic_open(target))
                for record in _records(part):
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise TunelabError(f"Cannot write the prepared file next to {path}: {exc}") from None
    return targets


def _quote(text: str) -> str:
    return f'"{text}"' if not re.search(r'["$`\\!\n]', text) else shlex.quote(text)


def next_command(train: Path, valid: Path | None = None, labels: Sequence[str] | None = None,
                 model: str = "ada", completions: Sequence[str] | None = None) -> str:
    """The `tunelab api fine_tunes.create` command for the prepared files. `completions` (every
    reply): the positive class of binary data is the most frequent one, as the legacy tool chose."""
    cmd = f"tunelab api fine_tunes.create -t {_quote(str(train))}"
    if valid:
        cmd += f" -v {_quote(str(valid))}"
    cmd += " -m " + (_quote(model) if re.search(r"[^\w.:/@+-]", model) else model)
    if labels and valid:
        positive = most_frequent_class(completions, labels) if completions else positive_class(labels)
        cmd += " --compute_classification_metrics"
        if positive is not None:
            cmd += f" --classification_positive_class {_quote(positive)}"
        else:
            cmd += f" --classification_n_classes {len(labels)}"
    return cmd


def usage_notes(data: pd.DataFrame) -> list[str]:
    """Reminders for using the fine-tuned model: the separator and the stop sequence."""
    if "prompt" not in data:
        return []
    notes = []
    prompts, completions = list(data["prompt"]), list(data["completion"])
    sep = prompt_separator(prompts)
    if sep:
        notes.append(f"After you've fine-tuned a model, remember that your prompt has to end with the indicator "
                     f"string `{show(sep)}` for the model to start generating completions, rather than "
                     "continuing with the prompt.")
    stop = _marker(_common_suffix(completions), STOP_SEQUENCES) if len(completions) > 1 else ""
    if stop and not detect_classification(completions):
        notes.append(f'Make sure to include `stop=["{show(stop)}"]` so that the generated texts end at the '
                     "expected place.")
    return notes
