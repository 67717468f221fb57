"""Knowledge distillation: train a smaller student recipe on a teacher bundle's data, against the
teacher's temperature-softened outputs mixed with the hard labels (practicum.tasks.distill).

    result = distill_bundle(practicum.load("runs/transformer_text"), "transformer_text",
                            ["model.d_model=64"], Path("runs/student"), temperature=2.0, alpha=0.5)

The student's `model` and `train` sections come from its recipe; its data and task come from the
teacher, read with the teacher's own preprocessing (fitted vocabulary, scaling, tokenizer), so
the teacher can score every batch the student sees. `data.*` overrides change which rows are read
(data.path for a language model's corpus, data.limit), never how they are preprocessed. One
Trainer trains the student, with the usual run folder and exact resume.

Classifiers (text, image, tabular) and causal language models (per-token KL over the vocabulary
on the positions the LM loss covers; the student keeps the teacher's tokenizer and vocabulary).
The student bundle's bundle.json records `distilled_from` (the teacher's folder) and
`distillation` ({teacher, temperature, alpha}); summary.json adds how close the student came
(mean KL to the teacher at T=1 and argmax agreement, per row or per token).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from practicum.bundle import Bundle
from practicum.config import LMConfig, RunConfig, load_config, to_yaml
from practicum.errors import UserError
from practicum.tasks.distill import DistillationTask, model_inputs, softened_kl, target_positions

if TYPE_CHECKING:
    from practicum.api import RunResult

log = logging.getLogger(__name__)

CLASSIFIER_TASKS = ("classification",)
LM_TASKS = ("causal_lm",)
PREPROCESSING = ("data.kind", "data.features", "data.target", "data.categorical", "data.normalize",
                 "data.text.", "data.image.normalize", "data.corpus.tokenizer", "data.corpus.vocab_size",
                 "data.corpus.min_frequency")
"""Fields of the teacher's preprocessing, which the student reuses: overriding them is an error."""
SETTINGS_FILE = "distill.json"
"""Written into the run folder at the start: the teacher and the loss settings (checked on resume)."""


def distill_bundle(teacher: Bundle | str | Path, student_recipe: Any, overrides: list[str] | None,
                   out_dir: Path, *, temperature: float = 2.0, alpha: float = 0.5,
                   resume: bool = False) -> RunResult:
    """Distil `teacher` into a student built from `student_recipe` (name, path, dict or RunConfig)
    plus `overrides`; writes a run folder at out_dir (a numbered sibling if it holds a run) and
    returns its practicum.api.RunResult. `resume=True` continues the run folder out_dir exactly."""
    from practicum.train.checkpoint import seed_everything

    settings = _settings(teacher, temperature, alpha)
    teacher = teacher if isinstance(teacher, Bundle) else Bundle.load(teacher)
    kind = _teacher_kind(teacher)
    if resume:
        run_dir = Path(out_dir)
        cfg = _resumed_config(run_dir, overrides, settings)
    else:
        from practicum.api import _fresh_dir

        cfg = student_config(teacher, student_recipe, overrides, kind)
        run_dir = _fresh_dir(Path(out_dir))
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.train.seed)
    device = next(teacher.model.parameters()).device
    try:
        if kind == "causal_lm":
            return _distil_lm(cfg, run_dir, teacher, settings, resume)
        return _distil_classifier(cfg, run_dir, teacher, settings, resume)
    finally:
        teacher.model.to(device)  # the caller's bundle goes back where it was


def _settings(teacher: Any, temperature: float, alpha: float) -> dict[str, Any]:
    if not isinstance(teacher, Bundle | str | Path):
        raise UserError(f"the teacher must be a bundle (a folder or practicum.load(...)), "
                        f"not {type(teacher).__name__}")
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
        raise UserError(f"distillation temperature must be a number > 0 (got {temperature}); "
                        "2 to 5 is usual")
    if not (isinstance(alpha, int | float) and 0.0 <= alpha <= 1.0):
        raise UserError(f"distillation alpha must be in [0, 1] (got {alpha}): the weight of the "
                        "teacher's soft targets, 1 - alpha that of the labels")
    return {"temperature": float(temperature), "alpha": float(alpha)}


def _teacher_kind(teacher: Bundle) -> str:
    task = teacher.info.get("task")
    if task in CLASSIFIER_TASKS or task in LM_TASKS:
        return str(task)
    raise UserError(f"{teacher.path} is a {task} bundle; distillation needs a classifier "
                    "(classification) or a causal language model (causal_lm) teacher")


