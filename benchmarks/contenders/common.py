"""What every contender shares: pinning, the measurement window, latency records, the report."""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from array import array
from typing import Any

import numpy as np


def pin_from_env(var: str = "BENCH_CPU") -> None:
    """Pin this process (and every thread it creates later) to the cores in ``var`` when set.

    With ``BENCH_SCHED_OTHER=1`` it also takes the normal scheduling policy back (a simulator
    running at SCHED_IDLE, as benchmarks/bench_wakeup.py runs it, would otherwise pass it on).
    """
    if os.environ.get("BENCH_SCHED_OTHER") == "1":
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except (AttributeError, OSError):
            pass
    cpu = os.environ.get(var)
    if cpu:
        try:
            os.sched_setaffinity(0, {int(c) for c in cpu.split(",")})
        except (OSError, ValueError):
            pass


def rss_kb(pid: int | str = "self") -> int:
    """Resident set size (VmRSS) in KiB, 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def summarize_ns(values: array | np.ndarray) -> dict[str, float]:
    """p50 / p99 / p99.9 / max in microseconds (empty: zeros and n = 0)."""
    arr = np.asarray(values, dtype=np.int64)
    if arr.size == 0:
        return {"n": 0, "p50_us": 0.0, "p99_us": 0.0, "p999_us": 0.0, "max_us": 0.0}
    q = np.percentile(arr, [50, 99, 99.9]) / 1000.0
    return {"n": int(arr.size), "p50_us": round(float(q[0]), 1), "p99_us": round(float(q[1]), 1),
            "p999_us": round(float(q[2]), 1), "max_us": round(float(arr.max()) / 1000.0, 1)}


class Recorder:
    """Counts every message; in the window also keeps each audio message's wire latency (ns).

    ``audio(stamp_ns)`` is the hot call: the stamp is the simulator's ``time.monotonic_ns()``
    from the first 8 PCM bytes; one clock read, one append.
    """

    def __init__(self) -> None:
        self.audio_total = 0
        self.transcripts_total = 0
        self.measuring = False
        self.lat = array("q")
        self.win_audio0 = self.win_tr0 = 0
        self.win_audio = self.win_tr = 0
        self.t0 = self.t1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.rss_window_kb = 0
        self.stopped = threading.Event()
        self.rss_before_kb = rss_kb()

    def audio(self, stamp_ns: int) -> None:
        self.audio_total += 1
        if self.measuring:
            self.lat.append(time.monotonic_ns() - stamp_ns)

    def transcript(self) -> None:
        self.transcripts_total += 1

    def begin(self) -> None:
        self.win_audio0, self.win_tr0 = self.audio_total, self.transcripts_total
        self.t0, self.cpu0 = time.monotonic(), cpu_s()
        self.measuring = True

    def end(self) -> None:
        self.measuring = False
        self.t1, self.cpu1 = time.monotonic(), cpu_s()
        self.win_audio = self.audio_total - self.win_audio0
        self.win_tr = self.transcripts_total - self.win_tr0
        self.rss_window_kb = rss_kb()

    def report(self, **extra: Any) -> dict[str, Any]:
        seconds = max(1e-9, self.t1 - self.t0)
        msgs = self.win_audio + self.win_tr
        out = {
            "audio_total": self.audio_total,
            "transcripts_total": self.transcripts_total,
            "window_s": round(seconds, 3),
            "window_msgs": msgs,
            "msgs_per_s": round(msgs / seconds, 1),
            "cpu_s": round(self.cpu1 - self.cpu0, 4),
            "cpu_us_per_msg": round((self.cpu1 - self.cpu0) * 1e6 / msgs, 2) if msgs else None,
            "rss_kb": self.rss_window_kb,
            "rss_before_kb": self.rss_before_kb,
            "wire_latency": summarize_ns(self.lat),
        }
        out.update(extra)
        return out


def read_init() -> dict[str, Any]:
    """The first stdin line: streams to join and credentials."""
    return json.loads(sys.stdin.readline())


def serve_commands(rec: Recorder, on_command: Any = None, counter: Any = None) -> threading.Thread:
    """A thread applying ``measure`` / ``end`` / ``count`` / ``stop`` from stdin to ``rec`` (and ``on_command``).

    ``count`` answers ``count N``: messages received so far (``on_command`` answers it instead
    when ``counter`` is given), so the orchestrator can wait until everything sent has arrived.
    """

    def run() -> None:
        cmd = ""
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "measure":
                rec.begin()
            elif cmd == "end":
                rec.end()
            if cmd == "count" and counter is None:
                say(f"count {rec.audio_total + rec.transcripts_total}")
            if on_command is not None:
                on_command(cmd)
            if cmd == "stop":
                break
        if cmd != "stop":  # the orchestrator went away: stop as if told to, and leave for sure soon after
            if on_command is not None:
                on_command("stop")
            threading.Timer(10.0, os._exit, (3,)).start()
        rec.stopped.set()

    t = threading.Thread(target=run, name="bench-commands", daemon=True)
    t.start()
    return t


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def finish(report: dict[str, Any]) -> None:
    """Print the report and leave at once (some clients never shut down cleanly: OFFICIAL_CLIENT.md 9b)."""
    try:
        say(json.dumps(report))
    except BrokenPipeError:  # the orchestrator is gone
        os._exit(3)
    os._exit(0)
