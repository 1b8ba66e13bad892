"""Text beyond what a model reads is cut before tokenizing (issue 15: a 10 MB prompt was tokenized
whole, for seconds, and then truncated): the tokens kept are the same, the cost no longer grows
with the text."""

from __future__ import annotations

import time

import pytest
import torch


class Spy:
    """A tokenizer that records how many characters it was given."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.chars = 0

    def __call__(self, texts, **kwargs):
        self.chars += sum(map(len, texts)) if isinstance(texts, list) else len(texts)
        return self.tokenizer(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


@pytest.fixture
def tokenizer(tiny_models):
    from tunelab.models.loading import load_tokenizer

    return load_tokenizer(tiny_models.encoder)


def test_clip_text():
    from tunelab.models.encoding import MAX_CHARS_PER_TOKEN, clip_text

    text = "ab" * 10_000
    assert clip_text("short", 4) == "short"
    assert clip_text(text, 10) == text[:10 * MAX_CHARS_PER_TOKEN]
    assert clip_text(text, 10, keep="end") == text[-10 * MAX_CHARS_PER_TOKEN:]


def test_a_huge_prompt_is_cut_before_tokenizing(tokenizer):
    from tunelab.models.encoding import encode_classifier, encode_lm

    words = "great good love fine okay dress fits " * 4
    huge = words * 100_000  # 12 MB
    spy = Spy(tokenizer)
    started = time.perf_counter()
    [clipped] = encode_classifier(spy, [huge], [0], max_length=64)
    assert time.perf_counter() - started < 1.0 and spy.chars <= 2 * 64 * 20 + 2  # its head and its tail
    [whole] = encode_classifier(tokenizer, [words * 20], [0], max_length=64)
    assert clipped.input_ids == whole.input_ids and len(clipped.input_ids) == 64

    spy = Spy(tokenizer)
    [lm] = encode_lm(spy, ["bad " + huge + " the end"], [" 4"], max_length=32, append_eos=False)
    assert spy.chars <= 32 * 20 + 2 and len(lm.input_ids) == 32  # the prompt keeps its end, then the completion
    [short] = encode_lm(tokenizer, ["bad " + words * 3 + " the end"], [" 4"], max_length=32, append_eos=False)
    assert lm.input_ids == short.input_ids


def test_count_tokens_is_exact_for_what_fits_and_cheap_beyond(tokenizer):
    from tunelab.models.encoding import count_tokens

    text = "great good love fine " * 10
    assert count_tokens(tokenizer, text, 128) == len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 40
    spy = Spy(tokenizer)
    assert count_tokens(spy, text * 100_000, 128) > 128  # more than the model reads: refused or truncated
    assert spy.chars <= 128 * 20


def test_collate_pads_to_a_multiple_of_8_by_default_and_exactly_with_multiple_1():
    from tunelab.models.encoding import Encoded, collate

    items = [Encoded([5, 6, 7], 0, 1), Encoded(list(range(1, 12)), 0, 0)]
    wide = collate(items, 0, left_pad=False)
    exact = collate(items, 0, left_pad=False, multiple=1)
    assert wide["input_ids"].shape == (2, 16) and exact["input_ids"].shape == (2, 11)
    assert exact["attention_mask"].sum(1).tolist() == [3, 11]
    assert (wide["input_ids"][:, :11] == exact["input_ids"]).all()


def test_a_long_prompt_keeps_its_start_and_its_end(tokenizer):
    from tunelab.models.encoding import HEAD_SHARE, encode_classifier

    prompt = "great love " + "fine okay dress " * 200 + "bad fits\n\n###\n\n"
    [enc] = encode_classifier(tokenizer, [prompt], [0], max_length=64)
    words = tokenizer.convert_ids_to_tokens(enc.input_ids)
    assert len(words) == 64 and words[0] == "[CLS]" and words[-1] == "[SEP]"
    assert words[1:3] == ["great", "love"]  # the head
    assert words[-5:] == ["dress", "bad", "fits", "###", "[SEP]"]  # the verdict and the separator
    head = int(62 * HEAD_SHARE)
    [head_only] = encode_classifier(tokenizer, [prompt[:200]], [0], max_length=64)
    assert enc.input_ids[:1 + head] == head_only.input_ids[:1 + head]
    # a text far longer than the model reads gives the same tokens as tokenizing it all
    huge = "great love " + "fine okay dress " * 100_000 + "bad fits\n\n###\n\n"
    [cut] = encode_classifier(tokenizer, [huge], [0], max_length=64)
    assert cut.input_ids == enc.input_ids
    [short] = encode_classifier(tokenizer, ["great love"], [0], max_length=64)
    assert tokenizer.convert_ids_to_tokens(short.input_ids) == ["[CLS]", "great", "love", "[SEP]"]


def test_collate_pads_left_for_causal_lms_with_long_tensors_and_positions():
    from tunelab.models.encoding import Encoded, collate

    items = [Encoded([5, 6, 7], 1, 0), Encoded([1, 2, 3, 4, 8], 2, 1)]
    batch = collate(items, 9, left_pad=True, multiple=1)
    assert batch["input_ids"].tolist() == [[9, 9, 5, 6, 7], [1, 2, 3, 4, 8]]
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert batch["position_ids"].tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.long
    assert batch["labels"].tolist() == [0, 1] and batch["max_completion"] == 2
    right = collate(items, 9, left_pad=False, multiple=1)
    assert right["input_ids"].tolist() == [[5, 6, 7, 9, 9], [1, 2, 3, 4, 8]]
