"""Component messages: lenient about extra keys, strict about the shapes we read."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from harness.component_schema import ComponentSchemaError, validate_component_message
from proxy.client_messages import (
    FunctionCallResponse,
    InvalidMessage,
    Settings,
    Think,
    UpdateSpeak,
    parse_client_message,
)
from proxy.server_messages import (
    ConversationText,
    FunctionCallRequest,
    FunctionRequest,
    LatencyReport,
    Warning,
    encode,
)


def test_settings_parse_with_unknown_keys_and_defaults() -> None:
    settings = parse_client_message(
        {"type": "Settings", "experimental": True, "agent": {"language": "en", "greeting": "Hi"}}
    )
    assert isinstance(settings, Settings)
    assert settings.agent_config.greeting == "Hi"
    assert settings.think is None and settings.context_messages == []


def test_v1_fallback_lists_take_the_first_entry() -> None:
    settings = parse_client_message(
        {
            "type": "Settings",
            "agent": {
                "think": [{"prompt": "primary"}, {"prompt": "fallback"}],
                "speak": [{"provider": {"type": "open_ai", "voice": "coral"}}],
            },
        }
    )
    assert isinstance(settings, Settings)
    assert settings.think == Think(prompt="primary")
    assert settings.speak is not None and settings.speak.provider is not None
    assert settings.speak.provider.voice == "coral"
    update = parse_client_message({"type": "UpdateSpeak", "speak": {"provider": {"voice": "x"}}})
    assert isinstance(update, UpdateSpeak)


@pytest.mark.parametrize(
    ("message", "fault"),
    [
        ({"type": "Settings", "agent": {"greeting": 5}}, "Settings.agent.greeting"),
        ({"type": "Settings", "audio": {"input": {"sample_rate": True}}}, "sample_rate"),
        ({"type": "Settings", "audio": {"input": {"sample_rate": "16000"}}}, "sample_rate"),
        ({"type": "Settings", "audio": {"input": {"sample_rate": 16000.0}}}, "an integer"),
        ({"type": "Settings", "agent": {"context": {"messages": [{"role": "system"}]}}}, "role"),
        ({"type": "Settings", "agent": {"context": {"messages": [{"role": "user"}]}}}, "content"),
        ({"type": "Settings", "agent": {"think": {"functions": {"a": 1}}}}, "functions"),
        ({"type": "Settings", "agent": [1]}, "Settings.agent"),
        ({"type": "UpdatePrompt"}, "prompt is required"),
        ({"type": "UpdatePrompt", "prompt": None}, "not null"),
        ({"type": "InjectUserMessage", "content": ["list"]}, "content"),
        ({"type": "InjectUserMessage", "content": None}, "not null"),
        ({"type": "FunctionCallResponse", "id": None, "content": None}, "content"),
        ({"type": "FunctionCallResponse", "id": 7, "content": "x"}, "id"),
        ({"type": "InjectAgentMessage", "message": "x", "behavior": "shout"}, "behavior"),
        ({"type": "InjectAgentMessage"}, "message"),
        ({"type": "UpdateThink", "think": "prompt"}, "think"),
    ],
)
def test_malformed_messages_name_the_field(message: dict[str, Any], fault: str) -> None:
    with pytest.raises(InvalidMessage, match=fault.replace("[", r"\[").replace(".", r"\.")):
        parse_client_message(message)


def test_nulls_are_accepted_only_where_v1_allows_them() -> None:
    settings = parse_client_message(
        {"type": "Settings", "agent": None, "audio": {"input": None}, "flags": None}
    )
    assert isinstance(settings, Settings) and settings.agent is None
    response = parse_client_message({"type": "FunctionCallResponse", "name": "f", "content": "1"})
    assert isinstance(response, FunctionCallResponse) and response.id is None


def test_function_call_response_accepts_json_content() -> None:
    response = parse_client_message(
        {"type": "FunctionCallResponse", "id": "c1", "name": "f", "content": {"ok": True}}
    )
    assert isinstance(response, FunctionCallResponse)
    assert orjson.loads(response.content) == {"ok": True}


def test_outbound_messages_encode_to_the_v1_wire_shape() -> None:
    text = orjson.loads(encode(ConversationText(role="user", content="hi")))
    assert text == {"type": "ConversationText", "role": "user", "content": "hi"}
    request = FunctionCallRequest(functions=[FunctionRequest(id="c", name="f", arguments="{}")])
    wire = orjson.loads(encode(request))
    assert wire["functions"][0]["client_side"] is True
    assert FunctionCallRequest.from_dict(wire) == request
    for message in (
        text,
        wire,
        orjson.loads(encode(Warning(description="d", code="setting_ignored"))),
        orjson.loads(
            encode(LatencyReport(total_latency=1, ttt_token_latency=0.5, tts_latency=0.5))
        ),
    ):
        validate_component_message(message)


def test_the_component_oracle_refuses_what_a_v1_client_would_not_understand() -> None:
    with pytest.raises(ComponentSchemaError, match="unknown message type"):
        validate_component_message({"type": "Nonsense"})
    with pytest.raises(ComponentSchemaError, match="request_id"):
        validate_component_message({"type": "Welcome", "request_id": 5})
    with pytest.raises(ComponentSchemaError, match="unknown field"):
        validate_component_message({"type": "SettingsApplied", "extra": 1})
    validate_component_message({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.5})
