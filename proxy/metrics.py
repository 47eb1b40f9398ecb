"""What an operator graphs (docs/operations.md, "Metrics"), in the Prometheus text format.

One `ProxyMetrics` per server, on its own registry, so several proxies in one process
(tests) never share counters. With `--workers N` the workers write to a shared folder
(prometheus_client's multiprocess mode, chosen by PROMETHEUS_MULTIPROC_DIR before the
library is imported) and `/metrics` in any worker reports the sum over all of them.

Label values that come from upstream (error codes) are untrusted: they are reduced to a
safe alphabet and capped in number, so a hostile upstream cannot grow the series without
bound.
"""

from __future__ import annotations

import asyncio
import os
import re

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from .bounds import MAX_ERROR_CODES as _MAX_ERROR_CODES

__all__ = ["CONTENT_TYPE", "ProxyMetrics", "SessionMetrics", "multiprocess_dir", "report_traffic"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_CONNECT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SAFE_LABEL = re.compile(r"[^a-z0-9_]")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ProxyMetrics:
    """The proxy's metrics and their registry."""

    def __init__(self) -> None:
        shared = multiprocess_dir()
        self.registry = CollectorRegistry()
        if shared:
            MultiProcessCollector(self.registry, path=shared)  # type: ignore[no-untyped-call]
            own = None  # values live in the shared files; the collector reads them all
        else:
            own = self.registry
            ProcessCollector(registry=self.registry)
            tasks = Gauge(
                "voice_proxy_asyncio_tasks",
                "Tasks on the serving event loop (flat when sessions end cleanly).",
                registry=own,
            )
            tasks.set_function(_running_tasks)
        self.sessions_active = Gauge(
            "voice_proxy_sessions_active",
            "Sessions open now.",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.sessions = Counter(
            "voice_proxy_sessions",
            "Sessions ended, by close reason.",
            ["close_reason"],
            registry=own,
        )
        self.refused = Counter(
            "voice_proxy_refused_connections",
            "Upgrades refused before a session started, by reason.",
            ["reason"],
            registry=own,
        )
        self.turns = Counter(
            "voice_proxy_turns", "Agent turns (responses) completed.", registry=own
        )
        self.upstream_errors = Counter(
            "voice_proxy_upstream_errors",
            "Errors from upstream (error events and failed connections), by code.",
            ["code"],
            registry=own,
        )
        self.renewals = Counter(
            "voice_proxy_renewals",
            "Upstream session renewals: renewed, or refused (too short-lived or too often).",
            ["outcome"],
            registry=own,
        )
        self.bytes = Counter(
            "voice_proxy_bytes",
            "Frame payload bytes, by direction.",
            ["direction"],
            registry=own,
        )
        self.audio_seconds = Counter(
            "voice_proxy_audio_seconds",
            "Audio carried, in seconds: user (in) and agent (out).",
            ["direction"],
            registry=own,
        )
        self.settings_applied = Histogram(
            "voice_proxy_settings_applied_seconds",
            "From the client's connection to SettingsApplied.",
            buckets=_CONNECT_BUCKETS,
            registry=own,
        )
        self.turn_latency = Histogram(
            "voice_proxy_turn_latency_seconds",
            "From the end of the user's turn to the first agent audio or text.",
            buckets=_LATENCY_BUCKETS,
            registry=own,
        )
        self.buffered_high_water = Gauge(
            "voice_proxy_buffered_bytes_high_water",
            "The most bytes one session held for one of its peers.",
            registry=own,
            multiprocess_mode="max",
        )
        self._codes: set[str] = set()
        #: What a session reports as it runs, in this order: bytes from the client, to
        #: the client, from upstream, to upstream; seconds of user and agent audio.
        self.traffic = (
            self.bytes.labels(direction="client_in"),
            self.bytes.labels(direction="client_out"),
            self.bytes.labels(direction="upstream_in"),
            self.bytes.labels(direction="upstream_out"),
            self.audio_seconds.labels(direction="in"),
            self.audio_seconds.labels(direction="out"),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def upstream_error(self, code: str) -> None:
        label = _SAFE_LABEL.sub("_", code.lower())[:48] or "unknown"
        if label not in self._codes:
            if len(self._codes) >= _MAX_ERROR_CODES - 1:  # "other" is the last one
                label = "other"
            else:
                self._codes.add(label)
        self.upstream_errors.labels(code=label).inc()

    def session(self) -> SessionMetrics:
        return SessionMetrics(self)


def report_traffic(metrics: ProxyMetrics, totals: tuple[float, ...], reported: list[float]) -> None:
    """Add what one session moved since its last report to the traffic counters: `totals`
    and `reported` (what earlier reports added, updated here) in `traffic` order."""
    for index, counter in enumerate(metrics.traffic):
        delta = totals[index] - reported[index]
        if delta > 0:
            counter.inc(delta)
            reported[index] = totals[index]


def _running_tasks() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped off the loop: not knowable here
        return float("nan")


class SessionMetrics:
    """What one session reports (the session core calls these; see SessionObserver)."""

    __slots__ = ("_metrics",)

    def __init__(self, metrics: ProxyMetrics) -> None:
        self._metrics = metrics

    def settings_applied(self, seconds: float) -> None:
        self._metrics.settings_applied.observe(seconds)

    def turn_done(self, latency: float | None) -> None:
        self._metrics.turns.inc()
        if latency is not None:
            self._metrics.turn_latency.observe(latency)

    def upstream_error(self, code: str) -> None:
        self._metrics.upstream_error(code)

    def renewal(self, outcome: str) -> None:
        self._metrics.renewals.labels(outcome=outcome).inc()
