"""A predictor without weights, for the CLI and server tests that check routes and formatting rather
than inference: deterministic label distributions and deterministic text, in milliseconds.

It has the interface the server and the CLI use (`tunelab.inference.predictor.Predictor`, and
`tunelab.server.model_process.ProcessPredictor` as the server's pool sees it): `model_id`, `method`,
`labels`, `meta`, `is_classification`, `tokenizer` (with a chat template for causal models),
`count_tokens`, `score_labels`, `complete`, `max_positions`, `base_model`, `temperature`, `alive`,
`pid`.

Inject it with the `fake_predictors` fixture (tests/conftest.py), which both patches
`tunelab.inference.predictor.load_predictor` (what the CLI, `evaluate` and the server's in-process
loader call) and can be handed to `create_app(loader=...)`:

    def test_x(fake_predictors, store):
        model_id = fake_predictors.register(store, "classifier", labels=[" 1", " 2"])
        app = create_app(store, loader=fake_predictors.loader)

Label scores are log-probabilities from a hash of (prompt, label): the same prompt always gets the
same distribution; `classifier` rows sum to 1 in probability space, `lm` rows to LM_LABEL_MASS < 1
(an lm spreads some mass over other continuations, as the real one does). Generated text is a
sequence of words from WORDS chosen by a hash of the prompt (greedy) or by a seeded generator
(temperature > 0), so tests can predict it with `FakePredictor.expected_text`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.helpers.tiny_models import CHAT_TEMPLATE  # the same template as the tiny real decoder's
from tunelab.inference.predictor import Completion

WORDS = (" good", " bad", " fine", " dress", " fits", " love", " small", " great")
EOS_WORD = "</s>"  # never emitted as text; the word after `stop_after` tokens
LM_LABEL_MASS = 0.9
_TOKEN = re.compile(r"\s*\S+|\s+")


def _unit(*parts: str) -> float:
    """A deterministic number in [0, 1) from strings."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeTokenizer:
    """Whitespace-attached words as tokens ("great good" -> ["great", " good"])."""

    def __init__(self, chat_template: str | None = None):
        self.chat_template = chat_template
        self.pad_token_id = 0
        self.eos_token_id = 1

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(text)

    def __call__(self, text, add_special_tokens: bool = True, **_):
        if isinstance(text, list):
            return {"input_ids": [self(t, add_special_tokens)["input_ids"] for t in text]}
        ids = [2 + int(_unit("tok", t) * 1000) for t in self.tokenize(text)]
        return {"input_ids": ([2] if add_special_tokens else []) + ids}

    def apply_chat_template(self, messages, tokenize: bool = False, add_generation_prompt: bool = False, **_):
        if not self.chat_template:
            raise ValueError("no chat template")
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
        return text + ("assistant:" if add_generation_prompt else "")


