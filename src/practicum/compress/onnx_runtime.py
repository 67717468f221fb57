"""Run an exported model.onnx with onnxruntime: a session helper, and a Bundle whose outputs
come from onnxruntime instead of PyTorch.

    bundle = load_onnx_bundle("runs/x/bundle-onnx")   # a folder written by export --format onnx
    bundle.predict(["a text"])                        # the same records as Bundle.predict

The folder keeps the bundle's bundle.json and preprocess.json, so inputs are preprocessed
exactly as the PyTorch bundle does it, and `Bundle.predict` / `Bundle.evaluate` format the
outputs; only `outputs(batch)` differs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from practicum.bundle import Bundle, _read_json, check_contained
from practicum.config import validate
from practicum.errors import UserError

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
PROVIDERS = ["CPUExecutionProvider"]


def import_onnxruntime() -> Any:
    """The onnxruntime module, or a UserError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError("onnxruntime is not installed; pip install 'practicum[compress]'") from None
    return onnxruntime


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime InferenceSession on the CPU; `threads` intra-op threads (default: as many
    as PyTorch uses, so latencies compare like for like)."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=options, providers=PROVIDERS)


def feeds(session: Any, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The session's inputs from a batch dict (extra keys such as "target" are left out)."""
    names = [i.name for i in session.get_inputs()]
    missing = [n for n in names if n not in batch]
    if missing:
        raise UserError(f"the ONNX model needs input(s) {', '.join(missing)} that the batch lacks "
                        f"(it has {', '.join(batch)}); re-export the bundle")
    return {n: batch[n].detach().cpu().contiguous().numpy() for n in names}


def run_session(session: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The first output of the session for a batch, as a float32 CPU tensor."""
    out = session.run(None, feeds(session, batch))[0]
    return torch.from_numpy(np.ascontiguousarray(out)).float()


class OnnxBundle(Bundle):
    """A Bundle whose model is an onnxruntime session (predict and evaluate work unchanged)."""

    def __init__(self, path: Path, info: dict[str, Any], config: Any, preprocessor: Any,
                 session: Any, metrics: dict[str, Any]) -> None:
        super().__init__(path, info, config, preprocessor, None, metrics)  # type: ignore[arg-type]
        self.session = session

    def outputs(self, batch: dict[str, torch.Tensor], batch_size: int = 512) -> torch.Tensor:
        """Model outputs for every row of `batch`, run by onnxruntime in chunks of batch_size."""
        rows = len(next(iter(batch.values()))) if batch else 0
        chunks = [run_session(self.session, {k: v[lo : lo + batch_size] for k, v in batch.items()})
                  for lo in range(0, rows, batch_size)]
        return torch.cat(chunks) if chunks else torch.empty(0, self.task.num_outputs())


def load_onnx_bundle(path: str | Path, threads: int | None = None) -> OnnxBundle:
    """Load a folder written by `practicum export BUNDLE --format onnx` for predict/evaluate."""
    from practicum.data import Preprocessor

    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{folder} does not exist; pass the folder written by "
                        "`practicum export BUNDLE --format onnx`")
    if not (folder / MODEL_FILE).is_file():
        raise UserError(f"{folder} has no {MODEL_FILE}; export it first: "
                        f"practicum export BUNDLE --format onnx (then pass its output folder)")
    check_contained(folder)
    info = _read_json(folder / "bundle.json")
    config = validate(info["config"], where=f"{folder}/bundle.json")
    if info.get("task") in ("causal_lm", "masked_lm", "token_classification"):
        raise UserError(f"{folder} holds a {info['task']} model; predict --runtime onnx takes "
                        "classifier and regressor exports (run the language model's model.onnx "
                        "with onnxruntime directly: inputs tokens and mask, output logits)")
    preprocessor = Preprocessor.from_state(_read_json(folder / "preprocess.json"))
    metrics_path = folder / "metrics.json"
    metrics = _read_json(metrics_path) if metrics_path.is_file() else {}
    session = onnx_session(folder / MODEL_FILE, threads)
    log.debug("onnxruntime session on %s: inputs %s", folder / MODEL_FILE,
              [i.name for i in session.get_inputs()])
    return OnnxBundle(folder, info, config, preprocessor, session, metrics)

