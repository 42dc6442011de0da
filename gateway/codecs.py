"""Audio decoders for every RTMS audio codec, feeding the audio engine int16 frames.

L16 needs no decoder (the engine copies the bytes straight into its staging ring). G.711 A-law
and mu-law are 256-entry table look-ups run by a native kernel. G.722 and Opus go through PyAV
(FFmpeg's ``g722`` and ``libopus``, falling back to FFmpeg's own ``opus``); these are stateful, so
the engine keeps one decoder per participant.

A decoder never raises into the stream: a payload it cannot decode is counted in ``errors`` and
``decode`` returns ``None`` (the engine then leaves a marked gap where the packet would have been).
Output is interleaved int16 in a buffer the decoder may reuse: valid until its next ``decode``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import av
import numpy as np

from . import _native
from .protocol import AudioParams, Codec

__all__ = [
    "ALAW_TABLE",
    "ULAW_TABLE",
    "AVDecoder",
    "Decoder",
    "TableDecoder",
    "make_decoder",
]

log = logging.getLogger("gateway.codecs")


def _alaw_table() -> np.ndarray:
    """ITU-T G.711 A-law code -> 16-bit linear sample (13-bit magnitude scaled by 8)."""
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _ulaw_table() -> np.ndarray:
    """ITU-T G.711 mu-law code -> 16-bit linear sample (14-bit magnitude scaled by 4)."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


#: Decode tables (read-only), indexed by the code byte.
ALAW_TABLE: np.ndarray = _alaw_table()
ULAW_TABLE: np.ndarray = _ulaw_table()
ALAW_TABLE.flags.writeable = False
ULAW_TABLE.flags.writeable = False


class Decoder(Protocol):
    """One participant's decoder: payload in, interleaved int16 frames out (or ``None``)."""

    channels: int
    errors: int

    def decode(self, data: Any) -> np.ndarray | None:
        """Decode one packet; ``None`` (and ``errors`` += 1) when it cannot be decoded."""


class TableDecoder:
    """G.711 (A-law or mu-law): one byte per sample through a 256-entry table, mono."""

    __slots__ = ("_out", "_table", "channels", "errors")

    def __init__(self, table: np.ndarray, max_samples: int = 8000) -> None:
        self._table = table
        self._out = np.zeros(max_samples, dtype=np.int16)
        self.channels = 1
        self.errors = 0

    def decode(self, data: Any) -> np.ndarray | None:
        n = len(data)
        if n == 0:
            self.errors += 1
            return None
        if n > len(self._out):
            self._out = np.zeros(n, dtype=np.int16)
        _native.audio_table_decode(data, self._table, self._out)
        return self._out[:n]


class AVDecoder:
    """G.722 or Opus through PyAV; output converted to interleaved int16 with ``channels``."""

    __slots__ = ("_ctx", "_name", "channels", "errors", "rate_hz")

    def __init__(self, codec_names: tuple[str, ...], rate_hz: int, channels: int) -> None:
        last: Exception | None = None
        for name in codec_names:
            try:
                ctx: Any = av.CodecContext.create(name, "r")
                break
            except (av.error.FFmpegError, ValueError) as exc:  # codec missing from this FFmpeg build
                last = exc
        else:
            raise RuntimeError(f"no FFmpeg decoder among {codec_names}") from last
        ctx.sample_rate = rate_hz
        ctx.layout = "stereo" if channels == 2 else "mono"
        self._ctx = ctx
        self._name = ctx.name
        self.rate_hz = rate_hz
        self.channels = channels
        self.errors = 0

    def decode(self, data: Any) -> np.ndarray | None:
        if len(data) == 0:  # an empty packet would mean "flush" to FFmpeg
            self.errors += 1
            return None
        try:
            frames = self._ctx.decode(av.Packet(bytes(data)))
        except (av.error.FFmpegError, ValueError) as exc:
            self.errors += 1
            if self.errors == 1:
                log.warning("%s: undecodable audio packet (%s); counting further ones quietly", self._name, exc)
            return None
        if not frames:
            self.errors += 1
            return None
        parts = [self._to_int16(f) for f in frames]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _to_int16(self, frame: Any) -> np.ndarray:
        arr = frame.to_ndarray()
        planar = frame.format.is_planar
        nch = len(frame.layout.channels)
        if arr.dtype != np.int16:  # float formats (FFmpeg's native opus decodes to fltp)
            arr = np.clip(np.rint(arr * 32768.0), -32768, 32767).astype(np.int16)
        pcm = arr.T if planar else arr.reshape(-1, nch)  # (frames, channels)
        if nch != self.channels:
            pcm = pcm[:, :1].repeat(2, axis=1) if self.channels == 2 else ((pcm[:, 0].astype(np.int32) + pcm[:, 1]) >> 1)[:, None]
        return np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)


def make_decoder(params: AudioParams, *, ulaw: bool = False) -> Decoder | None:
    """The decoder for negotiated ``params`` (``None`` for L16, which is copied as is).

    ``ulaw``: treat G.711 as mu-law (RTMS documents A-law/PCMA only; mu-law is here if seen).
    """
    codec = params.codec
    if codec == Codec.L16:
        return None
    if codec == Codec.G711:
        return TableDecoder(ULAW_TABLE if ulaw else ALAW_TABLE, max(params.samples_per_packet, 160))
    if codec == Codec.G722:
        return AVDecoder(("g722",), 16000, 1)
    if codec == Codec.OPUS:
        return AVDecoder(("libopus", "opus"), 48000, params.channel)
    raise ValueError(f"not an audio codec: {codec}")
