"""Log lines: about a session they carry its id and the upstream session id; as text or
JSON; secrets and (unless asked for) user content never in them.

`SessionLog` is a LoggerAdapter: text logs read ``[s1f sess_…] message``, and the fields
`session` and `upstream_session` are set on each record for the JSON formatter.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson

from .redaction import KeyRedactingFilter

__all__ = ["JsonFormatter", "SessionLog", "TextFormatter", "configure_logging"]

#: websockets' own per-connection lines ("connection open") carry no session id: they
#: are shown at DEBUG only, where the proxy's own lines say the same with the ids.
_WIRE_LOGGERS = ("proxy.client_ws", "proxy.upstream_ws")
#: The HTTP client of server-side functions logs each request's full URL at INFO (a GET's
#: query holds the model's arguments: user content) and headers at DEBUG: below WARNING
#: they are heard only with --log-content.
_HTTP_CLIENT_LOGGERS = ("httpx", "httpcore")


class SessionLog(logging.LoggerAdapter[logging.Logger]):
    def __init__(self, logger: logging.Logger, session: str) -> None:
        super().__init__(logger, {"session": session, "upstream_session": None})
        self.session = session
        self.upstream_session: str | None = None

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {"session": self.session, "upstream_session": self.upstream_session}
        upstream = f" {self.upstream_session}" if self.upstream_session else ""
        return f"[{self.session}{upstream}] {msg}", kwargs


class TextFormatter(logging.Formatter):
    """Plain lines; control characters in messages (from clients or upstream) are
    escaped, line separators of any kind included, so no one can forge a line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _CONTROL.sub(_escape, super().formatMessage(record))


# C0 and DEL; C1 (NEL, U+0085, ends a line for some readers); the Unicode line and
# paragraph separators; and the bidirectional overrides, which reorder what a reader sees.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    return match.group(0).encode("unicode_escape").decode()


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, pid, and the session ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": _unprefixed(record),
            "pid": record.process,
        }
        for field in ("session", "upstream_session"):
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def _unprefixed(record: logging.LogRecord) -> str:
    """The message without SessionLog's text prefix (the ids are fields in JSON)."""
    message = record.getMessage()
    if getattr(record, "session", None) is not None and message.startswith("["):
        return message.split("] ", 1)[-1]
    return message


def configure_logging(
    level: str, fmt: str, *secrets: str | None, log_content: bool = False
) -> None:
    """Root logging for the proxy process: stderr, the chosen format, secrets scrubbed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(KeyRedactingFilter(*secrets, log_content=log_content))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        worker = f" [pid {os.getpid()}]" if os.environ.get("VOICE_PROXY_WORKER") else ""
        handler.setFormatter(
            TextFormatter(f"%(asctime)s %(levelname)s %(name)s{worker}: %(message)s")
        )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if level != "DEBUG":
        for name in _WIRE_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    for name in _HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if log_content else logging.WARNING)
