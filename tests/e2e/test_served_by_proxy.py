"""`python -m proxy` with no key serves the test-app at / and the page talks to the mock."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.processes import clean_env, running


def test_a_new_user_opens_the_proxy_in_a_browser_and_gets_an_answer(new_context: Any) -> None:
    with running(
        ["-m", "proxy", "--port", "0", "--log-level", "WARNING"],
        clean_env(),
        r"test-app: http://",
    ) as (_, lines):
        app_url = re.search(r"test-app: (http://\S+)", lines[-1])
        assert app_url is not None, lines
        page = new_context().new_page()

        page.goto(app_url.group(1))

        # Redirected to the same page with this proxy's path as its endpoint.
        assert page.url.endswith("/?proxyEndpoint=%2Fopenai"), page.url
        page.get_by_test_id("text-input").fill("Hello proxy")
        with page.expect_websocket() as opened:
            page.get_by_test_id("send-button").click()
        assert opened.value.url == app_url.group(1).replace("http://", "ws://") + "openai"
        reply = page.get_by_test_id("conversation-history").locator('li[data-role="assistant"]')
        expect(reply).to_have_text("assistant:You said: Hello proxy")
        expect(page.get_by_test_id("connection-status")).to_have_text("connected")
        page.context.close()
