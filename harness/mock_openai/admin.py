"""The mock's HTTP admin API: script and inspect it from any language.

``serve_admin_api(mock)`` (the default of ``python -m harness.mock_openai``) makes a
`MockRealtime` answer plain HTTP requests under ``/__admin/`` on its WebSocket port: the
API wraps the mock from outside, the mock knows nothing of it. Bodies and answers are
JSON. Only the developer's own tools may use it: a loopback Host, and no Origin or a
loopback page's (echoed back for CORS, never ``*``); see `admin_access`.

========================================  ==============================================
``POST /__admin/rules``                   add rules (`rules_json` format); 201
                                          ``{"rules": [...]}``, 400 ``{"error"}``
``GET /__admin/rules``                    every rule: description, expectation, hits
``POST /__admin/reset``                   `MockRealtime.reset()`
``GET /__admin/received?type=T``          client events (of type T) since the reset
``GET /__admin/sent?type=T``              server events sent
``POST /__admin/wait``                    ``{"type", "count", "timeout", "where"}``:
                                          200 ``{"event"}``, or 408 ``{"error"}`` saying
                                          what arrived instead
``GET /__admin/connections``              the handshakes: path, state, close code
``GET /__admin/check``                    ``{"ok": bool, "problems": [...]}``: the
                                          fixture's verdict (failures, unmet rules, ...)
``POST /__admin/settings``                ``{"strict", "voice",
                                          "allow_invalid_client_events",
                                          "session_lifetime", "echo_metadata"}``
``POST /__admin/push``                    send a server event now (400 if invalid)
``POST /__admin/leave_out``               ``{"type", "fields": [...]}``: send events of
                                          that type without those (dotted) fields
``POST /__admin/close_connections``       ``{"code", "reason"}``
``POST /__admin/replay``                  ``{"cassette": path, "speed": 1.0}``
========================================  ==============================================

websockets only parses body-less GET requests, so `admin_connection_class` puts a
small front door on each connection: it reads the request head itself and keeps
requests under the admin path from ever reaching websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection

from harness.schema import SchemaError

from .admin_access import AdminAccess
from .server import ADMIN_PATH, MockRealtime

__all__ = ["AdminApi", "admin_connection_class", "serve_admin_api"]

log = logging.getLogger(__name__)

_MAX_HEAD: Final = 64 * 1024
_MAX_BODY: Final = 16 * 2**20
_MAX_WAIT_S: Final = 60.0
_SETTINGS: Final = frozenset(
    {"strict", "voice", "allow_invalid_client_events", "session_lifetime", "echo_metadata"}
)

Answer = tuple[int, Any]


class AdminApi:
    """Routes admin requests to a `MockRealtime` (on its loop)."""

    def __init__(self, mock: MockRealtime) -> None:
        self.mock = mock
        self._routes: dict[tuple[str, str], Callable[[dict[str, Any], Any], Awaitable[Answer]]] = {
            ("GET", ""): self._index,
            ("POST", "rules"): self._add_rules,
            ("GET", "rules"): self._list_rules,
            ("POST", "reset"): self._reset,
            ("GET", "received"): self._received,
            ("GET", "sent"): self._sent,
            ("POST", "wait"): self._wait,
            ("GET", "connections"): self._connections,
            ("GET", "check"): self._check,
            ("POST", "settings"): self._settings,
            ("POST", "push"): self._push,
            ("POST", "close_connections"): self._close_connections,
            ("POST", "leave_out"): self._leave_out,
            ("POST", "replay"): self._replay,
        }

    async def handle(self, method: str, target: str, body: bytes, prefix: str) -> Answer:
        """The (status, JSON body) for one request."""
        url = urlsplit(target)
        name = url.path[len(prefix) :].strip("/")
        route = self._routes.get((method, name))
        if route is None:
            known = sorted({n for (_, n) in self._routes})
            if any(n == name for (_, n) in self._routes):
                return HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{method} not allowed here"}
            return HTTPStatus.NOT_FOUND, {"error": f"no admin endpoint {name!r}; see {known}"}
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            payload = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError as exc:
            return HTTPStatus.BAD_REQUEST, {"error": f"the body is not JSON: {exc}"}
        try:
            return await route(query, payload)
        except (ValueError, TypeError, SchemaError) as exc:
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}

    async def _index(self, query: dict[str, Any], body: Any) -> Answer:
        endpoints = [f"{method} {name}" for method, name in self._routes]
        return HTTPStatus.OK, {"endpoints": endpoints, "realtime_url": self.mock.url}

    async def _add_rules(self, query: dict[str, Any], body: Any) -> Answer:
        rules = self.mock.load_rules(body, source="admin API")
        return HTTPStatus.CREATED, {"rules": [_describe_rule(rule) for rule in rules]}

    async def _list_rules(self, query: dict[str, Any], body: Any) -> Answer:
        return HTTPStatus.OK, {"rules": [_describe_rule(rule) for rule in self.mock.rules]}

    async def _reset(self, query: dict[str, Any], body: Any) -> Answer:
        self.mock.reset()
        return HTTPStatus.OK, {}

    async def _received(self, query: dict[str, Any], body: Any) -> Answer:
        return HTTPStatus.OK, {"events": self.mock.received(query.get("type"))}

    async def _sent(self, query: dict[str, Any], body: Any) -> Answer:
        return HTTPStatus.OK, {"events": self.mock.sent(query.get("type"))}

    async def _wait(self, query: dict[str, Any], body: Any) -> Answer:
        body = body or {}
        if not isinstance(body, dict):
            raise ValueError('the body is {"type", "count", "timeout", "where"}')
        timeout = min(float(body.get("timeout", 5.0)), _MAX_WAIT_S)
        where = body.get("where")
        if where is not None and not isinstance(where, dict):
            raise ValueError("'where' is a JSON pattern (an object)")
        try:
            event = await self.mock.wait_for(
                body.get("type"), count=int(body.get("count", 1)), timeout=timeout, where=where
            )
        except AssertionError as exc:
            return HTTPStatus.REQUEST_TIMEOUT, {"error": str(exc)}
        return HTTPStatus.OK, {"event": event}

    async def _connections(self, query: dict[str, Any], body: Any) -> Answer:
        connections = [
            {
                "index": c.index,
                "path": c.path,
                "closed": c.closed,
                "close_code": c.close_code,
                "rejected_status": c.rejected_status,
                "received": len(c.received),
                "sent": len(c.sent),
            }
            for c in self.mock.connections
        ]
        return HTTPStatus.OK, {"connections": connections}

    async def _check(self, query: dict[str, Any], body: Any) -> Answer:
        try:
            self.mock.check()
        except AssertionError as exc:
            problems = [line.strip() for line in str(exc).splitlines()[1:]]
            return HTTPStatus.OK, {"ok": False, "problems": problems}
        return HTTPStatus.OK, {"ok": True, "problems": []}

    async def _settings(self, query: dict[str, Any], body: Any) -> Answer:
        if not isinstance(body, dict):
            raise ValueError(f"the body is an object with some of {sorted(_SETTINGS)}")
        unknown = set(body) - _SETTINGS
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}")
        if "voice" in body:
            try:
                self.mock.voice = body["voice"]
            except RuntimeError as exc:
                raise ValueError(str(exc)) from exc
        if "strict" in body:
            self.mock.strict = bool(body["strict"])
        if "allow_invalid_client_events" in body:
            self.mock.allow_invalid_client_events(bool(body["allow_invalid_client_events"]))
        if "session_lifetime" in body:
            lifetime = body["session_lifetime"]
            if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
                raise ValueError("session_lifetime is a number of seconds")
            self.mock.session_lifetime = lifetime
        if "echo_metadata" in body:
            self.mock.echo_metadata = bool(body["echo_metadata"])
        return HTTPStatus.OK, {
            "strict": self.mock.strict,
            "voice": self.mock.voice,
            "session_lifetime": self.mock.session_lifetime,
            "echo_metadata": self.mock.echo_metadata,
        }

    async def _push(self, query: dict[str, Any], body: Any) -> Answer:
        if not isinstance(body, dict):
            raise ValueError("the body is a server event")
        self.mock.push(body)
        return HTTPStatus.OK, {}

    async def _leave_out(self, query: dict[str, Any], body: Any) -> Answer:
        if not (
            isinstance(body, dict)
            and isinstance(body.get("type"), str)
            and isinstance(body.get("fields"), list)
        ):
            raise ValueError('the body is {"type": "<event type>", "fields": ["a.b", ...]}')
        self.mock.leave_out(body["type"], *body["fields"])
        return HTTPStatus.OK, {}

    async def _close_connections(self, query: dict[str, Any], body: Any) -> Answer:
        body = body or {}
        self.mock.close_connections(int(body.get("code", 1011)), str(body.get("reason", "")))
        return HTTPStatus.OK, {}

    async def _replay(self, query: dict[str, Any], body: Any) -> Answer:
        if not isinstance(body, dict) or not isinstance(body.get("cassette"), str):
            raise ValueError('the body is {"cassette": "<path of a .jsonl file>", "speed": 1.0}')
        try:
            self.mock.replay(body["cassette"], speed=float(body.get("speed", 1.0)))
        except OSError as exc:
            raise ValueError(f"cannot read the cassette: {exc}") from exc
        return HTTPStatus.OK, {}


def _describe_rule(rule: Any) -> dict[str, Any]:
    return {
        "description": rule.description,
        "site": rule.site,
        "expected": rule.expectation.describe(),
        "hits": rule.hits,
        "met": rule.unmet() is None,
    }


def serve_admin_api(mock: MockRealtime) -> AdminApi:
    """Answer the admin API under ``/__admin/`` on `mock`'s port (before `start()`)."""
    api = AdminApi(mock)
    mock.add_front_door(functools.partial(admin_connection_class, api, ADMIN_PATH))
    return api


