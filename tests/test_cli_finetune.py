"""The fine-tuning commands end to end through the real CLI: train --shots, ladder, export-peft,
and their bad input (one error line, exit 2)."""

from __future__ import annotations

import json

import pytest
import yaml
from clitools import run_cli
from finetune_data import finetune_config

pytestmark = pytest.mark.slow


def recipe(tmp_path, source, data, **extra):
    cfg = finetune_config(source, data, tmp_path / "run", **extra)
    cfg["data"]["leakage"] = "off"
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_with_shots_uses_k_per_class(tiny_source, labelled_csv, tmp_path):
    out = run_cli("train", str(recipe(tmp_path, tiny_source, labelled_csv, max_steps=2)), "--shots", "4")
    assert out.returncode == 0, out.stderr
    assert "few-shot: 12 training rows (4 per class)" in out.stderr
    assert "val: accuracy" in out.stdout


def test_ladder_command_prints_the_table_and_writes_the_page(tiny_source, labelled_csv, tmp_path):
    out = run_cli("ladder", str(recipe(tmp_path, tiny_source, labelled_csv)), "--rungs",
                  "zero_shot,few_shot", "--seeds", "2", "--shots", "3", "--out", str(tmp_path / "lad"))
    assert out.returncode == 0, out.stderr
    assert "| zero_shot |" in out.stdout and "| few_shot |" in out.stdout
    saved = json.loads((tmp_path / "lad" / "ladder.json").read_text())
    assert saved["shots"] == 3 and [r["seeds"] for r in saved["rungs"]] == [1, 2]
    assert (tmp_path / "lad" / "ladder.html").is_file()


def test_ladder_of_a_recipe_without_a_pretrained_model_is_one_error_line(tmp_path):
    out = run_cli("ladder", "quickstart", "--out", str(tmp_path / "x"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "ladder needs a fine-tuning recipe" in out.stderr


def test_export_peft_of_a_bundle_without_lora_is_one_error_line(tiny_source, tmp_path):
    out = run_cli("export-peft", str(tiny_source), "--out", str(tmp_path / "a"))
    assert out.returncode == 2 and "no LoRA adapters" in out.stderr, out.stderr
    assert not (tmp_path / "a").exists()
