"""The session core, fed events directly: ordering rules and the rows of docs/protocol-mapping.md.

Every upstream event a test feeds is shaped like the real service's (realtime_events),
every event the session sends upstream is checked by the `openai` models and every
frame to the client by the `deepgram-sdk` models (session_driver).
"""

from __future__ import annotations

import base64
from unittest.mock import ANY

from harness.mock_openai import tone_pcm16
from proxy.errors import ErrorCode
from tests.unit import realtime_events as events
from tests.unit.session_driver import Driver, Outcome, decode

SETTINGS = {
    "type": "Settings",
    "audio": {"input": {"encoding": "linear16", "sample_rate": 16000}},
    "agent": {
        "think": {
            "provider": {"type": "open_ai", "model": "gpt-realtime"},
            "prompt": "You are terse.",
            "functions": [
                {
                    "name": "get_time",
                    "description": "Current time",
                    "parameters": {"type": "object", "properties": {}},
                }
            ],
        },
        "speak": {"provider": {"type": "open_ai", "model": "tts-1", "voice": "shimmer"}},
        "greeting": "Hello! How can I help?",
    },
}
NO_GREETING = {**SETTINGS, "agent": {k: v for k, v in SETTINGS["agent"].items() if k != "greeting"}}  # type: ignore[attr-defined]


def tone(ms: int, rate: int = 16000) -> bytes:
    return tone_pcm16(ms, rate=rate)


def user_text(driver: Driver, text: str) -> Outcome:
    return driver.client({"type": "InjectUserMessage", "content": text})


# ------------------------------------------------------------------ readiness


def test_session_created_becomes_welcome_with_the_session_id(driver: Driver) -> None:
    out = driver.upstream(events.session_created("sess_42"))
    assert out.to_client == [{"type": "Welcome", "request_id": "sess_42"}]


def test_settings_before_session_created_is_queued_then_sent(driver: Driver) -> None:
    early = driver.client(SETTINGS)
    assert early.upstream == [] and early.to_client == []
    out = driver.upstream(events.session_created())
    assert out.types() == ["Welcome"]
    assert out.upstream_types() == ["session.update"]


def test_settings_go_upstream_as_soon_as_the_socket_opens(driver: Driver) -> None:
    # No round trip for session.created at connect: the API takes events once the socket
    # is open. The client still hears Welcome first.
    assert driver.client(NO_GREETING).upstream == []  # the socket is not open yet
    opened = driver.decode_actions(driver.session.upstream_connected())
    assert opened.upstream_types() == ["session.update"] and opened.to_client == []
    assert driver.upstream(events.session_created()).types() == ["Welcome"]
    assert driver.upstream(events.session_updated()).types() == ["SettingsApplied"]


def test_what_early_settings_tell_the_client_follows_welcome(driver: Driver) -> None:
    driver.session.upstream_connected()
    chat_model = {"type": "Settings", "agent": {"think": {"provider": {"model": "gpt-4o"}}}}
    early = driver.client(chat_model)
    assert early.upstream_types() == ["session.update"] and early.to_client == []
    assert driver.upstream(events.session_created()).types() == ["Welcome", "Warning"]
    assert driver.upstream(events.session_updated()).types() == ["SettingsApplied"]


def test_upstream_closing_after_the_socket_opened_but_before_session_created(
    driver: Driver,
) -> None:
    driver.session.upstream_connected()
    driver.client(NO_GREETING)
    out = decode_close(driver, 1011)
    assert [m["code"] for m in out.to_client] == ["upstream_closed_before_session_ready"]


def test_user_text_sent_before_settings_applied_waits_in_order(driver: Driver) -> None:
    driver.upstream(events.session_created())
    driver.client(SETTINGS)
    assert user_text(driver, "one").upstream == []
    assert user_text(driver, "two").upstream == []
    out = driver.upstream(events.session_updated())
    texts = [e["item"]["content"][0]["text"] for e in out.upstream if "item" in e]
    # The greeting is said first, then the queued turns come in arrival order.
    assert texts == ["Hello! How can I help?", "one", "two"]
    assert out.upstream_types().count("response.create") == 1  # one at a time
    assert out.types()[0] == "SettingsApplied"


