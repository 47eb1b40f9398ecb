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

from .bounds import MAX_JSON_DEPTH as MAX_DEPTH

__all__ = ["MAX_DEPTH", "InvalidMessage", "decode", "decoder", "shown", "too_deep"]


_SHOWN_CHARS = 64
_FLAT_KEYS = 16  # an object with more keys has its brackets counted instead

T = TypeVar("T")
Check = Callable[[Any], Any]


class InvalidMessage(ValueError):
    """Decoded JSON whose shape is not the declared one; the text names the field."""


class _Fault(Exception):
    """A value that does not fit; `path` grows (innermost first) as it is re-raised."""

    def __init__(self, problem: str, *path: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = list(path)


def decode(cls: type[T], value: Any, where: str) -> T:
    """`value` as an instance of the dataclass `cls`, or InvalidMessage naming the fault.

    `where` names the value in messages (``"Settings"`` gives ``Settings.agent.think``).
    """
    try:
        result: T = _object_check(cls)(value)  # type: ignore[arg-type]  # classes hash
    except _Fault as fault:
        raise _invalid(where, fault) from None
    return result


def decoder(cls: type[T], where: str) -> Callable[[Any], T]:
    """`decode` for one class, compiled now: a parser's table of the types it reads
    looks the check up once, not on every frame."""
    check = _object_check(cls)  # type: ignore[arg-type]  # classes hash

    def decode_one(value: Any) -> T:
        try:
            result: T = check(value)
        except _Fault as fault:
            raise _invalid(where, fault) from None
        return result

    return decode_one


def _invalid(where: str, fault: _Fault) -> InvalidMessage:
    return InvalidMessage(f"{where}{''.join(reversed(fault.path))} {fault.problem}")


def too_deep(value: Any, raw: str | bytes | bytearray) -> bool:
    """Does decoded JSON `value` nest more than MAX_DEPTH objects and arrays? `raw` is
    the text it came from: with that few brackets in it, nothing needs walking."""
    if type(value) is dict and len(value) <= _FLAT_KEYS:
        # Most frames are a small object of scalars (an audio delta: a few ids and a
        # long base64 string): looking at its values is cheaper than counting brackets
        # in all its bytes.
        for child in value.values():
            if type(child) is dict or type(child) is list:
                break
        else:
            return False
    if isinstance(raw, str):
        brackets = raw.count("{") + raw.count("[")
    else:
        brackets = raw.count(b"{") + raw.count(b"[")
    if brackets <= MAX_DEPTH or type(value) not in (dict, list):
        return False
    stack = [(value, 1)]  # a loop, not recursion: the input decides how deep it goes
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def shown(value: Any) -> str:
    """A peer's string as it may appear in an Error or a log line: quoted by repr (no
    control characters) and at most 64 characters long."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


# ---------------------------------------------------------------- compilation
#
# The checks take only the value and raise `_Fault` when it does not fit; the field's
# path is added on the way out, so a value that fits (nearly all of them) costs no
# string formatting. Scalar fields, the common case, are checked inline.

_MISSING: Any = object()


@cache
def _object_check(cls: type) -> Check:
    hints = get_type_hints(cls)
    # (name, exact JSON type for an inline check or None, nullable, check, required)
    specs: list[tuple[str, type | None, bool, Check, bool]] = []
    for spec in dataclasses.fields(cls):
        required = (
            spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        )
        hint = hints[spec.name]
        exact, nullable = _inline_scalar(hint)
        specs.append((spec.name, exact, nullable, _check_for(hint), required))

    def check(value: Any) -> Any:
        if type(value) is not dict:
            raise _Fault(f"must be an object, not {_kind(value)}")
        found: dict[str, Any] = {}
        for name, exact, nullable, check_field, required in specs:
            field = value.get(name, _MISSING)
            if field is _MISSING:
                if required:
                    raise _Fault("is required", "." + name)
            elif type(field) is exact or (nullable and field is None):
                found[name] = field
            else:
                try:
                    found[name] = check_field(field)
                except _Fault as fault:
                    fault.path.append("." + name)
                    raise
        return cls(**found)

    return check


def _inline_scalar(hint: Any) -> tuple[type | None, bool]:
    """(the exact type, may it be null) for `str`, `bool`, `int`, `str | None`, ...;
    (None, False) for anything that needs its full check (`float` takes an int too)."""
    if hint in (str, bool, int):
        return hint, False
    if get_origin(hint) in (Union, types.UnionType):
        options = get_args(hint)
        rest = [option for option in options if option is not type(None)]
        if len(rest) == 1 and rest[0] in (str, bool, int) and type(None) in options:
            return rest[0], True
    return None, False


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

        def optional(value: Any) -> Any:
            return None if value is None else inner(value)

        return optional
    # Several shapes: pick the one whose JSON kind matches (object, array, string, ...).
    by_kind = {_json_kind(option): _check_for(option) for option in rest}
    expected = " or ".join(sorted(by_kind))

    def one_of(value: Any) -> Any:
        if value is None and nullable:
            return None
        check = by_kind.get(_kind(value))
        if check is None:
            raise _Fault(f"must be {expected}, not {_kind(value)}")
        return check(value)

    return one_of


def _literal_check(allowed: tuple[Any, ...]) -> Check:
    listed = ", ".join(repr(option) for option in allowed)

    def check(value: Any) -> Any:
        if type(value) is not str or value not in allowed:
            raise _Fault(f"must be one of {listed}")
        return value

    return check


def _list_check(element: Check) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not list:
            raise _Fault(f"must be an array, not {_kind(value)}")
        checked = []
        for index, entry in enumerate(value):
            try:
                checked.append(element(entry))
            except _Fault as fault:
                fault.path.append(f"[{index}]")
                raise
        return checked

    return check


def _dict_check(element: Check) -> Check:
    if element is _any:
        return _scalar(dict, "an object")  # any values: nothing to walk

    def check(value: Any) -> Any:
        if type(value) is not dict:
            raise _Fault(f"must be an object, not {_kind(value)}")
        checked = {}
        for key, entry in value.items():
            try:
                checked[key] = element(entry)
            except _Fault as fault:
                fault.path.append(f"[{shown(key)}]")  # the client's key: quoted, cut
                raise
        return checked

    return check


def _scalar(kind: type, name: str) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise _Fault(f"must be {name}, not {_kind(value)}")
        return value

    return check


def _number(value: Any) -> Any:
    if type(value) is not float and type(value) is not int:
        raise _Fault(f"must be a number, not {_kind(value)}")
    return value


def _any(value: Any) -> Any:
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
