"""The process that decodes speech, so decoding never stalls an event loop.

pocketsphinx holds the GIL while it decodes: run in a thread, a 30 s turn froze the
mock's event loop (every connection of a test, and the proxy when it runs in the same
process) for 1.2-2.0 s of its 1.6-2.6 s decode. One long-lived worker process decodes
instead and the caller only waits for the answer: the loop's longest stall is then a
median 8-18 ms, at most 84 ms on a loaded machine (``benchmarks/recognition_stall.py``).

The worker is started on the first call (``spawn``: a fresh interpreter, safe whatever
threads or event loops the caller runs), keeps its decoder and grammars between calls,
and serves one call at a time, in order. It stops with the interpreter
(`concurrent.futures` joins its workers at exit), on `stop`, or on its own when the
process that started it dies, so none is ever left behind. A call whose worker died
(killed, say) is tried once more in a new worker, and fails with `DIED` if that one dies
too.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Final, TypeVar

__all__ = ["DIED", "call", "call_async", "stop"]

#: Why a call failed when its worker died twice. The usual cause outside pytest: a
#: script whose main module does its work on import, which the new interpreter runs.
DIED: Final = (
    "the recognition worker process died twice running this call: killed, out of "
    "memory, or crashed in the decoder; or, in a script of your own, work done on "
    'import: keep it under `if __name__ == "__main__":` (the worker imports the script)'
)

_T = TypeVar("_T")
_LOCK = threading.Lock()
_POOLS: list[ProcessPoolExecutor] = []  # at most one: the running worker


def _forget_the_parents_worker() -> None:
    """In a forked child: the parent's worker is not the child's. The child starts its own
    (it shares the parent's queues but not the thread that feeds them), takes a fresh
    lock (another thread may have held it at the fork), and drops multiprocessing's
    record of the parent's worker process: at the child's exit its atexit hook would try
    to join it and print "can only join a child process" with a traceback. That record
    is private (`multiprocessing.process._children`); there is no public way to disown
    an inherited process."""
    global _LOCK
    _LOCK = threading.Lock()
    for pool in _POOLS:
        processes = getattr(pool, "_processes", None) or {}  # also private: pid -> Process
        for process in list(processes.values()):
            multiprocessing.process._children.discard(process)  # type: ignore[attr-defined]
    _POOLS.clear()


os.register_at_fork(after_in_child=_forget_the_parents_worker)


def call(function: Callable[..., _T], *args: object, **kwargs: object) -> _T:
    """`function(*args, **kwargs)` in the worker process (a module-level function,
    picklable arguments); its exception is raised here."""
    pool = _pool()
    try:
        return pool.submit(function, *args, **kwargs).result()
    except BrokenProcessPool:  # the worker died (killed, say): once more, in a new one
        _discard(pool)
    pool = _pool()
    try:
        return pool.submit(function, *args, **kwargs).result()
    except BrokenProcessPool as exc:
        _discard(pool)
        raise RuntimeError(DIED) from exc


async def call_async(function: Callable[..., _T], *args: object, **kwargs: object) -> _T:
    """`call`, awaited: the event loop runs on while the worker works."""
    pool = _pool()
    try:
        return await asyncio.wrap_future(pool.submit(function, *args, **kwargs))
    except BrokenProcessPool:
        _discard(pool)
    pool = _pool()
    try:
        return await asyncio.wrap_future(pool.submit(function, *args, **kwargs))
    except BrokenProcessPool as exc:
        _discard(pool)
        raise RuntimeError(DIED) from exc


def stop() -> None:
    """Stop the worker once it has served the calls already made (the next call starts
    a new one)."""
    with _LOCK:
        pools = list(_POOLS)
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True)


def _pool() -> ProcessPoolExecutor:
    with _LOCK:
        if not _POOLS:
            _POOLS.append(
                ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_watch_parent,
                )
            )
        return _POOLS[0]


def _discard(pool: ProcessPoolExecutor) -> None:
    """Forget `pool` (its worker died), unless another call already did."""
    with _LOCK:
        if pool in _POOLS:
            _POOLS.remove(pool)
    pool.shutdown(wait=False, cancel_futures=True)


def _watch_parent() -> None:
    """In the worker: exit when the process that started it is gone (killed, say), which
    `concurrent.futures` alone would not notice while the worker waits for work."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
