"""Tiny random-weight models, so engine, inference and server tests run in seconds offline.

The tokenizer is a real `tokenizers` WordPiece/BPE-free word-level model trained on the test's own
text; the models are real transformers architectures (BERT encoder, Llama decoder) at toy size.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

WORDS = ("great good bad awful terrible love hate fine okay dress shirt fits small large perfect poor "
         "quality fabric color would buy again return never always the a it is was not very").split()


def _tokenizer(special: list[str], unk: str):
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


def build_tiny_decoder(folder: Path, chat_template: str | None = None) -> Path:
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
    if chat_template:
        tok.chat_template = chat_template
    tok.save_pretrained(folder)
    return folder


def write_classification_jsonl(path: Path, n: int = 60, seed: int = 0, labels=("1", "2", "3", "4", "5")) -> Path:
    """Learnable toy data: each label has its own words."""
    import json

    with open(path, "w") as fh:
        for text, label in toy_reviews(n, seed, labels):
            fh.write(json.dumps({"prompt": text + "\n\n###\n\n", "completion": " " + label}) + "\n")
    return path


def toy_reviews(n: int, seed: int, labels) -> list[tuple[str, str]]:
    """(text, label) pairs, labels in turn, each text 3-8 words drawn from its label's own five."""
    import random

    rng = random.Random(seed)
    vocab = {l: WORDS[i * 5:(i + 1) * 5] for i, l in enumerate(labels)}
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        rows.append((" ".join(rng.choice(vocab[label]) for _ in range(rng.randint(3, 8))), label))
    return rows


# -- the one factory every suite uses (the session fixture `tiny_models` in tests/conftest.py) -----

LABELS = [" 1", " 2", " 3", " 4", " 5"]
CATEGORIES = ("dress", "shirt", "pants")
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")


@dataclass
class TrainedModels:
    """Tiny models really fine-tuned by jobs, in a store of their own, with their data files."""

    root: Path
    home: Path
    store: object
    decoder_dir: Path
    train: Path
    test: Path
    cat_train: Path
    cat_test: Path
    enc: str  # classifier head, labels " 1".." 5", 2 epochs
    lm: str  # causal lm method, labels " 1".." 5", 2 epochs
    child: str  # enc continued for one more epoch
    cat: str  # classifier with categorical labels


