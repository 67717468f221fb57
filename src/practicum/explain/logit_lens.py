"""The logit lens (nostalgebraist, 2020): read each layer's residual stream with the model's
own final norm and LM head, as if the network stopped there.

    embeddings -> block 1 -> ... -> block L
        |            |                 |
    norm_f + head  norm_f + head    norm_f + head   ->  a next-token distribution per layer

At the last layer this is exactly the model's output; earlier layers show how the prediction
forms. Row 0 is the input to the first block (token + position embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from practicum.models.lm import TransformerLM


@dataclass
class LensResult:
    """Per layer (L + 1 rows: the embeddings, then each block) and position (T columns)."""

    top_ids: Tensor
    """(L + 1, T, k) the k most likely token ids, most likely first."""
    top_probs: Tensor
    """(L + 1, T, k) their probabilities."""
    next_token_probs: Tensor
    """(L + 1, T - 1) probability given to the token that actually comes next in the input."""


def residual_streams(model: TransformerLM, tokens: Tensor) -> list[Tensor]:
    """The residual stream entering block 1 and leaving every block: L + 1 tensors (B, T, C)."""
    states: list[Tensor] = []
    hooks = [model.blocks[0].register_forward_pre_hook(lambda _m, args: states.append(args[0]))]
    hooks += [b.register_forward_hook(lambda _m, _a, out: states.append(out)) for b in model.blocks]
    try:
        with torch.no_grad():
            model.hidden_states(tokens)
    finally:
        for h in hooks:
            h.remove()
    return states


def read_out(model: TransformerLM, state: Tensor) -> Tensor:
    """Vocabulary logits (B, T, V) of a residual stream: final norm (if any), then the head."""
    if model.norm_f is not None:
        state = model.norm_f(state)
    return model.logits(state)


def logit_lens(model: TransformerLM, tokens: Tensor, top_k: int = 5) -> LensResult:
    """The logit lens of one sequence, tokens (1, T)."""
    if tokens.dim() != 2 or tokens.size(0) != 1:
        raise ValueError(f"logit_lens takes one sequence, tokens (1, T); got {tuple(tokens.shape)}")
    following = tokens[0, 1:, None]  # (T - 1, 1) the input's own next tokens
    ids, values, nexts = [], [], []
    with torch.no_grad():
        for state in residual_streams(model, tokens):  # one layer at a time: (T, V) is enough memory
            probs = read_out(model, state)[0].float().softmax(dim=-1)  # (T, V)
            top = probs.topk(min(top_k, probs.size(-1)), dim=-1)  # 2 x (T, k)
            ids.append(top.indices.cpu())
            values.append(top.values.cpu())
            nexts.append(probs[:-1].gather(-1, following).squeeze(-1).cpu())  # (T - 1,)
    return LensResult(torch.stack(ids), torch.stack(values), torch.stack(nexts))
