"""LoRA adapters in the PEFT library's format, for the Hugging Face twin of the base model.

    adapter_config.json          peft_type LORA, r, lora_alpha, target_modules, task_type, ...
    adapter_model.safetensors    base_model.model.<module>.lora_A.weight / .lora_B.weight

Our attention keeps queries, keys and values in one Linear (qkv) and LLaMA's gate and up
projections in one (fc); one adapter there (A shared, B stacked) is exactly one adapter per
Hugging Face module with the same A and its slice of B, so the export is lossless.
GPT-2 and LLaMA adapters are for GPT2LMHeadModel / LlamaForCausalLM (task CAUSAL_LM); BERT
adapters for BertModel (FEATURE_EXTRACTION). A task head of ours is not part of the adapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from practicum.errors import UserError
from practicum.models.hf import _BASE, _export_family, _padded_config, _weight_map
from practicum.models.pretrained import PretrainedClassifier
from practicum.peft.lora import LoRALinear
from practicum.train.checkpoint import atomic_write, save_weights

TASK_TYPES = {"gpt2": "CAUSAL_LM", "llama": "CAUSAL_LM", "bert": "FEATURE_EXTRACTION"}


def peft_state(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(PEFT-named LoRA tensors, adapter_config.json fields) of a model with LoRA layers."""
    backbone = model.backbone if isinstance(model, PretrainedClassifier) else model
    layers = {name: m for name, m in backbone.named_modules() if isinstance(m, LoRALinear)}
    if not layers:
        raise UserError("the model has no LoRA adapters to export; train it with peft.strategy lora")
    shapes = {(m.r, m.alpha) for m in layers.values()}
    if len(shapes) > 1:
        raise UserError(f"adapters of different rank/alpha {sorted(shapes)}; PEFT's format needs one")
    (r, alpha), = shapes
    family = _export_family(backbone.cfg, None)
    full = _padded_config(backbone.cfg, family)
    hf_of = {e.ours: e.hf for e in _weight_map(full, family)}
    strip = _BASE["bert"] if family == "bert" else ""  # BertModel has no "bert." prefix
    state: dict[str, Tensor] = {}
    targets: set[str] = set()
    for name, layer in layers.items():
        modules = [h[: -len(".weight")] for h in hf_of[f"{name}.weight"]]
        if len(modules) == 3:  # q, k, v
            q, kv = full.n_head * full.head_size, full.kv_heads * full.head_size
            parts = layer.lora_B.split((q, kv, kv))
        else:
            parts = layer.lora_B.chunk(len(modules))  # (gate, up) halves, or the whole B
        for module, b in zip(modules, parts, strict=True):
            path = module[len(strip):] if strip and module.startswith(strip) else module
            key = f"base_model.model.{path}"
            state[f"{key}.lora_A.weight"] = layer.lora_A.detach().cpu().contiguous().clone()
            state[f"{key}.lora_B.weight"] = b.detach().cpu().contiguous().clone()
            targets.add(path.rsplit(".", 1)[-1])
    dropout = next(iter(layers.values())).drop
    config = {
        "peft_type": "LORA", "task_type": TASK_TYPES[family], "r": r, "lora_alpha": alpha,
        "lora_dropout": float(getattr(dropout, "p", 0.0)), "target_modules": sorted(targets),
        "bias": "none", "fan_in_fan_out": family == "gpt2", "inference_mode": True,
        "modules_to_save": None, "base_model_name_or_path": None,
    }
    return state, config


def export_peft(model: nn.Module, folder: str | Path, base: str | None = None) -> Path:
    """Write adapter_config.json + adapter_model.safetensors; `base` names the Hugging Face
    model the adapter belongs to (written as base_model_name_or_path)."""
    state, config = peft_state(model)
    config["base_model_name_or_path"] = base
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / "adapter_model.safetensors", state, {"format": "pt"})
    text = json.dumps(config, indent=2)
    atomic_write(folder / "adapter_config.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return folder
