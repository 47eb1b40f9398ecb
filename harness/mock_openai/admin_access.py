"""Who may use the mock's admin API: the developer's own tools, never a web page they visit.

The admin API reads the journal (system prompts, everything the proxy sent), resets the
mock and loads cassettes from disk. A page on another site must not reach it:

- **Host** must name this machine's loopback (`127.0.0.1`, `[::1]`, `localhost`) or the
  exact address the mock listens on. A DNS-rebinding page (`evil.example` resolving to
  127.0.0.1) is same-origin to the browser, sends no Origin on GET, but its Host is its
  own name: refused.
- **Origin**, when sent (browsers send it on cross-origin requests and on every POST),
  must be a loopback page, `http(s)://localhost|127.0.0.1|[::1]:<any port>`: a JavaScript
  test page served by the developer's own tools (Playwright, vitest's browser mode, a
  dev server). Tools that are not browsers (curl, Python, Node's fetch) send none.
  `Origin: null` (a file:// page, a sandboxed frame) is refused. An allowed origin is
  echoed back in `Access-Control-Allow-Origin`, never `*`.
- **Replay** reads a file on this machine: refused to any request that carries an
  Origin, so no page, not even a loopback one, can probe the disk through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import urlsplit

from proxy.access import is_loopback

__all__ = ["AdminAccess"]

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


class AdminAccess:
    """The admin API's checks for a mock listening on `listen_host`."""

    def __init__(self, listen_host: str) -> None:
        self._listen_host = "" if listen_host in _WILDCARDS else listen_host.strip("[]")

    def refusal(
        self, hosts: Sequence[str], origins: Sequence[str], route: str
    ) -> tuple[int, str] | None:
        """(status, reason) when this request may not use the admin API; None: it may."""
        if len(hosts) != 1 or not self._host_allowed(hosts[0]):
            return HTTPStatus.FORBIDDEN, "the admin API answers only requests to a loopback Host"
        if len(origins) > 1 or (origins and not loopback_origin(origins[0])):
            return HTTPStatus.FORBIDDEN, "the admin API answers only loopback pages"
        if origins and route == "replay":
            return HTTPStatus.FORBIDDEN, "replay reads a local file: not for web pages"
        return None

    def _host_allowed(self, host: str) -> bool:
        name = _host_name(host)
        return name is not None and (is_loopback(name) or name == self._listen_host)


def loopback_origin(origin: str) -> bool:
    """`http(s)://` on a loopback name or address, any port, nothing else."""
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.path or parts.query or parts.username:
        return False
    return parts.hostname is not None and is_loopback(parts.hostname)


def _host_name(host: str) -> str | None:
    """The name in a Host header without its port ("[::1]:80" -> "::1"); None if malformed."""
    try:
        parts = urlsplit("//" + host.strip())
        parts.port  # noqa: B018
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None or parts.path:
        return None
    return parts.hostname
