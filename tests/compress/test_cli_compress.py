"""`practicum compress` end to end through the real command, and its `error:` lines."""

from __future__ import annotations

import json

import pytest
from clitools import run_cli

from practicum.bundle import Bundle
from practicum.cli import main


@pytest.mark.slow
def test_compress_then_predict_and_evaluate(text_classifier_bundle, labelled_csv, tmp_path, capsys):
    out = tmp_path / "small"
    done = run_cli("compress", str(text_classifier_bundle), "--quantize", "int8", "--out", str(out),
                   "--repeats", "2")  # the real command, in its own process
    assert done.returncode == 0, done.stderr
    assert "| original |" in done.stdout and "| int8 |" in done.stdout
    assert f"compressed bundle: {out}" in done.stdout
    table = json.loads((out / "compress.json").read_text())
    assert table["rows"][1]["weights_bytes"] == (out / "model.safetensors").stat().st_size
    assert main(["predict", str(out), "--input", '["my card was declined", "refund please"]']) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["evaluate", str(out), "--data", str(labelled_csv), "--format", "json"]) == 0
    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    assert accuracy == pytest.approx(Bundle.load(out).evaluate(str(labelled_csv))["accuracy"])


def test_compress_a_language_model_then_generate(tiny_causal_source, lm_text, tmp_path, capsys, one_thread):
    out = tmp_path / "lm8"
    assert main(["compress", str(tiny_causal_source), "--quantize", "int8-weight", "--data", str(lm_text),
                 "--out", str(out), "--repeats", "2"]) == 0
    printed = capsys.readouterr().out
    assert "| int8-weight |" in printed and "perplexity" in printed
    assert main(["generate", str(out), "--prompt", "my card", "--max-new-tokens", "5", "--temperature", "0",
                 "--no-stream", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompt"] == "my card"


@pytest.mark.parametrize(("args", "message"), [
    (["--quantize", "int5"], "--quantize 'int5' is not a scheme"),
    (["--prune", "1.5"], "--prune 1.5 must be a fraction"),
    ([], "nothing to do"),
    (["--quantize", "int8", "--temperature", "2"], "add --distill"),
    (["--quantize", "int8", "--train.lr", "1e-4"], "drop the overrides"),
])
def test_bad_arguments_exit_2_with_one_error_line(text_classifier_bundle, tmp_path, capsys, args, message):
    code = main(["compress", str(text_classifier_bundle), "--out", str(tmp_path / "never"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "never").exists()


def test_a_language_model_with_static_int8_is_refused(tiny_causal_source, capsys):
    assert main(["compress", str(tiny_causal_source), "--quantize", "static-int8"]) == 2
    assert "use --quantize int8-weight" in capsys.readouterr().err


def test_a_missing_bundle_is_refused(tmp_path, capsys):
    assert main(["compress", str(tmp_path / "nope"), "--quantize", "int8"]) == 2
    assert "does not exist" in capsys.readouterr().err
