"""Attention maps per layer and head, and attention rollout (Abnar & Zuidema, 2020).

The maps come from the models' own written-out attention (`keep_attention`): for one input,
one (nh, T, T) tensor per layer whose rows (queries) sum to 1 over the keys.

Rollout estimates how much each input position flows into each position at the top: per
layer, average the heads, add the identity (the residual connection), renormalise the rows,
then multiply the layers' matrices from the bottom up. A product of row-stochastic matrices
is row-stochastic, so every row of the rollout sums to 1 as well.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from practicum.errors import UserError


def supports_attention(model: nn.Module) -> bool:
    """True for the Transformer models: the text classifier, the pretrained-backbone classifier
    and the language model."""
    from practicum.models.lm import TransformerLM
    from practicum.models.pretrained import PretrainedClassifier
    from practicum.models.transformer import TransformerClassifier

    return isinstance(model, TransformerClassifier | PretrainedClassifier | TransformerLM)


def attention_maps(model: nn.Module, tokens: Tensor, mask: Tensor | None = None) -> list[Tensor]:
    """One forward pass of one input (tokens (1, T)) keeping the weights: a list of (nh, T', T')
    tensors, one per layer, T' being the positions the model attended over ([CLS] or a soft
    prompt included). The model's own keep_attention setting is restored afterwards."""
    from practicum.models.pretrained import PretrainedClassifier

    if not supports_attention(model):
        raise UserError(f"{type(model).__name__} has no attention to show; attention maps need a "
                        "Transformer bundle (model.type transformer, pretrained or lm)")
    if tokens.dim() != 2 or tokens.size(0) != 1:
        raise ValueError(f"attention_maps takes one input, tokens (1, T); got {tuple(tokens.shape)}")
    holder = model.backbone if isinstance(model, PretrainedClassifier) else model
    before = holder.keep_attention
    holder.keep_attention = True
    try:
        with torch.no_grad():
            model(tokens) if mask is None else model(tokens, mask)
            maps = [m[0].detach().float().cpu() for m in holder.attention_maps()]  # L x (nh, T', S)
    finally:
        holder.keep_attention = before
    return maps


def attention_rollout(maps: Sequence[Tensor]) -> Tensor:
    """Rollout of per-layer attention (each (nh, T, T), rows summing to 1): (T, T), rows sum to 1.

    rollout = A_L' ... A_2' A_1' with A_l' = rownorm(mean_heads(A_l) + I).
    Row i says how much of position i's top-layer state comes from each input position.
    """
    if not maps:
        raise ValueError("attention_rollout needs at least one layer's attention")
    T = maps[0].size(-1)
    eye = torch.eye(T, dtype=torch.float64)
    rollout = eye
    for layer in maps:
        if layer.shape[-2:] != (T, T):
            raise ValueError(f"every layer's attention must be (nh, {T}, {T}), got {tuple(layer.shape)}")
        a = layer.double().mean(dim=0) + eye  # (T, T): heads averaged, plus the residual path
        a = a / a.sum(dim=-1, keepdim=True)  # rows sum to 1 again
        rollout = a @ rollout  # (T, T): this layer on top of the ones below
    return rollout.float()


def rollout_relevance(rollout: Tensor, pooling: str, keep: Tensor | None = None) -> Tensor:
    """How much each input position reaches what the model reads out: (T,).

    pooling "cls" reads row 0, "last" the last row, "mean" averages the rows (of the `keep`
    positions, when given); each result sums to 1.
    """
    if pooling == "cls":
        return rollout[0]
    if pooling == "last":
        return rollout[-1]
    rows = rollout if keep is None else rollout[keep]
    return rows.mean(dim=0)
