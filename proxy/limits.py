"""Counting what one client may take: sessions (all and per address), new connections a
second per address, message and turn rates, floods.

Plain objects with no I/O: the server asks them before an upgrade, the session asks the
token bucket before it accepts a turn. Addresses are counted by `counting_key`: an IPv4
address, or the IPv6 network (a /64 by default) the address is in, since one subscriber
gets a whole /64 and picks addresses from it at will.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from .bounds import (
    FLOOD_QUIET_SECONDS,
    MAX_TRACKED_ADDRESSES,
    MESSAGE_BURST_SECONDS,
    RATE_TABLE_PRUNE_SECONDS,
)

__all__ = [
    "FLOOD_QUIET_SECONDS",
    "MESSAGE_BURST_SECONDS",
    "Admission",
    "ConnectionRate",
    "Flood",
    "FloodState",
    "Refusal",
    "SessionTicket",
    "TokenBucket",
    "counting_key",
]


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def counting_key(address: IPAddress, ipv6_prefix: int) -> str:
    """What the per-address limits count: an IPv4 address as it is, an IPv6 address by
    the network of `ipv6_prefix` bits it is in (`2001:db8:1:2::/64`). `address` is
    already normalised (`proxy.access.normalised_ip`): an IPv4-mapped IPv6 is IPv4."""
    if address.version == 4 or ipv6_prefix >= 128:
        return str(address)
    return str(ipaddress.IPv6Network((int(address), ipv6_prefix), strict=False))


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

    def seconds_to_next(self) -> float:
        """After a refused `take`: how long until a token is there."""
        return max(0.0, (1.0 - self._tokens) / self._rate) if self._rate > 0 else math.inf

    def full_at(self, now: float) -> bool:
        """Refilled to its burst by `now`: the same as a new bucket."""
        return self._tokens + (now - self._last) * self._rate >= self._burst


class ConnectionRate:
    """New sessions a second per address, before the upgrade: one token bucket per
    address, so connecting and closing in a loop cannot open upstream sessions without
    bound. `rate` 0 turns it off.

    The table is bounded: buckets that have refilled (the same as new ones) are dropped
    when it is full, at most once a second; while it stays full (more addresses churning
    at once than it holds), a new address takes the place of the least recently seen
    one. (Sharing one bucket among all new addresses instead would let one churning
    client lock every newcomer out.)"""

    def __init__(
        self, rate: float, burst: int, *, max_tracked: int = MAX_TRACKED_ADDRESSES
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_tracked = max_tracked
        self._buckets: dict[str, TokenBucket] = {}
        self._pruned_at = -math.inf

    def __len__(self) -> int:
        return len(self._buckets)

    def admit(self, key: str, now: float) -> float:
        """0.0 if a session from `key` may open now (a token is spent), else the
        seconds until it may (for Retry-After)."""
        if self.rate <= 0:
            return 0.0
        buckets = self._buckets
        bucket = buckets.pop(key, None)  # put back last: the dict runs least recent first
        if bucket is None:
            if len(buckets) >= self.max_tracked:
                self._prune(now)
                buckets = self._buckets
            if len(buckets) >= self.max_tracked:
                del buckets[next(iter(buckets))]  # the least recently seen address
            bucket = TokenBucket(self.rate, self.burst, now)
        buckets[key] = bucket
        if bucket.take(now):
            return 0.0
        return bucket.seconds_to_next()

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < RATE_TABLE_PRUNE_SECONDS:
            return
        self._pruned_at = now
        self._buckets = {k: b for k, b in self._buckets.items() if not b.full_at(now)}


class FloodState(Enum):
    """What one dropped message means (see `Flood`)."""

    STARTED = "started"  # the first drop: tell the client once
    GOING_ON = "going_on"  # dropped silently
    TOO_LONG = "too_long"  # past the rate for `close_after` seconds: close the client


class Flood:
    """Messages past the message rate, as one flood from its first drop until nothing
    was dropped for `FLOOD_QUIET_SECONDS`. A flood that lasts `close_after` seconds is no
    burst any more (0: never closed)."""

    __slots__ = ("_close_after", "_last_drop", "_since")

    def __init__(self, close_after: float) -> None:
        self._close_after = close_after
        self._since = -math.inf
        self._last_drop = -math.inf

    def dropped(self, now: float) -> FloodState:
        started = now - self._last_drop > FLOOD_QUIET_SECONDS
        self._last_drop = now
        if started:
            self._since = now
            return FloodState.STARTED
        if self._close_after > 0 and now - self._since >= self._close_after:
            return FloodState.TOO_LONG
        return FloodState.GOING_ON
