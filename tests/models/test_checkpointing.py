"""Activation checkpointing: the same outputs and gradients, fewer bytes saved for backward."""

import pytest
import torch

from practicum.config import LMConfig, TransformerConfig
from practicum.models.lm import TransformerLM
from practicum.models.transformer import TransformerClassifier
from practicum.train.precision import set_checkpointing


def lm(preset):
    torch.manual_seed(0)
    return TransformerLM(LMConfig(preset=preset, vocab_size=61, block_size=32, dropout=0.1))


def classifier():
    torch.manual_seed(0)
    cfg = TransformerConfig(d_model=16, n_heads=2, n_layers=3, d_ff=32, dropout=0.1)
    return TransformerClassifier(cfg, 40, 16, 3)


def out_grads_bytes(model, on: bool, **inputs):
    """Output, parameter gradients and bytes of tensors saved for backward, with checkpointing on/off."""
    set_checkpointing(model, on)
    model.train()
    model.zero_grad(set_to_none=True)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    torch.manual_seed(1)  # dropout masks
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(**inputs)
        out = out[0] if isinstance(out, tuple) else out
    out.float().pow(2).mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), grads, sum(saved)


def check_same(model, **inputs):
    out, grads, full = out_grads_bytes(model, False, **inputs)
    out_c, grads_c, less = out_grads_bytes(model, True, **inputs)
    torch.testing.assert_close(out_c, out, rtol=0, atol=1e-6)
    assert grads.keys() == grads_c.keys()
    for name in grads:
        torch.testing.assert_close(grads_c[name], grads[name], rtol=0, atol=1e-6, msg=name)
    assert less < full, (less, full)


@pytest.mark.parametrize("preset", ["gpt-tiny", "llama-tiny", "bert-tiny"])
def test_lm_blocks_checkpoint_without_changing_results(preset, one_thread):
    tokens = torch.randint(1, 61, (2, 12), generator=torch.Generator().manual_seed(0))
    check_same(lm(preset), tokens=tokens)


def test_text_classifier_blocks_checkpoint_without_changing_results(one_thread):
    tokens = torch.randint(1, 40, (3, 10), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, 7:] = False
    check_same(classifier(), tokens=tokens, mask=mask)


def test_checkpointing_is_off_in_eval_and_counts_blocks():
    model = lm("gpt-tiny")
    assert set_checkpointing(model, True) == len(model.blocks)
    model.eval()
    with torch.no_grad():
        a = model(torch.arange(1, 9)[None])
    set_checkpointing(model, False)
    with torch.no_grad():
        assert torch.equal(model(torch.arange(1, 9)[None]), a)
