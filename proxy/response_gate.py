"""One response at a time: the rule that `response.create` never meets an active one.

The Realtime API refuses a second in-conversation response while one runs
(`conversation_already_has_active_response`), and the agent must never talk over itself.
So every response the proxy wants goes through this gate, in order:

- `Turn`: answer the conversation (after a user message, a function result, ForceEndTurn).
  Turns asked for while the gate is busy share the next response: none is lost. A turn
  only a ForceEndTurn asked for (`FORCED_TURN`) can be withdrawn: its commit may come
  back empty because server VAD had already committed, and answered, the same speech.
- `Speech`: say an exact text (the greeting, an InjectAgentMessage).

States: IDLE -> REQUESTED (our response.create is on its way) -> ACTIVE (upstream
announced a response) -> IDLE. Upstream may also start a response on its own (server
VAD): IDLE -> ACTIVE. The gate holds no I/O: it answers "send this now" or "wait".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .bounds import MAX_QUEUED_RESPONSES as MAX_QUEUED

__all__ = [
    "FORCED_TURN",
    "MAX_QUEUED",
    "TURN",
    "GateState",
    "Request",
    "ResponseGate",
    "Speech",
    "Turn",
]


class GateState(Enum):
    IDLE = "idle"
    REQUESTED = "requested"
    ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class Turn:
    """A response to the conversation so far; `forced` when only ForceEndTurn asked."""

    forced: bool = False


@dataclass(frozen=True, slots=True)
class Speech:
    """The agent says exactly `text`; `greeting` tells the greeting from injected text."""

    text: str
    greeting: bool = False


Request = Turn | Speech
TURN = Turn()
FORCED_TURN = Turn(forced=True)


class ResponseGate:
    """The response gate of one session (see the module docstring)."""

    __slots__ = ("_queue", "_withdrawn", "request", "request_event_id", "response_id", "state")

    def __init__(self) -> None:
        self.state = GateState.IDLE
        self.request: Request | None = None  # what the requested/active response does
        self.request_event_id = ""  # our response.create awaiting response.created
        self.response_id: str | None = None  # the active response, once announced
        self._queue: list[Request] = []  # a handful at most: turns share one response
        self._withdrawn = False  # the current request was withdrawn: never send it again

    @property
    def busy(self) -> bool:
        return self.state is not GateState.IDLE

    @property
    def speaking(self) -> Speech | None:
        """The exact text being said by the requested or active response, if any."""
        return self.request if isinstance(self.request, Speech) else None

    def queued(self) -> list[Request]:
        return list(self._queue)

    @property
    def full(self) -> bool:
        return len(self._queue) >= MAX_QUEUED

    def ask(self, request: Request, *, urgent: bool = False) -> Request | None:
        """Queue `request` (first in line when `urgent`); returns it when it should be
        sent now."""
        if isinstance(request, Turn):
            waiting = next((i for i, r in enumerate(self._queue) if isinstance(r, Turn)), None)
            if waiting is not None:
                # Shares the turn response already waiting (not one on its way: that one
                # answers only what was in the conversation when it was asked for). A
                # turn someone else asked for too can no longer be withdrawn.
                if not request.forced:
                    self._queue[waiting] = TURN
                return None
        if urgent:
            self._queue.insert(0, request)
        else:
            self._queue.append(request)
        return self._next()

    def sent(self, event_id: str) -> None:
        """The response.create for the request `ask`/`done` returned went out."""
        self.request_event_id = event_id

    def created(self, response_id: str) -> None:
        """Upstream announced a response (ours, or one server VAD started)."""
        if self.state is GateState.IDLE:
            self.request = None  # not ours: server VAD answered on its own
        self.state = GateState.ACTIVE
        self.response_id = response_id

    def done(self, response_id: str) -> Request | None:
        """A response ended; returns the next request to send, if any."""
        if self.state is GateState.ACTIVE and response_id != self.response_id:
            return None  # an earlier, already released response
        return self._release()

    def refused(self, event_id: str) -> Request | None:
        """Upstream refused our response.create outright: no response.done will come."""
        if self.state is not GateState.REQUESTED or event_id != self.request_event_id:
            return None
        return self._release()

    def raced(self) -> None:
        """Our response.create met a response server VAD had just started: ours goes
        first in the queue and waits for that one to end (unless it was withdrawn)."""
        if self.request is not None and not self._withdrawn:
            self._queue.insert(0, self.request)
        self.request = None
        self._withdrawn = False

    def withdraw_forced(self) -> None:
        """The turn only a ForceEndTurn asked for is not wanted: server VAD committed the
        same speech and answers it. Dropped from the queue, or, when already on its way,
        never sent again (upstream may still refuse it as racing that answer)."""
        if FORCED_TURN in self._queue:
            self._queue.remove(FORCED_TURN)
        if self.request == FORCED_TURN:
            self._withdrawn = True

    def abandon(self) -> Request | None:
        """Give up on the current response (upstream went silent); returns the next."""
        return self._release()

    def _release(self) -> Request | None:
        self.state = GateState.IDLE
        self.request = None
        self._withdrawn = False
        self.request_event_id = ""
        self.response_id = None
        return self._next()

    def _next(self) -> Request | None:
        if self.state is not GateState.IDLE or not self._queue:
            return None
        self.request = self._queue.pop(0)
        self.state = GateState.REQUESTED
        self._withdrawn = False
        return self.request