def admin_connection_class(
    api: AdminApi | None, prefix: str, listen_host: str
) -> type[ServerConnection]:
    """websockets' connection class, with a front door for the admin API when `api`."""
    if api is None:
        return ServerConnection
    admin = api
    access = AdminAccess(listen_host)

    class AdminFrontDoor(ServerConnection):
        """Reads the request head first: admin requests are answered here, everything
        else goes on to websockets untouched."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._buffered = bytearray()
            self._route = "undecided"  # -> "websocket" | "admin"
            self._head_end = 0
            self._wanted = 0
            self._method = ""
            self._target = ""
            self._hosts: list[str] = []
            self._origins: list[str] = []
            self._answering: asyncio.Task[None] | None = None  # referenced until done

        def data_received(self, data: bytes) -> None:
            if self._route == "websocket":
                super().data_received(data)
                return
            if self._route == "answered":
                return
            self._buffered += data
            if self._route == "undecided" and not self._decide():
                return
            if self._route == "admin" and len(self._buffered) >= self._wanted:
                self._route = "answered"
                body = bytes(self._buffered[self._head_end : self._wanted])
                self._answering = self.loop.create_task(self._answer(body))

        def _decide(self) -> bool:
            """Route on the request line once the head is complete; False: wait."""
            end = self._buffered.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffered) > _MAX_HEAD:
                    self._to_websockets()
                return False
            head = bytes(self._buffered[:end]).decode("latin-1")
            request_line, *header_lines = head.split("\r\n")
            parts = request_line.split(" ")
            path = urlsplit(parts[1]).path if len(parts) == 3 else ""
            if not (path == prefix or path.startswith(prefix + "/")):
                self._to_websockets()
                return False
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    with contextlib.suppress(ValueError):
                        length = int(value.strip())
                elif name == "host":
                    self._hosts.append(value.strip())
                elif name == "origin":
                    self._origins.append(value.strip())
            self._route = "admin"
            self._method, self._target = parts[0], parts[1]
            self._head_end = end + 4
            self._wanted = self._head_end + min(max(length, 0), _MAX_BODY)
            return True

        def _to_websockets(self) -> None:
            self._route = "websocket"
            data, self._buffered = bytes(self._buffered), bytearray()
            super().data_received(data)

        async def _answer(self, body: bytes) -> None:
            route = urlsplit(self._target).path[len(prefix) :].strip("/")
            refused = access.refusal(self._hosts, self._origins, route)
            if refused is not None:
                status, payload = refused[0], {"error": refused[1]}
            elif self._method == "OPTIONS":  # a browser's CORS preflight
                status, payload = HTTPStatus.NO_CONTENT, None
            else:
                try:
                    status, payload = await admin.handle(self._method, self._target, body, prefix)
                except Exception as exc:
                    # A bug of the mock's: the traceback is for its log, once; the caller
                    # gets a short answer (a traceback is no API, and shows the internals).
                    log.exception("admin API %r %r failed", self._method, route)
                    status = HTTPStatus.INTERNAL_SERVER_ERROR
                    payload = {"error": f"internal error ({type(exc).__name__}); see the log"}
            content = b"" if payload is None else orjson.dumps(payload)
            phrase = HTTPStatus(status).phrase
            cors = ""
            if refused is None:
                if self._origins:  # a loopback page: named, never "*"
                    cors = f"Access-Control-Allow-Origin: {self._origins[0]}\r\n"
                cors += (
                    "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                    "Access-Control-Allow-Headers: Content-Type\r\n"
                )
            head = (
                f"HTTP/1.1 {status} {phrase}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(content)}\r\n"
                f"{cors}"
                "Vary: Origin\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            )
            with contextlib.suppress(Exception):
                self.transport.write(head.encode() + content)
                self.transport.close()

    return AdminFrontDoor
