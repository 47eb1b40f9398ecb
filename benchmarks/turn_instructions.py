"""The proxy's cost in machine instructions, which a busy machine does not change:

    python benchmarks/turn_instructions.py [--turns 40] [--connects 20]
                                           [--proxy-tree DIR ...]

CPU time on a shared two-core machine moves by 20-40% from run to run, which hides a
change of a few percent in the proxy's own work. Instruction counts do not move with the
load: the proxy (`python -m proxy`, as a user starts it) runs under valgrind's callgrind
with counting off, the driver turns counting on (`callgrind_control -i on`) only around
what is measured, and reads the count back:

- per text turn: one session, InjectUserMessage -> the turn's end, `--turns` times after
  `--warmup` unmeasured turns (the mock answers each with ~17 events and 3 x 100 ms of
  audio, as in bench_proxy.py);
- per connection: connect -> SettingsApplied -> close, `--connects` times (the first,
  uncounted, pays for what a process does once);
- per second of microphone audio: `--audio-seconds` of 16 kHz linear16 in 20 ms frames,
  sent as fast as the proxy takes them.

Each `--proxy-tree` (a checkout, e.g. a git worktree of an older commit) is measured the
same way after this checkout, so a change can be compared in one run. Counting makes the
proxy ~50x slower: expect a minute or two per tree. Needs valgrind (`apt-get install
valgrind`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: harness

from bench_proxy import MOCK, proxy_env, sine_pcm16
from drivers import TURN_END, close_within, open_proxied, proxied_turn
from processes import clean_env, started

REPOSITORY = Path(__file__).resolve().parents[1]


class CountedProxy:
    """A proxy running under callgrind, counting only when asked."""

    def __init__(self, proc: subprocess.Popen[str], url: str, out: Path) -> None:
        self.proc, self.url, self.out = proc, url, out

    def _control(self, *args: str) -> None:
        subprocess.run(
            ["callgrind_control", *args, str(self.proc.pid)],
            check=True,
            capture_output=True,
        )

    def start_counting(self) -> None:
        self._control("--zero")
        self._control("--instr=on")

    def stop_counting(self) -> int:
        """Instructions since start_counting()."""
        self._control("--instr=off")
        before = set(self.out.parent.glob(self.out.name + "*"))
        self._control("--dump")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for dump in set(self.out.parent.glob(self.out.name + "*")) - before:
                if match := re.search(r"^totals: (\d+)", dump.read_text(), re.MULTILINE):
                    return int(match.group(1))
            time.sleep(0.2)
        raise RuntimeError("callgrind wrote no dump")


@contextmanager
def counted_proxy(tree: Path, mock_url: str, out: Path) -> Iterator[CountedProxy]:
    """`python -m proxy` of `tree` as a user starts it, under callgrind with counting off."""
    launcher = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    command = ["-m", "proxy", "--port", "0"]
    with started(command, proxy_env(mock_url, 4), tree, launcher=launcher) as (proc, url):
        yield CountedProxy(proc, url, out)


async def measure(proxy: CountedProxy, args: argparse.Namespace) -> dict[str, float]:
    # Connections: each closed before the next, its upstream close given time to finish.
    # The first pays for what a process does once (lazy imports, caches): not counted.
    ws, _seconds = await open_proxied(proxy.url, timeout=120)
    await ws.close()
    await asyncio.sleep(0.3)
    proxy.start_counting()
    for _ in range(args.connects):
        ws, _seconds = await open_proxied(proxy.url, timeout=120)
        await ws.close()
        await asyncio.sleep(0.3)
    per_connection = proxy.stop_counting() / args.connects

    # Microphone audio: 16 kHz linear16 in 20 ms frames, as fast as the proxy takes them.
    ws, _seconds = await open_proxied(proxy.url, timeout=120)
    audio = sine_pcm16(float(args.audio_seconds))
    await ws.send(audio[:640])  # the first frame sets up the audio path: not counted
    await asyncio.sleep(0.5)
    proxy.start_counting()
    for start in range(640, len(audio), 640):
        await ws.send(audio[start : start + 640])
    await ws.send(b'{"type":"KeepAlive"}', text=True)
    await asyncio.sleep(1.0)  # the last batch goes out after 50 ms
    per_audio_second = proxy.stop_counting() / args.audio_seconds
    await close_within([ws], 30)

    ws, _seconds = await open_proxied(proxy.url, timeout=120)
    for n in range(args.warmup):
        await proxied_turn(ws, f"warm up {n}", timeout=120)
    await asyncio.sleep(1.0)  # the last turn's trailing events
    proxy.start_counting()
    for n in range(args.turns):
        await proxied_turn(ws, f"turn {n}", timeout=120)
    await asyncio.sleep(1.0)
    per_turn = proxy.stop_counting() / args.turns
    await close_within([ws], 30)
    return {
        "instructions_per_turn": per_turn,
        "instructions_per_connection": per_connection,
        "instructions_per_audio_second": per_audio_second,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--connects", type=int, default=20)
    parser.add_argument("--audio-seconds", type=int, default=10)
    parser.add_argument("--proxy-tree", type=Path, action="append", default=[])
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        parser.error("needs valgrind: apt-get install valgrind")
    if args.proxy_tree:
        TURN_END["kind"] = b"AgentAudioDone"  # older checkouts send no LatencyReport
    trees = [REPOSITORY, *(tree.resolve() for tree in args.proxy_tree)]
    rows = []
    with (
        tempfile.TemporaryDirectory() as workdir,
        started(MOCK, clean_env()) as (_mock, mock_url),
    ):
        for index, tree in enumerate(trees):
            with counted_proxy(tree, mock_url, Path(workdir) / f"callgrind.{index}") as proxy:
                rows.append((tree, asyncio.run(measure(proxy, args))))
    for tree, row in rows:
        print(
            f"{tree}: {row['instructions_per_turn'] / 1e6:.3f} M instructions per text turn, "
            f"{row['instructions_per_connection'] / 1e6:.3f} M per connection, "
            f"{row['instructions_per_audio_second'] / 1e6:.3f} M per second of microphone audio"
        )


if __name__ == "__main__":
    main()
