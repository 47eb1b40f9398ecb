"""The documentation runs: every how-to example is executed here, and no page points at
a file that is not in the repository."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

import harness
from harness.endpoint import ProxyEndpoint
from harness.pytest_plugin import MOCK_API_KEY
from tests.docs_examples import DOCS, ROOT, example_files, pages
from tests.processes import clean_env, free_port, run_node_tests, running, standalone_mock

HOW_TO = DOCS / "how-to"


def project(pytester: pytest.Pytester, *sources: dict[str, str]) -> pytest.Pytester:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    for files in sources:
        for name, code in files.items():
            (pytester.path / name).write_text(code)
    return pytester


def test_the_function_call_fault_and_readme_examples_pass(pytester: pytest.Pytester) -> None:
    readme = {k: v for k, v in example_files(ROOT / "README.md").items() if k == "test_weather.py"}
    project(
        pytester,
        example_files(HOW_TO / "script-a-function-call.md"),
        example_files(HOW_TO / "kill-the-upstream-mid-answer.md"),
        readme,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_the_replay_example_records_then_replays(pytester: pytest.Pytester) -> None:
    project(pytester, example_files(HOW_TO / "replay-a-cassette.md"))
    # The recorder first (named on the command line: CI never collects it), then the replay.
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-v", "record_weather.py", "test_weather_replay.py"
    )
    result.assert_outcomes(passed=2)
    result.stdout.re_match_lines(
        [r"record_weather.py::\S+ PASSED", r"test_weather_replay.py::\S+ PASSED"]
    )
    assert "sunny" in (pytester.path / "cassettes" / "weather.jsonl").read_text()


def test_the_own_proxy_example_runs_against_an_external_proxy(pytester: pytest.Pytester) -> None:
    project(pytester, example_files(HOW_TO / "test-your-own-proxy.md"))
    mock_port = free_port()
    env = clean_env(
        OPENAI_API_KEY=MOCK_API_KEY,
        OPENAI_REALTIME_URL=f"ws://127.0.0.1:{mock_port}/v1/realtime",
    )
    with running(["-m", "proxy", "--port", "0"], env, r"listening on ws://") as (_, lines):
        your_proxy = re.search(r"ws://\S+", lines[-1])
        assert your_proxy is not None, lines
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--mock-port",
            str(mock_port),
            "--proxy-url",
            your_proxy.group(0),
            "test_my_proxy.py",
        )
    result.assert_outcomes(passed=2)


def test_the_javascript_example_runs(
    tmp_path: Path, proxy_factory: Callable[..., ProxyEndpoint]
) -> None:
    ((name, code),) = example_files(HOW_TO / "drive-the-mock-from-javascript.md").items()
    (tmp_path / name).write_text(code)
    client = Path(harness.__file__).parent / "js" / "mock-realtime-admin.mjs"
    with standalone_mock(MOCK_API_KEY) as (realtime_url, admin_url):
        proxy = proxy_factory(upstream_url=realtime_url, api_key=MOCK_API_KEY)
        report = run_node_tests(
            tmp_path / name,
            MOCK_ADMIN_CLIENT=str(client),
            MOCK_ADMIN_URL=admin_url,
            PROXY_URL=proxy.url,
        )
    assert "# pass 1" in report, report


# ------------------------------------------------------------------ links

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_REPO_PATH = re.compile(r"`((?:harness|proxy|tests|docs|scripts|benchmarks)/[\w./-]*[\w/])`")


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_page_points_only_at_files_in_the_repository(page: Path) -> None:
    text = page.read_text()
    missing = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file)):
            missing.append(target)
    for path in _REPO_PATH.findall(text):
        if not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{page.relative_to(ROOT)} points at what is not there: {missing}"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a page."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors
