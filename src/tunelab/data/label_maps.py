"""Merging and renaming labels as data: a map read from a JSON file (`--merge-labels map.json`,
{"old label": "new label", ...}) or written on the command line (`--merge 'A+B=C'`), applied the
same way to every split of a dataset and recorded in its labels.json.

The rules of a map (which names it may use, what a merged completion looks like) are in
tunelab.data.labels; this module reads maps and rewrites prompt/completion files with them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.data import safejson
from tunelab.data.labels import (
    check_merge_map, find_label, merged_label, normalize_label, parse_merge_spec, sort_labels,
)
from tunelab.data.readers import Example, read_prompt_completion
from tunelab.errors import DataFileError, InvalidInputError, TunelabError
from tunelab.fsutil import output_dir, write_json, write_jsonl

SPLITS = ("train", "valid", "test")
FILES = {"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl"}


def read_merge_file(path: str | Path) -> dict[str, str]:
    """A merge map from a JSON file holding one object of text to text."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such merge map file.")
    try:
        value = safejson.loads(path.read_bytes())
    except (ValueError, safejson.JSONValueError) as exc:
        raise DataFileError(f"{path}: not valid JSON ({exc}).",
                            hint='A merge map is one JSON object: {"old label": "new label", ...}.') from None
    if not isinstance(value, dict):
        raise DataFileError(f"{path}: a merge map is a JSON object, not {type(value).__name__}.",
                            hint='Write {"old label": "new label", ...}.')
    bad = [f"{path}: field {key!r}: the new label must be text, found {type(v).__name__}"
           for key, v in value.items() if not isinstance(v, str)]
    if bad:
        raise DataFileError(f"{path} is not a valid merge map:", problems=bad)
    return {normalize_label(k): v for k, v in value.items()}


def merge_request(map_file: str | Path | None = None, specs: Sequence[str] = ()) -> dict[str, str]:
    """One map from a --merge-labels file and any number of --merge 'A+B=C'; a label given two
    different targets is an error."""
    mapping: dict[str, str] = dict(read_merge_file(map_file)) if map_file else {}
    for spec in specs:
        for old, new in parse_merge_spec(spec).items():
            if old in mapping and normalize_label(mapping[old]) != new:
                raise InvalidInputError(f"The label {old!r} is merged into both {mapping[old]!r} and {new!r}.",
                                        hint="Give each label one target.")
            mapping[old] = new
    return mapping


@dataclass
class MergeResult:
    out_dir: Path
    paths: dict[str, Path]
    """split -> the merged file written (train, valid, test where given) and "labels"."""
    labels: list[str]
    """The merged label set, as labels.json lists it (without the completions' leading space)."""
    mapping: dict[str, str]
    """{label as it was: label it became} for every label the map changed."""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """split -> merged label -> rows."""


def dataset_files(folder: str | Path) -> tuple[dict[str, Path], dict | None]:
    """({split: file} of a folder written by `tunelab datasets build`, its labels.json or None)."""
    folder = Path(folder)
    paths = {split: folder / name for split, name in FILES.items() if (folder / name).is_file()}
    if "train" not in paths:
        raise DataFileError(f"{folder}: no train.jsonl (a dataset folder from `tunelab datasets build`).")
    meta_path = folder / "labels.json"
    meta = None
    if meta_path.is_file():
        try:
            meta = safejson.loads(meta_path.read_bytes())
        except (ValueError, safejson.JSONValueError) as exc:
            raise DataFileError(f"{meta_path}: not valid JSON ({exc}).") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("labels"), list):
            raise DataFileError(f"{meta_path}: field `labels` is missing or not a list.",
                                hint="Rebuild the folder with `tunelab datasets build`.")
    return paths, meta


