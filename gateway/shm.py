"""Shared-memory publisher: segment naming, creation, permissions, the stream directory, cleanup.

The binary work (ring layout, reserve/commit, wake-ups) is the native ``ShmWriter``; this module
owns the file-system side of the contract in docs/SHM.md: names ``<prefix>.dir`` (directory) and
``<prefix>.<pid>.<start_ticks>.<n>`` (one per stream), mode 0600 (0660 with ``group``), removal
when a stream ends or the gateway stops, and removal at start-up of whatever a crashed gateway
with the same prefix left behind.
"""

from __future__ import annotations

import grp
import itertools
import logging
import math
import mmap
import os
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson

from . import _native
from .errors import PublishError
from .protocol import AudioParams, Codec, DeskshareParams, MediaMessage, VideoParams, params_to_wire

log = logging.getLogger(__name__)

__all__ = ["RingSample", "ShmConfig", "ShmDirectory", "ShmPublisher", "cleanup_stale"]

KIND_AUDIO, KIND_VIDEO, KIND_SHARE, KIND_EVENTS, KIND_AUDIO_RAW = 0, 1, 2, 3, 5
ENC_JSON = 0x0100
_DROP_KINDS = {"audio": 0, "video": 1, "deskshare": 2, "share": 2, "transcript": 3, "chat": 4}
_KIB = 1024


@dataclass(frozen=True, slots=True)
class ShmConfig:
    """Shared-memory settings (sizes are per stream; defaults keep a 3-speaker meeting < 2 MiB)."""

    prefix: str = "rtms-gw"
    shm_dir: str = "/dev/shm"
    #: Group allowed to attach (mode 0660 and that group); None = owner only (0600).
    group: str | int | None = None
    audio_seconds: float = 8.0
    #: Frames duplicated after the ring end: reads up to this long are always zero-copy views.
    audio_mirror_ms: int = 1000
    #: Per-participant PCM rings besides the mixed one; the least recently heard is recycled.
    max_participants: int = 8
    video_bytes: int = 512 * _KIB
    share_bytes: int = 512 * _KIB
    event_bytes: int = 64 * _KIB
    raw_audio_bytes: int = 256 * _KIB
    dir_slots: int = 4096
    #: Packets whose position is within this many ms of the write index are snapped to it.
    jitter_ms: int = 0

    def __post_init__(self) -> None:
        if not self.prefix or "/" in self.prefix or len(self.prefix) > 32:
            raise ValueError("shm prefix must be 1-32 characters without '/'")


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, n))))


def _proc_start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks (field 22 of /proc/<pid>/stat); None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields_ = raw[raw.rfind(b")") + 2 :].split()
    return int(fields_[19])


def _alive(pid: int, start_ticks: int | None) -> bool:
    ticks = _proc_start_ticks(pid)
    return ticks is not None and (start_ticks is None or ticks == start_ticks)


def _read_dir_owner(path: str) -> tuple[int, int] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError:
        return None
    if len(head) < 32:
        return None
    magic, pid, ticks = struct.unpack_from("<I16xIQ", head)
    return (pid, ticks) if magic == 0x444D5452 else None


def cleanup_stale(config: ShmConfig) -> list[str]:
    """Unlink segments with ``config.prefix`` whose writer process is gone; returns the names.

    A live directory owner other than this process means another gateway uses the prefix:
    :class:`~gateway.errors.PublishError`.
    """
    removed: list[str] = []
    me = os.getpid()
    dir_name = f"{config.prefix}.dir"
    owner = _read_dir_owner(os.path.join(config.shm_dir, dir_name))
    if owner is not None and owner[0] != me and _alive(*owner):
        raise PublishError(f"shared-memory prefix {config.prefix!r} is in use by live gateway pid {owner[0]}")
    try:
        names = os.listdir(config.shm_dir)
    except OSError as exc:
        raise PublishError(f"cannot list {config.shm_dir}: {exc}") from exc
    for name in names:
        if not name.startswith(config.prefix + "."):
            continue
        rest = name[len(config.prefix) + 1 :].split(".")
        if name == dir_name:
            stale = owner is None or (owner[0] != me and not _alive(*owner))
        elif len(rest) == 3 and rest[0].isdigit() and rest[1].isdigit():
            pid, ticks = int(rest[0]), int(rest[1])
            stale = pid != me and not _alive(pid, ticks)
        else:
            continue
        if stale:
            try:
                os.unlink(os.path.join(config.shm_dir, name))
                removed.append(name)
            except FileNotFoundError:
                pass
    if removed:
        log.warning("removed %d stale shared-memory segment(s) left by a previous gateway: %s", len(removed), removed)
    return removed


