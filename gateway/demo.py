"""``gateway demo``: the embedded simulator and the gateway in one process, live table, summary.

The simulator plays Zoom: it posts signed ``meeting.rtms_started`` webhooks to the gateway's real
HTTP endpoint, accepts the gateway's signaling and media handshakes and streams a synthetic
meeting (several speakers on separate audio streams, camera video, screen share, transcripts,
chat). The gateway runs exactly as ``gateway run`` would, with throwaway credentials.

At the end every meeting is paused (the simulator stops producing), the demo waits until the
gateway has received everything that was sent, then ends the meetings (``rtms_stopped`` and stream
TERMINATED) and prints, per meeting and kind, what was sent and what arrived, with a CRC-32 of
every participant's payloads on both sides. Exit status 0 only if nothing was lost or damaged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import sys
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from .app import Gateway, parser_implementation
from .config import Credentials, GatewayConfig, LogConfig, PublishConfig, Secret, ServerConfig, SessionsConfig
from .protocol import WebhookEvent
from .stats_sink import KINDS, StatsSink

log = logging.getLogger("gateway.demo")

KIND_LABELS = {"audio": "audio", "video": "video", "deskshare": "share", "transcript": "transcr", "chat": "chat"}
#: how long the end-of-demo drain may take before missing frames count as lost.
DRAIN_LIMIT_S = 10.0
SHM_DIR = "/dev/shm"


def cleanup_dead_demos(shm_dir: str = SHM_DIR) -> list[str]:
    """Remove segments of earlier demos that were killed before cleaning up (their pid is gone)."""
    from .errors import PublishError
    from .shm import ShmConfig, cleanup_stale

    removed: list[str] = []
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return removed
    prefixes = {name.split(".", 1)[0] for name in names if name.startswith("rtms-demo-")}
    for prefix in sorted(prefixes):
        pid = prefix.removeprefix("rtms-demo-")
        if not pid.isdigit() or int(pid) == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        with contextlib.suppress(PublishError, ValueError):
            removed += cleanup_stale(ShmConfig(prefix=prefix, shm_dir=shm_dir))
    return removed


def shm_available() -> bool:
    """True when the native shared-memory publisher is built and /dev/shm is usable."""
    try:
        from . import _native, shm  # noqa: F401
    except ImportError:
        return False
    return hasattr(_native, "ShmWriter") and os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


@dataclass
class DemoOptions:
    seconds: float = 20.0
    meetings: int = 2
    participants: int = 3
    seed: int = 1
    #: None: detect (live table on a TTY, one line per second otherwise).
    tty: bool | None = None
    #: the simulator's keep-alive interval (Zoom: 10 s); shorter so a short demo shows them.
    keepalive_interval_s: float = 2.0
    #: publish into shared memory and read it back from a consumer process (when the native
    #: publisher is built); False: count frames in the gateway with a checksum sink instead.
    shm: bool = True


@dataclass
class StreamReport:
    stream_id: str
    sent: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    received_bytes: dict[str, int] = field(default_factory=dict)
    #: True when byte counts are what came over the wire (base64 JSON), not decoded payloads.
    wire_bytes: bool = False
    crc_mismatches: list[str] = field(default_factory=list)
    transcripts_sent: int = 0
    transcripts_received: int = 0
    transcript_texts_match: bool = True
    drops: int = 0
    error: str | None = None
    keepalives: int = 0
    #: from the simulator announcing the stream (webhook POST) to the session STARTED, in ms
    up_ms: float | None = None
    #: shared-memory mode: user id -> (samples sent, samples the consumer read that were not gaps)
    consumer_audio: dict[int, tuple[int, int]] = field(default_factory=dict)
    consumer_mixed_samples: int = 0
    consumer_lost: int = 0
    #: shared-memory mode: "video/user N" -> (frames sent, frames the consumer read)
    consumer_frames: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def consumer_complete(self) -> bool:
        return (
            all(sent == got for sent, got in self.consumer_audio.values())
            and all(sent == got for sent, got in self.consumer_frames.values())
            and self.consumer_lost == 0
        )

    @property
    def complete(self) -> bool:
        return (
            self.sent.get("audio", 0) > 0
            and all(self.received.get(k, 0) == n for k, n in self.sent.items())
            and not self.crc_mismatches
            and self.transcript_texts_match
            and self.consumer_complete
            and self.drops == 0
            and self.error is None
        )


async def _poll(predicate: Any, limit_s: float, step_s: float = 0.05) -> bool:
    """Check ``predicate`` every ``step_s`` for at most ``limit_s``; returns its last value."""
    for _ in range(max(1, int(limit_s / step_s))):
        if predicate():
            return True
        await asyncio.sleep(step_s)
    return bool(predicate())


def _count(value: Any) -> int:
    """A counter that may be a number or a mapping of numbers."""
    if isinstance(value, dict):
        return sum(int(v) for v in value.values() if isinstance(v, (int, float)))
    return int(value) if isinstance(value, (int, float)) else 0


def _crc_of(payloads: Iterable[tuple[int, bytes]]) -> int:
    crc = 0
    for _, payload in payloads:
        crc = zlib.crc32(payload, crc)
    return crc


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class Demo:
    """One demo run: gateway + simulator on loopback, a table while it runs, a verdict at the end."""

    def __init__(self, options: DemoOptions, out: TextIO | None = None) -> None:
        self.options = options
        self.out = out or sys.stdout
        self.tty = options.tty if options.tty is not None else bool(getattr(self.out, "isatty", lambda: False)())
        self.sinks: dict[str, StatsSink] = {}
        self.errors: dict[str, str] = {}
        self.last_stats: dict[str, dict[str, Any]] = {}
        #: monotonic times: the simulator announced the stream / the gateway saw the session STARTED
        self.announced_at: dict[str, float] = {}
        self.up_at: dict[str, float] = {}
        self.shm = options.shm and shm_available()
        self.shm_prefix = f"rtms-demo-{os.getpid()}"
        self.consumer: asyncio.subprocess.Process | None = None
        self.consumer_result: dict[str, Any] = {}
        client_id = "demo-" + secrets.token_hex(4)
        self._client_secret = secrets.token_hex(16)
        self._webhook_secret = secrets.token_hex(16)
        self.config = GatewayConfig(
            server=ServerConfig(host="127.0.0.1", port=0),
            credentials=Credentials(client_id, Secret(self._client_secret), Secret(self._webhook_secret)),
            sessions=SessionsConfig(
                max_streams=max(1, options.meetings),
                media_kinds=KINDS,
                media_params={"audio": {"data_opt": 2}},  # one audio stream per speaker
            ),
            # roomy frame rings (~16 s of 5 fps JPEG) so a consumer on a busy machine keeps up
            publish=PublishConfig(shm=self.shm, shm_dir=SHM_DIR, shm_prefix=self.shm_prefix, video_ring_bytes=4 << 20, share_ring_bytes=2 << 20),
            log=LogConfig(level="WARNING"),
        ).validate()
        self._lines_drawn = 0

    def _sink_for(self, event: WebhookEvent) -> StatsSink:
        sink = StatsSink(checksum=True, keep_texts=True)
        assert event.stream_id is not None
        self.sinks[event.stream_id] = sink
        return sink

    def _on_event(self, stream_id: str, doc: dict[str, Any]) -> None:
        if doc.get("type") == "session_state" and doc.get("state") == "STARTED" and stream_id not in self.up_at:
            self.up_at[stream_id] = time.monotonic()
        if doc.get("type") == "stream_ended":
            if doc.get("error"):
                self.errors[stream_id] = str(doc["error"])
            stats = doc.get("stats")
            if isinstance(stats, dict):
                self.last_stats[stream_id] = stats

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        from .sim.server import SimConfig, Simulator

        opts = self.options
        try:
            from .media import media_listener_factory

            media_listener_factory()
        except ImportError as exc:
            self._write(f"gateway demo: cannot start: {exc}\n")
            return 2
        if self.shm:
            cleanup_dead_demos()
        gw = Gateway(self.config, sink_factory=None if self.shm else self._sink_for)
        gw.event_listeners.append(self._on_event)
        sim = Simulator(
            SimConfig(
                client_id=self.config.credentials.client_id,
                client_secret=self._client_secret,
                webhook_secret=self._webhook_secret,
                webhook_url=None,  # known once the gateway listens
                participants=opts.participants,
                seed=opts.seed,
                keepalive_interval_s=opts.keepalive_interval_s,
            )
        )
        reports: list[StreamReport] = []
        try:
            await gw.start()
            sim.webhooks.url = gw.webhook_url
            if self.shm:  # the ML process: attaches to shared memory and reads everything back
                self.consumer = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "gateway.demo", "consume", "--prefix", self.shm_prefix, "--shm-dir", SHM_DIR,
                    "--streams", str(opts.meetings), "--limit-s", str(opts.seconds + 4 * DRAIN_LIMIT_S),
                    stdout=asyncio.subprocess.PIPE,
                )
            await sim.start()
            self._print_header(gw, sim)
            loop = asyncio.get_running_loop()
            for _ in range(opts.meetings):
                self.announced_at[sim.create_stream().stream_id] = time.monotonic()
            started = loop.time()
            deadline = started + opts.seconds
            while (now := loop.time()) < deadline:
                await asyncio.sleep(min(1.0, deadline - now))
                self._draw(gw, sim, loop.time() - started)
            reports = await self._finish(gw, sim)
        finally:
            await sim.close()
            await gw.close()  # ends every published stream: the consumer drains them and reports
            if self.consumer is not None:
                self.consumer_result = await self._consumer_output()
                for rep in reports:
                    self._apply_consumer(rep, sim.streams.get(rep.stream_id))
        return self._summary(reports)

    async def _consumer_output(self) -> dict[str, Any]:
        """The consumer's JSON report (it exits once every stream it attached has ended)."""
        proc = self.consumer
        assert proc is not None
        try:
            async with asyncio.timeout(2 * DRAIN_LIMIT_S):
                raw, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            raw, _ = await proc.communicate()
        out = raw.decode(errors="replace").strip()
        try:
            doc = orjson.loads(out.splitlines()[-1]) if out else {}
        except orjson.JSONDecodeError:
            doc = {}
        return doc if isinstance(doc, dict) else {}

    def _apply_consumer(self, rep: StreamReport, stream: Any) -> None:
        """Shared-memory mode: what the consumer process read, against what the simulator sent."""
        got = self.consumer_result.get(rep.stream_id)
        if stream is None:
            return
        if not isinstance(got, dict):
            rep.error = rep.error or "the consumer never attached to this stream"
            return
        samples = {int(k): int(v) for k, v in (got.get("samples") or {}).items()}
        for uid, payloads in stream.sent.audio.items():
            sent = sum(len(p) for _, p in payloads) // 2  # L16 mono
            rep.consumer_audio[uid] = (sent, samples.get(uid, 0))
        rep.consumer_mixed_samples = samples.get(0, 0)
        frames = got.get("frames") or {}
        for kind, store in (("video", stream.sent.video), ("deskshare", stream.sent.share)):
            seen = frames.get(kind) or {}
            for uid, payloads in store.items():
                count, crc = seen.get(str(uid), (0, 0))
                rep.consumer_frames[f"{kind}/user {uid}"] = (len(payloads), int(count))
                if crc != _crc_of(payloads):
                    rep.crc_mismatches.append(f"{kind}/user {uid} (consumer)")
        rep.consumer_lost = int(got.get("lost", 0))
        texts = got.get("transcripts") or []
        rep.transcripts_received = len(texts)
        rep.transcript_texts_match = texts == stream.sent.transcript_texts()

    async def _finish(self, gw: Gateway, sim: Any) -> list[StreamReport]:
        """Pause every meeting, drain, compare, then end the meetings through Zoom's own paths."""
        streams = list(sim.streams.values())
        for stream in streams:
            stream.pause()
        await _poll(lambda: all(self._drained(gw, s) for s in streams), DRAIN_LIMIT_S)
        for stream in streams:
            stream.terminate()
        if not await _poll(lambda: not gw.streams, DRAIN_LIMIT_S):
            log.warning("%d stream(s) still open after the drain; closing them", len(gw.streams))
        return [self._report(s) for s in streams]

    def _frames(self, gw: Gateway, stream_id: str) -> dict[str, int]:
        """Frames per kind the gateway parsed for a stream (session counters; the sink's if none)."""
        entry = gw.streams.get(stream_id)
        stats = entry.stats() if entry is not None else self.last_stats.get(stream_id, {})
        frames = stats.get("frames")
        return {k: int(v) for k, v in frames.items()} if isinstance(frames, dict) else {}

    def _drained(self, gw: Gateway, stream: Any) -> bool:
        frames = self._frames(gw, stream.stream_id)
        return all(frames.get(kind, 0) >= n for kind, n in stream.sent.media_counts.items())

    def _report(self, stream: Any) -> StreamReport:
        rep = StreamReport(stream.stream_id, sent=dict(stream.sent.media_counts))
        rep.transcripts_sent = len(stream.sent.transcripts)
        rep.error = self.errors.get(stream.stream_id)
        stats = self.last_stats.get(stream.stream_id)
        if stats is None:
            rep.error = rep.error or "the gateway never opened this stream"
            return rep
        ka = stats.get("keepalives_answered")
        rep.keepalives = sum(ka.values()) if isinstance(ka, dict) else int(ka or 0)
        if stream.stream_id in self.up_at and stream.stream_id in self.announced_at:
            rep.up_ms = (self.up_at[stream.stream_id] - self.announced_at[stream.stream_id]) * 1000
        frames = stats.get("frames") or {}
        rep.received = {k: int(v) for k, v in frames.items() if v or k in rep.sent}
        rep.wire_bytes = not stats.get("bytes")
        rep.received_bytes = {k: int(v) for k, v in (stats.get("bytes") or stats.get("wire_bytes") or {}).items()}
        rep.drops = _count(stats.get("drops")) + _count(stats.get("listener_drops"))
        sink = self.sinks.get(stream.stream_id)
        if sink is not None:  # counting mode: exact payload checksums in the gateway
            rep.received_bytes = dict(sink.bytes)
            rep.wire_bytes = False
            rep.drops = max(rep.drops, sum(sink.drops.values()))  # the same drops, seen by the listener and the sink
            rep.transcripts_received = sink.transcripts
            rep.transcript_texts_match = (sink.texts or []) == stream.sent.transcript_texts()
            for kind, store in (("audio", stream.sent.audio), ("video", stream.sent.video), ("deskshare", stream.sent.share)):
                for uid, payloads in store.items():
                    if _crc_of(payloads) != sink.crc.get((kind, uid), 0):
                        rep.crc_mismatches.append(f"{kind}/user {uid}")
        return rep

    # ------------------------------------------------------------------ output

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _print_header(self, gw: Gateway, sim: Any) -> None:
        o = self.options
        self._write(
            f"rtms-gateway demo: {o.meetings} meeting(s) x {o.participants} participants for {o.seconds:g} s\n"
            f"  gateway webhook  {gw.webhook_url}   metrics {gw.base_url}/metrics\n"
            f"  simulator        signaling {sim.signaling_url()}   media port {sim.media_port}\n"
            f"  media parser     {parser_implementation()}\n"
            + (
                f"  shared memory    {SHM_DIR}/{self.shm_prefix}.*  consumer process pid {self.consumer.pid if self.consumer else '-'} (gateway.client)\n"
                if self.shm
                else "  shared memory    off (frames counted and checksummed in the gateway)\n"
            )
            + f"  keep-alives every {o.keepalive_interval_s:g} s (Zoom: 10 s)\n\n"
        )

    def _rows(self, gw: Gateway) -> list[dict[str, Any]]:
        rows = []
        ids = list(dict.fromkeys([*self.last_stats, *gw.streams]))
        for stream_id in ids:
            entry = gw.streams.get(stream_id)
            stats = entry.stats() if entry is not None else self.last_stats.get(stream_id, {})
            frames = stats.get("frames") or {}
            nbytes = stats.get("bytes") or stats.get("wire_bytes") or {}
            rows.append(
                {
                    "stream": stream_id[:8],
                    "state": str(stats.get("state") or ("ENDED" if entry is None else "?")),
                    "participants": int(stats.get("participants", 0) or 0),
                    **{kind: int(frames.get(kind, 0)) for kind in KINDS},
                    "bytes": sum(int(v) for v in nbytes.values()),
                    "drops": _count(stats.get("drops")) + _count(stats.get("listener_drops")),
                    "gaps": _count(stats.get("gaps")),
                    "keepalives": _count(stats.get("keepalives_answered")),
                }
            )
        return rows

    def _draw(self, gw: Gateway, sim: Any, elapsed: float) -> None:
        rows = self._rows(gw)
        if not self.tty:
            total = {kind: sum(r[kind] for r in rows) for kind in KINDS}
            states = ",".join(sorted({r["state"] for r in rows})) or "-"
            kinds = " ".join(f"{KIND_LABELS[k]}={total[k]}" for k in KINDS)
            self._write(
                f"[{elapsed:5.1f}s] streams={len(rows)} ({states}) {kinds} bytes={_human_bytes(sum(r['bytes'] for r in rows))} "
                f"drops={sum(r['drops'] for r in rows)} gaps={sum(r['gaps'] for r in rows)} keepalives={sum(r['keepalives'] for r in rows)}\n"
            )
            return
        head = f"{'stream':<9}{'state':<11}{'ppl':>4}" + "".join(f"{KIND_LABELS[k]:>9}" for k in KINDS) + f"{'bytes':>11}{'drops':>7}{'gaps':>6}{'k-a':>5}"
        lines = [f"\x1b[1m t = {elapsed:5.1f} s   {len(rows)} stream(s)   webhooks accepted: {self._accepted(gw)}\x1b[0m", f"\x1b[4m{head}\x1b[0m"]
        for r in rows:
            lines.append(
                f"{r['stream']:<9}{r['state']:<11}{r['participants']:>4}"
                + "".join(f"{r[k]:>9}" for k in KINDS)
                + f"{_human_bytes(r['bytes']):>11}{r['drops']:>7}{r['gaps']:>6}{r['keepalives']:>5}"
            )
        if self._lines_drawn:
            self._write(f"\x1b[{self._lines_drawn}F\x1b[J")
        self._write("\n".join(lines) + "\n")
        self._lines_drawn = len(lines)

    def _accepted(self, gw: Gateway) -> int:
        value = gw.metrics.registry.get_sample_value("rtms_webhook_requests_total", {"result": "accepted"})
        return int(value or 0)

    def _summary(self, reports: list[StreamReport]) -> int:
        out = ["", "summary"]
        ok = bool(reports)
        for rep in reports:
            ok = ok and rep.complete
            up = f" (webhook to media flowing: {rep.up_ms:.0f} ms)" if rep.up_ms is not None else ""
            out.append(f"  stream {rep.stream_id}: {'COMPLETE' if rep.complete else 'INCOMPLETE'}{up}")
            for kind in KINDS:
                sent = rep.sent.get(kind, 0)
                got = rep.received.get(kind, 0)
                if not sent and not got:
                    continue
                mark = "ok" if sent == got else f"LOST {sent - got}" if got < sent else f"EXTRA {got - sent}"
                size = _human_bytes(rep.received_bytes.get(kind, 0)) + (" on the wire" if rep.wire_bytes else "")
                out.append(f"    {kind:<11} sent {sent:>7}  received {got:>7}  {size:>22}  {mark}")
            where = " (read back by the consumer)" if rep.consumer_audio else ""
            crc = f"payload CRC-32{where} {'identical' if not rep.crc_mismatches else 'MISMATCH ' + ', '.join(rep.crc_mismatches)}, "
            out.append(
                f"    transcripts {rep.transcripts_received}/{rep.transcripts_sent} (texts {'identical' if rep.transcript_texts_match else 'DIFFER'}), "
                f"{crc}drops {rep.drops}, keep-alives answered {rep.keepalives}"
            )
            if rep.consumer_audio:
                per_user = ", ".join(
                    f"user {uid}: {got}/{sent}" + ("" if got == sent else " MISMATCH") for uid, (sent, got) in sorted(rep.consumer_audio.items())
                )
                out.append(f"    consumer (shared memory) audio samples read/sent: {per_user}; mixed ring {rep.consumer_mixed_samples}; overrun {rep.consumer_lost}")
                if rep.consumer_frames:
                    out.append("    consumer frames read/sent: " + ", ".join(f"{k}: {got}/{sent}" for k, (sent, got) in sorted(rep.consumer_frames.items())))
            if rep.error:
                out.append(f"    error: {rep.error}")
        out.append("")
        out.append("result: everything the simulator sent arrived intact" if ok else "result: FAILED (see above)")
        self._write("\n".join(out) + "\n")
        return 0 if ok else 1


