"""Packaging: `pip install voice-agent-realtime-proxy` brings the proxy's runtime and no test
tools; the harness is an extra; the console script works; and on a runtime-only install
the `python -m proxy` mock fallback and our pytest entry point fail soft, in one line.

Built for real: the wheel from this checkout, and an environment holding only the wheel
and its runtime closure (tests/installs.py), in which the proxy is started and used.
"""

from __future__ import annotations

import importlib.metadata
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from harness.client import ComponentClient
from harness.mock_openai import MockRealtime
from harness.pytest_plugin import MOCK_API_KEY
from tests.installs import (
    build_wheel,
    isolated_env,
    requirement_closure,
    runtime_environment,
    wheel_distribution,
)
from tests.processes import running

PROJECT = canonicalize_name("voice-agent-realtime-proxy")
# What the proxy itself imports (and /metrics will need).
RUNTIME = {
    "websockets",
    "anyio",
    "dataclasses-json",
    "orjson",
    "soxr",
    "numpy",
    "pybase64",
    "prometheus-client",
}
# Never in the runtime install: the test harness and its schema oracles.
TEST_ONLY = {
    "pytest",
    "pytest-asyncio",
    "pytest-playwright",
    "playwright",
    "openai",
    "pydantic",
    "deepgram-sdk",
    "hypothesis",
    "pocketsphinx",
}

