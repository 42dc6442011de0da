"""Video and screen-share demultiplexing: H.264 access units, key frames, SPS/PPS, resolutions; decode.

The native listener already writes every video/share message into its shared-memory record ring
as received (key frames flagged). This module is what the gateway does *besides* that, off the
audio hot path (see :mod:`gateway.extras`-style followers in :mod:`gateway.udp`):

* :class:`VideoDemux` turns a kind's messages into :class:`AccessUnit` objects: H.264 Annex-B
  chunks are split into access units (PROTOCOL.md 4.2 leaves Zoom's framing unconfirmed, so a
  message holding several, or half of one, is handled), key frames are detected (IDR slice, or
  SPS+PPS followed by an I slice), the newest SPS/PPS are cached so a consumer joining late can
  start at the next key frame, and the picture size is read from the SPS (or the JPEG SOF / PNG
  IHDR header). A size change is *announced* through ``on_format`` (an event record), never fatal.
* :class:`FrameDecoder` decodes access units with PyAV on its own thread behind a bounded queue
  (full queue = counted drop, the producer never waits) into RGB or YUV numpy arrays.
* :class:`DecodedFramePublisher` stores decoded pictures in a shared-memory record ring of their
  own (stream id ``<stream_id>/decoded``) that :mod:`gateway.client` reads as numpy arrays.
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ConfigError
from .protocol import Codec

log = logging.getLogger(__name__)

__all__ = [
    "AccessUnit",
    "AccessUnitSplitter",
    "DecodedFrame",
    "DecodedFramePublisher",
    "FrameDecoder",
    "VideoConfig",
    "VideoDemux",
    "decoded_header",
    "image_size",
    "iter_nals",
    "parse_decoded",
    "sps_size",
]

# H.264 NAL unit types (ITU-T H.264 table 7-1) used here.
NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 6, 7, 8, 9
_VCL = frozenset(range(1, 6))
_START = b"\x00\x00\x01"

#: Decoded-frame record header: magic, width, height, pixel format code, frame number, source ts.
_DECODED_HEADER = struct.Struct("<4sIIIqq")
DECODED_MAGIC = b"RTDF"
PIXEL_FORMATS = {"rgb24": 1, "yuv420p": 2}
_PIXEL_NAMES = {v: k for k, v in PIXEL_FORMATS.items()}


@dataclass(frozen=True, slots=True)
class VideoConfig:
    """``[video]`` settings: what the gateway does with frames besides storing them."""

    #: follow video/share rings (demux, format events); implied by ``decode`` and UDP video.
    demux: bool = True
    #: decode frames into a raw-frame ring ``<stream_id>/decoded`` (costs CPU; off by default).
    decode: bool = False
    #: "rgb24" or "yuv420p" (planar Y, U, V one after another).
    pixel_format: str = "rgb24"
    #: kinds decoded: "video", "share" or both.
    decode_kinds: tuple[str, ...] = ("video",)
    #: access units waiting for the decoder; more are dropped (counted), never waited for.
    decode_queue: int = 8
    #: bytes of the decoded-frame ring (a 1280x720 RGB picture is 2.7 MB).
    decoded_ring_bytes: int = 32 * 1024 * 1024
    #: how often the follower thread reads new frames (ms); it never touches the audio path.
    follow_interval_ms: int = 20

    def __post_init__(self) -> None:
        if self.pixel_format not in PIXEL_FORMATS:
            raise ConfigError(f"video.pixel_format must be one of {sorted(PIXEL_FORMATS)}, got {self.pixel_format!r}")
        if self.decode_queue < 1:
            raise ConfigError("video.decode_queue must be at least 1")
        if self.follow_interval_ms < 1:
            raise ConfigError("video.follow_interval_ms must be at least 1")
        for kind in self.decode_kinds:
            if kind not in ("video", "share"):
                raise ConfigError(f"video.decode_kinds: unknown kind {kind!r}")


# --------------------------------------------------------------------------- NAL parsing


def iter_nals(data: bytes | memoryview) -> list[tuple[int, int]]:
    """``(start, end)`` of every NAL unit of an Annex-B buffer, start codes excluded.

    Trailing zero bytes before the next start code (a 4-byte start code's leading zero) are not
    part of a NAL. Bytes before the first start code are ignored.
    """
    buf = bytes(data) if not isinstance(data, bytes) else data
    out: list[tuple[int, int]] = []
    i = buf.find(_START)
    while i >= 0:
        start = i + 3
        nxt = buf.find(_START, start)
        end = len(buf) if nxt < 0 else nxt
        while end > start and buf[end - 1] == 0 and nxt >= 0:
            end -= 1
        if end > start:
            out.append((start, end))
        i = nxt
    return out


def _unescape(nal: bytes) -> bytes:
    """RBSP of a NAL: emulation-prevention bytes (00 00 03) removed."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in nal else nal


class _Bits:
    """Exp-Golomb bit reader over an RBSP (what SPS parsing needs, nothing more)."""

    __slots__ = ("left", "value")

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def u(self, n: int) -> int:
        if n > self.left:
            raise ValueError("SPS truncated")
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _skip_scaling_list(b: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + b.se() + 256) % 256
        last = nxt or last


def sps_size(sps: bytes) -> tuple[int, int]:
    """Picture (width, height) from an SPS NAL (header byte included), cropping applied."""
    b = _Bits(_unescape(sps[1:]))
    profile = b.u(8)
    b.u(16)  # constraint flags + level
    b.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = b.ue()
        if chroma == 3:
            b.u(1)
        b.ue()
        b.ue()
        b.u(1)
        if b.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if b.u(1):
                    _skip_scaling_list(b, 16 if i < 6 else 64)
    b.ue()  # log2_max_frame_num_minus4
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()
    elif poc_type == 1:
        b.u(1)
        b.se()
        b.se()
        for _ in range(b.ue()):
            b.se()
    b.ue()  # max_num_ref_frames
    b.u(1)
    width_mbs = b.ue() + 1
    height_units = b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)
    b.u(1)  # direct_8x8_inference
    width, height = width_mbs * 16, height_units * 16 * (2 - frame_mbs_only)
    if b.u(1):  # frame_cropping_flag
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        crop_x = 1 if chroma == 0 or chroma == 3 else 2
        crop_y = (1 if chroma in (0, 2, 3) else 2) * (2 - frame_mbs_only)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    return width, height


