"""Running the proxy in production (docs/operations.md): health, metrics, logs, drain,
workers and TLS, on real sockets and real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.protocol import State

from harness.background import BackgroundLoop
from harness.client import ComponentClient
from harness.mock_openai import MockRealtime, tone_pcm16
from harness.pytest_plugin import ProxyEndpoint
from tests.haproxy import make_certificate
from tests.http_raw import http_get
from tests.processes import clean_env, listening_url, running

ProxyFactory = Callable[..., ProxyEndpoint]


def base(endpoint: ProxyEndpoint) -> str:
    return "http://" + endpoint.url.split("/")[2]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


# ------------------------------------------------------------------ health and metrics


async def test_healthz_and_readyz(proxy: ProxyEndpoint) -> None:
    assert (await asyncio.to_thread(http_get, base(proxy) + "/healthz"))[0] == 200
    assert (await asyncio.to_thread(http_get, base(proxy) + "/readyz"))[0] == 200


async def test_metrics_after_a_known_workload(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory
) -> None:
    endpoint = proxy_factory(client_token="t0k3n")
    mock_openai.on_user_text("fail").send_error("server_error", "boom", type="server_error").once()
    for _ in range(2):
        async with await ComponentClient.connect(endpoint.url, token="t0k3n") as client:
            await client.start()
            await client.send_audio(tone_pcm16(500, rate=16000))
            await client.inject("hello")
            await client.wait_for_reply()
            await client.inject("and again")
            await client.wait_for_reply(2)
    async with await ComponentClient.connect(endpoint.url, token="t0k3n") as client:
        await client.start()
        await client.inject("fail now")
        await client.wait_for("Error")
    with pytest.raises(InvalidStatus):
        await connect(endpoint.url)  # no token: refused
    assert endpoint.server is not None
    await endpoint.wait_idle()

    answer = await asyncio.to_thread(http_get, base(endpoint) + "/metrics")
    status, content_type = answer.status, answer.headers["Content-Type"]
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    found = samples(answer.text)
    assert found[("voice_proxy_sessions_active", ())] == 0
    assert found[("voice_proxy_sessions_total", (("close_reason", "client_closed"),))] == 3
    assert found[("voice_proxy_refused_connections_total", (("reason", "token"),))] == 1
    assert found[("voice_proxy_turns_total", ())] == 4
    assert found[("voice_proxy_upstream_errors_total", (("code", "server_error"),))] == 1
    assert found[("voice_proxy_settings_applied_seconds_count", ())] == 3
    assert found[("voice_proxy_turn_latency_seconds_count", ())] == 4
    assert found[("voice_proxy_audio_seconds_total", (("direction", "in"),))] == pytest.approx(1.0)
    assert found[("voice_proxy_audio_seconds_total", (("direction", "out"),))] == pytest.approx(1.2)
    for direction in ("client_in", "client_out", "upstream_in", "upstream_out"):
        assert found[("voice_proxy_bytes_total", (("direction", direction),))] > 1000
    assert found[("voice_proxy_buffered_bytes_high_water", ())] >= 0
    assert found[("process_resident_memory_bytes", ())] > 0


async def test_hostile_upstream_error_codes_cannot_grow_the_metrics(
    mock_openai: MockRealtime, component_client: ComponentClient, proxy: ProxyEndpoint
) -> None:
    await component_client.start()
    for n in range(100):
        mock_openai.push(
            {
                "type": "error",
                "error": {"type": "x", "code": f"Evil Code {n}!\n", "message": "m"},
            }
        )
    await component_client.wait_for("Error", count=100)
    text = (await asyncio.to_thread(http_get, base(proxy) + "/metrics")).text
    codes = {
        labels for (name, labels) in samples(text) if name == "voice_proxy_upstream_errors_total"
    }
    assert len(codes) <= 64
    assert all(re.fullmatch(r"[a-z0-9_]+", dict(labels)["code"]) for labels in codes)


# ------------------------------------------------------------------ logs


async def test_json_logs_parse_and_carry_the_session_ids() -> None:
    args = ["-m", "proxy", "--port", "0", "--log-format", "json", "--log-level", "debug"]
    with running(args, clean_env(), r"listening on ws://") as (process, lines):
        url = listening_url(lines)
        async with await ComponentClient.connect(url) as client:
            welcome = await client.wait_for("Welcome")
            await client.start()
            await client.inject("my secret text")
            await client.wait_for_reply()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    entries = [orjson.loads(line) for line in lines if line.startswith("{")]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    about_session = [e for e in entries if e["logger"] == "proxy.session"]
    assert any(e.get("upstream_session") == welcome["request_id"] for e in about_session)
    assert all(e.get("session") for e in about_session)
    assert not any("my secret text" in line for line in lines)  # no content without --log-content


# ------------------------------------------------------------------ drain


async def test_drain_finishes_the_answer_refuses_newcomers_then_closes(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, harness_loop: BackgroundLoop
) -> None:
    mock_openai.on_user_text("story").reply_with_audio(
        "A slow story.", chunks=8, chunk_ms=100, chunk_interval_ms=100
    )
    endpoint = proxy_factory()
    server = endpoint.server
    assert server is not None
    async with (
        await ComponentClient.connect(endpoint.url) as talking,
        await ComponentClient.connect(endpoint.url) as quiet,
    ):
        await talking.start()
        await quiet.start()
        await talking.inject("tell me a story")
        await talking.wait_for("AgentStartedSpeaking")
        drained = asyncio.get_running_loop().run_in_executor(
            None,
            harness_loop.run,
            server.drain(10),  # type: ignore[attr-defined]
        )
        assert await quiet.wait_closed() == 1001  # nothing in progress: it goes at once
        status, _, _ = await asyncio.to_thread(http_get, base(endpoint) + "/readyz")
        assert status == 503
        with pytest.raises(InvalidStatus) as refused:
            await connect(endpoint.url)
        assert refused.value.response.status_code == 503
        assert await talking.wait_for_reply() == "A slow story."  # the answer completed
        await talking.wait_for("AgentAudioDone")
        assert len(talking.audio) == 8 * 100 * 48
        assert await talking.wait_closed() == 1001
        await drained


async def test_sigterm_drains_and_exits_zero() -> None:
    with running(["-m", "proxy", "--port", "0"], clean_env(), r"listening on ws://") as (
        process,
        lines,
    ):
        url = listening_url(lines)
        async with await ComponentClient.connect(url) as client:
            await client.start()
            process.send_signal(signal.SIGTERM)
            assert await client.wait_closed() == 1001
        assert await asyncio.to_thread(process.wait, 15) == 0
    assert any("draining" in line for line in lines) and lines[-1] == "proxy stopped"


# ------------------------------------------------------------------ workers


async def test_two_workers_serve_one_port_and_one_sigterm_stops_both() -> None:
    args = ["-m", "proxy", "--port", "0", "--workers", "2", "--log-level", "warning"]
    with running(args, clean_env(), r"listening on ws://") as (process, lines):
        url = listening_url(lines)
        assert "2 workers" in lines[-1]
        clients = [await ComponentClient.connect(url) for _ in range(16)]
        try:
            welcomes = await asyncio.gather(*(c.wait_for("Welcome") for c in clients))
            # Each worker runs its own built-in mock, whose ids carry a per-process tag.
            tags = {w["request_id"][:13] for w in welcomes}
            assert len(tags) == 2, tags
            await asyncio.gather(*(c.start() for c in clients))
            for client in clients:
                await client.inject("hi")
            await asyncio.gather(*(c.wait_for_reply() for c in clients))
            metrics = (
                await asyncio.to_thread(
                    http_get,
                    url.replace("ws://", "http://").replace("/openai", "/metrics"),
                )
            ).text
            active = samples(metrics)[("voice_proxy_sessions_active", ())]
            assert active == 16  # summed over both workers
        finally:
            for client in clients:
                await client.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
    assert "proxy stopped" in lines[-1]


# Every test client comes from 127.0.0.1: no per-address connection rate.
WORKERS_2 = ["-m", "proxy", "--port", "0", "--workers", "2", "--log-level", "warning"]
WORKERS_2 += ["--connection-rate", "0"]


def worker_pids(supervisor: int) -> set[int]:
    """The supervisor's spawned workers (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    found = set()
    for child in map(int, children):
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(child)
    return found


