"""Image readers (NPZ, NPY, PNG/JPG folders) and the image encoder."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from practicum.config import TaskConfig
from practicum.data import load_data
from practicum.data.arrays import labels_file_for, read_npy, read_npz, to_nhwc
from practicum.data.formats import detect_format
from practicum.data.image_files import read_image_folder
from practicum.data.images import ImageEncoder, pixel_scale
from practicum.errors import UserError


@pytest.mark.parametrize("keys", [("x", "y"), ("images", "labels"), ("X", "Y")])
def test_npz_keys(gen: SimpleNamespace, tmp_path: Path, keys: tuple[str, str]) -> None:
    x, y = gen.image_arrays(5)
    np.savez(tmp_path / "d.npz", **{keys[0]: x, keys[1]: y})
    images = read_npz(tmp_path / "d.npz")
    assert images.images.shape == (5, 8, 8, 1)
    assert images.labels is not None and images.labels.tolist() == y.tolist()


def test_npy_with_sibling_labels(gen: SimpleNamespace, tmp_path: Path) -> None:
    x, y = gen.image_arrays(6, channels=3)
    np.save(tmp_path / "x_train.npy", x)
    np.save(tmp_path / "y_train.npy", y)
    assert labels_file_for(tmp_path / "x_train.npy") == tmp_path / "y_train.npy"
    images = read_npy(tmp_path / "x_train.npy")
    assert images.images.shape == (6, 8, 8, 3)
    assert images.labels is not None and images.labels.tolist() == y.tolist()


def test_npy_sibling_naming(tmp_path: Path) -> None:
    for name in ("train_images.npy", "train_labels.npy", "pics.npy", "pics_labels.npy"):
        (tmp_path / name).touch()
    assert labels_file_for(tmp_path / "train_images.npy") == tmp_path / "train_labels.npy"
    assert labels_file_for(tmp_path / "pics.npy") == tmp_path / "pics_labels.npy"


def test_pickled_npy_is_refused_not_unpickled(gen: SimpleNamespace, tmp_path: Path) -> None:
    x, y = gen.image_arrays(4)
    np.save(tmp_path / "d.npy", {"images": x, "labels": y}, allow_pickle=True)
    with pytest.raises(UserError, match=r"d.npy: holds pickled Python objects.*numpy.savez"):
        read_npy(tmp_path / "d.npy")


def test_channels_first_is_transposed() -> None:
    x = np.zeros((2, 3, 5, 7), dtype=np.uint8)
    assert to_nhwc(x, "t").shape == (2, 5, 7, 3)


def test_png_folder_one_subfolder_per_class(gen: SimpleNamespace, tmp_path: Path) -> None:
    root = gen.write_png_folder(tmp_path / "pets", {"cat": 3, "dog": 2})
    assert detect_format(root) == "image_folder"
    images = read_image_folder(root)
    assert images.images.shape == (5, 8, 8, 1) and images.images.dtype == np.uint8
    assert images.labels is not None and images.labels.tolist() == ["cat"] * 3 + ["dog"] * 2
    assert images.names is not None and images.names[0] == str(Path("cat") / "0.png")


def test_jpg_rgb_folder(tmp_path: Path) -> None:
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "f" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (6, 4), (255, 0, 0)).save(tmp_path / "f" / cls / f"{i}.jpg")
    images = read_image_folder(tmp_path / "f")
    assert images.images.shape == (4, 4, 6, 3)


def test_pixel_scale() -> None:
    assert pixel_scale(np.zeros(3, dtype=np.uint8)) == 255.0
    assert pixel_scale(np.array([0.0, 0.5, 1.0])) == 1.0
    assert pixel_scale(np.array([0.0, 16.0])) == 255.0


def test_encoder_standardises_per_channel(gen: SimpleNamespace) -> None:
    x, _ = gen.image_arrays(20, channels=3)
    enc = ImageEncoder.fit(x, normalize=True)
    assert enc.shape == [3, 8, 8] and enc.scale == 255.0
    out = enc.transform(x, "t")["image"]
    assert out.shape == (20, 3, 8, 8) and out.dtype == torch.float32
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)


def test_encoder_without_normalize_is_unit_range(gen: SimpleNamespace) -> None:
    x, _ = gen.image_arrays(5)
    out = ImageEncoder.fit(x[..., None], normalize=False).transform(x[..., None], "t")["image"]
    assert out.min() >= 0 and out.max() <= 1


def test_load_npz_and_folder(gen: SimpleNamespace, tmp_path: Path, image_npz: Path) -> None:
    splits = load_data(gen.config(image_npz), TaskConfig())
    assert splits.spec.kind == "image" and splits.spec.image_shape == (1, 8, 8)
    assert splits.label_names == ["0", "1", "2"]
    assert splits.train["image"].shape[1:] == (1, 8, 8)
    root = gen.write_png_folder(tmp_path / "pets", {"cat": 10, "dog": 10})
    folder = load_data(gen.config(root), TaskConfig())
    assert folder.label_names == ["cat", "dog"]
    assert folder.test_display is not None and folder.test_display[0].endswith(".png")


def test_predict_on_one_png_and_folder(gen: SimpleNamespace, tmp_path: Path) -> None:
    root = gen.write_png_folder(tmp_path / "pets", {"cat": 10, "dog": 10})
    pre = load_data(gen.config(root), TaskConfig()).preprocessor
    batch, display, targets = pre.load_inputs(str(root / "cat" / "1.png"))
    assert batch["image"].shape == (1, 1, 8, 8) and display == ["1.png"] and targets is None
    batch, _, targets = pre.load_inputs(str(root))
    assert batch["target"].shape == (20,) and targets[:1] == ["cat"]
