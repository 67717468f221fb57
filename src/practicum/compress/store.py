"""Compressed bundles on disk: safetensors only, quantized weights stored as plain tensors.

A quantized tensor is stored as its integers plus its quantization parameters:

    KEY:int          int8 / uint8 values (Tensor.int_repr())
    KEY:scale        float64 scale (per tensor) or scales (per channel)
    KEY:zero_point   int64 zero point(s);  KEY:axis  the channel axis (per channel)

a torchao weight (a tensor subclass) as its inner tensors (KEY:qdata, KEY:scale, ...), the
(weight, bias) pair of a packed Linear as KEY:0 and KEY:1, and a dynamic LSTM/GRU's packed cells
as their weights and biases (NAME.weight_ih_l0, ...). No pickled packed parameters. Loading builds
the same quantized structure (quantize.quantized_structure) and puts the stored values back, so
the loaded model gives bit for bit the outputs the saved model gave.

bundle.json of a compressed bundle gains "compression": {"parent": the bundle it came from,
"steps": [distill / prune / quantize records, in the order applied]}.
"""

from __future__ import annotations

import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from practicum.errors import UserError

COPIED = ("preprocess.json", "tokenizer.json")
"""Files a compressed bundle takes over from its parent unchanged (the preprocessing)."""


# ---------------------------------------------------------------- writing


def save_compressed(parent: Any, model: nn.Module, out: Path, compression: dict[str, Any],
                    metrics: dict[str, Any] | None = None) -> Path:
    """Write `model` as a bundle at `out` with `parent`'s (a loaded Bundle) config and
    preprocessing, and the compression record in bundle.json."""
    from practicum.bundle import _header, _write_json
    from practicum.compress.quantize import weight_tensors
    from practicum.train.checkpoint import save_weights

    out.mkdir(parents=True, exist_ok=True)
    save_weights(out / "model.safetensors", model_tensors(model),
                 {"format": "pt", "practicum": "compressed bundle: see bundle.json compression"})
    for name in COPIED:
        if (parent.path / name).is_file():
            shutil.copyfile(parent.path / name, out / name)
    info = {**parent.info, **_header(), "compression": compression}
    info["parameters"] = sum(t.numel() for t in weight_tensors(model))
    _write_json(out / "bundle.json", info)
    _write_json(out / "metrics.json", metrics or {})
    return out


def write_metrics(bundle: Path, metrics: dict[str, Any]) -> None:
    from practicum.bundle import _write_json

    _write_json(bundle / "metrics.json", metrics)


def model_tensors(model: nn.Module) -> dict[str, Tensor]:
    """The model's state as plain tensors (see the module docstring for the names)."""
    state = _unpacked_state(model)
    flat: dict[str, Tensor] = {}
    for key, value in state.items():
        _encode(key, value, flat)
    return flat


def _encode(key: str, value: Any, out: dict[str, Tensor]) -> None:
    if value is None or isinstance(value, torch.dtype):
        return  # the rebuilt structure knows these
    if isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            _encode(f"{key}:{i}", item, out)
    elif not isinstance(value, Tensor):
        raise TypeError(f"{key}: cannot store a {type(value).__name__} in safetensors")
    elif value.is_quantized:
        out[f"{key}:int"] = value.int_repr()
        if value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            out[f"{key}:scale"] = torch.tensor(value.q_scale(), dtype=torch.float64)
            out[f"{key}:zero_point"] = torch.tensor(value.q_zero_point(), dtype=torch.int64)
        else:
            out[f"{key}:scale"] = value.q_per_channel_scales().to(torch.float64)
            out[f"{key}:zero_point"] = value.q_per_channel_zero_points().to(torch.int64)
            out[f"{key}:axis"] = torch.tensor(value.q_per_channel_axis(), dtype=torch.int64)
    elif _is_subclass(value):  # a torchao weight: its inner tensors
        for name in value.__tensor_flatten__()[0]:
            _encode(f"{key}:{name}", getattr(value, name), out)
    else:
        out[key] = value


def _is_subclass(value: Tensor) -> bool:
    return hasattr(value, "__tensor_flatten__") and not value.is_quantized


def _rnn_modules(model: nn.Module) -> dict[str, nn.Module]:
    from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase

    return {name: m for name, m in model.named_modules() if isinstance(m, RNNBase)}


