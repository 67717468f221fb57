"""Magnitude pruning of a bundle's model to a target sparsity, with an optional recovery fine-tune.

    unstructured, layer    every weight tensor loses its `amount` smallest |w| (l1_unstructured)
    unstructured, global   the `amount` smallest |w| of all prunable tensors taken together
    structured, layer      every layer loses `amount` of its units, lowest L2 norm first: output
                           channels of a conv, rows (neurons) of a Linear or RNN weight, whole
                           attention heads (practicum.compress.heads)
    structured, global     the units of all layers ranked together by their RMS weight and pruned,
                           weakest first, until `amount` of the prunable weights are gone (every
                           layer keeps at least one unit)

Prunable: the weights of Linear, Conv and RNN/LSTM/GRU layers. Embeddings, norms, biases and the
output head (the model's last Linear; a language model's lm_head and nsp_head) keep every weight.
The masks of torch.nn.utils.prune stay on while the recovery fine-tune trains, so zeros stay
zeros; then they are made permanent: the returned model holds plain tensors under the original
state_dict keys and saves as a normal bundle.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from practicum.bundle import Bundle
from practicum.compress.heads import HeadLayer, head_layers
from practicum.config import RunConfig, load_config
from practicum.errors import UserError

log = logging.getLogger(__name__)

PRUNABLE = (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase)
LM_HEADS = ("lm_head", "nsp_head")
SCOPES = ("global", "layer")


@dataclass
class Weight:
    """One prunable weight tensor: `param` of `module`."""

    module_name: str
    module: nn.Module
    param: str

    @property
    def name(self) -> str:
        return f"{self.module_name}.{self.param}" if self.module_name else self.param

    @property
    def tensor(self) -> Tensor:
        return getattr(self.module, self.param)

    @property
    def unit_dim(self) -> int:
        """The dimension whose slices are the structured units (a transposed conv's outputs are dim 1)."""
        return 1 if getattr(self.module, "transposed", False) else 0

    @property
    def unit_kind(self) -> str:
        return "channels" if isinstance(self.module, nn.modules.conv._ConvNd) else "rows"

    def units(self) -> Tensor:
        return self.tensor.detach().transpose(0, self.unit_dim).flatten(1)  # (units, weights per unit)


# ---------------------------------------------------------------- the entry point


def prune_bundle(bundle: Bundle, amount: float, *, structured: bool = False, scope: str = "global",
                 recover_epochs: float = 0.0, overrides: list[str] | None = None) -> tuple[nn.Module, dict]:
    """A pruned copy of bundle.model (eval mode, permanent zeros, the original state_dict keys)
    and a JSON-able report: target, sparsity realised in the returned weights, per layer, the
    structured units removed, and the recovery fine-tune (None without one).

    `recover_epochs` (a fraction allowed: 0.5 is half an epoch) fine-tunes the pruned model on
    the bundle's own training data at a tenth of its recipe's lr; `overrides` such as
    ["train.lr=1e-4", "data.path=corpus.txt"] change that run's config.
    """
    _check(amount, scope, recover_epochs)
    model = copy.deepcopy(bundle.model)
    _bake_lora(model)
    order = {name: list(m._parameters) for name, m in model.named_modules()}
    weights, heads = prunable_weights(model)
    if not weights:
        raise UserError(f"{bundle.path}: the model has no Linear, Conv or LSTM weights to prune "
                        "(a quantized bundle? prune before quantizing)")
    if structured:
        prune_structured(model, weights, amount, scope)
    else:
        prune_unstructured(weights, amount, scope)
    recovery = None
    if recover_epochs > 0:
        recovery = recover(bundle, model, recover_epochs, list(overrides or []))
    make_permanent(model, order)
    model.eval()
    report = sparsity_report(weights, amount, structured, scope, heads)
    if structured:
        report["units"] = unit_report(model, weights)
    report["recovery"] = recovery
    log.info("pruned %s (%s, %s): %.2f%% of %s prunable weights are zero (target %.2f%%)",
             bundle.path, "structured" if structured else "unstructured", scope,
             100 * report["realised_sparsity"], f"{report['prunable_weights']:,}", 100 * amount)
    return model, report


def _check(amount: Any, scope: Any, recover_epochs: Any) -> None:
    number = (int, float)
    if isinstance(amount, bool) or not isinstance(amount, number) or not 0 < amount < 1:
        raise UserError(f"prune amount {amount!r} is not a fraction between 0 and 1 (exclusive); "
                        "e.g. 0.5 zeroes half of the prunable weights")
    if scope not in SCOPES:
        raise UserError(f"prune scope {scope!r} is not one of {', '.join(SCOPES)}; global ranks all "
                        "layers together, layer prunes each layer by the same fraction")
    if (isinstance(recover_epochs, bool) or not isinstance(recover_epochs, number)
            or not 0 <= recover_epochs < math.inf):
        raise UserError(f"recover_epochs {recover_epochs!r} must be a number >= 0 "
                        "(0: no recovery fine-tune; 0.5: half an epoch)")


def _bake_lora(model: nn.Module) -> None:
    """Fold LoRA adapters into their weights and zero lora_B: the pruned weight is then the
    whole layer, and a bundle that merges adapters on load adds nothing back to it."""
    from practicum.peft.lora import lora_layers

    for layer in lora_layers(model):
        layer.merge()
        with torch.no_grad():
            layer.lora_B.zero_()


# ---------------------------------------------------------------- what is pruned


def output_heads(model: nn.Module) -> list[str]:
    """Names of the layers that are never pruned: the last Linear (the task head) and a
    language model's lm_head / nsp_head."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    heads = [name for name in linears if name.rsplit(".", 1)[-1] in LM_HEADS]
    if linears and linears[-1] not in heads:
        heads.append(linears[-1])
    return heads


def prunable_weights(model: nn.Module) -> tuple[list[Weight], list[str]]:
    """The weight matrices/kernels of Linear, Conv and RNN layers (not the output heads, not
    a weight shared with another layer, e.g. tied embeddings), and the heads' names."""
    heads = output_heads(model)
    uses: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        uses[id(p)] = uses.get(id(p), 0) + 1
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE) or name in heads:
            continue
        for pname, p in module.named_parameters(recurse=False):
            is_weight = pname == "weight" or pname.startswith("weight_")
            if is_weight and p.dim() >= 2 and p.is_floating_point() and uses[id(p)] == 1:
                found.append(Weight(name, module, pname))
    return found, heads


