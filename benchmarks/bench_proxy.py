"""Proxy cost, measured: CPU per text turn, CPU per MB of input audio, added latency.

    python benchmarks/bench_proxy.py [--turns 300] [--audio-mb 4]

Runs the mock upstream and the proxy as separate processes and reads the proxy's own
CPU time from /proc, so the driver's and the mock's work is not counted. Latency is
compared in the same run: the same turn sent straight to the mock, then through the
proxy (ratios, not absolute times, are what to compare on a shared machine).
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


async def run(turns: int, audio_mb: float) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with process(["-m", "harness.mock_openai", "--port", "0", "--api-key", KEY], env) as (_, mock):
        proxy_env = dict(env, OPENAI_API_KEY=KEY, OPENAI_REALTIME_URL=mock, LOG_LEVEL="WARNING")
        with process(["-m", "proxy", "--port", "0"], proxy_env) as (proxy, url):
            async with connect(mock, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
                await ws.recv()  # session.created
                direct = [await direct_turn(ws, f"turn {i}") for i in range(turns)]

            client = await ComponentClient.connect(url)
            await client.start()
            await proxy_turn(client, "warm up", 1)
            cpu_before = cpu_seconds(proxy.pid)
            proxied = [await proxy_turn(client, f"turn {i}", i + 2) for i in range(turns)]
            cpu_turns = cpu_seconds(proxy.pid) - cpu_before

            t = np.arange(16000) / 16000
            second = (np.sin(2 * np.pi * 300 * t) * 3000).astype("<i2").tobytes()
            audio = second * max(1, int(audio_mb * 1e6 / len(second)))
            cpu_before = cpu_seconds(proxy.pid)
            await client.send_audio(audio, frame_bytes=640)  # 20 ms frames, as fast as possible
            await client.send({"type": "KeepAlive"})
            await asyncio.sleep(0.5)  # let the last batch go out
            cpu_audio = cpu_seconds(proxy.pid) - cpu_before
            await client.close()

    direct_ms, proxied_ms = statistics.median(direct) * 1e3, statistics.median(proxied) * 1e3
    print(f"turns: {turns} (mock sends ~17 events per turn, 3 audio chunks of 100 ms)")
    print(f"proxy CPU per text turn:      {cpu_turns / turns * 1e3:.3f} ms")
    print(f"proxy CPU per MB of 16 kHz:   {cpu_audio / (len(audio) / 1e6):.4f} s")
    print(f"median turn, direct to mock:  {direct_ms:.2f} ms")
    print(f"median turn, through proxy:   {proxied_ms:.2f} ms ({proxied_ms / direct_ms - 1:+.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--audio-mb", type=float, default=4.0)
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.audio_mb))


if __name__ == "__main__":
    main()
