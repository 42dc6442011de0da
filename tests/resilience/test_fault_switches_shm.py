"""Issue 6, the simulator's fault switches (gateway/sim/server.py ``Faults``, ``AudioFaults`` and the
stream actions), one test each, checked in shared memory by another process.

Same chain and checks as ``test_failover_shm`` (see :mod:`tests.resilience.harness`): per participant
and for the mix, every received packet's exact samples at its timestamp's index, duplicates adding
nothing, every other frame a marked gap, no overrun, ENDED once; lost packets only in flight at a
socket cut, bounded, and matching the gateway's count of messages read. Per-packet faults are
placed inside a speaker's turn, so each one is visible in the ring.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.protocol import Status
from gateway.sim.server import INJECTIONS, AudioFaults
from tests.gateway.conftest import wait_for
from tests.resilience.harness import (
    RATE,
    Ctx,
    Result,
    assert_lost_accounted,
    check_rings,
    engine_stats,
    inside_turn,
    run_stream,
    talk_times,
)

pytestmark = pytest.mark.timeout(60, method="thread")

REORDER_MS = 60  # [audio] reorder_ms default


def media_ok(ctx: Ctx) -> int:
    return sum(1 for _, status in ctx.stream.client.media_handshakes if status == 0)


async def test_keepalive_stop_the_client_watchdog_reconnects(sim_factory: Any, tmp_path: Any) -> None:
    """The server stops sending keep-alives (and no events are subscribed): signaling goes silent, the
    gateway's watchdog re-handshakes everything, and the audio around it stays exact."""

    async def scenario(ctx: Ctx) -> None:
        sent = dict(ctx.stream.client.keepalive_sent)
        ctx.stream.faults.send_keepalives = False
        await wait_for(lambda: ctx.entry().stats().get("reconnects", 0) >= 1, timeout_s=10)
        assert ctx.stream.client.keepalive_sent == sent  # not one keep-alive while switched off
        ctx.stream.faults.send_keepalives = True
        await wait_for(lambda: media_ok(ctx) >= 2, timeout_s=10)
        await ctx.flow(40)
        ctx.outage()

    res = await run_stream(sim_factory, tmp_path, scenario, session={"keepalive_watchdog_s": 0.6, "subscribe_events": ()})
    # one re-handshake; the server's rtms_interrupted for the socket the gateway closed is recognised
    # as stale (the new socket answers msg 19), not acted on: no reconnect storm
    assert res.stream.client.signaling_accepted == 2
    assert res.ended["stats"]["reconnects"] == 1 and res.ended["stats"]["stale_interruptions"] == 1
    checked = check_rings(res)
    assert assert_lost_accounted(res, checked) > 0
    assert res.cuts  # the watchdog's re-handshake cut the old sockets


async def test_ignore_client_keepalive_timeout_and_recovery(sim_factory: Any, tmp_path: Any) -> None:
    """The server ignores everything the client sends: after three unanswered keep-alives it drops
    the connection (keep-alive timeout), the gateway reconnects once the server listens again."""

    timeouts: list[str] = []

    async def scenario(ctx: Ctx) -> None:
        s = ctx.stream
        keepalive_timeout = s._keepalive_timeout

        def listen_again(conn: Any) -> None:  # the server listens again as it drops the silent socket, so
            timeouts.append(conn.label)  # the reconnect's msg 7 is never ignored (no race with this test)
            s.faults.ignore_client = False
            keepalive_timeout(conn)

        s._keepalive_timeout = listen_again  # type: ignore[method-assign]
        s.faults.ignore_client = True
        await wait_for(lambda: bool(timeouts), timeout_s=10)  # three keep-alives unanswered (as far as it knows)
        await wait_for(lambda: ctx.stream.client.signaling_accepted + media_ok(ctx) >= 3, timeout_s=10)
        await ctx.flow(40)
        ctx.outage()

    res = await run_stream(sim_factory, tmp_path, scenario)
    assert timeouts and timeouts[0] in ("signaling", "media:audio")
    checked = check_rings(res)
    assert assert_lost_accounted(res, checked) > 0
    assert res.ended["stats"]["reconnects"] + res.ended["stats"]["media_reconnects"] >= 1


