"""The bundled dataset ships inside the package and the package never reads /work/shared."""

from __future__ import annotations

import gzip
from pathlib import Path

import tunelab
from tunelab.data.bundled import BUNDLED, PARTS, PRESETS, get_bundled


def test_clothing_reviews_is_bundled_as_gzip_jsonl():
    dataset = get_bundled("clothing-reviews")
    assert dataset is not None and dataset.default_preset in PRESETS and dataset.licence == "CC0-1.0"
    for part in PARTS:
        path = dataset.path(part)
        assert path.name.endswith(".jsonl.gz") and path.exists()
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            assert '"Review Text"' in fh.readline()
    assert {p: dataset.count_rows(p) for p in PARTS} == {"train": 15849, "valid": 2264, "test": 4529}
    source = (dataset.path("train").parent / "SOURCE.md").read_text()
    assert "CC0" in source and "nicapotato" in source and "canonical" in source


def test_presets_name_existing_bundled_columns():
    for dataset in BUNDLED.values():
        preset = PRESETS[dataset.default_preset]
        assert set(preset.text_columns) | {preset.label_column} <= set(dataset.columns)


def test_package_never_reads_the_shared_folder():
    root = Path(tunelab.__file__).parent
    for path in root.rglob("*.py"):
        assert "/work/shared" not in path.read_text(), path