def run(options: DemoOptions, out: TextIO | None = None) -> int:
    """Run the demo on uvloop; returns the exit status."""
    from .app import run_coroutine

    started = time.monotonic()
    status: int = run_coroutine(Demo(options, out).run())
    log.debug("demo finished in %.1f s", time.monotonic() - started)
    return status


# ---------------------------------------------------------------------- the consumer process


def consume(prefix: str, shm_dir: str, streams: int, limit_s: float) -> dict[str, Any]:
    """Attach to every stream the gateway publishes and read audio and events until they end.

    This is what an ML process does with :mod:`gateway.client`: per stream, one reader per
    participant ring (user 0 is the mixed ring) and the event ring. Returns, per stream id, the
    samples read that were not gaps, frames lost to overrun, and the transcript texts in order.
    """
    from . import client

    attached: dict[str, Any] = {}
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for info in client.list_streams(prefix, shm_dir):
            if info.stream_id not in attached:
                reader = client.attach(info, prefix, shm_dir)
                frame_readers = {}
                for kind, open_ring in (("video", reader.video), ("deskshare", reader.share)):
                    with contextlib.suppress(KeyError):  # no ring: the kind is not published
                        frame_readers[kind] = open_ring()
                attached[info.stream_id] = {
                    "reader": reader, "audio": {}, "events": reader.events(), "frame_readers": frame_readers,
                    "samples": {}, "frames": {}, "lost": 0, "transcripts": [],
                }
        for st in attached.values():
            if st.get("done"):
                continue
            reader = st["reader"]
            ended = reader.ended  # read before draining: whatever was written before "ended" is read below
            for ring in reader.participants():
                if ring.user_id not in st["audio"]:
                    st["audio"][ring.user_id] = reader.audio(ring.user_id)
            for uid, audio in st["audio"].items():
                frames, _, lost, gaps = audio.read_since()
                st["samples"][uid] = st["samples"].get(uid, 0) + len(frames) - sum(g.length for g in gaps)
                st["lost"] += lost
            for kind, frames_reader in st["frame_readers"].items():
                batch, _, lost = frames_reader.read_since()
                st["lost"] += lost
                per_user = st["frames"].setdefault(kind, {})
                for frame in batch:
                    count, crc = per_user.get(frame.user_id, (0, 0))
                    crc = zlib.crc32(frame.data, crc)
                    if frames_reader.intact(frame):  # not overwritten while we hashed it
                        per_user[frame.user_id] = (count + 1, crc)
                    else:
                        st["lost"] += 1
            events, _, lost = st["events"].read_since()
            st["lost"] += lost
            st["transcripts"].extend(str(e.get("text", "")) for e in events if e.get("type") == "transcript")
            if ended:
                st["done"] = True
                reader.close()
        if len(attached) >= streams and all(st.get("done") for st in attached.values()):
            break
        time.sleep(0.05)
    return {
        sid: {
            "samples": {str(u): n for u, n in st["samples"].items()},
            "frames": {kind: {str(u): list(v) for u, v in users.items()} for kind, users in st["frames"].items()},
            "lost": st["lost"],
            "transcripts": st["transcripts"],
        }
        for sid, st in attached.items()
    }


