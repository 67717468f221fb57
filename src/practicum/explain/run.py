"""`practicum explain`: which views a bundle supports, the target class, one input at a time,
and the output folder (PNG files, explain.json with every number, index.html)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from practicum.bundle import Bundle
from practicum.errors import UserError
from practicum.explain.attributions import METHOD, METHODS

log = logging.getLogger(__name__)

VIEWS = ("attributions", "attention", "logit-lens")
"""attributions: integrated gradients (and saliency for images); attention: maps per layer and
head and rollout (Transformers); logit-lens: top next tokens per layer (causal LMs)."""


@dataclass
class ExplainOptions:
    """What to explain and how; the CLI's flags are these fields."""

    target: str | None = None
    """Class to explain (a label of the bundle); None = the predicted class."""
    views: list[str] | None = None
    """Subset of VIEWS; None = every view the bundle supports."""
    steps: int = 50
    """Integrated-gradients steps (points on the path from the baseline)."""
    max_inputs: int = 8
    """Explain at most this many inputs (the first ones)."""
    top_k: int = 5
    """Logit lens: next-token candidates kept per layer and position."""
    method: str = METHOD
    """Captum's quadrature: gausslegendre, riemann_left/right/middle/trapezoid."""

    def check(self) -> None:
        if isinstance(self.views, str):
            self.views = [self.views]
        if self.method not in METHODS:
            raise UserError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        for name in ("steps", "max_inputs", "top_k"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        unknown = [v for v in self.views or [] if v not in VIEWS]
        if unknown:
            raise UserError(f"unknown view {unknown[0]!r}; choose from {', '.join(VIEWS)}")


@dataclass
class Explanation:
    """The numbers of one `explain` call; `items` has one JSON-ready dict per input."""

    bundle: Path
    kind: str
    views: list[str]
    items: list[dict[str, Any]]
    labels: list[str] | None = None
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "kind": self.kind, "views": self.views,
                "labels": self.labels, "inputs": self.items,
                "files": [str(f.name) for f in self.files]}


def bundle_kind(bundle: Bundle) -> str:
    """text, image, tabular, causal_lm or masked_lm; other bundles get a UserError."""
    if bundle.is_language_model:
        return "causal_lm" if bundle.config.model.causal else "masked_lm"
    if bundle.tagging is not None or bundle.preprocessor is None:
        raise UserError(f"{bundle.path} is a {bundle.info.get('task')} bundle; explain takes "
                        "classifiers, regressors and language models")
    return str(bundle.preprocessor.kind)


def supported_views(bundle: Bundle, kind: str) -> list[str]:
    from practicum.explain.classifiers import text_views

    if kind == "causal_lm":
        return ["logit-lens", "attention"]
    if kind == "masked_lm":
        return ["attention"]
    if kind == "text":
        return text_views(bundle.model)
    return ["attributions"]


def is_quantized(model: torch.nn.Module) -> bool:
    """True when layers were swapped for int8/int4 ones (torch.ao, torchao, practicum.compress):
    those have no gradients, so no integrated gradients or saliency."""
    for m in model.modules():
        if "quantiz" in type(m).__module__ or type(m).__name__.startswith("Quantized"):
            return True
        if any("torchao" in type(p.data).__module__ for p in m.parameters(recurse=False)):
            return True
    return False


def choose_views(bundle: Bundle, kind: str, asked: list[str] | None) -> list[str]:
    supported = supported_views(bundle, kind)
    if "attributions" in supported and is_quantized(bundle.model):
        supported.remove("attributions")
        if not supported or (asked and "attributions" in asked):
            raise UserError(f"{bundle.path} is quantized and its int8/int4 layers have no gradients, "
                            "which attributions need; explain the original (float) bundle instead")
        log.warning("%s is quantized: no attributions (they need gradients); showing %s",
                    bundle.path, ", ".join(supported))
    if not asked:
        return supported
    for view in asked:
        if view not in supported:
            what = {"causal_lm": "causal language-model", "masked_lm": "masked language-model"}.get(
                kind, f"{bundle.config.model.type} {kind}")
            raise UserError(f"--view {view} is not available for this {what} bundle; "
                            f"it supports {', '.join(supported)}")
    return [v for v in supported if v in asked]


