"""Proxy cost, measured: CPU per text turn, CPU per MB of input audio, added latency,
memory per idle session, CPU per second of a voice conversation.

    python benchmarks/bench_proxy.py [--turns 300] [--audio-mb 4] [--idle-sessions 200]
                                     [--voice-sessions 20] [--voice-seconds 10]

Runs the mock upstream and the proxy as separate processes and reads the proxy's own
CPU time and resident memory from /proc, so the driver's and the mock's work is not
counted. Latency is compared in the same run: the same turn sent straight to the mock,
then through the proxy (ratios, not absolute times, are what to compare on a shared
machine). Idle sessions are opened after the turns, each up to SettingsApplied, and held
while the proxy's RSS is read: (RSS with them - RSS before) / N is what one costs. Voice
sessions stream a microphone in real time (speech and pauses the mock's VAD answers with
spoken replies) to give CPU per session-second of conversation.
docs/deploy.md sizes the Kubernetes resources from these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import orjson
from websockets.asyncio.client import ClientConnection, connect

from harness.client import ComponentClient

KEY = "sk-bench-key-0000"
TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if match := re.search(r"listening on (ws://\S+)", line):
            break
    else:
        raise RuntimeError(f"{args} did not start")
    try:
        yield proc, match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def direct_turn(ws: ClientConnection, text: str) -> float:
    """The same turn the proxy makes of an InjectUserMessage, sent straight to the mock."""
    start = time.perf_counter()
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await ws.send(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
    await ws.send('{"type":"response.create"}')
    while True:
        event = orjson.loads(await ws.recv())
        if event["type"] == "response.done":
            return time.perf_counter() - start


async def proxy_turn(client: ComponentClient, text: str, turn: int) -> float:
    start = time.perf_counter()
    await client.inject(text)
    await client.wait_for("AgentAudioDone", count=turn)
    return time.perf_counter() - start


async def idle_sessions(url: str, count: int) -> list[ComponentClient]:
    """`count` sessions, each past SettingsApplied, then left alone."""
    clients: list[ComponentClient] = []
    while len(clients) < count:  # in batches: a burst of handshakes is not what is measured
        batch = [ComponentClient.connect(url) for _ in range(min(50, count - len(clients)))]
        clients.extend(await asyncio.gather(*batch))
    await asyncio.gather(*(client.start() for client in clients))
    return clients


async def converse(client: ComponentClient, seconds: float, tone: bytes) -> None:
    """A caller in real time: 20 ms microphone frames, 1.5 s of speech then 1.5 s of
    silence, over and over; the mock's VAD hears each stretch of speech and answers it."""
    silence = bytes(len(tone))
    loop = asyncio.get_running_loop()
    due = loop.time()
    for frame in range(int(seconds / 0.02)):
        await client.send_raw(tone if frame % 150 < 75 else silence)
        due += 0.02
        await asyncio.sleep(max(0.0, due - loop.time()))


async def settle() -> None:
    await asyncio.sleep(1.0)  # let buffers from the last burst be freed before reading RSS


def sine_pcm16(seconds: float) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    return (np.sin(2 * np.pi * 300 * t) * 3000).astype("<i2").tobytes()


async def run(turns: int, audio_mb: float, idle: int, voice: int, voice_seconds: float) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with process(["-m", "harness.mock_openai", "--port", "0", "--api-key", KEY], env) as (_, mock):
        sessions = max(idle, voice) + 10
        proxy_env = dict(
            env,
            OPENAI_API_KEY=KEY,
            OPENAI_REALTIME_URL=mock,
            LOG_LEVEL="WARNING",
            # Every session comes from 127.0.0.1: lift the total and per-IP session limits.
            OPENAI_PROXY_MAX_SESSIONS=str(sessions),
            OPENAI_PROXY_MAX_SESSIONS_PER_IP=str(sessions),
            OPENAI_PROXY_TURN_RATE="100000",
            OPENAI_PROXY_TURN_BURST="100000",
        )
        with process(["-m", "proxy", "--port", "0"], proxy_env) as (proxy, url):
            await settle()
            rss_started = rss_bytes(proxy.pid)
            async with connect(mock, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
                await ws.recv()  # session.created
                direct = [await direct_turn(ws, f"turn {i}") for i in range(turns)]

            client = await ComponentClient.connect(url)
            await client.start()
            await proxy_turn(client, "warm up", 1)
            cpu_before = cpu_seconds(proxy.pid)
            proxied = [await proxy_turn(client, f"turn {i}", i + 2) for i in range(turns)]
            cpu_turns = cpu_seconds(proxy.pid) - cpu_before

            second = sine_pcm16(1.0)
            audio = second * max(1, int(audio_mb * 1e6 / len(second)))
            cpu_before = cpu_seconds(proxy.pid)
            await client.send_audio(audio, frame_bytes=640)  # 20 ms frames, as fast as possible
            await client.send({"type": "KeepAlive"})
            await asyncio.sleep(0.5)  # let the last batch go out
            cpu_audio = cpu_seconds(proxy.pid) - cpu_before
            await client.close()

            await settle()
            rss_before = rss_bytes(proxy.pid)
            clients = await idle_sessions(url, idle)
            await settle()
            rss_idle = rss_bytes(proxy.pid)
            await asyncio.gather(*(client.close() for client in clients))

            clients = await idle_sessions(url, voice)
            cpu_before = cpu_seconds(proxy.pid)
            tone = sine_pcm16(0.02)
            await asyncio.gather(*(converse(c, voice_seconds, tone) for c in clients))
            cpu_voice = cpu_seconds(proxy.pid) - cpu_before
            rss_voice = rss_bytes(proxy.pid)
            answers = sum(len(c.received("AgentAudioDone")) for c in clients)
            await asyncio.gather(*(client.close() for client in clients))

    direct_ms, proxied_ms = statistics.median(direct) * 1e3, statistics.median(proxied) * 1e3
    mib = 1024 * 1024
    print(f"turns: {turns} (mock sends ~17 events per turn, 3 audio chunks of 100 ms)")
    print(f"proxy CPU per text turn:      {cpu_turns / turns * 1e3:.3f} ms")
    print(f"proxy CPU per MB of 16 kHz:   {cpu_audio / (len(audio) / 1e6):.4f} s")
    print(f"median turn, direct to mock:  {direct_ms:.2f} ms")
    print(f"median turn, through proxy:   {proxied_ms:.2f} ms ({proxied_ms / direct_ms - 1:+.0%})")
    print(f"proxy RSS at start:           {rss_started / mib:.1f} MiB")
    print(f"proxy RSS after the above:    {rss_before / mib:.1f} MiB")
    print(f"proxy RSS, {idle} idle sessions: {rss_idle / mib:.1f} MiB")
    print(f"proxy RSS per idle session:   {(rss_idle - rss_before) / max(idle, 1) / 1024:.0f} KiB")
    print(f"voice sessions: {voice} x {voice_seconds:.0f} s in real time, {answers} spoken answers")
    busy = cpu_voice / max(voice * voice_seconds, 1e-9)
    print(f"proxy CPU per voice session:  {busy * 1e3:.2f} ms per second ({busy:.2%} of a core)")
    print(f"proxy RSS, {voice} voice sessions: {rss_voice / mib:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--audio-mb", type=float, default=4.0)
    parser.add_argument("--idle-sessions", type=int, default=200)
    parser.add_argument("--voice-sessions", type=int, default=20)
    parser.add_argument("--voice-seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(
        run(args.turns, args.audio_mb, args.idle_sessions, args.voice_sessions, args.voice_seconds)
    )


if __name__ == "__main__":
    main()
