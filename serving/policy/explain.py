"""Policy-file errors as one plain sentence each, named by their YAML path.

pydantic's messages are written for programmers; an operator editing the policy YAML
gets "must be >= 0, got -3" or "unknown key 'min_simlarity' (did you mean
'min_similarity'?)" instead.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_TYPE_WORDS = {
    "float_type": "a number",
    "int_type": "a whole number",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "int_from_float": "a whole number",
}


def issues_from(
    exc: ValidationError, root: type[BaseModel], where: Any, policy_format: int
) -> list[Issue]:
    """One Issue per pydantic error; ``where`` maps an error location to a YAML path."""
    return [Issue(where(err["loc"]), _describe(err, root, policy_format)) for err in exc.errors()]


def _describe(err: Any, root: type[BaseModel], policy_format: int) -> str:
    kind, loc, ctx = err["type"], err["loc"], err.get("ctx") or {}
    got = err.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return _unknown_key(root, loc)
    if loc == ("policy_format",) and kind == "literal_error":
        return f"unsupported policy_format {got!r}; this ReturnLens reads format {policy_format}"
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit:g}, got {got!r}"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, got {_show(got)}"
    if kind == "literal_error":
        what = f"unknown key {got!r}" if loc and loc[-1] == "[key]" else f"got {got!r}"
        return f"must be one of {ctx.get('expected')} ({what})"
    if kind == "string_pattern_mismatch":
        return f"category name {got!r} must use lowercase letters, digits, '_' or '-'"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    names = {
        str: "text",
        bool: "a boolean",
        int: "a whole number",
        float: "a number",
        list: "a list",
        dict: "a mapping",
    }
    return f"{names.get(type(value), type(value).__name__)} {value!r}"[:80]


def _unknown_key(root: type[BaseModel], loc: Sequence[Any]) -> str:
    key = str(loc[-1])
    model = _model_at(root, loc[:-1])
    if model is None:
        return f"unknown key {key!r}"
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
    return f"unknown key {key!r} ({hint})"


def _unwrap(ann: Any) -> Any:
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            rest = [a for a in get_args(ann) if a is not type(None)]
            if len(rest) != 1:
                return ann
            ann = rest[0]
        else:
            return ann


def _model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    ann: Any = root
    for part in loc:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            fld = ann.model_fields.get(part) if isinstance(part, str) else None
            if fld is None:
                return None
            ann = fld.annotation
        elif get_origin(ann) in (dict, list):
            ann = get_args(ann)[-1]
        else:
            return None
    ann = _unwrap(ann)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