def test_text_queued_before_settings_and_upstream_is_released_after_settings(
    driver: Driver,
) -> None:
    user_text(driver, "early")
    driver.client(NO_GREETING)
    out = driver.upstream(events.session_created())
    assert out.upstream_types() == ["session.update"]
    out = driver.upstream(events.session_updated())
    assert "early" in [e["item"]["content"][0]["text"] for e in out.upstream if "item" in e]


def test_settings_translate_to_ga_session_update(driver: Driver) -> None:
    driver.upstream(events.session_created())
    (update,) = driver.client(SETTINGS).upstream
    session = update["session"]
    assert session["type"] == "realtime"
    assert session["instructions"] == "You are terse."
    assert session["tools"] == [
        {
            "type": "function",
            "name": "get_time",
            "description": "Current time",
            "parameters": {"type": "object", "properties": {}},
        }
    ]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["transcription"]["model"]
    assert session["audio"]["output"]["voice"] == "shimmer"
    assert session["model"] == "gpt-realtime"
    assert "temperature" not in session


def test_chat_model_and_non_openai_voice_are_kept_out_and_warned_about(driver: Driver) -> None:
    driver.upstream(events.session_created())
    settings = {
        "type": "Settings",
        "agent": {
            "think": {"provider": {"model": "gpt-4o-mini", "temperature": 0.3}},
            "speak": {"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}},
        },
    }
    out = driver.client(settings)
    (update,) = out.upstream
    assert "model" not in update["session"]
    assert "voice" not in update["session"]["audio"]["output"]
    (warning,) = out.to_client
    assert warning["type"] == "Warning" and warning["code"] == "setting_ignored"
    for named in ("gpt-4o-mini", "temperature", "aura-2-thalia-en"):
        assert named in warning["description"]


def test_settings_applied_then_greeting_is_spoken_and_held_upstream(driver: Driver) -> None:
    out = driver.ready(SETTINGS)
    assert out.types() == ["SettingsApplied", "ConversationText"]
    assert out.to_client[1] == {
        "type": "ConversationText",
        "role": "assistant",
        "content": "Hello! How can I help?",
    }
    item, speak = out.upstream
    assert item["item"]["role"] == "assistant"
    assert item["item"]["content"] == [{"type": "output_text", "text": "Hello! How can I help?"}]
    # Spoken by an out-of-band response, so only the exact text is in the conversation.
    assert speak["type"] == "response.create"
    assert speak["response"]["conversation"] == "none"
    assert speak["response"]["input"][0]["content"][0]["text"] == "Hello! How can I help?"
    # The greeting's own item coming back is not a second assistant turn.
    echo = driver.upstream(events.item_done(dict(item["item"], status="completed")))
    assert echo.to_client == []


def test_context_messages_are_replayed_in_order_and_suppress_the_greeting(driver: Driver) -> None:
    settings = dict(SETTINGS)
    settings["agent"] = dict(
        SETTINGS["agent"],  # type: ignore[arg-type]
        context={
            "messages": [
                {"type": "History", "role": "user", "content": "My name is Ada."},
                {"type": "History", "role": "assistant", "content": "Hi Ada."},
                {
                    "type": "History",
                    "function_calls": [
                        {
                            "id": "call_1",
                            "name": "get_time",
                            "client_side": True,
                            "arguments": "{}",
                            "response": "12:00",
                        }
                    ],
                },
            ]
        },
    )
    out = driver.ready(settings)
    assert out.types() == ["SettingsApplied"]
    items = [e["item"] for e in out.upstream]
    assert [(i["type"], i.get("role")) for i in items] == [
        ("message", "user"),
        ("message", "assistant"),
        ("function_call", None),
        ("function_call_output", None),
    ]
    assert items[0]["content"] == [{"type": "input_text", "text": "My name is Ada."}]
    assert items[3] == {"type": "function_call_output", "call_id": "call_1", "output": "12:00"}


def test_a_later_settings_gets_its_own_settings_applied_without_replay(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    again = driver.client(SETTINGS)
    assert again.upstream_types() == ["session.update"]
    out = driver.upstream(events.session_updated())
    assert out.types() == ["SettingsApplied"] and out.upstream == []


def test_rejected_settings_is_reported_and_can_be_corrected(driver: Driver) -> None:
    driver.upstream(events.session_created())
    (update,) = driver.client(SETTINGS).upstream
    refused = driver.upstream(
        events.error("invalid_value", "bad voice", event_id=update["event_id"])
    )
    assert refused.to_client == [
        {"type": "Error", "description": "bad voice", "code": "invalid_value"}
    ]
    assert driver.client(SETTINGS).upstream_types() == ["session.update"]
    assert driver.upstream(events.session_updated()).types()[0] == "SettingsApplied"


# ------------------------------------------------------------------ component -> upstream


def test_inject_user_message_echoes_and_creates_item_then_response(driver: Driver) -> None:
    driver.ready()
    out = user_text(driver, "Hi there")
    assert out.to_client == [{"type": "ConversationText", "role": "user", "content": "Hi there"}]
    assert out.upstream == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi there"}],
            },
        },
        {"type": "response.create", "event_id": ANY},
    ]


