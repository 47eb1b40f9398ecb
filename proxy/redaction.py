"""Secrets out of every log line and every client-bound frame.

The OpenAI key must never reach a client or a log, nor may the masked echoes of it that
upstream error messages contain (``Incorrect API key provided: sk-abc***wxyz``). Client
tokens never reach a log. User content (websockets' frame dumps at DEBUG) reaches a log
only when the operator asks for it (`--log-content`).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable

from .bounds import MAX_LOGGED_CHARS as _MAX_LOGGED

__all__ = ["KeyRedactingFilter", "Redactor", "redact", "redact_secrets", "redacting_logger"]

_HIDDEN = "[redacted]"
#: A "secret" shorter than this is not a credential (a test key such as "k"); replacing
#: it everywhere would only mangle ordinary text.
MIN_SECRET_LENGTH = 8
# OpenAI-style keys and any credential after an auth scheme or a token= parameter.
_KEY_LIKE = re.compile(r"\b(?:sk|rk|ek)-[A-Za-z0-9_\-*.•…]{4,}")
_SCHEME = re.compile(r"\b(Bearer|Token|Basic)(\s+)[^\s\"',]+", re.IGNORECASE)
_TOKEN_PARAM = re.compile(r"([?&](?:token|key|api_key|access_token)=)[^&\s\"']+", re.IGNORECASE)
_TOKEN_PROTOCOL = re.compile(r"(\b(?:token|bearer)\s*,\s*)[^\s,\"']+", re.IGNORECASE)
# A masked credential: word characters around a run of mask characters. Bounded and
# anchored at a word start, so a long word costs linear time (it runs on attacker text).
_MASKED = re.compile(r"(?<![\w-])[\w-]{0,64}(?:\*{3,}|•{3,}|…|\.{3,}|x{4,})[\w-]{0,64}")

_FRAME_DUMP = re.compile(r"^([<>] (?:TEXT|BINARY|CONT) ).*?(\[\d+ bytes\])?$", re.DOTALL)


def redact(text: str, *secrets: str | None) -> str:
    """For logs: `redact_secrets`, and any credential after an auth scheme, in a
    `token=` parameter or in a token subprotocol."""
    text = redact_secrets(text, *secrets)
    text = _SCHEME.sub(rf"\1\2{_HIDDEN}", text)
    text = _TOKEN_PARAM.sub(rf"\1{_HIDDEN}", text)
    return _TOKEN_PROTOCOL.sub(rf"\1{_HIDDEN}", text)


def redact_secrets(text: str, *secrets: str | None) -> str:
    """For anything a client sees: `text` without the secrets, masked echoes of them,
    or words shaped like an OpenAI key."""
    known = [secret for secret in secrets if secret and len(secret) >= MIN_SECRET_LENGTH]
    for secret in known:
        text = text.replace(secret, _HIDDEN)
    text = _KEY_LIKE.sub(_HIDDEN, text)
    if known:
        text = _MASKED.sub(lambda match: _unmask(match.group(0), known), text)
    return text


def _unmask(word: str, secrets: list[str]) -> str:
    """Hide `word` when it is a masked form of a secret: the secret's start or end
    around the mask."""
    head = re.split(r"[*•….]|x{4,}", word, maxsplit=1)[0]
    tail = re.split(r"[*•….]|x{4,}", word)[-1]
    for secret in secrets:
        if (len(head) >= 3 and secret.startswith(head)) or (
            len(tail) >= 3 and secret.endswith(tail)
        ):
            return _HIDDEN
    return word


class Redactor:
    """Scrubs client-bound JSON frames; cheap when there is nothing to scrub."""

    def __init__(self, *secrets: str | None) -> None:
        self.secrets = tuple(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
        alternatives = [re.escape(s.encode()) for s in self.secrets]
        alternatives.append(rb"\b(?:sk|rk|ek)-")
        alternatives += [rb"\*\*\*", "•".encode(), "…".encode(), rb"\.\.\.", rb"xxxx"]
        self._suspect = re.compile(b"|".join(alternatives))

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def for_key(key: str | None) -> Redactor:
        """The Redactor for `key`, shared: a session holds the proxy's one key."""
        return Redactor(key)

    def scrub(self, payload: bytes) -> bytes:
        if self._suspect.search(payload) is None:
            return payload
        text = payload.decode("utf-8", "replace")
        cleaned = redact_secrets(text, *self.secrets)
        return payload if cleaned == text else cleaned.encode()


class KeyRedactingFilter(logging.Filter):
    """Rewrites log records so secrets never reach a handler, and hides frame contents
    unless `log_content`."""

    def __init__(self, *secrets: str | None, log_content: bool = False) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.log_content = log_content
        self._short: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        self.secrets.update(s for s in secrets if s)
        # A secret too short to replace everywhere (a client token of a few characters)
        # is still a credential: hidden wherever it stands alone, as it does in a query,
        # a header or a subprotocol list.
        short = sorted((s for s in self.secrets if len(s) < MIN_SECRET_LENGTH), key=len)
        alternatives = "|".join(re.escape(s) for s in reversed(short))
        self._short = re.compile(rf"(?<![\w\-.~])(?:{alternatives})(?![\w\-.~])") if short else None

    def filter(self, record: logging.LogRecord) -> bool:
        original = record.getMessage()  # formats the record: once
        message = original
        if len(message) > _MAX_LOGGED:  # peers choose what ends up in some messages
            message = f"{message[:_MAX_LOGGED]}... [{len(message)} characters]"
        cleaned = redact(message, *self.secrets)
        if self._short is not None:
            cleaned = self._short.sub(_HIDDEN, cleaned)
        if not self.log_content:
            cleaned = _FRAME_DUMP.sub(_hide_content, cleaned)
        if cleaned != original:
            record.msg, record.args = cleaned, None
        return True


def _hide_content(match: re.Match[str]) -> str:
    return f"{match.group(1)}[content hidden] {match.group(2) or ''}".rstrip()


def redacting_logger(name: str, *secrets: str | None) -> logging.Logger:
    """A logger whose records are scrubbed before any handler (pytest's too) sees them.

    Filters attached to a logger only apply to records logged on that very logger, so
    third-party code that may log credentials (websockets' handshake debug lines) is
    handed this logger explicitly.
    """
    logger = logging.getLogger(name)
    existing = next((f for f in logger.filters if isinstance(f, KeyRedactingFilter)), None)
    if existing is None:
        logger.addFilter(KeyRedactingFilter(*secrets))
    else:
        existing.add(secrets)
    return logger
