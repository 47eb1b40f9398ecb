"""Log lines: nobody can forge one, and a low descriptor limit is said out loud."""

from __future__ import annotations

import logging

import pytest

from proxy.logs import TextFormatter
from proxy.redaction import KeyRedactingFilter
from proxy.runner import _raise_file_limit


def test_control_characters_from_peers_cannot_start_a_new_log_line() -> None:
    record = logging.LogRecord(
        "proxy.session", logging.INFO, "", 0, "bad key %r", ("x\n2099-01-01 ERROR forged",), None
    )
    raw = logging.LogRecord(
        "proxy.session", logging.INFO, "", 0, "upstream said: %s", ("a\nb\rc\x1b[31m",), None
    )
    formatter = TextFormatter("%(levelname)s %(message)s")
    assert "\n" not in formatter.format(record)
    line = formatter.format(raw)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line == "INFO upstream said: a\\nb\\rc\\x1b[31m"


def test_a_file_limit_too_low_for_max_sessions_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="proxy"):
        _raise_file_limit(10**9)
    assert "file descriptors for --max-sessions 1000000000" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="proxy"):
        _raise_file_limit(10)
    assert not caplog.text


@pytest.mark.parametrize(
    "separator", ["\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\x0b", "\x1c"]
)
def test_every_kind_of_line_separator_and_c1_control_is_escaped(separator: str) -> None:
    record = logging.LogRecord(
        "proxy.session", logging.INFO, "", 0, "said: %s", (f"a{separator}FORGED",), None
    )
    line = TextFormatter("%(message)s").format(record)
    assert separator not in line
    assert line == "said: a" + separator.encode("unicode_escape").decode() + "FORGED"
    assert len(line.splitlines()) == 1


def test_ordinary_text_is_not_escaped() -> None:
    record = logging.LogRecord("proxy", logging.INFO, "", 0, "%s", ("Grüße, é, 日本, ✓",), None)
    assert TextFormatter("%(message)s").format(record) == "Grüße, é, 日本, ✓"


@pytest.mark.parametrize(
    "line",
    [
        "> GET /openai?token=Ab3x HTTP/1.1",
        "> Authorization: Token Ab3x",
        "> Sec-WebSocket-Protocol: token, Ab3x",
        "> Sec-WebSocket-Protocol: Ab3x, token",
        "offered ['Ab3x']",
        "a cookie: t=1; auth=Ab3x",
        "path /openai/Ab3x",
    ],
)
def test_a_short_client_token_is_never_logged(line: str) -> None:
    record = logging.LogRecord("proxy.client_ws", logging.DEBUG, "", 0, "%s", (line,), None)
    KeyRedactingFilter("sk-a-long-openai-key-0123", "Ab3x").filter(record)
    assert "Ab3x" not in record.getMessage()
    assert "[redacted]" in record.getMessage()
    # Where it is only part of a longer word, that word is not the token.
    other = logging.LogRecord("proxy", logging.INFO, "", 0, "%s", ("xAb3xy",), None)
    KeyRedactingFilter("Ab3x").filter(other)
    assert other.getMessage() == "xAb3xy"
