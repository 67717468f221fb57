"""GGUF (llama.cpp) LLaMA-architecture files -> TransformerLM and a byte-level BPE Tokenizer.

    model, tokenizer, info = import_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")

Quantized tensors (Q4_1, Q8_0, ...) are dequantized to float32 with the `gguf` package. Two
conventions differ from Hugging Face: GGUF lists shapes innermost first (a Linear weight of
shape (out, in) reads [in, out]), and llama.cpp's converter reorders the rows of every q and k
head from rotate-half pairs (i, i + hs/2) to interleaved pairs (2i, 2i + 1); `_unpermute` undoes
that so our rotate_half rotary applies unchanged. `gguf` is imported inside functions.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from practicum.config import LMConfig
from practicum.data.tokenizers import Tokenizer
from practicum.errors import UserError
from practicum.models.lm import TransformerLM

log = logging.getLogger(__name__)

# llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) -> the text split before byte-level BPE:
# (digits one by one first, split regex; None = GPT-2's, built into ByteLevel).
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_PRE_SPLITS: dict[str, tuple[bool, str | None]] = {
    **{name: (False, None) for name in ("default", "gpt2", "gpt-2", "mpt", "olmo", "jais")},
    **{name: (True, None)
       for name in ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone")},
    **{name: (False, _LLAMA3_SPLIT) for name in ("llama3", "llama-v3", "llama-bpe", "smaug-bpe")},
}
_CONTROL, _USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values


def import_gguf(path: str | Path) -> tuple[TransformerLM, Tokenizer, dict[str, Any]]:
    """Load a llama-architecture GGUF file: (model in eval mode, tokenizer, info).

    info holds architecture, source, name, chat_template (Jinja text or None), bos/eos ids and
    the count of tensors per storage type (F32, Q4_1, ...)."""
    try:
        from gguf import GGUFReader
    except ImportError as err:
        raise UserError("reading GGUF files needs the gguf package; pip install gguf") from err
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; give a .gguf file")
    try:
        reader = GGUFReader(path)
    except Exception as err:  # gguf raises ValueError, struct.error, ... for bad files
        raise UserError(f"{path}: not a readable GGUF file ({err}); check the download") from err
    meta = {key: field.contents() for key, field in reader.fields.items()}
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise UserError(f"{path}: general.architecture is {arch!r}; only llama-architecture "
                        "GGUF files (LLaMA, SmolLM, TinyLlama, ...) can be imported")
    tensors = {t.name: t for t in reader.tensors}
    cfg = _config(meta, "output.weight" not in tensors, path)
    model = TransformerLM(cfg)
    state = _state_dict(cfg, tensors, path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = str(err).splitlines()[-1].strip()
        raise UserError(f"{path}: tensors do not fit the metadata ({detail})") from err
    info = {"architecture": arch, "source": str(path), "name": meta.get("general.name"),
            "chat_template": meta.get("tokenizer.chat_template"),
            "bos_id": meta.get("tokenizer.ggml.bos_token_id"),
            "eos_id": meta.get("tokenizer.ggml.eos_token_id"),
            "tensor_types": dict(Counter(t.tensor_type.name for t in reader.tensors))}
    return model.eval(), _tokenizer(meta, path), info


def _config(meta: dict[str, Any], tied: bool, path: Path) -> LMConfig:
    """LMConfig from the llama.* metadata; the vocabulary is tokenizer.ggml.tokens."""
    def get(key: str, default: Any = None) -> Any:
        value = meta.get(f"llama.{key}", default)
        if value is None:
            raise UserError(f"{path}: metadata lacks llama.{key}; the file is incomplete")
        return value

    scaling = meta.get("llama.rope.scaling.type", "none")
    if scaling not in ("none", None):
        raise UserError(f"{path}: llama.rope.scaling.type {scaling!r} is not supported; "
                        "only plain rotary positions import exactly")
    width, heads = get("embedding_length"), get("attention.head_count")
    head_size = width // heads
    for key in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
        if meta.get(f"llama.{key}", head_size) != head_size:
            raise UserError(f"{path}: llama.{key} is {meta[f'llama.{key}']}, not the head size "
                            f"{head_size}; such models cannot be imported")
    tokens = meta.get("tokenizer.ggml.tokens")
    if not tokens:
        raise UserError(f"{path}: metadata lacks tokenizer.ggml.tokens; the file has no tokenizer")
    return LMConfig(
        causal=True, positions="rotary", norm="rmsnorm", norm_placement="pre", mlp="swiglu",
        bias=False, dropout=0.0, n_layer=get("block_count"), n_embd=width, n_head=heads,
        n_kv_head=get("attention.head_count_kv", heads),
        intermediate_size=get("feed_forward_length"),
        norm_eps=get("attention.layer_norm_rms_epsilon"), rope_base=get("rope.freq_base", 10000.0),
        block_size=get("context_length"), vocab_size=len(tokens),
        tie_embeddings=tied)


def _state_dict(cfg: LMConfig, tensors: dict[str, Any], path: Path) -> dict[str, Tensor]:
    """Our state dict from GGUF tensors: q and k unpermuted, fused into qkv; gate and up into fc."""
    def get(name: str) -> Tensor:
        if name not in tensors:
            raise UserError(f"{path}: tensor {name} is missing; the file is incomplete")
        return _dequantize(tensors[name])

    state = {"wte.weight": get("token_embd.weight"), "norm_f.weight": get("output_norm.weight")}
    for i in range(cfg.n_layer):
        b, o = f"blk.{i}.", f"blocks.{i}."
        q = _unpermute(get(b + "attn_q.weight"), cfg.n_head)  # (nh * hs, C)
        k = _unpermute(get(b + "attn_k.weight"), cfg.kv_heads)  # (nkv * hs, C)
        state[o + "attn.qkv.weight"] = torch.cat((q, k, get(b + "attn_v.weight")))
        state[o + "attn.proj.weight"] = get(b + "attn_output.weight")
        state[o + "norm_1.weight"] = get(b + "attn_norm.weight")
        state[o + "norm_2.weight"] = get(b + "ffn_norm.weight")
        state[o + "mlp.fc.weight"] = torch.cat((get(b + "ffn_gate.weight"), get(b + "ffn_up.weight")))
        state[o + "mlp.proj.weight"] = get(b + "ffn_down.weight")
    state["lm_head.weight"] = state["wte.weight"] if cfg.tie_embeddings else get("output.weight")
    return state


def _dequantize(tensor: Any) -> Tensor:
    """float32 torch tensor in numpy/PyTorch order (GGUF's shape reversed)."""
    from gguf.quants import dequantize

    values = np.array(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)  # a copy
    shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
    return torch.from_numpy(values).reshape(shape)


def _unpermute(w: Tensor, heads: int) -> Tensor:
    """Undo llama.cpp's q/k row order: per head, interleaved row pairs (2i, 2i + 1) back to the
    rotate-half pairs (i, i + hs/2) that Hugging Face and our rotary use. w: (heads * hs, C)."""
    rows, width = w.shape
    return w.view(heads, rows // heads // 2, 2, width).transpose(1, 2).reshape(rows, width)


def _tokenizer(meta: dict[str, Any], path: Path) -> Tokenizer:
    """A byte-level BPE `tokenizers` tokenizer from tokenizer.ggml.* (model "gpt2")."""
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers.processors import TemplateProcessing

    kind, pre = meta.get("tokenizer.ggml.model"), meta.get("tokenizer.ggml.pre", "default")
    if kind != "gpt2":
        raise UserError(f"{path}: tokenizer.ggml.model is {kind!r}; only byte-level BPE ('gpt2') "
                        "tokenizers are supported")
    if pre not in _PRE_SPLITS:
        raise UserError(f"{path}: tokenizer.ggml.pre {pre!r} is not supported; "
                        f"known: {', '.join(sorted(_PRE_SPLITS))}")
    digits, split = _PRE_SPLITS[pre]
    tokens = list(meta["tokenizer.ggml.tokens"])
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    inner = HFTokenizer(models.BPE({tok: i for i, tok in enumerate(tokens)}, merges,
                                   ignore_merges=split is not None))
    steps = [pre_tokenizers.Digits(individual_digits=True)] if digits else []
    if split is not None:
        steps.append(pre_tokenizers.Split(Regex(split), behavior="isolated"))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split is None))
    inner.pre_tokenizer = pre_tokenizers.Sequence(steps)
    inner.decoder = decoders.ByteLevel()
    types = list(meta.get("tokenizer.ggml.token_type", []))
    inner.add_special_tokens([AddedToken(tok, special=True, normalized=False)
                              for tok, t in zip(tokens, types, strict=False) if t == _CONTROL])
    inner.add_tokens([AddedToken(tok, special=False, normalized=False)
                      for tok, t in zip(tokens, types, strict=False) if t == _USER_DEFINED])
    roles = {"bos": "bos_token_id", "eos": "eos_token_id", "pad": "padding_token_id",
             "unk": "unknown_token_id"}
    specials = {role: tokens[meta[f"tokenizer.ggml.{key}"]] for role, key in roles.items()
                if meta.get(f"tokenizer.ggml.{key}") is not None}
    if meta.get("tokenizer.ggml.add_bos_token") and "bos" in specials:
        bos, bos_id = specials["bos"], meta["tokenizer.ggml.bos_token_id"]
        inner.post_processor = TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, bos_id)])
    return Tokenizer(inner, specials)
