"""Deepgram's own browser component, `<deepgram-agent>` (npm `@deepgram/browser-agent`),
installed from the npm registry and served on a page that points it at the proxy.

`installed_component()` runs `npm ci` once into a cache folder keyed by the committed
lockfile (`tests/e2e/deepgram_agent/package-lock.json`: the pinned version and its
integrity hashes), so a clean machine needs only Node and npm and the registry; later runs
reuse the folder. `deepgram_agent_page` (a fixture) serves `tests/e2e/deepgram_agent/`
and the package's `dist/` on a loopback port and opens the page in Chromium with the fake
microphone (harness/browser.py).

    def test_x(deepgram_agent_page, proxy):
        agent = deepgram_agent_page.open(proxy.url, idle_ms=3000)
        agent.start()
        agent.wait_for_message("SettingsApplied")
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from harness.background import BackgroundLoop
from harness.browser import FakeMicrophone

__all__ = ["PAGE_DIR", "DeepgramAgentPage", "deepgram_agent_page", "installed_component"]

PAGE_DIR = Path(__file__).resolve().parent / "e2e" / "deepgram_agent"
PACKAGE = "@deepgram/browser-agent"
_NPM_TIMEOUT = 300.0


def installed_component(cache_root: Path | None = None) -> Path:
    """The installed package's `dist/` folder; `npm ci` into the cache the first time."""
    lock = (PAGE_DIR / "package-lock.json").read_bytes()
    root = cache_root or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = root / "voice-agent-proxy-tests" / f"npm-{hashlib.sha256(lock).hexdigest()[:16]}"
    dist = target / "node_modules" / PACKAGE / "dist"
    if (dist / "index.mjs").is_file():
        return dist
    npm = shutil.which("npm")
    assert npm, "npm is needed to install Deepgram's browser component (scripts/test installs it)"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        building = Path(scratch) / "install"
        building.mkdir()
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(PAGE_DIR / name, building / name)
        result = subprocess.run(
            # The lockfile decides every version and hash; no package's scripts run.
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=building,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}{result.stderr}"
        try:
            building.rename(target)  # all or nothing: a half install is never reused
        except OSError:
            if not (dist / "index.mjs").is_file():  # not another run's finished install
                raise
    return dist


