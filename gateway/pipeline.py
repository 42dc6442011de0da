"""One stream's sink with the audio engine in front of the shared-memory publisher.

``publish.shm`` alone hands media straight to a :class:`~gateway.shm.ShmPublisher` (a
``NativeSink``: the listener base64-decodes audio into ring memory, no Python per packet). That
fast path stores each participant's packets at their timestamps and nothing more. With
``[audio] engine = true`` (the default) the app builds an :class:`EngineSink` instead::

    media listener --audio--> AudioEngine (align to one media clock, reorder window, duplicates
                               dropped, gaps marked, mix of data_opt 2, Zoom's mix passed through,
                               G.711/G.722/Opus decoded, consumer formats via soxr)
                    |            |-> ShmPublisher.write_participant / write_mixed  (int16 rings)
                    |            '-> ShmPublisher.write_format                     (format rings)
                    '--video, share, transcript, chat, events--> ShmPublisher (unchanged)

The cost: audio takes the listener's Python path (a borrowed memoryview per packet) and the
engine's per-packet work, and audio leaves the gateway ``reorder_ms`` later (see
``benchmarks/bench_audio.py`` for the engine's cost per participant-second).

Usage::

    pub = ShmPublisher(stream_id, directory, audio=pcm_params_for(params), ...)
    sink = EngineSink(pub, params, AudioConfig(reorder_ms=60), formats=[AudioFormat(16000, "float32", 1)])
    session = StreamSession(target, settings, sink=sink)     # closes with sink.close()
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .audio import MIXED, AudioConfig, AudioEngine, AudioFormat
from .protocol import AudioParams, Codec, MediaMessage, MediaParams, WebhookEvent, params_to_wire

__all__ = ["EngineSink", "engine_sink_factory", "format_plan", "parse_format", "parse_format_spec", "pcm_params_for"]

log = logging.getLogger("gateway.pipeline")

def pcm_params_for(params: AudioParams) -> AudioParams:
    """The int16 PCM layout the engine publishes for negotiated ``params`` (decoded codecs are L16)."""
    return dataclasses.replace(params, codec=Codec.L16)


def parse_format_spec(spec: str) -> tuple[str, AudioFormat]:
    """``"[mixed:|each:]16000:float32:1"`` -> (``"mixed"`` or ``"each"``, format); ValueError if bad.

    ``mixed`` (the default) converts the mixed stream; ``each`` converts every participant's stream.
    """
    parts = [p.strip() for p in spec.split(":")]
    source = "mixed"
    if len(parts) == 4:
        source = parts.pop(0)
    if source not in ("mixed", "each") or len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        raise ValueError(f"audio format {spec!r} is not '[mixed:|each:]rate:int16|float32:channels' (e.g. 'each:16000:float32:1')")
    return source, AudioFormat(int(parts[0]), parts[1], int(parts[2]))


def parse_format(spec: str) -> AudioFormat:
    """The :class:`AudioFormat` of a format spec (see :func:`parse_format_spec`; ValueError if bad)."""
    return parse_format_spec(spec)[1]


class _FormatRing:
    """A :class:`~gateway.audio.FormatSink` writing one converted stream into a format ring."""

    __slots__ = ("_k", "_pub", "_zeros", "frame_bytes")

    def __init__(self, publisher: Any, k: int, fmt: AudioFormat) -> None:
        self._pub = publisher
        self._k = k
        self.frame_bytes = fmt.dtype.itemsize * fmt.channels
        self._zeros = np.zeros(0, np.uint8)

    def write(self, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        if gap:  # a zero-stride view: hand over (cached) zero bytes instead of materialising it
            n = len(pcm) * self.frame_bytes
            if len(self._zeros) < n:
                self._zeros = np.zeros(max(n, 2 * len(self._zeros)), np.uint8)
            self._pub.write_format(self._k, sample_index, self._zeros[:n], True)
            return
        if not pcm.flags.c_contiguous:
            pcm = np.ascontiguousarray(pcm)
        self._pub.write_format(self._k, sample_index, pcm.reshape(-1).view(np.uint8), False)


class EngineSink:
    """A MediaSink: audio through an :class:`~gateway.audio.AudioEngine`, the rest to the publisher.

    The engine's :class:`~gateway.audio.AudioOutput` is this object: it fixes the publisher's
    media clock origin to the engine's on the first write (both then index samples identically)
    and hands gap runs over as cached zero bytes. ``formats`` are produced from the mixed stream,
    once each, into the publisher's format rings ``0..len(formats)-1`` (same order).
    ``participant_formats`` are produced for each participant as it first appears, into the next
    free group of the publisher's spare format rings (``participant_groups`` of them, laid out as
    :class:`~gateway.shm.ShmPublisher` documents); participants beyond that get none (counted in
    ``stats()["audio_formats_skipped"]``).

    **Idle flush.** The engine publishes a window once a newer packet closes it; when audio stops
    (pause, nobody speaking in multi-stream mode, the stream's end) nothing would close the last
    one. Created inside a running event loop, the sink checks every ``idle_flush_ms`` (default: the
    reorder window, at least 100 ms) whether any
    packet arrived since the last check and, if none did, publishes what is staged. A packet that
    arrives later for an already published time is counted late and dropped (never patched in).
    """

    def __init__(self, publisher: Any, params: AudioParams, config: AudioConfig | None = None, *, formats: Sequence[AudioFormat] = (),
                 participant_formats: Sequence[AudioFormat] = (), participant_groups: int = 0, idle_flush_ms: int | None = None) -> None:
        self.publisher = publisher
        self.engine = AudioEngine(self, params, config)
        self._origin_set = publisher.origin_ms is not None
        self._frame_bytes = 2 * int(params.channel)
        self._zeros = np.zeros(0, np.uint8)
        self._named: set[int] = set()
        self._u8: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id(pcm view) -> (view, its bytes)
        self.closed = False
        # the hot half: bound methods, no indirection per frame
        self.on_audio = self.engine.on_audio
        self.on_video = publisher.on_video
        self.on_share = publisher.on_share
        self.publish_event = publisher.publish_event
        for k, fmt in enumerate(formats):
            self.engine.add_format(fmt, _FormatRing(publisher, k, fmt), MIXED)
        self._pformats = list(participant_formats)
        self._pformat_base = len(formats)
        self._free_groups = list(range(participant_groups)) if self._pformats else []
        self._seen_users: set[int] = set()
        self.formats_skipped = 0
        if idle_flush_ms is None:  # never shorter than the reorder window: a stall that short is jitter
            idle_flush_ms = max(100, self.engine.config.reorder_ms)
        self._idle_s = idle_flush_ms / 1000.0
        self._seen_packets = 0
        self._timer: asyncio.TimerHandle | None = None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop() if idle_flush_ms > 0 else None
        except RuntimeError:
            self._loop = None
        if self._loop is not None:
            self._timer = self._loop.call_later(self._idle_s, self._idle_check)

    def _idle_check(self) -> None:
        """Publish the staged tail when no packet arrived for a whole interval (see the class doc)."""
        self._timer = None
        if self.closed:
            return
        packets = self.engine.stats.packets
        if packets == self._seen_packets:
            try:
                self.engine.flush()
            except Exception:
                log.exception("stream %s: idle flush of the audio engine failed", getattr(self.publisher, "stream_id", "?"))
        self._seen_packets = packets
        assert self._loop is not None
        self._timer = self._loop.call_later(self._idle_s, self._idle_check)

    # -- MediaSink (the rest) --------------------------------------------------------------------

    def on_transcript(self, msg: MediaMessage) -> None:
        self.publisher.on_transcript(msg)

    def on_chat(self, msg: MediaMessage) -> None:
        self.publisher.on_chat(msg)

    def on_drop(self, kind: str, reason: str) -> None:
        self.publisher.on_drop(kind, reason)

    def on_media_params(self, kind: str, params: Any) -> None:
        """Negotiated params: the engine takes audio's (same params as requested: nothing changes)."""
        if kind == "audio" and params != self.engine.params:
            if self._origin_set:
                log.warning("stream %s: audio params changed after audio was published (%s); rings keep the first clock",
                            getattr(self.publisher, "stream_id", "?"), params)
        self.engine.on_media_params(kind, params)

    # -- AudioOutput -----------------------------------------------------------------------------

    def _bytes(self, pcm: np.ndarray, gap: bool) -> np.ndarray:
        if gap:
            n = len(pcm) * self._frame_bytes
            if len(self._zeros) < n:
                self._zeros = np.zeros(max(n, 2 * len(self._zeros)), np.uint8)
            return self._zeros[:n]
        hit = self._u8.get(id(pcm))
        if hit is not None and hit[0] is pcm:  # the engine hands out cached slices: so do we
            return hit[1]
        u8 = (pcm if pcm.flags.c_contiguous else np.ascontiguousarray(pcm)).reshape(-1).view(np.uint8)
        if len(self._u8) > 1024:
            self._u8.clear()
        self._u8[id(pcm)] = (pcm, u8)  # holding ``pcm`` keeps its id from being reused
        return u8

    def _start_clock(self) -> None:
        clock = self.engine.clock
        if clock is not None and self.publisher.origin_ms is None:
            self.publisher.set_origin(clock.origin_ms)
        self._origin_set = True

    def write_participant(self, user_id: int, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        if not self._origin_set:
            self._start_clock()
        if user_id not in self._seen_users:
            self._new_participant(user_id)
        self.publisher.write_pcm(user_id, sample_index, self._bytes(pcm, gap), gap)
        if user_id not in self._named and not gap:
            self._name(user_id)

    def _new_participant(self, user_id: int) -> None:
        """First output of a participant: its formats start here (the engine pushes this piece to them too)."""
        self._seen_users.add(user_id)
        if not self._pformats or self.closed:
            return
        if not self._free_groups:
            self.formats_skipped += 1
            if self.formats_skipped == 1:
                log.warning("stream %s: no spare format rings left for participant %d (raise shm max_participants)",
                            getattr(self.publisher, "stream_id", "?"), user_id)
            return
        group = self._free_groups.pop(0)
        for j, fmt in enumerate(self._pformats):
            k = self._pformat_base + group * len(self._pformats) + j
            self.publisher.assign_format(k, user_id)
            self.engine.add_format(fmt, _FormatRing(self.publisher, k, fmt), user_id)

    def _name(self, user_id: int) -> None:
        """Give the participant's ring its display name (once; the engine knows it from the packets)."""
        self._named.add(user_id)
        name = self.engine.user_name(user_id)
        if name:
            self.publisher.set_user_name(user_id, name.encode("utf-8")[:80])

    def write_mixed(self, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        if not self._origin_set:
            self._start_clock()
        self.publisher.write_pcm(MIXED, sample_index, self._bytes(pcm, gap), gap)

    # -- lifecycle -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The engine's counters (under ``audio_engine``; metrics ignore keys they do not know)."""
        return {"audio_engine": self.engine.stats.as_dict(), "audio_formats_skipped": self.formats_skipped}

    def close(self) -> None:
        """Publish what the reorder window still holds (and the resamplers' tails), then end the stream."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self.engine.flush(final=True)
        except Exception:
            log.exception("stream %s: flushing the audio engine failed", getattr(self.publisher, "stream_id", "?"))
        self.publisher.close()


def format_plan(formats: Iterable[AudioFormat]) -> list[AudioFormat]:
    """Distinct formats in configured order (a format listed twice is produced once)."""
    seen: list[AudioFormat] = []
    for f in formats:
        if f not in seen:
            seen.append(f)
    return seen


def engine_sink_factory(config: Any, params: MediaParams, directory: Callable[[], Any]) -> Callable[[WebhookEvent], EngineSink]:
    """The app's sink factory for ``publish.shm`` + ``audio.engine``: one publisher + engine per stream.

    ``config`` is the :class:`~gateway.config.GatewayConfig`; ``directory()`` returns the
    gateway's :class:`~gateway.shm.ShmDirectory`. The segment's PCM rings are laid out for the
    *decoded* audio (int16 at the negotiated rate and channels, whatever the codec); its info
    JSON keeps the wire params under ``audio_wire``.
    """
    from .shm import ShmPublisher

    a = config.audio
    audio = params.audio
    assert audio is not None
    engine_config = AudioConfig(
        reorder_ms=a.reorder_ms,
        mix_exclude=frozenset(int(u) for u in a.mix_exclude),
        mix_gain=a.mix_gain,
        g711_ulaw=a.g711_ulaw,
    )
    specs = [parse_format_spec(f) for f in a.formats]
    formats = format_plan(f for src, f in specs if src == "mixed")
    participant_formats = format_plan(f for src, f in specs if src == "each")
    pcm = pcm_params_for(audio)

    def make(event: WebhookEvent) -> EngineSink:
        info = {
            "product": event.product.value if event.product else None,
            "instance_key": event.instance_key,
            "instance_id": event.instance_id,
            "audio_engine": {"reorder_ms": a.reorder_ms, "mix_exclude": sorted(engine_config.mix_exclude)},
            "audio_wire": params_to_wire(audio),
        }
        shm_dir = directory()
        pub = ShmPublisher(event.stream_id or "", shm_dir, audio=pcm, video=params.video, deskshare=params.deskshare, info=info,
                           formats=formats, participant_formats=participant_formats)
        try:
            return EngineSink(pub, audio, engine_config, formats=formats, participant_formats=participant_formats,
                              participant_groups=shm_dir.config.max_participants)
        except BaseException:
            pub.close()
            raise

    return make
