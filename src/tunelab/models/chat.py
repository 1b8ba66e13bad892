"""Chat examples as model input: which template renders them (`chat_format`), the rendered
prompt (`render_chat`), and token ids with the loss on learnt assistant messages only
(`encode_chat`). Training, `evaluate` and `/v1/chat/completions` all render through here.

Two formats, recorded in the model's `ModelMeta.chat_format`:
- TEMPLATE: the tokenizer's own chat template (SmolLM2-Instruct has one); the lm method uses it;
- TRANSCRIPT: tunelab.data.chat.transcript, for the classifier method (a head reads text, and
  `evaluate` must render test rows without loading a tokenizer first) and for the lm method on a
  base model without a chat template.
"""

from __future__ import annotations

from tunelab.data.chat import last_reply, learnt, transcript
from tunelab.errors import InvalidInputError
from tunelab.models.encoding import Encoded, clip_text
from tunelab.models.meta import Method

TEMPLATE = "template"
TRANSCRIPT = "transcript"


def chat_format(method: Method | str, tokenizer) -> str:
    """The format a model trained by `method` on chat data reads its messages in."""
    if Method.parse(method) == Method.LM and getattr(tokenizer, "chat_template", None):
        return TEMPLATE
    return TRANSCRIPT


def keep_latest_turns(tokenizer, method: Method | str, fmt: str | None) -> None:
    """A classifier of chat data reads its conversation's end when it is too long (the latest user
    message, not the system prompt): truncate from the left. Set on every tokenizer that encodes for
    such a model, in training and when it is loaded (a tokenizer does not save the setting)."""
    if fmt is not None and Method.parse(method) == Method.CLASSIFIER:
        tokenizer.truncation_side = "left"


def render_chat(tokenizer, messages: list[dict], fmt: str, *, add_generation_prompt: bool = True) -> str:
    """The messages as the model's input text."""
    if fmt == TRANSCRIPT:
        return transcript(messages, add_generation_prompt)
    try:
        return tokenizer.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in messages],
                                             tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as exc:  # a template may refuse a role order (jinja raise_exception)
        raise InvalidInputError(f"The model's chat template rejects these messages: {exc}") from None


def example_prompt(example, tokenizer, fmt: str | None) -> str:
    """The prompt that label scoring reads for a row of a data file (tunelab.data.readers.Example):
    for a chat row and a model that reads its chat template, the messages before the row's last
    learnt reply rendered with it; otherwise the row's prompt (for chat rows, the transcript)."""
    messages = getattr(example, "messages", None)
    if messages is None or fmt != TEMPLATE:
        return example.prompt
    return render_chat(tokenizer, messages[:last_reply(messages)], fmt)


def _segments(tokenizer, messages: list[dict], fmt: str) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, learnt) pieces: each learnt assistant message's
    text with its end-of-turn marker is learnt, everything else is context. The conversation ends
    with the last learnt message (later messages teach nothing)."""
    last = max(i for i, m in enumerate(messages) if learnt(m))
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages[: last + 1]):
        if not learnt(message):
            continue
        before = render_chat(tokenizer, messages[:i], fmt, add_generation_prompt=True)
        upto = render_chat(tokenizer, messages[: i + 1], fmt, add_generation_prompt=False)
        if fmt == TRANSCRIPT:  # the reply, not the blank line after it (the EOS ends the turn instead)
            upto = upto[: len(upto) - 2]
        if not before.startswith(done) or not upto.startswith(before):
            raise InvalidInputError(
                "The model's chat template does not render a conversation as the rendering of its first messages "
                "followed by the next one, so the assistant's tokens cannot be told apart for the loss.",
                hint="Train with a base model whose template renders messages one after another (SmolLM2, ChatML "
                     "templates), or use the classifier method.")
        if len(before) > len(done):
            pieces.append((before[len(done):], False))
        pieces.append((upto[len(before):], True))
        done = upto
    return pieces


def encode_chat(tokenizer, conversations: list[list[dict]], fmt: str, max_length: int) -> list[Encoded]:
    """Token ids of whole conversations with a 0/1 weight per token (1: a learnt assistant token),
    for the lm method. Pieces are tokenized apart and joined, as prompt and completion are in
    `encode_lm`; a learnt piece without the tokenizer's end-of-sequence token gets it appended, so
    that generation learns to stop. Over-long conversations lose their start."""
    eos_id, eos_text = tokenizer.eos_token_id, tokenizer.eos_token or ""
    bos = tokenizer("", add_special_tokens=True)["input_ids"]
    out = []
    for messages in conversations:
        segments = _segments(tokenizer, messages, fmt)
        # A template that writes the BOS text itself must not get a second one.
        start = [] if tokenizer.bos_token and segments[0][0].startswith(tokenizer.bos_token) else bos
        ids, weights = list(start), [0] * len(start)
        for text, is_learnt in segments:
            piece = tokenizer(clip_text(text, max_length), add_special_tokens=False)["input_ids"]
            if is_learnt and eos_id is not None and not (eos_text and eos_text in text):
                piece = piece + [eos_id]
            ids += piece
            weights += [1 if is_learnt else 0] * len(piece)
        ids, weights = ids[-max_length:], weights[-max_length:]
        first = next((i for i, w in enumerate(weights) if w), len(weights))
        out.append(Encoded(ids, len(ids) - first, -1, weights))
    return out
