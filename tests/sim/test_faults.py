"""Every per-stream fault switch, pause/resume, stream close (21/22) and video subscription (28/29)."""

from __future__ import annotations

import base64

import pytest

from gateway import protocol
from gateway.protocol import MsgType, SessionState, Status, StopReason, StreamState
from gateway.sim import INJECTIONS, Simulator
from tests.sim.helpers import Session, StandInContent, TestClient, WebhookSink, config, wait_for


def audio_ts(msgs: list[dict]) -> list[int]:
    return [m["content"]["timestamp"] for m in msgs if m["msg_type"] == MsgType.MEDIA_DATA_AUDIO]


async def test_abort_media_is_a_tcp_drop_and_server_reports_it() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        stream.abort_media("audio")
        assert await s.media["audio"].closed()
        assert s.media["audio"].ws.close_code == 1006  # no close frame: abnormal closure
        ev = await s.signaling.recv_type(MsgType.EVENT_UPDATE)  # type: ignore[union-attr]
        while ev["event"]["event_type"] != 7:
            ev = await s.signaling.recv_type(MsgType.EVENT_UPDATE)  # type: ignore[union-attr]
        upd = await s.signaling.recv_type(MsgType.STREAM_STATE_UPDATE)  # type: ignore[union-attr]
        while upd["state"] != StreamState.INTERRUPTED:
            upd = await s.signaling.recv_type(MsgType.STREAM_STATE_UPDATE)  # type: ignore[union-attr]
        assert upd["reason"] == 14
        await s.close()


async def test_drop_signaling_sends_interrupted_webhook_and_closes_media() -> None:
    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url)) as sim:
        stream = sim.create_stream()
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        stream.drop_signaling()
        assert await s.signaling.closed() and await s.media["audio"].closed()  # type: ignore[union-attr]
        assert s.signaling.ws.close_code == 1006  # type: ignore[union-attr]
        await sim.webhooks.drain()
        assert sink.events() == ["meeting.rtms_started", "meeting.rtms_interrupted"]
        interrupted = sink.bodies()[1]["payload"]
        assert interrupted == {"meeting_uuid": stream.instance_id, "rtms_stream_id": stream.stream_id}  # no server_urls
        # the client may come back within the window
        r = Session(sim, stream, auto_keepalive=True)
        await r.join({"audio": None})
        assert await wait_for(lambda: stream.state == StreamState.ACTIVE) and not stream.terminated
        await s.close()
        await r.close()


async def test_stop_sending_keepalives() -> None:
    async with Simulator(config(keepalive_interval_s=0.05)) as sim:
        stream = sim.create_stream(webhook=False)
        stream.faults.send_keepalives = False
        s = Session(sim, stream)
        await s.join({"audio": None})
        await s.signaling.drain(0.4)  # type: ignore[union-attr]
        assert s.signaling.keepalives == 0 and s.media["audio"].keepalives == 0  # type: ignore[union-attr]
        assert not stream.terminated  # nothing unanswered, nothing missed
        stream.faults.send_keepalives = True
        assert await wait_for(lambda: s.signaling.keepalives > 0)  # type: ignore[union-attr]
        await s.close()


async def test_ignore_client_messages() -> None:
    async with Simulator(config(time_scale=0.01)) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        stream.faults.ignore_client = True
        await s.signaling.send(protocol.build_stream_state_request(stream.stream_id))  # type: ignore[union-attr]
        msgs = await s.signaling.drain(0.3)  # type: ignore[union-attr]
        assert MsgType.STREAM_STATE_RESP not in [m["msg_type"] for m in msgs]
        assert await wait_for(lambda: stream.terminated, 3)  # keep-alive answers were ignored too
        assert stream.stop_reason == StopReason.STOP_BC_KEEP_ALIVE_TIMEOUT
        assert (MsgType.STREAM_STATE_REQ) in stream.client.types("signaling")  # still recorded
        await s.close()