@dataclass
class FakePredictor:
    model_id: str
    method: str = "classifier"  # "classifier" or "lm"
    labels: list[str] | None = None
    max_positions: int | None = 256
    stop_after: int | None = None  # free-form: finish with "stop" after this many tokens
    delay: float = 0.0  # seconds each call takes, so that concurrent requests pile up into batches
    base_model: str | None = None
    meta: dict = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)  # (operation, number of prompts)
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        self.tokenizer = FakeTokenizer(CHAT_TEMPLATE if self.method == "lm" else None)
        self.meta = {"method": self.method, "labels": self.labels, "kind": "causal" if self.method == "lm" else "encoder",
                     **self.meta}

    # -- what the server's pool looks at -------------------------------------------------------
    @property
    def is_classification(self) -> bool:
        return bool(self.labels)

    @property
    def temperature(self) -> float:
        """A calibrated model's fitted temperature; the fake's scores are already what it reports."""
        return 1.0

    @property
    def alive(self) -> bool:
        return not self.closed

    @property
    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        self.closed = True

    # -- the Predictor interface ---------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.tokenize(text))

    def score_labels(self, prompts: Sequence[str], *, labels: list[str] | None = None, batch_size: int = 32,
                     progress=None) -> np.ndarray:
        from tunelab.errors import InvalidInputError

        labels = labels or self.labels
        if not labels:
            raise InvalidInputError(f"{self.model_id} is not a classification model; give the labels to score.")
        with self.lock:
            self.calls.append(("score_labels", len(prompts)))
        time.sleep(self.delay)
        rows = np.array([self.expected_scores(p, labels) for p in prompts], dtype=np.float64).reshape(-1, len(labels))
        if progress:
            progress(len(prompts))
        return rows

    def expected_scores(self, prompt: str, labels: list[str] | None = None) -> list[float]:
        """log P(label | prompt) for each label: what `score_labels` returns for this prompt."""
        labels = labels or self.labels
        logits = np.array([4.0 * _unit(self.model_id, prompt, label) for label in labels])
        logp = logits - np.log(np.exp(logits).sum())
        if self.method == "lm":
            logp = logp + math.log(LM_LABEL_MASS)
        return [float(v) for v in logp]

    def complete(self, prompts: Sequence[str], *, max_tokens: int = 16, temperature: float = 1.0,
                 top_p: float = 1.0, n: int = 1, stop: list[str] | None = None, logprobs: int | None = None,
                 echo: bool = False, seed: int | None = None) -> list[list[Completion]]:
        from tunelab.errors import InvalidInputError

        with self.lock:
            self.calls.append(("complete", len(prompts)))
        time.sleep(self.delay)
        if self.is_classification:
            return self._labels(prompts, temperature=temperature, n=n, logprobs=logprobs, echo=echo, seed=seed)
        if self.method == "classifier":
            raise InvalidInputError(f"{self.model_id} is a classifier without labels.")
        rng = np.random.default_rng(seed)
        out = []
        for prompt in prompts:
            choices = []
            for j in range(n):
                sample = bool(temperature and temperature > 0)
                words = self._words(prompt, max_tokens, rng if sample else None, j)
                choices.append(self._choice(prompt, words, max_tokens, stop or [], logprobs, echo))
            out.append(choices)
        return out

    # -- helpers tests use to predict answers --------------------------------------------------
    def expected_text(self, prompt: str, max_tokens: int) -> str:
        """The greedy (temperature 0) completion of `prompt`, before stop sequences."""
        return "".join(w for w in self._words(prompt, max_tokens, None, 0) if w != EOS_WORD)

    def _words(self, prompt: str, max_tokens: int, rng, j: int) -> list[str]:
        words = []
        for t in range(max(1, max_tokens)):
            if self.stop_after is not None and t >= self.stop_after:
                words.append(EOS_WORD)
                break
            if rng is None:
                words.append(WORDS[int(_unit(self.model_id, prompt, str(t)) * len(WORDS))])
            else:
                words.append(WORDS[int(rng.integers(len(WORDS)))])
        return words

    def _word_logprobs(self, prompt: str, t: int) -> dict[str, float]:
        logits = np.array([3.0 * _unit(self.model_id, prompt, str(t), w) for w in WORDS])
        logp = logits - np.log(np.exp(logits).sum())
        order = np.argsort(-logp)
        return {WORDS[i]: float(logp[i]) for i in order}

    def _choice(self, prompt, words, max_tokens, stop, logprobs, echo) -> Completion:
        finish = "length"
        if words and words[-1] == EOS_WORD:
            words, finish = words[:-1], "stop"
        tokens, lps, tops = [], [], []
        for t, word in enumerate(words):
            dist = self._word_logprobs(prompt, t)
            tokens.append(word)
            lps.append(dist[word])
            tops.append(dict(list(dist.items())[:logprobs]) if logprobs else None)
        text = "".join(tokens)
        cut = min((text.find(s) for s in stop if s and s in text), default=-1)
        if cut >= 0:
            finish = "stop"
            kept, length = 0, 0
            while kept < len(tokens) and length + len(tokens[kept]) <= cut:
                length += len(tokens[kept])
                kept += 1
            tokens, lps, tops, text = tokens[:kept], lps[:kept], tops[:kept], text[:cut]
        base = len(prompt) if echo else 0
        offsets, pos = [], base
        for token in tokens:
            offsets.append(pos)
            pos += len(token)
        return Completion(text=(prompt if echo else "") + text, tokens=tokens, token_logprobs=lps, top_logprobs=tops,
                          text_offset=offsets, finish_reason=finish, prompt_tokens=self.count_tokens(prompt) + 1,
                          completion_tokens=len(tokens))

    def _labels(self, prompts, *, temperature, n, logprobs, echo, seed) -> list[list[Completion]]:
        rng = np.random.default_rng(seed)
        out = []
        for prompt in prompts:
            row = np.array(self.expected_scores(prompt))
            order = np.argsort(-row)
            top = {self.labels[i]: float(row[i]) for i in order[:logprobs]} if logprobs else None
            choices = []
            for _ in range(n):
                if temperature and temperature > 0:
                    p = np.exp((row - row.max()) / temperature)
                    pick = int(rng.choice(len(row), p=p / p.sum()))
                else:
                    pick = int(order[0])
                label = self.labels[pick]
                choices.append(Completion(
                    text=(prompt if echo else "") + label, tokens=[label], token_logprobs=[float(row[pick])],
                    top_logprobs=[top], text_offset=[len(prompt) if echo else 0], finish_reason="stop",
                    prompt_tokens=self.count_tokens(prompt), completion_tokens=1, label_mode=True))
            out.append(choices)
        return out


