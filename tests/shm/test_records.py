"""Record rings: video/share frames (variable sizes, wraparound, overrun, key flags) and events."""

from __future__ import annotations

import random

import pytest

from gateway import _native, client
from gateway.protocol import AudioParams, Codec, DeskshareParams, MediaMessage, MsgType, VideoParams

T0 = 1_738_392_033_000
KIND_VIDEO, KIND_SHARE, KIND_TRANSCRIPT, KIND_CHAT = 1, 2, 3, 4


def frame_bytes(i: int, size: int) -> bytes:
    return bytes((i * 31 + k) & 0xFF for k in range(size))


@pytest.mark.parametrize("path", ["native", "python"])
def test_frames_byte_exact_with_variable_sizes_and_wraparound(make_pub, path: str) -> None:
    pub = make_pub(video=VideoParams(), video_bytes=8192)  # tiny ring: wraps every few frames
    rng = random.Random(5)
    sent = []
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        v = s.video()
        assert v.max_record == 4096 - 32
        got, cursor = [], 0
        for i in range(300):
            data = frame_bytes(i, rng.choice([0, 1, 31, 32, 33, 500, 1000, 2500]))
            uid = 100 + i % 3
            if path == "native":
                assert _native._test_write(pub, KIND_VIDEO, uid, T0 + 200 * i, data)
            else:
                pub.on_video(uid, "x", T0 + 200 * i, memoryview(data))
            sent.append((i, T0 + 200 * i, uid, data))
            if i % 2:  # read every other write: always within the ring
                frames, cursor, lost = v.read_since(cursor)
                assert lost == 0
                got += [(f.seq, f.timestamp_ms, f.user_id, f.data.tobytes()) for f in frames]
                assert all(f.key for f in frames)
        assert got == sent
        assert v.stats()["records"] == 300
    pub.close()


def test_frame_overrun_counts_lost_frames_exactly(make_pub) -> None:
    pub = make_pub(video=VideoParams(), video_bytes=8192)
    for i in range(100):
        _native._test_write(pub, KIND_VIDEO, 1, T0 + i, frame_bytes(i, 1000))  # 1,024 B each in the ring
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        v = s.video()
        frames, cursor, lost = v.read_since(0)
        assert cursor == 100
        assert len(frames) + lost == 100
        assert len(frames) in (7, 8)  # 8 slots of 1,024 B; the one being replaced is not counted
        assert [f.seq for f in frames] == list(range(100 - len(frames), 100))
        assert all(f.data.tobytes() == frame_bytes(f.seq, 1000) for f in frames)
        assert v.oldest() == 100 - len(frames)
        assert v.intact(frames[-1])
    pub.close()


def test_oversized_frame_dropped_and_counted(make_pub) -> None:
    pub = make_pub(video=VideoParams(), video_bytes=8192)
    assert not _native._test_write(pub, KIND_VIDEO, 1, T0, bytes(4065))
    assert _native._test_write(pub, KIND_VIDEO, 1, T0, bytes(4064))
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        assert s.video().stats() == {"records": 1, "dropped_too_large": 1, "bytes_total": 4064, "waiter_repairs": 0}
    pub.close()


def test_h264_key_frames_flagged_on_share(make_pub) -> None:
    pub = make_pub(deskshare=DeskshareParams(codec=Codec.H264))
    idr = b"\x00\x00\x00\x01\x67\x42\x00\x1f" + b"\x00\x00\x01\x65\x88\x84"  # SPS + IDR slice
    delta = b"\x00\x00\x00\x01\x41\x9a\x02"  # non-IDR slice
    for i, chunk in enumerate((idr, delta, delta, idr)):
        pub.on_share(9, "s", T0 + 40 * i, memoryview(chunk))
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        frames, _, _ = s.share().read_since(0)
        assert [f.key for f in frames] == [True, False, False, True]
        assert s.share().codec == Codec.H264
    pub.close()


def test_events_from_session_python_and_native_paths(make_pub) -> None:
    pub = make_pub()
    assert pub.publish_event({"type": "participant", "event": "join", "user_id": 5, "user_name": "Ann", "timestamp": T0})
    pub.on_transcript(MediaMessage(msg_type=MsgType.MEDIA_DATA_TRANSCRIPT, user_id=5, user_name="Ann", timestamp=T0 + 1,
                                   data="héllo", start_time=T0, end_time=T0 + 900, language=9))
    pub.on_chat(MediaMessage(msg_type=MsgType.MEDIA_DATA_CHAT, user_id=6, user_name="Bob", timestamp=T0 + 2, data="hi"))
    assert _native._test_write(pub, KIND_TRANSCRIPT, 5, T0 + 3, b"native text")
    assert _native._test_write(pub, KIND_CHAT, 6, T0 + 4, b"native chat")
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        events, cursor, lost = s.events().read_since(0)
        assert (cursor, lost) == (5, 0)
        assert events[0] == {"type": "participant", "event": "join", "user_id": 5, "user_name": "Ann", "timestamp": T0, "seq": 0}
        assert events[1]["text"] == "héllo" and events[1]["end_time"] == T0 + 900 and events[1]["language"] == 9
        assert events[2] == {"type": "chat", "user_id": 6, "user_name": "Bob", "timestamp": T0 + 2, "text": "hi", "seq": 2}
        assert events[3] == {"type": "transcript", "user_id": 5, "timestamp": T0 + 3, "text": "native text", "seq": 3}
        assert events[4]["type"] == "chat" and events[4]["text"] == "native chat"
    pub.close()


def test_event_overrun_counted(make_pub) -> None:
    pub = make_pub(event_bytes=4096)
    for i in range(200):
        pub.publish_event({"type": "session", "n": i})
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        ev = s.events()
        events, cursor, lost = ev.read_since(0)
        assert cursor == 200 and lost + len(events) == 200 and lost > 0
        assert [e["n"] for e in events] == list(range(lost, 200))
    pub.close()


def test_non_l16_audio_goes_to_a_raw_record_ring(make_pub) -> None:
    pub = make_pub(audio=AudioParams(codec=Codec.OPUS, sample_rate=3, channel=2))
    for i in range(10):
        pub.on_audio(7, "a", T0 + 20 * i, memoryview(frame_bytes(i, 120)))
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        with pytest.raises(KeyError):
            s.mixed()
        raw = s.raw_audio()
        assert raw.codec == Codec.OPUS
        frames, cursor, _ = raw.read_since(0)
        assert cursor == 10 and [f.data.tobytes() for f in frames] == [frame_bytes(i, 120) for i in range(10)]
        assert {f.user_id for f in frames} == {7}
    pub.close()
