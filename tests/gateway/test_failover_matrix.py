"""Failover matrix (issue 6): the reconnect race, every termination reason, Zoom's backoff and windows.

Backoff and window tests run the session with Zoom's real timers (3, 6, 12, 24, 30 s; windows
60 s signaling, 65 s / 30 s media) against an injected clock and an injected ``sleep`` that only
advances that clock: nothing sleeps for real, and no assertion reads the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from gateway import protocol
from gateway.errors import HandshakeError, KeepAliveTimeout, SessionClosed
from gateway.protocol import SessionState, Status, StatusB, StopReason, StreamState
from gateway.session import SessionSettings, StreamSession, StreamTarget
from gateway.sim.server import SimStream, Simulator
from tests.gateway.conftest import RecordingSink, open_fds, other_tasks, started_event, wait_for

pytestmark = pytest.mark.timeout(120, method="thread")

CLIENT_ID = "sim-client-id"
CLIENT_SECRET = "sim-client-secret"
ZOOM_BACKOFF = (3.0, 6.0, 12.0, 24.0, 30.0, 30.0)
#: every stop reason that ends a stream on the server's initiative (PROTOCOL.md 5.8: 10-19, 24).
SERVER_STOP_REASONS = [*range(StopReason.STOP_BC_INTERNAL_EXCEPTION, StopReason.STOP_BC_AWAIT_RECONNECTION_TIMEOUT + 1), StopReason.STOP_BC_KEEP_ALIVE_TIMEOUT]


class FakeTime:
    """An injected clock plus a ``sleep`` that advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)


class Setup:
    """One session (Zoom's real timers unless overridden) on one simulated stream."""

    def __init__(self, sim: Simulator, media_listener: Any, **overrides: Any) -> None:
        self.time = FakeTime()
        self.stream: SimStream = sim.create_stream(webhook=False)
        self.sink = RecordingSink()
        self.events: list[dict[str, Any]] = []
        opts: dict[str, Any] = {"media_kinds": ("audio",), "subscribe_events": (), "close_timeout_s": 2.0, **overrides}
        self.session = StreamSession(
            StreamTarget.from_webhook(started_event(self.stream)),
            SessionSettings(CLIENT_ID, CLIENT_SECRET, **opts),
            sink=self.sink,
            on_event=self.events.append,
            loop_time=self.time.clock,
            sleep=self.time.sleep,
            listener_class=media_listener,
        )

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def frames_grow(self, n: int = 5) -> None:
        start = self.sink.frames
        await wait_for(lambda: self.sink.frames >= start + n)


async def leak_check(fds: int, tasks: set[asyncio.Task[Any]]) -> None:
    """Every socket and task the session opened is gone again (waits a bounded while)."""
    with contextlib.suppress(TimeoutError):
        await wait_for(lambda: open_fds() <= fds and not (other_tasks() - tasks), timeout_s=5.0)
    leaked = {f"{t.get_name()} {t.get_coro()!r}" for t in other_tasks() - tasks}
    assert not leaked, f"leaked tasks: {leaked}"
    assert open_fds() <= fds, f"leaked fds: {open_fds() - fds}"


def code(status: Status) -> int:
    return protocol.status_code(status, "B")


# ---------------------------------------------------------------------------- 1. the reconnect race


async def test_media_without_signaling_during_interrupted_reconnect_is_retried(sim: Simulator, media_listener: Any) -> None:
    """Soak race: msg 3 answered INVALID_STREAM_ID ("no signaling connection") right after a reconnect."""
    s = Setup(sim, media_listener)
    await s.session.start()
    await s.frames_grow()
    s.stream.drop_signaling()
    s.stream.reject_next_media(Status.INVALID_STREAM_ID, "audio")  # the first media handshake after it
    await s.session.interrupted()
    assert ("media:audio", StatusB.STATUS_INVALID_RTMS_STREAM_ID) in s.stream.client.media_handshakes
    assert s.session.error is None and s.session.reconnects == 1 and not s.session.closed
    assert s.time.sleeps == [3.0]  # one backoff step, inside the 60 s window
    assert s.stream.client.signaling_accepted == 3  # first join, rejected attempt, successful retry
    await s.frames_grow()  # media flows again
    assert s.session.state is not SessionState.STOPPED
    await s.session.close()


async def test_media_without_signaling_during_media_reconnect_is_retried(sim: Simulator, media_listener: Any) -> None:
    s = Setup(sim, media_listener)
    await s.session.start()
    await s.frames_grow()
    s.stream.reject_next_media(Status.INVALID_STREAM_ID, "audio")
    s.stream.abort_media("audio")
    await wait_for(lambda: s.session.media_reconnects == 1)
    assert ("media:audio", StatusB.STATUS_INVALID_RTMS_STREAM_ID) in s.stream.client.media_handshakes
    assert s.session.error is None and s.time.sleeps == [3.0]
    await s.frames_grow()
    await s.session.close()


