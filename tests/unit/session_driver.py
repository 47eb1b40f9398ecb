"""Drive a ProxySession with no sockets: feed events, read back the decided frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from harness.component_schema import validate_component_message
from harness.schema import validate_client_event
from proxy.actions import (
    Action,
    CallEndpoint,
    CloseClient,
    CloseNextUpstream,
    CloseUpstream,
    OpenNextUpstream,
    SendNextUpstream,
    SendToClient,
    SendUpstream,
    SwitchUpstream,
)
from proxy.session import ProxySession
from proxy.session_options import SessionOptions
from tests.unit import realtime_events as events


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
    calls: list[CallEndpoint] = field(default_factory=list)
    # Renewal (docs/protocol-mapping.md): the next upstream session.
    opened_next: bool = False
    to_next: list[dict[str, Any]] = field(default_factory=list)
    switched: bool = False
    hear_old_for: float = 0.0  # the replaced session is heard this long (late transcripts)
    next_close: CloseNextUpstream | None = None
    # Upstream events sent after a switch (they go to the new session).
    after_switch: list[dict[str, Any]] = field(default_factory=list)

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
                message = orjson.loads(action.payload)
                validate_component_message(message)  # deepgram-sdk's models are the oracle
                outcome.to_client.append(message)
            else:
                outcome.audio.append(action.payload)
        elif isinstance(action, SendUpstream):
            event = orjson.loads(action.payload)
            validate_client_event(event)  # the SDK's models are the oracle
            outcome.upstream.append(event)
            if outcome.switched:
                outcome.after_switch.append(event)
        elif isinstance(action, SendNextUpstream):
            event = orjson.loads(action.payload)
            validate_client_event(event)
            outcome.to_next.append(event)
        elif isinstance(action, OpenNextUpstream):
            outcome.opened_next = True
        elif isinstance(action, SwitchUpstream):
            outcome.switched = True
            outcome.hear_old_for = action.hear_old_for
        elif isinstance(action, CloseNextUpstream):
            outcome.next_close = action
        elif isinstance(action, CloseClient):
            outcome.client_close = action
        elif isinstance(action, CloseUpstream):
            outcome.upstream_close = action
        elif isinstance(action, CallEndpoint):
            outcome.calls.append(action)
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

    def decode_actions(self, actions: list[Action]) -> Outcome:
        return decode(actions)

    def tick(self, seconds: float = 0.0) -> Outcome:
        """Let `seconds` pass, then wake the session as the server's timer would."""
        self.clock.advance(seconds)
        return decode(self.session.tick())

    def flush(self) -> Outcome:
        """Let the audio batch's flush deadline pass."""
        deadline = self.session.microphone.flush_at
        return self.tick(max(0.0, deadline - self.clock.now) if deadline is not None else 0.0)

    # Common openings -------------------------------------------------------

    def ready(self, settings: dict[str, Any] | None = None) -> Outcome:
        """session.created, Settings, session.updated: returns the last step's outcome."""
        self.upstream(events.session_created())
        self.client(settings or {"type": "Settings"})
        return self.upstream(events.session_updated())

    def respond(self, response_id: str = "resp_1") -> Outcome:
        return self.upstream(events.response_created(response_id))

    def finish(self, response_id: str = "resp_1") -> Outcome:
        return self.upstream(events.response_done(response_id))

    def finish_with(self, status: str, response_id: str = "resp_1", **fields: Any) -> Outcome:
        """response.done with `status` (and `status_details`, `output`, ...)."""
        return self.upstream(events.response_done(response_id, status, **fields))
