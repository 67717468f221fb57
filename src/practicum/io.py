"""Reading PyTorch files safely: `torch.load(weights_only=True)` and one-line errors.

A file that the safe loader refuses (it holds pickled Python objects) or cannot parse
(truncated, empty, not a PyTorch file) becomes a `UserError` naming the file and what to do.
PyTorch's own message is not passed on: it advises loading with `weights_only=False`, which
can run code from the file, and practicum never does that.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from practicum.errors import UserError

SAFE_FILES = "practicum loads only its own checkpoints and safetensors files"


def load_torch_file(path: str | Path, map_location: str | torch.device = "cpu", *,
                    what: str = "file", fix: str) -> Any:
    """`torch.load(path, weights_only=True)`; any failure is a UserError
    "`what` `path` <why>; `fix`"."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as err:
        why = (err.strerror or type(err).__name__).lower()
        raise UserError(f"{what} {path} cannot be read ({why}); {fix}") from None
    except Exception as err:  # torch's zip and pickle readers raise OSError, KeyError, EOFError, ...
        # the weights-only unpickler refuses objects with pickle.UnpicklingError, naming them
        names = _refused_globals(str(err)) if type(err).__name__ == "UnpicklingError" else []
        if names:
            raise UserError(f"{what} {path} holds pickled Python objects ({', '.join(names)}) that a "
                            f"safe load refuses; {SAFE_FILES}: {fix}") from None
        raise UserError(f"{what} {path} is damaged or incomplete ({_damage(path)}); {fix}") from None


def _refused_globals(message: str) -> list[str]:
    """The Python objects (module.name) the safe loader refused, from its message."""
    return list(dict.fromkeys(re.findall(r"GLOBAL ([\w.]+)", message)))


def _damage(path: Path) -> str:
    """What is wrong with a file the loader could not parse, in a few words."""
    try:
        size = path.stat().st_size
    except OSError:
        return "it cannot be read"
    if size == 0:
        return "the file is empty"
    if not zipfile.is_zipfile(path):
        return f"{size} bytes, not a complete PyTorch archive"
    return "a PyTorch archive whose contents cannot be read"