def test_only_one_response_create_while_a_response_is_active(driver: Driver) -> None:
    driver.ready()
    assert user_text(driver, "a").upstream_types()[-1] == "response.create"
    # Requested but not yet created: still must not send another.
    assert "response.create" not in user_text(driver, "b").upstream_types()
    driver.respond()
    assert "response.create" not in user_text(driver, "c").upstream_types()
    done = driver.finish()
    assert done.upstream_types() == ["response.create"]  # b and c share one response
    driver.respond("resp_2")
    assert driver.finish("resp_2").upstream == []


def test_active_response_race_is_swallowed_and_retried(driver: Driver) -> None:
    driver.ready()
    user_text(driver, "a")
    driver.respond("resp_vad")  # server VAD's response, which ours then collides with
    raced = driver.upstream(
        events.error(
            "conversation_already_has_active_response",
            "Conversation already has an active response",
        )
    )
    assert raced.to_client == [] and raced.upstream == []
    assert driver.finish("resp_vad").upstream_types() == ["response.create"]


def test_refused_response_create_releases_the_gate_for_the_next_message(
    driver: Driver,
) -> None:
    driver.ready()
    create = user_text(driver, "a").upstream[-1]
    refused = driver.upstream(
        events.error(
            "server_error",
            "The server had an error",
            event_id=create["event_id"],
            type="server_error",
        )
    )
    assert refused.types() == ["Error"]
    # No response.done will ever come for it: the next message must still be answered.
    assert user_text(driver, "b").upstream_types()[-1] == "response.create"


def test_refused_response_create_sends_the_one_queued_behind_it(driver: Driver) -> None:
    driver.ready()
    create = user_text(driver, "a").upstream[-1]
    user_text(driver, "b")  # waits behind a
    refused = driver.upstream(
        events.error("rate_limit_exceeded", "slow down", event_id=create["event_id"])
    )
    assert refused.types() == ["Error"] and refused.upstream_types() == ["response.create"]


def test_function_call_response_becomes_output_item_then_response(driver: Driver) -> None:
    driver.ready()
    out = driver.client(
        {"type": "FunctionCallResponse", "id": "call_1", "name": "get_time", "content": "12:00"}
    )
    assert out.upstream == [
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": "12:00"},
        },
        {"type": "response.create", "event_id": ANY},
    ]


