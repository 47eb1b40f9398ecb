"""The standalone mock scripted and inspected from JavaScript (Node's own test runner),
through its HTTP admin API, with our proxy in front of it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from harness.endpoint import ProxyEndpoint
from tests.processes import run_node_tests, standalone_mock

KEY = "sk-javascript-suite-0000"
SUITE = Path(__file__).parents[1] / "js" / "mock_admin.test.mjs"


def test_a_javascript_suite_scripts_the_mock_over_http(
    proxy_factory: Callable[..., ProxyEndpoint],
) -> None:
    with standalone_mock(KEY) as (realtime_url, admin_url):
        proxy = proxy_factory(upstream_url=realtime_url, api_key=KEY)
        report = run_node_tests(SUITE, MOCK_ADMIN_URL=admin_url, PROXY_URL=proxy.url)
    assert re.search(r"# pass 3\b", report) and re.search(r"# fail 0\b", report), report