def _consumer_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.demo consume")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--shm-dir", default=SHM_DIR)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--limit-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    result = consume(args.prefix, args.shm_dir, args.streams, args.limit_s)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


def add_arguments(parser: Any) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="how long media flows (default 20)")
    parser.add_argument("--meetings", type=int, default=2, help="concurrent meetings (default 2)")
    parser.add_argument("--participants", type=int, default=3, help="participants per meeting (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="content seed (same seed, same meeting)")
    parser.add_argument("--plain", action="store_true", help="one line per second even on a terminal")
    parser.add_argument("--no-shm", action="store_true", help="skip shared memory and the consumer; checksum frames in the gateway")


def main(args: Any) -> int:
    if args.seconds <= 0 or args.meetings < 1 or args.participants < 1:
        print("gateway demo: --seconds must be > 0, --meetings and --participants >= 1", file=sys.stderr)
        return 2
    options = DemoOptions(
        seconds=args.seconds,
        meetings=args.meetings,
        participants=args.participants,
        seed=args.seed,
        tty=False if args.plain else None,
        shm=not args.no_shm,
    )
    with contextlib.suppress(KeyboardInterrupt):
        return run(options)
    return 130


if __name__ == "__main__":  # the demo's consumer process: python -m gateway.demo consume ...
    if sys.argv[1:2] == ["consume"]:
        raise SystemExit(_consumer_main(sys.argv[2:]))
    raise SystemExit("usage: python -m gateway.demo consume --prefix P [--shm-dir D] [--streams N] [--limit-s S]")
