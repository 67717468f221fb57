"""The CLI commands other than train (which test_e2e covers): printing over practicum.api."""

from __future__ import annotations

import json

import pytest

import practicum
from practicum.cli import main


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "wine"
    run = practicum.train(None, ["data.path=builtin:wine", "model.type=mlp", "model.hidden_sizes=[16]",
                                 "train.epochs=10", "train.lr=1e-2", "train.tensorboard=false", f"out_dir={out}"])
    return run.bundle


def test_config_show_resolves_overrides_and_bundles(bundle, capsys):
    assert main(["config", "show", "quickstart", "--train.lr", "0.02"]) == 0
    shown = capsys.readouterr().out
    assert "lr: 0.02" in shown and "type: lenet" in shown
    assert main(["config", "show", str(bundle)]) == 0
    assert "path: builtin:wine" in capsys.readouterr().out


def test_config_fields_lists_help(capsys):
    assert main(["config", "fields"]) == 0
    out = capsys.readouterr().out
    assert "train.grad_accum" in out and "Micro-batches per optimizer step" in out


def test_data_list_and_inspect(tmp_path, capsys):
    assert main(["data", "list"]) == 0
    listed = capsys.readouterr().out
    assert "digits" in listed and "penguins" in listed and "chatterbot" in listed
    assert any(line.split()[:3] == ["pydoc", "text", "pretraining"] for line in listed.splitlines())
    (tmp_path / "t.csv").write_text("id,color,size,label\n" + "".join(
        f"{i},{'red' if i % 2 else 'blue'},{i * 0.5},{'yes' if i % 5 else 'no'}\n" for i in range(40)))
    assert main(["data", "inspect", str(tmp_path / "t.csv"), "--target", "label"]) == 0
    report = capsys.readouterr().out
    assert "rows: 40" in report and "color" in report and "categorical" in report
    assert "yes" in report and "80.0%" in report


def test_predict_outputs(bundle, tmp_path, capsys):
    assert main(["predict", str(bundle), "--input", "builtin:wine", "--split", "test", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {"input", "prediction", "confidence", "probabilities"} <= set(rows[0])
    assert main(["predict", str(bundle), "--input", "builtin:wine", "--split", "test",
                 "--output", str(tmp_path / "p.jsonl")]) == 0
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert [json.loads(line)["prediction"] for line in lines] == [r["prediction"] for r in rows]


def test_evaluate_json_and_bad_json_input(bundle, capsys):
    assert main(["evaluate", str(bundle), "--data", "builtin:wine", "--split", "test", "--format", "json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0 <= metrics["accuracy"] <= 1 and "confusion_matrix" in metrics
    assert main(["predict", str(bundle), "--input", "{not json"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_report_rewrites_the_page(bundle, capsys):
    run = bundle.parent
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(run / "bundle")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "quickstart" in capsys.readouterr().out


def test_predict_takes_long_json_records(bundle, capsys):
    """JSON text longer than a file name may be is still read as JSON, not looked up as a path."""
    from practicum.data import raw_split

    loaded = practicum.load(bundle)
    frame = raw_split(loaded.config.data, loaded.config.task, "test").frame.head(4)
    text = json.dumps(frame.drop(columns=[loaded.config.data.target or "label"], errors="ignore")
                      .to_dict(orient="records"))
    assert len(text) > 300
    assert main(["predict", str(bundle), "--input", text, "--format", "json"]) == 0
    expected = [r["prediction"] for r in loaded.predict(frame.to_dict(orient="records"))]
    assert [r["prediction"] for r in json.loads(capsys.readouterr().out)] == expected


def test_evaluate_prints_unknown_categories(tabular_classifier_bundle, tmp_path, capsys):
    from practicum.bundle import Bundle
    from practicum.data import raw_split

    cfg = Bundle.load(tabular_classifier_bundle).config
    frame = raw_split(cfg.data, cfg.task, "test").frame.reset_index(drop=True)
    frame.loc[:2, "island"] = "Atlantis"
    frame.to_csv(tmp_path / "new.csv", index=False)
    assert main(["evaluate", str(tabular_classifier_bundle), "--data", str(tmp_path / "new.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("accuracy ")
    assert lines[-1] == "unknown_categories     island 3 (cells with a category not seen in training)"
    assert main(["evaluate", str(tabular_classifier_bundle), "--data", str(tmp_path / "new.csv"),
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["unknown_categories"] == {"island": 3}


def test_help_loads_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom practicum.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stdout[-300:]
