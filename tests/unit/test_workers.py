"""The `--workers` supervisor's restart rule and the shared readiness board, with
processes that exit at once (forked: no proxy in them)."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

from proxy import workers
from proxy.worker_board import ABSENT, FULL, ROOM, WorkerBoard

_FORK = multiprocessing.get_context("fork")


def _die() -> None:
    os._exit(3)


def test_a_worker_that_keeps_dying_stops_the_supervisor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(workers, "_RESTARTS_ALLOWED", 2)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    started: list[int] = []
    gave_up: list[bool] = []

    def start(index: int) -> BaseProcess:
        started.append(index)
        process = _FORK.Process(target=_die)
        process.start()
        return process

    slots = [ROOM]
    running = [start(0)]
    assert workers._supervise(
        running, start, slots, _FORK.Queue(), lambda: bool(gave_up), lambda: gave_up.append(True)
    )
    assert started == [0, 0, 0]  # the first, then two restarts; the third death gives up
    assert gave_up == [True] and slots == [ABSENT]
    err = capsys.readouterr().err
    assert err.count("exited (3): starting another") == 2
    assert "3 deaths in 60 s: stopping every worker" in err


def test_no_restart_once_the_supervisor_is_stopping() -> None:
    started: list[int] = []

    def start(index: int) -> BaseProcess:
        started.append(index)
        process = _FORK.Process(target=_die)
        process.start()
        return process

    running = [start(0)]
    assert not workers._supervise(running, start, [ROOM], _FORK.Queue(), lambda: True, lambda: None)
    assert started == [0]


def test_the_pod_is_ready_while_a_live_worker_has_room() -> None:
    slots = [ABSENT, ABSENT]
    first, second = WorkerBoard(slots, 0), WorkerBoard(slots, 1)
    assert not first.pod_has_room()  # nobody listens yet
    first.publish(True)
    assert second.pod_has_room() and slots == [ROOM, ABSENT]
    first.publish(False)
    second.publish(True)
    assert first.pod_has_room() and slots == [FULL, ROOM]
    second.publish(False)
    assert not first.pod_has_room() and not second.pod_has_room()