def test_function_call_response_waits_for_the_running_response(driver: Driver) -> None:
    driver.ready()
    driver.respond()
    out = driver.client({"type": "FunctionCallResponse", "id": "c", "name": "f", "content": "{}"})
    assert out.upstream_types() == ["conversation.item.create"]
    assert driver.finish().upstream_types() == ["response.create"]


def test_update_prompt_and_update_speak(driver: Driver) -> None:
    driver.ready()
    (prompt,) = driver.client({"type": "UpdatePrompt", "prompt": "Be kind."}).upstream
    assert prompt["session"] == {"type": "realtime", "instructions": "Be kind."}
    (speak,) = driver.client(
        {"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": "coral"}}}
    ).upstream
    assert speak["session"] == {"type": "realtime", "audio": {"output": {"voice": "coral"}}}
    assert driver.upstream(events.session_updated()).types() == ["PromptUpdated"]
    assert driver.upstream(events.session_updated()).types() == ["SpeakUpdated"]
    not_openai = driver.client(
        {"type": "UpdateSpeak", "speak": {"provider": {"type": "deepgram", "model": "aura-2"}}}
    )
    assert not_openai.upstream == [] and not_openai.types() == ["Warning", "SpeakUpdated"]


def test_keepalive_does_nothing(driver: Driver) -> None:
    driver.ready()
    out = driver.client({"type": "KeepAlive"})
    assert out.to_client == [] and out.upstream == []


# ------------------------------------------------------------------ audio in


def test_binary_audio_is_resampled_to_24k_and_batched(driver: Driver) -> None:
    driver.ready()
    frame = tone(20)  # 640 bytes at 16 kHz
    first = driver.audio(frame)
    assert first.upstream == []  # waits for a batch or the flush deadline
    assert driver.session.next_deadline == driver.clock.now + 0.05
    for _ in range(4):
        out = driver.audio(frame)
    (append,) = out.upstream  # 100 ms reached: one append for five frames
    assert append["type"] == "input_audio_buffer.append"
    pcm = base64.b64decode(append["audio"])
    # 100 ms at 24 kHz is 4800 bytes; the resampler's filter delay holds back a little.
    assert 4000 <= len(pcm) <= 4800 and len(pcm) % 2 == 0


def test_flush_deadline_sends_a_partial_batch(driver: Driver) -> None:
    driver.ready()
    driver.audio(tone(40))
    out = driver.flush()
    assert out.upstream_types() == ["input_audio_buffer.append"]
    assert driver.flush().upstream == []


def test_a_pause_flushes_the_resampler_tail(driver: Driver) -> None:
    driver.ready()
    audio = tone(100)
    total = b"".join(base64.b64decode(e["audio"]) for e in driver.audio(audio).upstream)
    paused = driver.tick(0.3)  # the client stopped sending: the held-back tail goes too
    total += b"".join(base64.b64decode(e["audio"]) for e in paused.upstream)
    assert paused.upstream_types() == ["input_audio_buffer.append"]
    assert abs(len(total) - 1.5 * len(audio)) <= 4  # every sample of the utterance


def test_odd_length_frames_are_carried_not_lost(driver: Driver) -> None:
    driver.ready()
    audio = tone(300)
    sent = 0
    outcomes = []
    for size in (1, 333, 2, 4097, 5):
        outcomes.append(driver.audio(audio[sent : sent + size]))
        sent += size
    outcomes += [driver.audio(audio[sent:]), driver.tick(1.0)]
    total = b"".join(
        base64.b64decode(event["audio"]) for outcome in outcomes for event in outcome.upstream
    )
    assert len(total) % 2 == 0
    assert abs(len(total) - 1.5 * len(audio)) <= 4


def test_audio_sent_before_settings_is_queued_in_order_with_text(driver: Driver) -> None:
    driver.upstream(events.session_created())
    driver.client({"type": "Settings"})
    driver.audio(tone(50))
    user_text(driver, "after audio")
    out = driver.upstream(events.session_updated())
    assert out.upstream_types()[:2] == ["input_audio_buffer.append", "conversation.item.create"]


