"""``gateway demo`` as a user runs it: a subprocess that must exit 0 with a complete summary."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from gateway.app import Gateway
from gateway.demo import Demo, DemoOptions, StreamReport, shm_available
from gateway.stats_sink import StatsSink
from tests.gateway.test_cli import ROOT, native_env


@pytest.mark.parametrize("mode", ["default", "no-shm"])
def test_demo_subprocess_exits_zero_with_a_complete_summary(mode: str) -> None:
    extra = ["--no-shm"] if mode == "no-shm" else []
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--seconds", "3", "--meetings", "2", *extra],
        cwd=ROOT,
        env=native_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "summary" in out
    assert out.count(": COMPLETE") == 2
    assert "result: everything the simulator sent arrived intact" in out
    # not a TTY: one status line per second instead of the ANSI table
    assert "\x1b[" not in out
    assert len(re.findall(r"^\[\s*\d+\.\ds\] streams=2", out, re.M)) >= 2
    for kind in ("audio", "video", "transcript"):
        m = re.search(rf"^\s+{kind}\s+sent\s+(\d+)\s+received\s+(\d+)", out, re.M)
        assert m and int(m.group(1)) > 0 and m.group(1) == m.group(2), kind
    if mode == "default" and shm_available():
        # a separate consumer process read every participant's samples back from shared memory
        consumer = re.findall(r"consumer \(shared memory\) audio samples read/sent: (.*);", out)
        assert len(consumer) == 2 and "MISMATCH" not in out
        pairs = re.findall(r"user \d+: (\d+)/(\d+)", " ".join(consumer))
        assert pairs and all(a == b and int(a) > 0 for a, b in pairs)
        frames = re.findall(r"video/user \d+: (\d+)/(\d+)", out)
        assert frames and all(a == b for a, b in frames)
        assert out.count("payload CRC-32 (read back by the consumer) identical") == 2
    else:
        assert out.count("payload CRC-32 identical") == 2


def test_consumer_shortfall_or_overrun_fails_the_demo() -> None:
    demo = Demo(DemoOptions(tty=False), out=io.StringIO())
    ok = StreamReport("a" * 32, sent={"audio": 3}, received={"audio": 3}, consumer_audio={7: (960, 960)})
    short = StreamReport("b" * 32, sent={"audio": 3}, received={"audio": 3}, consumer_audio={7: (960, 640)})
    overrun = StreamReport("c" * 32, sent={"audio": 3}, received={"audio": 3}, consumer_audio={7: (960, 960)}, consumer_lost=5)
    assert demo._summary([ok]) == 0
    assert demo._summary([short]) == 1
    assert demo._summary([overrun]) == 1


def test_summary_fails_when_anything_is_missing() -> None:
    buf = io.StringIO()
    demo = Demo(DemoOptions(seconds=1, meetings=1, tty=False), out=buf)
    good = StreamReport("a" * 32, sent={"audio": 10}, received={"audio": 10})
    lost = StreamReport("b" * 32, sent={"audio": 10, "video": 2}, received={"audio": 9, "video": 2})
    assert demo._summary([good]) == 0
    assert demo._summary([good, lost]) == 1
    assert "LOST 1" in buf.getvalue() and "INCOMPLETE" in buf.getvalue()
    assert demo._summary([StreamReport("c" * 32, sent={}, received={})]) == 1  # nothing flowed: not a success
    assert demo._summary([StreamReport("d" * 32, sent={"audio": 1}, received={"audio": 1}, crc_mismatches=["audio/user 1"])]) == 1


def test_tty_table_redraws_in_place() -> None:
    buf = io.StringIO()
    demo = Demo(DemoOptions(tty=True), out=buf)

    gw = Gateway(demo.config)
    demo.sinks["f" * 32] = StatsSink()
    demo._draw(gw, None, 1.0)
    demo._draw(gw, None, 2.0)
    text = buf.getvalue()
    assert "\x1b[" in text and "stream" in text
    assert text.count("\x1b[J") == 1  # the second frame replaced the first


def test_segments_of_a_killed_demo_are_removed(tmp_path) -> None:
    dead_pid = 999_999_999  # larger than any pid_max: never alive
    for name in (f"rtms-demo-{dead_pid}.dir", f"rtms-demo-{dead_pid}.{dead_pid}.123.0", "rtms-gw.dir", "unrelated"):
        (tmp_path / name).write_bytes(b"\0" * 64)
    from gateway.demo import cleanup_dead_demos

    removed = cleanup_dead_demos(str(tmp_path))
    assert sorted(removed) == sorted([f"rtms-demo-{dead_pid}.dir", f"rtms-demo-{dead_pid}.{dead_pid}.123.0"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rtms-gw.dir", "unrelated"]