async def test_failover_moves_stream_to_second_listener() -> None:
    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url)) as sim:
        stream = sim.create_stream()
        old_url = stream.signaling_url
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        await stream.failover(refuse_old=True)
        assert await s.signaling.closed() and await s.media["audio"].closed()  # type: ignore[union-attr]
        await sim.webhooks.drain()
        started = [b for b in sink.bodies() if b["event"] == "meeting.rtms_started"]
        assert len(started) == 2 and started[0]["payload"]["rtms_stream_id"] == started[1]["payload"]["rtms_stream_id"]
        new_url = started[1]["payload"]["server_urls"]
        assert new_url != old_url and new_url == stream.signaling_url
        # the old server refuses the stream now
        ws = await TestClient.open(old_url)
        await ws.send(Session(sim, stream).hello())
        assert (await ws.recv_type(MsgType.SIGNALING_HAND_SHAKE_RESP))["status_code"] == protocol.status_code(Status.INVALID_STREAM_ID)
        # the new one serves it, with media URLs on its own media listener
        r = Session(sim, stream, auto_keepalive=True)
        await r.join({"audio": None})
        assert all(str(sim._listeners[1].media_port) in u for u in r.urls.values())
        assert audio_ts(await r.media["audio"].drain(0.2))
        await s.close()
        await r.close()


async def test_duplicate_webhooks() -> None:
    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url, webhook_duplicates=2)) as sim:
        stream = sim.create_stream()
        stream.send_duplicate_started(count=3)
        await sim.webhooks.drain()
        assert sink.events() == ["meeting.rtms_started"] * 5
        bodies = {b for _, b in sink.requests}
        assert len(bodies) == 1  # the same event, byte for byte
        assert len({h["x-zm-request-id"] for h, _ in sink.requests}) == 5


async def test_pause_and_resume() -> None:
    async with Simulator(config(stream_state_on_pause=True)) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        await s.media["audio"].drain(0.1)
        stream.pause()
        st = await s.signaling.recv_type(MsgType.SESSION_STATE_UPDATE)  # type: ignore[union-attr]
        while st["state"] != SessionState.PAUSED:
            st = await s.signaling.recv_type(MsgType.SESSION_STATE_UPDATE)  # type: ignore[union-attr]
        assert (await s.signaling.recv_type(MsgType.STREAM_STATE_UPDATE))["state"] == StreamState.PAUSED  # type: ignore[union-attr]
        await s.media["audio"].drain(0.05)  # in flight
        assert audio_ts(await s.media["audio"].drain(0.3)) == []  # nothing while paused
        last = max(t for t, _ in stream.sent.audio[0])
        stream.resume()
        assert (await s.signaling.recv_type(MsgType.SESSION_STATE_UPDATE))["state"] == SessionState.RESUMED  # type: ignore[union-attr]
        assert (await s.signaling.recv_type(MsgType.STREAM_STATE_UPDATE))["state"] == StreamState.RESUMED  # type: ignore[union-attr]
        after = audio_ts(await s.media["audio"].drain(0.2))
        assert after and after[0] >= last + 300  # audio captured during the pause is not delivered
        await s.close()


@pytest.mark.parametrize("reason", [StopReason.STOP_BC_MEETING_ENDED, StopReason.STOP_BC_STREAM_REVOKED, StopReason.STOP_BC_AUTHENTICATION_FAILURE, 26])
async def test_terminate_with_any_reason(reason: int) -> None:
    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url, session_reason_key="reason")) as sim:
        stream = sim.create_stream()
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        stream.terminate(reason)
        stopped = await s.signaling.recv_type(MsgType.SESSION_STATE_UPDATE)  # type: ignore[union-attr]
        while stopped["state"] != SessionState.STOPPED:
            stopped = await s.signaling.recv_type(MsgType.SESSION_STATE_UPDATE)  # type: ignore[union-attr]
        assert stopped["reason"] == reason
        term = await s.signaling.recv_type(MsgType.STREAM_STATE_UPDATE)  # type: ignore[union-attr]
        assert (term["state"], term["reason"]) == (StreamState.TERMINATED, reason)
        assert await s.signaling.closed() and await s.media["audio"].closed()  # type: ignore[union-attr]
        assert s.signaling.ws.close_code == 1000  # type: ignore[union-attr]
        await sim.webhooks.drain()
        assert sink.bodies()[-1]["event"] == "meeting.rtms_stopped" and sink.bodies()[-1]["payload"]["stop_reason"] == reason
        # a terminated stream refuses new handshakes
        ws = await TestClient.open(stream.signaling_url)
        await ws.send(Session(sim, stream).hello())
        assert (await ws.recv_type(MsgType.SIGNALING_HAND_SHAKE_RESP))["status_code"] == protocol.status_code(Status.INVALID_STREAM_ID)


