"""The function-call ledger of a session: calls waiting for their output, when the
follow-up response is due, and the ids a session must remember about calls.

One response may hold several function calls (the model calls in parallel). The
follow-up response (the model's answer that uses the outputs) is asked for once, when
that response has ended and every one of its calls has its output, client-side and
server-side alike; asking after the first output makes the model answer twice.
Calls cancelled by barge-in are forgotten: the user has moved on, nothing waits for them
(their ids are remembered, so a late output is not answered). The ledger also remembers
which calls were reported to the client (upstream may announce one twice) and which the
proxy answers (a client's output for one is refused: upstream must get one per call).
The remembered ids are bounded (`RecentIds`). At most `MAX_PENDING` calls wait at once:
an upstream that calls without end (a fault, or hostile) cannot grow the table; a call
past it is answered at once with `FULL` as its failure, so the model is not left waiting
for it. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from .audio_path import RecentIds
from .bounds import MAX_PENDING_CALLS as MAX_PENDING
from .bounds import MAX_RUNNING_CALLS as _MAX_RUNNING

__all__ = ["FULL", "MAX_PENDING", "PendingCall", "PendingCalls"]

FULL = f"more than {MAX_PENDING} function calls are waiting for their output"


@dataclass(frozen=True, slots=True)
class PendingCall:
    call_id: str
    name: str
    arguments: str
    response_id: str  # "" when upstream did not say
    server_side: bool


class PendingCalls:
    """The function-call ledger of one session (see the module docstring)."""

    __slots__ = ("_calls", "_running", "cancelled", "reported", "server_side_ids")

    def __init__(self) -> None:
        self._calls: dict[str, PendingCall] = {}
        # Responses still running that hold calls (a dict keeps them in order, so the
        # oldest can go should upstream never end one).
        self._running: dict[str, None] = {}
        self.reported = RecentIds()  # calls told to the client (or answered) already
        self.cancelled = RecentIds()  # cancelled by barge-in: nothing answers them
        self.server_side_ids = RecentIds()  # calls the proxy answers, never the client

    def __bool__(self) -> bool:
        return bool(self._calls)

    def __len__(self) -> int:
        return len(self._calls)

    def first_report(self, call_id: str) -> bool:
        """True the first time upstream announces `call_id` (then it is remembered)."""
        if call_id in self.reported:
            return False
        self.reported.add(call_id)
        return True

    def add(self, call: PendingCall) -> bool:
        """Wait for `call`'s output; False (and nothing kept) when `MAX_PENDING` wait."""
        if len(self._calls) >= MAX_PENDING and call.call_id not in self._calls:
            return False
        self._calls[call.call_id] = call
        if call.server_side:
            self.server_side_ids.add(call.call_id)
        if call.response_id and call.response_id not in self._running:
            if len(self._running) >= _MAX_RUNNING:
                del self._running[next(iter(self._running))]
            self._running[call.response_id] = None
        return True

    def get(self, call_id: str) -> PendingCall | None:
        return self._calls.get(call_id)

    def named(self, name: str) -> str | None:
        """The id of a pending client-side call of `name` (a v1 FunctionCallResponse may
        omit the id; a call the proxy answers is never the client's to answer)."""
        calls = self._calls.values()
        return next((c.call_id for c in calls if c.name == name and not c.server_side), None)

    def server_side(self) -> int:
        return sum(call.server_side for call in self._calls.values())

    def answered(self, call_id: str) -> tuple[PendingCall | None, bool]:
        """The call got its output: (the call, or None when unknown; whether the
        follow-up response is due now)."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return None, False
        return call, call.response_id not in self._running and not self._waits_on(call)

    def response_done(self, response_id: str | None) -> bool:
        """A response ended: True when it held calls that all have their output."""
        if response_id is None or response_id not in self._running:
            return False
        del self._running[response_id]
        return not any(c.response_id == response_id for c in self._calls.values())

    def cancel_all(self) -> list[PendingCall]:
        """Barge-in: every pending call is cancelled; no follow-up will be asked for."""
        cancelled = list(self._calls.values())
        for call in cancelled:
            self.cancelled.add(call.call_id)
        self._calls.clear()
        self._running.clear()
        return cancelled

    def _waits_on(self, answered: PendingCall) -> bool:
        return any(c.response_id == answered.response_id for c in self._calls.values())
