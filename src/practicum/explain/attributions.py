"""Attributions through Captum: integrated gradients for text, images and tables, saliency for
images.

Integrated gradients (Sundararajan et al., 2017) integrates the gradient of the target output
along the straight line from a baseline input x' to the input x:

    IG_i = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x'))/dx_i da

and is complete: the attributions sum to F(x) - F(x'). Captum approximates the integral with
`steps` points; `delta` = sum(IG) - (F(x) - F(x')) says how good the approximation is.
F is the target class's logit (or the regression output). Captum is imported inside the
functions: it is the optional `explain` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from practicum.errors import UserError

METHOD = "gausslegendre"
"""Captum's default quadrature; "riemann_right" etc. are the textbook sums."""
METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


@dataclass
class Attribution:
    """Integrated gradients of one input."""

    scores: Tensor
    """Per token / pixel / feature attribution (shape depends on the input kind)."""
    delta: float
    """Convergence delta: sum(scores) - (f_input - f_baseline)."""
    f_input: float
    f_baseline: float


def require_captum() -> Any:
    try:
        import captum.attr
    except ImportError:
        raise UserError("explain needs Captum; install it with pip install 'practicum[explain]'") from None
    return captum.attr


def embedding_layer(model: nn.Module) -> nn.Embedding:
    """The token-embedding layer of a text model (Transformer, RNN, pretrained backbone, LM)."""
    from practicum.models.lm import TransformerLM
    from practicum.models.pretrained import PretrainedClassifier
    from practicum.models.rnn import RNNClassifier
    from practicum.models.transformer import TransformerClassifier

    if isinstance(model, TransformerClassifier):
        return model.tok_emb
    if isinstance(model, RNNClassifier):
        return model.embed
    if isinstance(model, PretrainedClassifier):
        return model.backbone.wte
    if isinstance(model, TransformerLM):
        return model.wte
    raise UserError(f"{type(model).__name__} has no token embedding to attribute to; token "
                    "attributions need a text model (transformer, rnn or pretrained)")


def _target_output(model: nn.Module, target: int) -> Callable[..., Tensor]:
    """forward(*inputs) -> (B,) the target output, for evaluating F at the input and baseline."""
    def forward(*inputs: Tensor) -> Tensor:
        with torch.no_grad():
            return model(*inputs)[:, target].float()
    return forward


def token_attributions(model: nn.Module, tokens: Tensor, mask: Tensor, baseline: Tensor,
                       target: int, steps: int, method: str = METHOD) -> Attribution:
    """LayerIntegratedGradients on the token embeddings of one text, tokens/mask/baseline (1, T):
    per-token attribution (T,), summed over the embedding dimension. The baseline is a token
    sequence (pad ids where the text was) whose embeddings are the path's start."""
    attr = require_captum()
    lig = attr.LayerIntegratedGradients(lambda t, m: model(t, m), embedding_layer(model))
    scores, delta = lig.attribute(tokens, baselines=baseline, additional_forward_args=(mask,),
                                  target=target, n_steps=steps, method=method,
                                  return_convergence_delta=True)  # (1, T, E), (1,)
    f = _target_output(model, target)
    return Attribution(scores[0].sum(dim=-1).detach().float().cpu(), float(delta[0]),
                       float(f(tokens, mask)[0]), float(f(baseline, mask)[0]))


def image_attributions(model: nn.Module, image: Tensor, baseline: Tensor, target: int,
                       steps: int, method: str = METHOD) -> tuple[Tensor, Attribution]:
    """Saliency (|d logit / d pixel|, max over channels: (H, W)) and integrated gradients
    ((C, H, W)) of one image (1, C, H, W) from `baseline` (1, C, H, W), e.g. a black image."""
    attr = require_captum()
    saliency = attr.Saliency(model).attribute(image.clone().requires_grad_(True), target=target, abs=True)
    ig = attr.IntegratedGradients(model)
    scores, delta = ig.attribute(image, baselines=baseline, target=target, n_steps=steps,
                                 method=method, return_convergence_delta=True)  # (1, C, H, W)
    f = _target_output(model, target)
    result = Attribution(scores[0].detach().float().cpu(), float(delta[0]),
                         float(f(image)[0]), float(f(baseline)[0]))
    return saliency[0].amax(dim=0).detach().float().cpu(), result


def tabular_attributions(model: nn.Module, x: Tensor, x_cat: Tensor | None, target: int,
                         steps: int, method: str = METHOD) -> tuple[Attribution, Attribution | None]:
    """Integrated gradients of one row of an MLP: the dense features x (1, F) from 0 (the
    training mean of standardised numbers; no category for one-hot columns) and, with
    categorical embeddings, each embedded column (1, n_cat, E) from its table's mean row.
    Returns (dense (F,), per categorical column (n_cat,) or None); delta covers both."""
    attr = require_captum()
    embeddings = list(getattr(model, "embeddings", []))
    if not embeddings or x_cat is None:
        ig = attr.IntegratedGradients(model)
        scores, delta = ig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=steps,
                                     method=method, return_convergence_delta=True)
        f = _target_output(model, target)
        return Attribution(scores[0].detach().float().cpu(), float(delta[0]), float(f(x)[0]),
                           float(f(torch.zeros_like(x))[0])), None
    with torch.no_grad():
        emb = torch.stack([e(x_cat[:, i]) for i, e in enumerate(embeddings)], dim=1)  # (1, n_cat, E)
        emb_base = torch.stack([e.weight.mean(dim=0) for e in embeddings])[None]  # (1, n_cat, E)

    def dense(x_: Tensor, emb_: Tensor) -> Tensor:
        return model.net(torch.cat([x_, emb_.flatten(1)], dim=1))  # (N, num_outputs)

    ig = attr.IntegratedGradients(dense)
    (sx, se), delta = ig.attribute((x, emb), baselines=(torch.zeros_like(x), emb_base), target=target,
                                   n_steps=steps, method=method, return_convergence_delta=True)
    f = _target_output(dense, target)
    f_in, f_base = float(f(x, emb)[0]), float(f(torch.zeros_like(x), emb_base)[0])
    return (Attribution(sx[0].detach().float().cpu(), float(delta[0]), f_in, f_base),
            Attribution(se[0].sum(dim=-1).detach().float().cpu(), float(delta[0]), f_in, f_base))
