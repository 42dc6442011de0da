"""Scaling plot of a ``gateway bench`` result: CPU per message and wire p99 against meetings.

    python benchmarks/plot.py benchmarks/results/e2e.json benchmarks/results/e2e.png

Needs matplotlib (the ``bench`` extra); uses the Agg backend, so no display is needed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

COLORS = {"gateway": "tab:blue", "gateway_engine": "tab:purple", "sdk": "tab:red", "asyncio": "tab:orange", "picows": "tab:gray"}
LABELS = {"gateway": "gateway, native path (+ shm consumer wake-up)", "gateway_engine": "gateway, audio engine (60 ms reorder window)",
          "sdk": "Zoom rtms SDK (EventLoopPool, poll 1 ms)",
          "asyncio": "asyncio + websockets + json + base64", "picows": "bare picows loop (ceiling)"}


def _points(result: dict[str, Any], contender: str) -> list[dict[str, Any]]:
    """Sweep and capacity probes that produced figures, one per meeting count (the sweep's first)."""
    seen: dict[int, dict[str, Any]] = {}
    probes = list(result.get("sweep", {}).get(contender, []))
    probes += list(result.get("capacity", {}).get(contender, {}).get("probes", []))
    for p in probes:
        if p.get("ok") and p.get("cpu_us_per_msg") is not None and p.get("meetings") not in seen:
            seen[p["meetings"]] = p
    return [seen[k] for k in sorted(seen)]


def plot_scaling(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_cpu, ax_lat) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    for contender in result.get("plan", {}).get("contenders", COLORS):
        pts = _points(result, contender)
        if not pts:
            continue
        x = [p["meetings"] for p in pts]
        style = {"color": COLORS.get(contender), "marker": "o", "label": LABELS.get(contender, contender)}
        ax_cpu.plot(x, [p["cpu_us_per_msg"] for p in pts], **style)
        ax_lat.plot(x, [p["p99_us"] / 1000 for p in pts], **style)
        bad = [p for p in pts if p.get("lost")]
        ax_lat.scatter([p["meetings"] for p in bad], [p["p99_us"] / 1000 for p in bad], marker="x", s=80, color="black", zorder=5)
    ax_lat.axhline(1.0, color="green", linestyle="--", linewidth=1, label="goal: wire p99 < 1 ms")
    for ax in (ax_cpu, ax_lat):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent meetings (3 speakers + transcript, real time)")
        ax.grid(True, which="both", alpha=0.3)
    ax_cpu.set_ylabel("receiver CPU per message (us)")
    ax_lat.set_ylabel("wire latency p99 (ms), x = frames lost")
    ax_cpu.set_title("CPU per message")
    ax_lat.set_title("p99 latency, simulator write -> consumer wake-up")
    ax_lat.legend(fontsize=8, loc="upper left")
    env = result.get("environment", {})
    fig.suptitle(f"gateway bench, {env.get('cores')} cores, {env.get('cpu', '')}", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0]) as fh:
        plot_scaling(json.load(fh), args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
