"""Keep the OpenAI API key out of every log line and every client-bound text."""

from __future__ import annotations

import logging
import re

__all__ = ["KeyRedactingFilter", "redact", "redacting_logger"]

# OpenAI keys, the masked forms its error messages echo ("sk-abc***wxyz"), and any
# bearer credential (websockets logs request headers at debug level).
_KEY_LIKE = re.compile(r"\b(?:sk|rk|ek)-[A-Za-z0-9_\-*]{4,}")
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)


def redact(text: str, secret: str | None = None) -> str:
    """Remove `secret`, bearer credentials and anything shaped like an OpenAI key."""
    if secret:
        text = text.replace(secret, "[redacted]")
    text = _BEARER.sub(r"\1[redacted]", text)
    return _KEY_LIKE.sub("[redacted]", text)


class KeyRedactingFilter(logging.Filter):
    """A logging filter that rewrites records so known secrets never reach a handler."""

    def __init__(self, *secrets: str | None) -> None:
        super().__init__()
        self.secrets = {s for s in secrets if s}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = message
        for secret in self.secrets:
            cleaned = cleaned.replace(secret, "[redacted]")
        cleaned = redact(cleaned)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redacting_logger(name: str, secret: str | None) -> logging.Logger:
    """A logger whose records are scrubbed before any handler (pytest's too) sees them.

    Filters attached to a logger only apply to records logged on that very logger, so
    third-party code that may log credentials (websockets' handshake debug lines) is
    handed this logger explicitly.
    """
    logger = logging.getLogger(name)
    existing = next((f for f in logger.filters if isinstance(f, KeyRedactingFilter)), None)
    if existing is None:
        logger.addFilter(KeyRedactingFilter(secret))
    elif secret:
        existing.secrets.add(secret)
    return logger
