"""The bridge's second upstream connection while a renewal prepares it, and the upstream
connections renewals left behind (docs/protocol-mapping.md, "Sessions past the service's
60-minute cap").

The session decides (`OpenNextUpstream`, `SwitchUpstream`, `CloseNextUpstream`); this
keeps the sockets those decisions are about: the next session's leg and outbox while it
is prepared, and the legs it replaced or that failed, until their closing handshakes are
done (each is bounded by `CLOSE_GRACE`, and the session's end drops any left). What was
written to all of them counts in the traffic metrics.
"""

from __future__ import annotations

import asyncio

from websockets.frames import CloseCode
from websockets.protocol import State

from .config import ProxyConfig
from .legs import Leg, UpstreamLeg
from .outbox import Outbox
from .upstream_dial import UpstreamDial

__all__ = ["NextUpstream"]

_NONE_RETIRED: list[tuple[UpstreamLeg, Outbox[Leg]]] = []  # shared, never appended to


class NextUpstream:
    """The next upstream session of one bridge, and the retired ones (see the module
    docstring)."""

    __slots__ = (
        "_bytes_retired",
        "_config",
        "_dial",
        "_hearing",
        "_retired",
        "heard",
        "leg",
        "outbox",
        "wanted",
    )

    def __init__(self, config: ProxyConfig) -> None:
        # Most sessions never renew: what only a renewal needs is made at the first one.
        self._config = config
        self._dial: UpstreamDial | None = None
        self.leg: UpstreamLeg | None = None
        self.outbox: Outbox[Leg] | None = None
        self.wanted = False  # asked for and not given up: an opened leg is taken
        # Upstream connections no longer current (renewed, or next ones that failed),
        # with what was written to them; the closed ones fold into `_bytes_retired`.
        self._retired: list[tuple[UpstreamLeg, Outbox[Leg]]] = _NONE_RETIRED
        self._bytes_retired = 0
        # The replaced session, while it is still heard for transcripts it owes
        # (`SwitchUpstream.hear_old_for`), and the timer that ends that.
        self.heard: UpstreamLeg | None = None
        self._hearing: asyncio.TimerHandle | None = None

    def wanting(self) -> UpstreamDial:
        """A renewal asks for the next session: the dial that opens it."""
        self.wanted = True
        if self._dial is None:
            self._dial = UpstreamDial(self._config)
        return self._dial

    @property
    def bytes_out(self) -> int:
        """Bytes written to upstream connections other than the current one."""
        self._prune()
        return self._bytes_retired + sum(outbox.bytes_out for _, outbox in self._retired)

    def take(self, leg: UpstreamLeg, outbox: Outbox[Leg]) -> bool:
        """The next session's connection is open: kept, unless it is no longer wanted."""
        if not self.wanted:
            return False
        self.leg, self.outbox = leg, outbox
        return True

    def lost(self) -> None:
        """The next session's connection closed or dropped before the switch."""
        self._retire()
        self.wanted = False

    def give_up(self, code: int, reason: str) -> None:
        """Renewal abandoned: stop opening, or close the next session after what it was
        already given."""
        self.wanted = False
        if self._dial is not None:
            self._dial.call_off()
        outbox = self.outbox
        self._retire()
        if outbox is not None:
            outbox.close(code, reason)

    def switch(
        self, old: UpstreamLeg | None, old_outbox: Outbox[Leg], hear_old_for: float = 0.0
    ) -> tuple[UpstreamLeg, Outbox[Leg]] | None:
        """The next session takes over: its leg and outbox, to become the current ones
        (None when it was lost meanwhile: the session hears of that). The old session
        is closed at once; what still waited for it is dropped: the new session got the
        conversation and the settings, and the old one may have stopped reading. Only
        when it owes transcripts (`hear_old_for`) and reads what it is sent, it is
        closed that much later, heard meanwhile (`heard`)."""
        new, outbox = self.leg, self.outbox
        if new is None or outbox is None:
            return None
        self.stop_hearing()  # one replaced session heard at a time
        reads = old_outbox.queued_bytes == 0 and old_outbox.stall_deadline is None
        if old is not None and hear_old_for > 0 and reads:
            self.heard = old
            self._hearing = asyncio.get_running_loop().call_later(hear_old_for, self.stop_hearing)
        else:
            old_outbox.abandon(CloseCode.NORMAL_CLOSURE, "session renewed")
        self.leg = self.outbox = None
        self.wanted = False
        if old is not None:
            old.release()  # what it still says is ignored; its closing handshake completes
            self._keep(old, old_outbox)
        else:
            self._bytes_retired += old_outbox.bytes_out
        return new, outbox

    def stop_hearing(self) -> None:
        """The replaced session is heard no more: it is closed."""
        if self._hearing is not None:
            self._hearing.cancel()
            self._hearing = None
        heard, self.heard = self.heard, None
        for leg, outbox in self._retired:
            if leg is heard:
                outbox.abandon(CloseCode.NORMAL_CLOSURE, "session renewed")

    def abort_all(self) -> None:
        """The session is over: drop every upstream connection this still holds."""
        if self._hearing is not None:
            self._hearing.cancel()
        if self.leg is not None:
            self.leg.transport.abort()
        for leg, _ in self._retired:
            if leg.protocol.state is not State.CLOSED:
                leg.transport.abort()

    def _retire(self) -> None:
        leg, outbox = self.leg, self.outbox
        self.leg = self.outbox = None
        if outbox is not None:
            if leg is not None:
                self._keep(leg, outbox)
            else:
                self._bytes_retired += outbox.bytes_out
        self._prune()

    def _keep(self, leg: UpstreamLeg, outbox: Outbox[Leg]) -> None:
        if self._retired is _NONE_RETIRED:
            self._retired = []
        self._retired.append((leg, outbox))

    def _prune(self) -> None:
        """Fold the closed connections' bytes into one number (nothing more is written)."""
        if not self._retired:
            return
        kept: list[tuple[UpstreamLeg, Outbox[Leg]]] = []
        for leg, outbox in self._retired:
            if leg.protocol.state is State.CLOSED:
                self._bytes_retired += outbox.bytes_out
            else:
                kept.append((leg, outbox))
        self._retired = kept
