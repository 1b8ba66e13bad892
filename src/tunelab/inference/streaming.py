"""One free-form completion handed over token by token while it is generated (`stream: true`).

transformers' `generate` calls a streamer after each new token; here that callback decodes the token,
takes its logprob from the step's distribution (recorded by a logits processor, before temperature
and top_p reshape it, as the non-streamed path reports them) and passes it on at once. Text that may
be the start of a stop sequence is held back until it is clear it is not; a stop sequence ends
generation at the next step. What it returns is the whole answer, as `Predictor.complete` gives it
(for the prediction log and the usage counts).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from tunelab.runtime import autocast


@dataclass
class Piece:
    """A generated token as it is handed over (or, with `token` False, text that is no whole token:
    the part of a token before a stop sequence)."""
    text: str
    logprob: float | None
    top: dict[str, float] | None
    offset: int
    """Its position in the completion's text (after the prompt when echoed)."""
    token: bool = True


OnPiece = Callable[[Piece], object]
"""Called with each piece; returning False asks generation to stop (the client went away)."""


class _Recorder(LogitsProcessor):
    """Keeps each step's log-distribution (of the first sequence) for the streamer."""

    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        self.steps.append(scores[0].float().log_softmax(-1))
        return scores


class _Flag(StoppingCriteria):
    def __init__(self):
        self.stop = False

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.stop, dtype=torch.bool, device=input_ids.device)


class _Streamer(BaseStreamer):
    def __init__(self, tokenizer, recorder: _Recorder, flag: _Flag, on_piece: OnPiece, *, stop: list[str],
                 logprobs: int | None, base: int):
        self.tok, self.recorder, self.flag, self.on_piece = tokenizer, recorder, flag, on_piece
        self.stop_seqs = [s for s in stop if s]
        self.logprobs = logprobs
        self.base = base  # text offset of the completion (the prompt's length when echoed)
        self.prompt_seen = False
        self.step = 0
        self.pending: list[tuple[str, float, dict | None]] = []  # generated, not yet handed over
        self.sent: list[tuple[str, float, dict | None]] = []
        self.text = ""  # the text handed over so far
        self.tail = ""  # text of a token cut by a stop sequence (no whole token)
        self.finish = "length"
        self.cut = False  # a stop sequence ended it

    def put(self, value):
        if not self.prompt_seen:  # generate hands the prompt over first
            self.prompt_seen = True
            return
        token_id = int(value.reshape(-1)[0])
        step = self.recorder.steps[self.step] if self.step < len(self.recorder.steps) else None
        self.step += 1
        if self.flag.stop:
            return
        tok = self.tok
        if token_id == tok.eos_token_id:
            self.finish = "stop"
            self.flag.stop = True
            return
        logprob = float(step[token_id]) if step is not None else None
        top = None
        if self.logprobs and step is not None:
            top = {}
            values, indices = step.topk(self.logprobs)
            for v, k in zip(values.tolist(), indices.tolist()):
                key = tok.decode([k])
                top[key] = max(top.get(key, -math.inf), v)
        self.pending.append((tok.decode([token_id]), logprob, top))
        self._release()

    def _release(self, final: bool = False) -> None:
        pending_text = "".join(t for t, _, _ in self.pending)
        full = self.text + pending_text
        cut = min((full.find(s) for s in self.stop_seqs if s in full), default=-1)
        if cut >= 0:
            self._send_until(cut)
            self.tail = full[len(self.text):cut]
            if self.tail:
                self._emit(Piece(self.tail, None, None, self.base + len(self.text), token=False))
            self.pending.clear()
            self.finish = "stop"
            self.cut = self.flag.stop = True
            return
        hold = 0 if final else max((k for s in self.stop_seqs for k in range(1, len(s))
                                    if full.endswith(s[:k])), default=0)
        self._send_until(len(full) - hold)

    def _send_until(self, limit: int) -> None:
        """Hand over the pending tokens that end at or before text position `limit`."""
        while self.pending and len(self.text) + len(self.pending[0][0]) <= limit:
            text, logprob, top = self.pending.pop(0)
            offset = self.base + len(self.text)
            self.text += text
            self.sent.append((text, logprob, top))
            self._emit(Piece(text, logprob, top, offset))

    def _emit(self, piece: Piece) -> None:
        if self.on_piece(piece) is False:
            self.flag.stop = True

    def end(self):
        if not self.cut:  # the end of the text, or EOS: nothing more can complete a stop sequence
            self._release(final=True)


@torch.inference_mode()
def stream_completion(predictor, prompt: str, on_piece: OnPiece, *, max_tokens: int = 16, temperature: float = 1.0,
                      top_p: float = 1.0, stop: list[str] | None = None, logprobs: int | None = None,
                      echo: bool = False, seed: int | None = None):
    """Generate one completion of `prompt`, calling `on_piece` with each token as it is generated;
    returns the fields of the whole Completion (tunelab.inference.predictor builds it)."""
    tok = predictor.tokenizer
    model = predictor.model
    dev = next(model.parameters()).device
    enc = tok([prompt], return_tensors="pt", add_special_tokens=True).to(dev)
    sample = bool(temperature and temperature > 0)
    if seed is not None:
        torch.manual_seed(seed)
    recorder, flag = _Recorder(), _Flag()
    streamer = _Streamer(tok, recorder, flag, on_piece, stop=list(stop or []), logprobs=logprobs,
                         base=len(prompt) if echo else 0)
    kwargs = dict(max_new_tokens=max(1, max_tokens), do_sample=sample, pad_token_id=tok.pad_token_id,
                  eos_token_id=tok.eos_token_id, streamer=streamer,
                  logits_processor=LogitsProcessorList([recorder]), stopping_criteria=StoppingCriteriaList([flag]))
    if sample:
        kwargs.update(temperature=float(temperature), top_p=float(top_p), top_k=0)
    with predictor.lock, autocast(dev):
        model.generate(**enc, **kwargs)
    tokens = [t for t, _, _ in streamer.sent]
    offsets, pos = [], streamer.base
    for t in tokens:
        offsets.append(pos)
        pos += len(t)
    return dict(text=(prompt if echo else "") + streamer.text + streamer.tail, tokens=tokens,
                token_logprobs=[lp for _, lp, _ in streamer.sent], top_logprobs=[tp for _, _, tp in streamer.sent],
                text_offset=offsets, finish_reason=streamer.finish,
                prompt_tokens=int(enc["attention_mask"][0].sum()), completion_tokens=len(tokens))
