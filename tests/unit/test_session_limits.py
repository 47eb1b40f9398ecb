"""The session under hostile input and a misbehaving upstream (docs/security.md).

No sockets: the byte bounds, rates and deadlines are the session's own decisions.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import orjson
import pytest

from harness.mock_openai import tone_pcm16
from proxy.client_messages import InvalidMessage, parse_client_message
from tests.unit import realtime_events as events
from tests.unit.session_driver import Driver

KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234"


def codes(out: Any) -> list[str]:
    return [m["code"] for m in out.to_client if m["type"] in ("Error", "Warning")]


def assert_usable(driver: Driver) -> None:
    """A plain text turn still goes upstream as an item and a response."""
    out = driver.client({"type": "InjectUserMessage", "content": "still there?"})
    assert out.upstream_types()[0] == "conversation.item.create", out.to_client


# ------------------------------------------------------------------ malformed client input


@pytest.mark.parametrize(
    "text",
    [
        '{"type": []}',
        '{"type": {"a": 1}}',
        '{"type": null}',
        '{"type": "Settings", "agent": {"think": {"functions": [null]}}}',
        '{"type": "Settings", "agent": {"context": {"messages": [5]}}}',
        '{"type": "InjectUserMessage", "content": null}',
        '{"type": "FunctionCallResponse", "id": ["x"], "content": "1"}',
        '{"type": "UpdateSpeak", "speak": null}',
        '{"type": "UpdateListen", "listen": {"provider": {"keyterms": "one"}}}',
        "[" * 5000 + "]" * 5000,
        '"just a string"',
    ],
)
def test_malformed_client_messages_get_an_error_and_change_nothing(text: str) -> None:
    driver = Driver()
    driver.ready()
    out = driver.client(text)
    assert out.types() == ["Error"]
    assert out.to_client[0]["code"] in (
        "invalid_message",
        "disallowed_client_message_type",
        "invalid_json",
    )
    assert out.upstream == [] and out.client_close is None
    assert_usable(driver)


@pytest.mark.parametrize(
    "settings",
    [
        {"type": "Settings", "agent": None},
        {"type": "Settings", "agent": {"think": {"functions": None}}},
        {"type": "Settings", "agent": {"context": {"messages": None}}},
        {"type": "Settings", "agent": {"think": None, "speak": None, "greeting": None}},
    ],
)
def test_nulls_where_v1_allows_them_are_absent_values_not_crashes(settings: dict[str, Any]) -> None:
    driver = Driver()
    out = driver.ready(settings)
    assert out.types() == ["SettingsApplied"]
    assert_usable(driver)


def test_nothing_null_or_mistyped_goes_upstream_from_a_function_response() -> None:
    driver = Driver()
    driver.ready()
    out = driver.client({"type": "FunctionCallResponse", "id": None, "name": "f", "content": "x"})
    assert codes(out) == ["invalid_message"] and out.upstream == []  # no call of that name


# ------------------------------------------------------------------ audio formats (§10)


@pytest.mark.parametrize(
    "audio",
    [
        {"input": {"encoding": "linear16", "sample_rate": 1}},
        {"input": {"encoding": "linear16", "sample_rate": 0}},
        {"input": {"encoding": "linear16", "sample_rate": -16000}},
        {"input": {"encoding": "linear16", "sample_rate": 22050}},
        {"input": {"encoding": "linear16", "sample_rate": 10**12}},
        {"input": {"encoding": "mulaw", "sample_rate": 16000}},
        {"input": {"encoding": "opus", "sample_rate": 48000}},
        {"output": {"encoding": "mp3", "sample_rate": 24000}},
        {"output": {"encoding": "linear16", "sample_rate": 24000, "container": "wav"}},
        {"output": {"encoding": "alaw", "sample_rate": 16000}},
    ],
)
def test_unsupported_audio_formats_are_refused_and_the_settings_not_applied(
    audio: dict[str, Any],
) -> None:
    driver = Driver()
    driver.upstream(events.session_created())
    out = driver.client({"type": "Settings", "audio": audio})
    assert codes(out) == ["unsupported_audio_format"]
    assert (
        "linear16 at 8000, 16000, 24000, 32000, 44100, 48000 Hz" in out.to_client[0]["description"]
    )
    assert out.upstream == []
    # The connection stays usable: a corrected Settings is applied.
    assert driver.client({"type": "Settings"}).upstream_types() == ["session.update"]
    assert driver.upstream(events.session_updated()).types() == ["SettingsApplied"]


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 32000, 44100, 48000])
def test_every_linear16_rate_becomes_24k_upstream(rate: int) -> None:
    driver = Driver()
    driver.ready(
        {"type": "Settings", "audio": {"input": {"encoding": "linear16", "sample_rate": rate}}}
    )
    audio = tone_pcm16(200, rate=rate)
    sent = driver.audio(audio).upstream + driver.tick(1.0).upstream
    pcm = b"".join(base64.b64decode(e["audio"]) for e in sent)
    assert abs(len(pcm) - 200 * 48) <= 8  # 200 ms at 24 kHz, whatever came in


def test_the_amplification_input_is_refused_before_any_audio_flows() -> None:
    driver = Driver()
    driver.upstream(events.session_created())
    refused = driver.client({"type": "Settings", "audio": {"input": {"sample_rate": 1}}})
    assert codes(refused) == ["unsupported_audio_format"]
    driver.client(
        {"type": "Settings", "audio": {"input": {"encoding": "linear16", "sample_rate": 8000}}}
    )
    driver.upstream(events.session_updated())
    frame = b"\x01\x02" * 1024  # 2 KB: the worst accepted case is 8 kHz -> 24 kHz
    sent = driver.audio(frame).upstream + driver.tick(1.0).upstream
    upstream_bytes = sum(len(orjson.dumps(e)) for e in sent)
    assert upstream_bytes < 5 * len(frame)  # x3 samples, x4/3 base64, a little JSON


# ------------------------------------------------------------------ rate and size limits


def test_user_turns_above_the_rate_are_dropped_and_named() -> None:
    driver = Driver(turn_rate=5, turn_burst=20)
    driver.ready()
    outcomes = [driver.client({"type": "InjectUserMessage", "content": f"{n}"}) for n in range(25)]
    assert all(not codes(o) for o in outcomes[:20])
    for refused in outcomes[20:]:
        assert codes(refused) == ["rate_limited"] and refused.upstream == []
        assert "InjectUserMessage" in refused.to_client[0]["description"]
    driver.clock.advance(1.0)  # five more a second
    later = [driver.client({"type": "InjectUserMessage", "content": "x"}) for _ in range(6)]
    assert [bool(codes(o)) for o in later] == [False] * 5 + [True]
    # KeepAlive and audio are not turns.
    assert not codes(driver.client({"type": "KeepAlive"}))
    assert not codes(driver.audio(b"\0" * 640))


def test_oversized_frames_are_refused_with_an_error() -> None:
    driver = Driver(max_frame_bytes=1000)
    driver.ready()
    big_text = driver.client({"type": "InjectUserMessage", "content": "x" * 2000})
    assert codes(big_text) == ["frame_too_large"] and big_text.upstream == []
    wide = driver.client({"type": "InjectUserMessage", "content": "é" * 400})  # 800 bytes + JSON
    assert not codes(wide)
    wider = driver.client({"type": "InjectUserMessage", "content": "😀" * 300})  # 1200 bytes
    assert codes(wider) == ["frame_too_large"]
    big_audio = driver.audio(b"\0" * 2000)
    assert codes(big_audio) == ["frame_too_large"]
    assert driver.tick(1.0).upstream == []


def test_what_waits_before_ready_is_bounded_in_bytes() -> None:
    driver = Driver(max_buffered_bytes=3000)
    driver.client({"type": "Settings"})
    assert driver.audio(b"\0" * 2000).to_client == []
    refused = driver.audio(b"\0" * 2000)
    assert codes(refused) == ["client_queue_full"]
    assert driver.session.pending_bytes <= 3000


# ------------------------------------------------------------------ deadlines


def test_no_session_created_in_time_is_an_upstream_timeout() -> None:
    driver = Driver(ready_timeout=15)
    driver.session.upstream_connected()
    assert driver.tick(14.9).to_client == []
    out = driver.tick(0.2)
    assert codes(out) == ["upstream_timeout"]
    assert out.client_close is not None and out.client_close.code == 1011


def test_no_session_updated_in_time_is_an_upstream_timeout() -> None:
    driver = Driver(ready_timeout=15)
    driver.upstream(events.session_created())
    driver.client({"type": "Settings"})
    out = driver.tick(15.1)
    assert codes(out) == ["upstream_timeout"] and "Settings" in out.to_client[0]["description"]
    assert out.client_close is not None and out.client_close.code == 1011


def test_a_silent_response_is_abandoned_and_the_gate_released() -> None:
    driver = Driver(response_timeout=30)
    driver.ready()
    driver.client({"type": "InjectUserMessage", "content": "one"})
    driver.respond()
    driver.tick(20)
    driver.upstream(events.audio_delta("item_a", b"\0\0" * 100))  # still talking: resets
    driver.client({"type": "KeepAlive"})
    assert driver.tick(29).to_client == []
    driver.client({"type": "InjectUserMessage", "content": "two"})  # waits behind it
    out = driver.tick(1.1)
    assert codes(out) == ["upstream_timeout"]
    assert out.upstream_types() == ["response.cancel", "response.create"]
    assert out.client_close is None


def test_an_idle_client_is_closed_and_keepalive_counts() -> None:
    driver = Driver(client_idle_timeout=60)
    driver.ready()
    driver.tick(59)
    driver.client({"type": "KeepAlive"})
    assert driver.tick(59).to_client == []
    out = driver.tick(1.5)
    assert codes(out) == ["client_idle"]
    assert out.client_close is not None and out.client_close.code == 1000


def test_stalled_peers_get_their_codes() -> None:
    client = Driver()
    client.ready()
    out_client = client.decode_actions(client.session.client_stalled(10))
    assert codes(out_client) == ["client_too_slow"]
    assert out_client.client_close is not None and out_client.client_close.code == 1008
    upstream = Driver()
    upstream.ready()
    out_upstream = upstream.decode_actions(upstream.session.upstream_stalled(10))
    assert codes(out_upstream) == ["upstream_stalled"]
    assert out_upstream.client_close is not None and out_upstream.client_close.code == 1011


# ------------------------------------------------------------------ malformed upstream events


@pytest.mark.parametrize(
    "event",
    [
        {"type": ["response.done"]},
        {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": "soon", "item_id": "i"},
        {"type": "response.output_audio.delta", "item_id": ["x"], "response_id": "r", "delta": ""},
        {"type": "response.created", "response": None},
        {"type": "error", "error": "boom"},
        {"type": "conversation.item.done", "item": {"type": "message", "content": [7]}},
        {"type": "session.created", "session": {"id": 5}},
    ],
)
def test_a_mistyped_upstream_event_is_dropped_and_reported(event: dict[str, Any]) -> None:
    driver = Driver()
    driver.ready()
    out = driver.upstream(event)
    if isinstance(event["type"], str):
        assert codes(out) == ["unmapped_upstream_event"]
        assert event["type"] in out.to_client[0]["description"]
    else:
        assert codes(out) == ["unmapped_upstream_event"]
    assert out.upstream == [] and out.client_close is None
    assert_usable(driver)


def test_events_the_proxy_ignores_are_skipped_by_their_first_bytes() -> None:
    driver = Driver()
    driver.ready()
    # Written as the API writes them: not decoded at all (broken JSON after the type too).
    assert (
        driver.upstream(b'{"type":"response.output_audio_transcript.delta","x":[').to_client == []
    )
    # Written any other way: decoded, and judged in full.
    spaced = b'{"type": "response.output_audio_transcript.delta", "delta": "hi"}'
    assert driver.upstream(spaced).to_client == []
    assert codes(driver.upstream(b'{"type": "response.output_text.delta", ')) == [
        "unmapped_upstream_event"
    ]
    # An event the proxy acts on is never skipped, however it starts.
    out = driver.upstream(b'{"type":"response.created","response":null}')
    assert codes(out) == ["unmapped_upstream_event"]
    assert_usable(driver)


# ------------------------------------------------------------------ secrets


@pytest.mark.parametrize(
    "error",
    [
        {"code": KEY, "message": "x"},
        {"code": "invalid_api_key", "message": f"Incorrect API key provided: {KEY}."},
        {"code": "invalid_api_key", "message": "Incorrect API key provided: sk-pro***1234."},
        {"code": "invalid_api_key", "message": "Incorrect key sk-proj-AbC...x1234 given"},
        {"code": None, "message": f"Bearer {KEY}"},
    ],
)
def test_the_key_and_its_masked_echoes_never_reach_the_client(error: dict[str, Any]) -> None:
    driver = Driver(api_key=KEY)
    driver.ready()
    event = events.error(error["code"], error["message"])
    raw = orjson.dumps(driver.upstream(event).to_client)
    assert b"AbCdEf" not in raw and b"1234" not in raw and b"***" not in raw


@pytest.mark.parametrize(
    "echo", ["0123***cdef", "0123456789ab****************cdef", "0123…cdef", "key ••••cdef"]
)
def test_masked_echoes_of_a_key_of_any_shape_are_scrubbed(echo: str) -> None:
    hex_key = "0123456789abcdef0123456789abcdef"  # an Azure-style key: nothing like sk-
    driver = Driver(api_key=hex_key)
    driver.ready()
    out = driver.upstream(events.error("invalid_api_key", f"Access denied for key {echo}."))
    description = out.to_client[0]["description"]
    assert "cdef" not in description and "[redacted]" in description
    unrelated = driver.upstream(events.error("x", "Wait for it... then say 'abc***xyz'."))
    assert unrelated.to_client[0]["description"] == "Wait for it... then say 'abc***xyz'."


def test_the_key_is_scrubbed_from_any_field_of_any_message() -> None:
    driver = Driver(api_key=KEY)
    driver.ready()
    driver.respond()
    spoken = driver.upstream(events.transcript_done("item_a", f"my key is {KEY}"))
    called = driver.upstream(events.function_call("c1", "f", f'{{"key": "{KEY}"}}'))
    welcome = Driver(api_key=KEY).upstream(events.session_created(f"sess_{KEY}"))
    for out in (spoken, called, welcome):
        assert KEY.encode() not in orjson.dumps(out.to_client)
        assert b"[redacted]" in orjson.dumps(out.to_client)


# ------------------------------------------------------------------ memory stays flat


def test_long_sessions_do_not_grow_their_bookkeeping() -> None:
    driver = Driver(turn_rate=1e9, turn_burst=10**9, message_rate=1e9)
    driver.ready()
    for n in range(2000):
        driver.upstream(events.transcript_done(f"item_{n}", "x"))
        driver.upstream(events.transcription_delta(f"user_{n}", "word "))
        driver.upstream(events.function_call(f"call_{n}", "f"))
        driver.client({"type": "FunctionCallResponse", "id": f"call_{n}", "content": "ok"})
    session = driver.session
    assert len(session._reported_items) <= 256
    assert len(session._calls.reported) <= 256
    assert len(session._calls) == 0


def test_scrubbing_attacker_text_takes_time_linear_in_its_length() -> None:
    """A guard against catastrophic backtracking (the scrub runs on every client-bound
    frame): growing the input 8x may grow the time about 8x, not 64x. Compared within
    one run, so the machine's speed does not matter."""
    import time

    from proxy.redaction import Redactor, redact

    scrubber = Redactor(KEY)

    def cost(n: int) -> float:
        words = [b"wait... " + b"a" * n, b"a" * n + b"***", (b"a" * 60 + b"*** ") * (n // 64)]
        started = time.perf_counter()
        for word in words:
            scrubber.scrub(word)
            redact(word.decode(), KEY)
        return time.perf_counter() - started

    cost(1000)  # warm up
    small, large = min(cost(20_000) for _ in range(3)), min(cost(160_000) for _ in range(3))
    assert large / small < 30, (small, large)


# ------------------------------------------------------------------ hostile shapes and floods

# Past the 255 levels orjson can write back, within the 1024 it reads.
DEEP = "[" * 300 + "]" * 300


@pytest.mark.parametrize(
    "template",
    [
        '{"type": "Settings", "agent": {"think": {"functions": '
        '[{"name": "f", "parameters": {"x": %s}}]}}}',
        '{"type": "Settings", "not_a_v1_field": %s}',
        '{"type": "UpdateThink", "think": {"functions": [{"name": "f", "parameters": %s}]}}',
        '{"type": "FunctionCallResponse", "id": "call_1", "content": %s}',
    ],
)
def test_deeply_nested_client_json_is_an_invalid_message(
    template: str, caplog: pytest.LogCaptureFixture
) -> None:
    driver = Driver()
    driver.ready()
    out = driver.client(template % DEEP)
    assert codes(out) == ["invalid_message"] and out.upstream == []
    assert "nests deeper than 32 levels" in out.to_client[0]["description"]
    assert not any(r.exc_info for r in caplog.records)
    assert_usable(driver)


def test_nesting_up_to_32_levels_is_accepted() -> None:
    driver = Driver()
    driver.ready()
    fits = {"type": "Settings", "x": orjson.loads("[" * 31 + "]" * 31)}  # 32 with the root
    assert driver.client(fits).upstream_types() == ["session.update"]
    deeper = {"type": "Settings", "x": orjson.loads("[" * 32 + "]" * 32)}
    assert codes(driver.client(deeper)) == ["invalid_message"]


def test_a_deeply_nested_upstream_event_is_logged_once_and_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = Driver()
    driver.ready()
    deep = b'{"type": "response.created", "response": {"id": "resp_1", "x": %s}}'
    out = driver.upstream(deep % DEEP.encode())
    assert codes(out) == ["unmapped_upstream_event"]
    assert not driver.session.gate.busy  # the event was not acted on
    lines = [r for r in caplog.records if "nested" in r.getMessage()]
    assert [r.levelname for r in lines] == ["WARNING"]
    assert not any(r.exc_info for r in caplog.records)


def test_force_end_turn_counts_against_the_turn_rate() -> None:
    driver = Driver(turn_rate=5, turn_burst=3)
    driver.ready()
    outcomes = [driver.client({"type": "ForceEndTurn"}) for _ in range(5)]
    assert [codes(o) for o in outcomes] == [[], [], [], ["rate_limited"], ["rate_limited"]]
    assert "ForceEndTurn" in outcomes[3].to_client[0]["description"]
    assert outcomes[3].upstream == []


def test_queued_speech_is_capped_and_the_rest_refused() -> None:
    driver = Driver(turn_rate=1e9, turn_burst=10**9)
    driver.ready()
    driver.client({"type": "InjectUserMessage", "content": "hello"})  # a response is asked
    said = [
        driver.client({"type": "InjectAgentMessage", "message": f"m{n}", "behavior": "queue"})
        for n in range(20)
    ]
    refused = [o.only("InjectionRefused")["message"] for o in said if o.to_client]
    assert refused == ["m16", "m17", "m18", "m19"]
    assert len(driver.session.gate.queued()) == 16
    # Interrupting is no way around it.
    out = driver.client({"type": "InjectAgentMessage", "message": "now", "behavior": "interrupt"})
    assert "InjectionRefused" in out.types()
    assert len(driver.session.gate.queued()) == 16


@pytest.mark.parametrize("key", ["bad\nkey\x1b[2J", "k" * 10_000])
def test_client_keys_in_error_texts_are_quoted_and_cut(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "proxy.session")
    driver = Driver()
    driver.ready()
    bad_header = {"endpoint": {"url": "https://example.com", "headers": {key: 5}}}
    out = driver.client(
        {"type": "Settings", "agent": {"think": {"functions": [{"name": "f", **bad_header}]}}}
    )
    (description,) = [m["description"] for m in out.to_client if m["type"] == "Error"]
    assert "\n" not in description and "\x1b" not in description
    assert len(description) < 200
    assert repr(key)[:20] in description
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "\n" not in logged and "k" * 100 not in logged


@pytest.mark.parametrize(
    "settings",
    [
        {"type": "Settings", "audio": {"input": {"encoding": "x\n" * 5000}}},
        {"type": "Settings", "agent": "stored\n" * 5000},
        {"type": "Settings", "agent": {"speak": {"provider": {"voice": "v\n" * 5000}}}},
        {"type": "Settings", "agent": {"think": {"provider": {"model": "m\n" * 5000}}}},
    ],
)
def test_client_values_in_errors_and_warnings_are_quoted_and_cut(settings: dict[str, Any]) -> None:
    driver = Driver()
    driver.upstream(events.session_created())
    out = driver.client(settings)
    (said,) = [m["description"] for m in out.to_client if m["type"] in ("Error", "Warning")]
    assert "\n" not in said and len(said) < 400


def test_a_flood_of_tiny_frames_is_dropped_after_one_error() -> None:
    driver = Driver(message_rate=200)
    driver.ready()
    flood = [driver.audio(b"\0") for _ in range(400)] + [
        driver.client({"type": "KeepAlive"}) for _ in range(400)
    ]
    said = [n for n, o in enumerate(flood) if codes(o)]
    assert said == [399]  # a burst of 400 (the Settings was one), then it is said once
    assert codes(flood[399]) == ["rate_limited"]
    (error,) = [m for o in flood for m in o.to_client]
    assert "audio included" in error["description"]
    assert driver.client({"type": "InjectUserMessage", "content": "x"}).to_client == []
    driver.clock.advance(1.0)  # the bucket refills: messages go through again
    assert_usable(driver)


@pytest.mark.parametrize(
    ("frame_seconds", "frame_bytes"),
    [(0.02, 640), (128 / 48000, 256)],  # 20 ms at 16 kHz; a browser's AudioWorklet at 48 kHz
)
def test_audio_in_real_time_is_under_the_message_rate(
    frame_seconds: float, frame_bytes: int
) -> None:
    driver = Driver()
    driver.ready()
    for _ in range(round(20 / frame_seconds)):  # 20 seconds of frames
        driver.clock.advance(frame_seconds)
        assert not codes(driver.audio(b"\0" * frame_bytes))


def test_what_orjson_cannot_write_back_is_refused_where_it_is_written() -> None:
    # Behind the edge's depth check: the places that re-serialise a peer's JSON.
    deep = orjson.loads(DEEP)
    with pytest.raises(InvalidMessage, match="cannot be encoded"):
        parse_client_message({"type": "FunctionCallResponse", "id": "c", "content": deep})
    driver = Driver()
    driver.ready()
    driver.session._upstream({"type": "session.update", "session": {"x": deep}})
    out = driver.decode_actions(driver.session._take())
    assert codes(out) == ["invalid_message"] and out.upstream == []
