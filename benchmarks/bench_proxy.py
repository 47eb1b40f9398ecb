"""Proxy cost, measured side by side with the mock alone, in one run (issue 11's table):

    python benchmarks/bench_proxy.py [--sessions 20] [--rounds 8] [--turns 25]
                                     [--connects 100] [--idle-sessions 1000] [--audio-mb 4]
                                     [--scale-workers 1,2] [--out benchmarks/results/NAME]

- CPU per text turn: `--sessions` component sessions at once, each sending
  InjectUserMessage and waiting for the end of the turn (LatencyReport), `--turns` times
  per round. The mock answers each with ~17 events and 3 x 100 ms of audio.
- Turn latency, as a multiple of talking to the mock directly: the same number of
  sessions send the mock what the proxy would (conversation.item.create,
  response.create) and wait for response.done. Direct and proxied rounds alternate
  (ABBA), so drift on a shared machine hits both.
- Connect -> SettingsApplied: one session at a time, from the TCP connect to
  SettingsApplied; alternating with the direct equivalent (connect, session.update,
  session.updated).
- Memory per idle session: (RSS with `--idle-sessions` sessions past SettingsApplied -
  RSS before) / N.
- CPU per MB of 16 kHz input audio: one session sends `--audio-mb` MB in 20 ms frames
  as fast as it can.
- CPU per second of a voice conversation (for docs/deploy.md): `--voice-sessions`
  sessions speak in real time (1.5 s of tone, 1.5 s of pause) and the mock answers.
- Scale (`scale.py`): real-time sessions until p99 turn latency passes 50 ms, with 1
  and 2 worker processes.

The mock (`python -m harness.mock_openai --no-admin`) and the proxy (`python -m proxy`)
run as their own processes; CPU and memory come from /proc for each (workers
included), so the driver's and the mock's work is not counted as the proxy's. Results
go to a JSON file and, with matplotlib (the `[bench]` extra), a PNG next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: harness

from drivers import (
    TURN_END,
    WatchedConnection,
    close_within,
    direct_turn,
    open_direct,
    open_proxied,
    proxied_turn,
)
from plot import plot_result
from processes import MOCK_KEY, clean_env, cpu_seconds, rss_bytes, started, steal_seconds
from scale import ramp
from stats import percentile

from harness.client import ComponentClient
from proxy.settings import SERVER_DEFAULTS, environment_for

#: Issue 11: what the TypeScript reference proxy measured, and the targets.
REFERENCE = {
    "cpu_per_text_turn_ms": "0.32-0.38",
    "turn_p50_ratio": "1.29-1.34",
    "turn_p99_ratio": "1.44-1.82",
    "connect_p50_ms": "1.6-1.9",
    "rss_per_idle_session_kib": "43",
    "cpu_per_mb_audio_s": "0.056",
}
TARGETS = {
    "cpu_per_text_turn_ms": 0.25,
    "turn_p50_ratio": 1.20,
    "turn_p99_ratio": 1.35,
    "connect_p50_ms": 1.5,
    "rss_per_idle_session_kib": 40.0,
    "cpu_per_mb_audio_s": 0.02,
}
LABELS = {
    "cpu_per_text_turn_ms": "proxy CPU per text turn (ms)",
    "turn_p50_ratio": "turn latency p50, x direct",
    "turn_p99_ratio": "turn latency p99, x direct",
    "connect_p50_ms": "connect -> SettingsApplied p50 (ms)",
    "rss_per_idle_session_kib": "RSS per idle session (KiB)",
    "cpu_per_mb_audio_s": "proxy CPU per MB of 16 kHz audio (s)",
}
# The mock, with its import-time objects (the openai SDK's models: 100,000 and more)
# frozen out of the garbage collector: otherwise each of its full collections stalls every
# turn in flight for ~100 ms, direct and proxied alike, and p99 measures the mock's GC.
MOCK = [
    "-c",
    "import gc, sys; import harness.mock_openai.__main__ as mock; gc.freeze(); "
    "sys.exit(mock.main(sys.argv[1:]))",
    "--port",
    "0",
    "--api-key",
    MOCK_KEY,
    "--no-admin",
]


def proxy_command(workers: int) -> list[str]:
    # One worker is the default: no flag, so that an older checkout (--proxy-tree) runs too.
    return ["-m", "proxy", "--port", "0"] + (["--workers", str(workers)] if workers > 1 else [])


def proxy_env(mock_url: str, sessions: int) -> dict[str, str]:
    handshakes = max(SERVER_DEFAULTS.max_pending_handshakes, sessions)
    return clean_env(
        OPENAI_API_KEY=MOCK_KEY,
        **environment_for(
            upstream_url=mock_url,
            log_level="WARNING",
            # Every session comes from 127.0.0.1, and the turns go back to back.
            max_sessions=sessions,
            max_sessions_per_ip=sessions,
            turn_rate=100000,
            turn_burst=100000,
            message_rate=1000000,  # the audio row sends as fast as it can
            # ... and the connects row opens sessions back to back, many at once.
            connection_rate=0,
            max_pending_handshakes=handshakes,
            max_pending_handshakes_per_ip=handshakes,
        ),
    )


async def settle(seconds: float = 1.0) -> None:
    gc.collect()  # the driver's, between measurements (see main)
    await asyncio.sleep(seconds)  # let the last burst's buffers be freed


async def open_many(count: int, url: str, *, direct: bool = False) -> list[WatchedConnection]:
    opening = open_direct if direct else open_proxied
    return [ws for ws, _ in await asyncio.gather(*(opening(url) for _ in range(count)))]


async def close_all(connections: list[WatchedConnection]) -> None:
    await close_within(connections, 15.0)


# ---------------------------------------------------------------- the measures


async def idle_memory(url: str, proxy_pid: int, count: int) -> dict[str, float]:
    await settle()
    before = rss_bytes(proxy_pid)
    sessions: list[WatchedConnection] = []
    while len(sessions) < count:  # in batches: a burst of handshakes is not what is measured
        sessions += await open_many(min(50, count - len(sessions)), url)
    await settle(2.0)
    held = rss_bytes(proxy_pid)
    await close_all(sessions)
    await settle(2.0)
    return {
        "rss_before_mib": before / 2**20,
        "rss_idle_mib": held / 2**20,
        "rss_per_idle_session_kib": (held - before) / max(count, 1) / 1024,
    }


async def connect_times(
    mock_url: str, url: str, proxy_pid: int, count: int
) -> tuple[list[float], list[float], float]:
    """Connect -> ready, direct and proxied, alternating; and the proxy's CPU seconds per
    session from connect to close (it has nothing else to do meanwhile)."""
    direct: list[float] = []
    proxied: list[float] = []
    before = cpu_seconds(proxy_pid)
    for index in range(count):
        order = ("direct", "proxied") if index % 2 == 0 else ("proxied", "direct")
        for kind in order:
            if kind == "direct":
                ws, seconds = await open_direct(mock_url)
                direct.append(seconds)
            else:
                ws, seconds = await open_proxied(url)
                proxied.append(seconds)
            await ws.close()
            await asyncio.sleep(0.02)  # the proxy's upstream close is done before the next
    return direct, proxied, (cpu_seconds(proxy_pid) - before) / count


async def turn_rounds(
    mock_url: str, url: str, proxy_pid: int, mock_pid: int, sessions: int, turns: int, rounds: int
) -> dict[str, Any]:
    direct_ws = await open_many(sessions, mock_url, direct=True)
    proxied_ws = await open_many(sessions, url)

    async def one_round(proxied: bool, count: int) -> list[float]:
        async def conversation(ws: WatchedConnection) -> list[float]:
            turn = proxied_turn if proxied else direct_turn
            return [await turn(ws, f"turn {n}") for n in range(count)]

        results = await asyncio.gather(
            *(conversation(ws) for ws in (proxied_ws if proxied else direct_ws))
        )
        return [seconds for conversation_ in results for seconds in conversation_]

    await one_round(False, 3)  # warm up both paths
    await one_round(True, 3)
    direct: list[float] = []
    proxied: list[float] = []
    cpu_by_round: list[float] = []
    mock_cpu = {"direct": 0.0, "proxied": 0.0}
    for index in range(rounds):
        order = (False, True) if index % 4 in (0, 3) else (True, False)  # ABBA
        for through_proxy in order:
            gc.collect()
            cpu0, mock0 = cpu_seconds(proxy_pid), cpu_seconds(mock_pid)
            latencies = await one_round(through_proxy, turns)
            cpu, mock = cpu_seconds(proxy_pid) - cpu0, cpu_seconds(mock_pid) - mock0
            if through_proxy:
                proxied += latencies
                cpu_by_round.append(cpu / len(latencies) * 1e3)
                mock_cpu["proxied"] += mock
            else:
                direct += latencies
                mock_cpu["direct"] += mock
    await close_all(direct_ws + proxied_ws)
    total = sessions * turns * rounds
    return {
        "direct": direct,
        "proxied": proxied,
        "cpu_by_round": cpu_by_round,
        "mock_cpu_per_turn_ms": {k: v / total * 1e3 for k, v in mock_cpu.items()},
    }


async def audio_cpu(url: str, proxy_pid: int, megabytes: float) -> float:
    second = sine_pcm16(1.0)
    audio = second * max(1, int(megabytes * 1e6 / len(second)))
    ws, _ = await open_proxied(url)
    await settle(0.5)
    before = cpu_seconds(proxy_pid)
    for start in range(0, len(audio), 640):  # 20 ms frames, as fast as the proxy takes them
        await ws.send(audio[start : start + 640])
    await ws.send(b'{"type":"KeepAlive"}', text=True)
    await asyncio.sleep(0.5)  # the last batch goes out after 50 ms
    used = cpu_seconds(proxy_pid) - before
    await ws.close()
    return used / (len(audio) / 1e6)


async def voice_cpu(url: str, proxy_pid: int, sessions: int, seconds: float) -> dict[str, float]:
    """A caller in real time: 20 ms frames, 1.5 s of tone then 1.5 s of silence; the
    mock's VAD hears each stretch of tone and answers it with speech."""
    clients = [await ComponentClient.connect(url) for _ in range(sessions)]
    await asyncio.gather(*(client.start() for client in clients))
    tone = sine_pcm16(0.02)
    silence = bytes(len(tone))

    async def speak(client: ComponentClient) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        for frame in range(int(seconds / 0.02)):
            await client.send_raw(tone if frame % 150 < 75 else silence)
            due += 0.02
            await asyncio.sleep(max(0.0, due - loop.time()))

    before = cpu_seconds(proxy_pid)
    await asyncio.gather(*(speak(client) for client in clients))
    used = cpu_seconds(proxy_pid) - before
    answers = sum(len(client.received("AgentAudioDone")) for client in clients)
    await asyncio.gather(*(client.close() for client in clients))
    per_second = used / max(sessions * seconds, 1e-9)
    return {"cpu_ms_per_session_second": per_second * 1e3, "spoken_answers": answers}


