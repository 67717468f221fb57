"""Checkpoint files: damaged or unsafe ones are one-line user errors; a killed write's
temporaries are removed by the next run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from clitools import ROOT, run_cli

from practicum.api import find_recipe
from practicum.cli import main
from practicum.errors import UserError
from practicum.train.checkpoint import load_checkpoint, remove_stale_temps, save_checkpoint

SHORT_RUN = ["train", "mlp_tabular", "--train.epochs", "1", "--train.tensorboard", "false"]


class Pickled:
    """A Python object: torch.save pickles it, and a safe load must refuse it."""


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "runs" / "x" / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.randn(64, 64)}, "state": {"step": 3}})
    return path


def damaged_versions(good: Path) -> dict[str, bytes]:
    data = good.read_bytes()
    return {"truncated": data[: len(data) // 2], "empty": b"", "not torch": b"hello world",
            "cut after the header": data[:100], "zip without its end": data[:-30]}


def test_a_good_checkpoint_loads(good):
    assert load_checkpoint(good)["state"] == {"step": 3}


def test_damaged_checkpoints_are_user_errors_naming_the_file(good):
    for what, data in damaged_versions(good).items():
        good.write_bytes(data)
        with pytest.raises(UserError) as err:
            load_checkpoint(good)
        message = str(err.value)
        assert f"checkpoint {good} is damaged or incomplete" in message, (what, message)
        assert "delete it to start over, or resume from another checkpoint" in message
        assert "\n" not in message


def test_an_unsafe_checkpoint_is_refused_without_torchs_advice(good):
    torch.save({"model": Pickled()}, good)
    with pytest.raises(UserError) as err:
        load_checkpoint(good)
    message = str(err.value)
    assert f"checkpoint {good} holds pickled Python objects" in message
    assert "Pickled" in message and "a safe load refuses" in message
    assert "practicum loads only its own checkpoints and safetensors files" in message
    for advice in ("weights_only", "trust", "add_safe_globals", "\n"):
        assert advice not in message


def test_a_checkpoint_that_is_not_a_dict_is_refused(good):
    torch.save([torch.ones(2)], good)
    with pytest.raises(UserError, match="not a practicum training checkpoint"):
        load_checkpoint(good)


def test_resume_from_a_truncated_checkpoint_is_one_line_exit_2(tmp_path, good, capsys):
    run = tmp_path / "penguins"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(find_recipe("mlp_tabular"), run / "config.yaml")
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert main(["train", "mlp_tabular", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: checkpoint "), err
    assert str(last) in err[0] and "damaged or incomplete" in err[0] and "delete it" in err[0]
    torch.save({"model": Pickled()}, last)
    assert main(["train", "mlp_tabular", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds pickled Python objects" in err[0] and "weights_only" not in err[0], err


def old(path: Path, data: bytes = b"partial") -> Path:
    path.write_bytes(data)
    past = time.time() - 3600
    os.utime(path, (past, past))
    return path


def test_stale_temporaries_of_the_writer_are_removed_and_nothing_else(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = [old(folder / ".last.pt.k2j_9x0a.tmp"), old(folder / ".best.safetensors.abcd1234.tmp")]
    kept = [old(folder / "last.pt"), old(folder / "notes.tmp"), old(folder / ".hidden"),
            old(folder / ".last.pt.tmp"), folder / ".last.pt.zzzzzzzz.tmp"]
    kept[-1].write_bytes(b"being written by this process")  # newer than this process
    os.symlink(tmp_path / "elsewhere", folder / ".link.abcdefgh.tmp")
    (tmp_path / "elsewhere").write_bytes(b"x")
    (folder / "sub").mkdir()
    kept.append(old(folder / "sub" / ".last.pt.abcdefgh.tmp"))  # only the folder itself is cleaned
    assert sorted(remove_stale_temps(folder)) == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert (tmp_path / "elsewhere").exists() and (folder / ".link.abcdefgh.tmp").is_symlink()


@pytest.mark.slow
def test_a_sigkilled_write_leaves_a_temporary_that_resuming_removes(tmp_path):
    """A process killed inside torch.save of last.pt leaves its temporary and the last good
    checkpoint; resuming the run (in a new process) removes the temporary."""
    run = tmp_path / "penguins"
    assert main([*SHORT_RUN, "--out_dir", str(run)]) == 0
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()
    child = (
        "import os, signal, sys, torch\n"
        "from pathlib import Path\n"
        "from practicum.train.checkpoint import save_checkpoint\n"
        "def die(payload, tmp):\n"
        "    Path(tmp).write_bytes(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "torch.save = die\n"
        "save_checkpoint(Path(sys.argv[1]), {'state': {}})\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(last)], cwd=ROOT, capture_output=True)
    assert done.returncode == -9, done.stderr
    left = list(last.parent.glob(".last.pt.*.tmp"))
    assert len(left) == 1 and last.read_bytes() == before
    done = run_cli("train", "mlp_tabular", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "removed 1 unfinished file" in done.stderr
    assert not left[0].exists() and last.is_file()
    assert not list(run.rglob("*.tmp"))
