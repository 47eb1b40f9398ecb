"""`python -m proxy` and `python -m harness.mock_openai` as a user runs them."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.client import ComponentClient
from tests.processes import clean_env, running


async def test_proxy_without_a_key_runs_against_the_built_in_mock() -> None:
    with running(["-m", "proxy", "--port", "0"], clean_env(), r"listening on ws://") as (
        process,
        lines,
    ):
        assert "mock" in lines[0].lower()  # says so on its first lines
        url = re.search(r"ws://\S+", lines[-1])
        assert url is not None and url.group(0).endswith("/openai")
        async with await ComponentClient.connect(url.group(0)) as client:
            await client.start(greeting="Hello from the mock")
            await client.inject("ping")
            reply = await client.wait_for(
                "ConversationText", where=lambda m: m["content"] == "You said: ping"
            )
            assert reply["role"] == "assistant"
            await client.wait_for("AgentAudioDone")
            assert client.audio
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert "proxy stopped" in lines[-1]


async def test_proxy_with_a_key_uses_the_upstream_url_and_never_prints_the_key() -> None:
    key = "sk-harness-mock-key-0000"  # what a standalone mock started with --api-key accepts
    with running(
        ["-m", "harness.mock_openai", "--port", "0", "--api-key", key],
        clean_env(),
        r"listening on ws://",
    ) as (_, mock_lines):
        mock_url = re.search(r"ws://\S+", mock_lines[-1])
        assert mock_url is not None
        env = clean_env(
            OPENAI_API_KEY=key, OPENAI_REALTIME_URL=mock_url.group(0), LOG_LEVEL="DEBUG"
        )
        with running(["-m", "proxy", "--port", "0"], env, r"listening on ws://") as (proxy, lines):
            assert not any("mock upstream" in line for line in lines)
            url = re.search(r"ws://\S+", lines[-1])
            assert url is not None
            async with await ComponentClient.connect(url.group(0)) as client:
                await client.start()
                await client.inject("hello")
                await client.wait_for("AgentAudioDone")
            proxy.send_signal(signal.SIGINT)
            assert proxy.wait(timeout=10) == 0
    output = "\n".join(lines)
    assert "Authorization" in output  # debug logging really was on
    assert key not in output


def test_proxy_reports_a_taken_port() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "proxy", "--port", str(port)],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert "error" in result.stderr.lower()
    assert "Traceback" not in result.stderr  # one line, even with the mock running


def mock_children(proxy: int) -> list[int]:
    """The proxy's built-in mock: a child process running the harness's mock."""
    children = Path(f"/proc/{proxy}/task/{proxy}/children").read_text().split()
    found = []
    for child in map(int, children):
        with contextlib.suppress(OSError):
            if b"harness.mock_openai" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


async def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return gone(pid)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
async def test_the_built_in_mock_is_a_child_process_that_ends_with_the_proxy(
    stop: signal.Signals,
) -> None:
    """The proxy imports nothing of the harness: its mock is a child process, stopped
    after a drain, and gone even when the proxy dies without a word (its stdin closes)."""
    with running(["-m", "proxy", "--port", "0"], clean_env(), r"listening on ws://") as (
        process,
        lines,
    ):
        (mock,) = mock_children(process.pid)
        async with await ComponentClient.connect(re.findall(r"ws://\S+", lines[-1])[0]) as client:
            await client.start()
        process.send_signal(stop)
        assert await asyncio.to_thread(process.wait, 15) == (0 if stop == signal.SIGTERM else -9)
        assert await wait_gone(mock), f"the mock {mock} outlived the proxy"
