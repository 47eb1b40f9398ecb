"""FunctionCallRequest runs a handler in the page; its result reaches the model."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from harness.browser import VoiceAgentApp
from harness.mock_openai import MockRealtime


def test_built_in_get_current_time_is_called_and_its_result_answered(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    mock_openai.on_user_text("time").call_function("get_current_time", {"timezone": "UTC"})
    voice_app.open(functions=["get_current_time"])
    voice_app.connect()
    tools = mock_openai.wait_for_sync("session.update")["session"]["tools"]
    assert [tool["name"] for tool in tools] == ["get_current_time"]

    reply = voice_app.ask("what time is it?")

    expect(voice_app.testid("function-call-tracker")).to_have_text("1")
    output = mock_openai.wait_for_sync(
        "conversation.item.create", where=lambda e: e["item"]["type"] == "function_call_output"
    )["item"]
    call = mock_openai.sent("response.function_call_arguments.done")[0]
    assert output["call_id"] == call["call_id"]
    result = json.loads(output["output"])
    assert result["timezone"] == "UTC" and result["time"]
    assert reply == f"The function returned: {output['output']}"


def test_a_handler_the_test_registers_receives_the_arguments(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    calls: list[dict[str, Any]] = []

    def get_weather(arguments: dict[str, Any]) -> dict[str, Any]:
        calls.append(arguments)
        return {"city": arguments["city"], "temperature_c": 21}

    mock_openai.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    mock_openai.on_function_output("get_weather").reply_with_audio("It is 21 degrees in Paris.")
    voice_app.register_function(
        {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
        get_weather,
    )
    voice_app.connect()

    reply = voice_app.ask("weather in Paris?")

    assert reply == "It is 21 degrees in Paris."
    assert calls == [{"city": "Paris"}]
    output = mock_openai.wait_for_sync(
        "conversation.item.create", where=lambda e: e["item"]["type"] == "function_call_output"
    )["item"]
    assert json.loads(output["output"]) == {"city": "Paris", "temperature_c": 21}
    expect(voice_app.testid("function-call-tracker")).to_have_text("1")


def test_a_call_to_an_unregistered_function_is_answered_with_an_error_result(
    voice_app: VoiceAgentApp, mock_openai: MockRealtime
) -> None:
    mock_openai.on_user_text("launch").call_function("launch_rocket", {})
    voice_app.connect()

    reply = voice_app.ask("launch it")

    output = mock_openai.wait_for_sync(
        "conversation.item.create", where=lambda e: e["item"]["type"] == "function_call_output"
    )["item"]
    assert json.loads(output["output"]) == {"error": "no handler registered for launch_rocket"}
    assert reply.startswith("The function returned:")
    expect(voice_app.testid("function-call-tracker")).to_have_text("1")
