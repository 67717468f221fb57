"""Quantization of a bundle's model to int8 (or int4) weights.

    int8         dynamic quantization (torch.ao): nn.Linear with per-channel int8 weights and
                 nn.LSTM/GRU with per-tensor int8 weights; activations are quantized on the fly
                 at each call, so it needs no calibration. Classifiers and regressors.
    static-int8  post-training static quantization (FX graph mode, the x86/fbgemm engine) of a
                 CNN: conv/linear weights per channel, activations per tensor with ranges
                 calibrated on a few hundred training rows; conv + batch norm + ReLU fused.
    int8-weight  weight-only int8 via torchao (Int8WeightOnlyConfig: one scale per output row);
                 activations stay float. Language models (generation keeps working).
    int4-weight  torchao's Int4WeightOnlyConfig, where this machine's torchao can run it.

Every scheme also stores the embedding tables as weight-only int8 (QuantizedEmbedding, one
scale per row): a text model's vocabulary table is most of its weights.

`quantize_model` quantizes a float model and says what it did (a JSON-able record);
`quantized_structure` builds the same quantized structure from a float model of the same
architecture, with placeholder values that practicum.compress.store fills from the stored
integers, so a loaded bundle IS quantized and gives the outputs the saved model gave.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from practicum.errors import UserError

log = logging.getLogger(__name__)

SCHEMES = ("int8", "static-int8", "int8-weight", "int4-weight")
LM_SCHEMES = ("int8-weight", "int4-weight")
CNN_TYPES = ("lenet", "resnet")
CALIBRATION_BATCH = 64


# ---------------------------------------------------------------- embeddings


class QuantizedEmbedding(nn.Module):
    """An embedding table stored as int8 with one float scale per row (symmetric, weight-only).

    A lookup gathers the int8 rows and their scales and multiplies; `weight` gives the whole
    dequantized table for code that reads it directly (position tables, tied heads).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.register_buffer("qweight", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(num_embeddings))

    @classmethod
    def from_float(cls, embedding: nn.Embedding) -> QuantizedEmbedding:
        out = cls(embedding.num_embeddings, embedding.embedding_dim, embedding.padding_idx)
        weight = embedding.weight.detach().float().cpu()  # (V, C)
        scale = weight.abs().amax(dim=1) / 127.0  # (V,)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero
        out.qweight.copy_(torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        out.scale.copy_(scale)
        return out.to(embedding.weight.device)

    @property
    def weight(self) -> Tensor:
        return self.qweight.float() * self.scale[:, None]  # (V, C)

    def forward(self, ids: Tensor) -> Tensor:
        rows = F.embedding(ids, self.qweight).float()  # (..., C)
        return rows * self.scale[ids].unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 per-row scales"


def quantize_embeddings(model: nn.Module) -> list[str]:
    """Replace every nn.Embedding of `model` by a QuantizedEmbedding; returns their names."""
    names = [name for name, m in model.named_modules() if type(m) is nn.Embedding]
    for name in names:
        parent, _, leaf = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, leaf, QuantizedEmbedding.from_float(getattr(owner, leaf)))
    return names


# ---------------------------------------------------------------- checks


def check_scheme(scheme: str, task: str | None, model_type: str, is_lm: bool) -> None:
    """A clear error for a scheme this bundle cannot take (before anything is computed)."""
    if scheme not in SCHEMES:
        raise UserError(f"--quantize {scheme!r} is not a scheme; use one of {', '.join(SCHEMES)}")
    if is_lm and scheme not in LM_SCHEMES:
        raise UserError(f"--quantize {scheme} is for classifiers; this is a language model "
                        f"({task}): use --quantize int8-weight")
    if not is_lm and scheme in LM_SCHEMES:
        raise UserError(f"--quantize {scheme} is weight-only quantization for language models; "
                        f"for this {task} bundle use --quantize int8"
                        + (" or static-int8" if model_type in CNN_TYPES else ""))
    if scheme == "static-int8" and model_type not in CNN_TYPES:
        raise UserError(f"--quantize static-int8 quantizes CNNs ({', '.join(CNN_TYPES)}); this bundle "
                        f"is a {model_type} model: use --quantize int8 (dynamic) for it")
    if task not in ("classification", "regression", "causal_lm", "masked_lm"):
        raise UserError(f"quantization takes classifier, regressor and language-model bundles, "
                        f"not {task} ones")
    if scheme == "int4-weight":
        with quiet():
            _require_int4(import_torchao())


