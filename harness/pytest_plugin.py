"""The harness as a pytest plugin (entry point `pytest11`), loaded by `pip install`.

Servers run on one background-thread event loop for the whole session (see
`harness.background`), so async tests, sync tests and Playwright can all use them in
one process. Per test, `mock_openai` is reset, configured by its marker and judged when
the test ends (failures inside the mock, rules that did not fire as often as they said,
a cassette left unfinished, and in strict mode client events nothing handled); `proxy`
is checked to have closed every session its test opened.

Fixtures: `mock_openai`, `proxy`, `proxy_factory`, `component_client`,
`connect_component`, `cassette_recorder`, `speech`, `upstream_mode`, plus the
session-scoped `harness_loop`, `mock_openai_server`, `proxy_server`; with
pytest-playwright installed, `voice_app` and its helpers (`harness.browser_fixtures`).
Markers: `unit`, `integration`, `e2e`,
`mock_openai(strict=, verify_rules=, voice=)`. Options: `--upstream`, `--proxy-url`,
`--mock-port`; ini: `mock_openai_strict`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio

from .background import BackgroundLoop
from .client import ComponentClient
from .endpoint import ProxyEndpoint
from .mock_openai import MockRealtime
from .recognition import RecognitionUnavailable
from .recorder import Recording, RecordingRelay
from .speech import SpeechUnavailable, speech_available, speech_pcm16

__all__ = ["MOCK_API_KEY", "OPENAI_REALTIME_URL", "ProxyEndpoint"]

OPENAI_REALTIME_URL: Final = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
MOCK_API_KEY: Final = "sk-harness-mock-key-0000"

_MOCK_OPTIONS: Final = frozenset({"strict", "verify_rules", "voice", "session_lifetime"})
_JUDGED = pytest.StashKey[int]()  # failures already counted when the test body ended
_IN_USE = pytest.StashKey[MockRealtime]()


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
    parser.addini(
        "mock_openai_strict",
        "fail every test whose client sent the mock an event no rule handled and the "
        "default behaviour refused (like @pytest.mark.mock_openai(strict=True))",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in (
        ("unit", "pure logic, no sockets"),
        ("integration", "real sockets: proxy + mock upstream"),
        ("e2e", "real browser through the proxy"),
        (
            "mock_openai(strict=False, verify_rules=True, voice='tone', session_lifetime=3600)",
            "configure the mock_openai fixture for this test: strict also fails on client "
            "events nothing handled; verify_rules=False stops checking rule counts; "
            "voice='speech' answers with espeak-ng speech (fails without espeak-ng)",
        ),
    ):
        config.addinivalue_line("markers", f"{name}: {doc}")
    if config.getoption("--upstream", "mock") == "openai" and not os.environ.get("OPENAI_API_KEY"):
        raise pytest.UsageError("--upstream=openai needs OPENAI_API_KEY in the environment")
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Judge the mock when the test body ends, so its verdict is the test's failure; and
    check the component clients the test made and left open (the oracle, as at close).

    A test that failed on its own gets the mock's findings as a report section instead
    (they often explain it).
    """
    __tracebackhide__ = True
    missing: str | None = None
    try:
        with ComponentClient.recording_made() as clients:
            outcome = yield
    except RecognitionUnavailable as unavailable:
        missing = str(unavailable)
    except BaseException:
        mock = item.stash.get(_IN_USE, None)
        if mock is not None and (problems := mock.problems(rules=_verifies_rules(item))):
            item.add_report_section("call", "mock_openai", "\n".join(problems))
        raise
    if missing is not None:
        pytest.fail(missing, pytrace=False)  # one line: how to install it
    left_open = _faults_of_clients_left_open(clients)
    if left_open is not None:
        pytest.fail(f"a ComponentClient the test left open: {left_open}", pytrace=False)
    mock = item.stash.get(_IN_USE, None)
    if mock is not None:
        item.stash[_JUDGED] = len(mock.failures)
        verdict = mock.verdict(rules=_verifies_rules(item))
        if verdict is not None:
            # The cause is in the message, not in the plugin's frames.
            pytest.fail(verdict, pytrace=False)
    return outcome


