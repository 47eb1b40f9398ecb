"""Browser fixtures: the test-app served on a real socket, Chromium with a fake microphone,
and a `voice_app` page object pointed at the `proxy` fixture.

Registered by `harness.pytest_plugin` once every installed plugin is loaded, so its
`browser_type_launch_args` extends pytest-playwright's (--headed, --slowmo,
--browser-channel keep working). Failure screenshots, videos and traces are
pytest-playwright's: `--screenshot=only-on-failure`, `--video`, `--tracing`, `--output`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Playwright
from websockets.asyncio.server import Server, ServerConnection, serve

from proxy.test_app import http_response

from .background import BackgroundLoop
from .browser import FakeMicrophone, VoiceAgentApp, chromium_launch_args


@pytest.fixture(scope="session")
def voice_app_server(harness_loop: BackgroundLoop) -> Iterator[str]:
    """Base URL (http://127.0.0.1:PORT/) of a server for the test-app's files."""

    async def start() -> Server:
        return await serve(_refuse, "127.0.0.1", 0, process_request=http_response)

    server = harness_loop.run(start())
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/"
    server.close()
    harness_loop.run(server.wait_closed())


async def _refuse(connection: ServerConnection) -> None:  # never reached: all requests are HTTP
    await connection.close(1008, "this server only serves the test-app's files")


@pytest.fixture(scope="session")
def fake_microphone(tmp_path_factory: pytest.TempPathFactory) -> FakeMicrophone:
    """The WAV file Chromium plays as its microphone (silence until a test loads audio)."""
    return FakeMicrophone(tmp_path_factory.mktemp("microphone") / "microphone.wav")


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any],
    fake_microphone: FakeMicrophone,
    playwright: Playwright,
) -> dict[str, Any]:
    """pytest-playwright's launch options plus the fake microphone and quiet flags."""
    return chromium_launch_args(
        browser_type_launch_args, fake_microphone, playwright.chromium.executable_path
    )


@pytest.fixture
def voice_app(
    new_context: Any,
    browser_name: str,
    voice_app_server: str,
    proxy: Any,
    proxy_factory: Any,
    fake_microphone: FakeMicrophone,
    upstream_mode: str,
    request: pytest.FixtureRequest,
) -> Iterator[VoiceAgentApp]:
    """The test-app in a fresh browser context, opened on the `proxy` fixture, not connected.

    The test fails if the page throws an uncaught error. Everything the page talks to
    outlives it: proxies a test starts (`proxy_factory`) and, with the mock upstream,
    `mock_openai` (set up here first, so it is torn down after the page). The failure
    screenshot, taken as the page closes, therefore shows the page as the test left it,
    not after the mock's reset closed its connections.
    """
    if browser_name != "chromium":
        pytest.fail(f"the test-app's fake microphone needs Chromium, not {browser_name}")
    if upstream_mode == "mock":
        request.getfixturevalue("mock_openai")
    context: BrowserContext = new_context(permissions=["microphone"])
    app = VoiceAgentApp(context.new_page(), voice_app_server, proxy.url, fake_microphone)
    app.open()
    yield app
    context.close()  # closes the app's WebSocket before `proxy` checks for leftover sessions
    fake_microphone.load(b"")
    assert not app.page_errors, f"uncaught errors in the test-app: {app.page_errors}"
    assert not app.protocol_faults, (
        f"the proxy sent the page frames that are not valid Voice Agent messages: "
        f"{app.protocol_faults}"
    )
