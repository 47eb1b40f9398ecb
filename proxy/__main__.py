"""`python -m proxy` (and the `voice-agent-proxy` command): run the proxy.

With no OPENAI_API_KEY and no --upstream-url it starts the harness's mock OpenAI
Realtime upstream as a child process, so the whole path works without an account.
Every option also reads an environment variable (named in `--help`).
"""

from __future__ import annotations

import os
import sys

import anyio

from .cli import client_token, parse_args
from .logs import configure_logging
from .mock_upstream import MockUnavailable
from .runner import serve_until_signalled
from .workers import run_workers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    api_key = os.environ.get("OPENAI_API_KEY") or None
    token = client_token(args)
    if args.workers > 1:
        return run_workers(args, api_key, token)
    configure_logging(args.log_level, args.log_format, api_key, token, log_content=args.log_content)
    try:
        anyio.run(serve_until_signalled, args, api_key, token)
    except OSError as exc:  # e.g. the port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except MockUnavailable as exc:  # e.g. a runtime-only install: no [mock] extra
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
