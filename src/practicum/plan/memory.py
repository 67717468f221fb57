"""Memory of a training step: weights, gradients, optimizer state, activations; the device's.

The activation estimate is analytic (rules per layer over the shapes of one small forward);
`measure_saved_bytes` is its oracle: the bytes of the distinct tensors autograd saves for
backward in one real training forward (torch.autograd.graph.saved_tensors_hooks), parameters
and buffers excluded: what a step holds at its peak, before backward frees it.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

OVERHEAD = 0.10
"""Allocator slack, the batch itself and temporaries of backward, as a share of the rest."""


# ---------------------------------------------------------------- memory


def tensor_bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def optimizer_state_bytes(model: nn.Module, optimizer: str, momentum: float = 0.0) -> int:
    """Bytes the optimizer will hold after its first step, from its algorithm (not by running it)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if optimizer in ("adamw", "adam"):  # exp_avg, exp_avg_sq like the parameter; step: 1 fp32 scalar
        return sum(2 * p.numel() * p.element_size() + 4 for p in trainable)
    if optimizer == "sgd" and momentum:
        return tensor_bytes(trainable)
    return 0


def real_optimizer_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in a (stepped) optimizer's state: the oracle for the estimate."""
    return sum(tensor_bytes(v for v in state.values() if torch.is_tensor(v))
               for state in optimizer.state.values())


def measure_saved_bytes(model: nn.Module, task: Any, batch: dict[str, torch.Tensor]) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves in one training forward + loss."""
    from practicum.train.trainer import _inputs

    params = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and ptr != 0:
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = task.batch_loss(model(**_inputs(batch)), batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


SAVES_INPUT = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d,
               nn.GroupNorm, nn.GELU, nn.SiLU, nn.MaxPool2d, nn.MaxPool1d, nn.Embedding, nn.LSTM, nn.GRU)
CASTS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""Layers autocast runs in its lower precision (their inputs and weights are cast, then kept)."""
SAVES_OUTPUT = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax)


def estimate_activations(model: nn.Module, task: Any, batch: dict[str, torch.Tensor], rows: int,
                         autocast: Any = None) -> int:
    """Activation bytes for `rows` rows, analytic from the shapes of one small no-grad forward.

    A rule per layer says what its backward keeps: the input (Linear, Conv, norms, GELU/SiLU,
    max-pool, Embedding ids), the output (ReLU, Sigmoid, Tanh, softmax), a mask (Dropout:
    1 byte on GPUs, a float noise tensor on CPUs), int64 indices (max-pool); an attention
    block keeps its fused q/k/v projection, its output and a log-sum-exp per head (plus the
    T x T weights, mask and dropped weights when attention dropout runs the math path); a GELU/SiLU called functionally in an MLP keeps
    the first projection; the loss keeps log-probabilities of the logits and the targets.
    A tensor kept by two layers counts once. The sum scales linearly from the probe's rows.
    """
    from practicum.train.trainer import _inputs

    batch = {k: v.clone() for k, v in batch.items()}  # own storages: a slice would count its whole batch
    probe = len(next(iter(batch.values())))
    skip = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    kept: dict[int, torch.Tensor] = {}  # holding the tensors keeps their storages from being reused
    extra = [0, 0]  # bytes that scale with rows; bytes that do not (weight copies under autocast)
    cast = getattr(autocast, "fast_dtype", None)
    handles = [m.register_forward_hook(_rule_hook(kept, extra, skip, cast)) for m in model.modules()
               if not list(m.children()) or _is_attention(m) or hasattr(m, "swiglu")]
    was = model.training
    model.train()
    try:
        with torch.no_grad(), autocast or contextlib.nullcontext():  # bf16 runs keep bf16 tensors
            outputs = model(**_inputs(batch))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    logits = outputs[0] if isinstance(outputs, tuple) else outputs
    targets = sum(v.numel() * v.element_size() for k, v in batch.items() if k not in _inputs(batch))
    total = sum(t.untyped_storage().nbytes() for t in kept.values()) + extra[0] + logits.numel() * 4 + targets
    return int(total * rows / probe) + extra[1]


def _is_attention(m: nn.Module) -> bool:
    return hasattr(m, "use_sdpa") and hasattr(m, "qkv")