# ---------------------------------------------------------------- the entry points


def quantize_model(model: nn.Module, scheme: str,
                   calibration: Tensor | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A quantized copy of `model` (eval mode) and the record of what was done.

    `calibration` (static-int8 only): preprocessed training images (N, C, H, W).
    """
    if scheme == "static-int8" and calibration is None:
        raise ValueError("static-int8 needs calibration images")
    example = None if calibration is None else [1, *calibration.shape[1:]]
    quantized = _build(model, scheme, example, calibration)
    record: dict[str, Any] = {"step": "quantize", "scheme": scheme, **_describe_scheme(scheme)}
    if calibration is not None:
        record.update(calibration_rows=len(calibration), example_shape=example)
    record.update(_layers(quantized))
    record["versions"] = _versions(scheme)
    log.info("quantized (%s): %d layers int8, %d kept float", scheme,
             len(record["quantized_layers"]), len(record["float_layers"]))
    return quantized, record


def quantized_structure(model: nn.Module, record: dict[str, Any]) -> nn.Module:
    """The structure `quantize_model` gave for this record, built from a float model of the
    same architecture; its values are placeholders until practicum.compress.store fills them."""
    scheme = record.get("scheme")
    if scheme not in SCHEMES:
        raise UserError(f"bundle.json: unknown quantization scheme {scheme!r}; upgrade practicum")
    return _build(model, scheme, record.get("example_shape"), None)


def _build(model: nn.Module, scheme: str, example: list[int] | None,
           calibration: Tensor | None) -> nn.Module:
    model = _float_copy(model)
    with quiet():
        if scheme == "int8":
            model = _dynamic(model)
        elif scheme == "static-int8":
            if example is None:
                raise UserError("bundle.json: the static-int8 record has no example_shape; the bundle is damaged")
            model = _static(model, example, calibration)
        else:
            _weight_only(model, 8 if scheme == "int8-weight" else 4)
        quantize_embeddings(model)
    if next(model.parameters(), None) is None:
        # torch.ao modules keep their weights out of parameters(); code that finds a model's
        # device with next(model.parameters()) must still get an answer
        model.register_parameter("device_anchor", nn.Parameter(torch.zeros(0), requires_grad=False))
    return model.eval()


def _float_copy(model: nn.Module) -> nn.Module:
    """A CPU eval-mode copy in which LoRA layers are plain Linear layers (adapters folded in)."""
    from practicum.peft.lora import LoRALinear

    model = copy.deepcopy(model).cpu().eval()
    for name, m in list(model.named_modules()):
        if isinstance(m, LoRALinear):
            plain = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
            with torch.no_grad():
                plain.weight.copy_(m.weight if m.merged else m.weight + m.delta())
                if m.bias is not None:
                    plain.bias.copy_(m.bias)
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, plain)
    return model


# ---------------------------------------------------------------- the schemes


def _dynamic(model: nn.Module) -> nn.Module:
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    spec = {nn.Linear: per_channel_dynamic_qconfig, nn.LSTM: default_dynamic_qconfig,
            nn.GRU: default_dynamic_qconfig}
    return quantize_dynamic(model, spec, dtype=torch.qint8)


class StaticQuantized(nn.Module):
    """A CNN whose body went through FX static quantization: forward(image) as the float model.

    The body takes float images, quantizes them at its input and dequantizes its outputs.
    """

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, image: Tensor) -> Tensor:
        return self.body(image)  # (N, C, H, W) float -> (N, num_outputs) float


def _static(model: nn.Module, example: list[int], calibration: Tensor | None) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = torch.backends.quantized.engine
    if engine not in ("x86", "fbgemm", "qnnpack", "onednn"):
        raise UserError(f"static-int8 needs a quantized engine (x86, fbgemm, qnnpack); this "
                        f"torch has {engine!r}: use --quantize int8")
    body = _cnn_body(model)
    _explicit_padding(body)
    prepared = prepare_fx(body, get_default_qconfig_mapping(engine), (torch.zeros(example),))
    if calibration is not None:
        with torch.no_grad():
            for lo in range(0, len(calibration), CALIBRATION_BATCH):
                prepared(calibration[lo : lo + CALIBRATION_BATCH])
    return StaticQuantized(convert_fx(prepared))


def _cnn_body(model: nn.Module) -> nn.Module:
    """The CNN as one traceable Sequential (the float forward's channels-last step left out:
    it only changes the memory layout)."""
    from practicum.models.cnn import LeNet, ResNet

    if isinstance(model, LeNet):
        return nn.Sequential(model.features, model.classifier)
    if isinstance(model, ResNet):
        return nn.Sequential(model.stem, model.stages, model.pool, nn.Flatten(1), model.drop, model.head)
    raise UserError(f"static-int8 quantizes the LeNet and ResNet CNNs, not a {type(model).__name__}; "
                    "use --quantize int8")


def _explicit_padding(body: nn.Module) -> None:
    """Quantized convolutions take numbers, not padding='same': write the same padding out."""
    for name, conv in body.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.padding == "same":
            total = [d * (k - 1) for k, d in zip(conv.kernel_size, conv.dilation, strict=True)]
            if any(t % 2 for t in total):
                raise UserError(f"static-int8: conv {name} pads 'same' around an even kernel, which "
                                "quantized convolutions cannot express; use --quantize int8")
            conv.padding = tuple(t // 2 for t in total)
            conv._reversed_padding_repeated_twice = [p for p in reversed(conv.padding) for _ in range(2)]


def _weight_only(model: nn.Module, bits: int) -> None:
    ao = import_torchao()
    if bits == 8:
        ao.quantize_(model, ao.Int8WeightOnlyConfig())
        return
    try:
        ao.quantize_(model, ao.Int4WeightOnlyConfig())
    except (ImportError, NotImplementedError, AssertionError, RuntimeError) as exc:
        raise UserError(f"int4-weight failed on this model ({type(exc).__name__}: {exc}); "
                        "use --quantize int8-weight") from None


def _require_int4(ao: Any) -> None:
    """torchao's int4 kernels need extra packages or a GPU on many machines: try a small layer."""
    probe = nn.Sequential(nn.Linear(256, 256))
    try:
        ao.quantize_(probe, ao.Int4WeightOnlyConfig())
        probe(torch.zeros(1, 256))
    except (ImportError, NotImplementedError, AssertionError, RuntimeError) as exc:
        raise UserError(f"int4-weight is not available on this machine: torchao {ao.version} "
                        f"cannot run Int4WeightOnlyConfig here ({exc}); use --quantize int8-weight") from None


class _TorchAO:
    """The few torchao names used here, imported once."""

    def __init__(self) -> None:
        import torchao
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_

        self.version = torchao.__version__
        self.quantize_ = quantize_
        self.Int8WeightOnlyConfig, self.Int4WeightOnlyConfig = Int8WeightOnlyConfig, Int4WeightOnlyConfig


def import_torchao() -> _TorchAO:
    """torchao, with its import-time chatter (optional kernels it cannot load) kept quiet."""
    quiet = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        return _TorchAO()
    except ImportError:
        raise UserError("int8-weight and int4-weight need torchao: pip install 'practicum[compress]'") from None
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)


