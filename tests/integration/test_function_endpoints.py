"""Server-side function endpoints over real sockets: the attacks of issue 17 (findings 2,
4, 5, 11, 12, 13) against the proxy, with a tiny HTTP server on 127.0.0.1 as the
operator's function backend. Each test names what it proves."""

from __future__ import annotations

import asyncio
import http.server
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from deepgram.agent.v1.types import (
    AgentV1InjectUserMessage,
    AgentV1SendFunctionCallResponse,
    AgentV1Settings,
)

from harness.mock_openai import MockRealtime
from harness.pytest_plugin import MOCK_API_KEY, ProxyEndpoint
from tests.deepgram_sdk import SdkAgent, sdk_agent
from tests.processes import clean_env, listening_url, running

ProxyFactory = Callable[..., ProxyEndpoint]
TOKEN = "function-tests-key-123"
THINK = {"provider": {"type": "open_ai", "model": "gpt-realtime"}, "prompt": "Be terse."}


class Backend(http.server.ThreadingHTTPServer):
    """The operator's function server: records every request, answers by path."""

    requests: list[tuple[str, str, dict[str, str], bytes]]
    delay: float  # seconds before answering

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [path for _, path, _, _ in self.requests]


@pytest.fixture
def backend() -> Iterator[Backend]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length) if length else b""
            server: Backend = self.server  # type: ignore[assignment]
            server.requests.append((self.command, self.path, dict(self.headers), body))
            time.sleep(server.delay)
            if self.path.startswith("/fn/control"):
                answer = b"\x01" * (1 << 20)  # 1 MiB: 6 MiB once JSON-escaped
            else:
                answer = b'{"temperature": 21}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Set-Cookie", "session=from-the-endpoint; Path=/")
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = Backend(("127.0.0.1", 0), Handler)
    server.requests, server.delay = [], 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def function(url: str, headers: dict[str, str] | None = None, method: str = "post") -> Any:
    endpoint: dict[str, Any] = {"url": url, "method": method}
    if headers is not None:
        endpoint["headers"] = headers
    return {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "endpoint": endpoint,
    }


async def start(agent: SdkAgent, *functions: Any) -> None:
    settings = {
        "audio": {"input": {"encoding": "linear16", "sample_rate": 16000}},
        "agent": {"think": {**THINK, "functions": list(functions)}},
    }
    await agent.socket.send_settings(AgentV1Settings.model_validate(settings))
    await agent.wait_for("SettingsApplied")


async def ask(agent: SdkAgent, text: str = "weather") -> None:
    await agent.socket.send_inject_user_message(AgentV1InjectUserMessage(content=text))


def outputs(mock: MockRealtime) -> list[dict[str, Any]]:
    items = [event["item"] for event in mock.received("conversation.item.create")]
    return [item for item in items if item["type"] == "function_call_output"]


# ------------------------------------------------------------------ finding 2: the allow-list


