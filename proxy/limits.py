"""Counting what one client may take: sessions (all and per address), message and turn rates.

Plain objects with no I/O: the server asks them before an upgrade, the session asks the
token bucket before it accepts a turn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "MESSAGE_BURST_SECONDS",
    "MESSAGE_RATE",
    "Admission",
    "Refusal",
    "SessionTicket",
    "TokenBucket",
]

#: Client messages a second per session, of any kind (audio frames, KeepAlive, ...):
#: each costs CPU whatever its size, so a flood of tiny frames is bounded too. Audio in
#: 20 ms frames is 50 a second; a browser's AudioWorklet posting 128-sample chunks at
#: 48 kHz is 375. Operators (and benchmarks) change it with --message-rate.
MESSAGE_RATE = 500.0
#: A burst may be this many seconds' worth of the rate (1000 messages by default).
MESSAGE_BURST_SECONDS = 2.0


class Refusal(Enum):
    """Why a new session was refused before the upgrade, with its HTTP status."""

    TOO_MANY_SESSIONS = 503
    TOO_MANY_FROM_ADDRESS = 429


@dataclass
class SessionTicket:
    """One admitted session; `release()` gives its place back (more calls do nothing)."""

    admission: Admission
    address: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission._release(self.address)


@dataclass
class Admission:
    """At most `max_sessions` at once, and at most `max_per_address` from one address."""

    max_sessions: int
    max_per_address: int
    active: int = 0
    _by_address: Counter[str] = field(default_factory=Counter)
    #: Told after each admission and release (with --workers, to publish readiness).
    on_change: Callable[[], None] | None = None

    def admit(self, address: str) -> SessionTicket | Refusal:
        if self._by_address[address] >= self.max_per_address:
            return Refusal.TOO_MANY_FROM_ADDRESS
        if self.active >= self.max_sessions:
            return Refusal.TOO_MANY_SESSIONS
        self.active += 1
        self._by_address[address] += 1
        if self.on_change is not None:
            self.on_change()
        return SessionTicket(self, address)

    @property
    def full(self) -> bool:
        return self.active >= self.max_sessions

    def _release(self, address: str) -> None:
        self.active -= 1
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]  # the table only holds addresses in use
        if self.on_change is not None:
            self.on_change()


class TokenBucket:
    """`rate` events a second sustained, `burst` at once; the clock is the caller's."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
