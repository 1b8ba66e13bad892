"""Chat conversations as model input: the loss falls on learnt assistant tokens only (weight 0 and
other roles are context), through the base model's chat template or the transcript fallback."""

from __future__ import annotations

import copy

import pytest
import torch

from tunelab.errors import InvalidInputError
from tunelab.models.chat import TEMPLATE, TRANSCRIPT, chat_format, encode_chat, example_prompt, render_chat
from tunelab.models.encoding import collate
from tunelab.models.meta import Method

CONVERSATION = [{"role": "system", "content": "rate it"}, {"role": "user", "content": "great love"},
                {"role": "assistant", "content": "1"}, {"role": "user", "content": "bad awful"},
                {"role": "assistant", "content": "2", "weight": 0}, {"role": "user", "content": "fine okay"},
                {"role": "assistant", "content": "3"}, {"role": "user", "content": "nothing learnt after this"}]


@pytest.fixture
def tokenizer(tiny_models):
    from tunelab.models.loading import load_tokenizer

    return load_tokenizer(tiny_models.decoder)  # its chat template: "{role}: {content}\n" per message


def learnt_ids(encoded) -> list[int]:
    return [i for i, w in zip(encoded.input_ids, encoded.weights) if w]


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_format_follows_method_and_template(tokenizer):
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    assert chat_format(Method.LM, tokenizer) == TEMPLATE
    assert chat_format(Method.LM, plain) == TRANSCRIPT  # the documented fallback
    assert chat_format(Method.CLASSIFIER, tokenizer) == TRANSCRIPT  # a head reads the transcript always


def test_only_learnt_assistant_turns_carry_the_loss_with_the_template(tokenizer):
    (enc,) = encode_chat(tokenizer, [CONVERSATION], TEMPLATE, max_length=256)
    eos = tokenizer.eos_token_id
    # the template's " 1\n" and " 3\n", each ended by EOS so that generation learns to stop
    assert learnt_ids(enc) == ids(tokenizer, " 1\n") + [eos] + ids(tokenizer, " 3\n") + [eos]
    whole = ids(tokenizer, render_chat(tokenizer, CONVERSATION[:7], TEMPLATE, add_generation_prompt=False))
    assert [i for i in enc.input_ids if i != eos] == whole  # nothing after the last learnt reply
    assert enc.n_completion == len(enc.input_ids) - enc.weights.index(1)


def test_transcript_fallback_without_a_template(tokenizer):
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    (enc,) = encode_chat(plain, [CONVERSATION], TRANSCRIPT, max_length=256)
    assert learnt_ids(enc) == ids(plain, "1") + [plain.eos_token_id] + ids(plain, "3") + [plain.eos_token_id]
    (short,) = encode_chat(plain, [CONVERSATION], TRANSCRIPT, max_length=5)  # over-long: the start goes
    assert short.input_ids == enc.input_ids[-5:] and short.weights == enc.weights[-5:]


def test_a_template_that_does_not_extend_its_prefix_is_refused(tokenizer):
    odd = copy.deepcopy(tokenizer)
    odd.chat_template = "{% for m in messages|reverse %}{{ m['content'] }}\n{% endfor %}"
    with pytest.raises(InvalidInputError, match="cannot be told apart"):
        encode_chat(odd, [CONVERSATION], TEMPLATE, max_length=256)


def test_example_prompt_renders_chat_rows_for_template_models(tokenizer):
    from tunelab.data.readers import Example

    messages = CONVERSATION[:3]
    row = Example("System:\n…", "1", 1, messages)
    assert example_prompt(row, tokenizer, TEMPLATE) == "system: rate it\nuser: great love\nassistant:"
    assert example_prompt(row, tokenizer, TRANSCRIPT) == row.prompt
    assert example_prompt(Example("p", " 1", 1), tokenizer, TEMPLATE) == "p"


def test_lm_loss_counts_exactly_the_learnt_tokens(tokenizer, tiny_models):
    from transformers import AutoModelForCausalLM

    from tunelab.training.losses import lm_step

    model = AutoModelForCausalLM.from_pretrained(str(tiny_models.decoder)).eval()
    second = [{"role": "user", "content": "dress fits"}, {"role": "assistant", "content": "4"}]
    encoded = encode_chat(tokenizer, [CONVERSATION, second], TEMPLATE, max_length=256)
    batch = collate(encoded, tokenizer.pad_token_id, left_pad=True)
    with torch.no_grad():
        result = lm_step(model, batch)
        total, count = 0.0, 0
        for e in encoded:  # each conversation alone, unpadded, by hand
            logits = model(torch.tensor([e.input_ids])).logits[0].float().log_softmax(-1)
            for t in range(1, len(e.input_ids)):
                if e.weights[t]:
                    total -= float(logits[t - 1, e.input_ids[t]])
                    count += 1
    assert int(result.n_tokens) == count == sum(map(sum, (e.weights for e in encoded)))
    assert float(result.loss) == pytest.approx(total / count, rel=1e-4)


def test_a_chat_classifier_reads_the_end_of_a_long_conversation(tiny_models):
    from tunelab.data.chat import transcript
    from tunelab.models.chat import keep_latest_turns
    from tunelab.models.encoding import encode_classifier
    from tunelab.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_models.encoder)
    long = transcript([{"role": "system", "content": "the " * 100}, {"role": "user", "content": "great love"}])
    (before,) = encode_classifier(tok, [long], [0], max_length=8)
    keep_latest_turns(tok, Method.CLASSIFIER, TRANSCRIPT)
    (after,) = encode_classifier(tok, [long], [0], max_length=8)
    words = lambda e: tok.convert_ids_to_tokens(e.input_ids)
    assert before.input_ids != after.input_ids and words(after)[-4:-1] == ["great", "love", "[UNK]"]  # [UNK]: "Assistant:"
    assert words(after)[0] == "[CLS]" and words(after)[-1] == "[SEP]"
    plain = load_tokenizer(tiny_models.encoder)
    keep_latest_turns(plain, Method.CLASSIFIER, None)  # not trained on chat: unchanged
    keep_latest_turns(plain, Method.LM, TRANSCRIPT)  # the lm method keeps the prompt's end anyway
    assert plain.truncation_side == "right"
