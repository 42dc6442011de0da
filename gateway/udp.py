"""RTP over UDP (RFC 3550) per stream and kind, with an SDP file per stream.

* Audio: L16 in network byte order (RFC 3551 4.5.11, dynamic payload type), or the negotiated
  codec's own RTP payload: G.711 A-law as PCMA (static 8 at 8 kHz mono), G.722 (static 9, whose
  RTP clock is 8000 by RFC 3551's historical rule), Opus (RFC 7587, ``opus/48000/2``).
* Video and share: H.264 per RFC 6184, packetisation-mode 1: one single-NAL packet per NAL that
  fits, FU-A fragments otherwise; the marker bit on the last packet of an access unit; 90 kHz.
* Timestamps come from the meeting's media clock: audio frame index ``(ts_ms - origin_ms) * rate /
  1000`` (exactly the shared-memory ring index), video ``(ts_ms - origin_ms) * 90``, each plus a
  random per-SSRC offset (RFC 3550 5.1). Every stream and kind has its own SSRC and sequence.
  Once the origin is known, an RTCP sender report goes to the RTCP port (RTP + 1) about every
  second of media, mapping RTP time to the RTMS wall clock so receivers can sync audio and video.
* Sockets are bound to ``udp.bind`` (127.0.0.1 by default) and send to ``udp.host`` on ports
  from ``udp.base_port`` upwards (audio, video, share: RTP port, RTCP port + 1, each stream
  taking the next free even ports). ``<sdp_dir>/<stream>.sdp`` tells ffmpeg/GStreamer where to
  listen (``ffmpeg -protocol_whitelist file,udp,rtp -i stream.sdp``).
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import struct
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .protocol import Codec

log = logging.getLogger(__name__)

__all__ = ["RtpSender", "StreamPorts", "UdpConfig", "h264_payloads", "rtp_header", "sdp_for"]

RTP_VERSION = 2
H264_CLOCK = 90_000
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)
PT_PCMA, PT_G722 = 8, 9
PT_AUDIO_DYNAMIC, PT_VIDEO, PT_SHARE = 96, 97, 98
_FU_A = 28
_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class UdpConfig:
    """``[udp]`` settings (RTP republishing; off by default)."""

    enabled: bool = False
    #: local address the sending sockets bind to.
    bind: str = "127.0.0.1"
    #: where packets go (the receiver named in the SDP).
    host: str = "127.0.0.1"
    #: first destination port; each stream takes 2 ports per kind sent (RTP, RTCP).
    base_port: int = 5004
    #: kinds republished: "audio", "video", "share".
    kinds: tuple[str, ...] = ("audio", "video")
    #: audio participant ring to send (0 = the mixed stream).
    audio_user: int = 0
    #: largest RTP packet (header + payload), under a loopback/Ethernet MTU.
    mtu: int = 1200
    #: audio samples per packet, in ms.
    audio_ptime_ms: int = 20
    #: directory for the SDP files ("" = no files).
    sdp_dir: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.base_port < 65536 or self.base_port % 2:
            raise ConfigError(f"udp.base_port must be an even port number, got {self.base_port}")
        if self.mtu < 200:
            raise ConfigError("udp.mtu must be at least 200")
        for kind in self.kinds:
            if kind not in ("audio", "video", "share"):
                raise ConfigError(f"udp.kinds: unknown kind {kind!r}")


def rtp_header(payload_type: int, seq: int, timestamp: int, ssrc: int, marker: bool) -> bytes:
    """The 12-byte RTP fixed header (no CSRC, no extension)."""
    return _HEADER.pack(RTP_VERSION << 6, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)


def h264_payloads(data: bytes, nals: list[tuple[int, int]], max_payload: int) -> list[bytes]:
    """RFC 6184 payloads of one access unit: single NAL units, or FU-A fragments of big ones."""
    out: list[bytes] = []
    for s, e in nals:
        n = e - s
        if n <= max_payload:
            out.append(data[s:e])
            continue
        header = data[s]
        indicator = bytes(((header & 0xE0) | _FU_A,))
        nal_type = header & 0x1F
        pos = s + 1
        chunk = max_payload - 2
        first = True
        while pos < e:
            end = min(e, pos + chunk)
            fu = (0x80 if first else 0) | (0x40 if end == e else 0) | nal_type
            out.append(indicator + bytes((fu,)) + data[pos:end])
            pos, first = end, False
    return out


class RtpSender:
    """One RTP stream (one SSRC) on its own UDP socket; sends never block (drops are counted)."""

    def __init__(self, payload_type: int, clock_rate: int, dest: tuple[str, int], *, bind: str = "127.0.0.1", mtu: int = 1200) -> None:
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.dest = dest
        self.mtu = mtu
        rnd = random.SystemRandom()
        self.ssrc = rnd.getrandbits(32)
        self.seq = rnd.getrandbits(16)
        self.ts_offset = rnd.getrandbits(32)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind((bind, 0))
        self.packets = 0
        self.bytes = 0
        self.send_errors = 0
        #: RTMS (Unix) ms of media time 0; with it, sender reports map RTP time to wall time (lip sync).
        self.origin_ms: int | None = None
        self.reports = 0
        self._last_report_ts: int | None = None

    def send(self, payload: bytes, media_ts: int, marker: bool) -> None:
        """One packet; ``media_ts`` in this stream's clock units from the media-clock origin."""
        pkt = rtp_header(self.payload_type, self.seq, self.ts_offset + media_ts, self.ssrc, marker) + payload
        self.seq = (self.seq + 1) & 0xFFFF
        try:
            self.sock.sendto(pkt, self.dest)
        except (BlockingIOError, ConnectionRefusedError, OSError):
            self.send_errors += 1  # a receiver that is not there (ICMP) or a full buffer: UDP semantics
            return
        self.packets += 1
        self.bytes += len(pkt)
        if self.origin_ms is not None and (self._last_report_ts is None or media_ts - self._last_report_ts >= self.clock_rate):
            self._send_report(media_ts)

    def _send_report(self, media_ts: int) -> None:
        """RTCP sender report (RFC 3550 6.4.1) to the RTCP port (RTP port + 1), about once a second
        of media: NTP time of ``media_ts`` on the meeting's clock, so receivers line audio up with video."""
        assert self.origin_ms is not None
        self._last_report_ts = media_ts
        unix_s = (self.origin_ms + media_ts * 1000 / self.clock_rate) / 1000.0
        ntp = int((unix_s + NTP_UNIX_OFFSET) * (1 << 32))
        report = struct.pack("!BBHIIIIII", RTP_VERSION << 6, 200, 6, self.ssrc, (ntp >> 32) & 0xFFFFFFFF, ntp & 0xFFFFFFFF,
                             (self.ts_offset + media_ts) & 0xFFFFFFFF, self.packets & 0xFFFFFFFF, self.bytes & 0xFFFFFFFF)
        try:
            self.sock.sendto(report, (self.dest[0], self.dest[1] + 1))
        except OSError:
            self.send_errors += 1
            return
        self.reports += 1

    def send_access_unit(self, data: bytes, nals: list[tuple[int, int]], media_ts: int) -> int:
        """An H.264 access unit as RFC 6184 packets, marker on the last; returns the packet count."""
        payloads = h264_payloads(data, nals, self.mtu - _HEADER.size)
        last = len(payloads) - 1
        for i, p in enumerate(payloads):
            self.send(p, media_ts, i == last)
        return len(payloads)

    def close(self) -> None:
        self.sock.close()

    def stats(self) -> dict[str, int]:
        return {"packets": self.packets, "bytes": self.bytes, "send_errors": self.send_errors, "sender_reports": self.reports}


