"""CPU of the session core's two per-frame inputs, with no sockets.

    python benchmarks/session_hot_path.py [--frames 5000] [--rounds 15] [--proxy-tree DIR]

Feeds one ready `ProxySession` an agent audio delta (`upstream_message`, 50 ms at 24 kHz)
and a microphone frame (`client_binary`, 20 ms at 16 kHz) `--frames` times a round and
prints the best round's process CPU per frame: on a shared machine the best round is the
one least disturbed. `--proxy-tree` measures the proxy of another checkout (e.g. main),
with this script. Not a test; a measurement for issue 18 (splitting the session must
not slow its hot path).
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from proxy.session import ProxySession


def _event(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, "event_id": "e", **fields})


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _ready_session(clock: _Clock) -> ProxySession:
    session_info = {"id": "sess_1", "object": "realtime.session", "type": "realtime"}
    response = {"id": "resp_1", "object": "realtime.response", "status": "in_progress"}
    from proxy.session import ProxySession
    from proxy.session_options import SessionOptions

    session = ProxySession(SessionOptions(), clock=clock)
    session.upstream_connected()
    session.upstream_message(_event("session.created", session=session_info))
    session.client_text('{"type":"Settings"}')
    session.upstream_message(_event("session.updated", session=session_info))
    session.client_text('{"type":"InjectUserMessage","content":"hi"}')
    session.upstream_message(_event("response.created", response=response | {"output": []}))
    assert session.phase.name == "READY" and session.gate.busy
    return session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--proxy-tree", type=Path, help="a checkout whose proxy to measure")
    args = parser.parse_args()
    tree = (args.proxy_tree or Path(__file__).resolve().parents[1]).resolve()
    sys.path.insert(0, str(tree))
    import proxy

    print(f"proxy from {Path(proxy.__file__).parent}")
    clock = _Clock()
    session = _ready_session(clock)
    delta = _event(
        "response.output_audio.delta",
        response_id="resp_1",
        item_id="item_a",
        output_index=0,
        content_index=0,
        delta=base64.b64encode(b"\x01\x00" * 2400).decode(),
    )
    microphone = b"\x01\x00" * 320
    best_delta = best_microphone = float("inf")
    for _ in range(args.rounds):
        start = time.process_time()
        for _ in range(args.frames):
            clock.now += 0.05
            session.upstream_message(delta)
        best_delta = min(best_delta, (time.process_time() - start) / args.frames)
        start = time.process_time()
        for _ in range(args.frames):
            clock.now += 0.02
            session.client_binary(microphone)
        best_microphone = min(best_microphone, (time.process_time() - start) / args.frames)
    print(
        f"upstream_message (audio delta) {best_delta * 1e6:.2f} us, "
        f"client_binary {best_microphone * 1e6:.2f} us"
    )


if __name__ == "__main__":
    main()
