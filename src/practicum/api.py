"""The Python API: each function is one stage, and the CLI is a thin layer over these."""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from practicum.bundle import Bundle, save_bundle
from practicum.config import RunConfig, load_config, to_yaml
from practicum.errors import UserError

log = logging.getLogger(__name__)

RECIPES = Path(__file__).parent / "recipes"
"""The shipped recipes: a link to the repository's configs/ folder."""


@dataclass
class RunResult:
    """What a finished training run left behind."""

    run_dir: Path
    bundle: Path
    report: Path
    metrics: dict[str, Any] = field(default_factory=dict)  # {"val": {...}, "test": {...}}
    summary: dict[str, Any] = field(default_factory=dict)


def find_recipe(name: str | Path) -> Path:
    """A recipe path, or the name of a shipped recipe (`quickstart`, `mlp_tabular`, ...), as the
    path the user knows (configs/NAME.yaml, relative to the working folder when inside it), so
    that errors point into configs/ rather than through the package's link to it."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = RECIPES / f"{name}.yaml"
    if shipped.is_file():
        return _shown(shipped.resolve())
    known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.yaml")))
    raise UserError(f"recipe {name} not found: not a file, nor a shipped recipe in "
                    f"{_shown(RECIPES.resolve())}/ ({known})")


def _shown(path: Path) -> Path:
    """`path` relative to the working folder when it lies inside it, else absolute."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def resolve_config(
    config: RunConfig | str | Path | dict[str, Any] | None = None, overrides: list[str] | None = None
) -> RunConfig:
    """The validated RunConfig a run would use: a RunConfig, a recipe name or YAML path, or a dict,
    with `section.field=value` overrides applied (what `practicum config show` prints)."""
    if isinstance(config, RunConfig):
        return load_config(config.model_dump(mode="json"), overrides)
    if isinstance(config, (str, Path)):
        return load_config(find_recipe(config), overrides)
    return load_config(config, overrides)