@pytest.mark.parametrize("what", INJECTIONS)
async def test_injected_malformed_frames(what: str) -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        media = s.media["audio"]
        await media.drain(0.05)
        stream.inject(what, "audio")
        msgs = await media.drain(0.2)
        if what == "malformed_json":
            assert media.unparseable == [b'{"msg_type": 14, "content": {"data": ']
        elif what == "truncated":
            assert len(media.unparseable) == 1 and media.unparseable[0].startswith(b'{"msg_type":14,"content":{')
            assert not media.unparseable[0].endswith(b"}")
        elif what == "bad_base64":
            assert len([m for m in msgs if m["msg_type"] == 14 and m["content"]["data"] == "!!not*base64!!"]) == 1
        else:
            assert [m["msg_type"] for m in msgs if m["msg_type"] == 99] == [99]
        assert media.ws.state.name == "OPEN" and audio_ts(msgs)  # the connection stays up and media continues
        await s.close()


async def test_inject_needs_a_media_socket() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        with pytest.raises(ValueError, match="no media socket"):
            stream.inject("truncated", "video")


async def test_stream_close_request() -> None:
    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url)) as sim:
        stream = sim.create_stream()
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        await s.signaling.send(protocol.build_stream_close_request(stream.stream_id))  # type: ignore[union-attr]
        resp = await s.signaling.recv_type(MsgType.STREAM_CLOSE_RESP)  # type: ignore[union-attr]
        assert (resp["status_code"], resp["rtms_stream_id"]) == (0, stream.stream_id)
        term = await s.signaling.recv_type(MsgType.STREAM_STATE_UPDATE)  # type: ignore[union-attr]
        while term["state"] != StreamState.TERMINATED:
            term = await s.signaling.recv_type(MsgType.STREAM_STATE_UPDATE)  # type: ignore[union-attr]
        assert term["reason"] == StopReason.STOP_BC_RECEIVER_REQUEST_CLOSE == 20
        assert await s.signaling.closed() and await s.media["audio"].closed()  # type: ignore[union-attr]
        await sim.webhooks.drain()
        assert sink.bodies()[-1]["event"] == "meeting.rtms_stopped" and sink.bodies()[-1]["payload"]["stop_reason"] == 20


async def test_video_subscription() -> None:
    async with Simulator(config()) as sim:
        content = StandInContent()
        stream = sim.create_stream(webhook=False, content=content)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"video": {"video": {"data_opt": 4, "fps": 5}}})
        sig, video = s.signaling, s.media["video"]
        assert sig is not None

        def frames(msgs: list[dict]) -> list[tuple[int, bytes]]:
            return [(m["content"]["user_id"], base64.b64decode(m["content"]["data"])) for m in msgs if m["msg_type"] == MsgType.MEDIA_DATA_VIDEO]

        assert frames(await video.drain(0.4)) == []  # data_opt 4: nothing before a subscription
        await sig.send(protocol.build_video_subscription(100, True, 1))
        r = await sig.recv_type(MsgType.VIDEO_SUBSCRIPTION_RESP)
        assert (r["user_id"], r["status_code"]) == (100, 0)
        got = frames(await video.drain(0.5))
        assert got and {u for u, _ in got} == {100}
        await sig.send(protocol.build_video_subscription(100, True, 2))
        r = await sig.recv_type(MsgType.VIDEO_SUBSCRIPTION_RESP)
        assert r["status_code"] == protocol.status_code(Status.DUPLICATE_VIDEO_SUBSCRIPTION) == 44
        await sig.send(protocol.build_video_subscription(200, True, 3))  # replaces 100
        assert (await sig.recv_type(MsgType.VIDEO_SUBSCRIPTION_RESP))["status_code"] == 0
        await video.drain(0.1)
        got = frames(await video.drain(0.5))
        assert got and {u for u, _ in got} == {200}
        content.video_off_ms = stream.elapsed_ms() + 50  # user 200 turns the camera off (event 9)
        await video.drain(0.3)
        assert frames(await video.drain(0.5)) == [] and stream.video_subscription is None
        await sig.send(protocol.build_video_subscription(100, True, 4))
        assert (await sig.recv_type(MsgType.VIDEO_SUBSCRIPTION_RESP))["status_code"] == 0
        assert frames(await video.drain(0.5))
        await sig.send(protocol.build_video_subscription(100, False, 5))
        r = await sig.recv_type(MsgType.VIDEO_SUBSCRIPTION_RESP)
        assert r["status_code"] == 0 and r["subscribe"] is False
        await video.drain(0.1)
        assert frames(await video.drain(0.4)) == []
        await s.close()


