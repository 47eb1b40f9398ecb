"""`ProxyEndpoint`: the proxy under test, as the fixtures hand it to a test."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .background import BackgroundLoop

__all__ = ["ProxyEndpoint"]


@dataclass(frozen=True)
class ProxyEndpoint:
    """Where the proxy under test listens.

    `server` is our `proxy.server.ProxyServer` running on `loop`, or None for an
    external proxy (``--proxy-url``), whose sessions cannot be watched.
    """

    url: str
    server: Any | None = None
    loop: BackgroundLoop | None = None

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait, from any event loop, until the proxy has no session open.

        Raises AssertionError naming how many are left after `timeout` seconds."""
        server, loop = self._ours()
        future = loop.submit(server.wait_idle(timeout))
        try:
            await asyncio.wrap_future(future)
        except TimeoutError:
            raise AssertionError(self._leak_message(timeout)) from None

    def wait_idle_sync(self, timeout: float = 5.0) -> None:
        """Blocking `wait_idle`, for sync tests and fixtures."""
        server, loop = self._ours()
        try:
            loop.run(server.wait_idle(timeout), timeout=timeout + 5)
        except TimeoutError:
            raise AssertionError(self._leak_message(timeout)) from None

    def _ours(self) -> tuple[Any, BackgroundLoop]:
        if self.server is None or self.loop is None:
            raise RuntimeError(
                "the proxy under test is external (--proxy-url): its sessions cannot be watched"
            )
        return self.server, self.loop

    def _leak_message(self, timeout: float) -> str:
        left = getattr(self.server, "active_sessions", "some")
        return f"{left} proxy session(s) still open {timeout:g}s after the test"
