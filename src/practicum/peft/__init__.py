"""Fine-tuning strategies for pretrained models: which weights train, and how adapters are kept.

    full           every weight trains
    freeze         embeddings and the lower N blocks frozen (optionally discriminative lrs)
    linear_probe   only the head trains
    lora           low-rank adapters on chosen Linear layers + the head (practicum.peft.lora)
    prompt_tuning  a soft prompt of P vectors before every input + the head

`apply_strategy` changes a model in place (adds adapters or the prompt, sets requires_grad,
records per-parameter lr scales); a bundle repeats it on load so its weights fit.
`adapter_state` is what trained beyond the pretrained weights: save it on its own with
`save_adapter`, put it back on the same base with `load_adapter`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from practicum.config import PeftConfig
from practicum.errors import UserError
from practicum.models.pretrained import PretrainedClassifier
from practicum.peft.lora import LoRALinear, add_lora, lora_layers, merge_lora, unmerge_lora
from practicum.train.checkpoint import atomic_write, save_weights

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter.json"


def apply_strategy(model: nn.Module, cfg: PeftConfig, seed: int = 0) -> dict[str, Any]:
    """Set up `model` (a PretrainedClassifier, or a bare TransformerLM for causal-LM fine-tuning)
    for cfg.strategy; returns {"strategy", "trainable", "total", "lora_modules"?}."""
    backbone = model.backbone if isinstance(model, PretrainedClassifier) else model
    info: dict[str, Any] = {"strategy": cfg.strategy}
    if cfg.strategy != "full":
        for p in backbone.parameters():
            p.requires_grad_(False)
    if cfg.strategy == "freeze":
        n = len(backbone.blocks)
        frozen = n // 2 if cfg.freeze_layers is None else cfg.freeze_layers
        if frozen > n:
            raise UserError(f"peft.freeze_layers is {frozen} but the model has {n} blocks; use 0..{n}")
        for block in list(backbone.blocks)[frozen:]:
            for p in block.parameters():
                p.requires_grad_(True)
        for name in ("norm_f", "head_dense", "head_norm"):
            part = getattr(backbone, name, None)
            if part is not None:
                for p in part.parameters():
                    p.requires_grad_(True)
        if not backbone.cfg.tie_embeddings and not isinstance(model, PretrainedClassifier):
            backbone.lm_head.weight.requires_grad_(True)  # an untied LM head is not an embedding
        info["frozen_blocks"] = frozen
    elif cfg.strategy == "lora":
        info["lora_modules"] = add_lora(backbone, cfg.lora_targets, cfg.lora_r, cfg.lora_alpha,
                                        cfg.lora_dropout)
    elif cfg.strategy == "prompt_tuning":
        if not isinstance(model, PretrainedClassifier):
            raise UserError("peft.strategy prompt_tuning needs a task head (model.type pretrained)")
        model.prompt = nn.Parameter(initial_prompt(backbone, cfg, seed))
    if cfg.layer_lr_decay < 1.0:
        model.lr_scales = layer_lr_scales(model, backbone, cfg.layer_lr_decay)
    params = {id(p): p for p in model.parameters()}
    info["trainable"] = sum(p.numel() for p in params.values() if p.requires_grad)
    info["total"] = sum(p.numel() for p in params.values())
    return info


def initial_prompt(backbone: nn.Module, cfg: PeftConfig, seed: int) -> torch.Tensor:
    """(P, C): embeddings of P random vocabulary tokens (Lester et al.), or N(0, 0.02)."""
    g = torch.Generator().manual_seed(seed)
    wte = backbone.wte.weight.detach()
    if cfg.prompt_init == "vocab":
        ids = torch.randint(0, wte.size(0), (cfg.prompt_tokens,), generator=g)
        return wte[ids].clone().float()
    return torch.randn(cfg.prompt_tokens, wte.size(1), generator=g) * 0.02


def layer_lr_scales(model: nn.Module, backbone: nn.Module, decay: float) -> dict[str, float]:
    """name -> lr multiplier: block i of n gets decay^(n - i), embeddings decay^(n + 1); the
    head, final norm and adapters 1."""
    n = len(backbone.blocks)
    prefix = "backbone." if isinstance(model, PretrainedClassifier) else ""
    scales: dict[str, float] = {}
    for name, _ in model.named_parameters():
        rest = name[len(prefix):] if name.startswith(prefix) else None
        if rest is None:
            continue
        if rest.startswith("blocks."):
            scales[name] = decay ** (n - int(rest.split(".")[1]))
        elif rest.startswith(("wte.", "wpe.", "wtt.", "emb_norm.")):
            scales[name] = decay ** (n + 1)
    return scales


# ---------------------------------------------------------------- adapters


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights that trained beyond the pretrained base: trainable parameters (LoRA A/B,
    soft prompt, head, unfrozen blocks), by name."""
    seen: set[int] = set()
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out[name] = p.detach().cpu().contiguous()
    return out


def save_adapter(model: nn.Module, folder: str | Path, info: dict[str, Any]) -> Path:
    """Write adapter.safetensors (adapter_state) and adapter.json (info: strategy, base, ...)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    merged = [m for m in lora_layers(model) if m.merged]
    for m in merged:  # the adapter is saved apart from the base
        m.unmerge()
    save_weights(folder / ADAPTER_WEIGHTS, adapter_state(model), {"format": "pt"})
    for m in merged:
        m.merge()
    text = json.dumps(info, indent=2)
    atomic_write(folder / ADAPTER_CONFIG, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return folder


def load_adapter(model: nn.Module, folder: str | Path) -> dict[str, Any]:
    """Put a saved adapter on a model already set up with the same strategy; returns its info."""
    folder = Path(folder)
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise UserError(f"{folder}: no {ADAPTER_WEIGHTS}; give a folder written by save_adapter or a fine-tuned bundle")
    state = load_file(weights)
    own = dict(model.named_parameters())
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise UserError(f"{weights}: {len(unknown)} tensor(s) the model lacks (e.g. {unknown[0]}); "
                        "set the model up with the adapter's strategy first")
    with torch.no_grad():
        for name, tensor in state.items():
            if own[name].shape != tensor.shape:
                raise UserError(f"{weights}: {name} is {tuple(tensor.shape)}, the model has "
                                f"{tuple(own[name].shape)}; the adapter belongs to another base")
            own[name].copy_(tensor)
    cfg = folder / ADAPTER_CONFIG
    return json.loads(cfg.read_text(encoding="utf-8")) if cfg.is_file() else {}


def adapter_lora(model: nn.Module, folder: str | Path) -> nn.Module:
    """A merged LM bundle's model with its LoRA layers back (from adapter.safetensors), marked
    merged: outputs are unchanged, and the adapters can be exported or unmerged."""
    info_path = Path(folder) / ADAPTER_CONFIG
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    if info.get("strategy") != "lora":
        raise UserError(f"{folder} holds no LoRA adapters to export; train it with peft.strategy lora")
    cfg = PeftConfig.model_validate(info["peft"])
    if not lora_layers(model):
        add_lora(model, cfg.lora_targets, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
        for layer in lora_layers(model):
            layer.merged = True  # the bundle's weights already hold B A
    load_adapter(model, folder)
    return model


__all__ = [
    "LoRALinear", "adapter_lora", "add_lora", "adapter_state", "apply_strategy", "layer_lr_scales", "load_adapter",
    "lora_layers", "merge_lora", "save_adapter", "unmerge_lora",
]
