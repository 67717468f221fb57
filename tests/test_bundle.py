"""Bundles: safetensors + JSON only, load in one call, predict with the training-time preprocessing."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

import practicum
from practicum.bundle import Bundle, find_bundle
from practicum.errors import UserError

FAST = ["train.epochs=15", "train.tensorboard=false", "train.lr=1e-2"]


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "iris"
    return practicum.train(None, ["data.path=builtin:iris", "model.type=mlp",
                                  "model.hidden_sizes=[16]", f"out_dir={out}", *FAST])


def test_bundle_holds_no_pickle_and_describes_itself(iris_run):
    files = sorted(p.name for p in iris_run.bundle.iterdir())
    assert files == ["bundle.json", "metrics.json", "model.safetensors", "preprocess.json"]
    info = json.loads((iris_run.bundle / "bundle.json").read_text())
    assert info["format"] == "practicum-bundle" and info["format_version"] == 1
    assert info["task"] == "classification" and info["label_names"] == ["setosa", "versicolor", "virginica"]
    assert info["config"]["model"]["type"] == "mlp" and info["parameters"] > 0


def test_load_predict_matches_the_run(iris_run):
    bundle = practicum.load(iris_run.run_dir)  # a run folder works as well as its bundle/
    assert isinstance(bundle, Bundle) and not bundle.model.training
    records = [{"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4,
                "petal width (cm)": 0.2},
               {"sepal length (cm)": 6.7, "sepal width (cm)": 3.0, "petal length (cm)": 5.2,
                "petal width (cm)": 2.3}]
    rows = bundle.predict(records)
    assert [r["prediction"] for r in rows] == ["setosa", "virginica"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    assert bundle.metrics["test"]["accuracy"] == iris_run.metrics["test"]["accuracy"]


def test_evaluate_on_a_labelled_file_equals_the_runs_test_metrics(iris_run, tmp_path):
    from practicum.data import raw_split

    cfg = practicum.load_config(iris_run.run_dir / "config.yaml")
    test = raw_split(cfg.data, cfg.task, "test")
    test.frame.to_csv(tmp_path / "test.csv", index=False)
    metrics = practicum.load(iris_run.bundle).evaluate(tmp_path / "test.csv")
    assert metrics["accuracy"] == pytest.approx(iris_run.metrics["test"]["accuracy"])


def test_regression_bundle_predicts_in_original_units(tmp_path):
    run = practicum.train(None, ["data.path=builtin:diabetes", "model.type=mlp", "task.type=regression",
                                 f"out_dir={tmp_path / 'diab'}", *FAST])
    bundle = practicum.load(run.bundle)
    from practicum.data import raw_split

    test = raw_split(bundle.config.data, bundle.config.task, "test")
    values = [r["prediction"] for r in bundle.predict(test)]
    assert 25 < sum(values) / len(values) < 346  # the target's range in original units
    assert bundle.evaluate(test)["mae"] == pytest.approx(run.metrics["test"]["mae"], rel=1e-5)


def test_text_bundle_takes_a_list_of_strings(tmp_path):
    run = practicum.train(None, ["data.path=builtin:chatterbot", "model.type=rnn", "model.hidden_size=16",
                                 "model.embedding_dim=16", f"out_dir={tmp_path / 'chat'}", *FAST])
    rows = practicum.load(run.bundle).predict(["What is AI?", "Do you like football?"])
    assert [r["input"] for r in rows] == ["What is AI?", "Do you like football?"]
    assert all(r["prediction"] in run.metrics["test"]["per_class"] for r in rows)


def test_damaged_or_foreign_bundles_are_user_errors(iris_run, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(iris_run.bundle, copy)
    with pytest.raises(UserError, match="not a practicum bundle"):
        find_bundle(tmp_path)
    info = json.loads((copy / "bundle.json").read_text())
    (copy / "bundle.json").write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(UserError, match="upgrade practicum"):
        Bundle.load(copy)
    (copy / "bundle.json").write_text(json.dumps(info))
    (copy / "model.safetensors").unlink()
    with pytest.raises(UserError, match="model.safetensors is missing"):
        Bundle.load(copy)
    (copy / "bundle.json").write_text("{broken")
    with pytest.raises(UserError, match=r"bundle.json:1: not valid JSON"):
        Bundle.load(copy)


def test_weights_are_safetensors_equal_to_the_best_checkpoint(iris_run):
    from safetensors.torch import load_file

    bundle = load_file(iris_run.bundle / "model.safetensors")
    best = load_file(iris_run.run_dir / "checkpoints" / "best.safetensors")
    assert bundle.keys() == best.keys() and all(torch.equal(bundle[k], best[k]) for k in best)


PENGUIN = {"island": "Dream", "bill_length_mm": 39.0, "bill_depth_mm": 18.5, "flipper_length_mm": 190,
           "body_mass_g": 3700, "sex": "female", "year": 2009}


def test_tabular_predict_warns_of_an_unseen_category_and_still_predicts(tabular_classifier_bundle, caplog):
    bundle = Bundle.load(tabular_classifier_bundle)
    with caplog.at_level(logging.WARNING, logger="practicum"):
        rows = bundle.predict([{**PENGUIN, "island": "Atlantis"}, PENGUIN])
    assert [r["prediction"] in bundle.task.label_names for r in rows] == [True, True]
    assert [r.getMessage() for r in caplog.records] == [
        "input: island: 1 value not seen in training ('Atlantis'); encoded as unknown (all zeros in the one-hot)"]


def test_tabular_predict_with_a_renamed_column_names_the_rename(tabular_classifier_bundle):
    record = {("bill_len" if k == "bill_length_mm" else k): v for k, v in PENGUIN.items()}
    with pytest.raises(UserError, match="no column 'bill_length_mm' .*; if 'bill_len' is it, rename that "
                                        "column to 'bill_length_mm'"):
        Bundle.load(tabular_classifier_bundle).predict([record])


def test_tabular_evaluate_counts_unseen_categories(tabular_classifier_bundle):
    from practicum.data import raw_split
    from practicum.data.raw import Table

    bundle = Bundle.load(tabular_classifier_bundle)
    test = raw_split(bundle.config.data, bundle.config.task, "test")
    assert "unknown_categories" not in bundle.evaluate(test)
    frame = test.frame.reset_index(drop=True)
    frame.loc[:2, "island"] = "Atlantis"
    frame.loc[5, "sex"] = "M"
    frame.loc[6, "sex"] = None  # missing, not unknown
    assert bundle.evaluate(Table(frame, "new.csv"))["unknown_categories"] == {"island": 3, "sex": 1}


def linked_out(bundle, tmp_path, name):
    """A copy of `bundle` whose `name` is a symbolic link to a copy of the file outside it."""
    copy = tmp_path / f"linked_{name}" / "bundle"
    shutil.copytree(bundle, copy)
    outside = tmp_path / f"outside_{name}"
    shutil.move(copy / name, outside)
    (copy / name).symlink_to(outside)
    return copy, outside


@pytest.mark.parametrize("name", ["bundle.json", "model.safetensors", "preprocess.json", "metrics.json"])
def test_a_file_linked_from_outside_the_bundle_is_refused(iris_run, tmp_path, name):
    copy, outside = linked_out(iris_run.bundle, tmp_path, name)
    with pytest.raises(UserError) as err:
        Bundle.load(copy.parent)  # the run folder that holds it, too
    assert str(err.value) == (f"bundle file {copy / name} resolves outside the bundle folder "
                              f"(to {outside}); copy the file into the bundle")


@pytest.mark.parametrize("name", ["tokenizer.json", "model.safetensors"])
def test_a_language_model_bundle_refuses_links_out_too(tiny_source, tmp_path, name):
    copy, outside = linked_out(tiny_source, tmp_path, name)
    with pytest.raises(UserError, match=f"bundle file .*{name} resolves outside the bundle folder"):
        Bundle.load(copy)


def test_links_inside_the_bundle_and_a_linked_bundle_folder_load(iris_run, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(iris_run.bundle, copy)
    (copy / "weights").mkdir()
    shutil.move(copy / "model.safetensors", copy / "weights" / "model.safetensors")
    (copy / "model.safetensors").symlink_to(Path("weights") / "model.safetensors")
    (tmp_path / "alias").symlink_to(copy)
    record = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4,
              "petal width (cm)": 0.2}
    assert Bundle.load(tmp_path / "alias").predict([record]) == Bundle.load(iris_run.bundle).predict([record])


def test_a_linked_folder_leading_out_of_the_bundle_is_refused(iris_run, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(iris_run.bundle, copy)
    (tmp_path / "elsewhere").mkdir()
    (copy / "extra").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="extra resolves outside the bundle folder"):
        Bundle.load(copy)


def test_an_onnx_export_with_a_model_linked_from_outside_is_refused(iris_run, tmp_path):
    from practicum.compress.onnx_runtime import load_onnx_bundle

    copy = tmp_path / "bundle-onnx"
    shutil.copytree(iris_run.bundle, copy)
    (tmp_path / "model.onnx").write_bytes(b"not read")
    (copy / "model.onnx").symlink_to(tmp_path / "model.onnx")
    with pytest.raises(UserError, match="model.onnx resolves outside the bundle folder"):
        load_onnx_bundle(copy)