class TinyModels:
    """Random-weight base models built once per test session, and what is built from them on demand
    (each at most once per session):

    - `encoder`, `decoder`: base folders (BERT encoder; Llama decoder with a chat template);
    - `train`, `valid`: learnable classification data (120 and 30 rows, labels " 1".." 5");
    - `finetuned()`: untrained model folders as a job leaves them (`classifier`, `lm`, `lm-labels`);
      `register(store, kind, ...)` copies one into a store (as the runner does) and returns its id;
    - `trained()`: models fine-tuned by real (tiny) jobs in a reference store; `install_trained(home)`
      copies that store into a test's own TUNELAB_HOME and returns the same models over the copy.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.encoder = build_tiny_encoder(self.root / "enc")
        self.decoder = build_tiny_decoder(self.root / "dec", chat_template=CHAT_TEMPLATE)
        self.train = write_classification_jsonl(self.root / "train.jsonl", 120, seed=0)
        self.valid = write_classification_jsonl(self.root / "valid.jsonl", 30, seed=1)
        self._finetuned: dict[str, Path] | None = None
        self._trained: TrainedModels | None = None

    def __getitem__(self, name: str) -> Path:
        """`tiny_models["enc"]` / `["dec"]`: the base folders under their short names."""
        return {"enc": self.encoder, "dec": self.decoder}[name]

    # -- untrained fine-tuned folders ------------------------------------------------------------
    def finetuned(self) -> dict[str, Path]:
        if self._finetuned is None:
            self._finetuned = _build_finetuned(self.root / "finetuned", self.encoder, self.decoder)
        return self._finetuned

    def register(self, store, kind: str, *, name: str | None = None, suffix: str | None = None) -> str:
        """Copy the `kind` fine-tuned folder into `store` and return the new model id."""
        folder = self.finetuned()[kind]
        method = "classifier" if kind == "classifier" else "lm"
        copy = Path(tempfile.mkdtemp(dir=store.home)) / "build"
        shutil.copytree(folder, copy)
        meta = json.loads((folder / "tunelab.json").read_text())
        record = store.register_model(base_id=name or ("enc" if kind == "classifier" else "dec"), built_dir=copy,
                                      base_model=meta["base_model"], method=method, labels=meta.get("labels"),
                                      cumulative_epochs=1, suffix=suffix, meta=meta)
        shutil.rmtree(copy.parent, ignore_errors=True)
        return record.id

    # -- models trained by jobs --------------------------------------------------------------------
    def trained(self) -> TrainedModels:
        if self._trained is None:
            self._trained = _train_reference_models(self.root / "trained", self.encoder, self.decoder)
        return self._trained

    def install_trained(self, home: Path) -> TrainedModels:
        """A copy of the trained models' store in `home` (a test's TUNELAB_HOME): what the test changes
        stays there. Paths recorded in the database are rewritten to the copy."""
        from sqlalchemy import create_engine, text

        from tunelab.store import Store

        ref = self.trained()
        ref.store.engine.dispose()
        home = Path(home)
        shutil.copytree(ref.home, home, dirs_exist_ok=True, ignore=shutil.ignore_patterns("worker.lock"))
        engine = create_engine(f"sqlite:///{home / 'tunelab.db'}")
        old, new = str(ref.home), str(home)
        with engine.begin() as conn:
            for table in ("files", "models", "checkpoints"):
                conn.execute(text(f"UPDATE {table} SET path = :new || substr(path, :n) WHERE substr(path, 1, :m) = :old"),
                             {"new": new, "old": old, "n": len(old) + 1, "m": len(old)})
        engine.dispose()
        return TrainedModels(**{**ref.__dict__, "home": home, "store": Store(home=home)})


def _save(model, tokenizer, folder: Path, meta: dict) -> None:
    from tunelab.models.loading import save_fine_tuned

    try:  # the typed metadata of tunelab.models.meta, where it exists
        from tunelab.models.meta import ModelMeta
    except ImportError:  # pragma: no cover - older layout: a plain dict
        save_fine_tuned(model, tokenizer, folder, meta)
        return
    save_fine_tuned(model, tokenizer, folder, ModelMeta.from_dict(meta))


def _build_finetuned(root: Path, enc: Path, dec: Path) -> dict[str, Path]:
    """Model folders as a job leaves them (weights, tokenizer, tunelab.json), without training."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from tunelab.models.loading import load_tokenizer

    torch.manual_seed(0)
    clf = AutoModelForSequenceClassification.from_pretrained(
        str(enc), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
    common = {"lora": False, "max_length": 64, "base_learning_rate": 1e-4, "default_batch_size": 8,
              "epochs_this_job": 1, "job_id": None}
    _save(clf, load_tokenizer(enc), root / "classifier",
          {**common, "method": "classifier", "labels": LABELS, "kind": "encoder", "base_model": str(enc),
           "classification": True})
    lm = AutoModelForCausalLM.from_pretrained(str(dec))
    _save(lm, load_tokenizer(dec), root / "lm",
          {**common, "method": "lm", "labels": None, "kind": "causal", "base_model": str(dec), "classification": False})
    _save(lm, load_tokenizer(dec), root / "lm-labels",
          {**common, "method": "lm", "labels": LABELS, "kind": "causal", "base_model": str(dec),
           "classification": True})
    return {"classifier": root / "classifier", "lm": root / "lm", "lm-labels": root / "lm-labels"}


def _train_reference_models(root: Path, enc_dir: Path, dec_dir: Path) -> TrainedModels:
    import os

    from tunelab.store import Store
    from tunelab.training.config import ClassificationOptions
    from tunelab.training.planning import JobRequest, create_job
    from tunelab.training.runner import run_job

    root.mkdir(parents=True)
    train = write_classification_jsonl(root / "train.jsonl", 60)
    val = write_classification_jsonl(root / "val.jsonl", 20, seed=1)
    test = write_classification_jsonl(root / "test.jsonl", 30, seed=2)
    cat_train = write_classification_jsonl(root / "cat-train.jsonl", 30, labels=CATEGORIES)
    cat_val = write_classification_jsonl(root / "cat-val.jsonl", 15, seed=1, labels=CATEGORIES)
    cat_test = write_classification_jsonl(root / "cat-test.jsonl", 15, seed=2, labels=CATEGORIES)
    store = Store(home=root / "home")

    def train_one(train_path, model, val_path, n_classes, **hp):
        create_job(store, JobRequest(str(train_path), model, str(val_path),
                                     {"n_epochs": 2, "learning_rate_multiplier": 50, "eval_every": 1000, **hp},
                                     ClassificationOptions(True, n_classes)))
        job = run_job(store, store.claim_next_job(os.getpid()))
        assert job.status == "succeeded", job.error
        return job.fine_tuned_model

    enc = train_one(train, str(enc_dir), val, 5)
    lm = train_one(train, str(dec_dir), val, 5, method="lm")
    # keep_best off: the fixture needs weights that were really continued (a tiny epoch may not beat its parent)
    child = train_one(train, enc, val, 5, n_epochs=1, keep_best=False)
    cat = train_one(cat_train, str(enc_dir), cat_val, 3)
    return TrainedModels(root, root / "home", store, dec_dir, train, test, cat_train, cat_test, enc, lm, child, cat)


def write_chat_jsonl(path: Path, n: int = 60, seed: int = 0, labels=("1", "2", "3", "4", "5"),
                     system: str | None = "rate the review") -> Path:
    """The classification data of `write_classification_jsonl` written as chat: the review is the
    user message, the label the assistant's reply."""
    import json

    with open(path, "w") as fh:
        for text, label in toy_reviews(n, seed, labels):
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": text}, {"role": "assistant", "content": label}]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path