# ---------------------------------------------------------------- records


def _describe_scheme(scheme: str) -> dict[str, Any]:
    return {
        "int8": {"dtype": "qint8", "weights": "int8, per output channel (LSTM/GRU: per tensor)",
                 "activations": "quantized per call (dynamic)", "library": "torch.ao.quantization"},
        "static-int8": {"dtype": "qint8/quint8", "weights": "int8, per output channel",
                        "activations": "uint8, ranges calibrated on training rows",
                        "library": "torch.ao.quantization (FX graph mode)",
                        "engine": torch.backends.quantized.engine},
        "int8-weight": {"dtype": "int8", "weights": "int8, one scale per output row",
                        "activations": "float", "library": "torchao"},
        "int4-weight": {"dtype": "int4", "weights": "int4, grouped scales", "activations": "float",
                        "library": "torchao"},
    }[scheme] | {"embeddings": "int8, one scale per row"}


def _layers(model: nn.Module) -> dict[str, Any]:
    """Which layers hold quantized weights (name -> kind) and which weighted layers stayed float."""
    quantized: dict[str, str] = {}
    kept: list[str] = []
    for name, m in model.named_modules():
        kind = quantized_kind(m)
        if kind:
            quantized[name] = kind
        elif isinstance(m, (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase, nn.Embedding)):
            kept.append(name)
    return {"quantized_layers": quantized, "float_layers": kept}


