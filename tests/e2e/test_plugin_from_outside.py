"""The browser fixtures as another repo gets them: sync browser tests and async tests in
one file, in one process, a screenshot of the app when a browser test fails, the
README's browser example and the test-app reference's example of words heard."""

from __future__ import annotations

import pytest

from tests.docs_examples import PROJECT_INI, ROOT, example_files

OUTSIDE_TESTS = """
import asyncio


def test_browser_first_in_the_file(voice_app, mock_openai):
    voice_app.connect()
    assert voice_app.ask("hi") == "You said: hi"


async def test_async_after_it_in_the_file(component_client):
    await component_client.start()
    await asyncio.sleep(0)


def test_a_failing_browser_test(voice_app, mock_openai):
    voice_app.connect()
    voice_app.page.screenshot(path="as-the-test-left-it.png")
    assert voice_app.history() == [("user", "something that was never said")]
"""


def test_browser_and_async_tests_share_one_run_and_failures_leave_a_screenshot(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(PROJECT_INI)
    pytester.makepyfile(test_outside=OUTSIDE_TESTS)
    readme = example_files(ROOT / "README.md")  # the README's browser example runs too
    (pytester.path / "test_spoken_question.py").write_text(readme["test_spoken_question.py"])
    heard = example_files(ROOT / "docs" / "reference" / "test-app.md")
    (pytester.path / "test_heard_in_the_browser.py").write_text(
        heard["test_heard_in_the_browser.py"]
    )

    result = pytester.runpytest_subprocess(
        "-v", "--screenshot=only-on-failure", "--output=artifacts", timeout=120
    )

    result.assert_outcomes(passed=4, failed=1)
    # The async test ran before the browser started (see pytest_collection_modifyitems).
    result.stdout.re_match_lines(
        [r".*test_async_after_it_in_the_file PASSED", r".*test_browser_first_in_the_file.* PASSED"]
    )
    screenshots = list((pytester.path / "artifacts").rglob("*.png"))
    assert [shot.parent.name for shot in screenshots] == [
        "test-outside-py-test-a-failing-browser-test-chromium"
    ]
    assert screenshots[0].stat().st_size > 10_000  # a real picture of the page
    # Taken before the mock's reset closed the page's connection (which would show
    # "closed" and a log line): the page exactly as the failing test left it.
    assert screenshots[0].read_bytes() == (pytester.path / "as-the-test-left-it.png").read_bytes()
