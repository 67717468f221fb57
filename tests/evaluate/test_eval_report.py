"""report.html: self-contained, escaped, complete when the run is, honest when it is not."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser

import pytest

from practicum.errors import UserError
from practicum.evaluate import write_plots, write_report
from practicum.evaluate.page import fmt, fmt_count, fmt_duration

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Tags(HTMLParser):
    """Collects tags and attributes, to check what the page would load."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def _embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_full_classification_report(classification_run):
    path = write_report(classification_run)
    assert path == classification_run / "report.html"
    page = path.read_text(encoding="utf-8")
    metrics = json.loads((classification_run / "bundle" / "metrics.json").read_text())

    assert page.startswith("<!DOCTYPE html>")
    assert "pets-&lt;demo&gt;" in page and "pets-<demo>" not in page  # run name, escaped
    assert f"{metrics['test']['accuracy']:.4f}" in page
    assert f"{metrics['test']['f1_macro']:.4f}" in page
    assert "step 50" in page and "1m 23s" in page and "1.23M" in page
    # the plots the run lacked were drawn from its data, then embedded
    assert {p.name for p in (classification_run / "plots").glob("*.png")} == {
        "loss.png", "metric.png", "confusion_matrix.png"}
    pngs = _embedded_pngs(page)
    assert len(pngs) == 3 and all(p.startswith(PNG_SIGNATURE) for p in pngs)
    # per-class table: weakest first, the class absent from the test split last
    per_class = metrics["test"]["per_class"]
    present = sorted((k for k in per_class if per_class[k]["support"]), key=lambda k: per_class[k]["f1"])
    order = [page.index(f"<td>{name}") for name in [*present, "fish"]]
    assert order == sorted(order)
    # predictions: mistakes highlighted, resolved config collapsible
    assert 'class="mistake"' in page
    assert "Most confident mistakes" in page
    assert "<details><summary>Resolved config (config.yaml)</summary>" in page
    assert "Parts of this run are missing" not in page


def test_script_in_data_is_escaped_and_page_loads_nothing_external(classification_run):
    page = write_report(classification_run).read_text(encoding="utf-8")
    assert "<script>" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; &amp; more" in page
    for tag, attrs in _tags(page):
        assert tag != "script"
        assert tag != "link", "no external stylesheets"
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith(("data:", "#")), (tag, name, value[:40])


def test_renders_with_every_file_missing(tmp_path):
    run = tmp_path / "empty-run"
    run.mkdir()
    page = write_report(run).read_text(encoding="utf-8")
    assert "empty-run" in page
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "predictions.csv", "bundle/metrics.json"):
        assert f"<code>{name}</code> not found" in page
    assert "No training curves" in page and "No predictions" in page
    assert "data:image/png" not in page
    assert not (run / "plots").exists()  # nothing to draw, nothing written


def test_renders_with_some_files_missing_or_damaged(classification_run):
    (classification_run / "predictions.csv").unlink()
    shutil.rmtree(classification_run / "bundle")
    with (classification_run / "metrics.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"split": "train", "ste')  # a torn last line, as after a crash
    (classification_run / "summary.json").write_text("{not json", encoding="utf-8")
    page = write_report(classification_run).read_text(encoding="utf-8")
    assert "<code>predictions.csv</code> not found" in page
    assert "<code>bundle/metrics.json</code> not found" in page
    assert "summary.json line 1: not valid JSON" in page
    assert "metrics.jsonl: skipped 1 line(s)" in page
    assert "No confusion matrix" in page
    assert len(_embedded_pngs(page)) == 2  # the curves still come from metrics.jsonl


def test_regression_report(regression_run):
    page = write_report(regression_run).read_text(encoding="utf-8")
    test = json.loads((regression_run / "summary.json").read_text())["test"]
    assert f"{test['mae']:.4f}" in page and f"{test['r2']:.4f}" in page
    assert "Largest errors" in page and "Predicted vs true" in page
    assert 'class="mistake"' not in page and "Per-class" not in page
    assert (regression_run / "plots" / "regression.png").is_file()
    assert len(_embedded_pngs(page)) == 3


def test_existing_plots_are_kept_and_extra_plots_embedded(classification_run):
    plots = classification_run / "plots"
    written = write_plots(classification_run)
    assert {p.name for p in written} == {"loss.png", "metric.png", "confusion_matrix.png"}
    before = (plots / "loss.png").stat().st_mtime_ns
    shutil.copy(plots / "loss.png", plots / "lr_schedule.png")
    page = write_report(classification_run).read_text(encoding="utf-8")
    assert (plots / "loss.png").stat().st_mtime_ns == before
    assert "More plots" in page and "lr_schedule.png" in page
    assert len(_embedded_pngs(page)) == 4
    (plots / "broken.png").write_bytes(b"not a png")
    assert len(_embedded_pngs(write_report(classification_run).read_text(encoding="utf-8"))) == 4


def test_hostile_strings_in_metrics_and_config_are_escaped(classification_run):
    bundle = classification_run / "bundle" / "metrics.json"
    metrics = json.loads(bundle.read_text())
    metrics["test"]["per_class"]['<img src=x onerror="alert(1)">'] = {
        "precision": "<b>bold</b>", "recall": 0.5, "f1": 0.1, "support": 3}
    bundle.write_text(json.dumps(metrics))
    (classification_run / "predictions.csv").write_text(
        'input,"<th>col",target,prediction\n"<iframe>",a,"<x>",a\n', encoding="utf-8")
    with (classification_run / "config.yaml").open("a", encoding="utf-8") as fh:
        fh.write("# </pre><script>alert(2)</script>\n")
    page = write_report(classification_run).read_text(encoding="utf-8")
    tags = _tags(page)
    assert not [tag for tag, _ in tags if tag in ("script", "iframe", "b", "x")]
    assert all(a["src"].startswith("data:image/png;base64,") for tag, a in tags if tag == "img")
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "&lt;th&gt;col" in page


def test_number_formatting():
    assert [fmt(v) for v in (0.91666, 1.0, 12.46, 460.8012, 1041.0, 470060.0, 3, None)] == [
        "0.9167", "1.0000", "12.460", "460.80", "1,041.0", "470,060", "3", "—"]
    assert fmt_count(1_234_567) == "1.23M" and fmt_count(321) == "321"
    assert fmt_duration(83.4) == "1m 23s" and fmt_duration(3725) == "1h 2m 5s"


def test_a_missing_run_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        write_report(tmp_path / "nope")
