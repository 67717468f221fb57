"""Supervised fine-tuning data: prompt/response pairs -> token rows whose loss covers only the
response.

Each pair is rendered with the model's chat template when it has one (Jinja, as Hugging Face
renders it: the user's prompt, then the assistant's response), else as "prompt\\nresponse"
followed by the end-of-text token. The rendered prompt part (the template with
add_generation_prompt) is the row's prefix: its positions carry no target.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from practicum.data.lm import IGNORE_INDEX
from practicum.data.tokenizers import Tokenizer
from practicum.errors import UserError

log = logging.getLogger(__name__)


def read_pairs(path: str, prompt_field: str = "prompt", response_field: str = "response") -> list[tuple[str, str]]:
    """(prompt, response) pairs from a JSONL/CSV/Parquet file with those two fields."""
    from practicum.data.formats import read_source

    loaded = read_source(path, field="data.path")
    frame = getattr(loaded.train, "frame", None)
    if frame is None:
        raise UserError(f"data.path {path}: supervised fine-tuning needs a table (JSONL, CSV) of "
                        f"{prompt_field!r} and {response_field!r} fields")
    missing = [f for f in (prompt_field, response_field) if f not in frame.columns]
    if missing:
        raise UserError(f"{path}: no {', '.join(map(repr, missing))} field (it has "
                        f"{', '.join(map(str, frame.columns))}); set task.prompt_field / task.response_field")
    pairs = [(str(p), str(r)) for p, r in zip(frame[prompt_field], frame[response_field], strict=True)
             if isinstance(p, str) and isinstance(r, str) and r.strip()]
    if not pairs:
        raise UserError(f"{path}: no row has both a prompt and a non-empty response")
    return pairs


def render_chat(template: str, messages: list[dict[str, str]], add_generation_prompt: bool,
                tokenizer: Tokenizer) -> str:
    """A Hugging Face chat template (Jinja) rendered as transformers renders it, in Jinja's
    sandbox; `raise_exception(message)` in a template raises jinja2.TemplateError, as there."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    specials = {f"{role}_token": tok for role, tok in tokenizer.specials.items()}
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            **specials)


def render_pair(prompt: str, response: str, tokenizer: Tokenizer,
                chat_template: str | None) -> tuple[str, str]:
    """(prefix, full text) of one example; full starts with prefix."""
    if chat_template:
        user = [{"role": "user", "content": prompt}]
        prefix = render_chat(chat_template, user, True, tokenizer)
        full = render_chat(chat_template, [*user, {"role": "assistant", "content": response}], False,
                           tokenizer)
        if not full.startswith(prefix):
            raise UserError("the chat template renders the prompt differently with and without a "
                            "response; set model.chat_template: none to use plain text")
        return prefix, full.rstrip("\n")
    eos = tokenizer.specials.get("eos", "")
    prefix = prompt.rstrip() + "\n"
    return prefix, prefix + response.strip() + eos


def sft_rows(pairs: list[tuple[str, str]], tokenizer: Tokenizer, chat_template: str | None,
             max_length: int) -> dict[str, torch.Tensor]:
    """{"tokens": (N, T), "target": (N, T)}: target[t] is token t + 1 inside the response, else
    IGNORE_INDEX; rows are right-padded. A row longer than max_length loses the end of its response."""
    pad = tokenizer._id("pad")
    pad = pad if pad is not None else (tokenizer._id("eos") or 0)
    rows, cut = [], 0
    for prompt, response in pairs:
        prefix, full = render_pair(prompt, response, tokenizer, chat_template)
        ids = tokenizer.encode(full)
        start = len(tokenizer.encode(prefix))
        if start >= max_length - 1:
            cut += 1
            continue
        if len(ids) > max_length:
            ids, cut = ids[:max_length], cut + 1
        rows.append((ids, start))
    if cut:
        log.warning("%d of %d examples longer than %d tokens were cut (or skipped when the prompt "
                    "alone fills them); raise model.max_length to keep them", cut, len(pairs), max_length)
    if not rows:
        raise UserError(f"every prompt is longer than model.max_length ({max_length}) tokens; raise it")
    width = max(len(ids) for ids, _ in rows)
    tokens = torch.full((len(rows), width), pad, dtype=torch.int64)
    target = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.int64)
    for i, (ids, start) in enumerate(rows):
        t = torch.tensor(ids, dtype=torch.int64)
        tokens[i, : len(ids)] = t
        target[i, start - 1 : len(ids) - 1] = t[start:]  # position p predicts token p + 1
    return {"tokens": tokens, "target": target}


def trim(batch: dict[str, Any]) -> dict[str, Any]:
    """Drop the columns after the last target of the batch (right padding costs nothing then)."""
    has = (batch["target"] != IGNORE_INDEX).any(0).nonzero()
    width = int(has[-1]) + 1 if len(has) else 1
    return {k: v[:, :width] if torch.is_tensor(v) and v.dim() == 2 else v for k, v in batch.items()}
