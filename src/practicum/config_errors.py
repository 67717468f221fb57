"""Readable config errors: the field path, the YAML line or the override, the expected type,
a close match."""

from __future__ import annotations

import difflib
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel


def _schema() -> tuple[type[BaseModel], dict[str, type[BaseModel]]]:
    from practicum.config import MODEL_CONFIGS, RunConfig

    return RunConfig, MODEL_CONFIGS


class Override(str):
    """A `section.field=value` override that remembers how the user gave it, so that an error
    in its value names that (`--train.lr` on the command line) rather than the recipe file."""

    origin: str

    def __new__(cls, item: str, origin: str | None = None) -> Override:
        self = super().__new__(cls, item)
        self.origin = origin or f"override {item}"
        return self


def origin_of(item: str) -> str:
    """How the user gave an override: its flag, or `override section.field=value`."""
    return getattr(item, "origin", None) or f"override {item}"


def override_at(overrides: list[str], loc: list[str], kind: str) -> str | None:
    """The last override that set the field at `loc` (or a section above or below it)."""
    path = [*loc, "type"] if kind.startswith("union_tag") else loc  # a model.type problem
    for item in reversed(overrides):
        key = [p for p in item.split("=", 1)[0].split(".") if p]
        if key == path[: len(key)] or (path and path == key[: len(path)]):
            return item
    return None


def clean_loc(loc: tuple[Any, ...]) -> list[str]:
    """Drop pydantic's union tags (model.lenet.channels -> model.channels)."""
    _, model_configs = _schema()
    out = [str(p) for p in loc]
    if len(out) >= 2 and out[0] == "model" and out[1] in model_configs:
        out = [out[0], *out[2:]]
    return out


def describe(err: dict[str, Any], loc: list[str], model_type: str | None) -> str:
    """One readable sentence for a pydantic error at `loc`."""
    _, model_configs = _schema()
    path = ".".join(loc) or "config"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _section_at(loc[:-1], model_type)
        known = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean {'.'.join([*loc[:-1], close[0]])!r}?" if close else f"known fields: {', '.join(known)}"
        return f"unknown field {path!r}; {hint}"
    if kind == "union_tag_invalid":
        got = err["input"].get("type") if isinstance(err["input"], dict) else err["input"]
        return f"model.type must be one of {', '.join(model_configs)} (got {got!r})"
    if kind == "union_tag_not_found":
        return f"model.type is missing; set it to one of {', '.join(model_configs)}"
    expected = _expected_type(loc, model_type)
    got = err.get("input")
    return f"field {path!r} expected {expected}, got {got!r} ({err['msg'].lower()})"


def _section_at(loc: list[str], model_type: str | None = None) -> type[BaseModel] | None:
    run_config, model_configs = _schema()
    model: type[BaseModel] | None = run_config
    for part in loc:
        if model is None or part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        if model is run_config and part == "model":
            ann = model_configs.get(model_type or "")
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model


def _expected_type(loc: list[str], model_type: str | None) -> str:
    parent = _section_at(loc[:-1], model_type) if loc else None
    if parent is not None and loc and loc[-1] in parent.model_fields:
        return field_type(parent.model_fields[loc[-1]])
    return "a valid value"


def field_type(info: Any) -> str:
    bounds = [f"{op} {getattr(m, attr)}" for m in info.metadata for attr, op in _BOUNDS
              if getattr(m, attr, None) is not None]
    return " ".join([_type_name(info.annotation), *bounds])


def _type_name(ann: Any) -> str:
    """A readable type: 'int >= 1', 'one of fp32, bf16', 'list of int', 'float or null'."""
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        bounds = [f"{op} {getattr(m, attr)}" for m in args[1:] for attr, op in _BOUNDS
                  if getattr(m, attr, None) is not None]
        bounds += [f"{op} {getattr(c, attr)}" for m in args[1:] for c in getattr(m, "metadata", [])
                   for attr, op in _BOUNDS if getattr(c, attr, None) is not None]
        return " ".join([_type_name(args[0]), *bounds])
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin in (list, tuple):
        inner = _type_name(args[0]) if args else "value"
        return f"list of {inner}" if origin is list else f"pair of {inner}"
    return getattr(ann, "__name__", str(ann))


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def line_of(text: str, loc: list[str]) -> int | None:
    """1-based line of the deepest key of `loc` present in the YAML text."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key, value in node.value:
            if key.value == part:
                line, node = key.start_mark.line + 1, value
                break
        else:
            break
    return line
