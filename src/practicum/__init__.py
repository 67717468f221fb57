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

from practicum.threads import configure_threads  # noqa: E402

configure_threads()  # before anything loads torch's OpenMP runtime

from practicum.api import (  # noqa: E402
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
from practicum.config import RunConfig, load_config  # noqa: E402
from practicum.errors import TrainingDiverged, UserError  # noqa: E402

__all__ = [
    "RunConfig", "RunResult", "TrainingDiverged", "UserError", "__version__",
    "export_hf", "export_peft", "import_model", "ladder", "load", "load_config", "predict", "pretrain",
    "quickstart", "train",
]
