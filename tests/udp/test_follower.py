"""The media follower republishing a publisher's rings over RTP (no gateway, no network beyond loopback)."""

from __future__ import annotations

import socket
import struct
from typing import Any

import numpy as np

from gateway.protocol import AudioParams, Codec, DeskshareParams, MediaParams, SampleRate, VideoParams
from gateway.shm import ShmConfig, ShmPublisher
from gateway.sim.content import MeetingContent
from gateway.udp import PT_PCMA, UdpConfig
from gateway.video import MediaFollower, VideoConfig

T0 = 1_738_392_033_000


def _bound_pair() -> tuple[int, list[socket.socket]]:
    """An even base port with RTP sockets bound on base and base+2 (audio, video)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1] & ~1
        s.close()
        socks = []
        try:
            for p in (base, base + 2):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(t)
                t.bind(("127.0.0.1", p))
                t.settimeout(5)
            return base, socks
        except OSError:
            for t in socks:
                t.close()
    raise RuntimeError("no ports")


def _drain(sock: socket.socket) -> list[tuple[int, bool, int, int, bytes]]:
    sock.settimeout(0.2)
    out = []
    try:
        while True:
            p = sock.recv(65536)
            _b0, b1, seq, ts, _ssrc = struct.unpack_from("!BBHII", p)
            out.append((b1 & 0x7F, bool(b1 & 0x80), seq, ts, p[12:]))
    except TimeoutError:
        return out


def test_l16_ring_with_a_gap_is_sent_on_the_media_clock(prefix: str, tmp_path: Any) -> None:
    base, (rx_audio, rx_video) = _bound_pair()
    params = MediaParams(audio=AudioParams())
    pub = ShmPublisher("f-l16", config=ShmConfig(prefix=prefix), audio=params.audio, origin_ms=T0)
    f = MediaFollower(pub, video_cfg=VideoConfig(), params=params,
                      udp_cfg=UdpConfig(enabled=True, base_port=base, kinds=("audio",), sdp_dir=str(tmp_path)))
    try:
        pcm = (np.arange(320) * 50).astype("<i2")
        for k in (0, 1, 3):  # packet 2 never came: 20 ms of zeros (a gap) on the wire
            pub.on_audio(0, None, T0 + 20 * k, memoryview((pcm + k).tobytes()))
        f.poll()
        packets = _drain(rx_audio)
        assert f.sdp_path is not None and "L16/16000/1" in open(f.sdp_path).read()
    finally:
        f.close()
        pub.close()
        rx_audio.close()
        rx_video.close()
    assert len(packets) == 4
    ts0 = packets[0][3]
    assert [(p[3] - ts0) & 0xFFFFFFFF for p in packets] == [0, 320, 640, 960]
    got = [np.frombuffer(p[4], ">i2") for p in packets]
    assert np.array_equal(got[0], pcm) and np.array_equal(got[1], pcm + 1) and not got[2].any() and np.array_equal(got[3], pcm + 3)
    assert f.stats()["rtp_audio_packets"] == 4


def test_g711_payloads_and_h264_units_go_out_as_received(prefix: str) -> None:
    base, (rx_audio, rx_video) = _bound_pair()
    content = MeetingContent(3, seed=5)
    vp = VideoParams(codec=Codec.H264, fps=10, resolution=1)
    params = MediaParams(audio=AudioParams(codec=Codec.G711, sample_rate=SampleRate.SR_8K), video=vp, deskshare=DeskshareParams())
    pub = ShmPublisher("f-g711", config=ShmConfig(prefix=prefix), audio=params.audio, video=vp, deskshare=params.deskshare, origin_ms=T0)
    f = MediaFollower(pub, video_cfg=VideoConfig(), params=params, udp_cfg=UdpConfig(enabled=True, base_port=base, kinds=("audio", "video", "share")))
    formats: list[dict[str, Any]] = []
    pub_events = pub.publish_event
    try:
        pub.publish_event = lambda rec: formats.append(rec) or pub_events(rec)  # type: ignore[method-assign]
        for k in range(3):
            pub.on_audio(0, None, T0 + 20 * k, memoryview(bytes([k]) * 160))
        frames = [content.video_frame(vp, i, i * 100) for i in range(4)]
        for i, fr in enumerate(frames):
            assert fr is not None
            pub.on_video(fr[0], fr[1], T0 + i * 100, memoryview(fr[2]))
        f.poll()
        audio, video = _drain(rx_audio), _drain(rx_video)
    finally:
        f.close()
        pub.close()
        rx_audio.close()
        rx_video.close()
    assert [(p[0], p[4]) for p in audio] == [(PT_PCMA, bytes([k]) * 160) for k in range(3)]
    assert [(p[3] - audio[0][3]) & 0xFFFFFFFF for p in audio] == [0, 160, 320]
    marks = [p for p in video if p[1]]
    assert len(marks) == 4 and [(p[3] - marks[0][3]) & 0xFFFFFFFF for p in marks] == [0, 9000, 18000, 27000]
    assert f.ports is not None and "share" not in f.ports.ports  # JPEG share is not republished (H.264 only)
    assert formats and formats[0]["type"] == "video_format" and formats[0]["width"] == 640
