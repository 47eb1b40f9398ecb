"""Sessions past the service's cap (docs/protocol-mapping.md), in the session core.

The service ends a Realtime session at `expires_at`. Before that, at a quiet moment, the
session opens the next upstream session, gives it the applied settings and the
conversation as items, waits for it to confirm them, and switches at a quiet moment.
The clocks are fake: the monotonic one the session runs on and the wall clock that
`expires_at` is read with.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from harness.mock_openai import tone_pcm16
from proxy.conversation_record import MAX_CARRIED_CHARS, TRUNCATED_MARK, ConversationRecord
from proxy.errors import ErrorCode, WarningCode
from proxy.renewal import Renewal
from proxy.session import ProxySession
from proxy.session_options import SessionOptions
from tests.unit import realtime_events as events
from tests.unit.session_driver import Driver, Outcome, decode

pytestmark = pytest.mark.unit

WALL = 1_700_000_000.0  # the wall clock is the fake monotonic clock plus this
HOUR = 3600
SETTINGS: dict[str, Any] = {
    "type": "Settings",
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
        "speak": {"provider": {"type": "open_ai", "voice": "shimmer"}},
    },
}
# The tests jump the clock by minutes with no client message: no idle limit may fire.
QUIET_OPTIONS: dict[str, Any] = {
    "client_idle_timeout": 10 * HOUR,
    "keepalive_only_timeout": 10 * HOUR,
    "response_timeout": 10 * HOUR,
    "max_session_seconds": 0,  # no time limit: the deadlines seen are renewal's own
    # The tests renew short sessions, often: no floor, no rate limit unless a test sets one.
    "session_renew_min_lifetime": 0,
    "session_renew_min_interval": 0,
}


class Renewing(Driver):
    """A driver whose session knows the wall clock, and talks to a next session too."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**{**QUIET_OPTIONS, **options})
        self.session = ProxySession(
            SessionOptions(**{**QUIET_OPTIONS, **options}),
            clock=self.clock,
            wall_clock=lambda: self.clock.now + WALL,
        )
        self.first_update: dict[str, Any] = {}

    def expiring(self, lifetime: float) -> int:
        return int(self.clock.now + WALL + lifetime)

    def open(self, lifetime: float = HOUR, settings: dict[str, Any] = SETTINGS) -> Outcome:
        self.upstream(events.session_created("sess_1", expires_at=self.expiring(lifetime)))
        sent = self.client(settings)
        self.first_update = next(e for e in sent.upstream if e["type"] == "session.update")
        return self.upstream(events.session_updated())

    def connect_next(self) -> Outcome:
        return decode(self.session.next_upstream_connected())

    def next(self, event: dict[str, Any]) -> Outcome:
        return decode(self.session.next_upstream_message(orjson.dumps(event)))

    def confirm_next(
        self, sent: list[dict[str, Any]], lifetime: float = HOUR, session_id: str = "sess_2"
    ) -> list[Outcome]:
        """The next session answers what it was sent, as the service does; once it has
        taken over, its events go where the bridge sends them (the current session's)."""
        outcomes: list[Outcome] = []

        def answer(event: dict[str, Any]) -> None:
            switched = any(out.switched for out in outcomes)
            outcomes.append(self.upstream(event) if switched else self.next(event))

        if session_id:
            answer(events.session_created(session_id, expires_at=self.expiring(lifetime)))
        for event in sent:
            if event["type"] == "session.update":
                answer(events.session_updated())
            elif event["type"] == "conversation.item.create":
                echo = _echo(event["item"])
                answer(events.item_added(echo))
                answer(events.item_done(echo))
        return outcomes


def _echo(item: dict[str, Any]) -> dict[str, Any]:
    echo = {**item, "object": "realtime.item"}
    if item["type"] != "function_call_output":
        echo["status"] = "completed"
    return echo


