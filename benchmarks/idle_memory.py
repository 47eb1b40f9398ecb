"""What an idle session holds in the proxy, by allocation site.

    python benchmarks/idle_memory.py [--sessions 500] [--depth 12] [--top 40]
                                     [--proxy-tree OTHER_CHECKOUT]

The mock and the proxy run as their own processes, as in bench_proxy.py; the proxy
runs under tracemalloc. `--sessions` sessions are opened up to SettingsApplied (in
batches of 50) and left idle; the proxy's heap is snapshotted before and after, and
the difference is printed per session: the total, then the allocation sites that hold
it (the innermost frame of the proxy's own code, or of the library it called), then
the same grouped by the first frame that is not the standard library or websockets.
RSS per session is printed beside it (RSS also has the allocator's free lists and
pages that tracemalloc does not see). Load-independent: the bytes a session holds do
not depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_proxy import MOCK, proxy_env
from drivers import close_within, open_proxied
from processes import clean_env, rss_bytes, started

#: Run inside the proxy's process: `python -m proxy`, with SIGUSR1 writing a snapshot.
_TRACED_PROXY = """
import gc, os, runpy, signal, sys, tracemalloc
tracemalloc.start(int(os.environ["IDLE_MEMORY_DEPTH"]))
def _dump(signum, frame):
    gc.collect()
    path = os.environ["IDLE_MEMORY_SNAPSHOT"]
    tracemalloc.take_snapshot().dump(path + ".part")
    os.replace(path + ".part", path)
signal.signal(signal.SIGUSR1, _dump)
sys.argv = ["proxy", *sys.argv[1:]]
runpy.run_module("proxy", run_name="__main__", alter_sys=True)
"""


async def snapshot(pid: int, path: Path) -> tracemalloc.Snapshot:
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the proxy wrote no snapshot")
        await asyncio.sleep(0.05)
    return tracemalloc.Snapshot.load(str(path))


def _site(trace: tracemalloc.Traceback, shallow: bool) -> str:
    """Where an allocation was made: its innermost frame (`shallow`), or the first
    frame outside the standard library and websockets (where our code asked for it)."""
    frames = list(reversed(trace))  # most recent call first
    if not shallow:
        for frame in frames:
            name = frame.filename
            if "/proxy/" in name or "/harness/" in name:
                return f"{_short(name)}:{frame.lineno}"
    frame = frames[0]
    return f"{_short(frame.filename)}:{frame.lineno}"


def _short(filename: str) -> str:
    for marker in ("/proxy/", "/websockets/", "/asyncio/", "/lib/python3"):
        at = filename.rfind(marker)
        if at >= 0:
            return filename[at + 1 :]
    return filename


def breakdown(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, sessions: int, top: int
) -> None:
    diff = after.compare_to(before, "traceback")
    total = sum(stat.size_diff for stat in diff)
    count = sum(stat.count_diff for stat in diff)
    print(
        f"tracemalloc: {total / sessions:.0f} B in {count / sessions:.1f} blocks per idle session"
    )
    for shallow in (True, False):
        title = "innermost frame" if shallow else "the proxy's frame that asked"
        sites: dict[str, list[int]] = {}
        for stat in diff:
            entry = sites.setdefault(_site(stat.traceback, shallow), [0, 0])
            entry[0] += stat.size_diff
            entry[1] += stat.count_diff
        print(f"\nper session, by {title}:")
        ranked = sorted(sites.items(), key=lambda item: -item[1][0])
        for site, (size, blocks) in ranked[:top]:
            if abs(size) / sessions < 8:
                break
            print(f"{size / sessions:8.0f} B {blocks / sessions:6.2f} blocks  {site}")


async def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "snapshot"
        limit = args.sessions + 50
        with started(MOCK, clean_env()) as (_, mock_url):
            env = proxy_env(mock_url, limit)
            env.update(IDLE_MEMORY_SNAPSHOT=str(path), IDLE_MEMORY_DEPTH=str(args.depth))
            command = ["-c", _TRACED_PROXY, "--port", "0"]
            with started(command, env, args.proxy_tree) as (proxy, url):
                warm, _ = await open_proxied(url)  # first-use caches are not per session
                await close_within([warm], 5.0)
                await asyncio.sleep(1.0)
                before = await snapshot(proxy.pid, path)
                rss_before = rss_bytes(proxy.pid)
                sessions = []
                while len(sessions) < args.sessions:
                    batch = min(50, args.sessions - len(sessions))
                    opened = await asyncio.gather(*(open_proxied(url) for _ in range(batch)))
                    sessions += [ws for ws, _ in opened]
                gc.collect()
                await asyncio.sleep(2.0)
                after = await snapshot(proxy.pid, path)
                rss_after = rss_bytes(proxy.pid)
                await close_within(sessions, 15.0)
        if args.keep is not None:
            before.dump(str(args.keep / "before.snapshot"))
            after.dump(str(args.keep / "after.snapshot"))
    per_session = (rss_after - rss_before) / args.sessions / 1024
    print(f"{args.sessions} idle sessions; RSS per session {per_session:.1f} KiB (traced)")
    breakdown(before, after, args.sessions, args.top)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--depth", type=int, default=12, help="frames kept per allocation")
    parser.add_argument("--top", type=int, default=40, help="sites printed per grouping")
    parser.add_argument(
        "--keep", type=Path, default=None, help="a folder to keep both snapshots in"
    )
    parser.add_argument(
        "--proxy-tree", type=Path, default=None, help="measure another checkout's proxy"
    )
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
