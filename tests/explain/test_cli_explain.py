"""`practicum explain` end to end for every bundle kind (PNG files, explain.json, index.html),
the Python API, and bad input: one `error:` line and exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from practicum import api
from practicum.cli import main
from practicum.errors import UserError

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"
RECORD = json.dumps({"island": "Biscoe", "bill_length_mm": 46, "bill_depth_mm": 15, "flipper_length_mm": 215,
                     "body_mass_g": 5200, "sex": "male", "year": 2008})


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["explain", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def check_folder(folder: Path, pngs: list[str]) -> dict:
    """index.html embeds every PNG; explain.json lists them; each PNG is a real PNG."""
    saved = json.loads((folder / "explain.json").read_text())
    html = (folder / "index.html").read_text()
    for name in pngs:
        assert (folder / name).read_bytes().startswith(PNG), name
        assert name in saved["files"], name
    assert html.count("data:image/png;base64,") == sum(1 for f in saved["files"] if f.endswith(".png"))
    return saved


def test_text_classifier(capsys, text_classifier_bundle, tmp_path, one_thread):
    code, out, err = run(capsys, str(text_classifier_bundle), "--input", "my card was declined",
                         "--input", "the refund is late", "--steps", "16", "--out", str(tmp_path / "x"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("[0] my card was declined") and "target" in lines[0] and "delta" in lines[0]
    assert lines[1].startswith("[1] the refund is late") and str(tmp_path / "x") in lines[-1]
    saved = check_folder(tmp_path / "x", ["tokens_0.png", "tokens_1.png", "attention_0_layer1.png",
                                          "attention_0_layer2.png", "rollout_1.png"])
    item = saved["inputs"][0]
    assert saved["kind"] == "text" and saved["labels"] == ["card", "refund", "travel"]
    assert item["tokens"] == ["my", "card", "was", "declined"] and item["attributions"]["steps"] == 16
    top = max(range(4), key=lambda i: item["attributions"]["scores"][i])
    assert f"+ {item['tokens'][top]} " in lines[0]  # the strongest token is named in the summary
    html = (tmp_path / "x" / "index.html").read_text()
    assert ">declined</span>" in html and "convergence delta" in html.lower()


def test_image_classifier(capsys, image_classifier_bundle, tmp_path, one_thread):
    code, out, err = run(capsys, str(image_classifier_bundle), "--input", "builtin:digits", "--split", "test",
                         "--max-inputs", "2", "--steps", "16", "--target", "3", "--out", str(tmp_path / "x"))
    assert code == 0, err
    saved = check_folder(tmp_path / "x", ["image_0.png", "image_1.png"])
    assert len(saved["inputs"]) == 2 and {i["target"] for i in saved["inputs"]} == {"3"}


def test_tabular_classifier(capsys, tabular_classifier_bundle, tmp_path, one_thread):
    code, out, err = run(capsys, str(tabular_classifier_bundle), "--input", RECORD, "--out", str(tmp_path / "x"))
    assert code == 0, err
    saved = check_folder(tmp_path / "x", ["features_0.png"])
    assert "island" in saved["inputs"][0]["features"] and "row 0" in out


def test_pretrained_classifier(capsys, pretrained_classifier_bundle, tmp_path, one_thread):
    code, out, err = run(capsys, str(pretrained_classifier_bundle), "--input", "my card", "--steps", "8",
                         "--out", str(tmp_path / "x"))
    assert code == 0, err
    saved = check_folder(tmp_path / "x", ["tokens_0.png", "attention_0_layer1.png", "rollout_0.png"])
    assert saved["inputs"][0]["attention"]["pooling"] == "mean"


def test_causal_and_masked_language_models(capsys, tiny_causal_source, tiny_source, tmp_path, one_thread):
    code, out, err = run(capsys, str(tiny_causal_source), "--input", "my card was", "--top-k", "3",
                         "--out", str(tmp_path / "gpt"))
    assert code == 0, err
    assert "next token" in out
    saved = check_folder(tmp_path / "gpt", ["logit_lens_0.png", "attention_0_layer1.png", "rollout_0.png"])
    assert saved["views"] == ["logit-lens", "attention"] and len(saved["inputs"][0]["logit_lens"]["top"][0][0]) == 3
    code, out, err = run(capsys, str(tiny_source), "--input", "my card was", "--out", str(tmp_path / "bert"))
    assert code == 0, err
    saved = check_folder(tmp_path / "bert", ["attention_0_layer2.png", "rollout_0.png"])
    assert saved["views"] == ["attention"] and not (tmp_path / "bert" / "logit_lens_0.png").exists()


def test_default_folder_is_next_to_the_bundle_and_a_rerun_replaces_it(capsys, text_classifier_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(text_classifier_bundle, bundle)
    assert run(capsys, str(bundle), "--input", "my card", "--steps", "4")[0] == 0
    folder = tmp_path / "bundle-explain"
    assert (folder / "index.html").is_file() and (folder / "attention_0_layer1.png").is_file()
    (folder / "mine.png").write_bytes(PNG)  # not ours: kept
    assert run(capsys, str(bundle), "--input", "my card", "--view", "attributions", "--steps", "4")[0] == 0
    assert not (folder / "attention_0_layer1.png").exists() and (folder / "tokens_0.png").is_file()
    assert (folder / "mine.png").is_file()


def test_python_api_returns_the_numbers(text_classifier_bundle, tmp_path, one_thread):
    result = api.explain(text_classifier_bundle, ["my card"], write=False, steps=8, views=["attributions"])
    assert result.out_dir is None and result.files == [] and len(result.items[0]["attributions"]["scores"]) == 2
    with pytest.raises(UserError, match="unknown option 'stepz'"):
        api.explain(text_classifier_bundle, ["my card"], stepz=8)


@pytest.mark.parametrize(("fixture", "args", "message"), [
    ("text_classifier_bundle", ["--input", "my card", "--target", "nope"], "not a class of this bundle"),
    ("text_classifier_bundle", ["--input", "   "], "--input is empty"),
    ("text_classifier_bundle", ["--input", "[]"], "--input is empty"),
    ("text_classifier_bundle", ["--input", "my card", "--steps", "0"], "--steps must be >= 1"),
    ("text_classifier_bundle", ["--input", "my card", "--view", "logit-lens"], "not available"),
    ("rnn_text_bundle", ["--input", "my card", "--view", "attention"], "supports attributions"),
    ("tiny_source", ["--input", "my card", "--view", "logit-lens"], "masked language-model"),
    ("tiny_causal_source", ["--input", "my card", "--target", "card"], "drop --target"),
    ("tabular_classifier_bundle", ["--input", "a", "--input", "b"], "give one --input"),
    ("image_classifier_bundle", ["--input", "{\"x\": 1}"], "numeric array"),
])
def test_bad_input_is_one_error_line_and_exit_2(capsys, request, fixture, args, message, tmp_path):
    code, _, err = run(capsys, str(request.getfixturevalue(fixture)), *args, "--out", str(tmp_path / "x"))
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: ") and message in lines[-1], err
    assert not any("Traceback" in line for line in lines)
    assert not (tmp_path / "x").exists()


def test_a_folder_that_is_not_a_bundle(capsys, tmp_path):
    code, _, err = run(capsys, str(tmp_path), "--input", "x")
    assert code == 2 and "not a practicum bundle" in err
