"""One completion with its first-token probabilities, as the book's Listing 4.3 prints them
(`max_tokens=1, temperature=0, logprobs=5`). `tunelab complete`, the demo and `tunelab.complete()`
share it.

For a classification model each label counts as one token (label-level semantics, see
tunelab.inference.predictor), so the list is the label distribution, the same numbers
`tunelab evaluate` scores with. For a free-form model it is the raw first-token top-k.
Leading spaces are shown as ␣, since " 4" and "4" are different tokens."""

from __future__ import annotations

import math

from tunelab.data.labels import display_label, is_star_rating, normalize_label
from tunelab.errors import InvalidInputError

PROMPT_HEAD = 200


def complete_prompt(predictor, prompt: str, *, max_tokens: int = 1, logprobs: int = 5, temperature: float = 0.0,
                    all_labels: bool = False, seed: int | None = None) -> dict:
    """The prediction and its (label or first-token) probabilities, most probable first."""
    if all_labels and not predictor.is_classification:
        raise InvalidInputError(f"--labels needs a classification model; {predictor.model_id} has no fixed labels.",
                                hint="Use --logprobs N to see the first token's top N instead.")
    k = len(predictor.labels) if all_labels else logprobs
    choice = predictor.complete([prompt], max_tokens=max_tokens, temperature=temperature,
                                logprobs=k or None, seed=seed)[0][0]
    top = choice.top_logprobs[0] if choice.top_logprobs and choice.top_logprobs[0] else {}
    probs = sorted(((token, math.exp(lp)) for token, lp in top.items()), key=lambda kv: -kv[1])
    return {
        "model": predictor.model_id, "prompt": prompt, "text": choice.text, "prediction": normalize_label(choice.text),
        "classification": predictor.is_classification, "labels": predictor.labels,
        "probabilities": probs, "finish_reason": choice.finish_reason,
    }


def format_completion(result: dict) -> str:
    prompt = result["prompt"]
    head = prompt[:PROMPT_HEAD].rstrip()
    cut = len(prompt.rstrip()) > PROMPT_HEAD  # " ..." only where the prompt goes on
    lines = ["Prompt:", f"{head} ..." if cut else head, ""]
    if result["classification"]:
        title = "Predicted Star" if is_star_rating(result["labels"]) else "Predicted label"
        lines.append(f"{title}: {result['prediction']}")
    else:
        lines.append(f"Completion: {result['text']!r}")
    if result["probabilities"]:
        lines.append("Probabilities:" if result["classification"] else "Probabilities (first token):")
        lines += [f"{display_label(token)}: {p:.4f}" for token, p in result["probabilities"]]
    return "\n".join(lines)
