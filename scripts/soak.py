"""Soak: many simulated meetings with random faults through one gateway, then check the books.

Loopback only, bounded in time. One process runs the simulator (Zoom's side) and a real
:class:`gateway.app.Gateway` (signed webhooks over HTTP, signaling and media over WebSockets).
``--meetings`` meetings run at once; each lives a few seconds, suffers one to three random faults
from the simulator's switches, is paused (production stops), drained and terminated; a new one
takes its place until ``--minutes`` are up.

Faults: ``media_abort`` (TCP-drop the audio socket), ``signaling_drop`` (TCP-drop signaling +
``rtms_interrupted``), ``keepalive_stop`` (the server stops keep-alives for a while),
``failover`` (new ``rtms_started`` with a second server), ``pause_resume``, ``malformed``
(malformed JSON, truncated, bad base64 and unknown msg_type frames on the audio socket),
``duplicate_webhook`` (``rtms_started`` delivered again, twice), ``packet_loss`` (the server
withholds and duplicates random audio packets, seeded).

Checked per meeting (see docs/RESILIENCE.md for exactly what each means):

* **books** per kind: frames the simulator sent = frames the gateway delivered to the sink
  + frames lost in transit. Lost in transit must be 0 unless a socket was cut (``media_abort``,
  ``signaling_drop``, ``failover``): frames already written to a socket that is then aborted
  are gone at the TCP level, exactly as with Zoom. Malformed frames must each be a counted drop
  (exactly, on meetings without a cut socket) and never a delivery.
* **audio, packet by packet** (user, timestamp, CRC of the payload): on meetings without a cut
  socket, the delivered sequence is exactly the sent one (duplicates included, where the
  simulator duplicated) and the missing timestamps are exactly those the simulator withheld;
  on the others, every delivered packet was sent (none invented, altered or duplicated beyond
  what was sent) and the withheld ones are never delivered.
* at the end, with everything closed: no file descriptors, sockets, asyncio tasks or
  shared-memory segments left over against the count before start; resident memory sampled every
  2 s, slope over the run after warm-up (first third) within ``--rss-slope-mib-per-min``.

Prints one JSON summary (``ok`` true when every check held); exit status 0 only then.

Usage::

    .venv/bin/python scripts/soak.py --minutes 10 --meetings 8 --seed 1 > soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import sys
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.app import Gateway
from gateway.config import Credentials, GatewayConfig, Secret, ServerConfig, SessionsConfig
from gateway.protocol import MediaMessage, WebhookEvent
from gateway.sim.server import INJECTIONS, SimConfig, SimStream, Simulator

log = logging.getLogger("soak")

CLIENT_ID = "soak-client-id"
CLIENT_SECRET = "soak-client-secret-0123456789"
WEBHOOK_SECRET = "soak-webhook-secret-0123456789"
KINDS = ("audio", "transcript", "chat")
FAULTS = ("media_abort", "signaling_drop", "keepalive_stop", "failover", "pause_resume", "malformed", "duplicate_webhook", "packet_loss")
CUTTING = {"media_abort", "signaling_drop", "failover"}  # faults that may lose frames in flight (TCP level)
DROP_INJECTIONS = ("malformed_json", "truncated", "bad_base64")  # counted drops; "unknown_msg_type" is counted apart
SHM_DIR = "/dev/shm"


class SoakSink:
    """Records what the gateway delivers for one stream: counts, audio (user, ts, crc), drops."""

    def __init__(self, publisher: Any = None) -> None:
        self.frames: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.audio: dict[int, list[tuple[int, int]]] = {}
        self.publisher = publisher
        self.closed = False

    def on_audio(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.frames["audio"] += 1
        self.audio.setdefault(user_id, []).append((timestamp, zlib.crc32(data)))
        if self.publisher is not None:
            self.publisher.on_audio(user_id, user_name, timestamp, data)

    def on_video(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.frames["video"] += 1

    def on_share(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.frames["deskshare"] += 1

    def on_transcript(self, msg: MediaMessage) -> None:
        self.frames["transcript"] += 1

    def on_chat(self, msg: MediaMessage) -> None:
        self.frames["chat"] += 1

    def on_drop(self, kind: str, reason: str) -> None:
        self.drops[reason] += 1

    def close(self) -> None:
        self.closed = True
        if self.publisher is not None:
            self.publisher.close()


@dataclass
class MeetingResult:
    stream_id: str
    faults: list[str]
    outcome: str = "ok"
    errors: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    lost_in_transit: dict[str, int] = field(default_factory=dict)
    drops: int = 0
    injected_drops: int = 0
    withheld: int = 0
    duplicated: int = 0
    exact: bool = False


def fd_targets() -> dict[str, str]:
    """fd number -> what it points at (``socket:[...]``, ``anon_inode:[eventfd]``, a path)."""
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def shm_segments(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix + "."))


def slope_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, bytes) in MiB per minute."""
    if len(samples) < 3:
        return 0.0
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    den = sum((t - mx) ** 2 for t, _ in samples)
    if den == 0:
        return 0.0
    return sum((t - mx) * (v - my) for t, v in samples) / den * 60 / (1 << 20)


