"""Decoding in the recognition worker process: the event loop runs on while a long turn
is decoded, the answers are the ones decoded here, and the worker never outlives its
process or stays dead."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import recognition_worker
from harness.recognition import recognise, recognise_async, recognition_of
from harness.speech import speech_pcm16

PHRASES = ("what time is it", "tell me a joke", "book a table for two")
#: About 10 s when espeak-ng says it: a long turn to decode.
LONG_TURN = (
    "the quick brown fox jumps over the lazy dog while the farmer walks to the market "
    "to sell his apples and pears, and the children play in the garden near the old oak "
    "tree where the birds sing every morning before the sun rises over the hills"
)
TICK_S = 0.01
ROOT = Path(__file__).resolve().parents[2]


async def test_the_event_loop_runs_on_while_a_long_turn_is_decoded() -> None:
    audio = speech_pcm16(LONG_TURN, rate=24000)
    await recognise_async(speech_pcm16(PHRASES[0], rate=24000), PHRASES, rate=24000)  # warm
    worst = 0.0
    decoding = True

    async def tick() -> None:
        nonlocal worst
        while decoding:
            before = time.perf_counter()
            await asyncio.sleep(TICK_S)
            worst = max(worst, time.perf_counter() - before - TICK_S)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(5 * TICK_S)
    worst = 0.0
    started = time.perf_counter()
    await recognise_async(audio, PHRASES, rate=24000)
    seconds = time.perf_counter() - started
    decoding = False
    await ticker
    # Decoded in a thread, pocketsphinx held the GIL: the loop stalled for 80-95 % of
    # the decode (0.6-1.4 s). A ratio, so a loaded machine slows both sides alike.
    assert worst < seconds / 4, f"the loop stalled {worst:.3f} s of a {seconds:.3f} s decode"


def test_the_worker_hears_what_a_decode_here_hears() -> None:
    for said in (PHRASES[1], "good morning everyone", LONG_TURN):
        audio = speech_pcm16(said, rate=16000)
        assert recognise(audio, PHRASES, rate=16000) == (
            recognition_of(audio, PHRASES, rate=16000).phrase
        )


def test_a_worker_that_died_is_replaced() -> None:
    first = recognition_worker.call(os.getpid)
    assert first != os.getpid()
    os.kill(first, signal.SIGKILL)
    _wait_gone(first)
    audio = speech_pcm16(PHRASES[2], rate=16000)
    assert recognise(audio, PHRASES, rate=16000) == PHRASES[2]
    assert recognition_worker.call(os.getpid) not in (first, os.getpid())


def test_stop_ends_the_worker_and_the_next_call_starts_one() -> None:
    first = recognition_worker.call(os.getpid)
    recognition_worker.stop()
    assert not _alive(first)  # stop waits for it
    assert recognition_worker.call(os.getpid) != first


_DECODE_THEN = """
import os, sys, time
from harness import recognition_worker
from harness.recognition import recognise
assert recognise(b"\\0\\0" * 1600, ["what time is it"], rate=16000) == ""
print(recognition_worker.call(os.getpid), flush=True)
if sys.argv[1] == "wait":
    time.sleep(60)
"""


def test_the_worker_ends_with_the_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _DECODE_THEN, "exit"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert not _alive(int(done.stdout))  # joined before the interpreter left


def test_the_worker_ends_when_its_process_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _DECODE_THEN, "wait"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)  # no exit handlers: the worker notices alone
        parent.wait(timeout=10)
    try:
        _wait_gone(worker)
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Is `pid` running (a zombie, dead but not yet reaped, is not)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_a_call_that_kills_its_worker_twice_fails_in_one_clear_line() -> None:
    with pytest.raises(RuntimeError) as raised:
        recognition_worker.call(os._exit, 3)
    assert str(raised.value) == recognition_worker.DIED and "\n" not in recognition_worker.DIED
    assert recognition_worker.call(os.getpid) != os.getpid()  # the next call is served


def test_a_script_that_decodes_on_import_is_told_to_keep_it_under_main(
    tmp_path: Path,
) -> None:
    script = tmp_path / "decode_on_import.py"
    script.write_text(
        "from harness.recognition import recognise\n"
        "recognise(bytes(3200), ['what time is it'], rate=16000)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == f"RuntimeError: {recognition_worker.DIED}"


_FORK_AFTER_A_CALL = """
import os, signal
from harness import recognition_worker
print(recognition_worker.call(os.getpid), flush=True)
child = os.fork()
if child == 0:
    signal.alarm(20)  # not left behind if the call never returns
    print(recognition_worker.call(os.getpid), flush=True)
    recognition_worker.stop()
    os._exit(0)
os.waitpid(child, 0)
print(recognition_worker.call(os.getpid), flush=True)
"""


def test_a_forked_child_gets_a_worker_of_its_own() -> None:
    done = _python(_FORK_AFTER_A_CALL)
    parents, childs, parents_after = map(int, done.stdout.split())
    assert childs != parents and parents_after == parents


_FORK_THEN_EXIT = """
import os, signal, sys
from harness import recognition_worker
recognition_worker.call(os.getpid)
child = os.fork()
if child == 0:
    signal.alarm(20)
    sys.exit(0)  # the ordinary way: multiprocessing's exit hook runs
os.waitpid(child, 0)
"""


def test_a_forked_child_that_never_decodes_exits_without_a_traceback() -> None:
    """Found by review: the child inherited multiprocessing's record of the parent's
    worker, and its exit hook failed to join it ("can only join a child process")."""
    done = _python(_FORK_THEN_EXIT)
    assert "Traceback" not in done.stderr, done.stderr


def _python(source: str) -> subprocess.CompletedProcess[str]:
    """`source` run by a fresh interpreter in the repository; it must exit 0."""
    return subprocess.run(
        [sys.executable, "-c", source],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