def _create(config: ShmConfig, name: str) -> int:
    """Create a new segment file exclusively with the configured owner/group permissions."""
    path = os.path.join(config.shm_dir, name)
    mode = 0o600 if config.group is None else 0o660
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise PublishError(f"cannot create shared-memory segment {path}: {exc}") from exc
    try:
        os.fchmod(fd, mode)  # exact mode whatever the umask
        if config.group is not None:
            gid = config.group if isinstance(config.group, int) else grp.getgrnam(config.group).gr_gid
            os.fchown(fd, -1, gid)
    except (OSError, KeyError) as exc:
        os.close(fd)
        os.unlink(path)
        raise PublishError(f"cannot set permissions of {path}: {exc}") from exc
    return fd


class ShmDirectory:
    """The gateway's directory of live streams (``<prefix>.dir``); one per gateway process."""

    def __init__(self, config: ShmConfig | None = None) -> None:
        self.config = config or ShmConfig()
        self.start_ticks = _proc_start_ticks(os.getpid()) or 0
        self._names = itertools.count()
        cleanup_stale(self.config)
        self.path = os.path.join(self.config.shm_dir, f"{self.config.prefix}.dir")
        try:
            os.unlink(self.path)  # our own leftover (same pid, e.g. a test re-creating it)
        except FileNotFoundError:
            pass
        fd = _create(self.config, f"{self.config.prefix}.dir")
        self._writer = _native.ShmDirWriter()
        try:
            self._writer._open(fd, self.config.dir_slots, self.start_ticks, time.time_ns())
        except BaseException:
            os.unlink(self.path)
            raise
        finally:
            os.close(fd)
        self.publishers: dict[str, ShmPublisher] = {}
        self.closed = False

    def next_segment_name(self) -> str:
        return f"{self.config.prefix}.{os.getpid()}.{self.start_ticks}.{next(self._names)}"

    def _add(self, pub: ShmPublisher) -> int:
        slot = self._writer.add(pub.stream_id.encode(), pub.segment.encode(), pub.segment_size, time.time_ns())
        self.publishers[pub.segment] = pub
        return int(slot)

    def _remove(self, pub: ShmPublisher, slot: int) -> None:
        self.publishers.pop(pub.segment, None)
        if not self.closed:
            self._writer.remove(slot)

    def close(self) -> None:
        """Close every stream still published, mark the directory ended, remove it."""
        if self.closed:
            return
        for pub in list(self.publishers.values()):
            pub.close()
        self.closed = True
        self._writer._end()
        self._writer._close_map()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> ShmDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class _Plan:
    kwargs: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _format_rings(config: ShmConfig, formats: Sequence[Any], assigned: bool = True) -> list[tuple[int, ...]]:
    """Native specs of format rings: (source 0 = mixed, rate, channels, sample format code, capacity, mirror, gaps, assigned)."""
    specs: list[tuple[int, ...]] = []
    for f in formats:
        rate, channels = int(f.rate_hz), int(f.channels)
        code = {"int16": 0, "float32": 1}.get(f.sample_format)
        if code is None:
            raise ValueError(f"format ring sample format {f.sample_format!r} is not 'int16' or 'float32'")
        cap = _pow2_at_least(math.ceil(rate * config.audio_seconds))
        mirror = max(1, min(rate * config.audio_mirror_ms // 1000, cap // 2))
        specs.append((0, rate, channels, code, cap, mirror, _pow2_at_least(cap // max(1, rate // 50) + 2), int(assigned)))
    return specs


def _plan(stream_id: str, config: ShmConfig, audio: AudioParams | None, video: VideoParams | None,
          deskshare: DeskshareParams | None, info: Mapping[str, Any] | None, formats: Sequence[Any] = (),
          participant_formats: Sequence[Any] = ()) -> _Plan:
    plan = _Plan(info={"stream_id": stream_id, **(info or {})})
    kw = plan.kwargs
    kw["event_bytes"] = _pow2_at_least(config.event_bytes)
    if formats or participant_formats:
        spare = _format_rings(config, participant_formats, assigned=False) * config.max_participants
        kw["formats"] = _format_rings(config, formats) + spare
        plan.info["formats"] = [{"user_id": 0, "rate": f.rate_hz, "sample_format": f.sample_format, "channels": f.channels} for f in formats]
        plan.info["participant_formats"] = [{"rate": f.rate_hz, "sample_format": f.sample_format, "channels": f.channels} for f in participant_formats]
    if audio is not None:
        plan.info["audio"] = params_to_wire(audio)
        rate, channels = audio.rate_hz, int(audio.channel)
        kw.update(audio_rate=rate, audio_channels=channels, audio_codec=int(audio.codec))
        if audio.codec == Codec.L16:
            cap = _pow2_at_least(math.ceil(rate * config.audio_seconds))
            kw.update(
                audio_slots=1 + config.max_participants,
                audio_capacity=cap,
                audio_mirror=max(1, min(rate * config.audio_mirror_ms // 1000, cap // 2)),
                gap_capacity=_pow2_at_least(cap // max(1, rate // 50) + 2),
                jitter_frames=rate * config.jitter_ms // 1000,
            )
        else:
            kw["raw_audio_bytes"] = _pow2_at_least(config.raw_audio_bytes)
    if video is not None:
        plan.info["video"] = params_to_wire(video)
        kw.update(video_codec=int(video.codec), video_bytes=_pow2_at_least(config.video_bytes))
    if deskshare is not None:
        plan.info["deskshare"] = params_to_wire(deskshare)
        kw.update(share_codec=int(deskshare.codec), share_bytes=_pow2_at_least(config.share_bytes))
    return plan


class RingSample(NamedTuple):
    """What the writer can tell about its own audio rings (see :meth:`ShmPublisher.ring_sample`)."""

    #: RTMS timestamp (ms) of the newest committed audio, or None when none was committed since the last sample.
    newest_audio_ms: int | None
    #: participant PCM rings given to a participant so far (the mixed ring excluded).
    participants_in_use: int
    #: participant PCM rings in the segment (``max_participants``; 0 when audio is not PCM).
    participant_slots: int


class _RingProbe:
    """A read-only mapping of the writer's own segment: its ring counters, read without the native writer.

    The ring table is fixed when the segment is laid out, so the offsets are computed once and each
    sample is a few numpy gathers (no per-frame work: only metrics collection calls it).
    """

    def __init__(self, path: str) -> None:
        from .client import DESC, PCM, RING_PCM, STREAM  # the layout docs/SHM.md documents, once

        fd = os.open(path, os.O_RDONLY)
        try:
            self._mm: mmap.mmap | None = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        u32 = np.frombuffer(self._mm, "<u4")
        u64 = np.frombuffer(self._mm, "<u8", len(self._mm) // 8)
        table, count, size = (int(u32[STREAM[k] // 4]) for k in ("ring_table_offset", "ring_count", "ring_desc_size"))
        descs = [table + i * size for i in range(count)]
        pcm = [d for d in descs if u32[(d + DESC["kind"]) // 4] == KIND_AUDIO and u32[(d + DESC["ring_type"]) // 4] == RING_PCM]
        rings = [int(u64[(d + DESC["offset"]) // 8]) for d in pcm]
        self._packets = np.array([(r + PCM["packets"]) // 8 for r in rings], np.intp)
        self._last_ts = np.array([(r + PCM["last_timestamp_ms"]) // 8 for r in rings], np.intp)
        self._generation = np.array([(d + DESC["generation"]) // 4 for d in pcm[1:]], np.intp)  # ring 0 is the mixed one
        self._u32: np.ndarray | None = u32
        self._u64: np.ndarray | None = u64
        self._i64: np.ndarray | None = u64.view("<i8")
        self._packets_seen = 0

    def sample(self) -> RingSample:
        assert self._u32 is not None and self._u64 is not None and self._i64 is not None
        newest: int | None = None
        if len(self._packets):
            packets = int(self._u64[self._packets].sum())
            if packets != self._packets_seen:
                self._packets_seen = packets
                newest = int(self._i64[self._last_ts].max())
        in_use = int(np.count_nonzero(self._u32[self._generation])) if len(self._generation) else 0
        return RingSample(newest, in_use, len(self._generation))

    def close(self) -> None:
        self._u32 = self._u64 = self._i64 = None  # views first: an exported buffer blocks mmap.close
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a caller still holds a view: the mapping goes with it
                pass
            self._mm = None


class ShmPublisher(_native.ShmWriter):
    """One stream's shared-memory segment: a NativeSink for the native listener and a MediaSink.

    The native listener calls its C methods directly; the Python listener calls ``on_audio`` and
    friends; ``formats`` (objects with ``rate_hz``, ``sample_format`` ``"int16"|"float32"`` and
    ``channels``, e.g. :class:`gateway.audio.AudioFormat`) add format rings of the mixed stream,
    written with ``write_format(k, index, bytes, gap)`` in that order (gateway.pipeline does);
    ``participant_formats`` add ``max_participants`` spare groups of rings (indices after the mixed
    formats, group ``g`` ring ``j`` at ``len(formats) + g * len(participant_formats) + j``) that
    ``assign_format(k, user_id)`` gives to a participant; the session calls :meth:`publish_event` for participant/session events and
    :meth:`close` when the stream ends (the segment name is unlinked; readers already attached
    drain what is left and then see the stream ended).
    """

    def __init__(
        self,
        stream_id: str,
        directory: ShmDirectory | None = None,
        *,
        config: ShmConfig | None = None,
        audio: AudioParams | None = None,
        video: VideoParams | None = None,
        deskshare: DeskshareParams | None = None,
        info: Mapping[str, Any] | None = None,
        origin_ms: int | None = None,
        formats: Sequence[Any] = (),
        participant_formats: Sequence[Any] = (),
    ) -> None:
        self.config = config or (directory.config if directory is not None else ShmConfig())
        self.stream_id = stream_id
        self.directory = directory
        start_ticks = directory.start_ticks if directory is not None else (_proc_start_ticks(os.getpid()) or 0)
        self.segment = (
            directory.next_segment_name()
            if directory is not None
            else f"{self.config.prefix}.{os.getpid()}.{start_ticks}.s{id(self):x}"
        )
        self.path = os.path.join(self.config.shm_dir, self.segment)
        plan = _plan(stream_id, self.config, audio, video, deskshare, info, formats, participant_formats)
        fd = _create(self.config, self.segment)
        try:
            self._open(fd, stream_id.encode(), orjson.dumps(plan.info), created_unix_ns=time.time_ns(), **plan.kwargs)
        except BaseException:
            os.unlink(self.path)
            raise
        finally:
            os.close(fd)
        if origin_ms is not None:
            self.set_origin(origin_ms)
        self.closed = False
        self._probe: _RingProbe | None = None
        self._slot = -1
        if directory is not None:
            try:
                self._slot = directory._add(self)
            except (OverflowError, ValueError) as exc:
                self.closed = True
                self._end()
                os.unlink(self.path)
                self._close_map()
                raise PublishError(f"cannot list stream {stream_id!r} in the directory: {exc}") from exc

    # -- MediaSink, Python path (on_audio/on_video/on_share are native) --------------------------

    def on_transcript(self, msg: MediaMessage) -> None:
        rec: dict[str, Any] = {"type": "transcript", "user_id": msg.user_id, "user_name": msg.user_name,
                               "timestamp": msg.timestamp, "text": msg.data}
        for key in ("start_time", "end_time", "language", "attribute", "channel_id"):
            if (value := getattr(msg, key)) is not None:
                rec[key] = value
        self.publish_event(rec)

    def on_chat(self, msg: MediaMessage) -> None:
        self.publish_event({"type": "chat", "user_id": msg.user_id, "user_name": msg.user_name,
                            "timestamp": msg.timestamp, "text": msg.data})

    def on_drop(self, kind: str, reason: str) -> None:
        self.count_drop(_DROP_KINDS.get(kind, 0))

    def publish_event(self, record: Mapping[str, Any]) -> bool:
        """Append a JSON event (participant joined/left, session state...) to the event ring.

        ``record`` should carry ``type``; ``user_id`` and ``timestamp`` (ms), when present, are
        also put in the record header. False if the ring is closed or the record is too large.
        """
        if self.closed:
            return False
        uid = record.get("user_id") or 0
        ts = record.get("timestamp") or 0
        data = orjson.dumps(record)
        return bool(self.write_record(KIND_EVENTS, ENC_JSON, uid if isinstance(uid, int) else 0,
                                      ts if isinstance(ts, int) else 0, data))

    # -- AudioOutput (gateway.audio): the engine's aligned participant and mixed streams ---------

    def write_participant(self, user_id: int, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        """Frames at ``sample_index`` of one participant's ring (int16, channels interleaved).

        Call ``set_origin(engine.clock.origin_ms)`` first so both sides share the media clock.
        """
        self.write_pcm(user_id, sample_index, np.ascontiguousarray(pcm, dtype="<i2").reshape(-1).view(np.uint8), gap)

    def write_mixed(self, sample_index: int, pcm: np.ndarray, gap: bool) -> None:
        """Frames of the mixed stream (ring of user 0)."""
        self.write_participant(0, sample_index, pcm, gap)

    # -- metrics (called at collection time, never per frame) -------------------------------------

    def ring_sample(self) -> RingSample | None:
        """Newest committed audio timestamp (once per commit burst) and participant rings in use; None once closed.

        The writer never waits for readers, so this is what it can honestly report: when its
        newest audio was stamped (Zoom's media clock) and how many of the ``max_participants``
        rings are taken (at all of them, a new speaker recycles the least recently written one).
        """
        if self.closed:
            return None
        if self._probe is None:
            self._probe = _RingProbe(self.path)
        return self._probe.sample()

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """End the stream: readers are woken and see it ended; the segment name is removed."""
        if self.closed:
            return
        self.closed = True
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        self._end()
        if self.directory is not None:
            self.directory._remove(self, self._slot)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._close_map()

    def __enter__(self) -> ShmPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