def sine_pcm16(seconds: float) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    return (np.sin(2 * np.pi * 300 * t) * 3000).astype("<i2").tobytes()


# ---------------------------------------------------------------- one run


async def measure_table(args: argparse.Namespace) -> dict[str, Any]:
    limit = max(args.idle_sessions, args.sessions, args.voice_sessions) + 50
    with started(MOCK, clean_env()) as (mock, mock_url):  # noqa: SIM117 (the proxy needs its URL)
        with started(proxy_command(1), proxy_env(mock_url, limit), args.proxy_tree) as (
            proxy,
            url,
        ):
            await settle()
            rss_start = rss_bytes(proxy.pid)
            warm = await open_many(20, url)
            await asyncio.gather(*(proxied_turn(ws, "warm up") for ws in warm))
            await close_all(warm)
            # Connects first: after a burst of 1000 sessions both the mock and the proxy
            # carry more objects for their collectors, which is not what a connect costs.
            print("connects ...", flush=True)
            connect_direct, connect_proxied, connect_cpu = await connect_times(
                mock_url, url, proxy.pid, args.connects
            )
            print("idle sessions ...", flush=True)
            memory = await idle_memory(url, proxy.pid, args.idle_sessions)
            print("turns ...", flush=True)
            turns = await turn_rounds(
                mock_url, url, proxy.pid, mock.pid, args.sessions, args.turns, args.rounds
            )
            print("audio ...", flush=True)
            audio = await audio_cpu(url, proxy.pid, args.audio_mb)
            voice = (
                await voice_cpu(url, proxy.pid, args.voice_sessions, args.voice_seconds)
                if args.voice_sessions
                else None
            )
    cpu_turn = statistics.fmean(turns["cpu_by_round"])
    direct, proxied = turns["direct"], turns["proxied"]
    rows = {
        "cpu_per_text_turn_ms": cpu_turn,
        "turn_p50_ratio": percentile(proxied, 50) / percentile(direct, 50),
        "turn_p99_ratio": percentile(proxied, 99) / percentile(direct, 99),
        "connect_p50_ms": percentile(connect_proxied, 50) * 1e3,
        "rss_per_idle_session_kib": memory["rss_per_idle_session_kib"],
        "cpu_per_mb_audio_s": audio,
    }
    details = {
        "turn_direct_ms": {q: percentile(direct, q) * 1e3 for q in (50, 90, 99)},
        "turn_proxied_ms": {q: percentile(proxied, q) * 1e3 for q in (50, 90, 99)},
        "connect_direct_p50_ms": percentile(connect_direct, 50) * 1e3,
        "proxy_cpu_per_session_ms": connect_cpu * 1e3,  # connect to close, no turn
        "connect_proxied_p90_ms": percentile(connect_proxied, 90) * 1e3,
        "mock_cpu_per_turn_ms": turns["mock_cpu_per_turn_ms"],
        "rss_at_start_mib": rss_start / 2**20,
        **memory,
        "voice": voice,
    }
    samples = {
        "turn_direct_s": direct,
        "turn_proxied_s": proxied,
        "connect_direct_s": connect_direct,
        "connect_proxied_s": connect_proxied,
        "cpu_per_turn_ms_by_round": turns["cpu_by_round"],
    }
    return {"rows": rows, "details": details, "samples": samples}


