"""MNIST-style IDX files (gzipped or not), parsed with NumPy from the header up.

An IDX file is: two zero bytes, a dtype code, the number of dimensions, one
big-endian uint32 per dimension, then the values in C order. The labels file is found
next to the images file by the standard naming `*-images-idx3-ubyte[.gz]` ->
`*-labels-idx1-ubyte[.gz]`.
"""

from __future__ import annotations

import gzip
import logging
import math
from pathlib import Path

import numpy as np

from practicum.data.arrays import make_image_set
from practicum.data.raw import ImageSet
from practicum.errors import UserError

log = logging.getLogger(__name__)

_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx_array(path: Path) -> np.ndarray:
    """The array stored in one IDX file, in native byte order."""
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: cannot read the IDX file ({exc}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(
            f"{path}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'}); "
            "expected MNIST-style *-images-idx3-ubyte[.gz] files"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: IDX header is cut short; download the file again")
    dims = [int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)]
    dtype = np.dtype(_DTYPES[raw[2]])
    count = math.prod(dims)
    if len(raw) - header < count * dtype.itemsize:
        raise UserError(
            f"{path}: IDX header promises shape {tuple(dims)} but the file is too short; "
            "download it again"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def labels_path_for(images: Path) -> Path | None:
    """The labels file beside an images file, plain or gzipped, or None."""
    name = images.name.removesuffix(".gz")
    swapped = name.replace("images", "labels").replace("idx3", "idx1")
    if swapped == name:
        return None
    for candidate in (swapped, swapped + ".gz"):
        path = images.with_name(candidate)
        if path.is_file():
            return path
    return None


def read_idx(path: Path) -> ImageSet:
    """Images (N, H, W) from an idx3 file plus labels from its sibling idx1 file, if present."""
    images = read_idx_array(path)
    if images.ndim == 1:
        raise UserError(
            f"{path}: is a labels file (1-D); give the images file (*-images-idx3-ubyte[.gz])"
        )
    if images.ndim not in (3, 4):
        raise UserError(f"{path}: IDX array has shape {images.shape}; expected (N, H, W) images")
    labels = None
    label_path = labels_path_for(path)
    if label_path is not None:
        labels = read_idx_array(label_path)
        if labels.ndim != 1:
            raise UserError(f"{label_path}: expected a 1-D labels file, got shape {labels.shape}")
        log.info("labels for %s read from %s", path, label_path)
    else:
        log.warning("%s: no labels file found beside it (*-labels-idx1-ubyte[.gz])", path)
    return make_image_set(images, labels, str(path))
