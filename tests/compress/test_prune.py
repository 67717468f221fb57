"""Pruning: the sparsity realised in the returned weights, which weights go (magnitude order,
whole channels, rows and heads), what stays untouched, and the recovery fine-tune."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from finetune_data import finetune_config

from practicum import api
from practicum.bundle import Bundle, save_bundle
from practicum.compress.heads import head_layers
from practicum.compress.prune import prunable_weights, prune_bundle
from practicum.errors import UserError


def load(path: Path) -> Bundle:
    return Bundle.load(path)


def originals(bundle: Bundle) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in bundle.model.state_dict().items()}


def sample(bundle: Bundle, n: int = 16) -> dict[str, torch.Tensor]:
    from practicum.data import load_data

    data = load_data(bundle.config.data, bundle.config.task)
    return {k: v[:n] for k, v in data.val.items() if k != "target"}


def prunable_names(model: torch.nn.Module) -> list[str]:
    return [w.name for w in prunable_weights(model)[0]]


# ---------------------------------------------------------------- unstructured


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_unstructured_pruning_reaches_the_target_in_the_saved_weights(text_classifier_bundle, scope, one_thread):
    bundle = load(text_classifier_bundle)
    before = originals(bundle)
    model, report = prune_bundle(bundle, 0.5, scope=scope)

    state = model.state_dict()
    assert list(state) == list(before)  # same keys, same order: saves as a normal bundle
    names = prunable_names(bundle.model)
    assert "head.weight" not in names and "tok_emb.weight" not in names
    total = sum(before[n].numel() for n in names)
    zeros = sum(int((state[n] == 0).sum()) for n in names)
    assert report["prunable_weights"] == total and report["zero_weights"] == zeros
    assert report["realised_sparsity"] == pytest.approx(zeros / total)
    if scope == "global":
        assert zeros == round(0.5 * total)
    else:
        for n in names:
            assert int((state[n] == 0).sum()) == round(0.5 * before[n].numel()), n
            assert report["per_layer"][n] == pytest.approx(0.5, abs=1 / before[n].numel())
    # magnitude: every pruned weight was no larger than any kept one (per layer or over all)
    groups = [names] if scope == "global" else [[n] for n in names]
    for group in groups:
        orig = torch.cat([before[n].flatten().abs() for n in group])
        gone = torch.cat([(state[n] == 0).flatten() for n in group])
        assert orig[gone].max() <= orig[~gone].min()
    # kept weights keep their values; everything not prunable is untouched
    for key, value in before.items():
        if key in names:
            kept = state[key] != 0
            assert torch.equal(state[key][kept], value[kept])
        else:
            assert torch.equal(state[key], value), key
    assert report["method"] == "magnitude" and report["target"] == 0.5 and report["recovery"] is None
    assert "head" in report["not_pruned"]
    # the bundle's own model was not touched
    for key, value in bundle.model.state_dict().items():
        assert torch.equal(value, before[key])
    assert not model.training


@pytest.mark.parametrize("structured", [False, True])
@pytest.mark.parametrize("fixture", ["text_classifier_bundle", "image_classifier_bundle",
                                     "tabular_classifier_bundle"])
def test_a_vanishing_amount_changes_no_output(fixture, structured, request, one_thread):
    bundle = load(request.getfixturevalue(fixture))
    model, report = prune_bundle(bundle, 1e-6, structured=structured, scope="layer")
    batch = sample(bundle)
    with torch.no_grad():
        assert torch.equal(model(**batch), bundle.model(**batch))
    assert report["zero_weights"] == 0


def test_a_pruned_bundle_saves_and_loads_back_with_its_zeros(image_classifier_bundle, tmp_path, one_thread):
    bundle = load(image_classifier_bundle)
    model, report = prune_bundle(bundle, 0.7)
    out = save_bundle(tmp_path / "pruned", bundle.config, model, bundle.preprocessor, {})
    again = Bundle.load(out)
    for key, value in model.state_dict().items():
        assert torch.equal(again.model.state_dict()[key], value), key
    zeros = sum(int((again.model.state_dict()[n] == 0).sum()) for n in report["per_layer"])
    assert zeros == report["zero_weights"] == round(0.7 * report["prunable_weights"])
    batch = sample(bundle)
    with torch.no_grad():
        assert torch.equal(again.model(**batch), model(**batch))


# ---------------------------------------------------------------- structured


def test_structured_layer_pruning_zeroes_the_weakest_conv_channels_and_rows(image_classifier_bundle, one_thread):
    bundle = load(image_classifier_bundle)
    before = originals(bundle)
    model, report = prune_bundle(bundle, 0.5, structured=True, scope="layer")
    state = model.state_dict()
    convs = [n for n in report["per_layer"] if before[n].dim() == 4]
    assert convs and "classifier.5.weight" not in report["per_layer"]  # the output head stays whole
    for name in report["per_layer"]:
        w = before[name].flatten(1)  # (channels or rows, rest)
        dead = ~state[name].flatten(1).bool().any(1)
        assert int(dead.sum()) == round(0.5 * w.size(0)), name
        norms = w.norm(dim=1)
        assert norms[dead].max() <= norms[~dead].min()  # lowest L2 norm first
    channels = sum(before[n].size(0) for n in convs)
    assert report["units"]["channels"] == {"pruned": sum(round(0.5 * before[n].size(0)) for n in convs),
                                           "total": channels}
    # a pruned output channel of the first conv is exactly zero before its norm layer
    conv = model.features[0]
    dead = ~conv.weight.flatten(1).bool().any(1)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(sample(bundle)["image"], conv.weight, None, padding="same")
    assert out[:, dead].abs().max() == 0 and out[:, ~dead].abs().max() > 0


def test_structured_pruning_of_an_mlp_zeroes_whole_neurons(tabular_classifier_bundle, one_thread):
    bundle = load(tabular_classifier_bundle)
    before = originals(bundle)
    model, report = prune_bundle(bundle, 0.5, structured=True, scope="layer")
    first = model.net[0].weight  # (16, features): the hidden layer; the output layer is the head
    assert list(report["per_layer"]) == ["net.0.weight"]
    assert int((~first.bool().any(1)).sum()) == 8
    assert report["units"]["rows"] == {"pruned": 8, "total": 16}
    assert torch.equal(model.net[-1].weight, before[f"net.{len(model.net) - 1}.weight"])


def test_head_pruning_zeroes_whole_heads_whose_contribution_is_exactly_zero(text_classifier_bundle, one_thread):
    bundle = load(text_classifier_bundle)
    before = originals(bundle)
    model, report = prune_bundle(bundle, 0.5, structured=True, scope="layer")
    heads = report["units"]["heads"]
    assert heads["total"] == 4 and heads["pruned"] == 2  # 2 layers x 2 heads, one each
    x = torch.randn(3, 7, 32)
    mask = torch.ones(3, 7, dtype=torch.bool)
    for layer in head_layers(model):
        (gone,) = heads["per_layer"][layer.name]
        hs, C = layer.hs, 32
        # the head pruned is the one whose output-projection slice was weaker
        proj = before[f"{layer.name}.proj.weight"].view(C, 2, hs).norm(dim=(0, 2))
        assert gone == int(proj.argmin())
        rows = [slice(part * C + gone * hs, part * C + (gone + 1) * hs) for part in range(3)]
        for r in rows:  # its query, key and value rows are zero, and its proj columns
            assert not layer.qkv.weight[r].any()
        assert not layer.proj.weight[:, gone * hs:(gone + 1) * hs].any()
        # contribution exactly 0: whatever the head computes, the attention output is the same
        with torch.no_grad():
            y = layer.module(x, mask)
            for r in rows:
                layer.qkv.weight[r] = torch.randn_like(layer.qkv.weight[r])
            assert torch.equal(layer.module(x, mask), y)


def test_head_pruning_of_a_grouped_query_lm_keeps_shared_key_value_heads(tiny_causal_source, one_thread):
    bundle = load(tiny_causal_source)  # LLaMA-style: 4 query heads share 2 key/value heads
    model, report = prune_bundle(bundle, 0.5, structured=True, scope="layer")
    for layer in head_layers(model):
        gone = report["units"]["heads"]["per_layer"][layer.name]
        assert len(gone) == 2
        hs, nh, w = layer.hs, layer.n_head, layer.qkv.weight
        for g in range(layer.n_kv_head):
            k_rows = w[(nh + g) * hs:(nh + g + 1) * hs]
            both_gone = {2 * g, 2 * g + 1} <= set(gone)
            assert bool(k_rows.any()) != both_gone
    tokens = torch.randint(0, bundle.model.vocab_size, (2, 9))
    with torch.no_grad():
        logits = model(tokens)
    assert torch.isfinite(logits).all() and not torch.equal(logits, bundle.model(tokens))
    assert "lm_head" in report["not_pruned"] and "lm_head.weight" not in report["per_layer"]


def test_global_structured_pruning_ranks_all_layers_and_keeps_one_unit_each(text_classifier_bundle, one_thread):
    bundle = load(text_classifier_bundle)
    model, report = prune_bundle(bundle, 0.5, structured=True, scope="global")
    total = report["prunable_weights"]
    # the biggest unit is a head: 4 x 16 x 32 weights; the total lands within half a unit
    assert abs(report["zero_weights"] - 0.5 * total) <= 0.5 * 4 * 16 * 32 + 1
    units = report["units"]
    assert units["heads"]["pruned"] <= 2 and all(len(v) < 2 for v in units["heads"]["per_layer"].values())
    for name in report["per_layer"]:
        if "attn" not in name:
            assert model.state_dict()[name].flatten(1).bool().any(1).any(), name


def test_language_model_unstructured_pruning_leaves_embeddings_and_head(tiny_causal_source, one_thread):
    bundle = load(tiny_causal_source)
    before = originals(bundle)
    model, report = prune_bundle(bundle, 0.3, scope="global")
    assert report["zero_weights"] == round(0.3 * report["prunable_weights"])
    assert torch.equal(model.wte.weight, before["wte.weight"])
    assert torch.equal(model.lm_head.weight, before["lm_head.weight"])
    assert all(n.startswith("blocks.") for n in report["per_layer"])


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize("kwargs", [{"amount": 0}, {"amount": 1}, {"amount": 1.5}, {"amount": -0.1},
                                    {"amount": "half"}, {"amount": float("nan")},
                                    {"amount": 0.5, "scope": "blocks"},
                                    {"amount": 0.5, "recover_epochs": -1},
                                    {"amount": 0.5, "recover_epochs": float("inf")}])
def test_bad_arguments_are_user_errors(tabular_classifier_bundle, kwargs):
    bundle = load(tabular_classifier_bundle)
    amount = kwargs.pop("amount")
    with pytest.raises(UserError, match="amount|scope|recover_epochs"):
        prune_bundle(bundle, amount, **kwargs)


def test_language_model_recovery_needs_a_corpus(tiny_causal_source):
    with pytest.raises(UserError, match="data.path"):
        prune_bundle(load(tiny_causal_source), 0.5, recover_epochs=0.1)


# ---------------------------------------------------------------- recovery


def val_accuracy(bundle: Bundle, model: torch.nn.Module) -> float:
    from practicum.data import load_data

    data = load_data(bundle.config.data, bundle.config.task)
    inputs = {k: v for k, v in data.val.items() if k != "target"}
    with torch.no_grad():
        return float((model(**inputs).argmax(1) == data.val["target"]).float().mean())


def test_recovery_keeps_zeros_and_wins_back_accuracy(image_classifier_bundle, one_thread):
    bundle = load(image_classifier_bundle)
    pruned, plain = prune_bundle(bundle, 0.9)
    recovered, report = prune_bundle(bundle, 0.9, recover_epochs=1.0,
                                     overrides=["train.lr=1e-2", "train.progress=never"])
    rec = report["recovery"]
    assert rec["lr"] == 1e-2 and rec["monitor"] == "accuracy" and rec["kept"] == "recovered"
    assert rec["steps"] == math.ceil(1437 / 64)  # one epoch of the 80% training split
    # pruning hurt; recovery won accuracy back, and the report says what the model scores
    assert val_accuracy(bundle, pruned) < val_accuracy(bundle, bundle.model) - 0.05
    assert rec["val_before"] == pytest.approx(val_accuracy(bundle, pruned))
    assert rec["val_after"] > rec["val_before"] + 0.05
    assert rec["val_after"] == pytest.approx(val_accuracy(bundle, recovered))
    # zeros stayed zeros; the surviving weights trained
    for name in plain["per_layer"]:
        gone = pruned.state_dict()[name] == 0
        assert not recovered.state_dict()[name][gone].any(), name
    assert report["realised_sparsity"] >= plain["realised_sparsity"]
    assert list(recovered.state_dict()) == list(bundle.model.state_dict())
    assert not torch.equal(recovered.features[0].weight, pruned.features[0].weight)


def test_recovery_for_a_fraction_of_an_epoch_at_a_tenth_of_the_lr(tabular_classifier_bundle, one_thread):
    bundle = load(tabular_classifier_bundle)
    model, report = prune_bundle(bundle, 0.5, structured=True, recover_epochs=0.5,
                                 overrides=["train.progress=never"])
    rec = report["recovery"]
    from practicum.data import load_data

    rows = len(load_data(bundle.config.data, bundle.config.task).train["target"])
    assert rec["steps"] == max(1, round(0.5 * math.ceil(rows / 64)))
    assert rec["lr"] == pytest.approx(bundle.config.train.lr / 10)
    assert report["units"]["rows"]["pruned"] == 8  # whole neurons are still gone


def test_language_model_recovery_trains_on_the_corpus_given(tiny_causal_source, tmp_path, one_thread):
    from finetune_data import TOPICS

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(t for rows in TOPICS.values() for t in rows) * 20, encoding="utf-8")
    bundle = load(tiny_causal_source)
    pruned, _ = prune_bundle(bundle, 0.6)
    model, report = prune_bundle(bundle, 0.6, recover_epochs=5.0, overrides=[
        f"data.path={corpus}", "train.batch_size=8", "train.max_steps=6", "train.lr=3e-3",
        "train.progress=never"])
    rec = report["recovery"]
    assert rec["steps"] == 6 and rec["monitor"] == "loss"
    assert rec["val_after"] < rec["val_before"]
    for name in report["per_layer"]:
        assert not model.state_dict()[name][pruned.state_dict()[name] == 0].any(), name


@pytest.fixture(scope="module")
def lora_bundle(tiny_source, labelled_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lora") / "run"
    return api.train(finetune_config(tiny_source, labelled_csv, out, "lora", max_steps=6)).bundle


def test_a_lora_bundle_prunes_recovers_and_reloads_with_its_zeros(lora_bundle, tmp_path, one_thread):
    bundle = load(lora_bundle)
    model, report = prune_bundle(bundle, 0.5, recover_epochs=0.5, overrides=["train.progress=never"])
    assert report["recovery"]["steps"] >= 1
    out = save_bundle(tmp_path / "pruned", bundle.config, model, bundle.preprocessor, {})
    again = Bundle.load(out)  # applies LoRA and merges it on load: lora_B is zero, adds nothing
    for name in report["per_layer"]:
        assert torch.equal(again.model.state_dict()[name], model.state_dict()[name]), name
    assert again.model.state_dict()["backbone.blocks.0.attn.qkv.weight"].eq(0).float().mean() > 0.2
    texts = ["my card was declined today", "when will the refund arrive"]
    with torch.no_grad():
        ours = bundle.task.predictions(model(**bundle.preprocessor.load_inputs(texts)[0]))
    assert [p["prediction"] for p in again.predict(texts)] == [p["prediction"] for p in ours]


def test_recovery_of_a_transformer_keeps_pruned_heads_at_zero(text_classifier_bundle, one_thread):
    bundle = load(text_classifier_bundle)
    model, report = prune_bundle(bundle, 0.5, structured=True, scope="layer", recover_epochs=1.0,
                                 overrides=["train.progress=never", "train.lr=3e-3"])
    assert report["recovery"]["steps"] >= 1
    assert report["units"]["heads"]["pruned"] == 2  # counted in the recovered weights
    for layer in head_layers(model):
        (gone,) = report["units"]["heads"]["per_layer"][layer.name]
        assert not layer.proj.weight[:, gone * layer.hs:(gone + 1) * layer.hs].any()


def test_recovery_refuses_data_that_no_longer_fits_the_bundle(text_classifier_bundle, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("text,label\n" + "\n".join(f"unrelated words number {i},{'ab'[i % 2]}" for i in range(60)),
                     encoding="utf-8")
    with pytest.raises(UserError, match="no longer gives the preprocessing"):
        prune_bundle(load(text_classifier_bundle), 0.5, recover_epochs=1.0, overrides=[f"data.path={other}"])
