"""Contender 1: the gateway (the real ``Gateway`` app, shared-memory publishing) and a consumer process.

The gateway process starts ``gateway.app.Gateway`` with ``publish.shm`` at default ring sizes and
hands it each stream's ``meeting.rtms_started`` webhook body (its own dispatcher, minus HTTP). The
consumer (this module with ``--consumer``), an ML process stand-in using :mod:`gateway.client`,
attaches to every stream. Its latency end point is its wake-up: up to ``PROBES`` threads block
on their stream's futex and, on waking, take the clock and read every new packet's stamp from
the ring. The other streams are read every 0.5 s to count every packet (the rings hold 8 s), so
"nothing lost" covers all of them: packets counted = samples read minus gap samples, / 320.

Two latencies per wake-up: *wire* (simulator send stamp in the payload to the consumer running)
and *inside* (the gateway's receive stamp in the ring, shared-memory contract 1.2, to the
consumer running: frame-in to wake-up, what the gateway and the shared-memory hop add). With
``BENCH_C_PROBES=K`` the consumer also starts K C probes (``benchmarks/wakeup_probe.c``, the
transport without Python's own wake-up cost) on K further streams, pinned to ``BENCH_PROBE_CPU``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path
from typing import Any

from .common import Recorder, cpu_s, finish, pin_from_env, read_init, rss_kb, say, serve_commands, summarize_ns

PROBES = 4
#: the audio engine (reorder window, mix) when BENCH_GATEWAY_ENGINE=1; else the native fast path.
ENGINE = os.environ.get("BENCH_GATEWAY_ENGINE") == "1"
PACKET = 320  # 20 ms of 16 kHz mono
C_PROBES = int(os.environ.get("BENCH_C_PROBES", "0"))
ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------- consumer process


class StreamCounter:
    """Reads one stream's participant rings and event ring; counts samples, optionally stamps.

    Counting is in samples (gap samples excluded), converted to packets at the end, so reads of
    any length add up exactly. Stamps are read at packet starts: ring indices a whole number of
    packets from the ring's start index (packets land at their timestamps).
    """

    def __init__(self, reader: Any, speakers: int) -> None:
        self.reader = reader
        self.speakers = speakers
        self.audio: dict[int, Any] = {}
        self.base: dict[int, int] = {}
        self.events = reader.events()
        self.samples = self.gap_samples = self.transcripts = self.lost = 0

    @property
    def packets(self) -> int:
        return self.samples // PACKET

    def poll(self, lat: array | None, now_ns: int, inside: array | None = None) -> None:
        r = self.reader
        if len(self.audio) < self.speakers:
            for ring in r.participants():
                if ring.user_id and ring.user_id not in self.audio:
                    self.audio[ring.user_id] = r.audio(ring.user_id)
        for uid, a in self.audio.items():
            arr, end, lost, gaps = a.read_since()
            n = len(arr)
            if n == 0:
                continue
            begin = end - n  # index of arr[0]
            gap = sum(g.length for g in gaps)
            self.lost += lost
            self.gap_samples += gap
            self.samples += n - gap
            if inside is not None:
                rx = a.rx_ns(end)  # the gateway's receive time of the frame that made the index `end`
                if rx is not None:
                    inside.append(now_ns - rx)
            if lat is not None:
                base = self.base.setdefault(uid, a.start_index)
                first = begin + (-(begin - base)) % PACKET
                for i in range(first - begin, n - 3, PACKET):
                    stamp = int(arr[i : i + 4].view("<i8")[0])
                    if 0 < now_ns - stamp < 10_000_000_000:
                        lat.append(now_ns - stamp)
        batch, _, lost = self.events.read_since()
        self.lost += lost
        self.transcripts += sum(1 for e in batch if e.get("type") == "transcript")


class CProbes:
    """``BENCH_C_PROBES`` C wake-up probes, each blocked on one stream's first speaker ring."""

    def __init__(self, infos: list[Any], user_id: int) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.error = ""
        cc = shutil.which("cc") or shutil.which("gcc")
        if not infos:
            return
        if cc is None:
            self.error = "no C compiler"
            return
        self._dir = tempfile.TemporaryDirectory(prefix="wakeup-probe-")
        exe = os.path.join(self._dir.name, "wakeup_probe")
        subprocess.run([cc, "-O2", "-std=gnu11", "-I", str(ROOT / "_native" / "include"), str(ROOT / "benchmarks" / "wakeup_probe.c"),
                        "-o", exe], check=True)
        cpu = os.environ.get("BENCH_PROBE_CPU")
        nice = os.environ.get("BENCH_PROBE_NICE")
        for info in infos:
            p = subprocess.Popen([exe, os.path.join(info.shm_dir, info.segment), str(user_id), "2000000"], stdout=subprocess.PIPE, text=True)
            try:
                if cpu:
                    os.sched_setaffinity(p.pid, {int(c) for c in cpu.split(",")})
                if nice:
                    os.setpriority(os.PRIO_PROCESS, p.pid, int(nice))
            except (OSError, ValueError):
                pass
            self.procs.append(p)
        for p in self.procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                self.error = "a probe did not start"

    def collect(self, t0_ns: int, t1_ns: int) -> dict[str, Any]:
        """Stop the probes; latencies of the wake-ups inside ``[t0_ns, t1_ns]``."""
        inside, wire, unstamped = array("q"), array("q"), 0
        for p in self.procs:
            p.send_signal(signal.SIGUSR1)
        for p in self.procs:
            out, _ = p.communicate(timeout=30)
            for line in out.splitlines():
                t, a, b = (int(x) for x in line.split())
                if not t0_ns <= t <= t1_ns:
                    continue
                if a >= 0:
                    inside.append(a)
                else:
                    unstamped += 1
                if b >= 0:
                    wire.append(b)
        return {"probes": len(self.procs), "error": self.error, "unstamped": unstamped,
                "inside_latency": summarize_ns(inside), "wire_latency": summarize_ns(wire)}


