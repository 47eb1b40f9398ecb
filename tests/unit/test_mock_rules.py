"""The mock's scripting as data: rules, how often they must fire, JSON rules, replies."""

from __future__ import annotations

import re
from typing import Any

import pytest

from harness.mock_openai import MockRealtime, reply
from harness.mock_openai.patterns import matches_pattern
from harness.mock_openai.responders import ResponderError, steps_from
from harness.mock_openai.rules import Expectation, Trigger
from harness.mock_openai.steps import CallFunction, ReplyAudio, ReplyText, Send, SendError, Sleep
from harness.schema import SchemaError


@pytest.mark.parametrize(
    ("expectation", "words", "met_by", "unmet_by"),
    [
        (Expectation(), "at least once", [1, 5], [0]),
        (Expectation(1, 1), "exactly once", [1], [0]),
        (Expectation(3, 3), "exactly 3 times", [3], [0, 2]),
        (Expectation(0, 2), "at most 2 times", [0, 1, 2], []),
        (Expectation(2, None), "at least 2 times", [2, 9], [0, 1]),
        (Expectation(0, None), "any number of times", [0, 7], []),
    ],
)
def test_expectations_say_what_they_mean(
    expectation: Expectation, words: str, met_by: list[int], unmet_by: list[int]
) -> None:
    assert expectation.describe() == words
    assert all(expectation.met_by(hits) for hits in met_by)
    assert not any(expectation.met_by(hits) for hits in unmet_by)


def test_a_rule_without_a_count_must_fire_and_then_has_no_limit() -> None:
    mock = MockRealtime()
    rule = mock.on_user_text("hi").reply_with_text("Hello")
    assert rule.unmet() is not None and "at least once, but fired never" in rule.unmet()  # type: ignore[operator]
    book = mock._rules
    for _ in range(5):
        assert book.match(Trigger.USER_TEXT, "hi there") is not None
    assert rule.hits == 5 and rule.unmet() is None


def test_a_spent_budget_lets_the_next_rule_answer() -> None:
    mock = MockRealtime()
    first = mock.on_user_text().reply_with_text("first").times(2)
    second = mock.on_user_text().reply_with_text("second").at_most(1)
    book = mock._rules
    answers = []
    for _ in range(4):
        match = book.match(Trigger.USER_TEXT, "anything")
        answers.append(match.steps[0].text if match else None)  # type: ignore[union-attr]
    assert answers == ["first", "first", "second", None]
    assert (first.hits, second.hits) == (2, 1)
    assert book.unmet() == []


def test_unmet_rules_are_named_with_where_they_were_written() -> None:
    mock = MockRealtime()
    mock.on_client_event("session.update").stall(100).once()
    mock.on_user_text("x").reply_with_text("y").optional()
    (reason,) = mock._rules.unmet()
    assert re.fullmatch(
        r"rule on_client_event\('session\.update'\)\.stall\(100\)\.once\(\) "
        r"\(at test_mock_rules\.py:\d+\) was expected to fire exactly once, but fired never",
        reason,
    )
    with pytest.raises(AssertionError, match="exactly once"):
        mock.verify()


def test_a_rule_that_cannot_be_built_is_not_left_registered() -> None:
    mock = MockRealtime()
    for build in (
        lambda: mock.on_user_text().reply_with_audio("x", chunks=0),
        lambda: mock.on_user_text().times(0),
        lambda: mock.on_user_text().transcribe_as("not speech"),
        lambda: mock.on_client_event("session.update").reject_handshake(),
        lambda: mock.on_connect().reply_with_text("no response yet"),
        lambda: mock.on_user_text().send_event({"type": "session.updated", "session": 5}),
    ):
        with pytest.raises((ValueError, SchemaError)):
            build()
    assert mock.rules == []


def test_patterns_match_a_subset_of_keys_and_exact_values() -> None:
    event = {"type": "x", "item": {"role": "user", "content": [{"text": "hi"}]}, "n": 1}
    assert matches_pattern(event, {"item": {"role": "user"}})
    assert matches_pattern(event, {"item": {"content": [{"text": "hi"}]}, "n": 1})
    assert not matches_pattern(event, {"item": {"role": "assistant"}})
    assert not matches_pattern(event, {"missing": None})
    assert not matches_pattern(event, {"n": True})  # JSON's true is not 1


# ------------------------------------------------------------------ JSON rules


def test_json_rules_build_the_same_rules_as_python() -> None:
    from_python, from_json = MockRealtime(), MockRealtime()
    from_python.on_user_text("weather").stall(200).reply_with_audio("Sunny.", chunks=2).once()
    from_python.on_user_text(re.compile("^time")).call_function("get_time", {"tz": "UTC"})
    from_python.on_function_output("get_time").reply_with_text("Noon.").times(2)
    from_python.on_user_speech().transcribe_as("hello").reply_with_text("Hi.").optional()
    from_python.on_client_event(
        "session.update", where={"session": {"type": "realtime"}}
    ).send_error("invalid_value", "bad", param="session").at_most(1)
    from_python.on_connect().reject_handshake(503).at_least(1)
    from_python.on_user_text("bye").send_garbage().close(4000, "bye")
    added = from_json.load_rules(
        {
            "rules": [
                {
                    "on": "user_text",
                    "text": "weather",
                    "do": [{"stall": 200}, {"reply_with_audio": {"text": "Sunny.", "chunks": 2}}],
                    "once": True,
                },
                {
                    "on": "user_text",
                    "text": {"regex": "^time"},
                    "do": [{"call_function": ["get_time", {"tz": "UTC"}]}],
                },
                {
                    "on": "function_output",
                    "name": "get_time",
                    "do": [{"reply_with_text": "Noon."}],
                    "times": 2,
                },
                {
                    "on": "user_speech",
                    "do": [{"transcribe_as": "hello"}, {"reply_with_text": "Hi."}],
                    "optional": True,
                },
                {
                    "on": "client_event",
                    "type": "session.update",
                    "where": {"session": {"type": "realtime"}},
                    "do": [
                        {
                            "send_error": {
                                "code": "invalid_value",
                                "message": "bad",
                                "param": "session",
                            }
                        }
                    ],
                    "at_most": 1,
                },
                {"on": "connect", "do": [{"reject_handshake": 503}], "at_least": 1},
                {
                    "on": "user_text",
                    "text": "bye",
                    "do": [{"send_garbage": None}, {"close": {"code": 4000, "reason": "bye"}}],
                },
            ]
        }
    )
    assert [r.description for r in added] == [r.description for r in from_python.rules]
    assert [r._steps for r in added] == [r._steps for r in from_python.rules]
    assert [r.expectation for r in added] == [r.expectation for r in from_python.rules]
    assert added[0].site == "JSON rule #1"


@pytest.mark.parametrize(
    ("rules", "complaint"),
    [
        ({"on": "user_talk"}, "'on' must be one of"),
        ({"on": "user_text", "do": [{"dance": 1}]}, "unknown step 'dance'"),
        ({"on": "user_text", "name": "x"}, "unknown key(s) ['name']"),
        ({"on": "user_text", "once": True, "times": 2}, "say how often once"),
        ({"on": "user_text", "do": [{"stall": {"seconds": 1}}]}, "stall:"),
        ({"on": "client_event"}, "needs 'type'"),
        ({"on": "user_text", "do": [{"reply_with_audio": {"text": "x", "chunks": 0}}]}, "chunks"),
        ([{"on": "user_text"}, {"on": "connect", "do": [{"transcribe_as": "x"}]}], "rule #2"),
    ],
)
def test_invalid_json_rules_are_refused_whole_with_a_reason(rules: Any, complaint: str) -> None:
    mock = MockRealtime()
    with pytest.raises(ValueError) as refused:
        mock.load_rules(rules)
    assert complaint in str(refused.value)
    assert mock.rules == []  # nothing of the batch was added


# ------------------------------------------------------------------ replies


def test_what_a_responder_returns_becomes_rule_steps() -> None:
    def steps(result: Any, trigger: str = "on_user_text") -> tuple[Any, ...]:
        return steps_from(result, responder="answer", trigger=trigger)

    assert steps(None) == ()
    assert steps("plain text") == (ReplyText("plain text"),)
    assert steps([reply.pause(100), reply.audio("Hi", chunks=2)]) == (
        Sleep(0.1),
        ReplyAudio("Hi", chunks=2),
    )
    assert steps(reply.function_call("f", {"a": 1})) == (CallFunction("f", '{"a":1}'),)
    assert steps(reply.error("bad", "no")) == (SendError("bad", "no"),)
    assert steps(reply.events([{"type": "rate_limits.updated", "rate_limits": []}])) == (
        Send({"type": "rate_limits.updated", "rate_limits": []}),
    )
    with pytest.raises(ResponderError, match="responder answer returned 42"):
        steps(42)
    with pytest.raises(ResponderError, match="a connection has no response"):
        steps(reply.text("hi"), trigger="on_connect")
    with pytest.raises(SchemaError):
        reply.event({"type": "rate_limits.updated", "rate_limits": [{"nme": "x"}]})
    with pytest.raises(ValueError, match="output_modalities"):
        reply.text("x", output_modalities=["text", "audio"])