class FakePredictors:
    """Fake models registered in a store, and the loader that serves them.

    `register` puts a small placeholder folder into the store (as a finished job would) and
    remembers how to fake the model; `loader(model_id, store)` / `load(model_id, store=None)` return
    its FakePredictor (one per model id, so tests can read `.calls`). Other ids go to `fallback`
    (the real loader, in the `fake_predictors` fixture, so real tiny models can be served next to
    fakes); without one, they raise the errors the real loader raises."""

    def __init__(self, root: Path, fallback=None):
        self.root = Path(root)
        self.fallback = fallback  # `(model_id, store) -> predictor` for ids not registered here
        self.specs: dict[str, dict] = {}
        self.loaded: dict[str, FakePredictor] = {}
        self.loads: list[str] = []

    def register(self, store, method: str = "classifier", *, labels: list[str] | None = None, name: str = "fake",
                 suffix: str | None = None, **options) -> str:
        built = self.root / f"build-{len(self.specs)}"
        built.mkdir(parents=True)
        (built / "config.json").write_text('{"model_type": "fake"}')
        record = store.register_model(base_id=name, built_dir=built, base_model=name, method=method, labels=labels,
                                      cumulative_epochs=1, suffix=suffix,
                                      meta={"kind": "causal" if method == "lm" else "encoder"})
        self.specs[record.id] = dict(method=method, labels=labels, base_model=name, **options)
        return record.id

    def get(self, model_id: str) -> FakePredictor:
        if model_id not in self.loaded:
            self.loaded[model_id] = FakePredictor(model_id, **self.specs[model_id])
        return self.loaded[model_id]

    def load(self, model_id: str, store=None, **options) -> FakePredictor:
        from tunelab.errors import InvalidInputError, NotFoundError

        self.loads.append(model_id)
        if model_id in self.specs:
            return self.get(model_id)
        if self.fallback is not None:
            return self.fallback(model_id, store, **options)
        if model_id.lower() in ("minilm-l6", "ada"):
            raise InvalidInputError(f"{model_id} is an encoder base model; it has no completions until fine-tuned.")
        raise NotFoundError(f"The model {model_id!r} does not exist.", hint="List models with `tunelab models list`.")

    def loader(self, model_id: str, store) -> FakePredictor:
        return self.load(model_id, store)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
