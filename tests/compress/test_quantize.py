"""Quantization: the quantized modules are really quantized, their outputs stay close to the
float model's (tolerance: 5% of the largest float output, about 10x what int8 rounding gives
here), and a saved quantized bundle loads back bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from practicum.bundle import Bundle
from practicum.compress.quantize import (
    QuantizedEmbedding,
    check_scheme,
    quantize_model,
    quantized_kind,
    weight_tensors,
)
from practicum.compress.store import save_compressed
from practicum.config import LeNetConfig, ResNetConfig, RNNConfig
from practicum.data import raw_split
from practicum.errors import UserError
from practicum.models.cnn import LeNet, ResNet
from practicum.models.rnn import RNNClassifier

REL_TOL = 0.05


def run(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "target"})


def split_rows(bundle: Bundle, split: str = "test") -> dict[str, torch.Tensor]:
    raw = raw_split(bundle.config.data, bundle.config.task, split)
    return bundle.preprocessor.transform(raw, with_target=True)


def assert_close(quantized: torch.Tensor, reference: torch.Tensor) -> None:
    limit = REL_TOL * float(reference.abs().max())
    assert float((quantized - reference).abs().max()) <= limit


def float_weights(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# ---------------------------------------------------------------- embeddings


def test_quantized_embedding_rounds_each_row_to_its_own_scale():
    torch.manual_seed(0)
    emb = nn.Embedding(50, 12, padding_idx=0)
    with torch.no_grad():
        emb.weight[0].zero_()
        emb.weight[7] *= 100.0  # a large row must not cost the others their precision
    q = QuantizedEmbedding.from_float(emb)
    assert q.qweight.dtype == torch.int8 and q.scale.shape == (50,)
    ids = torch.tensor([[0, 3, 7], [49, 7, 0]])
    error = (q(ids) - emb(ids)).abs()  # (2, 3, 12)
    half_step = (q.scale[ids] / 2).unsqueeze(-1) + 1e-7
    assert bool((error <= half_step).all())
    assert bool((q(ids)[0, 0] == 0).all())  # the padding row stays exactly zero
    assert torch.equal(q.weight[ids], q(ids))
    assert float(q.scale[3]) < float(q.scale[7]) / 50


# ---------------------------------------------------------------- dynamic int8


def test_dynamic_int8_text_classifier(text_classifier_bundle, one_thread):
    bundle = Bundle.load(text_classifier_bundle)
    q, record = quantize_model(bundle.model, "int8")
    assert type(q.tok_emb) is QuantizedEmbedding
    linears = [n for n, m in bundle.model.named_modules() if isinstance(m, nn.Linear)]
    assert {n: record["quantized_layers"][n] for n in linears} == dict.fromkeys(linears, "DynamicQuantizedLinear")
    assert record["float_layers"] == [] and record["scheme"] == "int8"
    assert all(not isinstance(m, nn.Linear) for m in q.modules())
    batch = split_rows(bundle)
    ref, out = run(bundle.model, batch), run(q, batch)
    assert_close(out, ref)
    assert torch.equal(out.argmax(-1), ref.argmax(-1))
    assert sum(t.numel() for t in weight_tensors(q)) == float_weights(bundle.model)
    assert any(isinstance(m, nn.Linear) for m in bundle.model.modules())  # the original is untouched


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_dynamic_int8_recurrent(cell, one_thread):
    torch.manual_seed(0)
    cfg = RNNConfig(cell=cell, embedding_dim=16, hidden_size=16, num_layers=2, bidirectional=True)
    model = RNNClassifier(cfg, vocab_size=40, num_outputs=3).eval()
    q, record = quantize_model(model, "int8")
    tokens = torch.randint(1, 40, (6, 9))
    tokens[:3, 5:] = 0  # padded rows go through the packed path
    ref, out = run(model, {"tokens": tokens}), run(q, {"tokens": tokens})
    assert_close(out, ref)
    if cell == "rnn":  # dynamic quantization has no kernel for a plain nn.RNN: it stays float
        assert record["float_layers"] == ["rnn"] and isinstance(q.rnn, nn.RNN)
    else:
        assert record["quantized_layers"]["rnn"] == f"DynamicQuantized{cell.upper()}"


# ---------------------------------------------------------------- static int8


def test_static_int8_lenet(image_classifier_bundle, one_thread):
    bundle = Bundle.load(image_classifier_bundle)
    images = split_rows(bundle, "train")["image"][:256]
    q, record = quantize_model(bundle.model, "static-int8", images)
    kinds = set(record["quantized_layers"].values())
    assert kinds == {"QuantizedConvReLU2d", "QuantizedLinearReLU", "QuantizedLinear"}
    assert record["calibration_rows"] == 256 and record["example_shape"] == [1, 1, 8, 8]
    assert next(q.parameters()).device.type == "cpu"  # device lookups still work
    batch = split_rows(bundle)
    ref, out = run(bundle.model, batch), run(q, batch)
    assert_close(out, ref)
    agree = float((out.argmax(-1) == ref.argmax(-1)).float().mean())
    assert agree >= 0.95


def test_static_int8_resnet_with_residuals(one_thread):
    torch.manual_seed(0)
    model = ResNet(ResNetConfig(widths=[8, 16], blocks=[1, 1]), (1, 8, 8), 4).eval()
    images = torch.randn(96, 1, 8, 8)
    q, record = quantize_model(model, "static-int8", images)
    assert "QuantizedConvReLU2d" in record["quantized_layers"].values()
    assert_close(run(q, {"image": images[:16]}), run(model, {"image": images[:16]}))


def test_static_int8_refuses_an_even_kernel():
    model = LeNet(LeNetConfig(channels=[4], kernel_size=2, hidden_size=8), (1, 8, 8), 3).eval()
    with pytest.raises(UserError, match="even kernel"):
        quantize_model(model, "static-int8", torch.randn(8, 1, 8, 8))


# ---------------------------------------------------------------- weight-only (language models)


def test_int8_weight_language_model(tiny_causal_source, one_thread):
    from practicum.generate import GenerationConfig, generate

    bundle = Bundle.load(tiny_causal_source)
    q, record = quantize_model(bundle.model, "int8-weight")
    assert record["quantized_layers"]["blocks.0.attn.qkv"] == "Linear(Int8Tensor)"
    assert record["quantized_layers"]["wte"] == "QuantizedEmbedding"
    assert record["versions"]["torchao"]
    tokens = torch.randint(0, bundle.model.vocab_size, (2, 16))
    assert_close(run(q, {"tokens": tokens}), run(bundle.model, {"tokens": tokens}))
    text = generate(q, bundle.tokenizer, ["my card"], GenerationConfig(max_new_tokens=6, temperature=0))
    assert len(text) == 1 and text[0].finish_reason in ("length", "stop")


def test_int4_weight_is_refused_clearly_where_torchao_cannot_run_it():
    try:
        check_scheme("int4-weight", "causal_lm", "lm", True)
    except UserError as exc:
        assert "int4-weight is not available on this machine" in str(exc)
        assert "int8-weight" in str(exc)
    else:
        pytest.skip("torchao runs int4 weight-only quantization on this machine")


@pytest.mark.parametrize(("scheme", "task", "model_type", "is_lm", "message"), [
    ("int3", "classification", "mlp", False, "not a scheme"),
    ("int8", "causal_lm", "lm", True, "use --quantize int8-weight"),
    ("static-int8", "causal_lm", "lm", True, "use --quantize int8-weight"),
    ("int8-weight", "classification", "transformer", False, "use --quantize int8"),
    ("static-int8", "classification", "transformer", False, "quantizes CNNs"),
])
def test_check_scheme_errors(scheme, task, model_type, is_lm, message):
    with pytest.raises(UserError, match=message):
        check_scheme(scheme, task, model_type, is_lm)


# ---------------------------------------------------------------- saving and loading


def saved_and_loaded(bundle: Bundle, model: nn.Module, record: dict, folder) -> Bundle:
    save_compressed(bundle, model, folder, {"parent": str(bundle.path), "steps": [record]})
    return Bundle.load(folder)


def test_quantized_bundles_load_back_quantized_and_identical(text_classifier_bundle, image_classifier_bundle,
                                                             tiny_causal_source, tmp_path, one_thread):
    text, image, lm = (Bundle.load(p) for p in (text_classifier_bundle, image_classifier_bundle, tiny_causal_source))
    cases = [
        (text, *quantize_model(text.model, "int8"), split_rows(text)),
        (image, *quantize_model(image.model, "static-int8", split_rows(image, "train")["image"][:128]),
         split_rows(image)),
        (lm, *quantize_model(lm.model, "int8-weight"), {"tokens": torch.randint(0, lm.model.vocab_size, (3, 20))}),
    ]
    for i, (bundle, model, record, batch) in enumerate(cases):
        loaded = saved_and_loaded(bundle, model, record, tmp_path / str(i))
        assert torch.equal(run(loaded.model, batch), run(model, batch))
        kinds = {n: quantized_kind(m) for n, m in loaded.model.named_modules() if quantized_kind(m)}
        assert kinds == record["quantized_layers"]
        stored = load_file(tmp_path / str(i) / "model.safetensors")  # plain tensors only
        assert any(k.endswith(":int") or k.endswith(":qdata") or k.endswith("qweight") for k in stored)
        info = json.loads((tmp_path / str(i) / "bundle.json").read_text())
        assert info["compression"]["steps"][0]["scheme"] == record["scheme"]


def test_quantized_lstm_round_trip(labelled_csv, tmp_path, one_thread):
    import practicum

    result = practicum.train(None, [
        f"data.path={labelled_csv}", "data.kind=text", "data.features=[text]", "data.target=label",
        "data.text.tokenizer=word", "model.type=rnn", "model.cell=lstm", "model.embedding_dim=8",
        "model.hidden_size=8", "model.num_layers=2", "train.epochs=1", "train.progress=never",
        f"out_dir={tmp_path / 'run'}"])
    bundle = Bundle.load(result.bundle)
    model, record = quantize_model(bundle.model, "int8")
    loaded = saved_and_loaded(bundle, model, record, tmp_path / "q")
    assert type(loaded.model.rnn).__name__ == "LSTM" and loaded.model.rnn._get_name() == "DynamicQuantizedLSTM"
    batch = split_rows(bundle)
    assert torch.equal(run(loaded.model, batch), run(model, batch))
    every_row = bundle.preprocessor.load_inputs(str(labelled_csv))[0]
    expected = bundle.task.metrics(run(model, every_row), every_row["target"])["accuracy"]
    assert loaded.evaluate(str(labelled_csv))["accuracy"] == expected


def test_a_damaged_quantized_file_is_a_clear_error(text_classifier_bundle, tmp_path):
    bundle = Bundle.load(text_classifier_bundle)
    model, record = quantize_model(bundle.model, "int8")
    save_compressed(bundle, model, tmp_path / "q", {"parent": "p", "steps": [record]})
    weights = tmp_path / "q" / "model.safetensors"
    stored = load_file(weights)
    del stored["head._packed_params._packed_params:0:scale"]
    save_file(stored, weights)
    with pytest.raises(UserError, match="head._packed_params._packed_params:0:scale is missing"):
        Bundle.load(tmp_path / "q")
