"""The base of every request body: strict fields, and text and numbers JSON can carry.

Python's JSON reader accepts what JSON itself does not (NaN, Infinity, 1e400 read as inf) and
keeps escaped lone surrogates ("\\ud800") in strings, which no encoder can write back. Both are
refused here, for every route and every field, before a request reaches a model:

    class PredictBody(RequestBody): inputs: list[str]
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from practicum.serve.limits import ApiError

_SURROGATE = re.compile("[\ud800-\udfff]")


class RequestBody(BaseModel):
    """Strict fields; unknown ones refused (subclasses that must take OpenAI's extras allow them)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _plain_json(cls, data: Any) -> Any:
        check_json(data, "")
        return data


def check_json(value: Any, path: str) -> None:
    """400 naming the field that holds a lone surrogate or a non-finite number."""
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        if found:
            where = path or "body"
            raise ApiError(400, f"{where} holds a lone surrogate (\\u{ord(found.group()):04x}), which is "
                           "not Unicode text; send valid UTF-8", path or None, "invalid_unicode")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ApiError(400, f"{path or 'body'} is {value}: JSON has no Infinity or NaN (and "
                           "1e400 overflows); send a finite number", path or None, "invalid_number")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json(key, path)
            check_json(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_json(item, f"{path}.{i}" if path else str(i))


TEMPERATURE_MAX = 2.0
"""Highest temperature a request may ask for (OpenAI's range is 0-2); below
practicum.generate.GREEDY_BELOW sampling is greedy."""
PENALTY_RANGE = (0.01, 100.0)
"""repetition_penalty a request may ask for (1 = off)."""
SEED_RANGE = (-(2**63), 2**64 - 1)
"""Seeds a torch.Generator takes."""
