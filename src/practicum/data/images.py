"""Images: pixels to floats in [0, 1], then per-channel standardisation measured on train.

8- and 16-bit pixels are read by their type's range (255, 65535), wherever they come
from: image files, the server, arrays. Any other array is taken to be in the scale of
the training images (1 for floats already in [0, 1], 255 for floats in 0-255, ...),
which is found on the training split and saved, so prediction divides by the same number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from practicum.errors import UserError

_CHUNK = 4096


_TYPE_RANGE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def pixel_scale(images: np.ndarray) -> float:
    """The number that maps stored pixels to [0, 1]."""
    if images.dtype in _TYPE_RANGE:
        return _TYPE_RANGE[images.dtype]
    top = float(images.max()) if images.size else 1.0
    if top <= 1.0:
        return 1.0
    return 255.0 if top <= 255.0 else top


def to_unit(images: np.ndarray, scale: float) -> torch.Tensor:
    """(N, H, W, C) pixels -> (N, C, H, W) float32 in [0, 1]: 8- and 16-bit pixels by their
    type's range, other arrays by `scale` (the training images' scale)."""
    scale = _TYPE_RANGE.get(images.dtype, scale)
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32) / scale  # (N, H, W, C)
    return x.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


@dataclass
class ImageEncoder:
    shape: list[int]
    """(C, H, W) of every image."""
    scale: float
    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, images: np.ndarray, normalize: bool) -> ImageEncoder:
        """Scale and per-channel mean/std of the (N, H, W, C) training images (float64 sums)."""
        n, h, w, c = images.shape
        scale = pixel_scale(images)
        if not normalize:
            return cls([c, h, w], scale, [0.0] * c, [1.0] * c)
        total = torch.zeros(c, dtype=torch.float64)
        total_sq = torch.zeros(c, dtype=torch.float64)
        for lo in range(0, n, _CHUNK):
            x = to_unit(images[lo : lo + _CHUNK], scale).to(torch.float64)  # (B, C, H, W)
            total += x.sum(dim=(0, 2, 3))
            total_sq += (x * x).sum(dim=(0, 2, 3))
        count = n * h * w
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        return cls([c, h, w], scale, mean.tolist(), std.tolist())

    @property
    def background(self) -> torch.Tensor:
        """The normalised value of a black pixel, per channel: (C,)."""
        mean = torch.tensor(self.mean, dtype=torch.float32)
        std = torch.tensor(self.std, dtype=torch.float32)
        return -mean / std

    def transform(self, images: np.ndarray, source: str) -> dict[str, torch.Tensor]:
        """(N, H, W, C) -> {"image": (N, C, H, W) float32, normalised}."""
        c, h, w = self.shape
        if tuple(images.shape[1:]) != (h, w, c):
            got_h, got_w, got_c = images.shape[1:]
            raise UserError(
                f"{source}: images are {got_w}x{got_h} (width x height) with {_channels(got_c)} but "
                f"the model was trained on {w}x{h} with {_channels(c)}; resize them to {w}x{h}"
            )
        x = to_unit(images, self.scale)  # (N, C, H, W)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, c, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, c, 1, 1)
        return {"image": (x - mean) / std}

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ImageEncoder:
        return cls(**state)


def _channels(c: int) -> str:
    return f"{c} channel{'s' if c != 1 else ''}"
