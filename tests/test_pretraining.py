"""Language-model runs end to end: GPT and BERT pretraining through the one Trainer, LM
bundles, exact resume with masking and dropout, and the bad inputs of the LM commands."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
from interrupt import interrupted_then_resumed

from practicum import api
from practicum.bundle import Bundle
from practicum.errors import UserError

pytestmark = pytest.mark.slow


def toy_corpus(path: Path, docs: int = 40) -> Path:
    """Short repetitive documents (learnable in a few dozen steps), one per JSONL record."""
    rng = random.Random(0)
    subjects, verbs, objects = ["the cat", "a dog", "my friend", "the king"], ["sees", "likes", "eats"], ["fish", "bread", "the moon"]
    lines = []
    for _ in range(docs):
        sents = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}." for _ in range(12)]
        lines.append('{"text": "' + " ".join(sents) + '"}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def gpt_config(tmp_path: Path, **train) -> dict:
    return {
        "name": "tiny_gpt", "out_dir": str(tmp_path / "gpt"),
        "data": {"path": str(toy_corpus(tmp_path / "toy.jsonl")), "corpus": {"tokenizer": "char"}},
        "model": {"type": "lm", "preset": "gpt-tiny", "block_size": 32},
        "task": {"type": "causal_lm"},
        "train": {"max_steps": 60, "batch_size": 16, "lr": 3e-3, "eval_every": 30,
                  "progress": "never", "tensorboard": False, "warmup_steps": 5, **train},
    }


def bert_config(tmp_path: Path, **train) -> dict:
    return {
        "name": "tiny_bert", "out_dir": str(tmp_path / "bert"),
        "data": {"path": str(toy_corpus(tmp_path / "toy.jsonl")),
                 "corpus": {"tokenizer": "wordpiece", "vocab_size": 60}},
        "model": {"type": "lm", "preset": "bert-tiny", "n_embd": 64, "intermediate_size": 128,
                  "block_size": 32, "dropout": 0.1},
        "task": {"type": "masked_lm"},
        "train": {"max_steps": 60, "batch_size": 16, "lr": 2e-3, "eval_every": 20,
                  "progress": "never", "tensorboard": False, **train},
    }


def val_losses(run_dir: Path) -> list[float]:
    import json

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "val"]


def test_gpt_pretraining_learns_and_its_bundle_generates(tmp_path):
    result = api.train(gpt_config(tmp_path))
    val = result.metrics["val"]
    vocab = result.summary["vocab_size"]
    assert val["loss"] < 0.6 * math.log(vocab)  # far below a uniform guess
    assert math.isclose(val["perplexity"], math.exp(val["loss"]), rel_tol=1e-6)
    assert "bpc" in val and "bits_per_byte" in val
    for name in ("tokenizer.json", "corpus/train.bin", "corpus/val.bin", "report.html", "summary.json"):
        assert (result.run_dir / name).is_file(), name
    bundle = Bundle.load(result.bundle)
    assert bundle.is_language_model and bundle.tokenizer.vocab_size == vocab
    with pytest.raises(UserError, match="language model"):
        bundle.predict([{"text": "x"}])
    from practicum.generate import GenerationConfig, generate

    out = generate(bundle.model, bundle.tokenizer, ["the cat "], GenerationConfig(max_new_tokens=20, temperature=0))
    assert len(out[0].text) > 0


def test_bert_pretraining_lowers_mlm_loss_and_fills_masks(tmp_path):
    result = api.train(bert_config(tmp_path, max_steps=80, lr=1e-3, warmup_steps=10, eval_every=10))
    losses = val_losses(result.run_dir)
    assert losses[-1] < losses[0] - 0.3
    val = result.metrics["val"]
    assert 0.0 < val["mlm_accuracy"] <= 1.0
    bundle = Bundle.load(result.bundle)
    from practicum.generate import fill_mask

    ranked = fill_mask(bundle.model, bundle.tokenizer, "the cat [MASK] fish.", top_k=3)
    assert len(ranked) == 1 and len(ranked[0]) == 3
    probs = [p for _, p in ranked[0]]
    assert probs == sorted(probs, reverse=True)


def test_bert_with_next_sentence_prediction_reports_nsp_metrics(tmp_path):
    cfg = bert_config(tmp_path, max_steps=10, eval_every=10)
    cfg["task"]["nsp"] = True
    result = api.train(cfg)
    assert {"nsp_accuracy", "nsp_loss", "mlm_loss"} <= set(result.metrics["val"])


def test_masked_lm_resume_after_interruption_is_exact(tmp_path, monkeypatch):
    """Masking and dropout are seeded per batch, so an interrupted run resumes bit-exactly."""
    from practicum.data.corpus import iter_documents
    from practicum.data.tokenizers import train_tokenizer

    # one tokenizer for both runs: WordPiece training breaks frequency ties differently from
    # run to run (Hugging Face tokenizers), and this test is about the Trainer's resume
    tok = train_tokenizer("wordpiece", iter_documents(toy_corpus(tmp_path / "toy.jsonl")), 60, 1)
    tok_file = tok.save(tmp_path / "tokenizer.json")

    def config(sub: str) -> dict:
        (tmp_path / sub).mkdir()
        cfg = bert_config(tmp_path / sub, max_steps=24, eval_every=8, checkpoint_every=5)
        cfg["data"]["corpus"]["tokenizer"] = str(tok_file)
        return cfg

    full = api.train(config("a"))
    resumed = interrupted_then_resumed(config("b"), 13, monkeypatch)
    a = Bundle.load(full.bundle).model.state_dict()
    b = Bundle.load(resumed.bundle).model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.metrics["val"]["loss"] == full.metrics["val"]["loss"]


def test_causal_task_with_a_bert_model_is_refused(tmp_path):
    cfg = bert_config(tmp_path)
    cfg["task"]["type"] = "causal_lm"
    with pytest.raises(UserError, match="causal_lm needs model.causal true"):
        api.train(cfg)
    assert not (tmp_path / "bert").exists()
