"""The processes a benchmark measures: the mock upstream and the proxy, each started as a
user would start it, and what /proc says about them (CPU time and resident memory, of
the process and all its descendants, so `--workers N` is counted whole)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "MOCK_KEY",
    "clean_env",
    "cpu_seconds",
    "descendants",
    "rss_bytes",
    "started",
    "steal_seconds",
]

MOCK_KEY = "sk-bench-key-0000"
_TICKS = os.sysconf("SC_CLK_TCK")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the proxy's own settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return {**env, **extra}


@contextmanager
def started(
    args: list[str],
    env: dict[str, str],
    cwd: Path | None = None,
    *,
    launcher: Sequence[str] = (),
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python <args>` (in `cwd`; run by `launcher`, e.g. valgrind, when given), once it
    prints the ws:// URL it listens on; stopped at exit."""
    proc = subprocess.Popen(
        [*launcher, sys.executable, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if match := re.search(r"listening on (ws://\S+)", line):
            break
    else:
        raise RuntimeError(f"{args} did not start")
    try:
        yield proc, match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a `--workers` supervisor's workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in _tasks(current):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            queue.extend(int(child) for child in children)
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its descendants, every thread, in seconds (nanosecond
    resolution from schedstat where the kernel has it, else clock ticks)."""
    total = 0.0
    for process in descendants(pid):
        for task in _tasks(process):
            try:
                total += int((task / "schedstat").read_text().split()[0]) / 1e9
            except (OSError, IndexError, ValueError):
                total += _ticks(task)
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its descendants."""
    total = 0
    for process in descendants(pid):
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except OSError:
            continue
        if match := re.search(r"^VmRSS:\s+(\d+) kB", status, re.M):
            total += int(match.group(1)) * 1024
    return total


def _tasks(pid: int) -> list[Path]:
    try:
        return list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []


def _ticks(task: Path) -> float:
    try:
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def steal_seconds() -> float:
    """CPU time the hypervisor took from this machine's CPUs so far (all CPUs summed): on
    a shared virtual machine, the noise every measurement here carries."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    return int(fields[8]) / _TICKS if len(fields) > 8 else 0.0
