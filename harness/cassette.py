"""Cassettes: recorded Realtime sessions as JSON Lines files.

The first line is a header, each further line one thing that happened on one upstream
connection, with its time in seconds since that connection opened::

    {"cassette": 1, "upstream": "wss://api.openai.com/v1/realtime?model=gpt-realtime", ...}
    {"connection": 0, "t": 0.0, "open": "/v1/realtime?model=gpt-realtime"}
    {"connection": 0, "t": 0.31, "from": "server", "event": {"type": "session.created", ...}}
    {"connection": 0, "t": 0.32, "from": "client", "event": {"type": "session.update", ...}}
    {"connection": 0, "t": 9.5, "close": {"by": "client", "code": 1000, "reason": ""}}

A handshake the upstream refused is ``{"connection": 1, "t": 0.0, "open": ..., "refused":
401}``. A frame that is not a JSON object is kept as ``"text"`` or ``"binary_base64"``. With
audio trimmed, the base64 audio of ``input_audio_buffer.append`` and
``response.output_audio.delta`` is left out and ``"audio_bytes"`` says how much there was
(replay fills it with silence). No request header is written, so the API key never is;
any string that contains a secret the writer was given, or looks like an OpenAI key
(``sk-...``), is scrubbed.
"""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

import orjson

__all__ = [
    "AUDIO_FIELDS",
    "Cassette",
    "CassetteWriter",
    "Entry",
    "Origin",
    "audio_field_of",
]

FORMAT_VERSION: Final = 1
#: Where each event type carries audio (base64 PCM16).
AUDIO_FIELDS: Final = {
    "input_audio_buffer.append": "audio",
    "response.output_audio.delta": "delta",
}
_KEY_LIKE: Final = re.compile(r"sk-[A-Za-z0-9_\-*]{6,}")
_REDACTED: Final = "sk-REDACTED"

Origin = Literal["client", "server"]


def audio_field_of(event: dict[str, Any]) -> str | None:
    """The field of `event` that holds base64 audio, if any."""
    field = AUDIO_FIELDS.get(str(event.get("type")))
    return field if field is not None and isinstance(event.get(field), str) else None


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a cassette after the header."""

    line: int
    connection: int
    t: float
    kind: Literal["open", "frame", "close"]
    origin: Origin | None = None
    event: dict[str, Any] | None = None
    raw: str | bytes | None = None
    audio_bytes: int = 0
    path: str = ""
    refused_status: int | None = None
    close_code: int | None = None
    close_reason: str = ""

    @property
    def type(self) -> str:
        """The event's type, or ``<text frame>`` / ``<binary frame>`` / the kind."""
        if self.event is not None:
            return str(self.event.get("type"))
        if self.raw is not None:
            return "<text frame>" if isinstance(self.raw, str) else "<binary frame>"
        return f"<{self.kind}>"


class Cassette:
    """A recorded session: a header and its entries, in the order they happened."""

    def __init__(self, header: dict[str, Any], entries: list[Entry], name: str = "") -> None:
        self.header = header
        self.entries = entries
        self.name = name or "cassette"

    @classmethod
    def load(cls, path: Path) -> Cassette:
        """Read a cassette file; ValueError naming the line when it is malformed."""
        return cls.parse(path.read_text(encoding="utf-8"), name=str(path))

    @classmethod
    def parse(cls, text: str, *, name: str = "") -> Cassette:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if not lines:
            raise ValueError(f"{name or 'the cassette'} is empty")
        header = _json_line(name, *lines[0])
        if header.get("cassette") != FORMAT_VERSION:
            raise ValueError(f"{name}: line 1 is not a version {FORMAT_VERSION} cassette header")
        return cls(
            header, [_entry(name, n, _json_line(name, n, line)) for n, line in lines[1:]], name
        )

    def connections(self) -> list[int]:
        """The recorded connection numbers, in order of opening."""
        return sorted({entry.connection for entry in self.entries})

    def of_connection(self, connection: int) -> list[Entry]:
        return [entry for entry in self.entries if entry.connection == connection]


def _json_line(name: str, number: int, line: str) -> dict[str, Any]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{name}:{number}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name}:{number}: a line is a JSON object")
    return value


