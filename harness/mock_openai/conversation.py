"""The conversation of one session: its items in order, and what the model "knows"."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .steps import copy_json, new_id

if TYPE_CHECKING:
    from .rules import Match

__all__ = ["Conversation", "ItemRecord"]


@dataclass(eq=False, slots=True)
class ItemRecord:
    """A conversation item as the server reports it, plus what the model "knows"."""

    item: dict[str, Any]
    audio_ms: int = 0
    """Audio the item holds: a user turn's length, or the assistant audio produced
    (then cut down by conversation.item.truncate)."""
    speech_rule: Match | None = None
    """The on_user_speech rule this spoken turn matched (None: none did, or not asked yet)."""
    speech_asked: bool = False
    """Whether the rules were asked yet for this spoken turn."""
    heard: str | None = None
    """What the mock "heard" in a spoken user turn."""

    @property
    def id(self) -> str:
        item_id: str = self.item["id"]
        return item_id


class Conversation:
    """Items in order, found by id."""

    def __init__(self) -> None:
        self.id = new_id("conv")
        self._records: list[ItemRecord] = []
        self._by_id: dict[str, ItemRecord] = {}

    def __iter__(self) -> Iterator[ItemRecord]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def get(self, item_id: str) -> ItemRecord | None:
        return self._by_id.get(item_id)

    def insert(
        self, record: ItemRecord, after: str | None = None, *, first: bool = False
    ) -> str | None:
        """Add `record` at the end, after item `after`, or `first`; return the id of
        the item now before it (the event's `previous_item_id`)."""
        if first:
            index = 0
        elif after is not None:
            index = self._records.index(self._by_id[after]) + 1
        else:
            index = len(self._records)
        self._records.insert(index, record)
        self._by_id[record.id] = record
        return self._records[index - 1].id if index > 0 else None

    def previous_id(self, record: ItemRecord) -> str | None:
        index = self._records.index(record)
        return self._records[index - 1].id if index > 0 else None

    def remove(self, record: ItemRecord) -> None:
        self._records.remove(record)
        del self._by_id[record.id]

    def has_assistant_audio(self) -> bool:
        return any(r.audio_ms > 0 and r.item.get("role") == "assistant" for r in self._records)

    def snapshots(self) -> list[dict[str, Any]]:
        """Copies of the items, in order."""
        return [copy_json(record.item) for record in self._records]