def image_size(codec: int, data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) of a JPEG (SOF marker) or PNG (IHDR) image; None if not found."""
    buf = bytes(data[:65536]) if codec == Codec.JPG else bytes(data[:32])
    if codec == Codec.PNG:
        if len(buf) >= 24 and buf[:8] == b"\x89PNG\r\n\x1a\n" and buf[12:16] == b"IHDR":
            w, h = struct.unpack_from(">II", buf, 16)
            return w, h
        return None
    i = 2
    while i + 9 <= len(buf):
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        seg_len = struct.unpack_from(">H", buf, i + 2)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack_from(">HH", buf, i + 5)
            return w, h
        i += 2 + seg_len
    return None


def _first_mb_zero(nal: bytes, start: int) -> bool:
    """Whether a slice NAL starts a new picture (first_mb_in_slice == 0: its first bit is 1)."""
    return start + 1 < len(nal) and bool(nal[start + 1] & 0x80)


# --------------------------------------------------------------------------- access units


@dataclass(slots=True)
class AccessUnit:
    """One coded picture: Annex-B bytes (4-byte start codes), the NAL spans, key flag."""

    timestamp_ms: int
    user_id: int
    data: bytes
    nals: list[tuple[int, int]]
    key: bool
    #: the picture's size when known (from the SPS in force or the image header).
    width: int = 0
    height: int = 0


class AccessUnitSplitter:
    """Annex-B chunks -> complete access units (H.264 7.4.1.2.3 boundaries).

    A new access unit starts at an AUD, SPS, PPS or SEI after a slice, or at a slice whose
    first_mb_in_slice is 0 after a slice. The end of a message that held a slice is taken as the
    end of its access unit (``flush_at_message_end``, Zoom sends pictures whole as far as anyone
    has seen); turn it off for byte streams cut anywhere.
    """

    def __init__(self, *, flush_at_message_end: bool = True) -> None:
        self.flush_at_message_end = flush_at_message_end
        self._pending: list[bytes] = []  # NALs of the unit being assembled
        self._has_vcl = False
        self._carry = b""  # an unfinished NAL when messages are cut mid-NAL
        self.split_units = 0  # messages that held more than one access unit
        self.joined_units = 0  # access units assembled from more than one message

    def feed(self, chunk: bytes) -> list[list[bytes]]:
        """NAL lists of every access unit completed by ``chunk``."""
        data = self._carry + chunk if self._carry else chunk
        self._carry = b""
        spans = iter_nals(data)
        if not self.flush_at_message_end and spans:
            last = spans.pop()  # may continue in the next message
            self._carry = b"\x00\x00\x01" + data[last[0] : last[1]]
        out: list[list[bytes]] = []
        carried_in = bool(self._pending)
        for s, e in spans:
            self._push(data[s:e], out)
        if self.flush_at_message_end and self._has_vcl:
            out.append(self._pending)
            self._pending, self._has_vcl = [], False
        if len(out) > 1:
            self.split_units += len(out) - 1
        if carried_in and out:
            self.joined_units += 1
        return out

    def flush(self) -> list[list[bytes]]:
        """End of stream: whatever is held back, as a last access unit (if it has a picture)."""
        carry, self._carry = self._carry, b""
        out: list[list[bytes]] = []
        for s, e in iter_nals(carry):
            self._push(carry[s:e], out)
        if self._has_vcl:
            out.append(self._pending)
        self._pending, self._has_vcl = [], False
        return out

    def _push(self, nal: bytes, out: list[list[bytes]]) -> None:
        t = nal[0] & 0x1F
        boundary = self._has_vcl and (t in (NAL_AUD, NAL_SPS, NAL_PPS, NAL_SEI) or (t in _VCL and _first_mb_zero(nal, 0)))
        if boundary:
            out.append(self._pending)
            self._pending, self._has_vcl = [], False
        self._pending.append(nal)
        self._has_vcl |= t in _VCL


@dataclass(slots=True)
class _KindState:
    codec: int
    splitter: AccessUnitSplitter = field(default_factory=AccessUnitSplitter)
    sps: bytes = b""
    pps: bytes = b""
    width: int = 0
    height: int = 0
    seen_key: bool = False


class VideoDemux:
    """Per stream and kind ("video"/"share"): messages in, access units out, formats announced.

    ``on_format(record)`` receives a ``video_format`` event record whenever a kind's picture size
    is first known or changes (and when the SPS/PPS change), with the parameter sets in base64 so
    a consumer that attaches late can configure its decoder before the next key frame.
    """

    def __init__(self, on_format: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.on_format = on_format
        self._kinds: dict[str, _KindState] = {}
        self.frames = 0
        self.key_frames = 0
        self.bytes = 0
        self.resolution_changes = 0
        self.before_key = 0  # H.264 units that came before any key frame (undecodable alone)
        self.bad_headers = 0

    def configure(self, kind: str, codec: int) -> None:
        self._kinds[kind] = _KindState(int(codec))

    def parameter_sets(self, kind: str) -> tuple[bytes, bytes]:
        """The newest (SPS, PPS) NALs of a kind (empty until seen)."""
        st = self._kinds.get(kind)
        return (st.sps, st.pps) if st is not None else (b"", b"")

    def size(self, kind: str) -> tuple[int, int]:
        st = self._kinds.get(kind)
        return (st.width, st.height) if st is not None else (0, 0)

    def feed(self, kind: str, user_id: int, timestamp_ms: int, data: bytes | memoryview) -> list[AccessUnit]:
        """One message of ``kind``: the access units it completes (JPEG/PNG: the image itself)."""
        st = self._kinds.get(kind)
        if st is None:
            st = self._kinds[kind] = _KindState(int(Codec.H264) if _looks_annexb(data) else int(Codec.JPG))
        self.bytes += len(data)
        if st.codec != Codec.H264:
            img = bytes(data)
            size = image_size(st.codec, img)
            if size is None:
                self.bad_headers += 1
            else:
                self._set_size(kind, st, size, timestamp_ms, user_id)
            self.frames += 1
            self.key_frames += 1
            return [AccessUnit(timestamp_ms, user_id, img, [], True, st.width, st.height)]
        units = []
        for nals in st.splitter.feed(bytes(data)):
            units.append(self._unit(kind, st, user_id, timestamp_ms, nals))
        return units

    def _unit(self, kind: str, st: _KindState, user_id: int, ts: int, nals: list[bytes]) -> AccessUnit:
        key = False
        new_ps = False
        for nal in nals:
            t = nal[0] & 0x1F
            if t == NAL_SPS:
                if nal != st.sps:
                    st.sps, new_ps = nal, True
            elif t == NAL_PPS:
                if nal != st.pps:
                    st.pps, new_ps = nal, True
            elif t == NAL_IDR:
                key = True
        if new_ps and st.sps:
            try:
                self._set_size(kind, st, sps_size(st.sps), ts, user_id, force=True)
            except ValueError:
                self.bad_headers += 1
        if key and not any(n[0] & 0x1F == NAL_SPS for n in nals) and st.sps and st.pps:
            nals = [st.sps, st.pps, *nals]  # make every key unit decodable on its own
        parts = []
        spans = []
        pos = 0
        for nal in nals:
            parts.append(b"\x00\x00\x00\x01")
            parts.append(nal)
            spans.append((pos + 4, pos + 4 + len(nal)))
            pos += 4 + len(nal)
        self.frames += 1
        if key:
            self.key_frames += 1
            st.seen_key = True
        elif not st.seen_key:
            self.before_key += 1
        return AccessUnit(ts, user_id, b"".join(parts), spans, key, st.width, st.height)

    def _set_size(self, kind: str, st: _KindState, size: tuple[int, int], ts: int, user_id: int, *, force: bool = False) -> None:
        changed = size != (st.width, st.height)
        if not changed and not force:
            return
        if changed and st.width:
            self.resolution_changes += 1
        st.width, st.height = size
        if self.on_format is None:
            return
        import base64

        record: dict[str, Any] = {"type": "video_format", "kind": kind, "codec": Codec(st.codec).name, "width": size[0],
                                  "height": size[1], "timestamp": ts, "user_id": user_id, "changed": bool(changed)}
        if st.codec == Codec.H264:
            record["sps"] = base64.b64encode(st.sps).decode()
            record["pps"] = base64.b64encode(st.pps).decode()
        try:
            self.on_format(record)
        except Exception:
            log.exception("video_format listener failed")

    def stats(self) -> dict[str, int]:
        return {"video_frames": self.frames, "video_key_frames": self.key_frames, "video_bytes": self.bytes,
                "video_resolution_changes": self.resolution_changes, "video_before_key": self.before_key,
                "video_bad_headers": self.bad_headers}


def _looks_annexb(data: bytes | memoryview) -> bool:
    head = bytes(data[:4])
    return head[:3] == _START or head == b"\x00\x00\x00\x01"


# --------------------------------------------------------------------------- decoding


@dataclass(slots=True)
class DecodedFrame:
    """One decoded picture (``pixels``: H x W x 3 RGB, or the I420 planes flat for yuv420p)."""

    kind: str
    user_id: int
    timestamp_ms: int
    number: int
    width: int
    height: int
    pixel_format: str
    pixels: np.ndarray

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Y, U, V views of a yuv420p picture."""
        w, h = self.width, self.height
        flat = self.pixels.reshape(-1)
        y = flat[: w * h].reshape(h, w)
        u = flat[w * h : w * h + (w // 2) * (h // 2)].reshape(h // 2, w // 2)
        v = flat[w * h + (w // 2) * (h // 2) :].reshape(h // 2, w // 2)
        return y, u, v


class FrameDecoder:
    """Decodes access units on a worker thread; ``submit`` never blocks (a full queue drops).

    Each kind gets its own PyAV codec context. A stream that starts without a key frame is skipped
    until one arrives (counted in ``skipped``). ``sink(frame)`` is called on the worker thread.
    """

    def __init__(self, sink: Callable[[DecodedFrame], None], *, pixel_format: str = "rgb24", queue_size: int = 8) -> None:
        if pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"unknown pixel format {pixel_format!r}")
        self.sink = sink
        self.pixel_format = pixel_format
        self._queue: queue.Queue[tuple[str, int, AccessUnit] | None] = queue.Queue(maxsize=queue_size)
        self._contexts: dict[str, Any] = {}
        self._keyed: set[str] = set()
        self.submitted = 0
        self.dropped = 0
        self.decoded = 0
        self.skipped = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="gateway-video-decode", daemon=True)
        self._thread.start()

    def submit(self, kind: str, codec: int, unit: AccessUnit) -> bool:
        """Queue one unit for decoding; False (and counted) when the decoder is behind."""
        try:
            self._queue.put_nowait((kind, codec, unit))
        except queue.Full:
            self.dropped += 1
            self._keyed.discard(kind)  # a dropped H.264 unit breaks references: wait for a key
            return False
        self.submitted += 1
        return True

    def _context(self, kind: str, codec: int) -> Any:
        ctx = self._contexts.get(kind)
        if ctx is None:
            import av

            name = {Codec.H264: "h264", Codec.JPG: "mjpeg", Codec.PNG: "png"}[Codec(codec)]
            ctx = self._contexts[kind] = av.CodecContext.create(name, "r")
        return ctx

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, codec, unit = item
            if codec == Codec.H264 and kind not in self._keyed:
                if not unit.key:
                    self.skipped += 1
                    continue
                self._keyed.add(kind)
            try:
                self._decode(kind, codec, unit)
            except Exception as exc:  # a corrupt unit must not end decoding of the stream
                self.errors += 1
                self._keyed.discard(kind)
                log.debug("decode failed: %s", exc)

    def _decode(self, kind: str, codec: int, unit: AccessUnit) -> None:
        import av

        ctx = self._context(kind, codec)
        for frame in ctx.decode(av.Packet(unit.data)):
            if self.pixel_format == "rgb24":
                pixels = frame.to_ndarray(format="rgb24")
            else:
                pixels = frame.reformat(format="yuv420p").to_ndarray().reshape(-1)
            self.decoded += 1
            self.sink(DecodedFrame(kind, unit.user_id, unit.timestamp_ms, self.decoded, frame.width, frame.height, self.pixel_format, pixels))

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued (bounded wait) and stop the thread."""
        while True:
            try:
                self._queue.put(None, timeout=timeout)
                break
            except queue.Full:
                self.dropped += 1
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
        self._thread.join(timeout)

    def stats(self) -> dict[str, int]:
        return {"decode_submitted": self.submitted, "decode_dropped": self.dropped, "decoded": self.decoded,
                "decode_skipped": self.skipped, "decode_errors": self.errors}


def decoded_header(frame: DecodedFrame) -> bytes:
    """The 40-byte header stored before a decoded picture's pixels in the raw-frame ring."""
    return _DECODED_HEADER.pack(DECODED_MAGIC, frame.width, frame.height, PIXEL_FORMATS[frame.pixel_format], frame.number, frame.timestamp_ms)


def parse_decoded(record: np.ndarray | bytes) -> tuple[int, int, str, int, np.ndarray]:
    """A raw-frame ring record -> (width, height, pixel_format, number, pixels view).

    RGB pixels come back as H x W x 3; yuv420p as the flat I420 buffer.
    """
    buf = np.frombuffer(record, dtype=np.uint8) if isinstance(record, bytes) else record
    magic, w, h, fmt, number, _ts = _DECODED_HEADER.unpack_from(buf[: _DECODED_HEADER.size].tobytes())
    if magic != DECODED_MAGIC:
        raise ValueError("not a decoded-frame record")
    body = buf[_DECODED_HEADER.size :]
    name = _PIXEL_NAMES[fmt]
    pixels = body.reshape(h, w, 3) if name == "rgb24" else body
    return w, h, name, number, pixels


class DecodedFramePublisher:
    """Decoded pictures into a shared-memory record ring of their own: ``<stream_id>/decoded``.

    Records: :func:`decoded_header` + pixels; ``Frame.flags`` low bit 1 = video, 2 = share (in
    the record's user id field: the sender). Read with ``client.attach(stream_id + "/decoded")
    .video()`` and :func:`parse_decoded`.
    """

    def __init__(self, stream_id: str, directory: Any, ring_bytes: int) -> None:
        from . import shm
        from .protocol import VideoParams

        cfg = shm.ShmConfig(prefix=directory.config.prefix, shm_dir=directory.config.shm_dir, group=directory.config.group,
                            video_bytes=ring_bytes, event_bytes=4096)
        self.publisher = shm.ShmPublisher(stream_id + "/decoded", directory, config=cfg, video=VideoParams(codec=Codec.H264),
                                          info={"decoded_from": stream_id})
        # Closed by its follower, never by the directory's shutdown sweep (which could unmap it under
        # the decoder thread); the directory slot itself is only ever changed on the event loop.
        directory.publishers.pop(self.publisher.segment, None)
        self._lock = threading.Lock()
        self._closing = False
        self.written = 0
        self.too_large = 0

    def __call__(self, frame: DecodedFrame) -> None:
        data = decoded_header(frame) + frame.pixels.tobytes()
        flags = 1 if frame.kind == "video" else 2
        with self._lock:
            if self._closing or self.publisher.closed:
                return
            if self.publisher.write_record(1, flags, frame.user_id, frame.timestamp_ms, data):
                self.written += 1
            else:
                self.too_large += 1

    def close(self, loop: Any = None) -> None:
        """Stop writing; end and unlink the segment on ``loop`` (the directory's thread) when given."""
        with self._lock:
            self._closing = True
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.publisher.close)
                return
            except RuntimeError:
                pass
        self.publisher.close()


# --------------------------------------------------------------------------- stream follower


class MediaFollower:
    """Follows one stream's own shared-memory rings off the hot path: demux, decode, RTP.

    The native listener writes media straight into the rings and knows nothing of this; a
    :class:`FollowerThread` calls :meth:`poll` every few milliseconds, which reads what was
    committed since (through :mod:`gateway.client`, like any consumer) and feeds the
    :class:`VideoDemux`, the :class:`FrameDecoder` and the RTP senders. Audio therefore never
    waits for video work: the worst a slow follower does is fall behind and count what it lost.
    Events it produces (``video_format``) are handed to ``publish_event`` on the event loop.
    """

    def __init__(self, publisher: Any, *, video_cfg: VideoConfig, udp_cfg: Any = None, params: Any = None,
                 directory: Any = None, loop: Any = None) -> None:
        from . import client

        self.publisher = publisher
        self.stream_id: str = publisher.stream_id
        self.video_cfg = video_cfg
        self.udp_cfg = udp_cfg
        self._loop = loop
        self._lock = threading.Lock()
        self.closed = False
        self.reader = client.StreamReader(publisher.path)
        self.demux = VideoDemux(on_format=self._format_event)
        self.lost_frames = 0
        self.lost_audio_frames = 0
        self._frames: dict[str, Any] = {}  # kind -> FrameReader
        self._codecs: dict[str, int] = {}
        for kind, p, opener in (("video", getattr(params, "video", None), self.reader.video),
                                ("share", getattr(params, "deskshare", None), self.reader.share)):
            if p is not None:
                self._frames[kind] = opener()
                self._codecs[kind] = int(p.codec)
                self.demux.configure(kind, int(p.codec))
        self.decoder: FrameDecoder | None = None
        self.decoded: DecodedFramePublisher | None = None
        if video_cfg.decode and directory is not None and any(k in self._frames for k in video_cfg.decode_kinds):
            self.decoded = DecodedFramePublisher(self.stream_id, directory, video_cfg.decoded_ring_bytes)
            self.decoder = FrameDecoder(self.decoded, pixel_format=video_cfg.pixel_format, queue_size=video_cfg.decode_queue)
        self._audio_params = getattr(params, "audio", None)
        self._audio_reader: Any = None
        self._raw_audio: Any = None
        self.audio_rtp: Any = None
        self.video_rtp: dict[str, Any] = {}
        self.ports: Any = None
        self.sdp_path: str | None = None
        self._video_origin: int | None = None
        self._sdp_sets: tuple[bytes, bytes] | None = None
        if udp_cfg is not None and udp_cfg.enabled:
            self._setup_udp()

    # -- UDP ---------------------------------------------------------------------------------------

    def _setup_udp(self) -> None:
        from . import udp

        cfg = self.udp_cfg
        kinds = [k for k in cfg.kinds if (k == "audio" and self._audio_params is not None)
                 or (k in self._frames and self._codecs[k] == Codec.H264)]
        skipped = [k for k in cfg.kinds if k in self._frames and self._codecs[k] != Codec.H264]
        if skipped:
            log.warning("stream %s: RTP republishing of JPEG/PNG %s is not supported (H.264 only)", self.stream_id, skipped)
        self.ports = udp.allocate_ports(cfg, kinds)
        for kind in kinds:
            dest = (cfg.host, self.ports.ports[kind])
            if kind == "audio":
                codec, rate, channels = self._audio_format()
                self.audio_rtp = udp.AudioRtp(codec, rate, channels, dest, cfg)
            else:
                pt = udp.PT_VIDEO if kind == "video" else udp.PT_SHARE
                self.video_rtp[kind] = udp.RtpSender(pt, udp.H264_CLOCK, dest, bind=cfg.bind, mtu=cfg.mtu)
        if cfg.sdp_dir:
            self.sdp_path = udp.sdp_path(cfg.sdp_dir, self.stream_id)
            self._write_sdp()

    def _audio_format(self) -> tuple[int, int, int]:
        """(codec, rate, channels) of the segment's audio: what the rings hold, which is L16 when an
        audio engine decodes G.711/G.722/Opus in front of the publisher, else the negotiated codec."""
        a = self._audio_params
        r = self.reader
        return (int(r.audio_codec or a.codec), int(r.audio_rate or a.rate_hz), int(r.audio_channels or a.channel))

    def _write_sdp(self) -> None:
        from . import udp

        if self.sdp_path is None:
            return
        media: list[tuple[str, int, list[str]]] = []
        if self.audio_rtp is not None:
            media.append(("audio", self.ports.ports["audio"], [self.audio_rtp.rtpmap()]))
        for kind, sender in self.video_rtp.items():
            sps, pps = self.demux.parameter_sets(kind)
            media.append((kind, self.ports.ports[kind], udp.h264_attrs(sender.payload_type, sps, pps)))
        try:
            udp.write_sdp(self.sdp_path, udp.sdp_for(self.stream_id, self.udp_cfg.host, media))
        except OSError as exc:
            log.error("stream %s: cannot write SDP %s: %s", self.stream_id, self.sdp_path, exc)

    # -- polling (follower thread) -------------------------------------------------------------------

    def poll(self) -> int:
        """Read and process everything committed since the last call; returns the items handled."""
        with self._lock:
            if self.closed:
                return 0
            return self._poll()

    def _poll(self) -> int:
        done = 0
        for kind, frames_reader in self._frames.items():
            if frames_reader.write_seq == frames_reader.cursor:
                continue  # nothing new: the common case, kept to one shared-memory load
            frames, _, lost = frames_reader.read_since()
            self.lost_frames += lost
            for f in frames:
                data = f.data.tobytes()
                if not frames_reader.intact(f):
                    self.lost_frames += 1
                    continue
                done += 1
                for unit in self.demux.feed(kind, f.user_id, f.timestamp_ms, data):
                    self._unit(kind, unit)
        if self.audio_rtp is not None:
            done += self._poll_audio()
        return done

    def _media_origin(self, ts: int) -> int:
        origin = self.reader.origin_ms
        if origin is None:
            if self._video_origin is None:
                self._video_origin = ts
            origin = self._video_origin
        for sender in self.video_rtp.values():
            sender.origin_ms = origin
        return origin

    def _unit(self, kind: str, unit: AccessUnit) -> None:
        codec = self._codecs.get(kind, int(Codec.H264))
        if self.decoder is not None and kind in self.video_cfg.decode_kinds:
            self.decoder.submit(kind, codec, unit)
        sender = self.video_rtp.get(kind)
        if sender is not None:
            if unit.key and self.sdp_path is not None and unit.nals:
                sps, pps = self.demux.parameter_sets(kind)
                if sps and self._sdp_sets != (sps, pps):
                    self._sdp_sets = (sps, pps)
                    self._write_sdp()
            sender.send_access_unit(unit.data, unit.nals, (unit.timestamp_ms - self._media_origin(unit.timestamp_ms)) * 90)

    def _poll_audio(self) -> int:
        from .client import StreamEnded

        if self.audio_rtp.codec != Codec.L16:
            if self._raw_audio is None:
                try:
                    self._raw_audio = self.reader.raw_audio()
                except KeyError:
                    return 0
            recs, _, lost = self._raw_audio.read_since()
            self.lost_audio_frames += lost
            origin = self.reader.origin_ms
            self.audio_rtp.sender.origin_ms = origin
            n = 0
            for r in recs:
                if r.user_id != self.udp_cfg.audio_user:
                    continue
                payload = r.data.tobytes()
                if self._raw_audio.intact(r):
                    self.audio_rtp.send_raw(r.timestamp_ms - (origin if origin is not None else r.timestamp_ms), payload)
                    n += 1
            return n
        if self._audio_reader is None:
            try:
                self._audio_reader = self.reader.audio(self.udp_cfg.audio_user)
            except KeyError:
                return 0
        if self._audio_reader.write_index == self._audio_reader.cursor:
            return 0
        try:
            pcm, end, lost, _gaps = self._audio_reader.read_since()
        except StreamEnded:  # the ring was given to another participant: find ours again
            self._audio_reader = None
            return 0
        self.lost_audio_frames += lost
        if self.audio_rtp.sender.origin_ms is None:
            self.audio_rtp.sender.origin_ms = self.reader.origin_ms
        if len(pcm):
            frames = pcm.shape[0]
            chunk = np.array(pcm, copy=True)
            if not self._audio_reader.intact(end - frames):
                self.lost_audio_frames += frames
                return 0
            self.audio_rtp.send_pcm(end - frames, chunk)
        return 1 if len(pcm) else 0

    # -- events ------------------------------------------------------------------------------------

    def _format_event(self, record: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None:
            self._publish(record)
            return
        try:
            loop.call_soon_threadsafe(self._publish, record)
        except RuntimeError:  # loop closed at shutdown
            pass

    def _publish(self, record: dict[str, Any]) -> None:
        if not getattr(self.publisher, "closed", True):
            self.publisher.publish_event(record)

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Final drain, then stop the decoder, close sockets, remove the SDP file."""
        with self._lock:
            if self.closed:
                return
            try:
                self._poll()
            except Exception:
                log.debug("final follower drain failed", exc_info=True)
            self.closed = True
        if self.decoder is not None:
            self.decoder.close()
        if self.decoded is not None:
            self.decoded.close(self._loop)
        if self.audio_rtp is not None:
            self.audio_rtp.sender.close()
        for s in self.video_rtp.values():
            s.close()
        if self.ports is not None:
            from . import udp

            udp.release_ports(self.ports)
        if self.sdp_path is not None:
            try:
                os.unlink(self.sdp_path)
            except OSError:
                pass
        self.reader.close()
        log.info("stream %s: media follower done: %s", self.stream_id, self.stats())

    def stats(self) -> dict[str, int]:
        out = dict(self.demux.stats())
        out["video_follower_lost"] = self.lost_frames
        if self.decoder is not None:
            out.update(self.decoder.stats())
        if self.audio_rtp is not None:
            out.update({f"rtp_audio_{k}": v for k, v in self.audio_rtp.sender.stats().items()})
            out["rtp_audio_lost_frames"] = self.lost_audio_frames
        for kind, s in self.video_rtp.items():
            out.update({f"rtp_{kind}_{k}": v for k, v in s.stats().items()})
        return out


class FollowerThread:
    """One thread polling every registered :class:`MediaFollower` every ``interval_s``.

    It runs while it has followers: the first :meth:`add` starts it, and it exits once the last
    follower is gone (a follower whose stream ended closes itself and leaves).
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self._followers: list[MediaFollower] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def add(self, follower: MediaFollower) -> None:
        with self._lock:
            self._followers.append(follower)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="gateway-media-follower", daemon=True)
                self._thread.start()

    def remove(self, follower: MediaFollower) -> None:
        with self._lock:
            if follower in self._followers:
                self._followers.remove(follower)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            with self._lock:
                current = list(self._followers)
                if not current:
                    self._thread = None
                    return
            for f in current:
                try:
                    f.poll()
                    if f.reader.ended:  # the publisher closed: last drain, then leave
                        f.close()
                except Exception:
                    self.errors += 1
                    log.exception("media follower of stream %s failed", f.stream_id)
                    f.close()
                if f.closed:
                    self.remove(f)

    def join(self, timeout: float = 5.0) -> None:
        """Wait until every follower has left and the thread has exited (tests, shutdown)."""
        t = self._thread
        if t is not None:
            t.join(timeout)


_THREADS: dict[int, FollowerThread] = {}


def follower_thread(interval_ms: int) -> FollowerThread:
    """The process's follower thread for this polling interval."""
    t = _THREADS.get(interval_ms)
    if t is None:
        t = _THREADS[interval_ms] = FollowerThread(interval_ms / 1000.0)
    return t


def with_media_extras(factory: Callable[[Any], Any], config: Any, directory: Callable[[], Any]) -> Callable[[Any], Any]:
    """Wrap the app's sink factory: each stream's publisher gets a :class:`MediaFollower` when
    ``[video]`` work (video/share negotiated) or ``[udp]`` is configured. The sink itself is
    returned unchanged (a NativeSink stays one); the follower reads the publisher's rings and
    ends itself when the stream's segment is marked ended.
    """
    import asyncio

    video_cfg: VideoConfig = config.video
    udp_cfg = config.udp
    params = config.sessions.build_media_params()
    wants_video = (params.video is not None or params.deskshare is not None) and (video_cfg.demux or video_cfg.decode)
    if not (wants_video or udp_cfg.enabled):
        return factory

    def make(event: Any) -> Any:
        sink = factory(event)
        publisher = sink if hasattr(sink, "path") and hasattr(sink, "publish_event") else getattr(sink, "publisher", None)
        if publisher is None or not hasattr(publisher, "path"):
            return sink  # not a shared-memory sink (e.g. publish.shm = false): nothing to follow
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        try:
            follower = MediaFollower(publisher, video_cfg=video_cfg, udp_cfg=udp_cfg, params=params, directory=directory(), loop=loop)
        except Exception:
            close = getattr(sink, "close", None)
            if callable(close):
                close()
            raise
        publisher.media_follower = follower  # its counters appear in /streams under "media_follower"
        follower_thread(video_cfg.follow_interval_ms).add(follower)
        return sink

    return make
