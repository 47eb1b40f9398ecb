"""Who may open a session (PROTOCOL.md section 11): token, origin, client address.

Pure functions of the handshake request; the server turns their answers into HTTP
refusals before the upgrade.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers

__all__ = [
    "TOKEN_SUBPROTOCOLS",
    "WILDCARD_HOSTS",
    "OriginPolicy",
    "client_address",
    "is_loopback",
    "offered_token",
    "token_matches",
    "trusted_host",
    "url_host",
]

#: Deepgram's browser convention: `Sec-WebSocket-Protocol: token, <key>` (or bearer).
TOKEN_SUBPROTOCOLS = ("token", "bearer")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def offered_token(path: str, headers: Headers) -> list[str]:
    """Every token the client offers: `?token=`, `Authorization: Token|Bearer`, and the
    value after `token`/`bearer` in `Sec-WebSocket-Protocol`."""
    offered = list(parse_qs(urlsplit(path).query).get("token", []))
    for value in headers.get_all("Authorization"):
        scheme, _, credential = value.strip().partition(" ")
        if scheme.lower() in ("token", "bearer") and credential.strip():
            offered.append(credential.strip())
    protocols = [
        entry.strip()
        for value in headers.get_all("Sec-WebSocket-Protocol")
        for entry in value.split(",")
    ]
    for index, name in enumerate(protocols[:-1]):
        if name.lower() in TOKEN_SUBPROTOCOLS:
            offered.append(protocols[index + 1])
    return offered


def token_matches(offered: Iterable[str], expected: Sequence[str]) -> bool:
    """Constant-time comparison of every offered token with every accepted one."""
    matched = False
    for candidate in offered:
        for token in expected:
            # Evaluated for every pair, so timing does not tell which one matched.
            matched |= hmac.compare_digest(candidate.encode(), token.encode())
    return matched


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class OriginPolicy:
    """Which browser origins may connect. Clients that send no Origin (SDKs, servers)
    are not browsers and are not checked."""

    allowed: frozenset[str]
    loopback_default: bool  # any port on localhost / 127.0.0.1 / [::1]

    @classmethod
    def for_listener(cls, host: str, configured: Iterable[str]) -> OriginPolicy:
        allowed = frozenset(origin.strip().rstrip("/").lower() for origin in configured if origin)
        return cls(allowed=allowed, loopback_default=is_loopback(host) and not allowed)

    def allows(self, origin: str | None, *, same_origin_host: str | None = None) -> bool:
        """`same_origin_host`: the request's Host when pages served by this proxy may
        connect back to it (the test-app). Only a Host that names this listener counts
        (see `trusted_host`): a rebound DNS name must not make a foreign page "same
        origin"."""
        if origin is None:
            return True
        origin = origin.strip().rstrip("/").lower()
        if "*" in self.allowed or origin in self.allowed:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if same_origin_host is not None and parts.netloc == same_origin_host.lower():
            return True
        return self.loopback_default and is_loopback(parts.hostname)


#: Listening on these means every address of the machine.
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def url_host(host: str) -> str:
    """`host` as it goes in a URL a client on this machine can open: the wildcard is
    127.0.0.1, an IPv6 address is bracketed."""
    if host in WILDCARD_HOSTS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def trusted_host(host_header: str | None, listener: str) -> str | None:
    """The request's Host if it names this proxy for certain (a loopback name, or the
    address it listens on), else None. Protects the same-origin rule from DNS
    rebinding, where a foreign page reaches 127.0.0.1 under its own name."""
    if not host_header:
        return None
    hostname = urlsplit(f"//{host_header}").hostname or ""
    if is_loopback(hostname) or (listener not in WILDCARD_HOSTS and hostname == listener):
        return host_header
    return None


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's IP: the socket peer, or, when the peer is a trusted proxy, the
    nearest untrusted address in `X-Forwarded-For` (read right to left)."""
    if not trusted or forwarded_for is None or not _in(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