def test_input_sample_rate_comes_from_settings(driver: Driver) -> None:
    driver.ready(
        {"type": "Settings", "audio": {"input": {"encoding": "linear16", "sample_rate": 24000}}}
    )
    frame = tone(100, rate=24000)
    (append,) = driver.audio(frame).upstream
    assert base64.b64decode(append["audio"]) == frame  # 24 kHz passes through untouched


# ------------------------------------------------------------------ upstream -> component


def test_response_lifecycle_maps_to_agent_messages(driver: Driver) -> None:
    driver.ready()
    user_text(driver, "hi")
    driver.clock.advance(0.2)
    assert driver.respond().to_client == [{"type": "AgentThinking", "content": ""}]
    driver.clock.advance(0.3)
    pcm = tone(100, rate=24000)
    out = driver.upstream(events.audio_delta("item_a", pcm))
    started = out.only("AgentStartedSpeaking")
    assert started["ttt_latency"] == 0.2 and started["tts_latency"] == 0.3
    assert started["total_latency"] == 0.5
    assert out.audio == [pcm]
    second = driver.upstream(events.audio_delta("item_a", pcm))
    assert second.to_client == [] and second.audio == [pcm]
    assert driver.upstream(events.audio_delta("item_a", b"")).audio == []
    # The service sends the audio's .done before the transcript's: AgentAudioDone waits
    # for the turn's text (Deepgram's order: ConversationText, then AgentAudioDone).
    assert driver.upstream(events.audio_done("item_a")).types() == []
    text = driver.upstream(events.transcript_done("item_a", "Hello."))
    assert text.types() == ["ConversationText", "AgentAudioDone"]
    report = driver.finish().only("LatencyReport")
    assert report["total_latency"] == 0.5 and report["tts_latency"] == 0.3


def test_assistant_text_is_reported_exactly_once_per_item(driver: Driver) -> None:
    driver.ready()
    out = driver.upstream(events.transcript_done("item_a", "Hi!"))
    assert out.to_client == [{"type": "ConversationText", "role": "assistant", "content": "Hi!"}]
    assert driver.upstream(events.assistant_item_done("item_a", "Hi!")).to_client == []
    text = driver.upstream(events.text_done("item_b", "Yo"))
    assert text.to_client[0]["content"] == "Yo"
    assert driver.upstream(events.assistant_item_done("item_c", "Only here")).types() == [
        "ConversationText"
    ]


def test_function_call_arguments_done_becomes_function_call_request(driver: Driver) -> None:
    driver.ready()
    event = events.function_call("call_9", "get_time", '{"tz":"UTC"}')
    out = driver.upstream(event)
    assert out.to_client == [
        {
            "type": "FunctionCallRequest",
            "functions": [
                {
                    "id": "call_9",
                    "name": "get_time",
                    "arguments": '{"tz":"UTC"}',
                    "client_side": True,
                }
            ],
        }
    ]
    assert driver.upstream(event).to_client == []


def test_user_speech_events_and_transcripts(driver: Driver) -> None:
    driver.ready()
    assert driver.upstream(events.speech_started("u1")).types() == ["UserStartedSpeaking"]
    stopped = driver.upstream(events.speech_stopped(1500, "u1"))
    assert stopped.to_client == [
        {"type": "UserStoppedSpeaking"},
        {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.5},
    ]
    one = driver.upstream(events.transcription_delta("u1", "what "))
    two = driver.upstream(events.transcription_delta("u1", "time"))
    assert one.only("Transcript")["transcript"] == "what "
    assert two.only("Transcript") == {
        "type": "Transcript",
        "transcript": "what time",
        "is_final": False,
        "speech_final": False,
    }
    done = driver.upstream(events.transcription_completed("u1", "what time is it"))
    # ConversationText first: the dg_react_agent component adds a history entry for a
    # final Transcript unless it is already the latest (so the reverse shows it twice).
    assert done.to_client == [
        {"type": "ConversationText", "role": "user", "content": "what time is it"},
        {
            "type": "Transcript",
            "transcript": "what time is it",
            "is_final": True,
            "speech_final": True,
        },
    ]


