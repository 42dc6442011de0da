"""Video demux units: NAL parsing, SPS sizes, access-unit splitting, key frames, format events, decoding."""

from __future__ import annotations

import threading
from typing import Any

import av
import numpy as np
import pytest

from gateway.errors import ConfigError
from gateway.protocol import Codec, Resolution, VideoParams
from gateway.sim.codecs import H264Encoder
from gateway.sim.content import MeetingContent, read_frame_counter
from gateway.video import (
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    AccessUnit,
    AccessUnitSplitter,
    DecodedFrame,
    FrameDecoder,
    VideoConfig,
    VideoDemux,
    decoded_header,
    image_size,
    iter_nals,
    parse_decoded,
    sps_size,
)


def _h264(width: int, height: int, n: int, keyint: int = 5, profile: str | None = None) -> list[bytes]:
    enc = H264Encoder(width, height, 10, keyint)
    if profile:
        enc.ctx.profile = profile
    out = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), (i * 20) % 256, np.uint8), format="rgb24").reformat(format="yuv420p")
        out.append(enc.encode(frame, i))
    return out


def _nal(data: bytes, t: int) -> bytes:
    return next(data[s:e] for s, e in iter_nals(data) if data[s] & 0x1F == t)


@pytest.mark.parametrize(("w", "h"), [(640, 360), (1280, 720), (650, 370), (176, 144), (1920, 1080)])
def test_sps_size_with_cropping(w: int, h: int) -> None:
    au = _h264(w, h, 1)[0]
    assert sps_size(_nal(au, NAL_SPS)) == (w, h)


def test_iter_nals_handles_3_and_4_byte_start_codes_and_garbage_before() -> None:
    data = b"junk\x00\x00\x01\x67AB\x00\x00\x00\x01\x68C\x00\x00\x01\x65DEF"
    assert [data[s:e] for s, e in iter_nals(data)] == [b"\x67AB", b"\x68C", b"\x65DEF"]


def test_image_sizes() -> None:
    content = MeetingContent(3, seed=3)
    for codec in (Codec.JPG, Codec.PNG):
        frame = content.video_frame(VideoParams(codec=codec, resolution=Resolution.SD, fps=1), 0, 0)
        assert frame is not None and image_size(codec, frame[2]) == (640, 360)
    assert image_size(Codec.JPG, b"\xff\xd8\x00\x00") is None and image_size(Codec.PNG, b"nope") is None


def test_one_message_per_access_unit_passes_through_with_key_flags() -> None:
    aus = _h264(320, 240, 11, keyint=5)
    demux = VideoDemux()
    units = [u for i, au in enumerate(aus) for u in demux.feed("video", 7, i * 100, au)]
    assert len(units) == 11 and [u.key for u in units] == [i % 5 == 0 for i in range(11)]
    assert all(u.width == 320 and u.height == 240 and u.user_id == 7 for u in units)
    assert [u.timestamp_ms for u in units] == [i * 100 for i in range(11)]
    for u, au in zip(units, aus, strict=True):  # same NAL units, 4-byte start codes
        assert [u.data[s:e] for s, e in u.nals] == [au[s:e] for s, e in iter_nals(au)]
    assert demux.stats()["video_key_frames"] == 3 and demux.stats()["video_frames"] == 11


def test_several_units_in_one_message_and_parameter_sets_alone() -> None:
    aus = _h264(320, 240, 6, keyint=3)
    demux = VideoDemux()
    sps, pps = _nal(aus[0], NAL_SPS), _nal(aus[0], NAL_PPS)
    # parameter sets arrive alone, then three pictures in one message, then two more together
    rest0 = b"".join(b"\x00\x00\x01" + aus[0][s:e] for s, e in iter_nals(aus[0]) if aus[0][s] & 0x1F not in (NAL_SPS, NAL_PPS))
    assert demux.feed("video", 1, 0, b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps) == []
    units = demux.feed("video", 1, 0, rest0 + aus[1] + aus[2])
    units += demux.feed("video", 1, 300, aus[3] + aus[4] + aus[5])
    assert [u.key for u in units] == [True, False, False, True, False, False]
    assert units[0].data.startswith(b"\x00\x00\x00\x01" + sps)
    assert demux.parameter_sets("video") == (sps, pps)
    ctx: Any = av.CodecContext.create("h264", "r")
    frames = [f for u in units for f in ctx.decode(av.Packet(u.data))]
    assert len(frames) == 6


def test_units_cut_across_messages_are_joined() -> None:
    aus = _h264(320, 240, 4, keyint=2)
    stream = b"".join(aus)
    splitter = AccessUnitSplitter(flush_at_message_end=False)
    units = []
    for k in range(0, len(stream), 997):  # cut anywhere, even inside start codes
        units += splitter.feed(stream[k : k + 997])
    assert len(units) == 2  # the third ends only when the fourth's slice is seen; that one is held back
    units += splitter.flush()
    assert len(units) == 4
    for unit, au in zip(units, aus, strict=True):
        assert unit == [au[s:e] for s, e in iter_nals(au)]
    assert splitter.joined_units >= 1


