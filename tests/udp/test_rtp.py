"""RTP packetisation (RFC 3550 header, RFC 6184 H.264, RFC 3551 L16/PCMA/G722, RFC 7587 Opus) and SDP."""

from __future__ import annotations

import itertools
import socket
import struct
from typing import Any

import av
import numpy as np
import pytest

from gateway.errors import ConfigError
from gateway.protocol import Codec, Resolution, VideoParams
from gateway.sim.content import MeetingContent, read_frame_counter
from gateway.udp import (
    PT_AUDIO_DYNAMIC,
    PT_G722,
    PT_PCMA,
    AudioRtp,
    RtpSender,
    UdpConfig,
    allocate_ports,
    h264_attrs,
    h264_payloads,
    release_ports,
    rtp_header,
    sdp_for,
    sdp_path,
)
from gateway.video import VideoDemux


def _parse(pkt: bytes) -> tuple[int, bool, int, int, int, bytes]:
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", pkt)
    assert b0 >> 6 == 2 and not b0 & 0x3F  # version 2, no padding/extension/CSRC
    return b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, pkt[12:]


def _receiver() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    return s


def _recv_all(sock: socket.socket, n: int) -> list[bytes]:
    return [sock.recv(65536) for _ in range(n)]


def _depacketise(payloads: list[bytes]) -> list[bytes]:
    """RFC 6184 receiver: single NAL units and FU-A back to NAL units."""
    nals: list[bytes] = []
    fu = bytearray()
    for p in payloads:
        t = p[0] & 0x1F
        if t == 28:
            if p[1] & 0x80:
                fu = bytearray(bytes(((p[0] & 0xE0) | (p[1] & 0x1F),)))
            fu += p[2:]
            if p[1] & 0x40:
                nals.append(bytes(fu))
        else:
            nals.append(p)
    return nals


def test_rtp_header_fields() -> None:
    pt, marker, seq, ts, ssrc, payload = _parse(rtp_header(97, 70000, (1 << 32) + 5, 0xDEADBEEF, True) + b"x")
    assert (pt, marker, seq, ts, ssrc, payload) == (97, True, 70000 & 0xFFFF, 5, 0xDEADBEEF, b"x")


def test_h264_single_nal_and_fu_a_round_trip() -> None:
    rng = np.random.default_rng(1)
    small = bytes([0x67]) + rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
    big = bytes([0x65]) + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    data = b"\x00\x00\x00\x01" + small + b"\x00\x00\x00\x01" + big
    nals = [(4, 4 + len(small)), (8 + len(small), len(data))]
    payloads = h264_payloads(data, nals, 1188)
    assert payloads[0] == small and all(len(p) <= 1188 for p in payloads)
    fus = payloads[1:]
    assert len(fus) == 5 and all(p[0] & 0x1F == 28 and p[0] & 0x60 == 0x60 for p in fus)
    assert fus[0][1] & 0x80 and not fus[0][1] & 0x40 and fus[-1][1] & 0x40 and not fus[-1][1] & 0x80
    assert all(p[1] & 0x1F == 5 for p in fus)
    assert _depacketise(payloads) == [small, big]


