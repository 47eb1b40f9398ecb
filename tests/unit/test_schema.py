"""The schema oracle: GA Realtime events in, SDK models or API-style errors out."""

from __future__ import annotations

from typing import Any

import pytest

from harness.schema import (
    CLIENT_EVENT_TYPES,
    SERVER_EVENT_TYPES,
    SchemaError,
    decode_event,
    validate_client_event,
    validate_server_event,
)

pytestmark = pytest.mark.unit

GA_SESSION_UPDATE: dict[str, Any] = {
    "type": "session.update",
    "event_id": "evt_1",
    "session": {
        "type": "realtime",
        "instructions": "Be brief.",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-transcribe"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            },
            "output": {"voice": "marin"},
        },
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        "tool_choice": "auto",
    },
}


def rejected(event: dict[str, Any], *, server: bool = False) -> SchemaError:
    validate = validate_server_event if server else validate_client_event
    with pytest.raises(SchemaError) as caught:
        validate(event)
    return caught.value


def test_the_sdk_defines_11_client_and_46_server_events() -> None:
    assert len(CLIENT_EVENT_TYPES) == 11
    assert len(SERVER_EVENT_TYPES) == 46
    assert {"session.update", "response.create", "input_audio_buffer.append"} <= CLIENT_EVENT_TYPES
    assert {"session.created", "response.output_audio.delta", "error"} <= SERVER_EVENT_TYPES


@pytest.mark.parametrize(
    "event",
    [
        GA_SESSION_UPDATE,
        {"type": "input_audio_buffer.append", "audio": "AAAA"},
        {"type": "input_audio_buffer.commit"},
        {"type": "response.create", "response": {"output_modalities": ["text"]}},
        {"type": "response.cancel"},
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        },
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
        },
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "content_index": 0,
            "audio_end_ms": 5,
        },
    ],
    ids=lambda e: e["type"],
)
def test_good_client_events_pass(event: dict[str, Any]) -> None:
    model = validate_client_event(event)
    assert model.type == event["type"]  # type: ignore[attr-defined]


def test_good_server_events_pass_including_the_session_keys_the_sdk_does_not_model() -> None:
    validate_server_event(
        {
            "type": "session.created",
            "event_id": "event_1",
            "session": {
                "type": "realtime",
                "object": "realtime.session",
                "id": "sess_1",
                "expires_at": 1700000000,
                "model": "gpt-realtime",
            },
        }
    )
    validate_server_event(
        {
            "type": "response.output_audio.delta",
            "event_id": "event_2",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "AAAA",
        }
    )


def test_an_extra_key_is_an_unknown_parameter_with_its_path() -> None:
    # `temperature` was a beta session field; the GA session.update rejects it.
    event = {"type": "session.update", "session": {"type": "realtime", "temperature": 0.8}}
    error = rejected(event)
    assert error.code == "unknown_parameter"
    assert error.param == "session.temperature"
    assert error.api_message == "Unknown parameter: 'session.temperature'."
    assert "session.update" in str(error)
    assert "session.temperature" in str(error)


def test_unknown_keys_are_found_deep_inside_lists() -> None:
    tool = {"type": "function", "name": "f", "parameters": {}, "endpoint": {"url": "x"}}
    error = rejected({"type": "session.update", "session": {"type": "realtime", "tools": [tool]}})
    assert (error.code, error.param) == ("unknown_parameter", "session.tools[0].endpoint")


def test_free_form_json_parameters_are_not_checked_for_unknown_keys() -> None:
    # A tool's `parameters` is a JSON schema of the user's choosing.
    tool = {"type": "function", "name": "f", "parameters": {"anything": {"goes": True}}}
    validate_client_event(
        {"type": "session.update", "session": {"type": "realtime", "tools": [tool]}}
    )