async def test_reject_signaling_during_a_reconnect(sim_factory: Any, tmp_path: Any) -> None:
    """Signaling lost; the first re-handshake is refused (duplicate: the server still holds the old
    one), the retry after the backoff succeeds: the longer outage is replayed in full."""

    async def scenario(ctx: Ctx) -> None:
        ctx.stream.reject_next_signaling(Status.DUPLICATE_SIGNAL_REQUEST)
        ctx.stream.drop_signaling()
        await wait_for(lambda: ctx.stream.client.signaling_accepted == 2 and media_ok(ctx) == 2, timeout_s=10)
        await ctx.flow(40)
        ctx.outage()

    res = await run_stream(sim_factory, tmp_path, scenario)
    assert len(res.stream.client.signaling_rejected) == 1
    checked = check_rings(res)
    assert assert_lost_accounted(res, checked) >= 3 * 0.2 * 1000 // 20 // 3  # at least the backoff's worth


async def test_reject_media_during_a_reconnect(sim_factory: Any, tmp_path: Any) -> None:
    """The audio socket drops; its first re-handshake is refused (internal exception), the retry works."""

    async def scenario(ctx: Ctx) -> None:
        ctx.stream.reject_next_media(Status.INTERNAL_EXCEPTION, "audio")
        ctx.stream.abort_media("audio")
        await wait_for(lambda: media_ok(ctx) == 2, timeout_s=10)
        await ctx.flow(40)
        ctx.outage()

    res = await run_stream(sim_factory, tmp_path, scenario)
    assert [status for _, status in res.stream.client.media_handshakes].count(0) == 2
    assert len(res.stream.client.media_handshakes) == 3 and res.stream.client.signaling_accepted == 1
    checked = check_rings(res)
    assert assert_lost_accounted(res, checked) > 0


async def test_refuse_other_listeners_after_failover(sim_factory: Any, tmp_path: Any) -> None:
    """After a failover the old server refuses the stream; a later signaling loss must reconnect to
    the new server (the failover's URLs), never the old one."""

    async def scenario(ctx: Ctx) -> None:
        await ctx.stream.failover(refuse_old=True)
        await wait_for(lambda: ctx.entry().failovers == 1 and media_ok(ctx) == 2, timeout_s=10)
        await ctx.flow(100)
        ctx.outage()
        ctx.stream.drop_signaling()
        await wait_for(lambda: ctx.entry().interruptions == 1 and media_ok(ctx) == 3, timeout_s=10)
        await ctx.flow(40)
        ctx.outage()

    res = await run_stream(sim_factory, tmp_path, scenario)
    assert res.stream.faults.refuse_other_listeners and res.stream.listener == 1
    assert res.stream.client.signaling_rejected == [] and res.stream.client.signaling_accepted == 3
    checked = check_rings(res)
    assert assert_lost_accounted(res, checked) > 0 and len(res.cuts) == 2


def _per_packet(kind: str, content: Any) -> dict[str, list[tuple[int, int]]]:
    """Two packets (different speakers, inside their turns) for ``kind``: media times in ms."""
    return {kind: [inside_turn(content, 160, 460, 3, 0), inside_turn(content, 520, 900, 3, 1)]}


def _turn_end(content: Any, t0_ms: int, t1_ms: int) -> tuple[int, int, int]:
    """``(user, t, t_next)``: a turn's last packet in ``[t0, t1)`` and that user's next packet, > reorder window later."""
    talk = talk_times(content, 0, t1_ms + 2000)
    for uid in sorted(talk):
        ts = talk[uid]
        for k, t in enumerate(ts[:-1]):
            if t0_ms <= t < t1_ms and ts[k + 1] - t > REORDER_MS + 20:
                return uid, t, ts[k + 1]
    raise AssertionError(f"no turn ends within [{t0_ms}, {t1_ms}) ms")


