"""``gateway bench``: the end-to-end comparison, side by side with Zoom's SDK and the obvious alternatives.

One process plays Zoom (the simulator in load mode, pinned to one core); each contender runs in
its own process pinned to another core and joins the same N meetings x M speakers (multi-stream
16 kHz L16 audio plus transcripts), meetings staggered across the 20 ms tick in 1 ms groups. The
simulator stamps ``time.monotonic_ns()`` into the first 8 bytes of every PCM payload just before
the write (OFFICIAL_CLIENT.md section 6); each contender subtracts it when its code wakes up with
the message (the gateway: when the consumer process wakes on shared memory).

Contenders (``benchmarks/contenders/``): ``gateway`` (the app + a shared-memory consumer process),
``sdk`` (Zoom's ``rtms`` with an EventLoopPool, poll 1 ms), ``asyncio`` (websockets + json +
base64 into numpy), ``picows`` (a bare receive loop, the ceiling).

Runs: a flat-out probe (messages/s a contender can take), a real-time sweep over meeting counts,
and a capacity search (largest real-time meeting count with nothing lost and wire p99 < 1 ms).
Prints a table (ratios to the gateway) and writes JSON; exits 1 if the gateway lost a frame in a
run that was within its capacity (the table and sweep runs).

    gateway bench                          # the whole comparison (about 10 minutes on 2 cores)
    gateway bench --quick                  # a short version (the CI smoke test)
    python benchmarks/bench_e2e.py --json benchmarks/results/e2e.json --plot benchmarks/results/e2e.png
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picows import WSMsgType

from . import protocol
from .protocol import AudioParams, MsgType
from .sim.load import USER_ID_BASE, FrameBank, LoadDriver

CONTENDERS = ("gateway", "gateway_engine", "sdk", "asyncio", "picows")
MODULES = {
    "gateway": "benchmarks.contenders.gateway",
    "gateway_engine": "benchmarks.contenders.gateway",
    "sdk": "benchmarks.contenders.official_sdk",
    "asyncio": "benchmarks.contenders.asyncio_ws",
    "picows": "benchmarks.contenders.picows_bare",
}
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
ROOT = Path(__file__).resolve().parents[1]
TRANSCRIPT_EVERY = 25  # audio intervals (0.5 s at 20 ms) between transcript messages, per meeting
P99_LIMIT_US = 1000.0


# ---------------------------------------------------------------------- simulator side


class StampedLoad(LoadDriver):
    """Load mode whose audio carries the send time in its first 8 PCM bytes, plus transcripts.

    The stamp is patched into the pre-built frame's base64 in place (12 characters encode the
    first 9 bytes: the 8-byte stamp and the payload's own 9th byte), so the hot path still never
    builds JSON. Every ``TRANSCRIPT_EVERY`` intervals a meeting also sends one transcript message.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transcripts_sent = 0
        self._data_offsets: dict[int, list[list[tuple[int, bytes]]]] = {}

    def _offsets(self, bank: FrameBank) -> list[list[tuple[int, bytes]]]:
        got = self._data_offsets.get(id(bank))
        if got is None:
            got = []
            for row in bank.frames:
                cells = []
                for tpl in row:
                    at = bytes(tpl.buf).index(b'"data":"') + 8
                    ninth = binascii.a2b_base64(bytes(tpl.buf[at : at + 12]))[8:9]
                    cells.append((at, ninth))
                got.append(cells)
            self._data_offsets[id(bank)] = got
        return got

    def _send_intervals(self, stream: Any, conn: Any, n: int) -> None:
        params: AudioParams = stream.params.audio
        bank = self.bank(params)
        offsets = self._offsets(bank)
        rate = params.send_rate
        cursor = stream._cursor["audio"]
        send = conn.transport.send
        text = WSMsgType.TEXT
        base = stream.started_ms
        frames = bank.frames
        variants = len(frames[0])
        b2a = binascii.b2a_base64
        clock = time.monotonic_ns
        sent = nbytes = 0
        for _ in range(n):
            ts = b"%d" % (base + cursor)
            j = (cursor // rate) % variants
            for row, cells in zip(frames, offsets, strict=True):
                tpl = row[j]
                buf = tpl.buf
                buf[tpl.ts_offset : tpl.ts_offset + 13] = ts
                at, ninth = cells[j]
                buf[at : at + 12] = b2a(clock().to_bytes(8, "little", signed=True) + ninth, newline=False)
                send(text, buf)
                sent += 1
                nbytes += len(buf)
            if (cursor // rate) % TRANSCRIPT_EVERY == 0:
                self._send_transcript(stream, base + cursor)
            cursor += rate
        stream._cursor["audio"] = cursor
        stream._count("audio", sent)
        self.frames_sent += sent
        self.bytes_sent += nbytes

    def _send_transcript(self, stream: Any, ts: int) -> None:
        conn = stream.media.get("transcript")
        if conn is None or not conn.ready or not conn.alive or conn.transport is None:
            return
        msg = protocol.build_media(MsgType.MEDIA_DATA_TRANSCRIPT, data="benchmark transcript segment", timestamp=ts, user_id=USER_ID_BASE,
                                   user_name="Load Speaker 1", start_time=ts - 500, end_time=ts,
                                   language=int(protocol.TranscriptLanguage.ENGLISH))
        conn.transport.send(WSMsgType.TEXT, protocol.encode(msg))
        stream._count("transcript")
        self.transcripts_sent += 1


# ---------------------------------------------------------------------- one probe


@dataclass
class Probe:
    """One contender against one meeting count: what the simulator sent and what arrived."""

    contender: str
    meetings: int
    speakers: int
    pace: str
    ok: bool = False
    error: str = ""
    sent_audio: int = 0
    sent_transcripts: int = 0
    window_sent: int = 0
    expected_window: int = 0
    sim_cpu_s: float = 0.0
    join_s: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def received(self) -> int:
        return int(self.report.get("audio_total", 0)) + int(self.report.get("transcripts_total", 0))

    @property
    def lost(self) -> int:
        return max(0, self.sent_audio + self.sent_transcripts - self.received) if self.ok else -1

    @property
    def sim_bound(self) -> bool:
        """The simulator itself could not send at the asked pace (real time only)."""
        return self.pace == "realtime" and self.expected_window > 0 and self.window_sent < 0.97 * self.expected_window

    def figures(self) -> dict[str, Any]:
        r = self.report
        window_s = float(r.get("window_s") or 0) or 1e-9
        lat = r.get("wire_latency") or {}
        msgs_per_s = r.get("msgs_per_s")
        if msgs_per_s is None:  # gateway: counted by the consumer over the whole run; the window's rate is the sender's
            msgs_per_s = round(self.window_sent / window_s, 1) if self.lost == 0 else None
        window_msgs = (msgs_per_s or 0) * window_s
        cpu = float(r.get("cpu_s") or 0)
        rss_kb = int(r.get("rss_kb") or 0)
        out = {
            "contender": self.contender, "meetings": self.meetings, "speakers": self.speakers, "pace": self.pace,
            "ok": self.ok, "error": self.error,
            "msgs_per_s": msgs_per_s,
            "cpu_us_per_msg": round(cpu * 1e6 / window_msgs, 2) if window_msgs else None,
            "cpu_core_fraction": round(cpu / window_s, 3),
            "p50_us": lat.get("p50_us"), "p99_us": lat.get("p99_us"), "p999_us": lat.get("p999_us"), "latency_n": lat.get("n"),
            "rss_mib": round(rss_kb / 1024, 1),
            "rss_mib_per_meeting": round(max(0, rss_kb - int(r.get("rss_before_kb") or 0)) / 1024 / self.meetings, 3) if self.meetings else None,
            "lost": self.lost,
            "sent": self.sent_audio + self.sent_transcripts,
            "sim_bound": self.sim_bound,
            "join_s": round(self.join_s, 2),
        }
        if "consumer" in r:
            c = r["consumer"]
            out["consumer_cpu_us_per_msg"] = round(float(c.get("cpu_s", 0)) * 1e6 / window_msgs, 2) if window_msgs else None
            out["consumer_rss_mib"] = round(int(c.get("rss_kb", 0)) / 1024, 1)
            out["gateway_drops"] = r.get("gateway_drops")
            out["consumer"] = c
            out["received"] = {"audio": r.get("audio_total"), "transcripts": r.get("transcripts_total")}
            out["sent_split"] = {"audio": self.sent_audio, "transcripts": self.sent_transcripts}
            inside = r.get("inside_latency") or {}
            out["inside_p50_us"], out["inside_p99_us"] = inside.get("p50_us"), inside.get("p99_us")
            out["inside_latency"] = inside  # gateway receive stamp -> Python consumer awake
            if (r.get("c_probe") or {}).get("probes"):
                out["c_probe"] = r["c_probe"]  # the same from C consumers (benchmarks/wakeup_probe.c)
        return out

    def passes(self) -> bool:
        """Real time with nothing lost, every message accounted for, and wire p99 under 1 ms."""
        f = self.figures()
        return bool(self.ok and self.lost == 0 and not self.sim_bound and f["p99_us"] is not None and (f["latency_n"] or 0) > 0 and f["p99_us"] < P99_LIMIT_US)


def _allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


#: the cores this process may use, read once: the first probe pins this process to one of them.
ALLOWED_CPUS = _allowed_cpus()


def _cpus() -> tuple[str | None, str | None]:
    """(simulator core, contender core) when the machine has two, else no pinning."""
    cpus = ALLOWED_CPUS
    if len(cpus) < 2:
        return None, None
    return str(cpus[0]), str(cpus[1])


class Progress:
    """One status line on stderr, rewritten in place on a terminal."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


async def _expect(proc: asyncio.subprocess.Process, limit_s: float, want: str) -> str:
    """The next stdout line starting with ``want``; other lines (a client library's chatter) are skipped."""
    assert proc.stdout is not None
    deadline = time.monotonic() + limit_s
    while True:
        raw = await asyncio.wait_for(proc.stdout.readline(), max(0.01, deadline - time.monotonic()))
        if not raw:
            raise RuntimeError(f"contender exited (status {await proc.wait()}) before {want!r}")
        line = raw.decode(errors="replace").strip()
        if line.startswith(want):
            return line


async def run_probe(contender: str, meetings: int, *, speakers: int = 3, seconds: float = 3.0, warmup_s: float = 1.0,
                    pace: str = "realtime", progress: Progress | None = None, on_window_end: Any = None) -> Probe:
    """Start a simulator here and the contender in a child process; measure one window.

    ``on_window_end()``, if given, runs right after the measured window (before the drain).
    """
    from .sim.server import SimConfig, Simulator

    probe = Probe(contender, meetings, speakers, pace)
    sim_cpu, cont_cpu = _cpus()
    if sim_cpu is not None:
        os.sched_setaffinity(0, {int(sim_cpu)})
    cfg = SimConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, participants=speakers, record_payloads=False)
    proc: asyncio.subprocess.Process | None = None
    scratch = tempfile.TemporaryDirectory(prefix="gateway-bench-")  # the SDK tries to write logs/ in its cwd
    workdir = scratch.name
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    label = f"[{contender} x{meetings} {pace}]"
    try:
        async with Simulator(cfg) as sim:
            driver = StampedLoad(sim, pace=pace, speakers=speakers, slots=20)
            sim.load_driver = driver
            streams = [sim.create_stream(webhook=False, load=True) for _ in range(meetings)]
            init = {
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "speakers": speakers,
                "streams": [{"payload": sim.join_payload(s), "webhook": s.webhook_body(protocol.WebhookKind.STARTED)} for s in streams],
            }
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
            if cont_cpu is not None:
                env["BENCH_CPU"] = cont_cpu
            env["BENCH_GATEWAY_ENGINE"] = "1" if contender == "gateway_engine" else "0"
            t_join = time.monotonic()
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", MODULES[contender], cwd=workdir, env=env,
                                                        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26)
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(init) + "\n").encode())
            await proc.stdin.drain()
            join_limit = 60.0 + 0.1 * meetings
            await _expect(proc, join_limit, "joined")
            deadline = time.monotonic() + join_limit
            while time.monotonic() < deadline:  # every stream's audio (and transcript) socket ready
                if all(_ready(s) for s in streams):
                    break
                if progress:
                    progress.show(f"{label} joining: {sum(_ready(s) for s in streams)}/{meetings} streams ready")
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"only {sum(_ready(s) for s in streams)} of {meetings} streams became ready")
            probe.join_s = time.monotonic() - t_join
            await asyncio.sleep(warmup_s)

            async def command(cmd: str) -> None:
                assert proc is not None and proc.stdin is not None
                proc.stdin.write((cmd + "\n").encode())
                await proc.stdin.drain()

            sent0 = driver.frames_sent + driver.transcripts_sent
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            await command("measure")
            t0 = time.monotonic()
            while (left := t0 + seconds - time.monotonic()) > 0:
                if progress:
                    rate = (driver.frames_sent + driver.transcripts_sent - sent0) / max(1e-3, time.monotonic() - t0)
                    progress.show(f"{label} measuring {seconds - left:4.1f}/{seconds:.1f} s, simulator sending {rate:,.0f} msgs/s")
                await asyncio.sleep(min(0.5, left))
            await command("end")
            if on_window_end is not None:
                on_window_end()
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            probe.window_sent = driver.frames_sent + driver.transcripts_sent - sent0
            probe.expected_window = int(meetings * (speakers * 50 + 50 / TRANSCRIPT_EVERY) * (time.monotonic() - t0))
            probe.sim_cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            driver.stop()
            drain_until = time.monotonic() + 2.0
            while time.monotonic() < drain_until:  # let every socket's write buffer empty
                if all(_drained(s) for s in streams):
                    break
                await asyncio.sleep(0.05)
            probe.sent_audio, probe.sent_transcripts = driver.frames_sent, driver.transcripts_sent
            await _wait_delivered(proc, probe.sent_audio + probe.sent_transcripts, command)
            if contender.startswith("gateway"):
                await asyncio.sleep(0.3)  # the engine publishes its reorder window after 100 ms idle
            await command("stop")
            probe.report = json.loads(await _expect(proc, 30.0, "{"))
            probe.ok = True
            await asyncio.wait_for(proc.wait(), 10)
    except Exception as exc:  # a contender that crashes or cannot keep up is a result, not a bench failure
        probe.error = f"{type(exc).__name__}: {exc}"
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        scratch.cleanup()
    if progress:
        f = probe.figures()
        progress.show(f"{label} {'ok' if probe.ok else 'FAILED ' + probe.error}: {f['msgs_per_s']} msgs/s, p99 {f['p99_us']} us, lost {f['lost']}")
    return probe


