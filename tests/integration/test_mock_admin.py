"""The mock's HTTP admin API on its WebSocket port, endpoint by endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from harness.mock_openai import MockRealtime
from harness.mock_openai.__main__ import admin_exposure_warning
from tests.http_raw import http_get
from tests.realtime_client import API_KEY, AUTH, running_mock, session


@pytest.fixture
async def mock() -> AsyncIterator[MockRealtime]:
    async with running_mock(admin=True) as mock:
        yield mock


async def call(
    mock: MockRealtime,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Message, Any]:
    """One HTTP/1.1 request on a fresh connection; (status, headers, JSON body). The Host
    is the mock's own address unless `headers` says otherwise."""
    content = raw if raw is not None else (b"" if body is None else orjson.dumps(body))
    sent = {"Host": f"127.0.0.1:{mock.port}", "Content-Type": "application/json"}
    answer = await asyncio.to_thread(
        http_get,
        f"http://127.0.0.1:{mock.port}/__admin/{path}",
        method=method,
        headers=sent | (headers or {}),
        data=content,
    )
    return answer.status, answer.headers, orjson.loads(answer.body) if answer.body else None


async def test_rules_journal_verdict_and_reset(mock: MockRealtime) -> None:
    status, headers, added = await call(
        mock, "POST", "rules", {"on": "user_text", "do": [{"reply_with_text": "Hi."}], "once": True}
    )
    assert status == 201 and "Access-Control-Allow-Origin" not in headers  # not a browser
    assert added["rules"][0]["description"] == "on_user_text().reply_with_text('Hi.').once()"
    _, _, verdict = await call(mock, "GET", "check")
    assert verdict["ok"] is False and "fired never" in verdict["problems"][0]
    async with session(mock) as client:
        await client.say_text("hello")
        await client.recv_until("response.done")
        _, _, waited = await call(mock, "POST", "wait", {"type": "response.create", "timeout": 2})
        assert waited == {"event": {"type": "response.create"}}
    _, _, rules = await call(mock, "GET", "rules")
    assert rules["rules"][0] | {"site": "-"} == {
        "description": "on_user_text().reply_with_text('Hi.').once()",
        "site": "-",
        "expected": "exactly once",
        "hits": 1,
        "met": True,
    }
    assert (await call(mock, "GET", "check"))[2] == {"ok": True, "problems": []}
    _, _, received = await call(mock, "GET", "received?type=conversation.item.create")
    assert received["events"][0]["item"]["content"][0]["text"] == "hello"
    _, _, sent = await call(mock, "GET", "sent?type=response.done")
    assert sent["events"][0]["response"]["status"] == "completed"
    _, _, connections = await call(mock, "GET", "connections")
    assert connections["connections"][0]["path"].startswith("/v1/realtime")
    assert (await call(mock, "POST", "reset"))[0] == 200
    assert mock.rules == [] and mock.received() == []


async def test_settings_push_and_close(mock: MockRealtime) -> None:
    status, _, settings = await call(mock, "POST", "settings", {"strict": True})
    assert status == 200 and settings["strict"] is True and mock.strict
    status, _, settings = await call(
        mock, "POST", "settings", {"session_lifetime": 120, "echo_metadata": False}
    )
    assert status == 200 and settings["session_lifetime"] == 120 and not settings["echo_metadata"]
    assert mock.session_lifetime == 120 and not mock.echo_metadata
    async with session(mock) as client:
        assert (
            await call(mock, "POST", "push", {"type": "rate_limits.updated", "rate_limits": []})
        )[0] == 200
        assert (await client.recv())["type"] == "rate_limits.updated"
        status, _, refused = await call(
            mock, "POST", "push", {"type": "rate_limits.updated", "rate_limits": 5}
        )
        assert status == 400 and "rate_limits" in refused["error"]
        await call(mock, "POST", "close_connections", {"code": 4001, "reason": "bye"})
        await client.ws.wait_closed()
        assert client.ws.close_code == 4001


async def test_a_cassette_can_be_loaded_over_http(mock: MockRealtime, tmp_path: Path) -> None:
    cassette = tmp_path / "tiny.jsonl"
    created = {"type": "session.created", "event_id": "event_1", "session": {"type": "realtime"}}
    cassette.write_text(
        '{"cassette": 1, "upstream": "ws://x", "audio": "full"}\n'
        '{"connection": 0, "t": 0, "open": "/v1/realtime"}\n'
        + orjson.dumps({"connection": 0, "t": 0.01, "from": "server", "event": created}).decode()
        + "\n"
    )
    assert (await call(mock, "POST", "replay", {"cassette": str(cassette), "speed": 0}))[0] == 200
    async with connect(mock.url, additional_headers=AUTH) as ws:
        assert orjson.loads(await ws.recv()) == created
    status, _, refused = await call(
        mock, "POST", "replay", {"cassette": str(tmp_path / "no.jsonl")}
    )
    assert status == 400 and "cannot read the cassette" in refused["error"]