def _faults_of_clients_left_open(clients: list[ComponentClient]) -> str | None:
    """The oracle's report on the first client with faults not yet told (a client the
    test closed has told its own)."""
    for client in clients:
        try:
            client.report_faults()
        except AssertionError as fault:
            return str(fault)
    return None


def _verifies_rules(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("mock_openai")
    return bool(marker.kwargs.get("verify_rules", True)) if marker else True


# ---------------------------------------------------------------- session scope


@pytest.fixture(scope="session")
def upstream_mode(request: pytest.FixtureRequest) -> str:
    """ "mock" or "openai" (from --upstream)."""
    return str(request.config.getoption("--upstream"))


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

    # Every test of the run connects from 127.0.0.1, one after another: the per-address
    # connection rate (a guard against churn from one client) would refuse them.
    if upstream_mode == "openai":
        config = ProxyConfig(
            port=0,
            upstream_url=os.environ.get("OPENAI_REALTIME_URL", OPENAI_REALTIME_URL),
            api_key=os.environ["OPENAI_API_KEY"],
            connection_rate=0,
        )
    else:
        config = ProxyConfig(
            port=0, upstream_url=mock_openai_server.url, api_key=MOCK_API_KEY, connection_rate=0
        )
    server = ProxyServer(config)
    harness_loop.run(server.start())
    yield ProxyEndpoint(url=server.url, server=server, loop=harness_loop)
    harness_loop.run(server.stop())


# ---------------------------------------------------------------- per test


@pytest.fixture
def mock_openai(
    mock_openai_server: MockRealtime, upstream_mode: str, request: pytest.FixtureRequest
) -> Iterator[MockRealtime]:
    """The scriptable mock upstream, reset and configured (marker `mock_openai`) for
    this test. When the test ends, `check()` decides: failures inside the mock, rules
    that did not fire as often as they said, an unfinished cassette, and in strict mode
    client events nothing handled, each fail the test."""
    if upstream_mode != "mock":
        pytest.skip("scripts the mock upstream; this run talks to the real OpenAI API")
    options = _mock_options(request)
    mock_openai_server.reset()
    mock_openai_server.strict = bool(
        options.get("strict", request.config.getini("mock_openai_strict"))
    )
    if options.get("voice", "tone") == "speech" and not speech_available():
        pytest.fail(
            "this test asks for the speech voice, which needs espeak-ng: "
            "`apt-get install espeak-ng` (scripts/test installs it)"
        )
    mock_openai_server.voice = options.get("voice", "tone")
    if "session_lifetime" in options:
        mock_openai_server.session_lifetime = options["session_lifetime"]
    request.node.stash[_IN_USE] = mock_openai_server
    yield mock_openai_server
    try:
        judged = request.node.stash.get(_JUDGED, None)
        if judged is not None:  # the test body passed its verdict; only later failures count
            late = mock_openai_server.failures[judged:]
            assert not late, "the mock recorded failure(s) after the test body ended:\n" + (
                "\n".join(late)
            )
    finally:
        del request.node.stash[_IN_USE]
        mock_openai_server.reset()


def _mock_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("mock_openai")
    if marker is None:
        return {}
    if marker.args or set(marker.kwargs) - _MOCK_OPTIONS:
        raise pytest.UsageError(
            f"@pytest.mark.mock_openai takes keyword arguments {sorted(_MOCK_OPTIONS)}; "
            f"got {marker.args or ''} {marker.kwargs}"
        )
    return dict(marker.kwargs)


@pytest.fixture
def proxy(proxy_server: ProxyEndpoint) -> Iterator[ProxyEndpoint]:
    """The proxy under test. After the test, every session it opened must be gone."""
    yield proxy_server
    if proxy_server.server is not None:
        proxy_server.wait_idle_sync()


@pytest.fixture
def proxy_factory(
    harness_loop: BackgroundLoop, mock_openai_server: MockRealtime
) -> Iterator[Callable[..., ProxyEndpoint]]:
    """Start extra proxies with their own settings: `proxy_factory(upstream_url=..., ...)`.

    Keyword arguments are `proxy.server.ProxyConfig` fields; by default the proxy talks
    to the mock. Each is stopped, and checked for leftover sessions, after the test.
    """
    from proxy.server import ProxyConfig, ProxyServer

    started: list[tuple[ProxyEndpoint, ProxyServer]] = []

    def start(**overrides: object) -> ProxyEndpoint:
        settings: dict[str, object] = {
            "port": 0,
            "upstream_url": mock_openai_server.url,
            "api_key": MOCK_API_KEY,
        }
        settings.update(overrides)
        server = ProxyServer(ProxyConfig(**settings))  # type: ignore[arg-type]
        harness_loop.run(server.start())
        endpoint = ProxyEndpoint(url=server.url, server=server, loop=harness_loop)
        started.append((endpoint, server))
        return endpoint

    yield start
    leaks: list[str] = []
    for endpoint, server in started:
        try:
            endpoint.wait_idle_sync()
        except AssertionError as leak:
            leaks.append(str(leak))
        harness_loop.run(server.stop())
    assert not leaks, "; ".join(leaks)


@pytest.fixture
def cassette_recorder(
    harness_loop: BackgroundLoop,
    mock_openai_server: MockRealtime,
    upstream_mode: str,
    proxy_factory: Callable[..., ProxyEndpoint],
) -> Iterator[Callable[..., Recording]]:
    """``cassette_recorder(path, trim_audio=False) -> Recording``: a proxy whose upstream
    (the real API under ``--upstream=openai``, else the mock) is recorded into `path`.

    Talk to ``recording.url``, then ``await recording.finish()``; the cassette is closed
    after the test in any case. ``mock_openai.replay(path)`` serves it back."""
    recordings: list[Recording] = []

    def record(path: str | os.PathLike[str], *, trim_audio: bool = False) -> Recording:
        if upstream_mode == "openai":
            upstream = os.environ.get("OPENAI_REALTIME_URL", OPENAI_REALTIME_URL)
            api_key = os.environ["OPENAI_API_KEY"]
        else:
            upstream, api_key = mock_openai_server.url, MOCK_API_KEY
        relay = RecordingRelay(upstream, Path(path), trim_audio=trim_audio)
        harness_loop.run(relay.start())
        endpoint = proxy_factory(upstream_url=relay.url, api_key=api_key)
        recording = Recording(endpoint, relay, harness_loop, Path(path))
        recordings.append(recording)
        return recording

    yield record
    for recording in recordings:
        recording.finish_sync()


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
    faults = []
    for client in clients:  # close() checks every frame the proxy sent: all are closed
        try:
            await client.close()
        except AssertionError as fault:
            faults.append(fault)
    if faults:
        raise faults[0]


@pytest_asyncio.fixture
async def component_client(proxy: ProxyEndpoint) -> AsyncIterator[ComponentClient]:
    """One component connection to the proxy, opened on first use (a send or a wait, so
    `mock_openai.on_connect()` rules written in the test body apply to it), closed and
    checked after the test."""
    client = ComponentClient.lazy(proxy.url)
    yield client
    await client.close()  # and checks every frame the proxy sent: a valid Voice Agent message


@pytest.fixture
def speech() -> Callable[..., bytes]:
    """``speech(text, rate=16000) -> bytes``: `text` spoken by espeak-ng as PCM16 mono,
    e.g. for ``component_client.send_audio`` or ``voice_app.speak``.

    Fails (never skips) when espeak-ng is missing: ``scripts/test`` installs it.
    """
    if not speech_available():
        pytest.fail(
            "the speech fixture needs espeak-ng: `apt-get install espeak-ng` "
            "(scripts/test installs it)"
        )

    def say(text: str, rate: int = 16000) -> bytes:
        try:
            return speech_pcm16(text, rate=rate)
        except SpeechUnavailable as exc:
            pytest.fail(str(exc))

    return say
