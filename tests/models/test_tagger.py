"""PretrainedTagger: per-token logits, padding columns cost nothing and read zero, the PEFT
strategies treat it like a classifier, and it learns a toy tagging set."""

from __future__ import annotations

import random

import torch

from practicum.config import LMConfig, PeftConfig
from practicum.data.tagging import encode_tagged, tag_vocabulary
from practicum.data.tokenizers import train_tokenizer
from practicum.models.lm import TransformerLM
from practicum.models.pretrained import backbone_config
from practicum.models.tagger import PretrainedTagger
from practicum.peft import apply_strategy
from practicum.tasks.tagging import TokenClassificationTask

CITIES = ["paris", "london", "berlin", "rome", "new york", "los angeles", "amsterdam"]
FRAMES = ["i flew to {}", "we live in {} now", "{} is nice", "the weather in {} is bad",
          "she moved from {} to {}", "trains to {} are late"]


def toy_rows(n: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences with city names tagged B-LOC / I-LOC, every other word O."""
    rng = random.Random(seed)
    words, tags = [], []
    for _ in range(n):
        row_words, row_tags = [], []
        for w in rng.choice(FRAMES).split():
            city = rng.choice(CITIES).split() if w == "{}" else None
            row_words += city or [w]
            row_tags += ["B-LOC"] + ["I-LOC"] * (len(city) - 1) if city else ["O"]
        words.append(row_words)
        tags.append(row_tags)
    return words, tags


def tiny_tagger(vocab_size: int, num_tags: int, n_layer: int = 1) -> PretrainedTagger:
    torch.manual_seed(0)
    cfg = LMConfig(preset="bert-tiny", n_layer=n_layer, n_head=2, n_embd=32, intermediate_size=64,
                   block_size=32, vocab_size=vocab_size, dropout=0.0)
    return PretrainedTagger(TransformerLM(backbone_config(cfg)), num_tags, dropout=0.0)


def tokenizer():
    words, _ = toy_rows(60, seed=0)
    return train_tokenizer("wordpiece", [" ".join(w) for w in words], 70, 1)


def test_logits_cover_every_position_and_padding_columns_change_nothing():
    model = tiny_tagger(vocab_size=50, num_tags=3).eval()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(7, 50, (3, 12), generator=g)
    mask = torch.arange(12)[None, :] < torch.tensor([[6], [4], [2]])  # longest real row: 6
    out = model(tokens * mask, mask)
    assert out.shape == (3, 12, 3)
    assert (out[:, 6:] == 0).all()  # columns past every row's end read zero
    cut = model(tokens[:, :6] * mask[:, :6], mask[:, :6])
    torch.testing.assert_close(out[:, :6], cut)
    assert model(tokens, mask, word_index=torch.zeros_like(tokens)).shape == (3, 12, 3)


def test_peft_strategies_treat_the_tagger_like_a_classifier():
    model = tiny_tagger(vocab_size=50, num_tags=3)
    info = apply_strategy(model, PeftConfig(strategy="linear_probe"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"} and info["trainable"] == 32 * 3 + 3
    prompted = tiny_tagger(vocab_size=50, num_tags=3)
    apply_strategy(prompted, PeftConfig(strategy="prompt_tuning", prompt_tokens=4))
    tokens, mask = torch.randint(7, 50, (2, 8)), torch.ones(2, 8, dtype=torch.bool)
    assert prompted(tokens, mask).shape == (2, 8, 3)


def test_a_few_dozen_steps_learn_to_tag_city_names():
    tok = tokenizer()
    train_words, train_tags = toy_rows(48, seed=1)
    test_words, test_tags = toy_rows(24, seed=2)
    names = tag_vocabulary(train_tags)
    index = {t: i for i, t in enumerate(names)}
    train = encode_tagged(tok, train_words, train_tags, index, max_length=24)
    test = encode_tagged(tok, test_words, test_tags, index, max_length=24)
    task = TokenClassificationTask(names)
    model = tiny_tagger(tok.vocab_size, len(names))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    before = task.metrics(model.eval()(test["tokens"], test["mask"]).detach(), test["target"])
    model.train()
    for step in range(40):
        rows = torch.arange(step * 16, step * 16 + 16) % 48
        loss = task.loss(model(train["tokens"][rows], train["mask"][rows]), train["target"][rows]) / 16
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = task.metrics(model.eval()(test["tokens"], test["mask"]), test["target"])
    assert after["loss"] < before["loss"] / 4
    assert after["token_accuracy"] > 0.95 and after["f1"] > 0.9, after
