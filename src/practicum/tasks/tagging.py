"""Token classification (BIO tagging): cross-entropy on each word's first sub-token, token
accuracy, and entity-level precision, recall and F1 as seqeval computes them (micro, exact
spans).

Outputs are tag logits (B, T, K) and targets (B, T) hold a tag id on each word's first sub-token
and IGNORE_INDEX elsewhere (practicum.data.tagging.encode_tagged). Outputs narrower than the
targets (a model that cut all-padding columns) are scored against the targets' first columns;
the cut columns must hold no targets, which is true of columns past every row's end.
Evaluation streams: per batch only sums (nats, words, correct words, entity counts) are kept.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from practicum.data.lm import IGNORE_INDEX
from practicum.data.tagging import OUTSIDE, add_entity_counts, bio_spans, entity_scores
from practicum.tasks.base import Task
from practicum.tasks.language import _token_mean


class TokenClassificationTask(Task):
    """One BIO tag per word, read at the word's first sub-token."""

    name = "token_classification"
    default_monitor = "f1"
    streams = True

    def __init__(self, tag_names: list[str]) -> None:
        self.tag_names = list(tag_names)

    def num_outputs(self) -> int:
        return len(self.tag_names)

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        """Mean loss per tagged word of the batch times its rows (the Trainer divides by rows)."""
        target = _fit(target, outputs)
        return _token_mean(outputs, target) * target.size(0)

    def stream_start(self) -> dict[str, float]:
        return {"nats": 0.0, "words": 0.0, "correct": 0.0, "tp": 0.0, "pred": 0.0, "true": 0.0}

    def stream_add(self, totals: dict[str, float], outputs: Any, batch: dict[str, Tensor]) -> None:
        target = _fit(batch["target"], outputs)  # (B, W)
        logits = outputs[:, : target.size(1)].float()  # (B, W, K)
        keep = target != IGNORE_INDEX  # (B, W)
        totals["nats"] += float(F.cross_entropy(logits[keep], target[keep], reduction="sum"))
        pred = logits.argmax(-1)  # (B, W)
        totals["words"] += int(keep.sum())
        totals["correct"] += int((pred[keep] == target[keep]).sum())
        names = self.tag_names
        for t_row, p_row, k_row in zip(target.cpu(), pred.cpu(), keep.cpu(), strict=True):
            add_entity_counts(totals, [names[i] for i in t_row[k_row].tolist()],
                              [names[i] for i in p_row[k_row].tolist()])

    def stream_result(self, totals: dict[str, float]) -> dict[str, Any]:
        """loss (mean nats per word), token_accuracy (per word), precision / recall / f1 over
        entities (micro), per_type scores, and the number of words scored."""
        n = max(totals["words"], 1.0)
        return {"loss": totals["nats"] / n, "token_accuracy": totals["correct"] / n,
                **entity_scores(totals), "words": int(totals["words"])}

    def metrics(self, outputs: Tensor, target: Tensor) -> dict[str, Any]:
        totals = self.stream_start()
        self.stream_add(totals, outputs, {"target": target})
        return self.stream_result(totals)

    def predictions(self, outputs: Tensor, word_index: Tensor | None = None,
                    n_words: list[int] | None = None) -> list[dict[str, Any]]:
        """One record per sentence: prediction (a tag per word), confidence (its probability per
        word) and entities [{type, start, end}] (word spans, end exclusive).

        word_index (N, T) from encode_tagged says where each word's first sub-token is; without
        it the words cannot be found. n_words gives each sentence's word count: words without a
        position (cut at max_length) then read O with confidence None.
        """
        if word_index is None:
            raise ValueError("token classification predictions need the batch's word_index "
                             "(practicum.data.tagging.encode_tagged makes it)")
        proba = torch.softmax(outputs.float(), dim=-1)  # (N, T, K)
        conf, index = proba.max(-1)  # (N, T)
        word_index = word_index[:, : outputs.size(1)]
        records = []
        for i in range(outputs.size(0)):
            at = word_index[i] >= 0  # (T,)
            n = n_words[i] if n_words is not None else int(word_index[i].max()) + 1
            tags = [OUTSIDE] * n
            confidence: list[float | None] = [None] * n
            for w, t, c in zip(word_index[i][at].tolist(), index[i][at].tolist(),
                               conf[i][at].tolist(), strict=True):
                if w < n:
                    tags[w], confidence[w] = self.tag_names[t], round(c, 6)
            entities = [{"type": k, "start": s, "end": e} for s, e, k in sorted(bio_spans(tags))]
            records.append({"prediction": tags, "confidence": confidence, "entities": entities})
        return records


def _fit(target: Tensor, outputs: Tensor) -> Tensor:
    """Targets cut to the outputs' width (B, W); see the module docstring."""
    width = outputs.size(1)
    return target if target.size(1) <= width else target[:, :width]
