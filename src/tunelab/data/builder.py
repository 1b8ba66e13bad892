"""Build prompt/completion train/valid/test files from a table of text and label columns.

The format follows the book chapter: prompt = the text fields joined with "\\n" (empty ones
skipped) + separator; completion = " " + label. Any dataset works through the column mapping
(`text_columns`, `label_column`); presets only name common mappings.

Split membership is always seeded and stratified; `shuffle` only decides the row order inside
each file (seeded random, or sorted by label to reproduce the "unshuffled" experiment). A bundled
dataset, or a folder holding one file per split (e.g. SST-5's sst5_train/dev/test.jsonl), keeps its
standard split: sizes then only sample within each part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab import textwidth
from tunelab.data.bundled import BUNDLED, PARTS, BundledDataset, get_bundled, get_preset, presets_fitting
from tunelab.data.labels import (
    COMPLETION_PREFIX, check_merge_map, format_label, is_ordinal, merged_label, normalize_label, sort_labels,
    with_leading_space,
)
from tunelab.data.readers import Table, raise_problems, read_table
from tunelab.errors import DataFileError, InvalidInputError, MissingFileError, TunelabError
from tunelab.fsutil import output_dir, write_json, write_jsonl

DEFAULT_SEPARATOR = "\n\n###\n\n"
DEFAULT_HOLDOUT_FRACTION = 0.1  # validation and test each, when no size is given
FILES = {"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl"}
DROP_REASONS = ("empty_text", "missing_label", "duplicate_prompt")


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    paths: dict[str, Path]  # "train", "valid", "test", "labels"
    counts: dict[str, int]  # rows per split
    labels: list[str]
    label_counts: dict[str, dict[str, int]]  # split -> label -> rows
    dropped: dict[str, int]  # reason -> rows
    ordinal: bool
    stratified: bool
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """The label table `datasets build` prints and a notebook shows: rows per label and split."""
        kind = "ordinal" if self.ordinal else "categorical"
        lines = [f"{len(self.labels)} {kind} labels{'' if self.stratified else ' (split not fully stratified)'}:"]
        width = max([len("label"), *(textwidth.columns(label) for label in self.labels)])
        lines.append(f"  {'label':<{width}} {'train':>7} {'valid':>7} {'test':>7}")
        for label in self.labels:
            counts = [self.label_counts[s].get(label, 0) for s in ("train", "valid", "test")]
            lines.append(f"  {textwidth.ljust(label, width)} {counts[0]:>7} {counts[1]:>7} {counts[2]:>7}")
        return lines

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        # IPython and Jupyter show this instead of the dataclass's nested dicts.
        files = [f"{self.paths[name]}: {self.counts[name]} rows" for name in ("train", "valid", "test")]
        notes = [f"Note: {note}" for note in self.notes]
        printer.text("BuildResult(...)" if cycle else "\n".join([*files, "", *self.summary(), *notes]))


@dataclass
class _Row:
    prompt: str
    label: str
    part: str | None  # canonical part of a bundled dataset, else None
    where: str  # "file:line"


def make_prompt(row: dict[str, Any], text_columns: Sequence[str], separator: str = DEFAULT_SEPARATOR) -> str:
    """The text fields joined with newlines plus the separator; "" when every field is empty.
    Fields are stripped: stray whitespace before the separator would change its tokens."""
    parts = [str(row.get(c)).strip() for c in text_columns if row.get(c) is not None]
    text = "\n".join(p for p in parts if p)
    return text + separator if text else ""


def resolve_columns(source: str | Path, *, preset: str | None = None, text_columns: Sequence[str] | None = None,
                    label_column: str | None = None) -> tuple[list[str], str, str | None]:
    """(text columns, label column, preset used): explicit columns override the preset, which
    overrides a bundled dataset's default preset."""
    _check_source(source)  # a missing file is the first thing to say, before which columns
    dataset = _bundled(source)
    name = preset or (dataset.default_preset if dataset and not (text_columns and label_column) else None)
    chosen = get_preset(name) if name else None
    text = list(text_columns or (chosen.text_columns if chosen else []))
    label = label_column or (chosen.label_column if chosen else None)
    if not text or not label:
        raise InvalidInputError("Say which columns to use: --text COL[,COL...] and --label COL, or --preset NAME.",
                                hint=_columns_hint(source, text, label))
    return text, label, name