def _rule_hook(kept: dict[int, torch.Tensor], extra: list[int], skip: set[int],
               cast: torch.dtype | None = None) -> Any:
    """The per-layer rule; `cast`: the autocast dtype, whose copies of inputs and weights a
    Linear or Conv keeps instead of the originals."""
    def keep(t: Any) -> None:
        if torch.is_tensor(t) and t.untyped_storage().data_ptr() not in skip:
            kept[t.untyped_storage().data_ptr()] = t

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        out = output[0] if isinstance(output, tuple) else output
        if not torch.is_tensor(out):
            return
        if _is_attention(module):
            extra[0] += _attention_bytes(module, out)
        elif hasattr(module, "swiglu"):  # fc output kept by the functional GELU/SiLU (+ SiLU's output)
            width = module.fc.out_features * out.element_size()
            extra[0] += out.numel() // out.shape[-1] * width * (3 if module.swiglu else 2) // 2
        elif cast is not None and isinstance(module, CASTS) and inputs[0].dtype != cast:
            extra[0] += inputs[0].numel() * cast.itemsize
            extra[1] += module.weight.numel() * cast.itemsize
        elif isinstance(module, SAVES_INPUT):
            keep(inputs[0] if inputs else None)
            if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)):
                extra[0] += out.numel() * 8
        elif isinstance(module, SAVES_OUTPUT):
            keep(out)
        elif isinstance(module, nn.Dropout) and module.p > 0:  # CPU keeps a float noise tensor
            extra[0] += out.numel() * (out.element_size() if out.device.type == "cpu" else 1)
        elif "norm" in type(module).__name__.lower():  # RMSNorm and other hand-written norms
            keep(inputs[0] if inputs else None)

    return hook


def _attention_bytes(module: nn.Module, out: torch.Tensor) -> int:
    """out (B, T, C) of an attention block: q/k/v projection, attention output, log-sum-exp."""
    B, T = out.shape[0], out.shape[1]
    heads = getattr(module, "n_head", getattr(module, "n_heads", 1))
    size = B * T * (module.qkv.out_features + module.proj.in_features) * out.element_size()
    size += B * heads * T * 4  # log-sum-exp, fp32
    if module.training and getattr(module, "dropout", 0.0) > 0:  # math path: weights, mask, dropped
        size += B * heads * T * T * 9
    return size


# ---------------------------------------------------------------- the device


def device_memory(device: torch.device) -> int | None:
    """Bytes a run may use: the GPU's total memory, or the CPU's MemAvailable (None: unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[1])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def suggest(memory: dict[str, int], available: int, micro_batch: int, grad_accum: int,
            replicas: int = 1, can_checkpoint: bool = False) -> dict[str, Any]:
    """The largest power-of-2 micro-batch that fits, the accumulation keeping the global batch,
    and activation checkpointing when even one row does not fit."""
    fixed = memory["weights"] + memory["gradients"] + memory["optimizer"]
    per_row = memory["activations"] / max(micro_batch, 1)
    budget = available / replicas / (1 + OVERHEAD) - fixed
    rows = 1 << int(math.log2(budget / per_row)) if per_row > 0 and budget >= per_row else 0
    rows = min(rows, 1 << int(math.log2(micro_batch)) if micro_batch > 1 else 1)
    global_rows = micro_batch * grad_accum
    if rows >= 1:
        accum = math.ceil(global_rows / rows)
        return {"micro_batch": rows, "grad_accum": accum, "activation_checkpointing": False,
                "flags": f"--train.batch_size {rows} --train.grad_accum {accum}"}
    flag = "--train.activation_checkpointing true" if can_checkpoint else ""
    why = ("activation checkpointing keeps only each block's input" if can_checkpoint else
           "even micro-batch 1 does not fit: use a smaller model, a bigger device or --strategy fsdp")
    return {"micro_batch": 1, "grad_accum": global_rows, "activation_checkpointing": can_checkpoint,
            "flags": f"--train.batch_size 1 --train.grad_accum {global_rows} {flag}".strip(), "note": why}




def memory_estimate(model: nn.Module, cfg: Any, task: Any, probe: dict[str, torch.Tensor],
                    micro_batch: int, autocast: Any = None) -> dict[str, int]:
    """Bytes per process: weights, gradients, optimizer state, activations, overhead and peak."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    parts = {
        "weights": tensor_bytes([*model.parameters(), *model.buffers()]),
        "gradients": tensor_bytes(trainable),
        "optimizer": optimizer_state_bytes(model, cfg.train.optimizer, cfg.train.momentum),
        "activations": estimate_activations(model, task, probe, micro_batch, autocast),
    }
    parts["overhead"] = int(OVERHEAD * sum(parts.values()))
    parts["peak"] = sum(parts.values())
    return parts