@pytest.mark.parametrize(
    "path",
    ["/fn/../admin/delete-all", "/fn/%2e%2e/admin/delete-all", "/fn/%2E%2e/admin/delete-all"],
)
async def test_a_traversal_out_of_the_allowed_prefix_never_reaches_admin(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, backend: Backend, path: str
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    endpoint = proxy_factory(client_token=TOKEN, function_hosts=frozenset({backend.url("/fn")}))
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await start(agent, function(backend.url(path)))
        await ask(agent)
        warning = await agent.wait_for("Warning")
        assert warning.code == "function_endpoint_forbidden"
        request = await agent.wait_for("FunctionCallRequest")
        assert request.functions[0].client_side is True  # the client's to answer, not ours
    assert backend.requests == []


async def test_the_normalised_path_is_the_one_sent(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, backend: Backend
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    endpoint = proxy_factory(client_token=TOKEN, function_hosts=frozenset({backend.url("/fn")}))
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await start(agent, function(backend.url("/fn/x/%2e%2e/weather")))
        await ask(agent)
        await agent.wait_for("FunctionCallResponse")
    assert backend.paths() == ["/fn/weather"]


async def test_headers_of_the_definition_are_not_sent_unless_allowed(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, backend: Backend
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    endpoint = proxy_factory(client_token=TOKEN, function_hosts=frozenset({backend.url("/fn")}))
    stolen = {
        "Authorization": "Bearer stolen",
        "Cookie": "admin=1",
        "X-Forwarded-For": "10.0.0.1",
        "X-Api-Key": "k",
    }
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await start(agent, function(backend.url("/fn/weather"), stolen))
        await ask(agent)
        warning = await agent.wait_for("Warning")
        assert warning.code == "setting_ignored" and "Authorization" in warning.description
        await agent.wait_for("FunctionCallResponse")
        await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
        await ask(agent)  # a second call: the endpoint's Set-Cookie must not come back
        await agent.wait_for("FunctionCallResponse", count=2)
    assert len(backend.requests) == 2
    for _, _, headers, _ in backend.requests:
        sent = {name.lower() for name in headers}
        assert not sent & {"authorization", "cookie", "x-forwarded-for", "x-api-key"}, headers
        assert headers["Content-Type"] == "application/json"


async def test_only_allowed_methods_are_used(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, backend: Backend
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    endpoint = proxy_factory(client_token=TOKEN, function_hosts=frozenset({backend.url("/fn")}))
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await start(agent, function(backend.url("/fn/weather"), method="delete"))
        await ask(agent)
        error = await agent.wait_for("Error")
        assert error.code == "function_endpoint_failed" and "'DELETE'" in error.description
        await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
    assert backend.requests == []
    assert "not allowed" in outputs(mock_openai)[0]["output"]


# ------------------------------------------------------------------ finding 4: the turn rate


async def test_a_function_call_loop_is_bounded_by_the_turn_rate(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, backend: Backend
) -> None:
    # The model calls again after every result: a loop the client's prompt can make.
    mock_openai.on_user_text("loop").call_function("get_weather", {"city": "Paris"})
    mock_openai.on_function_output("get_weather").call_function("get_weather", {"city": "x"})
    endpoint = proxy_factory(
        client_token=TOKEN,
        function_hosts=frozenset({backend.url("/fn")}),
        turn_rate=1.0,
        turn_burst=2,
    )
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await start(agent, function(backend.url("/fn/weather")))
        await ask(agent, "loop")
        error = await agent.wait_for("Error", where=lambda e: e.code == "rate_limited")
        assert "no response was asked for" in error.description
        await asyncio.sleep(2.0)  # what a loop would do meanwhile
    # The message took one turn, the first result the other, then the loop stopped
    # (485 response.create in 10 s before). The rule fired: it was a loop.
    assert 2 <= len(mock_openai.received("response.create")) <= 3
    assert len(backend.requests) == len(outputs(mock_openai)) <= 3


# ------------------------------------------------------------------ finding 5: the answer size


async def test_an_answer_is_capped_as_it_is_sent_json_escaped(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, backend: Backend
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    endpoint = proxy_factory(client_token=TOKEN, function_hosts=frozenset({backend.url("/fn")}))
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await start(agent, function(backend.url("/fn/control")))
        await ask(agent)
        error = await agent.wait_for("Error")
        assert error.code == "function_endpoint_failed" and "larger than" in error.description
        response = await agent.wait_for("FunctionCallResponse")
        assert len(response.content) < 200  # the failure, not 6 MiB of \u0001
        await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
    (output,) = outputs(mock_openai)
    assert len(orjson.dumps(output)) < 300


async def test_an_answer_that_only_escaping_makes_too_large_is_refused(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, backend: Backend
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    # 1 MiB raw is under a 2 MiB cap; escaped (6 MiB) it is not.
    endpoint = proxy_factory(
        client_token=TOKEN,
        function_hosts=frozenset({backend.url("/fn")}),
        function_max_answer_bytes=2 << 20,
    )
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await start(agent, function(backend.url("/fn/control")))
        await ask(agent)
        error = await agent.wait_for("Error")
        assert error.code == "function_endpoint_failed" and "JSON-escaped" in error.description
        await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
    (output,) = outputs(mock_openai)
    assert len(output["output"]) < 200


# ------------------------------------------------------------------ finding 11: invalid URLs


@pytest.mark.parametrize("path", ["/fn/weather\x01", "/fn/" + "a" * 70_000])
async def test_an_invalid_url_is_a_clean_error_the_model_is_answered_and_drain_ends(
    mock_openai: MockRealtime,
    proxy_factory: ProxyFactory,
    backend: Backend,
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    endpoint = proxy_factory(
        client_token=TOKEN,
        function_hosts=frozenset({backend.url("/fn")}),
        max_frame_bytes=4 << 20,
    )
    assert endpoint.server is not None and endpoint.loop is not None
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await start(agent, function(backend.url(path)))
        await ask(agent)
        error = await agent.wait_for("Error")
        assert error.code == "function_endpoint_failed"
        await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
        (output,) = outputs(mock_openai)
        assert "error" in orjson.loads(output["output"])  # the model got its answer
        begun = time.monotonic()
        drained = endpoint.loop.submit(endpoint.server.drain(10))
        await asyncio.wrap_future(drained)
        assert time.monotonic() - begun < 5  # quiet: drain did not wait its 10 s
    assert backend.requests == []
    assert not [r for r in caplog.records if r.exc_info or r.levelname in ("ERROR", "CRITICAL")]
    assert "Traceback" not in caplog.text


# ------------------------------------------------------------------ finding 12: one answer


async def test_the_client_cannot_answer_a_call_the_proxy_makes(
    mock_openai: MockRealtime, proxy_factory: ProxyFactory, backend: Backend
) -> None:
    backend.delay = 0.5  # the proxy's call is in flight while the client answers
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    endpoint = proxy_factory(client_token=TOKEN, function_hosts=frozenset({backend.url("/fn")}))
    async with sdk_agent(endpoint.url, TOKEN) as agent:
        await start(agent, function(backend.url("/fn/weather")))
        await ask(agent)
        request = await agent.wait_for("FunctionCallRequest")
        call = request.functions[0]
        assert call.client_side is False
        await agent.socket.send_function_call_response(
            AgentV1SendFunctionCallResponse(id=call.id, name=call.name, content="forged")
        )
        error = await agent.wait_for("Error")
        assert error.code == "invalid_message" and "server-side" in error.description
        await agent.wait_for("FunctionCallResponse")  # the proxy's own answer
        await agent.wait_for("ConversationText", where=lambda m: m.role == "assistant")
    answers = [o["output"] for o in outputs(mock_openai) if o["call_id"] == call.id]
    assert answers == ['{"temperature": 21}']


# ------------------------------------------------------------------ finding 13: logs


async def test_the_http_client_never_logs_a_function_url(
    mock_openai: MockRealtime, backend: Backend
) -> None:
    secret = "secret-city-4711"  # the model's argument: user content, in a GET's query
    mock_openai.on_user_text("weather").call_function("get_weather", {"city": secret})
    env = clean_env(OPENAI_API_KEY=MOCK_API_KEY, OPENAI_REALTIME_URL=mock_openai.url)
    args = [
        "-m",
        "proxy",
        "--port",
        "0",
        "--log-level",
        "DEBUG",
        "--function-endpoint-allow",
        backend.url("/fn"),
        "--function-endpoint-method",
        "GET",
    ]
    with running(args, env, r"listening on ws://") as (_, lines):
        async with sdk_agent(re.sub(r"/openai$", "", listening_url(lines)), TOKEN) as agent:
            await start(agent, function(backend.url("/fn/weather"), method="get"))
            await ask(agent)
            await agent.wait_for("FunctionCallResponse")
    assert backend.paths() == [f"/fn/weather?city={secret}"]
    logged = "\n".join(lines)
    assert "FunctionCallRequest" in logged or "client connected" in logged  # it did log
    assert secret not in logged and "HTTP Request" not in logged
