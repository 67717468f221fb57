"""Fine-tuning strategies end to end on a tiny pretrained bundle: what trains, what stays put,
adapters saved apart and put back, bundles that predict, and exact resume for every strategy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from finetune_data import finetune_config
from interrupt import interrupted_then_resumed
from safetensors.torch import load_file

from practicum import api
from practicum.bundle import Bundle
from practicum.config import PeftConfig, TrainConfig
from practicum.errors import UserError
from practicum.models.lm import TransformerLM
from practicum.models.pretrained import PretrainedClassifier, backbone_config
from practicum.peft import adapter_state, apply_strategy, load_adapter, save_adapter
from practicum.peft.lora import lora_layers
from practicum.pretrained import load_backbone
from practicum.train.optim import build_optimizer

STRATEGIES = ["full", "freeze", "linear_probe", "lora", "prompt_tuning"]


def classifier(source: Path, seed: int = 0) -> PretrainedClassifier:
    bb = load_backbone(source)
    torch.manual_seed(seed)
    model = PretrainedClassifier(TransformerLM(backbone_config(bb.model.cfg)), 3, dropout=0.0)
    model.backbone.load_state_dict(bb.model.state_dict(), strict=False)
    return model


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_trains_what_it_says(tiny_source, strategy):
    model = classifier(tiny_source)
    info = apply_strategy(model, PeftConfig(strategy=strategy, freeze_layers=1, lora_r=2, prompt_tokens=3))
    names = trainable(model)
    assert {"head.weight", "head.bias"} <= names
    assert info["trainable"] == sum(p.numel() for n, p in model.named_parameters() if n in names)
    if strategy == "full":
        assert "backbone.wte.weight" in names and "backbone.blocks.0.attn.qkv.weight" in names
    elif strategy == "freeze":
        assert not any(n.startswith(("backbone.wte", "backbone.wpe", "backbone.blocks.0.")) for n in names)
        assert any(n.startswith("backbone.blocks.1.") for n in names)
    elif strategy == "linear_probe":
        assert names == {"head.weight", "head.bias"}
    elif strategy == "lora":
        assert names - {"head.weight", "head.bias"} and all("lora_" in n for n in names - {"head.weight", "head.bias"})
        assert info["trainable"] < 0.2 * info["total"]
    else:
        assert names == {"head.weight", "head.bias", "prompt"}
        assert model.prompt.shape == (3, model.backbone.cfg.n_embd)


def test_freeze_more_layers_than_exist_is_a_clear_error(tiny_source):
    with pytest.raises(UserError, match="freeze_layers is 5 but the model has 2 blocks"):
        apply_strategy(classifier(tiny_source), PeftConfig(strategy="freeze", freeze_layers=5))


def test_discriminative_learning_rates_decay_towards_the_embeddings(tiny_source):
    model = classifier(tiny_source)
    apply_strategy(model, PeftConfig(strategy="full", layer_lr_decay=0.5))
    opt = build_optimizer(model, TrainConfig(lr=1.0))
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert lr_of[id(params["head.weight"])] == 1.0
    assert lr_of[id(params["backbone.blocks.1.attn.qkv.weight"])] == 0.5
    assert lr_of[id(params["backbone.blocks.0.attn.qkv.weight"])] == 0.25
    assert lr_of[id(params["backbone.wte.weight"])] == 0.125


def test_prompt_tuning_output_depends_on_the_prompt_and_pools_real_tokens(tiny_source):
    model = classifier(tiny_source).eval()
    apply_strategy(model, PeftConfig(strategy="prompt_tuning", prompt_tokens=3))
    tokens = torch.randint(5, 50, (2, 6))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    before = model(tokens, mask)
    with torch.no_grad():
        model.prompt.add_(torch.randn_like(model.prompt))  # a constant shift is normed away
    assert not torch.allclose(model(tokens, mask), before)


def test_adapter_round_trip(tiny_source, tmp_path):
    trained = classifier(tiny_source)
    cfg = PeftConfig(strategy="lora", lora_r=2)
    apply_strategy(trained, cfg)
    with torch.no_grad():
        for layer in lora_layers(trained):
            layer.lora_B.normal_(std=0.2)
        trained.head.weight.normal_()
    save_adapter(trained, tmp_path / "adapter", {"strategy": "lora"})
    saved = load_file(tmp_path / "adapter" / "adapter.safetensors")
    assert set(saved) == set(adapter_state(trained))
    assert not any(k.endswith("qkv.weight") or k.startswith("backbone.wte") for k in saved)  # no base weights

    fresh = classifier(tiny_source, seed=1)  # another head init: the adapter must overwrite it
    apply_strategy(fresh, cfg)
    info = load_adapter(fresh, tmp_path / "adapter")
    assert info == {"strategy": "lora"}
    tokens = torch.randint(5, 50, (3, 7))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    torch.testing.assert_close(fresh.eval()(tokens, mask), trained.eval()(tokens, mask))


def test_an_adapter_for_another_setup_is_refused(tiny_source, tmp_path):
    lora = classifier(tiny_source)
    apply_strategy(lora, PeftConfig(strategy="lora", lora_r=2))
    save_adapter(lora, tmp_path / "a", {})
    plain = classifier(tiny_source)
    with pytest.raises(UserError, match="the model lacks"):
        load_adapter(plain, tmp_path / "a")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_finetune_run_bundle_and_resume_are_exact(tiny_source, labelled_csv, tmp_path, monkeypatch, strategy):
    """A run, an interrupted run resumed from its checkpoint: same final weights and metrics.
    The bundle predicts; frozen weights are bit-identical to the source's."""
    full = api.train(finetune_config(tiny_source, labelled_csv, tmp_path / "a", strategy, max_steps=14))
    cfg = finetune_config(tiny_source, labelled_csv, tmp_path / "b", strategy, max_steps=14)
    resumed = interrupted_then_resumed(cfg, 9, monkeypatch)
    a, b = (load_file(Path(r.bundle) / "model.safetensors") for r in (full, resumed))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.metrics["val"] == full.metrics["val"]

    source = load_file(Path(tiny_source) / "model.safetensors")
    if strategy in ("linear_probe", "lora", "prompt_tuning"):  # the backbone never moved
        for k, v in source.items():
            ours = a.get(f"backbone.{k}")
            if ours is not None:
                assert torch.equal(ours, v), k
    if strategy in ("lora", "prompt_tuning", "linear_probe", "freeze"):
        assert (Path(full.bundle) / "adapter.safetensors").is_file()
    bundle = Bundle.load(full.bundle)
    preds = bundle.predict(["my card was declined today", "when will the refund arrive"])
    assert [set(p) >= {"prediction", "confidence"} for p in preds] == [True, True]
    assert full.summary["trainable_params"] <= full.summary["params"]


