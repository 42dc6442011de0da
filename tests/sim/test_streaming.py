"""Media pacing, the startup buffer, events and the request/response pairs on signaling."""

from __future__ import annotations

import base64
import itertools

import pytest

from gateway import protocol
from gateway.protocol import EventType, MsgType, SessionState, StreamState
from gateway.sim import Simulator
from tests.sim.helpers import Session, StandInContent, config, wait_for


def media(msgs: list[dict], mt: int) -> list[dict]:
    return [m["content"] for m in msgs if m.get("msg_type") == mt]


async def test_no_media_before_ready_ack_then_paced_mixed_audio() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream)
        assert (await s.connect_signaling())["status_code"] == 0
        assert (await s.connect_media("audio", {"audio": {"send_rate": 40}}))["status_code"] == 0
        early = await s.media["audio"].drain(0.3)
        assert media(early, MsgType.MEDIA_DATA_AUDIO) == []  # nothing until msg 7 on signaling
        await s.ready()
        got = media(await s.media["audio"].drain(0.6), MsgType.MEDIA_DATA_AUDIO)
        assert len(got) >= 5
        # mixed stream: user 0 with an empty name; 16 kHz mono L16 40 ms = 1280 bytes; length present
        assert {(c["user_id"], c["user_name"], c["length"]) for c in got} == {(0, "", 1280)}
        ts = [c["timestamp"] for c in got]
        assert all(b - a == 40 for a, b in itertools.pairwise(ts))
        for c in got:  # payload is the content's packet for exactly that media time
            assert base64.b64decode(c["data"]) == StandInContent.payload(0, c["timestamp"] - stream.started_ms, 1280)
        assert stream.sent.audio_bytes(0).startswith(b"".join(base64.b64decode(c["data"]) for c in got))
        await s.close()


async def test_multi_stream_audio_has_per_user_timelines() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream)
        await s.join({"audio": {"audio": {"data_opt": 2, "sample_rate": 0}}})
        got = media(await s.media["audio"].drain(0.5), MsgType.MEDIA_DATA_AUDIO)
        users = {c["user_id"]: [] for c in got}
        for c in got:
            users[c["user_id"]].append(c)
        assert set(users) == {100, 200}
        for uid, packets in users.items():
            assert {p["user_name"] for p in packets} == {"Ann" if uid == 100 else "Ben"}
            assert all(len(base64.b64decode(p["data"])) == 320 for p in packets)  # 8 kHz mono 20 ms
            ts = [p["timestamp"] for p in packets]
            assert all(b - a == 20 for a, b in itertools.pairwise(ts))
        await s.close()


@pytest.mark.parametrize("buffer_data", [True, False])
async def test_startup_audio_buffer(buffer_data: bool) -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(backlog_ms=3000, webhook=False)
        s = Session(sim, stream)
        await s.join({"audio": None, "video": None}, buffer_data=buffer_data)
        msgs = await s.media["audio"].drain(0.25)
        audio = media(msgs, MsgType.MEDIA_DATA_AUDIO)
        first = audio[0]["timestamp"] - stream.started_ms
        if buffer_data:  # the backlog since rtms_started arrives in a burst
            assert first == 0 and len(audio) >= 150
        else:
            assert first >= 2900 and len(audio) < 50
        assert stream.client.buffer_data is buffer_data
        video = media(await s.media["video"].drain(0.5), MsgType.MEDIA_DATA_VIDEO)
        assert len(video) >= 2 and video[0]["timestamp"] - stream.started_ms >= 3000  # video is never buffered
        assert all(b["timestamp"] - a["timestamp"] == 200 for a, b in itertools.pairwise(video))  # 5 fps
        await s.close()


async def test_startup_buffer_capped_at_configured_seconds() -> None:
    async with Simulator(config(audio_buffer_s=1.0)) as sim:
        stream = sim.create_stream(backlog_ms=5000, webhook=False)
        s = Session(sim, stream)
        await s.join({"audio": None})
        audio = media(await s.media["audio"].drain(0.2), MsgType.MEDIA_DATA_AUDIO)
        assert 3900 <= audio[0]["timestamp"] - stream.started_ms <= 4100
        await s.close()


