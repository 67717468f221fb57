"""Language-model objectives: causal LM (GPT) and masked LM with optional next-sentence
prediction (BERT). Both evaluate by streaming: a split's logits (tokens x vocabulary) are never
kept, only sums of loss, tokens and correct predictions.

Metrics: loss (mean nats per predicted token), perplexity, bits per token and, when the task
knows each token's UTF-8 byte length, bits per byte (comparable across tokenizers); for a
char-level tokenizer bits per token is bits per character (`bpc`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from practicum.data.lm import IGNORE_INDEX, mask_tokens, perplexity
from practicum.tasks.base import Task

LN2 = math.log(2.0)


class CausalLMTask(Task):
    """Predict each next token: cross-entropy of logits (B, T, V) against targets (B, T)."""

    name = "causal_lm"
    default_monitor = "loss"
    streams = True

    def __init__(self, vocab_size: int, token_bytes: Tensor | None = None, char_level: bool = False) -> None:
        self.vocab_size = vocab_size
        self.token_bytes = token_bytes  # (V,) UTF-8 bytes of each token, for bits per byte
        self.char_level = char_level

    def num_outputs(self) -> int:
        return self.vocab_size

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        """Mean token loss of each row, summed over rows (the Trainer divides by rows)."""
        return _token_mean(outputs, target) * target.size(0)

    def stream_start(self) -> dict[str, float]:
        return {"nats": 0.0, "tokens": 0.0, "bytes": 0.0, "correct": 0.0}

    def stream_add(self, totals: dict[str, float], outputs: Any, batch: dict[str, Tensor]) -> None:
        _add_token_stats(totals, outputs, batch["target"], self.token_bytes)

    def stream_result(self, totals: dict[str, float]) -> dict[str, Any]:
        out = _token_metrics(totals, accuracy_name="token_accuracy")
        if self.char_level:
            out["bpc"] = out["bits_per_token"]
        return out

    def metrics(self, outputs: Tensor, target: Tensor) -> dict[str, Any]:
        totals = self.stream_start()
        self.stream_add(totals, outputs, {"target": target})
        return self.stream_result(totals)


class SFTTask(CausalLMTask):
    """Supervised fine-tuning of a causal LM: next-token loss on the response tokens only
    (targets elsewhere are IGNORE_INDEX, see practicum.data.sft); batches are cut after their
    last target, so padding costs nothing."""

    name = "sft"

    def prepare(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        from practicum.data.sft import trim

        return trim(batch)


class MaskedLMTask(Task):
    """BERT pretraining: recover masked tokens (80/10/10 rule), plus is-next prediction if `nsp`."""

    name = "masked_lm"
    default_monitor = "loss"
    streams = True

    def __init__(self, vocab_size: int, mask_id: int, special_ids: list[int],
                 probability: float = 0.15, nsp: bool = False) -> None:
        self.vocab_size, self.mask_id, self.special_ids = vocab_size, mask_id, list(special_ids)
        self.probability, self.nsp = probability, nsp

    def num_outputs(self) -> int:
        return self.vocab_size

    def prepare(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        tokens, target = mask_tokens(batch["tokens"], generator, mask_id=self.mask_id,
                                     vocab_size=self.vocab_size, special_ids=self.special_ids,
                                     prob=self.probability)
        return {**batch, "tokens": tokens, "target": target}

    def loss(self, outputs: Any, target: Tensor) -> Tensor:
        logits = outputs[0] if isinstance(outputs, tuple) else outputs
        return _token_mean(logits, target) * target.size(0)

    def batch_loss(self, outputs: Any, batch: dict[str, Tensor]) -> Tensor:
        loss = self.loss(outputs, batch["target"])
        if self.nsp and "nsp_target" in batch:
            loss = loss + F.cross_entropy(outputs[1].float(), batch["nsp_target"], reduction="sum")
        return loss

    def stream_start(self) -> dict[str, float]:
        return {"nats": 0.0, "tokens": 0.0, "bytes": 0.0, "correct": 0.0, "nsp_correct": 0.0,
                "nsp_rows": 0.0, "nsp_nats": 0.0}

    def stream_add(self, totals: dict[str, float], outputs: Any, batch: dict[str, Tensor]) -> None:
        logits = outputs[0] if isinstance(outputs, tuple) else outputs
        _add_token_stats(totals, logits, batch["target"], None)
        if self.nsp and "nsp_target" in batch and isinstance(outputs, tuple):
            nsp = outputs[1].float()
            totals["nsp_nats"] += float(F.cross_entropy(nsp, batch["nsp_target"], reduction="sum"))
            totals["nsp_correct"] += float((nsp.argmax(-1) == batch["nsp_target"]).sum())
            totals["nsp_rows"] += len(nsp)

    def stream_result(self, totals: dict[str, float]) -> dict[str, Any]:
        out = _token_metrics(totals, accuracy_name="mlm_accuracy")
        if totals["nsp_rows"]:
            out["nsp_loss"] = totals["nsp_nats"] / totals["nsp_rows"]
            out["nsp_accuracy"] = totals["nsp_correct"] / totals["nsp_rows"]
            out["mlm_loss"] = out["loss"]
            out["loss"] = out["mlm_loss"] + out["nsp_loss"]
        return out

    def metrics(self, outputs: Any, target: Tensor) -> dict[str, Any]:
        totals = self.stream_start()
        self.stream_add(totals, outputs, {"target": target})
        return self.stream_result(totals)


def _token_mean(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy over the positions that carry a target (0 when none do)."""
    flat = target.reshape(-1)
    total = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), flat,
                            ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (flat != IGNORE_INDEX).sum().clamp(min=1)


def _add_token_stats(totals: dict[str, float], logits: Tensor, target: Tensor,
                     token_bytes: Tensor | None) -> None:
    flat, logits = target.reshape(-1), logits.reshape(-1, logits.size(-1)).float()
    keep = flat != IGNORE_INDEX
    flat, logits = flat[keep], logits[keep]
    totals["nats"] += float(F.cross_entropy(logits, flat, reduction="sum"))
    totals["tokens"] += int(flat.numel())
    totals["correct"] += int((logits.argmax(-1) == flat).sum())
    if token_bytes is not None:
        totals["bytes"] += float(token_bytes.to(flat.device)[flat].sum())


def _token_metrics(totals: dict[str, float], accuracy_name: str) -> dict[str, Any]:
    n = max(totals["tokens"], 1.0)
    loss = totals["nats"] / n
    out = {"loss": loss, "perplexity": perplexity(loss), "bits_per_token": loss / LN2,
           accuracy_name: totals["correct"] / n, "tokens": int(totals["tokens"])}
    if totals.get("bytes"):
        out["bits_per_byte"] = totals["nats"] / totals["bytes"] / LN2
    return out