async def wait_for_workers(
    supervisor: int, count: int, *, without: int = 0, timeout: float = 20.0
) -> set[int]:
    deadline = time.monotonic() + timeout
    while len(pids := worker_pids(supervisor)) != count or without in pids:
        assert time.monotonic() < deadline, f"workers {pids}, expected {count}"
        await asyncio.sleep(0.05)
    return pids


def mock_tag(welcome: dict[str, object]) -> str:
    """Which worker a session is on: each worker's built-in mock tags its ids."""
    return str(welcome["request_id"])[:13]


async def readyz_statuses(url: str, count: int) -> list[int]:
    """`count` health checks, each on a new connection (the kernel spreads them)."""
    health = url.replace("ws://", "http://").replace("/openai", "/readyz")
    return [(await asyncio.to_thread(http_get, health))[0] for _ in range(count)]


async def test_a_killed_worker_is_replaced_and_leaves_no_ghost_sessions() -> None:
    with running(WORKERS_2, clean_env(), r"listening on ws://") as (process, lines):
        url = listening_url(lines)
        metrics_url = url.replace("ws://", "http://").replace("/openai", "/metrics")
        first = await wait_for_workers(process.pid, 2)
        clients = [await ComponentClient.connect(url) for _ in range(12)]
        try:
            tags = [mock_tag(await c.wait_for("Welcome")) for c in clients]
            assert len(set(tags)) == 2, tags
            victim = min(first)
            os.kill(victim, signal.SIGKILL)  # what the OOM killer does
            replaced = await wait_for_workers(process.pid, 2, without=victim)
            assert victim not in replaced and len(replaced - first) == 1
            lost = await lost_with_one_worker(clients, tags)
            survivors = len(clients) - lost
            found = samples((await asyncio.to_thread(http_get, metrics_url)).text)
            assert found[("voice_proxy_sessions_active", ())] == survivors  # no ghosts
            assert await readyz_statuses(url, 6) == [200] * 6
            new_tags: set[str] = set()
            deadline = time.monotonic() + 20  # the new worker starts, then listens
            while not new_tags - set(tags) and time.monotonic() < deadline:
                async with await ComponentClient.connect(url) as fresh:
                    new_tags.add(mock_tag(await fresh.wait_for("Welcome")))
                await asyncio.sleep(0.05)
            assert new_tags - set(tags), "no session reached the new worker"
        finally:
            for client in clients:
                await client.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0  # the death is not a failure
    assert any(f"worker {victim} was killed (SIGKILL): starting another" in x for x in lines)
    assert "proxy stopped" in lines[-1]


