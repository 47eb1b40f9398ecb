"""`python -m proxy` (and the `voice-agent-proxy` command): run the proxy.

With no OPENAI_API_KEY and no --upstream-url it starts the harness's mock OpenAI
Realtime upstream in the same process, so the whole path works without an account.
Every option also reads an environment variable (named in `--help`).
"""

from __future__ import annotations

import os
import sys

import anyio

from .cli import client_token, parse_args
from .logs import configure_logging
from .runner import serve_until_signalled
from .workers import run_workers


def _missing_mock_dependency() -> str | None:
    """What the built-in mock lacks on a runtime-only install (it is the [mock] extra)."""
    try:
        import harness.mock_openai  # noqa: F401
    except ModuleNotFoundError as exc:
        return exc.name or str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    api_key = os.environ.get("OPENAI_API_KEY") or None
    token = client_token(args)
    if not api_key and not args.upstream_url and (missing := _missing_mock_dependency()):
        print(
            f"error: no OPENAI_API_KEY, and the built-in mock upstream needs {missing}: set "
            "OPENAI_API_KEY, or pip install 'voice-agent-realtime-proxy[mock]'",
            file=sys.stderr,
        )
        return 2
    if args.workers > 1:
        return run_workers(args, api_key, token)
    configure_logging(args.log_level, args.log_format, api_key, token, log_content=args.log_content)
    try:
        anyio.run(serve_until_signalled, args, api_key, token)
    except OSError as exc:  # e.g. the port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
