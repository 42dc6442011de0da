"""Abusive consumers vs the writer and a healthy consumer (shared memory, one host, bounded).

The writer streams N meetings (one 20 ms 16 kHz L16 packet each per round, rounds 0.3-1.3 ms
apart, so a blocking consumer is asleep at each write); a healthy consumer in another process
(bench_shm's blocking Python reader) follows meeting 0's mixed ring and reports its wake-up
latency (writer's CLOCK_MONOTONIC stamp -> consumer's clock after ``wait()`` returns). Four
conditions, each on fresh streams, with the abusers on the healthy consumer's ring:

* ``a_healthy``: the healthy consumer only.
* ``b_slow``: plus a consumer that sleeps 50 ms after each read, so it is lapped (the ring holds
  0.5 s at 16 kHz) and sees overrun; its lost + read frames must equal what was written since it
  attached (exact), and the writer never waits for it.
* ``c_stuck``: plus a consumer SIGSTOPped while asleep in FUTEX_WAIT, resumed at the end.
* ``d_killed``: plus consumers spawned and SIGKILLed one after another (each lives 50-200 ms, reading
  and blocking), by a separate process so that spawning costs the writer nothing directly.

Writer cost: the time of each write call (reserve + copy + commit + any FUTEX_WAKE), mean over
all packets and p50/p99 on the abused ring. ``bulk``: after the healthy consumer has finished,
20,000 back-to-back commits on the abused ring and on a clean ring of the same stream: the
difference is the cost of the waiter counts left standing (the stuck consumer's, and the leak of
each consumer killed while asleep, docs/SHM.md 6): one FUTEX_WAKE per commit.

    python benchmarks/bench_consumers.py --json [--streams 8] [--samples 3000] [--rounds 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import select
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_shm import SPP_BYTES, T0, _pct, _start_reader, _summary_us  # noqa: E402
from gateway import client  # noqa: E402

SELF = str(Path(__file__).resolve())
RING_SECONDS = 0.5  # 8,192 frames: 50 ms of sleep at ~400 frames/ms laps it
SLOW_SLEEP_S = 0.05
BULK = 20_000
CONDITIONS = ("a_healthy", "b_slow", "c_stuck", "d_killed")


# --------------------------------------------------------------------------- consumer processes

def slow_main(prefix: str, stream_id: str) -> None:
    """Read, sleep 50 ms, repeat until the end; report the exact accounting."""
    s = client.attach(stream_id, prefix=prefix)
    r = s.mixed()
    start = r.seek_latest()
    frames = lost = reads = overruns = 0
    print("ready", flush=True)
    for _ in range(1_000_000):
        ended = s.ended
        arr, _cursor, n_lost, _ = r.read_since()
        n = len(arr)
        del arr
        frames += n
        lost += n_lost
        reads += 1
        overruns += n_lost > 0
        if ended and n == 0:
            break
        time.sleep(SLOW_SLEEP_S)
    s.close()
    print(json.dumps({"start": start, "cursor": r.cursor, "frames": frames, "lost": lost, "reads": reads,
                      "overruns": overruns}), flush=True)


def sleeper_main(prefix: str, stream_id: str) -> None:
    """Block in the ring's futex until the end (stopped, or killed, meanwhile)."""
    s = client.attach(stream_id, prefix=prefix)
    r = s.mixed()
    r.seek_latest()
    print("ready", flush=True)
    for _ in range(100_000):
        if s.ended:
            break
        r.wait(timeout=1.0)
        arr, *_ = r.read_since()
        del arr
    s.close()


def killer_main(prefix: str, stream_id: str) -> None:
    """Spawn a reading/blocking consumer, SIGKILL it 50-200 ms later, again, until stdin says stop."""
    rng = random.Random(2)
    kills = 0
    print("ready", flush=True)
    for _ in range(10_000):
        victim = subprocess.Popen([sys.executable, SELF, "--role", "sleeper", prefix, stream_id],
                                  stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
        assert victim.stdout is not None
        victim.stdout.readline()
        stop = bool(select.select([sys.stdin], [], [], rng.uniform(0.05, 0.2))[0])
        victim.kill()
        victim.wait()
        kills += 1
        if stop:
            break
    print(json.dumps({"kills": kills}), flush=True)


def _spawn(role: str, prefix: str, stream_id: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, SELF, "--role", role, prefix, stream_id], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"{role} consumer failed to start: {line!r}")
    return proc


# --------------------------------------------------------------------------- writer side

