"""Image files read with Pillow: a folder with one subfolder per class, a flat folder, or one file.

Files for a trained model (`practicum predict`, `Bundle.predict`, the server, the ONNX
runtime) all pass through `conform`: converted to the model's channels and, when their
size differs, resized (bilinear) to its input size, with a warning. Pixels stay 8-bit;
`practicum.data.images` maps them to [0, 1] by their type.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from practicum.data.raw import ImageSet
from practicum.errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class ImageTarget:
    """What a trained model takes: a Pillow mode (its channels) and a size (width, height)."""

    mode: str
    size: tuple[int, int]

    @classmethod
    def of_shape(cls, shape: list[int] | tuple[int, ...]) -> ImageTarget:
        """From a model's (C, H, W) input shape."""
        c, h, w = shape
        return cls(MODES[c], (w, h))

    def describe(self) -> str:
        return f"{self.size[0]}x{self.size[1]}"


def conform(im: Any, target: ImageTarget) -> np.ndarray:
    """A Pillow image -> uint8 (H, W, C) in the target's channels and size (bilinear resize)."""
    from PIL import Image

    pixels = im.convert(target.mode)
    if pixels.size != target.size:
        pixels = pixels.resize(target.size, Image.Resampling.BILINEAR)
    array = np.asarray(pixels, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array  # (H, W, C)


def describe_image(im: Any) -> str:
    """'100x50 RGB (3 channels)': width x height and the file's own channels."""
    channels = len(im.getbands())
    return f"{im.size[0]}x{im.size[1]} {im.mode} ({channels} channel{'s' if channels != 1 else ''})"


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def read_image_folder(root: Path, mode: str | None = None, target: ImageTarget | None = None) -> ImageSet:
    """root/CLASS/*.png -> images labelled by subfolder name; a flat folder -> unlabelled images.

    `mode` ("L" or "RGB") forces the channels; None picks L when every image is grayscale.
    `target` (a trained model's input) conforms every image to it instead.
    """
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if subdirs:
        files = [(f, d.name) for d in subdirs for f in sorted(d.iterdir()) if is_image_file(f)]
        empty = [d.name for d in subdirs if not any(is_image_file(f) for f in d.iterdir())]
        if empty and files:
            log.warning("%s: class folders without images ignored: %s", root, ", ".join(empty))
    else:
        files = [(f, None) for f in sorted(root.iterdir()) if is_image_file(f)]
    if not files:
        raise UserError(
            f"{root}: no images found; expected one subfolder per class holding "
            f"{', '.join(IMAGE_EXTENSIONS[:3])} files"
        )
    paths = [f for f, _ in files]
    images = load_images(paths, root, mode, target)
    labels = np.array([c for _, c in files]) if subdirs else None
    names = [str(p.relative_to(root)) for p in paths]
    log.info("read %d images from %s", len(paths), root)
    return ImageSet(images=images, labels=labels, source=str(root), names=names)


def read_image_file(path: Path, mode: str | None = None, target: ImageTarget | None = None) -> ImageSet:
    """One image file as a batch of one, unlabelled."""
    images = load_images([path], path.parent, mode, target)
    return ImageSet(images=images, labels=None, source=str(path), names=[path.name])


def load_images(
    paths: list[Path], root: Path, mode: str | None = None, target: ImageTarget | None = None
) -> np.ndarray:
    """Decode every file to uint8 (N, H, W, C). Without `target` sizes must agree (the error
    names two files); with it every image is conformed to the model's channels and size."""
    from PIL import Image, UnidentifiedImageError

    opened = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
                opened.append(im)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"{p}: cannot read image ({exc}); remove or re-save it") from None
    if target is not None:
        _warn_resized(paths, root, opened, target)
        return np.stack([conform(im, target) for im in opened])
    if mode is None:
        mode = "L" if all(im.mode in _GRAY_MODES for im in opened) else "RGB"
    first = opened[0].size
    for p, im in zip(paths, opened, strict=True):
        if im.size != first:
            w0, h0 = first
            raise UserError(
                f"{root}: images differ in size: {paths[0].relative_to(root)} is {w0}x{h0} "
                f"but {p.relative_to(root)} is {im.size[0]}x{im.size[1]}; resize them all to one "
                f"size (e.g. {w0}x{h0})"
            )
    arrays = [np.asarray(im.convert(mode), dtype=np.uint8) for im in opened]
    stacked = np.stack(arrays)
    return stacked[..., None] if stacked.ndim == 3 else stacked


def _warn_resized(paths: list[Path], root: Path, opened: list[Any], target: ImageTarget) -> None:
    resized = [(p, im) for p, im in zip(paths, opened, strict=True) if im.size != target.size]
    if resized:
        p, im = resized[0]
        name = p.relative_to(root) if len(paths) > 1 else p
        more = f" and {len(resized) - 1} more" if len(resized) > 1 else ""
        log.warning("%s%s: %s resized to %s, the model's input size", name, more,
                    describe_image(im), target.describe())
