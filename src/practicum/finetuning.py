"""Fine-tuning runs: a pretrained model (model.init_from) adapted with peft.strategy.

Classification and regression put a head on the model and go through api.train's usual
path (finetune_setup builds the pieces). Supervised fine-tuning (task.type sft) trains the
causal LM itself on prompt/response pairs, loss on the responses only, and writes a language-
model bundle (adapters merged into the weights, plus adapter.safetensors), so `practicum
generate` uses the adapted model as it would any other.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from torch import nn

from practicum.config import RunConfig, to_yaml
from practicum.errors import UserError

log = logging.getLogger(__name__)


def finetune_setup(cfg: RunConfig) -> tuple[RunConfig, Any, Any, Any]:
    """A task head on model.init_from: read the source, record its architecture in the config,
    read the data with its tokenizer, build the model with the pretrained weights, apply
    peft.strategy. Returns (config, data splits, task, model)."""
    from practicum.api import _build_task
    from practicum.data import load_data
    from practicum.models import build_model
    from practicum.peft import apply_strategy

    source, cfg = _source(cfg)
    length = min(cfg.model.max_length, cfg.model.backbone.block_size)
    data = load_data(cfg.data, cfg.task, source.tokenizer, length)
    task = _build_task(data, cfg)
    model = build_model(cfg.model, data.spec, task.num_outputs())
    missing, _ = model.backbone.load_state_dict(source.model.state_dict(), strict=False)
    if missing:
        raise UserError(f"{cfg.model.init_from}: no pretrained weights for {', '.join(missing[:3])}")
    _log_strategy(source.source, cfg, apply_strategy(model, cfg.peft, cfg.train.seed))
    return cfg, data, task, model


def _source(cfg: RunConfig) -> tuple[Any, RunConfig]:
    from practicum.pretrained import load_backbone

    source = load_backbone(cfg.model.init_from)
    arch = source.model.cfg.model_copy(update={"vocab_size": int(source.model.vocab_size)})
    return source, cfg.model_copy(update={"model": cfg.model.model_copy(update={"backbone": arch})})


def _log_strategy(source: str, cfg: RunConfig, info: dict[str, Any]) -> None:
    log.info("fine-tuning %s (%s): %s of %s parameters train (%.2f%%)", source, cfg.peft.strategy,
             f"{info['trainable']:,}", f"{info['total']:,}", 100 * info["trainable"] / max(info["total"], 1))


# ---------------------------------------------------------------- supervised fine-tuning


def train_sft(cfg: RunConfig, run_dir: Path, resume: bool) -> Any:
    """Fine-tune a causal LM on prompt/response pairs; returns an api.RunResult."""
    from practicum.api import RunResult
    from practicum.data.sft import read_pairs, sft_rows
    from practicum.evaluate.plots import plot_curves
    from practicum.evaluate.report import write_report
    from practicum.peft import apply_strategy
    from practicum.tasks import build_task
    from practicum.train import distributed
    from practicum.train.trainer import Trainer

    source, cfg = _source(cfg)
    if not source.causal:
        raise UserError(f"task.type sft needs a causal (GPT/LLaMA-style) model; {cfg.model.init_from} "
                        "is an encoder: use a classification task for it")
    template = _template(cfg, source)
    pairs = read_pairs(cfg.data.path, cfg.task.prompt_field, cfg.task.response_field)
    length = min(cfg.model.max_length, source.model.cfg.block_size)
    train, val = _split(pairs, cfg)
    train_rows = sft_rows(train, source.tokenizer, template, length)
    val_rows = sft_rows(val, source.tokenizer, template, length) if val else None
    model = source.model.train()
    _log_strategy(source.source, cfg, apply_strategy(model, cfg.peft, cfg.train.seed))
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.model_copy(update={"out_dir": str(run_dir)})
    main = distributed.is_main()  # under torchrun only rank 0 writes files
    if main:
        (run_dir / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    task = build_task("sft", vocab_size=model.vocab_size)
    trainer = Trainer(cfg.train, model, task, train_rows, val_rows, run_dir)
    before = trainer.evaluate(val_rows) if val_rows is not None and not resume else None
    state = trainer.fit(resume=resume)
    trainer.load_best()
    if not main:
        return RunResult(run_dir, run_dir / "bundle", run_dir / "report.md", {}, {"rank": trainer.dist.rank})
    metrics = {"val": trainer.evaluate(val_rows) if val_rows is not None else {}}
    if before is not None:
        metrics["val_before"] = before
        log.info("response loss on val: %.4f before, %.4f after", before["loss"], metrics["val"]["loss"])
    bundle = save_sft_bundle(run_dir / "bundle", cfg, model, source, template, metrics)
    plot_curves(trainer.runlog.rows(), run_dir / "plots")
    summary = {
        "task": "sft", "monitor": trainer.monitor, "best_step": state.best_step,
        "best_value": state.best_value, "steps": state.step, "epochs_run": state.epoch,
        "stopped_early": state.stopped_early, "train_time_s": round(state.train_time_s, 3),
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "device": str(trainer.device), "examples": {"train": len(train), "val": len(val)},
        "val": _scalars(metrics["val"]), "val_before": _scalars(metrics.get("val_before", {})),
        "test": {}, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return RunResult(run_dir, bundle, write_report(run_dir), metrics, summary)


def _template(cfg: RunConfig, source: Any) -> str | None:
    wanted = cfg.model.chat_template
    if wanted in (None, "none"):
        return None
    if wanted == "auto":
        return source.chat_template
    return wanted


def _split(pairs: list[tuple[str, str]], cfg: RunConfig) -> tuple[list, list]:
    """A seeded shuffle, then data.split.val_fraction of the pairs for validation."""
    import random

    order = list(range(len(pairs)))
    random.Random(cfg.data.split.seed).shuffle(order)
    n_val = round(len(pairs) * cfg.data.split.val_fraction)
    if len(pairs) - n_val < 1:
        raise UserError(f"{cfg.data.path}: {len(pairs)} examples leave none for training; lower data.split.val_fraction")
    return [pairs[i] for i in order[n_val:]], [pairs[i] for i in order[:n_val]]


def save_sft_bundle(path: Path, cfg: RunConfig, model: nn.Module, source: Any, template: str | None,
                    metrics: dict[str, Any]) -> Path:
    """A language-model bundle of the adapted model (adapters merged: a plain TransformerLM that
    generate/serve read), plus the adapter on its own (adapter.safetensors)."""
    from practicum.bundle import save_lm_bundle
    from practicum.config import TaskConfig
    from practicum.models.lm import TransformerLM
    from practicum.peft import merge_lora, save_adapter, unmerge_lora

    if cfg.peft.strategy != "full":
        save_adapter(model, path, {"strategy": cfg.peft.strategy, "base": cfg.model.init_from,
                                   "peft": cfg.peft.model_dump(mode="json")})
    merge_lora(model)
    state = {k: v for k, v in model.state_dict().items() if "lora_" not in k}
    plain = TransformerLM(cfg.model.backbone)
    plain.load_state_dict(state)
    unmerge_lora(model)
    lm_cfg = RunConfig(name=cfg.name, out_dir=cfg.out_dir, model=cfg.model.backbone,
                       task=TaskConfig(type="causal_lm"))
    extra = {"source": cfg.model.init_from, "finetuned": {"task": "sft", "strategy": cfg.peft.strategy}}
    if template:
        extra["chat_template"] = template
    return save_lm_bundle(path, lm_cfg, plain, source.tokenizer, metrics, extra=extra)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
