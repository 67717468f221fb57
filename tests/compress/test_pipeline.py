"""compress(): the new bundle, its compression record, the trade-off table (sizes from the real
files, counts, latencies, metrics against the library's own evaluation), and bad arguments."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from finetune_data import finetune_config

from practicum import api
from practicum.bundle import Bundle
from practicum.compress.pipeline import compress, describe
from practicum.compress.quantize import quantize_model, quantized_kind
from practicum.data import raw_split
from practicum.errors import UserError

REPEATS = 3


def quantized_layers(model: torch.nn.Module) -> dict[str, str]:
    return {n: quantized_kind(m) for n, m in model.named_modules() if quantized_kind(m)}


@pytest.fixture(scope="module")
def int8_text(text_classifier_bundle, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return compress(text_classifier_bundle, quantize="int8", out=tmp_path_factory.mktemp("c") / "int8",
                        repeats=REPEATS)
    finally:
        torch.set_num_threads(threads)


def test_int8_bundle_record_and_files(int8_text, text_classifier_bundle):
    out = int8_text.bundle
    assert sorted(p.name for p in out.iterdir()) == [
        "bundle.json", "compress.json", "compress.md", "metrics.json", "model.safetensors", "preprocess.json"]
    info = json.loads((out / "bundle.json").read_text())
    assert info["compression"]["parent"] == str(text_classifier_bundle)
    (step,) = info["compression"]["steps"]
    assert step["step"] == "quantize" and step["scheme"] == "int8" and step["versions"]["torch"] == torch.__version__
    assert step["quantized_layers"]["tok_emb"] == "QuantizedEmbedding"
    original = Bundle.load(text_classifier_bundle)
    assert info["config"] == json.loads((text_classifier_bundle / "bundle.json").read_text())["config"]
    loaded = Bundle.load(out)
    assert quantized_layers(loaded.model) == step["quantized_layers"]
    rows = ["my card was declined", "when will the refund arrive"]
    assert [p["prediction"] for p in loaded.predict(rows)] == [p["prediction"] for p in original.predict(rows)]


def test_the_table_measures_the_real_files(int8_text, text_classifier_bundle):
    table = json.loads((int8_text.bundle / "compress.json").read_text())
    assert table == json.loads(json.dumps(int8_text.table))
    original, small = table["rows"]
    assert (original["name"], small["name"]) == ("original", "int8")
    for row, folder in ((original, text_classifier_bundle), (small, int8_text.bundle)):
        assert row["weights_bytes"] == (Path(folder) / "model.safetensors").stat().st_size
        assert row["bundle_bytes"] > row["weights_bytes"]
        for b in ("1", "32"):
            assert 0 < row["latency_ms"][b]["p50"] <= row["latency_ms"][b]["p95"]
        assert set(row["metrics"]) == {"accuracy", "f1_macro"}
    assert small["weights_bytes"] < original["weights_bytes"] / 2
    assert small["delta"]["size_ratio"] == pytest.approx(original["weights_bytes"] / small["weights_bytes"])
    bundle = Bundle.load(text_classifier_bundle)
    assert original["parameters"] == sum(p.numel() for p in bundle.model.parameters())
    assert small["parameters"] == original["parameters"]
    assert original["nonzero_parameters"] == sum(int((p != 0).sum()) for p in bundle.model.parameters())
    test = raw_split(bundle.config.data, bundle.config.task, "test")  # the library's own evaluation
    assert original["metrics"]["accuracy"] == pytest.approx(bundle.evaluate(test)["accuracy"])
    assert small["metrics"]["accuracy"] == pytest.approx(Bundle.load(int8_text.bundle).evaluate(test)["accuracy"])
    assert small["delta"]["accuracy"] == pytest.approx(small["metrics"]["accuracy"] - original["metrics"]["accuracy"])
    assert abs(small["delta"]["accuracy"]) <= 0.06  # one test row of 18 may flip
    assert table["evaluation"].startswith("test split of") and table["latency"]["repeats"] == REPEATS
    md = (int8_text.bundle / "compress.md").read_text()
    assert md == int8_text.markdown and "| original |" in md and "| int8 |" in md
    assert json.loads((int8_text.bundle / "metrics.json").read_text())["accuracy"] == small["metrics"]["accuracy"]


def test_prune_then_quantize_keeps_the_zeros(text_classifier_bundle, tmp_path, one_thread):
    result = compress(text_classifier_bundle, prune=0.5, quantize="int8", out=tmp_path / "pq", repeats=REPEATS)
    steps = [s["step"] for s in result.steps]
    assert steps == ["prune", "quantize"]
    prune = result.steps[0]
    original, small = result.table["rows"]
    # the pruned zeros survive quantization; a few tiny survivors may round to zero as well
    dropped = original["nonzero_parameters"] - small["nonzero_parameters"]
    assert prune["zero_weights"] <= dropped <= prune["zero_weights"] * 1.05
    assert small["name"] == "prune 50% global + int8"


def test_default_out_is_a_sibling_and_never_overwrites(image_classifier_bundle, tmp_path, one_thread):
    bundle = shutil.copytree(image_classifier_bundle, tmp_path / "bundle")
    first = compress(bundle, quantize="static-int8", repeats=REPEATS)
    second = compress(bundle, quantize="static-int8", repeats=REPEATS)
    assert first.bundle == tmp_path / "bundle-compressed"
    assert second.bundle == tmp_path / "bundle-compressed-1"
    a, b = (Bundle.load(r.bundle) for r in (first, second))
    batch = a.preprocessor.load_inputs(raw_split(a.config.data, a.config.task, "test"))[0]
    with torch.no_grad():  # calibration is deterministic: the same int8 model twice
        assert torch.equal(a.model(image=batch["image"]), b.model(image=batch["image"]))
    row = first.table["rows"][1]
    assert row["metrics"]["accuracy"] >= first.table["rows"][0]["metrics"]["accuracy"] - 0.03


def test_language_model_int8_weight(tiny_causal_source, lm_text, tmp_path, one_thread):
    from practicum.generate import GenerationConfig, generate

    result = compress(tiny_causal_source, quantize="int8-weight", data=lm_text, out=tmp_path / "lm",
                      repeats=REPEATS)
    original, small = result.table["rows"]
    assert set(small["metrics"]) == {"loss", "perplexity"}
    assert abs(small["delta"]["loss"]) < 0.01 * original["metrics"]["loss"]
    assert small["delta"]["size_ratio"] > 3
    assert result.table["evaluation"] == str(lm_text)
    loaded = Bundle.load(result.bundle)
    assert (result.bundle / "tokenizer.json").is_file()
    gen = GenerationConfig(max_new_tokens=8, temperature=0)
    expected, _ = quantize_model(Bundle.load(tiny_causal_source).model, "int8-weight")
    ours = generate(loaded.model, loaded.tokenizer, ["my card"], gen)[0].text
    assert ours == generate(expected, loaded.tokenizer, ["my card"], gen)[0].text


@pytest.fixture(scope="module")
def lora_classifier(tiny_source, labelled_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lora") / "run"
    return api.train(finetune_config(tiny_source, labelled_csv, out, "lora", max_steps=4)).bundle


def test_a_lora_encoder_classifier_quantizes_and_reloads(lora_classifier, tmp_path, one_thread):
    result = compress(lora_classifier, quantize="int8", out=tmp_path / "q", repeats=REPEATS)
    assert result.table["evaluation"].startswith("val split of")  # the recipe holds out no test rows
    step = result.steps[0]
    assert step["quantized_layers"]["backbone.blocks.0.attn.qkv"] == "DynamicQuantizedLinear"
    assert step["float_layers"] == []
    bundle, loaded = Bundle.load(lora_classifier), Bundle.load(result.bundle)
    expected, _ = quantize_model(bundle.model, "int8")
    batch = bundle.preprocessor.load_inputs(["my card was declined", "refund please"])[0]
    with torch.no_grad():
        assert torch.equal(loaded.model(**batch), expected(**batch))


def test_distill_then_quantize(text_classifier_bundle, tmp_path, one_thread):
    student = {"name": "student", "model": {"type": "transformer", "d_model": 16, "n_heads": 2, "n_layers": 1,
                                            "d_ff": 32},
               "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "progress": "never"}}
    result = compress(text_classifier_bundle, distill=student, temperature=3.0, quantize="int8",
                      out=tmp_path / "small", repeats=REPEATS)
    distill, quantize = result.steps
    assert distill["teacher"] == str(text_classifier_bundle) and distill["temperature"] == 3.0
    assert distill["student_parameters"] < distill["teacher_parameters"] / 2
    assert Path(distill["student_run"]) == tmp_path / "small-student"
    info = json.loads((result.bundle / "bundle.json").read_text())
    assert info["config"]["model"]["d_model"] == 16
    assert result.table["rows"][1]["parameters"] == distill["student_parameters"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "nothing to do"),
    ({"prune": 1.0}, "between 0 and 1"),
    ({"prune": 0}, "between 0 and 1"),
    ({"quantize": "int8", "structured": True}, "add --prune"),
    ({"quantize": "int8", "recover_epochs": 1}, "add --prune"),
    ({"prune": 0.5, "scope": "row"}, "--scope"),
    ({"prune": 0.5, "recover_epochs": -1}, ">= 0"),
    ({"quantize": "fp8"}, "not a scheme"),
    ({"quantize": "int8", "temperature": 2.0}, "add --distill"),
    ({"distill": "transformer_text", "alpha": 1.5}, "between 0 and 1"),
    ({"quantize": "int8", "overrides": ["train.lr=1e-4"]}, "drop the overrides"),
    ({"quantize": "int8-weight"}, "for language models"),
])
def test_bad_arguments_stop_before_anything_is_written(text_classifier_bundle, tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        compress(text_classifier_bundle, out=tmp_path / "never", **kwargs)
    assert not (tmp_path / "never").exists()


def test_an_already_quantized_bundle_is_not_compressed_again(int8_text, tmp_path):
    with pytest.raises(UserError, match="already quantized"):
        compress(int8_text.bundle, prune=0.5, out=tmp_path / "again")


def test_a_language_model_without_evaluation_text_is_told_to_pass_data(tiny_causal_source, tmp_path):
    with pytest.raises(UserError, match="pass --data"):
        compress(tiny_causal_source, quantize="int8-weight", out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_scoring_on_a_file_uses_all_its_rows(text_classifier_bundle, labelled_csv, tmp_path, one_thread):
    result = compress(text_classifier_bundle, quantize="int8", data=labelled_csv, out=tmp_path / "q", repeats=1)
    assert result.table["evaluation"] == str(labelled_csv)
    every = Bundle.load(result.bundle).evaluate(str(labelled_csv))
    assert result.table["rows"][1]["metrics"]["accuracy"] == pytest.approx(every["accuracy"])


def test_describe_names_the_chain():
    steps = [{"step": "distill", "student_recipe": "recipes/student.yaml"},
             {"step": "prune", "amount": 0.3, "structured": True, "scope": "layer", "recover_epochs": 1},
             {"step": "quantize", "scheme": "int8"}]
    assert describe(steps) == "distill (student) + prune structured 30% layer + recovery + int8"
