"""How much of the proxy's CPU per text turn is the session, and how much the I/O under it.

    python benchmarks/io_floor.py [--sessions 20] [--turns 50] [--rounds 3]

Runs the proxy twice against the same mock, alternating: as it is, and with the session
core replaced by one that answers a turn with canned frames (the same frames, in the
same number, decoding only the audio deltas it must forward). What the second one costs
is the floor under any session logic with this I/O stack: websockets' parser and
serializer, the event loop, the system calls and the bridge. Not a test; a measurement
for issue 11 (is 0.25 ms per turn reachable with websockets?).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
from bench_proxy import MOCK, close_all, open_many, proxy_command, proxy_env, settle
from drivers import WatchedConnection, proxied_turn
from processes import clean_env, cpu_seconds, started

# The proxy, with the session core swapped for canned answers (run with `python -c`).
_CANNED = """
import sys
import orjson
import pybase64
import proxy.bridge
from proxy.actions import CloseUpstream, SendToClient, SendUpstream

def client(message):
    return SendToClient(orjson.dumps(message), text=True)

ANSWERS = (
    (b'{"type":"session.updated"', {"type": "SettingsApplied"}),
    (b'{"type":"response.created"', {"type": "AgentThinking", "content": ""}),
    (b'{"type":"response.output_audio.done"', {"type": "AgentAudioDone"}),
    (b'{"type":"response.output_audio_transcript.done"',
     {"type": "ConversationText", "role": "assistant", "content": "x"}),
    (b'{"type":"response.done"',
     {"type": "LatencyReport", "total_latency": 0.1, "ttt_token_latency": 0.1,
      "tts_latency": 0.1}),
)

class Audio:
    seconds_in = seconds_out = 0.0

class CannedSession:
    def __init__(self, *args, **kwargs):
        self.closed, self.pending_bytes, self.close_reason = False, 0, ""
        self.microphone, self.agent_audio, self.next_deadline = Audio(), Audio(), None
        self.open, self.waiting, self.spoke = False, [], False

    def upstream_connected(self):
        self.open, waiting, self.waiting = True, self.waiting, []
        return waiting

    def client_text(self, text):
        if '"Settings"' in text[:20]:
            update = [SendUpstream(b'{"type":"session.update","session":{"type":"realtime"}}')]
            if self.open:
                return update
            self.waiting += update
            return []
        if '"InjectUserMessage"' in text[:30]:
            self.spoke = False
            return [
                client({"type": "ConversationText", "role": "user", "content": "x"}),
                SendUpstream(b'{"type":"conversation.item.create","item":{"type":"message",'
                             b'"role":"user","content":[{"type":"input_text","text":"x"}]}}'),
                SendUpstream(b'{"type":"response.create"}'),
            ]
        return []

    def upstream_message(self, data):
        if data.startswith(b'{"type":"response.output_audio.delta"'):
            audio = pybase64.b64decode(orjson.loads(data)["delta"], validate=True)
            started = [] if self.spoke else [client(
                {"type": "AgentStartedSpeaking", "total_latency": 0.1, "tts_latency": 0.1,
                 "ttt_latency": 0.1})]
            self.spoke = True
            return [*started, SendToClient(audio, text=False)]
        for prefix, message in ANSWERS:
            if data.startswith(prefix):
                return [client(message)]
        return []

    def client_binary(self, data):
        return []

    def tick(self):
        return []

    def client_closed(self):
        self.closed = True
        return [CloseUpstream(1000, "")]

    def upstream_closed(self, code, reason):
        self.closed = True
        return []

    def upstream_failed(self, *args):
        return []

    upstream_protocol_error = client_stalled = upstream_stalled = upstream_failed

    def drain(self):
        return []

    shut_down = drain

proxy.bridge.ProxySession = CannedSession
from proxy.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


async def cpu_per_turn(command: list[str], sessions: int, turns: int, rounds: int) -> list[float]:
    with started(MOCK, clean_env()) as (_, mock_url):  # noqa: SIM117 (the proxy needs the URL)
        with started(command, proxy_env(mock_url, sessions + 10)) as (proxy, url):
            await settle()
            connections = await open_many(sessions, url)

            async def conversation(ws: WatchedConnection, count: int) -> None:
                for n in range(count):
                    await proxied_turn(ws, f"turn {n}")

            await asyncio.gather(*(conversation(ws, 3) for ws in connections))
            result = []
            for _ in range(rounds):
                gc.collect()
                before = cpu_seconds(proxy.pid)
                await asyncio.gather(*(conversation(ws, turns) for ws in connections))
                result.append((cpu_seconds(proxy.pid) - before) / (sessions * turns) * 1e3)
            await close_all(connections)
            return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    canned = ["-c", _CANNED, "--port", "0"]
    measured: dict[str, list[float]] = {"proxy": [], "canned session": []}
    for _ in range(2):  # alternating, so drift on a shared machine hits both
        for name, command in (("canned session", canned), ("proxy", proxy_command(1))):
            values = await cpu_per_turn(command, args.sessions, args.turns, args.rounds)
            measured[name] += values
            print(f"{name:15} CPU per turn: " + " ".join(f"{v:.3f}" for v in values) + " ms")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    gc.freeze()
    gc.disable()
    measured = asyncio.run(run(args))
    proxy, floor = (
        statistics.median(measured["proxy"]),
        statistics.median(measured["canned session"]),
    )
    print(
        f"median CPU per turn: proxy {proxy:.3f} ms, the same I/O with a canned session "
        f"{floor:.3f} ms: the session logic is {proxy - floor:.3f} ms ({1 - floor / proxy:.0%})"
    )
    print(orjson.dumps(measured).decode())


if __name__ == "__main__":
    main()
