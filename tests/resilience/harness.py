"""Shared harness for issue 6: one RTMS fault or failover, checked in shared memory, sample by sample.

simulator -> real :class:`gateway.app.Gateway` (webhooks, ``publish.shm``, the audio engine or the
native fast path) -> ``tests.audio.ring_dump_proc`` in another process, following every participant
ring and the mixed ring until the stream's segment says ENDED (the consumer prints ``done`` only
after it saw ENDED with nothing left to read). :func:`run_stream` drives one stream through a
scenario; :func:`check_rings` then compares every ring with the simulator's content and its record
of what it sent (``SentRecord``), per distinct packet:

* a packet the gateway received: its samples, exactly the content's, at the index its timestamp
  gives on the one media clock, not marked as a gap;
* every frame no received packet covers: zeros, marked in the ring's gap log (a participant's
  silent turns, packets the faults withheld, media captured while paused, packets lost in flight);
* duplicates add nothing (they are one distinct packet; the ring is contiguous and exact);
* a packet the simulator sent but whose samples are a marked gap is *lost*: lost packets are
  returned for the scenario to account for (none unless a socket was cut, and only among the
  packets sent on the cut socket just before the cut: see :class:`Cut`).

What the simulator records about a cut (gateway/sim/server.py): a packet enters ``SentRecord.audio``
when it is written to the socket, so a cut can lose packets the gateway had not read yet; they are
not in ``audio_dropped`` (that lists only what the faults withheld) and are never sent again (the
audio cursor is past them). The simulator keeps no per-socket record, so :class:`Cut` snapshots the
per-user send counts at each cut (it wraps the stream's ``interrupt_signaling``, ``_media_lost`` and
``failover``); a lost packet must be among the last ``IN_FLIGHT_MAX`` sent before some cut. Audio
produced while no media socket was ready is replayed from the cursor after the reconnection (up to
``audio_buffer_s``, 60 s); :meth:`Ctx.outage` marks such spans, whose packets must all be in the rings.

Timers: the simulator runs with ``FAST_SIM`` (x0.05 windows and keep-alives); the gateway's sessions
get a short reconnect backoff (``BACKOFF_S``) instead of Zoom's 3 s so retries take a fraction of a
second. Nothing asserts on the wall clock: waits are bounded polls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gateway import client
from gateway.app import Gateway
from gateway.config import AudioSettings, PublishConfig, SessionsConfig
from gateway.protocol import AudioParams
from gateway.sim.content import MeetingContent
from gateway.sim.server import SimStream, Simulator
from tests.audio.helpers import expected_int16
from tests.audio.test_pipeline_e2e import ROOT, Ring
from tests.gateway.conftest import wait_for
from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config

RATE, SPP = 16000, 320  # L16 16 kHz, 20 ms packets (the raw protocol's defaults)
BACKOFF_S = (0.2,)
#: most packets one cut socket may lose in flight (sent by the simulator, never read by the gateway):
#: what a 20 ms tick puts on the wire for three speakers, twice over (0 to 2 seen on loopback).
IN_FLIGHT_MAX = 6
#: a meeting whose three speakers all talk, often at once, in the first 1.6 s (no silent tick)
SEED = 14


@dataclass
class Cut:
    """A socket cut: per user, how many packets the simulator had sent before it, and when (media ms)."""

    sent_before: dict[int, int]
    at_ms: int


@dataclass
class Ctx:
    """What a scenario gets: the gateway, the simulator, the stream, and helpers to wait on media."""

    gw: Gateway
    sim: Simulator
    stream: SimStream
    cuts: list[Cut] = field(default_factory=list)
    outages: list[tuple[int, int]] = field(default_factory=list)

    def last_ms(self) -> int:
        """Media time (ms after ``rtms_started``) of the newest audio packet sent."""
        s = self.stream
        return max((ts for packets in s.sent.audio.values() for ts, _ in packets), default=s.started_ms) - s.started_ms

    async def flow(self, ms: int, timeout_s: float = 20.0) -> None:
        """Wait until ``ms`` more media time has been sent (and so the stream is up again)."""
        target = self.last_ms() + ms
        await wait_for(lambda: self.last_ms() >= target, timeout_s=timeout_s)

    def mark_cut(self) -> None:
        """Right before a socket is cut (the harness calls it for the simulator's own cuts)."""
        self.cuts.append(Cut({uid: len(p) for uid, p in self.stream.sent.audio.items()}, self.stream.elapsed_ms()))

    def outage(self) -> None:
        """Call once the stream is back: media time from the last cut to now was produced while no
        socket was ready, so whatever audio the ring holds there came from the simulator's replay."""
        assert self.cuts, "no cut yet"
        self.outages.append((self.cuts[-1].at_ms, self.stream.elapsed_ms()))

    def entry(self) -> Any:
        return self.gw.streams[self.stream.stream_id]

    def received(self) -> int:
        """Audio messages the gateway has taken in on this stream so far."""
        return int(self.entry().stats().get("frames", {}).get("audio", 0))


@dataclass
class Result:
    """One finished stream: the simulator's records, what the consumer read, the gateway's final stats."""

    stream: SimStream
    npz: Any
    ended: dict[str, Any]
    cuts: list[Cut]
    outages: list[tuple[int, int]]
    engine: bool


Scenario = Callable[[Ctx], Awaitable[None]]


def _watch_cuts(ctx: Ctx) -> None:
    """Mark a cut whenever the simulator cuts a socket of this stream (loss, keep-alive timeout, failover)."""
    s = ctx.stream
    for name in ("interrupt_signaling", "_media_lost"):
        def cut(*args: Any, _orig: Any = getattr(s, name), **kwargs: Any) -> Any:
            ctx.mark_cut()
            return _orig(*args, **kwargs)

        setattr(s, name, cut)
    failover = s.failover

    async def failover_cut(**kwargs: Any) -> None:
        await s.sim._ensure_listener(1 if s.listener == 0 else 0)  # so the cut is marked at the abort itself
        ctx.mark_cut()
        await failover(**kwargs)

    s.failover = failover_cut  # type: ignore[method-assign]


async def _settle(ctx: Ctx, polls: int = 5) -> None:
    """Wait until the gateway has read everything it will read (its count stops moving)."""
    sent = ctx.stream.sent.media_counts.get("audio", 0)
    last, same = -1, 0
    for _ in range(2000):
        n = ctx.received()
        if n >= sent:
            return
        same = same + 1 if n == last else 0
        if same >= polls:  # a cut socket lost the rest
            return
        last = n
        await asyncio.sleep(0.05)


async def run_stream(
    sim_factory: Any,
    tmp_path: Any,
    scenario: Scenario,
    *,
    engine: bool = True,
    content: MeetingContent | None = None,
    backlog_ms: int = 300,
    lead_ms: int = 500,
    tail_ms: int = 300,
    sim: dict[str, Any] | None = None,
    session: dict[str, Any] | None = None,
    before: Callable[[SimStream], None] | None = None,
    end: bool = True,
) -> Result:
    """One stream through the gateway: ``lead_ms`` of media, ``scenario``, ``tail_ms`` more, pause, end.

    ``before`` sets faults before any audio is produced; ``session`` overrides the gateway's
    ``SessionSettings`` (``reconnect_backoff_s`` is ``BACKOFF_S`` unless given). With ``end`` the
    harness pauses the stream, lets the gateway take in what was sent and terminates it; without,
    the scenario ends the stream itself. Returns what the consumer process read.
    """
    shm_dir, prefix = str(tmp_path), f"rtms-res-{os.getpid()}"
    config = make_config(sessions=SessionsConfig(media_kinds=("audio",), media_params={"audio": {"data_opt": 2}}))
    config = dataclasses.replace(config, publish=PublishConfig(shm=True, shm_dir=shm_dir, shm_prefix=prefix), audio=AudioSettings(engine=engine))
    gw = Gateway(config)
    overrides = {"reconnect_backoff_s": BACKOFF_S, **(session or {})}
    make_session = gw._session_factory

    def fast_session(event: Any, sink: Any, on_event: Any) -> Any:  # the app's own session, shorter timers
        s = make_session(event, sink, on_event)
        s.settings = dataclasses.replace(s.settings, **overrides)
        return s

    gw._session_factory = fast_session
    ended: list[dict[str, Any]] = []
    gw.event_listeners.append(lambda sid, doc: ended.append(doc) if doc.get("type") == "stream_ended" else None)
    await gw.start()
    sim_ = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url, **(sim or {}))
    proc = None
    out_path = os.path.join(shm_dir, "rings.npz")
    content = content or MeetingContent(3, seed=SEED, late_join_ms=None, leave_ms=None)
    try:
        stream = sim_.create_stream(content=content, backlog_ms=backlog_ms)
        if before is not None:
            before(stream)
        ctx = Ctx(gw, sim_, stream)
        _watch_cuts(ctx)
        await wait_for(lambda: len(client.list_streams(prefix, shm_dir)) == 1, timeout_s=20)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.audio.ring_dump_proc", prefix, stream.stream_id, out_path, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "RTMS_SHM_DIR": shm_dir})
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
        await wait_for(lambda: ctx.last_ms() >= backlog_ms + lead_ms, timeout_s=20)
        await scenario(ctx)
        if end:
            await ctx.flow(tail_ms)
            stream.pause()  # nothing more is produced; let the gateway take in what was sent
            await _settle(ctx)
            stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=20)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0 and out.strip().endswith(b"done"), out  # "done": it saw ENDED
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await gw.close()
    assert sorted(os.listdir(shm_dir)) == ["rings.npz"]  # segment and directory removed
    assert len(ended) == 1, ended  # one stream, one end: the same segment all along
    return Result(stream, np.load(out_path), ended[0], ctx.cuts, ctx.outages, engine)