def run_condition(cond: str, prefix: str, streams: int, samples: int) -> dict[str, Any]:
    from gateway import _native
    from gateway.protocol import AudioParams
    from gateway.shm import ShmConfig, ShmDirectory, ShmPublisher

    rng = random.Random(1)
    cfg = ShmConfig(prefix=prefix, audio_seconds=RING_SECONDS)
    out: dict[str, Any] = {}
    with ShmDirectory(cfg) as d:
        sid = f"bench-{cond}"
        pubs = [ShmPublisher(sid if k == 0 else f"{sid}-{k}", d, config=cfg, audio=AudioParams()) for k in range(streams)]
        buf = bytearray(SPP_BYTES)
        bg = bytes(SPP_BYTES)
        for p in pubs:
            _native._test_write_audio(p, 0, T0, bg)
            _native._test_write_audio(p, 1, T0, bg)  # a clean ring (user 1) for the bulk comparison
        view = client.attach(sid, prefix=prefix)
        ring = view.mixed()
        waiters_off = ring._r + client.PCM["waiters"]
        abusers: dict[str, subprocess.Popen[str]] = {}
        if cond == "c_stuck":  # asleep before anyone else waits, so the count we see is its own
            abusers["stuck"] = _spawn("sleeper", prefix, sid)
            for _ in range(4000):
                if view._m.u32_at(waiters_off) >= 1:
                    break
                time.sleep(0.002)
            os.kill(abusers["stuck"].pid, signal.SIGSTOP)
        elif cond == "b_slow":
            abusers["slow"] = _spawn("slow", prefix, sid)
        elif cond == "d_killed":
            abusers["killer"] = _spawn("killer", prefix, sid)
        healthy = _start_reader("futex", prefix, sid, samples, pubs[0].segment)
        time.sleep(0.2)
        per_packet: list[int] = []
        cpu_per_packet: list[int] = []
        abused: list[int] = []
        refused = 0
        ts = T0
        clock, cpu = time.perf_counter_ns, time.thread_time_ns
        gc.disable()
        ru0 = resource.getrusage(resource.RUSAGE_THREAD)
        try:
            for _ in range(samples + 50):
                ts += 20
                deadline = time.monotonic_ns() + rng.randint(300_000, 1_300_000)
                while time.monotonic_ns() < deadline:
                    pass
                struct.pack_into("<q", buf, 0, time.monotonic_ns())
                c = cpu()
                t = clock()
                refused += not _native._test_write_audio(pubs[0], 0, ts, bytes(buf))
                dt0 = clock() - t
                for p in pubs[1:]:
                    refused += not _native._test_write_audio(p, 0, ts, bg)
                total = clock() - t
                cpu_per_packet.append((cpu() - c) // streams)
                abused.append(dt0)
                per_packet.append(total // streams)
                if healthy.poll() is not None:
                    break
            ru1 = resource.getrusage(resource.RUSAGE_THREAD)
            for _ in range(5000):  # the healthy consumer may still want a few samples: keep feeding it
                if healthy.poll() is not None:
                    break
                ts += 20
                struct.pack_into("<q", buf, 0, time.monotonic_ns())
                _native._test_write_audio(pubs[0], 0, ts, bytes(buf))
                time.sleep(0.001)
        finally:
            gc.enable()
        lat = json.loads(healthy.communicate(timeout=60)[0].strip().splitlines()[-1])
        if cond == "d_killed":  # stop killing first, so the waiter count below is settled
            kills = json.loads(abusers["killer"].communicate("stop\n", timeout=60)[0].strip().splitlines()[-1])
            out["killed"] = {**kills, "leaked_waiters": view._m.u32_at(waiters_off)}
        waiters = view._m.u32_at(waiters_off)
        payload = bytes(SPP_BYTES)
        gc.disable()
        try:
            abused_ns = min(_native._bench_write(pubs[0], 0, 0, ts + 20 + 20 * BULK * k, 20, payload, BULK) for k in range(3))
            clean_ns = min(_native._bench_write(pubs[0], 0, 1, ts + 20 + 20 * BULK * k, 20, payload, BULK) for k in range(3))
        finally:
            gc.enable()
        final_index = ring.write_index
        if cond == "c_stuck":
            os.kill(abusers["stuck"].pid, signal.SIGCONT)
        view.close()
        for p in pubs:
            p.close()
        if cond == "b_slow":
            got = json.loads(abusers["slow"].communicate(timeout=60)[0].strip().splitlines()[-1])
            got["written_since_attach"] = final_index - got["start"]
            got["exact"] = got["cursor"] == final_index and got["frames"] + got["lost"] == got["written_since_attach"]
            out["slow"] = got
        if cond == "c_stuck":
            abusers["stuck"].communicate(timeout=60)
            out["stuck"] = {"waiters_while_stopped": waiters, "exit_code_after_resume": abusers["stuck"].returncode}
    out.update({
        "writer": {"ns_per_packet_mean": round(sum(per_packet) / len(per_packet), 1),
                   "cpu_ns_per_packet_mean": round(sum(cpu_per_packet) / len(cpu_per_packet), 1),
                   # in the write loop (busy-waiting, no sleep): voluntary = the writer blocked (must
                   # stay ~0), involuntary = preempted by other processes on the CPUs
                   "voluntary_ctx_switches": ru1.ru_nvcsw - ru0.ru_nvcsw,
                   "involuntary_ctx_switches": ru1.ru_nivcsw - ru0.ru_nivcsw,
                   "abused_ring_write_ns": {"p50": _pct(abused, 0.5), "p99": _pct(abused, 0.99), "max": max(abused)},
                   "refused": refused},
        "bulk": {"waiters": waiters, "abused_ring_ns_per_commit": round(abused_ns / BULK, 1),
                 "clean_ring_ns_per_commit": round(clean_ns / BULK, 1)},
        "healthy_wake_us": _summary_us(lat[10:]),
    })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--samples", type=int, default=3000, help="healthy-consumer wake-ups per condition")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the four conditions, interleaved")
    ap.add_argument("--out", help="also write the JSON result to this file")
    ap.add_argument("--role", nargs=3, metavar=("ROLE", "PREFIX", "STREAM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        role, prefix, stream_id = args.role
        {"slow": slow_main, "sleeper": sleeper_main, "killer": killer_main}[role](prefix, stream_id)
        return
    prefix = f"rtms-bcons-{os.getpid()}"
    # Rounds interleave the conditions (a b c d a b c d ...), so drifting background load on the
    # host hits them alike; the summary takes the median over rounds.
    rounds = [{c: run_condition(c, prefix, args.streams, args.samples) for c in CONDITIONS} for _ in range(args.rounds)]
    metrics = {"writer_ns_per_packet": ("writer", "ns_per_packet_mean"),
               "writer_cpu_ns_per_packet": ("writer", "cpu_ns_per_packet_mean"),
               "abused_ring_write_p99_ns": ("writer", "abused_ring_write_ns", "p99"),
               "healthy_wake_p50_us": ("healthy_wake_us", "p50"),
               "healthy_wake_p99_us": ("healthy_wake_us", "p99"),
               "bulk_abused_ring_ns_per_commit": ("bulk", "abused_ring_ns_per_commit"),
               "bulk_clean_ring_ns_per_commit": ("bulk", "clean_ring_ns_per_commit")}

    def get(d: dict[str, Any], path: tuple[str, ...]) -> float:
        for k in path:
            d = d[k]
        return float(d)  # type: ignore[arg-type]

    summary: dict[str, dict[str, Any]] = {}
    for c in CONDITIONS:
        summary[c] = {m: round(statistics.median(get(r[c], path) for r in rounds), 2) for m, path in metrics.items()}
        summary[c]["waiters_at_bulk"] = [r[c]["bulk"]["waiters"] for r in rounds]
        summary[c]["writer_voluntary_ctx_switches"] = sum(r[c]["writer"]["voluntary_ctx_switches"] for r in rounds)
        summary[c]["writes_refused"] = sum(r[c]["writer"]["refused"] for r in rounds)
    summary["b_slow"]["slow"] = [r["b_slow"]["slow"] for r in rounds]
    summary["d_killed"]["killed"] = [r["d_killed"]["killed"] for r in rounds]
    ratios = {c: {m: round(statistics.median(get(r[c], path) / get(r["a_healthy"], path) for r in rounds), 2)
                  for m, path in metrics.items() if not m.startswith("bulk")} for c in CONDITIONS[1:]}
    result = {"benchmark": "consumers",
              "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                       "kernel": platform.release(), "loadavg_1m": round(os.getloadavg()[0], 2)},
              "streams": args.streams, "samples": args.samples, "rounds_run": args.rounds, "ring_frames": 8192,
              "summary": summary, "ratios_to_a": ratios, "rounds": rounds}
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    if not args.json:
        for c in CONDITIONS:
            print(c, json.dumps({k: v for k, v in summary[c].items() if k not in ("slow", "killed")}), file=sys.stderr)
            print("  ratios to a:", json.dumps(ratios.get(c, {})), file=sys.stderr)


if __name__ == "__main__":
    main()