def test_unknown_upstream_events_are_ignored_and_garbage_is_reported(driver: Driver) -> None:
    driver.ready()
    assert driver.upstream({"type": "rate_limits.updated", "rate_limits": []}).to_client == []
    assert driver.upstream({"type": "some.future.event"}).to_client == []
    garbage = driver.upstream(b"\x00not json")
    assert garbage.to_client[0]["code"] == "unmapped_upstream_event"


def test_output_audio_is_resampled_to_the_requested_rate(driver: Driver) -> None:
    driver.ready(
        {"type": "Settings", "audio": {"output": {"encoding": "linear16", "sample_rate": 16000}}}
    )
    driver.respond()
    pcm = tone(200, rate=24000)
    out = driver.upstream(events.audio_delta("item_a", pcm))
    (frame,) = out.audio
    assert 0.55 * len(pcm) < len(frame) <= len(pcm) * 2 // 3


def test_agent_audio_frames_are_at_most_64_kib(driver: Driver) -> None:
    driver.ready()
    driver.respond()
    pcm = tone(3000, rate=24000)  # 144,000 bytes in one delta
    frames = driver.upstream(events.audio_delta("item_a", pcm)).audio
    assert [len(frame) for frame in frames] == [65536, 65536, 12928]
    assert b"".join(frames) == pcm


# ------------------------------------------------------------------ barge-in


def test_barge_in_truncates_to_what_was_heard_and_drops_the_rest(driver: Driver) -> None:
    driver.ready()
    driver.respond()
    second = tone(1000, rate=24000)
    driver.upstream(events.audio_delta("item_a", second))  # 1 s sent at once
    driver.clock.advance(0.4)  # the user heard 400 ms of it
    out = driver.upstream(events.speech_started("u2"))
    assert out.types() == ["UserStartedSpeaking"]
    assert out.upstream == [
        {
            "type": "conversation.item.truncate",
            "item_id": "item_a",
            "content_index": 0,
            "audio_end_ms": 400,
        }
    ]
    assert driver.upstream(events.audio_delta("item_a", second)).audio == []


def test_no_truncate_once_the_audio_has_finished_playing(driver: Driver) -> None:
    driver.ready()
    driver.respond()
    driver.upstream(events.audio_delta("item_a", tone(500, rate=24000)))
    driver.finish()
    driver.clock.advance(2.0)
    out = driver.upstream(events.speech_started())
    assert out.upstream == []


def test_truncate_never_exceeds_the_audio_sent(driver: Driver) -> None:
    driver.ready()
    driver.respond()
    driver.upstream(events.audio_delta("item_a", tone(300, rate=24000)))
    driver.clock.advance(5.0)  # response still running, audio stalled
    (truncate,) = driver.upstream(events.speech_started()).upstream
    assert truncate["audio_end_ms"] == 300


# ------------------------------------------------------------------ closing


def test_upstream_closing_before_ready_is_an_error_then_a_close(driver: Driver) -> None:
    driver.client(SETTINGS)
    out = decode_close(driver, 1006)
    assert out.to_client[0]["code"] == "upstream_closed_before_session_ready"
    assert out.client_close is not None and out.client_close.code == 1011


def test_upstream_normal_close_closes_the_client_normally(driver: Driver) -> None:
    driver.ready()
    out = decode_close(driver, 1000)
    assert out.to_client == []
    assert out.client_close is not None and out.client_close.code == 1000


def test_upstream_error_close_reports_and_closes_1011(driver: Driver) -> None:
    driver.ready()
    out = decode_close(driver, 1011)
    assert out.to_client[0]["code"] == "upstream_closed"
    assert out.client_close is not None and out.client_close.code == 1011
    assert user_text(driver, "late").upstream == []


