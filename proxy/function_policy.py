"""Which server-side function calls the proxy makes, and exactly what it sends.

A function's endpoint is written by the client, so it is an SSRF risk. The operator
allows endpoints (`--function-endpoint-allow`), methods (`--function-endpoint-method`) and
the headers a definition may set (`--function-endpoint-header`); everything else is
refused. The URL is parsed once (by httpx, which will send it), normalised (percent-
encoded unreserved characters decoded, dot segments removed: what a server would do),
checked, and that same `httpx.URL` object is what the request carries: no later step
can turn `/functions/../admin` into `/admin` after the check. What cannot be normalised
safely (an encoded slash, backslash or percent sign, a malformed escape, `..;`) is
refused. No I/O here: `proxy.function_http` sends the request. Parsing with the HTTP
client makes this the network shell's module: the session core sees the policy only
through `proxy.function_endpoints.EndpointPolicy`, handed to it in its options.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urlsplit

import httpx
import orjson

from .bounds import MAX_URL_CHARS
from .function_endpoints import (
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_METHODS,
    HTTP_METHODS,
    EndpointForbidden,
    EndpointRefused,
    forwardable_header,
    http_method,
)
from .validation import shown

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "DEFAULT_METHODS",
    "HTTP_METHODS",
    "MAX_URL_CHARS",
    "NO_FUNCTIONS",
    "EndpointForbidden",
    "EndpointRefused",
    "EndpointRule",
    "FunctionEndpointPolicy",
    "FunctionRequest",
    "escaped_size",
    "forwardable_header",
    "http_method",
    "normalised_url",
    "parse_rule",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e]")  # CR, LF, NUL (header injection), non-ASCII
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Encoded bytes a server may decode into a separator, or decode twice: no safe form.
_UNSAFE_ESCAPES = frozenset({0x2F, 0x5C, 0x25, 0x00})  # / \ % NUL


@dataclass(frozen=True, slots=True)
class EndpointRule:
    """One `--function-endpoint-allow` entry: `scheme` None means http or https."""

    scheme: str | None
    host: str
    port: int | None  # None: the scheme's default port
    path: str = "/"  # a prefix, matched on segment boundaries

    def matches(self, url: httpx.URL) -> bool:
        scheme = url.scheme
        if self.scheme is not None and self.scheme != scheme:
            return False
        port = url.port or _DEFAULT_PORTS[scheme]
        if port != (self.port or _DEFAULT_PORTS[scheme]) or _host(url) != self.host:
            return False
        prefix, path = self.path, url.path
        if prefix.endswith("/"):
            return path.startswith(prefix)
        return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class FunctionRequest:
    """A checked request: `url` is the very object httpx sends."""

    method: str
    url: httpx.URL
    headers: tuple[tuple[str, str], ...]
    content: bytes | None
    dropped_headers: tuple[str, ...] = ()  # named by the definition, not allowed


@dataclass(frozen=True)
class FunctionEndpointPolicy:
    """What the operator allows; `prepare` turns a definition into a `FunctionRequest`."""

    rules: tuple[EndpointRule, ...] = ()
    methods: frozenset[str] = DEFAULT_METHODS
    headers: frozenset[str] = frozenset()  # lower-case names a definition may set
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES

    @classmethod
    def from_options(
        cls,
        allow: Iterable[str],
        methods: Iterable[str] = DEFAULT_METHODS,
        headers: Iterable[str] = (),
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> FunctionEndpointPolicy:
        """From the operator's strings; ValueError (one line) for any that does not parse."""
        if max_answer_bytes < 1:
            raise ValueError(f"the answer limit must be 1 byte or more, not {max_answer_bytes}")
        return cls(
            rules=tuple(parse_rule(entry) for entry in allow),
            methods=frozenset(http_method(m) for m in methods),
            headers=frozenset(forwardable_header(h) for h in headers),
            max_answer_bytes=max_answer_bytes,
        )

    def prepare(
        self, url: str, method: str | None, headers: dict[str, str] | None, arguments: str
    ) -> FunctionRequest:
        """The request to send; EndpointForbidden when the URL is not allowed (the call
        may go to the client), EndpointRefused when nothing may be sent."""
        checked = normalised_url(url)
        if not any(rule.matches(checked) for rule in self.rules):
            raise EndpointForbidden(f"endpoint {shown(_host(checked))} is not allowed")
        verb = (method or "POST").upper()
        if verb not in self.methods:
            raise EndpointRefused(
                f"method {verb[:20]!r} is not allowed (allowed: {', '.join(sorted(self.methods))})"
            )
        sent: list[tuple[str, str]] = []
        dropped: list[str] = []
        seen: set[str] = set()  # header names are case-insensitive: the first one counts
        for name, value in (headers or {}).items():
            if name.lower() in seen:
                dropped.append(name)
                continue
            seen.add(name.lower())
            if name.lower() not in self.headers:
                dropped.append(name)
            elif _BAD_VALUE.search(value) or len(value) > MAX_URL_CHARS:
                raise EndpointRefused(f"header {shown(name)} has a value that cannot be sent")
            else:
                sent.append((name, value))
        content: bytes | None = None
        if verb in ("GET", "DELETE"):
            checked = checked.copy_merge_params(_query(arguments))
            if len(str(checked)) > MAX_URL_CHARS:
                raise EndpointRefused(f"the request URL is longer than {MAX_URL_CHARS} characters")
        else:
            content = (arguments or "{}").encode()
            if not any(name.lower() == "content-type" for name, _ in sent):
                sent.append(("Content-Type", "application/json"))
        return FunctionRequest(verb, checked, tuple(sent), content, tuple(dropped))

    def answer_refused(self, output: str) -> str | None:
        """Why `output` may not be sent (None: it may): its JSON-escaped size, which is
        what it adds to the client's frames and to the upstream item."""
        size = escaped_size(output)
        if size > self.max_answer_bytes:
            return f"answer of {size} bytes once JSON-escaped, over {self.max_answer_bytes}"
        return None