async def _wait_delivered(proc: asyncio.subprocess.Process, sent: int, command: Any, limit_s: float = 10.0) -> None:
    """Until the contender has received everything sent, or its count stops moving for 1.5 s."""
    deadline = time.monotonic() + limit_s
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        await command("count")
        got = int((await _expect(proc, 5.0, "count ")).split()[1])
        if got >= sent:
            return
        if got != last:
            last, still_since = got, time.monotonic()
        elif time.monotonic() - still_since > 1.5:
            return
        await asyncio.sleep(0.1)


def _ready(stream: Any) -> bool:
    conns = [stream.media.get(k) for k in ("audio", "transcript")]
    return all(c is not None and c.ready and c.alive for c in conns)


def _drained(stream: Any) -> bool:
    conn = stream.media.get("audio")
    if conn is None or conn.transport is None:
        return True
    return conn.transport.underlying_transport.get_write_buffer_size() == 0


# ---------------------------------------------------------------------- the comparison


@dataclass
class Plan:
    contenders: tuple[str, ...] = CONTENDERS
    speakers: int = 3
    seconds: float = 3.0
    warmup_s: float = 1.0
    table_meetings: int = 50
    sweep: tuple[int, ...] = (10, 50, 200, 500)
    flat_out_meetings: int = 20
    capacity: bool = True
    capacity_start: int = 16
    capacity_max: int = 1024
    capacity_probes: int = 8


