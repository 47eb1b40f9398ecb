"""Drive a ProxySession with no sockets: feed events, read back the decided frames."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from harness.schema import validate_client_event
from proxy.session import (
    Action,
    CloseClient,
    CloseUpstream,
    FlushAudioAfter,
    ProxySession,
    SendToClient,
    SendUpstream,
    SessionOptions,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Outcome:
    """What one input made the session do, decoded for assertions."""

    to_client: list[dict[str, Any]] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)
    upstream: list[dict[str, Any]] = field(default_factory=list)
    client_close: CloseClient | None = None
    upstream_close: CloseUpstream | None = None
    flush_after: list[float] = field(default_factory=list)

    def types(self) -> list[str]:
        return [message["type"] for message in self.to_client]

    def upstream_types(self) -> list[str]:
        return [event["type"] for event in self.upstream]

    def only(self, kind: str) -> dict[str, Any]:
        found = [m for m in self.to_client if m["type"] == kind]
        assert len(found) == 1, f"expected one {kind}, got {self.types()}"
        return found[0]


def decode(actions: list[Action]) -> Outcome:
    outcome = Outcome()
    for action in actions:
        if isinstance(action, SendToClient):
            if action.text:
                outcome.to_client.append(orjson.loads(action.payload))
            else:
                outcome.audio.append(action.payload)
        elif isinstance(action, SendUpstream):
            event = orjson.loads(action.payload)
            validate_client_event(event)  # the SDK's models are the oracle
            outcome.upstream.append(event)
        elif isinstance(action, CloseClient):
            outcome.client_close = action
        elif isinstance(action, CloseUpstream):
            outcome.upstream_close = action
        elif isinstance(action, FlushAudioAfter):
            outcome.flush_after.append(action.seconds)
    return outcome


class Driver:
    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.session = ProxySession(SessionOptions(**options), clock=self.clock)

    def client(self, message: dict[str, Any] | str) -> Outcome:
        text = message if isinstance(message, str) else orjson.dumps(message).decode()
        return decode(self.session.client_text(text))

    def audio(self, pcm: bytes) -> Outcome:
        return decode(self.session.client_binary(pcm))

    def upstream(self, event: dict[str, Any] | bytes) -> Outcome:
        raw = event if isinstance(event, bytes) else orjson.dumps(event)
        return decode(self.session.upstream_message(raw))

    def flush(self) -> Outcome:
        return decode(self.session.flush_audio())

    # Common openings -------------------------------------------------------

    def ready(self, settings: dict[str, Any] | None = None) -> Outcome:
        """session.created, Settings, session.updated: returns the last step's outcome."""
        self.upstream({"type": "session.created", "session": {"id": "sess_1"}})
        self.client(settings or {"type": "Settings"})
        return self.upstream({"type": "session.updated", "session": {}})

    def respond(self) -> None:
        self.upstream({"type": "response.created", "response": {"id": "resp_1"}})


def audio_delta(item_id: str, pcm: bytes, response_id: str = "resp_1") -> dict[str, Any]:
    return {
        "type": "response.output_audio.delta",
        "response_id": response_id,
        "item_id": item_id,
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(pcm).decode(),
    }