async def test_media_without_signaling_on_first_join_stays_permanent(sim: Simulator, media_listener: Any) -> None:
    fds, tasks = open_fds(), other_tasks()
    s = Setup(sim, media_listener)
    s.stream.reject_next_media(Status.INVALID_STREAM_ID, "audio")
    with pytest.raises(HandshakeError) as info:
        await s.session.start()
    assert info.value.status_code == StatusB.STATUS_INVALID_RTMS_STREAM_ID and info.value.socket == "media:audio"
    assert s.session.state is SessionState.STOPPED and s.time.sleeps == [] and s.stream.client.signaling_accepted == 1
    await leak_check(fds, tasks)


async def test_signaling_invalid_stream_id_during_reconnect_stays_permanent(sim: Simulator, media_listener: Any) -> None:
    """Only the media handshake gets the benefit of the doubt: signaling refusing the stream is final."""
    s = Setup(sim, media_listener)
    await s.session.start()
    s.stream.drop_signaling()
    s.stream.reject_next_signaling(Status.INVALID_STREAM_ID)
    with pytest.raises(HandshakeError):
        await s.session.interrupted()
    await s.session.wait_closed()
    assert s.session.reconnects == 0 and s.time.sleeps == [] and isinstance(s.session.error, HandshakeError)


# ---------------------------------------------------------------------------- 2. termination


@pytest.mark.parametrize("via", ["msg8", "webhook"])
@pytest.mark.parametrize("reason", SERVER_STOP_REASONS, ids=lambda r: f"{int(r)}-{StopReason(r).name}")
async def test_termination_reason_ends_cleanly(sim: Simulator, media_listener: Any, reason: int, via: str) -> None:
    fds, tasks = open_fds(), other_tasks()
    s = Setup(sim, media_listener, media_kinds=("audio", "transcript"))
    await s.session.start()
    await s.frames_grow()
    if via == "msg8":  # msg 8 TERMINATED (+ msg 9 STOPPED) on signaling, then the server closes
        s.stream.terminate(reason, webhook=False)
    else:  # *.rtms_stopped reaches the app first; the server's own messages follow
        body = s.stream.webhook_body(protocol.WebhookKind.STOPPED, stop_reason=reason)
        ev = protocol.parse_webhook(body)
        assert ev.stop_reason == reason
        s.session.stopped(ev.stop_reason)
        s.stream.terminate(reason, webhook=False)
    await s.session.wait_closed()
    assert s.session.stop_reason == reason and s.session.error is None
    assert s.session.state is SessionState.STOPPED
    if via == "msg8":
        assert s.session.stream_state is StreamState.TERMINATED
    stopped = [e for e in s.events if e["type"] == "session_state" and e["state"] == "STOPPED"]
    assert len(stopped) == 1 and stopped[0]["stop_reason"] == reason
    stats = s.session.stats()
    assert not any(stats["sockets"].values()), stats["sockets"]
    assert s.session.reconnects == 0 and s.session.media_reconnects == 0 and "reconnected" not in s.types()
    assert s.time.sleeps == [] and s.stream.client.signaling_accepted == 1
    with pytest.raises(SessionClosed):
        await s.session.interrupted()
    await leak_check(fds, tasks)


# ---------------------------------------------------------------------------- 3. backoff and windows


def test_default_backoff_and_windows_are_zooms() -> None:
    s = SessionSettings(CLIENT_ID, CLIENT_SECRET)
    assert s.reconnect_backoff_s == (3.0, 6.0, 12.0, 24.0, 30.0)
    assert s.reconnect_window_s == 60.0 and s.media_reconnect_window_s == 65.0
    assert protocol.MEDIA_RECONNECT_WINDOW_S == {"2026": 65.0, "2025": 30.0}


def expected_sleeps(window_s: float) -> list[float]:
    """Zoom's delays in order while the next attempt still starts inside the window."""
    out: list[float] = []
    attempt = 0
    while True:
        delay = ZOOM_BACKOFF[min(attempt, len(ZOOM_BACKOFF) - 1)]
        if sum(out) + delay > window_s:
            return out
        out.append(delay)
        attempt += 1


