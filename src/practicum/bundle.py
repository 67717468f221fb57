"""The Bundle: the saved model folder every later stage takes and gives.

    bundle/
      bundle.json         format version, resolved config, task, labels, input spec, versions
      model.safetensors   weights (no pickle)
      preprocess.json     the training-time preprocessing state (vocabulary, scaling, columns)
      tokenizer.json      language models: the tokenizer (instead of preprocess.json)
      metrics.json        validation and test metrics of the run that made it

`Bundle.load(path)` rebuilds the model and the preprocessor so that `predict` repeats the
training-time preprocessing exactly. Every file in the folder must resolve inside it: a
symbolic link that leads out of the bundle is refused, so loading reads only what the bundle holds.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from practicum.config import RunConfig, validate
from practicum.errors import UserError
from practicum.train.checkpoint import atomic_write, save_weights

FORMAT = "practicum-bundle"
FORMAT_VERSION = 1


def save_bundle(
    path: Path, cfg: RunConfig, model: nn.Module, preprocessor: Any, metrics: dict[str, Any]
) -> Path:
    """Write a bundle folder; each file lands atomically."""
    path.mkdir(parents=True, exist_ok=True)
    save_weights(path / "model.safetensors", model.state_dict(), {"format": "pt"})
    info = {
        **_header(),
        "task": preprocessor.task,
        "model_type": cfg.model.type,
        "label_names": preprocessor.label_names,
        "spec": preprocessor.spec.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": cfg.model_dump(mode="json"),
    }
    _write_json(path / "bundle.json", info)
    _write_json(path / "preprocess.json", preprocessor.state_dict())
    _write_json(path / "metrics.json", metrics)
    return path


LM_TASKS = ("causal_lm", "masked_lm")


def _header() -> dict[str, Any]:
    """The first keys of every bundle.json: format, versions, time of writing."""
    from practicum import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "practicum_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def save_lm_bundle(
    path: Path, cfg: RunConfig, model: nn.Module, tokenizer: Any, metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a language-model bundle: weights, tokenizer.json, bundle.json, metrics.json.

    `extra` adds keys to bundle.json (an imported model's source, its chat template).
    """
    path.mkdir(parents=True, exist_ok=True)
    save_weights(path / "model.safetensors", model.state_dict(), {"format": "pt"})
    tokenizer.save(path / "tokenizer.json")
    info = {
        **_header(),
        "task": cfg.task.type,
        "model_type": cfg.model.type,
        "vocab_size": int(model.vocab_size),
        "tokenizer": tokenizer.kind,
        "special_tokens": dict(tokenizer.specials),  # role -> token: tokenizer.json alone can't say
        "label_names": None,
        "parameters": model.num_parameters(),
        "config": cfg.model_dump(mode="json"),
        **(extra or {}),
    }
    _write_json(path / "bundle.json", info)
    _write_json(path / "metrics.json", metrics)
    return path


