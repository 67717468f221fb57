"""Shared fixtures. A tiny pretrained source (a BERT-style LM bundle) and a small labelled text file for
fine-tuning tests; nothing here reads shared data or downloads anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from finetune_data import TOPICS, labelled_rows

from practicum.bundle import save_lm_bundle
from practicum.config import LMConfig, RunConfig, TaskConfig
from practicum.data.tokenizers import train_tokenizer
from practicum.models.lm import TransformerLM


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT-style bundle with a WordPiece tokenizer on the topic words."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    texts = [t for rows in TOPICS.values() for t in rows] * 4 + [str(i) for i in range(400)]
    tok = train_tokenizer("wordpiece", texts, 160, 1)
    torch.manual_seed(0)
    cfg = LMConfig(preset="bert-tiny", n_layer=2, n_head=2, n_embd=32, intermediate_size=64,
                   block_size=64, vocab_size=tok.vocab_size)
    model = TransformerLM(cfg)
    run = RunConfig(name="tiny", model=cfg, task=TaskConfig(type="masked_lm"))
    return save_lm_bundle(folder / "bundle", run, model, tok, {})


@pytest.fixture(scope="session")
def labelled_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labelled") / "topics.csv"
    lines = ["text,label"] + [f"{t},{lab}" for t, lab in labelled_rows(180)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="session")
def tiny_causal_source(tmp_path_factory) -> Path:
    """A 2-layer LLaMA-style bundle with a byte-level BPE tokenizer and a ChatML chat template."""
    folder = tmp_path_factory.mktemp("tiny_llama")
    texts = [f"{t} <|im_start|>user <|im_end|> assistant" for rows in TOPICS.values() for t in rows] * 4
    tok = train_tokenizer("bpe", texts, 400, 1)
    torch.manual_seed(0)
    cfg = LMConfig(preset="llama-tiny", vocab_size=tok.vocab_size, block_size=96)
    model = TransformerLM(cfg)
    run = RunConfig(name="tiny_llama", model=cfg, task=TaskConfig(type="causal_lm"))
    return save_lm_bundle(folder / "bundle", run, model, tok, {}, extra={"chat_template": CHATML})


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from intra-op threads and lose much on a busy 2-core CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- tiny trained bundles (issue 5: compress,
# export, explain and serve all start from a bundle)


def _train_tiny(folder: Path, overrides: list[str]) -> Path:
    import practicum

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return practicum.train(None, [*overrides, f"out_dir={folder}", "train.seed=0"]).bundle
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def text_classifier_bundle(tmp_path_factory, labelled_csv) -> Path:
    """A trained 2-layer, 32-wide Transformer text classifier (word tokens) on the topic sentences."""
    return _train_tiny(tmp_path_factory.mktemp("text_clf") / "run", [
        f"data.path={labelled_csv}", "data.kind=text", "data.features=[text]", "data.target=label",
        "data.text.tokenizer=word", "model.type=transformer", "model.d_model=32", "model.n_heads=2",
        "model.n_layers=2", "model.d_ff=64", "train.epochs=4", "train.batch_size=16", "train.lr=3e-3"])


@pytest.fixture(scope="session")
def image_classifier_bundle(tmp_path_factory) -> Path:
    """A LeNet-style CNN trained for three epochs on scikit-learn's 8x8 digits."""
    return _train_tiny(tmp_path_factory.mktemp("img_clf") / "run", [
        "data.path=builtin:digits", "model.type=lenet", "model.channels=[8,16]", "model.hidden_size=32",
        "train.epochs=3", "train.batch_size=64", "train.lr=1e-2"])


@pytest.fixture(scope="session")
def tabular_classifier_bundle(tmp_path_factory) -> Path:
    """An MLP trained briefly on the penguins table (numeric and categorical columns)."""
    return _train_tiny(tmp_path_factory.mktemp("tab_clf") / "run", [
        "data.path=builtin:penguins", "model.type=mlp", "model.hidden_sizes=[16]", "train.epochs=10", "train.lr=1e-2"])
