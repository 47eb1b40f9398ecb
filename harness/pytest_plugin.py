"""The harness as a pytest plugin (entry point `pytest11`), loaded by `pip install`.

Servers run on one background-thread event loop for the whole session (see
`harness.background`), so async tests, sync tests and Playwright can all use them in
one process. Per test, `mock_openai` is reset and checked, and `proxy` is verified to
have closed every session its test opened.

Fixtures: `mock_openai`, `proxy`, `proxy_factory`, `component_client`,
`connect_component`, `upstream_mode`, plus the session-scoped `harness_loop`, `mock_openai_server`,
`proxy_server`; with pytest-playwright installed, `voice_app` and its helpers
(`harness.browser_fixtures`). Markers: `unit`, `integration`, `e2e`. Options: `--upstream`,
`--proxy-url`, `--mock-port`.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from .background import BackgroundLoop
from .client import ComponentClient
from .mock_openai import MockRealtime

__all__ = ["ProxyEndpoint"]

OPENAI_REALTIME_URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
MOCK_API_KEY = "sk-harness-mock-key-0000"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("voice-agent-harness", "Voice agent proxy harness")
    group.addoption(
        "--upstream",
        choices=("mock", "openai"),
        default="mock",
        help="what the proxy talks to: the harness mock (default) or the real OpenAI "
        "Realtime API (needs OPENAI_API_KEY; tests that need the mock skip)",
    )
    group.addoption(
        "--proxy-url",
        default=None,
        help="test an already-running proxy at this ws:// URL instead of starting ours",
    )
    group.addoption(
        "--mock-port",
        type=int,
        default=0,
        help="port for the mock upstream (point an external proxy at it); 0 = any free port",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in (
        ("unit", "pure logic, no sockets"),
        ("integration", "real sockets: proxy + mock upstream"),
        ("e2e", "real browser through the proxy"),
    ):
        config.addinivalue_line("markers", f"{name}: {doc}")
    if importlib.util.find_spec("pytest_playwright") is not None:
        # Registered now, after every entry-point plugin, so that our
        # `browser_type_launch_args` extends pytest-playwright's rather than racing it.
        from . import browser_fixtures

        config.pluginmanager.register(browser_fixtures, "voice_agent_harness_browser")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that start sync Playwright after all others.

    Sync Playwright leaves its event loop set as the main thread's running loop until
    the session ends, so any pytest-asyncio test after it would fail with "Runner.run()
    cannot be called from a running event loop" (microsoft/playwright-pytest#167).
    """
    items.sort(key=lambda item: "playwright" in getattr(item, "fixturenames", ()))


@dataclass(frozen=True)
class ProxyEndpoint:
    """Where the proxy under test listens; `server` is ours, or None for --proxy-url."""

    url: str
    server: object | None = None


# ---------------------------------------------------------------- session scope


@pytest.fixture(scope="session")
def upstream_mode(request: pytest.FixtureRequest) -> str:
    """ "mock" or "openai" (from --upstream)."""
    mode = str(request.config.getoption("--upstream"))
    if mode == "openai" and not os.environ.get("OPENAI_API_KEY"):
        raise pytest.UsageError("--upstream=openai needs OPENAI_API_KEY in the environment")
    return mode


@pytest.fixture(scope="session")
def harness_loop() -> Iterator[BackgroundLoop]:
    """The background event loop every harness server runs on."""
    loop = BackgroundLoop()
    yield loop
    loop.stop()


@pytest.fixture(scope="session")
def mock_openai_server(
    harness_loop: BackgroundLoop, request: pytest.FixtureRequest
) -> Iterator[MockRealtime]:
    """The mock OpenAI Realtime upstream, started once per session."""
    mock = MockRealtime(api_key=MOCK_API_KEY)
    harness_loop.run(mock.start(host="127.0.0.1", port=request.config.getoption("--mock-port")))
    yield mock
    harness_loop.run(mock.stop())


