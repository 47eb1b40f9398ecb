"""What a session's state holds while nothing happens: containers are made at first use.

An idle session's bytes are the proxy's cost per connected user; these guard the parts
of it: the id sets (proxy.audio_path) and the renewal's bookkeeping (proxy.renewal),
which every session holds and few use.
"""

from __future__ import annotations

import gc
import time
from collections import deque

import pytest

from proxy.audio_path import RecentIds
from proxy.renewal import Renewal

pytestmark = pytest.mark.unit


def test_an_unused_id_set_holds_no_dict() -> None:
    ids = RecentIds()
    assert not [r for r in gc.get_referents(ids) if isinstance(r, dict)]
    assert len(ids) == 0
    assert "a" not in ids


def test_an_id_set_remembers_the_last_ids_only() -> None:
    ids = RecentIds(size=2)
    for item in ("a", "b", "a", "c"):
        ids.add(item)
    assert len(ids) == 2
    assert "a" not in ids  # the oldest went first; adding it again did not renew it
    assert "b" in ids and "c" in ids


def test_a_renewal_that_never_ran_holds_no_containers() -> None:
    renewal = Renewal(300, 15, lambda purpose: f"proxy_{purpose}_1", time.time)
    own = gc.get_referents(renewal)  # its slots (a __dict__ would be one of them)
    assert not [r for r in own if isinstance(r, deque | set | dict)]
    assert not [r for r in gc.get_referents(renewal.record) if isinstance(r, deque)]
    renewal.recent_audio.append(b"audio")  # made when first asked for
    assert list(renewal.recent_audio) == [b"audio"]
