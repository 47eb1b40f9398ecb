"""What the real OpenAI Realtime service does that a friendly mock does not
(docs/real-service.md), fed straight to the session core.

Sources: the TS reference proxy's records of the live API (Signal-Meaning/dg_react_agent,
`docs/issues/`: ISSUE-414 "server had an error", ISSUE-482/489 (AgentAudioDone, turn
order), ISSUE-522 (function-call flow); `packages/voice-agent-backend/scripts/openai-proxy/`
PROTOCOL-AND-MESSAGE-ORDERING.md §3.6 (the empty-commit error with server VAD)), and
OpenAI's reference for `response.done` (`status_details`) and `conversation_id: null` of
out-of-band responses.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.mock_openai import tone_pcm16
from proxy.function_policy import FunctionEndpointPolicy
from tests.unit import realtime_events as events
from tests.unit.session_driver import Driver, Outcome

NO_GREETING: dict[str, Any] = {"type": "Settings"}
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"


def user_text(driver: Driver, text: str) -> Outcome:
    return driver.client({"type": "InjectUserMessage", "content": text})


def server_error(**fields: Any) -> dict[str, Any]:
    """The error the reference recorded: no event_id, code server_error (or none)."""
    return events.error(fields.pop("code", "server_error"), SERVER_ERROR, type="server_error")


def function_response(call_id: str, content: str = "ok") -> dict[str, Any]:
    return {"type": "FunctionCallResponse", "id": call_id, "name": "f", "content": content}


# ------------------------------------------------------------------ unattributed errors


def test_an_unattributed_error_releases_the_requested_response(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    user_text(driver, "a")  # its response.create is on its way
    user_text(driver, "b")  # waits behind it
    out = driver.upstream(server_error())
    assert out.to_client == [{"type": "Error", "description": SERVER_ERROR, "code": "server_error"}]
    assert out.upstream_types() == ["response.create"]  # b's turn goes now, not in 30 s
    driver.respond("resp_b")
    assert driver.finish("resp_b").types()[0] == "AgentAudioDone"
    assert driver.tick(31).to_client == []  # and nothing times out later


def test_an_unattributed_error_with_nothing_queued_frees_the_gate_at_once(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    user_text(driver, "a")
    assert driver.upstream(server_error(code=None)).types() == ["Error"]
    assert user_text(driver, "b").upstream_types()[-1] == "response.create"
    assert driver.tick(31).types() == ["Error"]  # b's response is now the one waited for


def test_no_timeout_error_after_a_refused_response_create(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    create = user_text(driver, "a").upstream[-1]
    driver.upstream(events.error("x", "refused", event_id=create["event_id"]))
    out = driver.tick(31)
    assert out.to_client == [] and out.upstream == []  # no upstream_timeout, no cancel


def test_an_unattributed_error_during_a_response_is_told_once_and_ends_nothing(
    driver: Driver,
) -> None:
    driver.ready(NO_GREETING)
    user_text(driver, "a")
    driver.respond()
    assert driver.upstream(server_error()).types() == ["Error"]
    assert "response.create" not in user_text(driver, "b").upstream_types()  # still running
    failed = driver.finish_with(
        "failed",
        status_details={"type": "failed", "error": {"type": "server_error", "code": "x"}},
    )
    assert failed.types() == ["AgentAudioDone"]  # the Error was told once
    assert failed.upstream_types() == ["response.create"]


def test_an_unattributed_error_while_idle_is_only_told(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    out = driver.upstream(server_error())
    assert out.types() == ["Error"] and out.upstream == []
    assert user_text(driver, "a").upstream_types()[-1] == "response.create"


def test_a_refused_first_settings_without_event_id_can_be_corrected(driver: Driver) -> None:
    driver.upstream(events.session_created())
    driver.client(NO_GREETING)
    refused = driver.upstream(
        events.error(
            "invalid_value",
            "Invalid value: 'robot'. Supported values are: 'alloy', ...",
            param="session.audio.output.voice",
            type="server_error",  # the param alone names the session.update
        )
    )
    assert refused.types() == ["Error"]
    assert driver.client(NO_GREETING).upstream_types() == ["session.update"]
    assert driver.upstream(events.session_updated()).types() == ["SettingsApplied"]


def test_a_refused_update_without_event_id_does_not_time_the_session_out(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.client({"type": "UpdatePrompt", "prompt": "x" * 10})
    out = driver.upstream(events.error("invalid_value", "bad instructions", event_id=None))
    assert out.types() == ["Error"]
    later = driver.tick(16)
    assert later.client_close is None and later.to_client == []


def test_an_error_naming_another_field_leaves_the_update_outstanding(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.client({"type": "UpdatePrompt", "prompt": "Be brief."})
    truncate = events.error("invalid_value", "audio_end_ms is too large", param="audio_end_ms")
    assert driver.upstream(truncate).types() == ["Error"]
    assert driver.upstream(events.session_updated()).types() == ["PromptUpdated"]


def test_a_late_cancel_is_not_reported_even_without_its_event_id(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    out = driver.upstream(
        events.error("response_cancel_not_active", "Cancellation failed: no active response")
    )
    assert out.to_client == []


# ------------------------------------------------------------------ terminal statuses


@pytest.mark.parametrize(
    ("status", "details", "told"),
    [
        (
            "failed",
            {"type": "failed", "error": {"type": "server_error", "code": "server_error"}},
            [("Error", "server_error")],
        ),
        ("failed", {"type": "failed"}, [("Error", "response_failed")]),
        ("failed", None, [("Error", "response_failed")]),
        (
            "incomplete",
            {"type": "incomplete", "reason": "max_output_tokens"},
            [("Warning", "response_incomplete")],
        ),
        (
            "incomplete",
            {"type": "incomplete", "reason": "content_filter"},
            [("Warning", "response_incomplete")],
        ),
        ("cancelled", {"type": "cancelled", "reason": "turn_detected"}, []),
        ("cancelled", {"type": "cancelled", "reason": "client_cancelled"}, []),
        ("completed", None, []),  # text or function calls only: the turn ends all the same
    ],
)
def test_every_terminal_status_ends_the_agents_turn(
    driver: Driver, status: str, details: dict[str, Any] | None, told: list[tuple[str, str]]
) -> None:
    driver.ready(NO_GREETING)
    user_text(driver, "hi")
    assert driver.respond().types() == ["AgentThinking"]
    fields = {"status_details": details} if details is not None else {}
    out = driver.finish_with(status, **fields)
    said = [(m["type"], m["code"]) for m in out.to_client if m["type"] in ("Error", "Warning")]
    assert said == told
    assert out.types()[len(told)] == "AgentAudioDone"  # after the why, never stuck thinking
    assert out.types().count("AgentAudioDone") == 1


def test_the_why_of_an_incomplete_response_is_said(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond()
    out = driver.finish_with(
        "incomplete", status_details={"type": "incomplete", "reason": "content_filter"}
    )
    assert "content filter" in out.only("Warning")["description"]


def test_a_cancelled_response_after_its_audio_ends_once(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond()
    driver.upstream(events.audio_delta("item_a", tone_pcm16(100, rate=24000)))
    driver.upstream(events.transcript_done("item_a", "Well,"))
    assert driver.upstream(events.audio_done("item_a")).types() == ["AgentAudioDone"]
    out = driver.finish_with("cancelled", status_details={"type": "cancelled"})
    assert "AgentAudioDone" not in out.types()


# ------------------------------------------------------------------ turn order


def test_agent_audio_done_waits_for_the_turns_text(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond()
    driver.upstream(events.audio_delta("item_a", tone_pcm16(100, rate=24000)))
    assert driver.upstream(events.audio_done("item_a")).types() == []
    out = driver.upstream(events.transcript_done("item_a", "It is noon."))
    assert out.types() == ["ConversationText", "AgentAudioDone"]
    assert "AgentAudioDone" not in driver.finish().types()


def test_without_a_transcript_response_done_releases_agent_audio_done(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond()
    driver.upstream(events.audio_delta("item_a", tone_pcm16(100, rate=24000)))
    assert driver.upstream(events.audio_done("item_a")).types() == []
    assert driver.finish().types()[0] == "AgentAudioDone"


def test_exact_speech_ends_at_its_audio_done(driver: Driver) -> None:
    out = driver.ready({"type": "Settings", "agent": {"greeting": "Hello!"}})
    assert out.types() == ["SettingsApplied", "ConversationText"]  # the exact text, first
    driver.respond("resp_greet")
    driver.upstream(events.audio_delta("item_g", tone_pcm16(100, rate=24000), "resp_greet"))
    done = driver.upstream(events.audio_done("item_g", "resp_greet"))
    assert done.types() == ["AgentAudioDone"]


# ------------------------------------------------------------------ assistant text


def test_text_only_in_response_done_reaches_the_client_once(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond()
    driver.upstream(events.audio_delta("item_a", tone_pcm16(100, rate=24000)))
    driver.upstream(events.audio_done("item_a"))
    out = driver.finish_with("completed", output=[events.assistant_message("item_a", "Noon.")])
    assert out.types()[:2] == ["ConversationText", "AgentAudioDone"]
    assert out.to_client[0]["content"] == "Noon."
    again = driver.upstream(events.assistant_item_done("item_a", "Noon."))
    assert again.to_client == []


def test_a_cut_off_answer_in_response_done_is_not_a_turn(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond()
    driver.upstream(events.audio_delta("item_a", tone_pcm16(1000, rate=24000)))
    driver.clock.advance(0.3)
    driver.upstream(events.speech_started())  # barge-in: the item is cut to what was heard
    cut = events.assistant_message("item_a", "Once upon")
    out = driver.finish_with(
        "cancelled", status_details={"type": "cancelled", "reason": "turn_detected"}, output=[cut]
    )
    assert "ConversationText" not in out.types()


@pytest.mark.parametrize("source", ["added", "text_in_output"])
def test_assistant_text_is_found_wherever_it_comes(driver: Driver, source: str) -> None:
    driver.ready(NO_GREETING)
    driver.respond()
    if source == "added":
        out = driver.upstream(events.item_added(events.assistant_message("item_a", "Hi.")))
    else:
        message = events.assistant_message("item_a", "Hi.", part="output_text")
        out = driver.finish_with("completed", output=[message])
    assert [m for m in out.to_client if m["type"] == "ConversationText"] == [
        {"type": "ConversationText", "role": "assistant", "content": "Hi."}
    ]
    assert driver.upstream(events.transcript_done("item_a", "Hi.")).to_client == []


# ------------------------------------------------------------------ ForceEndTurn and VAD


def _speak(driver: Driver) -> None:
    driver.upstream(events.speech_started())
    for _ in range(5):
        driver.audio(tone_pcm16(20))  # 100 ms: a batch goes upstream


def test_force_end_turn_after_vads_commit_asks_for_nothing(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    _speak(driver)
    driver.upstream(events.speech_stopped(900))
    driver.upstream(events.audio_committed())
    driver.respond("resp_vad")  # VAD answers on its own
    out = driver.client({"type": "ForceEndTurn"})
    assert set(out.upstream_types()) <= {"input_audio_buffer.append"}  # held audio only
    assert out.to_client == []
    assert driver.finish("resp_vad").upstream == []  # and nothing is asked after it


def test_force_end_turn_after_vads_turn_was_answered_commits_new_audio(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    _speak(driver)
    driver.upstream(events.speech_stopped(900))
    driver.upstream(events.audio_committed())
    driver.respond("resp_vad")
    driver.finish("resp_vad")
    for _ in range(5):
        driver.audio(tone_pcm16(20))  # said too quietly for VAD: no speech_started
    forced = driver.client({"type": "ForceEndTurn"})
    assert forced.upstream_types()[-2:] == ["input_audio_buffer.commit", "response.create"]


def test_force_end_turn_after_speech_stopped_asks_for_nothing(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    _speak(driver)
    driver.upstream(events.speech_stopped(900))  # VAD's commit and answer are on their way
    out = driver.client({"type": "ForceEndTurn"})
    assert "input_audio_buffer.commit" not in out.upstream_types()
    assert "response.create" not in out.upstream_types()


def test_force_end_turn_with_no_audio_since_the_last_commit_asks_for_nothing(
    driver: Driver,
) -> None:
    driver.ready(NO_GREETING)
    out = driver.client({"type": "ForceEndTurn"})
    assert out.upstream == [] and out.to_client == []


@pytest.mark.parametrize("echoed", [True, False])
def test_a_commit_racing_vads_is_not_answered_twice(driver: Driver, echoed: bool) -> None:
    driver.ready(NO_GREETING)
    _speak(driver)
    forced = driver.client({"type": "ForceEndTurn"})
    assert forced.upstream_types()[-2:] == ["input_audio_buffer.commit", "response.create"]
    commit = forced.upstream[-2]
    # VAD committed first: its commit and answer arrive, then ours is refused as empty.
    driver.upstream(events.speech_stopped(900))
    driver.upstream(events.audio_committed())
    driver.respond("resp_vad")
    empty = driver.upstream(
        events.error(
            "input_audio_buffer_commit_empty",
            "Error committing input audio buffer: buffer too small. Expected at least 100ms "
            "of audio, but buffer only has 0.00ms of audio.",
            event_id=commit["event_id"] if echoed else None,
        )
    )
    assert empty.to_client == []  # our own commit: nothing to tell the client
    raced = driver.upstream(
        events.error(
            "conversation_already_has_active_response",
            "Conversation already has an active response in progress: resp_vad.",
        )
    )
    assert raced.to_client == [] and raced.upstream == []
    assert driver.finish("resp_vad").upstream == []  # no second answer to that speech


def test_a_commit_queued_behind_a_response_is_withdrawn_when_empty(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond("resp_0")  # something is running: the forced turn waits
    _speak(driver)
    forced = driver.client({"type": "ForceEndTurn"})
    assert forced.upstream_types()[-1] == "input_audio_buffer.commit"
    driver.upstream(events.error("input_audio_buffer_commit_empty", "buffer too small"))
    assert driver.finish("resp_0").upstream == []


def test_a_text_turn_sharing_the_forced_turn_is_never_withdrawn(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond("resp_0")
    _speak(driver)
    driver.client({"type": "ForceEndTurn"})
    user_text(driver, "and also this")
    driver.upstream(events.error("input_audio_buffer_commit_empty", "buffer too small"))
    assert driver.finish("resp_0").upstream_types() == ["response.create"]


# ------------------------------------------------------------------ odd-length audio

OUTPUTS = [
    *[
        {"output": {"encoding": "linear16", "sample_rate": rate}}
        for rate in (8000, 16000, 24000, 32000, 44100, 48000)
    ],
    {"output": {"encoding": "mulaw", "sample_rate": 8000}},  # transcoded from 24 kHz PCM
    {
        "input": {"encoding": "alaw", "sample_rate": 8000},
        "output": {"encoding": "alaw", "sample_rate": 8000},
    },  # passthrough: every byte is a sample
]


@pytest.mark.parametrize("audio", OUTPUTS, ids=lambda a: "-".join(map(str, a["output"].values())))
def test_binary_frames_hold_whole_samples_whatever_the_deltas(
    driver: Driver, audio: dict[str, Any]
) -> None:
    driver.ready({"type": "Settings", "audio": audio})
    driver.respond()
    pcm = tone_pcm16(400, rate=24000)
    frames: list[bytes] = []
    start = 0
    for size in (4801, 1, 3, 4799, 2, 1201):
        frames += driver.upstream(events.audio_delta("item_a", pcm[start : start + size])).audio
        start += size
    frames += driver.upstream(events.audio_done("item_a")).audio
    encoding = audio["output"]["encoding"]
    width = 2 if encoding == "linear16" else 1
    assert frames and all(len(frame) % width == 0 for frame in frames)
    if audio["output"] == {"encoding": "linear16", "sample_rate": 24000}:
        assert b"".join(frames) == pcm[: start - 1]  # the odd last byte is half a sample


def test_an_odd_byte_never_crosses_into_the_next_item(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond()
    (first,) = driver.upstream(events.audio_delta("item_a", b"\x01" * 4801)).audio
    assert len(first) == 4800  # the odd byte waits for the item's next delta...
    second = b"\x02\x03" * 2400
    (frame,) = driver.upstream(events.audio_delta("item_b", second)).audio
    assert frame == second  # ... and never prefixes another item's samples


def test_barge_in_drops_the_carried_byte(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond()
    (first,) = driver.upstream(events.audio_delta("item_a", b"\x01" * 4801)).audio
    assert len(first) == 4800
    driver.upstream(events.speech_started())
    driver.finish()
    driver.respond("resp_2")
    after = b"\x02\x03" * 2400
    (frame,) = driver.upstream(events.audio_delta("item_b", after, "resp_2")).audio
    assert frame == after


# ------------------------------------------------------------------ parallel function calls


def _two_calls(driver: Driver, settings: dict[str, Any] | None = None) -> None:
    driver.ready(settings or NO_GREETING)
    driver.respond()
    driver.upstream(events.function_call("call_1", "f", '{"n": 1}'))
    driver.upstream(events.function_call("call_2", "f", '{"n": 2}'))


def test_the_follow_up_waits_for_every_call_of_the_response(driver: Driver) -> None:
    _two_calls(driver)
    driver.finish()
    first = driver.client(function_response("call_1"))
    assert first.upstream_types() == ["conversation.item.create"]
    second = driver.client(function_response("call_2"))
    assert second.upstream_types() == ["conversation.item.create", "response.create"]


def test_outputs_before_the_response_ends_are_followed_up_once_at_its_end(
    driver: Driver,
) -> None:
    _two_calls(driver)
    assert driver.client(function_response("call_2")).upstream_types() == [
        "conversation.item.create"
    ]
    assert driver.client(function_response("call_1")).upstream_types() == [
        "conversation.item.create"
    ]
    assert driver.finish().upstream_types() == ["response.create"]


def test_a_server_side_call_and_a_client_call_in_one_response(driver: Driver) -> None:
    driver = Driver(functions=FunctionEndpointPolicy.from_options(["https://tools.example"]))
    settings = {
        "type": "Settings",
        "agent": {
            "think": {
                "functions": [
                    {"name": "remote", "endpoint": {"url": "https://tools.example/f"}},
                    {"name": "f"},
                ]
            }
        },
    }
    driver.ready(settings)
    driver.respond()
    remote = driver.upstream(events.function_call("call_r", "remote"))
    assert len(remote.calls) == 1
    driver.upstream(events.function_call("call_c", "f"))
    driver.finish()
    answered = driver.decode_actions(driver.session.function_result("call_r", "42", None))
    assert "response.create" not in answered.upstream_types()
    last = driver.client(function_response("call_c"))
    assert last.upstream_types() == ["conversation.item.create", "response.create"]


def test_cancelled_calls_never_block_the_conversation(driver: Driver) -> None:
    _two_calls(driver)
    driver.client(function_response("call_1"))
    barge = driver.upstream(events.speech_started())
    assert barge.only("FunctionCallCancelled")["functions"] == [{"id": "call_2", "name": "f"}]
    assert driver.finish().upstream == []  # the user moved on: no follow-up to the calls
    assert "response.create" not in driver.client(function_response("call_2")).upstream_types()
    assert user_text(driver, "next").upstream_types()[-1] == "response.create"


def test_a_call_found_only_in_response_done_is_requested_once(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.respond()
    driver.upstream(events.function_call("call_1", "f", '{"n": 1}'))
    call = {"type": "function_call", "id": "item_c2", "call_id": "call_2", "name": "f"}
    late = {**call, "arguments": '{"n": 2}', "object": "realtime.item", "status": "completed"}
    first = {**late, "id": "item_c1", "call_id": "call_1", "arguments": '{"n": 1}'}
    done = driver.finish_with("completed", output=[first, late])
    (request,) = [m for m in done.to_client if m["type"] == "FunctionCallRequest"]
    assert request["functions"][0]["id"] == "call_2"  # call_1 was already asked for
    assert driver.client(function_response("call_1")).upstream_types() == [
        "conversation.item.create"
    ]
    assert driver.client(function_response("call_2")).upstream_types()[-1] == "response.create"


def test_history_of_a_client_call_carries_its_arguments(driver: Driver) -> None:
    driver.ready({"type": "Settings", "flags": {"history": True}})
    driver.respond()
    driver.upstream(events.function_call("call_1", "get_time", '{"tz": "UTC"}'))
    out = driver.client(
        {"type": "FunctionCallResponse", "id": "call_1", "name": "get_time", "content": "12:00"}
    )
    (call,) = out.only("History")["function_calls"]
    assert call == {
        "id": "call_1",
        "name": "get_time",
        "client_side": True,
        "arguments": '{"tz": "UTC"}',
        "response": "12:00",
    }


# ------------------------------------------------------------------ fields nobody reads


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"type": "response.output_audio.delta", "item_id": "i", "delta": "AAAA"},
            "audio",
        ),
        ({"type": "session.updated"}, "SettingsApplied"),
        (
            {
                "type": "conversation.item.done",
                "item": {
                    "id": "i",
                    "type": "message",
                    "role": "assistant",
                    "content": [{"transcript": "Hi"}],
                },
            },
            "ConversationText",
        ),
        ({"type": "input_audio_buffer.speech_started"}, "UserStartedSpeaking"),
        (
            {
                "type": "response.function_call_arguments.done",
                "call_id": "c",
                "name": "f",
                "arguments": "{}",
            },
            "FunctionCallRequest",
        ),
        (
            {"type": "conversation.item.input_audio_transcription.completed", "transcript": "hi"},
            "ConversationText",
        ),
        ({"type": "session.created"}, "Welcome"),
    ],
)
def test_an_event_missing_a_field_the_proxy_does_not_read_is_handled(
    event: dict[str, Any], expected: str
) -> None:
    driver = Driver()
    if event["type"] != "session.created":
        driver.upstream(events.session_created())
    driver.client(NO_GREETING)
    if event["type"] != "session.updated":
        driver.upstream(events.session_updated())
    out = driver.upstream(event)
    if expected == "audio":
        assert out.audio
    else:
        assert expected in out.types(), out.types()
    assert "Error" not in out.types()


# ------------------------------------------------------------------ out-of-band speech


def test_out_of_band_speech_is_known_without_a_metadata_echo(driver: Driver) -> None:
    driver.ready({"type": "Settings", "agent": {"greeting": "Hello there!"}})
    driver.upstream(events.response_created("resp_greet", conversation_id=None))
    driver.upstream(events.audio_delta("item_g", tone_pcm16(300, rate=24000), "resp_greet"))
    # The model's rendering of the words is not a second assistant turn...
    rendering = driver.upstream(events.transcript_done("item_g", "Hello there.", "resp_greet"))
    assert rendering.to_client == []
    # ... and barge-in cancels it (no item of ours to truncate: it is out of band).
    barge = driver.upstream(events.speech_started())
    assert barge.upstream_types() == ["response.cancel"]


def test_vads_answer_racing_our_speech_is_not_taken_for_it(driver: Driver) -> None:
    driver.ready({"type": "Settings", "agent": {"greeting": "Hello there!"}})
    driver.upstream(events.response_created("resp_vad", conversation_id="conv_1"))
    text = driver.upstream(events.transcript_done("item_v", "Sure.", "resp_vad"))
    assert text.types()[0] == "ConversationText"
    # Our speech's own response follows: known, though the gate saw another first.
    driver.upstream(events.response_created("resp_greet", conversation_id=None))
    rendering = driver.upstream(events.transcript_done("item_g", "Hello there.", "resp_greet"))
    assert rendering.to_client == []
