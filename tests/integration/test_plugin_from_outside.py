"""The plugin as another repo gets it: installed, auto-loaded, nothing else imported.

The project below is a user's suite; its tests pass or fail on purpose, and what the
user sees for each is checked. The same fixtures against an external proxy
(`--proxy-url`) are run by the how-to that documents it (test_docs.py).
"""

from __future__ import annotations

import pytest

from tests.docs_examples import PROJECT_INI

OUTSIDE_TESTS = """
import pytest
from websockets.asyncio.client import connect

from harness.pytest_plugin import MOCK_API_KEY

HEADERS = {"Authorization": f"Bearer {MOCK_API_KEY}"}


async def test_scripted_reply(mock_openai, component_client):
    mock_openai.on_user_text("weather").reply_with_audio("Sunny.").once()
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
    mock_openai.on_user_text("x").reply_with_text("y").optional()
    assert proxy.url.startswith("ws://")
    assert mock_openai.received() == []


async def test_an_invalid_client_event_fails_the_test(mock_openai):
    async with connect(mock_openai.url, additional_headers=HEADERS) as ws:
        await ws.send('{"type": "session.update", '
                      '"session": {"type": "realtime", "temperature": 0.5}}')
        await mock_openai.wait_for("session.update")


def test_an_unused_once_rule_fails_the_test(mock_openai):
    mock_openai.on_user_text("never said").reply_with_text("unheard").once()


async def test_a_rule_that_fired_too_few_times_fails(mock_openai, component_client):
    mock_openai.on_user_text("again").reply_with_text("Again.").times(2)
    await component_client.start()
    await component_client.inject("again")
    await component_client.wait_for_reply()


@pytest.mark.mock_openai(verify_rules=False)
def test_rule_counts_can_be_switched_off(mock_openai):
    mock_openai.on_user_text("never said").reply_with_text("unheard").once()


async def _cancel_nothing(mock_openai):
    async with connect(mock_openai.url, additional_headers=HEADERS) as ws:
        await ws.send('{"type": "response.cancel"}')
        await mock_openai.wait_for("response.cancel")
        while '"error"' not in await ws.recv():
            pass


async def test_a_refused_event_passes_by_default(mock_openai):
    await _cancel_nothing(mock_openai)


@pytest.mark.mock_openai(strict=True)
async def test_a_refused_event_fails_in_strict_mode(mock_openai):
    await _cancel_nothing(mock_openai)


@pytest.mark.mock_openai(strict=True)
async def test_a_scripted_error_is_handled_even_in_strict_mode(mock_openai):
    mock_openai.on_client_event("response.cancel").send_error("nope", "scripted")
    await _cancel_nothing(mock_openai)
"""


@pytest.fixture
def outside_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(PROJECT_INI)
    pytester.makepyfile(test_outside=OUTSIDE_TESTS)
    return pytester


def test_the_plugin_works_in_a_fresh_project_and_is_strict(
    outside_project: pytest.Pytester,
) -> None:
    result = outside_project.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=6, failed=4)
    result.stdout.re_match_lines_random(
        [
            r".*::test_scripted_reply PASSED",
            r".*::test_several_clients PASSED",
            r".*::test_sync_tests_can_script_and_wait PASSED",
            r".*::test_an_invalid_client_event_fails_the_test FAILED",
            r".*::test_an_unused_once_rule_fails_the_test FAILED",
            r".*::test_a_rule_that_fired_too_few_times_fails FAILED",
            r".*::test_rule_counts_can_be_switched_off PASSED",
            r".*::test_a_refused_event_passes_by_default PASSED",
            r".*::test_a_refused_event_fails_in_strict_mode FAILED",
            r".*::test_a_scripted_error_is_handled_even_in_strict_mode PASSED",
        ]
    )
    # Each failure names its cause, and for a rule, where it was written.
    result.stdout.fnmatch_lines(
        [
            "*session.temperature: Unknown parameter*",
            "*rule on_user_text('never said').reply_with_text('unheard').once() "
            "(at test_outside.py:*) was expected to fire exactly once, but fired never*",
            "*rule on_user_text('again').reply_with_text('Again.').times(2) "
            "(at test_outside.py:*) was expected to fire exactly 2 times, but fired once*",
            "*no rule handled client event 'response.cancel' and the default refused it: "
            "[[]response_cancel_not_active[]]*",
        ]
    )


def test_upstream_openai_without_a_key_is_one_usage_error(
    outside_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = outside_project.runpytest_inprocess("--upstream=openai")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.str().count("--upstream=openai needs OPENAI_API_KEY") == 1
    assert "passed" not in result.stdout.str() and "error" not in result.stdout.str().lower()


def test_markers_and_options_are_registered(outside_project: pytest.Pytester) -> None:
    result = outside_project.runpytest_inprocess("--markers")
    result.stdout.fnmatch_lines(["*unit:*", "*integration:*", "*e2e:*", "*mock_openai(strict*"])
    result = outside_project.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines(
        ["*--upstream=*", "*--proxy-url=*", "*--mock-port=*", "*mock_openai_strict*"]
    )
