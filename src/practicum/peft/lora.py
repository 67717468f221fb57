"""LoRA (Hu et al. 2021): a frozen Linear plus a trainable low-rank update (alpha / r) * B A.

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T        A: (r, in), B: (out, r)

A starts like PEFT's (Kaiming-uniform, a = sqrt(5)) and B at zero, so a fresh adapter leaves
the model's outputs exactly as they were. `merge` folds B A into W for inference (one matmul
per layer again); `unmerge` takes it back out. Parameter names (`lora_A`, `lora_B`) follow
the PEFT library, so adapters export to its format (see practicum.peft.export).
"""

from __future__ import annotations

import fnmatch
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from practicum.errors import UserError


class LoRALinear(nn.Linear):
    """A Linear layer with a LoRA branch. It keeps the wrapped layer's own `weight` and `bias`
    (frozen) under their own names, so base checkpoints load into an adapted model unchanged;
    the adapter adds `lora_A` and `lora_B` beside them."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        nn.Module.__init__(self)  # take over base's parameters instead of making new ones
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        like = dict(dtype=base.weight.dtype, device=base.weight.device)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **like))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **like))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)

    def delta(self) -> Tensor:
        """The update (alpha / r) * B A as an (out, in) matrix."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.merged:
            return y
        return y + F.linear(F.linear(self.drop(x), self.lora_A), self.lora_B) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.weight += self.delta().to(self.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.weight -= self.delta().to(self.weight.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, r={self.r}, alpha={self.alpha}, merged={self.merged}"


def matches(name: str, patterns: list[str]) -> bool:
    """fnmatch on the module name; a pattern without '*' matches a name that ends in it."""
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            if fnmatch.fnmatchcase(name, pat):
                return True
        elif name == pat or name.endswith("." + pat):
            return True
    return False


def add_lora(model: nn.Module, targets: list[str], r: int, alpha: float, dropout: float = 0.0) -> list[str]:
    """Wrap every nn.Linear whose name matches `targets` in a LoRALinear; returns their names."""
    chosen = [name for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and not isinstance(m, LoRALinear) and matches(name, targets)]
    if not chosen:
        linears = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise UserError(f"peft.lora_targets {targets} match no Linear layer; names end in: {', '.join(linears)}")
    for name in chosen:
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, leaf, LoRALinear(getattr(parent, leaf), r, alpha, dropout))
    return chosen


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> None:
    """Fold every adapter into its base weight (outputs unchanged, faster inference)."""
    for layer in lora_layers(model):
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model):
        layer.unmerge()
