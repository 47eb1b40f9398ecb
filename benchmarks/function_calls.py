"""Event-loop CPU per server-side function call: an HTTP client per call, or one shared.

    python benchmarks/function_calls.py [--calls 200] [--rounds 3]

A tiny HTTP server answers on 127.0.0.1 in another thread; the event loop makes the
calls one after another and its own thread's CPU time is counted (`time.thread_time`),
so the server's work and the resolver's threads are left out. "per call" makes a new
`httpx.AsyncClient` for each call, as the proxy did before issue 17 (it loads the CA
bundle each time, even for http://); "shared" is `proxy.function_http.FunctionCaller`,
one client per server. Not a test; a measurement for issue 17, finding 3.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from proxy.function_http import FunctionCaller
from proxy.function_policy import FunctionEndpointPolicy, FunctionRequest

ANSWER = b'{"temperature": 21}'


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real function server would

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args: object) -> None:
        pass


async def per_call_client(request: FunctionRequest) -> None:
    """The call as it was made before: a new client (and TLS context) each time."""
    async with (
        httpx.AsyncClient(follow_redirects=False, trust_env=False) as client,
        client.stream(
            request.method, request.url, headers=list(request.headers), content=request.content
        ) as response,
    ):
        async for _ in response.aiter_raw():
            pass


async def measure(call: Callable[[], Awaitable[object]], calls: int) -> float:
    """Milliseconds of this thread's CPU per call (after one warm-up call)."""
    await call()
    begun = time.thread_time()
    for _ in range(calls):
        await call()
    return (time.thread_time() - begun) / calls * 1000


async def main(calls: int, rounds: int) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/fn/weather"
    policy = FunctionEndpointPolicy.from_options([f"127.0.0.1:{server.server_address[1]}"])
    request = policy.prepare(url, "POST", None, '{"city": "Paris"}')
    caller = FunctionCaller(timeout=10, max_answer_bytes=policy.max_answer_bytes)

    async def shared() -> None:
        _, failure = await caller.call(request)
        assert failure is None, failure

    results: dict[str, list[float]] = {"per call": [], "shared": []}
    try:
        for _ in range(rounds):  # alternate, so drift in the machine hits both alike
            results["per call"].append(await measure(lambda: per_call_client(request), calls))
            results["shared"].append(await measure(shared, calls))
    finally:
        await caller.aclose()
        server.shutdown()
    print(f"event-loop CPU per function call, ms ({calls} calls x {rounds} rounds)")
    for name, values in results.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name:9} median {statistics.median(values):6.2f}   rounds: {shown}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.calls, options.rounds))
