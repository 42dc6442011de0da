"""Session controller end to end against the simulator: handshakes, media, states, stops, reconnects.

Every test ends by asserting that nothing was left behind: no task, no socket, no file descriptor.
Timers come from the simulator's ``time_scale`` and short client settings; no test asserts how long
something took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gateway import protocol
from gateway.errors import HandshakeError, KeepAliveTimeout, ProtocolError, SessionClosed
from gateway.protocol import (
    AudioParams,
    DataOption,
    MediaParams,
    Product,
    SessionState,
    Status,
    StatusB,
    StopReason,
    StreamState,
    VideoParams,
    WebhookKind,
)
from gateway.session import SessionSettings, StreamSession, StreamTarget
from gateway.sim.server import SimStream, Simulator
from tests.gateway.conftest import RecordingSink, open_fds, other_tasks, started_event, wait_for

#: uvloop sleeps in C, where pytest-timeout's default SIGALRM cannot interrupt it: use the thread method.
pytestmark = pytest.mark.timeout(120, method="thread")

CLIENT_ID = "sim-client-id"
CLIENT_SECRET = "sim-client-secret"
#: fast client timers: backoff in tens of ms, windows of a few seconds.
FAST = {"handshake_timeout_s": 5.0, "reconnect_backoff_s": (0.05, 0.1, 0.2), "reconnect_window_s": 5.0, "media_reconnect_window_s": 5.0, "close_timeout_s": 2.0}


def settings(**overrides: Any) -> SessionSettings:
    return SessionSettings(CLIENT_ID, CLIENT_SECRET, **{**FAST, **overrides})


class Harness:
    """One session on one simulated stream, with its sink and the events it emitted."""

    def __init__(self, stream: SimStream, session: StreamSession, sink: RecordingSink, events: list[dict[str, Any]]) -> None:
        self.stream = stream
        self.session = session
        self.sink = sink
        self.events = events

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def states(self) -> list[str]:
        return [e["state"] for e in self.events if e["type"] == "session_state"]


@pytest.fixture
def make_session(media_listener: Any) -> Callable[..., Harness]:
    def make(sim: Simulator, *, stream: SimStream | None = None, backlog_ms: int = 0, listener_class: Any = None, **overrides: Any) -> Harness:
        stream = stream or sim.create_stream(webhook=False, backlog_ms=backlog_ms)
        sink = RecordingSink()
        events: list[dict[str, Any]] = []
        target = StreamTarget.from_webhook(started_event(stream))
        session = StreamSession(target, settings(**overrides), sink=sink, on_event=events.append, listener_class=listener_class or media_listener)
        return Harness(stream, session, sink, events)

    return make


class Baseline:
    """Tasks and fds before a test's sessions existed; :meth:`check` waits until they are back."""

    def __init__(self) -> None:
        self.fds = open_fds()
        self.tasks = other_tasks()

    async def check(self) -> None:
        def clean() -> bool:
            return open_fds() <= self.fds and not (other_tasks() - self.tasks)

        try:
            await wait_for(clean, timeout_s=5.0)
        except TimeoutError:
            pass
        leaked = {f"{t.get_name()} {t.get_coro()!r}" for t in other_tasks() - self.tasks}
        assert not leaked, f"leaked tasks: {leaked}"
        assert open_fds() <= self.fds, f"leaked fds: {open_fds() - self.fds}"


async def frames_grow(sink: RecordingSink, n: int = 5) -> None:
    start = sink.frames
    await wait_for(lambda: sink.frames >= start + n)


def last_webhook(sim: Simulator, kind: WebhookKind) -> protocol.WebhookEvent:
    for delivery in reversed(sim.webhooks.deliveries):
        ev = protocol.parse_webhook(delivery.body)
        if ev.kind is kind:
            return ev
    raise AssertionError(f"simulator sent no {kind} webhook")


# ---------------------------------------------------------------------------- happy path


def listener_impl(name: str) -> Any:
    """Both media listeners serve the same control contract; the native one must be built."""
    if name == "pure":
        from gateway._native_py import MediaListener
    else:
        from gateway._native import MediaListener  # type: ignore[attr-defined]
    return MediaListener


