"""What a responder is asked to answer: the data of one firing of a rule.

Data only, like the steps a responder returns: it imports nothing of the mock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Turn"]


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