def split_units(model: nn.Module, weights: list[Weight]) -> tuple[list[Weight], list[HeadLayer]]:
    """Structured units: attention modules (whole heads) and the other weights (channels/rows)."""
    ids = {id(w.tensor) for w in weights}
    layers = [h for h in head_layers(model) if id(h.qkv.weight) in ids and id(h.proj.weight) in ids]
    in_heads = {id(p) for h in layers for p in (h.qkv.weight, h.proj.weight)}
    return [w for w in weights if id(w.tensor) not in in_heads], layers


# ---------------------------------------------------------------- pruning


def prune_unstructured(weights: list[Weight], amount: float, scope: str) -> None:
    if scope == "layer":
        for w in weights:
            prune.l1_unstructured(w.module, w.param, amount)
    else:
        prune.global_unstructured([(w.module, w.param) for w in weights],
                                  pruning_method=prune.L1Unstructured, amount=amount)


def prune_structured(model: nn.Module, weights: list[Weight], amount: float, scope: str) -> None:
    plain, layers = split_units(model, weights)
    if scope == "layer":
        for w in plain:
            prune.ln_structured(w.module, w.param, amount, n=2, dim=w.unit_dim)
        for layer in layers:
            k = round(amount * layer.n_head)
            _mask_heads(layer, layer.scores().argsort()[:k].tolist())
        return
    drops = _global_units(plain, layers, amount * sum(w.tensor.numel() for w in weights))
    for w in plain:
        mask = torch.ones_like(w.tensor)
        index = torch.tensor(drops.get(w.name, []), dtype=torch.long, device=mask.device)
        prune.custom_from_mask(w.module, w.param, mask.index_fill_(w.unit_dim, index, 0.0))
    for layer in layers:
        _mask_heads(layer, drops.get(layer.name, []))


def _mask_heads(layer: HeadLayer, drop: list[int]) -> None:
    qkv, proj = layer.masks(drop)
    prune.custom_from_mask(layer.qkv, "weight", qkv)
    prune.custom_from_mask(layer.proj, "weight", proj)


def _global_units(plain: list[Weight], layers: list[HeadLayer], budget: float) -> dict[str, list[int]]:
    """Units of all layers, weakest RMS first, until `budget` weights are gone: {layer: [units]}."""
    ranked: list[tuple[float, float, str, int]] = []  # (rms, weights, layer, unit)
    for w in plain:
        units = w.units().float()  # (units, per unit)
        ranked += _candidates(w.name, units.pow(2).mean(1).sqrt(), units.size(1))
    for layer in layers:
        rms = layer.scores() / math.sqrt(layer.proj.weight.size(0) * layer.hs)
        ranked += _candidates(layer.name, rms, layer.head_weights())
    drops: dict[str, list[int]] = {}
    gone = 0.0
    for _, size, name, unit in sorted(ranked):
        if gone + size / 2 > budget:  # stop where the total is nearest the budget
            break
        drops.setdefault(name, []).append(unit)
        gone += size
    return drops


