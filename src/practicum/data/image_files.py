"""Image files read with Pillow: a folder with one subfolder per class, a flat folder, or one file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from practicum.data.raw import ImageSet
from practicum.errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def read_image_folder(root: Path, mode: str | None = None) -> ImageSet:
    """root/CLASS/*.png -> images labelled by subfolder name; a flat folder -> unlabelled images.

    `mode` ("L" or "RGB") forces the channels; None picks L when every image is grayscale.
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
    images = load_images(paths, root, mode)
    labels = np.array([c for _, c in files]) if subdirs else None
    names = [str(p.relative_to(root)) for p in paths]
    log.info("read %d images from %s", len(paths), root)
    return ImageSet(images=images, labels=labels, source=str(root), names=names)


def read_image_file(path: Path, mode: str | None = None) -> ImageSet:
    """One image file as a batch of one, unlabelled."""
    images = load_images([path], path.parent, mode)
    return ImageSet(images=images, labels=None, source=str(path), names=[path.name])


def load_images(paths: list[Path], root: Path, mode: str | None = None) -> np.ndarray:
    """Decode every file to uint8 (N, H, W, C); sizes must agree (the error names two files)."""
    from PIL import Image, UnidentifiedImageError

    opened = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
                opened.append(im)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"{p}: cannot read image ({exc}); remove or re-save it") from None
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
