"""Explanations of language-model bundles: the logit lens and attention of one prompt."""

from __future__ import annotations

from typing import Any

import torch

from practicum.data.tokenizers import Tokenizer
from practicum.errors import UserError
from practicum.explain.attention import attention_maps, attention_rollout, rollout_relevance
from practicum.explain.logit_lens import logit_lens
from practicum.models.lm import TransformerLM


def token_texts(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    """Each id as the model saw it: byte-level BPE and char pieces decoded to text (a leading
    space shows), WordPiece pieces as written (##ing), specials by name."""
    special = set(tokenizer.specials.values())
    out = []
    for i in ids:
        piece = tokenizer.inner.id_to_token(int(i))
        if piece is None:
            out.append(f"<{int(i)}>")
        elif piece in special or tokenizer.kind not in ("bpe", "char"):
            out.append(visible(piece))
        else:  # a lone byte of a multi-byte character decodes to U+FFFD: show the piece instead
            text = tokenizer.decode([int(i)], skip_special=False)
            out.append(visible(piece if "\ufffd" in text else text))
    return out


def visible(text: str) -> str:
    """Control characters written out (\\n, \\t, \\x07) so that every token can be drawn."""
    escapes = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return "".join(escapes.get(c, c if c.isprintable() else f"\\x{ord(c):02x}") for c in text)


def encode_prompt(model: TransformerLM, tokenizer: Tokenizer, prompt: str) -> list[int]:
    """A causal model reads the prompt as `generate` does (no specials; bos when empty); a
    masked model gets its specials ([CLS] .. [SEP])."""
    if not str(prompt).strip():
        raise UserError("--input is an empty prompt; give some text to explain")
    ids = tokenizer.encode(prompt, add_special=not model.cfg.causal)
    if not ids:
        if tokenizer.bos_id is None:
            raise UserError(f"the prompt {prompt!r} encodes to no tokens; give some other text")
        ids = [tokenizer.bos_id]
    if len(ids) > model.cfg.block_size:
        raise UserError(f"the prompt has {len(ids)} tokens but the context (model.block_size) is "
                        f"{model.cfg.block_size}; shorten it")
    return ids


def attention_view(maps: list[torch.Tensor], labels: list[str], pooling: str,
                   keep: torch.Tensor | None = None) -> dict[str, Any]:
    """Per-layer, per-head maps, their rollout and the rollout row the model reads out."""
    rollout = attention_rollout(maps)
    relevance = rollout_relevance(rollout, pooling, keep)
    return {"tokens": labels, "layers": len(maps), "heads": int(maps[0].size(0)),
            "maps": [rounded(m) for m in maps], "rollout": rounded(rollout),
            "pooling": pooling, "relevance": rounded(relevance)}


def explain_prompt(model: TransformerLM, tokenizer: Tokenizer, prompt: str, views: list[str],
                   top_k: int) -> dict[str, Any]:
    """The logit lens and/or attention of one prompt, as JSON-ready numbers."""
    ids = encode_prompt(model, tokenizer, prompt)
    device = next(model.parameters()).device
    tokens = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    labels = token_texts(tokenizer, ids)
    item: dict[str, Any] = {"input": prompt, "token_ids": ids, "tokens": labels}
    if "logit-lens" in views:
        lens = logit_lens(model, tokens, top_k)
        top = [[[{"token": t, "id": i, "probability": round(p, 6)}
                 for t, i, p in zip(token_texts(tokenizer, row_ids), row_ids, row_p, strict=True)]
                for row_ids, row_p in zip(layer_ids.tolist(), layer_p.tolist(), strict=True)]
               for layer_ids, layer_p in zip(lens.top_ids, lens.top_probs, strict=True)]
        item["logit_lens"] = {
            "layers": ["embeddings", *[f"layer {n + 1}" for n in range(len(top) - 1)]],
            "top": top, "next_token_probability": rounded(lens.next_token_probs)}
        last = top[-1][-1][0]
        item["prediction"], item["confidence"] = last["token"], last["probability"]
        item["summary"] = _lens_summary(top)
    if "attention" in views:
        maps = attention_maps(model, tokens)
        item["attention"] = attention_view(maps, labels, "last" if model.cfg.causal else "mean")
        item.setdefault("summary", _attention_summary(item["attention"]))
    return item


def _lens_summary(top: list[list[list[dict[str, Any]]]]) -> str:
    final = top[-1][-1][0]["token"]
    first = next(n for n, layer in enumerate(top) if layer[-1][0]["token"] == final)
    where = "the embeddings" if first == 0 else f"layer {first}"
    return (f"next token {final!r} (p={top[-1][-1][0]['probability']:.3f}); "
            f"top-1 from {where} on, of {len(top) - 1} layers")


def _attention_summary(view: dict[str, Any]) -> str:
    order = sorted(range(len(view["relevance"])), key=lambda i: -view["relevance"][i])[:3]
    shown = ", ".join(f"{view['tokens'][i]!r} {view['relevance'][i]:.2f}" for i in order)
    return f"attention rollout reads most from {shown}"


def rounded(x: torch.Tensor, decimals: int = 6) -> Any:
    return torch.round(x.double(), decimals=decimals).tolist()
