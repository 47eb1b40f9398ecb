"""How long a session may hold its place, and floods (issue 17): KeepAlive alone stops
counting after a while, every session has a time limit, pings count in the message rate,
and a client that stays over the rate is closed. No sockets: the session decides."""

from __future__ import annotations

from typing import Any

from proxy.config import ProxyConfig
from proxy.outbox import CLOSE_GRACE
from tests.unit.session_driver import Driver


def codes(out: Any) -> list[str]:
    return [m["code"] for m in out.to_client if m["type"] in ("Error", "Warning")]


def test_keepalive_alone_stops_counting_after_its_timeout() -> None:
    driver = Driver(client_idle_timeout=60, keepalive_only_timeout=300)
    driver.ready()
    for _ in range(9):  # 270 s of KeepAlive every 30 s: the idle timeout never comes
        assert driver.tick(30).client_close is None
        driver.client({"type": "KeepAlive"})
    out = driver.tick(30)
    assert codes(out) == ["client_idle"]
    assert "nothing but KeepAlive for 300 s" in out.to_client[0]["description"]
    assert out.client_close is not None and out.client_close.code == 1000
    assert driver.session.close_reason == "keepalive_only"


def test_audio_or_a_message_keeps_the_place_in_use() -> None:
    driver = Driver(client_idle_timeout=60, keepalive_only_timeout=300)
    driver.ready()
    for step in range(20):  # 600 s: KeepAlive, with audio or a message now and then
        assert driver.tick(30).client_close is None, step
        if step % 8 == 3:
            driver.audio(b"\0\0" * 160)
        elif step % 8 == 7:
            driver.client({"type": "InjectUserMessage", "content": "still there?"})
        else:
            driver.client({"type": "KeepAlive"})


def test_an_invalid_message_does_not_count_as_use() -> None:
    driver = Driver(client_idle_timeout=60, keepalive_only_timeout=100)
    driver.ready()
    for _ in range(3):
        driver.tick(30)
        driver.client({"type": "InjectUserMessage", "content": None})  # invalid: refused
    assert codes(driver.tick(15)) == ["client_idle"]


def test_every_session_ends_at_its_time_limit() -> None:
    driver = Driver(client_idle_timeout=60, max_session_seconds=200)
    driver.ready()
    for _ in range(6):
        assert driver.tick(30).client_close is None
        driver.audio(b"\0\0" * 160)
    out = driver.tick(25)
    assert codes(out) == ["session_time_limit"]
    assert out.client_close is not None and out.client_close.code == 1000
    assert driver.session.close_reason == "session_time_limit"


def test_no_time_limit_when_it_is_zero() -> None:
    driver = Driver(client_idle_timeout=60, keepalive_only_timeout=10**6, max_session_seconds=0)
    driver.ready()
    for _ in range(100):
        assert driver.tick(50).client_close is None
        driver.audio(b"\0\0" * 160)


def test_the_defaults_are_longer_than_a_real_voice_session_pauses_or_lasts() -> None:
    session = Driver().session
    assert session.options.keepalive_only_timeout >= 600  # ten minutes without a word
    assert session.options.max_session_seconds >= 4 * 3600  # four hours


def test_pings_count_in_the_message_rate() -> None:
    driver = Driver(message_rate=100)  # a burst of 200
    driver.ready()
    flood = [driver.decode_actions(driver.session.client_ping()) for _ in range(300)]
    said = [n for n, o in enumerate(flood) if codes(o)]
    assert said == [199], said  # the Settings took one token; the 200th ping is over it
    assert codes(driver.client({"type": "InjectUserMessage", "content": "x"})) == []
    driver.clock.advance(2.0)
    out = driver.client({"type": "InjectUserMessage", "content": "x"})
    assert out.upstream_types()[0] == "conversation.item.create"


def test_a_client_that_stays_over_the_rate_is_closed_with_1008() -> None:
    driver = Driver(message_rate=100, flood_close_seconds=3, client_idle_timeout=600)
    driver.ready()
    closes = []
    errors: list[str] = []
    start = driver.clock.now
    for _ in range(50):  # 5 s at 1000 frames a second, ten times the rate
        for _ in range(100):
            out = driver.audio(b"\0\0")
            errors += [m["description"] for m in out.to_client if m["type"] == "Error"]
            if out.client_close is not None:
                closes.append((driver.clock.now - start, out.client_close.code))
        driver.clock.advance(0.1)
    assert len(errors) == 2, errors  # once when it starts, once when it is closed
    assert "closing" in errors[1]
    ((when, code),) = closes
    assert code == 1008 and 3.0 <= when <= 3.5  # the burst (0.2 s), then 3 s over the rate
    assert driver.session.close_reason == "message_flood"


def test_a_burst_now_and_then_is_no_flood() -> None:
    driver = Driver(message_rate=100, flood_close_seconds=3, client_idle_timeout=600)
    driver.ready()
    told = 0
    for _ in range(10):  # 10 bursts of 250 frames, 2 s apart: each over the rate briefly
        for _ in range(250):
            out = driver.audio(b"\0\0")
            assert out.client_close is None
            told += len(codes(out))
        driver.clock.advance(2.0)
    assert told == 10  # one Error a burst, none while each goes on


def test_a_half_open_client_gives_its_place_back_within_22_seconds_by_default() -> None:
    """A peer gone without a FIN is found by the keepalive ping: at worst it went just
    after a ping was answered (interval), then the next one goes unanswered (timeout),
    then the close is given its grace. With 20 s pings it held its place 42 s."""
    config = ProxyConfig()
    assert config.ping_interval + config.ping_timeout + CLOSE_GRACE <= 22
