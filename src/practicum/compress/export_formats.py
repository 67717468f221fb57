"""The export formats: each writes its artifact into a folder and loads it back as a function
of a batch (dict of tensors -> one tensor) for the parity check in export.py.

    onnx         model.onnx (torch.onnx.export, dynamic batch and sequence axes), run by onnxruntime
    torchscript  model.torchscript.pt (torch.jit.trace), run by torch.jit.load
    hf           config.json + model.safetensors + tokenizer files (models/hf.py), run by transformers
    peft         adapter_config.json + adapter_model.safetensors (peft/export.py), run by peft.PeftModel

ONNX goes through the dynamo exporter (torch.export + onnxscript) first: on torch 2.13 it
exports the Transformer classifier, whose mask code (`keys[:, 0] |= ...`) the TorchScript-based
exporter rejects (no ONNX symbolic for aten::__ior_), and the CNNs, MLPs, pretrained-backbone
classifiers and language models. Recurrent classifiers go through the TorchScript-based exporter
(dynamo=False) instead: torch.export cannot trace pack_padded_sequence, while that exporter maps
packed sequences onto ONNX's LSTM/GRU/RNN with sequence lengths. Either falls back to the other.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from practicum.errors import UserError
from practicum.models.pretrained import PretrainedClassifier, pool
from practicum.models.rnn import RNNClassifier

log = logging.getLogger(__name__)
REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"

Batch = dict[str, Tensor]
Runner = Callable[[Batch], Tensor]

SEQUENCE_INPUTS = ("tokens", "mask")
"""Inputs with a sequence axis (dim 1) besides the batch axis (dim 0)."""
ONNX_FILE, TORCHSCRIPT_FILE = "model.onnx", "model.torchscript.pt"
DEFAULT_OPSET = {"dynamo": 18, "torchscript": 17}
EXTERNAL_DATA_BYTES = 1_800_000_000
"""Above this many bytes of weights model.onnx keeps them in model.onnx.data (protobuf's 2 GB limit)."""


class GraphForward(nn.Module):
    """The bundle's model with positional inputs in a fixed order and one tensor out: what the
    exporters trace. A pretrained-backbone classifier skips its data-dependent cut of
    all-padding columns (the same outputs, since padded keys are masked), which would fix the
    sequence length in a graph; a language model gives its logits only (no NSP head, no cache)."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *inputs: Tensor) -> Tensor:
        kwargs = dict(zip(self.names, inputs, strict=True))
        if isinstance(self.model, PretrainedClassifier):
            return pretrained_logits(self.model, kwargs["tokens"], kwargs["mask"])
        out = self.model(**kwargs)
        return out[0] if isinstance(out, tuple) else out


def pretrained_logits(model: PretrainedClassifier, tokens: Tensor, mask: Tensor) -> Tensor:
    """PretrainedClassifier.forward over the full padded width: (B, T) -> (B, num_outputs)."""
    mask = mask.bool()
    prefix, P = model.prompt, 0
    if prefix is not None:
        P = prefix.size(0)
        keep = model.backbone.cfg.block_size - P
        tokens, mask = tokens[:, :keep], mask[:, :keep]
        mask = torch.cat((torch.ones_like(mask[:, :1]).expand(-1, P), mask), dim=1)  # (B, P + T)
    states = model.backbone.hidden_states(tokens, mask=mask, prefix=prefix)  # (B, P + T, C)
    states, mask = states[:, P:], mask[:, P:]
    return model.head(model.drop(pool(states, mask, model.pooling)))  # (B, num_outputs)


def dynamic_axes(names: list[str], sequence_out: bool, out_name: str) -> dict[str, dict[int, str]]:
    """Input and output name -> {axis: name}: batch everywhere, sequence on tokens/mask
    (and on a language model's logits)."""
    axes = {n: {0: "batch", 1: "sequence"} if n in SEQUENCE_INPUTS else {0: "batch"} for n in names}
    axes[out_name] = {0: "batch", 1: "sequence"} if sequence_out else {0: "batch"}
    return axes


# ---------------------------------------------------------------- onnx


def write_onnx(fwd: GraphForward, example: tuple[Tensor, ...], folder: Path, sequence_out: bool,
               opset: int | None, out_name: str = "logits") -> dict[str, Any]:
    """model.onnx with dynamic axes; tries the exporters in order of preference and says which
    one wrote it. Raises a UserError naming both failures when none can."""
    import_onnx()
    names = fwd.names
    order = ["torchscript", "dynamo"] if isinstance(fwd.model, RNNClassifier) else ["dynamo", "torchscript"]
    failures = []
    for exporter in order:
        try:
            _onnx_export(exporter, fwd, example, folder / ONNX_FILE, sequence_out, opset, out_name)
            break
        except Exception as exc:  # the exporters raise many kinds; the next one may succeed
            failures.append(f"{exporter}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            log.warning("the %s ONNX exporter failed (%s); trying the next one", exporter, failures[-1])
            (folder / ONNX_FILE).unlink(missing_ok=True)
    else:
        raise UserError(f"could not export {type(fwd.model).__name__} to ONNX ({'; '.join(failures)}); "
                        "try --format torchscript")
    import onnx

    proto = onnx.load(str(folder / ONNX_FILE), load_external_data=False)
    return {"file": ONNX_FILE, "exporter": exporter, "exporter_failures": failures,
            "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
            "inputs": [i.name for i in proto.graph.input], "outputs": [o.name for o in proto.graph.output],
            "dynamic_axes": {k: {str(a): v for a, v in d.items()}
                             for k, d in dynamic_axes(names, sequence_out, out_name).items()}}


def _onnx_export(exporter: str, fwd: GraphForward, example: tuple[Tensor, ...], path: Path,
                 sequence_out: bool, opset: int | None, out_name: str) -> None:
    names = fwd.names
    axes = dynamic_axes(names, sequence_out, out_name)
    common = dict(input_names=names, output_names=[out_name], opset_version=opset or DEFAULT_OPSET[exporter])
    quiet = io.StringIO()  # the exporters print progress; a library logs instead
    with torch.no_grad(), contextlib.redirect_stdout(quiet), warnings.catch_warnings(), _quiet_loggers():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
            shapes = tuple({0: batch, 1: seq} if n in SEQUENCE_INPUTS else {0: batch} for n in names)
            big = sum(p.numel() * p.element_size() for p in fwd.parameters()) > EXTERNAL_DATA_BYTES
            torch.onnx.export(fwd, example, str(path), dynamo=True, dynamic_shapes=(shapes,),
                              external_data=big, verbose=False, **common)
        else:
            torch.onnx.export(fwd, example, str(path), dynamo=False, dynamic_axes=axes, **common)
    log.debug("%s exporter output: %s", exporter, quiet.getvalue().strip())


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """The dynamo exporter's optimizer logs every rewrite at INFO; keep those to warnings, and
    drop its registry's warnings about torchvision ops (not installed, not used)."""
    names = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", REGISTRY_LOGGER)
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        floor = logging.ERROR if lg.name == REGISTRY_LOGGER else logging.WARNING
        lg.setLevel(max(lg.getEffectiveLevel(), floor))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def onnx_runner(folder: Path) -> Runner:
    from practicum.compress.onnx_runtime import onnx_session, run_session

    session = onnx_session(folder / ONNX_FILE)
    return lambda batch: run_session(session, batch)


def import_onnx() -> Any:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise UserError("onnx and onnxscript are not installed; pip install 'practicum[compress]'") from None
    return onnx


# ---------------------------------------------------------------- torchscript


def write_torchscript(fwd: GraphForward, example: tuple[Tensor, ...], folder: Path,
                      out_name: str = "logits") -> dict[str, Any]:
    """model.torchscript.pt: torch.jit.trace of the model (deprecated in favour of torch.export
    since torch 2.9, but still the format that C++ libtorch and older runtimes load)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings and the deprecation notice
        traced = torch.jit.trace(fwd, example, check_trace=False)
        traced.save(str(folder / TORCHSCRIPT_FILE))
    return {"file": TORCHSCRIPT_FILE, "inputs": fwd.names, "outputs": [out_name], "method": "torch.jit.trace"}


def torchscript_runner(folder: Path, names: list[str]) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(folder / TORCHSCRIPT_FILE), map_location="cpu").eval()

    def run(batch: Batch) -> Tensor:
        with torch.no_grad():
            return module(*(batch[n] for n in names)).float()

    return run


# ---------------------------------------------------------------- hf and peft


def hf_backbone(bundle: Any, fmt: str) -> tuple[nn.Module, Any]:
    """(the TransformerLM that a Hugging Face folder holds, its tokenizer) of an LM bundle or of
    a classifier fine-tuned from one; a UserError for every other bundle."""
    if bundle.is_language_model:
        return bundle.model, bundle.tokenizer
    if isinstance(bundle.model, PretrainedClassifier):
        return bundle.model.backbone, bundle.preprocessor.inputs.tokenizer
    task, kind = bundle.info.get("task"), bundle.info.get("model_type")
    raise UserError(f"{bundle.path} is a {task} bundle (model.type {kind}); "
                    f"--format {fmt} needs a language model or a classifier fine-tuned from one "
                    "(model.type pretrained); export this one with --format onnx or torchscript")


def hf_kind(backbone: nn.Module, classifier: bool) -> str:
    """What the Hugging Face twin is compared on: causal-LM logits, masked-LM logits, or the last
    hidden states (a classifier's backbone: the task head is not part of a Hugging Face base)."""
    if classifier:
        return "hidden"
    return "causal_logits" if backbone.cfg.causal else "masked_logits"


def ours(backbone: nn.Module, kind: str) -> Runner:
    """Our backbone's outputs of the given kind."""
    def run(batch: Batch) -> Tensor:
        with torch.no_grad():
            if kind == "hidden":
                return backbone.hidden_states(batch["tokens"], mask=batch["mask"])
            out = backbone(batch["tokens"], mask=batch["mask"])
            return out[0] if isinstance(out, tuple) else out
    return run


@contextlib.contextmanager
def bert_layout(backbone: nn.Module) -> Iterator[bool]:
    """Let a BERT classifier's encoder pass for a BertForMaskedLM while inside: Hugging Face's BERT
    layout has a masked-LM head transform, which a task model's backbone drops, so a freshly
    initialised one is lent (AutoModel/BertModel and PEFT's adapters never read it). Yields
    whether it lent one."""
    cfg = backbone.cfg
    if cfg.causal or cfg.head_transform:
        yield False
        return
    from practicum.models.lm import make_norm

    backbone.cfg = cfg.model_copy(update={"head_transform": True})
    backbone.head_dense, backbone.head_norm = nn.Linear(cfg.n_embd, cfg.n_embd), make_norm(cfg)
    try:
        yield True
    finally:
        backbone.cfg, backbone.head_dense, backbone.head_norm = cfg, None, None


def write_hf(backbone: nn.Module, tokenizer: Any, folder: Path) -> dict[str, Any]:
    from practicum.models.hf import export_hf

    with bert_layout(backbone) as lent:
        export_hf(backbone, tokenizer, folder)
    art: dict[str, Any] = {"files": ["config.json", "model.safetensors", "tokenizer.json"]}
    if lent:
        art["mlm_head"] = "freshly initialised: the classifier's encoder has none (AutoModel ignores it)"
    return art


def hf_runner(folder: Path, kind: str, adapter: Path | None = None) -> Runner:
    """The transformers model in `folder` (with the PEFT adapter in `adapter` on top)."""
    transformers = import_transformers()
    cls = {"hidden": transformers.AutoModel, "causal_logits": transformers.AutoModelForCausalLM,
           "masked_logits": transformers.AutoModelForMaskedLM}[kind]
    verbosity, bars = transformers.logging.get_verbosity(), transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # not the table of unused head weights
    transformers.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = cls.from_pretrained(str(folder), local_files_only=True).eval()
            if adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter)).eval()
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()

    def run(batch: Batch) -> Tensor:
        with torch.no_grad():
            out = model(input_ids=batch["tokens"], attention_mask=batch["mask"].long())
        return (out.last_hidden_state if kind == "hidden" else out.logits).float()

    return run


def write_peft(bundle: Any, backbone: nn.Module, folder: Path) -> dict[str, Any]:
    from practicum.api import export_peft

    with bert_layout(backbone):
        export_peft(bundle, folder)
    return {"files": ["adapter_config.json", "adapter_model.safetensors"]}


def peft_runner(backbone: nn.Module, folder: Path, kind: str) -> Runner:
    """peft.PeftModel with the exported adapter on a Hugging Face base made from the bundle's own
    base weights (the adapters unmerged); kind: causal_logits (PEFT's CAUSAL_LM) or hidden
    (FEATURE_EXTRACTION)."""
    from practicum.models.hf import export_hf
    from practicum.peft import merge_lora, unmerge_lora

    try:
        import peft  # noqa: F401
    except ImportError:
        raise UserError("the peft library is not installed; pip install 'practicum[hf]'") from None
    with tempfile.TemporaryDirectory() as tmp:
        unmerge_lora(backbone)
        try:
            with bert_layout(backbone):
                export_hf(backbone, None, Path(tmp) / "base")
        finally:
            merge_lora(backbone)
        return hf_runner(Path(tmp) / "base", kind, adapter=folder)


def import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise UserError("transformers is not installed; pip install 'practicum[hf]'") from None
    return transformers
