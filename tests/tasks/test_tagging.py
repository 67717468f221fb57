"""Token classification task: loss over first sub-tokens, streamed metrics equal a direct
computation, outputs narrower than targets, per-word predictions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from practicum.data.lm import IGNORE_INDEX
from practicum.data.tagging import entity_f1
from practicum.evaluate.metrics import higher_is_better
from practicum.tasks.tagging import TokenClassificationTask

NAMES = ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]


def tagged_batch(n: int = 6, width: int = 9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (n, width, K) and targets with IGNORE on specials, some continuation pieces and
    padding (each row's tail)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, width, len(NAMES), generator=g) * 2
    target = torch.randint(0, len(NAMES), (n, width), generator=g)
    ignore = torch.rand(n, width, generator=g) < 0.3
    ignore[:, 0] = True
    for i in range(n):
        ignore[i, width - i:] = True
    return logits, target.masked_fill(ignore, IGNORE_INDEX)


def direct_scores(logits: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    keep = target != IGNORE_INDEX
    pred = logits.argmax(-1)
    true_rows = [[NAMES[t] for t in target[i][keep[i]].tolist()] for i in range(len(target))]
    pred_rows = [[NAMES[p] for p in pred[i][keep[i]].tolist()] for i in range(len(target))]
    return {"loss": float(F.cross_entropy(logits[keep], target[keep])),
            "token_accuracy": float((pred[keep] == target[keep]).float().mean()),
            **entity_f1(true_rows, pred_rows)}


def test_loss_is_the_mean_over_tagged_words_times_rows():
    logits, target = tagged_batch()
    task = TokenClassificationTask(NAMES)
    expected = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE_INDEX)
    assert task.num_outputs() == 5
    assert torch.allclose(task.loss(logits, target) / len(target), expected)


def test_streamed_metrics_equal_a_direct_computation():
    logits, target = tagged_batch()
    task = TokenClassificationTask(NAMES)
    totals = task.stream_start()
    for lo, hi in ((0, 2), (2, 5), (5, 6)):
        task.stream_add(totals, logits[lo:hi], {"target": target[lo:hi]})
    streamed = task.stream_result(totals)
    whole = task.metrics(logits, target)
    direct = direct_scores(logits, target)
    for key, value in direct.items():
        assert streamed[key] == pytest.approx(value, rel=1e-5), key
        assert whole[key] == pytest.approx(value, rel=1e-5), key
    assert streamed["words"] == int((target != IGNORE_INDEX).sum())
    assert direct["f1"] > 0  # the random example does score some entities
    per_type = streamed["per_type"]
    assert set(per_type) <= {"LOC", "PER"} and all("support" in v for v in per_type.values())


def test_outputs_narrower_than_targets_are_scored_on_their_columns():
    logits, target = tagged_batch(width=9)
    target[:, 6:] = IGNORE_INDEX  # columns a model cut as all padding
    task = TokenClassificationTask(NAMES)
    narrow = task.metrics(logits[:, :6], target)
    full = task.metrics(logits, target)
    assert narrow["loss"] == pytest.approx(full["loss"]) and narrow["f1"] == pytest.approx(full["f1"])
    assert torch.allclose(task.loss(logits[:, :6], target), task.loss(logits, target))


def test_predictions_are_one_tag_per_word_at_first_sub_tokens():
    task = TokenClassificationTask(NAMES)
    # row 0: [CLS] new york ##er [SEP] -> words 0, 1 at positions 1, 2; row 1: [CLS] bob [SEP] pad
    word_index = torch.tensor([[-1, 0, 1, -1, -1], [-1, 0, -1, -1, -1]])
    logits = torch.full((2, 5, 5), -5.0)
    logits[0, 1, NAMES.index("B-LOC")] = 5
    logits[0, 2, NAMES.index("I-LOC")] = 5
    logits[0, 3, NAMES.index("B-PER")] = 5  # a continuation piece: never read
    logits[1, 1, NAMES.index("B-PER")] = 5
    records = task.predictions(logits, word_index, n_words=[2, 3])
    assert records[0]["prediction"] == ["B-LOC", "I-LOC"]
    assert records[0]["entities"] == [{"type": "LOC", "start": 0, "end": 2}]
    assert records[1]["prediction"] == ["B-PER", "O", "O"]  # two words cut at max_length
    assert records[1]["confidence"][0] > 0.99 and records[1]["confidence"][1:] == [None, None]
    with pytest.raises(ValueError, match="word_index"):
        task.predictions(logits)


def test_the_monitored_metric_is_higher_is_better():
    assert TokenClassificationTask.default_monitor == "f1" and higher_is_better("val_f1")