@pytest.fixture(scope="session")
def proxy_server(
    harness_loop: BackgroundLoop,
    mock_openai_server: MockRealtime,
    upstream_mode: str,
    request: pytest.FixtureRequest,
) -> Iterator[ProxyEndpoint]:
    """Our proxy, started once per session (or the --proxy-url endpoint)."""
    external = request.config.getoption("--proxy-url")
    if external:
        yield ProxyEndpoint(url=str(external))
        return
    from proxy.server import ProxyConfig, ProxyServer

    if upstream_mode == "openai":
        config = ProxyConfig(
            port=0,
            upstream_url=os.environ.get("OPENAI_REALTIME_URL", OPENAI_REALTIME_URL),
            api_key=os.environ["OPENAI_API_KEY"],
        )
    else:
        config = ProxyConfig(port=0, upstream_url=mock_openai_server.url, api_key=MOCK_API_KEY)
    server = ProxyServer(config)
    harness_loop.run(server.start())
    yield ProxyEndpoint(url=server.url, server=server)
    harness_loop.run(server.stop())


# ---------------------------------------------------------------- per test


@pytest.fixture
def mock_openai(mock_openai_server: MockRealtime, upstream_mode: str) -> Iterator[MockRealtime]:
    """The scriptable mock upstream, reset for this test; its failures fail the test."""
    if upstream_mode != "mock":
        pytest.skip("scripts the mock upstream; this run talks to the real OpenAI API")
    mock_openai_server.reset()
    yield mock_openai_server
    try:
        mock_openai_server.check()
    finally:
        mock_openai_server.reset()


@pytest.fixture
def proxy(proxy_server: ProxyEndpoint) -> Iterator[ProxyEndpoint]:
    """The proxy under test. After the test, every session it opened must be gone."""
    yield proxy_server
    server = proxy_server.server
    if server is None:
        return
    _wait_for_sessions_to_close(server)
    leaked = getattr(server, "active_sessions", 0)
    assert not leaked, f"{leaked} proxy session(s) still open after the test"


@pytest.fixture
def proxy_factory(
    harness_loop: BackgroundLoop, mock_openai_server: MockRealtime
) -> Iterator[Callable[..., ProxyEndpoint]]:
    """Start extra proxies with their own settings: `proxy_factory(upstream_url=..., ...)`.

    Keyword arguments are `proxy.server.ProxyConfig` fields; by default the proxy talks
    to the mock. Each is stopped, and checked for leftover sessions, after the test.
    """
    from proxy.server import ProxyConfig, ProxyServer

    servers: list[ProxyServer] = []

    def start(**overrides: object) -> ProxyEndpoint:
        settings: dict[str, object] = {
            "port": 0,
            "upstream_url": mock_openai_server.url,
            "api_key": MOCK_API_KEY,
        }
        settings.update(overrides)
        server = ProxyServer(ProxyConfig(**settings))  # type: ignore[arg-type]
        harness_loop.run(server.start())
        servers.append(server)
        return ProxyEndpoint(url=server.url, server=server)

    yield start
    leaked = 0
    for server in servers:
        _wait_for_sessions_to_close(server)
        leaked += server.active_sessions
        harness_loop.run(server.stop())
    assert not leaked, f"{leaked} proxy session(s) still open after the test"


def _wait_for_sessions_to_close(server: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while getattr(server, "active_sessions", 0) and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest_asyncio.fixture
async def connect_component(
    proxy: ProxyEndpoint,
) -> AsyncIterator[Callable[..., Awaitable[ComponentClient]]]:
    """A factory: `await connect_component()` opens another client to the proxy."""
    clients: list[ComponentClient] = []

    async def open_client(url: str | None = None, token: str | None = None) -> ComponentClient:
        client = await ComponentClient.connect(url or proxy.url, token=token)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


@pytest_asyncio.fixture
async def component_client(
    connect_component: Callable[..., Awaitable[ComponentClient]],
) -> ComponentClient:
    """One component connection to the proxy, closed after the test."""
    return await connect_component()
