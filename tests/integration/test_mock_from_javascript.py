"""The standalone mock scripted and inspected from JavaScript (Node's own test runner),
through its HTTP admin API, with our proxy in front of it."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from harness.endpoint import ProxyEndpoint
from tests.processes import clean_env, running

KEY = "sk-javascript-suite-0000"
SUITE = Path(__file__).parents[1] / "js" / "mock_admin.test.mjs"


def test_a_javascript_suite_scripts_the_mock_over_http(
    proxy_factory: Callable[..., ProxyEndpoint],
) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for this test (Node 20 is on the machine)"
    command = ["-m", "harness.mock_openai", "--port", "0", "--api-key", KEY]
    with running(command, clean_env(), r"admin API: ") as (_, lines):
        realtime = re.search(r"ws://\S+", lines[0])
        admin = re.search(r"http://\S+", lines[1])
        assert realtime and admin, lines
        proxy = proxy_factory(upstream_url=realtime.group(0), api_key=KEY)
        result = subprocess.run(
            [node, "--experimental-websocket", "--test", "--test-reporter=tap", str(SUITE)],
            env=clean_env(MOCK_ADMIN_URL=admin.group(0), PROXY_URL=proxy.url),
            capture_output=True,
            text=True,
            timeout=60,
        )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert re.search(r"# pass 3\b", report) and re.search(r"# fail 0\b", report), report