class Bundle:
    """A loaded bundle: config, preprocessor (or tokenizer), model (eval mode) and task."""

    def __init__(self, path: Path, info: dict[str, Any], config: RunConfig, preprocessor: Any,
                 model: nn.Module, metrics: dict[str, Any], tokenizer: Any = None) -> None:
        self.path, self.info, self.config = path, info, config
        self.preprocessor, self.model, self.metrics = preprocessor, model, metrics
        self.tokenizer = tokenizer
        self.tagging: Any = None  # token classification: practicum.tagger_run.Tagging
        self.task = None if self.is_language_model or preprocessor is None else _task_for(preprocessor, config)

    @property
    def is_language_model(self) -> bool:
        return self.info.get("task") in LM_TASKS

    def require_language_model(self, command: str, causal: bool | None = None) -> None:
        """A clear error when a command that needs a (causal / masked) LM gets another bundle."""
        if not self.is_language_model:
            raise UserError(
                f"{self.path} is a {self.info.get('task')} bundle, not a language model; "
                f"{command} needs a bundle from `practicum pretrain` (use predict for this one)"
            )
        is_causal = bool(self.config.model.causal)
        if causal is True and not is_causal:
            raise UserError(f"{self.path} is a masked-LM (BERT-style) bundle; {command} needs a "
                            "causal (GPT-style) one; use `practicum fill-mask` for this bundle")
        if causal is False and is_causal:
            raise UserError(f"{self.path} is a causal (GPT-style) bundle; {command} needs a "
                            "masked-LM (BERT-style) one; use `practicum generate` for this bundle")

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Bundle:
        from practicum.data import Preprocessor
        from practicum.models import build_model

        folder = find_bundle(path)
        info = _read_json(folder / "bundle.json")
        if info.get("format") != FORMAT or info.get("format_version", 0) > FORMAT_VERSION:
            raise UserError(
                f"{folder}/bundle.json: not a practicum bundle of a version this release reads "
                f"(format {info.get('format')!r} v{info.get('format_version')}); upgrade practicum"
            )
        config = validate(info["config"], where=f"{folder}/bundle.json")
        if info.get("task") in LM_TASKS:
            return cls._load_lm(folder, info, config, device)
        if info.get("task") == "token_classification":
            return cls._load_tagger(folder, info, config, device)
        preprocessor = Preprocessor.from_state(_read_json(folder / "preprocess.json"))
        task = _task_for(preprocessor, config)
        model = build_model(config.model, preprocessor.spec, task.num_outputs())
        if config.model.type == "pretrained":
            from practicum.peft import apply_strategy

            apply_strategy(model, config.peft)  # adapters/prompt in place, so the weights fit
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise UserError(f"{weights} is missing; the bundle is incomplete, re-export it from its run")
        quantized = _quantize_step(info)
        if quantized is None:
            model.load_state_dict(load_file(weights, device=device))
        model.to(device).eval()
        if config.model.type == "pretrained":
            from practicum.peft import merge_lora

            merge_lora(model)  # same outputs, one matmul per layer
        if quantized is not None:
            model = _load_quantized(model, weights, quantized, device)
        metrics_path = folder / "metrics.json"
        metrics = _read_json(metrics_path) if metrics_path.exists() else {}
        return cls(folder, info, config, preprocessor, model, metrics)

    @classmethod
    def _load_lm(cls, folder: Path, info: dict[str, Any], config: RunConfig, device: str) -> Bundle:
        from practicum.data.tokenizers import Tokenizer
        from practicum.models.lm import TransformerLM

        model = TransformerLM(config.model, vocab_size=info["vocab_size"])
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise UserError(f"{weights} is missing; the bundle is incomplete, re-export it from its run")
        quantized = _quantize_step(info)
        if quantized is None:
            model.load_state_dict(load_file(weights, device=device))
        model.to(device).eval()
        if quantized is not None:
            model = _load_quantized(model, weights, quantized, device)
        tokenizer = Tokenizer.load(folder / "tokenizer.json")
        if info.get("special_tokens"):
            tokenizer = Tokenizer(tokenizer.inner, info["special_tokens"])
        metrics_path = folder / "metrics.json"
        metrics = _read_json(metrics_path) if metrics_path.exists() else {}
        return cls(folder, info, config, None, model, metrics, tokenizer=tokenizer)

    @classmethod
    def _load_tagger(cls, folder: Path, info: dict[str, Any], config: RunConfig, device: str) -> Bundle:
        from practicum.data.tokenizers import Tokenizer
        from practicum.peft import apply_strategy, merge_lora
        from practicum.tagger_run import Tagging, build_tagger

        model = build_tagger(config, len(info["tag_names"]))
        apply_strategy(model, config.peft)
        model.load_state_dict(load_file(folder / "model.safetensors", device=device))
        model.to(device).eval()
        merge_lora(model)
        tokenizer = Tokenizer(Tokenizer.load(folder / "tokenizer.json").inner, info["special_tokens"])
        metrics_path = folder / "metrics.json"
        bundle = cls(folder, info, config, None, model, _read_json(metrics_path) if metrics_path.exists() else {},
                     tokenizer=tokenizer)
        bundle.tagging = Tagging(config, tokenizer, list(info["tag_names"]))
        bundle.task = bundle.tagging.task
        return bundle

    def _tag(self, source: Any, require_tags: bool) -> tuple[list[list[str]], Any, dict, torch.Tensor]:
        from practicum.train.trainer import batched_outputs

        words, tags = self.tagging.words(source, require_tags)
        batch = self.tagging.encode(words, tags)
        inputs = {k: v for k, v in batch.items() if k != "target"}
        device = next(self.model.parameters()).device
        return words, tags, batch, batched_outputs(self.model, inputs, 64, device)

    def _require_predictor(self) -> None:
        if self.is_language_model:
            raise UserError(
                f"{self.path} is a language model ({self.info['task']}); predict and evaluate "
                "take classifier and regressor bundles: use `practicum generate` or `fill-mask`"
            )

    def outputs(self, batch: dict[str, torch.Tensor], batch_size: int = 512) -> torch.Tensor:
        """Raw model outputs (logits or standardised values) for a preprocessed batch."""
        from practicum.train.trainer import batched_outputs

        device = next(self.model.parameters()).device
        outputs = batched_outputs(self.model, batch, batch_size, device)
        return outputs if len(outputs) else torch.empty(0, self.task.num_outputs())

    def predict(self, source: Any) -> list[dict[str, Any]]:
        """Predictions for a file path or JSON-like records, with the input shown per row."""
        self._require_predictor()
        if self.tagging is not None:
            words, _, batch, outputs = self._tag(source, require_tags=False)
            records = self.task.predictions(outputs, batch["word_index"], [len(w) for w in words])
            return [{"input": " ".join(w), "prediction": r["prediction"],
                     "tagged": " ".join(f"{x}/{t}" for x, t in zip(w, r["prediction"], strict=True)),
                     "entities": [{**e, "text": " ".join(w[e["start"]:e["end"]])} for e in r["entities"]]}
                    for w, r in zip(words, records, strict=True)]
        batch, display, _ = self.preprocessor.load_inputs(source)
        records = self.task.predictions(self.outputs(batch))
        return [{"input": shown, **rec} for shown, rec in zip(display, records, strict=True)]

    def evaluate(self, source: Any) -> dict[str, Any]:
        """Metrics on labelled data (the target column must be present). For tables, also
        "unknown_categories": {column: cells with a category not seen in training}, when any."""
        self._require_predictor()
        if self.tagging is not None:
            _, tags, batch, outputs = self._tag(source, require_tags=True)
            return self.task.metrics(outputs, batch["target"])
        raw = self.preprocessor.read_inputs(source)
        batch, _, _ = self.preprocessor.load_inputs(raw)
        if "target" not in batch:
            raise UserError(
                f"{source}: no target column to evaluate against; it needs the column "
                f"the bundle was trained on ({self.config.data.target or 'label'})"
            )
        metrics = self.task.metrics(self.outputs(batch), batch["target"])
        unknown = self.preprocessor.unknown_categories(raw)
        return {**metrics, "unknown_categories": unknown} if unknown else metrics