def _candidates(name: str, rms: Tensor, size: float) -> list[tuple[float, float, str, int]]:
    """Every unit of a layer but its strongest (a layer never loses all of its units)."""
    keep = int(rms.argmax())
    return [(float(s), float(size), name, i) for i, s in enumerate(rms.tolist()) if i != keep]


def make_permanent(model: nn.Module, order: dict[str, list[str]]) -> None:
    """Fold every pruning mask into its weight (weight_orig * mask -> weight) and put the
    parameters back in their original order, so the state_dict reads as before."""
    for name, module in model.named_modules():
        hooks = [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]
        for hook in hooks:
            prune.remove(module, hook._tensor_name)
        if hooks:
            for key in order.get(name, []):
                module._parameters[key] = module._parameters.pop(key)


# ---------------------------------------------------------------- reports


def sparsity_report(weights: list[Weight], amount: float, structured: bool, scope: str,
                    heads: list[str]) -> dict[str, Any]:
    """Zeros counted in the weights themselves (not in masks), per tensor and over all of them."""
    per_layer, zeros, total = {}, 0, 0
    for w in weights:
        t = w.tensor.detach()
        z, n = int((t == 0).sum()), t.numel()
        per_layer[w.name] = z / n
        zeros, total = zeros + z, total + n
    return {
        "method": "magnitude", "structured": structured, "scope": scope, "target": amount,
        "realised_sparsity": zeros / total, "zero_weights": zeros, "prunable_weights": total,
        "per_layer": per_layer,
        "not_pruned": f"embeddings, norms, biases and the output head ({', '.join(heads) or 'none'}) "
                      "keep all their weights",
    }


def unit_report(model: nn.Module, weights: list[Weight]) -> dict[str, Any]:
    """Structured units that are entirely zero: {"heads" | "channels" | "rows": {pruned, total}};
    heads also list the pruned head indices per attention module."""
    plain, layers = split_units(model, weights)
    out: dict[str, Any] = {}
    for w in plain:
        units = w.units()
        entry = out.setdefault(w.unit_kind, {"pruned": 0, "total": 0})
        entry["pruned"] += int((~units.bool().any(1)).sum())
        entry["total"] += units.size(0)
    if layers:
        per_layer = {layer.name: layer.pruned() for layer in layers}
        out["heads"] = {"pruned": sum(len(v) for v in per_layer.values()),
                        "total": sum(layer.n_head for layer in layers), "per_layer": per_layer}
    return out


# ---------------------------------------------------------------- recovery fine-tune


def recover(bundle: Bundle, model: nn.Module, epochs: float, overrides: list[str]) -> dict[str, Any]:
    """Fine-tune the pruned model, masks on, on the bundle's training data with the usual Trainer
    in a temporary run folder. Every weight trains; the best validation checkpoint is kept, or
    the pruned weights as they were when recovery made validation worse."""
    from practicum.train.trainer import Trainer

    if bundle.tagging is not None:
        raise UserError(f"{bundle.path}: recovery fine-tuning of token-classification bundles is not "
                        "supported; prune without it (recover_epochs 0)")
    cfg = _recovery_config(bundle.config, overrides)
    device = next(model.parameters()).device
    flags = [(p, p.requires_grad) for p in model.parameters()]
    scales = getattr(model, "lr_scales", None)  # discriminative lrs: a pruned weight is now weight_orig
    if scales:
        model.lr_scales = {**scales, **{f"{k}_orig": v for k, v in scales.items()}}
    with tempfile.TemporaryDirectory(prefix="practicum-recover-") as tmp:
        train, val, task, augment = _recovery_data(bundle, cfg, Path(tmp))
        cfg = _recovery_steps(cfg, train, epochs, overrides)
        for p, _ in flags:
            p.requires_grad_(True)
        trainer = Trainer(cfg.train, model, task, train, val, Path(tmp) / "run", augment=augment)
        summary = _fit_keeping_the_better(trainer, model, val)
    for p, flag in flags:
        p.requires_grad_(flag)
    if scales:
        model.lr_scales = scales
    model.to(device)
    log.info("recovery: %d steps at lr %g, val %s %s -> %s", summary["steps"], cfg.train.lr,
             trainer.monitor, summary["val_before"], summary["val_after"])
    return {"epochs": epochs, "steps": summary.pop("steps"), "lr": cfg.train.lr,
            "monitor": trainer.monitor, **summary}