def _unpacked_state(model: nn.Module) -> dict[str, Any]:
    """state_dict with each dynamic LSTM/GRU's packed cells (script objects) replaced by its
    quantized weights and float biases."""
    state = dict(model.state_dict())
    for name, rnn in _rnn_modules(model).items():
        prefix = f"{name}." if name else ""
        for key in [k for k in state if k.startswith(f"{prefix}_all_weight_values.")]:
            del state[key]
        for wname, value in {**rnn.get_weight(), **rnn.get_bias()}.items():
            state[f"{prefix}{wname}"] = value
    return state


# ---------------------------------------------------------------- reading


def quantize_step(info: dict[str, Any]) -> dict[str, Any] | None:
    """The quantization record of a compressed bundle's bundle.json, or None."""
    steps = (info.get("compression") or {}).get("steps") or []
    return next((s for s in steps if s.get("step") == "quantize"), None)


def load_quantized(model: nn.Module, weights: Path, step: dict[str, Any], device: str = "cpu") -> nn.Module:
    """The quantized model of a bundle: `model` (its float architecture) made into the recorded
    quantized structure, then filled from `weights`."""
    from safetensors.torch import load_file

    from practicum.compress.quantize import quantized_structure, quiet

    if str(device) != "cpu" and step["scheme"] in ("int8", "static-int8"):
        raise UserError(f"{weights.parent} holds {step['scheme']} weights, which run on the CPU only; "
                        "load it with device cpu")
    quantized = quantized_structure(model, step)
    with quiet():
        fill(quantized, load_file(weights), where=str(weights))
    return quantized.to(device).eval()


def fill(model: nn.Module, flat: dict[str, Tensor], where: str = "weights") -> None:
    """Put stored values (model_tensors' names) into a model of the same quantized structure."""
    used: set[str] = set()
    template = _unpacked_state(model)
    values = {key: _decode(key, value, flat, used, where) for key, value in template.items()}
    extra = sorted(set(flat) - used)
    if extra:
        raise UserError(f"{where}: holds values this model has no place for ({', '.join(extra[:3])}); "
                        "the bundle is damaged or from another practicum version")
    for name, rnn in _rnn_modules(model).items():
        prefix = f"{name}." if name else ""
        own = [k for k in values if k.startswith(prefix) and k[len(prefix):].startswith(("weight_", "bias_"))
               and "." not in k[len(prefix):]]
        rnn.set_weight_bias({k[len(prefix):]: values.pop(k) for k in own})
        for key, value in rnn.state_dict(prefix=prefix).items():
            if key.startswith(f"{prefix}_all_weight_values."):
                values[key] = value  # the cells just packed: loading them again changes nothing
    state = OrderedDict(values)
    state._metadata = model.state_dict()._metadata  # type: ignore[attr-defined]  # module versions
    model.load_state_dict(state, assign=True)


def _decode(key: str, template: Any, flat: dict[str, Tensor], used: set[str], where: str) -> Any:
    if template is None or isinstance(template, torch.dtype):
        return template
    if isinstance(template, (tuple, list)):
        return type(template)(_decode(f"{key}:{i}", t, flat, used, where) for i, t in enumerate(template))
    if not isinstance(template, Tensor):
        return template
    if template.is_quantized:
        ints, scale, zero = (_take(flat, f"{key}:{part}", used, where) for part in ("int", "scale", "zero_point"))
        if template.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            return torch._make_per_tensor_quantized_tensor(ints, float(scale), int(zero))
        axis = int(_take(flat, f"{key}:axis", used, where))
        return torch._make_per_channel_quantized_tensor(ints, scale, zero, axis)
    if _is_subclass(template):
        names, context = template.__tensor_flatten__()
        inner = {n: _decode(f"{key}:{n}", getattr(template, n), flat, used, where) for n in names}
        return type(template).__tensor_unflatten__(inner, context, template.size(), template.stride())
    value = _take(flat, key, used, where)
    if value.shape != template.shape:
        raise UserError(f"{where}: {key} has shape {tuple(value.shape)}, the model expects "
                        f"{tuple(template.shape)}; the bundle is damaged")
    return value.to(template.dtype)


def _take(flat: dict[str, Tensor], key: str, used: set[str], where: str) -> Tensor:
    if key not in flat:
        raise UserError(f"{where}: {key} is missing; the bundle is damaged or incomplete")
    used.add(key)
    return flat[key]
