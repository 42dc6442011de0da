"""Keep-alives on every socket and the 3-missed rule on signaling and media (PROTOCOL.md 2.12, 6)."""

from __future__ import annotations

import pytest

from gateway import protocol
from gateway.protocol import EventType, MsgType, StopReason, StreamState
from gateway.sim import Simulator
from tests.sim.helpers import Session, WebhookSink, config, wait_for

# time_scale 0.01: keep-alive every 0.1 s, signaling window 0.6 s, media window 0.65 s.
FAST = {"time_scale": 0.01}


async def test_keepalives_on_every_socket_answers_accepted() -> None:
    async with Simulator(config(keepalive_interval_s=0.05)) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None, "transcript": None})
        assert await wait_for(lambda: all(stream.client.keepalive_accepted.get(k, 0) >= 4 for k in ("signaling", "media:audio", "media:transcript")))
        req = await s.signaling.recv_type(MsgType.KEEP_ALIVE_REQ)  # type: ignore[union-attr]
        assert isinstance(req["timestamp"], int) and isinstance(req["sequence"], int)  # the official SDK answers only with a sequence
        assert not stream.client.keepalive_rejected and not stream.terminated
        await s.close()


async def test_wrong_timestamp_echo_is_not_an_answer() -> None:
    async with Simulator(config(**FAST)) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream)
        await s.join({"audio": None})
        for _ in range(3):
            req = await s.signaling.recv_type(MsgType.KEEP_ALIVE_REQ)  # type: ignore[union-attr]
            await s.signaling.send({"msg_type": 13, "timestamp": req["timestamp"] + 1})  # type: ignore[union-attr]
        assert await wait_for(lambda: stream.terminated)
        assert stream.client.keepalive_rejected["signaling"] >= 3 and "signaling" not in stream.client.keepalive_accepted
        await s.close()


async def test_signaling_three_missed_interrupts_then_ends_with_24() -> None:
    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url, **FAST)) as sim:
        stream = sim.create_stream()
        s = Session(sim, stream)  # answers nothing
        await s.join({"audio": None})
        assert await s.signaling.closed(2)  # type: ignore[union-attr]
        assert await s.media["audio"].closed(2)
        assert s.signaling.keepalives == 3  # type: ignore[union-attr]  # exactly three unanswered, then the cut
        assert stream.state == StreamState.INTERRUPTED and not stream.terminated
        assert await wait_for(lambda: stream.terminated, 3)
        assert stream.stop_reason == StopReason.STOP_BC_KEEP_ALIVE_TIMEOUT
        await sim.webhooks.drain()
        assert sink.events() == ["meeting.rtms_started", "meeting.rtms_interrupted", "meeting.rtms_stopped"]
        stopped = sink.bodies()[-1]["payload"]
        assert stopped["stop_reason"] == 24 and stopped["rtms_stream_id"] == stream.stream_id
        await s.close()


async def test_signaling_reconnect_within_window_replays_buffered_audio() -> None:
    async with Simulator(config(time_scale=0.05)) as sim:  # keep-alive 0.5 s, window 3 s
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        await s.media["audio"].drain(0.2)
        stream.drop_signaling()
        assert await s.signaling.closed() and await s.media["audio"].closed()  # type: ignore[union-attr]
        before = [c["content"]["timestamp"] for c in s.media["audio"].received if c["msg_type"] == 14]
        await s.close()
        r = Session(sim, stream, auto_keepalive=True)
        await r.join({"audio": None})
        after = [m["content"]["timestamp"] for m in await r.media["audio"].drain(0.3) if m["msg_type"] == 14]
        assert after[0] == before[-1] + 20  # nothing lost: the gap was buffered and replayed
        assert not stream.terminated and stream.client.signaling_accepted == 2 and len(stream.client.reconnects) == 1
        ts = [t for t, _ in stream.sent.audio[0]]
        assert ts == list(range(stream.started_ms, stream.started_ms + 20 * len(ts), 20))
        await r.close()


async def test_media_three_missed_event7_then_terminates() -> None:
    async with Simulator(config(**FAST)) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None, "transcript": None})
        s.media["audio"].auto_keepalive = False  # only the audio socket goes deaf
        assert await s.media["audio"].closed(2)
        ev = await s.signaling.recv_type(MsgType.EVENT_UPDATE)  # type: ignore[union-attr]
        while ev["event"]["event_type"] != EventType.MEDIA_CONNECTION_INTERRUPTED:
            ev = await s.signaling.recv_type(MsgType.EVENT_UPDATE)  # type: ignore[union-attr]
        assert ev["event"]["media_type"] == 1
        upd = await s.signaling.recv_type(MsgType.STREAM_STATE_UPDATE)  # type: ignore[union-attr]
        while upd["state"] != StreamState.INTERRUPTED:
            upd = await s.signaling.recv_type(MsgType.STREAM_STATE_UPDATE)  # type: ignore[union-attr]
        assert upd["reason"] == StopReason.STOP_BC_DATA_CONNECTION_INTERRUPTED
        assert not stream.terminated and s.media["transcript"].ws.state.name == "OPEN"
        end = await s.signaling.recv_type(MsgType.STREAM_STATE_UPDATE, 3)  # type: ignore[union-attr]
        assert (end["state"], end["reason"]) == (StreamState.TERMINATED, StopReason.STOP_BC_KEEP_ALIVE_TIMEOUT)
        assert await s.signaling.closed()  # type: ignore[union-attr]
        await s.close()


async def test_media_reconnect_within_window_keeps_stream() -> None:
    async with Simulator(config(time_scale=0.05)) as sim:  # media window 3.25 s
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        stream.abort_media("audio")
        assert await s.media["audio"].closed()
        resp = await s.connect_media("audio")
        assert resp["status_code"] == 0
        await s.ready()
        assert [m for m in await s.media["audio"].drain(0.3) if m["msg_type"] == 14]
        await s.signaling.drain(0.1)  # type: ignore[union-attr]
        assert not stream.terminated
        assert stream.client.ready_acks_signaling == 2
        await s.close()


@pytest.mark.parametrize(("profile", "window"), [("2026", 65.0), ("2025", 30.0)])
def test_media_window_profiles(profile: str, window: float) -> None:
    assert config(media_window_profile=profile).media_window_s == window == protocol.MEDIA_RECONNECT_WINDOW_S[profile]


async def test_keepalive_only_when_idle() -> None:
    async with Simulator(config(keepalive_interval_s=0.05, keepalive_only_when_idle=True)) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        await s.media["audio"].drain(0.5)
        assert s.media["audio"].keepalives == 0  # audio flows every 20 ms: never idle
        assert s.signaling.keepalives >= 3  # type: ignore[union-attr]
        await s.close()
