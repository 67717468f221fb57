"""Hugging Face checkpoints <-> TransformerLM, without transformers: config.json, model.safetensors
(or pytorch_model.bin) and the tokenizer files are read and written directly.

    model, tokenizer, info = import_hf("folder")   # a GPT-2, BERT or LLaMA save_pretrained folder
    export_hf(model, tokenizer, "out")             # transformers' AutoModelFor... loads it

`_weight_map` lists every one of our tensors with the Hugging Face tensors it is made of and how
(copied, transposed from GPT-2's Conv1D, or rows concatenated: BERT/LLaMA q, k, v into our fused
qkv, LLaMA gate and up into our SwiGLU fc). Import and export both read that one table.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from pydantic import ValidationError
from torch import Tensor

from practicum.config import LMConfig
from practicum.data.tokenizers import Tokenizer
from practicum.errors import UserError
from practicum.io import load_torch_file
from practicum.models.lm import TransformerLM

log = logging.getLogger(__name__)

FAMILIES = ("gpt2", "bert", "llama")
"""Hugging Face model_type values we read and write."""

_BASE = {"gpt2": "transformer.", "bert": "bert.", "llama": "model."}  # the bare model's prefix
_HEADS = {"gpt2": ("lm_head.",), "bert": ("cls.",), "llama": ("lm_head.",)}
_IGNORED = re.compile(r"(\.attn\.(masked_)?bias|position_ids|rotary_emb\.inv_freq)$")  # buffers
_GELU = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}
_GELU_NAME = {"none": "gelu", "tanh": "gelu_new"}
_GELU_KEY = {"gpt2": "activation_function", "bert": "hidden_act"}

# The fields each family's Hugging Face class fixes. Export accepts other values of bias
# (GPT-2, BERT), lm_head_bias, token_types and pooler (BERT): see _padded_config.
_NO_EXTRAS = dict(token_types=0, embedding_norm=False, final_norm=True, head_transform=False,
                  lm_head_bias=False, pooler=False)
_LAYOUT: dict[str, dict[str, Any]] = {
    "gpt2": dict(causal=True, positions="learned", norm="layernorm", norm_placement="pre",
                 mlp="gelu", **_NO_EXTRAS),
    "bert": dict(causal=False, positions="learned", norm="layernorm", norm_placement="post",
                 mlp="gelu", embedding_norm=True, final_norm=False, head_transform=True),
    "llama": dict(causal=True, positions="rotary", norm="rmsnorm", norm_placement="pre",
                  mlp="swiglu", **_NO_EXTRAS),
}
# Our field -> its config.json key; read on import, written on export.
_COMMON = dict(vocab_size="vocab_size", tie_embeddings="tie_word_embeddings")
_KEYS: dict[str, dict[str, str]] = {
    "gpt2": dict(n_layer="n_layer", n_head="n_head", n_embd="n_embd", intermediate_size="n_inner",
                 block_size="n_positions", norm_eps="layer_norm_epsilon", dropout="resid_pdrop",
                 **_COMMON),
    "bert": dict(n_layer="num_hidden_layers", n_head="num_attention_heads", n_embd="hidden_size",
                 intermediate_size="intermediate_size", block_size="max_position_embeddings",
                 norm_eps="layer_norm_eps", dropout="hidden_dropout_prob",
                 token_types="type_vocab_size", **_COMMON),
    "llama": dict(n_layer="num_hidden_layers", n_head="num_attention_heads",
                  n_kv_head="num_key_value_heads", n_embd="hidden_size",
                  intermediate_size="intermediate_size", block_size="max_position_embeddings",
                  norm_eps="rms_norm_eps", dropout="attention_dropout", bias="attention_bias",
                  **_COMMON),
}
# Options we cannot compute, and the only value we accept.
_REQUIRED: dict[str, dict[str, Any]] = {
    "gpt2": dict(scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False,
                 add_cross_attention=False),
    "bert": dict(position_embedding_type="absolute", is_decoder=False, add_cross_attention=False),
    "llama": dict(hidden_act="silu"),
}
# Hugging Face's own defaults: save_pretrained leaves out values equal to them.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, n_inner=None,
                 activation_function="gelu_new", resid_pdrop=0.1, layer_norm_epsilon=1e-5,
                 tie_word_embeddings=True, **_REQUIRED["gpt2"]),
    "bert": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                 max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
                 tie_word_embeddings=True, **_REQUIRED["bert"]),
    "llama": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=None, max_position_embeddings=2048,
                  rms_norm_eps=1e-6, tie_word_embeddings=False, attention_bias=False,
                  mlp_bias=False, attention_dropout=0.0, head_dim=None, **_REQUIRED["llama"]),
}


# ---------------------------------------------------------------- configs


def lm_config_from_hf(hf_config: dict[str, Any]) -> LMConfig:
    """Our LMConfig for a Hugging Face config.json of model_type gpt2, bert or llama."""
    kind = hf_config.get("model_type")
    if kind not in FAMILIES:
        raise UserError(f"config.json: model_type {kind!r} is not supported; "
                        f"import a {', '.join(FAMILIES)} checkpoint")
    c = {**_DEFAULTS[kind], **hf_config}
    for key, allowed in _REQUIRED[kind].items():
        if c[key] != allowed:
            raise UserError(f"config.json: {key} = {c[key]!r} is not supported (only "
                            f"{allowed!r}); this model cannot be imported exactly")
    fields = {**_LAYOUT[kind], **{ours: c[key] for ours, key in _KEYS[kind].items()}}
    if kind in _GELU_KEY:
        key = _GELU_KEY[kind]
        if c[key] not in _GELU:
            raise UserError(f"config.json: {key} = {c[key]!r} is not supported (only "
                            f"{', '.join(_GELU)}); this model cannot be imported exactly")
        fields["gelu_approximate"] = _GELU[c[key]]
    if kind == "bert":
        fields.update(lm_head_bias=True, pooler=True)  # import_hf drops a pooler the weights lack
    if kind == "llama":
        _check_llama(c)
        fields.update(rope_base=_rope_theta(c), bias=bool(c["attention_bias"]),
                      n_kv_head=c["num_key_value_heads"] or c["num_attention_heads"])
    try:
        return LMConfig(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        raise UserError(f"config.json: {first['loc'][0]} {first['msg']}; fix config.json") from err


def _check_llama(c: dict[str, Any]) -> None:
    if bool(c["attention_bias"]) != bool(c["mlp_bias"]):
        raise UserError("config.json: attention_bias and mlp_bias differ, but model.bias covers "
                        "both; only checkpoints with the two equal import exactly")
    head_size = c["hidden_size"] // c["num_attention_heads"]
    if c["head_dim"] not in (None, head_size):
        raise UserError(f"config.json: head_dim {c['head_dim']} is not hidden_size / "
                        f"num_attention_heads ({head_size}); such models cannot be imported")


def _rope_theta(c: dict[str, Any]) -> float:
    """rope_theta from transformers 5's rope_parameters or 4's rope_theta / rope_scaling."""
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default":
        raise UserError(f"config.json: rope scaling {kind!r} is not supported; only plain rotary "
                        "positions (rope_type 'default') import exactly")
    return float(rope.get("rope_theta", c.get("rope_theta", 10000.0)))


def _hf_config(cfg: LMConfig, vocab: int, family: str, tokenizer: Tokenizer | None) -> dict[str, Any]:
    """config.json for our (padded, see _padded_config) config in the given family."""
    keys = _KEYS[family]
    out: dict[str, Any] = {"model_type": family,
                           **{key: getattr(cfg, ours) for ours, key in keys.items()}}
    out.update({keys["vocab_size"]: vocab, keys["intermediate_size"]: cfg.mlp_width})
    for role in ("bos", "eos", "pad"):
        if tokenizer is not None and getattr(tokenizer, f"{role}_id") is not None:
            out[f"{role}_token_id"] = getattr(tokenizer, f"{role}_id")
    if family in _GELU_KEY:
        out[_GELU_KEY[family]] = _GELU_NAME[cfg.gelu_approximate]
    if family == "gpt2":
        out.update(architectures=["GPT2LMHeadModel"], embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout)
    elif family == "bert":  # BertForPreTraining holds the pooler and NSP head too
        out.update(architectures=["BertForPreTraining" if cfg.pooler else "BertForMaskedLM"],
                   attention_probs_dropout_prob=cfg.dropout)
    else:
        out.update(architectures=["LlamaForCausalLM"], num_key_value_heads=cfg.kv_heads,
                   head_dim=cfg.head_size, hidden_act="silu", mlp_bias=cfg.bias,
                   rope_theta=cfg.rope_base,
                   rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_base})
    return out


def _export_family(cfg: LMConfig, arch: str | None) -> str:
    """The family whose Hugging Face class holds this model exactly, or a UserError naming the field."""
    if arch is None:
        if cfg.positions == "sinusoidal":
            raise UserError("model.positions is 'sinusoidal', which no Hugging Face GPT-2, BERT or "
                            "LLaMA class holds; use learned or rotary positions to export")
        arch = "llama" if cfg.positions == "rotary" else "gpt2" if cfg.causal else "bert"
    if arch not in FAMILIES:
        raise UserError(f"arch {arch!r} is not supported; choose one of {', '.join(FAMILIES)}")
    for field, needed in _LAYOUT[arch].items():
        if getattr(cfg, field) != needed:
            raise UserError(f"model.{field} is {getattr(cfg, field)!r}, but the Hugging Face {arch} "
                            f"layout needs {needed!r}; no {arch} class holds this model exactly")
    return arch


def _padded_config(cfg: LMConfig, family: str) -> LMConfig:
    """The config Hugging Face stores: parts we leave out are written as zeros (exactly the same)."""
    pads = {"gpt2": {"bias": True},
            "bert": {"bias": True, "lm_head_bias": True, "token_types": max(cfg.token_types, 1)},
            "llama": {}}
    return cfg.model_copy(update=pads[family])


# ---------------------------------------------------------------- weights

# Our module -> the Hugging Face module(s) it is made of (full-model names: GPT2LMHeadModel,
# BertForPreTraining, LlamaForCausalLM) and how: "copy", "t" (GPT-2's Conv1D stores the
# transpose) or "cat" (rows side by side: q, k, v into our qkv; gate, up into our SwiGLU fc).
_OUTSIDE: dict[str, dict[str, str]] = {
    "gpt2": dict(wte="transformer.wte", wpe="transformer.wpe", norm_f="transformer.ln_f",
                 lm_head="lm_head"),
    "bert": dict(wte="bert.embeddings.word_embeddings", wpe="bert.embeddings.position_embeddings",
                 wtt="bert.embeddings.token_type_embeddings", emb_norm="bert.embeddings.LayerNorm",
                 pooler="bert.pooler.dense", nsp_head="cls.seq_relationship",
                 head_dense="cls.predictions.transform.dense",
                 head_norm="cls.predictions.transform.LayerNorm", lm_head="cls.predictions.decoder"),
    "llama": dict(wte="model.embed_tokens", norm_f="model.norm", lm_head="lm_head"),
}
_LAYER = {"gpt2": "transformer.h.{}.", "bert": "bert.encoder.layer.{}.", "llama": "model.layers.{}."}
_BLOCK: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {  # inside blocks.{i} / layer {i}
    "gpt2": {"norm_1": (("ln_1",), "copy"), "attn.qkv": (("attn.c_attn",), "t"),
             "attn.proj": (("attn.c_proj",), "t"), "norm_2": (("ln_2",), "copy"),
             "mlp.fc": (("mlp.c_fc",), "t"), "mlp.proj": (("mlp.c_proj",), "t")},
    "bert": {"attn.qkv": (tuple(f"attention.self.{n}" for n in ("query", "key", "value")), "cat"),
             "attn.proj": (("attention.output.dense",), "copy"),
             "norm_1": (("attention.output.LayerNorm",), "copy"),
             "mlp.fc": (("intermediate.dense",), "copy"), "mlp.proj": (("output.dense",), "copy"),
             "norm_2": (("output.LayerNorm",), "copy")},
    "llama": {"norm_1": (("input_layernorm",), "copy"),
              "attn.qkv": (tuple(f"self_attn.{n}_proj" for n in "qkv"), "cat"),
              "attn.proj": (("self_attn.o_proj",), "copy"),
              "norm_2": (("post_attention_layernorm",), "copy"),
              "mlp.fc": (("mlp.gate_proj", "mlp.up_proj"), "cat"),
              "mlp.proj": (("mlp.down_proj",), "copy")},
}
_HEAD_MODULES = ("lm_head", "head_dense", "head_norm", "pooler", "nsp_head")


class _Entry(NamedTuple):
    ours: str
    hf: tuple[str, ...]
    how: str  # "copy" | "t" | "cat"
    head: bool  # absent in bare models (BertModel, ...): left at init and reported


def _weight_map(cfg: LMConfig, family: str) -> list[_Entry]:
    """Every one of our tensors (a tied lm_head aside) and the Hugging Face tensors it is made of."""
    with torch.device("meta"):  # names only: no memory, no init
        names = list(TransformerLM(cfg, cfg.vocab_size or 1).state_dict())
    entries = []
    for name in names:
        module, param = name.rsplit(".", 1)
        if module == "lm_head" and param == "weight" and cfg.tie_embeddings:
            continue
        if module.startswith("blocks."):
            _, layer, inner = module.split(".", 2)
            parts, how = _BLOCK[family][inner]
            hf = tuple(_LAYER[family].format(layer) + p for p in parts)
        else:
            hf, how = (_OUTSIDE[family][module],), "copy"
        how = "copy" if how == "t" and param == "bias" else how
        entries.append(_Entry(name, tuple(f"{h}.{param}" for h in hf), how,
                              module in _HEAD_MODULES))
    return entries


def _canonical(hf_state: dict[str, Tensor], family: str) -> dict[str, Tensor]:
    """Full-model names for a state dict with or without the bare model's prefix; buffers dropped."""
    base = _BASE[family]
    out = {}
    for name, tensor in hf_state.items():
        if _IGNORED.search(name):
            continue
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[name if name.startswith((base, *_HEADS[family])) else base + name] = tensor
    if family == "bert" and "cls.predictions.bias" in out:  # the decoder's bias, often saved once
        out.setdefault("cls.predictions.decoder.bias", out.pop("cls.predictions.bias"))
    return out


