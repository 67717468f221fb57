"""The language-model commands: pretrain, generate and fill-mask, and their bad inputs
(empty corpus, binary file, a vocabulary the token ids cannot hold, a prompt longer than the
context, a bundle that is not a language model): one `error:` line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from practicum.cli import main

pytestmark = pytest.mark.slow

TINY_GPT = ["--model.preset", "gpt-tiny", "--model.block_size", "32", "--train.max_steps", "20",
            "--train.eval_every", "20", "--train.batch_size", "8", "--train.progress", "never",
            "--train.tensorboard", "false"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A tiny GPT and a tiny BERT pretrained on the embedded corpus, and a classifier bundle."""
    root = tmp_path_factory.mktemp("lm_bundles")
    assert main(["pretrain", "--out_dir", str(root / "gpt"), *TINY_GPT]) == 0
    bert = ["--model.preset", "bert-tiny", "--model.n_embd", "32", "--model.intermediate_size", "64",
            "--task.type", "masked_lm", "--data.corpus.tokenizer", "wordpiece",
            "--data.corpus.vocab_size", "400", *TINY_GPT[4:]]
    assert main(["pretrain", "--out_dir", str(root / "bert"), *bert, "--model.block_size", "32"]) == 0
    assert main(["train", "mlp_tabular", "--out_dir", str(root / "clf"), "--train.epochs", "1",
                 "--train.progress", "never", "--train.tensorboard", "false"]) == 0
    return {name: root / name / "bundle" for name in ("gpt", "bert", "clf")}


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    assert not any("Traceback" in line for line in err)
    return errors[0]


def test_pretrain_default_writes_a_bundle_and_samples(bundles, capsys):
    run = bundles["gpt"].parent
    assert (run / "samples.txt").read_text().strip()
    assert (bundles["gpt"] / "tokenizer.json").is_file()


def test_pretrain_piped_into_a_file_prints_progress_lines(tmp_path):
    import subprocess
    import sys

    tiny = [a for a in TINY_GPT if a not in ("--train.progress", "never")]  # the default: auto
    with open(tmp_path / "log.txt", "w") as log:  # stdout and stderr into a file, as `> log 2>&1`
        done = subprocess.run([sys.executable, "-m", "practicum", "pretrain", "--out_dir", str(tmp_path / "run"),
                               *tiny], stdout=log, stderr=subprocess.STDOUT, timeout=300)
    text = (tmp_path / "log.txt").read_text()
    assert done.returncode == 0, text
    steps = [line.split("  ")[0] for line in text.splitlines() if line.startswith("step ")]
    assert steps == [f"step {n}/20" for n in range(2, 21, 2)], text
    assert "loss" in text and "steps/s" in text and "eta" in text


def test_generate_streams_text_from_a_gpt_bundle(bundles, capsys):
    assert main(["generate", str(bundles["gpt"]), "--prompt", "The ", "--max-new-tokens", "12",
                 "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("The ") and len(out.strip()) > 4


def test_generate_batch_of_prompts_as_json(bundles, capsys):
    import json

    assert main(["generate", str(bundles["gpt"]), "--prompt", "a", "--prompt", "longer prompt",
                 "--max-new-tokens", "5", "--temperature", "0", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == ["a", "longer prompt"]
    assert all(r["finish_reason"] in ("length", "eos", "stop") for r in rows)


def test_generate_near_the_context_gives_every_token_asked_for(bundles, capsys):
    import json

    prompt = ("The return statement " * 2)[:30]  # 30 of the 32 positions
    assert main(["generate", str(bundles["gpt"]), "--prompt", prompt, "--max-new-tokens", "20",
                 "--temperature", "0", "--format", "json", "--no-stream"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["finish_reason"] == "length" and len(row["text"]) == 20  # one character a token


def test_a_prompt_longer_than_the_context_prints_only_the_error(bundles, capsys):
    capsys.readouterr()
    assert main(["generate", str(bundles["gpt"]), "--prompt", "x" * 40]) == 2
    out, err = capsys.readouterr()
    assert out == "", out  # the prompt is not echoed before the error
    assert err.startswith("error: prompt 0 has 40 tokens") and "at most 32" in err, err


def test_fill_mask_ranks_candidates(bundles, capsys):
    assert main(["fill-mask", str(bundles["bert"]), "--text", "The [MASK] of the function",
                 "--top-k", "4"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    probs = [float(ln.split()[0]) for ln in lines]
    assert len(probs) == 4 and probs == sorted(probs, reverse=True)


CASES = {
    "empty corpus": (lambda d, b: ["pretrain", "--data", str(_write(d / "empty.txt", "")), *TINY_GPT],
                     ["empty.txt", "no text"]),
    "binary file": (lambda d, b: ["pretrain", "--data", str(_write(d / "blob.txt", "ab\x00\x01\x02" * 50)), *TINY_GPT],
                    ["blob.txt", "binary"]),
    "vocabulary too large for uint16": (
        lambda d, b: ["pretrain", "--data", str(_write(d / "wide.txt", "".join(chr(0x10000 + i) for i in range(66000)))),
                      "--data.corpus.vocab_size", "70000", "--data.corpus.token_dtype", "uint16", *TINY_GPT],
        ["66,007 tokens", "uint16", "token_dtype"]),
    "prompt longer than the context": (
        lambda d, b: ["generate", str(b["gpt"]), "--prompt", "x" * 40], ["40", "context", "32"]),
    "generate on a classifier": (
        lambda d, b: ["generate", str(b["clf"]), "--prompt", "hi"], ["not a language model", "pretrain"]),
    "fill-mask on a GPT": (
        lambda d, b: ["fill-mask", str(b["gpt"]), "--text", "a [MASK] b"], ["causal", "generate"]),
    "generate on a BERT": (
        lambda d, b: ["generate", str(b["bert"]), "--prompt", "hi"], ["masked-LM", "fill-mask"]),
    "predict on a GPT": (
        lambda d, b: ["predict", str(b["gpt"]), "--input", '[{"text": "hi"}]'], ["language model", "generate"]),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: c.replace(" ", "_"))
def test_bad_lm_input_is_one_clear_line(case, bundles, tmp_path, capsys):
    make, expected = CASES[case]
    argv = make(tmp_path, bundles)
    if argv[0] == "pretrain":
        argv += ["--out_dir", str(tmp_path / "run")]
    capsys.readouterr()
    assert main(argv) == 2
    line = one_error(capsys)
    for fragment in expected:
        assert fragment in line, (fragment, line)
    assert not (tmp_path / "run").exists(), "a failed pretrain left a run folder"


def test_export_to_hugging_face_and_import_back_generates_the_same_text(bundles, tmp_path, capsys):
    hf, back = tmp_path / "hf", tmp_path / "back"
    assert main(["export-hf", str(bundles["gpt"]), "--out", str(hf)]) == 0
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in hf.iterdir()}
    assert main(["import", str(hf), "--out", str(back)]) == 0
    capsys.readouterr()
    outputs = []
    for bundle in (bundles["gpt"], back):
        assert main(["generate", str(bundle), "--prompt", "def ", "--max-new-tokens", "16",
                     "--temperature", "0", "--no-stream"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and len(outputs[0].rstrip("\n")) > len("def ")
