"""Image arrays from NumPy files: NPZ (images + labels by key) and NPY (+ a sibling labels file).

Images come back as (N, H, W, C) in their stored dtype; channels-first arrays are
transposed. Pixel scaling happens later, in the preprocessor.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

import numpy as np

from practicum.data.raw import ImageSet
from practicum.errors import UserError

log = logging.getLogger(__name__)

IMAGE_KEYS = ("x", "images", "X", "image", "x_train", "train_images", "inputs", "arr_0")
LABEL_KEYS = ("y", "labels", "Y", "label", "y_train", "train_labels", "targets", "arr_1")
_CHANNELS = (1, 3, 4)


def to_nhwc(arr: np.ndarray, source: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) or (N, C, H, W) -> (N, H, W, C)."""
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise UserError(f"{source}: images must be a numeric array, got dtype {arr.dtype}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.ndim == 3:
        return arr[..., None]
    if arr.ndim == 4 and arr.shape[-1] in _CHANNELS:
        return arr
    if arr.ndim == 4 and arr.shape[1] in _CHANNELS:
        return np.ascontiguousarray(arr.transpose(0, 2, 3, 1))
    raise UserError(
        f"{source}: images must be an (N, H, W) or (N, H, W, C) array with C in 1, 3 or 4, "
        f"got shape {tuple(arr.shape)}"
    )


def read_npz(path: Path) -> ImageSet:
    """Images under one of IMAGE_KEYS, labels (optional) under one of LABEL_KEYS."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path}: not a readable NPZ file ({exc}); save it with numpy.savez") from None
    return _from_mapping(arrays, path)


def read_npy(path: Path) -> ImageSet:
    """An image array with labels in a sibling file (x.npy + y.npy, ...), or a saved dict."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # never unpickle: a pickled file can run code
            raise UserError(
                f"{path}: holds pickled Python objects, which practicum never loads; save the arrays "
                "with numpy.savez(path, x=images, y=labels) or numpy.save(path, images)"
            ) from None
        raise UserError(f"{path}: not a readable NPY file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable NPY file ({exc}); save it with numpy.save") from None
    if isinstance(arr, dict):
        return _from_mapping(arr, path)
    labels = None
    sibling = labels_file_for(path)
    if sibling is not None:
        labels = np.load(sibling, allow_pickle=False)
        log.info("labels for %s read from %s", path, sibling)
    return make_image_set(arr, labels, str(path))


def _from_mapping(arrays: dict[str, np.ndarray], path: Path) -> ImageSet:
    image_key = next((k for k in IMAGE_KEYS if k in arrays), None)
    if image_key is None:
        raise UserError(
            f"{path}: no image array found; expected a key x, images or X "
            f"(found: {', '.join(arrays) or 'none'}); save with numpy.savez(path, x=images, y=labels)"
        )
    label_key = next((k for k in LABEL_KEYS if k in arrays), None)
    labels = arrays[label_key] if label_key else None
    log.info("%s: images from key %r, labels from %r", path, image_key, label_key)
    return make_image_set(arrays[image_key], labels, str(path))


def make_image_set(images: np.ndarray, labels: np.ndarray | None, source: str) -> ImageSet:
    """Check shapes and wrap images (any layout to_nhwc accepts) and labels as an ImageSet."""
    images = to_nhwc(np.asarray(images), source)
    if len(images) == 0:
        raise UserError(f"{source}: holds no images; give at least one")
    if labels is not None:
        labels = np.asarray(labels).reshape(-1) if np.ndim(labels) > 1 else np.asarray(labels)
        if len(labels) != len(images):
            raise UserError(
                f"{source}: {len(images)} images but {len(labels)} labels; give one label per image"
            )
    return ImageSet(images=images, labels=labels, source=source)


def labels_file_for(path: Path) -> Path | None:
    """A sibling labels file: x.npy -> y.npy, train_images.npy -> train_labels.npy, a.npy -> a_labels.npy."""
    stem = path.stem
    names = []
    for a, b in (("images", "labels"), ("image", "label"), ("x", "y"), ("X", "Y"), ("inputs", "targets")):
        swapped = re.sub(rf"(?<![A-Za-z0-9]){a}(?![A-Za-z0-9])", b, stem)
        if swapped != stem:
            names.append(swapped)
    names += [f"{stem}_labels", f"{stem}-labels", f"{stem}.labels"]
    for name in names:
        candidate = path.with_name(name + path.suffix)
        if candidate.is_file() and candidate != path:
            return candidate
    return None
