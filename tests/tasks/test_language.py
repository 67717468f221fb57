"""Language-model tasks: losses, streamed metrics (perplexity, bits), masked-LM preparation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from practicum.data.lm import IGNORE_INDEX
from practicum.tasks import CausalLMTask, MaskedLMTask


def test_causal_loss_is_the_mean_token_cross_entropy_times_rows():
    logits, target = torch.randn(3, 5, 11), torch.randint(0, 11, (3, 5))
    task = CausalLMTask(vocab_size=11)
    expected = F.cross_entropy(logits.flatten(0, 1), target.flatten())
    assert torch.allclose(task.loss(logits, target) / 3, expected)


def test_streamed_metrics_equal_the_metrics_of_the_whole_split():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 4, 9), torch.randint(0, 9, (6, 4))
    table = torch.arange(9, dtype=torch.float64) % 3  # bytes per token, some 0 (specials)
    task = CausalLMTask(vocab_size=9, token_bytes=table, char_level=True)
    totals = task.stream_start()
    for lo in (0, 2, 4):
        task.stream_add(totals, logits[lo : lo + 2], {"target": target[lo : lo + 2]})
    out = task.stream_result(totals)
    loss = float(F.cross_entropy(logits.flatten(0, 1), target.flatten()))
    assert math.isclose(out["loss"], loss, rel_tol=1e-6)
    assert math.isclose(out["perplexity"], math.exp(loss), rel_tol=1e-6)
    assert math.isclose(out["bpc"], loss / math.log(2), rel_tol=1e-6)
    total_bytes = float(table[target].sum())
    assert math.isclose(out["bits_per_byte"], loss * target.numel() / total_bytes / math.log(2), rel_tol=1e-6)
    assert out["tokens"] == 24


def test_masked_lm_prepare_masks_only_ordinary_tokens_and_scores_only_them():
    task = MaskedLMTask(vocab_size=50, mask_id=4, special_ids=[0, 1, 2, 3, 4, 5, 6], probability=0.3)
    tokens = torch.randint(7, 50, (8, 32))
    tokens[:, 0] = 5  # a cls at the start of each row
    batch = task.prepare({"tokens": tokens, "target": tokens.clone()}, torch.Generator().manual_seed(1))
    chosen = batch["target"] != IGNORE_INDEX
    assert chosen.any() and not chosen[:, 0].any()
    assert torch.equal(batch["target"][chosen], tokens[chosen])
    assert torch.equal(batch["tokens"][~chosen], tokens[~chosen])
    logits = torch.randn(8, 32, 50)
    expected = F.cross_entropy(logits[chosen], tokens[chosen])
    assert torch.allclose(task.loss(logits, batch["target"]) / 8, expected)
    out = task.metrics(logits, batch["target"])
    assert out["tokens"] == int(chosen.sum()) and 0.0 <= out["mlm_accuracy"] <= 1.0


def test_masked_lm_with_nsp_adds_the_sentence_loss():
    task = MaskedLMTask(vocab_size=20, mask_id=4, special_ids=[0, 4], nsp=True)
    logits, nsp = torch.randn(2, 3, 20), torch.randn(2, 2)
    target = torch.tensor([[5, IGNORE_INDEX, 7], [IGNORE_INDEX, 9, IGNORE_INDEX]])
    batch = {"target": target, "nsp_target": torch.tensor([0, 1])}
    mlm = task.loss(logits, target)
    both = task.batch_loss((logits, nsp), batch)
    assert torch.allclose(both - mlm, F.cross_entropy(nsp, batch["nsp_target"], reduction="sum"))
    totals = task.stream_start()
    task.stream_add(totals, (logits, nsp), batch)
    out = task.stream_result(totals)
    assert {"mlm_loss", "nsp_loss", "nsp_accuracy"} <= set(out)
    assert math.isclose(out["loss"], out["mlm_loss"] + out["nsp_loss"])