def check_against_labels_json(rows: dict[str, list[Example]], paths: dict[str, Path], labels: Sequence[str],
                              meta_path: Path) -> None:
    """Every completion must be one of labels.json's labels: a file edited by hand after the build
    would otherwise be merged with a map that does not know its labels."""
    problems = []
    for split, examples in rows.items():
        for e in examples:
            if find_label(e.completion, labels) is None:
                problems.append(f"{paths[split]}:{e.line}: field `completion`: {e.completion!r} is not in {meta_path}")
    if problems:
        shown = problems[:20] + ([f"… and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise DataFileError(f"The files disagree with {meta_path} ({len(problems)} row(s)):", problems=shown,
                            hint="Rebuild the dataset with `tunelab datasets build`, or fix those rows.")


def merge_dataset(source: str | Path | dict[str, str | Path], mapping: dict[str, str], out_dir: str | Path, *,
                  require_all: bool = True) -> MergeResult:
    """Apply `mapping` to a dataset folder (or {split: file}) and write the merged files and a
    labels.json recording the map to `out_dir`. Everything is checked before anything is written:
    unknown labels, a map leaving one class, labels disagreeing with labels.json, a merged class
    with no training row. `require_all`: every class of the merged set must occur in train."""
    if isinstance(source, dict):
        paths, meta, meta_path = {k: Path(v) for k, v in source.items()}, None, None
        unknown = sorted(set(paths) - set(SPLITS))
        if unknown or "train" not in paths:
            raise InvalidInputError("Give the training file, and optionally the validation and test files.")
    else:
        paths, meta = dataset_files(source)
        meta_path = Path(source) / "labels.json"
    rows = {split: read_prompt_completion(path) for split, path in paths.items()}
    present = sort_labels(sorted({e.completion for examples in rows.values() for e in examples}))
    if meta is not None:
        check_against_labels_json(rows, paths, meta["labels"], meta_path)
        known = list(meta["labels"])
    else:
        known = present
    resolved = check_merge_map(mapping, known, source="The merge map")
    # labels.json names labels without the completions' leading space: apply the map by name.
    by_name = {normalize_label(old): new for old, new in resolved.items()}
    resolved = {c: by_name[normalize_label(c)] for c in sorted({*present, *known}) if normalize_label(c) in by_name}
    merged_rows = {split: [(e.prompt, merged_label(e.completion, resolved)) for e in examples]
                   for split, examples in rows.items()}
    new_labels = sort_labels(sorted({normalize_label(merged_label(label, resolved)) for label in known}))
    counts = {split: dict(Counter(normalize_label(c) for _, c in r)) for split, r in merged_rows.items()}
    missing = [label for label in new_labels if not counts["train"].get(label)]
    if require_all and missing:
        # Say where the rows are, and whether the map emptied the class or it never had a training
        # row (a category found only in the test file, which `datasets build` keeps with a note).
        before = {normalize_label(e.completion) for e in rows["train"]}

        def described(label: str) -> str:
            parts = [f"{counts[s][label]} {s} row(s)" for s in ("valid", "test") if counts.get(s, {}).get(label)]
            if not any(normalize_label(old) in before for old in [*known, *present]
                       if normalize_label(merged_label(old, resolved)) == label):
                parts.append("none in train before the merge either")
            return f"{label!r} ({', '.join(parts)})" if parts else repr(label)

        shown = ", ".join(described(label) for label in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise InvalidInputError(
            f"After merging, the training file has no row of {shown}.",
            hint=f"Every class needs training examples: fold it into a label that has some, e.g. "
                 f"--merge '{missing[0]}=OTHER_LABEL' (next to --merge-labels), or add training rows.")
    out = output_dir(out_dir, create=False)
    if any(out.resolve() == p.parent.resolve() for p in paths.values()):
        raise InvalidInputError(f"--out {out} is where the input files are; write the merged dataset elsewhere.")
    changed = {normalize_label(old): new for old, new in resolved.items() if normalize_label(old) != new}
    written = {split: out / (FILES[split] if meta is not None else Path(paths[split]).name) for split in rows}
    written["labels"] = out / "labels.json"
    record = {**(meta or {}), "labels": new_labels, "label_counts": {s: {l: counts[s].get(l, 0) for l in new_labels}
                                                                    for s in counts},
              "counts": {s: len(r) for s, r in merged_rows.items()}}
    # A second merge composes with the first: {A: B} then {B: C} records {A: C, B: C}.
    earlier = {old: changed.get(mid, mid) for old, mid in ((meta or {}).get("merged") or {}).items()}
    record["merged"] = {**earlier, **changed}
    record["labels_before_merge"] = (meta or {}).get("labels_before_merge") or [normalize_label(l) for l in known]
    try:
        written["labels"].unlink(missing_ok=True)  # an earlier labels.json must not vouch for a half-written set
        for split, r in merged_rows.items():
            write_jsonl(written[split], ({"prompt": p, "completion": c} for p, c in r))
        write_json(written["labels"], record)  # last: its presence means the files are complete
    except OSError as exc:
        raise TunelabError(f"Cannot write to {out}: {exc}") from None
    return MergeResult(out, written, new_labels, changed, counts)