@pytest.mark.parametrize("impl", ["native", "pure"])
async def test_handshake_and_media_are_exact(sim: Simulator, make_session: Callable[..., Harness], impl: str) -> None:
    base = Baseline()
    params = MediaParams(audio=AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS), video=VideoParams(), transcript=protocol.TranscriptParams())
    h = make_session(sim, backlog_ms=12_000, media_params=params, listener_class=listener_impl(impl))
    await h.session.start()
    s, st = h.session, h.stream
    await wait_for(lambda: s.state is SessionState.STARTED and s.stream_state is StreamState.ACTIVE)
    assert s.rtms_session_id == st.session_id
    assert s.first_packet_timestamp == st.started_ms
    # the client did what the protocol asks, in order: 1, 3 x kinds, 7 on signaling, then 5
    assert st.client.signaling_accepted == 1 and st.client.buffer_data is True
    assert sorted(label for label, status in st.client.media_handshakes if status == 0) == ["media:audio", "media:transcript", "media:video"]
    sig_types = st.client.types("signaling")
    assert sig_types[:2] == [7, 5] and st.client.ready_acks_signaling == 1 and st.client.ready_acks_media == 0
    assert st.client.subscriptions == {2, 3, 4, 5, 6, 8, 9} and not st.client.rejected_subscriptions
    assert h.sink.media_params["audio"].data_opt == DataOption.AUDIO_MULTI_STREAMS
    await wait_for(lambda: len(h.sink.transcripts) >= 2 and len(h.sink.video) >= 1)
    st.terminate(StopReason.STOP_BC_MEETING_ENDED)  # server-side end: every frame sent is then delivered
    await s.wait_closed()
    assert s.stop_reason == StopReason.STOP_BC_MEETING_ENDED and s.error is None
    assert sorted(h.sink.audio) == sorted(st.sent.audio) and len(st.sent.audio) >= 2
    for uid, packets in st.sent.audio.items():
        assert h.sink.audio_packets[uid] == packets, f"audio of user {uid} differs"
    assert h.sink.transcript_texts() == st.sent.transcript_texts()
    assert {uid: frames for uid, frames in h.sink.video.items()} == st.sent.video
    assert "participant_join" in h.types() and "active_speaker" in h.types()
    assert h.states()[:2] == ["INITIALIZE", "STARTED"] and h.states()[-1] == "STOPPED"
    stats = s.stats()
    assert stats["frames"]["audio"] == sum(len(p) for p in st.sent.audio.values())
    assert stats["keepalives_answered"]["signaling"] >= 0 and not stats["sockets"]["signaling"]
    await base.check()