def quick_plan(contenders: tuple[str, ...] = CONTENDERS) -> Plan:
    return Plan(contenders=contenders, seconds=1.0, warmup_s=0.5, table_meetings=4, sweep=(4,), flat_out_meetings=0, capacity=False)


async def capacity_search(contender: str, plan: Plan, progress: Progress) -> dict[str, Any]:
    """Largest meeting count that passes: doubling from ``capacity_start`` (halving on failure), then bisecting."""
    tried: list[dict[str, Any]] = []

    async def passes(n: int) -> bool:
        """One probe; one that fails on latency alone is repeated once (a shared machine's hiccup)."""
        for attempt in range(2):
            p = await run_probe(contender, n, speakers=plan.speakers, seconds=plan.seconds, warmup_s=plan.warmup_s, progress=progress)
            f = p.figures()
            f["passed"] = p.passes()
            f["attempt"] = attempt + 1
            tried.append(f)
            if f["passed"] or not p.ok or p.lost != 0 or p.sim_bound or attempt == 1:
                return bool(f["passed"])
        return False

    good, bad = 0, None
    n = plan.capacity_start
    while len({t["meetings"] for t in tried}) < plan.capacity_probes:
        if await passes(n):
            good = n
            if n >= plan.capacity_max:
                break
            if bad is None:
                n = min(plan.capacity_max, n * 2)
                continue
        else:
            bad = n
            if tried[-1]["sim_bound"]:  # the simulator, not the contender, ran out: stop here, report a lower bound
                break
            if good == 0:
                if n == 1:
                    break
                n = max(1, n // 2)
                continue
        if bad is not None and bad - good <= max(1, good // 8):
            break
        n = (good + bad) // 2 if bad is not None else n
    sim_bound = any(t["sim_bound"] for t in tried)
    return {"contender": contender, "meetings": good, "lower_bound_only": sim_bound or good >= plan.capacity_max, "probes": tried}


async def compare(plan: Plan, progress: Progress) -> dict[str, Any]:
    started = time.monotonic()
    out: dict[str, Any] = {"flat_out": {}, "sweep": {c: [] for c in plan.contenders}, "capacity": {}}
    if plan.flat_out_meetings:
        for c in plan.contenders:
            p = await run_probe(c, plan.flat_out_meetings, speakers=plan.speakers, seconds=plan.seconds, warmup_s=plan.warmup_s, pace="max", progress=progress)
            out["flat_out"][c] = p.figures()
    counts = sorted(set(plan.sweep) | {plan.table_meetings})
    failed: set[str] = set()
    for n in counts:
        for c in plan.contenders:
            if c in failed:
                out["sweep"][c].append({"contender": c, "meetings": n, "skipped": "failed at a smaller meeting count"})
                continue
            p = await run_probe(c, n, speakers=plan.speakers, seconds=plan.seconds, warmup_s=plan.warmup_s, progress=progress)
            f = p.figures()
            f["passed"] = p.passes()
            out["sweep"][c].append(f)
            if not p.ok or p.lost != 0:
                failed.add(c)
    if plan.capacity:
        for c in plan.contenders:
            out["capacity"][c] = await capacity_search(c, plan, progress)
    out["table"] = [next((f for f in out["sweep"][c] if f.get("meetings") == plan.table_meetings), {"contender": c}) for c in plan.contenders]
    out["wall_s"] = round(time.monotonic() - started, 1)
    return out


# ---------------------------------------------------------------------- reporting


def environment() -> dict[str, Any]:
    from importlib import metadata

    versions = {}
    for dist in ("rtms-gateway", "rtms", "picows", "websockets", "numpy", "uvloop"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    return {"python": platform.python_version(), "machine": platform.machine(), "cpu": cpu, "cores": os.cpu_count(),
            "kernel": platform.release(), "versions": versions, "pinning": dict(zip(("simulator", "contender"), _cpus(), strict=True))}


def _fmt(v: Any, spec: str = ",.0f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return format(v, spec)
    return str(v)


def _ratio(v: Any, g: Any, invert: bool = False) -> str:
    if not isinstance(v, (int, float)) or not isinstance(g, (int, float)) or not v or not g:
        return "-"
    return f"{(g / v if invert else v / g):.2f}x"


def render(result: dict[str, Any]) -> str:
    """Markdown tables: the same-run comparison (ratios to the gateway), flat out, capacity."""
    lines = []
    table = result.get("table") or []
    g = next((r for r in table if r.get("contender") == "gateway"), {})
    if table:
        n = table[0].get("meetings", "?")
        lines += [f"Real time, {n} meetings x {result['plan']['speakers']} speakers + transcripts (same run):", "",
                  "| contender | msgs/s | CPU us/msg | x gateway CPU | wire p50 us | p99 us | p99.9 us | x gateway p99 | RSS MiB/meeting | lost |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in table:
            lines.append(f"| {r.get('contender')} | {_fmt(r.get('msgs_per_s'))} | {_fmt(r.get('cpu_us_per_msg'), '.1f')} | {_ratio(r.get('cpu_us_per_msg'), g.get('cpu_us_per_msg'))} "
                         f"| {_fmt(r.get('p50_us'), '.0f')} | {_fmt(r.get('p99_us'), '.0f')} | {_fmt(r.get('p999_us'), '.0f')} | {_ratio(r.get('p99_us'), g.get('p99_us'))} "
                         f"| {_fmt(r.get('rss_mib_per_meeting'), '.2f')} | {_fmt(r.get('lost'))}{' (' + r['error'] + ')' if r.get('error') else ''} |")
        if g.get("consumer_rss_mib") is not None:
            lines.append(f"\nGateway CPU is the gateway process alone; its consumer (a separate process on the same core, reading "
                         f"{g.get('consumer', {}).get('probes')} probe streams during the window and the rest after it) used {g.get('consumer_rss_mib')} MiB.")
    flat = result.get("flat_out") or {}
    if flat:
        gf = flat.get("gateway", {})
        lines += ["", "Flat out (as fast as the sockets drain), messages per second the contender took:", "",
                  "| contender | msgs/s | x gateway | CPU us/msg | x gateway CPU | in flight at stop (not judged) |", "|---|---:|---:|---:|---:|---:|"]
        for c, r in flat.items():
            lines.append(f"| {c} | {_fmt(r.get('msgs_per_s'))} | {_ratio(r.get('msgs_per_s'), gf.get('msgs_per_s'))} | {_fmt(r.get('cpu_us_per_msg'), '.1f')} "
                         f"| {_ratio(r.get('cpu_us_per_msg'), gf.get('cpu_us_per_msg'))} | {_fmt(r.get('lost'))} |")
    cap = result.get("capacity") or {}
    if cap:
        gc = cap.get("gateway", {})
        lines += ["", f"Capacity on one core ({result['plan']['speakers']} speakers + transcript, real time, nothing lost, wire p99 < 1 ms):", "",
                  "| contender | meetings | x gateway | probes |", "|---|---:|---:|---:|"]
        for c, r in cap.items():
            bound = " (lower bound: simulator-bound)" if r.get("lower_bound_only") else ""
            lines.append(f"| {c} | {r['meetings']}{bound} | {_ratio(r['meetings'], gc.get('meetings'))} | {len(r['probes'])} |")
    lines.append(f"\nWall time: {result.get('wall_s')} s.")
    return "\n".join(lines)


def gateway_lost(result: dict[str, Any]) -> list[str]:
    """Runs where the gateway lost frames: any sweep run of the native path, and the comparison-table
    run of every gateway configuration (the audio engine's sweep may go past its one-core capacity,
    which is reported, not failed; capacity probes overload on purpose)."""
    bad = []
    table_n = result.get("plan", {}).get("table_meetings")
    for name in ("gateway", "gateway_engine"):
        for f in result.get("sweep", {}).get(name, []):
            if "skipped" in f or (name != "gateway" and f.get("meetings") != table_n):
                continue
            if not f.get("ok") or f.get("lost") != 0:
                bad.append(f"{name} at {f.get('meetings')} meetings: lost {f.get('lost')} {f.get('error') or ''}".strip())
    return bad


def over_capacity(result: dict[str, Any]) -> list[str]:
    """Sweep runs of the audio-engine configuration that lost frames beyond the comparison's size."""
    table_n = result.get("plan", {}).get("table_meetings")
    return [f"gateway_engine at {f['meetings']} meetings lost {f.get('lost')} (over its one-core capacity)"
            for f in result.get("sweep", {}).get("gateway_engine", [])
            if "skipped" not in f and f.get("meetings") != table_n and f.get("lost") not in (0, None)]


SDK_REQUIREMENT = "rtms==1.1.0"


def ensure_sdk() -> str | None:
    """Install Zoom's SDK into this interpreter's environment if it is missing; None when importable."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("rtms") is not None:
        return None
    print(f"gateway bench: Zoom's SDK is not installed; installing it (pip install {SDK_REQUIREMENT})", file=sys.stderr)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", SDK_REQUIREMENT], check=False)
    if done.returncode != 0:
        return f"could not install {SDK_REQUIREMENT} (pip exit status {done.returncode})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway bench", description="End-to-end comparison: the gateway, Zoom's SDK, a plain asyncio client, bare picows.")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma-separated subset of {','.join(CONTENDERS)}")
    parser.add_argument("--quick", action="store_true", help="a short version (seconds): every contender once, 4 meetings")
    parser.add_argument("--meetings", type=int, help="meetings in the comparison table (default 50)")
    parser.add_argument("--sweep", help="comma-separated meeting counts for the scaling sweep (default 10,50,200,500)")
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--seconds", type=float, help="measured window per run (default 3)")
    parser.add_argument("--no-capacity", action="store_true", help="skip the capacity search")
    parser.add_argument("--no-flat-out", action="store_true", help="skip the flat-out runs")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    parser.add_argument("--plot", metavar="PATH", help="write the scaling plot (PNG, needs matplotlib) here")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    contenders = tuple(c.strip() for c in args.contenders.split(",") if c.strip())
    unknown = [c for c in contenders if c not in MODULES]
    if unknown:
        parser.error(f"unknown contender(s): {', '.join(unknown)}")
    if not (ROOT / "benchmarks" / "contenders").is_dir():
        print("gateway bench: needs a source checkout (benchmarks/contenders/ not found)", file=sys.stderr)
        return 2
    plan = quick_plan(contenders) if args.quick else Plan(contenders=contenders)
    plan.speakers = args.speakers
    if args.meetings:
        plan.table_meetings = args.meetings
    if args.sweep:
        plan.sweep = tuple(int(x) for x in args.sweep.split(",") if x)
    if args.seconds:
        plan.seconds = args.seconds
    if args.no_capacity:
        plan.capacity = False
    if args.no_flat_out:
        plan.flat_out_meetings = 0
    if "sdk" in plan.contenders and (problem := ensure_sdk()):
        print(f"gateway bench: {problem}; the sdk contender will report the failure", file=sys.stderr)
    from .app import run_coroutine

    progress = Progress(not args.quiet)
    result = run_coroutine(compare(plan, progress))
    progress.done()
    result["plan"] = {k: v for k, v in plan.__dict__.items()}
    result["environment"] = environment()
    result["command"] = "gateway bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(render(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        # benchmarks/ is not installed with the package: find it next to the source tree too.
        repo_root = str(Path(__file__).resolve().parent.parent)
        if repo_root not in sys.path:
            sys.path.append(repo_root)
        try:
            from benchmarks.plot import plot_scaling
        except ImportError as exc:
            print(f"gateway bench: no plot ({exc})", file=sys.stderr)
        else:
            plot_scaling(result, args.plot)
    for line in over_capacity(result):
        print(f"gateway bench: note: {line}", file=sys.stderr)
    bad = gateway_lost(result)
    if bad:
        print("gateway bench: THE GATEWAY LOST FRAMES: " + "; ".join(bad), file=sys.stderr)
        return 1
    return 0
