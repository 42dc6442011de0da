"""A short soak (about 25 s of meetings with random faults) in CI: the books balance, nothing leaks.

The full soak is ``scripts/soak.py --minutes 10`` (docs/RESILIENCE.md). This runs the same code
in a subprocess (its own event loop, fds and memory), so the leak checks see only the soak.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(240)
def test_short_soak_books_balance_and_nothing_leaks() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "soak.py"), "--minutes", "0.4", "--meetings", "4", "--seed", "11",
         "--meeting-s", "5", "--shm"],
        cwd=ROOT, capture_output=True, text=True, timeout=220, check=False,
    )
    summary = json.loads(proc.stdout)
    assert summary["meetings_checked"] >= 4
    assert summary["failures"] == [], summary["failures"]
    assert summary["checks"]["fds_flat"] and summary["checks"]["sockets_flat"], summary["fds"]
    assert summary["checks"]["no_tasks_left"], summary["tasks_left"]
    assert summary["checks"]["no_shm_segments_left"] and summary["shm"]["segments_live_max"] >= 1, summary["shm"]
    frames = summary["frames"]
    assert frames["sent"]["audio"] > 1000
    # every frame sent was delivered, or lost in flight on a socket the simulator cut
    for kind, sent in frames["sent"].items():
        assert frames["delivered"][kind] + frames["lost_in_transit"][kind] == sent
    assert summary["drops_counted"] <= summary["malformed_sent"]
    assert sum(summary["faults"].values()) >= 4
    assert summary["ok"] is True and proc.returncode == 0, proc.stderr[-2000:]
