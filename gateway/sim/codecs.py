"""Encoders for the simulator's synthetic media: G.711 A-law (numpy table), G.722 and Opus (PyAV),
JPEG, PNG and H.264 pictures (PyAV: mjpeg, png, libx264).

Audio codecs are used to pre-encode one-second loops (see :mod:`gateway.sim.content`), never per
packet. Pictures are encoded per frame; JPEG and PNG contexts are intra-only with a fixed quantiser
(no rate control, so a frame's bytes depend only on its picture), H.264 keeps one encoder per
stream and emits one Annex-B access unit per frame.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from gateway.protocol import Codec, Resolution

if TYPE_CHECKING:
    from gateway.sim.content import MeetingContent, ParticipantSpec

__all__ = [
    "H264Encoder",
    "alaw_decode",
    "alaw_encode",
    "encode_picture",
    "g722_loop",
    "opus_loop",
]

# --------------------------------------------------------------------------- G.711 A-law


def _alaw_tables() -> tuple[np.ndarray, np.ndarray]:
    """ITU-T G.711 A-law: encode table for every int16 value, decode table for every code."""
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit linear
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg_ends = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    seg = np.searchsorted(seg_ends, mag)  # first segment whose end >= mag
    shift = np.where(seg < 2, 1, seg)
    aval = (np.minimum(seg, 7) << 4) | ((mag >> shift) & 0xF)
    aval = np.where(seg >= 8, 0x7F, aval)
    encode = (aval ^ mask).astype(np.uint8)

    code = np.arange(256, dtype=np.int32) ^ 0x55
    t = (code & 0xF) << 4
    seg_d = (code & 0x70) >> 4
    t = np.where(seg_d == 0, t + 8, t + 0x108)
    t = np.where(seg_d > 1, t << np.maximum(seg_d - 1, 0), t)
    decode = np.where(code & 0x80, t, -t).astype(np.int16)
    return encode, decode


_ALAW_ENCODE, _ALAW_DECODE = _alaw_tables()


def alaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> A-law bytes (one byte per sample)."""
    return _ALAW_ENCODE[pcm.astype(np.int32) + 32768].tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """A-law bytes -> int16 samples."""
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


# --------------------------------------------------------------------------- G.722 and Opus loops


def _encode_audio(codec_name: str, pcm: np.ndarray, rate: int, channels: int, frame_samples: int, bit_rate: int | None = None) -> list[bytes]:
    """Encode int16 ``pcm`` (mono samples, duplicated to every channel) in frames of ``frame_samples``."""
    ctx: Any = av.CodecContext.create(codec_name, "w")
    ctx.sample_rate = rate
    ctx.layout = "stereo" if channels == 2 else "mono"
    ctx.format = "s16"
    ctx.time_base = Fraction(1, rate)
    if bit_rate:
        ctx.bit_rate = bit_rate
    if codec_name == "opus":
        ctx.options = {"strict": "experimental"}
    inter = np.repeat(pcm, channels) if channels > 1 else pcm
    out: list[bytes] = []
    for k in range(len(pcm) // frame_samples):
        chunk = inter[k * frame_samples * channels : (k + 1) * frame_samples * channels]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=ctx.layout.name)
        frame.sample_rate = rate
        frame.pts = k * frame_samples
        out.extend(bytes(p) for p in ctx.encode(frame))
    out.extend(bytes(p) for p in ctx.encode(None))
    return out


