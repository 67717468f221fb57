"""practicum: from a network's first gradient to a compressed, served model.

    import practicum
    result = practicum.train("quickstart")              # or a YAML path, dict or RunConfig
    bundle = practicum.load(result.bundle)
    bundle.predict([{"text": "..."}])
    bundle.evaluate("new_labelled.csv")

`practicum.evaluate` is the metrics/plots/report subpackage; the evaluate *function* is
`practicum.api.evaluate` (or `Bundle.evaluate`).
"""

from __future__ import annotations

__version__ = "0.1.0"

from practicum.api import RunResult, load, predict, quickstart, train  # noqa: E402
from practicum.config import RunConfig, load_config  # noqa: E402
from practicum.errors import TrainingDiverged, UserError  # noqa: E402

__all__ = [
    "RunConfig", "RunResult", "TrainingDiverged", "UserError", "__version__",
    "load", "load_config", "predict", "quickstart", "train",
]