def train(
    config: RunConfig | str | Path | dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    resume: bool | str | Path = False,
) -> RunResult:
    """Train, validate, test, and write the run folder (checkpoints, metrics, plots, report, bundle).

    `resume=True` continues the run in the config's out_dir; a path continues that run folder
    with the config saved in it (overrides still apply).
    """
    from practicum.data import load_data
    from practicum.models import build_model
    from practicum.pretraining import is_lm_run, train_lm
    from practicum.train import distributed
    from practicum.train.checkpoint import seed_everything
    from practicum.train.trainer import Trainer

    if resume:
        run_dir = Path(resume) if not isinstance(resume, bool) else Path(resolve_config(config, overrides).out_dir)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise UserError(f"cannot resume: {saved} not found; pass the folder of an earlier run")
        cfg = load_config(saved, overrides)
    else:
        cfg = resolve_config(config, overrides)
        run_dir = _fresh_dir(Path(cfg.out_dir))
    _check_device(cfg)  # an absent device or an unusable precision stops the run before any write
    run_dir, resume = _distributed_run_dir(cfg, run_dir, resume)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.train.seed)
    if is_lm_run(cfg):
        return train_lm(cfg, run_dir, bool(resume))
    if cfg.task.type == "token_classification":
        from practicum.tagger_run import train_tagger

        return train_tagger(cfg, run_dir, bool(resume))
    if cfg.model.type == "pretrained" and cfg.task.type == "sft":
        from practicum.finetuning import train_sft

        return train_sft(cfg, run_dir, bool(resume))
    if cfg.model.type == "pretrained":
        from practicum.finetuning import finetune_setup

        cfg, data, task, model = finetune_setup(cfg)
    else:
        data = load_data(cfg.data, cfg.task)  # all input checks happen before anything is written
        task = _build_task(data, cfg)
        model = build_model(cfg.model, data.spec, task.num_outputs())
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.model_copy(update={"out_dir": str(run_dir)})
    main = distributed.is_main()  # under torchrun only rank 0 writes files
    if main:
        (run_dir / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    if data.leakage is not None and main:  # the train vs val/test overlap check of a fine-tuning run
        (run_dir / "leakage.json").write_text(json.dumps(data.leakage, indent=2), encoding="utf-8")
    log.info("run folder %s: %s on %s (%d train / %d val / %d test rows), %s parameters",
             run_dir, cfg.model.type, cfg.data.path, _n(data.train), _n(data.val), _n(data.test),
             f"{sum(p.numel() for p in model.parameters()):,}")
    augment = data.preprocessor.augment if cfg.data.image.augment.enabled else None
    trainer = Trainer(cfg.train, model, task, data.train, data.val, run_dir, augment=augment)
    state = trainer.fit(resume=bool(resume))
    trainer.load_best()
    if not main:  # rank 0 tests, writes the bundle and the report
        return RunResult(run_dir, run_dir / "bundle", run_dir / "report.md", {}, {"rank": trainer.dist.rank})
    return _finish(cfg, run_dir, trainer, data, state)


def _distributed_run_dir(cfg: RunConfig, run_dir: Path, resume: Any) -> tuple[Path, Any]:
    """Under torchrun every rank takes rank 0's run folder; after an elastic restart
    (TORCHELASTIC_RESTART_COUNT > 0) the newest folder of this config holding a checkpoint resumes."""
    from practicum.train import distributed

    if not distributed.setup(cfg.train.device).active:
        return run_dir, resume
    if not resume and distributed.is_elastic_restart() and distributed.is_main():
        earlier = _restartable(cfg)
        if earlier is not None:
            log.info("elastic restart: resuming %s from its last checkpoint", earlier)
            run_dir, resume = earlier, earlier
    return Path(distributed.broadcast(str(run_dir))), distributed.broadcast(resume)


def _restartable(cfg: RunConfig) -> Path | None:
    """The newest of out_dir, out_dir-1, ... whose config equals `cfg` and that holds a checkpoint."""
    base = Path(cfg.out_dir)
    found = None
    for candidate in [base] + [base.with_name(f"{base.name}-{i}") for i in range(1, 10_000)]:
        if not candidate.exists():
            break
        saved = candidate / "config.yaml"
        same = saved.is_file() and saved.read_text(encoding="utf-8") == to_yaml(
            cfg.model_copy(update={"out_dir": str(candidate)}))
        if same and (candidate / "checkpoints" / "last.pt").is_file():
            found = candidate
    return found


def pretrain(
    config: RunConfig | str | Path | dict[str, Any] | None = "pretrain_char",
    overrides: list[str] | None = None,
    resume: bool | str | Path = False,
) -> RunResult:
    """Pretrain a language model (GPT: causal LM; BERT: masked LM) on a text corpus.

    With no arguments: a small char-level GPT on the standard library's pydoc topics.
    """
    from practicum.pretraining import is_lm_run

    if not resume:
        cfg = resolve_config(config if config is not None else "pretrain_char", overrides)
        if not is_lm_run(cfg):
            raise UserError(
                f"pretrain needs a language-model recipe (model.type lm, task causal_lm or "
                f"masked_lm), got model.type {cfg.model.type}; use `practicum train` for it"
            )
    return train(config if config is not None else "pretrain_char", overrides, resume)


def ladder(config: RunConfig | str | Path | dict[str, Any], overrides: list[str] | None = None,
           out_dir: str | Path | None = None) -> Any:
    """Compare zero-shot, few-shot, prompt tuning, linear probe, LoRA and full fine-tuning of
    one pretrained model on one split (config.ladder says which and how); writes ladder.json,
    ladder.md and ladder.html into out_dir (default: the recipe's out_dir + '-ladder')."""
    from practicum.ladder import run_ladder

    cfg = resolve_config(config, overrides)
    out = _fresh_dir(Path(out_dir) if out_dir else Path(f"{cfg.out_dir}-ladder"))
    return run_ladder(cfg, out)


def import_model(source: str | Path, out: str | Path) -> Path:
    """Turn a Hugging Face folder (GPT-2, BERT, LLaMA) or a LLaMA-family .gguf file into a
    practicum language-model bundle at `out`; returns the bundle folder."""
    from practicum.bundle import save_lm_bundle
    from practicum.config import RunConfig, TaskConfig

    src = Path(source)
    if src.suffix == ".gguf":
        from practicum.models.gguf import import_gguf

        model, tokenizer, info = import_gguf(src)
    else:
        from practicum.models.hf import import_hf

        model, tokenizer, info = import_hf(src)
    if tokenizer is None:
        raise UserError(f"{src}: no tokenizer.json next to the weights; a bundle needs one "
                        "(save the Hugging Face fast tokenizer into that folder)")
    task = "causal_lm" if model.cfg.causal else "masked_lm"
    out = Path(out)
    cfg = RunConfig(name=src.stem or src.name, out_dir=str(out.parent), model=model.cfg,
                    task=TaskConfig(type=task))
    extra = {"source": str(src), "architecture": info.get("architecture")}
    if info.get("chat_template"):
        extra["chat_template"] = info["chat_template"]
    return save_lm_bundle(out, cfg, model, tokenizer, {}, extra=extra)


def export_hf(bundle: str | Path | Bundle, out: str | Path) -> Path:
    """Write a language-model bundle as a Hugging Face folder (GPT2LMHeadModel, BERT or LLaMA)."""
    from practicum.models.hf import export_hf as write_hf

    b = bundle if isinstance(bundle, Bundle) else load(bundle)
    b.require_language_model("export-hf")
    write_hf(b.model, b.tokenizer, out)
    return Path(out)


def export_peft(bundle: str | Path | Bundle, out: str | Path) -> Path:
    """Write a LoRA bundle's adapters in the PEFT library's format (adapter_config.json +
    adapter_model.safetensors) for the Hugging Face twin of its base model."""
    from practicum.peft import adapter_lora
    from practicum.peft.export import export_peft as write_peft

    b = bundle if isinstance(bundle, Bundle) else load(bundle)
    model = adapter_lora(b.model, b.path) if b.is_language_model else b.model
    base = getattr(b.config.model, "init_from", None) or b.info.get("source")
    return write_peft(model, out, base=base)


# ---------------------------------------------------------------- compress (issue 5)


def compress(bundle: str | Path | Bundle, *, prune: float | None = None, structured: bool = False,
             scope: str = "global", recover_epochs: float = 0.0, quantize: str | None = None,
             distill: Any = None, temperature: float | None = None, alpha: float | None = None,
             overrides: list[str] | None = None, data: str | Path | None = None,
             split: str | None = None, out: str | Path | None = None, repeats: int = 30) -> Any:
    """Shrink a bundle into a new one: distill (a student recipe) -> prune (a fraction of the
    weights, optionally recovered by a short fine-tune) -> quantize (int8, static-int8,
    int8-weight, int4-weight), then measure the trade-off against the original (size, parameters,
    latency at batch 1 and 32, the task metric). Writes the bundle (default: <bundle>-compressed)
    with compress.json and compress.md in it; returns a practicum.compress.CompressResult."""
    from practicum.compress.pipeline import compress as run_compress

    return run_compress(bundle, prune=prune, structured=structured, scope=scope,
                        recover_epochs=recover_epochs, quantize=quantize, distill=distill,
                        temperature=temperature, alpha=alpha, overrides=overrides, data=data,
                        split=split, out=out, repeats=repeats)


# ---------------------------------------------------------------- export (issue 5)


def export(bundle: str | Path | Bundle, fmt: str, out: str | Path | None = None, *, check: bool = True,
           opset: int | None = None, tolerance: float | None = None) -> Any:
    """Export a bundle as onnx, hf, peft or torchscript into `out` (default `<bundle>-<fmt>`),
    then check parity with the bundle on sample inputs (and onnx/torchscript batch-1 latency);
    returns an ExportResult (path, format, parity, latency). A failed check raises UserError."""
    from practicum.compress.export import export_bundle

    return export_bundle(bundle, fmt, out, check=check, opset=opset, tolerance=tolerance)


def load_onnx(path: str | Path) -> Bundle:
    """A folder written by export(..., "onnx") as a bundle that predicts through onnxruntime."""
    from practicum.compress.onnx_runtime import load_onnx_bundle

    return load_onnx_bundle(path)


# ---------------------------------------------------------------- explain (issue 5)


def explain(bundle: str | Path | Bundle, inputs: Any, out_dir: str | Path | None = None,
            write: bool = True, **options: Any) -> Any:
    """Explain a bundle's predictions on `inputs` (what predict takes; prompts for a language
    model): integrated gradients, saliency, attention maps and rollout, or the logit lens.
    options: fields of practicum.explain.ExplainOptions (target, views, steps, max_inputs,
    top_k, method). Writes PNGs, explain.json and index.html to out_dir (default
    <bundle>-explain) unless write=False; returns the Explanation with every number."""
    from practicum.explain import ExplainOptions
    from practicum.explain import explain as run_explain

    known = set(ExplainOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(f"explain: unknown option {unknown[0]!r}; known: {', '.join(sorted(known))}")
    b = bundle if isinstance(bundle, Bundle) else load(bundle)
    return run_explain(b, inputs, ExplainOptions(**options), out_dir, write)


# ---------------------------------------------------------------- serve (issue 5)


def serve(models: list[str] | dict[str, str | Path] | str | Path, host: str = "127.0.0.1",
          port: int = 8000, **settings: Any) -> None:
    """Serve bundles over HTTP (FastAPI + uvicorn) until SIGTERM/SIGINT, then finish in-flight
    requests and return. models: `NAME=PATH` strings, paths, or a name -> path dict.
    settings: fields of practicum.serve.ServeSettings (api_key, max_batch, max_wait_ms,
    batching, max_body_bytes, max_input_chars, max_inputs, max_new_tokens, ...).
    A bundle that cannot be loaded raises UserError("cannot serve NAME: why") before the
    port is bound. For an app object (tests, your own ASGI server): practicum.serve.create_app."""
    from practicum.serve import ServeSettings, run

    known = set(ServeSettings.__dataclass_fields__)
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UserError(f"serve: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    run(models, host, port, ServeSettings(**settings))


def resume_check(config: RunConfig | str | Path | dict[str, Any], overrides: list[str] | None = None, *,
                 steps: int = 24, keep: str | Path | None = None, device: str | None = None,
                 nproc: int | None = None, between: Any = None) -> Any:
    """Train a shortened recipe whole, then killed (SIGKILL) and resumed, and compare the two ends
    bit for bit; returns a `practicum.resume_check.ResumeCheck` (`.ok`, `.comparisons`)."""
    from practicum.resume_check import run_resume_check

    return run_resume_check(config, overrides, steps=steps, keep=keep, device=device, nproc=nproc,
                            between=between)


def plan(config: RunConfig | str | Path | dict[str, Any], overrides: list[str] | None = None, *,
         device: str | None = None, nproc: int = 1, steps: int = 5) -> Any:
    """Pre-flight plan of a recipe: parameters, memory per process against the device, FLOPs per
    step, measured step time and throughput, time to finish, and a micro-batch / accumulation /
    checkpointing suggestion when it would not fit; returns a `practicum.plan.Plan`."""
    from practicum.plan import plan_run

    return plan_run(resolve_config(config, overrides), device=device, nproc=nproc, steps=steps)


def _check_device(cfg: RunConfig) -> None:
    """train.device names a device present here, and train.precision works on it."""
    from practicum.train.device import resolve_device
    from practicum.train.precision import autocast_context

    autocast_context(cfg.train.precision, resolve_device(cfg.train.device))


def _finish(cfg: RunConfig, run_dir: Path, trainer: Any, data: Any, state: Any) -> RunResult:
    from practicum.evaluate.plots import plot_confusion, plot_curves, plot_regression
    from practicum.evaluate.report import write_report

    metrics = {"val": trainer.evaluate(data.val) if _n(data.val) else {}}
    final = data.test if _n(data.test) else data.val
    display = data.test_display if _n(data.test) else None
    outputs = trainer.predict_outputs(final)
    if _n(data.test):
        metrics["test"] = trainer.score(outputs, data.test["target"])
    bundle = save_bundle(run_dir / "bundle", cfg, trainer.model, data.preprocessor, metrics)
    if cfg.model.type == "pretrained" and cfg.peft.strategy != "full":  # the part that trained
        from practicum.peft import save_adapter

        save_adapter(trainer.model, bundle, {"strategy": cfg.peft.strategy,
                                             "base": cfg.model.init_from,
                                             "peft": cfg.peft.model_dump(mode="json")})
    _write_predictions(run_dir / "predictions.csv", trainer.task, outputs, final, data, display)
    plots = run_dir / "plots"
    plot_curves(trainer.runlog.rows(), plots)
    headline = metrics.get("test") or metrics["val"]
    if data.task == "classification" and "confusion_matrix" in headline:
        plot_confusion(headline["confusion_matrix"], data.label_names, plots / "confusion_matrix.png")
    elif data.task == "regression" and _n(final):
        true = data.preprocessor.decode_target(final["target"])
        pred = data.preprocessor.decode_target(outputs.squeeze(-1))
        plot_regression(true, pred, plots / "regression.png")
    summary = {
        "task": data.task, "monitor": trainer.monitor, "best_step": state.best_step,
        "best_value": state.best_value, "steps": state.step, "epochs_run": state.epoch,
        "stopped_early": state.stopped_early, "train_time_s": round(state.train_time_s, 3),
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "device": str(trainer.device), "test": _scalars(metrics.get("test", {})),
        "val": _scalars(metrics["val"]), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    report = write_report(run_dir)
    return RunResult(run_dir, bundle, report, metrics, summary)


def load(path: str | Path, device: str = "cpu") -> Bundle:
    """Load a bundle (or the bundle of a run folder) ready to predict."""
    return Bundle.load(path, device=device)


def predict(bundle: str | Path | Bundle, inputs: Any) -> list[dict[str, Any]]:
    """Predictions for a file path or JSON-like records, with the training-time preprocessing."""
    b = bundle if isinstance(bundle, Bundle) else load(bundle)
    return b.predict(inputs)


def evaluate(bundle: str | Path | Bundle, data: str | Path) -> dict[str, Any]:
    """Metrics of a bundle on new labelled data."""
    b = bundle if isinstance(bundle, Bundle) else load(bundle)
    return b.evaluate(str(data))


def quickstart(out_dir: str | Path | None = None, overrides: list[str] | None = None) -> RunResult:
    """Train a CNN on the embedded digits data set and write a complete run folder."""
    extra = [f"out_dir={out_dir}"] if out_dir else []
    return train("quickstart", [*extra, *(overrides or [])])


# ---------------------------------------------------------------- helpers


def _build_task(data: Any, cfg: RunConfig) -> Any:
    from practicum.tasks import build_task

    if data.task == "classification":
        return build_task("classification", label_names=data.label_names,
                          label_smoothing=cfg.train.label_smoothing)
    return build_task("regression", decode=data.preprocessor.decode_target)


def _fresh_dir(path: Path) -> Path:
    """Never overwrite an earlier run: use path, or path-1, path-2, ... if it holds files."""
    if not path.exists() or not any(path.iterdir()):
        return path
    for i in range(1, 10_000):
        candidate = path.with_name(f"{path.name}-{i}")
        if not candidate.exists() or not any(candidate.iterdir()):
            log.warning("%s already holds a run; writing this one to %s", path, candidate)
            return candidate
    raise UserError(f"too many runs named {path}-N; choose another --out_dir")


def _write_predictions(path: Path, task: Any, outputs: torch.Tensor, split: dict, data: Any,
                       display: list[str] | None) -> None:
    records = task.predictions(outputs)
    targets = data.preprocessor.decode_target(split["target"])
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if data.task == "classification":
            writer.writerow(["input", "target", "prediction", "confidence"])
        else:
            writer.writerow(["input", "target", "prediction", "error"])
        for i, (rec, true) in enumerate(zip(records, targets, strict=True)):
            shown = display[i] if display else f"row {i}"
            last = rec["confidence"] if "confidence" in rec else rec["prediction"] - true
            writer.writerow([shown, true, rec["prediction"], last])


def _n(split: dict | None) -> int:
    return len(split["target"]) if split else 0


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
