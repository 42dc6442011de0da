"""Individual video (data_opt 4, PROTOCOL.md 2.15) end to end: the real simulator, the real gateway.

No video until a subscription succeeds; ``video_follow`` re-subscribes on PARTICIPANT_VIDEO_ON and
moves on at PARTICIPANT_VIDEO_OFF; ``POST /streams/{id}/video`` switches the user behind the
operator token.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.config import ControlConfig, Secret, SessionsConfig, config_from_mapping
from gateway.errors import ConfigError
from gateway.protocol import EventType, Product
from gateway.sim.content import MeetingContent
from gateway.sim.server import SimStream, Simulator
from gateway.stats_sink import StatsSink
from tests.gateway.conftest import wait_for
from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config

KINDS = ("audio", "video")
TOKEN = "operator-token-1"
INDIVIDUAL = {"video": {"data_opt": 4, "resolution": 1}}


def _steady_meeting(participants: int, seed: int, product: Product) -> MeetingContent:
    """Nobody joins late or leaves: participants 0 and 1 keep their cameras on unless a test says otherwise."""
    return MeetingContent(participants, seed=seed, product=product, late_join_ms=None, leave_ms=None)


async def _setup(sim_factory: Any, *, token: str = "", media_params: Any = INDIVIDUAL, sim: dict[str, Any] | None = None, **sessions: Any) -> tuple[Gateway, Simulator, dict[str, StatsSink]]:
    sinks: dict[str, StatsSink] = {}

    def sink_for(event: Any) -> StatsSink:
        return sinks.setdefault(event.stream_id, StatsSink())

    config = make_config(sessions=SessionsConfig(media_kinds=KINDS, media_params=media_params, **sessions))
    if token:
        config = dataclasses.replace(config, control=ControlConfig(operator_token=Secret(token)))
    gw = Gateway(config.validate(), sink_factory=sink_for)
    await gw.start()
    simulator = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url, content_factory=_steady_meeting, **(sim or {}))
    return gw, simulator, sinks


def _on_from_start(content: MeetingContent) -> list[int]:
    """Participants whose camera the simulator keeps on from the start (no scheduled on/off)."""
    return [p.user_id for p in content.participants if p.join_ms == 0 and p.leave_ms is None and p.index != 2]


def _video_users(sink: StatsSink) -> dict[int, int]:
    return {uid: counts[0] for uid, counts in sink.users["video"].items()}


async def _started(gw: Gateway, sim: Simulator, sinks: dict[str, StatsSink]) -> tuple[SimStream, Any, StatsSink]:
    stream = sim.create_stream()
    await wait_for(lambda: stream.stream_id in sinks and stream.stream_id in gw.streams and sinks[stream.stream_id].frames["audio"] >= 10, timeout_s=20)
    await wait_for(lambda: len(stream.video_on) >= 2, timeout_s=10)
    return stream, gw.streams[stream.stream_id].session, sinks[stream.stream_id]


async def _audio_advances(sink: StatsSink, frames: int = 25) -> None:
    """Let media time pass (measured in audio frames, not wall clock)."""
    target = sink.frames["audio"] + frames
    await wait_for(lambda: sink.frames["audio"] >= target, timeout_s=10)


async def test_data_opt_4_without_subscription_sends_no_video(sim_factory: Any) -> None:
    gw, sim, sinks = await _setup(sim_factory)
    try:
        stream, session, sink = await _started(gw, sim, sinks)
        await _audio_advances(sink)
        assert {EventType.PARTICIPANT_VIDEO_ON, EventType.PARTICIPANT_VIDEO_OFF} <= stream.client.subscriptions
        assert stream.video_subscription is None
        assert sink.frames["video"] == 0 and not stream.sent.video
        assert session.stats()["video_user"] is None
        assert set(session.video_on) == stream.video_on  # the session tracked events 8/9
    finally:
        await gw.close()


async def test_follow_user_resubscribes_after_video_off_on(sim_factory: Any) -> None:
    users = _on_from_start(_steady_meeting(3, 0, Product.MEETING))
    assert len(users) >= 2
    wanted = users[1]
    gw, sim, sinks = await _setup(sim_factory, video_follow="user", video_subscribe_user=wanted)
    try:
        stream, session, sink = await _started(gw, sim, sinks)
        await wait_for(lambda: _video_users(sink).get(wanted, 0) >= 3, timeout_s=10)
        assert set(_video_users(sink)) == {wanted}
        assert session.stats()["video_user"] == wanted

        stream.set_camera(wanted, False)
        await wait_for(lambda: session.video_user is None, timeout_s=5)
        sent_when_off = len(stream.sent.video.get(wanted, []))
        await _audio_advances(sink)
        assert len(stream.sent.video.get(wanted, [])) == sent_when_off  # 2.15: video stopped

        stream.set_camera(wanted, True)
        await wait_for(lambda: len(stream.sent.video.get(wanted, [])) >= sent_when_off + 3, timeout_s=10)
        assert session.video_user == wanted and stream.video_subscription == wanted
        assert set(_video_users(sink)) == {wanted}
    finally:
        await gw.close()


async def test_follow_first_moves_to_another_camera(sim_factory: Any) -> None:
    gw, sim, sinks = await _setup(sim_factory, video_follow="first")
    try:
        stream, session, sink = await _started(gw, sim, sinks)
        await wait_for(lambda: session.video_user is not None and sink.frames["video"] >= 3, timeout_s=10)
        first = session.video_user
        assert set(_video_users(sink)) == {first}

        stream.set_camera(first, False)
        await wait_for(lambda: session.video_user not in (None, first), timeout_s=5)
        second = session.video_user
        await wait_for(lambda: _video_users(sink).get(second, 0) >= 3, timeout_s=10)
        assert stream.video_subscription == second
        assert session.stats()["video_user"] == second
    finally:
        await gw.close()


async def test_http_api_switches_user_and_returns_status(sim_factory: Any) -> None:
    gw, sim, sinks = await _setup(sim_factory, token=TOKEN)
    try:
        stream, session, sink = await _started(gw, sim, sinks)
        user = _on_from_start(stream.content)[0]
        url = f"{gw.base_url}/streams/{stream.stream_id}/video"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"user_id": user, "subscribe": True}) as r:
                assert r.status == 401
            async with http.post(url, json={"user_id": user, "subscribe": True}, headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 401
            async with http.post(f"{gw.base_url}/streams/nope/video", json={"user_id": user, "subscribe": True}, headers=auth) as r:
                assert r.status == 404
            async with http.post(url, json={"user_id": "x"}, headers=auth) as r:
                assert r.status == 400
            async with http.post(url, json={"user_id": user, "subscribe": True}, headers=auth) as r:
                assert r.status == 200
                assert (await r.json())["status_code"] == 0
            await wait_for(lambda: _video_users(sink).get(user, 0) >= 3, timeout_s=10)
            async with http.post(url, json={"user_id": user, "subscribe": True}, headers=auth) as r:
                assert r.status == 200
                assert (await r.json())["status_code"] == 44  # DUPLICATE_VIDEO_SUBSCRIPTION
            async with http.post(url, json={"user_id": user, "subscribe": False}, headers=auth) as r:
                assert (r.status, (await r.json())["status_code"]) == (200, 0)
            assert stream.video_subscription is None and session.video_user is None
    finally:
        await gw.close()


async def test_http_api_409_without_data_opt_4_and_no_route_without_token(sim_factory: Any) -> None:
    gw, sim, sinks = await _setup(sim_factory, token=TOKEN, media_params={})
    gw2 = Gateway(make_config(sessions=SessionsConfig(media_kinds=KINDS, media_params=INDIVIDUAL)), sink_factory=lambda event: StatsSink())
    await gw2.start()
    try:
        stream, _, _ = await _started(gw, sim, sinks)
        async with aiohttp.ClientSession() as http:
            body = {"user_id": 1, "subscribe": True}
            async with http.post(f"{gw.base_url}/streams/{stream.stream_id}/video", json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 409
            async with http.post(f"{gw2.base_url}/streams/{stream.stream_id}/video", json=body) as r:
                assert r.status in (404, 405)  # no operator token: the route does not exist
    finally:
        await gw.close()
        await gw2.close()


_BASE = {"credentials": {"client_id": "a", "client_secret": "b", "webhook_secret": "c"}}


@pytest.mark.parametrize(
    ("sessions", "key"),
    [
        ({"video_follow": "loudest", "media_params": INDIVIDUAL}, "sessions.video_follow"),
        ({"video_follow": "user", "media_params": INDIVIDUAL}, "sessions.video_follow"),
        ({"video_follow": "first"}, "sessions.video_follow"),
        ({"video_subscribe_user": 5}, "sessions.video_subscribe_user"),
        ({"video_subscribe_user": -1, "media_params": INDIVIDUAL}, "sessions.video_subscribe_user"),
        ({"video_subscribe_user": "x", "media_params": INDIVIDUAL}, "sessions.video_subscribe_user"),
    ],
)
def test_config_errors_name_the_key(sessions: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_mapping({**_BASE, "sessions": sessions}).validate()


def test_config_accepts_follow_with_data_opt_4() -> None:
    cfg = config_from_mapping({**_BASE, "sessions": {"video_follow": "user", "video_subscribe_user": 7, "media_params": INDIVIDUAL}}).validate()
    assert (cfg.sessions.video_follow, cfg.sessions.video_subscribe_user) == ("user", 7)


async def test_subscription_is_renewed_after_a_reconnect(sim_factory: Any) -> None:
    # the app's first reconnect follows Zoom's 3 s backoff: a window (scaled) long enough for it
    gw, sim, sinks = await _setup(sim_factory, video_follow="first", sim={"signaling_window_s": 600.0})
    try:
        stream, session, sink = await _started(gw, sim, sinks)
        await wait_for(lambda: session.video_user is not None and sink.frames["video"] >= 3, timeout_s=10)
        user = session.video_user
        requests_before = stream.client.types().count(28)
        stream.interrupt_signaling()
        stream.video_subscription = None  # a server that forgot: only a new msg 28 brings video back
        await wait_for(lambda: len(stream.client.reconnects) >= 1 and stream.video_subscription == user, timeout_s=20)
        assert stream.client.types().count(28) > requests_before
        sent = len(stream.sent.video.get(user, []))
        await wait_for(lambda: len(stream.sent.video.get(user, [])) >= sent + 3, timeout_s=10)
        assert session.video_user == user
    finally:
        await gw.close()
