"""A pretrained TransformerLM that tags every token: token classification (named entities, BIO).

    tokens -> [soft prompt +] backbone hidden states (B, T, C) -> dropout -> Linear -> (B, T, K)

Like PretrainedClassifier, forward first cuts the batch to its longest real row (right padding),
so short batches cost what they need; the logits are then padded back with zeros to the input's
width T, so that they line up with the batch's targets and batches of one split concatenate.
(TokenClassificationTask also accepts logits narrower than the targets and slices the targets.)

It subclasses PretrainedClassifier so that everything that sets up or exports a task model
(practicum.peft: freeze, LoRA, prompt tuning, layer lr decay, PEFT export) treats it the same:
`backbone`, `head`, `drop` and `prompt` mean the same things.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from practicum.models.lm import TransformerLM
from practicum.models.pretrained import PretrainedClassifier


class PretrainedTagger(PretrainedClassifier):
    """forward(tokens (B, T), mask (B, T)) -> tag logits (B, T, num_tags) at every position."""

    def __init__(self, backbone: TransformerLM, num_tags: int, dropout: float = 0.1) -> None:
        super().__init__(backbone, num_tags, pooling="cls", dropout=dropout)
        self.pooling = "none"  # every position is read; nothing is pooled

    def token_states(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Hidden states (B, W, C) of the first W columns, W = the longest real row (fewer when
        a soft prompt would pass the context)."""
        if mask is None:
            mask = torch.ones_like(tokens, dtype=torch.bool)
        width = max(int(mask.sum(1).max()) if mask.numel() else 1, 1)  # drop all-padding columns
        tokens, mask = tokens[:, :width], mask[:, :width]
        prefix = None
        if self.prompt is not None:
            P = self.prompt.size(0)
            keep = min(tokens.size(1), self.backbone.cfg.block_size - P)
            tokens, mask = tokens[:, :keep], mask[:, :keep]
            prefix = self.prompt
            mask = torch.cat((torch.ones_like(mask[:, :1]).expand(-1, P), mask), dim=1)  # (B, P+W)
        states = self.backbone.hidden_states(tokens, mask=mask, prefix=prefix)  # (B, [P+]W, C)
        return states if prefix is None else states[:, prefix.size(0):]

    def features(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Per-token features (B, W, C): a tagger has no pooled vector."""
        return self.token_states(tokens, mask)

    def forward(self, tokens: Tensor, mask: Tensor | None = None,
                word_index: Tensor | None = None) -> Tensor:
        """word_index (see practicum.data.tagging.encode_tagged) rides along in batches and is
        ignored here; the Trainer passes every non-target key of a batch to the model."""
        logits = self.head(self.drop(self.token_states(tokens, mask)))  # (B, W, K)
        return F.pad(logits, (0, 0, 0, tokens.size(1) - logits.size(1)))  # (B, T, K)