@pytest.mark.parametrize("kind", ["drop", "duplicate", "swap", "delay", "delay_past_turn"])
async def test_audio_fault(sim_factory: Any, tmp_path: Any, kind: str) -> None:
    """One AudioFaults switch at two packets inside speakers' turns (backlog burst and live).

    ``delay_past_turn``: a turn's last packet swapped with the next one of its speaker, which comes
    only with the next turn, well past the reorder window: the gateway reads it, the engine drops it
    as late (never patched into published audio) and its samples stay a marked gap.
    """
    from gateway.sim.content import MeetingContent
    from tests.resilience.harness import SEED

    content = MeetingContent(3, seed=SEED, late_join_ms=None, leave_ms=None)
    if kind == "delay_past_turn":
        u, t, t_next = _turn_end(content, 400, 1000)
        picks = [(u, t)]
    else:
        picks = _per_packet(kind, content)[kind]

    def before(stream: Any) -> None:
        f, t0 = stream.faults.audio, stream.started_ms
        keys = {(u, t0 + t) for u, t in picks}
        if kind == "delay":
            f.delay = dict.fromkeys(keys, 3)
        elif kind == "delay_past_turn":
            f.swap = keys
        else:
            setattr(f, kind, keys)

    async def scenario(ctx: Ctx) -> None:
        await ctx.flow(400)

    res = await run_stream(sim_factory, tmp_path, scenario, content=content, before=before)
    sent, t0 = res.stream.sent, res.stream.started_ms
    keys = sorted((u, t0 + t) for u, t in picks)
    stats = engine_stats(res)
    checked = check_rings(res)
    if kind == "delay_past_turn":
        assert sent.audio_reordered == [(u, t0 + t, 1)]
        order = [ts for ts, _ in sent.audio[u]]
        assert order[order.index(t0 + t) - 1] == t0 + t_next  # went out with the next turn
        assert checked.lost == keys  # read, dropped as late: a marked gap exactly over it
        assert_lost_accounted(res, checked, late=frozenset(keys))
        assert stats["late_packets"] == 1 and stats["reorders"] == 0 and stats["duplicates"] == 0
        return
    assert_lost_accounted(res, checked)
    assert stats["late_packets"] == 0 and stats["decode_errors"] == 0
    if kind == "drop":
        assert sorted(sent.audio_dropped) == keys and not sent.audio_duplicated and not sent.audio_reordered
        for u, ts in keys:  # never sent: a marked hole exactly over its samples, neighbours delivered
            delivered = {t for t, _ in sent.audio[u]}
            assert ts not in delivered and ts - 20 in delivered and ts + 20 in delivered
        assert stats["duplicates"] == 0 and stats["reorders"] == 0
    elif kind == "duplicate":
        assert sorted(sent.audio_duplicated) == keys and stats["duplicates"] == 2
        for u, ts in keys:
            assert [t for t, _ in sent.audio[u]].count(ts) == 2
    else:
        n = 1 if kind == "swap" else 3
        assert sorted((u, ts) for u, ts, _ in sent.audio_reordered) == keys and {d for *_, d in sent.audio_reordered} == {n}
        assert stats["reorders"] == 2 and stats["duplicates"] == 0
        for u, ts in keys:  # sent after the n packets that followed it, and still in place
            order = [t for t, _ in sent.audio[u]]
            assert order[order.index(ts) - n : order.index(ts)] == [ts + 20 * k for k in range(1, n + 1)]


def _release_ms(content: Any, user: int, ts_ms: int, n: int, end_ms: int) -> int | None:
    """Media time of the packet whose production lets a packet held for ``n`` go out (None: never)."""
    produced = talk_times(content, 0, end_ms)[user]
    k = produced.index(ts_ms) + n
    return produced[k] if k < len(produced) else None


async def test_random_drop_duplicate_reorder(sim_factory: Any, tmp_path: Any) -> None:
    """Seeded random faults on every packet (drop 5 %, duplicate 5 %, reorder 8 % by 1..3 packets).

    Exact accounting: a dropped packet is a marked gap; a duplicate adds nothing; a reordered packet
    lands in place unless it went out more than the reorder window after its time (held across the
    end of its speaker's turn): then the engine drops it as late (by design, never patched in) and
    it stays a marked gap. The late ones are exactly those (this seed has one) and the engine's
    ``late_packets``.
    """
    from gateway.sim.content import MeetingContent
    from tests.resilience.harness import SEED

    content = MeetingContent(3, seed=SEED, late_join_ms=None, leave_ms=None)

    def before(stream: Any) -> None:
        stream.faults.audio = AudioFaults(drop_p=0.05, duplicate_p=0.05, reorder_p=0.08, max_delay=3, seed=14)

    async def scenario(ctx: Ctx) -> None:
        await ctx.flow(1200)

    res = await run_stream(sim_factory, tmp_path, scenario, content=content, before=before)
    sent, t0 = res.stream.sent, res.stream.started_ms
    assert len(sent.audio_dropped) >= 3 and len(sent.audio_duplicated) >= 3 and len(sent.audio_reordered) >= 5
    checked = check_rings(res)
    stats = engine_stats(res)
    end_ms = max(ts for p in sent.audio.values() for ts, _ in p) - t0 + 20
    delivered = {(u, ts) for u, p in sent.audio.items() for ts, _ in p}
    may_be_late = set()
    for u, ts, n in sent.audio_reordered:
        if (u, ts) in delivered:
            release = _release_ms(content, u, ts - t0, n, end_ms + 200)
            assert release is not None
            if release - (ts - t0) > REORDER_MS:
                may_be_late.add((u, ts))
    late = set(checked.lost)
    assert late == may_be_late and late, f"late {sorted(late)}, held past the reorder window {sorted(may_be_late)}"
    assert stats["late_packets"] == len(late) and stats["duplicates"] == len(sent.audio_duplicated)
    assert not res.cuts
    assert_lost_accounted(res, checked, late=frozenset(late))  # every message read; none lost


