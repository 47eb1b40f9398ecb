"""With `--workers N`: one byte per worker in shared memory, so `/readyz` gives the same
answer whichever worker the kernel hands the health check to.

Each worker writes its own slot (it has room, it is full or draining); the supervisor
clears a dead worker's slot. The pod is ready while some live worker has room: a new
connection that lands on a full worker is refused with 503, which a balancer retries
(HAProxy's `retry-on 503`), and the pod leaves rotation only when no worker can take a
session. One byte written by one process needs no lock.
"""

from __future__ import annotations

from collections.abc import MutableSequence

__all__ = ["ABSENT", "FULL", "ROOM", "WorkerBoard"]

ABSENT = 0  # no worker in this slot (starting, dead, or stopped)
ROOM = 1  # takes new sessions
FULL = 2  # at its session limit, or draining


class WorkerBoard:
    """One worker's view of the shared slots (a `multiprocessing` byte array)."""

    def __init__(self, slots: MutableSequence[int], index: int) -> None:
        self._slots = slots
        self._index = index

    def publish(self, has_room: bool) -> None:
        self._slots[self._index] = ROOM if has_room else FULL

    def pod_has_room(self) -> bool:
        return any(slot == ROOM for slot in self._slots[:])