def _columns_hint(source: str | Path, text: Sequence[str], label: str | None) -> str | None:
    """What the table holds and the presets that fit it, so that the next try is the right one
    (Amazon's JSON lines fit amazon-stars and amazon-category). Only on that error path: it reads
    one table of the source (a release folder's training file)."""
    path = Path(source)
    try:
        columns = list(read_table(split_files(path)["train"] if path.is_dir() else path).columns)
    except (TunelabError, OSError, ValueError, IndexError):
        return None
    fitting = presets_fitting(columns)
    shown = ", ".join(f"`{c}`" for c in columns[:12]) + (", ..." if len(columns) > 12 else "")
    hint = f"{source} has the columns {shown}"
    if fitting:
        hint += f"; it fits --preset {' or --preset '.join(fitting)}"
        if text or label:  # --preset amazon-stars --label product_category: the preset's text, that label
            hint += " (--text and --label given with a preset replace its columns)"
    return hint + "."


# Words that name a split in a file name (a folder of split files), in the order they are tried.
SPLIT_WORDS = {"train": ("train",), "valid": ("valid", "validation", "val", "dev"), "test": ("test",)}
TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".xlsx", ".jsonl.gz", ".csv.gz", ".tsv.gz", ".json.gz")


def split_files(folder: str | Path, language: str | None = None) -> dict[str, Path]:
    """{part: file} of a folder holding one table per split, matched by a word of the file's path
    below the folder (train; valid/validation/val/dev; test), in the folder itself or in one level
    of subfolders (Amazon's release: train/dataset_en_train.json, dev/..., test/...). `language`
    keeps the files whose name has that code as a word (dataset_en_train.json for "en"), for a
    release that holds several languages. DataFileError when a part is missing or ambiguous."""
    import re

    def word(w: str, text: str) -> bool:
        return re.search(rf"(^|[^a-z]){re.escape(w)}([^a-z]|$)", text) is not None

    folder = Path(folder)
    candidates = [f for f in sorted(folder.iterdir()) if f.is_file()]
    candidates += [f for sub in sorted(folder.iterdir()) if sub.is_dir() and not sub.name.startswith(".")
                   for f in sorted(sub.iterdir()) if f.is_file()]
    tables = [f for f in candidates if f.name.lower().endswith(TABLE_SUFFIXES)]
    if language:
        tables = [f for f in tables if word(language.lower(), f.name.lower())]
        if not tables:
            raise DataFileError(f"{folder}: no data file has the language code {language!r} in its name "
                                "(e.g. dataset_en_train.json for en).")
    found: dict[str, Path] = {}
    for part, words in SPLIT_WORDS.items():
        matches = [f for f in tables if any(word(w, f.relative_to(folder).as_posix().lower()) for w in words)]
        if len(matches) > 1:
            codes = sorted({m.group(1) for f in matches
                            if (m := re.search(r"(?:^|[^a-z])([a-z]{2})(?:[^a-z]|$)", f.name.lower().replace(part, "")))})
            hint = ("Pick one language with --language CODE" + (f" (these files: {', '.join(codes)})" if codes else "")
                    + ", or keep one file per split in the folder.")
            raise DataFileError(f"{folder}: several files look like the {part} split: "
                                f"{', '.join(m.relative_to(folder).as_posix() for m in matches)}.", hint=hint)
        if matches:
            found[part] = matches[0]
    missing = [part for part in ("train", "test") if part not in found]
    if missing:
        raise DataFileError(f"{folder}: no {' or '.join(missing)} file (a folder source needs one file per split, "
                            "named with train, valid/validation/val/dev and test).")
    return found


