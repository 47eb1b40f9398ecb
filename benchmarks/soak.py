"""Soak: many sessions for a while, with faults on some; then nothing may be left over.

Not a test (it takes minutes): run it by hand, read its report.

    python benchmarks/soak.py --sessions 200 --seconds 60 --fault-share 0.15 --rounds 2

The proxy runs as its own process (`python -m proxy`), so its file descriptors, RSS and
event-loop tasks (from /metrics) are its alone; the mock upstream runs here. Each session
holds a conversation of text turns, spoken turns (real-time paced 16 kHz audio) and
server-side function calls (the proxy calls a small HTTP server here, one shared client);
a share of sessions meets a fault: upstream closes mid-answer, sends garbage or an error,
stalls, or the client vanishes without a close. Every turn of an unfaulted session must
be answered, in order. After each round the proxy must be back at its baseline in file
descriptors, tasks and sessions; its RSS may stay at the first round's peak (CPython
keeps freed memory for reuse) but must not grow from round to round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.client import ComponentClient
from harness.mock_openai import MockRealtime, silence_pcm16, tone_pcm16
from proxy.bounds import KEEPALIVE_FUNCTION_CONNECTIONS
from proxy.settings import command_line_for, environment_for

KEY = "sk-soak-mock-key-0000"
WEATHER = b'{"temperature": 21}'
FAULTS = ("upstream_closes", "garbage", "error", "stall", "client_vanishes")


@dataclass
class Outcome:
    turns_asked: int = 0
    turns_answered: int = 0
    lost: list[str] = field(default_factory=list)
    fault: str | None = None
    error: str | None = None


def proxy_stats(pid: int, port: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    tasks = float(re.search(r"^voice_proxy_asyncio_tasks (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    active = float(re.search(r"^voice_proxy_sessions_active (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    return {"rss_mib": rss_kib / 1024, "fds": fds, "tasks": tasks, "sessions": active}


def script_mock(mock: MockRealtime) -> None:
    mock.on_user_text("fault upstream_closes").reply_with_audio(
        "cut", chunks=5, stop_after_events=4
    ).close(1011, "soak fault")
    mock.on_user_text("fault garbage").send_garbage("}{ soak garbage")
    mock.on_user_text("fault error").send_error("server_error", "soak error", type="server_error")
    mock.on_user_text("fault stall").stall(3000)
    mock.on_user_text("weather").call_function("get_weather", {"city": "Paris"})


class _Weather(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the proxy's one client reuses connections

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(WEATHER)))
        self.end_headers()
        self.wfile.write(WEATHER)

    def log_message(self, *args: object) -> None:
        pass


def weather_function(port: int) -> dict[str, object]:
    return {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "endpoint": {"url": f"http://127.0.0.1:{port}/fn/weather", "method": "post"},
    }


async def converse(
    url: str, index: int, seconds: float, fault: str | None, function_port: int
) -> Outcome:
    outcome = Outcome(fault=fault)
    deadline = time.monotonic() + seconds
    fault_at = time.monotonic() + random.uniform(0.2, 0.6) * seconds if fault else None
    think = {
        "provider": {"type": "open_ai", "model": "gpt-realtime"},
        "functions": [weather_function(function_port)],
    }
    try:
        async with await ComponentClient.connect(url, timeout=30) as client:
            await client.start(think=think)
            turn = 0
            while time.monotonic() < deadline:
                if fault_at is not None and time.monotonic() >= fault_at:
                    if fault == "client_vanishes":
                        client.connection.transport.abort()
                        return outcome
                    await client.inject(f"fault {fault}")
                    fault_at = None
                    with contextlib.suppress(AssertionError):
                        await client.wait_for("Error", timeout=5)
                    if fault == "upstream_closes":
                        await client.wait_closed(timeout=10)
                        return outcome
                    continue
                turn += 1
                outcome.turns_asked += 1
                replies = sum(m["role"] == "assistant" for m in client.received("ConversationText"))
                if turn % 3 == 0:  # a spoken turn, paced like a microphone
                    await client.send_audio(tone_pcm16(600, rate=16000), realtime=True)
                    await client.send_audio(silence_pcm16(700, rate=16000), realtime=True)
                    reply = await client.wait_for_reply(replies + 1, timeout=20)
                    if not reply.startswith("I heard"):
                        raise AssertionError(f"unexpected answer to speech: {reply!r}")
                elif turn % 4 == 0:  # a server-side function call: the proxy calls it
                    await client.inject(f"weather {index} {turn}")
                    reply = await client.wait_for_reply(replies + 1, timeout=20)
                    if "temperature" not in reply:
                        raise AssertionError(f"unexpected answer to a function: {reply!r}")
                else:
                    text = f"session {index} turn {turn}"
                    await client.inject(text)
                    await client.wait_for(
                        "ConversationText",
                        timeout=20,
                        where=lambda m, t=text: m["content"] == f"You said: {t}",
                    )
                outcome.turns_answered += 1
                await asyncio.sleep(random.uniform(0.5, 1.5))
    except AssertionError as exc:
        if fault is None:
            outcome.error = str(exc)[:300]
            outcome.lost.append(f"turn {outcome.turns_asked}")
    except OSError as exc:
        outcome.error = f"connect: {exc}"
    return outcome


async def soak(args: argparse.Namespace) -> int:
    mock = MockRealtime(api_key=KEY, journal=False)
    await mock.start()
    script_mock(mock)
    functions = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Weather)
    threading.Thread(target=functions.serve_forever, daemon=True).start()
    function_port = int(functions.server_address[1])
    options = command_line_for(
        port=0,
        log_level="warning",
        turn_rate=50,
        function_hosts=[f"http://127.0.0.1:{function_port}/fn"],
        # Every session comes from 127.0.0.1, many at once.
        max_sessions_per_ip=10000,
        connection_rate=0,
        max_pending_handshakes=10000,
        max_pending_handshakes_per_ip=10000,
    )
    proxy = subprocess.Popen(
        [sys.executable, "-m", "proxy", *options],
        env={
            "OPENAI_API_KEY": KEY,
            "PATH": "/usr/bin:/bin",
            **environment_for(upstream_url=mock.url),
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proxy.stdout is not None
        url = ""
        while not url:
            line = proxy.stdout.readline()
            found = re.search(r"listening on (ws://\S+)", line)
            url = found.group(1) if found else ""
        port = int(url.split(":")[2].split("/")[0])
        # Warm up (imports, first resamplers), then take the baseline.
        await converse(url, -1, 3, None, function_port)
        await asyncio.sleep(1)
        baseline = proxy_stats(proxy.pid, port)
        print(f"baseline: {baseline}", flush=True)
        rounds: list[tuple[list[Outcome], list[str | None], dict[str, float], float]] = []
        for number in range(1, args.rounds + 1):
            faults = [
                random.choice(FAULTS) if random.random() < args.fault_share else None
                for _ in range(args.sessions)
            ]
            started = time.monotonic()
            peak: dict[str, float] = {}

            async def sample(peak: dict[str, float] = peak) -> None:
                while True:
                    await asyncio.sleep(5)
                    for key, value in proxy_stats(proxy.pid, port).items():
                        peak[key] = max(peak.get(key, 0), value)

            sampler = asyncio.create_task(sample())
            outcomes = await asyncio.gather(
                *(converse(url, i, args.seconds, f, function_port) for i, f in enumerate(faults))
            )
            sampler.cancel()
            took = time.monotonic() - started
            await asyncio.sleep(3)  # let the last closes finish
            after = proxy_stats(proxy.pid, port)
            print(f"round {number}: {len(outcomes)} sessions in {took:.0f} s; peak {peak}")
            rounds.append((outcomes, faults, after, took))
    finally:
        proxy.terminate()
        proxy.wait(timeout=60)
        await mock.stop()
        functions.shutdown()
    return report(baseline, rounds)


def report(
    baseline: dict[str, float],
    rounds: list[tuple[list[Outcome], list[str | None], dict[str, float], float]],
) -> int:
    ok = True
    for number, (outcomes, faults, after, took) in enumerate(rounds, 1):
        clean = [o for o in outcomes if o.fault is None]
        asked = sum(o.turns_asked for o in clean)
        answered = sum(o.turns_answered for o in clean)
        lost = [o for o in clean if o.lost or o.error]
        counts = ", ".join(f"{f}={faults.count(f)}" for f in FAULTS)
        print(f"round {number}: {len(outcomes)} sessions over {took:.0f} s; faulted "
              f"{len(outcomes) - len(clean)} ({counts})")  # fmt: skip
        print(f"  unfaulted turns answered: {answered}/{asked}; sessions with a loss: {len(lost)}")
        for outcome in lost[:5]:
            print(f"  lost: {outcome.error}")
        growth = {k: round(after[k] - baseline[k], 1) for k in baseline}
        print(f"  after: {after}; after - baseline: {growth}")
        ok &= not lost and answered == asked and after["sessions"] == 0
        # The function client's idle connections stay open for reuse: a bounded pool.
        ok &= after["fds"] <= baseline["fds"] + KEEPALIVE_FUNCTION_CONNECTIONS
        ok &= after["tasks"] <= baseline["tasks"]
    if len(rounds) > 1:
        first, last = rounds[0][2]["rss_mib"], rounds[-1][2]["rss_mib"]
        print(f"RSS after round 1: {first:.1f} MiB, after round {len(rounds)}: {last:.1f} MiB")
        ok &= last - first < max(5.0, 0.1 * first)
    print("SOAK", "CLEAN" if ok else "NOT CLEAN")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fault-share", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    random.seed(args.seed)
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