def _from_hf(cfg: LMConfig, hf_state: dict[str, Tensor],
             family: str) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """Our state dict, the head tensors (our names) absent from hf_state, and its unused tensors."""
    hf = _canonical(hf_state, family)
    state: dict[str, Tensor] = {}
    missing_heads, missing, used = [], [], set()
    for entry in _weight_map(cfg, family):
        absent = [n for n in entry.hf if n not in hf]
        if absent and entry.head:
            missing_heads.append(entry.ours)
        elif absent:
            missing.append(absent[0])
        if absent:
            continue
        parts = [hf[n] for n in entry.hf]
        used.update(entry.hf)
        state[entry.ours] = (parts[0].t() if entry.how == "t"
                             else torch.cat(parts) if entry.how == "cat" else parts[0])
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise UserError(f"the weights lack {', '.join(missing[:3])}{more}, which config.json "
                        "needs; give the weights saved with this config")
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state["wte.weight"]
        used.update({"lm_head.weight", "cls.predictions.decoder.weight"})  # tied copies
    return state, missing_heads, sorted(set(hf) - used)


def state_dict_from_hf(cfg: LMConfig, hf_state: dict[str, Tensor], arch: str) -> dict[str, Tensor]:
    """Our state dict from a Hugging Face one (with or without the transformer./bert./model.
    prefix). Absent head tensors (a bare BertModel) are left out; unused tensors are logged."""
    state, missing_heads, unexpected = _from_hf(cfg, hf_state, arch)
    if missing_heads:
        log.warning("no weights for %s; they keep their initial values", ", ".join(missing_heads))
    if unexpected:
        log.warning("unused Hugging Face tensors: %s", ", ".join(unexpected))
    return state


