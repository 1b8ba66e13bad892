"""Copy the packaged models into one small folder, for a machine that has neither the packages that
carry their weights nor a way to download them (a lent GPU machine that receives only a few tens of
MB): benchmarks/gpu_checks.sh then measures there what the README's GPU rows say.

    python benchmarks/pack_models.py .gpu/models

- minilm-l6: its weights stored as float16 (45 MB instead of 90 MB) with the config's dtype kept
  float32, so every run loads and trains it in float32 from these (rounded) numbers;
- smollm2-135m: config and tokenizer only (its 270 MB of weights do not fit);
  `train_throughput.py --model <folder>` builds seeded random weights from the config, which is
  enough for throughput and says that accuracy means nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def pack_minilm(out: Path) -> None:
    from safetensors.torch import load_file, save_file

    from tunelab.models.sources import minilm_path

    src = minilm_path()
    shutil.copytree(src, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx"))
    weights = load_file(str(src / "model.safetensors"))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
              str(out / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((out / "config.json").read_text())
    config["torch_dtype"] = config["dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(config, indent=2))


def pack_config_only(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.is_file() and path.suffix in (".json", ".txt", ".model"):
            shutil.copy2(path, out / path.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    from tunelab.models.sources import smollm2_path

    pack_minilm(args.out / "minilm-l6")
    pack_config_only(smollm2_path(), args.out / "smollm2-135m")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