async def measure_scale(args: argparse.Namespace, workers: int) -> list[dict[str, Any]]:
    limit = max(args.scale_steps) + 50
    with started(MOCK, clean_env()) as (mock, mock_url):  # noqa: SIM117 (the proxy needs its URL)
        with started(proxy_command(workers), proxy_env(mock_url, limit)) as (proxy, url):
            await settle()
            steps = await ramp(
                url,
                proxy.pid,
                mock.pid,
                steps=args.scale_steps,
                hold=args.scale_hold,
                warmup=args.scale_warmup,
                turn_interval=args.scale_turn_interval,
                frame_ms=args.scale_frame_ms,
                bound_ms=args.scale_bound_ms,
            )
    return [step.as_dict() for step in steps]


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    python = platform.python_version()
    return {
        "summary": f"{cores} x {model}, Python {python}, websockets {websockets.__version__}",
        "cpu": model,
        "cores": cores,
        "kernel": platform.release(),
        "python": python,
        "websockets": websockets.__version__,
        "load_average_at_start": os.getloadavg(),
    }


def report(result: dict[str, Any]) -> None:
    print(f"\n{result['machine']['summary']}; {result['command']}")
    stolen = result["machine"]["stolen_share_during_table"]
    print(f"CPU time taken by the hypervisor while the table was measured: {stolen:.1%}")
    print(f"{'measure':40} {'this run':>10} {'reference':>10} {'target':>8}  met")
    for name, value in result["rows"].items():
        target = TARGETS[name]
        met = "yes" if value <= target else "NO"
        print(f"{LABELS[name]:40} {value:10.3f} {REFERENCE[name]:>10} {target:8.2f}  {met}")
    details = result["details"]
    print(
        f"turn ms direct p50/p99 {details['turn_direct_ms'][50]:.2f}/"
        f"{details['turn_direct_ms'][99]:.2f}, proxied {details['turn_proxied_ms'][50]:.2f}/"
        f"{details['turn_proxied_ms'][99]:.2f}; connect direct p50 "
        f"{details['connect_direct_p50_ms']:.2f} ms, proxy CPU per session (connect to close) "
        f"{details['proxy_cpu_per_session_ms']:.2f} ms; RSS at start "
        f"{details['rss_at_start_mib']:.1f} MiB, with idle sessions "
        f"{details['rss_idle_mib']:.1f} MiB"
    )
    if details["voice"]:
        print(
            f"voice conversation: {details['voice']['cpu_ms_per_session_second']:.2f} ms "
            f"of CPU per session-second ({details['voice']['spoken_answers']} spoken answers)"
        )
    for workers, steps in result.get("scale", {}).items():
        passed = [s for s in steps if s["p99_ms"] <= result["config"]["scale_bound_ms"]]
        if not passed:
            print(f"scale, {workers} worker(s): no step stayed under the bound")
            continue
        best = passed[-1]
        more = "" if best is not steps[-1] else " (the ramp ended first: at least)"
        print(
            f"scale, {workers} worker(s): {best['sessions']} sessions with p99 "
            f"{best['p99_ms']:.1f} ms{more}; proxy used {best['proxy_cores']:.2f} cores there "
            f"({best['sessions'] / max(best['proxy_cores'], 1e-9):.0f} sessions per core of "
            f"proxy CPU)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=20, help="sessions at once for turns")
    parser.add_argument("--turns", type=int, default=25, help="turns per session and round")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of each (direct, proxied)")
    parser.add_argument("--connects", type=int, default=100, help="sequential connects of each")
    parser.add_argument("--idle-sessions", type=int, default=1000)
    parser.add_argument("--audio-mb", type=float, default=4.0)
    parser.add_argument("--voice-sessions", type=int, default=20, help="0: skip")
    parser.add_argument("--voice-seconds", type=float, default=10.0)
    parser.add_argument(
        "--scale-workers", default="1,2", help="worker counts to ramp (empty: no scale test)"
    )
    parser.add_argument(
        "--scale-steps",
        default="25,50,100,150,200,250,300,350,400,500,600,800,1000,1200,1500",
        help="session counts of the ramp",
    )
    parser.add_argument("--scale-hold", type=float, default=10.0, help="seconds measured a step")
    parser.add_argument("--scale-warmup", type=float, default=2.0)
    parser.add_argument("--scale-turn-interval", type=float, default=4.0)
    parser.add_argument("--scale-frame-ms", type=int, default=20, help="microphone frame")
    parser.add_argument("--scale-bound-ms", type=float, default=50.0)
    parser.add_argument(
        "--proxy-tree",
        type=Path,
        default=None,
        help="measure the proxy of another checkout (e.g. a git worktree of an older commit);"
        " with --scale-workers ''",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result path without suffix (default benchmarks/results/<time>)",
    )
    args = parser.parse_args()
    if args.proxy_tree is not None:
        if args.scale_workers:
            parser.error("--proxy-tree measures the table only: add --scale-workers ''")
        TURN_END["kind"] = b"AgentAudioDone"  # older checkouts send no LatencyReport
    args.scale_steps = [int(n) for n in args.scale_steps.split(",") if n]
    workers = [int(n) for n in args.scale_workers.split(",") if n]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out: Path = args.out or Path(__file__).parent / "results" / stamp
    out.parent.mkdir(parents=True, exist_ok=True)

    # The driver's own garbage collections would stall every turn in flight at once:
    # freeze what the imports made, and collect only between measurements (settle()).
    gc.freeze()
    gc.disable()
    started_at = time.time()
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_proxy.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "started": datetime.datetime.fromtimestamp(started_at).isoformat(timespec="seconds"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "targets": TARGETS,
        "reference": REFERENCE,
    }
    steal = steal_seconds()
    result.update(asyncio.run(measure_table(args)))
    table_seconds = time.time() - started_at
    result["machine"]["stolen_share_during_table"] = (steal_seconds() - steal) / (
        table_seconds * (os.cpu_count() or 1)
    )
    result["scale"] = {}
    for count in workers:
        print(f"scale, {count} worker(s):", flush=True)
        result["scale"][str(count)] = asyncio.run(measure_scale(args, count))
    result["seconds"] = time.time() - started_at
    json_path = out.with_suffix(".json")
    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    json_path.write_bytes(orjson.dumps(result, option=options))
    report(result)
    print(f"result: {json_path}")
    why_not = plot_result(result, out.with_suffix(".png"))
    print(why_not or f"plot: {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
