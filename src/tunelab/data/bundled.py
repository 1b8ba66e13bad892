"""Datasets shipped inside the package, and named column presets for the dataset builder.

Bundled data lives in `tunelab/data/bundled/<name>/` as gzip-compressed JSON Lines, one file per
canonical split part, and is read through importlib.resources so it works from a wheel too.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tunelab.errors import InvalidInputError

PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class Preset:
    """Which columns make the prompt and which one is the label (the completion)."""

    name: str
    text_columns: tuple[str, ...]
    label_column: str
    description: str
    labels: tuple[str, ...] | None = None  # the only values the label column may hold (star ratings), if known


@dataclass(frozen=True)
class BundledDataset:
    name: str
    title: str
    files: dict[str, str]  # part ("train"/"valid"/"test") -> file name in the dataset folder
    columns: tuple[str, ...]
    licence: str
    default_preset: str

    def path(self, part: str) -> Path:
        """Filesystem path of one part (package data is installed as plain files)."""
        resource = resources.files("tunelab.data").joinpath("bundled", self.name, self.files[part])
        return Path(str(resource))

    def count_rows(self, part: str) -> int:
        with gzip.open(self.path(part), "rb") as fh:
            return sum(1 for line in fh if line.strip())


STARS = ("1", "2", "3", "4", "5")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("amazon-stars", ("review_title", "review_body"), "stars",
               "Amazon Multilingual Reviews: star rating 1-5 from title and body", STARS),
        Preset("amazon-category", ("review_title", "review_body"), "product_category",
               "Amazon Multilingual Reviews: product category from title and body"),
        Preset("clothing-stars", ("Title", "Review Text"), "Rating",
               "Clothing reviews: star rating 1-5 from title and review text", STARS),
        Preset("clothing-department", ("Title", "Review Text"), "Department Name",
               "Clothing reviews: department (6 classes) from title and review text"),
        Preset("clothing-class", ("Title", "Review Text"), "Class Name",
               "Clothing reviews: product class (~20 imbalanced classes) from title and review text"),
        Preset("sst5", ("text",), "label",
               "SST-5 sentences (Stanford Sentiment Treebank): sentiment 0-4; a folder of its train/dev/test "
               "files keeps the standard split"),
    ]
}

BUNDLED: dict[str, BundledDataset] = {
    d.name: d
    for d in [
        BundledDataset(
            name="clothing-reviews",
            title="Women's E-Commerce Clothing Reviews (Kaggle, nicapotato)",
            files={"train": "train.jsonl.gz", "valid": "val.jsonl.gz", "test": "test.jsonl.gz"},
            columns=("Clothing ID", "Age", "Title", "Review Text", "Rating", "Recommended IND",
                     "Positive Feedback Count", "Division Name", "Department Name", "Class Name"),
            licence="CC0-1.0",
            default_preset="clothing-stars",
        ),
    ]
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidInputError(f"Unknown preset {name!r}.",
                                hint=f"Presets: {', '.join(PRESETS)}.") from None


def presets_fitting(columns) -> list[str]:
    """Names of the presets whose text and label columns are all among `columns`."""
    have = set(columns)
    return [p.name for p in PRESETS.values() if set(p.text_columns) | {p.label_column} <= have]


def get_bundled(name: str) -> BundledDataset | None:
    return BUNDLED.get(name)
