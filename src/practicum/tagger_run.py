"""Token classification runs: BIO tags per word with a pretrained encoder (task.type
token_classification), and the bundles they leave.

    bundle/  bundle.json (task, tag_names, fields, config)  model.safetensors  tokenizer.json
             metrics.json  [adapter.safetensors, adapter.json]
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from practicum.config import RunConfig, to_yaml
from practicum.errors import UserError

log = logging.getLogger(__name__)

TASK = "token_classification"


def train_tagger(cfg: RunConfig, run_dir: Path, resume: bool) -> Any:
    """Fine-tune a pretrained encoder to tag words; returns an api.RunResult."""
    from practicum.api import RunResult
    from practicum.data.tagging import encode_tagged, read_tagged, tag_vocabulary
    from practicum.evaluate.plots import plot_curves
    from practicum.evaluate.report import write_report
    from practicum.finetuning import _log_strategy, _source
    from practicum.peft import apply_strategy
    from practicum.tasks import build_task
    from practicum.train.trainer import Trainer

    if cfg.model.type != "pretrained":
        raise UserError("task.type token_classification needs model.type pretrained (with model.init_from)")
    source, cfg = _source(cfg)
    t = cfg.task
    train = read_tagged(cfg.data.path, t.words_field, t.tags_field, t.tag_names)
    val = read_tagged(cfg.data.val_path, t.words_field, t.tags_field, t.tag_names, field="data.val_path") \
        if cfg.data.val_path else None
    test = read_tagged(cfg.data.test_path, t.words_field, t.tags_field, t.tag_names, field="data.test_path") \
        if cfg.data.test_path else None
    parts = _split(train.words, train.tags, cfg, has_val=val is not None, has_test=test is not None)
    if val is not None:
        parts["val"] = (val.words, val.tags)
    if test is not None:
        parts["test"] = (test.words, test.tags)
    names = tag_vocabulary(parts["train"][1])
    index = {tag: i for i, tag in enumerate(names)}
    length = min(cfg.model.max_length, cfg.model.backbone.block_size)
    data = {k: encode_tagged(source.tokenizer, w, g, index, length, source=k) for k, (w, g) in parts.items() if w}
    model = build_tagger(cfg, len(names))
    model.backbone.load_state_dict(source.model.state_dict(), strict=False)
    _log_strategy(source.source, cfg, apply_strategy(model, cfg.peft, cfg.train.seed))
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.model_copy(update={"out_dir": str(run_dir)})
    (run_dir / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    task = build_task(TASK, tag_names=names)
    trainer = Trainer(cfg.train, model, task, data["train"], data.get("val"), run_dir)
    state = trainer.fit(resume=resume)
    trainer.load_best()
    metrics = {split: trainer.evaluate(data[split]) for split in ("val", "test") if split in data}
    bundle = save_tagger_bundle(run_dir / "bundle", cfg, model, source.tokenizer, names, metrics)
    plot_curves(trainer.runlog.rows(), run_dir / "plots")
    summary = {
        "task": TASK, "monitor": trainer.monitor, "best_step": state.best_step,
        "best_value": state.best_value, "steps": state.step, "epochs_run": state.epoch,
        "stopped_early": state.stopped_early, "train_time_s": round(state.train_time_s, 3),
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "device": str(trainer.device), "tags": names,
        "sentences": {k: len(w) for k, (w, _) in parts.items()},
        "val": _scalars(metrics.get("val", {})), "test": _scalars(metrics.get("test", {})),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return RunResult(run_dir, bundle, write_report(run_dir), metrics, summary)


def build_tagger(cfg: RunConfig, num_tags: int) -> nn.Module:
    from practicum.models.lm import TransformerLM
    from practicum.models.pretrained import backbone_config
    from practicum.models.tagger import PretrainedTagger

    if cfg.model.type != "pretrained" or cfg.model.backbone is None:
        raise UserError("task.type token_classification needs model.type pretrained (with model.init_from)")
    return PretrainedTagger(TransformerLM(backbone_config(cfg.model.backbone)), num_tags, cfg.model.dropout)


def _split(words: list, tags: list, cfg: RunConfig, has_val: bool, has_test: bool) -> dict[str, tuple]:
    """Sentences shuffled with data.split.seed; val/test fractions carved unless given as files."""
    order = list(range(len(words)))
    random.Random(cfg.data.split.seed).shuffle(order)
    n_test = 0 if has_test else round(len(order) * cfg.data.split.test_fraction)
    n_val = 0 if has_val else round(len(order) * cfg.data.split.val_fraction)
    if len(order) - n_test - n_val < 1:
        raise UserError(f"{cfg.data.path}: {len(order)} sentences leave none for training; "
                        "lower data.split.val_fraction / test_fraction")
    pick = lambda idx: ([words[i] for i in idx], [tags[i] for i in idx])  # noqa: E731
    parts = {"train": pick(order[n_test + n_val:])}
    if n_val:
        parts["val"] = pick(order[n_test : n_test + n_val])
    if n_test:
        parts["test"] = pick(order[:n_test])
    return parts


def save_tagger_bundle(path: Path, cfg: RunConfig, model: nn.Module, tokenizer: Any, names: list[str],
                       metrics: dict[str, Any]) -> Path:
    from practicum.bundle import _header, _write_json
    from practicum.peft import save_adapter
    from practicum.train.checkpoint import save_weights

    path.mkdir(parents=True, exist_ok=True)
    save_weights(path / "model.safetensors", model.state_dict(), {"format": "pt"})
    tokenizer.save(path / "tokenizer.json")
    if cfg.peft.strategy != "full":
        save_adapter(model, path, {"strategy": cfg.peft.strategy, "base": cfg.model.init_from,
                                   "peft": cfg.peft.model_dump(mode="json")})
    info = {**_header(), "task": TASK, "model_type": cfg.model.type, "label_names": None,
            "tag_names": names, "special_tokens": dict(tokenizer.specials),
            "parameters": sum(p.numel() for p in model.parameters()),
            "config": cfg.model_dump(mode="json")}
    _write_json(path / "bundle.json", info)
    _write_json(path / "metrics.json", metrics)
    return path


class Tagging:
    """What a loaded token-classification bundle needs to read words and tag them."""

    def __init__(self, cfg: RunConfig, tokenizer: Any, names: list[str]) -> None:
        from practicum.tasks import build_task

        self.cfg, self.tokenizer, self.names = cfg, tokenizer, names
        self.index = {tag: i for i, tag in enumerate(names)}
        self.task = build_task(TASK, tag_names=names)

    def words(self, source: Any, require_tags: bool = False) -> tuple[list[list[str]], list | None]:
        """(words per sentence, tags or None) from a file, plain strings or {"tokens": [...]} records."""
        from practicum.data.tagging import read_tagged

        t = self.cfg.task
        if isinstance(source, str | Path) and Path(source).exists():
            rows = read_tagged(source, t.words_field, t.tags_field, t.tag_names,
                               require_tags=require_tags, field="input")
            return rows.words, rows.tags
        items = source if isinstance(source, list) else [source]
        words = []
        for item in items:
            if isinstance(item, str):
                words.append(item.split())
            elif isinstance(item, dict) and isinstance(item.get(t.words_field), list):
                words.append([str(w) for w in item[t.words_field]])
            else:
                raise UserError(f"input: give a file, sentences as strings, or records with a "
                                f"{t.words_field!r} list of words")
        if not any(words):
            raise UserError("input: no words to tag")
        return words, None

    def encode(self, words: list[list[str]], tags: list | None) -> dict[str, torch.Tensor]:
        from practicum.data.tagging import encode_tagged

        length = min(self.cfg.model.max_length, self.cfg.model.backbone.block_size)
        return encode_tagged(self.tokenizer, words, tags, self.index, length, source="input")


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
