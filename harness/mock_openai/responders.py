"""Callable responders: what a responder sees (`Turn`) and how its answer is checked.

A rule's ``respond_with(function)`` calls ``function(turn)`` when the rule fires. The
function may be sync or async and returns what `harness.mock_openai.reply` builds (or
plain text, a list, or None for the mock's default answer). `steps_from` turns that into
rule steps, refusing anything else with a message that names the responder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .steps import (
    OUTPUT_STEPS,
    CallFunction,
    CloseConnection,
    RejectHandshake,
    ReplyAudio,
    ReplyText,
    Respond,
    RuleStep,
    Send,
    SendError,
    SendRaw,
    Sleep,
)
from .turn import Turn

__all__ = ["ResponderError", "Turn", "steps_from"]

_ALLOWED = (
    Send,
    SendRaw,
    Sleep,
    CloseConnection,
    ReplyAudio,
    ReplyText,
    CallFunction,
    SendError,
)


class ResponderError(TypeError):
    """A responder returned something that is not a reply."""


def steps_from(result: Any, *, responder: str, trigger: str) -> tuple[RuleStep, ...]:
    """The rule steps for what a responder returned (None: the default answer)."""
    if result is None:
        return ()
    items: Sequence[Any] = (
        [result] if isinstance(result, str) or not isinstance(result, Sequence) else result
    )
    steps: list[RuleStep] = []
    for item in items:
        if isinstance(item, str):
            steps.append(ReplyText(item))
        elif isinstance(item, _ALLOWED):
            steps.append(item)
        elif isinstance(item, Respond | RejectHandshake):
            raise ResponderError(
                f"responder {responder} returned {type(item).__name__}, which only a rule may hold"
            )
        else:
            raise ResponderError(
                f"responder {responder} returned {item!r}: return text, a step from "
                "harness.mock_openai.reply, a list of them, or None"
            )
    if trigger == "on_connect" and any(isinstance(s, OUTPUT_STEPS) for s in steps):
        raise ResponderError(
            f"responder {responder} answered a new connection with a reply; a connection "
            "has no response yet (use events, errors, pauses or a close)"
        )
    return tuple(steps)
