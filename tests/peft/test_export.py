"""LoRA adapters exported in the PEFT library's format load into Hugging Face models through
`peft` and give the outputs of our adapted model."""

from __future__ import annotations

import json

import pytest
import torch

from practicum.errors import UserError
from practicum.models.hf import import_hf
from practicum.peft.export import export_peft
from practicum.peft.lora import add_lora, lora_layers

transformers = pytest.importorskip("transformers", reason="transformers is not installed")
peft = pytest.importorskip("peft", reason="the peft library is not installed (pip install peft)")

TARGETS = ["attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"]


def hf_model(family: str):
    torch.manual_seed(0)
    if family == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=4)
        return transformers.GPT2LMHeadModel(cfg)
    if family == "llama":
        cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=32)
        return transformers.LlamaForCausalLM(cfg)
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=48, max_position_embeddings=32)
    return transformers.BertModel(cfg, add_pooling_layer=False)


@pytest.mark.parametrize("family", ["gpt2", "llama", "bert"])
def test_exported_adapter_loads_into_peft_and_matches(family, tmp_path):
    hf = hf_model(family).eval()
    hf.save_pretrained(tmp_path / "base")
    ours, _, _ = import_hf(tmp_path / "base")
    add_lora(ours, TARGETS, r=4, alpha=8.0)
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in lora_layers(ours):
            layer.lora_B.normal_(std=0.3)
    export_peft(ours, tmp_path / "adapter", base=str(tmp_path / "base"))
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 4 and cfg["lora_alpha"] == 8.0

    adapted = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    tokens = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        if family == "bert":
            theirs = adapted(input_ids=tokens).last_hidden_state
            mine = ours.eval().hidden_states(tokens)
        else:
            theirs = adapted(input_ids=tokens).logits
            mine = ours.eval()(tokens)
    torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)
    with torch.no_grad(), adapted.disable_adapter():  # the adapter really changes the outputs
        plain = adapted(input_ids=tokens)
        plain = plain.last_hidden_state if family == "bert" else plain.logits
    assert (plain - theirs).abs().max() > 1e-3


def test_a_model_without_adapters_cannot_be_exported(tmp_path):
    hf_model("gpt2").save_pretrained(tmp_path / "base")
    ours, _, _ = import_hf(tmp_path / "base")
    with pytest.raises(UserError, match="no LoRA adapters"):
        export_peft(ours, tmp_path / "out")
