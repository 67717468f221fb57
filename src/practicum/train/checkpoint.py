"""Atomic checkpoints and the random-number state needed for exact resume.

Full checkpoints are `torch.save`d dicts of tensors and plain values, read back with
`weights_only=True`; model weights for bundles are safetensors. Nothing is pickled.

Every file is written to a hidden temporary beside it (`.NAME.XXXXXXXX.tmp`) and renamed
over it; a process killed mid-write leaves its temporary behind, and the next run in the
folder removes it (`remove_stale_temps`).
"""

from __future__ import annotations

import logging
import os
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from practicum.errors import UserError
from practicum.io import load_torch_file

log = logging.getLogger(__name__)

TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
"""How `tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")` names the writer's temporaries
(eight random characters)."""
_STARTED = time.time()
"""When this process imported the writer: every temporary it writes is newer."""


def atomic_write(path: Path, write: Any) -> None:
    """Call `write(tmp_path)` then rename over `path`, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporaries that `atomic_write` left in `folder` (not below it) when a process
    was killed mid-write: files named like its own and last changed before this process began.
    Returns the files removed."""
    removed = []
    for tmp in folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        try:
            if not _TEMP_NAME.fullmatch(tmp.name) or not tmp.is_file() or tmp.is_symlink():
                continue
            if tmp.stat().st_mtime >= _STARTED:
                continue  # this process is writing it
            tmp.unlink()
        except FileNotFoundError:  # another process removed it first
            continue
        removed.append(tmp)
    if removed:
        log.info("removed %d unfinished file(s) of an interrupted write in %s: %s", len(removed), folder,
                 ", ".join(p.name for p in removed))
    return removed


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


RESUME_FIX = "delete it to start over, or resume from another checkpoint"


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by `save_checkpoint`; an unreadable or unsafe file is a UserError."""
    ckpt = load_torch_file(path, map_location, what="checkpoint", fix=RESUME_FIX)
    if not isinstance(ckpt, dict):
        raise UserError(f"checkpoint {path} is not a practicum training checkpoint "
                        f"(it holds a {type(ckpt).__name__}); {RESUME_FIX}")
    return ckpt


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Model weights as safetensors (contiguous CPU copies; shared tensors cloned)."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state(),
        "python": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> list[Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