Closure = dict[NormalizedName, importlib.metadata.Distribution]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def project(
    wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> importlib.metadata.Distribution:
    """The built wheel, unpacked into an otherwise empty site directory."""
    return wheel_distribution(wheel, tmp_path_factory.mktemp("runtime-site"))


def closure_of(project: importlib.metadata.Distribution, requirement: str) -> Closure:
    return requirement_closure([requirement], provided={PROJECT: project})


@pytest.fixture(scope="module")
def runtime_closure(project: importlib.metadata.Distribution) -> Closure:
    return closure_of(project, "voice-agent-realtime-proxy")


@pytest.fixture(scope="module")
def runtime_site(project: importlib.metadata.Distribution, runtime_closure: Closure) -> Path:
    """A site directory with the wheel and its runtime closure, and nothing else."""
    site = Path(str(project.locate_file("")))
    return runtime_environment(site, runtime_closure.values())


def run_isolated(
    site: Path, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", *args],
        env=isolated_env(site),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


# ---------------------------------------------------------------- metadata


def test_the_runtime_requirements_are_the_proxy_s(project: importlib.metadata.Distribution) -> None:
    unconditional = [Requirement(r) for r in project.requires or ()]
    names = {canonicalize_name(r.name) for r in unconditional if r.marker is None}
    assert names >= RUNTIME
    assert not names & TEST_ONLY


def test_the_runtime_install_has_no_test_tools(runtime_closure: Closure) -> None:
    installed = set(runtime_closure)
    assert installed >= RUNTIME | {PROJECT}
    assert not installed & TEST_ONLY, (
        f"the runtime install pulls in {sorted(installed & TEST_ONLY)}"
    )
    assert len(installed) < 20, sorted(installed)  # the issue counted 31 with the harness


def test_the_closure_finds_test_tools_where_they_are(
    project: importlib.metadata.Distribution,
) -> None:
    """The check above can fail: the same walk finds pytest behind pytest-asyncio and the
    harness extra, and the mock extra brings the SDK but no pytest."""
    assert {"pytest", "pluggy"} <= set(requirement_closure(["pytest-asyncio"]))
    harness = closure_of(project, "voice-agent-realtime-proxy[harness]")
    assert {"pytest", "pytest-asyncio", "openai", "pydantic", "deepgram-sdk"} <= set(harness)
    mock = closure_of(project, "voice-agent-realtime-proxy[mock]")
    assert {"openai", "pydantic"} <= set(mock)
    assert "pytest" not in mock


def test_the_extras_build_on_each_other(project: importlib.metadata.Distribution) -> None:
    by_extra: dict[str, set[str]] = {}
    for text in project.requires or ():
        requirement = Requirement(text)
        if requirement.marker is None:
            continue
        extra = re.search(r'extra == "(\w+)"', str(requirement.marker))
        if extra is None:
            assert "python_version" in str(requirement.marker), text  # a runtime dependency
            continue
        by_extra.setdefault(extra.group(1), set()).add(str(requirement).split(";")[0].strip())
    assert by_extra["mock"] >= {"openai>=2.0", "pydantic>=2.7"}
    assert "voice-agent-realtime-proxy[mock]" in by_extra["harness"]
    assert "deepgram-sdk==7.17.0" in by_extra["harness"]
    assert "voice-agent-realtime-proxy[harness]" in by_extra["e2e"]
    # Recognition (pocketsphinx, its model in the wheel) comes with e2e, and so with dev.
    assert by_extra["speech"] == {"pocketsphinx<6,>=5.0"}
    assert "voice-agent-realtime-proxy[speech]" in by_extra["e2e"]
    assert "voice-agent-realtime-proxy[e2e]" in by_extra["dev"]
    openai = next(Requirement(r) for r in project.requires or () if r.startswith("openai"))
    assert not openai.extras  # not openai[realtime]: it pins an old websockets


def test_the_wheel_has_the_license_types_app_and_entry_points(
    wheel: Path, project: importlib.metadata.Distribution
) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"proxy/py.typed", "harness/py.typed", "proxy/test_app/index.html"} <= names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert project.metadata["License-Expression"] == "MIT"
    points = {(ep.group, ep.name): ep.value for ep in project.entry_points}
    assert points[("console_scripts", "voice-agent-proxy")] == "proxy.__main__:main"
    assert points[("pytest11", "voice_agent_harness")] == "harness.pytest_entry"


# ---------------------------------------------------------------- a runtime-only install


def test_the_runtime_site_really_lacks_the_harness(runtime_site: Path) -> None:
    for module in ("pytest", "openai", "pydantic"):
        result = run_isolated(runtime_site, "-c", f"import {module}")
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, module
    result = run_isolated(runtime_site, "-c", "import proxy; print(proxy.__file__)")
    assert result.stdout.startswith(str(runtime_site)), result  # the wheel's, not the checkout's


async def test_the_runtime_install_runs_the_proxy(
    runtime_site: Path, mock_openai: MockRealtime
) -> None:
    mock_openai.on_user_text("ping").reply_with_text("pong")
    env = isolated_env(
        runtime_site, OPENAI_API_KEY=MOCK_API_KEY, OPENAI_REALTIME_URL=mock_openai.url
    )
    with running(["-S", "-m", "proxy", "--port", "0"], env, r"listening on ws://") as (
        process,
        lines,
    ):
        url = re.search(r"ws://\S+", lines[-1])
        assert url is not None
        async with await ComponentClient.connect(url.group(0)) as client:
            await client.start()
            await client.inject("ping")
            assert await client.wait_for_reply() == "pong"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_the_console_script_entry_point_works_in_the_runtime_install(runtime_site: Path) -> None:
    script = (
        "from importlib.metadata import entry_points; "
        "(script,) = entry_points(group='console_scripts', name='voice-agent-proxy'); "
        "raise SystemExit(script.load()(['--help']))"
    )
    result = run_isolated(runtime_site, "-c", script)
    assert result.returncode == 0, result.stderr
    assert "--host" in result.stdout and "--port" in result.stdout


def test_the_installed_console_script_runs() -> None:
    script = Path(sys.executable).parent / "voice-agent-proxy"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout


def test_without_a_key_a_runtime_only_install_says_what_to_install(runtime_site: Path) -> None:
    result = run_isolated(runtime_site, "-m", "proxy", "--port", "0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "OPENAI_API_KEY" in lines[0] and "voice-agent-realtime-proxy[mock]" in lines[0]


@pytest.fixture(scope="module")
def runtime_site_with_pytest(
    runtime_site: Path, runtime_closure: Closure, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The runtime install plus pytest, as someone who uses pytest for other things has it."""
    pytest_closure = requirement_closure(["pytest"])
    assert not set(pytest_closure) & (TEST_ONLY - {"pytest"})
    site = tmp_path_factory.mktemp("runtime-site-with-pytest")
    return runtime_environment(site, [*runtime_closure.values(), *pytest_closure.values()])


def test_pytest_on_a_runtime_only_install_is_not_broken_by_the_plugin(
    runtime_site_with_pytest: Path, tmp_path: Path
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_theirs.py").write_text("def test_theirs():\n    assert True\n")
    # -W error: were the guard to warn instead, this would turn it into a failure.
    result = run_isolated(
        runtime_site_with_pytest,
        "-m",
        "pytest",
        "-W",
        "error",
        "-p",
        "no:cacheprovider",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    header = [line for line in result.stdout.splitlines() if "voice-agent-harness" in line]
    assert header == [
        "voice-agent-harness: plugin not loaded, missing pytest_asyncio, openai, pydantic "
        "(pip install 'voice-agent-realtime-proxy[harness]')"
    ]
    fixtures = run_isolated(runtime_site_with_pytest, "-m", "pytest", "--fixtures", cwd=tmp_path)
    assert fixtures.returncode == 0, fixtures.stdout + fixtures.stderr
    assert "mock_openai" not in fixtures.stdout