# ---------------------------------------------------------------- the student's config


def student_config(teacher: Bundle, student_recipe: Any, overrides: list[str] | None,
                   kind: str) -> RunConfig:
    """The student recipe's model and train sections (plus overrides) with the teacher's data and
    task; `data.*` overrides apply to the teacher's data section."""
    from practicum.api import resolve_config

    data_over = [o for o in overrides or [] if o.split("=", 1)[0].startswith("data.")]
    for item in data_over:
        if item.split("=", 1)[0].startswith(PREPROCESSING):
            raise UserError(f"override {item!r}: the student reads its inputs with the teacher's "
                            "preprocessing (vocabulary, scaling, tokenizer); drop this override")
    student = resolve_config(student_recipe, [o for o in overrides or [] if o not in data_over])
    wanted = student.task.type
    if wanted not in ("auto", kind) or (kind == "classification") == isinstance(student.model, LMConfig):
        what = f"task.type {wanted}, model.type {student.model.type}"
        raise UserError(f"the student recipe ({what}) is not a {kind} recipe, but the teacher "
                        f"{teacher.path} is a {kind} bundle; give a student recipe of the same task")
    if student.model.type == "pretrained":
        raise UserError("a distillation student is trained from scratch on the teacher's inputs; "
                        "model.type pretrained brings its own tokenizer: use mlp, lenet, resnet, rnn "
                        "or transformer (lm for a language model)")
    raw = student.model_dump(mode="json")
    raw["data"] = teacher.config.data.model_dump(mode="json")
    raw["task"] = {**teacher.config.task.model_dump(mode="json"), "type": kind}
    if kind == "causal_lm":  # the corpus is read with the teacher's tokenizer
        raw["data"]["corpus"]["tokenizer"] = str(teacher.path / "tokenizer.json")
    return load_config(raw, data_over)


def _resumed_config(run_dir: Path, overrides: list[str] | None, settings: dict[str, Any]) -> RunConfig:
    saved, recorded = run_dir / "config.yaml", run_dir / SETTINGS_FILE
    if not saved.is_file() or not recorded.is_file():
        raise UserError(f"cannot resume: {run_dir} holds no distillation run ({saved.name} and "
                        f"{recorded.name} are needed); pass the folder of an earlier run")
    before = json.loads(recorded.read_text(encoding="utf-8"))
    for key in ("temperature", "alpha"):
        if before[key] != settings[key]:
            raise UserError(f"cannot resume {run_dir} with {key} {settings[key]}: it was started with "
                            f"{before[key]}; pass the same value")
    return load_config(saved, overrides)


