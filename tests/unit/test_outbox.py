"""The outbox of one socket, without a socket: a leg whose buffer is always full."""

from __future__ import annotations

from websockets.protocol import State

from proxy.outbox import WRITE_LIMIT, Outbox


class _FullTransport:
    """A transport whose write buffer never drains: the peer reads nothing."""

    def get_write_buffer_size(self) -> int:
        return WRITE_LIMIT + 1

    def write(self, data: bytes) -> None:  # pragma: no cover - never reached while full
        raise AssertionError("nothing fits")


class _Protocol:
    state = State.OPEN

    def send_text(self, data: bytes) -> None:
        raise AssertionError("nothing fits")

    def send_binary(self, data: bytes) -> None:
        raise AssertionError("nothing fits")

    def data_to_send(self) -> list[bytes]:
        return []


class _Leg:
    def __init__(self) -> None:
        self.protocol = _Protocol()
        self.transport = _FullTransport()
        self.paused = True


def test_a_close_queued_behind_frames_starts_when_the_peer_is_found_stalled() -> None:
    # A peer that reads nothing: frames queue, then the session closes (a flood, an
    # idle limit). The close waits behind the frames; when the stall rule drops them,
    # the close must still go, or the connection stays open until the peer leaves.
    now = [0.0]
    closes: list[tuple[_Leg, int, str]] = []
    outbox: Outbox[_Leg] = Outbox(
        limit_bytes=1 << 20,
        stall_timeout=10.0,
        start_close=lambda leg, code, reason: closes.append((leg, code, reason)),
        clock=lambda: now[0],
    )
    leg = _Leg()
    outbox.attach(leg)
    outbox.put(b"x" * 1000, True)
    outbox.close(1008, "message flood")
    assert closes == []  # behind the frame that waits
    now[0] = 11.0
    assert outbox.check_stall(now[0])
    assert closes == [(leg, 1008, "message flood")]