def test_upstream_auth_failure_is_an_error_then_a_close(driver: Driver) -> None:
    out = decode(driver.session.upstream_failed(ErrorCode.UPSTREAM_AUTH_FAILED, "HTTP 401"))
    assert out.to_client == [
        {"type": "Error", "description": "HTTP 401", "code": "upstream_auth_failed"}
    ]
    assert out.client_close is not None and out.client_close.code == 1011


def test_client_closing_closes_upstream_and_drops_pending_work(driver: Driver) -> None:
    driver.ready()
    driver.audio(tone(20))
    actions = driver.session.client_closed()
    assert [type(a).__name__ for a in actions] == ["CloseUpstream"]
    assert driver.tick(1.0).upstream == []
    assert driver.session.next_deadline is None


def decode_close(driver: Driver, code: int) -> Outcome:
    return decode(driver.session.upstream_closed(code, ""))


def test_v1_functions_without_a_name_or_endpoint_url_are_accepted_not_offered(
    driver: Driver,
) -> None:
    driver.upstream(events.session_created())
    settings = {
        "type": "Settings",
        "agent": {
            "think": {
                "functions": [
                    {"description": "nameless"},
                    {"name": "local", "endpoint": {"method": "post"}},  # no url: client-side
                ]
            }
        },
    }
    out = driver.client(settings)
    (update,) = out.upstream
    assert [tool["name"] for tool in update["session"]["tools"]] == ["local"]
    assert "functions without a name" in out.only("Warning")["description"]
    driver.upstream(events.session_updated())
    call = driver.upstream(events.function_call("c1", "local"))
    assert call.only("FunctionCallRequest")["functions"][0]["client_side"] is True
    assert call.calls == []


def test_settings_waiting_behind_a_refused_first_settings_are_applied(driver: Driver) -> None:
    driver.upstream(events.session_created())
    (update,) = driver.client(SETTINGS).upstream
    waiting = driver.client(NO_GREETING)  # sent before the first was answered
    assert waiting.upstream == []
    behind = user_text(driver, "Hi")  # and a turn after it
    assert behind.upstream == []
    refused = driver.upstream(
        events.error("invalid_value", "bad voice", event_id=update["event_id"])
    )
    assert refused.types() == ["Error"]
    assert refused.upstream_types() == ["session.update"]  # the waiting Settings goes now
    applied = driver.upstream(events.session_updated())
    assert applied.types()[:2] == ["SettingsApplied", "ConversationText"]
    assert applied.upstream_types() == ["conversation.item.create", "response.create"]


def test_force_end_turn_ends_a_turn_speech_stopped_never_ended(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.upstream(events.speech_started())
    driver.client({"type": "ForceEndTurn"})
    driver.respond()
    driver.finish()
    # The user is not speaking any more: a default InjectAgentMessage is spoken...
    out = driver.client({"type": "InjectAgentMessage", "message": "Anything else?"})
    assert "InjectionRefused" not in out.types()
    assert out.upstream_types()[-1] == "response.create"
    driver.respond("resp_2")
    # ... and the session is quiet once that is said: a drain closes it.
    assert driver.decode_actions(driver.session.drain()).client_close is None
    assert driver.finish("resp_2").client_close is not None


def test_a_committed_buffer_ends_the_users_turn(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.upstream(events.speech_started())
    assert driver.decode_actions(driver.session.drain()).client_close is None  # speaking
    committed = events._event("input_audio_buffer.committed", item_id="item_user")
    assert driver.upstream(committed).client_close is not None


def test_a_response_created_ends_the_users_turn(driver: Driver) -> None:
    driver.ready(NO_GREETING)
    driver.upstream(events.speech_started())
    driver.respond()  # server VAD answered; speech_stopped was lost
    driver.finish()
    out = driver.client({"type": "InjectAgentMessage", "message": "Hello?"})
    assert "InjectionRefused" not in out.types()
