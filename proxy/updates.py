"""The `session.update`s a session asked for and has not seen confirmed.

Each one carries its purpose, which decides what the client hears when upstream
confirms it (`SettingsApplied`, `PromptUpdated`, ...), and its deadline. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .client_messages import Settings
from .server_messages import (
    ListenUpdated,
    PromptUpdated,
    ServerMessage,
    SettingsApplied,
    SpeakUpdated,
    ThinkUpdated,
)

__all__ = ["UPDATE_REPLIES", "PendingUpdate", "UpdateKind"]


class UpdateKind(Enum):
    """What a `session.update` we sent was for: decides the reply to the client."""

    FIRST_SETTINGS = "first Settings"
    SETTINGS = "Settings"
    PROMPT = "UpdatePrompt"
    SPEAK = "UpdateSpeak"
    THINK = "UpdateThink"
    LISTEN = "UpdateListen"


UPDATE_REPLIES: dict[UpdateKind, Callable[[], ServerMessage]] = {
    UpdateKind.SETTINGS: SettingsApplied,
    UpdateKind.PROMPT: PromptUpdated,
    UpdateKind.SPEAK: SpeakUpdated,
    UpdateKind.THINK: ThinkUpdated,
    UpdateKind.LISTEN: ListenUpdated,
}


@dataclass(slots=True)
class PendingUpdate:
    event_id: str
    kind: UpdateKind
    deadline: float
    settings: Settings | None = None  # a Settings (or its replacement agent) to adopt
