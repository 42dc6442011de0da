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
    assert "| gateway |" in proc.stdout  # the table was printed
