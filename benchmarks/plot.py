"""The benchmark's picture: turn latency distributions (direct and through the proxy),
connect times, CPU per turn against the target, and the scale ramps. matplotlib is an
optional extra (`pip install ".[bench]"`); without it the benchmark skips the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_result"]


def plot_result(result: dict[str, Any], path: Path) -> str | None:
    """Draw `result` into `path` (PNG); returns why not when it cannot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 'matplotlib is not installed (pip install ".[bench]"): no plot'
    samples = result["samples"]
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (latency, connect), (cpu, scale) = axes

    direct = [s * 1e3 for s in samples["turn_direct_s"]]
    proxied = [s * 1e3 for s in samples["turn_proxied_s"]]
    top = max(_quantile(direct, 0.995), _quantile(proxied, 0.995))
    bins = [top * i / 60 for i in range(61)]
    latency.hist(direct, bins=bins, alpha=0.6, label="direct to the mock")
    latency.hist(proxied, bins=bins, alpha=0.6, label="through the proxy")
    latency.set(
        title=f"text turn latency, {result['config']['sessions']} sessions at once",
        xlabel="ms (InjectUserMessage -> end of turn)",
        ylabel="turns",
    )
    latency.legend()

    connect.boxplot(
        [
            [s * 1e3 for s in samples["connect_direct_s"]],
            [s * 1e3 for s in samples["connect_proxied_s"]],
        ],
        showfliers=False,
    )
    connect.set_xticks([1, 2], ["direct: session.updated", "proxy: SettingsApplied"])
    connect.axhline(1.5, color="red", linestyle="--", label="target 1.5 ms")
    connect.set(title="connect -> ready, one at a time", ylabel="ms")
    connect.legend()

    per_round = samples["cpu_per_turn_ms_by_round"]
    cpu.bar(range(1, len(per_round) + 1), per_round, color="tab:orange")
    cpu.axhline(0.25, color="red", linestyle="--", label="target 0.25 ms")
    cpu.set(title="proxy CPU per text turn, by round", xlabel="round", ylabel="ms of CPU")
    cpu.legend()

    for workers, steps in result.get("scale", {}).items():
        scale.plot(
            [s["sessions"] for s in steps],
            [min(s["p99_ms"], 500) for s in steps],
            marker="o",
            label=f"p99, {workers} worker(s)",
        )
    scale.axhline(50, color="red", linestyle="--", label="50 ms bound")
    scale.set(
        title="real-time sessions (16 kHz audio, a turn every few s)",
        xlabel="sessions",
        ylabel="turn latency p99, ms (capped at 500)",
    )
    scale.legend()

    figure.suptitle(f"voice-agent-realtime-proxy benchmark, {result['machine']['summary']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 1.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