@pytest.mark.parametrize("engine", [True, False], ids=["engine", "native"])
async def test_pause_resume(sim_factory: Any, tmp_path: Any, engine: bool) -> None:
    """Host pause (msg 9 PAUSED), 300 ms, resume: media captured while paused is never sent and is a
    marked gap in every ring; audio on both sides of it exact."""
    span: list[int] = []

    async def scenario(ctx: Ctx) -> None:
        ctx.stream.pause()
        span.append(ctx.stream.elapsed_ms())
        await wait_for(lambda: ctx.stream.elapsed_ms() >= span[0] + 300, timeout_s=5)
        ctx.stream.resume()
        span.append(ctx.stream.elapsed_ms())
        await ctx.flow(100)

    res = await run_stream(sim_factory, tmp_path, scenario, engine=engine)
    sent, t0 = res.stream.sent, res.stream.started_ms
    inside = [ts for p in sent.audio.values() for ts, _ in p if span[0] <= ts - t0 and ts - t0 + 20 <= span[1] - 20]
    assert inside == [] and span[1] - span[0] >= 300
    checked = check_rings(res)
    assert_lost_accounted(res, checked)
    if engine:
        from tests.audio.test_pipeline_e2e import Ring

        origin = int(res.npz["origin_ms"])
        a, b = (t0 + span[0] + 20 - origin) * RATE // 1000, (t0 + span[1] - 20 - origin) * RATE // 1000
        _, gap = Ring(res.npz, "user_0").window(a, b)
        assert gap.all() and b - a > 200 * RATE // 1000  # the mix says "nothing arrived" over the pause


async def test_injected_malformed_frames(sim_factory: Any, tmp_path: Any) -> None:
    """Every kind of malformed frame on the audio socket (INJECTIONS): dropped and counted, the socket
    and the audio around them untouched."""

    async def scenario(ctx: Ctx) -> None:
        for what in INJECTIONS:
            ctx.stream.inject(what)
            await ctx.flow(40)

    res = await run_stream(sim_factory, tmp_path, scenario)
    checked = check_rings(res)
    assert_lost_accounted(res, checked)
    assert not res.cuts and len(res.stream.client.media_handshakes) == 1
    assert res.ended["stats"]["listener_drops"] == len(INJECTIONS) - 1  # the unknown msg_type is skipped silently


async def test_move_media_then_signaling_loss(sim_factory: Any, tmp_path: Any) -> None:
    """Media URLs move to the second server (no webhook); the reconnect after a signaling loss gets
    them in msg 2, media comes from there, signaling stays on the first."""

    async def scenario(ctx: Ctx) -> None:
        await ctx.stream.move_media()
        ctx.stream.drop_signaling()
        await wait_for(lambda: ctx.entry().interruptions == 1 and media_ok(ctx) == 2, timeout_s=10)
        await ctx.flow(40)
        ctx.outage()
        assert ctx.stream.media["audio"].listener == 1 and ctx.stream.signaling is not None and ctx.stream.signaling.listener == 0

    res = await run_stream(sim_factory, tmp_path, scenario)
    checked = check_rings(res)
    assert assert_lost_accounted(res, checked) > 0


async def test_duplicate_webhooks(sim_factory: Any, tmp_path: Any) -> None:
    """Every webhook delivered three times, plus a retried rtms_started mid-stream: one session, no
    reconnect, not one packet lost or doubled."""
    deliveries: list[Any] = []

    async def scenario(ctx: Ctx) -> None:
        ctx.stream.send_duplicate_started(2)
        await ctx.sim.webhooks.drain()
        deliveries.extend(d for d in ctx.sim.webhooks.deliveries if d.event.endswith("rtms_started"))
        await ctx.flow(200)

    res: Result = await run_stream(sim_factory, tmp_path, scenario, sim={"webhook_duplicates": 3})
    assert len(deliveries) == 5 and {d.status for d in deliveries} <= {200, 409} and deliveries[0].status == 200
    assert res.stream.client.signaling_handshakes == 1 and len(res.stream.client.media_handshakes) == 1
    assert res.ended["stats"]["reconnects"] == 0
    checked = check_rings(res)
    assert_lost_accounted(res, checked)
    assert not res.cuts and checked.frames > 0