def g722_loop(pcm_1s: np.ndarray) -> bytes:
    """One second of 16 kHz int16 as G.722 bytes (8000), doubled (16000) for contiguous slicing.

    The second second of a two-second encode is kept, so the loop starts from a warmed-up encoder.
    """
    rate = 16000
    stream = b"".join(_encode_audio("g722", np.tile(pcm_1s, 2), rate, 1, rate // 50))
    second = stream[rate // 2 : rate]
    if len(second) != rate // 2:
        raise RuntimeError(f"G.722 encoder produced {len(stream)} bytes for 2 s")
    return second * 2


def opus_loop(pcm_1s: np.ndarray, channels: int) -> list[bytes]:
    """One second of 48 kHz int16 as 50 Opus packets of 20 ms (second pass of a two-second encode)."""
    rate = 48000
    name = "libopus" if "libopus" in av.codecs_available else "opus"  # FFmpeg's own encoder as a fallback
    packets = _encode_audio(name, np.tile(pcm_1s, 2), rate, channels, rate // 50, 32000 * channels)
    if len(packets) < 100:
        raise RuntimeError(f"Opus encoder produced {len(packets)} packets for 2 s")
    return packets[50:100]


# --------------------------------------------------------------------------- pictures


class H264Encoder:
    """One H.264 stream: libx264, no B frames, one Annex-B access unit out per frame in.

    A key frame (IDR, preceded by SPS and PPS) comes every ``keyint`` frames, on frame indices that
    are multiples of ``keyint``, and on the first frame after a (re)start.
    """

    def __init__(self, width: int, height: int, fps: int, keyint: int) -> None:
        self.keyint = keyint
        ctx: Any = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, max(1, fps))
        ctx.framerate = Fraction(max(1, fps), 1)
        ctx.gop_size = keyint
        ctx.max_b_frames = 0
        ctx.thread_count = 1  # deterministic output, and the simulator runs many streams anyway
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "forced-idr": "1",
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:repeat-headers=1:annexb=1",
        }
        self.ctx = ctx
        self.next_index: int | None = None

    def encode(self, frame: av.VideoFrame, frame_index: int) -> bytes:
        frame.pts = frame_index
        frame.pict_type = av.video.frame.PictureType.I if frame_index % self.keyint == 0 else av.video.frame.PictureType.NONE
        packets = self.ctx.encode(frame)
        self.next_index = frame_index + 1
        return b"".join(bytes(p) for p in packets)


def _image_context(codec: int, width: int, height: int) -> Any:
    if codec == Codec.JPG:
        ctx: Any = av.CodecContext.create("mjpeg", "w")
        ctx.pix_fmt = "yuvj420p"
        ctx.qscale = True  # fixed quantiser: no rate control, no dependence on earlier frames
        ctx.global_quality = 4 * 118  # q=4 (FF_QP2LAMBDA = 118)
    elif codec == Codec.PNG:
        ctx = av.CodecContext.create("png", "w")
        ctx.pix_fmt = "rgb24"
        ctx.options = {"compression_level": "1"}
    else:
        raise ValueError(f"not an image codec: {codec}")
    ctx.width, ctx.height = width, height
    ctx.time_base = Fraction(1, 30)
    return ctx


def picture_size(content: MeetingContent, resolution: int) -> tuple[int, int]:
    """Encoded (width, height): the resolution's size divided by ``content.video_scale``, even."""
    w, h = Resolution(resolution).size
    s = content.video_scale
    return (w // s) & ~1, (h // s) & ~1


def encode_picture(
    content: MeetingContent, kind: str, codec: int, resolution: int, fps: int, frame_index: int, spec: ParticipantSpec, subscribed: int | None
) -> bytes:
    """Draw and encode one picture of ``kind`` ("video" camera or "share" slide) for ``spec``."""
    from gateway.sim import drawing

    width, height = picture_size(content, resolution)
    cache = content._video_encoders
    if codec == Codec.H264:
        key = (kind, codec, width, height, fps, subscribed)
        enc = cache.get(key)
        if enc is None or enc.next_index != frame_index:
            keyint = content.keyframe_interval or max(1, 2 * fps)
            enc = H264Encoder(width, height, fps, keyint)
            cache[key] = enc
        canvas = drawing.canvas(cache, kind, spec, width, height, "yuv420p")
        canvas.draw_counter(frame_index)
        return enc.encode(canvas.frame(), frame_index)
    key = (kind, codec, width, height)
    ctx = cache.get(key)
    if ctx is None:
        ctx = cache[key] = _image_context(codec, width, height)
    fmt = "rgb24" if codec == Codec.PNG else "yuvj420p"
    canvas = drawing.canvas(cache, kind, spec, width, height, fmt)
    canvas.draw_counter(frame_index)
    return b"".join(bytes(p) for p in ctx.encode(canvas.frame()))