async def test_video_subscription_needs_individual_data_opt() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"video": None})
        await s.signaling.send(protocol.build_video_subscription(100, True, 1))  # type: ignore[union-attr]
        r = await s.signaling.recv_type(MsgType.VIDEO_SUBSCRIPTION_RESP)  # type: ignore[union-attr]
        assert r["status_code"] == protocol.status_code(Status.INVALID_VIDEO_DATA_OPT)
        await s.close()


async def test_move_media_changes_urls_on_next_handshake() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        first_urls = dict(s.urls)
        await stream.move_media()
        stream.drop_signaling()
        r = Session(sim, stream, auto_keepalive=True)
        await r.join({"audio": None})
        assert r.urls["audio"] != first_urls["audio"] and f":{sim._listeners[1].media_port}/" in r.urls["audio"]
        assert audio_ts(await r.media["audio"].drain(0.2))
        await s.close()
        await r.close()


async def test_late_duplicate_started_and_concurrency_webhooks() -> None:
    from gateway.sim.webhooks import concurrency_limited, concurrency_near_limit

    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url)) as sim:
        stream = sim.create_stream()
        await sim.webhooks.drain()
        stream.send_duplicate_started(delay_s=0.2)
        await sim.webhooks.post(concurrency_near_limit(2000, 1700))
        await sim.webhooks.post(concurrency_limited("meeting_uuid", stream.instance_id))
        assert sink.events() == ["meeting.rtms_started", "rtms.concurrency_near_limit", "rtms.concurrency_limited"]
        await sim.webhooks.drain()
        assert sink.events()[-1] == "meeting.rtms_started"  # the late retry arrives after the others
        assert sink.bodies()[1]["payload"] == {"concurrency_limit": 2000, "concurrency_number": 1700, "percentage": 85}
        assert sink.bodies()[2]["payload"]["id_field"] == {"meeting_uuid": stream.instance_id}


async def test_arbitrary_state_updates_and_raw_signaling() -> None:
    async with Simulator(config(stream_state_ts_seconds=True)) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        sig = s.signaling
        assert sig is not None
        stream.send_state(StreamState.INTERRUPTED, StopReason.STOP_BC_SIGNAL_CONNECTION_INTERRUPTED)
        upd = await sig.recv_type(MsgType.STREAM_STATE_UPDATE)
        while upd["state"] != StreamState.INTERRUPTED:
            upd = await sig.recv_type(MsgType.STREAM_STATE_UPDATE)
        assert upd["reason"] == 13 and not stream.terminated  # a notice only: nothing else changes
        stream.send_state(SessionState.STOPPED, StopReason.STOP_BC_HOST_TRIGGERED, session=True)
        st = await sig.recv_type(MsgType.SESSION_STATE_UPDATE)
        while st["state"] != SessionState.STOPPED:
            st = await sig.recv_type(MsgType.SESSION_STATE_UPDATE)
        assert st["stop_reason"] == 1
        stream.send_signaling_raw({"msg_type": 23, "content": {"lid": 9}})
        stream.send_signaling_raw(b"\x00not json")
        assert (await sig.recv_type(23))["content"] == {"lid": 9}
        assert await wait_for(lambda: sig.unparseable == [b"\x00not json"])
        await sig.send(protocol.build_stream_state_request(stream.stream_id))
        resp = await sig.recv_type(MsgType.STREAM_STATE_RESP)
        assert resp["timestamp"] < 10**11  # seconds, like the docs' example
        await s.close()


async def test_several_sessions_on_one_stream() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        sig = s.signaling
        assert sig is not None
        sid = stream.add_session()
        assert sid != stream.session_id
        stream.stop_session(sid, StopReason.STOP_BC_USER_LEFT)
        await sig.drain(0.2)
        updates = [m for m in sig.received if m["msg_type"] == MsgType.SESSION_STATE_UPDATE and m["rtms_session_id"] == sid]
        assert sorted((u["state"], u["stop_reason"]) for u in updates) == [(SessionState.STARTED, 0), (SessionState.STOPPED, 3)]
        await sig.send(protocol.build_session_state_request(sid))
        r = await sig.recv_type(MsgType.SESSION_STATE_RESP)
        assert (r["rtms_session_id"], r["state"]) == (sid, SessionState.STOPPED)
        assert audio_ts(await s.media["audio"].drain(0.1)) and not stream.terminated
        await s.close()
