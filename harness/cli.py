"""What the harness's command-line programs share: run until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = ["run_until_stopped", "until_stopped"]


async def until_stopped(*, stdin_eof: bool = False) -> None:
    """Return at the first SIGINT or SIGTERM (Ctrl-C, `kill`, a supervisor), or with
    `stdin_eof` when stdin closes: a parent that dies, even by SIGKILL, closes it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    if stdin_eof:
        stdin = sys.stdin.fileno()

        def readable() -> None:
            try:
                closed = not os.read(stdin, 4096)
            except OSError:
                closed = True
            if closed:
                loop.remove_reader(stdin)
                stop.set()

        loop.add_reader(stdin, readable)
    await stop.wait()


def run_until_stopped(serve: Coroutine[Any, Any, None]) -> int:
    """Run a program's `serve()` coroutine; exit status 0 when it was asked to stop."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve)
    return 0
