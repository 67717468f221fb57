"""Export with parity checks: each format's artifact, loaded back by its own runtime
(onnxruntime, torch.jit.load, transformers, peft), gives the PyTorch bundle's outputs, also at
batch sizes and sequence lengths the exporter never saw; a failed check removes the export."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from finetune_data import finetune_config

import practicum
from practicum.bundle import Bundle
from practicum.compress import export_formats
from practicum.compress.export import export_bundle
from practicum.compress.export_samples import random_batch
from practicum.errors import UserError
from practicum.peft import lora_layers, merge_lora, unmerge_lora

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")


def bundle_outputs(bundle: Bundle, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        out = bundle.model(**batch)
    return out[0] if isinstance(out, tuple) else out


def onnx_outputs(folder: Path, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in batch.items()})[0])


@pytest.fixture(scope="module")
def lora_classifier(tmp_path_factory, tiny_source, labelled_csv) -> Path:
    """A BERT-style classifier fine-tuned with LoRA from the tiny masked LM."""
    out = tmp_path_factory.mktemp("export_lora") / "run"
    torch.set_num_threads(1)
    return practicum.train(finetune_config(tiny_source, labelled_csv, out, "lora", epochs=1)).bundle


@pytest.fixture(scope="module")
def lstm_classifier(tmp_path_factory, labelled_csv) -> Path:
    """A 2-layer bidirectional LSTM text classifier (packed sequences inside)."""
    out = tmp_path_factory.mktemp("export_lstm") / "run"
    torch.set_num_threads(1)
    return practicum.train(None, [
        f"data.path={labelled_csv}", "data.kind=text", "data.features=[text]", "data.target=label",
        "data.text.tokenizer=word", "model.type=rnn", "model.cell=lstm", "model.bidirectional=true",
        "model.num_layers=2", "model.hidden_size=16", "model.embedding_dim=16", "train.epochs=1",
        "train.tensorboard=false", "train.progress=never", f"out_dir={out}"]).bundle


# ---------------------------------------------------------------- onnx


@pytest.mark.slow
def test_onnx_transformer_classifier_matches_pytorch_with_dynamic_axes(text_classifier_bundle, tmp_path, one_thread):
    result = export_bundle(text_classifier_bundle, "onnx", tmp_path / "onnx", latency_runs=5)
    folder = result.path
    assert sorted(p.name for p in folder.iterdir()) == [
        "bundle.json", "export.json", "metrics.json", "model.onnx", "preprocess.json"]
    info = json.loads((folder / "export.json").read_text())
    assert info["exporter"] == "dynamo" and info["opset"] == 18
    assert info["inputs"] == ["tokens", "mask"] and info["outputs"] == ["logits"]
    assert info["dynamic_axes"]["tokens"] == {"0": "batch", "1": "sequence"}
    parity = info["parity"]
    assert parity["ok"] and parity["max_abs_diff"] < 1e-4 and parity["tolerance"] == 1e-4
    shapes = {tuple(b["inputs"]["tokens"]) for b in parity["batches"]}
    assert len(shapes) == 4 and {s[0] for s in shapes} == {5, 1} and len({s[1] for s in shapes}) == 2
    latency = info["latency"]
    assert latency["batch_size"] == 1 and latency["runs"] == 5
    assert 0 < latency["onnxruntime"]["p50"] <= latency["onnxruntime"]["p95"]
    assert 0 < latency["torch"]["p50"] <= latency["torch"]["p95"]

    # a batch size and a sequence length never seen at export time (traced at 2 rows)
    bundle = Bundle.load(text_classifier_bundle)
    batch, _, _ = bundle.preprocessor.load_inputs(["card declined today", "refund please", "abroad fees",
                                                   "how do i activate my card", "x", "travel", "money"])
    batch = {"tokens": batch["tokens"][:, :3], "mask": batch["mask"][:, :3]}  # (7, 3)
    torch.testing.assert_close(onnx_outputs(folder, batch), bundle_outputs(bundle, batch), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["image", "tabular"])
def test_onnx_cnn_and_mlp_match_pytorch(name, image_classifier_bundle, tabular_classifier_bundle, tmp_path,
                                        one_thread):
    source = image_classifier_bundle if name == "image" else tabular_classifier_bundle
    result = export_bundle(source, "onnx", tmp_path / name, latency_runs=0)
    assert result.parity["ok"] and result.parity["max_abs_diff"] < 1e-4 and result.latency is None
    bundle = Bundle.load(source)
    batch = random_batch(bundle.preprocessor.spec, 9, seed=3)  # 9 rows: never traced
    torch.testing.assert_close(onnx_outputs(result.path, batch), bundle_outputs(bundle, batch),
                               rtol=0, atol=1e-4)


@pytest.mark.slow
def test_onnx_lstm_uses_the_torchscript_exporter_and_handles_padding(lstm_classifier, tmp_path, one_thread):
    result = export_bundle(lstm_classifier, "onnx", tmp_path / "lstm", latency_runs=0)
    assert result.info["exporter"] == "torchscript" and result.parity["ok"]
    bundle = Bundle.load(lstm_classifier)
    batch, _, _ = bundle.preprocessor.load_inputs(["my card", "refund for the order please now", "abroad"])
    assert not batch["mask"].all()  # rows of different lengths: packing matters
    torch.testing.assert_close(onnx_outputs(result.path, batch), bundle_outputs(bundle, batch), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_onnx_causal_lm_gives_logits_for_any_batch_and_length(tiny_causal_source, tmp_path, one_thread):
    result = export_bundle(tiny_causal_source, "onnx", tmp_path / "lm", latency_runs=0)
    assert result.parity["ok"] and result.info["dynamic_axes"]["logits"] == {"0": "batch", "1": "sequence"}
    bundle = Bundle.load(tiny_causal_source)
    tokens = torch.randint(0, bundle.model.vocab_size, (3, 13), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[2, 9:] = False
    got = onnx_outputs(result.path, {"tokens": tokens, "mask": mask})
    with torch.no_grad():
        want = bundle.model(tokens, mask=mask)
    torch.testing.assert_close(got[mask], want[mask], rtol=0, atol=1e-4)


@pytest.mark.slow
def test_pretrained_classifier_exports_over_the_full_padded_width(lora_classifier, tmp_path, one_thread):
    """The model's own forward cuts all-padding columns (data-dependent); the export runs the
    full width and must still match, for batches whose longest text varies."""
    result = export_bundle(lora_classifier, "onnx", tmp_path / "ft", latency_runs=0)
    assert result.parity["ok"] and result.parity["max_abs_diff"] < 1e-4
    bundle = Bundle.load(lora_classifier)
    batch, _, _ = bundle.preprocessor.load_inputs(["card", "the refund is late"])
    padded = {"tokens": torch.nn.functional.pad(batch["tokens"], (0, 5)),
              "mask": torch.nn.functional.pad(batch["mask"], (0, 5))}  # extra all-padding columns
    torch.testing.assert_close(onnx_outputs(result.path, padded), bundle_outputs(bundle, batch), rtol=0, atol=1e-4)


# ---------------------------------------------------------------- torchscript


def test_torchscript_export_loads_back_and_matches(text_classifier_bundle, tmp_path, one_thread):
    result = export_bundle(text_classifier_bundle, "torchscript", tmp_path / "ts", latency_runs=3)
    assert (result.path / "model.torchscript.pt").is_file() and result.parity["ok"]
    assert set(result.latency) >= {"torch", "torchscript"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated since torch 2.9
        module = torch.jit.load(str(result.path / "model.torchscript.pt"))
    bundle = Bundle.load(text_classifier_bundle)
    batch = random_batch(bundle.preprocessor.spec, 6, seed=1)
    torch.testing.assert_close(module(batch["tokens"][:, :5], batch["mask"][:, :5]),
                               bundle_outputs(bundle, {k: v[:, :5] for k, v in batch.items()}), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- hf and peft


def test_hf_export_of_a_causal_lm_loads_in_transformers(tiny_causal_source, tmp_path):
    transformers = pytest.importorskip("transformers")
    result = export_bundle(tiny_causal_source, "hf", tmp_path / "hf")
    assert result.parity["ok"] and result.parity["compared"] == "causal_logits"
    assert {"config.json", "model.safetensors", "tokenizer.json", "bundle.json"} <= {
        p.name for p in result.path.iterdir()}
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(result.path), local_files_only=True).eval()
    tokens = torch.randint(0, 100, (2, 7))
    with torch.no_grad():
        theirs = hf(input_ids=tokens).logits
    torch.testing.assert_close(theirs, Bundle.load(tiny_causal_source).model(tokens), rtol=1e-4, atol=1e-4)


def test_hf_export_of_a_pretrained_classifier_writes_its_backbone(lora_classifier, tmp_path):
    pytest.importorskip("transformers")
    result = export_bundle(lora_classifier, "hf", tmp_path / "hf")
    assert result.parity["ok"] and result.parity["compared"] == "hidden"
    assert "backbone" in result.info["note"]
    config = json.loads((result.path / "config.json").read_text())
    assert config["model_type"] == "bert"


@pytest.mark.parametrize("fmt", ["hf", "peft"])
def test_hf_and_peft_refuse_a_classifier_without_a_pretrained_backbone(text_classifier_bundle, tmp_path, fmt):
    wanted = r"classification bundle \(model.type transformer\); --format \w+ needs a language model or a"
    with pytest.raises(UserError, match=wanted):
        export_bundle(text_classifier_bundle, fmt, tmp_path / fmt)
    assert not (tmp_path / fmt).exists()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bert", "llama"])
def test_peft_export_loads_with_peft_and_matches(family, lora_classifier, tiny_causal_source, labelled_csv,
                                                 tmp_path):
    """The adapters are made large first (one epoch barely moves B from zero), so that a wrong
    base or a lost adapter could not pass the check."""
    pytest.importorskip("peft")
    path = lora_classifier
    if family == "llama":
        torch.set_num_threads(1)
        path = practicum.train(finetune_config(tiny_causal_source, labelled_csv, tmp_path / "run", "lora",
                                               epochs=1)).bundle
    bundle = Bundle.load(path)
    backbone = bundle.model.backbone
    tokens = torch.randint(5, 100, (2, 6), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    with torch.no_grad():
        unmerge_lora(backbone)
        base = backbone.hidden_states(tokens)
        for layer in lora_layers(backbone):
            layer.lora_B.normal_(std=0.3)
        merge_lora(backbone)
        assert (backbone.hidden_states(tokens) - base).abs().max() > 1e-2  # the adapter matters

    result = export_bundle(bundle, "peft", tmp_path / "peft")
    assert result.parity["ok"] and result.parity["max_abs_diff"] < 1e-4
    assert result.parity["compared"] == ("causal_logits" if family == "llama" else "hidden")
    config = json.loads((result.path / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4
    assert config["task_type"] == ("CAUSAL_LM" if family == "llama" else "FEATURE_EXTRACTION")


def test_peft_export_of_a_bundle_without_lora_is_refused(tiny_causal_source, tmp_path):
    with pytest.raises(UserError, match="LoRA"):
        export_bundle(tiny_causal_source, "peft", tmp_path / "peft")


# ---------------------------------------------------------------- failures


def test_a_failed_parity_check_removes_the_export(tabular_classifier_bundle, tmp_path, monkeypatch):
    real = export_formats.onnx_runner

    def perturbed(folder):
        run = real(folder)
        return lambda batch: run(batch) + 1e-3

    monkeypatch.setattr(export_formats, "onnx_runner", perturbed)
    with pytest.raises(UserError, match=r"failed the parity check: parity: max abs diff 1\.0e-03 "
                                        r"\(tolerance 1e-04\) on 6 inputs: FAILED"):
        export_bundle(tabular_classifier_bundle, "onnx", tmp_path / "bad")
    assert not any(tmp_path.iterdir())  # neither the folder nor its staging copy is left
    result = export_bundle(tabular_classifier_bundle, "onnx", tmp_path / "loose", tolerance=1e-2, latency_runs=0)
    assert result.parity["ok"] and np.isclose(result.parity["max_abs_diff"], 1e-3, rtol=1e-3)


def test_bad_arguments_are_user_errors(tabular_classifier_bundle, tmp_path):
    with pytest.raises(UserError, match="--format 'tflite' is not one of onnx, hf, peft, torchscript"):
        export_bundle(tabular_classifier_bundle, "tflite")
    with pytest.raises(UserError, match="--tolerance must be a number >= 0"):
        export_bundle(tabular_classifier_bundle, "onnx", tmp_path / "x", tolerance=-1)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already holds other files"):
        export_bundle(tabular_classifier_bundle, "onnx", tmp_path / "taken")
    with pytest.raises(UserError, match="--opset applies to --format onnx"):
        export_bundle(tabular_classifier_bundle, "torchscript", tmp_path / "ts", opset=17)


def test_default_folder_is_beside_the_bundle_and_a_new_export_replaces_it(tabular_classifier_bundle, tmp_path):
    import shutil

    copy = tmp_path / "run" / "bundle"
    shutil.copytree(tabular_classifier_bundle, copy)
    first = export_bundle(copy, "torchscript", latency_runs=0)
    assert first.path == tmp_path / "run" / "bundle-torchscript"
    again = export_bundle(copy, "torchscript", check=False)
    assert again.path == first.path and again.parity == {"checked": False} and again.latency is None
    assert json.loads((first.path / "export.json").read_text())["parity"] == {"checked": False}
