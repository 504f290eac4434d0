"""What a config field accepts, read from its pydantic metadata (torch-free).

The training CLI builds its flags from these descriptions and a refused value is
reported with them, so the schema in ``training/config.py`` stays the one place that
says what each key accepts: its base type, its ``Literal`` choices and its bounds. A
pydantic ``ValidationError`` becomes one :class:`ConfigError` sentence naming the key
("aug_strength must be 0..1, got 3.0"), which the CLI prints as-is.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from vision.errors import ConfigError

_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_KIND = {int: "an integer", float: "a number", str: "text", bool: "true or false"}


@dataclass(frozen=True)
class FieldShape:
    """One field's accepted values: base type, choices, bounds, and whether null is."""

    base: Any  # int | float | str | bool | tuple | dict | a Literal
    optional: bool
    choices: tuple[str, ...]  # non-empty for Literal fields
    bounds: str  # "0..1", ">= 1", "in (0, 1)", or ""

    @property
    def kind(self) -> str:
        """A value of this field, in words: "an integer >= 1", "one of a, b"."""
        if self.choices:
            text = f"one of {', '.join(self.choices)}"
        elif self.base is tuple:
            text = "a path or a list of paths"
        elif self.base is dict:
            text = "a mapping"
        else:
            text = _KIND.get(self.base, "a value")
            if self.bounds:  # "an integer >= 1", "a number in (0, 1)", "a number in 0..1"
                joiner = " " if self.bounds.startswith(("<", ">", "in ")) else " in "
                text += joiner + self.bounds
        return text + (" (or null)" if self.optional else "")


def field_shape(field: FieldInfo) -> FieldShape:
    base, optional = _unwrap(field.annotation)
    choices = tuple(str(c) for c in get_args(base)) if get_origin(base) is Literal else ()
    return FieldShape(get_origin(base) or base, optional, choices, _bounds(field.metadata))


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``Annotated[int, ...] | None`` -> (int, True)."""
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(members) < len(get_args(annotation))
        annotation = members[0] if len(members) == 1 else annotation
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation, optional


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, int | float) else str(x)


def _bounds(metadata: list[Any]) -> str:
    """The field's ge/gt/le/lt as the sentence fragment the error messages use."""
    lo: tuple[Any, str] | None = next(((m.ge, "[") for m in metadata if isinstance(m, at.Ge)), None)
    lo = lo or next(((m.gt, "(") for m in metadata if isinstance(m, at.Gt)), None)
    hi: tuple[Any, str] | None = next(((m.le, "]") for m in metadata if isinstance(m, at.Le)), None)
    hi = hi or next(((m.lt, ")") for m in metadata if isinstance(m, at.Lt)), None)
    if lo and hi:
        if lo[1] == "[" and hi[1] == "]":
            return f"{_num(lo[0])}..{_num(hi[0])}"
        return f"in {lo[1]}{_num(lo[0])}, {_num(hi[0])}{hi[1]}"
    if lo:
        return f"{'>=' if lo[1] == '[' else '>'} {_num(lo[0])}"
    if hi:
        return f"{'<=' if hi[1] == ']' else '<'} {_num(hi[0])}"
    return ""


def config_error(exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    """The first problem of ``exc`` as one sentence naming the key (unknown keys: all)."""
    errors = exc.errors()
    fields = model.model_fields
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return ConfigError(
            f"unknown training config key(s): {', '.join(unknown)}; valid keys are "
            f"{', '.join(fields)}"
        )
    first = errors[0]
    key = str(first["loc"][0]) if first["loc"] else ""
    if key not in fields:  # a check across fields: its own message names the keys
        error = first.get("ctx", {}).get("error")
        return ConfigError(f"invalid training config: {error or first['msg']}")
    shape = field_shape(fields[key])
    rule = shape.bounds if first["type"] in _BOUND_ERRORS else shape.kind
    return ConfigError(f"invalid training config: {key} must be {rule}, got {first['input']!r}")
