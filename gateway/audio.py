"""The audio engine: one media clock per meeting, jitter handling, marked gaps, mixer, formats.

Data flow (one meeting)::

    MediaSink.on_audio(user_id, name, ts_ms, payload)      (borrowed payload, copied here)
      -> decoder (G.711/G.722/Opus; L16 is copied as is)
      -> per-participant staging ring at sample index = clock(ts)   [_native.audio_stage_write]
      -> window closes (reorder window behind the newest packet)
      -> AudioOutput.write_participant / write_mixed               (native rate, int16, gaps marked)
      -> FormatConverter per (source, format), once each           (soxr; int16/float32; mono/stereo)
      -> FormatSink.write (e.g. MirroredRing -> model-ready windows as numpy views)

**Media clock.** RTMS timestamps are epoch milliseconds per participant (PROTOCOL.md 4.1). All
participants of a meeting share one 64-bit sample index ``index = (ts - origin_ms) * rate // 1000``.
``origin_ms`` is the first audio timestamp seen *minus the reorder window* (or ``AudioConfig.origin_ms``
when the caller knows a better one, e.g. the ``rtms_started`` event time), so a packet up to one
window older than the first one seen (the startup burst of ``buffer_data`` is not always ordered
across participants) still lands. Index 0 is therefore one window before the first packet and
starts as a gap. The engine is kept across reconnections of the same meeting: replayed audio
(PROTOCOL.md 6) lands at its own timestamps; a late joiner's first sample lands at the index of
its first packet, aligned sample for sample with everyone else. A timestamp within ``snap_ms`` of
where a participant's previous packet ended is snapped to it (no 1-sample holes or overlaps from
millisecond rounding).

**Jitter and gaps.** The meeting's newest packet start sets the clock; everything older than that
minus ``reorder_ms`` is *closed* and emitted. Until then packets may arrive in any order (counted
as ``reorders`` when older than the participant's newest). Exact duplicates are dropped
(``duplicates``); a packet overlapping data already staged only fills the missing frames
(``overlap_frames``): no sample is ever written twice. A packet older than the closed point is
*late*: it is dropped and counted (``late_packets``/``late_frames``), never patched into what was
already published, so consumers never see data change under them. Frames no packet covered are
emitted as zeros with ``gap=True``. Note that in multi-stream mode Zoom sends packets only for
active speakers, so a participant's silent turns are gaps too: ``gap`` means "no audio arrived",
which a consumer can always tell from received audio that is quiet.

**Mixing.** With ``data_opt`` 2 (one stream per speaker) the engine produces the mixed stream: the
saturating int16 sum of the included participants (clip of the sum, once per sample; optionally
scaled by ``AudioConfig.mix_gain`` first, for headroom), gap where no included participant had audio. With ``data_opt`` 1 Zoom's own mixed stream (``user_id`` 0) is passed
through as the mixed output. ``AudioConfig.mix_exclude`` and :meth:`AudioEngine.set_muted` remove
participants from the mix (their own stream is still emitted).

**Usage**::

    engine = AudioEngine(output, params)      # output: an AudioOutput (the shm publisher's adapter)
    sink.on_audio = engine.on_audio           # fed by the media listener; on_media_params too
    ring = MirroredRing(32 * 16000)           # a consumer format, produced once per (source, format)
    engine.add_format(AudioFormat(16000, "float32", 1), ring)
    reader = WindowReader(ring, window=30 * 16000, hop=16000)
    for start, window in reader.ready():      # zero-copy 30 s windows every second
        model(window, ring.gap_view(start, len(window)))
    engine.flush(final=True)                  # end of stream

**Output.** PCM handed to an :class:`AudioOutput` or :class:`FormatSink` is *borrowed* (a view of a
staging ring or scratch buffer, valid during the call). Mono is 1-D ``(frames,)``, stereo 2-D
``(frames, 2)``. Gap PCM is a read-only zero-stride view of zeros, so a gap of any length costs
nothing; ``sample_index`` of consecutive writes to one stream is contiguous.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import soxr

from . import _native
from .codecs import Decoder, make_decoder
from .protocol import AudioParams, Codec, DataOption

__all__ = [
    "MIXED",
    "AudioConfig",
    "AudioEngine",
    "AudioFormat",
    "AudioOutput",
    "FormatConverter",
    "FormatSink",
    "MediaClock",
    "MirroredRing",
    "NullOutput",
    "WindowReader",
    "sliding_windows",
]

log = logging.getLogger("gateway.audio")

#: Source id of the mixed stream (the same as Zoom's ``user_id`` for its mixed stream).
MIXED = 0

_ZERO_I16 = np.zeros(1, dtype=np.int16)
_ZERO_F32 = np.zeros(1, dtype=np.float32)


def _zeros(dtype: Any, channels: int, n: int) -> np.ndarray:
    """A read-only zero-stride view of ``n`` zero frames (no memory behind it)."""
    base = _ZERO_F32 if np.dtype(dtype) == np.float32 else _ZERO_I16
    shape = (n,) if channels == 1 else (n, channels)
    return np.broadcast_to(base[0], shape)


# --------------------------------------------------------------------------- interfaces


class AudioOutput(Protocol):
    """Where the engine publishes native-rate int16 audio (the integrator wires it to shm)."""

    def write_participant(self, user_id: int, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        """Frames ``[sample_index, sample_index + len(pcm))`` of one participant (borrowed)."""

    def write_mixed(self, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        """Frames of the mixed stream (computed, or Zoom's own passed through)."""


class FormatSink(Protocol):
    """Receives one converted stream (rate/format/channels chosen by a consumer)."""

    def write(self, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        """Frames at the *output* rate's sample index (borrowed)."""


class NullOutput:
    """Discards everything (benchmarks, or formats-only consumers)."""

    def write_participant(self, user_id: int, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        pass

    def write_mixed(self, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        pass


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A consumer format: rate 8-48 kHz, ``int16`` or ``float32`` samples, 1 (down-mix) or 2 channels."""

    rate_hz: int = 16000
    sample_format: str = "float32"
    channels: int = 1

    def __post_init__(self) -> None:
        if not 8000 <= self.rate_hz <= 48000:
            raise ValueError(f"rate_hz {self.rate_hz} is outside 8000-48000")
        if self.sample_format not in ("int16", "float32"):
            raise ValueError(f"sample_format {self.sample_format!r} is not 'int16' or 'float32'")
        if self.channels not in (1, 2):
            raise ValueError(f"channels {self.channels} is not 1 or 2")

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.sample_format)


@dataclass(slots=True)
class AudioConfig:
    """Engine settings (one meeting)."""

    #: How long a window stays open for late/reordered packets, behind the newest packet start.
    reorder_ms: int = 60
    #: Emit closed audio in chunks of at least this much (batching: fewer, larger writes).
    emit_ms: int = 20
    #: A packet starting within this of where the participant's previous packet ended is snapped to it.
    snap_ms: int = 2
    #: Participants (user ids) left out of the computed mix.
    mix_exclude: frozenset[int] = frozenset()
    #: Scale the computed mix before saturating (1.0: plain saturating sum; 1/3: three full-scale
    #: speakers never clip). Q15 fixed point. Zoom's own mixed stream is passed through unscaled.
    mix_gain: float = 1.0
    #: Fixed clock origin (epoch ms); None = first audio timestamp minus ``reorder_ms``.
    origin_ms: int | None = None
    #: Treat G.711 as mu-law instead of A-law.
    g711_ulaw: bool = False
    #: soxr quality for resampling converters ("HQ", "VHQ", "MQ", "LQ", "QQ").
    resample_quality: str = "HQ"


@dataclass(slots=True)
class AudioStats:
    """Counters (plain ints on the working object; metrics read them at scrape time)."""

    packets: int = 0
    frames: int = 0
    duplicates: int = 0
    overlap_frames: int = 0
    reorders: int = 0
    late_packets: int = 0
    late_frames: int = 0
    gap_frames: int = 0
    decode_errors: int = 0
    snapped: int = 0
    ignored: int = 0
    reconfigures: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


class MediaClock:
    """Maps RTMS millisecond timestamps to the meeting's 64-bit sample index and back."""

    __slots__ = ("origin_ms", "rate_hz")

    def __init__(self, origin_ms: int, rate_hz: int) -> None:
        self.origin_ms = origin_ms
        self.rate_hz = rate_hz

    def index_of(self, ts_ms: int) -> int:
        return (ts_ms - self.origin_ms) * self.rate_hz // 1000

    def ts_of(self, index: int) -> float:
        return self.origin_ms + index * 1000.0 / self.rate_hz


# --------------------------------------------------------------------------- engine


@dataclass(slots=True)
class _Track:
    user_id: int
    user_name: str | None
    slot: int
    decoder: Decoder | None
    view: Any = None  # staging row as (cap,) or (cap, channels)
    views: dict[tuple[int, int], Any] = field(default_factory=dict)  # cached slices of ``view``
    gap_frames: int = 0
    frames: int = 0
    converters: list[FormatConverter] = field(default_factory=list)


class AudioEngine:
    """One meeting's audio: a :class:`gateway.sink.MediaSink` audio half feeding an :class:`AudioOutput`."""

    def __init__(self, output: AudioOutput | None = None, params: AudioParams | None = None, config: AudioConfig | None = None) -> None:
        self.output: AudioOutput = output if output is not None else NullOutput()
        self.config = config if config is not None else AudioConfig()
        self._py_stats = AudioStats()  # counted in Python (decode path, gaps, mode mismatches)
        self._retired = AudioStats()  # totals of earlier media clock epochs (reconfigurations)
        self.clock: MediaClock | None = None
        self._muted: set[int] = set(self.config.mix_exclude)
        self._tracks: dict[int, _Track] = {}
        self._converters: dict[tuple[int, AudioFormat], FormatConverter] = {}
        self._configure(params if params is not None else AudioParams(), explicit=params is not None)

    # ------------------------------------------------------------------ setup

    def _configure(self, params: AudioParams, explicit: bool) -> None:
        self.params = params
        self._explicit = explicit
        self.rate_hz = params.rate_hz
        self.channels = int(params.channel)
        self._frame_bytes = 2 * self.channels
        rate, cfg = self.rate_hz, self.config
        self._window = cfg.reorder_ms * rate // 1000
        self._quantum = max(1, cfg.emit_ms * rate // 1000)
        self._snap = cfg.snap_ms * rate // 1000
        packet = max(params.samples_per_packet, rate // 50)
        need = self._window + 2 * packet + self._quantum + rate // 10
        self._cap = 1 << max(10, (need - 1).bit_length())
        # mode: computed mix (multi-stream) or pass-through of user 0; known from params or the first packet
        self._multi: bool | None = (params.data_opt == DataOption.AUDIO_MULTI_STREAMS) if explicit else None
        self._slots = 0
        self._free_slots: list[int] = []  # slots of removed participants, reused by new ones
        self._stage = _native.AudioStage(4, self._cap, self.channels)
        self._stage.set_mix_gain(cfg.mix_gain)
        mix_out = self._stage.mix_out
        self._mix_view = mix_out if self.channels == 1 else mix_out.reshape(-1, self.channels)
        self._mix_views: dict[int, np.ndarray] = {}
        self._gap_views: dict[int, np.ndarray] = {}
        self._zeros = _zeros(np.int16, self.channels, self._cap)
        self._mixed_converters: list[FormatConverter] = []
        self._mixed_next = 0
        self._dup_check = params.codec != Codec.L16  # decoded codecs: detect duplicates before touching decoder state

    def on_media_params(self, kind: str, params: Any) -> None:
        """Negotiated parameters (``gateway.media`` calls this before the first frame)."""
        if kind != "audio" or not isinstance(params, AudioParams):
            return
        if params == self.params and self._explicit:
            return
        if self.clock is not None:  # a new negotiation mid-meeting: publish what we have, start a new clock epoch
            log.warning("audio params changed mid-stream (%s -> %s): new media clock", self.params, params)
            self.flush()
            self._retired = self.stats
            self._py_stats = AudioStats(reconfigures=self._retired.reconfigures + 1)
            self._retired.reconfigures = 0
            self.clock = None
            self._tracks.clear()
        self._configure(params, explicit=True)
        for (source, _fmt), conv in list(self._converters.items()):
            conv.reset_input(self.rate_hz, self.channels)
            self._attach(source, conv)

    def set_muted(self, user_id: int, muted: bool = True) -> None:
        """Leave ``user_id`` out of (or put it back into) the computed mix from the next window on."""
        (self._muted.add if muted else self._muted.discard)(user_id)
        self._update_mix_slots()

    def remove_participant(self, user_id: int) -> None:
        """Stop emitting a participant (e.g. it left); its staged audio is published first."""
        tr = self._tracks.get(user_id)
        if tr is None:
            return
        self.flush()  # everything it sent is published (and the slot's staging is clear)
        del self._tracks[user_id]
        self._stage.reset_slot(tr.slot)
        self._free_slots.append(tr.slot)
        self._update_mix_slots()

    def _add_track(self, user_id: int, user_name: str | None) -> _Track:
        if self._multi is None:
            self._multi = user_id != MIXED
        if self._free_slots:
            slot = self._free_slots.pop()
        else:
            slot = self._slots
            if slot == self._stage.slots:
                self._stage.grow(2 * slot)
                for t in self._tracks.values():
                    t.view = self._row_view(t.slot)
                    t.views.clear()
            self._slots += 1
        decoder = make_decoder(self.params, ulaw=self.config.g711_ulaw)
        tr = _Track(user_id, user_name, slot, decoder)
        tr.view = self._row_view(slot)
        self._tracks[user_id] = tr
        self._attach(user_id, None)
        self._update_mix_slots()
        return tr

    def _row_view(self, slot: int) -> np.ndarray:
        row = self._stage.buf[slot]
        return row if self.channels == 1 else row.reshape(self._cap, self.channels)

    def _update_mix_slots(self) -> None:
        self._stage.set_mix_slots([t.slot for uid, t in self._tracks.items() if uid != MIXED and uid not in self._muted])

    # ------------------------------------------------------------------ packets

    def on_audio(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        """One audio packet; ``data`` is borrowed (copied into staging before returning)."""
        tr = self._tracks.get(user_id)
        if tr is None:
            if self._multi is not None and (user_id == MIXED) == self._multi:
                self._py_stats.ignored += 1  # a mixed packet in multi-stream mode (or the reverse)
                return
            if self.clock is None:
                self._start_clock(timestamp)
            tr = self._add_track(user_id, user_name)
        if tr.decoder is not None:
            data = self._decode(tr, timestamp, data)
            if data is None:
                return
        stage = self._stage
        target = stage.ingest(tr.slot, timestamp, data)
        if target >= 0:
            self._emit(target)
        elif target == -2:  # far ahead of the window (pause/resume): publish the hole first
            self._emit(stage.need)
            target = stage.ingest(tr.slot, timestamp, data)
            if target >= 0:
                self._emit(target)

    def _start_clock(self, timestamp: int) -> None:
        origin = self.config.origin_ms
        self.clock = MediaClock(timestamp - self.config.reorder_ms if origin is None else origin, self.rate_hz)
        self._stage.configure(self.clock.origin_ms, self.rate_hz, self._window, self._quantum, self._snap)

    def _decode(self, tr: _Track, timestamp: int, data: Any) -> Any:
        """Decoded payload as int16 bytes, or None (duplicate caught before decoding, or undecodable)."""
        st = self._py_stats
        stage = self._stage
        idx = stage.index_of(tr.slot, timestamp)
        if idx >= stage.closed:
            n_expect = self.params.samples_per_packet
            if stage.count(tr.slot, idx, idx + n_expect) == n_expect:
                st.duplicates += 1  # never feed a stateful decoder the same packet twice
                return None
        pcm = tr.decoder.decode(data)  # type: ignore[union-attr]
        if pcm is None:
            st.decode_errors += 1
            return None
        return pcm.view(np.uint8)

    @property
    def stats(self) -> AudioStats:
        """Counters so far (a fresh snapshot on each access)."""
        stage, py, old = self._stage, self._py_stats, self._retired
        return AudioStats(
            packets=old.packets + stage.packets + stage.empty + stage.oversized + py.ignored + py.decode_errors + py.duplicates,
            frames=old.frames + stage.frames,
            duplicates=old.duplicates + stage.duplicates + py.duplicates,
            overlap_frames=old.overlap_frames + stage.overlap_frames,
            reorders=old.reorders + stage.reorders,
            late_packets=old.late_packets + stage.late_packets,
            late_frames=old.late_frames + stage.late_frames,
            gap_frames=old.gap_frames + py.gap_frames,
            decode_errors=old.decode_errors + py.decode_errors,
            snapped=old.snapped + stage.snapped,
            ignored=old.ignored + py.ignored + stage.empty + stage.oversized,
            reconfigures=py.reconfigures,
        )

    def flush(self, final: bool = False) -> None:
        """Publish everything staged (pause, reconfiguration); ``final`` also drains the resamplers."""
        end = max((self._stage.high_end(t.slot) for t in self._tracks.values()), default=-1)
        if end > self._stage.closed:
            self._emit(end)
        if final:
            for conv in self._converters.values():
                conv.flush()

    def advance(self, timestamp: int) -> None:
        """Close windows up to ``timestamp - reorder_ms`` although no packet arrived (idle meeting).

        Publishes marked gaps so readers see the clock move. Do not call it while a reconnection
        is under way: audio Zoom buffered meanwhile is replayed afterwards (PROTOCOL.md 6) and
        would then arrive late and be dropped.
        """
        if self.clock is None:
            return
        target = self.clock.index_of(timestamp) - self._window
        if target - self._stage.closed >= self._quantum:
            self._emit(target)

    # ------------------------------------------------------------------ emission

    def _emit(self, target: int) -> None:
        """Publish ``[closed, target)`` for every stream, in pieces of at most one staging ring."""
        cap = self._cap
        stage = self._stage
        while stage.closed < target:
            a = stage.closed
            b = min(target, a + cap)
            # never cross the ring end inside one piece: views stay contiguous
            b = min(b, a - (a & (cap - 1)) + cap)
            self._emit_piece(a, b)
            stage.closed = b

    def _emit_piece(self, a: int, b: int) -> None:
        """Publish ``[a, b)`` (inside one turn of the staging ring): per stream, one write per run.

        Slices of the staging rows are cached by (offset, length): emission windows repeat at the
        same ring offsets, and a cached view costs a dict look-up instead of a numpy slice.
        """
        stage = self._stage
        base = a - (a & (self._cap - 1))
        out = self.output
        st = self._py_stats
        for tr in self._tracks.values():
            slot = tr.slot
            uid = tr.user_id
            state = stage.state(slot, a, b)
            if state == 1:
                key = (a - base, b - base)
                pcm = tr.views.get(key)
                if pcm is None:
                    if len(tr.views) > 512:  # bounded: offsets repeat in steady state
                        tr.views.clear()
                    pcm = tr.views[key] = tr.view[key[0] : key[1]]
                runs: Any = ((a, pcm, False),)
            elif state == 0:
                runs = ((a, self._gap(b - a), True),)
                tr.gap_frames += b - a
                st.gap_frames += b - a
            else:
                runs = []
                for p, q, gap in self._runs(stage.run_end, slot, a, b, not stage.is_data(slot, a)):
                    if gap:
                        tr.gap_frames += q - p
                        st.gap_frames += q - p
                    runs.append((p, self._gap(q - p) if gap else tr.view[p - base : q - base], gap))
            if uid == MIXED:
                for p, pcm, gap in runs:
                    out.write_mixed(p, pcm, gap)
                    for conv in self._mixed_converters:
                        conv.push(p, pcm, gap)
            else:
                for p, pcm, gap in runs:
                    out.write_participant(uid, p, pcm, gap)
                    for conv in tr.converters:
                        conv.push(p, pcm, gap)
        if self._multi:
            n = b - a
            state = stage.mix(a, n)
            if state == 1:
                pcm = self._mix_views.get(n)
                if pcm is None:
                    pcm = self._mix_views[n] = self._mix_view[:n]
                runs = ((a, pcm, False),)
            elif state == 0:
                runs = ((a, self._gap(n), True),)
            else:
                mix_view = self._mix_view
                runs = [
                    (a + p, self._gap(q - p) if gap else mix_view[p:q], gap)
                    for p, q, gap in self._runs(lambda _slot, p, q: stage.mix_run_end(p, q), 0, 0, n, not stage.mix_have[0])
                ]
            for p, pcm, gap in runs:
                out.write_mixed(p, pcm, gap)
                for conv in self._mixed_converters:
                    conv.push(p, pcm, gap)
        stage.clear(a, b - a)

    def _gap(self, n: int) -> np.ndarray:
        """``n`` zero frames as a zero-stride view (cached by length)."""
        z = self._gap_views.get(n)
        if z is None:
            if len(self._gap_views) > 512:
                self._gap_views.clear()
            z = self._gap_views[n] = self._zeros[:n]
        return z

    @staticmethod
    def _runs(run_end: Any, slot: int, a: int, b: int, gap: bool) -> list[tuple[int, int, bool]]:
        """Split ``[a, b)`` into alternating data/gap runs, starting with ``gap``."""
        runs = []
        p = a
        while p < b:
            q = run_end(slot, p, b)
            runs.append((p, q, gap))
            gap = not gap
            p = q
        return runs

    # ------------------------------------------------------------------ formats

    def add_format(self, fmt: AudioFormat, sink: FormatSink, source: int = MIXED, *, batch_ms: int = 0) -> FormatConverter:
        """Deliver ``source`` (a user id, or :data:`MIXED`) converted to ``fmt`` to ``sink``.

        One converter per (source, format), however many sinks share it: the resampler runs once.
        It starts with the next emitted window (output index = input index scaled to the new rate).
        ``batch_ms``: resample in chunks of at least this much input (soxr's cost per call
        dominates 20 ms chunks; 100 ms halves it) at the price of that much more latency for this
        format only; the first caller for a (source, format) decides.
        """
        key = (source, fmt)
        conv = self._converters.get(key)
        if conv is None:
            conv = FormatConverter(self.rate_hz, self.channels, fmt, self.config.resample_quality, batch_frames=batch_ms * self.rate_hz // 1000)
            self._converters[key] = conv
            self._attach(source, conv)
        conv.sinks.append(sink)
        return conv

    def remove_format(self, fmt: AudioFormat, sink: FormatSink, source: int = MIXED) -> None:
        """Detach ``sink``; the converter goes when its last sink does."""
        key = (source, fmt)
        conv = self._converters.get(key)
        if conv is None:
            return
        if sink in conv.sinks:
            conv.sinks.remove(sink)
        if not conv.sinks:
            del self._converters[key]
            self._rebuild_converter_lists()

    def _attach(self, source: int, conv: FormatConverter | None) -> None:
        self._rebuild_converter_lists()

    def _rebuild_converter_lists(self) -> None:
        self._mixed_converters = [c for (s, _f), c in self._converters.items() if s == MIXED]
        for uid, tr in self._tracks.items():
            if uid != MIXED:
                tr.converters = [c for (s, _f), c in self._converters.items() if s == uid]

    @property
    def formats(self) -> dict[tuple[int, AudioFormat], FormatConverter]:
        """The live converters, keyed by (source, format)."""
        return dict(self._converters)

    # ------------------------------------------------------------------ introspection

    @property
    def closed_index(self) -> int:
        """Everything before this sample index has been published."""
        return self._stage.closed

    def user_name(self, user_id: int) -> str | None:
        """The display name ``user_id``'s first packet carried (None if unknown)."""
        tr = self._tracks.get(user_id)
        return tr.user_name if tr is not None else None

    @property
    def participants(self) -> list[int]:
        return [uid for uid in self._tracks if uid != MIXED]

    def snapshot(self) -> dict[str, Any]:
        """Counters for metrics/logs, plus decode errors per decoder."""
        d: dict[str, Any] = self.stats.as_dict()
        d["gap_frames_by_user"] = {uid: t.gap_frames for uid, t in self._tracks.items()}
        d["closed_index"] = self._stage.closed
        return d


# --------------------------------------------------------------------------- format conversion


class FormatConverter:
    """One stream converted to one :class:`AudioFormat`: down-/up-mix, int16/float32, soxr resampling.

    Streaming and stateful; chunked input gives exactly the output of converting each gap-free run
    in one shot (``soxr.resample``). At a gap the resampler is flushed (its tail belongs before the
    gap) and cleared, so stale history never smears across a gap; runs start at the output index
    ``round_down(input_index * out_rate / in_rate)``, so every format stays on the meeting clock.
    """

    def __init__(self, in_rate: int, in_channels: int, fmt: AudioFormat, quality: str = "HQ", *, batch_frames: int = 0) -> None:
        self.fmt = fmt
        self.sinks: list[FormatSink] = []
        self.quality = quality
        self.batch_frames = batch_frames  # resample at least this many input frames per soxr call
        self.reset_input(in_rate, in_channels)

    def reset_input(self, in_rate: int, in_channels: int) -> None:
        """(Re)start for an input of ``in_rate``/``in_channels`` (new media clock epoch)."""
        fmt = self.fmt
        self.in_rate = in_rate
        self.in_channels = in_channels
        self._resampler = None if in_rate == fmt.rate_hz else soxr.ResampleStream(in_rate, fmt.rate_hz, fmt.channels, fmt.sample_format, self.quality)
        # how int16 input frames become the output's channels and sample format (None: as they are)
        if in_channels == fmt.channels:
            self._mode: int | None = None if fmt.sample_format == "int16" else 0
        elif in_channels == 2:
            self._mode = 1 if fmt.sample_format == "int16" else 2
        else:
            self._mode = 3 if fmt.sample_format == "int16" else 4
        self._scratch = np.zeros(4096 * fmt.channels, dtype=fmt.dtype)
        self._scratch_views: dict[int, np.ndarray] = {}
        self._active = False  # inside a data run (resampler holds history)
        self._out_pos: int | None = None
        self._trim = 0
        self._zeros = _zeros(fmt.dtype, fmt.channels, 1 << 22)
        self._empty = np.zeros((0, fmt.channels) if fmt.channels == 2 else 0, dtype=fmt.dtype)
        batching = self._resampler is not None and self.batch_frames > 0
        shape = (2 * self.batch_frames, fmt.channels) if fmt.channels == 2 else (2 * self.batch_frames,)
        self._pending = np.zeros(shape, dtype=fmt.dtype) if batching else None
        self._npending = 0

    def _prepare(self, pcm: np.ndarray) -> np.ndarray:
        """int16 native frames -> the output's channels and sample format (contiguous, scratch-backed)."""
        mode = self._mode
        if mode is None:
            return pcm if pcm.flags.c_contiguous else np.ascontiguousarray(pcm)
        n = len(pcm)
        out = self._scratch_views.get(n)
        if out is None:
            need = n * self.fmt.channels
            if len(self._scratch) < need:
                self._scratch = np.zeros(need, dtype=self.fmt.dtype)
                self._scratch_views.clear()
            elif len(self._scratch_views) > 256:
                self._scratch_views.clear()
            out = self._scratch[:need]
            if self.fmt.channels == 2:
                out = out.reshape(n, 2)
            self._scratch_views[n] = out
        if not pcm.flags.c_contiguous:
            pcm = np.ascontiguousarray(pcm)
        _native.audio_convert(pcm, out, mode)
        return out

    def _out(self, pcm: np.ndarray, gap: bool) -> None:
        n = len(pcm)
        if n == 0:
            return
        pos = self._out_pos
        for sink in self.sinks:
            sink.write(pos, pcm, gap)  # type: ignore[arg-type]
        self._out_pos = pos + n  # type: ignore[operator]

    def _gap_to(self, end: int) -> None:
        pos = self._out_pos
        assert pos is not None
        while pos < end:
            n = min(end - pos, len(self._zeros))
            self._out(self._zeros[:n], True)
            pos += n

    def _finish_run(self) -> None:
        if self._active and self._resampler is not None:
            if self._npending:
                self._emit_data(self._resampler.resample_chunk(self._pending[: self._npending]))
                self._npending = 0
            self._emit_data(self._resampler.resample_chunk(self._empty, last=True))
            self._resampler.clear()
        self._active = False

    def _emit_data(self, y: np.ndarray) -> None:
        if self._trim:
            k = min(self._trim, len(y))
            y = y[k:]
            self._trim -= k
        self._out(y, False)

    def push(self, index: int, pcm: np.ndarray, gap: bool) -> None:
        """Frames ``[index, index + len(pcm))`` at the input rate (contiguous with the last push)."""
        if gap or not self._active or self._out_pos is None:
            if self._start_run(index, len(pcm), gap):
                return
        x = self._prepare(pcm)
        rs = self._resampler
        if self._pending is not None:
            x = self._batch(x)
            if x is None:
                return
        y = x if rs is None else rs.resample_chunk(x)
        if self._trim:
            self._emit_data(y)
            return
        n = len(y)
        if n:
            pos = self._out_pos
            for sink in self.sinks:
                sink.write(pos, y, False)
            self._out_pos = pos + n  # type: ignore[operator]

    def _batch(self, x: np.ndarray) -> np.ndarray | None:
        """Collect input until ``batch_frames``; then the whole batch (a view, valid until the next call)."""
        pending = self._pending
        assert pending is not None
        k, n = self._npending, len(x)
        if k + n > len(pending):
            grown = np.zeros((k + n, *pending.shape[1:]), dtype=pending.dtype)
            grown[:k] = pending[:k]
            self._pending = pending = grown
        pending[k : k + n] = x
        k += n
        if k < self.batch_frames:
            self._npending = k
            return None
        self._npending = 0
        return pending[:k]

    def _start_run(self, index: int, n: int, gap: bool) -> bool:
        """Handle a gap (returns True: nothing more to do) or the first data chunk of a run."""
        out_rate, in_rate = self.fmt.rate_hz, self.in_rate
        if self._out_pos is None:
            self._out_pos = index * out_rate // in_rate
        if gap:
            self._finish_run()
            self._gap_to((index + n) * out_rate // in_rate)
            return True
        if not self._active:
            start = index * out_rate // in_rate
            if start > self._out_pos:
                self._gap_to(start)
            self._trim = self._out_pos - start
            self._active = True
        return False

    def flush(self) -> None:
        """End of the stream: emit the resampler's tail."""
        self._finish_run()


# --------------------------------------------------------------------------- model-ready windows


class MirroredRing:
    """A :class:`FormatSink` keeping the last ``capacity`` frames, readable as zero-copy windows.

    Every frame is stored twice (at ``i`` and ``i + capacity``), so any span of up to ``capacity``
    frames is one contiguous slice: windows are plain numpy views, never copies. ``gaps`` mirrors
    the gap marks the same way. A view stays valid until ``capacity - len(view)`` newer frames have
    been written (check :meth:`valid` when reading lazily).
    """

    def __init__(self, capacity: int, channels: int = 1, dtype: Any = np.float32) -> None:
        self.capacity = int(capacity)
        self.channels = channels
        shape = (2 * self.capacity,) if channels == 1 else (2 * self.capacity, channels)
        self.data = np.zeros(shape, dtype=dtype)
        self.gaps = np.ones(2 * self.capacity, dtype=bool)
        self.start: int | None = None  # first index ever written
        self.end = 0  # one past the newest index written

    def write(self, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        if pcm.dtype != self.data.dtype:  # int16 into a float32 ring would store unscaled values
            raise TypeError(f"ring holds {self.data.dtype}, got {pcm.dtype}: attach it to a matching AudioFormat")
        if self.start is None:
            self.start = self.end = sample_index
        if sample_index > self.end:  # a skipped span is a gap
            self._put(self.end, _zeros(self.data.dtype, self.channels, sample_index - self.end), True)
        elif sample_index < self.end:  # never rewrite published frames
            skip = self.end - sample_index
            if skip >= len(pcm):
                return
            pcm, sample_index = pcm[skip:], self.end
        self._put(sample_index, pcm, gap)

    def _put(self, index: int, pcm: np.ndarray, gap: bool) -> None:
        cap = self.capacity
        n = len(pcm)
        if n > cap:
            pcm, index, n = pcm[n - cap :], index + n - cap, cap
        pos = index % cap
        first = min(n, cap - pos)
        for off in (0, cap):
            self.data[pos + off : pos + off + first] = pcm[:first]
            self.gaps[pos + off : pos + off + first] = gap
        if first < n:
            rest = n - first
            for off in (0, cap):
                self.data[off : off + rest] = pcm[first:]
                self.gaps[off : off + rest] = gap
        self.end = index + n

    def valid(self, start: int, n: int) -> bool:
        """Whether frames ``[start, start + n)`` are still held."""
        return self.start is not None and start >= max(self.start, self.end - self.capacity) and start + n <= self.end

    def view(self, start: int, n: int) -> np.ndarray:
        """Frames ``[start, start + n)`` as a view (raises if not held)."""
        if not self.valid(start, n):
            raise IndexError(f"frames [{start}, {start + n}) not held (ring has [{max(self.start or 0, self.end - self.capacity)}, {self.end}))")
        pos = start % self.capacity
        return self.data[pos : pos + n]

    def gap_view(self, start: int, n: int) -> np.ndarray:
        """Gap marks of frames ``[start, start + n)`` as a view."""
        if not self.valid(start, n):
            raise IndexError(f"frames [{start}, {start + n}) not held")
        pos = start % self.capacity
        return self.gaps[pos : pos + n]


def sliding_windows(ring: MirroredRing, window: int, hop: int, start: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_index, view)`` for each complete window of ``window`` frames, every ``hop``.

    Starts at ``start`` (default: the ring's first frame) and stops at the newest complete window;
    call again with the next start to continue. Views are zero-copy (see :class:`MirroredRing`).
    Windows that were overwritten before being read are skipped.
    """
    if ring.start is None:
        return
    if window > ring.capacity:
        raise ValueError(f"window {window} exceeds the ring capacity {ring.capacity}")
    s = ring.start if start is None else start
    while s + window <= ring.end:
        if ring.valid(s, window):
            yield s, ring.view(s, window)
        s += hop


class WindowReader:
    """Stateful :func:`sliding_windows`: each :meth:`ready` call yields only the new windows."""

    def __init__(self, ring: MirroredRing, window: int, hop: int, start: int | None = None) -> None:
        if window <= 0 or hop <= 0:
            raise ValueError("window and hop must be positive")
        self.ring, self.window, self.hop = ring, window, hop
        self.next_start = start
        self.skipped = 0  # windows overwritten before they were read

    def ready(self) -> Iterator[tuple[int, np.ndarray]]:
        ring = self.ring
        if ring.start is None:
            return
        if self.next_start is None:
            self.next_start = ring.start
        while self.next_start + self.window <= ring.end:
            s = self.next_start
            self.next_start = s + self.hop
            if ring.valid(s, self.window):
                yield s, ring.view(s, self.window)
            else:
                self.skipped += 1
