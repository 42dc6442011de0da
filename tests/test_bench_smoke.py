"""Smoke test of ``gateway bench --quick``: every contender produced figures and the gateway lost nothing.

No timing assertions: only that each contender joined the simulated meetings, received the
stamped audio and the transcripts, reported latency samples and CPU, and that the gateway's
consumer accounted for every message the simulator sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(150)


def test_quick_comparison_every_contender_has_figures_and_the_gateway_lost_nothing(tmp_path: Path) -> None:
    out = tmp_path / "e2e.json"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "bench", "--quick", "--quiet", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=140,
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    result = json.loads(out.read_text())
    rows = {row["contender"]: row for row in result["table"]}
    assert set(rows) == {"gateway", "gateway_engine", "sdk", "asyncio", "picows"}
    for name, row in rows.items():
        assert row["ok"], (name, row.get("error"))
        assert row["sent"] > 0, name
        assert row["msgs_per_s"] and row["msgs_per_s"] > 0, name
        assert row["latency_n"] and row["latency_n"] > 0, name
        assert row["p50_us"] is not None and row["p99_us"] >= row["p50_us"], name
        assert row["cpu_us_per_msg"] is not None, name
        assert row["rss_mib"] > 0, name
    for name in ("gateway", "gateway_engine"):
        gw = rows[name]
        assert gw["lost"] == 0, gw
        assert gw["received"]["audio"] == gw["sent_split"]["audio"] > 0
        assert gw["received"]["transcripts"] == gw["sent_split"]["transcripts"] > 0
        assert gw["consumer"]["lost_overrun"] == 0
    # Receive stamps: the native path stamps every frame, the engine's aligned output none.
    assert rows["gateway"]["inside_latency"]["n"] > 0
    assert rows["gateway_engine"]["inside_latency"]["n"] == 0
    assert "| gateway |" in proc.stdout  # the table was printed


def test_wakeup_bench_c_and_python_consumers_read_receive_stamps(tmp_path: Path) -> None:
    """benchmarks/bench_wakeup.py end to end, tiny: C probes and Python probes both get stamps."""
    out = tmp_path / "wakeup.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_wakeup.py", "--meetings", "8", "--seconds", "1", "--c-probes", "2",
         "--layout", "shared", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=140,
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["ok"] and run["lost"] == 0 and run["sent"] > 0, run
    assert run["inside_c"]["n"] > 0 and run["inside_python"]["n"] > 0
    assert 0 < run["inside_c"]["p50_us"] <= run["inside_c"]["p99_us"]
    assert run["wire_c"]["n"] > 0
    assert "| shared | 8 |" in proc.stderr


def test_make_bench_runner_runs_benchmarks_and_keeps_their_json(tmp_path: Path) -> None:
    """``make bench`` (benchmarks/run.py): each benchmark in its own process, JSON per benchmark."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--only", "parser,pipeline", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["name"] for r in summary["results"]] == ["parser", "pipeline"] and all(r["ok"] for r in summary["results"])
    assert json.loads((tmp_path / "parser.json").read_text())["ns_per_message"]["native_c"] > 0
    assert json.loads((tmp_path / "pipeline.json").read_text())["us_per_packet"]["native"] > 0
    bad = subprocess.run([sys.executable, "-m", "benchmarks.run", "--only", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown benchmark" in bad.stderr
