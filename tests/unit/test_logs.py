"""Log lines: nobody can forge one, and a low descriptor limit is said out loud."""

from __future__ import annotations

import logging

import pytest

from proxy.logs import TextFormatter
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
