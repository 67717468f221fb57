"""The model registry: `model.type` -> builder, and the check that a model fits the data.

Each model file registers its builder next to its class with `@register_model(name, kinds)`;
`build_model` checks the pairing (lenet needs images, rnn needs text, ...) before building.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from torch import nn

from practicum.config import ModelConfig
from practicum.errors import UserError
from practicum.registry import Registry


class SpecLike(Protocol):
    """What a model needs to know about its inputs (practicum.data.InputSpec has these fields)."""

    kind: str  # "tabular" | "text" | "image"
    num_features: int
    cat_cardinalities: Sequence[int]
    vocab_size: int
    max_length: int
    pad_id: int
    image_shape: tuple[int, int, int] | None


Builder = Callable[[ModelConfig, SpecLike, int], nn.Module]

MODELS: Registry[Builder] = Registry("model")
DATA_KINDS: dict[str, tuple[str, ...]] = {}
"""model.type -> the data kinds it accepts, filled by register_model."""


def register_model(name: str, kinds: tuple[str, ...]) -> Callable[[Builder], Builder]:
    """Register `builder(cfg, spec, num_outputs)` as model.type `name`, accepting data `kinds`."""

    def add(builder: Builder) -> Builder:
        DATA_KINDS[name] = kinds
        return MODELS.register(name)(builder)

    return add


def build_model(cfg: ModelConfig, spec: SpecLike, num_outputs: int) -> nn.Module:
    """Build the model named by `cfg.type` for inputs described by `spec`.

    The model is called as `model(**batch_without_target)` and returns (N, num_outputs).
    """
    builder = MODELS.get(cfg.type)
    kinds = DATA_KINDS[cfg.type]
    if spec.kind not in kinds:
        fits = models_for(spec.kind)
        hint = f"use {' or '.join(fits)}" if fits else f"no model type accepts {spec.kind!r} data"
        raise UserError(
            f"model.type {cfg.type!r} needs {' or '.join(kinds)} data "
            f"but data.path gives {spec.kind}; {hint}"
        )
    if num_outputs < 1:
        raise ValueError(f"num_outputs must be >= 1, got {num_outputs}")
    return builder(cfg, spec, num_outputs)


def models_for(kind: str) -> list[str]:
    """The registered model types that accept data of this kind, sorted."""
    return sorted(name for name, kinds in DATA_KINDS.items() if kind in kinds)


def require_image_shape(spec: SpecLike) -> tuple[int, int, int]:
    """The (C, H, W) of an image spec; a spec without it is a bug in the data code."""
    if spec.image_shape is None or len(spec.image_shape) != 3:
        raise ValueError(f"image spec needs image_shape (C, H, W), got {spec.image_shape!r}")
    c, h, w = (int(s) for s in spec.image_shape)
    return c, h, w


def require_vocab(spec: SpecLike) -> int:
    """The vocabulary size of a text spec; an empty vocabulary is a bug in the data code."""
    if spec.vocab_size < 1:
        raise ValueError(f"text spec needs vocab_size >= 1, got {spec.vocab_size}")
    return int(spec.vocab_size)
