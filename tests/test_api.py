"""The Python API: configs in any form, never overwriting a run, resume by folder."""

from __future__ import annotations

from pathlib import Path

import pytest

import practicum
from practicum.api import find_recipe, resolve_config
from practicum.config import RunConfig
from practicum.errors import UserError

TINY = ["data.path=builtin:iris", "model.type=mlp", "model.hidden_sizes=[8]", "train.epochs=2",
        "train.tensorboard=false"]


def test_configs_from_names_paths_dicts_and_objects(tmp_path):
    by_name = resolve_config("quickstart")
    assert by_name == resolve_config(find_recipe("quickstart"))
    assert resolve_config(by_name.model_dump(mode="json")) == by_name
    assert resolve_config(RunConfig(), ["train.lr=0.5"]).train.lr == 0.5
    with pytest.raises(UserError, match="not found"):
        find_recipe(tmp_path / "missing.yaml")


def test_shipped_recipes_are_shown_under_configs(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    assert find_recipe("mlp_tabular") == Path("configs/mlp_tabular.yaml")
    monkeypatch.chdir(tmp_path)
    assert find_recipe("mlp_tabular") == root / "configs" / "mlp_tabular.yaml"
    with pytest.raises(UserError, match="shipped recipe in .*configs/ "):
        find_recipe("no_such_recipe")


def test_override_errors_name_the_override_not_the_shipped_recipe():
    with pytest.raises(UserError) as err:
        practicum.train("mlp_tabular", ["train.lrr=3e-4"])
    message = str(err.value)
    assert message.startswith("override train.lrr=3e-4: unknown field 'train.lrr'; did you mean 'train.lr'?")
    assert "mlp_tabular.yaml" not in message and "recipes" not in message


def test_a_second_run_never_overwrites_the_first(tmp_path):
    first = practicum.train(None, [*TINY, f"out_dir={tmp_path / 'r'}"])
    stamp = (first.run_dir / "summary.json").read_text()
    second = practicum.train(None, [*TINY, f"out_dir={tmp_path / 'r'}"])
    assert first.run_dir == tmp_path / "r" and second.run_dir == tmp_path / "r-1"
    assert (first.run_dir / "summary.json").read_text() == stamp
    assert practicum.load_config(second.run_dir / "config.yaml").out_dir == str(tmp_path / "r-1")


def test_resume_a_finished_run_with_more_epochs(tmp_path):
    first = practicum.train(None, [*TINY, f"out_dir={tmp_path / 'r'}"])
    more = practicum.train(None, ["train.epochs=4"], resume=first.run_dir)
    assert more.run_dir == first.run_dir
    assert more.summary["steps"] == 2 * first.summary["steps"]


def test_resume_needs_an_earlier_run(tmp_path):
    with pytest.raises(UserError, match="cannot resume"):
        practicum.train(None, [*TINY], resume=tmp_path)