@pytest.mark.slow
def test_full_finetuning_learns_the_topics(tiny_source, labelled_csv, tmp_path):
    run = api.train(finetune_config(tiny_source, labelled_csv, tmp_path / "r", "full", epochs=6))
    assert run.metrics["val"]["accuracy"] >= 0.9


@pytest.mark.slow
def test_regression_head_on_a_pretrained_model(tiny_source, tmp_path):
    import random

    rng = random.Random(0)
    rows = ["text,score"]
    for i in range(150):
        n = rng.randint(0, 5)
        rows.append(f"{' '.join(['refund'] * n + ['card'] * (5 - n))} {i},{float(n)}")
    data = tmp_path / "scores.csv"
    data.write_text("\n".join(rows) + "\n")
    cfg = finetune_config(tiny_source, data, tmp_path / "r", "lora", epochs=8)
    cfg["data"].update({"target": "score", "leakage": "off"})
    cfg["task"] = {"type": "regression"}
    run = api.train(cfg)
    assert run.summary["task"] == "regression"
    assert run.metrics["val"]["r2"] > 0.5, run.metrics["val"]
    pred = Bundle.load(run.bundle).predict(["refund refund refund refund refund 7"])
    assert isinstance(pred[0]["prediction"], float)


@pytest.mark.slow
def test_planted_duplicates_stop_a_fine_tuning_run_and_dedupe_drops_them(tiny_source, tmp_path):
    import json

    topics = ["card", "refund", "travel", "rates", "fees", "abroad", "limits", "pin"]
    train = ["text,label"] + [f"a question about {t} and {u},{t}" for t in topics[:2] for u in topics]
    train += ["The refund is LATE!,refund"]
    (tmp_path / "train.csv").write_text("\n".join(train) + "\n")
    (tmp_path / "val.csv").write_text("text,label\nthe refund is late,refund\nmy card broke,card\n")
    cfg = finetune_config(tiny_source, tmp_path / "train.csv", tmp_path / "r", "linear_probe", max_steps=2)
    cfg["data"].update({"val_path": str(tmp_path / "val.csv"), "leakage": "error",
                        "split": {"val_fraction": 0.0, "test_fraction": 0.0}})
    with pytest.raises(UserError, match="duplicate a training row"):
        api.train(cfg)
    assert not (tmp_path / "r").exists()  # nothing written before the check
    cfg["data"]["dedupe"] = True
    run = api.train(cfg)
    report = json.loads((run.run_dir / "leakage.json").read_text())
    assert report["dropped_train_rows"] == 1 and report["splits"]["val"]["exact_rows"] == 1