async def test_transcripts_and_chat_exact() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream)
        await s.join({"transcript": None, "chat": None})
        tr = media(await s.media["transcript"].drain(1.3), MsgType.MEDIA_DATA_TRANSCRIPT)
        assert [t["data"] for t in tr] == stream.sent.transcript_texts()[: len(tr)] and len(tr) >= 2
        t = tr[0]
        assert t["end_time"] - t["start_time"] == 400 and t["timestamp"] == t["start_time"] and t["language"] == 9
        assert "length" not in t
        chats = media(await s.media["chat"].drain(0.2), MsgType.MEDIA_DATA_CHAT)
        assert [c["data"] for c in chats] == [c["text"] for c in stream.sent.chats] == ["chat 1000"]
        await s.close()


async def test_session_started_and_events_follow_subscriptions() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream)
        await s.join({"audio": None})
        # a raw msg 5 that (wrongly) also subscribes to the automatic event 1: recorded as rejected
        await s.signaling.send({"msg_type": 5, "events": [{"event_type": 3, "subscribe": True}, {"event_type": 1, "subscribe": True}]})  # type: ignore[union-attr]
        msgs = await s.signaling.drain(0.3)  # type: ignore[union-attr]
        types = [m["msg_type"] for m in s.signaling.received]  # type: ignore[union-attr]
        assert types[:2] == [MsgType.SIGNALING_HAND_SHAKE_RESP, MsgType.EVENT_UPDATE]
        state = [m for m in s.signaling.received if m["msg_type"] == MsgType.SESSION_STATE_UPDATE]  # type: ignore[union-attr]
        assert state[0]["state"] == SessionState.STARTED and state[0]["rtms_session_id"] == stream.session_id
        events = [m["event"] for m in msgs if m["msg_type"] == MsgType.EVENT_UPDATE and m["event"]["event_type"] != 1]
        assert [e["event_type"] for e in events] == [EventType.PARTICIPANT_JOIN]  # video-on/speaker not subscribed
        assert events[0]["participants"] == [{"user_id": 100, "user_name": "Ann"}, {"user_id": 200, "user_name": "Ben"}]
        assert events[0]["timestamp"] == stream.started_ms
        assert stream.client.rejected_subscriptions == [EventType.FIRST_PACKET_TIMESTAMP]
        await s.close()


async def test_events_user_id_as_string_option() -> None:
    async with Simulator(config(user_id_as_string=True, filter_events_by_subscription=False)) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream)
        await s.join({"audio": None})
        msgs = await s.signaling.drain(0.3)  # type: ignore[union-attr]
        events = {m["event"]["event_type"]: m["event"] for m in msgs if m["msg_type"] == MsgType.EVENT_UPDATE}
        assert events[EventType.ACTIVE_SPEAKER_CHANGE]["user_id"] == "100"
        assert events[EventType.PARTICIPANT_VIDEO_ON]["participants"] == [{"user_id": "100"}, {"user_id": "200"}]
        await s.close()


async def test_state_requests_and_session_reason_key() -> None:
    async with Simulator(config(session_reason_key="reason")) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream)
        await s.join({"audio": None})
        sig = s.signaling
        assert sig is not None
        await sig.send(protocol.build_session_state_request(stream.session_id))
        r = await sig.recv_type(MsgType.SESSION_STATE_RESP)
        assert r["state"] == SessionState.STARTED and r["rtms_session_id"] == stream.session_id and "status_code" not in r
        await sig.send(protocol.build_session_state_request("nope"))
        r = await sig.recv_type(MsgType.SESSION_STATE_RESP)
        assert r["status_code"] == protocol.status_code(protocol.Status.INVALID_SESSION_ID)
        await sig.send(protocol.build_stream_state_request(stream.stream_id))
        r = await sig.recv_type(MsgType.STREAM_STATE_RESP)
        assert r["state"] == StreamState.ACTIVE and r["rtms_stream_id"] == stream.stream_id
        started = next(m for m in sig.received if m["msg_type"] == MsgType.SESSION_STATE_UPDATE)
        assert "reason" in started and "stop_reason" not in started
        await s.close()


async def test_text_frames_from_client_are_accepted_too() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream)
        await s.connect_signaling()
        await s.connect_media("audio")
        await s.signaling.send(protocol.build_client_ready_ack(stream.stream_id), binary=False)  # type: ignore[union-attr]
        assert await wait_for(lambda: stream.client.ready_acks_signaling == 1)
        assert media(await s.media["audio"].drain(0.2), MsgType.MEDIA_DATA_AUDIO)
        await s.close()


