"""Keep the OpenAI API key out of every log line and every client-bound text."""

from __future__ import annotations

import logging
import re

__all__ = ["KeyRedactingFilter", "redact"]

# OpenAI keys and the masked forms its error messages echo ("sk-abc***wxyz").
_KEY_LIKE = re.compile(r"\b(?:sk|rk|ek)-[A-Za-z0-9_\-*]{4,}")


def redact(text: str, secret: str | None = None) -> str:
    """Remove `secret` and anything shaped like an OpenAI key from `text`."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


class KeyRedactingFilter(logging.Filter):
    """A logging filter that rewrites records so the key never reaches a handler."""

    def __init__(self, secret: str | None) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self._secret)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