def consumer_main(prefix: str, streams: int, speakers: int) -> None:
    from gateway import client
    from gateway.sim.load import USER_ID_BASE

    attached: dict[str, StreamCounter] = {}
    infos: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while len(attached) < streams and time.monotonic() < deadline:
        for info in client.list_streams(prefix):
            if info.stream_id not in attached:
                attached[info.stream_id] = StreamCounter(client.attach(info, prefix), speakers)
                infos[info.stream_id] = info
        time.sleep(0.02)
    counters = list(attached.values())
    c_probes = CProbes(list(infos.values())[PROBES : PROBES + C_PROBES], USER_ID_BASE)
    say("attached")
    measuring = threading.Event()
    done = threading.Event()
    lat, inside = array("q"), array("q")
    lock = threading.Lock()
    probes, rest = counters[:PROBES], counters[PROBES:]

    def probe(sc: StreamCounter) -> None:
        if os.environ.get("BENCH_PROBE_NICE"):
            try:  # this thread only (Linux nice is per thread): the counting thread keeps its priority
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), int(os.environ["BENCH_PROBE_NICE"]))
            except OSError:
                pass
        mine, mine_inside = array("q"), array("q")
        while not done.is_set():
            sc.reader.wait(timeout=0.1)
            now = time.monotonic_ns()
            on = measuring.is_set()
            sc.poll(mine if on else None, now, mine_inside if on else None)
        with lock:
            lat.extend(mine)
            inside.extend(mine_inside)

    threads = [threading.Thread(target=probe, args=(sc,), daemon=True) for sc in probes]
    for t in threads:
        t.start()
    cpu0 = cpu1 = measure_t0 = 0.0
    window_ns = [0, 0]
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "measure":
            cpu0, measure_t0 = cpu_s(), time.monotonic()
            window_ns[0] = time.monotonic_ns()
            measuring.set()
        elif cmd == "end":
            measuring.clear()
            window_ns[1] = time.monotonic_ns()
            cpu1 = cpu_s()
            for sc in rest:
                sc.poll(None, 0)
        elif cmd == "poll" and (not measuring.is_set() or time.monotonic() - measure_t0 > 4.0):
            # Counting the other streams holds the GIL for milliseconds: kept out of the measured
            # window (the rings hold 8 s, so reading them right after it loses nothing).
            for sc in rest:
                sc.poll(None, 0)
        elif cmd == "stop":
            break
    done.set()
    c_result = c_probes.collect(*window_ns)
    for t in threads:
        t.join(timeout=2)
    for sc in counters:
        sc.poll(None, 0)
    finish({
        "streams": len(counters), "probes": len(probes),
        "audio_total": sum(sc.packets for sc in counters),
        "transcripts_total": sum(sc.transcripts for sc in counters),
        "lost_overrun": sum(sc.lost for sc in counters),
        "gap_packets": sum(sc.gap_samples for sc in counters) / PACKET,
        "ring_dropped_packets": sum(a.stats()["dropped_packets"] for sc in counters for a in sc.audio.values()),
        "ring_trimmed_frames": sum(a.stats()["trimmed_frames"] for sc in counters for a in sc.audio.values()),
        "stream_drops": sum(sum(sc.reader.drops().values()) for sc in counters),
        "cpu_s": round(cpu1 - cpu0, 4), "rss_kb": rss_kb(),
        "wire_latency": summarize_ns(lat), "inside_latency": summarize_ns(inside), "c_probe": c_result,
    })


# ---------------------------------------------------------------------- gateway process


