"""The conversation as the items that rebuild it in another upstream session: what a
renewal (`proxy.renewal`) carries over, bounded (docs/protocol-mapping.md, "Sessions past
the service's 60-minute cap").

Text only: typed and spoken user turns (their transcripts), the assistant's text and
transcripts, function calls and their outputs, in conversation order. A spoken turn's
entry waits for its transcript (`TRANSCRIPT_WAIT`); past both bounds the oldest entries
go first, a call together with its output. No I/O.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

from .bounds import (
    CARRIED_ENTRY_SHARE,
    MAX_CARRIED_CHARS,
    MAX_CARRIED_ITEMS,
    TRUNCATED_MARK,
)
from .bounds import RENEWAL_TRANSCRIPT_WAIT as TRANSCRIPT_WAIT

__all__ = [
    "MAX_CARRIED_CHARS",
    "MAX_CARRIED_ITEMS",
    "TRANSCRIPT_WAIT",
    "TRUNCATED_MARK",
    "ConversationRecord",
]


@dataclass(slots=True)
class _Entry:
    seq: int
    key: str  # an item or call id: what later events about it are matched by
    item: dict[str, Any] | None  # None: a spoken turn whose transcript is awaited
    chars: int
    since: float


class ConversationRecord:
    """The conversation as the items that rebuild it in another session, in order.

    Text only: typed and spoken user turns (their transcripts), the assistant's text and
    transcripts, function calls and their outputs. Audio is not carried (the service has
    no way to add an assistant's audio item; the transcript stands for it).
    """

    __slots__ = ("_anonymous", "_entries", "_keys", "_seq", "chars", "max_chars", "max_items")

    def __init__(
        self, max_items: int = MAX_CARRIED_ITEMS, max_chars: int = MAX_CARRIED_CHARS
    ) -> None:
        self.max_items = max_items
        self.max_chars = max_chars
        self.chars = 0
        # A deque from the first entry on (an idle session records nothing).
        self._entries: deque[_Entry] | tuple[()] = ()
        self._keys: dict[str, _Entry] = {}
        self._seq = itertools.count(1)
        self._anonymous = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def message(self, role: str, text: str, *, key: str | None = None, now: float = 0.0) -> None:
        """A user or assistant text turn (once per `key`)."""
        if not text or (key is not None and key in self._keys):
            return
        self._add(key, _text_item(role, self._cut(text)), now)

    def spoken_turn(self, item_id: str, now: float) -> None:
        """The user's audio became item `item_id`: its transcript comes later."""
        if item_id not in self._keys:
            self._add(item_id, None, now)

    def transcript(self, item_id: str, text: str, now: float) -> None:
        entry = self._keys.get(item_id)
        if entry is None:
            self.message("user", text, key=item_id, now=now)
        elif entry.item is None and text.strip():
            entry.item = _text_item("user", self._cut(text))
            entry.chars = len(entry.item["content"][0]["text"])
            self.chars += entry.chars
            self._trim()

    def function_call(self, call_id: str, name: str, arguments: str, now: float) -> None:
        if call_id not in self._keys:
            item = {"type": "function_call", "call_id": call_id, "name": name}
            item["arguments"] = arguments = self._cut(arguments)
            self._add(call_id, item, now, chars=len(name) + len(arguments))

    def function_output(self, call_id: str, output: str, now: float) -> None:
        key = f"output:{call_id}"
        if key not in self._keys:
            output = self._cut(output)
            item = {"type": "function_call_output", "call_id": call_id, "output": output}
            self._add(key, item, now, chars=len(output))

    def sent_upstream(self, item: dict[str, Any], now: float) -> None:
        """An item the proxy itself created upstream (user text, the agent's spoken text,
        context, function outputs)."""
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            text = "".join(str(part.get("text") or "") for part in item.get("content") or ())
            if role in ("user", "assistant"):
                self.message(str(role), text, key=item.get("id"), now=now)
        elif kind == "function_call":
            self.function_call(
                str(item.get("call_id")), str(item.get("name")), str(item.get("arguments")), now
            )
        elif kind == "function_call_output":
            self.function_output(str(item.get("call_id")), str(item.get("output")), now)

    def untranscribed(self, since: float) -> list[str]:
        """The item ids of spoken turns from `since` on whose transcript has not come."""
        return [e.key for e in self._entries if e.item is None and e.since >= since]

    def awaiting(self, now: float) -> bool:
        """A spoken turn's transcript is still expected."""
        return any(e.item is None and now - e.since < TRANSCRIPT_WAIT for e in self._entries)

    def after(self, seq: int, now: float) -> tuple[list[dict[str, Any]], int]:
        """The items recorded after `seq`, up to the first transcript still awaited,
        and the last sequence number they cover."""
        found: list[dict[str, Any]] = []
        last = seq
        newer: list[_Entry] = []
        for entry in reversed(self._entries):  # most calls find nothing new: stop early
            if entry.seq <= seq:
                break
            newer.append(entry)
        for entry in reversed(newer):
            if entry.item is None:
                if now - entry.since < TRANSCRIPT_WAIT:
                    break
            else:
                found.append(entry.item)
            last = entry.seq
        return found, last

    def _add(
        self, key: str | None, item: dict[str, Any] | None, now: float, chars: int | None = None
    ) -> None:
        if chars is None:
            chars = len(item["content"][0]["text"]) if item is not None else 0
        key = key or f"anonymous:{next(self._anonymous)}"
        entry = _Entry(next(self._seq), key, item, chars, now)
        if not isinstance(self._entries, deque):
            self._entries = deque()
        self._entries.append(entry)
        self._keys[entry.key] = entry
        self.chars += chars
        self._trim()

    def _trim(self) -> None:
        entries = self._entries
        assert isinstance(entries, deque)  # _add made it
        while len(entries) > 1 and (len(entries) > self.max_items or self.chars > self.max_chars):
            dropped = entries.popleft()
            self._drop(dropped)
            if dropped.item is not None and dropped.item["type"] == "function_call":
                output = self._keys.get(f"output:{dropped.key}")  # alone it means nothing
                if output is not None:
                    entries.remove(output)
                    self._drop(output)

    def _drop(self, entry: _Entry) -> None:
        self.chars -= entry.chars
        del self._keys[entry.key]

    def _cut(self, text: str) -> str:
        """`text`, cut to an entry's share of the character bound (marked as cut)."""
        limit = self.max_chars // CARRIED_ENTRY_SHARE
        if len(text) <= limit:
            return text
        if limit <= len(TRUNCATED_MARK):
            return text[:limit]
        return text[: limit - len(TRUNCATED_MARK)] + TRUNCATED_MARK


def _text_item(role: str, text: str) -> dict[str, Any]:
    part = "input_text" if role == "user" else "output_text"
    return {"type": "message", "role": role, "content": [{"type": part, "text": text}]}
