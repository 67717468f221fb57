"""`practicum export --format onnx` and `practicum predict --runtime onnx`: the exported folder
predicts through onnxruntime with the bundle's own preprocessing, and gives the records that
the PyTorch bundle gives."""

from __future__ import annotations

import json

import pytest

from practicum import api
from practicum.cli import main
from practicum.compress.onnx_runtime import OnnxBundle, load_onnx_bundle

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

PENGUIN = {"island": "Biscoe", "bill_length_mm": 46.0, "bill_depth_mm": 15.0, "flipper_length_mm": 215,
           "body_mass_g": 5200, "sex": "male", "year": 2008}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, text_classifier_bundle, tabular_classifier_bundle, image_classifier_bundle):
    """name -> (bundle, its ONNX export folder), exported without the parity check (test_export
    covers it) to keep this file fast."""
    root = tmp_path_factory.mktemp("onnx_predict")
    out = {}
    for name, bundle in (("text", text_classifier_bundle), ("tabular", tabular_classifier_bundle),
                         ("image", image_classifier_bundle)):
        out[name] = (bundle, api.export(bundle, "onnx", root / name, check=False).path)
    return out


def predict_json(capsys, *args: str) -> list[dict]:
    assert main(["predict", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def assert_same_records(onnx_rows: list[dict], torch_rows: list[dict]) -> None:
    assert len(onnx_rows) == len(torch_rows) > 0
    for mine, ref in zip(onnx_rows, torch_rows, strict=True):
        assert set(mine) == set(ref)
        assert mine["input"] == ref["input"] and mine["prediction"] == ref["prediction"]
        assert mine["confidence"] == pytest.approx(ref["confidence"], abs=1e-5)
        assert mine["probabilities"] == pytest.approx(ref["probabilities"], abs=1e-5)


@pytest.mark.parametrize("name,args", [
    ("text", ["--input", "-", "--split", "test"]),  # the bundle's own test split
    ("tabular", ["--input", json.dumps(PENGUIN)]),
    ("image", ["--input", "builtin:digits", "--split", "test"]),
])
def test_predict_runtime_onnx_equals_predict(name, args, exported, capsys, one_thread):
    bundle, folder = exported[name]
    torch_rows = predict_json(capsys, str(bundle), *args)
    onnx_rows = predict_json(capsys, str(folder), "--runtime", "onnx", *args)
    assert_same_records(onnx_rows, torch_rows)


def test_onnx_bundle_evaluates_like_the_bundle(exported, one_thread):
    bundle, folder = exported["tabular"]
    onnx_bundle = load_onnx_bundle(folder)
    assert isinstance(onnx_bundle, OnnxBundle) and onnx_bundle.model is None
    from practicum.data import raw_split

    test = raw_split(onnx_bundle.config.data, onnx_bundle.config.task, "test")
    mine, ref = onnx_bundle.evaluate(test), api.load(bundle).evaluate(test)
    assert mine["accuracy"] == ref["accuracy"] and mine["confusion_matrix"] == ref["confusion_matrix"]


def test_export_cli_prints_the_folder_parity_and_latency(tabular_classifier_bundle, tmp_path, capsys, caplog):
    out = tmp_path / "tab-onnx"
    with caplog.at_level("INFO"):
        assert main(["export", str(tabular_classifier_bundle), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"exported onnx to {out} (model.onnx; dynamo exporter, opset 18)" in printed
    assert "PyTorch " in printed and "onnxruntime " in printed and "p95" in printed
    assert f"predict {out} --runtime onnx" in printed
    assert any("parity: max abs diff" in r.message and "(tolerance 1e-04) on 6 inputs: ok" in r.message
               for r in caplog.records)
    info = json.loads((out / "export.json").read_text())
    assert info["latency"]["runs"] == 50 and info["parity"]["ok"]


def test_predict_runtime_onnx_without_model_onnx_says_to_export(tabular_classifier_bundle, capsys):
    code = main(["predict", str(tabular_classifier_bundle), "--runtime", "onnx", "--input", json.dumps(PENGUIN)])
    err = capsys.readouterr().err
    assert code == 2 and "has no model.onnx; export it first: practicum export BUNDLE --format onnx" in err


@pytest.mark.slow
def test_cli_errors_for_a_bad_format_and_an_lm_folder(tiny_causal_source, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tiny_causal_source), "--format", "tflite"])
    assert exc.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err
    assert main(["export", str(tiny_causal_source), "--format", "onnx", "--out", str(tmp_path / "lm"),
                 "--no-check"]) == 0
    assert "parity: not checked (--no-check)" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "lm"), "--runtime", "onnx", "--input", '["hello"]']) == 2
    assert "holds a causal_lm model; predict --runtime onnx takes classifier" in capsys.readouterr().err


def test_missing_folder_is_a_user_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nowhere"), "--runtime", "onnx", "--input", "[]"]) == 2
    assert "does not exist" in capsys.readouterr().err
