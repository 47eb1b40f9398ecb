"""Every setting once (issue 18): the command line, `ProxyConfig` and `SessionOptions`
take their defaults from `proxy.settings`, and what an operator sets reaches the session."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from proxy.cli import parse_args, server_settings
from proxy.config import ProxyConfig
from proxy.session_options import SessionOptions
from proxy.settings import ServerSettings, command_line_for, environment_for, operator_options


@pytest.fixture(autouse=True)
def no_option_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for _, spec, _ in operator_options():
        monkeypatch.delenv(spec.env, raising=False)


def test_the_command_line_with_nothing_set_gives_the_config_defaults() -> None:
    from_cli = ProxyConfig(**server_settings(parse_args([])))
    assert from_cli == ProxyConfig()


def test_session_options_default_to_the_server_settings() -> None:
    settings = ServerSettings()
    own = {"api_key", "functions"}  # made at start, not settings
    for each in dataclasses.fields(SessionOptions):
        if each.name not in own:
            assert each.default == getattr(settings, each.name), each.name


def test_every_session_option_reaches_the_session() -> None:
    changed: dict[str, object] = {}
    for each in dataclasses.fields(SessionOptions):
        if each.name == "functions":
            continue
        default = each.default
        changed[each.name] = (
            "sk-test-key-0000"
            if each.name == "api_key"
            else not default
            if isinstance(default, bool)
            else default * 2 + 1  # type: ignore[operator]
        )
    options = ProxyConfig(**changed).session_options()  # type: ignore[arg-type]
    for name, value in changed.items():
        assert getattr(options, name) == value, name


def test_options_come_from_the_environment_and_the_command_line_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_PROXY_TURN_RATE", "7.5")
    monkeypatch.setenv("OPENAI_PROXY_ALLOW_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("OPENAI_PROXY_FUNCTION_ENDPOINT_METHODS", "GET,PUT")
    monkeypatch.setenv("OPENAI_PROXY_LOG_CONTENT", "yes")
    args = parse_args(["--function-endpoint-method", "PATCH", "--max-sessions", "3"])
    config = ProxyConfig(**server_settings(args))
    assert config.turn_rate == 7.5
    assert config.allowed_origins == ("https://a.example", "https://b.example")
    assert config.function_methods == frozenset({"PATCH"})  # not the environment's too
    assert config.max_sessions == 3
    assert config.log_content is True


def test_repeated_flags_are_collected() -> None:
    args = parse_args(["--trusted-proxy", "10.0.0.1", "--trusted-proxy", "10.0.0.0/8"])
    assert args.trusted_proxies == ("10.0.0.1", "10.0.0.0/8")
    assert args.function_methods == frozenset({"POST"})


def test_every_option_parses_its_own_default_back() -> None:
    """A value given as text has the type and meaning of the default (a port is a
    number, not the text of one)."""
    for name, spec, default in operator_options():
        if default is None:
            continue
        if spec.collect is not None:
            assert spec.collect(spec.parse(str(v)) for v in default) == default, name
        else:
            parsed = spec.parse(str(default))
            assert parsed == default and type(parsed) is type(default), name


def test_every_option_has_its_own_flag_and_variable() -> None:
    specs = [spec for _, spec, _ in operator_options()]
    flags = [spec.flag for spec in specs] + [spec.negated[0] for spec in specs if spec.negated]
    assert len(set(flags)) == len(flags)
    assert len({spec.env for spec in specs}) == len(specs)


def test_tools_set_options_by_name_on_the_command_line_and_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = {
        "port": 0,
        "turn_rate": 50.0,
        "function_hosts": frozenset({"http://127.0.0.1:9/fn", "h.example"}),
        "log_content": True,
        "test_app": False,
    }
    from_flags = parse_args(command_line_for(**values))
    for name, value in environment_for(**values).items():
        monkeypatch.setenv(name, value)
    from_environment = parse_args([])
    for name, value in values.items():
        assert getattr(from_flags, name) == value, name
        assert getattr(from_environment, name) == value, name
    with pytest.raises(KeyError):
        environment_for(turn_rates=1)  # a misspelt setting is an error, not ignored


def _parser(flag: str) -> Callable[[str], Any]:
    return next(spec.parse for _, spec, _ in operator_options() if spec.flag == flag)


@pytest.mark.parametrize(
    ("flag", "text", "says"),
    [
        ("--ipv6-prefix", "129", "must be 1 to 128, not 129"),
        ("--ipv6-prefix", "0", "must be 1 to 128, not 0"),
        ("--keepalive-only-timeout", "0", "must be more than 0, not 0"),
        ("--keepalive-only-timeout", "nan", "must be more than 0, not nan"),
        ("--max-session-seconds", "-1", "must be 0 or more, not -1"),
        ("--max-session-seconds", "nan", "must be 0 or more, not nan"),  # was let through
        ("--function-max-answer-bytes", "0", "must be 1 or more, not 0"),
        ("--message-rate", "inf", "must be more than 0, not inf"),  # broke every connection
        ("--workers", "100000", "must be 1 to 256, not 100000"),  # forked that many
        ("--port", "65536", "must be 0 to 65535, not 65536"),
    ],
)
def test_a_number_out_of_its_range_is_refused_in_one_line(flag: str, text: str, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{says}$"):
        _parser(flag)(text)


def test_a_number_in_its_range_is_its_value() -> None:
    assert _parser("--ipv6-prefix")("128") == 128
    assert _parser("--max-session-seconds")("0") == 0.0
    assert _parser("--keepalive-only-timeout")("0.5") == 0.5
    assert _parser("--function-max-answer-bytes")("1") == 1
    with pytest.raises(ValueError):  # argparse says "invalid int value"
        _parser("--function-max-answer-bytes")("1.5")


def _numeric_options() -> list[tuple[str, Callable[[str], Any]]]:
    found = []
    for _, spec, _ in operator_options():
        if spec.flag is None or spec.parse is None:
            continue
        try:
            value = spec.parse("1")
        except (argparse.ArgumentTypeError, ValueError):
            continue
        if type(value) in (int, float):  # not a name, a path, a list or a switch
            found.append((spec.flag, spec.parse))
    return found


def test_every_number_option_has_a_range_and_refuses_nan_and_infinity() -> None:
    """A bare `float` or `int` took `nan`, `inf` and negatives: `--message-rate inf`
    made every connection fail with a traceback, `--workers 100000` forked that many."""
    numeric = _numeric_options()
    assert len(numeric) > 20
    for flag, parse in numeric:
        assert parse not in (int, float), flag
        for text in ("nan", "inf", "-inf", "-1"):
            with pytest.raises((argparse.ArgumentTypeError, ValueError)):
                parse(text)
                raise AssertionError(f"{flag} took {text}")


def test_a_number_that_is_no_int_is_named_as_one_in_the_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ipv6-prefix", type=_parser("--ipv6-prefix"))
    with pytest.raises(SystemExit):
        parser.parse_args(["--ipv6-prefix", "1.5"])
    assert "invalid int value: '1.5'" in capsys.readouterr().err