class Soak:
    """One soak run: the gateway, the simulator, the meeting tasks and the final checks."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.sinks: dict[str, SoakSink] = {}
        # Aggregates, not one record per meeting: an hour-long run must not grow its own memory
        # (the RSS slope is a verdict on the gateway). Failed meetings are kept, up to 100.
        self.totals: Counter[str] = Counter()
        self.frame_totals: dict[str, Counter[str]] = {key: Counter() for key in ("sent", "delivered", "lost_in_transit")}
        self.failed: list[MeetingResult] = []
        self.fault_counts: Counter[str] = Counter()
        self.shm_prefix = f"rtms-soak-{uuid.uuid4().hex[:8]}"
        self.shm_directory: Any = None
        self.rss: list[tuple[float, int]] = []
        self.shm_live_max = 0
        self.gw: Gateway | None = None
        self.sim: Simulator | None = None

    # ------------------------------------------------------------------ sinks

    def make_sink(self, event: WebhookEvent) -> SoakSink:
        publisher = None
        if self.shm_directory is not None:
            from gateway.shm import ShmPublisher

            assert self.gw is not None
            params = self.gw.config.sessions.build_media_params()
            publisher = ShmPublisher(event.stream_id or "", self.shm_directory, audio=params.audio)
        sink = SoakSink(publisher)
        self.sinks[event.stream_id or ""] = sink
        return sink

    # ------------------------------------------------------------------ run

    async def run(self) -> dict[str, Any]:
        gc.collect()
        fds0 = fd_targets()
        shm0 = shm_segments(self.shm_prefix)
        t0 = time.monotonic()
        deadline = t0 + self.args.minutes * 60
        config = GatewayConfig(
            server=ServerConfig(host="127.0.0.1", port=0),
            credentials=Credentials(CLIENT_ID, Secret(CLIENT_SECRET), Secret(WEBHOOK_SECRET)),
            sessions=SessionsConfig(media_kinds=KINDS, media_params={"audio": {"data_opt": 2}}),
        )
        if self.args.shm:
            from gateway.shm import ShmConfig, ShmDirectory

            self.shm_directory = ShmDirectory(ShmConfig(prefix=self.shm_prefix))
        self.gw = Gateway(config, sink_factory=self.make_sink)
        await self.gw.start()
        self.sim = Simulator(SimConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET,
                                       webhook_url=self.gw.webhook_url, time_scale=self.args.time_scale,
                                       participants=self.args.participants, seed=self.args.seed))
        await self.sim.start()
        sampler = asyncio.create_task(self._sample_rss(t0))
        running: set[asyncio.Task[None]] = set()
        started = 0
        try:
            while time.monotonic() < deadline:
                while len(running) < self.args.meetings and time.monotonic() < deadline:
                    started += 1
                    running.add(asyncio.create_task(self._meeting(started)))
                done, running = await asyncio.wait(running, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            if running:
                await asyncio.wait(running, timeout=120)
            for task in running:
                if not task.done():
                    task.cancel()
            unfinished = len([t for t in running if not t.done()])
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            await self.gw.close()
            await self.sim.close()
            if self.shm_directory is not None:
                self.shm_directory.close()
        await asyncio.sleep(0.2)  # let closed transports release their fds
        gc.collect()
        fds1 = fd_targets()
        tasks_left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return self._summary(t0, started, unfinished, (fds0, fds1), tasks_left, shm0)

    async def _sample_rss(self, t0: float) -> None:
        while True:
            self.rss.append((time.monotonic() - t0, rss_bytes()))
            self.shm_live_max = max(self.shm_live_max, len(shm_segments(self.shm_prefix)))
            await asyncio.sleep(2.0)

    # ------------------------------------------------------------------ one meeting

    async def _meeting(self, number: int) -> None:
        assert self.sim is not None and self.gw is not None
        rng = random.Random(self.rng.random())
        pool = self.args.faults
        faults = rng.sample(pool, rng.randint(1, min(3, len(pool))))
        stream = self.sim.create_stream(stream_id=f"soak-{number:05d}-{uuid.uuid4().hex[:8]}")
        if "packet_loss" in faults:
            stream.faults.audio.drop_p = 0.02
            stream.faults.audio.duplicate_p = 0.01
            stream.faults.audio.seed = rng.randrange(1 << 30)
        result = MeetingResult(stream.stream_id, faults)
        injected = 0
        try:
            sink = await self._wait_flowing(stream, 30.0)
            for fault in faults:
                await asyncio.sleep(rng.uniform(0.5, self.args.meeting_s / 2))
                if stream.terminated:
                    break
                self.fault_counts[fault] += 1
                injected += await self._apply(stream, fault, rng)
                await self._wait_recovered(stream, sink, 30.0)
            await asyncio.sleep(rng.uniform(0.5, self.args.meeting_s / 2))
            if stream.terminated:
                result.outcome = f"terminated_by_server_{stream.stop_reason}"
            stream.pause()
            await self._drained(stream, sink)
            stream.terminate()
            async with asyncio.timeout(30):
                while stream.stream_id in self.gw.streams:  # noqa: ASYNC110 - gateway state, polled
                    await asyncio.sleep(0.05)
            self._check(stream, sink, result, injected)
        except Exception as exc:  # one broken meeting is a finding, not the end of the soak
            result.outcome = "error"
            result.errors.append(f"{type(exc).__name__}: {exc}")
            if not stream.terminated:
                stream.terminate()
        finally:
            self._account(result)
            self.sim.streams.pop(stream.stream_id, None)  # keep the simulator's records bounded
            self.sim.webhooks.deliveries.clear()  # its log of every webhook POST, too
            self.sinks.pop(stream.stream_id, None)

    def _account(self, result: MeetingResult) -> None:
        t = self.totals
        t["checked"] += 1
        t["exact"] += result.exact
        t["with_cut_sockets"] += bool(CUTTING & set(result.faults))
        t["drops"] += result.drops
        t["injected_drops"] += result.injected_drops
        t["withheld"] += result.withheld
        t["duplicated"] += result.duplicated
        for key, counter in self.frame_totals.items():
            counter.update(getattr(result, key))
        if result.outcome != "ok":
            t["failed"] += 1
            if len(self.failed) < 100:
                self.failed.append(result)

    async def _wait_flowing(self, stream: SimStream, timeout_s: float) -> SoakSink:
        async with asyncio.timeout(timeout_s):
            while True:
                sink = self.sinks.get(stream.stream_id)
                if sink is not None and sink.frames["audio"] > 5:
                    return sink
                await asyncio.sleep(0.05)

    async def _wait_recovered(self, stream: SimStream, sink: SoakSink, timeout_s: float) -> None:
        """Audio flows again (or the server ended the stream, which the checks then report)."""
        before = sink.frames["audio"]
        async with asyncio.timeout(timeout_s):
            while sink.frames["audio"] < before + 10 and not stream.terminated:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    async def _drained(self, stream: SimStream, sink: SoakSink) -> None:
        """Wait until the sink has everything sent (or nothing more arrives for a second)."""
        last, still = -1, 0
        for _ in range(200):
            delivered = sum(sink.frames[k] for k in KINDS)
            if all(sink.frames[k] >= n for k, n in stream.sent.media_counts.items()):
                return
            still = still + 1 if delivered == last else 0
            if still >= 20:
                return
            last = delivered
            await asyncio.sleep(0.05)

    async def _apply(self, stream: SimStream, fault: str, rng: random.Random) -> int:
        """Apply one fault; returns the number of malformed frames sent that must be counted drops."""
        if fault == "media_abort":
            stream.abort_media("audio")
        elif fault == "signaling_drop":
            stream.drop_signaling()
        elif fault == "keepalive_stop":
            stream.faults.send_keepalives = False
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            stream.faults.send_keepalives = True
        elif fault == "failover":
            await stream.failover()
        elif fault == "pause_resume":
            stream.pause()
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            stream.resume()
        elif fault == "malformed":
            counted = 0
            for what in rng.choices(INJECTIONS, k=rng.randint(1, 6)):
                if stream.media.get("audio") is None:
                    break
                stream.inject(what, "audio")
                counted += what in DROP_INJECTIONS
            return counted
        elif fault == "duplicate_webhook":
            stream.send_duplicate_started(2, delay_s=rng.uniform(0.0, 0.5))
        elif fault == "packet_loss":
            pass  # switched on at creation (drop_p / duplicate_p)
        return 0

    # ------------------------------------------------------------------ checks

    def _check(self, stream: SimStream, sink: SoakSink, result: MeetingResult, injected_drops: int) -> None:
        cut = bool(CUTTING & set(result.faults))
        sent = stream.sent
        result.sent = {k: sent.media_counts.get(k, 0) for k in KINDS}
        result.delivered = {k: sink.frames[k] for k in KINDS}
        result.lost_in_transit = {k: result.sent[k] - result.delivered[k] for k in KINDS}
        result.drops = sum(sink.drops.values())
        result.injected_drops = injected_drops
        result.withheld = len(sent.audio_dropped)
        result.duplicated = len(sent.audio_duplicated)
        errors = result.errors
        if not sink.closed:
            errors.append("sink not closed by the gateway")
        for kind in KINDS:
            lost = result.lost_in_transit[kind]
            if lost < 0:
                errors.append(f"{kind}: {-lost} more frames delivered than sent")
            elif lost and not cut:
                errors.append(f"{kind}: {lost} frames lost without a cut socket")
        if (result.drops != injected_drops) if not cut else (result.drops > injected_drops):
            errors.append(f"drops {result.drops} != malformed frames sent {injected_drops} ({dict(sink.drops)})")
        withheld = set(sent.audio_dropped)
        for uid in set(sent.audio) | set(sink.audio):
            want = [(ts, zlib.crc32(p)) for ts, p in sent.audio.get(uid, ())]
            got = sink.audio.get(uid, [])
            if not cut:
                if got != want:
                    errors.append(f"audio user {uid}: delivered sequence differs from sent ({len(got)} vs {len(want)})")
            else:
                extra = Counter(got) - Counter(want)
                if extra:
                    errors.append(f"audio user {uid}: {sum(extra.values())} packets delivered that were not sent")
            delivered_ts = {ts for ts, _ in got}
            if any((uid, ts) in withheld for ts in delivered_ts):
                errors.append(f"audio user {uid}: a withheld packet was delivered")
            if not cut:
                sent_ts = {ts for ts, _ in want}
                produced = sent_ts | {ts for u, ts in withheld if u == uid}
                missing = produced - delivered_ts
                if missing != {ts for u, ts in withheld if u == uid}:
                    errors.append(f"audio user {uid}: missing timestamps differ from the withheld ones")
        result.exact = not cut and not errors
        if errors and result.outcome == "ok":
            result.outcome = "failed"

    def _summary(self, t0: float, started: int, unfinished: int, fds: tuple[dict[str, str], dict[str, str]], tasks_left: list[Any],
                 shm0: list[str]) -> dict[str, Any]:
        fds0, fds1 = fds
        socks0 = sum(t.startswith("socket:") for t in fds0.values())
        socks1 = sum(t.startswith("socket:") for t in fds1.values())
        new_fds = sorted(t for fd, t in fds1.items() if fds0.get(fd) != t)
        # libuv keeps one /dev/null descriptor per loop in reserve (its EMFILE trick), opened at
        # the first accept and closed with the loop: not a leak.
        reserve = 1 if "/dev/null" in new_fds else 0
        duration = time.monotonic() - t0
        warm = [s for s in self.rss if s[0] >= duration / 3]
        slope = slope_per_min(warm)
        shm1 = shm_segments(self.shm_prefix)
        t = self.totals
        totals = {key: {k: counter.get(k, 0) for k in KINDS} for key, counter in self.frame_totals.items()}
        checks = {
            "meetings_all_ok": t["failed"] == 0,
            "no_unfinished_meetings": unfinished == 0,
            "fds_flat": len(fds1) - reserve <= len(fds0),
            "sockets_flat": socks1 <= socks0,
            "no_tasks_left": not tasks_left,
            "no_shm_segments_left": shm1 == shm0,
            # a slope needs a long run: under 2 minutes the warm-up (imports, caches, allocator
            # arenas) dominates, so the short CI run reports the slope without judging it
            "rss_slope_ok": slope <= self.args.rss_slope_mib_per_min if duration >= 120 else None,
        }
        return {
            "ok": all(v is not False for v in checks.values()),
            "checks": checks,
            "seed": self.args.seed,
            "duration_s": round(duration, 1),
            "meetings_started": started,
            "meetings_checked": t["checked"],
            "meetings_exact": t["exact"],
            "meetings_with_cut_sockets": t["with_cut_sockets"],
            "faults": dict(self.fault_counts),
            "frames": totals,
            "drops_counted": t["drops"],
            "malformed_sent": t["injected_drops"],
            "audio_withheld": t["withheld"],
            "audio_duplicated": t["duplicated"],
            "rss_mib": {
                "first": round(self.rss[0][1] / (1 << 20), 1) if self.rss else None,
                "max": round(max(v for _, v in self.rss) / (1 << 20), 1) if self.rss else None,
                "last": round(self.rss[-1][1] / (1 << 20), 1) if self.rss else None,
                "samples": len(self.rss),
                "slope_mib_per_min_after_warmup": round(slope, 3),
                # about 20 points across the run: (seconds, MiB)
                "series": [(round(t), round(v / (1 << 20), 1)) for t, v in self.rss[:: max(1, len(self.rss) // 20)]],
            },
            "fds": {"before": len(fds0), "after": len(fds1), "sockets_before": socks0, "sockets_after": socks1, "new": new_fds[:10]},
            "tasks_left": [repr(t) for t in tasks_left][:5],
            "shm": {"enabled": bool(self.args.shm), "segments_live_max": self.shm_live_max, "left": shm1},
            "failures": [r.__dict__ for r in self.failed][:20],
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long new meetings are started (the run ends after the last drains)")
    p.add_argument("--meetings", type=int, default=6, help="meetings running at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--meeting-s", type=float, default=8.0, help="rough length of one meeting")
    p.add_argument("--participants", type=int, default=2)
    p.add_argument("--time-scale", type=float, default=0.2, help="simulator timers (keep-alive, reconnection windows) x this")
    p.add_argument("--shm", action=argparse.BooleanOptionalAction, default=False, help="also publish each stream to shared memory")
    p.add_argument("--rss-slope-mib-per-min", type=float, default=4.0, help="largest acceptable RSS growth after warm-up")
    p.add_argument("--faults", type=lambda text: [f for f in text.split(",") if f], default=list(FAULTS),
                   help=f"comma-separated faults to draw from (default all: {','.join(FAULTS)})")
    p.add_argument("--log-level", default="ERROR")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    summary = runner(Soak(args).run())
    print(json.dumps(summary, indent=2, default=str))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
