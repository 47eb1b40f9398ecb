"""The plugin as another repo gets it: installed, auto-loaded, nothing else imported."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from harness.pytest_plugin import MOCK_API_KEY
from tests.processes import free_port

OUTSIDE_TESTS = """
import pytest
from websockets.asyncio.client import connect

from harness.pytest_plugin import MOCK_API_KEY


async def test_scripted_reply(mock_openai, component_client):
    mock_openai.on_user_text("weather").reply_with_audio("Sunny.")
    await component_client.start()
    await component_client.inject("weather please")
    assert await component_client.wait_for_reply() == "Sunny."
    assert component_client.audio
    mock_openai.assert_received_in_order(["session.update", "conversation.item.create"])


async def test_several_clients(connect_component):
    first, second = await connect_component(), await connect_component()
    for client in (first, second):
        await client.start()


def test_sync_tests_can_script_and_wait(mock_openai, proxy):
    mock_openai.on_user_text("x").reply_with_text("y")
    assert proxy.url.startswith("ws://")
    assert mock_openai.received() == []


async def test_an_invalid_client_event_fails_the_test(mock_openai):
    headers = {"Authorization": f"Bearer {MOCK_API_KEY}"}
    async with connect(mock_openai.url, additional_headers=headers) as ws:
        await ws.send('{"type": "session.update", '
                      '"session": {"type": "realtime", "temperature": 0.5}}')
        await mock_openai.wait_for("session.update")
"""


@pytest.fixture
def outside_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    pytester.makepyfile(test_outside=OUTSIDE_TESTS)
    return pytester


def test_the_plugin_works_in_a_fresh_project(outside_project: pytest.Pytester) -> None:
    result = outside_project.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_an_invalid_client_event*"])
    result.stdout.fnmatch_lines(["*temperature*"])  # the mock's readable complaint


def test_markers_and_options_are_registered(outside_project: pytest.Pytester) -> None:
    result = outside_project.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*unit:*", "*integration:*", "*e2e:*"])
    result = outside_project.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--upstream=*", "*--proxy-url=*", "*--mock-port=*"])


def test_the_suite_runs_against_an_already_running_proxy(outside_project: pytest.Pytester) -> None:
    mock_port, proxy_port = free_port(), free_port()
    env = dict(
        os.environ,
        OPENAI_API_KEY=MOCK_API_KEY,
        OPENAI_REALTIME_URL=f"ws://127.0.0.1:{mock_port}/v1/realtime",
    )
    proxy = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--port", str(proxy_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", proxy_port)) == 0:
                    break
            time.sleep(0.05)
        result = outside_project.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--proxy-url",
            f"ws://127.0.0.1:{proxy_port}/openai",
            "--mock-port",
            str(mock_port),
            "-k",
            "scripted_reply or several_clients",
        )
        result.assert_outcomes(passed=2)
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