#: Nothing allowed: every function with an endpoint goes to the client.
NO_FUNCTIONS = FunctionEndpointPolicy()


def normalised_url(url: str) -> httpx.URL:
    """`url` parsed once and normalised; EndpointRefused for what is not safely sendable."""
    if len(url) > MAX_URL_CHARS:
        raise EndpointRefused(f"endpoint URL longer than {MAX_URL_CHARS} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:  # control characters, a bad port or host, ...
        raise EndpointRefused(f"endpoint is not a valid URL: {shown(str(exc))}") from None
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.raw_host:
        raise EndpointRefused("endpoint is not an absolute http(s) URL")
    if parsed.userinfo:
        raise EndpointRefused("endpoint URL has user info")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise EndpointRefused(f"endpoint port {parsed.port} is out of range")
    path, separator, query = parsed.raw_path.partition(b"?")
    clean = _normalised_path(path)
    raw_path = clean + separator + query
    checked = parsed.copy_with(raw_path=raw_path, fragment=None)
    if checked.raw_path != raw_path:  # httpx would send something else: not safe
        raise EndpointRefused("endpoint path cannot be normalised safely")
    return checked


def _normalised_path(path: bytes) -> bytes:
    """Unreserved escapes decoded (`%2e` is `.`), dot segments removed (RFC 3986 §6.2.2,
    §5.2.4); an encoded separator, backslash or percent sign, a malformed escape, or a
    dot segment with parameters (`..;`) refused."""
    if b"\\" in path:
        raise EndpointRefused("endpoint path has a backslash")

    def decode(match: re.Match[bytes]) -> bytes:
        byte = int(match.group(1), 16)
        if byte in _UNSAFE_ESCAPES:
            raise EndpointRefused("endpoint path has an encoded '/', '\\', '%' or NUL")
        return bytes([byte]) if byte in _UNRESERVED else b"%" + match.group(1).upper()

    decoded = _ESCAPE.sub(decode, path)
    if decoded.count(b"%") != len(_ESCAPE.findall(decoded)):
        raise EndpointRefused("endpoint path has a malformed percent escape")
    kept: list[bytes] = []
    segments = decoded.split(b"/")[1:] if decoded.startswith(b"/") else [decoded]
    for index, segment in enumerate(segments):
        plain = unquote_to_bytes(segment)  # %3B is ; to a server that decodes first
        if plain.split(b";", 1)[0] in (b".", b"..") and b";" in plain:
            raise EndpointRefused("endpoint path has a dot segment with parameters")
        last = index == len(segments) - 1
        if segment == b".":
            if last:
                kept.append(b"")
        elif segment == b"..":
            if kept:
                kept.pop()
            if last:
                kept.append(b"")
        else:
            kept.append(segment)
    return b"/" + b"/".join(kept)


def parse_rule(entry: str) -> EndpointRule:
    """One allow-list entry: `host`, `host:port` (http or https), or
    `scheme://host[:port][/path-prefix]`. ValueError for anything else: a `host/path`
    without a scheme would otherwise read as the whole host."""
    text = entry.strip()
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"{entry!r} is not a host or http(s) URL")
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"{entry!r}: only http:// and https:// endpoints can be allowed")
        if any(c in text for c in "?#"):
            raise ValueError(f"{entry!r}: an allowed endpoint has no query or fragment")
        url = _rule_url(entry, text)
        return EndpointRule(scheme, _host(url), url.port, url.path)
    if any(c in text for c in "/\\?#@"):
        raise ValueError(
            f"{entry!r}: a path prefix needs a scheme (http://host/path or https://host/path); "
            "a bare entry is a host or host:port"
        )
    url = _rule_url(entry, f"http://{text}")
    try:  # httpx drops an explicit :80 from an http URL; here it means port 80
        port = urlsplit(f"//{text}").port
    except ValueError as exc:
        raise ValueError(f"{entry!r}: {exc}") from None
    return EndpointRule(None, _host(url), port)


def _rule_url(entry: str, text: str) -> httpx.URL:
    try:
        url = normalised_url(text)
    except EndpointRefused as exc:
        raise ValueError(f"{entry!r}: {exc}") from None
    if url.port == 0 or "*" in url.host:
        raise ValueError(f"{entry!r}: no wildcard host and no port 0")
    return url


def escaped_size(text: str) -> int:
    """Bytes `text` takes inside a JSON frame (its quotes left out)."""
    return len(orjson.dumps(text)) - 2


def _host(url: httpx.URL) -> str:
    """The host as compared: IDNA, lower case, no trailing dot, IPv6 in its short form."""
    host = url.raw_host.decode("ascii").lower().rstrip(".")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            return host
    return host


def _query(arguments: str) -> dict[str, str]:
    try:
        values = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(values, dict):
        return {}
    return {str(k): _query_value(v) for k, v in values.items()}


def _query_value(value: object) -> str:
    """A string as it is; any other JSON value as JSON (`true`, `null`, `[1, 2]`), never
    as Python would write it (`True`, `None`, `[1, 2]` with other spacing)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()