def target_index(bundle: Bundle, target: str | None, predicted: int) -> int:
    """The output to explain: the --target label's index, else the predicted class."""
    names = bundle.preprocessor.label_names
    if names is None:  # regression: one output
        if target not in (None, bundle.preprocessor.target):
            raise UserError(f"--target {target!r}: this is a regression bundle with one output "
                            f"({bundle.preprocessor.target}); drop --target")
        return 0
    if target is None:
        return predicted
    if str(target) in names:
        return names.index(str(target))
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} classes)" if len(names) > 20 else "")
    raise UserError(f"--target {target!r} is not a class of this bundle; its classes: {shown}")


def explain_bundle(bundle: Bundle, inputs: Any, options: ExplainOptions | None = None) -> Explanation:
    """Explain the first `max_inputs` inputs; nothing is written (see write_explanation)."""
    options = options or ExplainOptions()
    options.check()
    kind = bundle_kind(bundle)
    views = choose_views(bundle, kind, options.views)
    bundle.model.eval()
    if kind in ("causal_lm", "masked_lm"):
        items = _explain_prompts(bundle, inputs, views, options)
        return Explanation(bundle.path, kind, views, items)
    if options.target is not None:
        target_index(bundle, options.target, 0)  # an unknown label fails before any work
    items = _explain_records(bundle, kind, inputs, views, options)
    return Explanation(bundle.path, kind, views, items, bundle.preprocessor.label_names)


def _explain_prompts(bundle: Bundle, inputs: Any, views: list[str], options: ExplainOptions) -> list[dict]:
    from practicum.explain.language import explain_prompt

    prompts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise UserError("--input: a language model takes a text prompt (or a list of them)")
    if options.target is not None:
        raise UserError("--target names a class; language models have none: drop --target")
    if len(prompts) > options.max_inputs:
        log.info("explaining the first %d of %d prompts (--max-inputs)", options.max_inputs, len(prompts))
    items = []
    for i, prompt in enumerate(prompts[: options.max_inputs]):
        item = explain_prompt(bundle.model, bundle.tokenizer, prompt, views, options.top_k)
        items.append({"index": i, **item})
    return items


def _explain_records(bundle: Bundle, kind: str, inputs: Any, views: list[str],
                     options: ExplainOptions) -> list[dict]:
    from practicum.explain.classifiers import explain_image, explain_row, explain_text

    if inputs is None or (isinstance(inputs, list | tuple | str) and not inputs):
        raise UserError("--input is empty; give a text, a record, a list of them, or a file")
    batch, display, _ = bundle.preprocessor.load_inputs(inputs)
    n = min(len(display), options.max_inputs)
    if n == 0:
        raise UserError(f"--input {inputs!r} holds no rows to explain")
    if len(display) > n:
        log.info("explaining the first %d of %d inputs (--max-inputs)", n, len(display))
    device = next(bundle.model.parameters()).device
    batch = {k: v[:n].to(device) for k, v in batch.items() if k != "target"}
    outputs = bundle.outputs(batch)  # (n, num_outputs)
    records = bundle.task.predictions(outputs)
    encoder, items = bundle.preprocessor.inputs, []
    for i in range(n):
        if kind == "text" and not display[i].strip():
            raise UserError(f"input {i} is an empty text; give some text to explain")
        target = target_index(bundle, options.target, int(outputs[i].argmax()))
        one = {k: v[i : i + 1] for k, v in batch.items()}
        if kind == "text":
            width = max(int(one["mask"].sum()), 1)  # right padding: cut it off
            item = explain_text(bundle.model, encoder, one["tokens"][:, :width], one["mask"][:, :width],
                                target, views, options.steps, options.method, bundle.preprocessor.spec.pad_id)
        elif kind == "image":
            item = explain_image(bundle.model, encoder, one["image"], target, options.steps, options.method)
        else:
            item = explain_row(bundle.model, encoder, one["x"], one.get("x_cat"), target,
                               options.steps, options.method)
        names = bundle.preprocessor.label_names
        label = names[target] if names else bundle.preprocessor.target
        items.append({"index": i, "input": display[i], **records[i], "target": label,
                      "target_index": target, **item})
        items[-1]["summary"] = _summary(items[-1])
        _check_delta(i, item.get("attributions"))
    return items


