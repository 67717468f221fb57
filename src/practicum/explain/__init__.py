"""Why a bundle predicts what it predicts.

    from practicum.explain import explain, ExplainOptions
    result = explain("runs/transformer_text/bundle", ["the card was declined"])
    result.items[0]["attributions"]["scores"]      # one number per token
    result.out_dir                                 # index.html, explain.json, PNG files

- attributions.py  integrated gradients (Captum) for text, images, tables; saliency for images
- attention.py     attention maps per layer and head, attention rollout
- logit_lens.py    each layer's next-token distribution of a causal LM
- classifiers.py / language.py  one input at a time, as JSON-ready numbers
- figures.py / page.py          the PNG files and index.html
- run.py           views per bundle kind, the target class, the output folder

Captum and matplotlib are imported inside functions, so importing this package is cheap.
"""

from __future__ import annotations

from practicum.explain.attention import attention_maps, attention_rollout
from practicum.explain.logit_lens import logit_lens
from practicum.explain.run import VIEWS, ExplainOptions, Explanation, explain, explain_bundle

__all__ = ["VIEWS", "ExplainOptions", "Explanation", "attention_maps", "attention_rollout", "explain",
           "explain_bundle", "logit_lens"]
