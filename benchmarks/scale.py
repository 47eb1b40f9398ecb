"""How many real-time sessions the proxy carries before turns slow down.

Every session streams 16 kHz microphone audio in real time (silence, so the mock's VAD
starts no answers of its own) and asks for a text turn every `turn_interval` seconds,
at a random phase. Sessions are added in steps; at each step, after a warm-up, the turn
latencies (InjectUserMessage -> the turn's LatencyReport) of a `hold`-second window give
p50 and p99, and /proc gives the CPU the proxy, the mock and this driver used. The ramp
stops at the first step whose p99 passes the bound twice in a row (the machine is shared:
one noisy window is not a limit).

One task writes every session's microphone frames (in staggered groups, so they do not
all land in the same millisecond) and records how late it woke: when the driver itself
falls behind, the step says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

from drivers import WatchedConnection, close_within, open_proxied, proxied_turn, send_frame_now
from processes import cpu_seconds, steal_seconds
from stats import percentile

__all__ = ["ScaleStep", "ramp"]

_OPEN_BATCH = 50
_TURN_TIMEOUT = 10.0
_CLOSE_WITHIN = 15.0


@dataclass
class ScaleStep:
    sessions: int
    attempt: int  # a step over the bound is measured once more before the ramp stops
    turns: int
    unfinished: int  # still unanswered a second after the window
    p50_ms: float
    p99_ms: float
    proxy_cores: float  # CPU seconds per second
    mock_cores: float
    driver_cores: float
    driver_late_ms: float  # the most the microphone task woke late
    steal_cores: float  # CPU the hypervisor took from the machine meanwhile

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Load:
    """The sessions of a ramp and what they measured."""

    def __init__(self, url: str, frame_ms: int, turn_interval: float) -> None:
        self.url = url
        self.frame = bytes(16 * 2 * frame_ms)  # 16 kHz PCM16 silence
        self.frame_ms = frame_ms
        self.turn_interval = turn_interval
        self.callers: list[WatchedConnection] = []
        self.turns: list[list[float]] = []  # [start, seconds (inf until answered)]
        self.late = 0.0
        self.tasks: list[asyncio.Task[None]] = []
        self.closing = False

    async def grow(self, count: int) -> None:
        while len(self.callers) < count:
            batch = min(_OPEN_BATCH, count - len(self.callers))
            opened = await asyncio.gather(*(open_proxied(self.url) for _ in range(batch)))
            for ws, _ in opened:
                self.callers.append(ws)
                self.tasks.append(asyncio.create_task(self._talk(ws)))

    async def _talk(self, ws: WatchedConnection) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + random.uniform(0, self.turn_interval)
        while not self.closing:
            await asyncio.sleep(max(0.0, due - loop.time()))
            record = [loop.time(), math.inf]
            self.turns.append(record)
            with contextlib.suppress(TimeoutError):
                record[1] = await proxied_turn(ws, "what time is it", timeout=_TURN_TIMEOUT)
            due = max(due + self.turn_interval, loop.time())

    async def microphone(self) -> None:
        loop = asyncio.get_running_loop()
        groups = max(1, self.frame_ms // 2)
        step = self.frame_ms / 1000 / groups
        due, group = loop.time(), 0
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.late = max(self.late, loop.time() - due)
            for ws in self.callers[group::groups]:
                with contextlib.suppress(Exception):  # a session the proxy dropped
                    send_frame_now(ws, self.frame, text=False)
            group = (group + 1) % groups
            due += step

    async def close(self) -> None:
        # Python 3.11's wait_for can swallow a cancellation that meets a result (a hung
        # run had one caller turning forever): the flag ends the loop whatever happens.
        self.closing = True
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=_TURN_TIMEOUT + 1.0)
        await close_within(self.callers, _CLOSE_WITHIN)


async def ramp(
    url: str,
    proxy_pid: int,
    mock_pid: int,
    *,
    steps: list[int],
    hold: float,
    warmup: float,
    turn_interval: float,
    frame_ms: int,
    bound_ms: float,
) -> list[ScaleStep]:
    load = _Load(url, frame_ms, turn_interval)
    microphone = asyncio.create_task(load.microphone())
    results: list[ScaleStep] = []
    try:
        for count in steps:
            gc.collect()  # the driver collects only between steps (bench_proxy.main)
            await load.grow(count)
            await asyncio.sleep(warmup)
            for attempt in (1, 2):  # on a shared machine one noisy window is not a limit
                step = await _measure(load, proxy_pid, mock_pid, hold, attempt)
                results.append(step)
                _show(step)
                if step.p99_ms <= bound_ms:
                    break
            else:
                break  # over the bound twice: this is the limit
    finally:
        microphone.cancel()
        await asyncio.gather(microphone, return_exceptions=True)
        await load.close()
    return results


def _show(step: ScaleStep) -> None:
    again = " (again)" if step.attempt > 1 else ""
    print(
        f"  {step.sessions:5d} sessions{again}: p50 {step.p50_ms:6.1f} ms, p99 "
        f"{step.p99_ms:6.1f} ms over {step.turns} turns ({step.unfinished} unanswered); CPU "
        f"proxy {step.proxy_cores:.2f}, mock {step.mock_cores:.2f}, driver "
        f"{step.driver_cores:.2f}, stolen {step.steal_cores:.2f} cores; driver late by up to "
        f"{step.driver_late_ms:.0f} ms",
        flush=True,
    )


async def _measure(
    load: _Load, proxy_pid: int, mock_pid: int, hold: float, attempt: int
) -> ScaleStep:
    loop = asyncio.get_running_loop()
    start, load.late = loop.time(), 0.0
    proxy0, mock0, driver0 = cpu_seconds(proxy_pid), cpu_seconds(mock_pid), time.process_time()
    steal0 = steal_seconds()
    await asyncio.sleep(hold)
    end = loop.time()
    proxy1, mock1, driver1 = cpu_seconds(proxy_pid), cpu_seconds(mock_pid), time.process_time()
    steal1 = steal_seconds()
    late = load.late
    await asyncio.sleep(1.0)  # turns begun in the window may finish
    window = [seconds for begun, seconds in load.turns if start <= begun < end]
    elapsed = end - start
    return ScaleStep(
        sessions=len(load.callers),
        attempt=attempt,
        turns=len(window),
        unfinished=sum(1 for seconds in window if seconds == math.inf),
        p50_ms=percentile(window, 50) * 1e3,
        p99_ms=percentile(window, 99) * 1e3,
        proxy_cores=(proxy1 - proxy0) / elapsed,
        mock_cores=(mock1 - mock0) / elapsed,
        driver_cores=(driver1 - driver0) / elapsed,
        driver_late_ms=late * 1e3,
        steal_cores=(steal1 - steal0) / elapsed,
    )
