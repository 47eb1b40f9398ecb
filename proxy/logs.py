"""Log lines about a session carry its id and the upstream session id.

`SessionLog` is a LoggerAdapter: text logs read ``[a1b2c3 sess_…] message``; the fields
`session` and `upstream_session` are also set on each record for structured formatters.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

__all__ = ["SessionLog"]


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