async def test_unified_all_socket(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    base = Baseline()
    h = make_session(sim, backlog_ms=3000, unified=True, media_kinds=("audio", "transcript"), buffer_data=False)
    await h.session.start()
    assert [label for label, _ in h.stream.client.media_handshakes] == ["media:all"]
    assert h.stream.client.buffer_data is False
    await frames_grow(h.sink)
    h.stream.terminate()
    await h.session.wait_closed()
    assert h.sink.audio_bytes() == h.stream.sent.audio_bytes()
    await base.check()


async def test_unscoped_kind_is_skipped_not_fatal(sim_factory: Callable[..., Any], make_session: Callable[..., Harness]) -> None:
    sim = await sim_factory(scopes=("audio", "transcript"))
    h = make_session(sim, media_kinds=("audio", "video", "transcript"))
    await h.session.start()
    assert sorted(label for label, _ in h.stream.client.media_handshakes) == ["media:audio", "media:transcript"]
    await frames_grow(h.sink)
    await h.session.close()


async def test_contact_center_uses_engagement_id(sim_factory: Callable[..., Any], make_session: Callable[..., Harness]) -> None:
    sim = await sim_factory(product=Product.CONTACT_CENTER)
    h = make_session(sim, media_kinds=("audio", "transcript"))
    assert h.session.target.instance_key == "engagement_id"
    await h.session.start()  # the simulator accepts the signature only over the engagement id
    await frames_grow(h.sink)
    assert protocol.ZccEventType.CONSUMER_ANSWERED in h.stream.client.subscriptions
    assert protocol.ZccEventType.TRANSFER_COMPLETED in h.stream.client.subscriptions
    await wait_for(lambda: "zcc_event" in h.types())
    answered = next(e for e in h.events if e["type"] == "zcc_event")
    assert answered["event_type"] == protocol.ZccEventType.CONSUMER_ANSWERED and "channel_id" in answered["participant_info"]
    await h.session.close()
    assert h.session.state is SessionState.STOPPED


# ---------------------------------------------------------------------------- handshake rejections


async def test_every_signaling_status_ends_only_that_stream(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    healthy = make_session(sim, media_kinds=("audio",))
    await healthy.session.start()
    base = Baseline()
    for code in (c for c in StatusB if c != 0):
        h = make_session(sim, media_kinds=("audio",))
        h.stream.reject_next_signaling(int(code))
        with pytest.raises(HandshakeError) as info:
            await h.session.start()
        err = info.value
        assert err.status_code == code and err.socket == "signaling"
        assert str(int(code)) in str(err) and code.name in str(err)
        assert h.session.state is SessionState.STOPPED and h.session.error is err and h.session.closed
    await base.check()
    await frames_grow(healthy.sink)  # the other stream never noticed
    assert healthy.session.state is SessionState.STARTED and healthy.session.error is None
    await healthy.session.close()


async def test_every_media_status_ends_only_that_stream(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    healthy = make_session(sim, media_kinds=("audio",))
    await healthy.session.start()
    base = Baseline()
    for code in (c for c in StatusB if c != 0):
        h = make_session(sim, media_kinds=("audio", "transcript"))
        h.stream.reject_next_media(int(code), "transcript")
        with pytest.raises(HandshakeError) as info:
            await h.session.start()
        assert info.value.status_code == code and info.value.socket == "media:transcript"
        assert code.name in str(info.value)
        assert 7 not in h.stream.client.types("signaling")  # no CLIENT_READY_ACK after a failed msg 4
        assert h.session.state is SessionState.STOPPED
    await base.check()
    await frames_grow(healthy.sink)
    assert healthy.session.state is SessionState.STARTED
    await healthy.session.close()


async def test_real_rejections_and_profile_a_names(sim_factory: Callable[..., Any], make_session: Callable[..., Harness], media_listener: Any) -> None:
    sim = await sim_factory(status_profile="A")
    # wrong secret: the simulator really checks the signature
    stream = sim.create_stream(webhook=False)
    bad = StreamSession(
        StreamTarget.from_webhook(started_event(stream)),
        SessionSettings(CLIENT_ID, "wrong-secret", status_profile="A", **FAST),
        sink=RecordingSink(),
        listener_class=media_listener,
    )
    with pytest.raises(HandshakeError) as info:
        await bad.start()
    assert info.value.status_code == protocol.status_code(Status.INVALID_SIGNATURE, "A") == 15
    assert "STATUS_INVALID_SIGNATURE" in str(info.value)
    # invalid media params: the media server's own validation (send_rate not a multiple of 20)
    h = make_session(sim, status_profile="A", media_kinds=("audio",), media_params=MediaParams(audio=AudioParams(send_rate=30)))
    with pytest.raises(HandshakeError) as info:
        await h.session.start()
    assert info.value.socket == "media:audio" and info.value.status_name.startswith("STATUS_")


async def test_unreachable_server_raises_and_cleans_up(media_listener: Any) -> None:
    base = Baseline()
    target = StreamTarget(Product.MEETING, "M==", "meeting_uuid", "s-1", "ws://127.0.0.1:9/nothing")
    session = StreamSession(target, settings(), sink=RecordingSink(), listener_class=media_listener)
    with pytest.raises(OSError):
        await session.start()
    assert session.state is SessionState.STOPPED and isinstance(session.error, OSError)
    await base.check()


# ---------------------------------------------------------------------------- states


@pytest.mark.parametrize("stream_level", [False, True])
async def test_pause_and_resume(sim_factory: Callable[..., Any], make_session: Callable[..., Harness], stream_level: bool) -> None:
    sim = await sim_factory(stream_state_on_pause=stream_level)
    h = make_session(sim, media_kinds=("audio",))
    await h.session.start()
    await frames_grow(h.sink)
    h.stream.pause()
    await wait_for(lambda: h.session.state is SessionState.PAUSED)
    sent_at_pause = h.stream.sent.media_counts.get("audio", 0)
    await asyncio.sleep(0.2)
    assert h.stream.sent.media_counts.get("audio", 0) == sent_at_pause  # nothing flows while paused
    h.stream.resume()
    await wait_for(lambda: h.session.state is SessionState.RESUMED)
    await frames_grow(h.sink)
    assert h.states()[-2:] == ["PAUSED", "RESUMED"]
    if stream_level:
        assert [e["state"] for e in h.events if e["type"] == "stream_state"][-2:] == ["PAUSED", "RESUMED"]
    await h.session.close()


# ---------------------------------------------------------------------------- stop paths


async def test_stop_by_rtms_stopped_webhook(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    base = Baseline()
    h = make_session(sim)
    await h.session.start()
    await frames_grow(h.sink)
    h.session.stopped(StopReason.STOP_BC_HOST_TRIGGERED)
    await h.session.wait_closed()
    assert h.session.state is SessionState.STOPPED and h.session.stop_reason == StopReason.STOP_BC_HOST_TRIGGERED
    assert h.session.error is None and h.states()[-1] == "STOPPED"
    assert not any(h.session.stats()["sockets"].values())
    await wait_for(lambda: h.stream.signaling is None or not h.stream.signaling.alive)
    await base.check()


async def test_stop_by_stream_terminated(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    base = Baseline()
    h = make_session(sim)
    await h.session.start()
    await frames_grow(h.sink)
    h.stream.terminate(StopReason.STOP_BC_STREAM_REVOKED, webhook=False)
    await h.session.wait_closed()
    assert h.session.stop_reason == StopReason.STOP_BC_STREAM_REVOKED and h.session.error is None
    assert h.session.stream_state is StreamState.TERMINATED and h.session.reconnects == 0
    stopped = [e for e in h.events if e["type"] == "session_state" and e["state"] == "STOPPED"]
    assert stopped and stopped[0]["stop_reason"] == StopReason.STOP_BC_STREAM_REVOKED
    await base.check()


async def test_stop_by_user_request(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    base = Baseline()
    h = make_session(sim)
    await h.session.start()
    await frames_grow(h.sink)
    await h.session.close(request=True)
    assert 21 in h.stream.client.types("signaling")
    assert h.stream.terminated and h.stream.stop_reason == StopReason.STOP_BC_RECEIVER_REQUEST_CLOSE
    assert h.session.stop_reason == StopReason.STOP_BC_RECEIVER_REQUEST_CLOSE and h.session.state is SessionState.STOPPED
    assert "stream_close_response" not in h.types()  # msg 22 went to the waiting close()
    await base.check()
    with pytest.raises(SessionClosed):
        await h.session.interrupted()


async def test_close_before_start_and_twice(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    h = make_session(sim)
    await h.session.close()
    assert h.session.state is SessionState.STOPPED
    with pytest.raises(SessionClosed):
        await h.session.start()
    early = make_session(sim)
    early.session.stopped(StopReason.STOP_BC_MEETING_ENDED)  # rtms_stopped before the session ran
    with pytest.raises(SessionClosed):
        await early.session.start()
    assert early.session.stop_reason == StopReason.STOP_BC_MEETING_ENDED and early.session.closed
    h2 = make_session(sim)
    await h2.session.start()
    await h2.session.close()
    await h2.session.close(request=True)  # idempotent
    assert h2.session.closed


# ---------------------------------------------------------------------------- reconnects


@pytest.mark.parametrize("impl", ["native", "pure"])
async def test_media_socket_drop_reconnects_that_socket(sim: Simulator, make_session: Callable[..., Harness], impl: str) -> None:
    base = Baseline()
    h = make_session(sim, media_kinds=("audio", "transcript"), listener_class=listener_impl(impl))
    await h.session.start()
    await frames_grow(h.sink)
    h.stream.abort_media("audio")
    await wait_for(lambda: h.session.media_reconnects == 1)
    await frames_grow(h.sink)
    c = h.stream.client
    assert [label for label, status in c.media_handshakes if status == 0].count("media:audio") == 2
    assert [label for label, status in c.media_handshakes if status == 0].count("media:transcript") == 1
    assert c.signaling_handshakes == 1 and c.ready_acks_signaling == 2  # msg 3 again, then msg 7
    assert "media_interrupted" in h.types() and h.session.reconnects == 0
    assert h.session.state is SessionState.STARTED
    await h.session.close()
    await base.check()


async def test_media_drop_seen_first_by_the_client(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    base = Baseline()
    h = make_session(sim, media_kinds=("audio", "transcript"))
    await h.session.start()
    await frames_grow(h.sink)
    h.session._media["transcript"]._transport.disconnect(graceful=False)  # type: ignore[union-attr]
    await wait_for(lambda: h.session.media_reconnects == 1)
    assert "media_lost" in h.types() and h.session.reconnects == 0
    assert h.session.stats()["sockets"] == {"signaling": True, "audio": True, "transcript": True}
    await frames_grow(h.sink)
    await h.session.close()
    await base.check()


@pytest.mark.parametrize("how", ["close", "stopped"])
async def test_stop_while_starting(sim: Simulator, make_session: Callable[..., Harness], how: str) -> None:
    base = Baseline()
    h = make_session(sim)
    starting = asyncio.ensure_future(h.session.start())
    await asyncio.sleep(0)
    if how == "close":
        await h.session.close()
    else:
        h.session.stopped(StopReason.STOP_BC_MEETING_ENDED)
    async with asyncio.timeout(10):
        with pytest.raises(SessionClosed):
            await starting
        await h.session.wait_closed()
    assert h.session.state is SessionState.STOPPED
    await base.check()


async def test_unified_socket_drop_reconnects_the_all_socket(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    h = make_session(sim, unified=True, media_kinds=("audio", "transcript"))
    await h.session.start()
    await frames_grow(h.sink)
    h.stream.abort_media("audio")  # the server drops the one "all" socket
    await wait_for(lambda: h.session.media_reconnects == 1)
    assert [label for label, status in h.stream.client.media_handshakes if status == 0] == ["media:all", "media:all"]
    await frames_grow(h.sink)
    await h.session.close()


async def test_sloppy_server_variants(sim_factory: Callable[..., Any], make_session: Callable[..., Harness]) -> None:
    sim = await sim_factory(user_id_as_string=True, session_reason_key="reason")
    h = make_session(sim, media_kinds=("audio",))
    await h.session.start()
    await wait_for(lambda: "participant_join" in h.types())
    join = next(e for e in h.events if e["type"] == "participant_join")
    assert all(isinstance(p["user_id"], int) for p in join["participants"])  # "123" on the wire
    assert h.session.participants and all(isinstance(uid, int) for uid in h.session.participants)
    h.stream.terminate(StopReason.STOP_BC_MEETING_ENDED)  # msg 9 carries "reason", not "stop_reason"
    await h.session.wait_closed()
    stopped = [e for e in h.events if e["type"] == "session_state" and e["state"] == "STOPPED"]
    assert stopped[0]["stop_reason"] == StopReason.STOP_BC_MEETING_ENDED


async def test_failover_to_second_listener(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    await sim._ensure_listener(1)  # the second server's listening sockets belong to the baseline
    base = Baseline()
    h = make_session(sim, media_kinds=("audio",))
    await h.session.start()
    await frames_grow(h.sink)
    old_url = h.session.target.server_urls
    await h.stream.failover(refuse_old=True)
    await sim.webhooks.drain()
    ev = last_webhook(sim, WebhookKind.STARTED)
    assert ev.server_urls != old_url and ev.stream_id == h.stream.stream_id
    await h.session.failover(ev.server_urls or "")
    assert h.session.reconnects == 1 and h.session.error is None
    assert h.stream.signaling is not None and h.stream.signaling.listener == 1
    await frames_grow(h.sink)
    await h.session.close()
    await base.check()


async def test_interrupted_reconnects_to_original_url(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    base = Baseline()
    h = make_session(sim, media_kinds=("audio", "transcript"))
    await h.session.start()
    await frames_grow(h.sink)
    h.stream.drop_signaling()
    await sim.webhooks.drain()
    ev = last_webhook(sim, WebhookKind.INTERRUPTED)
    assert ev.stream_id == h.stream.stream_id and ev.server_urls is None
    await h.session.interrupted()
    assert h.session.reconnects == 1 and h.stream.client.signaling_accepted == 2
    await frames_grow(h.sink)
    assert h.session.stats()["sockets"] == {"signaling": True, "audio": True, "transcript": True}
    await h.session.close()
    await base.check()


async def test_signaling_drop_without_webhook_uses_watchdog(sim_factory: Callable[..., Any], make_session: Callable[..., Harness]) -> None:
    # keep-alives every 0.2 s; the client's watchdog (1 s) must not fire while they flow
    sim = await sim_factory(time_scale=0.02, signaling_window_s=200.0)
    h = make_session(sim, media_kinds=("audio",), keepalive_watchdog_s=1.0)
    await h.session.start()
    await wait_for(lambda: h.session.stats()["keepalives_answered"]["signaling"] >= 6)
    assert h.session.reconnects == 0
    rtt = await h.session.measure_rtt()
    assert rtt >= 0 and h.session.stats()["rtt_ms"] == rtt
    assert h.session.stats()["keepalive_lag_ms"] is not None
    c = h.stream.client  # every keep-alive answered on its own socket with the right timestamp
    assert c.keepalive_accepted["signaling"] >= 6 and c.keepalive_accepted.get("media:audio", 0) >= 1
    assert not c.keepalive_rejected
    assert h.session.stats()["keepalives_answered"]["media"] >= 1
    h.stream.drop_signaling()
    await wait_for(lambda: h.session.reconnects == 1)
    assert "watchdog" in h.types() and h.stream.client.signaling_accepted == 2
    await frames_grow(h.sink)
    await h.session.close()


async def test_watchdog_follows_the_injected_clock(sim: Simulator, media_listener: Any) -> None:
    stream = sim.create_stream(webhook=False)
    stream.faults.send_keepalives = False  # a silent signaling socket: only the clock decides
    now = [1000.0]
    events: list[dict[str, Any]] = []
    session = StreamSession(
        StreamTarget.from_webhook(started_event(stream)),
        settings(media_kinds=("audio",), subscribe_events=(), keepalive_watchdog_s=0.4),
        sink=RecordingSink(),
        on_event=events.append,
        loop_time=lambda: now[0],
        listener_class=media_listener,
    )
    await session.start()
    await asyncio.sleep(0.5)  # real time passes, the injected clock does not: no watchdog
    assert session.reconnects == 0 and not any(e["type"] == "watchdog" for e in events)
    now[0] += 0.5  # 0.5 s of injected silence > 0.4 s watchdog: re-handshake on the same URL
    await wait_for(lambda: session.reconnects == 1)
    assert any(e["type"] == "watchdog" for e in events) and stream.client.signaling_accepted == 2
    await session.close()


async def test_reconnect_gives_up_after_window(sim_factory: Callable[..., Any], make_session: Callable[..., Harness]) -> None:
    sim = await sim_factory()
    h = make_session(sim, media_kinds=("audio",), reconnect_window_s=0.3)
    await h.session.start()
    base = Baseline()
    await sim.close()  # the server is gone for good: every reconnect attempt fails
    with pytest.raises(KeepAliveTimeout):
        await h.session.interrupted()
    await h.session.wait_closed()
    assert h.session.state is SessionState.STOPPED and isinstance(h.session.error, KeepAliveTimeout)
    assert h.session.reconnects == 0
    await base.check()


async def test_transient_rejection_during_reconnect_is_retried(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    h = make_session(sim, media_kinds=("audio",))
    await h.session.start()
    h.stream.drop_signaling()
    h.stream.reject_next_signaling(Status.DUPLICATE_SIGNAL_REQUEST)  # the server still holds the old one
    await h.session.interrupted()
    assert h.stream.client.signaling_rejected == [StatusB.STATUS_DUPLICATE_SIGNAL_REQUEST]
    assert h.session.reconnects == 1 and h.session.error is None
    await frames_grow(h.sink)
    await h.session.close()


async def test_permanent_rejection_during_reconnect_ends_the_stream(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    base = Baseline()
    h = make_session(sim, media_kinds=("audio",))
    await h.session.start()
    h.stream.drop_signaling()
    h.stream.reject_next_signaling(Status.INVALID_STREAM_ID)
    with pytest.raises(HandshakeError) as info:
        await h.session.interrupted()
    assert info.value.status_code == StatusB.STATUS_INVALID_RTMS_STREAM_ID
    await h.session.wait_closed()
    assert h.session.error is info.value and h.session.state is SessionState.STOPPED
    await base.check()


@pytest.mark.parametrize("notice", ["session_stopped", "stream_terminating"])
async def test_no_reconnect_once_the_server_is_ending(sim: Simulator, make_session: Callable[..., Harness], notice: str) -> None:
    h = make_session(sim, media_kinds=("audio",))
    await h.session.start()
    if notice == "session_stopped":
        h.stream._send_sig(protocol.build_session_state_update(SessionState.STOPPED, h.stream.session_id, 1, StopReason.STOP_BC_USER_LEFT))
        await wait_for(lambda: h.session.state is SessionState.STOPPED)
    else:
        h.stream._send_sig(protocol.build_stream_state_update(StreamState.TERMINATING, StopReason.STOP_BC_MEETING_ENDED, 1))
        await wait_for(lambda: h.session.stream_state is StreamState.TERMINATING)
    h.stream.drop_signaling()  # the socket goes away without TERMINATED: no reconnect, the stream is over
    async with asyncio.timeout(10):
        await h.session.wait_closed()
    assert h.session.reconnects == 0 and h.stream.client.signaling_handshakes == 1
    if notice == "session_stopped":
        assert h.session.stop_reason == StopReason.STOP_BC_USER_LEFT


async def test_server_that_never_answers_times_out(media_listener: Any) -> None:
    from picows import WSListener, ws_create_server

    server = await ws_create_server(lambda _request: WSListener(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base = Baseline()
    target = StreamTarget(Product.MEETING, "M==", "meeting_uuid", "s-1", f"ws://127.0.0.1:{port}/signaling")
    session = StreamSession(target, settings(handshake_timeout_s=0.3), sink=RecordingSink(), listener_class=media_listener)
    with pytest.raises(TimeoutError):
        await session.start()
    assert session.state is SessionState.STOPPED
    server.close()
    await server.wait_closed()
    await base.check()


async def test_no_offered_media_kind_is_a_protocol_error(sim_factory: Callable[..., Any], make_session: Callable[..., Harness]) -> None:
    sim = await sim_factory(scopes=("video",), include_all_url=False)
    h = make_session(sim, media_kinds=("audio", "transcript"))
    with pytest.raises(ProtocolError, match="offers none"):
        await h.session.start()
    assert h.session.state is SessionState.STOPPED


# ---------------------------------------------------------------------------- isolation, video, scale


async def test_event_callback_errors_do_not_break_the_stream(sim: Simulator, media_listener: Any) -> None:
    stream = sim.create_stream(webhook=False)
    sink = RecordingSink()

    def broken(_: dict[str, Any]) -> None:
        raise RuntimeError("consumer bug")

    session = StreamSession(StreamTarget.from_webhook(started_event(stream)), settings(), sink=sink, on_event=broken, listener_class=media_listener)
    await session.start()
    stream._send_sig({"msg_type": 99, "junk": True})  # unknown future message: ignored
    stream._send_sig({"msg_type": 8, "state": "bad"})  # malformed: dropped, counted in the log
    await frames_grow(sink)
    assert session.state is SessionState.STARTED and session.error is None
    await session.close()


async def test_single_participant_video_subscription(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    params = MediaParams(video=VideoParams(data_opt=DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM))
    h = make_session(sim, backlog_ms=0, media_kinds=("video",), media_params=params)
    await h.session.start()
    await wait_for(lambda: any(e["type"] == "video_on" for e in h.events))
    uid = next(e for e in h.events if e["type"] == "video_on")["participants"][0]["user_id"]
    assert await h.session.subscribe_video(uid) == 0
    assert await h.session.subscribe_video(uid) == StatusB.STATUS_DUPLICATE_VIDEO_SUBSCRIPTION
    await wait_for(lambda: uid in h.sink.video)
    assert set(h.sink.video) == {uid}
    assert await h.session.subscribe_video(uid, subscribe=False) == 0
    await h.session.close()


async def test_video_subscription_from_settings(sim: Simulator, make_session: Callable[..., Harness]) -> None:
    stream = sim.create_stream(webhook=False)
    uid = stream.content.participants[0].user_id
    params = MediaParams(video=VideoParams(data_opt=DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM))
    h = make_session(sim, stream=stream, media_kinds=("video",), media_params=params, video_subscribe_user=uid)
    await h.session.start()
    await wait_for(lambda: any(e["type"] == "video_subscription" for e in h.events))
    answer = next(e for e in h.events if e["type"] == "video_subscription")
    assert answer["user_id"] == uid and answer["status_code"] == 0
    assert 28 in stream.client.types("signaling") and stream.video_subscription == uid
    await h.session.close()


async def test_fifty_concurrent_streams(sim_factory: Callable[..., Any], make_session: Callable[..., Harness]) -> None:
    sim = await sim_factory(participants=2)
    base = Baseline()
    harnesses = [make_session(sim, media_kinds=("audio", "transcript")) for _ in range(50)]
    async with asyncio.TaskGroup() as tg:
        for h in harnesses:
            tg.create_task(h.session.start())
    await wait_for(lambda: all(h.sink.frames >= 3 for h in harnesses), timeout_s=20.0)
    assert all(h.session.state is SessionState.STARTED for h in harnesses)
    for h in harnesses[:25]:
        h.stream.terminate()
    async with asyncio.TaskGroup() as tg:
        for h in harnesses[25:]:
            tg.create_task(h.session.close(request=True))
    for h in harnesses:
        await h.session.wait_closed()
        assert h.session.error is None and h.session.state is SessionState.STOPPED
    await base.check()


# ---------------------------------------------------------------------------- small units


def test_settings_hide_secret_and_fill_defaults() -> None:
    s = SessionSettings("id", "top-secret-value", media_kinds=("audio", "chat"))
    assert "top-secret-value" not in repr(s)
    assert s.media_params is not None and s.media_params.audio == AudioParams() and s.media_params.chat is not None
    assert s.media_params.video is None
    assert s.params_for(("audio",)).to_wire() == {"audio": protocol.params_to_wire(AudioParams())}
    with pytest.raises(ValueError):
        SessionSettings("id", "x", media_kinds=("smell",))


def test_settings_accept_wire_dicts() -> None:
    s = SessionSettings("id", "x", media_kinds=("audio", "video"), media_params={"audio": {"sample_rate": 3, "codec": 4}})  # type: ignore[arg-type]
    assert s.media_params is not None and s.media_params.audio is not None
    assert s.media_params.audio.sample_rate == 3 and s.media_params.audio.codec == 4 and s.media_params.audio.channel == 1
    assert s.media_params.video == VideoParams()


def test_target_from_webhooks() -> None:
    body = protocol.build_webhook(Product.WEBINAR, WebhookKind.STARTED, instance_id="W==", stream_id="s1", event_ts=1, server_urls="ws://h/x")
    t = StreamTarget.from_webhook(protocol.parse_webhook(body))
    assert (t.product, t.instance_id, t.instance_key, t.stream_id, t.server_urls) == (Product.WEBINAR, "W==", "webinar_uuid", "s1", "ws://h/x")
    stopped = protocol.build_webhook(Product.MEETING, WebhookKind.STOPPED, instance_id="M", stream_id="s1", event_ts=1, stop_reason=6)
    with pytest.raises(ProtocolError):
        StreamTarget.from_webhook(protocol.parse_webhook(stopped))
    # the official client sends the id under meeting_uuid; "product" picks the product's key
    a = StreamSession(t, SessionSettings("id", "x"), sink=RecordingSink(), listener_class=object)
    b = StreamSession(t, SessionSettings("id", "x", instance_key="product"), sink=RecordingSink(), listener_class=object)
    assert a._instance_key == "meeting_uuid" and b._instance_key == "webinar_uuid"