def _bundled(source: str | Path) -> BundledDataset | None:
    # A file of that name wins, so a bundled name can never hide the user's own data.
    return None if Path(source).exists() else get_bundled(str(source))


def _check_source(source: str | Path) -> None:
    if _bundled(source) is None and not Path(source).exists():
        raise MissingFileError(f"{source}: no such file or bundled dataset.",
                            hint=f"Bundled datasets: {', '.join(BUNDLED)} (see `tunelab datasets list`).")


def _load(source: str | Path, language: str | None = None) -> list[tuple[str | None, Table]]:
    _check_source(source)
    dataset = _bundled(source)
    if language and not (dataset is None and Path(source).is_dir()):
        raise InvalidInputError("--language picks files in a folder of one file per split and language; "
                                f"{source} is not such a folder.")
    if dataset:
        return [(part, read_table(dataset.path(part))) for part in PARTS]
    if Path(source).is_dir():
        return [(part, read_table(path)) for part, path in split_files(source, language).items()]
    return [(None, read_table(Path(source)))]


def _refuse_overwriting_data(paths: dict[str, Path], tables: list[tuple[str | None, Table]]) -> None:
    """A build writes over the prompt/completion files of an earlier build, never over its input or
    another data file: raw reviews in data/ (Amazon's train.jsonl, dev.jsonl, test.jsonl) with
    `--out data` would otherwise lose train.jsonl and test.jsonl."""
    import json

    inputs = [table.path for _, table in tables]
    for target in paths.values():
        if not target.is_file():
            continue
        if any(target.resolve() == Path(path).resolve() for path in inputs):
            raise InvalidInputError(f"--out {target.parent} would write over the input file {target}.",
                                    hint="Choose another output folder, e.g. --out prompts.")
        if target.suffix != ".jsonl":
            continue
        try:
            with target.open(encoding="utf-8") as fh:
                first = next((line for line in fh if line.strip()), "")
            row = json.loads(first) if first else {}
        except (OSError, UnicodeDecodeError, ValueError):
            first, row = "?", None  # unreadable or not JSON lines: not an earlier build's output
        if not first:
            continue
        if not isinstance(row, dict) or not ({"prompt", "completion"} <= set(row) or "messages" in row):
            raise InvalidInputError(f"--out {target.parent} would write over {target}, which is not a prompt/completion "
                                    "file of an earlier build (its first row has "
                                    f"{', '.join(f'`{k}`' for k in list(row or {})[:6]) or 'no JSON object'}).",
                                    hint="Choose another output folder, e.g. --out prompts, or move that file.")


def _check_columns(table: Table, wanted: Sequence[str], source: str | Path) -> None:
    import difflib

    missing = [c for c in wanted if c not in table.columns]
    if missing:
        present = ", ".join(f"`{c}`" for c in table.columns)
        close = {c: m[0] for c in missing if (m := difflib.get_close_matches(c, table.columns, n=1, cutoff=0.75))}
        fitting = presets_fitting(table.columns)
        hints = [f"did you mean {', '.join(f'`{m}` for `{c}`' for c, m in close.items())}?"] if close else []
        if fitting:
            hints.append(f"this table fits --preset {' or --preset '.join(fitting)}")
        hints.append("choose columns with --text COL[,COL...] and --label COL, or a --preset")
        hint = "; ".join(hints)
        raise DataFileError(
            f"{source if _bundled(source) else table.path}: no column {', '.join(f'`{c}`' for c in missing)}. "
            f"Columns present: {present}.",
            hint=hint[0].upper() + hint[1:] + ".")


