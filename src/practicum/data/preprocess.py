"""The Preprocessor: fitted on the training split, saved as JSON, repeated exactly at predict time.

It turns raw tables or images into the tensor batches the models take (see
practicum.data.spec), decodes model outputs back to labels or original units, and
reads new inputs for `practicum predict/evaluate`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from practicum.config import AugmentConfig, DataConfig
from practicum.data.arrays import to_nhwc
from practicum.data.augment import augment_images
from practicum.data.columns import check_columns
from practicum.data.image_files import ImageTarget
from practicum.data.images import ImageEncoder
from practicum.data.raw import ImageSet, RawData, Table
from practicum.data.spec import Batch, InputSpec, Kind, Task
from practicum.data.tabular import TabularEncoder
from practicum.data.targets import TargetEncoder
from practicum.data.text import PAD_ID, PretrainedTextEncoder, TextEncoder, column_text
from practicum.errors import UserError

log = logging.getLogger(__name__)

STATE_VERSION = 1
_DISPLAY_CHARS = 80
Encoder = TabularEncoder | TextEncoder | PretrainedTextEncoder | ImageEncoder


class Preprocessor:
    """Inputs and targets of one data set, with the statistics of its training split."""

    def __init__(
        self,
        kind: Kind,
        task: Task,
        features: list[str],
        target: str,
        inputs: Encoder,
        targets: TargetEncoder,
        augment_cfg: AugmentConfig | None = None,
    ) -> None:
        self.kind, self.task, self.features, self.target = kind, task, features, target
        self.inputs, self.targets = inputs, targets
        self.augment_cfg = augment_cfg or AugmentConfig()
        self.spec = self._make_spec()

    @property
    def label_names(self) -> list[str] | None:
        return self.targets.labels if self.task == "classification" else None

    @classmethod
    def fit(
        cls, train: RawData, data: DataConfig, kind: Kind, task: Task, features: list[str], target: str,
        tokenizer: Any = None, max_length: int | None = None,
    ) -> Preprocessor:
        """Measure everything on the training split only. With `tokenizer` (a pretrained model's),
        text columns are read with it, up to max_length tokens, instead of a fitted vocabulary."""
        inputs: Encoder
        if isinstance(train, ImageSet):
            inputs = ImageEncoder.fit(train.images, data.image.normalize)
            y: Any = train.labels
        else:
            frame = train.frame
            if kind == "text" and tokenizer is not None:
                inputs = PretrainedTextEncoder(features, max_length or 128, tokenizer)
            elif kind == "text":
                inputs = TextEncoder.fit(column_text(frame, features), features, data.text)
            else:
                inputs = TabularEncoder.fit(
                    frame, features, data.categorical, data.categorical_encoding, data.normalize
                )
            y = frame[target]
        targets = TargetEncoder.fit(y, task, train.source)
        pre = cls(kind, task, features, target, inputs, targets, data.image.augment)
        log.debug("preprocessor fitted on %d training rows: %s", len(train), pre.spec)
        return pre

    def _make_spec(self) -> InputSpec:
        enc = self.inputs
        if isinstance(enc, ImageEncoder):
            c, h, w = enc.shape
            return InputSpec("image", image_shape=(c, h, w))
        if isinstance(enc, TextEncoder):
            return InputSpec("text", vocab_size=enc.vocab_size, max_length=enc.max_length, pad_id=PAD_ID)
        if isinstance(enc, PretrainedTextEncoder):
            return InputSpec("text", vocab_size=enc.vocab_size, max_length=enc.max_length, pad_id=enc.pad_id)
        return InputSpec("tabular", num_features=enc.num_features, cat_cardinalities=enc.cardinalities)

    # ------------------------------------------------------------ transform

    def transform(
        self, raw: pd.DataFrame | np.ndarray | RawData, with_target: bool, source: str = "input"
    ) -> Batch:
        """Raw rows or images -> tensors (plus "target" when with_target)."""
        if isinstance(raw, Table):
            raw, source = raw.frame, raw.source
        if isinstance(self.inputs, ImageEncoder):
            images = raw if isinstance(raw, ImageSet) else ImageSet(to_nhwc(np.asarray(raw), source), None, source)
            batch = self.inputs.transform(images.images, images.source)
            if with_target:
                if images.labels is None:
                    raise UserError(f"{images.source}: no labels found beside the images; give labelled data")
                batch["target"] = self.targets.encode(images.labels, images.source)
            return batch
        if not isinstance(raw, pd.DataFrame):
            raise UserError(f"{source}: expected a table with columns {', '.join(self.features)}")
        check_columns(raw, source, self.features, "a feature column of the trained model")
        if isinstance(self.inputs, TextEncoder | PretrainedTextEncoder):
            batch = self.inputs.transform(raw)
        else:
            batch = self.inputs.transform(raw, source)
        if with_target:
            check_columns(raw, source, [self.target], "the target column", taken=self.features)
            batch["target"] = self.targets.encode(raw[self.target], source)
        return batch

    def feature_fields(self) -> list[dict[str, Any]] | None:
        """Tabular data: each feature column's name, type and an example value (what a client
        needs to write a record); None for text and images."""
        return self.inputs.fields(self.features) if isinstance(self.inputs, TabularEncoder) else None

    def display(self, raw: RawData) -> list[str]:
        """One short human string per row: the text for text data, else 'row 17' / 'image 17'."""
        if isinstance(raw, Table) and self.kind == "text":
            texts = column_text(raw.frame, self.features)
            return [t if len(t) <= _DISPLAY_CHARS else t[: _DISPLAY_CHARS - 3] + "..." for t in texts]
        return raw.display()

    def augment(self, batch: Batch, generator: torch.Generator) -> Batch:
        """Train-time augmentation of batch["image"]; the batch itself when off or not images."""
        if not isinstance(self.inputs, ImageEncoder) or not self.augment_cfg.enabled:
            return batch
        image = augment_images(batch["image"], self.augment_cfg, self.inputs.background, generator)
        return {**batch, "image": image}

    def decode_target(self, values: torch.Tensor) -> list[Any]:
        """Class indices -> label strings; regression outputs -> floats in original units."""
        return self.targets.decode(values)

    # ------------------------------------------------------------ new inputs

    def load_inputs(self, source: Any) -> tuple[Batch, list[str], Any]:
        """A path or parsed JSON -> (batch, display strings, raw targets or None)."""
        raw = self.read_inputs(source)
        if isinstance(raw, ImageSet):
            has_target = raw.labels is not None
            raw_targets = self.targets.raw(raw.labels) if has_target else None
        else:
            has_target = self.target in raw.frame.columns and bool(raw.frame[self.target].notna().all())
            raw_targets = self.targets.raw(raw.frame[self.target]) if has_target else None
        batch = self.transform(raw, with_target=has_target, source=raw.source)
        return batch, self.display(raw), raw_targets

    def unknown_categories(self, raw: RawData) -> dict[str, int]:
        """Per categorical feature, how many cells of `raw` hold a category not seen in training
        (only columns with some; {} for text and image data)."""
        if not isinstance(self.inputs, TabularEncoder) or not isinstance(raw, Table):
            return {}
        return self.inputs.unknown_counts(raw.frame)

    def read_inputs(self, source: Any) -> RawData:
        """A path, parsed JSON or array -> the raw table or images (a Table or ImageSet as is)."""
        from practicum.data.formats import read_source

        if isinstance(source, Table | ImageSet):
            raw = source
        elif isinstance(source, str | Path):
            target = ImageTarget.of_shape(self.inputs.shape) if isinstance(self.inputs, ImageEncoder) else None
            raw = read_source(str(source), field="input", image_target=target).train
        elif self.kind == "image":
            raw = ImageSet(to_nhwc(np.asarray(source), "input"), None, "input")
        elif isinstance(source, dict):
            raw = Table(pd.DataFrame([source]), "input")
        elif isinstance(source, list) and source and all(isinstance(s, str) for s in source):
            if self.kind != "text":
                raise UserError("input: a list of strings needs a text model; give records (objects)")
            raw = Table(pd.DataFrame({self.features[0]: source}), "input")
        elif isinstance(source, list) and source and all(isinstance(s, dict) for s in source):
            raw = Table(pd.DataFrame.from_records(source), "input")
        else:
            raise UserError("input: give a file path, a record, a list of records or a list of strings")
        if (self.kind == "image") != isinstance(raw, ImageSet):
            raise UserError(f"{raw.source}: the model was trained on {self.kind} data; give {self.kind} input")
        return raw

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to repeat transform() exactly; JSON-serialisable."""
        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "task": self.task,
            "features": list(self.features),
            "target": self.target,
            "spec": self.spec.to_dict(),
            "inputs": self.inputs.state(),
            "targets": self.targets.state(),
            "augment": self.augment_cfg.model_dump(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Preprocessor:
        if state.get("version") != STATE_VERSION:
            raise UserError(
                f"preprocessing state version {state.get('version')!r} is not supported "
                f"(this practicum reads {STATE_VERSION}); retrain the model"
            )
        encoders = {"image": ImageEncoder, "text": TextEncoder, "tabular": TabularEncoder}
        if state["kind"] == "text" and "tokenizer_json" in state["inputs"]:
            encoders["text"] = PretrainedTextEncoder
        inputs = encoders[state["kind"]].from_state(state["inputs"])
        return cls(
            state["kind"],
            state["task"],
            list(state["features"]),
            state["target"],
            inputs,
            TargetEncoder.from_state(state["targets"]),
            AugmentConfig.model_validate(state.get("augment") or {}),
        )
