"""Augmentation: batched, deterministic given the generator, shape-preserving, pixel-changing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from practicum.config import AugmentConfig, TaskConfig
from practicum.data import load_data
from practicum.data.augment import augment_images, random_crop, random_hflip, random_rotate

ON = AugmentConfig(enabled=True, crop_padding=2, hflip=True, rotation=15.0)


def _batch() -> torch.Tensor:
    return torch.rand(16, 3, 10, 12, generator=torch.Generator().manual_seed(0))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_same_generator_state_same_output() -> None:
    x, bg = _batch(), torch.zeros(3)
    a = augment_images(x, ON, bg, _gen(1))
    b = augment_images(x, ON, bg, _gen(1))
    c = augment_images(x, ON, bg, _gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_shape_kept_and_pixels_changed() -> None:
    x = _batch()
    out = augment_images(x, ON, torch.zeros(3), _gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)


def test_disabled_is_identity() -> None:
    x = _batch()
    assert augment_images(x, AugmentConfig(enabled=False, hflip=True), torch.zeros(3), _gen(0)) is x


def test_hflip_flips_some_images_exactly() -> None:
    x = _batch()
    out = random_hflip(x, _gen(0))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert any(flipped) and any(kept) and all(f or k for f, k in zip(flipped, kept, strict=True))


def test_crop_is_a_shifted_window_with_background_fill() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4) + 1
    bg = torch.full((1, 1, 1, 1), -5.0)
    out = random_crop(x, 1, bg, _gen(3))
    for o, i in zip(out, x, strict=True):
        inside = o[o != -5.0]
        assert set(inside.tolist()) <= set(i.flatten().tolist())
        assert inside.numel() >= 9  # at most one row and one column replaced by padding


def test_zero_rotation_range_is_near_identity() -> None:
    x = _batch()
    out = random_rotate(x, 1e-6, torch.zeros(1, 3, 1, 1), _gen(0))
    assert torch.allclose(out, x, atol=1e-4)


def test_preprocessor_augment_only_when_enabled(gen: SimpleNamespace, image_npz: Path) -> None:
    plain = load_data(gen.config(image_npz), TaskConfig())
    batch = {k: v[:8] for k, v in plain.train.items()}
    assert plain.preprocessor.augment(batch, _gen(0)) is batch
    cfg = gen.config(image_npz, image={"augment": {"enabled": True, "crop_padding": 1, "rotation": 10}})
    pre = load_data(cfg, TaskConfig()).preprocessor
    out = pre.augment(batch, _gen(0))
    assert out["image"].shape == batch["image"].shape and torch.equal(out["target"], batch["target"])
    assert not torch.equal(out["image"], batch["image"])
    assert torch.equal(out["image"], pre.augment(batch, _gen(0))["image"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_with_cpu_generator() -> None:
    x = _batch().cuda()
    out = augment_images(x, ON, torch.zeros(3), _gen(0))
    assert out.device == x.device
    assert torch.allclose(out.cpu(), augment_images(x.cpu(), ON, torch.zeros(3), _gen(0)), atol=1e-5)