class AudioRtp:
    """Audio PCM (int16 frames on the media clock) or raw codec payloads -> RTP packets."""

    def __init__(self, codec: int, rate: int, channels: int, dest: tuple[str, int], cfg: UdpConfig) -> None:
        self.codec = int(codec)
        self.rate = rate
        self.channels = channels
        if self.codec == Codec.L16:
            pt, clock = PT_AUDIO_DYNAMIC, rate
        elif self.codec == Codec.G711:
            pt, clock = (PT_PCMA if rate == 8000 and channels == 1 else PT_AUDIO_DYNAMIC), rate
        elif self.codec == Codec.G722:
            pt, clock = PT_G722, 8000
        elif self.codec == Codec.OPUS:
            pt, clock = PT_AUDIO_DYNAMIC, 48000
        else:
            raise ValueError(f"no RTP payload for audio codec {codec}")
        self.sender = RtpSender(pt, clock, dest, bind=cfg.bind, mtu=cfg.mtu)
        self.frames_per_packet = max(1, rate * cfg.audio_ptime_ms // 1000)
        # L16 payloads must fit the MTU: shorten packets for high rates/stereo.
        max_frames = (cfg.mtu - _HEADER.size) // (2 * channels)
        self.frames_per_packet = min(self.frames_per_packet, max_frames)
        self._pending = np.zeros(0, dtype="<i2")
        self._pending_index = 0

    def send_pcm(self, start_index: int, pcm: np.ndarray) -> None:
        """int16 frames (channels interleaved) beginning at media-clock frame ``start_index``."""
        flat = np.asarray(pcm, dtype="<i2").reshape(-1)
        if self._pending.size and self._pending_index + self._pending.size // self.channels == start_index:
            flat = np.concatenate((self._pending, flat))
            start_index = self._pending_index
        step = self.frames_per_packet * self.channels
        n_full = flat.size // step
        if n_full:
            big = flat[: n_full * step].astype(">i2").tobytes()  # network byte order (RFC 3551 L16)
            nbytes = step * 2
            for k in range(n_full):
                self.sender.send(big[k * nbytes : (k + 1) * nbytes], start_index + k * self.frames_per_packet, False)
        self._pending = flat[n_full * step :].copy()
        self._pending_index = start_index + n_full * self.frames_per_packet

    def send_raw(self, media_ms: int, payload: bytes) -> None:
        """One undecoded codec packet (G.711/G.722/Opus) timed at ``media_ms`` after the origin."""
        self.sender.send(payload, media_ms * self.sender.clock_rate // 1000, False)

    def rtpmap(self) -> str:
        pt = self.sender.payload_type
        if self.codec == Codec.L16:
            return f"a=rtpmap:{pt} L16/{self.rate}/{self.channels}"
        if self.codec == Codec.G711:
            return f"a=rtpmap:{pt} PCMA/{self.rate}/{self.channels}"
        if self.codec == Codec.G722:
            return f"a=rtpmap:{pt} G722/8000/{self.channels}"
        return f"a=rtpmap:{pt} opus/48000/2" + ("" if self.channels == 2 else f"\r\na=fmtp:{pt} stereo=0;sprop-stereo=0")


@dataclass(slots=True)
class StreamPorts:
    """Destination ports of one stream: kind -> RTP port."""

    ports: dict[str, int]


_allocated: set[int] = set()


def allocate_ports(cfg: UdpConfig, kinds: list[str]) -> StreamPorts:
    """Next free even destination ports from ``cfg.base_port`` for these kinds (this process)."""
    ports: dict[str, int] = {}
    p = cfg.base_port
    for kind in kinds:
        while p in _allocated:
            p += 2
            if p > 65534:
                raise ValueError("udp: no destination ports left")
        _allocated.add(p)
        ports[kind] = p
    return StreamPorts(ports)


def release_ports(ports: StreamPorts) -> None:
    for p in ports.ports.values():
        _allocated.discard(p)


def sdp_for(stream_id: str, host: str, media: list[tuple[str, int, list[str]]]) -> str:
    """An SDP session (RFC 4566) for a receiver: one m= line per (kind, port, attribute lines)."""
    lines = ["v=0", f"o=- 0 0 IN IP4 {host}", f"s=rtms-gateway {stream_id}", f"c=IN IP4 {host}", "t=0 0"]
    for kind, port, attrs in media:
        mtype = "audio" if kind == "audio" else "video"
        pt = next(a.split(":", 1)[1].split()[0] for a in attrs if a.startswith("a=rtpmap:"))
        lines.append(f"m={mtype} {port} RTP/AVP {pt}")
        lines.append(f"a=label:{kind}")
        lines.extend("\r\n".join(attrs).split("\r\n"))
        lines.append("a=recvonly")
    return "\r\n".join(lines) + "\r\n"


def h264_attrs(payload_type: int, sps: bytes = b"", pps: bytes = b"") -> list[str]:
    attrs = [f"a=rtpmap:{payload_type} H264/90000"]
    fmtp = f"a=fmtp:{payload_type} packetization-mode=1"
    if sps and pps:
        import base64

        fmtp += f";profile-level-id={sps[1:4].hex()};sprop-parameter-sets={base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"
    attrs.append(fmtp)
    return attrs


def sdp_path(sdp_dir: str, stream_id: str) -> str:
    """``<sdp_dir>/<stream id with unsafe characters replaced>.sdp``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", stream_id)[:120] or "stream"
    return os.path.join(sdp_dir, safe + ".sdp")


def write_sdp(path: str, text: str) -> None:
    """Write atomically (a receiver polling for the file never reads half of it)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(text)
    os.replace(tmp, path)
