"""Every handshake rejection path of the simulator, in both status-code profiles (PROTOCOL.md 2.4-3.3, 5.3)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import protocol
from gateway.protocol import MsgType, Product, Status, StatusProfile
from gateway.sim import Simulator
from tests.sim.helpers import Session, TestClient, config, wait_for

PROFILES = [StatusProfile.A, StatusProfile.B]


def code(status: Status, profile: StatusProfile) -> int:
    return protocol.status_code(status, profile)


async def _signaling_reply(sim: Simulator, doc: dict[str, Any] | bytes) -> dict[str, Any]:
    ws = await TestClient.open(sim.signaling_url())
    await ws.send(doc)
    resp = await ws.recv_type(MsgType.SIGNALING_HAND_SHAKE_RESP)
    assert await ws.closed(), "a rejected handshake closes the socket (close_after_reject)"
    return resp


# ------------------------------------------------------------------ signaling


@pytest.mark.parametrize("profile", PROFILES)
async def test_signaling_bad_signature(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        resp = await _signaling_reply(sim, Session(sim, stream).hello(signature="0" * 64))
        assert resp["status_code"] == code(Status.INVALID_SIGNATURE, profile) == {"A": 15, "B": 3}[profile.value]
        assert "media_server" not in resp and resp["reason"]
        assert stream.client.signaling_rejected == [resp["status_code"]]


async def test_signaling_signature_uses_configured_credentials() -> None:
    async with Simulator(config(client_id="other-id")) as sim:
        stream = sim.create_stream(webhook=False)
        resp = await _signaling_reply(sim, Session(sim, stream).hello())  # signed with the test id
        assert resp["status_code"] == code(Status.INVALID_SIGNATURE, StatusProfile.B)


@pytest.mark.parametrize("profile", PROFILES)
async def test_signaling_unknown_stream(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        resp = await _signaling_reply(sim, Session(sim, stream).hello(rtms_stream_id="f" * 32))
        assert resp["status_code"] == code(Status.INVALID_STREAM_ID, profile) == {"A": 16, "B": 2}[profile.value]
        assert sim.rejections[-1] == ("signaling", resp["status_code"])


@pytest.mark.parametrize("profile", PROFILES)
async def test_signaling_wrong_meeting_for_stream(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        resp = await _signaling_reply(sim, Session(sim, stream).hello(meeting_uuid="someOtherMeeting=="))
        assert resp["status_code"] == code(Status.INVALID_STREAM_ID, profile)


@pytest.mark.parametrize("profile", PROFILES)
async def test_signaling_missing_instance_id(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        hello = Session(sim, stream).hello()
        del hello["meeting_uuid"]
        resp = await _signaling_reply(sim, hello)
        assert resp["status_code"] == code(Status.MISSING_INSTANCE_ID, profile) == {"A": 7, "B": 4}[profile.value]


@pytest.mark.parametrize("key", ["webinar_uuid", "session_id", "engagement_id"])
async def test_signaling_accepts_every_instance_key(key: str) -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        session = Session(sim, stream)
        hello = session.hello()
        hello[key] = hello.pop("meeting_uuid")
        ws = await TestClient.open(sim.signaling_url())
        await ws.send(hello)
        assert (await ws.recv_type(MsgType.SIGNALING_HAND_SHAKE_RESP))["status_code"] == 0
        await ws.close()


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("msg_type", [3, 7, "1", None])
async def test_signaling_bad_msg_type(profile: StatusProfile, msg_type: Any) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        hello = Session(sim, stream).hello(msg_type=msg_type)
        resp = await _signaling_reply(sim, hello)
        assert resp["status_code"] == code(Status.INVALID_MESSAGE_TYPE, profile) == {"A": 4, "B": 1}[profile.value]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("raw", [b'{"msg_type": 1, "rtms_stream_id": ', b"[1, 2]", b"\xff\xfe"])
async def test_signaling_bad_json(profile: StatusProfile, raw: bytes) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        resp = await _signaling_reply(sim, raw)
        assert resp["status_code"] == code(Status.INVALID_JSON, profile) == {"A": 3, "B": 4}[profile.value]


@pytest.mark.parametrize("profile", PROFILES)
async def test_signaling_duplicate_rejects_newcomer(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile, duplicate_signaling="reject")) as sim:
        stream = sim.create_stream(webhook=False)
        first = Session(sim, stream)
        assert (await first.connect_signaling())["status_code"] == 0
        resp = await _signaling_reply(sim, Session(sim, stream).hello())
        assert resp["status_code"] == code(Status.DUPLICATE_SIGNAL_REQUEST, profile) == {"A": 17, "B": 8}[profile.value]
        assert "duplicate signal request" in resp["reason"]
        assert stream.signaling is not None and stream.signaling.alive  # the incumbent survives
        await first.close()


async def test_signaling_duplicate_evicts_incumbent() -> None:
    async with Simulator(config(duplicate_signaling="evict")) as sim:
        stream = sim.create_stream(webhook=False)
        first = Session(sim, stream)
        await first.join({"audio": None})
        second = Session(sim, stream)
        assert (await second.connect_signaling())["status_code"] == 0
        assert first.signaling is not None and await first.signaling.closed()
        assert await first.media["audio"].closed()
        assert stream.client.signaling_accepted == 2
        await second.close()


async def test_signaling_success_shape_and_first_packet_timestamp() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        session = Session(sim, stream)
        resp = await session.connect_signaling()
        assert resp["status_code"] == 0 and resp["protocol_version"] == 1 and resp["sequence"] == 1
        assert set(resp["media_server"]["server_urls"]) == {"audio", "video", "deskshare", "transcript", "chat", "all"}
        # media is served on its own listener, like production
        assert all(f":{sim.media_port}/" in u for u in resp["media_server"]["server_urls"].values())
        assert sim.media_port != sim.port
        ev = await session.signaling.recv_type(MsgType.EVENT_UPDATE)  # type: ignore[union-attr]
        assert ev["event"] == {"event_type": 1, "timestamp": stream.started_ms}
        await session.close()


async def test_server_urls_follow_scopes_and_key_names() -> None:
    async with Simulator(config(scopes=("audio", "deskshare"), deskshare_key="sharescreen", include_all_url=False)) as sim:
        stream = sim.create_stream(webhook=False)
        session = Session(sim, stream)
        resp = await session.connect_signaling()
        assert set(resp["media_server"]["server_urls"]) == {"audio", "sharescreen"}
        await session.close()


@pytest.mark.parametrize("profile", PROFILES)
async def test_signaling_injected_rejection(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        stream.reject_next_signaling(Status.INTERNAL_EXCEPTION)
        stream.reject_next_signaling(77)  # any raw code
        resp1 = await _signaling_reply(sim, Session(sim, stream).hello())
        resp2 = await _signaling_reply(sim, Session(sim, stream).hello())
        assert [resp1["status_code"], resp2["status_code"]] == [code(Status.INTERNAL_EXCEPTION, profile), 77]
        session = Session(sim, stream)
        assert (await session.connect_signaling())["status_code"] == 0  # the third attempt passes
        await session.close()


# ------------------------------------------------------------------ media


async def _media_reply(profile: StatusProfile, kind: str, media_params: Any = None, media_type: int | None = None, *, product: Product = Product.MEETING, **cfg: Any) -> dict[str, Any]:
    async with Simulator(config(status_profile=profile, product=product, **cfg)) as sim:
        stream = sim.create_stream(webhook=False)
        session = Session(sim, stream)
        assert (await session.connect_signaling())["status_code"] == 0
        if kind not in session.urls:
            session.urls[kind] = f"ws://127.0.0.1:{sim.media_port}/media/{kind}"
        resp = await session.connect_media(kind, media_params, media_type)
        if resp["status_code"]:
            assert await session.media[kind].closed()
        await session.close()
        return resp


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("mask", [0, 64, 33, 100])
async def test_media_type_invalid_value(profile: StatusProfile, mask: int) -> None:
    resp = await _media_reply(profile, "audio", media_type=mask)
    assert resp["status_code"] == code(Status.MEDIA_TYPE_INVALID_VALUE, profile) == {"A": 29, "B": 14}[profile.value]
    assert "payload_encrypted" in resp and "media_params" in resp  # always, even on failure


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("product", "kind", "status"),
    [
        (Product.SESSION, "video", Status.VIDEO_NOT_SUPPORT),
        (Product.SESSION, "deskshare", Status.DESKSHARE_NOT_SUPPORT),
        (Product.CONTACT_CENTER, "chat", Status.CHAT_NOT_SUPPORT),
    ],
)
async def test_media_type_not_supported_by_product(profile: StatusProfile, product: Product, kind: str, status: Status) -> None:
    resp = await _media_reply(profile, kind, product=product)
    assert resp["status_code"] == code(status, profile)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("kind", "status"), [("audio", Status.AUDIO_NOT_SUPPORT), ("transcript", Status.TRANSCRIPT_NOT_SUPPORT), ("chat", Status.CHAT_NOT_SUPPORT)])
async def test_media_type_not_scoped(profile: StatusProfile, kind: str, status: Status) -> None:
    scopes = tuple(k for k in ("audio", "video", "deskshare", "transcript", "chat") if k != kind)
    resp = await _media_reply(profile, kind, scopes=scopes)
    assert resp["status_code"] == code(status, profile)


PARAM_CASES = [
    ("audio", {"audio": {"codec": 9}}, Status.INVALID_AUDIO_CODEC),
    ("audio", {"audio": {"codec": 4, "sample_rate": 1}}, Status.INVALID_AUDIO_SAMPLE_RATE),
    ("audio", {"audio": {"channel": 3}}, Status.INVALID_AUDIO_CHANNEL),
    ("audio", {"audio": {"content_type": 3}}, Status.INVALID_AUDIO_CONTENT_TYPE),
    ("audio", {"audio": {"data_opt": 3}}, Status.INVALID_AUDIO_DATA_OPT),
    ("audio", {"audio": {"send_rate": 30}}, Status.INVALID_AUDIO_SEND_RATE),
    ("audio", {"audio": "L16"}, Status.INVALID_AUDIO_PARAMS),
    ("audio", ["not", "an", "object"], Status.INVALID_MEDIA_PARAMS),
    ("video", {"video": {"data_opt": 5}}, Status.INVALID_VIDEO_DATA_OPT),
    ("video", {"video": {"codec": 5, "fps": 25}}, Status.INVALID_VIDEO_FPS),
    ("video", {"video": {"resolution": 9}}, Status.INVALID_VIDEO_RESOLUTION),
    ("video", {"video": {"codec": 1}}, Status.INVALID_VIDEO_CODEC),
    ("deskshare", {"deskshare": {"content_type": 2}}, Status.INVALID_DESKSHARE_CONTENT_TYPE),
    ("deskshare", {"deskshare": {"fps": 31}}, Status.INVALID_DESKSHARE_FPS),
    ("transcript", {"transcript": {"content_type": 2}}, Status.INVALID_TRANSCRIPT_CONTENT_TYPE),
    ("transcript", {"transcript": {"src_language": 99}}, Status.INVALID_TRANSCRIPT_LANGUAGE),
    ("chat", {"chat": {"content_type": 1}}, Status.INVALID_CHAT_CONTENT_TYPE),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("kind", "params", "status"), PARAM_CASES, ids=[f"{k}-{s.value}" for k, _, s in PARAM_CASES])
async def test_media_params_rejected(profile: StatusProfile, kind: str, params: Any, status: Status) -> None:
    resp = await _media_reply(profile, kind, params)
    assert resp["status_code"] == code(status, profile)
    assert resp["status_code"] != 0


async def test_media_params_effective_values_echoed() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        session = Session(sim, stream)
        await session.connect_signaling()
        resp = await session.connect_media("audio", {"audio": {"send_rate": 2000, "sample_rate": 3}})
        assert resp["status_code"] == 0 and resp["payload_encrypted"] is False
        assert resp["media_params"] == {"audio": {"content_type": 2, "sample_rate": 3, "channel": 1, "codec": 1, "data_opt": 1, "send_rate": 1000}}
        resp = await session.connect_media("video", {"video": {"fps": 25}})  # fps > 5 without codec: JPG @ 5
        assert resp["media_params"]["video"] == {"content_type": 3, "codec": 5, "resolution": 2, "data_opt": 3, "fps": 5}
        resp = await session.connect_media("transcript", None)  # the official SDK sends null
        assert resp["media_params"] == {"transcript": {"content_type": 5, "src_language": 9, "enable_lid": True}}
        await session.close()


async def test_media_all_limited_to_scoped_kinds() -> None:
    async with Simulator(config(scopes=("audio", "transcript"))) as sim:
        stream = sim.create_stream(webhook=False)
        session = Session(sim, stream)
        await session.connect_signaling()
        resp = await session.connect_media("all")
        assert resp["status_code"] == 0 and set(resp["media_params"]) == {"audio", "transcript"}
        await session.close()


@pytest.mark.parametrize("profile", PROFILES)
async def test_media_all_connection_exists(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        session = Session(sim, stream)
        await session.connect_signaling()
        assert (await session.connect_media("all"))["status_code"] == 0
        resp = await session.connect_media("audio")
        assert resp["status_code"] == code(Status.ALL_CONNECTION_EXIST, profile) == {"A": 30, "B": 15}[profile.value]
        await session.close()


@pytest.mark.parametrize("profile", PROFILES)
async def test_media_duplicate_connection(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        session = Session(sim, stream)
        await session.connect_signaling()
        assert (await session.connect_media("audio"))["status_code"] == 0
        first = session.media["audio"]
        resp = await session.connect_media("audio")
        assert resp["status_code"] == code(Status.DUPLICATE_MEDIA_CONNECTION, profile) == {"A": 31, "B": 16}[profile.value]
        # audio+transcript in one mask also collides with the audio socket; so does "all"
        assert (await session.connect_media("transcript", media_type=9))["status_code"] == code(Status.DUPLICATE_MEDIA_CONNECTION, profile)
        assert (await session.connect_media("all"))["status_code"] == code(Status.DUPLICATE_MEDIA_CONNECTION, profile)
        session.media["audio"] = first
        await session.close()


@pytest.mark.parametrize("profile", PROFILES)
async def test_media_bad_signature_unknown_stream_bad_type_bad_json(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        session = Session(sim, stream)
        await session.connect_signaling()
        assert (await session.connect_media("audio", signature="ab" * 32))["status_code"] == code(Status.INVALID_SIGNATURE, profile)
        assert (await session.connect_media("audio", rtms_stream_id="0" * 32))["status_code"] == code(Status.INVALID_STREAM_ID, profile)
        assert (await session.connect_media("audio", msg_type=1))["status_code"] == code(Status.INVALID_MESSAGE_TYPE, profile)
        ws = await TestClient.open(session.urls["audio"])
        await ws.send(b"{not json")
        assert (await ws.recv_type(MsgType.DATA_HAND_SHAKE_RESP))["status_code"] == code(Status.INVALID_JSON, profile)
        await session.close()


async def test_media_before_signaling_is_rejected() -> None:
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False)
        session = Session(sim, stream)
        session.urls = {"audio": f"ws://127.0.0.1:{sim.media_port}/media/audio"}
        resp = await session.connect_media("audio")
        assert resp["status_code"] == code(Status.INVALID_STREAM_ID, StatusProfile.B)


@pytest.mark.parametrize("profile", PROFILES)
async def test_media_injected_rejection(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        stream.reject_next_media(Status.INVALID_AUDIO_PARAMS, kind="audio")
        session = Session(sim, stream)
        await session.connect_signaling()
        assert (await session.connect_media("transcript"))["status_code"] == 0  # not the targeted kind
        assert (await session.connect_media("audio"))["status_code"] == code(Status.INVALID_AUDIO_PARAMS, profile)
        assert (await session.connect_media("audio"))["status_code"] == 0
        assert await wait_for(lambda: [s for _, s in stream.client.media_handshakes] == [0, code(Status.INVALID_AUDIO_PARAMS, profile), 0])
        await session.close()


@pytest.mark.parametrize("profile", PROFILES)
async def test_signaling_unsupported_protocol_version(profile: StatusProfile) -> None:
    async with Simulator(config(status_profile=profile)) as sim:
        stream = sim.create_stream(webhook=False)
        resp = await _signaling_reply(sim, Session(sim, stream).hello(protocol_version=2))
        assert resp["status_code"] == code(Status.INVALID_JSON, profile) and "protocol_version" in resp["reason"]


async def test_socket_without_handshake_is_closed() -> None:
    async with Simulator(config(handshake_timeout_s=0.2)) as sim:
        ws = await TestClient.open(sim.signaling_url())
        assert await ws.closed(3)
        assert ws.ws.close_code == 1000 and sim.idle_closed == 1
