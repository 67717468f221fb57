"""Export a bundle (onnx, torchscript, hf, peft), then check that the export computes what the
bundle computes.

    practicum export runs/x/bundle --format onnx       # -> runs/x/bundle-onnx/

The output folder holds a copy of the bundle's files (bundle.json, preprocess.json or
tokenizer.json, metrics.json), the artifact (model.onnx, model.torchscript.pt, the Hugging
Face or PEFT files) and export.json (format, opset, inputs, outputs, dynamic axes, parity,
latency, versions). The parity check runs the artifact (onnxruntime, torch.jit.load,
transformers, peft) on inputs from the bundle's own data (its test split; language models:
text through their tokenizer) at two batch sizes and two sequence lengths that the export
never saw, and compares with the PyTorch bundle: the export fails, and its folder is removed,
when the largest absolute difference exceeds the tolerance (1e-4 for float32).
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from practicum.bundle import Bundle
from practicum.compress import export_formats as formats
from practicum.compress.export_samples import Batch, example_batch, sample_batches
from practicum.errors import UserError

log = logging.getLogger(__name__)

FORMATS = ("onnx", "hf", "peft", "torchscript")
TOLERANCE = 1e-4
"""Largest absolute difference allowed between a float32 export's outputs and the bundle's."""
LATENCY_RUNS, LATENCY_WARMUP = 50, 5
BUNDLE_FILES = ("bundle.json", "preprocess.json", "tokenizer.json", "metrics.json")


@dataclass
class ExportResult:
    """Where the export went and how it compared with the bundle."""

    path: Path
    format: str
    parity: dict[str, Any] = field(default_factory=dict)
    """max_abs_diff, tolerance, inputs (rows checked), batches, compared, ok; {"checked": False} if skipped"""
    latency: dict[str, Any] | None = None
    """batch-1 milliseconds, {"torch": {"p50", "p95"}, "onnxruntime"/"torchscript": {...}, ...}"""
    info: dict[str, Any] = field(default_factory=dict)  # the whole export.json


def export_bundle(bundle: str | Path | Bundle, fmt: str, out: str | Path | None = None, *,
                  check: bool = True, opset: int | None = None, tolerance: float | None = None,
                  latency_runs: int = LATENCY_RUNS) -> ExportResult:
    """Export `bundle` as fmt (onnx, hf, peft, torchscript) into `out` (default: the sibling
    folder `<bundle>-<fmt>`), then check parity on sample inputs (check=False skips it) and, for
    onnx and torchscript, measure batch-1 latency beside PyTorch's (latency_runs=0 skips it)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    tol = TOLERANCE if tolerance is None else float(tolerance)
    if not tol >= 0:
        raise UserError(f"--tolerance must be a number >= 0, got {tolerance}")
    if opset is not None and fmt != "onnx":
        raise UserError(f"--opset applies to --format onnx, not {fmt}")
    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    if b.tagging is not None:
        raise UserError(f"{b.path} is a token-classification bundle, which export does not handle yet; "
                        "it exports classifiers, regressors and language models")
    _refuse_quantized(b, fmt)
    target = _out_folder(b, fmt, out)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        result = _export_into(b, fmt, staging, check, opset, tol, latency_runs)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)  # an earlier export of this bundle (checked in _out_folder)
    staging.rename(target)
    result.path = target
    return result


