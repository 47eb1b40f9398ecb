"""`--workers N`: N proxy processes on one port, one supervisor.

Each worker is a whole proxy listening with SO_REUSEPORT, so the kernel spreads new
connections over them; every connection lives in one worker (nothing is shared). The
supervisor picks the port, starts the workers (spawned, so each imports
prometheus_client after PROMETHEUS_MULTIPROC_DIR is set and `/metrics` in any worker
sums all of them), says where it listens once all are ready, forwards SIGTERM/SIGINT
as one SIGTERM to each (so one signal drains all; a second one stops them at once), and
exits 0 when they have.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
from multiprocessing.process import BaseProcess
from typing import Any

__all__ = ["run_workers"]

_READY_TIMEOUT = 60.0


def run_workers(args: argparse.Namespace, api_key: str | None, token: str | None) -> int:
    shared = tempfile.mkdtemp(prefix="voice-proxy-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
    os.environ["VOICE_PROXY_WORKER"] = "1"
    context = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue[tuple[str, str | None] | str] = context.Queue()
    holder = _reserve_port(args.host, args.port)
    args.port = holder.getsockname()[1]
    workers: list[BaseProcess] = []
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

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        for _ in range(args.workers):
            started = context.Process(target=_worker, args=(args, api_key, token, ready))
            started.start()
            workers.append(started)
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
        for process in workers:
            process.join()
        failed = [w.exitcode for w in workers if w.exitcode != 0]
        print("proxy stopped", flush=True)
        return 1 if failed else 0
    finally:
        holder.close()
        _forget_workers(workers)
        shutil.rmtree(shared, ignore_errors=True)


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
) -> None:
    """One worker process: a whole proxy, started and drained by the supervisor."""
    import anyio

    from .logs import configure_logging
    from .runner import Announce, serve_until_signalled

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches it through the supervisor
    configure_logging(args.log_level, args.log_format, api_key, token, log_content=args.log_content)
    announce = Announce(
        print_lines=False, ready=lambda url, app: ready.put((url, app)), worker=True
    )
    serve = functools.partial(
        serve_until_signalled, args, api_key, token, reuse_port=True, announce=announce
    )
    try:
        anyio.run(serve)
    except OSError as exc:
        ready.put(f"error: worker {os.getpid()}: {exc}")
        sys.exit(1)
    except SystemExit as exc:
        ready.put(str(exc))
        raise