async def test_ready_ack_on_media_socket_is_recorded_not_honoured() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream)
        await s.connect_signaling()
        await s.connect_media("audio")
        await s.media["audio"].send(protocol.build_client_ready_ack(stream.stream_id))
        assert media(await s.media["audio"].drain(0.3), MsgType.MEDIA_DATA_AUDIO) == []
        assert stream.client.ready_acks_media == 1 and stream.client.ready_acks_signaling == 0
        await s.close()


async def test_video_and_share_frames_step_by_fps() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream)
        await s.join({"video": {"video": {"codec": 7, "fps": 25}}, "deskshare": {"deskshare": {"fps": 2}}})
        video = media(await s.media["video"].drain(0.5), MsgType.MEDIA_DATA_VIDEO)
        ts = [v["timestamp"] for v in video]
        assert len(video) >= 8 and all(b - a == 40 for a, b in itertools.pairwise(ts))
        assert base64.b64decode(video[0]["data"]).startswith(b"\xff\xd8frame-100-")
        share = media(await s.media["deskshare"].drain(0.6), MsgType.MEDIA_DATA_SHARE)
        assert share and all(c["user_id"] == 100 for c in share)
        assert stream.sent.media_counts["video"] >= len(video)
        await s.close()


async def test_contact_center_stream_with_real_content() -> None:
    from gateway.protocol import Product
    from gateway.sim.server import _default_content_factory

    async with Simulator(config(product=Product.CONTACT_CENTER, content_factory=_default_content_factory, filter_events_by_subscription=False)) as sim:
        stream = sim.create_stream(webhook=False)
        s = Session(sim, stream, auto_keepalive=True)
        hello = {"engagement_id": stream.instance_id}
        resp = await s.connect_signaling(**hello)
        assert set(resp["media_server"]["server_urls"]) == {"audio", "transcript", "all"}
        await s.connect_media("audio", {"audio": {"data_opt": 2}})
        await s.ready()
        audio = media(await s.media["audio"].drain(0.6), MsgType.MEDIA_DATA_AUDIO)
        speakers = [c for c in audio if c["user_id"]]
        assert speakers and all(c["channel_id"] == stream.content.channel_id(c["user_id"]) for c in speakers)
        await s.signaling.drain(0.1)  # type: ignore[union-attr]
        events = [m["event"] for m in s.signaling.received if m["msg_type"] == MsgType.EVENT_UPDATE and m["event"]["event_type"] != 1]  # type: ignore[union-attr]
        assert events and all("event_ts" in e and "timestamp" not in e and "participant_info" in e for e in events)
        await s.close()


async def test_tls_listeners_serve_wss() -> None:
    import ssl
    from pathlib import Path

    from tests.sim.helpers import TestClient

    data = Path(__file__).with_name("data")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(data / "test_cert.pem", data / "test_key.pem")
    client_ctx = ssl.create_default_context(cafile=str(data / "test_cert.pem"))
    async with Simulator(config(ssl_context=server_ctx, url_host="localhost")) as sim:
        stream = sim.create_stream(webhook=False)
        assert stream.signaling_url.startswith("wss://localhost:")
        s = Session(sim, stream)
        s.signaling = TestClient(await _tls_connect(stream.signaling_url, client_ctx), "signaling", False)
        await s.signaling.send(s.hello())
        resp = await s.signaling.recv_type(MsgType.SIGNALING_HAND_SHAKE_RESP)
        assert resp["status_code"] == 0 and resp["media_server"]["server_urls"]["audio"].startswith("wss://localhost:")
        media_client = TestClient(await _tls_connect(resp["media_server"]["server_urls"]["audio"], client_ctx), "audio", False)
        await media_client.send(s.data_hello(1))
        assert (await media_client.recv_type(MsgType.DATA_HAND_SHAKE_RESP))["status_code"] == 0
        s.media["audio"] = media_client
        await s.ready()
        assert media(await media_client.drain(0.2), MsgType.MEDIA_DATA_AUDIO)
        await s.close()


async def _tls_connect(url: str, ctx: object):  # type: ignore[no-untyped-def]
    from websockets.asyncio.client import connect

    return await connect(url, ssl=ctx, max_queue=None, ping_interval=None, close_timeout=2)
