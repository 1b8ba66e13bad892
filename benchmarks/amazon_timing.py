"""Wall time of the held-out Amazon path on this machine: 45,000 reviews in the Amazon Multilingual
Reviews format through the CLI, as a user runs it (build -> fine_tunes.create with every
hyperparameter on auto -> evaluate). The budget it is held to: within an hour on a 2-core CPU.

    python benchmarks/amazon_timing.py                      # a stand-in corpus, built here
    python benchmarks/amazon_timing.py --data amazon-folder # the real files (dataset_en_{train,dev,test}.json)

The stand-in has the real files' layout and fields (JSON lines, `review_id`, `stars`, `review_body`,
`review_title`, `product_category`, ...), balanced stars and Amazon-like lengths (review bodies of
about 170 characters on average), its text spliced from the bundled clothing reviews' sentences of
the same star. Its accuracy means nothing (a star's sentences are easy to tell apart), so only times
are printed for it; with --data the evaluation's accuracy is the real one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

CATEGORIES = ["apparel", "home", "wireless", "pc", "kitchen", "toy", "beauty", "sports", "book", "shoes"]


def build_standin(folder: Path, n_train: int, n_holdout: int, seed: int = 0) -> None:
    """dataset_en_{train,dev,test}.json in `folder`, from the bundled clothing reviews."""
    from tunelab.data.bundled import get_bundled

    rng = random.Random(seed)
    clothing = get_bundled("clothing-reviews")
    by_star: dict[int, list[dict]] = {}
    for path in (clothing.path(part) for part in sorted(clothing.files)):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if row.get("Review Text") and row.get("Rating"):
                    by_star.setdefault(int(row["Rating"]), []).append(row)

    def body(star: int) -> str:
        target = int(rng.lognormvariate(4.9, 0.7))  # mean about 170 characters
        text = ""
        while len(text) < target:
            sentences = re.split(r"(?<=[.!?])\s+", rng.choice(by_star[star])["Review Text"])
            text += " " + rng.choice(sentences)
        return text.strip()[: max(target, 20)]

    folder.mkdir(parents=True, exist_ok=True)
    for part, n, start in (("train", n_train, 0), ("dev", n_holdout, 10**6), ("test", n_holdout, 2 * 10**6)):
        with open(folder / f"dataset_en_{part}.json", "w", encoding="utf-8") as f:
            for i in range(n):
                star = 1 + i % 5
                f.write(json.dumps({
                    "review_id": f"en_{start + i:07d}", "product_id": f"product_en_{start + i}",
                    "reviewer_id": f"reviewer_en_{start + i}", "stars": star, "review_body": body(star),
                    "review_title": (rng.choice(by_star[star]).get("Title") or "Review")[:40],
                    "language": "en", "product_category": rng.choice(CATEGORIES)}) + "\n")


def timed(label: str, cmd: list[str], log: Path) -> tuple[float, str]:
    print(f"$ {' '.join(cmd)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode:
        sys.exit(f"{label} failed (exit {done.returncode}); its output is in {log}")
    print(f"  {label}: {seconds / 60:.1f} min", flush=True)
    return seconds, done.stdout


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with the Amazon files (default: build a stand-in)")
    parser.add_argument("--rows", type=int, default=45_000, help="training rows (default 45,000)")
    parser.add_argument("--out", default="benchmark-amazon", help="output folder (default ./benchmark-amazon)")
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["TUNELAB_HOME"] = str(out / "home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    source = Path(args.data) if args.data else out / "standin"
    if not args.data:
        build_standin(source, args.rows + 5_000, 5_000)
    tunelab = [sys.executable, "-m", "tunelab"]
    data = out / "data"
    build, _ = timed("datasets build", tunelab + ["datasets", "build", str(source), "--preset", "amazon-stars",
                                                  "--out", str(data), "--train-size", str(args.rows)],
                     out / "build.log")
    train, _ = timed("fine_tunes.create (auto recipe, followed to the end)",
                     tunelab + ["api", "fine_tunes.create", "-t", str(data / "train.jsonl"), "-v",
                                str(data / "valid.jsonl"), "-m", "ada", "--compute_classification_metrics",
                                "--classification_n_classes", "5"], out / "train.log")
    latest = subprocess.run(tunelab + ["api", "fine_tunes.list", "--latest"], capture_output=True, text=True,
                            check=True).stdout.strip()
    job = json.loads(subprocess.run(tunelab + ["api", "fine_tunes.get", "-i", latest], capture_output=True,
                                    text=True, check=True).stdout)
    evaluate, report = timed("evaluate (with the TF-IDF baseline)",
                             tunelab + ["evaluate", "-m", job["fine_tuned_model"], "-f", str(data / "test.jsonl"),
                                        "--train", str(data / "train.jsonl")], out / "evaluate.log")
    total = build + train + evaluate
    print(f"\n{args.rows:,} training rows, hyperparameters {job['hyperparams']}")
    print(f"build {build:.0f} s, training {train / 60:.1f} min, evaluation {evaluate:.0f} s: "
          f"{total / 60:.1f} min in all ({'within' if total <= 3600 else 'OVER'} the hour)")
    if args.data:
        print(report)


if __name__ == "__main__":
    main()
