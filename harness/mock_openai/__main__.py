"""Run the mock standalone: ``python -m harness.mock_openai --port 8765``.

By default it keeps a journal and answers the HTTP admin API under ``/__admin/`` on the
same port, so a suite in any language can script and inspect it (`admin.py`).
``--no-admin`` runs it lean for long sessions: no journal, flat memory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from harness.cli import run_until_stopped, until_stopped
from proxy.access import is_loopback

from .admin import serve_admin_api
from .server import REALTIME_PATH, MockRealtime


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.mock_openai",
        description="A mock of the OpenAI Realtime API (GA), scriptable over HTTP.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="accept only this Bearer key (default: any Bearer key)",
    )
    parser.add_argument(
        "--no-admin",
        action="store_true",
        help="no admin API and no journal (memory stays flat in long runs)",
    )
    parser.add_argument(
        "--rules", type=Path, default=None, help="a JSON file of rules to load at start"
    )
    parser.add_argument(
        "--replay", type=Path, default=None, help="a cassette (.jsonl) to serve instead"
    )
    parser.add_argument(
        "--until-stdin-closes",
        action="store_true",
        help="also stop when stdin closes (a parent that runs it as a child, e.g. the proxy)",
    )
    parser.add_argument(
        "--voice",
        choices=("tone", "speech"),
        default="tone",
        help="how replies sound: a tone (default) or espeak-ng speech",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    mock = MockRealtime(api_key=args.api_key, journal=not args.no_admin, voice=args.voice)
    if not args.no_admin:
        serve_admin_api(mock)
    if args.rules is not None:
        mock.load_rules(orjson.loads(args.rules.read_bytes()), source=str(args.rules))
    if args.replay is not None:
        mock.replay(args.replay)
    await mock.start(args.host, args.port)
    print(
        f"mock OpenAI Realtime listening on ws://{args.host}:{mock.port}{REALTIME_PATH}", flush=True
    )
    if not args.no_admin:
        print(f"admin API: {mock.admin_url}/", flush=True)
        if (warning := admin_exposure_warning(args.host)) is not None:
            print(warning, file=sys.stderr, flush=True)
    try:
        await until_stopped(stdin_eof=args.until_stdin_closes)
    finally:
        await mock.stop()
        for failure in mock.failures:
            print(f"mock failure: {failure}", file=sys.stderr)


def admin_exposure_warning(host: str) -> str | None:
    """What to say when the admin API listens beyond loopback (its Host check stops web
    pages, not a peer on the network that writes any Host it likes)."""
    if is_loopback(host):
        return None
    return (
        f"warning: --host {host} is not loopback: anyone on the network can use the admin "
        "API (journal, reset, replay of local files); use --no-admin there"
    )


def main(argv: list[str] | None = None) -> int:
    return run_until_stopped(_serve(_parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
