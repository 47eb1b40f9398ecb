"""JSON patterns: "this event contains at least these values".

A pattern is JSON data. An object matches an object that has every key of the pattern
with a matching value (other keys are free); any other value matches an equal value.
Patterns are how rules written as JSON (and the admin API's waits) say `where`, since a
Python predicate cannot travel over HTTP; Python rules may use either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

__all__ = ["EventFilter", "EventPredicate", "as_predicate", "matches_pattern"]

EventPredicate: TypeAlias = Callable[[dict[str, Any]], bool]
#: A predicate, or a JSON pattern the event must contain.
EventFilter: TypeAlias = EventPredicate | Mapping[str, Any]


def matches_pattern(value: Any, pattern: Any) -> bool:
    """Does `value` contain `pattern` (objects: a subset of keys; else: equality)?"""
    if isinstance(pattern, Mapping):
        return isinstance(value, Mapping) and all(
            key in value and matches_pattern(value[key], expected)
            for key, expected in pattern.items()
        )
    if isinstance(pattern, list):
        return (
            isinstance(value, list)
            and len(value) == len(pattern)
            and all(matches_pattern(v, p) for v, p in zip(value, pattern, strict=True))
        )
    if isinstance(value, bool) is not isinstance(pattern, bool):
        return False  # True == 1 in Python, not in JSON
    return bool(value == pattern)


def as_predicate(where: EventFilter | None) -> EventPredicate | None:
    """A predicate for `where`, whichever form it was given in."""
    if where is None or callable(where):
        return where
    pattern = dict(where)
    return lambda event: matches_pattern(event, pattern)
