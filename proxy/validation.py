"""The one place that decides whether decoded JSON has the shape a dataclass declares.

Both legs are untrusted, so every field the proxy reads is checked against the type
hints of the dataclass that models it, before any code touches it:

- `str`, `bool`, `int` (never a bool), `float` (an int is fine), `Any`;
- `X | None`: the field may be null (or absent); a null anywhere else is refused;
- `Literal[...]`: one of the listed values;
- `list[X]`, `dict[str, X]`: checked element by element;
- nested dataclasses, and unions of them with lists or scalars, told apart by JSON kind.

Keys the dataclass does not model are ignored (clients send more than we use). A
required field is one without a default. Decoders are compiled once per class, so the
hot path (an upstream audio delta) costs a few dictionary lookups.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

__all__ = ["InvalidMessage", "decode"]

T = TypeVar("T")
Check = Callable[[Any, str], Any]


class InvalidMessage(ValueError):
    """Decoded JSON whose shape is not the declared one; the text names the field."""


def decode(cls: type[T], value: Any, where: str) -> T:
    """`value` as an instance of the dataclass `cls`, or InvalidMessage naming the fault.

    `where` names the value in messages (``"Settings"`` gives ``Settings.agent.think``).
    """
    result: T = _object_check(cls)(value, where)  # type: ignore[arg-type]  # classes hash
    return result


# ---------------------------------------------------------------- compilation


@cache
def _object_check(cls: type) -> Check:
    hints = get_type_hints(cls)
    specs: list[tuple[str, Check, bool]] = []
    for spec in dataclasses.fields(cls):
        required = (
            spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        )
        specs.append((spec.name, _check_for(hints[spec.name]), required))

    def check(value: Any, where: str) -> Any:
        if type(value) is not dict:
            raise InvalidMessage(f"{where} must be an object, not {_kind(value)}")
        found: dict[str, Any] = {}
        for name, check_field, required in specs:
            if name in value:
                found[name] = check_field(value[name], f"{where}.{name}")
            elif required:
                raise InvalidMessage(f"{where}.{name} is required")
        return cls(**found)

    return check


def _check_for(hint: Any) -> Check:
    if hint is Any:
        return _any
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _object_check(hint)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return _union_check(get_args(hint))
    if origin is Literal:
        return _literal_check(get_args(hint))
    if origin is list:
        return _list_check(_check_for(get_args(hint)[0]))
    if origin is dict:
        key, element = get_args(hint)
        if key is not str:
            raise TypeError(f"JSON object keys are strings, not {key}")
        return _dict_check(_check_for(element))
    scalar = _SCALARS.get(hint)
    if scalar is None:
        raise TypeError(f"no JSON check for {hint!r}")
    return scalar


def _union_check(options: tuple[Any, ...]) -> Check:
    nullable = type(None) in options
    rest = [option for option in options if option is not type(None)]
    if len(rest) == 1:
        inner = _check_for(rest[0])
        if not nullable:
            return inner

        def optional(value: Any, where: str) -> Any:
            return None if value is None else inner(value, where)

        return optional
    # Several shapes: pick the one whose JSON kind matches (object, array, string, ...).
    by_kind = {_json_kind(option): _check_for(option) for option in rest}
    expected = " or ".join(sorted(by_kind))

    def one_of(value: Any, where: str) -> Any:
        if value is None and nullable:
            return None
        check = by_kind.get(_kind(value))
        if check is None:
            raise InvalidMessage(f"{where} must be {expected}, not {_kind(value)}")
        return check(value, where)

    return one_of


def _literal_check(allowed: tuple[Any, ...]) -> Check:
    listed = ", ".join(repr(option) for option in allowed)

    def check(value: Any, where: str) -> Any:
        if type(value) is not str or value not in allowed:
            raise InvalidMessage(f"{where} must be one of {listed}")
        return value

    return check


def _list_check(element: Check) -> Check:
    def check(value: Any, where: str) -> Any:
        if type(value) is not list:
            raise InvalidMessage(f"{where} must be an array, not {_kind(value)}")
        return [element(entry, f"{where}[{index}]") for index, entry in enumerate(value)]

    return check


def _dict_check(element: Check) -> Check:
    if element is _any:

        def any_values(value: Any, where: str) -> Any:
            if type(value) is not dict:
                raise InvalidMessage(f"{where} must be an object, not {_kind(value)}")
            return value

        return any_values

    def check(value: Any, where: str) -> Any:
        if type(value) is not dict:
            raise InvalidMessage(f"{where} must be an object, not {_kind(value)}")
        return {key: element(entry, f"{where}.{key}") for key, entry in value.items()}

    return check


def _scalar(kind: type, name: str) -> Check:
    def check(value: Any, where: str) -> Any:
        if type(value) is not kind:
            raise InvalidMessage(f"{where} must be {name}, not {_kind(value)}")
        return value

    return check


def _number(value: Any, where: str) -> Any:
    if type(value) is not float and type(value) is not int:
        raise InvalidMessage(f"{where} must be a number, not {_kind(value)}")
    return value


def _any(value: Any, where: str) -> Any:
    return value


_SCALARS: dict[Any, Check] = {
    str: _scalar(str, "a string"),
    bool: _scalar(bool, "true or false"),
    int: _scalar(int, "an integer"),
    float: _number,
}


def _json_kind(hint: Any) -> str:
    """How a value of this declared type looks in JSON."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return "an object"
    origin = get_origin(hint)
    if origin is list:
        return "an array"
    if origin is dict:
        return "an object"
    if origin is Literal or hint is str:
        return "a string"
    if hint is bool:
        return "true or false"
    if hint is int or hint is float:
        return "a number"
    raise TypeError(f"cannot tell {hint!r} apart in a union")


def _kind(value: Any) -> str:
    """How a decoded JSON value is described in messages."""
    kind = type(value)
    if kind is dict:
        return "an object"
    if kind is list:
        return "an array"
    if kind is str:
        return "a string"
    if kind is bool:
        return "true or false"
    if kind is int or kind is float:
        return "a number"
    if value is None:
        return "null"
    return kind.__name__