def test_key_frame_without_parameter_sets_gets_the_cached_ones() -> None:
    aus = _h264(320, 240, 3, keyint=2)
    demux = VideoDemux()
    demux.feed("video", 1, 0, aus[0])
    demux.feed("video", 1, 100, aus[1])
    bare = b"".join(b"\x00\x00\x01" + aus[2][s:e] for s, e in iter_nals(aus[2]) if aus[2][s] & 0x1F not in (NAL_SPS, NAL_PPS))
    (unit,) = demux.feed("video", 1, 200, bare)
    types = [unit.data[s] & 0x1F for s, _ in unit.nals]
    assert unit.key and types[:2] == [NAL_SPS, NAL_PPS] and NAL_IDR in types


def test_resolution_change_is_announced_not_fatal() -> None:
    events: list[dict[str, Any]] = []
    demux = VideoDemux(on_format=events.append)
    for i, au in enumerate(_h264(320, 240, 2) + _h264(640, 360, 2)):
        demux.feed("video", 5, i * 100, au)
    sizes = [(e["width"], e["height"], e["changed"]) for e in events]
    assert sizes == [(320, 240, True), (640, 360, True)]
    assert demux.resolution_changes == 1 and demux.size("video") == (640, 360)
    assert events[1]["timestamp"] == 200 and events[1]["sps"] and events[1]["pps"] and events[1]["codec"] == "H264"
    img = MeetingContent(3, seed=1).video_frame(VideoParams(codec=Codec.JPG, resolution=Resolution.SD, fps=1), 0, 0)
    assert img is not None
    demux.configure("share", Codec.JPG)
    (u,) = demux.feed("share", 9, 0, img[2])
    assert u.key and u.data == img[2] and events[-1]["kind"] == "share" and events[-1]["width"] == 640


def test_garbage_is_counted_not_raised() -> None:
    demux = VideoDemux()
    demux.configure("video", Codec.H264)
    assert demux.feed("video", 1, 0, b"\x00\x00\x01\x67\xff") == []  # truncated SPS, no picture
    demux.feed("video", 1, 0, b"\x00\x00\x01\x41\x80")  # a P slice before any key frame
    assert demux.bad_headers == 1 and demux.before_key == 1
    demux.configure("share", Codec.JPG)
    demux.feed("share", 1, 0, b"not a jpeg")
    assert demux.bad_headers == 2


def _collect() -> tuple[list[DecodedFrame], threading.Event, Any]:
    out: list[DecodedFrame] = []
    done = threading.Event()

    def sink(f: DecodedFrame) -> None:
        out.append(f)
        done.set()

    return out, done, sink


@pytest.mark.parametrize("fmt", ["rgb24", "yuv420p"])
def test_decoder_reads_back_the_frame_counters(fmt: str) -> None:
    content = MeetingContent(3, seed=4)
    params = VideoParams(codec=Codec.H264, resolution=Resolution.SD, fps=10)
    demux = VideoDemux()
    out, _, sink = _collect()
    dec = FrameDecoder(sink, pixel_format=fmt, queue_size=64)
    frames = [content.video_frame(params, i, i * 100) for i in range(25)]
    for i in range(3, 25):  # starts mid-GOP: units before the key frame at 20 are skipped
        frame = frames[i]
        assert frame is not None
        for u in demux.feed("video", frame[0], i * 100, frame[2]):
            assert dec.submit("video", Codec.H264, u)
    dec.close()
    assert dec.skipped == 17 and dec.errors == 0
    counters = []
    for f in out:
        if fmt == "rgb24":
            assert f.pixels.shape == (360, 640, 3)
            counters.append(read_frame_counter(f.pixels))
        else:
            y, u, v = f.planes()
            assert y.shape == (360, 640) and u.shape == v.shape == (180, 320)
            rgb = av.VideoFrame.from_ndarray(f.pixels.reshape(540, 640), format="yuv420p").to_ndarray(format="rgb24")
            counters.append(read_frame_counter(rgb))
    assert counters == [20, 21, 22, 23, 24]
    record = decoded_header(out[0]) + out[0].pixels.tobytes()
    w, h, name, number, pixels = parse_decoded(record)
    assert (w, h, name, number) == (640, 360, fmt, 1) and np.array_equal(pixels.reshape(-1), out[0].pixels.reshape(-1))


def test_decoder_queue_full_is_a_counted_drop_never_a_wait() -> None:
    gate = threading.Event()

    def slow_sink(f: DecodedFrame) -> None:
        gate.wait(10)

    dec = FrameDecoder(slow_sink, queue_size=2)
    img = MeetingContent(3, seed=1).video_frame(VideoParams(codec=Codec.JPG, resolution=Resolution.SD, fps=1), 0, 0)
    assert img is not None
    unit = AccessUnit(0, 1, img[2], [], True)
    results = [dec.submit("video", Codec.JPG, unit) for _ in range(20)]
    gate.set()
    dec.close()
    assert results.count(False) == dec.dropped >= 15 and dec.decoded == 20 - dec.dropped


def test_video_config_validation() -> None:
    assert not VideoConfig().decode
    for bad in ({"pixel_format": "bgr"}, {"decode_queue": 0}, {"decode_kinds": ("audio",)}, {"follow_interval_ms": 0}):
        with pytest.raises(ConfigError):
            VideoConfig(**bad)


