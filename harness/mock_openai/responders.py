"""Callable responders: what a responder sees (`Turn`) and how its answer is checked.

A rule's ``respond_with(function)`` calls ``function(turn)`` when the rule fires. The
function may be sync or async and returns what `harness.mock_openai.reply` builds (or
plain text, a list, or None for the mock's default answer). `steps_from` turns that into
rule steps, refusing anything else with a message that names the responder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Turn:
    """What a responder is asked to answer.

    `event` is the client event that fired the rule: the `response.create` (or the
    event itself for `on_client_event`); None for a turn that server VAD ended and
    for `on_connect`. `text` is the user's text, what the mock heard, or the function
    output ("" when the trigger has none). `conversation` and `session` are copies of
    the mock's state when the rule fired.
    """

    trigger: str
    """``on_user_text``, ``on_user_speech``, ``on_function_output``, ``on_client_event``
    or ``on_connect``."""
    event: dict[str, Any] | None
    text: str
    function: str | None
    conversation: list[dict[str, Any]]
    session: dict[str, Any]
    connection: int
    """Index of the connection (as in `MockRealtime.connections`)."""
    number: int
    """Which firing of the rule this is: 1 the first time."""

    def messages(self) -> list[tuple[str, str]]:
        """(role, text) of every message in the conversation: the history as a model
        would read it (text, or the transcript of audio)."""
        found: list[tuple[str, str]] = []
        for item in self.conversation:
            if item.get("type") != "message":
                continue
            parts = [
                part.get("text") or part.get("transcript") or ""
                for part in item.get("content") or ()
            ]
            found.append((str(item.get("role")), " ".join(p for p in parts if p)))
        return found


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
