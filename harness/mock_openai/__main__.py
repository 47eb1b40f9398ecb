"""Run the mock standalone: ``python -m harness.mock_openai --host 127.0.0.1 --port 8765``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .server import REALTIME_PATH, MockRealtime


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.mock_openai",
        description="A mock of the OpenAI Realtime API (GA) with its default behaviour.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="accept only this Bearer key (default: any Bearer key)",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    mock = MockRealtime(api_key=args.api_key, journal=False)  # runs for as long as wanted
    await mock.start(args.host, args.port)
    print(
        f"mock OpenAI Realtime listening on ws://{args.host}:{mock.port}{REALTIME_PATH}", flush=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await mock.stop()
        for failure in mock.failures:
            print(f"mock failure: {failure}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