def find_bundle(path: str | Path) -> Path:
    """Accept a bundle folder or a run folder that contains one."""
    folder = Path(path)
    if not folder.exists():
        raise UserError(f"{folder} does not exist; pass a bundle folder such as runs/quickstart/bundle")
    if (folder / "bundle" / "bundle.json").is_file():
        folder = folder / "bundle"
    if not (folder / "bundle.json").is_file():
        raise UserError(f"{folder} is not a practicum bundle (no bundle.json); pass the bundle/ folder of a run")
    check_contained(folder)
    return folder


def check_contained(folder: Path) -> None:
    """Refuse a bundle folder with a file or folder that resolves (through symbolic links)
    outside it: loading would read a file the bundle does not hold."""
    root = folder.resolve()
    for parent, dirs, files in os.walk(folder):  # links to folders are listed, not followed
        for name in dirs + files:
            entry = Path(parent) / name
            if not entry.is_symlink():
                continue
            target = entry.resolve()
            if not target.is_relative_to(root):
                raise UserError(f"bundle file {entry} resolves outside the bundle folder (to {target}); "
                                "copy the file into the bundle")


def _quantize_step(info: dict[str, Any]) -> dict[str, Any] | None:
    """The quantization a compressed bundle went through (bundle.json "compression"), or None."""
    if not info.get("compression"):
        return None
    from practicum.compress.store import quantize_step

    return quantize_step(info)


def _load_quantized(model: nn.Module, weights: Path, step: dict[str, Any], device: str) -> nn.Module:
    """A quantized bundle loads back quantized: the recorded structure, filled from the stored ints."""
    from practicum.compress.store import load_quantized

    return load_quantized(model, weights, step, device)


def _task_for(preprocessor: Any, config: RunConfig) -> Any:
    from practicum.tasks import build_task

    if preprocessor.task == "classification":
        return build_task("classification", label_names=preprocessor.label_names,
                          label_smoothing=config.train.label_smoothing)
    return build_task("regression", decode=preprocessor.decode_target)


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing; the bundle is incomplete") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); the bundle is damaged") from None
