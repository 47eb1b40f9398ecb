"""What a session's state holds while nothing happens: containers are made at first use.

An idle session's bytes are the proxy's cost per connected user; these guard the parts
of it that are this package's own (proxy.audio_path's id sets).
"""

from __future__ import annotations

import gc

import pytest

from proxy.audio_path import RecentIds

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
