"""The standalone mock scripted and inspected from JavaScript (Node's own test runner),
through its HTTP admin API, with our proxy in front of it: this repository's JavaScript
suite and the example of docs/how-to/drive-the-mock-from-javascript.md, in one run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import harness
from harness.endpoint import ProxyEndpoint
from tests.docs_examples import DOCS, example_files
from tests.processes import run_node_tests, standalone_mock

KEY = "sk-javascript-suite-0000"
SUITE = Path(__file__).parents[1] / "js" / "mock_admin.test.mjs"
HOW_TO = DOCS / "how-to" / "drive-the-mock-from-javascript.md"


def test_javascript_suites_script_the_mock_over_http(
    proxy_factory: Callable[..., ProxyEndpoint], tmp_path: Path
) -> None:
    ((name, code),) = example_files(HOW_TO).items()
    example = tmp_path / name
    example.write_text(code)
    admin_client = Path(harness.__file__).parent / "js" / "mock-realtime-admin.mjs"
    with standalone_mock(KEY) as (realtime_url, admin_url):
        proxy = proxy_factory(upstream_url=realtime_url, api_key=KEY)
        report = run_node_tests(
            SUITE,
            example,
            MOCK_ADMIN_CLIENT=str(admin_client),
            MOCK_ADMIN_URL=admin_url,
            PROXY_URL=proxy.url,
        )
    assert re.search(r"# pass 5\b", report) and re.search(r"# fail 0\b", report), report