def _fit_keeping_the_better(trainer: Any, model: nn.Module, val: Any) -> dict[str, Any]:
    """Train, load the best checkpoint; go back to the pruned weights if validation got worse."""
    from practicum.evaluate.metrics import higher_is_better

    before = _monitored(trainer, val)
    pruned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state = trainer.fit()
    trainer.load_best()
    after = _monitored(trainer, val)
    kept = "recovered"
    better = higher_is_better(trainer.monitor)
    if before is not None and after is not None and (after < before if better else after > before):
        model.load_state_dict(pruned)
        kept = "pruned"
        log.warning("recovery made val %s worse (%.4g -> %.4g); keeping the pruned weights",
                    trainer.monitor, before, after)
    return {"steps": state.step, "val_before": before, "val_after": after, "kept": kept}


def _recovery_config(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """The bundle's run config at a tenth of its lr, no TensorBoard, then the user's overrides."""
    raw = cfg.model_dump(mode="json")
    raw["train"].update(lr=cfg.train.lr / 10, tensorboard=False)
    return load_config(raw, overrides)


def _recovery_steps(cfg: RunConfig, train: Any, epochs: float, overrides: list[str]) -> RunConfig:
    """epochs -> whole epochs for the Trainer plus max_steps for a fraction (unless overridden)."""
    update: dict[str, Any] = {"epochs": max(1, math.ceil(epochs))}
    if not any(o.split("=", 1)[0].strip() == "train.max_steps" for o in overrides):
        rows = len(next(iter(train.values()))) if isinstance(train, dict) else len(train)
        per_epoch = math.ceil(math.ceil(rows / cfg.train.batch_size) / cfg.train.grad_accum)
        update["max_steps"] = max(1, round(epochs * per_epoch))
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=update)})


def _monitored(trainer: Any, val: Any) -> float | None:
    from practicum.evaluate.metrics import scalar_metrics

    if val is None or trainer.val_data is None:
        return None
    return scalar_metrics(trainer.evaluate(val)).get(trainer.monitor)


def _recovery_data(bundle: Bundle, cfg: RunConfig, folder: Path) -> tuple[Any, Any, Any, Any]:
    """(train, val, task, augment) as the run that made the bundle had them."""
    if bundle.is_language_model:
        return _lm_data(bundle, cfg, folder)
    from practicum.api import _build_task
    from practicum.data import load_data
    from practicum.data.text import PretrainedTextEncoder

    encoder = bundle.preprocessor.inputs
    if isinstance(encoder, PretrainedTextEncoder):  # read with the model's tokenizer, as finetune_setup does
        data = load_data(cfg.data, cfg.task, encoder.tokenizer, encoder.max_length)
    else:
        data = load_data(cfg.data, cfg.task)
    if _json(data.preprocessor.state_dict()) != _json(bundle.preprocessor.state_dict()):
        raise UserError(f"{cfg.data.path}: this data no longer gives the preprocessing {bundle.path} was "
                        "trained with (vocabulary, scaling or labels differ); recovery needs the bundle's "
                        "own training data (pass data.path=... if it moved)")
    augment = data.preprocessor.augment if cfg.data.image.augment.enabled else None
    return data.train, data.val, _build_task(data, cfg), augment


def _json(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True)


def _lm_data(bundle: Bundle, cfg: RunConfig, folder: Path) -> tuple[Any, Any, Any, None]:
    """Token windows of the corpus (data.path) read with the bundle's own tokenizer."""
    from practicum.data.corpus import BUILTIN_PYDOC
    from practicum.pretraining import build_lm_task, lm_splits, prepare_corpus

    path = cfg.data.path
    recorded = "source" not in bundle.info or path != bundle.config.data.path  # imports record none
    if not recorded or (path.startswith("builtin:") and path != BUILTIN_PYDOC):
        raise UserError(f"{bundle.path}: recovery trains the language model on a text corpus, and "
                        f"data.path {path!r} is not one; pass the corpus as an override, "
                        "e.g. data.path=corpus.txt")
    task_type = bundle.info["task"]
    prepare_corpus(cfg, bundle.tokenizer, folder)
    train, val = lm_splits(cfg, task_type, bundle.tokenizer, folder)
    return train, val, build_lm_task(task_type, cfg, bundle.tokenizer, bundle.model.vocab_size), None
