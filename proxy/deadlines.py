"""Every timer of a session, in one place: when to wake it, and what is due then.

The server asks `next_deadline` after each batch of input and calls `tick()` at that
time. The timers: the client's idle time (any frame restarts it), a place held by
KeepAlive alone or past the session's time limit (`proxy.limits`), session.created and
each session.update awaited (`ready_timeout`), the response deadline (set by
`Responses._response_timer`), the microphone's batch flush and pause, and the upstream
session's renewal (`proxy.renewal`). No I/O.
"""

from __future__ import annotations

from .actions import Action
from .errors import ErrorCode
from .phases import Phase
from .session_state import SessionState

__all__ = ["Deadlines"]

_CLOSED = Phase.CLOSED


class Deadlines(SessionState):
    """`next_deadline` and `tick` (see the module docstring)."""

    __slots__ = ()

    @property
    def next_deadline(self) -> float | None:
        """When `tick()` should next be called (None: nothing is timed)."""
        if self.phase is _CLOSED:
            return None
        # Asked after every batch of input: no list, no min() over a sequence.
        deadline = self._idle_deadline
        quiet = self._active_at + self.options.keepalive_only_timeout
        if quiet < deadline:
            deadline = quiet
        if self._ends_at < deadline:
            deadline = self._ends_at
        microphone = self.microphone
        for candidate in (
            self._created_deadline,
            self._response_deadline,
            microphone.flush_at,
            microphone.pause_at,
        ):
            if candidate is not None and candidate < deadline:
                deadline = candidate
        if self._updates and self._updates[0].deadline < deadline:
            deadline = self._updates[0].deadline
        renewal = self._renewal.next_deadline
        if renewal is not None and renewal < deadline:
            deadline = renewal
        return deadline

    def tick(self) -> list[Action]:
        """Time passed: act on every deadline that is due."""
        if self.closed:
            return []
        now = self._clock()
        microphone = self.microphone
        if microphone.pause_at is not None and now >= microphone.pause_at:
            self._upstream_audio(microphone.pause())
        elif microphone.flush_at is not None and now >= microphone.flush_at:
            self._upstream_audio(microphone.flush())
        if self._created_deadline is not None and now >= self._created_deadline:
            self._fail_upstream(
                ErrorCode.UPSTREAM_TIMEOUT,
                f"upstream sent no session.created within {self.options.ready_timeout:g} s",
            )
        elif self._updates and now >= self._updates[0].deadline:
            self._fail_upstream(
                ErrorCode.UPSTREAM_TIMEOUT,
                f"upstream did not confirm {self._updates[0].kind.value} within "
                f"{self.options.ready_timeout:g} s",
            )
        elif self._response_deadline is not None and now >= self._response_deadline:
            self._response_silent()
        self._renew_step()
        if not self.closed and now >= self._idle_deadline:
            self._error(
                ErrorCode.CLIENT_IDLE,
                f"nothing received for {self.options.client_idle_timeout:g} s",
            )
            self._close(1000, "client idle", reason="client_idle")
        self._check_held_place(now)
        return self._take()

    def _check_held_place(self, now: float) -> None:
        """A place held by KeepAlive alone, or for longer than a session may last."""
        options = self.options
        if self.closed:
            return
        if now >= self._ends_at:
            self._error(
                ErrorCode.SESSION_TIME_LIMIT,
                f"the session reached its time limit of {options.max_session_seconds:g} s",
            )
            self._close(1000, "session time limit", reason="session_time_limit")
        elif now >= self._active_at + options.keepalive_only_timeout:
            self._error(
                ErrorCode.CLIENT_IDLE,
                f"nothing but KeepAlive for {options.keepalive_only_timeout:g} s",
            )
            self._close(1000, "client idle", reason="keepalive_only")
