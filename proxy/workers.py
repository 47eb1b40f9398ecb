"""`--workers N`: N proxy processes on one port, one supervisor.

Each worker is a whole proxy listening with SO_REUSEPORT, so the kernel spreads new
connections over them; every connection lives in one worker. Limits (--max-sessions,
--max-sessions-per-ip, rates) are each worker's own. The supervisor picks the port, starts
the workers (spawned, so each imports prometheus_client after PROMETHEUS_MULTIPROC_DIR is
set and `/metrics` in any worker sums all of them), says where it listens once all are
ready, forwards SIGTERM/SIGINT as one SIGTERM to each (so one signal drains all; a second
one stops them at once), and exits 0 when they have.

What the workers share is readiness: each publishes whether it has room on a
`WorkerBoard`, so `/readyz` answers the same in every worker.

A worker that dies while serving (the OOM killer's SIGKILL, a crash) is restarted in its
place: the other workers' conversations go on, which a restart of the whole container
would end. Its live gauges are dropped from `/metrics` (its sessions are gone). A worker
that keeps dying (more than `_RESTARTS_ALLOWED` deaths in `_RESTART_WINDOW` seconds) is
a fault a restart here will not fix: the supervisor then drains the others and exits 1,
for the orchestrator to restart the container and show it in its restart count.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import multiprocessing
import multiprocessing.connection
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, MutableSequence
from multiprocessing.process import BaseProcess
from typing import Any

from .bounds import WORKER_POLL_SECONDS as _POLL
from .bounds import WORKER_READY_TIMEOUT as _READY_TIMEOUT
from .bounds import WORKER_RESTART_WINDOW as _RESTART_WINDOW
from .bounds import WORKER_RESTARTS_ALLOWED as _RESTARTS_ALLOWED
from .worker_board import ABSENT, WorkerBoard

__all__ = ["run_workers"]


def run_workers(args: argparse.Namespace, api_key: str | None, token: str | None) -> int:
    shared = tempfile.mkdtemp(prefix="voice-proxy-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
    os.environ["VOICE_PROXY_WORKER"] = "1"
    context = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue[tuple[str, str | None] | str] = context.Queue()
    slots = context.Array("b", args.workers, lock=False)
    holder = _reserve_port(args.host, args.port)
    args.port = holder.getsockname()[1]
    workers: list[BaseProcess] = []  # the live worker of each slot
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        said = (
            "second signal: stopping every worker now"
            if stopping
            else f"{signal.Signals(signum).name}: draining every worker"
        )
        sent = signal.SIGKILL if stopping else signal.SIGTERM
        stopping = True
        for worker in workers:  # first: saying so must not stop it (stdout may be gone)
            if worker.pid and worker.is_alive():
                os.kill(worker.pid, sent)
        with contextlib.suppress(OSError):
            print(said, flush=True)

    def start(index: int) -> BaseProcess:
        process = context.Process(target=_worker, args=(args, api_key, token, ready, slots, index))
        process.start()
        return process

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        for index in range(args.workers):
            workers.append(start(index))
        urls = _wait_ready(ready, workers, args.workers)
        holder.close()
        if urls is None:
            forward(signal.SIGTERM, None)
            print("error: a worker failed to start", file=sys.stderr)
            return 1
        url, app_url = urls
        print(f"upstream: {args.upstream_url or 'built-in mock (one per worker)'}")
        print(f"proxy listening on {url} ({args.workers} workers)", flush=True)
        if app_url:
            print(f"test-app: {app_url}", flush=True)

        def give_up() -> None:
            forward(signal.SIGTERM, None)

        gave_up = _supervise(workers, start, slots, ready, lambda: stopping, give_up)
        failed = gave_up or any(w.exitcode != 0 for w in workers)
        print("proxy stopped", flush=True)
        return 1 if failed else 0
    finally:
        holder.close()
        _forget_workers(workers)
        shutil.rmtree(shared, ignore_errors=True)


def _supervise(
    workers: list[BaseProcess],
    start: Callable[[int], BaseProcess],
    slots: MutableSequence[int],
    ready: multiprocessing.Queue[Any],
    stopping: Callable[[], bool],
    give_up: Callable[[], None],
) -> bool:
    """Until every worker has exited: restart a worker that dies while serving. True when
    workers died too often and the supervisor gave up (the others were told to drain)."""
    deaths: collections.deque[float] = collections.deque()
    gave_up = False
    while True:
        for index, worker in enumerate(workers):
            if worker.exitcode is None or stopping():
                continue
            slots[index] = ABSENT  # readiness no longer counts on it
            _forget_workers([worker])  # its sessions are gone: so are its live gauges
            now = time.monotonic()
            deaths.append(now)
            while deaths and deaths[0] < now - _RESTART_WINDOW:
                deaths.popleft()
            how = _exit_description(worker.exitcode)
            if len(deaths) > _RESTARTS_ALLOWED:
                print(
                    f"error: worker {worker.pid} {how}, {len(deaths)} deaths in "
                    f"{_RESTART_WINDOW:g} s: stopping every worker",
                    file=sys.stderr,
                    flush=True,
                )
                gave_up = True
                give_up()
                break
            print(f"worker {worker.pid} {how}: starting another", file=sys.stderr, flush=True)
            workers[index] = start(index)
        live = [worker.sentinel for worker in workers if worker.exitcode is None]
        if not live:
            if gave_up or stopping():
                break
            continue  # one died as soon as it started: handled above, on the next turn
        multiprocessing.connection.wait(live, timeout=_POLL)
        _read_restarted(ready)
    return gave_up


def _read_restarted(ready: multiprocessing.Queue[Any]) -> None:
    """Empty the ready queue (restarted workers write to it too); say any failure."""
    while True:
        try:
            message = ready.get_nowait()
        except queue.Empty:
            return
        if isinstance(message, str):
            print(message, file=sys.stderr, flush=True)


def _exit_description(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed ({signal.Signals(-exitcode).name})"
    return f"exited ({exitcode})"


def _reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) with SO_REUSEPORT: it fixes the port for port 0,
    and holds it until the workers listen on it too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host or "0.0.0.0", port))
    return holder


def _wait_ready(
    ready: multiprocessing.Queue[Any], workers: list[BaseProcess], count: int
) -> tuple[str, str | None] | None:
    urls: tuple[str, str | None] | None = None
    for _ in range(count):
        try:
            message = ready.get(timeout=_READY_TIMEOUT)
        except queue.Empty:
            return None
        if isinstance(message, str):  # a worker's failure
            print(message, file=sys.stderr)
            return None
        urls = message
    return urls


def _forget_workers(workers: list[BaseProcess]) -> None:
    from prometheus_client import multiprocess

    for worker in workers:
        if worker.pid is not None:
            multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _worker(
    args: argparse.Namespace,
    api_key: str | None,
    token: str | None,
    ready: multiprocessing.Queue[Any],
    slots: MutableSequence[int],
    index: int,
) -> None:
    """One worker process: a whole proxy, started and drained by the supervisor."""
    import anyio

    from .logs import configure_logging
    from .mock_upstream import MockUnavailable
    from .runner import Announce, serve_until_signalled

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches it through the supervisor
    configure_logging(args.log_level, args.log_format, api_key, token, log_content=args.log_content)
    announce = Announce(
        print_lines=False, ready=lambda url, app: ready.put((url, app)), worker=True
    )
    serve = functools.partial(
        serve_until_signalled,
        args,
        api_key,
        token,
        reuse_port=True,
        announce=announce,
        worker_board=WorkerBoard(slots, index),
    )
    try:
        anyio.run(serve)
    except OSError as exc:
        ready.put(f"error: worker {os.getpid()}: {exc}")
        sys.exit(1)
    except MockUnavailable as exc:
        ready.put(f"error: {exc}")
        sys.exit(2)
    except SystemExit as exc:
        ready.put(str(exc))
        raise