def quantized_kind(module: nn.Module) -> str | None:
    """What makes this module quantized (its class, or its weight's class), or None."""
    from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase
    from torch.ao.nn.quantized.modules.utils import WeightedQuantizedModule

    if isinstance(module, QuantizedEmbedding):
        return "QuantizedEmbedding"
    if isinstance(module, (WeightedQuantizedModule, RNNBase)):
        return module._get_name()  # DynamicQuantizedLinear, QuantizedConvReLU2d, ...
    weight = getattr(module, "weight", None)
    if isinstance(weight, Tensor) and type(weight).__module__.startswith("torchao"):
        return f"Linear({type(weight).__name__})"
    return None


def _versions(scheme: str) -> dict[str, str]:
    versions = {"torch": torch.__version__}
    if scheme in LM_SCHEMES:
        versions["torchao"] = import_torchao().version
    return versions


def weight_tensors(model: nn.Module) -> list[Tensor]:
    """Every weight and bias of `model` as a float tensor, quantized ones dequantized (a tied
    weight once): what the parameter and non-zero counts of the trade-off table count."""
    found: dict[int, Tensor] = {}  # by id; the dict keeps unpacked temporaries alive, so ids stay unique
    for m in model.modules():
        for t in _own_weights(m):
            if t is not None:
                found.setdefault(id(t), t)
    return [t.dequantize() if t.is_quantized or hasattr(t, "__tensor_flatten__") else t.detach()
            for t in found.values()]


def _own_weights(m: nn.Module) -> list[Tensor]:
    if isinstance(m, QuantizedEmbedding):
        return [m.qweight]  # zero exactly where the float row was zero
    if quantized_kind(m) and hasattr(m, "_weight_bias"):  # torch.ao: weights packed for the kernels
        wb = m._weight_bias()
        if isinstance(wb, dict):  # a dynamic LSTM/GRU: {"weight": {...}, "bias": {...}}
            return [*wb["weight"].values(), *wb["bias"].values()]
        return list(wb)
    return [p for name, p in m.named_parameters(recurse=False) if name != "device_anchor"]


@contextmanager
def quiet() -> Iterator[None]:
    """torch.ao.quantization's deprecation notices and the empty-observer warnings of a rebuild
    say nothing to a user here."""
    with warnings.catch_warnings():
        for text in (r".*torch\.ao\.quantization is deprecated.*", r".*must run observer.*",
                     r".*calculate_qparams.*", r".*quantized tensor creation functions.*",
                     r".*use quant_min and quant_max.*"):
            warnings.filterwarnings("ignore", message=text)
        yield