def _collect(tables: list[tuple[str | None, Table]], text_columns: Sequence[str], label_column: str,
             separator: str, *, release: bool = False) -> tuple[list[_Row], dict[str, list[str]], list[str]]:
    """(rows, dropped rows by reason, notes). `release`: the files are a corpus's own split (a folder
    such as Amazon's dataset_en_{train,dev,test}.json), whose validation and test rows are kept as
    released even when they repeat a prompt, so that scores compare with published ones on the
    official split; the repeats are counted in a note."""
    rows: list[_Row] = []
    dropped: dict[str, list[str]] = {reason: [] for reason in DROP_REASONS}
    seen: dict[str, tuple[str, str]] = {}  # prompt -> (label, where) of the row kept
    repeats: dict[str, int] = {}
    conflicts: list[str] = []
    nested = [f"{table.path}:{line}: field `{column}`: a JSON {'list' if isinstance(record[column], list) else 'object'}"
              f", not a text or a number" for _, table in tables for record, line in zip(table.rows, table.lines)
              for column in (*text_columns, label_column) if isinstance(record.get(column), (list, dict))]
    if nested:
        # str() would make a label such as "['home']" or a prompt of a dict's repr, with no word said.
        raise_problems(f"{len(nested)} cell(s) hold a list or an object where a text or a label belongs:", nested,
                       hint='Write each of those fields as one string or number ("home", not ["home"]).')
    for part, table in tables:
        keep_repeats = release and part in ("valid", "test")
        for record, line in zip(table.rows, table.lines):
            where = f"{table.path.name}:{line}"
            prompt = make_prompt(record, text_columns, separator)
            label = format_label(record.get(label_column))
            repeated = prompt in seen
            reason = ("empty_text" if not prompt else "missing_label" if label is None
                      else "duplicate_prompt" if repeated and not keep_repeats else None)
            if reason:
                dropped[reason].append(where)
                if reason == "duplicate_prompt" and seen[prompt][0] != label:
                    conflicts.append(f"{where} ({label!r}; kept {seen[prompt][1]}, {seen[prompt][0]!r})")
                continue
            if repeated:
                repeats[part] = repeats.get(part, 0) + 1
            # first occurrence wins: outside a release, no prompt lands in two splits
            seen.setdefault(prompt, (label, where))
            rows.append(_Row(prompt, label, part, where))
    notes = [f"{n} {'validation' if part == 'valid' else part} row(s) repeat a prompt of an earlier row or file; "
             "kept, as the corpus's split has them" for part, n in repeats.items()]
    if conflicts:
        # The same text under two labels is label noise the chapter asks about; say it, not only "duplicate".
        notes.append(f"{len(conflicts)} dropped duplicate(s) had another label than the row kept (the first one "
                     f"wins): {', '.join(conflicts[:3])}{' …' if len(conflicts) > 3 else ''}")
    return rows, dropped, notes


def _check_preset_labels(rows: list[_Row], preset: str | None, label_column: str,
                         merge: dict[str, str] | None) -> None:
    """A preset that knows its label values (stars 1-5) refuses any other value: a stray "five" or
    "4.5" would otherwise become a label of its own and turn the star ratings into categories. A value
    the merge map names (--merge five=5) is taken care of."""
    chosen = get_preset(preset) if preset else None
    if chosen is None or not chosen.labels or label_column != chosen.label_column:
        return
    allowed = set(chosen.labels) | {normalize_label(old) for old in merge or {}}
    bad = [f"{r.where}: `{label_column}` is {r.label!r}" for r in rows if r.label not in allowed]
    if bad:
        raise_problems(
            f"{len(bad)} row(s) have a `{label_column}` that is not one of {', '.join(chosen.labels)} "
            f"(--preset {preset}):", bad,
            hint=f"Correct or remove those lines, or say what a value means with --merge (e.g. --merge "
                 f"'five=5'); to take `{label_column}` as it is, give the columns "
                 f"instead of the preset (--text {','.join(chosen.text_columns)} --label {label_column}).")


