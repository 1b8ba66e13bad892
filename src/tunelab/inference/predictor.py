"""A loaded model ready to answer: label scores for classification models, completions with
OpenAI-style logprobs for everything.

Label-level semantics (documented in the README): for a model trained on classification data, a
completion is exactly one label and each label counts as one token, the way ` 4` was one token for
ada. So `max_tokens=1, logprobs=5` returns the most probable label and the top-5 label
distribution even when the tokenizer splits ` 4` into a space and a digit. A label's probability is
P(label tokens | prompt) (lm method) or the head's softmax (classifier method), so the label
probabilities sum to at most 1 and match `tunelab evaluate` exactly.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from tunelab.data.labels import check_decision_rule, decide
from tunelab.errors import InvalidInputError
from tunelab.inference.adjustment import adjust
from tunelab.inference.calibration import apply_temperature
from tunelab.models import encoding
from tunelab.models.meta import Method, ModelMeta
from tunelab.inference.scoring import score_labels
from tunelab.runtime import autocast, device, for_inference


@dataclass
class Completion:
    text: str
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    label_mode: bool = False


@dataclass
class Predictor:
    model_id: str
    model: object
    tokenizer: object
    method: Method
    labels: list[str] | None
    max_length: int = 256
    meta: ModelMeta | None = None  # None for a base model served as is
    base_model: str | None = None
    decision: str = "argmax"
    """Which label a greedy completion answers with: argmax, or for ordinal labels median or
    good_vs_bad (tunelab.data.labels.DECISION_RULES); `tunelab serve --decision`."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        check_decision_rule(self.decision, self.labels)

    @property
    def is_classification(self) -> bool:
        return bool(self.labels)

    @property
    def temperature(self) -> float:
        """The model's fitted temperature (1.0 when none was fitted)."""
        return float(self.meta.temperature) if self.meta is not None else 1.0

    @property
    def logit_adjustment(self) -> float:
        """The model's post-hoc logit adjustment strength tau (0.0: none; tunelab.inference.adjustment)."""
        return float(getattr(self.meta, "logit_adjustment", 0.0) or 0.0) if self.meta is not None else 0.0

    @property
    def class_prior(self) -> list[float] | None:
        """The training label shares the adjustment divides out (None: not recorded)."""
        return getattr(self.meta, "class_prior", None) if self.meta is not None else None

    def count_tokens(self, text: str) -> int:
        """Tokens in `text`; for text far beyond the model's positions, a lower bound found without
        tokenizing all of it (tunelab.models.encoding.count_tokens)."""
        positions = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        return encoding.count_tokens(self.tokenizer, text, max(positions or 0, self.max_length))

    def score_labels(self, prompts: list[str], *, labels: list[str] | None = None, batch_size: int = 32,
                     progress=None, calibrated: bool = True) -> np.ndarray:
        """log P(label | prompt), shape [len(prompts), len(labels)], labels in `self.labels` order.
        Calibrated by the model's temperature and logit-adjusted by its tau unless `calibrated=False`
        (or the labels are not the model's own): every consumer (evaluate, complete, the server) gets
        the same numbers."""
        labels = labels or self.labels
        if not labels:
            raise InvalidInputError(f"{self.model_id} is not a classification model; give the labels to score.")
        if self.method == Method.CLASSIFIER and labels != self.labels:
            raise InvalidInputError(f"{self.model_id} can only score its own labels {self.labels}.")
        with self.lock:
            raw = score_labels(self.model, self.tokenizer, self.method, prompts, labels, batch_size=batch_size,
                               max_length=self.max_length, progress=progress)
        if calibrated and labels == self.labels:
            return adjust(apply_temperature(raw, self.temperature), self.class_prior, self.logit_adjustment)
        return raw

    def complete(self, prompts: list[str], *, max_tokens: int = 16, temperature: float = 1.0, top_p: float = 1.0,
                 n: int = 1, stop: list[str] | None = None, logprobs: int | None = None, echo: bool = False,
                 seed: int | None = None) -> list[list[Completion]]:
        """For each prompt, `n` completions. `max_tokens=0` with `echo` scores the prompt alone; `echo`
        with `logprobs` (free-form models) puts the prompt's tokens first, as OpenAI does (the first
        token has no logprob when nothing precedes it). A label counts as one token: `max_tokens` >= 1
        gives the label, `top_p` keeps the smallest set of labels that holds that much probability
        when sampling, and a `stop` sequence inside the label ends the completion before it."""
        if self.is_classification:
            return self._complete_labels(prompts, temperature=temperature, top_p=top_p, stop=stop or [], n=n,
                                         logprobs=logprobs, echo=echo, seed=seed, max_tokens=max_tokens)
        if self.method == Method.CLASSIFIER:
            raise InvalidInputError(f"{self.model_id} is a classifier without labels.")
        if max_tokens <= 0:
            return [[self._scored_prompt(prompt, logprobs, echo) for _ in range(n)] for prompt in prompts]
        out = self._generate(prompts, max_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n,
                             stop=stop or [], logprobs=logprobs, echo=echo, seed=seed)
        if echo and logprobs is not None:
            for prompt, choices in zip(prompts, out):
                head = self._scored_prompt(prompt, logprobs, echo=True)
                for i, c in enumerate(choices):
                    choices[i] = Completion(
                        text=c.text, tokens=head.tokens + c.tokens, token_logprobs=head.token_logprobs + c.token_logprobs,
                        top_logprobs=head.top_logprobs + c.top_logprobs, text_offset=head.text_offset + c.text_offset,
                        finish_reason=c.finish_reason, prompt_tokens=c.prompt_tokens,
                        completion_tokens=c.completion_tokens)
        return out

    def stream(self, prompt: str, on_piece, *, max_tokens: int = 16, temperature: float = 1.0, top_p: float = 1.0,
               n: int = 1, stop: list[str] | None = None, logprobs: int | None = None, echo: bool = False,
               seed: int | None = None) -> Completion:
        """One completion of `prompt`, handing each token to `on_piece` (tunelab.inference.streaming.Piece)
        as it is generated; returns the whole Completion. A classification model's answer is one label,
        handed over whole."""
        if self.is_classification or self.method == Method.CLASSIFIER or max_tokens <= 0:
            from tunelab.inference.streaming import Piece

            (c,), = self.complete([prompt], max_tokens=max_tokens, temperature=temperature, top_p=top_p, n=1,
                                  stop=stop, logprobs=logprobs, echo=echo, seed=seed)
            first = len(c.tokens) - (c.completion_tokens or 0)  # echoed prompt tokens come first
            for t in range(first, len(c.tokens)):
                on_piece(Piece(c.tokens[t], c.token_logprobs[t], c.top_logprobs[t], c.text_offset[t]))
            return c
        from tunelab.inference.streaming import stream_completion

        return Completion(**stream_completion(self, prompt, on_piece, max_tokens=max_tokens, temperature=temperature,
                                               top_p=top_p, stop=stop, logprobs=logprobs, echo=echo, seed=seed))

    @torch.inference_mode()
    def _scored_prompt(self, prompt: str, logprobs: int | None, echo: bool) -> Completion:
        """The prompt's own tokens with their logprobs (each given the tokens before it): what
        `echo=True, max_tokens=0, logprobs=k` returns to score a text."""
        tok = self.tokenizer
        dev = next(self.model.parameters()).device
        ids = tok(prompt, add_special_tokens=True, truncation=False)["input_ids"]
        n_prompt = len(ids)
        if not echo:
            return Completion(text="", tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[],
                              finish_reason="length", prompt_tokens=n_prompt, completion_tokens=0)
        special = set(tok.all_special_ids or [])
        with self.lock, autocast(dev):
            logits = self.model(input_ids=torch.tensor([ids], device=dev)).logits[0].float()
        logp = logits.log_softmax(-1)
        tokens, lps, tops, offsets, pos = [], [], [], [], 0
        for t, token_id in enumerate(ids):
            if token_id in special:
                continue
            text = tok.decode([token_id])
            tokens.append(text)
            offsets.append(pos)
            pos += len(text)
            if t == 0:  # nothing before it to condition on
                lps.append(None)
                tops.append(None)
                continue
            lps.append(float(logp[t - 1, token_id]))
            tops.append(_top_tokens(logp[t - 1], logprobs, tok) if logprobs else None)
        return Completion(text=prompt, tokens=tokens, token_logprobs=lps, top_logprobs=tops, text_offset=offsets,
                          finish_reason="length", prompt_tokens=n_prompt, completion_tokens=0)

    # -- classification: one label per completion ---------------------------------------------
    def _complete_labels(self, prompts, *, temperature, n, logprobs, echo, seed, top_p=1.0, stop=(),
                         max_tokens=1) -> list[list[Completion]]:
        if max_tokens <= 0:  # scoring the prompt: a label has no tokens of the prompt to show
            return [[Completion(text=prompt if echo else "", tokens=[], token_logprobs=[], top_logprobs=[],
                                text_offset=[], finish_reason="length", prompt_tokens=self.count_tokens(prompt),
                                completion_tokens=0, label_mode=True) for _ in range(n)] for prompt in prompts]
        scores = self.score_labels(prompts)
        rng = np.random.default_rng(seed)
        out = []
        for prompt, row in zip(prompts, scores):
            order = np.argsort(-row)
            top = {self.labels[i]: float(row[i]) for i in order[: logprobs]} if logprobs else None
            choices = []
            for _ in range(n):
                if temperature and temperature > 0:
                    pick = int(rng.choice(len(row), p=nucleus(row, temperature, top_p)))
                else:
                    pick = int(decide(np.exp(row), self.labels, self.decision)[0])
                label = self.labels[pick]
                cut = min((label.find(s) for s in stop if s and s in label), default=-1)
                shown = label if cut < 0 else label[:cut]  # a stop sequence ends the completion before it
                offset = len(prompt) if echo else 0
                choices.append(Completion(
                    text=(prompt if echo else "") + shown, tokens=[shown] if shown else [],
                    token_logprobs=[float(row[pick])] if shown else [],
                    top_logprobs=([top] if logprobs else [None]) if shown else [], text_offset=[offset] if shown else [],
                    finish_reason="stop", prompt_tokens=self.count_tokens(prompt), completion_tokens=1 if shown else 0,
                    label_mode=True))
            out.append(choices)
        return out

    # -- free-form generation -----------------------------------------------------------------
    @torch.inference_mode()
    def _generate(self, prompts, *, max_tokens, temperature, top_p, n, stop, logprobs, echo, seed):
        tok = self.tokenizer
        dev = next(self.model.parameters()).device
        tok.padding_side = "left"
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=True).to(dev)
        sample = bool(temperature and temperature > 0)
        if seed is not None:
            torch.manual_seed(seed)
        kwargs = dict(max_new_tokens=max(1, max_tokens), do_sample=sample, num_return_sequences=n,
                      return_dict_in_generate=True, output_logits=True, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id)
        if sample:
            kwargs.update(temperature=float(temperature), top_p=float(top_p), top_k=0)
        with self.lock, autocast(dev):
            gen = self.model.generate(**enc, **kwargs)
        width = enc["input_ids"].shape[1]
        new = gen.sequences[:, width:]
        steps = torch.stack([l.float() for l in gen.logits], 1).log_softmax(-1)  # [B*n, T, V]
        out = []
        for i, prompt in enumerate(prompts):
            choices = []
            p_tokens = int(enc["attention_mask"][i].sum())
            for j in range(n):
                row = i * n + j
                choices.append(self._decode_choice(prompt, new[row], steps[row], stop, logprobs, echo, p_tokens))
            out.append(choices)
        return out

    def _decode_choice(self, prompt, ids, logp, stop, logprobs, echo, p_tokens) -> Completion:
        tok = self.tokenizer
        tokens, lps, tops = [], [], []
        finish = "length"
        for t, token_id in enumerate(ids.tolist()):
            if token_id == tok.eos_token_id or (tok.pad_token_id is not None and token_id == tok.pad_token_id and t > 0
                                                and tok.pad_token_id == tok.eos_token_id):
                finish = "stop"
                break
            tokens.append(tok.decode([token_id]))
            lps.append(float(logp[t, token_id]))
            tops.append(_top_tokens(logp[t], logprobs, tok) if logprobs else None)
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
        for t in tokens:
            offsets.append(pos)
            pos += len(t)
        return Completion(text=(prompt if echo else "") + text, tokens=tokens, token_logprobs=lps, top_logprobs=tops,
                          text_offset=offsets, finish_reason=finish, prompt_tokens=p_tokens,
                          completion_tokens=len(tokens))


