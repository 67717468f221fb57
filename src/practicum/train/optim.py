"""Optimizers with decay/no-decay parameter groups, and learning-rate schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from practicum.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and conv kernels; never biases, norm weights or embeddings' 1-d params.

    A model with an `lr_scales` dict (name -> multiplier; discriminative fine-tuning) gets one
    group per (decay, multiplier) with "lr_scale" set; build_optimizer applies it to the lr.
    """
    scales: dict[str, float] = getattr(model, "lr_scales", None) or {}
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (param.dim() >= 2, scales.get(name, 1.0))
        groups.setdefault(key, []).append(param)
    out = []
    for (decay, scale), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[0][1])):
        group = {"params": params, "weight_decay": weight_decay if decay else 0.0}
        if scale != 1.0:
            group["lr_scale"] = scale
        out.append(group)
    return out or [{"params": [], "weight_decay": weight_decay}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    for group in groups:
        group["lr"] = cfg.lr * group.get("lr_scale", 1.0)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":  # classic Adam: weight decay as an L2 term in the gradient
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas)
    # decoupled weight decay; the fused kernel (one pass over all parameters) where PyTorch has it
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=_can_fuse(model))


def _can_fuse(model: nn.Module) -> bool:
    """Fused AdamW exists for float tensors on CPU and CUDA (torch >= 2.4)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float16, torch.bfloat16)
        for p in params
    )


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    return cfg.warmup_steps or int(cfg.warmup_ratio * total_steps)


def lr_factor(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Multiplier on cfg.lr for the optimizer step `step` (0-based) of `total_steps`."""
    warm = warmup_steps(cfg, total_steps)
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** ((step - warm) // cfg.step_size)
    # cosine from 1 down to min_lr_ratio over the steps after warmup
    progress = min(1.0, (step - warm) / max(1, total_steps - warm))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[cfg.lr * g.get("lr_scale", 1.0) for g in optimizer.param_groups],
            total_steps=max(total_steps, 2),
            pct_start=max(0.01, warmup_steps(cfg, total_steps) / max(total_steps, 1) or 0.3),
            cycle_momentum=cfg.optimizer == "sgd",
        )
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg, total_steps)
    )
