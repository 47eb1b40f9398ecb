"""Property-based fuzzing of the session core (hypothesis).

Random client frames (known and unknown types, every field mistyped, nulls, deep
nesting, huge strings, binary of any length) and random upstream events, interleaved in
any order before and after Settings, with time passing in between. Properties:

- no exception escapes the session;
- every client-bound frame is binary audio or JSON that the deepgram-sdk models accept,
  and every upstream event is accepted by the openai models (session_driver checks);
- nothing accepted is lost or reordered: every user message the session did not refuse
  reaches upstream, in the order it was sent, once the session is ready;
- never a second `response.create` while one may still be running: after one, another
  only once upstream said something that can end it (a `response.done`, an `error`) or
  the silent-response timeout passed;
- binary frames to a linear16 client hold whole samples, whatever the deltas' sizes;
- the client is never left "thinking": once every response has ended, the last of its
  `AgentThinking` / `AgentAudioDone` is an `AgentAudioDone`.

Upstream also plays what the real service does (docs/real-service.md): errors without
`event_id`, every terminal status of `response.done` with its `status_details`, text
only in `response.done.response.output`, odd-length audio deltas, out-of-band responses
without a `metadata` echo, and items that arrive late (after their response ended).

`pytest --fuzz-examples=N` runs longer (the default keeps the unit layer fast).
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.session_options import SessionOptions
from tests.unit import realtime_events as events
from tests.unit.session_driver import Driver, Outcome

KEY = "sk-fuzz-0123456789abcdef"

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

CLIENT_TYPES = [
    "Settings",
    "InjectUserMessage",
    "InjectAgentMessage",
    "FunctionCallResponse",
    "UpdatePrompt",
    "UpdateSpeak",
    "UpdateThink",
    "UpdateListen",
    "UpdateThink_Live",
    "ForceEndTurn",
    "KeepAlive",
]
FIELDS = [
    "content", "message", "behavior", "id", "name", "prompt", "speak", "think", "listen",
    "agent", "audio", "flags", "is_dynamic",
]  # fmt: skip


def _settings_strategy() -> st.SearchStrategy[dict[str, Any]]:
    rate = st.sampled_from([8000, 16000, 24000, 48000, 1, 0, -5, True, "16000", None])
    encoding = st.sampled_from(["linear16", "mulaw", "alaw", "opus", None, 5])
    fmt = st.fixed_dictionaries({"encoding": encoding, "sample_rate": rate})
    agent = st.fixed_dictionaries(
        {},
        optional={
            "greeting": st.none() | st.text(max_size=30) | st.integers(-(2**40), 2**40),
            "think": st.none()
            | st.fixed_dictionaries(
                {},
                optional={
                    "prompt": st.none() | st.text(max_size=30),
                    "functions": st.none() | st.lists(json_values, max_size=2),
                },
            ),
            "context": st.none()
            | st.fixed_dictionaries({"messages": st.none() | st.lists(json_values, max_size=3)}),
            "speak": json_values,
        },
    )
    return st.fixed_dictionaries(
        {"type": st.just("Settings")},
        optional={
            "audio": st.fixed_dictionaries({}, optional={"input": fmt, "output": fmt}),
            "agent": agent,
        },
    )


client_messages = (
    st.fixed_dictionaries(
        {"type": st.sampled_from(CLIENT_TYPES)},
        optional={name: json_values for name in FIELDS},
    )
    | _settings_strategy()
    | st.fixed_dictionaries({"type": json_values})
    | st.builds(lambda text: {"type": "InjectUserMessage", "content": text}, st.text(max_size=40))
)
client_frames = (
    client_messages.map(lambda m: ("text", orjson.dumps(m).decode()))
    | st.text(max_size=50).map(lambda t: ("text", t))
    | st.integers(0, 3000).map(lambda n: ("text", "[" * n + "]" * n))
    | st.binary(max_size=3000).map(lambda b: ("binary", b))
    | st.just(("text", '{"type": "InjectUserMessage", "content": "' + "x" * 5000 + '"}'))
)

RESPONSE_IDS = ["resp_1", "resp_2"]
STATUS_DETAILS = {
    "completed": [None],
    "cancelled": [
        {"type": "cancelled", "reason": "turn_detected"},
        {"type": "cancelled", "reason": "client_cancelled"},
    ],
    "incomplete": [
        {"type": "incomplete", "reason": "max_output_tokens"},
        {"type": "incomplete", "reason": "content_filter"},
    ],
    "failed": [
        None,
        {"type": "failed", "error": {"type": "server_error", "code": "server_error"}},
        {"type": "failed", "error": {"type": "invalid_request_error", "code": None}},
    ],
}


@st.composite
def terminal_response_done(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from(sorted(STATUS_DETAILS)))
    details = draw(st.sampled_from(STATUS_DETAILS[status]))
    fields: dict[str, Any] = {"status_details": details} if details is not None else {}
    if draw(st.booleans()):  # text that arrives only here
        item = draw(st.sampled_from(["i1", "i2"]))
        fields["output"] = [events.assistant_message(item, draw(st.text(max_size=10)))]
    return events.response_done(draw(st.sampled_from(RESPONSE_IDS)), status, **fields)


unattributed_errors = st.builds(
    events.error,
    st.sampled_from(
        [
            "server_error",
            None,
            "input_audio_buffer_commit_empty",
            "response_cancel_not_active",
            "conversation_already_has_active_response",
            "invalid_value",
        ]
    ),
    st.just("The server had an error while processing your request."),
    type=st.sampled_from(["server_error", "invalid_request_error"]),
    param=st.sampled_from([None, "session.audio.output.voice"]),
)
late_items = st.one_of(
    st.builds(events.assistant_item_done, st.sampled_from(["i1", "i2"]), st.text(max_size=10)),
    st.builds(
        lambda item, text: events.item_added(events.assistant_message(item, text)),
        st.sampled_from(["i1", "i2"]),
        st.text(max_size=10),
    ),
    st.builds(events.audio_committed),
)

valid_upstream = st.one_of(
    st.builds(events.session_created, st.text(min_size=1, max_size=8)),
    st.just(events.session_updated()),
    st.builds(events.response_created, st.sampled_from(RESPONSE_IDS)),
    st.builds(
        lambda rid, conversation: events.response_created(rid, conversation_id=conversation),
        st.sampled_from(RESPONSE_IDS),
        st.sampled_from([None, "conv_1"]),
    ),
    st.builds(events.response_done, st.sampled_from(RESPONSE_IDS)),
    terminal_response_done(),
    unattributed_errors,
    late_items,
    st.builds(  # odd lengths included: the real service sends them
        events.audio_delta,
        st.sampled_from(["i1", "i2"]),
        st.binary(max_size=600),
        st.sampled_from(RESPONSE_IDS),
    ),
    st.builds(events.audio_done, st.sampled_from(["i1", "i2"]), st.sampled_from(RESPONSE_IDS)),
    st.builds(events.transcript_done, st.sampled_from(["i1", "i2"]), st.text(max_size=20)),
    st.builds(
        events.function_call,
        st.sampled_from(["c1", "c2", "c3"]),
        st.text(max_size=5),
        response_id=st.sampled_from(RESPONSE_IDS),
    ),
    st.builds(events.speech_started),
    st.builds(events.speech_stopped, st.integers(0, 10**6)),
    st.builds(events.transcription_delta, st.just("u1"), st.text(max_size=10)),
    st.builds(events.transcription_completed, st.just("u1"), st.text(max_size=10)),
    st.builds(
        events.error,
        st.sampled_from([None, "x", "conversation_already_has_active_response", KEY]),
        st.text(max_size=20),
    ),
)
UPSTREAM_TYPES = [
    "session.created", "session.updated", "response.created", "response.done",
    "response.output_audio.delta", "response.output_audio.done", "error",
    "response.function_call_arguments.done", "input_audio_buffer.speech_stopped",
    "conversation.item.done", "conversation.item.input_audio_transcription.delta",
]  # fmt: skip
mangled_upstream = st.fixed_dictionaries(
    {"type": st.sampled_from(UPSTREAM_TYPES) | json_values},
    optional={
        name: json_values
        for name in ("session", "response", "item", "item_id", "delta", "audio_end_ms", "error")
    },
)
upstream_frames = (
    valid_upstream.map(orjson.dumps) | mangled_upstream.map(orjson.dumps) | st.binary(max_size=200)
)

steps = st.lists(
    st.one_of(
        client_frames.map(lambda f: ("client", f)),
        upstream_frames.map(lambda f: ("upstream", f)),
        st.floats(0, 40).map(lambda s: ("time", s)),
    ),
    max_size=40,
)


def _accepted_user_text(frame: tuple[str, Any], out: Outcome) -> str | None:
    kind, payload = frame
    if kind != "text" or any(m["type"] == "Error" for m in out.to_client):
        return None
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if isinstance(message, dict) and message.get("type") == "InjectUserMessage":
        content = message.get("content")
        return content if isinstance(content, str) else None
    return None


def _may_end_a_response(payload: Any) -> bool:
    """Could this upstream frame end a requested or running response (for the gate)?"""
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return isinstance(event, dict) and event.get("type") in ("response.done", "error")


def _run(sequence: list[tuple[str, Any]]) -> None:
    driver = Driver(api_key=KEY, max_frame_bytes=4096, max_buffered_bytes=64 * 1024)
    driver.session.upstream_connected()
    accepted: list[str] = []
    sent_upstream: list[str] = []
    closed = False
    response_outstanding = False  # a response.create went and nothing could end it yet
    waited = 0.0  # seconds since that response.create
    agent_state: list[str] = []  # AgentThinking / AgentAudioDone, in order

    def record(out: Outcome) -> None:
        nonlocal closed, response_outstanding, waited
        closed = closed or out.client_close is not None
        for event in out.upstream:
            item = event.get("item", {})
            if event["type"] == "conversation.item.create" and item.get("role") == "user":
                sent_upstream.append(item["content"][0]["text"])
            if event["type"] == "response.create":
                assert not response_outstanding, "two response.create while one may run"
                response_outstanding, waited = True, 0.0
        assert KEY.encode() not in orjson.dumps(out.to_client)
        if driver.session.audio.output_encoding == "linear16":
            assert all(len(frame) % 2 == 0 for frame in out.audio), "half a sample"
        agent_state.extend(
            m["type"] for m in out.to_client if m["type"] in ("AgentThinking", "AgentAudioDone")
        )

    for source, payload in sequence:
        if source == "client":
            kind, data = payload
            out = driver.client(data) if kind == "text" else driver.audio(data)
            text = _accepted_user_text(payload, out)
            if text is not None and not closed:
                accepted.append(text)
        elif source == "upstream":
            if _may_end_a_response(payload):
                response_outstanding = False
            out = driver.upstream(payload)
        else:
            waited += payload
            if waited >= driver.session.options.response_timeout:
                response_outstanding = False  # the silent response may be abandoned
            out = driver.tick(payload)
        record(out)
    if closed:
        return  # a closed session drops what it held, by design
    # Bring the session to ready, answering any session.update it still waits for.
    record(driver.upstream(events.session_created()))
    for _ in range(3):
        record(driver.client({"type": "Settings"}))
        for _ in range(len(driver.session._updates)):
            record(driver.upstream(events.session_updated()))
        if closed or driver.session.phase.name == "READY":
            break
    if closed:
        return
    assert driver.session.phase.name == "READY"
    assert sent_upstream == accepted
    # Every response ends: the client is not left thinking.
    for response_id in RESPONSE_IDS:
        response_outstanding = False
        record(driver.upstream(events.response_done(response_id)))
    if agent_state:
        assert agent_state[-1] == "AgentAudioDone", agent_state


def test_the_session_survives_any_input(fuzz_examples: int) -> None:
    @settings(
        max_examples=fuzz_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(steps)
    def check(sequence: list[tuple[str, Any]]) -> None:
        _run(sequence)

    check()


def test_default_options_are_the_protocol_defaults() -> None:
    options = SessionOptions()
    assert options.max_frame_bytes == 1 << 20 and options.max_buffered_bytes == 8 << 20
    assert (options.turn_rate, options.turn_burst) == (5.0, 20)
    assert (options.ready_timeout, options.response_timeout, options.client_idle_timeout) == (
        15.0,
        30.0,
        60.0,
    )