async def lost_with_one_worker(clients: list[ComponentClient], tags: list[str]) -> int:
    """Wait until every session of one worker, and only those, is lost; how many."""
    deadline = time.monotonic() + 10
    while True:
        lost = [
            tag for c, tag in zip(clients, tags, strict=True) if c.connection.state is State.CLOSED
        ]
        if lost and set(lost) == {lost[0]} and len(lost) == tags.count(lost[0]):
            return len(lost)
        assert time.monotonic() < deadline, f"lost {lost} of {tags}"
        await asyncio.sleep(0.05)


async def test_readyz_is_the_same_whichever_worker_answers() -> None:
    args = [*WORKERS_2, "--max-sessions", "1"]
    with running(args, clean_env(), r"listening on ws://") as (process, lines):
        url = listening_url(lines)
        await wait_for_workers(process.pid, 2)
        first = await ComponentClient.connect(url)
        try:
            await first.wait_for("Welcome")
            # One worker is full, the other has room: the pod is ready, from both.
            assert await readyz_statuses(url, 16) == [200] * 16
            second = None
            for _ in range(24):  # a connection that lands on the full worker gets 503
                with contextlib.suppress(InvalidStatus):
                    second = await ComponentClient.connect(url)
                    break
            assert second is not None
            try:
                await second.wait_for("Welcome")
                assert await readyz_statuses(url, 16) == [503] * 16  # both full
            finally:
                await second.close()
        finally:
            await first.close()


# ------------------------------------------------------------------ TLS


async def test_tls_serves_wss_directly(tmp_path: Path) -> None:
    pem, ca = make_certificate(tmp_path)
    args = ["-m", "proxy", "--port", "0", "--tls-cert", str(pem), "--tls-key", str(pem)]
    with running(args, clean_env(), r"listening on wss://") as (_, lines):
        url = listening_url(lines, "wss")
        trust = ssl.create_default_context(cafile=str(ca))
        async with connect(url, ssl=trust) as ws:
            assert '"Welcome"' in str(await ws.recv())
        health = url.replace("wss://", "https://").replace("/openai", "/healthz")
        assert (await asyncio.to_thread(http_get, health, context=trust))[0] == 200


def test_tls_flags_go_together_and_a_bad_certificate_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    lone = subprocess.run(
        [sys.executable, "-m", "proxy", "--tls-cert", "x.pem"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert lone.returncode == 2 and "go together" in lone.stderr
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    broken = subprocess.run(
        [
            sys.executable,
            "-m",
            "proxy",
            "--port",
            "0",
            "--tls-cert",
            str(bad),
            "--tls-key",
            str(bad),
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert broken.returncode != 0 and "cannot load the TLS certificate" in broken.stderr
    assert "Traceback" not in broken.stderr
