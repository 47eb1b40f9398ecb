"""`python -m proxy` options: every one has an environment variable and shows in --help;
mistakes are one-line usage errors, never tracebacks; risky setups are warned about."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from harness.client import ComponentClient
from proxy.settings import operator_options
from tests.processes import clean_env, listening_url, running

# Generated from the one place options are declared; the README is written by hand, so
# the checks against it below are what keep the two in step.
OPTIONS_AND_ENV = {spec.flag: spec.env for _, spec, _ in operator_options()}
DEFAULTS = {spec.flag: default for _, spec, default in operator_options()}
NEGATED = {spec.negated[0]: spec.flag for _, spec, _ in operator_options() if spec.negated}


def run_proxy(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_every_option_is_in_help_with_its_environment_variable() -> None:
    help_text = " ".join(run_proxy("--help").stdout.split())
    for option, env in OPTIONS_AND_ENV.items():
        assert option in help_text, option
        assert env in help_text, env


def test_every_option_in_help_has_a_row_in_the_readme_options_table() -> None:
    """The README's table of options is the user's reference: none may be missing, and
    each row names the option's environment variable."""
    help_flags = set(re.findall(r"--[a-z][a-z0-9-]*", run_proxy("--help").stdout)) - {"--help"}
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `--")]
    in_table = set(re.findall(r"`(--[a-z][a-z0-9-]*)", "\n".join(rows)))
    assert help_flags - in_table == set(), help_flags - in_table
    assert set(OPTIONS_AND_ENV) <= help_flags
    for option, env in OPTIONS_AND_ENV.items():
        row = next(r for r in rows if f"`{option}`" in r)
        assert env in row or env.rsplit("_", 1)[-1] in row, (option, env)


def test_every_readme_row_names_an_option_its_variable_and_its_default() -> None:
    """Each row's flags are options with the variables the row names, and the default
    the row gives is the one the proxy uses (changed in one place, it shows here)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `--")]
    for row in rows:
        flag_cell, env_cell, default_cell = row.split(" | ")[:3]
        for shown in re.findall(r"`(--[a-z][a-z0-9-]*)`", flag_cell):
            flag = NEGATED.get(shown, shown)  # --no-test-app: the --test-app option
            assert flag in OPTIONS_AND_ENV, row
            env = OPTIONS_AND_ENV[flag]
            # `..._BURST` beside a full name: the same name with that end.
            ends = re.findall(r"`\.\.\.(_[A-Z_]+)`", env_cell)
            assert env in env_cell or any(env.endswith(end) for end in ends), (flag, row)
            default = DEFAULTS[flag]
            if isinstance(default, (frozenset, tuple)):
                default = ", ".join(sorted(default))
            elif isinstance(default, float):
                default = f"{default:g}"
            if default not in (None, False, ""):  # no default: the row says what happens
                assert f"`{default}`" in default_cell, (flag, row)


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--log-level", "loud"], {}, "unknown log level 'loud'"),
        (["--max-sessions", "many"], {}, "invalid int value"),
        ([], {"OPENAI_PROXY_MAX_SESSIONS": "many"}, "OPENAI_PROXY_MAX_SESSIONS='many'"),
        ([], {"LOG_LEVEL": "chatty"}, "LOG_LEVEL='chatty'"),
        (["--ipv6-prefix", "129"], {}, "must be 1 to 128"),
        (["--keepalive-only-timeout", "0"], {}, "must be more than 0"),
        ([], {"OPENAI_PROXY_CONNECTION_RATE": "-1"}, "OPENAI_PROXY_CONNECTION_RATE='-1'"),
        (["--client-token-file", "/nonexistent/token"], {}, "cannot read the client token file"),
        # A path without a scheme read as the whole host before: now it stops the start.
        (["--function-endpoint-allow", "api.example.com/functions"], {}, "needs a scheme"),
        (
            [],
            {"OPENAI_PROXY_FUNCTION_ENDPOINT_ALLOW": "a.example.com,b.example.com/fn"},
            "OPENAI_PROXY_FUNCTION_ENDPOINT_ALLOW=",
        ),
        (["--function-endpoint-allow", "ftp://h"], {}, "only http:// and https://"),
        (["--function-endpoint-method", "TRACE"], {}, "'TRACE' is not one of"),
        (["--function-endpoint-header", "Host"], {}, "the proxy sets it"),
        (["--function-max-answer-bytes", "0"], {}, "must be 1 or more"),
        ([], {"OPENAI_PROXY_TEST_APP": "maybe"}, "OPENAI_PROXY_TEST_APP='maybe'"),
        ([], {"OPENAI_PROXY_LOG_CONTENT": "maybe"}, "OPENAI_PROXY_LOG_CONTENT='maybe'"),
    ],
)
def test_mistakes_are_one_line_errors_not_tracebacks(
    args: list[str], env: dict[str, str], says: str
) -> None:
    result = run_proxy(*args, **env)
    assert result.returncode != 0
    assert says in result.stderr
    assert "Traceback" not in result.stderr


async def test_log_level_in_any_case_and_a_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-123\n")
    args = [
        "-m",
        "proxy",
        "--port",
        "0",
        "--log-level",
        "error",
        "--client-token-file",
        str(token_file),
    ]
    with running(args, clean_env(), r"listening on ws://") as (_, lines):
        url = listening_url(lines)
        async with await ComponentClient.connect(url, token="file-token-123") as client:
            await client.start()
        with pytest.raises(InvalidStatus) as refused:  # the file's token is required
            await ComponentClient.connect(url)
        assert refused.value.response.status_code == 401


def test_listening_publicly_without_a_token_is_warned_about() -> None:
    with running(
        ["-m", "proxy", "--host", "0.0.0.0", "--port", "0"], clean_env(), r"listening on ws://"
    ) as (_, lines):
        pass
    output = "\n".join(lines)
    assert "without a client token" in output
    with running(
        ["-m", "proxy", "--host", "0.0.0.0", "--port", "0", "--client-token", "t"],
        clean_env(),
        r"listening on ws://",
    ) as (_, quiet):
        pass
    assert "without a client token" not in "\n".join(quiet)


def test_an_upstream_url_without_a_key_is_warned_about() -> None:
    with running(
        ["-m", "proxy", "--port", "0", "--upstream-url", "ws://127.0.0.1:9/v1/realtime"],
        clean_env(),
        r"listening on ws://",
    ) as (_, lines):
        pass
    assert "OPENAI_API_KEY is not" in "\n".join(lines)


def test_the_test_app_is_not_served_publicly_with_a_real_key_unless_asked() -> None:
    env = {"OPENAI_API_KEY": "sk-not-a-real-key-0000", "OPENAI_REALTIME_URL": "ws://127.0.0.1:9/x"}
    public = ["-m", "proxy", "--host", "0.0.0.0", "--port", "0", "--client-token", "t"]
    with running(public, clean_env(**env), r"listening on ws://") as (_, lines):
        pass
    assert not any("test-app:" in line for line in lines)
    with running([*public, "--test-app"], clean_env(**env), r"test-app: http") as (_, lines):
        pass
    with running(["-m", "proxy", "--port", "0"], clean_env(**env), r"test-app: http") as (
        _,
        lines,
    ):  # loopback: served
        pass
