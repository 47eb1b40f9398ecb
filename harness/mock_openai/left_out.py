"""Fields the mock leaves out of the events it sends, as the real service may after it
renames or drops a field (the API grows; a client should read only what it needs).

An event is validated with every field first, then the named fields are removed, so a
test plays exactly "today's event, minus these fields". A path is dotted
(``"item.content.type"``): it goes through objects, and through every element of a list.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

__all__ = ["LeftOutFields"]


class LeftOutFields:
    """Event type -> dotted paths to remove before sending (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, tuple[str, ...]] = {}

    def add(self, event_type: str, paths: tuple[str, ...]) -> None:
        if not paths or not all(isinstance(p, str) and p and p != "type" for p in paths):
            raise ValueError("name the fields to leave out (dotted paths, never 'type')")
        with self._lock:
            self._paths[event_type] = (*self._paths.get(event_type, ()), *paths)

    def clear(self) -> None:
        with self._lock:
            self._paths.clear()

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        """`event` without the fields left out of its type (a copy when any)."""
        with self._lock:
            paths = self._paths.get(str(event.get("type")), ())
        if not paths:
            return event
        stripped = copy.deepcopy(event)
        for path in paths:
            _remove(stripped, path.split("."))
        return stripped


def _remove(value: Any, keys: list[str]) -> None:
    if isinstance(value, list):
        for element in value:
            _remove(element, keys)
    elif isinstance(value, dict):
        if len(keys) == 1:
            value.pop(keys[0], None)
        elif keys[0] in value:
            _remove(value[keys[0]], keys[1:])
