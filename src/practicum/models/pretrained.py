"""A pretrained TransformerLM with a task head: classification or regression on text.

    tokens -> [soft prompt +] backbone hidden states (B, T, C) -> pool (cls | mean | last)
           -> dropout -> Linear -> (B, num_outputs)

Batches arrive padded to the longest text of the whole split; forward cuts them to the
longest real text of the batch first (right padding), so short batches cost what they need.
The backbone's architecture is `model.backbone` (filled from `model.init_from` when a run
starts), so a bundle rebuilds the model without the original source.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from practicum.config import LMConfig, PretrainedConfig
from practicum.errors import UserError
from practicum.models.build import SpecLike, register_model
from practicum.models.lm import INIT_STD, TransformerLM


def backbone_config(cfg: LMConfig) -> LMConfig:
    """The backbone of a task model: no language-model head extras (MLM transform, NSP pooler)."""
    return cfg.model_copy(update={"head_transform": False, "lm_head_bias": False, "pooler": False,
                                  "dropout": cfg.dropout})


def pool(states: Tensor, mask: Tensor, how: str) -> Tensor:
    """(B, T, C) hidden states -> (B, C): cls (first token), mean over real tokens, or last real
    token (causal models; right padding)."""
    if how == "cls":
        return states[:, 0]
    if how == "mean":
        m = mask[..., None].to(states.dtype)
        return (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if how == "last":
        last = mask.long().sum(1).clamp(min=1) - 1  # (B,)
        return states[torch.arange(states.size(0), device=states.device), last]
    raise UserError(f"pooling {how!r} is not one of cls, mean, last")


def default_pooling(model: TransformerLM) -> str:
    """mean for encoders (sentence-transformers' choice), last token for causal models."""
    return "last" if model.cfg.causal else "mean"


class PretrainedClassifier(nn.Module):
    """forward(tokens (B, T), mask (B, T)) -> (B, num_outputs)."""

    def __init__(self, backbone: TransformerLM, num_outputs: int, pooling: str = "auto",
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooling = default_pooling(backbone) if pooling == "auto" else pooling
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.cfg.n_embd, num_outputs)
        nn.init.normal_(self.head.weight, std=INIT_STD)
        nn.init.zeros_(self.head.bias)
        self.prompt: nn.Parameter | None = None
        """Soft prompt (P, C) for prompt tuning (set by practicum.peft.apply_strategy)."""

    def features(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """The pooled vector (B, C) the head reads."""
        if mask is None:
            mask = torch.ones_like(tokens, dtype=torch.bool)
        width = int(mask.sum(1).max()) if mask.numel() else 1  # drop all-padding columns
        tokens, mask = tokens[:, : max(width, 1)], mask[:, : max(width, 1)]
        prefix = None
        if self.prompt is not None:
            P = self.prompt.size(0)
            if P + tokens.size(1) > self.backbone.cfg.block_size:
                keep = self.backbone.cfg.block_size - P
                tokens, mask = tokens[:, :keep], mask[:, :keep]
            prefix = self.prompt
            mask = torch.cat((torch.ones_like(mask[:, :1]).expand(-1, P), mask), dim=1)
        states = self.backbone.hidden_states(tokens, mask=mask, prefix=prefix)  # (B, P+T, C)
        if prefix is not None:  # pool over the real tokens only
            states, mask = states[:, prefix.size(0):], mask[:, prefix.size(0):]
        return pool(states, mask, self.pooling)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.head(self.drop(self.features(tokens, mask)))


@register_model("pretrained", kinds=("text",))
def build_pretrained(cfg: PretrainedConfig, spec: SpecLike, num_outputs: int) -> nn.Module:
    """The architecture only (random weights): the run loads the pretrained ones into it, a
    bundle its own."""
    if cfg.backbone is None:
        raise UserError("model.backbone is not filled in; train through practicum.train so "
                        "that model.init_from is read first")
    backbone = TransformerLM(backbone_config(cfg.backbone))
    return PretrainedClassifier(backbone, num_outputs, cfg.pooling, cfg.dropout)
