"""Multi-layer perceptrons: for tabular rows (with optional categorical embeddings) and for
flattened images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from practicum.config import MLPConfig
from practicum.models.build import SpecLike, register_model, require_image_shape
from practicum.models.layers import activation, norm1d


class MLP(nn.Module):
    """Hidden layers of Linear -> norm -> act -> dropout, then a linear output.

    With `cat_cardinalities`, each categorical column gets its own embedding table of width
    cfg.embedding_dim; the embeddings are concatenated to the dense features `x`.
    """

    def __init__(
        self,
        cfg: MLPConfig,
        in_features: int,
        num_outputs: int,
        cat_cardinalities: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(n, cfg.embedding_dim) for n in cat_cardinalities
        )
        width = in_features + len(self.embeddings) * cfg.embedding_dim
        layers: list[nn.Module] = []
        for hidden in cfg.hidden_sizes:
            layers += [
                nn.Linear(width, hidden),
                norm1d(cfg.norm, hidden),
                activation(cfg.activation),
                nn.Dropout(cfg.dropout),
            ]
            width = hidden
        layers.append(nn.Linear(width, num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, x_cat: Tensor | None = None) -> Tensor:
        """x: (N, F) float; x_cat: (N, n_cat) int64 category indices -> (N, num_outputs)."""
        if self.embeddings:
            if x_cat is None:
                raise ValueError(f"this MLP embeds {len(self.embeddings)} categorical columns; pass x_cat")
            embedded = [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]  # n_cat x (N, E)
            x = torch.cat([x, *embedded], dim=1)  # (N, F + n_cat*E)
        return self.net(x)  # (N, num_outputs)


class ImageMLP(MLP):
    """An MLP over flattened pixels: `forward(image)` with image (N, C, H, W)."""

    def __init__(self, cfg: MLPConfig, image_shape: tuple[int, int, int], num_outputs: int) -> None:
        super().__init__(cfg, math.prod(image_shape), num_outputs)

    def forward(self, image: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(image.flatten(1))  # (N, C*H*W) -> (N, num_outputs)


@register_model("mlp", kinds=("tabular", "image"))
def build_mlp(cfg: MLPConfig, spec: SpecLike, num_outputs: int) -> nn.Module:
    if spec.kind == "image":
        return ImageMLP(cfg, require_image_shape(spec), num_outputs)
    return MLP(cfg, spec.num_features, num_outputs, list(spec.cat_cardinalities or []))
