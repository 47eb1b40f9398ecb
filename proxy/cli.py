"""The command line, generated from `proxy.settings`: every operator option with its
environment variable and default.

Each option can also be set with the environment variable named in `--help`; a bad
value in either place is a one-line usage error. The parsed namespace has one attribute
per settings field (repeatable options already collected, the environment's values
used when the command line gives none).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .settings import GROUPS, Option, ServerSettings, operator_options

__all__ = ["client_token", "parse_args", "server_settings"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _parser()
    defaults: dict[str, Any] = {}
    try:
        for name, spec, default in operator_options():
            defaults[name] = _environment_or(spec, default)
    except _BadEnvironment as exc:
        parser.error(str(exc))
    for key, title in GROUPS:  # --help in sections; the usage line in the same order
        group = parser.add_argument_group(title)
        for name, spec, _ in operator_options():
            if spec.group == key:
                _add(group, name, spec, defaults[name])
    args = parser.parse_args(argv)
    for name, spec, _ in operator_options():
        if spec.collect is not None:  # the command line's values, else the environment's
            given = getattr(args, name)
            setattr(args, name, spec.collect(defaults[name] if given is None else given))
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return args


def server_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The `ServerSettings` an operator set (every option's value), as keyword arguments
    for `ProxyConfig`."""
    return {name: getattr(args, name) for name, _, _ in operator_options(ServerSettings)}


def client_token(args: argparse.Namespace) -> str | None:
    if args.client_token_file:
        try:
            lines = Path(args.client_token_file).read_text().splitlines()
        except OSError as exc:
            raise SystemExit(f"error: cannot read the client token file: {exc}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise SystemExit(f"error: {args.client_token_file} holds no token")
        return token
    return str(args.client_token) if args.client_token else None


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m proxy",
        description="Deepgram Voice Agent protocol proxy for the OpenAI Realtime API. "
        "Each option can also be set with the environment variable named in brackets.",
    )


class _BadEnvironment(ValueError):
    pass


def _environment_or(spec: Option, default: Any) -> Any:
    """The option's value from its environment variable, else `default`."""
    raw = os.environ.get(spec.env)
    if raw in (None, ""):
        return default
    try:
        if spec.collect is not None:
            return [spec.parse(part.strip()) for part in raw.split(",") if part.strip()]
        return spec.parse(raw)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise _BadEnvironment(f"{spec.env}={raw!r}: {exc}") from None


def _shown(default: Any) -> str:
    """The default as `--help` shows it (nothing when there is none)."""
    if default in (None, False) or (isinstance(default, Iterable) and not default):
        return ""
    if isinstance(default, (frozenset, tuple, list)):
        default = ", ".join(sorted(str(value) for value in default))
    return f" (default {default})"


def _add(group: argparse._ArgumentGroup, name: str, spec: Option, default: Any) -> None:
    if spec.negated is not None:  # --x / --no-x, neither: decided at start
        pair = group.add_mutually_exclusive_group()
        pair.add_argument(
            spec.flag,
            dest=name,
            action="store_const",
            const=True,
            default=default,
            help=f"{spec.help} [{spec.env}=1|0]",
        )
        no_flag, no_help = spec.negated
        pair.add_argument(no_flag, dest=name, action="store_const", const=False, help=no_help)
        return
    text = f"{spec.help}{_shown(default)} [{spec.env}]"
    metavar = spec.flag.lstrip("-").replace("-", "_").upper()
    if spec.switch:
        group.add_argument(spec.flag, dest=name, action="store_true", default=default, help=text)
    elif spec.collect is not None:
        # None until the command line gives one: then only its values count.
        group.add_argument(
            spec.flag,
            dest=name,
            action="append",
            type=spec.parse,
            default=None,
            metavar=metavar,
            help=text,
        )
    else:
        group.add_argument(
            spec.flag, dest=name, type=spec.parse, default=default, metavar=metavar, help=text
        )
