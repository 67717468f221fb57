"""Request inputs -> what a bundle's own preprocessing reads.

    text models     "a sentence", {"text": "..."} or {FEATURE: "...", ...} -> one string per input
                    (several text features joined with spaces, as in training)
    tabular models  {FEATURE: value, ...} (a missing feature is an empty cell, imputed as in training;
                    numbers must fit the 32-bit floats the model reads)
    image models    {"image": "<base64 PNG/JPEG, or a data: URL>"} -> 8-bit pixels in the model's
                    channels and size (resized when different, as `practicum predict` does); only
                    PNG and JPEG are decoded, each image and the request's images together are
                    limited in pixels
    taggers         "a sentence" or {"tokens": [...]} (as Bundle.predict takes them)

Nothing a request sends is ever read as a file path. Errors name the input (inputs.3); whatever
the image decoder raises on a damaged file is that input's 422.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
from typing import Any

import numpy as np

from practicum.data.image_files import ImageTarget, conform, describe_image
from practicum.serve.limits import ApiError

log = logging.getLogger(__name__)
IMAGE_FORMATS = ("PNG", "JPEG")
"""The only image formats decoded: every other parser of Pillow stays out of reach of requests."""
FLOAT32_MAX = float(np.finfo(np.float32).max)


def prepare(bundle: Any, items: list[Any], max_image_pixels: int,
            max_request_pixels: int | None = None) -> Any:
    """The inputs of one request, checked, in the form the bundle's preprocessing takes."""
    if bundle.tagging is not None:
        return [_tagger_input(item, i, bundle.tagging.cfg.task.words_field) for i, item in enumerate(items)]
    pre = bundle.preprocessor
    if pre.kind == "image":
        budget = _PixelBudget(max_image_pixels, max_request_pixels or max_image_pixels * len(items))
        arrays = [_image_input(item, i, pre.inputs, budget) for i, item in enumerate(items)]
        return np.stack(arrays)  # (N, H, W, C)
    if pre.kind == "text":
        return [_text(item, i, pre.features, pre.target) for i, item in enumerate(items)]
    return [_table_record(item, i, pre.features, pre.target) for i, item in enumerate(items)]


def join(prepared: list[Any]) -> Any:
    """Several requests' prepared inputs as one batch input."""
    if isinstance(prepared[0], np.ndarray):
        return np.concatenate(prepared)
    return [x for part in prepared for x in part]


def _bad(i: int, message: str, code: str = "invalid_input") -> ApiError:
    return ApiError(422, f"inputs.{i}: {message}", f"inputs.{i}", code)


def _text(item: Any, i: int, features: list[str], target: str) -> str:
    """The text the model reads: the string, or the record's text fields joined with spaces
    (practicum.data.text.column_text, which training used)."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        raise _bad(i, "a text model takes a string or {\"text\": ...}")
    if "text" in item and "text" not in features:
        item = {features[0]: item["text"], **{k: v for k, v in item.items() if k != "text"}}
    record = _known_fields(item, i, features, target)
    bad = [k for k, v in record.items() if v is not None and not isinstance(v, str)]
    if bad:
        raise _bad(i, f"field {bad[0]!r} must be a string")
    return " ".join(v for v in (record.get(f) for f in features) if v)


def _table_record(item: Any, i: int, features: list[str], target: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _bad(i, f"a tabular model takes a record (object) with the fields {', '.join(features)}")
    record = _known_fields(item, i, features, target)
    bad = [k for k, v in record.items() if isinstance(v, dict | list)]
    if bad:
        raise _bad(i, f"field {bad[0]!r} must be a number, a string or null")
    return {f: _number(record.get(f), f, i) for f in features}


def _number(value: Any, name: str, i: int) -> Any:
    """A number as the float the model reads (refused when no 32-bit float holds it); other
    values as they are."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise _bad(i, f"field {name!r} is {_short(value)}, beyond the range of the 32-bit floats the "
                   f"model reads (at most {FLOAT32_MAX:.3g} in size)", "input_out_of_range")
    return number if isinstance(value, int) and abs(value) > 2**53 else value


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"


def _known_fields(item: dict[str, Any], i: int, features: list[str], target: str) -> dict[str, Any]:
    unknown = [k for k in item if k not in features and k != target]
    if unknown:
        raise _bad(i, f"unknown field {unknown[0]!r}; the model reads {', '.join(features)}")
    if not any(k in item for k in features):
        raise _bad(i, f"the record has none of the model's fields ({', '.join(features)})")
    return {k: v for k, v in item.items() if k in features}


def _tagger_input(item: Any, i: int, words_field: str) -> Any:
    if isinstance(item, str) and item.split():
        return item
    if isinstance(item, dict):
        words = item.get(words_field, item.get("text"))
        if isinstance(words, str) and words.split():
            return words
        if isinstance(words, list) and words and all(isinstance(w, str) for w in words):
            return {words_field: words}
    raise _bad(i, f"a tagger takes a non-empty sentence or {{\"{words_field}\": [words]}}")


class _PixelBudget:
    """The pixels one image, and all the images of a request together, may have."""

    def __init__(self, per_image: int, per_request: int) -> None:
        self.per_image, self.left, self.per_request = per_image, per_request, per_request

    def take(self, i: int, size: tuple[int, int]) -> None:
        w, h = size
        if w * h > self.per_image:
            raise ApiError(400, f"inputs.{i}: image of {w}x{h} pixels is larger than the limit "
                           f"({self.per_image} pixels, --max-image-pixels)", f"inputs.{i}", "image_too_large")
        if w * h > self.left:
            raise ApiError(400, f"inputs.{i}: the request's images hold more than "
                           f"{self.per_request} pixels together (--max-request-pixels); send fewer "
                           "or smaller images per request", f"inputs.{i}", "images_too_large")
        self.left -= w * h


def _image_input(item: Any, i: int, encoder: Any, budget: _PixelBudget) -> np.ndarray:
    """A base64 PNG/JPEG -> uint8 (H, W, C) pixels conformed to the model's channels and size,
    exactly as `practicum predict` reads an image file (practicum.data.image_files.conform)."""
    from PIL import Image

    value = item.get("image") if isinstance(item, dict) else None
    if not isinstance(value, str):
        raise _bad(i, "an image model takes {\"image\": \"<base64 PNG or JPEG>\"}")
    if value.startswith("data:"):
        head, _, value = value.partition(",")
        if ";base64" not in head:
            raise _bad(i, "a data: URL image must be base64 (data:image/png;base64,...)")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(i, "image is not valid base64") from None
    target = ImageTarget.of_shape(encoder.shape)
    try:
        with Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS) as im:
            budget.take(i, im.size)
            if im.size != target.size:
                log.info("inputs.%d: %s resized to %s, the model's input size", i, describe_image(im),
                         target.describe())
            return conform(im, target)
    except ApiError:
        raise
    except Exception as exc:  # a damaged or foreign file: whatever the decoder raised
        raise _bad(i, f"cannot read the image ({type(exc).__name__}); send a PNG or JPEG file, "
                   "base64-encoded") from None