async def test_backoff_follows_zooms_sequence_until_the_window_ends(sim_factory: Callable[..., Any], media_listener: Any) -> None:
    sim = await sim_factory()
    s = Setup(sim, media_listener, reconnect_window_s=200.0)  # long enough to see the 30 s cap repeat
    await s.session.start()
    fds, tasks = open_fds(), other_tasks()
    t0 = s.time.now
    await sim.close()  # the server is gone: every attempt fails at once
    with pytest.raises(KeepAliveTimeout):
        await s.session.interrupted()
    await s.session.wait_closed()
    assert s.time.sleeps[:6] == list(ZOOM_BACKOFF)
    assert s.time.sleeps == expected_sleeps(200.0) == [3.0, 6.0, 12.0, 24.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    assert s.time.now - t0 == sum(s.time.sleeps) <= 200.0 < sum(s.time.sleeps) + 30.0
    assert s.session.reconnects == 0 and isinstance(s.session.error, KeepAliveTimeout)
    await leak_check(fds, tasks)


async def test_backoff_counter_resets_after_a_successful_handshake(sim: Simulator, media_listener: Any) -> None:
    s = Setup(sim, media_listener)
    await s.session.start()
    # stream level: two transient refusals, then success
    s.stream.drop_signaling()
    s.stream.reject_next_signaling(Status.DUPLICATE_SIGNAL_REQUEST)
    s.stream.reject_next_signaling(Status.DUPLICATE_SIGNAL_REQUEST)
    await s.session.interrupted()
    assert s.session.reconnects == 1 and s.time.sleeps == [3.0, 6.0]
    await s.frames_grow()
    # next interruption starts again at 3 s
    s.stream.drop_signaling()
    s.stream.reject_next_signaling(Status.DUPLICATE_SIGNAL_REQUEST)
    await s.session.interrupted()
    assert s.session.reconnects == 2 and s.time.sleeps == [3.0, 6.0, 3.0]
    await s.frames_grow()
    # media level: its own counter, also from 3 s
    s.stream.reject_next_media(Status.INTERNAL_EXCEPTION, "audio")
    s.stream.reject_next_media(Status.INTERNAL_EXCEPTION, "audio")
    s.stream.abort_media("audio")
    await wait_for(lambda: s.session.media_reconnects == 1)
    assert s.time.sleeps == [3.0, 6.0, 3.0, 3.0, 6.0]
    s.stream.reject_next_media(Status.INTERNAL_EXCEPTION, "audio")
    s.stream.abort_media("audio")
    await wait_for(lambda: s.session.media_reconnects == 2)
    assert s.time.sleeps == [3.0, 6.0, 3.0, 3.0, 6.0, 3.0] and s.session.error is None
    await s.frames_grow()
    await s.session.close()


async def test_signaling_window_60s_ends_the_attempts(sim_factory: Callable[..., Any], media_listener: Any) -> None:
    sim = await sim_factory()
    s = Setup(sim, media_listener)  # default: 60 s
    await s.session.start()
    t0 = s.time.now
    await sim.close()
    with pytest.raises(KeepAliveTimeout):
        await s.session.interrupted()
    await s.session.wait_closed()
    assert s.time.sleeps == expected_sleeps(60.0) == [3.0, 6.0, 12.0, 24.0]
    assert s.time.now - t0 == 45.0  # the next attempt (after 30 s more) would start past 60 s
    assert s.session.state is SessionState.STOPPED and isinstance(s.session.error, KeepAliveTimeout)


@pytest.mark.parametrize(("profile", "window_s", "sleeps"), [("2026", 65.0, [3.0, 6.0, 12.0, 24.0]), ("2025", 30.0, [3.0, 6.0, 12.0])])
async def test_media_window_profile_ends_the_attempts(sim: Simulator, media_listener: Any, profile: str, window_s: float, sleeps: list[float]) -> None:
    s = Setup(sim, media_listener, media_reconnect_window_s=protocol.MEDIA_RECONNECT_WINDOW_S[profile])
    assert s.session.settings.media_reconnect_window_s == window_s
    await s.session.start()
    await s.frames_grow()
    for _ in range(10):  # more refusals than the window allows attempts
        s.stream.reject_next_media(Status.INTERNAL_EXCEPTION, "audio")
    t0 = s.time.now
    s.stream.abort_media("audio")
    await s.session.wait_closed()
    assert isinstance(s.session.error, KeepAliveTimeout) and "media audio" in str(s.session.error)
    assert s.time.sleeps == expected_sleeps(window_s) == sleeps
    assert s.time.now - t0 == sum(sleeps) <= window_s < sum(sleeps) + ZOOM_BACKOFF[len(sleeps)]
    refused = [c for label, c in s.stream.client.media_handshakes if label == "media:audio" and c != 0]
    assert len(refused) == len(sleeps) + 1  # one attempt, then one per backoff step
    assert s.session.media_reconnects == 0 and s.session.state is SessionState.STOPPED
