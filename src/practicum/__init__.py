"""practicum: from a network's first gradient to a compressed, served model.

    import practicum
    result = practicum.train("quickstart")              # or a YAML path, dict or RunConfig
    bundle = practicum.load(result.bundle)
    bundle.predict([{"text": "..."}])
    bundle.evaluate("new_labelled.csv")

    lm = practicum.pretrain()                           # a char-level GPT on the stdlib's pydoc text
    practicum.import_model("path/to/hf_folder_or.gguf", "runs/imported")

    practicum.train("banking77_minilm", ["peft.strategy=lora"])   # fine-tune a pretrained model
    practicum.ladder("banking77_minilm")                # zero-shot ... full fine-tuning, one table

    from practicum import api
    api.compress(result.bundle, quantize="int8")        # prune / quantize / distill -> a new bundle
    api.export(result.bundle, "onnx")                   # onnx | torchscript | hf | peft, parity-checked
    api.explain(result.bundle, ["some text"])           # attributions, attention, logit lens
    api.serve({"clf": result.bundle})                   # FastAPI: /v1/predict, OpenAI routes, playground

    from practicum import scratch                       # NumPy from scratch; scratch.twins: PyTorch twins
    scratch.fit(scratch.MLP([64, 128, 10], seed=0), X, y, optimizer="adam")

`practicum.evaluate` is the metrics/plots/report subpackage; the evaluate *function* is
`practicum.api.evaluate` (or `Bundle.evaluate`). Likewise compress, explain and serve are
subpackages; their functions live in `practicum.api`.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from practicum.threads import configure_threads  # noqa: E402

configure_threads()  # before anything loads torch's OpenMP runtime

_EXPORTS = {
    "RunResult": "practicum.api", "export_hf": "practicum.api", "export_peft": "practicum.api",
    "import_model": "practicum.api", "ladder": "practicum.api", "load": "practicum.api",
    "predict": "practicum.api", "pretrain": "practicum.api", "quickstart": "practicum.api",
    "train": "practicum.api", "RunConfig": "practicum.config", "load_config": "practicum.config",
    "TrainingDiverged": "practicum.errors", "UserError": "practicum.errors",
}
"""The package's names and the modules that define them: imported on first use, so `import
practicum` (and `import practicum.scratch`, which is NumPy only) loads neither torch nor pandas."""

__all__ = [
    "RunConfig", "RunResult", "TrainingDiverged", "UserError", "__version__",
    "export_hf", "export_peft", "import_model", "ladder", "load", "load_config", "predict", "pretrain",
    "quickstart", "train",
]

if TYPE_CHECKING:
    from practicum.api import (
        RunResult,
        export_hf,
        export_peft,
        import_model,
        ladder,
        load,
        predict,
        pretrain,
        quickstart,
        train,
    )
    from practicum.config import RunConfig, load_config
    from practicum.errors import TrainingDiverged, UserError


_loaded: dict[str, Any] = {}


def _export(name: str) -> Any:
    if name not in _loaded:
        _loaded[name] = getattr(importlib.import_module(_EXPORTS[name]), name)
    return _loaded[name]


class _Package(types.ModuleType):
    """The package's names win over its modules of the same name (`practicum.train` is the
    function; the training loop's package is still `import practicum.train.trainer`)."""

    def __getattribute__(self, name: str) -> Any:
        if name in _EXPORTS:
            return _export(name)
        return super().__getattribute__(name)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    """A subpackage (api, serve, ...) imported on first use."""
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'practicum' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
