"""The two frame parsers: one text frame in, a typed message or a rejection out.

The session's answers to these frames are tested through the session
(test_session_limits, test_session_core); here each parser is held to its contract on
its own, and the depth check's shortcut for flat objects to the plain walk it replaces.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from proxy.client_messages import (
    KEEP_ALIVE,
    InjectUserMessage,
    parse_client_frame,
)
from proxy.errors import ErrorCode
from proxy.upstream_events import (
    AudioDelta,
    Ignored,
    ItemDone,
    parse_upstream_frame,
)
from proxy.validation import MAX_DEPTH, too_deep
from proxy.wire import Rejection, Unreadable, typed_object

DEEP = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)


def test_typed_object_names_the_first_step_that_failed() -> None:
    assert typed_object("{") is Unreadable.NOT_JSON
    assert typed_object('{"type":"x","a":' + DEEP + "}") is Unreadable.TOO_DEEP
    assert typed_object('{"type":5}') is Unreadable.UNTYPED
    assert typed_object("[]") is Unreadable.UNTYPED
    assert typed_object(b'{"type":"x","n":1}') == {"type": "x", "n": 1}


def test_a_client_frame_parses_to_its_message() -> None:
    message = parse_client_frame('{"type":"InjectUserMessage","content":"hi","extra":1}')
    assert message == InjectUserMessage(content="hi")
    assert parse_client_frame('{"type":"KeepAlive","anything":[1]}') is KEEP_ALIVE


def test_a_client_frame_that_is_refused_says_why() -> None:
    cases = {
        "not json": (ErrorCode.INVALID_JSON, "message is not valid JSON"),
        '{"type":"Settings","x":' + DEEP + "}": (
            ErrorCode.INVALID_MESSAGE,
            f"message nests deeper than {MAX_DEPTH} levels",
        ),
        '{"type":7}': (ErrorCode.DISALLOWED_CLIENT_MESSAGE_TYPE, "missing or not a string"),
        '{"type":"Nope"}': (ErrorCode.DISALLOWED_CLIENT_MESSAGE_TYPE, "'Nope'"),
        '{"type":"InjectUserMessage"}': (ErrorCode.INVALID_MESSAGE, "content is required"),
    }
    for frame, (code, words) in cases.items():
        rejection = parse_client_frame(frame)
        assert isinstance(rejection, Rejection), frame
        assert rejection.code is code and words in rejection.description, frame
        assert rejection.log is None  # a client's mistake is told to it, not logged


def test_an_upstream_frame_parses_to_its_event_or_is_ignored() -> None:
    delta = parse_upstream_frame(b'{"type":"response.output_audio.delta","item_id":"i","delta":""}')
    assert delta == AudioDelta(item_id="i", delta="")
    added = parse_upstream_frame('{"type":"conversation.item.added","item":{"type":"message"}}')
    assert isinstance(added, ItemDone) and added.item.type == "message"
    assert parse_upstream_frame('{"type":"some.future.event","x":[]}') == Ignored(
        "some.future.event"
    )


def test_an_upstream_frame_that_is_refused_says_what_to_log() -> None:
    cases = {
        b"garbage": "not a JSON event",
        b"[1]": "not a JSON event",
        b'{"type":"x","a":' + DEEP.encode() + b"}": "nested deeper",
        b'{"type":"input_audio_buffer.speech_stopped","audio_end_ms":"soon"}': (
            "malformed event; dropped: input_audio_buffer.speech_stopped.audio_end_ms"
        ),
    }
    for frame, logged in cases.items():
        rejection = parse_upstream_frame(frame)
        assert isinstance(rejection, Rejection), frame
        assert rejection.code is ErrorCode.UNMAPPED_UPSTREAM_EVENT
        assert rejection.log is not None and logged in rejection.log, frame


def _depth(value: Any) -> int:
    """The nesting of objects and arrays, the plain recursive way."""
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _nested(levels: int) -> Any:
    value: Any = 1
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=20,
)


members = json_values | st.integers(0, 40).map(_nested)


# Objects of either side of the flat-object shortcut's size, and arrays.
@given(st.dictionaries(st.text(max_size=3), members, max_size=24) | st.lists(members, max_size=3))
def test_too_deep_agrees_with_the_plain_walk(value: dict[str, Any] | list[Any]) -> None:
    raw = orjson.dumps(value)
    assert too_deep(value, raw) is (_depth(value) > MAX_DEPTH)
    assert too_deep(value, raw.decode()) is (_depth(value) > MAX_DEPTH)
