"""Bad input: one clear `error:` line naming what is wrong, exit code 2, no traceback,
and nothing already saved is lost or overwritten."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import run_cli
from PIL import Image

from practicum.cli import main


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def saved_run(tmp_path):
    """An earlier run's folder that a failing command must leave untouched."""
    run = tmp_path / "runs" / "earlier"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("name: earlier\n")
    (run / "checkpoints" / "last.pt").write_bytes(b"precious")
    return run


def write_inputs(d: Path) -> None:
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("a,b,label\n")
    (d / "ok.csv").write_text("a,b,label\n" + "1,x,p\n2,y,q\n3,x,p\n4,y,q\n" * 10)
    (d / "ragged.csv").write_text("a,b,label\n1,x,p\n2,y,q,extra\n3,x,p\n")
    (d / "latin1.csv").write_bytes("text,label\ncaf\xe9 ok,p\nhello there,q\n".encode("latin-1"))
    (d / "val_new_label.csv").write_text("a,b,label\n1,x,p\n2,y,zzz\n")
    (d / "typo.yaml").write_text("data:\n  path: builtin:digits\nmodel:\n  type: lenet\n  chanels: [8]\n")
    for cls, i, (h, w) in (("cat", 0, (8, 8)), ("cat", 1, (8, 8)), ("dog", 0, (9, 8)), ("dog", 1, (8, 8))):
        (d / "pets" / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((h, w), dtype=np.uint8)).save(d / "pets" / cls / f"{i}.png")


TABLE = ["--data.target", "label", "--data.features", "null"]
CASES = {
    "missing file": (["train", "quickstart", "--data.path", "{d}/nope.csv"],
                     ["data.path", "nope.csv", "not found"]),
    "empty file": (["train", "mlp_tabular", "--data.path", "{d}/empty.csv", *TABLE],
                   ["empty.csv", "empty"]),
    "header only": (["train", "mlp_tabular", "--data.path", "{d}/header_only.csv", *TABLE],
                    ["header_only.csv", "no data rows"]),
    "unknown column": (["train", "mlp_tabular", "--data.path", "{d}/ok.csv", "--data.target", "lable",
                        "--data.features", "null"], ["ok.csv", "'lable'", "did you mean 'label'"]),
    "non-utf8": (["train", "mlp_tabular", "--data.path", "{d}/latin1.csv", *TABLE],
                 ["latin1.csv:2", "UTF-8", "re-save"]),
    "ragged csv": (["train", "mlp_tabular", "--data.path", "{d}/ragged.csv", *TABLE],
                   ["ragged.csv:3", "expected 3 fields", "found 4"]),
    "unseen label": (["train", "mlp_tabular", "--data.path", "{d}/ok.csv", "--data.val_path",
                      "{d}/val_new_label.csv", *TABLE], ["val_new_label.csv", "'zzz'", "training data"]),
    "mixed image sizes": (["train", "quickstart", "--data.path", "{d}/pets"],
                          ["pets", "differ in size", "cat/0.png is 8x8", "dog/0.png is 8x9", "resize"]),
    "recipe typo": (["train", "{d}/typo.yaml"], ["typo.yaml:5", "model.chanels", "did you mean 'model.channels'"]),
    "bad override type": (["train", "quickstart", "--train.epochs", "many"],
                          ["train.epochs", "expected int >= 1", "'many'"]),
    "absent device": (["train", "mlp_tabular", "--device", "cuda:7"] if not torch.cuda.is_available()
                      else ["train", "mlp_tabular", "--device", f"cuda:{torch.cuda.device_count()}"],
                      ["train.device", "cuda"]),
    "fp16 on cpu": (["train", "mlp_tabular", "--device", "cpu", "--precision", "fp16"],
                    ["train.precision fp16 needs CUDA", "bf16"]),
    "unknown recipe": (["train", "no_such_recipe"], ["no_such_recipe", "not found", "quickstart"]),
    "not a bundle": (["predict", "{d}", "--input", "{d}/ok.csv"], ["not a practicum bundle", "bundle.json"]),
}


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: c.replace(" ", "_"))
def test_bad_input_is_one_clear_line(case, tmp_path, saved_run, capsys):
    write_inputs(tmp_path)
    before = snapshot(saved_run.parent)
    argv, expected = CASES[case]
    argv = [a.format(d=tmp_path) for a in argv] + ["--out_dir", str(saved_run)]
    code = main(argv if argv[0] == "train" else argv[:-2])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in expected:
        assert fragment in err[0], (fragment, err[0])
    assert "Traceback" not in err[0]
    assert snapshot(saved_run.parent) == before, "an earlier run was changed"
    assert sorted(p.name for p in saved_run.parent.iterdir()) == ["earlier"], "a run folder was created"


def test_real_process_prints_no_traceback_and_debug_does(tmp_path):
    write_inputs(tmp_path)
    quiet = run_cli("train", str(tmp_path / "typo.yaml"))
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert quiet.stderr.strip().splitlines()[-1].startswith("error: ")
    loud = run_cli("train", str(tmp_path / "typo.yaml"), "--debug")
    assert loud.returncode == 2 and "Traceback" in loud.stderr and "UserError" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == quiet.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_exit_codes_do_not_depend_on_debug(debug, monkeypatch, capsys):
    code = main(["train", "mlp_tabular", "--train.lrr", "3e-4", *debug])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --train.lrr: ")
    assert ("Traceback (most recent call last):" in err) == bool(debug)

    def broken(args, extra):
        raise RuntimeError("boom")

    monkeypatch.setattr("practicum.cli.cmd_config_fields", broken)
    assert main(["config", "fields", *debug]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: internal error: RuntimeError: boom")
    assert ("Traceback (most recent call last):" in err) == bool(debug)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "mlp_tabular", "--train.lrr", "3e-4"],
         "--train.lrr: unknown field 'train.lrr'; did you mean 'train.lr'?"),
        (["train", "mlp_tabular", "--train.lr", "fast"],
         "--train.lr: field 'train.lr' expected float > 0.0, got 'fast'"),
        (["train", "mlp_tabular", "--train.lr=fast"], "--train.lr: field 'train.lr' expected float"),
        (["train", "mlp_tabular", "--shots", "0"], "--shots: field 'data.shots' expected int >= 1"),
        (["pretrain", "--train.max_stepz", "5"], "--train.max_stepz: unknown field 'train.max_stepz'"),
    ],
    ids=["unknown_field", "bad_value", "equals_form", "command_flag", "pretrain"],
)
def test_override_errors_name_the_flag_not_the_recipe(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {expected}"), err
    assert ".yaml" not in err[0]


class _ClosedPipe:
    """A stdout whose reader has gone away, as `practicum ... | head` leaves it."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        pass


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert main(["data", "list"]) == 141
    assert capsys.readouterr().err == ""
