"""`compress`: distill -> prune -> quantize a bundle into a new bundle, then the trade-off table.

    result = compress("runs/transformer_text/bundle", quantize="int8")
    result = compress(bundle, prune=0.5, recover_epochs=1, quantize="int8", out="runs/small")
    result = compress(bundle, distill="transformer_text_student", temperature=2.0, alpha=0.5)

Every argument is checked before anything is computed or written. The new bundle (default: a
sibling folder `<bundle>-compressed`) holds the compressed weights, the parent's preprocessing
and, in bundle.json, "compression": {"parent", "steps"}; compress.json and compress.md in it
hold the trade-off table (the original and the compressed bundle, on the same data).
A distillation's student run folder goes beside it, at `<out>-student`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from practicum.errors import UserError

log = logging.getLogger(__name__)

SCOPES = ("global", "layer")
CALIBRATION_ROWS = 256
"""Training rows static-int8 calibrates its activation ranges on."""


@dataclass
class CompressResult:
    """The compressed bundle and its trade-off table."""

    bundle: Path
    table: dict[str, Any] = field(default_factory=dict)
    markdown: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Plan:
    """The checked arguments of one compress call."""

    prune: float | None = None
    structured: bool = False
    scope: str = "global"
    recover_epochs: float = 0.0
    quantize: str | None = None
    distill: Any = None
    temperature: float = 2.0
    alpha: float = 0.5
    overrides: list[str] = field(default_factory=list)


def compress(bundle: Any, *, prune: float | None = None, structured: bool = False, scope: str = "global",
             recover_epochs: float = 0.0, quantize: str | None = None, distill: Any = None,
             temperature: float | None = None, alpha: float | None = None,
             overrides: list[str] | None = None, data: str | Path | None = None, split: str | None = None,
             out: str | Path | None = None, repeats: int = 30) -> CompressResult:
    """Compress `bundle` (a path or a loaded Bundle) into a new bundle; see the module docstring.

    `overrides` (["train.lr=1e-4", ...]) go to the student recipe and the recovery fine-tune;
    `data`/`split` choose what the table scores on; `repeats` is the timed calls per latency.
    """
    from practicum.api import _fresh_dir
    from practicum.bundle import Bundle
    from practicum.compress.tradeoff import evaluation_for, measure, tradeoff, write_table

    plan = _plan(prune, structured, scope, recover_epochs, quantize, distill, temperature, alpha, overrides)
    source = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    _check_bundle(source, plan)
    evaluation = evaluation_for(source, data, split)  # unreadable data stops us before any work
    target = _fresh_dir(Path(out) if out else source.path.with_name(f"{source.path.name}-compressed"))
    current, model, steps = source, source.model, list((source.info.get("compression") or {}).get("steps", []))
    if plan.distill is not None:
        current, step = _distill(source, plan, target)
        model = current.model
        steps.append(step)
    if plan.prune is not None:
        model, step = _prune(current, plan)
        steps.append(step)
    if plan.quantize is not None:
        model, step = _quantize(current, model, plan.quantize)
        steps.append(step)
    from practicum.compress.store import save_compressed, write_metrics

    save_compressed(current, model, target, {"parent": str(source.path), "steps": steps})
    log.info("wrote the compressed bundle %s; measuring the trade-off", target)
    rows = [measure(source.path, evaluation, "original", repeats),
            measure(target, evaluation, describe(steps[-_new(plan):]), repeats)]
    table = tradeoff(rows, evaluation, repeats)
    table.update(original=str(source.path), compressed=str(target))
    write_metrics(target, {"evaluation": evaluation.name, **rows[1]["metrics"]})
    return CompressResult(target, table, write_table(target, table), steps)


# ---------------------------------------------------------------- checks


def _plan(prune: Any, structured: bool, scope: str, recover_epochs: Any, quantize: str | None,
          distill: Any, temperature: float | None, alpha: float | None, overrides: list[str] | None) -> Plan:
    from practicum.compress.quantize import SCHEMES

    if prune is None and quantize is None and distill is None:
        raise UserError("nothing to do: give --prune AMOUNT, --quantize SCHEME and/or --distill STUDENT_RECIPE")
    if prune is not None and (isinstance(prune, bool) or not isinstance(prune, (int, float)) or not 0 < prune < 1):
        raise UserError(f"--prune {prune!r} must be a fraction between 0 and 1 (exclusive), e.g. 0.5")
    if prune is None and (structured or scope != "global" or recover_epochs):
        raise UserError("--structured, --scope and --recover-epochs shape pruning; add --prune AMOUNT")
    if scope not in SCOPES:
        raise UserError(f"--scope {scope!r} is not one of {', '.join(SCOPES)}")
    if isinstance(recover_epochs, bool) or not isinstance(recover_epochs, (int, float)) or recover_epochs < 0:
        raise UserError(f"--recover-epochs {recover_epochs!r} must be a number >= 0")
    if quantize is not None and quantize not in SCHEMES:
        raise UserError(f"--quantize {quantize!r} is not a scheme; use one of {', '.join(SCHEMES)}")
    if distill is None and (temperature is not None or alpha is not None):
        raise UserError("--temperature and --alpha set the distillation loss; add --distill STUDENT_RECIPE")
    if temperature is not None and not temperature > 0:
        raise UserError(f"--temperature {temperature} must be > 0 (2.0 softens the teacher's outputs)")
    if alpha is not None and not 0 <= alpha <= 1:
        raise UserError(f"--alpha {alpha} must be between 0 and 1 (the weight of the teacher's loss)")
    if overrides and distill is None and not recover_epochs:
        raise UserError(f"overrides ({overrides[0]} ...) configure the student (--distill) or the recovery "
                        "fine-tune (--recover-epochs); give one of them or drop the overrides")
    return Plan(prune, structured, scope, float(recover_epochs), quantize, distill,
                2.0 if temperature is None else float(temperature), 0.5 if alpha is None else float(alpha),
                list(overrides or []))


def _check_bundle(bundle: Any, plan: Plan) -> None:
    """The compressions this bundle can take; a second quantization is refused."""
    from practicum.compress.quantize import check_scheme
    from practicum.compress.store import quantize_step

    task = bundle.info.get("task")
    if bundle.tagging is not None or task not in ("classification", "regression", "causal_lm", "masked_lm"):
        raise UserError(f"{bundle.path} is a {task} bundle; compress takes classifiers, regressors "
                        "and language models")
    done = quantize_step(bundle.info)
    if done is not None:
        raise UserError(f"{bundle.path} is already quantized ({done['scheme']}); compress its parent "
                        f"{bundle.info['compression'].get('parent')} instead, with every step at once")
    if plan.quantize is not None:
        model_type = bundle.config.model.type
        if plan.distill is not None:  # the student's architecture decides
            from practicum.api import resolve_config

            model_type = resolve_config(plan.distill, plan.overrides).model.type
        check_scheme(plan.quantize, task, model_type, bundle.is_language_model)


def _new(plan: Plan) -> int:
    """How many steps this call adds."""
    return sum(x is not None for x in (plan.distill, plan.prune, plan.quantize))


# ---------------------------------------------------------------- the steps


def _distill(teacher: Any, plan: Plan, target: Path) -> tuple[Any, dict[str, Any]]:
    from practicum.bundle import Bundle
    from practicum.compress.distill import distill_bundle

    run_dir = target.with_name(f"{target.name}-student")
    result = distill_bundle(teacher, plan.distill, plan.overrides, run_dir,
                            temperature=plan.temperature, alpha=plan.alpha)
    student = Bundle.load(result.bundle)
    step = {"step": "distill", "teacher": str(teacher.path), "student_recipe": str(plan.distill),
            "overrides": plan.overrides, "temperature": plan.temperature, "alpha": plan.alpha,
            "student_run": str(result.run_dir), "student_parameters": _parameters(student.model),
            "teacher_parameters": _parameters(teacher.model)}
    return student, step


def _prune(bundle: Any, plan: Plan) -> tuple[nn.Module, dict[str, Any]]:
    from practicum.compress.prune import prune_bundle

    model, report = prune_bundle(bundle, plan.prune, structured=plan.structured, scope=plan.scope,
                                 recover_epochs=plan.recover_epochs,
                                 overrides=plan.overrides if plan.recover_epochs else None)
    return model, {"step": "prune", "amount": plan.prune, "structured": plan.structured,
                   "scope": plan.scope, "recover_epochs": plan.recover_epochs, **report}


def _quantize(bundle: Any, model: nn.Module, scheme: str) -> tuple[nn.Module, dict[str, Any]]:
    from practicum.compress.quantize import quantize_model

    calibration = _calibration(bundle) if scheme == "static-int8" else None
    return quantize_model(model, scheme, calibration)


def _calibration(bundle: Any) -> torch.Tensor:
    """CALIBRATION_ROWS preprocessed training images (a seeded draw) for static-int8."""
    from practicum.data import raw_split

    raw = raw_split(bundle.config.data, bundle.config.task, "train")
    images = bundle.preprocessor.transform(raw, with_target=False)["image"]  # (N, C, H, W)
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:CALIBRATION_ROWS]
    return images[pick.sort().values]


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def describe(steps: list[dict[str, Any]]) -> str:
    """A short name for a chain of steps: 'distill + prune 50% + recovery + int8'."""
    parts = []
    for step in steps:
        if step["step"] == "distill":
            parts.append(f"distill ({Path(str(step['student_recipe'])).stem})")
        elif step["step"] == "prune":
            kind = "structured " if step.get("structured") else ""
            parts.append(f"prune {kind}{100 * step['amount']:g}% {step.get('scope', 'global')}")
            if step.get("recover_epochs"):
                parts.append("recovery")
        elif step["step"] == "quantize":
            parts.append(step["scheme"])
    return " + ".join(parts) or "compressed"
