"""Short texts for failure messages."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["summarize_types"]


def summarize_types(types: Iterable[str]) -> str:
    """`a, b x3, c`: the sequence of event types with repeats collapsed."""
    parts: list[str] = []
    last: str | None = None
    run = 0
    for kind in types:
        if kind == last:
            run += 1
            continue
        if last is not None:
            parts.append(last if run == 1 else f"{last} x{run}")
        last, run = kind, 1
    if last is not None:
        parts.append(last if run == 1 else f"{last} x{run}")
    return ", ".join(parts) if parts else "(nothing)"