def _entry(name: str, number: int, data: dict[str, Any]) -> Entry:
    try:
        connection, t = int(data["connection"]), float(data["t"])
        if "open" in data:
            refused = data.get("refused")
            return Entry(
                number,
                connection,
                t,
                "open",
                path=str(data["open"]),
                refused_status=int(refused) if refused is not None else None,
            )
        if "close" in data:
            close = data["close"]
            origin: Origin = close.get("by", "client")
            return Entry(
                number,
                connection,
                t,
                "close",
                origin=origin,
                close_code=close.get("code"),
                close_reason=str(close.get("reason") or ""),
            )
        origin = data["from"]
        if origin not in ("client", "server"):
            raise ValueError(f"'from' is client or server, not {origin!r}")
        if "event" in data:
            event = data["event"]
            audio = int(data.get("audio_bytes", 0))
            field = audio_field_of(event)
            if field is not None and not audio:
                audio = len(base64.b64decode(event[field]))
            return Entry(number, connection, t, "frame", origin, event=event, audio_bytes=audio)
        if "text" in data:
            return Entry(number, connection, t, "frame", origin, raw=str(data["text"]))
        raw = base64.b64decode(data["binary_base64"])
        return Entry(number, connection, t, "frame", origin, raw=raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{name}:{number}: not a cassette entry ({exc!r})") from None


class CassetteWriter:
    """Writes a cassette line by line (safe to read while it grows)."""

    def __init__(
        self,
        target: Path | IO[str],
        *,
        upstream: str,
        trim_audio: bool = False,
        secrets: Iterable[str] = (),
    ) -> None:
        self._file: IO[str] = (
            target.open("w", encoding="utf-8") if isinstance(target, Path) else target
        )
        self._owns_file = isinstance(target, Path)
        self.trim_audio = trim_audio
        self._secrets = [s for s in secrets if len(s) >= 8]
        self._write(
            {
                "cassette": FORMAT_VERSION,
                "upstream": _strip_query_secrets(upstream),
                "recorded": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "audio": "trimmed" if trim_audio else "full",
            }
        )

    def add_secret(self, secret: str) -> None:
        """Scrub `secret` from every line written from now on."""
        if len(secret) >= 8 and secret not in self._secrets:
            self._secrets.append(secret)

    def opened(self, connection: int, path: str) -> None:
        self._write({"connection": connection, "t": 0.0, "open": _strip_query_secrets(path)})

    def refused(self, connection: int, path: str, status: int) -> None:
        """The upstream refused the handshake with HTTP `status`."""
        line = {"connection": connection, "t": 0.0, "open": _strip_query_secrets(path)}
        self._write({**line, "refused": status})

    def frame(self, connection: int, t: float, origin: Origin, frame: str | bytes) -> None:
        line: dict[str, Any] = {"connection": connection, "t": round(t, 4), "from": origin}
        if isinstance(frame, bytes):
            line["binary_base64"] = base64.b64encode(frame).decode()
        else:
            try:
                event = orjson.loads(frame)
            except orjson.JSONDecodeError:
                event = None
            if isinstance(event, dict):
                field = audio_field_of(event)
                if field is not None and self.trim_audio:
                    line["audio_bytes"] = len(base64.b64decode(event[field]))
                    event[field] = ""
                line["event"] = event
            else:
                line["text"] = frame
        self._write(line)

    def closed(self, connection: int, t: float, by: Origin, code: int | None, reason: str) -> None:
        close = {"by": by, "code": code, "reason": reason}
        self._write({"connection": connection, "t": round(t, 4), "close": close})

    def close(self) -> None:
        self._file.flush()
        if self._owns_file:
            self._file.close()

    def _write(self, line: dict[str, Any]) -> None:
        text = orjson.dumps(line).decode()
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        text = _KEY_LIKE.sub(_REDACTED, text)
        self._file.write(text + "\n")
        self._file.flush()


def _strip_query_secrets(url: str) -> str:
    """Query parameters that may carry credentials are dropped from recorded URLs."""
    return re.sub(r"([?&](?:api[-_]?key|key|token|access_token)=)[^&]*", r"\1REDACTED", url)
