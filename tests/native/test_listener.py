"""The media listener's contract, run against both implementations (native and pure twin)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import pytest
from picows import WSListener, WSMsgType, ws_connect, ws_create_server
from picows.picows import _make_test_ws_frame

from gateway import protocol
from gateway.protocol import MsgType
from tests.native.helpers import (
    VARIANTS,
    FakeTransport,
    RecordingControl,
    RecordingSink,
    comparable,
    listener_class,
    make_sink,
    media,
)

AUDIO = bytes(range(256)) * 2 + bytes(128)  # 640 bytes, every byte value
TS = 1738392033699
UID = 16778240


@pytest.fixture(params=VARIANTS)
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Rig:
    """One listener with a recording sink, control and fake transport sharing one event log."""

    def __init__(self, impl: str, **kwargs: Any) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.sink = make_sink(impl, self.log)
        self.control = RecordingControl(self.log)
        self.transport = FakeTransport(self.log)
        self.listener = listener_class(impl)(self.sink, self.control, **kwargs)
        self.listener.transport = self.transport

    def feed(self, payload: bytes | str, binary: bool = False) -> list[tuple[Any, ...]]:
        """Feed one message; return what it caused."""
        start = len(self.log)
        self.listener.feed(payload.encode() if isinstance(payload, str) else payload, binary)
        return self.log[start:]

    def frame(self, msg_type: WSMsgType, payload: bytes, fin: bool = True) -> list[tuple[Any, ...]]:
        start = len(self.log)
        self.listener.on_ws_frame(None, _make_test_ws_frame(msg_type, payload, fin, False))
        return self.log[start:]

    @property
    def stats(self) -> dict[str, Any]:
        return dict(self.listener.stats())


@pytest.fixture
def rig(impl: str) -> Rig:
    return Rig(impl)


# ---------------------------------------------------------------------------- media kinds


@pytest.mark.parametrize(("msg_type", "kind"), [(14, "audio"), (15, "video"), (16, "share")])
@pytest.mark.parametrize("binary", [False, True])
def test_binary_media_kinds_reach_the_sink(rig: Rig, msg_type: int, kind: str, binary: bool) -> None:
    assert rig.feed(media(msg_type, AUDIO), binary) == [(kind, UID, "John Smith", TS, AUDIO)]
    assert rig.stats["media_frames"] == 1


@pytest.mark.parametrize("frame_type", [WSMsgType.TEXT, WSMsgType.BINARY])
def test_text_and_binary_websocket_frames(rig: Rig, frame_type: WSMsgType) -> None:
    assert rig.frame(frame_type, media(14, b"\x01\x02\x03")) == [("audio", UID, "John Smith", TS, b"\x01\x02\x03")]


def test_transcript_and_chat_arrive_as_media_messages(rig: Rig) -> None:
    got = rig.feed(media(17, "Hi, hello world!", start_time=1, end_time=2, language=9))
    want = ("transcript", protocol.MediaMessage(17, UID, "John Smith", TS, "Hi, hello world!", None, None, 1, 2, 9))
    assert got == [want if isinstance(rig.sink, RecordingSink) else comparable(want)]
    got = rig.feed(protocol.encode({"msg_type": 18, "content": {"timestamp": 5, "data": "Chat message"}}))
    want = ("chat", protocol.MediaMessage(18, 0, None, 5, "Chat message"))
    assert got == [want if isinstance(rig.sink, RecordingSink) else comparable(want)]


def test_structured_chat_data_object_becomes_json_text(rig: Rig) -> None:
    got = rig.feed(protocol.encode({"msg_type": 18, "content": {"timestamp": 5, "data": {"operation_type": 1}}}))
    assert got[0][0] == "chat" and orjson.loads(comparable(got[0])[4]) == {"operation_type": 1}


def test_empty_payload_and_mixed_stream_without_name(rig: Rig) -> None:
    assert rig.feed(media(14, b"", user_id=0, user_name=None)) == [("audio", 0, None, TS, b"")]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 639, 640, 641, 8192])
def test_payload_sizes_and_padding(rig: Rig, size: int) -> None:
    data = bytes((i * 7) & 0xFF for i in range(size))
    assert rig.feed(media(15, data)) == [("video", UID, "John Smith", TS, data)]


# ---------------------------------------------------------------------------- JSON shapes


def test_fields_in_any_order_and_styled_json(rig: Rig) -> None:
    b64 = base64.b64encode(AUDIO).decode()
    styled = (
        '{\n\t"content" :\t{\n\t\t"timestamp" : 42 ,\n\t\t"data" : "' + b64 + '",\r\n\t\t"length" : 640,'
        '\n\t\t"user_name" : "Ann",\n\t\t"user_id" : 7\n\t} ,\n\t"msg_type" : 14\n}\n'
    )
    assert rig.feed(styled) == [("audio", 7, "Ann", 42, AUDIO)]


def test_unknown_fields_are_skipped_whatever_they_hold(rig: Rig) -> None:
    doc = (
        '{"extra":{"a":[1,2,{"b":"x\\"}]"}],"c":null},"msg_type":14,"z":[true,false,-1.5e3],'
        '"content":{"odd":"\\\\\\"","nested":{"data":"not this"},"user_id":1,"user_name":"A",'
        '"data":"AQID","timestamp":3,"channel_id":"abc","start_time":null},"tail":"\\u00e9"}'
    )
    assert rig.feed(doc) == [("audio", 1, "A", 3, b"\x01\x02\x03")]


@pytest.mark.parametrize("name", ['Jo\\"hn', "back\\\\slash", "caf\\u00e9", "\\ud83d\\ude00 smile", "tab\\there"])
def test_escaped_user_names_are_unescaped(rig: Rig, name: str) -> None:
    doc = '{"msg_type":14,"content":{"user_id":1,"user_name":"' + name + '","data":"AA==","timestamp":1}}'
    expected = orjson.loads('"' + name + '"')
    assert rig.feed(doc) == [("audio", 1, expected, 1, b"\x00")]


@pytest.mark.parametrize("name", ["Zoë Åström", "山田太郎", "😀 emoji", "ﬁ ligature"])
def test_unicode_names(rig: Rig, name: str) -> None:
    assert rig.feed(media(14, b"xy", user_name=name)) == [("audio", UID, name, TS, b"xy")]


def test_user_id_as_digit_string_and_missing_user_id(rig: Rig) -> None:
    assert rig.feed(media(14, b"a", user_id="16778240")) == [("audio", 16778240, "John Smith", TS, b"a")]
    assert rig.feed(media(14, b"a", user_id=None, user_name=None)) == [("audio", 0, None, TS, b"a")]
    assert rig.feed(media(14, b"a", user_id=0xFFFFFFFF)) == [("audio", 0xFFFFFFFF, "John Smith", TS, b"a")]


def test_zcc_channel_id_instead_of_user_id(rig: Rig) -> None:
    doc = protocol.encode({"msg_type": 14, "content": {"channel_id": "123abc", "data": "AAEC", "timestamp": 9}})
    assert rig.feed(doc) == [("audio", 0, None, 9, b"\x00\x01\x02")]


def test_duplicate_keys_last_one_wins_like_orjson(rig: Rig) -> None:
    doc = '{"msg_type":14,"content":{"timestamp":1,"data":"AA==","timestamp":2,"user_id":3}}'
    assert rig.feed(doc) == [("audio", 3, None, 2, b"\x00")]


# ---------------------------------------------------------------------------- drops


def _drop(rig: Rig, payload: bytes | str, kind: str, reason: str) -> None:
    before = rig.stats
    assert rig.feed(payload) == [("drop", kind, reason)]
    after = rig.stats
    assert after["drops_by_reason"][reason] == before["drops_by_reason"][reason] + 1
    assert after["media_frames"] == before["media_frames"]


@pytest.mark.parametrize("missing", ["data", "timestamp", "content"])
def test_missing_required_fields_are_dropped(rig: Rig, missing: str) -> None:
    doc = orjson.loads(media(14, b"abc"))
    if missing == "content":
        del doc["content"]
    else:
        del doc["content"][missing]
    _drop(rig, orjson.dumps(doc), "audio", "bad_field")


@pytest.mark.parametrize(
    ("field", "value"),
    [("user_id", -1), ("user_id", 1 << 32), ("user_id", "12a"), ("user_id", ""), ("user_id", True), ("user_id", 1.0),
     ("user_id", "١٢"), ("user_name", 5), ("timestamp", "1"), ("timestamp", 1.5), ("timestamp", None),
     ("timestamp", True), ("length", "640"), ("data", 5), ("data", {"a": 1}), ("channel_id", 1),
     ("language", "en"), ("start_time", 1.5), ("attribute", [])],
)
def test_wrongly_typed_fields_are_dropped(rig: Rig, field: str, value: Any) -> None:
    doc = orjson.loads(media(14, b"abc"))
    doc["content"][field] = value
    _drop(rig, orjson.dumps(doc), "audio", "bad_field")


def test_content_not_an_object(rig: Rig) -> None:
    _drop(rig, '{"msg_type":15,"content":[1]}', "video", "bad_field")


@pytest.mark.parametrize("data", ["AAA", "AA=", "A===", "AAAA====", "QUJD=", "AA==AA==", "AB*D", "AA\u00e9=", " AAA"])
def test_bad_base64_is_dropped(rig: Rig, data: str) -> None:
    _drop(rig, protocol.encode({"msg_type": 16, "content": {"data": data, "timestamp": 1}}), "share", "bad_base64")


def test_length_mismatch_and_huge_declared_length(rig: Rig) -> None:
    _drop(rig, media(14, b"abcd", length=5), "audio", "bad_field")
    _drop(rig, media(14, b"abcd", length=(1 << 63) - 1), "audio", "bad_field")
    _drop(rig, media(14, b"abcd", length=(1 << 64) - 1), "audio", "bad_field")
    _drop(rig, media(14, b"abcd", length=-4), "audio", "bad_field")


def test_bad_field_wins_over_bad_base64(rig: Rig) -> None:
    _drop(rig, protocol.encode({"msg_type": 14, "content": {"data": "!!", "timestamp": 1, "user_name": 3}}),
          "audio", "bad_field")


@pytest.mark.parametrize("payload", [b"", b"{", b'{"msg_type":14,"content":{"data":"AA==","timestamp":1}',
                                     b"[1,2]", b'"str"', b"\xff\xfe", b'{"msg_type":14} x', b"{\"a\":'x'}",
                                     b'{"msg_type":14,"content":{"data":"AA==","timestamp":01}}'])
def test_malformed_json_is_dropped(rig: Rig, payload: bytes) -> None:
    _drop(rig, payload, "unknown", "bad_json")


def test_truncated_media_at_every_point_never_raises(rig: Rig) -> None:
    full = media(14, AUDIO)
    for cut in range(len(full)):
        got = rig.feed(full[:cut])
        assert got == [("drop", "unknown", "bad_json")], cut
    assert rig.stats["drops_by_reason"]["bad_json"] == len(full)


def test_oversized_frame_is_dropped(impl: str) -> None:
    rig = Rig(impl, max_frame_bytes=1000)
    assert rig.feed(media(14, bytes(800))) == [("drop", "unknown", "too_large")]
    assert rig.feed(media(14, bytes(300)))[0][0] == "audio"
    assert rig.stats["drops_by_reason"]["too_large"] == 1


def test_missing_or_odd_msg_type(rig: Rig) -> None:
    _drop(rig, '{"content":{}}', "unknown", "bad_field")
    _drop(rig, '{"msg_type":"14"}', "unknown", "bad_field")
    _drop(rig, '{"msg_type":14.0}', "unknown", "bad_field")


@pytest.mark.parametrize("msg_type", [0, 30, 99, -1, 1 << 40])
def test_unknown_msg_type_is_counted_and_ignored(rig: Rig, msg_type: int) -> None:
    assert rig.feed(protocol.encode({"msg_type": msg_type, "content": {"data": "AA==", "timestamp": 1}})) == []
    assert rig.stats["unknown_types"] == 1


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_sink_exception_does_not_escape(impl: str) -> None:
    class Exploding(RecordingSink):
        def on_audio(self, *args: Any) -> None:
            raise RuntimeError("boom")

    listener = listener_class(impl)(Exploding(), RecordingControl())
    listener.feed(media(14, b"abc"), False)
    assert listener.stats()["callback_errors"] == 1


# ---------------------------------------------------------------------------- control path


def test_keep_alive_answered_inline_before_control(rig: Rig) -> None:
    got = rig.feed(protocol.encode(protocol.build_keep_alive_request(1727384349123, sequence=7)))
    assert got[0][0] == "send" and got[0][1] == int(WSMsgType.TEXT)
    assert orjson.loads(got[0][2]) == {"msg_type": 13, "timestamp": 1727384349123, "sequence": 7}
    assert got[1] == ("control", {"msg_type": 12, "timestamp": 1727384349123, "sequence": 7})
    got = rig.feed('{ "timestamp" : 5 , "msg_type" : 12 }')
    assert orjson.loads(got[0][2]) == {"msg_type": 13, "timestamp": 5}
    assert rig.stats["keepalives_answered"] == 2


@pytest.mark.parametrize("msg_type", [MsgType.DATA_HAND_SHAKE_RESP, MsgType.EVENT_UPDATE, MsgType.STREAM_STATE_UPDATE,
                                      MsgType.KEEP_ALIVE_RESP, MsgType.META_DATA_AUDIO])
def test_control_messages_forwarded_as_dicts(rig: Rig, msg_type: int) -> None:
    doc = {"msg_type": int(msg_type), "status_code": 0, "nested": {"x": [1, "é"]}}
    assert rig.feed(orjson.dumps(doc), True) == [("control", doc)]
    assert rig.stats["media_frames"] == 0


def test_counters(rig: Rig) -> None:
    payloads = [media(14, b"abc"), b"{", protocol.encode({"msg_type": 6, "event": {}})]
    for p in payloads:
        rig.feed(p)
    stats = rig.stats
    assert stats["frames"] == 3 and stats["media_frames"] == 1
    assert stats["bytes"] == sum(len(p) for p in payloads)
    assert stats["drops"] == 1 and stats["drops_by_reason"]["bad_json"] == 1
    assert stats["last_rx_ns"] > 0


# ---------------------------------------------------------------------------- websocket frames


def test_fragmented_message_is_reassembled(rig: Rig) -> None:
    whole = media(14, AUDIO)
    assert rig.frame(WSMsgType.TEXT, whole[:10], fin=False) == []
    assert rig.frame(WSMsgType.CONTINUATION, whole[10:500], fin=False) == []
    assert rig.frame(WSMsgType.CONTINUATION, whole[500:]) == [("audio", UID, "John Smith", TS, AUDIO)]
    assert rig.stats["frames"] == 1 and rig.stats["bytes"] == len(whole)


def test_fragmented_message_over_the_limit_is_dropped(impl: str) -> None:
    rig = Rig(impl, max_frame_bytes=100)
    whole = media(14, bytes(200))
    rig.frame(WSMsgType.BINARY, whole[:60], fin=False)
    rig.frame(WSMsgType.CONTINUATION, whole[60:120], fin=False)
    assert rig.frame(WSMsgType.CONTINUATION, whole[120:]) == [("drop", "unknown", "too_large")]


def test_ping_answered_with_pong_when_picows_auto_pong_is_off(rig: Rig) -> None:
    assert rig.frame(WSMsgType.PING, b"hi") == [("pong", b"hi")]


def test_close_frame_is_answered_then_disconnects(rig: Rig) -> None:
    assert rig.frame(WSMsgType.CLOSE, (1000).to_bytes(2, "big") + b"bye") == [("close", 1000, b"bye"), ("disconnect",)]
    assert rig.stats["frames"] == 0


def test_stray_continuation_and_pong_are_ignored(rig: Rig) -> None:
    assert rig.frame(WSMsgType.CONTINUATION, b"xx") == []
    assert rig.frame(WSMsgType.PONG, b"") == []
    assert rig.stats["frames"] == 0


# ---------------------------------------------------------------------------- real sockets


class _Server(WSListener):  # type: ignore[misc]
    """Sends a scripted list of (frame type, payload), then records what the client answers."""

    def __init__(self, script: list[tuple[WSMsgType, bytes]], received: list[bytes]) -> None:
        super().__init__()
        self.script = script
        self.received = received

    def on_ws_connected(self, transport: Any) -> None:
        for msg_type, payload in self.script:
            transport.send(msg_type, payload)

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self.received.append(frame.get_payload_as_bytes())


async def _run_loopback(impl: str, script: list[tuple[WSMsgType, bytes]], expect_replies: int,
                        expect_calls: int) -> tuple[list[Any], list[bytes], Any]:
    received: list[bytes] = []
    server = await ws_create_server(lambda _req: _Server(script, received), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink, control = make_sink(impl), RecordingControl()
    try:
        transport, listener = await ws_connect(lambda: listener_class(impl)(sink, control), f"ws://127.0.0.1:{port}/")
        for _ in range(500):
            if len(received) >= expect_replies and len(sink.calls) >= expect_calls:
                break
            await asyncio.sleep(0.01)
        transport.disconnect()
        await asyncio.wait_for(transport.wait_disconnected(), 5)
    finally:
        server.close()
        await server.wait_closed()
    return sink.calls, received, (control.calls, listener)


async def test_loopback_media_text_and_binary_frames_and_keep_alive(impl: str) -> None:
    script = [
        (WSMsgType.TEXT, media(14, AUDIO)),
        (WSMsgType.BINARY, media(15, b"\xff\xd8jpeg", user_id="5", user_name="Bé")),
        (WSMsgType.TEXT, protocol.encode(protocol.build_keep_alive_request(123, sequence=4))),
        (WSMsgType.TEXT, b"garbage"),
        (WSMsgType.TEXT, media(16, b"share")),
    ]
    calls, replies, (control_calls, listener) = await _run_loopback(impl, script, expect_replies=1, expect_calls=4)
    assert calls == [
        ("audio", UID, "John Smith", TS, AUDIO),
        ("video", 5, "Bé", TS, b"\xff\xd8jpeg"),
        ("drop", "unknown", "bad_json"),
        ("share", UID, "John Smith", TS, b"share"),
    ]
    assert [orjson.loads(r) for r in replies] == [{"msg_type": 13, "timestamp": 123, "sequence": 4}]
    assert control_calls[0] == ("connected",)
    assert ("control", {"msg_type": 12, "timestamp": 123, "sequence": 4}) in control_calls
    assert control_calls[-1] == ("disconnected",)
    assert listener.stats()["keepalives_answered"] == 1


async def test_loopback_close_from_server_is_answered(impl: str) -> None:
    class Closer(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            transport.send(WSMsgType.TEXT, media(14, b"abc"))
            transport.send_close()

    server = await ws_create_server(lambda _req: Closer(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink, control = make_sink(impl), RecordingControl()
    try:
        transport, _listener = await ws_connect(lambda: listener_class(impl)(sink, control), f"ws://127.0.0.1:{port}/")
        await asyncio.wait_for(transport.wait_disconnected(), 5)
    finally:
        server.close()
        await server.wait_closed()
    assert sink.calls == [("audio", UID, "John Smith", TS, b"abc")]
    assert transport.close_handshake is not None and transport.close_handshake.sent is not None
    assert control.calls[-1] == ("disconnected",)


def test_native_sink_without_room_counts_no_room() -> None:
    rig = Rig("native-nativesink")
    rig.sink.refuse = True
    assert rig.feed(media(14, b"abc")) == [("drop", "audio", "no_room")]
    assert rig.feed(media(17, "text")) == [("drop", "transcript", "no_room")]
    assert rig.stats["drops_by_reason"]["no_room"] == 2 and rig.stats["media_frames"] == 0


@pytest.mark.parametrize("timestamp", [0, -1, 7, 99_999_999, 100_000_000, 1738392033699, 10**17, 10**18 - 1, 10**18,
                                       2**63 - 1, -(2**63)])
def test_integer_edges(rig: Rig, timestamp: int) -> None:
    """Short, 8-digit (SWAR), 13-digit and 19-digit (slow path) integers all read the same."""
    doc = '{"msg_type":14,"content":{"data":"AAAA","timestamp":' + f'{timestamp},"user_id":{abs(timestamp) % 2**32}' + "}}"
    assert rig.feed(doc) == [("audio", abs(timestamp) % 2**32, None, timestamp, b"\0\0\0")]


@pytest.mark.parametrize("timestamp", ["2" * 20, "-" + "9" * 19, "9223372036854775808"])
def test_integers_beyond_int64_are_dropped(rig: Rig, timestamp: str) -> None:
    _drop(rig, '{"msg_type":14,"content":{"data":"AAAA","timestamp":' + timestamp + "}}", "audio", "bad_field")


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_sink_may_release_or_keep_the_lent_view(impl: str) -> None:
    """A sink that releases each memoryview (``with data:``) still gets every later payload."""

    class Releasing(RecordingSink):
        def on_audio(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
            with data:
                self.calls.append(("audio", bytes(data)))

    sink = Releasing()
    listener = listener_class(impl)(sink, RecordingControl())
    for k in range(3):
        listener.feed(media(14, bytes([k]) * 640), False)
    assert sink.calls == [("audio", bytes([k]) * 640) for k in range(3)]
    assert listener.stats()["callback_errors"] == 0