def _start_run(cfg: RunConfig, run_dir: Path, teacher: Bundle, settings: dict[str, Any],
               resume: bool) -> RunConfig:
    """Create the run folder with config.yaml and distill.json (a resumed run checks the teacher)."""
    record = {"teacher": str(teacher.path), **settings}
    path = run_dir / SETTINGS_FILE
    if resume:
        before = json.loads(path.read_text(encoding="utf-8"))["teacher"]
        if Path(before).resolve() != Path(teacher.path).resolve():
            raise UserError(f"cannot resume {run_dir}: it distils {before}, not {teacher.path}; "
                            "pass the same teacher")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.model_copy(update={"out_dir": str(run_dir)})
    (run_dir / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return cfg


# ---------------------------------------------------------------- classifiers


def _distil_classifier(cfg: RunConfig, run_dir: Path, teacher: Bundle, settings: dict[str, Any],
                       resume: bool) -> RunResult:
    from practicum.api import _build_task, _finish
    from practicum.data import load_data
    from practicum.models import build_model
    from practicum.train.trainer import Trainer

    pre = teacher.preprocessor
    # a fine-tuned pretrained teacher read its text with its tokenizer and the leakage checks
    tokenizer = getattr(pre.inputs, "tokenizer", None) if teacher.config.model.type == "pretrained" else None
    data = load_data(cfg.data, cfg.task, tokenizer, preprocessor=pre)
    hard = _build_task(data, cfg)
    model = build_model(cfg.model, data.spec, hard.num_outputs())
    cfg = _start_run(cfg, run_dir, teacher, settings, resume)
    task = _distillation_task(hard, teacher, cfg, settings)
    log.info("distilling %s (%s parameters) into %s (%s parameters) at T=%g, alpha=%g", teacher.path,
             f"{_params(teacher.model):,}", cfg.model.type, f"{_params(model):,}",
             settings["temperature"], settings["alpha"])
    augment = data.preprocessor.augment if cfg.data.image.augment.enabled else None
    trainer = Trainer(cfg.train, model, task, data.train, data.val, run_dir, augment=augment)
    state = trainer.fit(resume=resume)
    trainer.load_best()
    result = _finish(cfg, run_dir, trainer, data, state)
    split, rows = ("test", data.test) if data.test is not None and len(data.test["target"]) else ("val", data.val)
    gap = teacher_gap(trainer.model, teacher.model, rows, cfg.train.eval_batch_size, trainer.device)
    teacher_metrics = trainer.score(_outputs(teacher.model, rows, cfg, trainer.device), rows["target"])
    _record(result, teacher, settings, {"split": split, **gap,
                                        "teacher_metrics": _scalars(teacher_metrics)})
    return result


def _outputs(model: nn.Module, rows: dict[str, torch.Tensor], cfg: RunConfig,
             device: torch.device) -> torch.Tensor:
    from practicum.train.trainer import batched_outputs

    return batched_outputs(model.eval(), rows, cfg.train.eval_batch_size, device)


# ---------------------------------------------------------------- causal language models


def _distil_lm(cfg: RunConfig, run_dir: Path, teacher: Bundle, settings: dict[str, Any],
               resume: bool) -> RunResult:
    from practicum.api import RunResult
    from practicum.bundle import save_lm_bundle
    from practicum.evaluate.plots import plot_curves
    from practicum.evaluate.report import write_report
    from practicum.models.lm import TransformerLM
    from practicum.pretraining import build_lm_task, lm_splits
    from practicum.train.trainer import Trainer

    tokenizer, vocab = teacher.tokenizer, int(teacher.info["vocab_size"])
    _check_lm_student(cfg, teacher, vocab)
    model = TransformerLM(cfg.model, vocab_size=vocab)
    cfg = _start_run(cfg, run_dir, teacher, settings, resume)
    tokenizer.save(run_dir / "tokenizer.json")
    meta = _lm_corpus(cfg, tokenizer, run_dir)
    train, val = lm_splits(cfg, "causal_lm", tokenizer, run_dir)
    task = _distillation_task(build_lm_task("causal_lm", cfg, tokenizer, vocab), teacher, cfg, settings)
    log.info("distilling %s (%s parameters) into an LM of %s parameters on %s (%s train tokens), "
             "T=%g, alpha=%g", teacher.path, f"{_params(teacher.model):,}", f"{model.num_parameters():,}",
             cfg.data.path, f"{meta['tokens']['train']:,}", settings["temperature"], settings["alpha"])
    trainer = Trainer(cfg.train, model, task, train, val, run_dir)
    bs = cfg.train.eval_batch_size
    before = None if resume or val is None else teacher_gap(trainer.model, teacher.model, val, bs, trainer.device)
    state = trainer.fit(resume=resume)
    trainer.load_best()
    metrics = {"val": trainer.evaluate(val) if val is not None else {}}
    extra = {"distilled_from": str(teacher.path), "distillation": {"teacher": str(teacher.path), **settings}}
    if teacher.info.get("chat_template"):
        extra["chat_template"] = teacher.info["chat_template"]
    bundle = save_lm_bundle(run_dir / "bundle", cfg, trainer.model, tokenizer, metrics, extra=extra)
    plot_curves(trainer.runlog.rows(), run_dir / "plots")
    summary = {
        "task": "causal_lm", "monitor": trainer.monitor, "best_step": state.best_step,
        "best_value": state.best_value, "steps": state.step, "epochs_run": state.epoch,
        "stopped_early": state.stopped_early, "train_time_s": round(state.train_time_s, 3),
        "params": model.num_parameters(), "device": str(trainer.device), "tokens": meta["tokens"],
        "vocab_size": vocab, "tokenizer": tokenizer.kind, "val": _scalars(metrics["val"]),
        "test": {}, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    result = RunResult(run_dir, bundle, write_report(run_dir), metrics, summary)
    gap = {} if val is None else teacher_gap(trainer.model, teacher.model, val, bs, trainer.device)
    if before is not None:
        gap["kl_to_teacher_before"] = before["kl_to_teacher"]
    _record(result, teacher, settings, {"split": "val", **gap}, bundle_json=False)
    return result


def _check_lm_student(cfg: RunConfig, teacher: Bundle, vocab: int) -> None:
    model = cfg.model
    if not model.causal:
        raise UserError("the student must be a causal LM like its teacher; set model.causal true")
    if model.vocab_size is not None and model.vocab_size != vocab:
        raise UserError(f"the student's model.vocab_size {model.vocab_size} differs from the teacher's "
                        f"{vocab}; a distilled LM keeps the teacher's tokenizer: set model.vocab_size "
                        "null (or equal)")
    if model.block_size > teacher.config.model.block_size:
        raise UserError(f"the student's model.block_size {model.block_size} is longer than the "
                        f"teacher's {teacher.config.model.block_size}; the teacher must see whole "
                        "windows: use a block_size <= the teacher's")


def _lm_corpus(cfg: RunConfig, tokenizer: Any, run_dir: Path) -> dict[str, Any]:
    from practicum.pretraining import prepare_corpus

    try:
        return prepare_corpus(cfg, tokenizer, run_dir)
    except UserError as err:
        raise UserError(f"{err} (the corpus is the teacher's data.path; pass data.path=CORPUS "
                        "to distil on another text)") from None


# ---------------------------------------------------------------- shared pieces


def _distillation_task(hard: Any, teacher: Bundle, cfg: RunConfig,
                       settings: dict[str, Any]) -> DistillationTask:
    from practicum.train.device import resolve_device

    teacher.model.to(resolve_device(cfg.train.device)).eval()
    return DistillationTask(hard, teacher.model, settings["temperature"], settings["alpha"])


@torch.no_grad()
def teacher_gap(student: nn.Module, teacher: nn.Module, data: Any, batch_size: int,
                device: torch.device) -> dict[str, float]:
    """How close a student is to its teacher on a split (rows in memory or a row source):
    mean KL(teacher || student) at T=1 and how often their argmax agrees, per row for
    classifiers, per target position for language models."""
    from practicum.train.trainer import EVAL_LOGITS

    was_training = student.training
    student.eval()
    teacher.eval()
    kl_sum, agree, count = 0.0, 0, 0
    n = len(data["target"]) if isinstance(data, dict) else len(data)
    if not isinstance(data, dict):  # token windows: keep a batch's logits under EVAL_LOGITS
        width = data.block_size * int(getattr(teacher, "vocab_size", 1))
        batch_size = max(1, min(batch_size, EVAL_LOGITS // max(width, 1)))
    for lo in range(0, n, batch_size):
        idx = torch.arange(lo, min(lo + batch_size, n))
        rows = {k: v[idx] for k, v in data.items()} if isinstance(data, dict) else data.take(idx, 0)
        batch = {k: v.to(device) for k, v in rows.items()}
        s = student(**model_inputs(batch)).float()  # (N, K) or (B, T, V)
        t = teacher(**model_inputs(batch)).float()
        keep = target_positions(s, batch["target"])
        keep = torch.ones(s.shape[:-1], dtype=torch.bool, device=device) if keep is None else keep
        m = int(keep.sum())
        kl_sum += float(softened_kl(s, t, 1.0, keep)) * m
        agree += int((s.argmax(-1) == t.argmax(-1))[keep].sum())
        count += m
    student.train(was_training)
    return {"kl_to_teacher": kl_sum / max(count, 1), "teacher_agreement": agree / max(count, 1),
            "compared": count}


def _record(result: RunResult, teacher: Bundle, settings: dict[str, Any], gap: dict[str, Any],
            bundle_json: bool = True) -> None:
    """Add the distillation to summary.json (and to the student's bundle.json)."""
    from practicum.train.checkpoint import atomic_write

    info = {"teacher": str(teacher.path), **settings,
            "teacher_params": _params(teacher.model), **gap}
    result.summary["distillation"] = info
    (result.run_dir / "summary.json").write_text(json.dumps(result.summary, indent=2), encoding="utf-8")
    if bundle_json:
        path = result.bundle / "bundle.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        data["distilled_from"] = str(teacher.path)
        data["distillation"] = {"teacher": str(teacher.path), **settings}
        text = json.dumps(data, indent=2)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    log.info("student vs teacher on %s: KL %.4f, agreement %.3f", gap.get("split"),
             gap.get("kl_to_teacher", float("nan")), gap.get("teacher_agreement", float("nan")))


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