@dataclass
class Checked:
    """What :func:`check_rings` found: packets lost (sent, never landed), and the frames compared."""

    lost: list[tuple[int, int]]
    frames: int
    gap_frames: int
    users: list[int]


def check_rings(res: Result) -> Checked:
    """Every ring against the content and the simulator's record (see the module doc)."""
    sent, npz = res.stream.sent, res.npz
    t0 = res.stream.started_ms
    origin = int(npz["origin_ms"])
    users = sorted(sent.audio)
    assert users, "no audio was sent"
    keys = {k.rsplit(".", 1)[0] for k in npz.files if k.endswith(".data")}
    # one ring per participant that sent audio (and the mix with the engine): no audio under another id
    assert keys == {f"user_{u}" for u in users} | ({"user_0"} if res.engine else set()), keys
    rings = {u: Ring(npz, f"user_{u}") for u in users}
    for k in keys:
        assert Ring(npz, k).lost == 0, f"{k}: frames lost to an overrun"
    distinct = {u: sorted({ts for ts, _ in sent.audio[u]}) for u in users}
    a = min((ts - origin) * RATE // 1000 for u in users for ts in distinct[u][:1])
    b = max((ts - origin) * RATE // 1000 + SPP for u in users for ts in distinct[u][-1:])
    lost: list[tuple[int, int]] = []
    received: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    frames = gap_frames = 0
    for u in users:
        ring = rings[u]
        ref = expected_int16(res.stream.content, u, RATE, 0, (distinct[u][-1] - t0) + 40)
        data, gap = ring.window(a, b)
        covered = np.zeros(b - a, bool)
        expect = np.zeros(b - a, np.int16)
        for ts in distinct[u]:
            i = (ts - origin) * RATE // 1000 - a
            j = (ts - t0) * RATE // 1000
            want = ref[j : j + SPP]
            got, got_gap = data[i : i + SPP], gap[i : i + SPP]
            if got_gap.all() and not got.any():
                lost.append((u, ts))
                continue
            assert not got_gap.any(), f"user {u} packet {ts - t0} ms: partly marked as a gap"
            np.testing.assert_array_equal(got, want, err_msg=f"user {u} packet {ts - t0} ms: samples")
            covered[i : i + SPP] = True
            expect[i : i + SPP] = want
        np.testing.assert_array_equal(gap, ~covered, err_msg=f"user {u}: gap marks")
        np.testing.assert_array_equal(data, expect, err_msg=f"user {u}: samples outside the packets")
        received[u] = (data.astype(np.int32), gap)
        frames += int(covered.sum())
        gap_frames += int((~covered).sum())
    if res.engine:  # the mix: saturating sum of what each participant delivered; gap where nobody had audio
        mixed = Ring(npz, "user_0")
        data, gap = mixed.window(a, b)
        total = np.clip(sum(d for d, _ in received.values()), -32768, 32767).astype(np.int16)
        np.testing.assert_array_equal(gap, np.logical_and.reduce([g for _, g in received.values()]), err_msg="mixed: gap marks")
        np.testing.assert_array_equal(data, total, err_msg="mixed: samples")
    return Checked(sorted(lost, key=lambda p: (p[1], p[0])), frames, gap_frames, users)


def assert_lost_accounted(res: Result, checked: Checked, late: frozenset[tuple[int, int]] = frozenset()) -> int:
    """Lost packets only where a socket was cut: among the last sent on it, bounded, and counted.

    ``late``: packets the scenario expects the gateway to read but the engine to drop as late (sent
    after their reorder window closed): they must be exactly the marked-gap packets not explained by
    a cut, and they count as read. The gateway's own count of audio messages read must equal what
    the simulator sent minus the copies lost, so no packet is unaccounted for on either side.
    Returns how many packets of the outages (:meth:`Ctx.outage`) were replayed after the
    reconnection, all of them in the rings.
    """
    sent = res.stream.sent
    assert late <= set(checked.lost), f"expected late packets that landed: {sorted(late - set(checked.lost))}"
    checked = dataclasses.replace(checked, lost=[p for p in checked.lost if p not in late])
    if not res.cuts:
        assert checked.lost == [], f"packets lost without any socket cut: {checked.lost}"
    allowed: set[tuple[int, int]] = set()
    for cut in res.cuts:
        for u, n in cut.sent_before.items():
            allowed.update((u, ts) for ts, _ in sent.audio[u][max(0, n - IN_FLIGHT_MAX) : n])
    stray = [p for p in checked.lost if p not in allowed]
    assert not stray, f"lost packets that were not in flight at a cut: {stray} (cuts {[c.sent_before for c in res.cuts]})"
    assert len(checked.lost) <= IN_FLIGHT_MAX * max(1, len(res.cuts))
    copies = sum(1 for u, ts in checked.lost for t, _ in sent.audio[u] if t == ts)
    read = int(res.ended["stats"].get("frames", {}).get("audio", -1))
    assert read == sent.media_counts.get("audio", 0) - copies, (read, sent.media_counts, copies)
    t0, lost = res.stream.started_ms, set(checked.lost)
    replayed = {(u, ts) for u, packets in sent.audio.items() for ts, _ in packets for a, b in res.outages if a <= ts - t0 < b}
    assert not replayed & lost, f"replayed packets lost: {sorted(replayed & lost)}"
    return len(replayed)


def engine_stats(res: Result) -> dict[str, int]:
    return dict(res.ended["stats"].get("audio_engine", {}))


def talk_times(content: MeetingContent, t0_ms: int, t1_ms: int) -> dict[int, list[int]]:
    """Per user, media times (ms, multiples of 20) in ``[t0, t1)`` where it sends a packet."""
    params = AudioParams(data_opt=2)
    out: dict[int, list[int]] = {}
    for t in range(t0_ms - t0_ms % 20, t1_ms, 20):
        for uid, _, _ in content.audio_packets(params, t):
            out.setdefault(uid, []).append(t)
    return out


def inside_turn(content: MeetingContent, t0_ms: int, t1_ms: int, need: int, k: int = 0) -> tuple[int, int]:
    """``(user, t)``: the k-th user's first time in ``[t0, t1)`` with ``need`` packets before and after in its turn."""
    talk = talk_times(content, t0_ms - 20 * need, t1_ms + 20 * need)
    users = sorted(talk)
    for uid in users[k % len(users) :] + users[: k % len(users)]:
        ts = set(talk[uid])
        for t in talk[uid]:
            if t0_ms <= t < t1_ms and all(t + 20 * j in ts for j in range(-need, need + 1)):
                return uid, t
    raise AssertionError(f"nobody talks {need} packets either side within [{t0_ms}, {t1_ms}) ms")