@dataclass
class DeepgramAgentPage:
    """The page holding `<deepgram-agent>`, and what its events said."""

    page: Page
    base_url: str

    def open(self, proxy_url: str, *, idle_ms: int = 10000, token: str | None = None) -> Self:
        query = {"url": proxy_url, "idle": str(idle_ms)} | ({"token": token} if token else {})
        self.page.goto(f"{self.base_url}?{urlencode(query)}")
        self.page.wait_for_function("() => customElements.get('deepgram-agent') !== undefined")
        return self

    def start(self) -> int:
        """Set the component's `config` (it connects, opens the microphone and sends the
        Settings); returns the microphone's sample rate that the Settings declare."""
        return int(self.page.evaluate("() => window.startAgent()"))

    def log(self) -> list[dict[str, Any]]:
        """Every event the component dispatched, in order (see page.js)."""
        return list(self.page.evaluate("() => window.agentLog"))

    def messages(self) -> list[dict[str, Any]]:
        """The JSON messages the component received from the proxy, in order."""
        return [e["message"] for e in self.log() if e["event"] == "structured message"]

    def wait_for_message(
        self, type: str, count: int = 1, *, timeout: float = 10.0, **fields: Any
    ) -> dict[str, Any]:
        """Wait until the component has received `count` messages of `type` (with these
        field values); returns the last of them."""
        try:
            self.page.wait_for_function(
                """([type, fields, count]) => window.agentLog.filter((e) =>
                    e.event === "structured message" && e.message.type === type &&
                    Object.entries(fields).every(([k, v]) => e.message[k] === v)
                ).length >= count""",
                arg=[type, fields, count],
                timeout=timeout * 1000,
            )
        except PlaywrightTimeoutError:
            raise AssertionError(
                f"expected {count} {type} {fields or ''} within {timeout:g} s; {self.describe()}"
            ) from None
        found = [
            m
            for m in self.messages()
            if m.get("type") == type and all(m.get(k) == v for k, v in fields.items())
        ]
        return found[count - 1]

    def wait_for_event(self, event: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the component to dispatch `event` ("socket close", ...); returns it."""
        try:
            self.page.wait_for_function(
                "event => window.agentLog.some((e) => e.event === event)",
                arg=event,
                timeout=timeout * 1000,
            )
        except PlaywrightTimeoutError:
            raise AssertionError(
                f"expected the component to dispatch {event!r} within {timeout:g} s; "
                f"{self.describe()}"
            ) from None
        return next(e for e in self.log() if e["event"] == event)

    def describe(self) -> str:
        """What the component did, for a failure message."""
        shown = []
        for entry in self.log():
            message = entry.get("message")
            if entry["event"] == "structured message" and isinstance(message, dict):
                extra = (
                    f" {message.get('role')}: {message.get('content')!r}"
                    if "role" in message
                    else ""
                )
                shown.append(f"{message.get('type')}{extra}")
            elif entry["event"] != "client message":
                shown.append(
                    f"<{entry['event']} {entry.get('code', '')} {entry.get('reason', '')}>"
                )
        return "the component saw: " + ", ".join(shown)

    def speaker_samples(self) -> list[tuple[float, int]]:
        """[(page time in ms, agent audio buffers scheduled)], every 20 ms."""
        return [(float(t), int(n)) for t, n in self.page.evaluate("() => window.speakerSamples")]


def _files(dist: Path) -> dict[str, Path]:
    """What the page server serves: the page and the component's own files, nothing else."""
    served = {"/": PAGE_DIR / "index.html", "/page.js": PAGE_DIR / "page.js"}
    served |= {f"/component/{path.name}": path for path in dist.glob("*.mjs")}
    return served


def _respond(files: dict[str, Path], connection: ServerConnection, request: Request) -> Response:
    path = files.get(urlsplit(request.path).path)
    if path is None:
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    kind = "text/javascript" if path.suffix in (".js", ".mjs") else mimetypes.guess_type(path)[0]
    body = path.read_bytes()
    headers = Headers(
        [
            ("Content-Type", f"{kind or 'application/octet-stream'}; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(HTTPStatus.OK, "OK", headers, body)


async def _never(connection: ServerConnection) -> None:  # every request is answered as HTTP
    await connection.close(1008, "this server only serves the page")


@pytest.fixture(scope="session")
def deepgram_agent_server(harness_loop: BackgroundLoop) -> Iterator[str]:
    """http://127.0.0.1:PORT/ serving the page and the installed component."""
    files = _files(installed_component())

    async def start() -> Server:
        return await serve(
            _never,
            "127.0.0.1",
            0,
            process_request=lambda connection, request: _respond(files, connection, request),
        )

    server = harness_loop.run(start())
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    server.close()
    harness_loop.run(server.wait_closed())


@pytest.fixture
def deepgram_agent_page(
    new_context: Any,
    browser_name: str,
    deepgram_agent_server: str,
    mock_openai: Any,
    proxy_factory: Any,
    fake_microphone: FakeMicrophone,
) -> Iterator[DeepgramAgentPage]:
    """A fresh Chromium context (microphone allowed) for the component's page, not opened.

    The mock and the proxies a test starts are set up first, so they outlive the page:
    closing it ends its session before the proxy checks for leftovers."""
    if browser_name != "chromium":
        pytest.fail(f"the fake microphone needs Chromium, not {browser_name}")
    context: BrowserContext = new_context(permissions=["microphone"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield DeepgramAgentPage(page, deepgram_agent_server)
    context.close()
    fake_microphone.load(b"")
    assert not errors, f"uncaught errors in the component's page: {errors}"