def _check_delta(index: int, attr: dict[str, Any] | None) -> None:
    """A warning when the integral was approximated coarsely (delta over 5% of the gap)."""
    if attr is None:
        return
    gap = abs(attr["f_input"] - attr["f_baseline"])
    if abs(attr["delta"]) > 0.05 * gap + 1e-4:
        log.warning("input %d: the integrated-gradients delta %.3g is large next to f(input) - "
                    "f(baseline) = %.3g; raise --steps for a closer approximation",
                    index, attr["delta"], gap)


def _summary(item: dict[str, Any]) -> str:
    """One line: the prediction and the strongest positive and negative contributions."""
    pred = item["prediction"]
    head = f"{pred} ({item['confidence']:.3f})" if "confidence" in item else f"{pred:.4g}"
    attr = item.get("attributions")
    if attr is None:
        return f"-> {head}; target {item['target']}"
    if "tokens" not in item and "features" not in item:  # an image: the totals
        return (f"-> {head}; target {item['target']}: attributions sum {attr['sum']:.3g}, "
                f"f(input) - f(black) {attr['f_input'] - attr['f_baseline']:.3g} (delta {attr['delta']:.2g})")
    names = item.get("tokens") or item.get("features")
    scores = attr["scores"]
    order = sorted(range(len(scores)), key=lambda j: scores[j])
    plus = ", ".join(f"{names[j]} {scores[j]:+.3g}" for j in reversed(order[-3:]) if scores[j] > 0)
    minus = ", ".join(f"{names[j]} {scores[j]:+.3g}" for j in order[:2] if scores[j] < 0)
    return (f"-> {head}; target {item['target']}: + {plus or '(none)'} | - {minus or '(none)'} "
            f"(delta {attr['delta']:.2g})")


def default_out_dir(bundle_path: Path) -> Path:
    """<bundle>-explain next to the bundle folder."""
    return bundle_path.with_name(f"{bundle_path.name}-explain")


def write_explanation(result: Explanation, out_dir: Path | None = None) -> Explanation:
    """PNG files, explain.json and index.html into out_dir (default: <bundle>-explain)."""
    from practicum.explain.figures import draw_item
    from practicum.explain.page import write_page

    out = Path(out_dir) if out_dir is not None else default_out_dir(result.bundle)
    out.mkdir(parents=True, exist_ok=True)
    _remove_old_files(out)
    files: list[Path] = []
    for item in result.items:
        item["files"] = [p.name for p in draw_item(result.kind, item, out)]
        files += [out / name for name in item["files"]]
    result.out_dir, result.files = out, [*files, out / "explain.json", out / "index.html"]
    (out / "explain.json").write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
    write_page(result, out / "index.html")
    return result


def _remove_old_files(out: Path) -> None:
    """A second run into the same folder replaces the first: the files its explain.json lists."""
    old = out / "explain.json"
    if not old.is_file():
        return
    try:
        names = json.loads(old.read_text(encoding="utf-8")).get("files", [])
    except (json.JSONDecodeError, AttributeError):
        return
    for name in names:
        path = out / Path(str(name)).name
        if path.suffix in (".png", ".html", ".json") and path.is_file():
            path.unlink()


def explain(bundle: Bundle | str | Path, inputs: Any, options: ExplainOptions | None = None,
            out_dir: str | Path | None = None, write: bool = True) -> Explanation:
    """Explain inputs of a bundle and (write=True) write the PNGs, explain.json and index.html."""
    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    with torch.inference_mode(False):
        result = explain_bundle(b, inputs, options)
    return write_explanation(result, Path(out_dir) if out_dir else None) if write else result
