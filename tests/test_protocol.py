"""Wire vocabulary: PROTOCOL.md examples as fixtures, HMAC known-answer vectors, typed errors."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest

from gateway import protocol as p
from gateway.errors import ParseError, ProtocolError, UnknownMessageType

# --- fixtures: the JSON examples of PROTOCOL.md, verbatim --------------------------------------

MEETING_STARTED = """{
  "event": "meeting.rtms_started",
  "event_ts": 1626230691572,
  "payload": {
    "meeting_uuid": "4444AAAiAAAAAiAiAiiAii==",
    "operator_id": "30R7kT7bTIKSNUFEuH_Qlg",
    "rtms_stream_id": "609340fb2a7946909659956c8aa9250c",
    "server_urls": "wss://127.0.0.1:443"
  }
}"""
SESSION_STARTED = """{ "event": "session.rtms_started", "event_ts": 1626230691572,
  "payload": { "session_id": "4567UVWxYZABCdEfGhiJkl==", "session_key": "ABC36jaBI145",
               "rtms_stream_id": "609340fb2a7946909659956c8aa9250c", "server_urls": "wss://127.0.0.1:443" } }"""
MEETING_STOPPED = """{ "event": "meeting.rtms_stopped", "event_ts": 1626230691572,
  "payload": { "meeting_uuid": "4444AAAiAAAAAiAiAiiAii==",
               "rtms_stream_id": "609340fb2a7946909659956c8aa9250c", "stop_reason": 1 } }"""
MEETING_INTERRUPTED = """{ "event": "meeting.rtms_interrupted", "event_ts": 1626230691572,
  "payload": { "meeting_uuid": "4444AAAiAAAAAiAiAiiAii==", "rtms_stream_id": "609340fb2a7946909659956c8aa9250c" } }"""
URL_VALIDATION = """{ "payload": { "plainToken": "qgg8vlvZRS6UYooatFL8Aw" }, "event_ts": 1654503849680, "event": "endpoint.url_validation" }"""

SIGNALING_REQ = """{
  "msg_type": 1,
  "protocol_version": 1,
  "sequence": 1,
  "meeting_uuid": "4444AAAiAAAAAiAiAiiAii==",
  "rtms_stream_id": "609340fb2a7946909659956c8aa9250c",
  "signature": "3b9f...e1",
  "buffer_data": false
}"""
SIGNALING_RESP = """{
  "msg_type": 2, "protocol_version": 1, "sequence": 0, "status_code": 0, "reason": "",
  "media_server": { "server_urls": { "audio": "wss://127.0.0.0:443", "video": "wss://127.0.0.0:443",
      "transcript": "wss://127.0.0.0:443", "all": "wss://127.0.0.0:443" } } }"""
DATA_REQ = """{
  "msg_type": 3, "protocol_version": 1, "sequence": 0,
  "meeting_uuid": "4444AAAiAAAAAiAiAiiAii==", "rtms_stream_id": "609340fb2a7946909659956c8aa9250c",
  "signature": "3b9f...e1", "media_type": 32, "payload_encryption": false,
  "media_params": {
    "audio":      { "content_type": 2, "sample_rate": 1, "channel": 1, "codec": 1, "data_opt": 1, "send_rate": 20 },
    "video":      { "content_type": 3, "codec": 5, "resolution": 2, "data_opt": 3, "fps": 5 },
    "deskshare":  { "content_type": 3, "codec": 5, "resolution": 3, "fps": 1 },
    "transcript": { "content_type": 5, "src_language": 9, "enable_lid": true },
    "chat":       { "content_type": 5 }
  } }"""
DATA_RESP = """{
  "msg_type": 4, "protocol_version": 1, "status_code": 0, "reason": "", "sequence": 0, "payload_encrypted": true,
  "media_params": {
    "audio":      { "content_type": 2, "sample_rate": 1, "channel": 1, "codec": 1, "data_opt": 1, "send_rate": 100 },
    "video":      { "content_type": 3, "codec": 5, "resolution": 2, "data_opt": 3, "fps": 5 },
    "deskshare":  { "content_type": 3, "codec": 5, "resolution": 3, "fps": 1 },
    "transcript": { "content_type": 5, "src_language": 9, "enable_lid": true },
    "chat":       { "content_type": 5 } } }"""
EVENTS = [
    '{"msg_type": 6, "event": {"event_type": 1, "timestamp": 1727384349123}}',
    '{"msg_type": 6, "event": {"event_type": 2, "timestamp": 1727384349123, "user_id": 22334455, "user_name": "John Smith"}}',
    '{"msg_type": 6, "event": {"event_type": 3, "timestamp": 1727384349123, "participants": [{"user_id": 16778240, "user_name": "John Smith"}, {"user_id": 33556610, "user_name": "Alice"}]}}',
    '{"msg_type": 6, "event": {"event_type": 8, "timestamp": 1727384349123, "participants": [{"user_id": 16778240}]}}',
]
ZCC_EVENT = """{ "msg_type": 6,
  "event": { "event_type": 8, "event_ts": 1727384349123,
             "participant_info": { "channel_id": "123abc", "participant_mode": "caller",
                                   "queue_id": "xqJE_cgERLyAJHYYL5LLeg", "queue_name": "My Queue",
                                   "user_id": "customer-contact-id", "display_name": "Jane Doe" } } }"""
AUDIO = """{ "msg_type": 14,
  "content": { "user_id": 16778240, "user_name": "John Smith",
               "data": "%s", "length": 6, "timestamp": 1738392033699 } }"""
TRANSCRIPT = """{ "msg_type": 17,
  "content": { "user_id": 19778240, "user_name": "John Smith",
               "start_time": 1727384100000, "end_time": 1727384310000,
               "timestamp": 1727384349000, "language": 9, "data": "Hi, hello world!" } }"""
CHAT = """{ "msg_type": 18, "content": { "timestamp": 1727384349000, "data": "Chat message" } }"""
STREAM_STATE = '{ "msg_type": 8, "state": 2, "reason": 14, "timestamp": 1727384349123 }'
SESSION_STATE = '{ "msg_type": 9, "state": 2, "stop_reason": 0, "timestamp": 1727384349123, "rtms_session_id": "xxxxxxxxxx" }'
STREAM_STATE_RESP = '{ "msg_type": 20, "state": 1, "rtms_stream_id": "756FF58A-6332-6ECA-E4AE-21F2ABDCB485", "timestamp": 1694204592 }'


# --- signatures: known-answer vectors computed independently ----------------------------------


def test_handshake_signature_matches_independent_hmac() -> None:
    expected = hmac.new(b"secret", b"client,4444AAAiAAAAAiAiAiiAii==,609340fb2a7946909659956c8aa9250c", hashlib.sha256).hexdigest()
    got = p.handshake_signature("client", "secret", "4444AAAiAAAAAiAiAiiAii==", "609340fb2a7946909659956c8aa9250c")
    assert got == expected
    assert got == got.lower() and len(got) == 64


def test_handshake_signature_known_vector() -> None:
    # Fixed vectors, hard-coded so a change of algorithm or message layout cannot slip through.
    assert p.handshake_signature("id", "key", "m", "s") == "d6badca00a80704aaa8f73702a57cdb339961ca52f80c2eb73316e78543c6442"
    digest = hmac.new(b"key", b"The quick brown fox jumps over the lazy dog", hashlib.sha256).hexdigest()
    assert digest == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"  # the well-known vector
    assert p.url_validation_response("key", "The quick brown fox jumps over the lazy dog")["encryptedToken"] == digest


def test_webhook_signature_and_verification() -> None:
    body = MEETING_STARTED.encode()
    ts = "1739923528"
    expected = "v0=" + hmac.new(b"whsecret", b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    assert p.webhook_signature("whsecret", ts, body) == expected
    assert p.verify_webhook_signature("whsecret", ts, body, expected)
    assert not p.verify_webhook_signature("whsecret", ts, body + b" ", expected)
    assert not p.verify_webhook_signature("other", ts, body, expected)
    assert not p.verify_webhook_signature("whsecret", "1739923529", body, expected)


def test_url_validation_response() -> None:
    ev = p.parse_webhook(URL_VALIDATION)
    assert ev.kind is p.WebhookKind.URL_VALIDATION and ev.plain_token == "qgg8vlvZRS6UYooatFL8Aw"
    answer = p.url_validation_response("tok", ev.plain_token)
    assert answer == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": hmac.new(b"tok", b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest(),
    }


# --- webhooks ------------------------------------------------------------------------------------


def test_parse_meeting_started() -> None:
    ev = p.parse_webhook(MEETING_STARTED.encode())
    assert ev.kind is p.WebhookKind.STARTED and ev.product is p.Product.MEETING
    assert ev.instance_id == "4444AAAiAAAAAiAiAiiAii==" and ev.instance_key == "meeting_uuid"
    assert ev.stream_id == "609340fb2a7946909659956c8aa9250c"
    assert ev.signaling_url == "wss://127.0.0.1:443" and ev.operator_id == "30R7kT7bTIKSNUFEuH_Qlg"


def test_parse_session_stopped_interrupted() -> None:
    ev = p.parse_webhook(SESSION_STARTED)
    assert ev.product is p.Product.SESSION and ev.instance_id == "4567UVWxYZABCdEfGhiJkl=="
    stop = p.parse_webhook(MEETING_STOPPED)
    assert stop.kind is p.WebhookKind.STOPPED and stop.stop_reason == 1 and stop.server_urls is None
    intr = p.parse_webhook(MEETING_INTERRUPTED)
    assert intr.kind is p.WebhookKind.INTERRUPTED and intr.stream_id == "609340fb2a7946909659956c8aa9250c"


@pytest.mark.parametrize("product", list(p.Product))
@pytest.mark.parametrize("nested", [False, True])
def test_build_parse_roundtrip_every_product(product: p.Product, nested: bool) -> None:
    for kind in (p.WebhookKind.STARTED, p.WebhookKind.STOPPED, p.WebhookKind.INTERRUPTED):
        body = p.build_webhook(
            product, kind, instance_id="inst/+=", stream_id="abc", event_ts=5,
            server_urls="ws://127.0.0.1:1/s" if kind is p.WebhookKind.STARTED else None, stop_reason=24, nested=nested,
        )
        ev = p.parse_webhook(orjson.dumps(body))
        assert (ev.product, ev.kind, ev.instance_id, ev.stream_id) == (product, kind, "inst/+=", "abc")
        if kind is p.WebhookKind.STOPPED:
            assert ev.stop_reason == 24


def test_contact_center_and_webinar_keys() -> None:
    zcc = p.build_webhook(p.Product.CONTACT_CENTER, p.WebhookKind.STARTED, instance_id="e1", stream_id="s", event_ts=1, server_urls="wss://h")
    assert zcc["event"] == "contact_center.voice_rtms_started" and zcc["payload"]["engagement_id"] == "e1"
    # zoom/skills claims webinars carry meeting_uuid: accept it.
    ev = p.parse_webhook({"event": "webinar.rtms_started", "event_ts": 1, "payload": {"meeting_uuid": "w", "rtms_stream_id": "s", "server_urls": "wss://h"}})
    assert ev.product is p.Product.WEBINAR and ev.instance_id == "w"


def test_stop_reason_or_reason_and_multi_urls() -> None:
    ev = p.parse_webhook({"event": "meeting.rtms_stopped", "event_ts": 1, "payload": {"meeting_uuid": "m", "rtms_stream_id": "s", "reason": 18}})
    assert ev.stop_reason == 18
    assert p.pick_signaling_url("srt://x:1, wss://a.zoom.us/s ,ws://b") == "wss://a.zoom.us/s"
    with pytest.raises(ProtocolError) as err:
        p.pick_signaling_url("srt://x:1")
    assert err.value.field == "payload.server_urls"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"event": "meeting.rtms_started", "event_ts": 1, "payload": {"rtms_stream_id": "s", "server_urls": "wss://h"}}', "payload.meeting_uuid"),
        ('{"event": "meeting.rtms_started", "event_ts": 1, "payload": {"meeting_uuid": "m", "server_urls": "wss://h"}}', "payload.rtms_stream_id"),
        ('{"event": "meeting.rtms_started", "event_ts": 1, "payload": {"meeting_uuid": "m", "rtms_stream_id": "s"}}', "payload.server_urls"),
        ('{"event": "meeting.rtms_started", "event_ts": "x", "payload": {}}', "event_ts"),
        ('{"event_ts": 1, "payload": {}}', "event"),
        ('{"event": "meeting.rtms_stopped", "event_ts": 1, "payload": []}', "payload"),
        ('{"event": "endpoint.url_validation", "event_ts": 1, "payload": {}}', "payload.plainToken"),
    ],
)
def test_webhook_errors_name_the_field(body: str, field: str) -> None:
    with pytest.raises(ProtocolError) as err:
        p.parse_webhook(body)
    assert err.value.field == field


def test_webhook_malformed_and_unknown() -> None:
    with pytest.raises(ParseError):
        p.parse_webhook(b"{not json")
    with pytest.raises(UnknownMessageType):
        p.parse_webhook('{"event": "meeting.started", "event_ts": 1, "payload": {}}')


# --- messages ------------------------------------------------------------------------------------


def test_signaling_handshake_request_fixture() -> None:
    req = p.parse_signaling_handshake(p.decode(SIGNALING_REQ))
    assert req.instance_key == "meeting_uuid" and req.buffer_data is False and req.sequence == 1
    built = p.build_signaling_handshake(instance_id=req.instance_id, stream_id=req.stream_id, signature="3b9f...e1", sequence=1, buffer_data=False)
    assert built == orjson.loads(SIGNALING_REQ)


def test_signaling_handshake_official_client_styled_binary() -> None:
    styled = b'{\n\t"meeting_uuid" : "4tJ3+fAkeMeetingUUID==",\n\t"msg_type" : 1,\n\t"protocol_version" : 1,\n\t"rtms_client_agent" : "rtms_sdk_cpp-.0.20260319-python-rtms",\n\t"rtms_stream_id" : "fake-stream-0001",\n\t"sequence" : 30036,\n\t"signature" : "c1ae"\n}\n'
    req = p.parse_signaling_handshake(p.decode(memoryview(styled)))
    assert req.buffer_data is True  # default when absent
    assert req.client_agent.startswith("rtms_sdk_cpp")


@pytest.mark.parametrize("key", ["webinar_uuid", "session_id", "engagement_id"])
def test_handshake_accepts_every_instance_key(key: str) -> None:
    req = p.parse_signaling_handshake({"msg_type": 1, key: "x", "rtms_stream_id": "s", "signature": "sig"})
    assert (req.instance_key, req.instance_id) == (key, "x")


def test_signaling_response_fixture_and_media_url() -> None:
    resp = p.parse_signaling_handshake_response(p.decode(SIGNALING_RESP))
    assert resp.status_code == 0 and resp.media_url("audio") == "wss://127.0.0.0:443"
    # Share/chat keys are UNCONFIRMED: fall back to `all`.
    assert resp.media_url("deskshare") == resp.server_urls["all"]
    failed = p.parse_signaling_handshake_response({"msg_type": 2, "status_code": 3, "reason": "bad sig"})
    assert failed.status_code == 3 and failed.server_urls == {}


def test_data_handshake_fixture_negotiation() -> None:
    req = p.parse_data_handshake(p.decode(DATA_REQ))
    assert req.media_type == 32 and p.media_kinds(req.media_type) == list(p.MEDIA_KINDS)
    params = p.negotiate_media_params(req.media_params, p.media_kinds(req.media_type))
    assert params.to_wire() == orjson.loads(DATA_REQ)["media_params"]
    resp = p.parse_data_handshake_response(p.decode(DATA_RESP))
    assert resp.payload_encrypted is True and resp.media_params.audio.send_rate == 100
    assert resp.media_params.transcript.src_language == 9


def test_data_handshake_response_always_carries_official_client_fields() -> None:
    msg = p.build_data_handshake_response(0, media_params=p.MediaParams(audio=p.AudioParams()))
    assert "payload_encrypted" in msg and "media_params" in msg
    assert p.parse_data_handshake_response({"msg_type": 4, "status_code": 0, "payload_encryption": True}).payload_encrypted


def test_negotiation_defaults_clamp_and_fallback() -> None:
    params = p.negotiate_media_params(None, ["audio", "video", "deskshare", "transcript"])
    assert params.audio == p.AudioParams() and params.audio.bytes_per_packet == 640
    assert params.video == p.VideoParams() and params.deskshare.resolution == p.Resolution.FHD
    clamped = p.negotiate_media_params({"audio": {"send_rate": 2000}}, ["audio"])
    assert clamped.audio.send_rate == 1000
    fallback = p.negotiate_media_params({"video": {"fps": 25}}, ["video"])
    assert (fallback.video.codec, fallback.video.fps) == (p.Codec.JPG, 5)
    h264 = p.negotiate_media_params({"video": {"fps": 25, "codec": 7}}, ["video"])
    assert (h264.video.codec, h264.video.fps) == (p.Codec.H264, 25)
    # Official SDK default audio: OPUS 48 kHz stereo multi-stream.
    sdk = p.negotiate_media_params({"audio": {"channel": 2, "codec": 4, "content_type": 2, "data_opt": 2, "sample_rate": 3, "send_rate": 20}}, ["audio"])
    assert sdk.audio.codec == p.Codec.OPUS
    share1 = p.negotiate_media_params({"deskshare": {"fps": 3}}, ["deskshare"], deskshare_image_fps_max=1)
    assert share1.deskshare.fps == 1


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ({"audio": {"codec": 9}}, p.Status.INVALID_AUDIO_CODEC),
        ({"audio": {"sample_rate": 7}}, p.Status.INVALID_AUDIO_SAMPLE_RATE),
        ({"audio": {"channel": 3}}, p.Status.INVALID_AUDIO_CHANNEL),
        ({"audio": {"data_opt": 3}}, p.Status.INVALID_AUDIO_DATA_OPT),
        ({"audio": {"send_rate": 30}}, p.Status.INVALID_AUDIO_SEND_RATE),
        ({"audio": {"content_type": 3}}, p.Status.INVALID_AUDIO_CONTENT_TYPE),
        ({"audio": {"codec": 4, "sample_rate": 1}}, p.Status.INVALID_AUDIO_SAMPLE_RATE),
        ({"audio": {"codec": 2, "sample_rate": 0, "channel": 2}}, p.Status.INVALID_AUDIO_CHANNEL),
        ({"audio": {"codec": 1, "content_type": 1}}, p.Status.INVALID_AUDIO_CONTENT_TYPE),
        ({"audio": {"sample_rate": "16k"}}, p.Status.INVALID_AUDIO_SAMPLE_RATE),
        ({"audio": []}, p.Status.INVALID_AUDIO_PARAMS),
    ],
)
def test_audio_matrix_rejections(raw: dict, status: p.Status) -> None:
    with pytest.raises(p.ParamsRejected) as err:
        p.negotiate_media_params(raw, ["audio"])
    assert err.value.status is status
    assert err.value.field.startswith("media_params.audio")


@pytest.mark.parametrize(
    ("kind", "raw", "status"),
    [
        ("video", {"codec": 1}, p.Status.INVALID_VIDEO_CODEC),
        ("video", {"resolution": 5}, p.Status.INVALID_VIDEO_RESOLUTION),
        ("video", {"data_opt": 5}, p.Status.INVALID_VIDEO_DATA_OPT),
        ("video", {"fps": 31}, p.Status.INVALID_VIDEO_FPS),
        ("video", {"fps": 10, "codec": 6}, p.Status.INVALID_VIDEO_FPS),
        ("video", {"content_type": 2}, p.Status.INVALID_VIDEO_CONTENT_TYPE),
        ("deskshare", {"codec": 4}, p.Status.INVALID_DESKSHARE_CODEC),
        ("deskshare", {"fps": 0}, p.Status.INVALID_DESKSHARE_FPS),
        ("transcript", {"content_type": 2}, p.Status.INVALID_TRANSCRIPT_CONTENT_TYPE),
        ("transcript", {"src_language": 99}, p.Status.INVALID_TRANSCRIPT_LANGUAGE),
        ("chat", {"content_type": 1}, p.Status.INVALID_CHAT_CONTENT_TYPE),
    ],
)
def test_visual_text_rejections(kind: str, raw: dict, status: p.Status) -> None:
    with pytest.raises(p.ParamsRejected) as err:
        p.negotiate_media_params({kind: raw}, [kind])
    assert err.value.status is status


def test_status_codes_both_profiles() -> None:
    assert p.status_code(p.Status.INVALID_SIGNATURE, "B") == 3
    assert p.status_code(p.Status.INVALID_SIGNATURE, "A") == 15
    assert p.status_code(p.Status.DUPLICATE_SIGNAL_REQUEST, "A") == 17
    assert p.status_code(p.Status.DUPLICATE_MEDIA_CONNECTION, "B") == 16
    assert p.status_name(15, "A") == "STATUS_INVALID_SIGNATURE"
    assert p.status_name(15, "B") == "STATUS_MEDIA_DATA_ALL_CONNECTION_EXIST"
    assert p.status_name(999) == "UNKNOWN_999"
    assert p.StatusA.STATUS_RTMS_SESSION_NOT_FOUND == 75 and p.StatusB.CHAT_SESSION_KEY_NOT_AVAILABLE == 47
    for reason in p.Status:  # every semantic reason maps to a named code in both lists
        assert not p.status_name(p.status_code(reason, "A"), "A").startswith("UNKNOWN")
        assert not p.status_name(p.status_code(reason, "B"), "B").startswith("UNKNOWN")


def test_events_fixtures() -> None:
    first, speaker, join, video = (p.parse_event(p.decode(e)) for e in EVENTS)
    assert first.event_type == p.EventType.FIRST_PACKET_TIMESTAMP and first.timestamp == 1727384349123
    assert (speaker.user_id, speaker.user_name) == (22334455, "John Smith")
    assert [x.user_id for x in join.participants] == [16778240, 33556610]
    assert video.participants[0].user_name is None
    # user_id as a string (docs example) parses too
    ev = p.parse_event({"msg_type": 6, "event": {"event_type": 3, "timestamp": 1, "participants": [{"user_id": "123", "user_name": "x"}]}})
    assert ev.participants[0].user_id == 123


@pytest.mark.parametrize("key", ["participant_info", "paticipant_info"])
def test_zcc_event_both_spellings(key: str) -> None:
    doc = orjson.loads(ZCC_EVENT)
    doc["event"][key] = doc["event"].pop("participant_info")
    ev = p.parse_event(doc)
    assert ev.timestamp == 1727384349123 and ev.participant_info["channel_id"] == "123abc"


def test_state_updates() -> None:
    stream = p.parse_state_update(p.decode(STREAM_STATE))
    assert (stream.state, stream.reason) == (p.StreamState.INTERRUPTED, p.StopReason.STOP_BC_DATA_CONNECTION_INTERRUPTED)
    session = p.parse_state_update(p.decode(SESSION_STATE))
    assert session.session_id == "xxxxxxxxxx" and session.state == p.SessionState.STARTED
    alt = p.parse_state_update({"msg_type": 9, "state": 5, "reason": 3, "timestamp": 1, "rtms_session_id": "s"})
    assert alt.reason == 3
    seconds = p.parse_state_update(p.decode(STREAM_STATE_RESP))
    assert seconds.timestamp == 1694204592000  # seconds normalised to ms


def test_media_fixtures() -> None:
    payload = b"\x01\x02\x03\x04\x05\x06"
    audio = p.parse_media(p.decode(AUDIO % base64.b64encode(payload).decode()))
    assert audio.data == payload and audio.user_id == 16778240 and audio.length == 6
    tr = p.parse_media(p.decode(TRANSCRIPT))
    assert tr.data == "Hi, hello world!" and (tr.start_time, tr.end_time, tr.language) == (1727384100000, 1727384310000, 9)
    chat = p.parse_media(p.decode(CHAT))
    assert chat.data == "Chat message" and chat.user_id == 0


def test_media_build_roundtrip_and_errors() -> None:
    msg = p.build_media(p.MsgType.MEDIA_DATA_AUDIO, data=b"\x00" * 640, timestamp=5, user_id=7, user_name="Zoë")
    parsed = p.parse_media(p.decode(p.encode(msg)))
    assert parsed.data == b"\x00" * 640 and parsed.user_name == "Zoë" and parsed.length == 640
    with pytest.raises(ParseError) as err:
        p.parse_media({"msg_type": 14, "content": {"data": "***", "timestamp": 1}})
    assert err.value.field == "content.data"
    with pytest.raises(ProtocolError) as err:
        p.parse_media({"msg_type": 14, "content": {"data": "AAAA", "timestamp": 1, "length": 9}})
    assert err.value.field == "content.length"
    with pytest.raises(ProtocolError) as err:
        p.parse_media({"msg_type": 14, "content": {"data": "AAAA", "timestamp": 1.5}})
    assert err.value.field == "content.timestamp"
    with pytest.raises(ProtocolError) as err:
        p.parse_media({"msg_type": 15, "content": {"data": "AAAA", "timestamp": 1, "user_id": "abc"}})
    assert err.value.field == "content.user_id"


def test_decode_errors_are_typed() -> None:
    with pytest.raises(ParseError):
        p.decode(b'{"msg_type": 14, "content": ')
    with pytest.raises(ParseError):
        p.decode(b"[1, 2]")
    with pytest.raises(UnknownMessageType) as err:
        p.decode(b'{"msg_type": 99}')
    assert err.value.msg_type == 99
    with pytest.raises(ProtocolError) as err:
        p.decode(b'{"msg_type": "SIGNALING_HAND_SHAKE_REQ"}')  # beta mock era: strings
    assert err.value.field == "msg_type"
    assert p.decode('{"msg_type": 12, "timestamp": 5}')["timestamp"] == 5  # text frames too


def test_client_builders() -> None:
    sub = p.build_event_subscription([1, 2, 3, 7])
    assert [e["event_type"] for e in sub["events"]] == [2, 3]  # automatic events never subscribed
    ka = p.build_keep_alive_response({"msg_type": 12, "timestamp": 99, "sequence": 4})
    assert ka == {"msg_type": 13, "timestamp": 99, "sequence": 4}
    assert p.build_client_ready_ack("s") == {"msg_type": 7, "rtms_stream_id": "s"}
    data = p.build_data_handshake(instance_id="m", stream_id="s", signature="x", media_type=1, media_params=p.MediaParams(audio=p.AudioParams()))
    assert data["media_params"]["audio"]["sample_rate"] == 1
    assert p.build_session_state_update(3, "sid", 1, reason_key="reason")["reason"] == 0


def test_enum_integers() -> None:
    assert max(p.MsgType) == 29 and p.MsgType.VIDEO_SUBSCRIPTION_RESP == 29
    assert p.MediaType.ALL == 32 and p.media_kinds(9) == ["audio", "transcript"]
    assert p.StopReason.STOP_BC_KEEP_ALIVE_TIMEOUT == 24 and p.stop_reason_name(99) == "UNKNOWN_99"
    assert p.SampleRate.SR_48K.hz == 48000 and p.SampleRate.from_hz(8000) is p.SampleRate.SR_8K
    assert p.TranscriptLanguage.VIETNAMESE == 36 and p.ZccEventType.CONFERENCE_PARTICIPANT_LEFT == 29
    assert p.AudioParams(sample_rate=3, channel=2, send_rate=20).bytes_per_packet == 3840
