"""Explanations of classifier (and regressor) bundles, one input at a time: token attributions
and attention for text, saliency and integrated gradients for images, feature attributions
for tables. Every function returns JSON-ready numbers."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from practicum.data.images import ImageEncoder
from practicum.data.tabular import TabularEncoder
from practicum.data.text import PretrainedTextEncoder, TextEncoder
from practicum.explain.attention import attention_maps, supports_attention
from practicum.explain.attributions import (
    Attribution,
    image_attributions,
    tabular_attributions,
    token_attributions,
)
from practicum.explain.language import attention_view, rounded, token_texts, visible

KEEP_ROLES = ("bos", "eos", "cls", "sep", "mask")
"""Special tokens that stay in the integrated-gradients baseline; the rest becomes padding."""


def ig_numbers(a: Attribution, steps: int, method: str, baseline: str) -> dict[str, Any]:
    return {"method": "integrated_gradients", "steps": steps, "quadrature": method,
            "baseline": baseline, "delta": a.delta, "f_input": a.f_input, "f_baseline": a.f_baseline,
            "sum": float(a.scores.sum())}


# ---------------------------------------------------------------- text


def text_labels(encoder: TextEncoder | PretrainedTextEncoder, ids: list[int]) -> list[str]:
    """Tokens as the model saw them: the vocabulary's words, or the tokenizer's pieces."""
    if isinstance(encoder, TextEncoder):
        return [visible(encoder.vocab[i]) for i in ids]
    return token_texts(encoder.tokenizer, ids)


def text_baseline(encoder: TextEncoder | PretrainedTextEncoder, tokens: Tensor, pad_id: int) -> Tensor:
    """Pad tokens where the text is; the model's own specials ([CLS], [SEP], bos ...) are kept."""
    keep = torch.zeros_like(tokens, dtype=torch.bool)
    if isinstance(encoder, PretrainedTextEncoder):
        tok = encoder.tokenizer
        for role in KEEP_ROLES:
            special = getattr(tok, f"{role}_id")
            if special is not None:
                keep |= tokens == special
    return torch.where(keep, tokens, torch.full_like(tokens, pad_id))


def explain_text(model: Any, encoder: Any, tokens: Tensor, mask: Tensor, target: int, views: list[str],
                 steps: int, method: str, pad_id: int) -> dict[str, Any]:
    """tokens, mask: (1, T) of one text, padding already cut off."""
    ids = tokens[0].tolist()
    labels = text_labels(encoder, ids)
    item: dict[str, Any] = {"tokens": labels, "token_ids": ids}
    if "attributions" in views:
        baseline = text_baseline(encoder, tokens, pad_id)
        a = token_attributions(model, tokens, mask, baseline, target, steps, method)
        kept = [labels[i] for i in range(len(ids)) if int(baseline[0, i]) != pad_id]
        item["attributions"] = {**ig_numbers(a, steps, method, "padding tokens" + (
            f" (kept: {' '.join(kept)})" if kept else "")), "scores": a.scores.tolist()}
    if "attention" in views:
        item["attention"] = _classifier_attention(model, tokens, mask, labels)
    return item


def _classifier_attention(model: Any, tokens: Tensor, mask: Tensor, labels: list[str]) -> dict[str, Any]:
    """Maps and rollout of a Transformer classifier; [CLS] or soft-prompt positions labelled."""
    from practicum.models.pretrained import PretrainedClassifier

    maps = attention_maps(model, tokens, mask)
    width = maps[0].size(-1)
    if isinstance(model, PretrainedClassifier):
        extra = width - len(labels)  # the soft prompt (prompt tuning) comes first
        shown = [f"<prompt {j}>" for j in range(extra)] + labels
        keep = torch.arange(width) >= extra
        return attention_view(maps, shown, model.pooling, keep)
    pooling = model.cfg.pooling
    shown = ["[CLS]", *labels] if width == len(labels) + 1 else labels
    return attention_view(maps, shown, pooling)


def text_views(model: Any) -> list[str]:
    return ["attributions", "attention"] if supports_attention(model) else ["attributions"]


# ---------------------------------------------------------------- images


def explain_image(model: Any, encoder: ImageEncoder, image: Tensor, target: int, steps: int,
                  method: str) -> dict[str, Any]:
    """image: (1, C, H, W) normalised as in training; the baseline is a black image."""
    c = image.size(1)
    black = encoder.background.to(image.device).view(1, c, 1, 1).expand_as(image).contiguous()
    saliency, a = image_attributions(model, image, black, target, steps, method)
    mean = torch.tensor(encoder.mean).view(c, 1, 1)
    std = torch.tensor(encoder.std).view(c, 1, 1)
    pixels = (image[0].detach().cpu() * std + mean).clamp(0, 1)  # (C, H, W) in [0, 1]
    return {"image": rounded(pixels.permute(1, 2, 0), 4),  # (H, W, C) for display
            "saliency": rounded(saliency),
            "attributions": {**ig_numbers(a, steps, method, "a black image"),
                             "scores": a.scores.tolist()}}  # (C, H, W)


# ---------------------------------------------------------------- tables


def explain_row(model: Any, encoder: TabularEncoder, x: Tensor, x_cat: Tensor | None, target: int,
                steps: int, method: str) -> dict[str, Any]:
    """Integrated gradients per original column (one-hot slots summed into their column)."""
    dense, cats = tabular_attributions(model, x, x_cat, target, steps, method)
    names, values, scores = [], [], []
    n_num = len(encoder.numeric)
    for j, col in enumerate(encoder.numeric):
        names.append(col)
        values.append(f"{float(x[0, j]) * encoder.stds[j] + encoder.means[j]:.4g}")
        scores.append(float(dense.scores[j]))
    start = n_num
    for j, (col, categories) in enumerate(zip(encoder.categorical, encoder.categories, strict=True)):
        names.append(col)
        if cats is not None and x_cat is not None:
            index = int(x_cat[0, j])
            scores.append(float(cats.scores[j]))
        else:
            slots = x[0, start : start + len(categories)]
            index = int(slots.argmax()) + 1 if len(categories) and float(slots.max()) > 0 else 0
            scores.append(float(dense.scores[start : start + len(categories)].sum()))
            start += len(categories)
        values.append(categories[index - 1] if index > 0 else "(unknown)")
    baseline = "0 for standardised numbers (the training mean); " + (
        "each category table's mean embedding" if cats is not None else "no category for one-hot columns")
    numbers = ig_numbers(dense, steps, method, baseline)
    numbers["sum"] = float(sum(scores))
    return {"features": names, "values": values, "attributions": {**numbers, "scores": scores}}
