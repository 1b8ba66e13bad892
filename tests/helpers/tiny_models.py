"""Tiny random-weight models built in a test's tmp_path, so engine tests run in seconds offline.

The tokenizer is a real `tokenizers` WordPiece/BPE-free word-level model trained on the test's own
text; the models are real transformers architectures (BERT encoder, Llama decoder) at toy size.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

WORDS = ("great good bad awful terrible love hate fine okay dress shirt fits small large perfect poor "
         "quality fabric color would buy again return never always the a it is was not very").split()


def _tokenizer(special: list[str], unk: str):
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=unk))
    # Split digits and spaces apart like SmolLM2 does, so " 4" becomes two tokens in tests too.
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True)])
    corpus = [" ".join(WORDS), "1 2 3 4 5 0 6 7 8 9 # ### yes no positive negative", "\n"]
    trainer = trainers.WordLevelTrainer(special_tokens=special, min_frequency=1)
    tok.train_from_iterator(corpus, trainer)
    return tok


def build_tiny_encoder(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
    from tokenizers import processors

    folder = Path(folder)
    raw = _tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]"], "[UNK]")
    raw.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=raw.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def build_tiny_decoder(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    raw = _tokenizer(["<pad>", "<unk>", "<s>", "</s>", " "], "<unk>")
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                  eos_token="</s>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=raw.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write_classification_jsonl(path: Path, n: int = 60, seed: int = 0, labels=("1", "2", "3", "4", "5")) -> Path:
    """Learnable toy data: each label has its own words."""
    import json
    import random

    rng = random.Random(seed)
    vocab = {l: WORDS[i * 5:(i + 1) * 5] for i, l in enumerate(labels)}
    with open(path, "w") as fh:
        for i in range(n):
            label = labels[i % len(labels)]
            words = [rng.choice(vocab[label]) for _ in range(rng.randint(3, 8))]
            fh.write(json.dumps({"prompt": " ".join(words) + "\n\n###\n\n", "completion": " " + label}) + "\n")
    return path
