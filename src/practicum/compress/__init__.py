"""Compression: Bundle -> smaller Bundle, and the trade-off table that says what it cost.

    from practicum.compress import compress
    result = compress("runs/transformer_text/bundle", prune=0.5, recover_epochs=1, quantize="int8")
    print(result.markdown)                      # original vs compressed: size, latency, accuracy

    pipeline.py   compress(): distill -> prune -> quantize, the new bundle, the table
    distill.py    knowledge distillation into a smaller student recipe
    prune.py      magnitude pruning (unstructured / structured, layer / global), recovery fine-tune
    quantize.py   dynamic int8, static int8 (CNNs), weight-only int8/int4 (language models)
    store.py      compressed weights in safetensors; loading them back quantized
    tradeoff.py   size, parameters, latency p50/p95, task metric, deltas

Nothing heavy is imported here: the names below load their module on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "compress": "pipeline", "CompressResult": "pipeline",
    "quantize_model": "quantize", "QuantizedEmbedding": "quantize", "SCHEMES": "quantize",
    "prune_bundle": "prune", "distill_bundle": "distill",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"practicum.compress.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'practicum.compress' has no attribute {name!r}")
