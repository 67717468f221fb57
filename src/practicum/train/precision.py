"""How the model runs, not what it computes: mixed precision, torch.compile and
activation checkpointing.

fp16 autocast needs a gradient scaler (scale the loss, unscale before clipping, step,
update) and CUDA; bf16 needs neither. Compilation is best effort: where it is unsupported
or fails, one warning and the eager module.
"""

from __future__ import annotations

import logging
import shutil
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from practicum.errors import UserError
from practicum.train.device import supports_bf16

log = logging.getLogger(__name__)


def autocast_context(precision: str, device: torch.device) -> Any:
    """The forward/loss context for train.precision on `device` (fp32: none)."""
    if precision == "fp16":
        if device.type != "cuda":
            raise UserError(f"train.precision fp16 needs CUDA (device is {device.type}); use bf16 on CPU")
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    if precision != "bf16":
        return nullcontext()
    if not supports_bf16(device):
        log.warning("bf16 is not supported on %s; training in fp32", device)
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 training on CUDA; None otherwise."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


class CompiledForward:
    """Calls a torch.compile'd `module`; if compiling fails, warns once and calls the eager one.

    The compiled wrapper shares the module's parameters, so checkpoints and bundles keep
    saving the original module (no `_orig_mod.` prefix)."""

    def __init__(self, module: nn.Module) -> None:
        self.eager = module
        self.compiled: Any = torch.compile(module)

    def __call__(self, **inputs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(**inputs)
            except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to eager
                log.warning("torch.compile failed (%s: %s); training uncompiled",
                            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                self.compiled = None
        return self.eager(**inputs)


def compiled(module: nn.Module, device: torch.device) -> Any:
    """`module` behind torch.compile where this setup supports it, else the module itself."""
    why = compile_unsupported(device)
    if why:
        log.warning("train.compile: %s; training uncompiled", why)
        return module
    return CompiledForward(module)


def compile_unsupported(device: torch.device) -> str | None:
    """Why torch.compile cannot run here, or None."""
    if device.type == "mps":
        return "torch.compile is not supported on MPS"
    if device.type == "cpu" and not any(shutil.which(cc) for cc in ("cc", "gcc", "g++", "clang")):
        return "no C++ compiler found (inductor needs one on CPU)"
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "triton is not installed (inductor needs it on CUDA)"
    return None


def set_checkpointing(model: nn.Module, on: bool) -> int:
    """Turn activation checkpointing on/off in every block that supports it; returns how many."""
    blocks = [m for m in model.modules() if hasattr(type(m), "checkpointing")]
    for block in blocks:
        block.checkpointing = on
    return len(blocks)
