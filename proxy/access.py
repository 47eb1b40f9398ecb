"""Who may open a session (docs/security.md, "Who may connect"): token, origin, client address.

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

from .limits import IPAddress

__all__ = [
    "TOKEN_SUBPROTOCOLS",
    "WILDCARD_HOSTS",
    "NotAnAddress",
    "OriginPolicy",
    "client_address",
    "is_loopback",
    "normalised_ip",
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


class NotAnAddress(ValueError):
    """The `X-Forwarded-For` hop that names the client is not an IP address."""


def normalised_ip(text: str) -> IPAddress | None:
    """One spelling per address, so limits count addresses, not spellings: IPv6 in any
    form (leading zeros, `::`, upper case, `[brackets]`) is the same address, an
    IPv4-mapped IPv6 (`::ffff:198.51.100.7`, what a dual-stack socket reports) is the
    IPv4 address, and a zone id (`fe80::1%eth0`) is dropped. None: not an IP address
    (a name, a port glued on, anything else)."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(int(ip))
    return ip


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> IPAddress:
    """The client's IP, normalised: the socket peer, or, when the peer is a trusted
    proxy, the nearest untrusted address in `X-Forwarded-For` (read right to left; all
    trusted: the leftmost). An empty header is no header. Raises `NotAnAddress` when the
    hop that decides is not an IP address: such a request cannot be counted, and only a
    misconfigured front proxy (or one passing a client's header through) sends it."""
    peer_ip = normalised_ip(peer)
    if peer_ip is None:
        raise NotAnAddress(f"the peer address {peer[:64]!r} is not an IP address")
    if not trusted or forwarded_for is None or not _in(peer_ip, trusted):
        return peer_ip
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if not hops:
        return peer_ip
    decided = hops[0]
    for hop in reversed(hops):
        ip = normalised_ip(hop)
        if ip is None or not _in(ip, trusted):
            decided = hop
            break
    ip = normalised_ip(decided)
    if ip is None:
        raise NotAnAddress(f"X-Forwarded-For names {decided[:64]!r}, not an IP address")
    return ip


def _in(ip: IPAddress, networks: Sequence[Network]) -> bool:
    return any(ip in network for network in networks)
