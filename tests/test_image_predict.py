"""One image file, one answer: `practicum predict`, `Bundle.predict`, the server and the ONNX
runtime read a PNG through the same preprocessing, for a model trained on [0, 1] pixels (8x8
digits) and one trained on [0, 255] pixels (28x28)."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import practicum
from practicum import api as practicum_api
from practicum.cli import main
from practicum.errors import UserError


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def _png(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def wide_bundle(tmp_path_factory) -> Path:
    """A LeNet trained on 28x28 float32 images in [0, 255] (digits scaled up), stored as NPZ."""
    images, target = _digits()
    keep = target < 4
    big = np.stack([np.asarray(Image.fromarray((im * 255 / 16).astype(np.uint8)).resize((28, 28)))
                    for im in images[keep]]).astype(np.float32)  # (N, 28, 28) in [0, 255]
    folder = tmp_path_factory.mktemp("wide")
    np.savez(folder / "big.npz", x=big, y=target[keep])
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return practicum.train(None, [
            f"data.path={folder / 'big.npz'}", "model.type=lenet", "model.channels=[4,8]",
            "model.hidden_size=16", "train.epochs=2", "train.batch_size=64", "train.lr=1e-2",
            f"out_dir={folder / 'run'}", "train.seed=0"]).bundle
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> dict[str, list[Path]]:
    """Digit images 0-9 as 8x8 PNGs (their own 8-bit pixels) and as 28x28 PNGs."""
    images, _ = _digits()
    folder = tmp_path_factory.mktemp("pngs")
    small, large = [], []
    for i in range(10):
        pixels = (images[i] * 255 / 16).round()
        small.append(_png(folder / f"d{i}.png", pixels))
        large.append(_png(folder / f"D{i}.png", np.asarray(Image.fromarray(pixels.astype(np.uint8)).resize((28, 28)))))
    return {"8x8": small, "28x28": large}


def _cli(paths: list[Path], bundle: Path, capsys, *extra: str) -> list[tuple[str, float]]:
    answers = []
    for path in paths:
        assert main(["predict", str(bundle), "--input", str(path), "--format", "json", *extra]) == 0
        row = json.loads(capsys.readouterr().out)[0]
        answers.append((row["prediction"], row["confidence"]))
    return answers


def _server(paths: list[Path], bundle: Path, make_client) -> list[tuple[str, float]]:
    inputs = [{"image": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    with make_client({"m": bundle}) as c:
        response = c.post("/v1/predict", json={"model": "m", "inputs": inputs})
    assert response.status_code == 200, response.text
    return [(r["prediction"], r["confidence"]) for r in response.json()["predictions"]]


def _same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> None:
    assert [x for x, _ in a] == [x for x, _ in b]
    np.testing.assert_allclose([c for _, c in a], [c for _, c in b], atol=1e-4)


@pytest.fixture
def make_client():
    from fastapi.testclient import TestClient

    from practicum.serve import ServeSettings, create_app

    def client(models: dict[str, Path]):
        return TestClient(create_app(models, ServeSettings()), raise_server_exceptions=False)

    return client


@pytest.mark.parametrize("size", ["8x8", "28x28"])
def test_cli_api_server_and_onnx_agree_on_the_same_files(size, image_classifier_bundle, wide_bundle, pngs,
                                                         make_client, capsys, one_thread, tmp_path):
    bundle = image_classifier_bundle if size == "8x8" else wide_bundle
    paths = pngs[size]
    api = [(r["prediction"], r["confidence"]) for p in paths for r in practicum.load(bundle).predict(str(p))]
    _same(_cli(paths, bundle, capsys), api)
    _same(_server(paths, bundle, make_client), api)
    practicum_api.export(bundle, "onnx", tmp_path / "onnx")
    _same(_cli(paths, tmp_path / "onnx", capsys, "--runtime", "onnx"), api)


def test_a_png_gets_the_answer_of_its_original_array(image_classifier_bundle, pngs, one_thread):
    """The [0, 1] model reads a PNG's 0-255 pixels as 0-1, as it saw them in training."""
    images, _ = _digits()
    bundle = practicum.load(image_classifier_bundle)
    from_files = [bundle.predict(str(p))[0] for p in pngs["8x8"]]
    from_arrays = bundle.predict((images[:10] / 16.0).astype(np.float32))
    assert [r["prediction"] for r in from_files] == [r["prediction"] for r in from_arrays]
    np.testing.assert_allclose([r["confidence"] for r in from_files],
                               [r["confidence"] for r in from_arrays], atol=0.02)
    assert max(r["confidence"] for r in from_files) < 0.9999  # not saturated by 255x too bright inputs


def test_uint8_arrays_are_read_as_8_bit_pixels(image_classifier_bundle, pngs, one_thread):
    bundle = practicum.load(image_classifier_bundle)
    pixels = np.stack([np.asarray(Image.open(p)) for p in pngs["8x8"]])  # uint8 (10, 8, 8)
    as_floats = bundle.predict((pixels / 255.0).astype(np.float32))
    assert bundle.predict(pixels) == as_floats
    assert [r["prediction"] for r in bundle.predict(str(pngs["8x8"][0]))] == [as_floats[0]["prediction"]]


def test_a_wrong_size_file_is_resized_alike_by_cli_and_server(image_classifier_bundle, pngs, make_client,
                                                               capsys, caplog, one_thread):
    paths = pngs["28x28"][:3]
    with caplog.at_level(logging.WARNING):
        cli = _cli(paths, image_classifier_bundle, capsys)
    assert "28x28 L (1 channel) resized to 8x8, the model's input size" in caplog.text
    _same(cli, _server(paths, image_classifier_bundle, make_client))


def test_a_folder_of_mixed_sizes_is_conformed_for_a_model(image_classifier_bundle, pngs, tmp_path, one_thread):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in (pngs["8x8"][0], pngs["28x28"][1]):
        (folder / p.name).write_bytes(p.read_bytes())
    rows = practicum.load(image_classifier_bundle).predict(str(folder))
    assert len(rows) == 2


def test_an_rgb_file_is_converted_to_the_models_channels(image_classifier_bundle, pngs, tmp_path, one_thread):
    gray = np.asarray(Image.open(pngs["8x8"][2]))
    rgb = _png(tmp_path / "rgb.png", np.stack([gray] * 3, axis=-1))
    bundle = practicum.load(image_classifier_bundle)
    assert bundle.predict(str(rgb))[0]["prediction"] == bundle.predict(str(pngs["8x8"][2]))[0]["prediction"]


def test_a_wrong_size_array_names_width_height_and_its_own_channels(image_classifier_bundle):
    bundle = practicum.load(image_classifier_bundle)
    with pytest.raises(UserError) as err:
        bundle.predict(np.zeros((1, 50, 100, 3), dtype=np.uint8))  # 100 wide, 50 high, RGB
    message = str(err.value)
    assert "images are 100x50 (width x height) with 3 channels" in message
    assert "trained on 8x8 with 1 channel;" in message