def test_the_server_may_send_only_the_documented_extra_session_keys() -> None:
    event = {
        "type": "session.updated",
        "event_id": "event_1",
        "session": {"type": "realtime", "id": "sess_1", "temperature": 0.8},
    }
    error = rejected(event, server=True)
    assert (error.code, error.param) == ("unknown_parameter", "session.temperature")
    assert "server event 'session.updated'" in str(error)


def test_a_missing_required_field_names_its_path() -> None:
    error = rejected(
        {"type": "conversation.item.create", "item": {"type": "message", "role": "user"}}
    )
    assert error.code == "missing_required_parameter"
    assert error.param == "item.content"
    assert error.api_message == "Missing required parameter: 'item.content'."


def test_a_wrong_type_says_what_was_expected_and_what_came() -> None:
    error = rejected({"type": "session.update", "session": {"type": "realtime", "instructions": 5}})
    assert error.code == "invalid_type"
    assert error.param == "session.instructions"
    assert "expected a string, but got an integer" in error.api_message


def test_types_are_strict_no_string_to_number_coercion() -> None:
    event = {
        "type": "conversation.item.truncate",
        "item_id": "item_1",
        "content_index": 0,
        "audio_end_ms": "1500",
    }
    error = rejected(event)
    assert (error.code, error.param) == ("invalid_type", "audio_end_ms")


def test_a_value_outside_the_allowed_set_lists_the_allowed_values() -> None:
    # The GA API takes PCM at 24 kHz only.
    event = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
        },
    }
    error = rejected(event)
    assert error.code == "invalid_value"
    assert error.param == "session.audio.input.format.rate"
    assert error.api_message == "Invalid value: 16000. Supported values are: 24000."


def test_an_unknown_event_type_is_an_invalid_value_of_type() -> None:
    error = rejected({"type": "session.updte", "session": {}})
    assert (error.code, error.param) == ("invalid_value", "type")
    assert "'session.updte'" in error.api_message
    assert "'session.update'" in error.api_message  # the supported values are listed


def test_an_event_without_type_is_missing_type() -> None:
    error = rejected({"session": {"type": "realtime"}})
    assert (error.code, error.param) == ("missing_required_parameter", "type")


def test_union_members_that_were_not_meant_do_not_add_noise() -> None:
    # `item` is a union of 9 item kinds; only the user-message errors are relevant.
    item = {"type": "message", "role": "user", "content": [{"type": "input_txt", "text": "x"}]}
    error = rejected({"type": "conversation.item.create", "item": item})
    assert len(error.problems) == 1
    assert error.param == "item.content[0].type"
    assert "'input_text'" in error.api_message


def test_a_discriminator_no_member_accepts_is_blamed() -> None:
    item = {"type": "message", "role": "bot", "content": []}
    error = rejected({"type": "conversation.item.create", "item": item})
    assert (error.code, error.param) == ("invalid_value", "item.role")
    assert "Supported values are: 'system', 'user', 'assistant'." in error.api_message


def test_several_problems_are_listed_one_per_line() -> None:
    event = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": 5,
            "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": "high"}}},
        },
    }
    error = rejected(event)
    params = {p.param for p in error.problems}
    assert params == {"session.instructions", "session.audio.input.turn_detection.threshold"}
    assert len(str(error).splitlines()) == 1 + len(error.problems)


def test_a_non_object_event_is_an_invalid_type() -> None:
    with pytest.raises(SchemaError) as caught:
        validate_client_event([1, 2])  # type: ignore[arg-type]
    assert caught.value.code == "invalid_type"


@pytest.mark.parametrize("raw", ["not json{", b"\xff\xfe", "[1, 2]", '"text"'])
def test_decode_event_rejects_what_is_not_a_json_object(raw: str | bytes) -> None:
    with pytest.raises(SchemaError) as caught:
        decode_event(raw)
    assert caught.value.code == "invalid_json"


def test_decode_event_returns_the_dict() -> None:
    assert decode_event(b'{"type": "response.create"}') == {"type": "response.create"}