def state_dict_to_hf(cfg: LMConfig, our_state: dict[str, Tensor],
                     arch: str | None = None) -> dict[str, Tensor]:
    """The Hugging Face state dict (full-model names, contiguous, unshared) of our weights.

    Parts our config leaves out but the Hugging Face class always has (biases, BERT's token-type
    embedding) are written as zeros, which computes exactly the same."""
    family = _export_family(cfg, arch)
    full = _padded_config(cfg, family)
    dtype = our_state["wte.weight"].dtype
    out: dict[str, Tensor] = {}
    for entry in _weight_map(full, family):
        if entry.ours in our_state:
            w = our_state[entry.ours].detach().cpu()
        elif entry.ours.endswith(".bias"):
            w = torch.zeros(our_state[entry.ours[:-5] + ".weight"].shape[0], dtype=dtype)
        elif entry.ours == "wtt.weight":
            w = torch.zeros(1, cfg.n_embd, dtype=dtype)
        else:
            raise ValueError(f"state dict lacks {entry.ours}")
        if entry.how == "cat":
            sizes = ((full.n_head * full.head_size,) + (full.kv_heads * full.head_size,) * 2
                     if len(entry.hf) == 3 else (w.shape[0] // 2,) * 2)
            parts = w.split(sizes)
        else:
            parts = (w.t(),) if entry.how == "t" else (w,)
        for name, part in zip(entry.hf, parts, strict=True):
            out[name] = part.contiguous().clone()  # safetensors refuses shared or strided tensors
    if family == "bert":
        out["cls.predictions.bias"] = out["cls.predictions.decoder.bias"].clone()
    return out


# ---------------------------------------------------------------- folders


def import_hf(folder: str | Path, warn_missing_heads: bool = True) -> tuple[TransformerLM, Tokenizer | None, dict[str, Any]]:
    """Load a Hugging Face GPT-2, BERT or LLaMA folder (save_pretrained layout) into TransformerLM.

    Returns (model in eval mode, tokenizer or None, info): info holds architecture, source,
    weight files, missing_head_keys (ours, left at init: e.g. the MLM head of a bare BertModel)
    and unexpected_keys (Hugging Face tensors not used)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder}: no config.json; give a Hugging Face model folder")
    hf_config = _read_json(folder / "config.json")
    cfg = lm_config_from_hf(hf_config)
    family = hf_config["model_type"]
    hf_state, files = _read_weights(folder)
    if family == "bert" and not any(k.endswith("pooler.dense.weight") for k in hf_state):
        cfg = cfg.model_copy(update={"pooler": False})  # BertForMaskedLM has no pooler
    state, missing_heads, unexpected = _from_hf(cfg, hf_state, family)
    model = TransformerLM(cfg)
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        detail = str(err).splitlines()[-1].strip()
        raise UserError(f"{folder}: weights do not fit config.json ({detail}); "
                        "give the weights saved with this config") from err
    if missing_heads:
        (log.warning if warn_missing_heads else log.debug)(
            "%s: no weights for %s; they keep their random init", folder, ", ".join(missing_heads))
    if unexpected:
        log.warning("%s: unused tensors %s", folder, ", ".join(unexpected))
    tokenizer = Tokenizer.load(folder) if (folder / "tokenizer.json").is_file() else None
    info = {"architecture": family, "hf_architectures": hf_config.get("architectures"),
            "source": str(folder), "weights": files, "missing_head_keys": missing_heads,
            "unexpected_keys": unexpected}
    return model.eval(), tokenizer, info


def export_hf(model: TransformerLM, tokenizer: Tokenizer | None, folder: str | Path,
              arch: str | None = None) -> Path:
    """Write config.json, model.safetensors and (given a tokenizer) tokenizer.json,
    special_tokens_map.json and tokenizer_config.json, so that transformers' AutoModelFor...
    and AutoTokenizer load them. arch: gpt2, bert or llama; None picks it from the config."""
    from safetensors.torch import save_file

    cfg, folder = model.cfg, Path(folder)
    family = _export_family(cfg, arch)
    hf_state = state_dict_to_hf(cfg, model.state_dict(), family)
    hf_config = _hf_config(_padded_config(cfg, family), model.vocab_size, family, tokenizer)
    hf_config["dtype"] = str(model.wte.weight.dtype).removeprefix("torch.")
    folder.mkdir(parents=True, exist_ok=True)
    save_file(hf_state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _write_json(folder / "config.json", hf_config)
    if tokenizer is not None:
        tokenizer.save(folder)
        specials = {f"{role}_token": tok for role, tok in tokenizer.specials.items()}
        _write_json(folder / "special_tokens_map.json", specials)
        _write_json(folder / "tokenizer_config.json", {
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.block_size,
            **specials})
    return folder


def _read_weights(folder: Path) -> tuple[dict[str, Tensor], list[str]]:
    """All tensors of a folder: one file or shards named by an index, safetensors first."""
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (folder / single).is_file():
            files = [single]
        elif (folder / index).is_file():
            files = sorted(set(_read_json(folder / index).get("weight_map", {}).values()))
        else:
            continue
        state: dict[str, Tensor] = {}
        for name in files:
            state.update(_read_weight_file(folder / name))
        return state, files
    raise UserError(f"{folder}: no model.safetensors or pytorch_model.bin; "
                    "give a folder written by save_pretrained")


def _read_weight_file(path: Path) -> dict[str, Tensor]:
    if path.suffix != ".safetensors":
        return load_torch_file(path, what="weights file", fix="save the model as model.safetensors")
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises many kinds
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: cannot read the weights ({first}); re-save the checkpoint") from err


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); fix or re-save it") from err
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object; fix or re-save it")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