def _drop_count(stats: dict[str, Any]) -> int:
    """Every counter whose name says drop (the session's and the sink's), summed."""
    total = 0
    for key, value in stats.items():
        if "drop" in key and isinstance(value, int) and not isinstance(value, bool):
            total += value
        elif "drop" in key and isinstance(value, dict):
            total += sum(v for v in value.values() if isinstance(v, int) and not isinstance(v, bool))
    return total


async def gateway_main() -> dict[str, Any]:
    from gateway import protocol
    from gateway.app import Gateway
    from gateway.config import (
        AudioSettings,
        Credentials,
        GatewayConfig,
        LogConfig,
        PublishConfig,
        Secret,
        ServerConfig,
        SessionsConfig,
    )

    init = read_init()
    streams = init["streams"]
    prefix = f"rtms-bench-{os.getpid()}"
    config = GatewayConfig(
        server=ServerConfig(host="127.0.0.1", port=0),
        credentials=Credentials(init["client_id"], Secret(init["client_secret"]), Secret("bench-webhook-secret")),
        sessions=SessionsConfig(max_streams=len(streams) + 1, media_kinds=("audio", "transcript"),
                                media_params={"audio": {"data_opt": protocol.DataOption.AUDIO_MULTI_STREAMS}}),
        publish=PublishConfig(shm=True, shm_dir="/dev/shm", shm_prefix=prefix),
        audio=AudioSettings(engine=ENGINE),
        log=LogConfig(level="WARNING"),
    ).validate()
    rec = Recorder()
    gw = Gateway(config)
    await gw.start()
    loop = asyncio.get_running_loop()
    consumer = subprocess.Popen(  # noqa: ASYNC220 - its pipes are used from the command thread, synchronously
        [sys.executable, "-m", "benchmarks.contenders.gateway", "--consumer", "--prefix", prefix,
         "--streams", str(len(streams)), "--speakers", str(init.get("speakers", 3))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert consumer.stdin is not None and consumer.stdout is not None

    async def frames_now() -> int:
        return sum(sum(int(v) for v in e.session.stats().get("frames", {}).values()) for e in list(gw.streams.values()))

    window: dict[str, int] = {}

    def forward(cmd: str) -> None:
        if cmd in ("measure", "end"):  # messages the gateway read off its sockets in the window
            window[cmd] = asyncio.run_coroutine_threadsafe(frames_now(), loop).result(5)
        elif cmd == "count":
            say(f"count {asyncio.run_coroutine_threadsafe(frames_now(), loop).result(5)}")
            return
        consumer.stdin.write(cmd + "\n")  # type: ignore[union-attr]
        consumer.stdin.flush()  # type: ignore[union-attr]

    serve_commands(rec, forward, counter=frames_now)
    for s in streams:
        gw.on_webhook(protocol.parse_webhook(s["webhook"]))
    line = await loop.run_in_executor(None, consumer.stdout.readline)
    if line.strip() != "attached":
        raise RuntimeError(f"consumer did not attach: {line!r}")
    say("joined")

    while not await loop.run_in_executor(None, rec.stopped.wait, 0.5):
        forward("poll")  # the consumer counts the non-probe streams every 0.5 s (rings hold 8 s)
    out = await loop.run_in_executor(None, consumer.stdout.read)
    consumer.wait(timeout=10)
    cons = json.loads(out.strip().splitlines()[-1])
    report = rec.report()
    window_msgs = window.get("end", 0) - window.get("measure", 0)
    drops = sum(_drop_count(e.stats()) for e in list(gw.streams.values()))
    await gw.close(request=False)
    return {
        "contender": "gateway_engine" if ENGINE else "gateway", "audio_engine": ENGINE,
        "audio_total": cons["audio_total"], "transcripts_total": cons["transcripts_total"],
        "window_s": report["window_s"], "cpu_s": report["cpu_s"], "rss_kb": report["rss_kb"], "rss_before_kb": report["rss_before_kb"],
        "window_msgs": window_msgs, "msgs_per_s": round(window_msgs / max(1e-9, report["window_s"]), 1),
        "consumer": {k: cons[k] for k in ("cpu_s", "rss_kb", "lost_overrun", "gap_packets", "ring_dropped_packets", "ring_trimmed_frames", "stream_drops", "probes", "streams")},
        "gateway_drops": drops,
        "wire_latency": cons["wire_latency"], "inside_latency": cons["inside_latency"], "c_probe": cons["c_probe"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--consumer", action="store_true")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--speakers", type=int, default=3)
    args = parser.parse_args()
    pin_from_env()
    if args.consumer:
        if os.environ.get("BENCH_CONSUMER_CPU"):
            pin_from_env("BENCH_CONSUMER_CPU")
        consumer_main(args.prefix, args.streams, args.speakers)
        return
    from gateway.app import run_coroutine

    finish(run_coroutine(gateway_main()))


if __name__ == "__main__":
    main()