def _export_into(b: Bundle, fmt: str, folder: Path, check: bool, opset: int | None, tol: float,
                 runs: int) -> ExportResult:
    for name in BUNDLE_FILES:
        if (b.path / name).is_file():
            shutil.copy2(b.path / name, folder / name)
    samples = sample_batches(b)
    log.info("exporting %s as %s into %s", b.path, fmt, folder.name.removeprefix(".").removesuffix(".partial"))
    artifact, runner, reference, compared = _write(b, fmt, folder, samples, opset)
    parity: dict[str, Any] = {"checked": False}
    latency = None
    if check:
        run = runner()
        parity = compare(reference, run, samples, tol, compared)
        line = parity_line(parity)
        if not parity["ok"]:
            raise UserError(f"{fmt} export of {b.path} failed the parity check: {line}; "
                            "the export was removed")
        log.info(line)
        if runs > 0 and fmt in ("onnx", "torchscript"):
            latency = measure_latency(reference, run, samples[0], runs, fmt)
    info = {"format": fmt, "bundle": str(b.path.resolve()), "task": b.info.get("task"),
            "model_type": b.info.get("model_type"), **artifact, "parity": parity, "latency": latency,
            "versions": versions(), "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    (folder / "export.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return ExportResult(folder, fmt, parity, latency, info)


def _write(b: Bundle, fmt: str, folder: Path, samples: list[Batch], opset: int | None
           ) -> tuple[dict[str, Any], Any, Any, str]:
    """Write the artifact; returns (export.json fields, a maker of the export's runner, the
    bundle's reference runner, what is compared)."""
    names = [n for n in samples[0] if n != "target"]
    if fmt in ("onnx", "torchscript"):
        fwd = formats.GraphForward(b.model, names).eval()
        example = tuple(example_batch(samples)[n] for n in names)
        reference = _reference(b.model, names)
        out_name = "outputs" if b.info.get("task") == "regression" else "logits"
        if fmt == "onnx":
            art = formats.write_onnx(fwd, example, folder, b.is_language_model, opset, out_name)
            return art, lambda: formats.onnx_runner(folder), reference, out_name
        art = formats.write_torchscript(fwd, example, folder, out_name)
        return art, lambda: formats.torchscript_runner(folder, names), reference, out_name
    backbone, tokenizer = formats.hf_backbone(b, fmt)
    classifier = not b.is_language_model
    if fmt == "hf":
        kind = formats.hf_kind(backbone, classifier)
        art = formats.write_hf(backbone, tokenizer, folder)
        if classifier:
            art["note"] = ("the classifier's pretrained backbone was exported (hidden states "
                           "compared); its task head is not part of a Hugging Face base model")
        return art, lambda: formats.hf_runner(folder, kind), formats.ours(backbone, kind), kind
    art = formats.write_peft(b, backbone, folder)  # on an LM bundle, puts its LoRA layers back
    kind = "causal_logits" if backbone.cfg.causal else "hidden"
    return art, lambda: formats.peft_runner(backbone, folder, kind), formats.ours(backbone, kind), kind


def _reference(model: torch.nn.Module, names: list[str]) -> Any:
    """The bundle's own PyTorch model as a function of a batch (its real forward)."""
    def run(batch: Batch) -> Tensor:
        with torch.no_grad():
            out = model(**{n: batch[n] for n in names})
        return (out[0] if isinstance(out, tuple) else out).float()
    return run


# ---------------------------------------------------------------- parity and latency


def compare(reference: Any, runner: Any, samples: list[Batch], tol: float, compared: str) -> dict[str, Any]:
    """Largest absolute difference over every sample batch; sequence outputs count real
    (mask True) positions only, since padding positions are free to differ."""
    worst, rows, per_batch = 0.0, 0, []
    for batch in samples:
        ref, got = reference(batch), runner(batch)
        if ref.shape != got.shape:
            raise UserError(f"the export gives outputs of shape {tuple(got.shape)} where the bundle "
                            f"gives {tuple(ref.shape)} (inputs {_shapes(batch)})")
        diff = (ref - got).abs()
        if diff.dim() == 3 and "mask" in batch:
            diff = diff[batch["mask"].bool()]
        d = float(diff.max()) if diff.numel() else 0.0
        d = d if np.isfinite(d) else float("inf")
        worst, rows = max(worst, d), rows + len(ref)
        per_batch.append({"inputs": _shapes(batch), "max_abs_diff": d})
    return {"max_abs_diff": worst, "tolerance": tol, "inputs": rows, "batches": per_batch,
            "compared": compared, "ok": worst <= tol}


def parity_line(parity: dict[str, Any]) -> str:
    """'parity: max abs diff 3.1e-06 (tolerance 1e-04) on 12 inputs: ok'."""
    verdict = "ok" if parity["ok"] else "FAILED"
    return (f"parity: max abs diff {parity['max_abs_diff']:.1e} (tolerance {parity['tolerance']:.0e}) "
            f"on {parity['inputs']} inputs: {verdict}")


def measure_latency(reference: Any, runner: Any, batch: Batch, runs: int, fmt: str) -> dict[str, Any]:
    """Batch-1 p50/p95 milliseconds of the PyTorch bundle and of the export, on one sample row."""
    one = {k: v[:1] for k, v in batch.items()}
    name = "onnxruntime" if fmt == "onnx" else "torchscript"
    out = {"batch_size": 1, "runs": runs, "threads": torch.get_num_threads(),
           "inputs": _shapes(one), "torch": timed(reference, one, runs), name: timed(runner, one, runs)}
    out["speedup_p50"] = round(out["torch"]["p50"] / max(out[name]["p50"], 1e-9), 2)
    return out


def timed(fn: Any, batch: Batch, runs: int) -> dict[str, float]:
    """p50 and p95 milliseconds of fn(batch) over `runs` calls after LATENCY_WARMUP calls."""
    for _ in range(LATENCY_WARMUP):
        fn(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(batch)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50": round(float(np.percentile(times, 50)), 4), "p95": round(float(np.percentile(times, 95)), 4)}


def versions() -> dict[str, str]:
    """Versions of the libraries that wrote and checked the export."""
    import importlib.metadata as md

    from practicum import __version__

    out = {"practicum": __version__, "torch": torch.__version__, "python": platform.python_version()}
    for name in ("onnx", "onnxscript", "onnxruntime", "transformers", "peft"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


# ---------------------------------------------------------------- helpers


def _out_folder(b: Bundle, fmt: str, out: str | Path | None) -> Path:
    target = Path(out) if out is not None else b.path.with_name(f"{b.path.name}-{fmt}")
    if target.resolve() == b.path.resolve():
        raise UserError(f"--out {target} is the bundle itself; choose another folder")
    if target.is_file() or (target.is_dir() and any(target.iterdir()) and not (target / "export.json").is_file()):
        raise UserError(f"--out {target} already holds other files; choose another folder or remove it")
    return target


def _refuse_quantized(b: Bundle, fmt: str) -> None:
    """Quantized PyTorch modules have no ONNX or Hugging Face form; say what to do instead."""
    steps = (b.info.get("compression") or {}).get("steps") or []
    scheme = next((s.get("scheme") for s in steps if s.get("step") == "quantize"), None)
    if scheme is not None and fmt != "torchscript":
        raise UserError(f"{b.path} holds {scheme}-quantized weights, which --format {fmt} cannot "
                        "express; export the float bundle it was made from (then quantize the ONNX "
                        "model with onnxruntime.quantization), or use --format torchscript")


def _shapes(batch: Batch) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in batch.items()}