def _merged(outcomes: list[Outcome]) -> Outcome:
    merged = Outcome()
    for out in outcomes:
        merged.to_client += out.to_client
        merged.to_next += out.to_next
        merged.upstream += out.upstream
        merged.switched = merged.switched or out.switched
        merged.hear_old_for = max(merged.hear_old_for, out.hear_old_for)
        merged.opened_next = merged.opened_next or out.opened_next
        merged.next_close = merged.next_close or out.next_close
        merged.client_close = merged.client_close or out.client_close
    return merged


def _items(sent: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The carried items in short form: (role, text), ("call", id, name, arguments),
    ("output", id, output)."""
    shown: list[tuple[str, ...]] = []
    for event in sent:
        if event["type"] != "conversation.item.create":
            continue
        item = event["item"]
        if item["type"] == "message":
            shown.append((item["role"], item["content"][0]["text"]))
        elif item["type"] == "function_call":
            shown.append(("call", item["call_id"], item["name"], item["arguments"]))
        else:
            shown.append(("output", item["call_id"], item["output"]))
    return shown


def _talk(driver: Renewing) -> None:
    """A typed turn answered with a function call, then a spoken turn."""
    driver.client({"type": "InjectUserMessage", "content": "What time is it?"})
    driver.respond("resp_1")
    driver.upstream(events.function_call("call_1", "get_time", '{"tz":"UTC"}', "resp_1"))
    driver.client(
        {"type": "FunctionCallResponse", "id": "call_1", "name": "get_time", "content": "12:00"}
    )
    driver.finish("resp_1")
    driver.respond("resp_2")
    driver.upstream(events.transcript_done("item_a2", "It is noon.", "resp_2"))
    driver.finish("resp_2")
    driver.upstream(events.speech_started("item_u3"))
    driver.upstream(events.speech_stopped(900, "item_u3"))
    driver.upstream(events.input_committed("item_u3"))
    driver.respond("resp_3")
    driver.upstream(events.transcript_done("item_a3", "You're welcome.", "resp_3"))
    driver.finish("resp_3")
    driver.upstream(events.transcription_completed("item_u3", "Thanks"))


CONVERSATION = [
    ("user", "What time is it?"),
    ("call", "call_1", "get_time", '{"tz":"UTC"}'),
    ("output", "call_1", "12:00"),
    ("assistant", "It is noon."),
    ("user", "Thanks"),
    ("assistant", "You're welcome."),
]


def test_the_next_session_gets_the_settings_and_the_conversation_then_takes_over() -> None:
    driver = Renewing()
    driver.open()
    _talk(driver)
    assert not driver.tick(HOUR - 301).opened_next  # before the margin
    assert driver.tick(1).opened_next  # five minutes before the cap, all quiet

    sent = driver.connect_next().to_next
    update = sent[0]
    assert update["type"] == "session.update"
    assert update["session"] == driver.first_update["session"]  # the same settings
    assert _items(sent) == CONVERSATION
    item_ids = [e["item"]["id"] for e in sent[1:]]
    assert len(set(item_ids)) == len(item_ids) and all(len(i) <= 32 for i in item_ids)

    outcomes = driver.confirm_next(sent)
    # The switch comes with the last item's first acknowledgment (conversation.item.added),
    # and its conversation.item.done, heard on the new current session, says nothing.
    assert [out.switched for out in outcomes].index(True) == len(outcomes) - 2
    last = outcomes[-2]
    assert last.types() == ["Warning"]
    assert last.only("Warning")["code"] == WarningCode.SESSION_RENEWED
    # Nothing else reached the client: no second Welcome, no replayed ConversationText.
    assert [t for out in outcomes for t in out.types()] == ["Warning"]

    # From now on the new session is the one: what the client sends goes upstream there
    # (the bridge sends SendUpstream to the current session), and its events are heard.
    after = driver.client({"type": "InjectUserMessage", "content": "And now?"})
    assert after.upstream_types() == ["conversation.item.create", "response.create"]
    assert driver.respond("resp_9").types() == ["AgentThinking"]
    assert driver.next(events.session_updated()).to_client == []  # no next session now


def test_it_waits_for_a_quiet_moment_to_open_the_next_session() -> None:
    driver = Renewing()
    driver.open()
    driver.client({"type": "InjectUserMessage", "content": "Tell me a story."})
    driver.respond("resp_1")
    assert not driver.tick(HOUR - 200).opened_next  # due, but a response is running
    driver.upstream(events.transcript_done("item_a1", "Once upon a time.", "resp_1"))
    assert driver.finish("resp_1").opened_next  # the first quiet moment
    assert _items(driver.connect_next().to_next) == [
        ("user", "Tell me a story."),
        ("assistant", "Once upon a time."),
    ]


def test_it_switches_only_when_quiet_and_carries_what_was_said_meanwhile() -> None:
    driver = Renewing()
    driver.open()
    driver.tick(HOUR - 300)
    sent = driver.connect_next().to_next
    assert _items(sent) == []
    # The user starts speaking while the next session confirms: no switch now.
    driver.upstream(events.speech_started("item_u1"))
    assert not _merged(driver.confirm_next(sent)).switched
    driver.upstream(events.speech_stopped(800, "item_u1"))
    out = driver.upstream(events.input_committed("item_u1"))
    assert not out.switched  # the transcript is awaited
    driver.respond("resp_1")
    driver.upstream(events.transcript_done("item_a1", "Sure.", "resp_1"))
    driver.finish("resp_1")
    out = driver.upstream(events.transcription_completed("item_u1", "Can you help?"))
    # Quiet again: what was said meanwhile goes to the next session first.
    assert not out.switched
    assert _items(out.to_next) == [("user", "Can you help?"), ("assistant", "Sure.")]
    assert _merged(driver.confirm_next(out.to_next, session_id="")).switched


def test_the_newest_microphone_audio_is_heard_by_the_new_session_too() -> None:
    driver = Renewing()
    driver.open()
    driver.tick(HOUR - 300)
    sent = driver.connect_next().to_next
    appends: list[dict[str, Any]] = []
    for _ in range(25):  # 500 ms of microphone audio while the next session confirms
        appends += driver.audio(tone_pcm16(20, rate=16000)).upstream
        appends += driver.tick(0.02).upstream
    appends = [e for e in appends if e["type"] == "input_audio_buffer.append"]
    assert len(appends) >= 4
    switch = next(out for out in driver.confirm_next(sent) if out.switched)
    # Right after the switch, the last 300 ms the old session got go to the new one.
    assert switch.after_switch == appends[-3:]


def test_a_transcript_that_never_comes_does_not_hold_the_switch_forever() -> None:
    driver = Renewing()
    driver.open()
    driver.tick(HOUR - 302)
    driver.upstream(events.input_committed("item_u1"))
    driver.respond("resp_1")
    driver.finish("resp_1")
    assert not driver.tick(2).opened_next  # due, but the user's transcript is awaited
    deadline = driver.session.next_deadline
    assert deadline is not None and deadline - driver.clock.now <= 1  # looked at again soon
    assert driver.tick(3).opened_next  # given up after 5 s


def test_the_moment_after_the_user_stopped_speaking_is_not_quiet() -> None:
    # Server VAD answers on its own: after speech_stopped, a response is on its way.
    driver = Renewing()
    driver.open()
    driver.tick(HOUR - 300)
    sent = driver.connect_next().to_next
    driver.upstream(events.speech_started("item_u1"))
    assert not _merged(driver.confirm_next(sent)).switched
    assert not driver.upstream(events.speech_stopped(800, "item_u1")).switched
    assert not driver.tick(1).switched
    assert driver.respond("resp_1").switched is False


def test_settings_changed_while_preparing_reach_the_next_session() -> None:
    driver = Renewing()
    driver.open()
    driver.tick(HOUR - 300)
    sent = driver.connect_next().to_next
    driver.client({"type": "UpdatePrompt", "prompt": "You are verbose."})
    out = driver.upstream(events.session_updated())
    assert out.types() == ["PromptUpdated"]
    outcomes = driver.confirm_next(sent)
    # The next session was confirmed with the old prompt: a second update follows.
    extra = [e for o in outcomes for e in o.to_next]
    assert [e["type"] for e in extra] == ["session.update"]
    assert extra[0]["session"]["instructions"] == "You are verbose."
    assert extra[0]["session"]["tools"] == driver.first_update["session"]["tools"]
    assert not any(o.switched for o in outcomes)
    assert driver.next(events.session_updated()).switched


def test_a_refused_settings_change_is_not_carried() -> None:
    driver = Renewing()
    driver.open()
    ash = {"provider": {"type": "open_ai", "voice": "ash"}}
    driver.client({"type": "UpdateSpeak", "speak": ash})
    refused = driver.session._updates[0].event_id
    driver.upstream(events.error("cannot_update_voice", "Cannot update", event_id=refused))
    driver.client({"type": "UpdatePrompt", "prompt": "You are brief."})  # applied after it
    driver.upstream(events.session_updated())
    driver.tick(HOUR - 300)
    sent = driver.connect_next().to_next
    assert sent[0]["session"]["audio"]["output"]["voice"] == "shimmer"
    assert sent[0]["session"]["instructions"] == "You are brief."


def test_a_next_session_refusing_an_item_is_closed_and_the_current_one_serves_on() -> None:
    driver = Renewing()
    driver.open()
    driver.client({"type": "InjectUserMessage", "content": "Hi"})
    driver.respond("resp_1")
    driver.finish("resp_1")
    driver.tick(HOUR - 300)
    sent = driver.connect_next().to_next
    carried = sent[1]
    out = driver.next(events.error("invalid_value", "No.", event_id=carried["event_id"]))
    assert out.next_close is not None and not out.switched
    assert out.to_client == []  # the current session still serves
    assert driver.client({"type": "InjectUserMessage", "content": "Still there?"}).upstream
    driver.finish("resp_x")
    # At the cap: a clear Error and a close, not a generic upstream_closed.
    expired = driver.tick(300)
    assert expired.only("Error")["code"] == ErrorCode.UPSTREAM_SESSION_EXPIRED
    assert expired.client_close is not None and expired.client_close.code == 1011


@pytest.mark.parametrize("how", ["connect failed", "closed", "silent", "not JSON", "mistyped"])
def test_a_next_session_that_fails_is_given_up(how: str) -> None:
    driver = Renewing()
    driver.open()
    driver.tick(HOUR - 300)
    if how == "connect failed":
        out = decode(driver.session.next_upstream_failed(ErrorCode.UPSTREAM_UNAVAILABLE, "no"))
    elif how == "closed":
        driver.connect_next()
        out = decode(driver.session.next_upstream_closed(1011, "bye"))
    elif how == "silent":
        driver.connect_next()
        assert driver.tick(14).next_close is None
        out = driver.tick(1)  # ready_timeout
    elif how == "not JSON":
        driver.connect_next()
        out = decode(driver.session.next_upstream_message(b"garbage"))
    else:  # checked as any upstream event: a mistyped field is not believed
        driver.connect_next()
        created = events.session_created("sess_2", expires_at=driver.expiring(HOUR))
        created["session"]["expires_at"] = "soon"
        out = decode(driver.session.next_upstream_message(orjson.dumps(created)))
    assert out.next_close is not None and out.to_client == [] and out.client_close is None
    # Tried again later, while the session has time left.
    assert not driver.tick(14).opened_next
    assert driver.tick(1).opened_next


def test_renewal_is_tried_three_times_then_the_session_ends_at_its_cap() -> None:
    driver = Renewing()
    driver.open()
    opened = 0
    for _ in range(10):
        out = driver.tick(HOUR - 300 if opened == 0 else 15)
        if out.opened_next:
            opened += 1
            decode(driver.session.next_upstream_failed(ErrorCode.UPSTREAM_UNAVAILABLE, "no"))
    assert opened == 3
    end = driver.tick(300)
    assert end.only("Error")["code"] == ErrorCode.UPSTREAM_SESSION_EXPIRED


def test_no_retry_when_the_cap_is_too_close() -> None:
    driver = Renewing()
    driver.open(lifetime=20)
    assert driver.tick(10).opened_next
    decode(driver.session.next_upstream_failed(ErrorCode.UPSTREAM_UNAVAILABLE, "no"))
    assert not driver.tick(9.5).opened_next
    assert driver.tick(0.5).only("Error")["code"] == ErrorCode.UPSTREAM_SESSION_EXPIRED


def test_a_draining_session_is_not_renewed() -> None:
    driver = Renewing()
    driver.open()
    driver.client({"type": "InjectUserMessage", "content": "Hi"})
    driver.respond("resp_1")
    driver.decode_actions(driver.session.drain())
    assert not driver.tick(HOUR - 300).opened_next
    assert driver.finish("resp_1").client_close is not None  # drained, not renewed


def test_no_quiet_moment_before_the_cap_ends_the_session_clearly() -> None:
    driver = Renewing()
    driver.open()
    driver.client({"type": "InjectUserMessage", "content": "Talk forever."})
    driver.respond("resp_1")
    assert not driver.tick(HOUR - 10).opened_next
    out = driver.tick(10)
    assert out.only("Error")["code"] == ErrorCode.UPSTREAM_SESSION_EXPIRED
    assert out.client_close is not None


def test_a_cap_reached_while_preparing_closes_the_next_session_too() -> None:
    driver = Renewing()
    driver.open()
    driver.tick(HOUR - 300)
    driver.connect_next()
    out = driver.upstream(
        events.error("session_expired", "Your session hit the maximum duration of 60 minutes.")
    )
    assert out.only("Error")["code"] == ErrorCode.UPSTREAM_SESSION_EXPIRED
    assert out.next_close is not None and out.upstream_close is not None


@pytest.mark.parametrize("close_code", [1000, 1011])
def test_the_services_close_at_the_cap_is_upstream_session_expired(close_code: int) -> None:
    driver = Renewing(session_renew_margin=0)  # renewal off
    driver.open(lifetime=60)
    assert not driver.tick(59).opened_next
    out = decode(driver.session.upstream_closed(close_code, ""))
    assert out.only("Error")["code"] == ErrorCode.UPSTREAM_SESSION_EXPIRED


def test_the_services_cap_error_is_upstream_session_expired() -> None:
    driver = Renewing(session_renew_margin=0)
    driver.open(lifetime=60)
    out = driver.upstream(
        events.error("session_expired", "Your session hit the maximum duration of 60 minutes.")
    )
    assert out.only("Error")["code"] == ErrorCode.UPSTREAM_SESSION_EXPIRED
    assert out.client_close is not None


def test_a_short_session_is_renewed_in_its_second_half_and_again_after() -> None:
    driver = Renewing()
    driver.open(lifetime=20)  # shorter than the margin: renewed from half its life
    assert not driver.tick(9).opened_next
    assert driver.tick(1).opened_next
    driver.client({"type": "InjectUserMessage", "content": "One"})
    driver.respond("resp_1")
    driver.upstream(events.transcript_done("item_a1", "Two", "resp_1"))
    driver.finish("resp_1")
    sent = driver.connect_next().to_next
    assert _merged(driver.confirm_next(sent, lifetime=20)).switched
    driver.client({"type": "InjectUserMessage", "content": "Three"})
    driver.respond("resp_2")
    driver.upstream(events.transcript_done("item_a2", "Four", "resp_2"))
    driver.finish("resp_2")
    assert driver.tick(10).opened_next  # the second session's own second half
    sent = driver.connect_next().to_next
    assert sent[0]["session"] == driver.first_update["session"]
    assert [text for _, text in _items(sent)] == ["One", "Two", "Three", "Four"]
    assert _merged(driver.confirm_next(sent, session_id="sess_3")).switched


def test_a_session_shorter_than_the_floor_is_not_renewed() -> None:
    driver = Renewing(session_renew_min_lifetime=600)
    driver.open(lifetime=300)
    assert not driver.tick(299).opened_next
    out = driver.tick(1)
    assert out.only("Error")["code"] == ErrorCode.UPSTREAM_SESSION_EXPIRED
    assert not out.opened_next


def test_renewals_are_at_most_one_per_interval() -> None:
    driver = Renewing(session_renew_min_interval=60)
    driver.open(lifetime=20)
    assert driver.tick(10).opened_next
    sent = driver.connect_next().to_next
    assert _merged(driver.confirm_next(sent, lifetime=20)).switched
    # The second session would be due in 10 s, but the last renewal was just now.
    assert not driver.tick(19).opened_next
    assert driver.tick(1).only("Error")["code"] == ErrorCode.UPSTREAM_SESSION_EXPIRED


def test_a_refused_renewal_is_told_once_in_the_log() -> None:
    told: list[str] = []
    renewal = Renewal(
        300,
        15,
        lambda purpose: f"proxy_t_{purpose}_1",
        lambda: WALL,
        min_lifetime=600,
        min_interval=600,
        warn=told.append,
    )
    renewal.session_expires(WALL + 100, 0.0, WALL)
    renewal.session_expires(WALL + 200, 0.0, WALL)
    assert renewal.next_deadline == 200.0 and not renewal.is_due(199.0)
    assert len(told) == 1 and "100 s" in told[0] and "600 s" in told[0]
    renewal = Renewal(300, 15, lambda p: f"proxy_t_{p}_1", lambda: WALL, min_lifetime=600)
    renewal.session_expires(WALL + 3600, 0.0, WALL)
    assert renewal.is_due(3300.0)  # an hour's session is renewed as before


def test_without_expires_at_nothing_is_renewed() -> None:
    driver = Renewing()
    driver.ready(SETTINGS)
    assert driver.session.next_deadline == driver.clock.now + QUIET_OPTIONS["client_idle_timeout"]


# ------------------------------------------------------------------ the record's bounds


def test_the_record_drops_the_oldest_entries_past_its_bounds() -> None:
    record = ConversationRecord(max_items=3, max_chars=1000)
    for n in range(5):
        record.message("user", f"turn {n}")
    assert [item["content"][0]["text"] for item in record.after(0, 0.0)[0]] == [
        "turn 2",
        "turn 3",
        "turn 4",
    ]
    record = ConversationRecord(max_items=100, max_chars=20)
    for letter in "abcde":
        record.message("user", letter * 5)
    assert len(record) == 4 and record.chars == 20  # "a" * 5 went first
    record.message("user", "f" * 50)  # one entry longer than its share is cut to it
    assert len(record) == 4 and record.chars == 20


def test_one_large_entry_is_cut_and_the_conversation_stays() -> None:
    record = ConversationRecord()  # the default bounds
    for n in range(10):
        record.message("user", f"question {n}", key=f"u{n}")
        record.message("assistant", f"answer {n}", key=f"a{n}")
    record.function_call("call_1", "lookup", '{"q": "x"}', 0.0)
    record.function_output("call_1", "x" * 64_000, 0.0)  # under the 64 KiB answer limit
    record.message("user", "y" * 100_000)
    items = [item for item in record.after(0, 0.0)[0]]
    assert len(items) == 23  # every turn, the call, its output, the long message
    output, long_message = items[21]["output"], items[22]["content"][0]["text"]
    for text in (output, long_message):
        assert len(text) == MAX_CARRIED_CHARS // 4 and text.endswith(TRUNCATED_MARK)
    assert record.chars <= MAX_CARRIED_CHARS


def test_a_call_and_its_output_are_dropped_together() -> None:
    record = ConversationRecord(max_items=3)
    record.function_call("call_1", "f", "{}", 0.0)
    record.function_output("call_1", "out", 0.0)
    record.message("user", "one")
    record.message("assistant", "two")  # over the bound: the call goes, and its output
    assert [item["type"] for item in record.after(0, 0.0)[0]] == ["message", "message"]


def test_a_function_output_whose_call_was_dropped_is_not_carried() -> None:
    renewal = Renewal(300, 15, lambda purpose: f"proxy_t_{purpose}_1", lambda: WALL)
    renewal.record = ConversationRecord(max_items=2)
    renewal.record.function_call("call_1", "f", "{}", 0.0)
    renewal.record.function_output("call_1", "out", 0.0)
    renewal.record.message("user", "next")  # the call is dropped, its output stays
    renewal.opening()
    assert _items(renewal.connected(0.0)) == [("user", "next")]


# ------------------------------------------------------------------ review leftovers


def test_the_cap_error_is_known_by_its_code_and_by_its_text_only_without_one() -> None:
    # Another error that happens to say "maximum duration" is not the cap.
    driver = Renewing()
    driver.open()
    out = driver.upstream(
        events.error("invalid_value", "Audio exceeds the maximum duration of 15 minutes.")
    )
    assert out.only("Error")["code"] == "invalid_value"
    assert out.client_close is None
    # Without a code the message is all there is.
    driver = Renewing()
    driver.open()
    out = driver.upstream(
        events.error(None, "Your session hit the maximum duration of 60 minutes.")
    )
    assert out.only("Error")["code"] == ErrorCode.UPSTREAM_SESSION_EXPIRED


@pytest.mark.parametrize("step", [-2 * HOUR, 2 * HOUR])
def test_a_host_clock_step_neither_brings_renewal_forward_nor_delays_it(step: float) -> None:
    wall_offset = [WALL]
    driver = Renewing()
    driver.session = ProxySession(
        SessionOptions(**QUIET_OPTIONS),
        clock=driver.clock,
        wall_clock=lambda: driver.clock.now + wall_offset[0],
    )
    driver.open()
    wall_offset[0] += step  # the host's clock is set (NTP, an operator) after expires_at came
    assert not driver.tick(HOUR - 301).opened_next
    out = driver.tick(1)
    assert out.opened_next and out.client_close is None  # due on the session's own clock


def _call_waiting(driver: Renewing) -> None:
    """A client-side call the client has not answered (its response is over)."""
    driver.client({"type": "InjectUserMessage", "content": "What time is it?"})
    driver.respond("resp_1")
    driver.upstream(events.function_call("call_1", "get_time", "{}", "resp_1"))
    driver.finish("resp_1")


def test_an_unanswered_client_call_holds_renewal_only_until_the_last_minute() -> None:
    driver = Renewing()
    driver.open()
    _call_waiting(driver)
    assert not driver.tick(HOUR - 300).opened_next  # due, but the call waits
    assert not driver.tick(239).opened_next
    assert driver.tick(1).opened_next  # a minute before the cap: the call goes along
    sent = driver.connect_next().to_next
    assert _items(sent) == [("user", "What time is it?"), ("call", "call_1", "get_time", "{}")]
    assert _merged(driver.confirm_next(sent)).switched
    # The client answers after the switch: the new session gets the output and answers.
    late = driver.client(
        {"type": "FunctionCallResponse", "id": "call_1", "name": "get_time", "content": "12:00"}
    )
    assert late.upstream_types() == ["conversation.item.create", "response.create"]
    assert late.upstream[0]["item"]["type"] == "function_call_output"
    assert late.upstream[0]["item"]["call_id"] == "call_1"
    assert "Error" not in late.types()
    assert driver.tick(60).client_close is None  # the old cap passed: nothing ended


def test_speech_that_never_stops_holds_renewal_only_until_the_last_minute() -> None:
    driver = Renewing()
    driver.open()
    driver.upstream(events.speech_started("item_u1"))
    assert not driver.tick(HOUR - 300).opened_next  # due, but the user speaks
    assert not driver.tick(239).opened_next
    assert driver.tick(1).opened_next
    sent = driver.connect_next().to_next
    appends: list[dict[str, Any]] = []
    for _ in range(10):  # the user speaks on while the next session confirms
        appends += driver.audio(tone_pcm16(20, rate=16000)).upstream
        appends += driver.tick(0.02).upstream
    appends = [e for e in appends if e["type"] == "input_audio_buffer.append"]
    switch = next(out for out in driver.confirm_next(sent) if out.switched)
    assert switch.after_switch == appends[-3:]  # the newest 300 ms reach the new session
    assert driver.tick(60).client_close is None


def test_a_transcript_the_switch_did_not_wait_for_still_reaches_the_client() -> None:
    driver = Renewing()
    driver.open()
    driver.tick(HOUR - 300)
    sent = driver.connect_next().to_next
    driver.upstream(events.speech_started("item_u1"))
    driver.upstream(events.speech_stopped(800, "item_u1"))
    driver.upstream(events.input_committed("item_u1"))
    driver.respond("resp_1")
    driver.upstream(events.transcript_done("item_a1", "Sure.", "resp_1"))
    driver.finish("resp_1")
    assert not _merged(driver.confirm_next(sent)).switched  # the transcript is awaited
    given_up = driver.tick(5)  # ... for 5 s: the answer goes to the next session alone
    assert _items(given_up.to_next) == [("assistant", "Sure.")]
    switch = _merged(driver.confirm_next(given_up.to_next, session_id=""))
    assert switch.switched and switch.hear_old_for == 20.0  # the old session is heard on

    late = events.transcription_completed("item_u1", "Can you help?")
    other = events.transcription_completed("item_zz", "Not a turn of ours.")
    heard = decode(driver.session.retired_upstream_message(orjson.dumps(late)))
    assert [(m["type"], m.get("content", m.get("transcript"))) for m in heard.to_client] == [
        ("ConversationText", "Can you help?"),
        ("Transcript", "Can you help?"),
    ]
    assert heard.only("Transcript")["is_final"] is True
    assert decode(driver.session.retired_upstream_message(orjson.dumps(late))).to_client == []
    assert decode(driver.session.retired_upstream_message(orjson.dumps(other))).to_client == []
    response = events.response_created("resp_old")
    assert decode(driver.session.retired_upstream_message(orjson.dumps(response))).to_client == []
    # The next renewal carries the late transcript in its place, before the answer.
    driver.tick(HOUR - 300)
    assert _items(driver.connect_next().to_next) == [
        ("user", "Can you help?"),
        ("assistant", "Sure."),
    ]


def test_a_transcript_later_than_the_bound_is_not_heard() -> None:
    driver = Renewing()
    driver.open()
    driver.tick(HOUR - 300)
    sent = driver.connect_next().to_next
    driver.upstream(events.input_committed("item_u1"))
    driver.tick(5)
    assert _merged(driver.confirm_next(sent)).hear_old_for == 20.0
    driver.tick(20)
    late = events.transcription_completed("item_u1", "Too late.")
    assert decode(driver.session.retired_upstream_message(orjson.dumps(late))).to_client == []


def test_without_a_transcript_owed_the_old_session_is_closed_at_once() -> None:
    driver = Renewing()
    driver.open()
    driver.tick(HOUR - 300)
    sent = driver.connect_next().to_next
    assert _merged(driver.confirm_next(sent)).hear_old_for == 0.0
