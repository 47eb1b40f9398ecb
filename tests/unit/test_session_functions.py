"""Server-side function calls in the session core: what the proxy decides for each call
(issue 17: the model always gets an answer, the client cannot answer for the proxy, a
call loop is bounded by the turn rate, the answer is capped as it is sent)."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.function_policy import FunctionEndpointPolicy
from proxy.pending_calls import FULL, MAX_PENDING
from tests.unit import realtime_events as events
from tests.unit.session_driver import Driver, Outcome

ALLOWED = "http://functions.internal/fn"


def driver_with_function(url: str = f"{ALLOWED}/weather", **options: Any) -> Driver:
    policy = options.pop("functions", FunctionEndpointPolicy.from_options([ALLOWED]))
    driver = Driver(functions=policy, **options)
    function = {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {}},
        "endpoint": {"url": url, "method": "post"},
    }
    driver.ready({"type": "Settings", "agent": {"think": {"functions": [function]}}})
    return driver


def model_calls(driver: Driver, call_id: str = "call_1") -> Outcome:
    """The model asks for get_weather (in a response that then ends)."""
    driver.respond()
    out = driver.upstream(events.function_call(call_id, "get_weather", '{"city": "Paris"}'))
    driver.finish()
    return out


def outputs(out: Outcome) -> list[dict[str, Any]]:
    return [
        event["item"]
        for event in out.upstream
        if event["type"] == "conversation.item.create"
        and event["item"]["type"] == "function_call_output"
    ]


def test_an_allowed_call_is_made_with_the_checked_request() -> None:
    driver = driver_with_function()
    out = model_calls(driver)
    (call,) = out.calls
    assert str(call.request.url) == f"{ALLOWED}/weather"
    assert out.only("FunctionCallRequest")["functions"][0]["client_side"] is False


def test_a_traversal_out_of_the_allowed_prefix_is_not_called() -> None:
    driver = driver_with_function(f"{ALLOWED}/../admin/delete-all")
    out = model_calls(driver)
    assert not out.calls
    assert out.only("Warning")["code"] == "function_endpoint_forbidden"
    assert out.only("FunctionCallRequest")["functions"][0]["client_side"] is True


def test_an_invalid_url_is_a_clean_error_the_model_is_answered_and_drain_ends() -> None:
    driver = driver_with_function(f"{ALLOWED}/weather\x01")  # httpx.InvalidURL before
    out = model_calls(driver)
    assert not out.calls
    error = out.only("Error")
    assert error["code"] == "function_endpoint_failed" and "not a valid URL" in error["description"]
    (output,) = outputs(out)
    assert output["call_id"] == "call_1" and "error" in orjson.loads(output["output"])
    driver.respond("resp_2")  # the follow-up response...
    driver.finish("resp_2")  # ...ends: nothing is pending any more
    closed = driver.decode_actions(driver.session.drain())
    assert closed.client_close is not None and closed.client_close.code == 1001


def test_an_over_long_url_is_a_clean_error() -> None:
    driver = driver_with_function(f"{ALLOWED}/" + "a" * 10_000)
    out = model_calls(driver)
    assert not out.calls and out.only("Error")["code"] == "function_endpoint_failed"
    assert len(outputs(out)) == 1


def test_the_client_cannot_answer_a_call_the_proxy_makes() -> None:
    driver = driver_with_function()
    model_calls(driver)  # in flight now
    answer = {"type": "FunctionCallResponse", "id": "call_1", "name": "get_weather"}
    refused = driver.client({**answer, "content": "forged"})
    assert refused.only("Error")["code"] == "invalid_message"
    assert "server-side" in refused.only("Error")["description"]
    assert not outputs(refused)
    by_name = driver.client({"type": "FunctionCallResponse", "name": "get_weather", "content": "x"})
    assert by_name.only("Error")["code"] == "invalid_message" and not outputs(by_name)
    done = driver.decode_actions(driver.session.function_result("call_1", '{"t": 21}', None))
    assert [o["output"] for o in outputs(done)] == ['{"t": 21}']
    late = driver.client({**answer, "content": "forged again"})  # after the proxy answered
    assert late.only("Error")["code"] == "invalid_message" and not outputs(late)


def test_function_results_take_turns_a_call_loop_is_bounded() -> None:
    driver = driver_with_function(turn_rate=1.0, turn_burst=1)
    model_calls(driver, "call_1")
    first = driver.decode_actions(driver.session.function_result("call_1", "21", None))
    assert first.upstream_types() == ["conversation.item.create", "response.create"]
    driver.respond("resp_2")
    driver.upstream(events.function_call("call_2", "get_weather", "{}", response_id="resp_2"))
    driver.finish("resp_2")
    second = driver.decode_actions(driver.session.function_result("call_2", "21", None))
    # The output is in the conversation (every call has its output), no response asked.
    assert second.upstream_types() == ["conversation.item.create"]
    assert second.only("Error")["code"] == "rate_limited"
    driver.clock.advance(1.0)  # a turn later, the next result is answered again
    driver.respond("resp_3")
    driver.upstream(events.function_call("call_3", "get_weather", "{}", response_id="resp_3"))
    driver.finish("resp_3")
    third = driver.decode_actions(driver.session.function_result("call_3", "21", None))
    assert third.upstream_types() == ["conversation.item.create", "response.create"]


def test_the_answer_is_capped_json_escaped_for_the_client_and_upstream() -> None:
    policy = FunctionEndpointPolicy.from_options([ALLOWED], max_answer_bytes=64 * 1024)
    driver = driver_with_function(functions=policy)
    model_calls(driver)
    control = "\x01" * 20_000  # 20 KB raw, 120 KB once escaped
    out = driver.decode_actions(driver.session.function_result("call_1", control, None))
    assert out.only("Error")["code"] == "function_endpoint_failed"
    (output,) = outputs(out)
    assert "JSON-escaped" in output["output"] and len(output["output"]) < 200
    assert all(len(orjson.dumps(m)) < 1000 for m in out.to_client)


def test_an_answer_under_the_cap_goes_through() -> None:
    driver = driver_with_function()
    model_calls(driver)
    answer = "\x01" * 1000  # 6 KB escaped
    out = driver.decode_actions(driver.session.function_result("call_1", answer, None))
    assert out.only("FunctionCallResponse")["content"] == answer
    assert [o["output"] for o in outputs(out)] == [answer]


def test_headers_not_allowed_are_not_sent_and_the_client_is_told() -> None:
    driver = Driver(functions=FunctionEndpointPolicy.from_options([ALLOWED]))
    function = {
        "name": "get_weather",
        "endpoint": {"url": f"{ALLOWED}/w", "headers": {"Authorization": "Bearer x"}},
    }
    driver.ready({"type": "Settings", "agent": {"think": {"functions": [function]}}})
    out = model_calls(driver)
    (call,) = out.calls
    assert "Authorization" not in dict(call.request.headers)
    assert "Authorization" in out.only("Warning")["description"]


def test_calls_past_the_pending_bound_are_answered_at_once() -> None:
    """An upstream that calls without end cannot grow the table of calls waiting for the
    client's answer: past the bound, a call is answered upstream with a failure."""
    driver = Driver()
    function = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}
    driver.ready({"type": "Settings", "agent": {"think": {"functions": [function]}}})
    driver.respond()
    for n in range(MAX_PENDING):
        out = driver.upstream(events.function_call(f"call_{n}", "lookup"))
        assert not outputs(out)  # waits for the client's answer
    out = driver.upstream(events.function_call("call_extra", "lookup"))
    answered = outputs(out)
    assert [item["call_id"] for item in answered] == ["call_extra"]
    assert orjson.loads(answered[0]["output"]) == {"error": FULL}
    assert len(driver.session._calls) == MAX_PENDING