class _Splitter:
    """Seeded, stratified sampling that records why it could not stratify."""

    def __init__(self, labels: list[str], seed: int):
        import numpy as np

        self.labels = np.array(labels, dtype=object)
        self.seed = seed
        self.stratified = True
        self.notes: list[str] = []

    def take(self, idx, k: int, what: str, *, cover: bool = False):
        """(k rows of idx, the rest), keeping class proportions where possible. `cover`: the k rows
        are the ones kept (a --train-size sample), so they hold at least one row of every class of
        idx when k allows; a proportional sample would leave out a class with a handful of rows, and
        a classifier cannot learn a label it never sees."""
        import numpy as np
        from sklearn.model_selection import train_test_split

        if k <= 0:
            return idx[:0], idx
        if k >= len(idx):
            return idx, idx[:0]
        if cover:
            taken, rest = self.take(idx, k, what)
            missing = sorted(set(self.labels[idx]) - set(self.labels[taken]))
            if not missing or len(missing) + 1 > k:
                return taken, rest
            # Each missing class swaps one of its rows in for a row of the largest class taken, so
            # the sample keeps its size and, for every other class, its proportions.
            rng = np.random.default_rng(self.seed)
            taken, rest = list(taken), list(rest)
            for label in missing:
                counts = Counter(self.labels[taken])
                largest = max(counts, key=lambda c: (counts[c], c))
                out = next(i for i in reversed(taken) if self.labels[i] == largest)
                come = rng.choice([i for i in rest if self.labels[i] == label])
                taken.remove(out)
                rest.remove(come)
                taken.append(come)
                rest.append(out)
            return np.sort(np.array(taken, dtype=idx.dtype)), np.sort(np.array(rest, dtype=idx.dtype))
        counts = Counter(self.labels[idx])
        # A class with one row cannot be in both parts; it stays in the rest (the bigger part).
        single = np.array([counts[label] == 1 for label in self.labels[idx]], dtype=bool)
        pool, kept = idx[~single], idx[single]
        try:
            rest, taken = train_test_split(pool, test_size=k, random_state=self.seed, stratify=self.labels[pool])
            return np.sort(taken), np.sort(np.concatenate([rest, kept]))
        except ValueError as exc:
            self.stratified = False
            # sklearn's own words name its arguments ("The test_size = 20 should be greater or equal to
            # the number of classes = 31" for --train-size 20): say it in the user's terms.
            n_classes = len(set(self.labels[pool]))
            reason = (f"{k} rows cannot hold one of each of the {n_classes} labels" if k < n_classes else
                      f"the other {len(pool) - k} rows cannot hold one of each of the {n_classes} labels"
                      if len(pool) - k < n_classes else str(exc))
            self.notes.append(f"{what}: rows taken at random, not stratified ({reason})")
            rest, taken = train_test_split(idx, test_size=k, random_state=self.seed)
            return np.sort(taken), np.sort(rest)


def _size(value: int | None, default: int, name: str) -> int:
    if value is None:
        return default
    if value < 0:
        raise InvalidInputError(f"{name} must be a count of rows (0 or more), not {value}.")
    return value


def _split(rows: list[_Row], bundled: bool, sizes: dict[str, int | None], seed: int):
    import numpy as np

    splitter = _Splitter([r.label for r in rows], seed)
    if bundled:
        result = {}
        for part in PARTS:
            idx = np.array([i for i, r in enumerate(rows) if r.part == part], dtype=int)
            k = _size(sizes[part], len(idx), f"--{'val' if part == 'valid' else part}-size")
            if k > len(idx) and part != "train":
                flag = f"--{'val' if part == 'valid' else part}-size"
                raise InvalidInputError(f"Asked for {k} {part} rows, but the {part} part has {len(idx)} usable rows.",
                                        hint=f"A bundled dataset or a folder of split files keeps its own split: "
                                             f"give {flag} {len(idx)} or less.")
            result[part] = splitter.take(idx, k, part, cover=part == "train")[0]
        return result, splitter
    n = len(rows)
    default = round(n * DEFAULT_HOLDOUT_FRACTION)
    n_test = _size(sizes["test"], default, "--test-size")
    n_val = _size(sizes["valid"], default, "--val-size")
    if n_test + n_val >= n:
        raise InvalidInputError(f"Only {n} usable rows: not enough for {n_val} validation and {n_test} test rows "
                                "plus training rows.", hint="Give smaller --val-size/--test-size.")
    test, rest = splitter.take(np.arange(n), n_test, "test")
    valid, train = splitter.take(rest, n_val, "validation")
    if sizes["train"] is not None:
        train = splitter.take(train, _size(sizes["train"], len(train), "--train-size"), "train", cover=True)[0]
    return {"train": train, "valid": valid, "test": test}, splitter