def test_access_units_over_udp_decode_to_the_simulator_frames() -> None:
    """Real simulator H.264 through the demux, RTP over loopback, depacketised and decoded."""
    content = MeetingContent(3, seed=2)
    params = VideoParams(codec=Codec.H264, resolution=Resolution.SD, fps=10)
    demux = VideoDemux()
    rx = _receiver()
    sender = RtpSender(97, 90000, rx.getsockname(), mtu=1200)
    counts = []
    for i in range(12):
        frame = content.video_frame(params, i, i * 100)
        assert frame is not None
        for unit in demux.feed("video", frame[0], i * 100, frame[2]):
            counts.append(sender.send_access_unit(unit.data, unit.nals, unit.timestamp_ms * 90))
    packets = [_parse(p) for p in _recv_all(rx, sum(counts))]
    rx.close()
    sender.close()
    assert len({p[4] for p in packets}) == 1  # one SSRC
    seqs = [p[2] for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    ctx: Any = av.CodecContext.create("h264", "r")
    counters = []
    start = 0
    for n in counts:
        unit_packets = packets[start : start + n]
        start += n
        assert [p[1] for p in unit_packets] == [False] * (n - 1) + [True]  # marker on the last packet
        assert len({p[3] for p in unit_packets}) == 1
        annexb = b"".join(b"\x00\x00\x00\x01" + nal for nal in _depacketise([p[5] for p in unit_packets]))
        counters += [read_frame_counter(f.to_ndarray(format="rgb24")) for f in ctx.decode(av.Packet(annexb))]
    timestamps = [packets[sum(counts[:k])][3] for k in range(len(counts))]
    assert [(t - timestamps[0]) & 0xFFFFFFFF for t in timestamps] == [9000 * k for k in range(12)]
    assert counters == list(range(12))
    assert max(counts) > 1  # at least one access unit needed several packets


def test_l16_is_network_byte_order_with_media_clock_timestamps() -> None:
    rx = _receiver()
    cfg = UdpConfig(mtu=1200)
    audio = AudioRtp(Codec.L16, 16000, 1, rx.getsockname(), cfg)
    pcm = (np.arange(1000, dtype=np.int32) * 37 % 65536 - 32768).astype("<i2")
    audio.send_pcm(48000, pcm[:500])  # 1 packet of 320 + 180 pending
    audio.send_pcm(48500, pcm[500:])  # continues: 2 more packets + 40 pending
    packets = [_parse(p) for p in _recv_all(rx, 3)]
    rx.close()
    audio.sender.close()
    assert [p[0] for p in packets] == [PT_AUDIO_DYNAMIC] * 3
    base = audio.sender.ts_offset
    assert [(p[3] - base) & 0xFFFFFFFF for p in packets] == [48000, 48320, 48640]
    payload = b"".join(p[5] for p in packets)
    assert np.array_equal(np.frombuffer(payload, dtype=">i2"), pcm[:960])
    assert audio.rtpmap() == f"a=rtpmap:{PT_AUDIO_DYNAMIC} L16/16000/1"


def test_l16_gap_in_indices_restarts_packetising_at_the_new_index() -> None:
    rx = _receiver()
    audio = AudioRtp(Codec.L16, 8000, 1, rx.getsockname(), UdpConfig())
    audio.send_pcm(0, np.zeros(100, "<i2"))
    audio.send_pcm(1000, np.ones(160, "<i2"))  # the 100 pending frames are not contiguous: dropped
    (p,) = [_parse(x) for x in _recv_all(rx, 1)]
    rx.close()
    audio.sender.close()
    assert (p[3] - audio.sender.ts_offset) & 0xFFFFFFFF == 1000 and np.all(np.frombuffer(p[5], ">i2") == 1)


@pytest.mark.parametrize(("codec", "rate", "channels", "pt", "clock", "rtpmap"), [
    (Codec.G711, 8000, 1, PT_PCMA, 8000, "PCMA/8000/1"),
    (Codec.G722, 16000, 1, PT_G722, 8000, "G722/8000/1"),
    (Codec.OPUS, 48000, 2, PT_AUDIO_DYNAMIC, 48000, "opus/48000/2"),
])
def test_codec_payload_types_and_clocks(codec: int, rate: int, channels: int, pt: int, clock: int, rtpmap: str) -> None:
    rx = _receiver()
    audio = AudioRtp(codec, rate, channels, rx.getsockname(), UdpConfig())
    audio.send_raw(40, b"\x01\x02\x03")
    (p,) = [_parse(x) for x in _recv_all(rx, 1)]
    rx.close()
    audio.sender.close()
    assert p[0] == pt and p[5] == b"\x01\x02\x03"
    assert (p[3] - audio.sender.ts_offset) & 0xFFFFFFFF == 40 * clock // 1000
    assert rtpmap in audio.rtpmap()


def test_sdp_and_ports(tmp_path: Any) -> None:
    cfg = UdpConfig(base_port=41000)
    a = allocate_ports(cfg, ["audio", "video"])
    b = allocate_ports(cfg, ["audio"])
    assert a.ports == {"audio": 41000, "video": 41002} and b.ports == {"audio": 41004}
    release_ports(a)
    release_ports(b)
    text = sdp_for("s/1", "127.0.0.1", [("audio", 41000, ["a=rtpmap:96 L16/16000/1"]),
                                        ("video", 41002, h264_attrs(97, b"\x67\x42\xc0\x1e", b"\x68\xce"))])
    assert "m=audio 41000 RTP/AVP 96\r\n" in text and "m=video 41002 RTP/AVP 97\r\n" in text
    assert "a=rtpmap:97 H264/90000" in text and "packetization-mode=1" in text and "profile-level-id=42c01e" in text
    assert "c=IN IP4 127.0.0.1" in text and text.endswith("\r\n")
    assert sdp_path(str(tmp_path), "a/b c==").endswith("a_b_c__.sdp")


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        UdpConfig(base_port=5005)
    with pytest.raises(ConfigError):
        UdpConfig(kinds=("chat",))
    assert UdpConfig().bind == "127.0.0.1" and not UdpConfig().enabled


def test_sender_reports_map_rtp_time_to_the_rtms_wall_clock() -> None:
    for _ in range(100):
        rtp = _receiver()
        port = rtp.getsockname()[1]
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtcp.bind(("127.0.0.1", port + 1))
            break
        except OSError:
            rtp.close()
            rtcp.close()
    rtcp.settimeout(5)
    sender = RtpSender(96, 16000, rtp.getsockname())
    sender.origin_ms = 1_738_392_033_000
    for k in range(101):  # 2 s of 20 ms packets: reports at media time 0, 1 s and 2 s
        sender.send(b"\x00" * 640, k * 320, False)
    reports = [rtcp.recv(2048) for _ in range(3)]
    rtp.close()
    rtcp.close()
    sender.close()
    assert sender.reports == 3
    for k, r in enumerate(reports):
        b0, pt, length, ssrc, ntp_hi, ntp_lo, ts, count, _octets = struct.unpack("!BBHIIIIII", r)
        assert (b0 >> 6, pt, length, ssrc) == (2, 200, 6, sender.ssrc)
        assert (ts - sender.ts_offset) & 0xFFFFFFFF == k * 16000
        unix = ntp_hi + ntp_lo / 2**32 - 2_208_988_800
        assert abs(unix - (1_738_392_033 + k)) < 1e-3
        assert count == 1 + 50 * k
