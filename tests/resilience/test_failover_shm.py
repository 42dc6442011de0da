"""Issue 6, failover scenarios (PROTOCOL.md 6), checked in shared memory by another process.

Each test runs simulator -> real Gateway (shm; audio engine, and the native fast path where named)
-> ``tests.audio.ring_dump_proc`` and then checks, per participant ring and the mix
(:func:`tests.resilience.harness.check_rings`): every received packet's exact samples at the index
its timestamp gives, duplicates adding nothing, every other frame a marked gap, no overrun, and the
stream ENDED in shm once (the same segment across every reconnection). Packets lost are accounted
for (:func:`~tests.resilience.harness.assert_lost_accounted`): none unless a socket was cut, and
then only in-flight ones, bounded, and matching the gateway's own count of messages read. Audio
produced while the stream was down is replayed by the simulator after the reconnection (its
per-kind cursor, PROTOCOL.md 6); those packets must all be in the rings at their own timestamps.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway import protocol
from gateway.protocol import EventType, MediaType, StopReason, StreamState
from gateway.sim.server import now_ms
from tests.gateway.conftest import wait_for
from tests.resilience.harness import Ctx, assert_lost_accounted, check_rings, engine_stats, run_stream

pytestmark = pytest.mark.timeout(60, method="thread")

ENGINE = pytest.mark.parametrize("engine", [True, False], ids=["engine", "native"])


def media_ok(ctx: Ctx) -> int:
    """Accepted media handshakes so far."""
    return sum(1 for _, status in ctx.stream.client.media_handshakes if status == 0)


@ENGINE
async def test_server_failover(sim_factory: Any, tmp_path: Any, engine: bool) -> None:
    """New rtms_started with the second server's URLs: everything reconnects there, the replay lands."""

    async def scenario(ctx: Ctx) -> None:
        await ctx.stream.failover()  # every socket dropped; new rtms_started with the second listener's URLs
        await wait_for(lambda: ctx.entry().failovers == 1 and media_ok(ctx) == 2, timeout_s=10)
        await ctx.flow(40)
        ctx.outage()

    res = await run_stream(sim_factory, tmp_path, scenario, engine=engine)
    assert res.stream.listener == 1 and res.stream.client.signaling_accepted == 2
    checked = check_rings(res)
    assert assert_lost_accounted(res, checked) > 0
    assert len(res.cuts) == 1 and len(checked.users) >= 2


async def test_signaling_loss_reconnects_to_the_original_urls(sim_factory: Any, tmp_path: Any) -> None:
    """Signaling dropped, *.rtms_interrupted: signaling and media back at the same URLs, replay lands."""

    async def scenario(ctx: Ctx) -> None:
        ctx.stream.drop_signaling()
        await wait_for(lambda: ctx.entry().interruptions == 1 and media_ok(ctx) == 2, timeout_s=10)
        await ctx.flow(40)
        ctx.outage()

    res = await run_stream(sim_factory, tmp_path, scenario)
    assert res.stream.listener == 0 and res.stream.client.signaling_accepted == 2
    checked = check_rings(res)
    assert assert_lost_accounted(res, checked) > 0
    assert res.ended["stats"]["reconnects"] == 1


def _silent_cut(signal: str) -> Any:
    """Cut the audio socket without the simulator's own reaction, then send only ``signal``."""

    def cut(ctx: Ctx) -> None:
        s = ctx.stream
        conn = s.media["audio"]
        ctx.mark_cut()
        conn.abort()  # marks it server-closed: the simulator sends nothing about it by itself
        now = now_ms()
        if signal == "event7":
            s._send_sig(protocol.build_event(EventType.MEDIA_CONNECTION_INTERRUPTED, now, media_type=int(MediaType.AUDIO)))
        elif signal == "state":
            s.send_state(StreamState.INTERRUPTED, StopReason.STOP_BC_DATA_CONNECTION_INTERRUPTED)

    return cut


@pytest.mark.parametrize(
    ("engine", "signal"),
    [(True, "both"), (False, "both"), (True, "event7"), (True, "state"), (True, "none")],
    ids=["engine-event7+state", "native-event7+state", "engine-event7", "engine-state-interrupted", "engine-no-signal"],
)
async def test_media_only_loss(sim_factory: Any, tmp_path: Any, engine: bool, signal: str) -> None:
    """The audio socket drops while signaling stays: only it reconnects (msg 3 + msg 7), replay lands.

    ``both``: the simulator's own reaction (event 7 MEDIA_CONNECTION_INTERRUPTED and msg 8
    INTERRUPTED reason 14); the other variants send one of them, or nothing (the gateway then
    retries after its first backoff step).
    """

    async def scenario(ctx: Ctx) -> None:
        if signal == "both":
            ctx.stream.abort_media("audio")
        else:
            _silent_cut(signal)(ctx)
        await wait_for(lambda: media_ok(ctx) == 2, timeout_s=10)
        await ctx.flow(40)
        ctx.outage()

    res = await run_stream(sim_factory, tmp_path, scenario, engine=engine)
    assert res.stream.client.signaling_accepted == 1 and res.ended["stats"]["media_reconnects"] == 1
    checked = check_rings(res)
    assert assert_lost_accounted(res, checked) > 0


async def test_termination_ends_the_stream_with_its_audio_intact(sim_factory: Any, tmp_path: Any) -> None:
    """A server stop reason mid-speech (no pause first): ENDED in shm, every packet sent before it in place."""
    reason = StopReason.STOP_BC_INTERNAL_EXCEPTION

    async def scenario(ctx: Ctx) -> None:
        await ctx.flow(200)
        ctx.stream.terminate(reason)

    res = await run_stream(sim_factory, tmp_path, scenario, end=False)
    assert res.ended["outcome"] == "closed" and res.ended["stats"]["stop_reason"] == int(reason)
    checked = check_rings(res)
    assert_lost_accounted(res, checked)  # no cut: nothing lost, the tail included
    stats = engine_stats(res)
    assert stats["late_packets"] == 0 and stats["duplicates"] == 0
