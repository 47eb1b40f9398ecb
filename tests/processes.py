"""Processes and ports for tests: start a module of this project as a user would."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running(
    args: list[str], env: dict[str, str], ready: str
) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """Start a module, wait for the line matching `ready`, stop it with SIGTERM after."""
    process = subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60  # a loaded 2-core machine imports slowly
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if re.search(ready, line):
                break
        assert any(re.search(ready, line) for line in lines), lines
        yield process, lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            rest, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
        lines.extend(rest.splitlines())


def listening_url(lines: list[str], scheme: str = "ws") -> str:
    """The URL a started proxy (or mock) announced on its last line."""
    found = re.search(scheme + r"://\S+", lines[-1])
    assert found is not None, lines
    return found.group(0)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LOG_LEVEL"))}
    env.update(extra)
    return env


def free_port() -> int:
    """A loopback port nothing listens on (free now; closed to connections)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def standalone_mock(api_key: str) -> Iterator[tuple[str, str]]:
    """`python -m harness.mock_openai` on a free port: (its ws:// URL, its admin URL)."""
    command = ["-m", "harness.mock_openai", "--port", "0", "--api-key", api_key]
    with running(command, clean_env(), r"admin API: ") as (_, lines):
        realtime = re.search(r"ws://\S+", lines[0])
        admin = re.search(r"(http://\S+?)/?$", lines[1])
        assert realtime and admin, lines
        yield realtime.group(0), admin.group(1)


def run_node_tests(*scripts: Path, **env: str) -> str:
    """Run node:test files one after the other (they may share a mock) with Node's
    WebSocket; their TAP report, or AssertionError with it."""
    node = shutil.which("node")
    assert node, "Node.js is needed for this test (Node 20 is on the machine)"
    command = [node, "--experimental-websocket", "--test", "--test-concurrency=1"]
    result = subprocess.run(
        [*command, "--test-reporter=tap", *map(str, scripts)],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    return report