def nucleus(logp: np.ndarray, temperature: float, top_p: float = 1.0) -> np.ndarray:
    """Sampling probabilities of the labels at `temperature`, restricted to the smallest set of
    most probable labels whose probability reaches `top_p` (nucleus sampling, as top_p is for tokens)."""
    p = np.exp((logp - logp.max()) / temperature)
    p = p / p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        keep = int(np.searchsorted(np.cumsum(p[order]), top_p) + 1)
        mask = np.zeros_like(p)
        mask[order[:keep]] = 1.0
        p = p * mask
        p = p / p.sum()
    return p


def load_predictor(model_id: str, store=None, *, decision: str = "argmax", folders: bool = False) -> Predictor:
    """A fine-tuned model from the store, or a causal base model (plain completions). `decision`:
    the rule a classification model's greedy completions answer with. `folders`: also a model
    folder tunelab wrote, given as a path (the local CLI; never the server)."""
    from tunelab.errors import NotFoundError
    from tunelab.models.loading import load_fine_tuned, load_tokenizer
    from tunelab.models.registry import CAUSAL, explain_unknown_model, resolve_model
    from tunelab.store import Store

    store = store or Store()
    record = store.find_model(model_id)
    if record is None:
        record = store.model_folder(model_id)
        if record is not None and not folders:
            # Else resolve_model would take the folder for a base model and drop its labels and temperature.
            raise InvalidInputError(f"{model_id} is a tunelab model folder; models are named by id here.",
                                    hint="Use the model's id (`tunelab models list`), or a checkpoint's "
                                         "`<model>:ckpt-step-<step>`.")
    dev = device()
    if record is not None:
        model, tokenizer, meta = load_fine_tuned(record.path)
        for_inference(model, dev)
        return Predictor(model_id, model, tokenizer, meta.method, meta.labels, max_length=meta.max_length,
                         meta=meta, base_model=meta.base_model, decision=decision)
    try:
        resolved = resolve_model(model_id, store, classification=False)
    except InvalidInputError:
        why = explain_unknown_model(model_id, store)
        raise NotFoundError(f"The model {model_id!r} does not exist." + (f" {why}" if why else ""),
                            hint="List models with `tunelab models list`.") from None
    if resolved.kind != CAUSAL:
        raise InvalidInputError(f"{model_id} is an encoder base model; it has no completions until fine-tuned.")
    check_decision_rule(decision, None)
    from transformers import AutoModelForCausalLM

    from tunelab.models.loading import quiet_transformers

    quiet_transformers()
    model = for_inference(AutoModelForCausalLM.from_pretrained(str(resolved.path), dtype=torch.float32), dev)
    return Predictor(model_id, model, load_tokenizer(resolved.path), Method.LM, None, base_model=resolved.base_model)


def _top_tokens(logp_row, k: int, tok) -> dict[str, float]:
    """The k most probable next tokens as {text: logprob}; tokens that decode to the same text
    (possible with byte-level vocabularies) keep the higher one, as OpenAI's top_logprobs would."""
    values, indices = logp_row.topk(k)
    top: dict[str, float] = {}
    for v, i in zip(values.tolist(), indices.tolist()):
        key = tok.decode([i])
        top[key] = max(top.get(key, -math.inf), v)
    return top