def _carve_valid(rows: list[_Row], val_size: int | None, seed: int) -> list[_Row]:
    import numpy as np

    train = np.array([i for i, r in enumerate(rows) if r.part == "train"], dtype=int)
    k = _size(val_size, round(len(train) * DEFAULT_HOLDOUT_FRACTION), "--val-size")
    taken, _ = _Splitter([r.label for r in rows], seed).take(train, k, "validation")
    for i in taken:
        rows[i].part = "valid"
    return rows


def _train_every_label(rows: list[_Row], indices: dict) -> tuple[dict, list[str]]:
    """(indices, notes): a label with validation rows but no training row gets one of them moved to
    train, because fine_tunes.create refuses a validation label the training file lacks and a
    classifier cannot learn a label it never saw. A label found only in the test part is named in a
    note instead: the test part is the user's yardstick and stays as given."""
    import numpy as np

    in_train = {rows[i].label for i in indices["train"]}
    notes, moved = [], []
    for i in indices["valid"]:
        label = rows[i].label
        if label not in in_train:
            in_train.add(label)
            moved.append(i)
    if moved:
        indices = {**indices, "train": np.sort(np.concatenate([indices["train"], moved])),
                   "valid": np.setdiff1d(indices["valid"], moved)}
        notes.append(f"{len(moved)} label(s) had no training row; one validation row of each moved to train: "
                     + ", ".join(repr(rows[i].label) for i in moved))
    test_only = sorted({rows[i].label for i in indices["test"]} - in_train)
    if test_only:
        notes.append(f"label(s) {', '.join(map(repr, test_only))} occur only in the test part: a model trained on "
                     "this data cannot predict them and `tunelab evaluate` refuses a test label the model never saw; "
                     "fold them into another label with --merge OLD=NEW, or add training rows")
    return indices, notes


def _order(rows: list[_Row], idx, labels: list[str], shuffle: bool, seed: int) -> list[_Row]:
    import numpy as np

    if shuffle:
        idx = np.random.default_rng(seed).permutation(idx)
        return [rows[i] for i in idx]
    rank = {label: i for i, label in enumerate(labels)}
    return sorted((rows[i] for i in idx), key=lambda r: rank[r.label])  # stable: file order within a label