@pytest.mark.parametrize(
    ("method", "path", "raw", "status", "complaint"),
    [
        ("GET", "nowhere", None, 404, "no admin endpoint 'nowhere'"),
        ("DELETE", "rules", None, 405, "DELETE not allowed"),
        ("POST", "rules", b"{not json", 400, "the body is not JSON"),
        ("POST", "rules", b'{"on": "user_text", "do": [{"dance": 1}]}', 400, "unknown step"),
        ("POST", "settings", b'{"voice": "robot"}', 400, "no voice 'robot'"),
        ("POST", "settings", b'{"session_lifetime": 0}', 400, "positive"),
        ("POST", "settings", b'{"session_lifetime": "long"}', 400, "number of seconds"),
        ("OPTIONS", "rules", None, 204, None),
    ],
)
async def test_bad_requests_get_a_reason(
    mock: MockRealtime,
    method: str,
    path: str,
    raw: bytes | None,
    status: int,
    complaint: str | None,
) -> None:
    got, headers, body = await call(mock, method, path, raw=raw)
    assert got == status
    if complaint is None:
        assert "POST" in headers["Access-Control-Allow-Methods"]
    else:
        assert complaint in body["error"]


async def test_a_handler_that_raises_gets_a_short_500_and_one_logged_traceback(
    mock: MockRealtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("internal detail of the mock")

    monkeypatch.setattr(mock, "check", broken)
    with caplog.at_level(logging.ERROR, logger="harness.mock_openai.admin"):
        status, _, body = await call(mock, "GET", "check")
    assert status == 500
    assert body == {"error": "internal error (RuntimeError); see the log"}
    logged = [r for r in caplog.records if r.name == "harness.mock_openai.admin"]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert "internal detail of the mock" in caplog.text and "Traceback" in caplog.text


async def test_without_admin_the_path_is_a_refused_handshake() -> None:
    plain = MockRealtime(api_key=API_KEY)
    await plain.start()
    try:
        status, _, body = await call(plain, "GET", "check")
        assert status == 404 and "Invalid URL" in body["error"]["message"]
    finally:
        await plain.stop()


async def test_leave_out_over_http(mock: MockRealtime) -> None:
    body = {"type": "session.updated", "fields": ["session"]}
    assert (await call(mock, "POST", "leave_out", body))[0] == 200
    status, _, refused = await call(mock, "POST", "leave_out", {"type": "session.updated"})
    assert status == 400 and "fields" in refused["error"]
    async with session(mock) as client:
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        updated = orjson.loads(await client.ws.recv())
    assert updated["type"] == "session.updated" and "session" not in updated


# ---------------------------------------------------------------- who may use it

LOOPBACK_PAGES = ["http://localhost:5173", "http://127.0.0.1:3000", "https://[::1]:8443"]
FOREIGN_PAGES = [
    "https://evil.example",
    "http://localhost.evil.example:5173",
    "http://127.0.0.1.evil.example",
    "http://10.0.0.5:3000",
    "null",
    "http://user@127.0.0.1:3000",
    "file://",
]


@pytest.mark.parametrize("origin", FOREIGN_PAGES)
async def test_a_foreign_page_is_refused_and_gets_no_cors(mock: MockRealtime, origin: str) -> None:
    mock.on_user_text("secret").reply_with_text("the system prompt")
    for method, path in [("GET", "rules"), ("POST", "reset"), ("OPTIONS", "reset")]:
        status, headers, body = await call(mock, method, path, headers={"Origin": origin})
        assert status == 403 and "loopback pages" in body["error"], (method, path)
        assert not any(name.startswith("Access-Control") for name in headers)
    assert len(mock.rules) == 1  # the reset did not happen


async def test_a_rebinding_host_is_refused(mock: MockRealtime) -> None:
    """A page on evil.example whose name resolves to 127.0.0.1: same-origin to the
    browser, no Origin on a GET, but its own name in Host."""
    for host in ("evil.example:8765", "127.0.0.1.evil.example", "127.0.0.1@evil.example"):
        status, _, body = await call(mock, "GET", "sent", headers={"Host": host})
        assert status == 403 and "loopback Host" in body["error"], host
        assert "events" not in body


@pytest.mark.parametrize("origin", LOOPBACK_PAGES)
async def test_a_loopback_page_is_answered_with_its_own_origin(
    mock: MockRealtime, origin: str
) -> None:
    status, headers, _ = await call(mock, "OPTIONS", "rules", headers={"Origin": origin})
    assert status == 204 and headers["Access-Control-Allow-Origin"] == origin
    status, headers, body = await call(mock, "GET", "check", headers={"Origin": origin})
    assert status == 200 and body["ok"] is True
    assert headers["Access-Control-Allow-Origin"] == origin and headers["Vary"] == "Origin"


async def test_no_page_can_make_the_mock_read_a_file(mock: MockRealtime, tmp_path: Path) -> None:
    probe = {"cassette": str(tmp_path / "no.jsonl")}
    for origin in [*LOOPBACK_PAGES[:1], *FOREIGN_PAGES[:1]]:
        status, _, body = await call(mock, "POST", "replay", probe, headers={"Origin": origin})
        assert status == 403 and "cannot read" not in body["error"], origin
    assert (await call(mock, "POST", "replay", probe))[0] == 400  # a tool without Origin may


def test_the_standalone_mock_warns_when_its_admin_api_leaves_loopback() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert admin_exposure_warning(host) is None
    for host in ("0.0.0.0", "::", "192.0.2.7"):
        warning = admin_exposure_warning(host)
        assert warning is not None and "--no-admin" in warning
