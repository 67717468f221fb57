"""The ladder: every rung on the same split, figures that hold together, and its pages."""

from __future__ import annotations

import json
import math

import pytest
from finetune_data import finetune_config

from practicum import api
from practicum.errors import UserError
from practicum.ladder import mean_ci


def ladder_config(source, data, tmp_path, rungs):
    cfg = finetune_config(source, data, tmp_path / "run", epochs=2)
    cfg["ladder"] = {"rungs": rungs, "shots": 3, "seeds": 3,
                     "overrides": {"linear_probe": ["train.lr=1e-2"]}}
    cfg["data"]["leakage"] = "off"
    return cfg


def test_mean_ci_is_the_student_t_interval():
    mean, half = mean_ci([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9)
    assert half == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) * s / sqrt(n)
    assert mean_ci([0.5]) == (0.5, None)


@pytest.mark.slow
def test_ladder_runs_every_rung_on_one_split_and_writes_its_pages(tiny_source, labelled_csv, tmp_path):
    cfg = ladder_config(tiny_source, labelled_csv, tmp_path, ["zero_shot", "few_shot", "linear_probe"])
    ladder = api.ladder(cfg, out_dir=tmp_path / "ladder")
    assert [r.name for r in ladder.rungs] == ["zero_shot", "few_shot", "linear_probe"]
    zero, few, probe = ladder.rungs
    assert ladder.eval_split == "val" and ladder.classes == 3
    assert zero.seeds == 1 and zero.accuracy_ci is None and zero.trainable_params == 0
    assert few.seeds == 3 and few.accuracy_ci is not None and len(few.per_seed) == 3
    assert few.accuracy == pytest.approx(sum(r["accuracy"] for r in few.per_seed) / 3)
    assert len({r["accuracy"] for r in few.per_seed} | {-1}) >= 2  # seeds draw other shots
    assert probe.trainable_params == 3 * (32 + 1)  # a 32-wide head for 3 classes, nothing else
    assert probe.train_time_s > 0 and probe.run_dir
    for rung in ladder.rungs:
        assert 0.0 <= rung.accuracy <= 1.0 and rung.latency_ms > 0 and rung.peak_rss_mb > 0
    out = tmp_path / "ladder"
    saved = json.loads((out / "ladder.json").read_text())
    assert [r["name"] for r in saved["rungs"]] == ["zero_shot", "few_shot", "linear_probe"]
    md = (out / "ladder.md").read_text()
    assert md.count("\n| ") == 4  # header + 3 rungs
    html = (out / "ladder.html").read_text()
    assert "few_shot" in html and "data:image/png;base64," in html


def test_ladder_needs_a_fine_tuning_recipe(tmp_path):
    with pytest.raises(UserError, match="ladder needs a fine-tuning recipe"):
        api.ladder("quickstart", out_dir=tmp_path / "x")


def test_overrides_for_a_rung_that_does_not_train_are_refused(tiny_source, labelled_csv, tmp_path):
    cfg = ladder_config(tiny_source, labelled_csv, tmp_path, ["zero_shot"])
    cfg["ladder"]["overrides"] = {"zero_shot": ["train.lr=1"]}
    with pytest.raises(UserError, match="only training rungs take overrides"):
        api.ladder(cfg, out_dir=tmp_path / "x")


@pytest.mark.slow
def test_ladder_with_a_causal_model_scores_labels_in_context(tiny_causal_source, labelled_csv, tmp_path):
    cfg = ladder_config(tiny_causal_source, labelled_csv, tmp_path, ["zero_shot", "few_shot"])
    ladder = api.ladder(cfg, out_dir=tmp_path / "ladder")
    zero, few = ladder.rungs
    assert zero.method == "label log-likelihood" and few.method.startswith("in-context")
    assert few.seeds == 3 and all(0 <= r["accuracy"] <= 1 for r in few.per_seed)


def test_a_ladder_reads_back_from_its_json(tmp_path):
    from practicum.ladder import Ladder, Rung, read_ladder, write_ladder

    rungs = [Rung("zero_shot", "label-name cosine", 0.5, 0.4), Rung("few_shot", "lr", 0.7, 0.6, 3, 0.02, 0.03, 99)]
    ladder = Ladder("r", "m", "d.csv", "val", 10, 30, 3, 8, rungs, str(tmp_path))
    write_ladder(ladder, tmp_path)
    assert read_ladder(tmp_path / "ladder.json") == ladder
