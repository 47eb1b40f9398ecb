"""The built-in mock upstream of `python -m proxy` without OPENAI_API_KEY: the harness's
mock OpenAI Realtime server, run as a child process.

A child process and not an import: the proxy never imports its test kit (`harness`
imports `proxy`, never the reverse), and the mock's dependencies (the openai SDK,
pydantic: the [mock] extra) stay out of the proxy's process. The child listens on a free
loopback port and says where on its first line; it runs in its own session, so the
terminal's Ctrl-C reaches only the proxy, which drains first and stops the mock after;
and it stops by itself when its stdin closes, so a proxy that dies (SIGKILL, the OOM
killer) leaves no mock behind.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
from anyio.streams.text import TextReceiveStream

__all__ = ["MOCK_KEY", "MockUnavailable", "built_in_mock"]

MOCK_KEY = "mock-key-not-secret"  # what the built-in mock expects; not an OpenAI key
_START_TIMEOUT = 60.0  # the child imports the openai SDK: slow on a loaded machine
_STOP_TIMEOUT = 5.0
_ANNOUNCED = re.compile(r"listening on (ws://\S+)")
_MISSING = re.compile(r"No module named '([\w.]+)'")


class MockUnavailable(Exception):
    """The built-in mock did not start; the message says why, in one line."""


def mock_command() -> list[str]:
    """`python -m harness.mock_openai` for a lean, private mock, with this interpreter's
    isolation flags (a `-S` or `-I` run must not find packages the parent cannot)."""
    flags = [
        flag
        for flag, on in (
            ("-I", sys.flags.isolated),
            ("-S", sys.flags.no_site),
            ("-E", sys.flags.ignore_environment and not sys.flags.isolated),
            ("-s", sys.flags.no_user_site and not sys.flags.isolated),
        )
        if on
    ]
    return [
        sys.executable,
        *flags,
        "-m",
        "harness.mock_openai",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-key",
        MOCK_KEY,
        "--no-admin",  # no journal either: memory stays flat however long it runs
        "--until-stdin-closes",
    ]


@asynccontextmanager
async def built_in_mock() -> AsyncIterator[str]:
    """Start the mock, yield its ws:// URL, stop it on exit. Raises `MockUnavailable`
    when it exits or stays silent instead of listening."""
    process = await anyio.open_process(
        mock_command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        url = await _announced_url(process)
        if url is None:
            raise MockUnavailable(await _why_not(process))
        # The proxy's own exit (SystemExit for a bad certificate, an OSError for a taken
        # port) leaves as itself, not wrapped in the task group's exception group.
        failure: BaseException | None = None
        async with anyio.create_task_group() as group:
            assert process.stderr is not None
            # What the mock says later (warnings, its failures on stop) is the proxy's too.
            group.start_soon(_forward, process.stderr)
            try:
                yield url
            except BaseException as exc:
                failure = exc
            finally:
                await _stop(process)
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process)
            await process.aclose()


async def _announced_url(process: anyio.abc.Process) -> str | None:
    assert process.stdout is not None
    lines = TextReceiveStream(process.stdout)
    with anyio.move_on_after(_START_TIMEOUT):
        buffered = ""
        async for chunk in lines:
            buffered += chunk
            if found := _ANNOUNCED.search(buffered):
                return found.group(1)
    return None


async def _why_not(process: anyio.abc.Process) -> str:
    """One line: what the mock lacks, or the last thing it said."""
    await _stop(process)
    assert process.stderr is not None
    said = b""
    with anyio.move_on_after(_STOP_TIMEOUT):
        async for chunk in process.stderr:
            said += chunk
    text = said.decode(errors="replace").strip()
    if missing := _MISSING.search(text):
        return (
            f"no OPENAI_API_KEY, and the built-in mock upstream needs {missing.group(1)}: set "
            "OPENAI_API_KEY, or pip install 'voice-agent-realtime-proxy[mock]'"
        )
    last = text.splitlines()[-1] if text else f"exit status {process.returncode}"
    return (
        f"no OPENAI_API_KEY, and the built-in mock upstream did not start ({last}): set "
        "OPENAI_API_KEY or --upstream-url"
    )


async def _forward(stream: anyio.abc.ByteReceiveStream) -> None:
    async for chunk in stream:
        sys.stderr.buffer.write(chunk)
        sys.stderr.buffer.flush()


async def _stop(process: anyio.abc.Process) -> None:
    if process.returncode is not None:
        return
    with anyio.CancelScope(shield=True):
        assert process.stdin is not None
        await process.stdin.aclose()  # the mock stops when its stdin closes
        process.terminate()
        with anyio.move_on_after(_STOP_TIMEOUT):
            await process.wait()
            return
        process.kill()
        await process.wait()
