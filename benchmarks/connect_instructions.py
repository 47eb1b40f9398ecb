"""Instructions the proxy executes per connect, counted by callgrind (immune to load).

    python benchmarks/connect_instructions.py [--connects 20] [--proxy-tree OTHER_CHECKOUT]

The mock runs as its own process; the proxy runs under `valgrind --tool=callgrind`
(about fifty times slower, which does not change what it counts). After five warm-up
sessions the counters are zeroed (`callgrind_control -z`), then `--connects` sessions
each go from the TCP connect to SettingsApplied and close, one at a time, and the
counters are dumped. Printed: the proxy's instructions per session (connect to close).
On a shared machine, wall-clock connect times vary from run to run by more than a
change to the proxy does; this count does not. Compare two checkouts one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_proxy import MOCK, proxy_env
from drivers import open_proxied
from processes import clean_env, started


async def count(tree: Path | None, connects: int) -> float:
    with tempfile.TemporaryDirectory() as folder, started(MOCK, clean_env()) as (_, mock_url):
        out = Path(folder) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}.%p",
            sys.executable,
            "-m",
            "proxy",
            "--port",
            "0",
        ]
        proxy = subprocess.Popen(
            command,
            env=proxy_env(mock_url, 100),
            cwd=tree,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proxy.stdout is not None
            for line in proxy.stdout:
                if found := re.search(r"listening on (ws://\S+)", line):
                    url = found.group(1)
                    break
            else:
                raise RuntimeError("the proxy did not start under valgrind")

            async def sessions(n: int) -> None:
                for _ in range(n):
                    ws, _ = await open_proxied(url, timeout=120)
                    await ws.close()
                    await asyncio.sleep(0.3)  # the proxy's side of the close is done

            await sessions(5)
            await asyncio.sleep(1.0)
            subprocess.run(
                ["callgrind_control", "-z", str(proxy.pid)], check=True, capture_output=True
            )
            await sessions(connects)
            await asyncio.sleep(1.0)
            subprocess.run(
                ["callgrind_control", "-d", str(proxy.pid)], check=True, capture_output=True
            )
        finally:
            proxy.terminate()
            proxy.wait(60)
        dumps = sorted(glob.glob(f"{out}.{proxy.pid}.*"))  # the part after the zero
        if not dumps:
            raise RuntimeError("callgrind wrote no dump")
        for line in Path(dumps[-1]).read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1]) / connects
    raise RuntimeError("no summary line in the dump")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connects", type=int, default=20)
    parser.add_argument(
        "--proxy-tree", type=Path, default=None, help="measure another checkout's proxy"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("needs valgrind (apt-get install valgrind)")
    per_session = asyncio.run(count(args.proxy_tree, args.connects))
    print(f"{per_session:,.0f} instructions per session, connect to close")


if __name__ == "__main__":
    main()
