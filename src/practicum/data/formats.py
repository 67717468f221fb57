"""Find a source's format from its extension or folder layout and read it.

`read_source` is the one entry point every loader uses: a path (any supported format)
or `builtin:NAME` -> a `Loaded` holding the data (and an official test split, if any).
"""

from __future__ import annotations

import os
from pathlib import Path

from practicum.data.arrays import read_npy, read_npz
from practicum.data.idx import read_idx
from practicum.data.image_files import (
    IMAGE_EXTENSIONS,
    ImageTarget,
    read_image_file,
    read_image_folder,
)
from practicum.data.raw import Loaded
from practicum.data.tables import read_table
from practicum.errors import UserError

TABLE_FORMATS = ("csv", "jsonl", "parquet")
IMAGE_FORMATS = ("npz", "npy", "image_folder", "idx", "image")
BUILTIN_PREFIX = "builtin:"

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npz": "npz",
    ".npy": "npy",
}


def detect_format(path: Path, fmt: str = "auto") -> str:
    """The format name for `path`; `fmt` other than auto wins. 'image' means one image file."""
    if fmt != "auto":
        return fmt
    if path.is_dir():
        return "image_folder"
    name = path.name.lower().removesuffix(".gz")
    if "ubyte" in name or name.endswith(".idx"):
        return "idx"
    suffix = Path(name).suffix
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    raise UserError(
        f"{path}: unsupported file type {suffix or '(no extension)'!r}; use .csv, .tsv, .jsonl, "
        ".json, .parquet, .npz, .npy, IDX (*-idx3-ubyte[.gz]) or a folder of images with one "
        "subfolder per class, or set data.format"
    )


def check_exists(spec: str, field: str = "data.path") -> Path:
    """The path of a source; a missing one is a UserError naming the config field."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(
            f"{field}: file {spec!r} not found (looked in {os.getcwd()}); check the path, "
            "or use builtin:NAME (see `practicum data list`)"
        )
    return path


def read_source(
    spec: str, fmt: str = "auto", field: str = "data.path", image_target: ImageTarget | None = None,
) -> Loaded:
    """Read a file, folder or `builtin:NAME`; `image_target` (a trained model's input) conforms
    image files to its channels and size."""
    if spec.startswith(BUILTIN_PREFIX):
        from practicum.data.builtin import load_builtin

        return load_builtin(spec[len(BUILTIN_PREFIX) :])
    path = check_exists(spec, field)
    fmt = detect_format(path, fmt)
    if fmt in TABLE_FORMATS:
        if path.is_dir():
            raise UserError(f"{field}: {path} is a folder; give a {fmt} file or set data.format")
        if path.suffix.lower() == ".json":
            from practicum.data.tables import read_split_json

            split = read_split_json(path)
            if split is not None:
                return split
        return Loaded(read_table(path, fmt))
    if fmt == "image_folder":
        if not path.is_dir():
            raise UserError(f"{field}: {path} is a file; data.format image_folder needs a folder")
        return Loaded(read_image_folder(path, target=image_target))
    if path.is_dir():
        raise UserError(f"{field}: {path} is a folder; give a .{fmt} file or set data.format")
    readers = {"npz": read_npz, "npy": read_npy, "idx": read_idx}
    if fmt == "image":
        return Loaded(read_image_file(path, target=image_target))
    return Loaded(readers[fmt](path))
