"""Component messages: lenient about extra keys, strict about the shapes we use."""

from __future__ import annotations

import orjson
import pytest

from proxy.messages import (
    ConversationText,
    FunctionCallRequest,
    FunctionCallResponse,
    FunctionRequest,
    InvalidMessage,
    Settings,
    encode,
    parse_client_message,
)


def test_settings_parse_with_unknown_keys_and_defaults() -> None:
    settings = parse_client_message(
        {"type": "Settings", "experimental": True, "agent": {"language": "en", "greeting": "Hi"}}
    )
    assert isinstance(settings, Settings)
    assert settings.agent.greeting == "Hi"
    assert settings.input_sample_rate == 16000 and settings.output_sample_rate == 24000


@pytest.mark.parametrize(
    "message",
    [
        {"type": "Settings", "agent": {"greeting": 5}},
        {"type": "Settings", "agent": {"think": {"functions": [{"description": "no name"}]}}},
        {"type": "Settings", "audio": {"input": {"sample_rate": -1}}},
        {
            "type": "Settings",
            "agent": {"context": {"messages": [{"role": "system", "content": "x"}]}},
        },
        {"type": "UpdatePrompt"},
        {"type": "InjectUserMessage", "content": ["list"]},
    ],
)
def test_malformed_messages_raise_invalid_message(message: dict[str, object]) -> None:
    with pytest.raises(InvalidMessage):
        parse_client_message(message)


def test_function_call_response_accepts_json_content() -> None:
    response = parse_client_message(
        {"type": "FunctionCallResponse", "id": "c1", "name": "f", "content": {"ok": True}}
    )
    assert isinstance(response, FunctionCallResponse)
    assert orjson.loads(response.content) == {"ok": True}


def test_outbound_messages_encode_to_the_wire_shape() -> None:
    assert orjson.loads(encode(ConversationText(role="user", content="hi"))) == {
        "type": "ConversationText",
        "role": "user",
        "content": "hi",
    }
    request = FunctionCallRequest(functions=[FunctionRequest(id="c", name="f", arguments="{}")])
    wire = orjson.loads(encode(request))
    assert wire["functions"][0]["client_side"] is True
    assert FunctionCallRequest.from_dict(wire) == request
