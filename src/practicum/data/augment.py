"""Batched train-time image augmentation written with torch ops, driven only by a Generator.

Random pad-and-crop, horizontal flip and small rotations (affine_grid + grid_sample).
Every random number comes from the `generator` argument, so the same generator state
gives the same augmented batch (exact resume depends on it). Padding and the corners
uncovered by a rotation get the background (the normalised value of a black pixel).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from practicum.config import AugmentConfig


def augment_images(
    x: torch.Tensor, cfg: AugmentConfig, background: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W) augmented copy; `x` itself when augmentation is off."""
    if not cfg.enabled or x.shape[0] == 0:
        return x
    bg = background.to(device=x.device, dtype=x.dtype).view(1, -1, 1, 1)  # (1, C, 1, 1)
    if cfg.crop_padding > 0:
        x = random_crop(x, cfg.crop_padding, bg, generator)
    if cfg.hflip:
        x = random_hflip(x, generator)
    if cfg.rotation > 0:
        x = random_rotate(x, cfg.rotation, bg, generator)
    return x


def _draw(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, moved to `device`."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def random_crop(
    x: torch.Tensor, padding: int, bg: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Pad each side by `padding` with the background, then crop a random HxW window per image."""
    n, c, h, w = x.shape
    padded = F.pad(x - bg, (padding, padding, padding, padding)) + bg  # (N, C, H+2p, W+2p)
    offsets = (_draw((2, n), generator, x.device) * (2 * padding + 1)).long().clamp_max(2 * padding)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]  # (N, C, H, W)


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 0.5."""
    flip = _draw((x.shape[0],), generator, x.device) < 0.5  # (N,)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_rotate(
    x: torch.Tensor, degrees: float, bg: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Rotate each image by a uniform angle in [-degrees, degrees] about its centre (bilinear)."""
    n, _, h, w = x.shape
    angle = (_draw((n,), generator, x.device) * 2 - 1) * math.radians(degrees)  # (N,)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    # normalised coordinates stretch x by W/2 and y by H/2; correct for non-square images
    theta = torch.stack(
        [
            torch.stack([cos, -sin * h / w, zero], dim=1),
            torch.stack([sin * w / h, cos, zero], dim=1),
        ],
        dim=1,
    ).to(x.dtype)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
    out = F.grid_sample(x - bg, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + bg