def build_dataset(source: str | Path, *, out_dir: str | Path, text_columns: Sequence[str] | None = None,
                  label_column: str | None = None, preset: str | None = None, train_size: int | None = None,
                  val_size: int | None = None, test_size: int | None = None, seed: int = 42,
                  shuffle: bool = True, separator: str = DEFAULT_SEPARATOR,
                  merge: dict[str, str] | None = None, language: str | None = None) -> BuildResult:
    """Write out_dir/{train,valid,test}.jsonl and labels.json from a CSV/JSONL/... file or a
    bundled dataset name. Nothing is written when the input cannot be used. `merge`: {old label:
    new label} applied to every row before splitting (tunelab.data.label_maps reads one), recorded
    in labels.json as "merged" with the labels before it."""
    text_columns, label_column, preset = resolve_columns(source, preset=preset, text_columns=text_columns,
                                                 label_column=label_column)
    if not separator:
        raise InvalidInputError("The separator must not be empty; it tells the model where the prompt ends.")
    tables = _load(source, language)
    for _, table in tables:
        _check_columns(table, [*text_columns, label_column], source)
    release = Path(source).is_dir() and _bundled(source) is None
    rows, dropped, repeat_notes = _collect(tables, text_columns, label_column, separator, release=release)
    _check_preset_labels(rows, preset, label_column, merge)
    if not rows:
        raise DataFileError(f"{source}: no usable rows (every row has empty text, no label or a repeated prompt).")
    labels = sort_labels(sorted({r.label for r in rows}))
    before_merge, changed = labels, {}
    if merge:
        resolved = check_merge_map(merge, labels, source="The merge map")
        changed = {old: new for old, new in resolved.items() if normalize_label(old) != new}
        for row in rows:
            row.label = merged_label(row.label, resolved)
        labels = sort_labels(sorted({r.label for r in rows}))
    sizes = {"train": train_size, "valid": val_size, "test": test_size}
    if train_size == 0:  # it took rows back from validation to cover the labels: a training file nobody asked for
        raise InvalidInputError("--train-size 0 leaves no training rows.",
                                hint="Give 1 or more, or leave --train-size out to train on all the rest.")
    fixed_parts = _bundled(source) is not None or Path(source).is_dir()
    if fixed_parts and not any(r.part == "valid" for r in rows):
        # A folder with train and test only: the validation rows come out of the training part.
        rows = _carve_valid(rows, val_size, seed)
    indices, splitter = _split(rows, fixed_parts, sizes, seed)
    indices, untrained = _train_every_label(rows, indices)
    splits = {name: _order(rows, idx, labels, shuffle, seed) for name, idx in indices.items()}

    notes = repeat_notes + list(splitter.notes) + untrained
    for reason, what in (("missing_label", f"no `{label_column}`"), ("empty_text", "empty text")):
        if where := dropped[reason]:  # which lines, so that they can be looked at (labels.json keeps 10)
            notes.append(f"dropped {len(where)} row(s) with {what}: {', '.join(where[:5])}"
                         + (f" and {len(where) - 5} more" if len(where) > 5 else ""))
    inside = sum(separator in r.prompt[: -len(separator)] for r in rows)
    if inside:
        notes.append(f"{inside} prompts contain the separator {separator!r} inside their text")
    label_counts = {name: {label: 0 for label in labels} for name in splits}
    for name, split_rows in splits.items():
        for row in split_rows:
            label_counts[name][row.label] += 1
    ordinal = is_ordinal(labels)
    out = output_dir(out_dir, create=False)
    meta = {
        "labels": labels,
        "ordinal": ordinal,
        "counts": {name: len(split_rows) for name, split_rows in splits.items()},
        "label_counts": label_counts,
        "text_columns": list(text_columns),
        "label_column": label_column,
        "separator": separator,
        "completion_prefix": COMPLETION_PREFIX,
        "source": str(source),
        "preset": preset,
        "seed": seed,
        "shuffled": shuffle,
        "stratified": splitter.stratified,
        "dropped": {reason: len(where) for reason, where in dropped.items()},
        "dropped_examples": {reason: where[:10] for reason, where in dropped.items() if where},
        "notes": notes,
    }
    if merge:
        targets: dict[str, list[str]] = {}
        for old, new in changed.items():
            targets.setdefault(new, []).append(old)
        notes.append("labels merged: " + "; ".join(f"{' + '.join(olds)} -> {new}" for new, olds in targets.items()))
        meta["merged"] = changed
        meta["labels_before_merge"] = before_merge
    paths = {name: out / FILES[name] for name in splits}
    paths["labels"] = out / "labels.json"
    _refuse_overwriting_data(paths, tables)
    try:
        # An earlier build's labels.json goes first: killed midway, the folder must not pair it
        # (saying "complete") with a new train.jsonl and the old valid/test files.
        paths["labels"].unlink(missing_ok=True)
        for name, split_rows in splits.items():
            write_jsonl(paths[name], ({"prompt": r.prompt, "completion": with_leading_space(r.label)}
                                      for r in split_rows))
        # labels.json last: its presence means the three data files are complete.
        write_json(paths["labels"], meta)
    except OSError as exc:
        raise TunelabError(f"Cannot write to {out}: {exc}") from None
    return BuildResult(out, paths, meta["counts"], labels, label_counts, meta["dropped"], ordinal,
                       splitter.stratified, notes)
