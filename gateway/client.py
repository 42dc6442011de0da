"""Consumer library: read the gateway's shared memory from any process (stdlib + numpy only).

Discover streams with :func:`list_streams`, :func:`attach` to one, then read per-participant or
mixed audio (:class:`AudioReader`), video/share frames (:class:`FrameReader`) and events
(:class:`EventReader`). The contract (layout, ordering, overrun and gap semantics) is docs/SHM.md;
the offsets below mirror ``_native/include/rtms_shm.h`` (a test checks they agree).

Zero-copy: audio comes back as numpy views into the ring whenever the run is contiguous, which
is always the case for runs up to the ring's mirror length (1 s by default); longer runs that wrap
are copied. Frames are always contiguous views. A view aliases ring memory the writer will reuse
one ring-length later: check :meth:`AudioReader.intact` / :meth:`FrameReader.intact` after using
it, or copy it, if you may fall that far behind. Readers never slow the writer down.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
import os
import platform
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .errors import GatewayError

__all__ = [
    "AudioReader",
    "Directory",
    "EventReader",
    "Frame",
    "FrameReader",
    "Gap",
    "LayoutError",
    "StreamEnded",
    "StreamInfo",
    "StreamReader",
    "attach",
    "cpu_latency_limit",
    "list_streams",
]

VERSION_MAJOR, VERSION_MINOR = 1, 2
MAGIC_DIR, MAGIC_STREAM, MAGIC_PCM, MAGIC_RECORDS = 0x444D5452, 0x534D5452, 0x414D5452, 0x464D5452
STATE_FREE, STATE_LIVE, STATE_ENDED = 0, 1, 2
KIND_AUDIO, KIND_VIDEO, KIND_SHARE, KIND_EVENTS, KIND_AUDIO_RAW, KIND_AUDIO_FORMAT = 0, 1, 2, 3, 5, 6
SAMPLE_S16, SAMPLE_F32 = 0, 1
_SAMPLE_DTYPES = {SAMPLE_S16: "<i2", SAMPLE_F32: "<f4"}
RING_PCM, RING_RECORDS = 1, 2
REC_KEY, REC_ENC_MASK, REC_PAD = 0x1, 0xFF00, 0x80000000
ENC_BINARY, ENC_JSON, ENC_TRANSCRIPT, ENC_CHAT = 0x0000, 0x0100, 0x0200, 0x0300
RECORD_HEADER = 32
DEFAULT_PREFIX, DEFAULT_SHM_DIR = "rtms-gw", "/dev/shm"

# Byte offsets (see rtms_shm.h).
DIR = {"magic": 0, "version_major": 4, "slot_count": 12, "slot_size": 16, "owner_pid": 20, "owner_start_ticks": 24,
       "state": 40, "change_seq": 64, "futex": 72, "waiters": 76, "header_size": 256}
SLOT = {"seq": 0, "generation": 8, "state": 16, "stream_id_len": 20, "started_unix_ns": 24, "segment_size": 32,
        "segment": 40, "stream_id": 104}
STREAM = {"magic": 0, "version_major": 4, "ring_count": 12, "ring_desc_size": 16, "state": 20, "segment_size": 24,
          "writer_pid": 40, "info_offset": 44, "info_len": 48, "ring_table_offset": 52, "audio_rate": 64,
          "audio_channels": 68, "audio_codec": 70, "origin_ms": 80, "futex": 128, "waiters": 132, "commit_seq": 136,
          "table_seq": 144, "drops": 192, "events": 232, "stream_id": 256, "stream_id_len": 384, "waiter_repairs": 392}
DESC = {"seq": 0, "kind": 8, "ring_type": 12, "offset": 16, "size": 24, "user_id": 32, "generation": 36,
        "user_name_len": 40, "user_name": 48}
PCM = {"frame_bytes": 4, "capacity": 8, "mirror": 16, "rate": 24, "channels": 28, "sample_format": 30, "data_offset": 32, "gap_offset": 40,
       "gap_capacity": 48, "write_index": 64, "start_index": 72, "gap_count": 80, "claim_index": 128, "futex": 192,
       "waiters": 196, "packets": 256, "dropped_packets": 264, "trimmed_frames": 272, "gap_frames": 280,
       "last_timestamp_ms": 288, "gap_first": 296, "rx_ns": 88, "rx_index": 96, "waiter_repairs": 304}
REC = {"kind": 4, "capacity": 8, "data_offset": 16, "index_offset": 24, "index_capacity": 32, "max_record": 36,
       "codec": 40, "write_seq": 64, "write_pos": 72, "claim_pos": 128, "futex": 192, "waiters": 196,
       "dropped_too_large": 256, "bytes_total": 264, "rx_ns": 80, "rx_seq": 88, "waiter_repairs": 272}
RECORD = {"size": 0, "flags": 4, "seq": 8, "timestamp_ms": 16, "user_id": 24}
INT64_MIN = -(1 << 63)
_U64_MAX = (1 << 64) - 1


class StreamEnded(GatewayError, EOFError):
    """The stream ended (or the participant's ring was given to someone else) and is drained."""


class LayoutError(GatewayError, ValueError):
    """A segment is not an rtms-gateway segment, or has an incompatible major version."""


class Gap(NamedTuple):
    """Frames the gateway never received (zeros in the ring), as absolute frame indices."""

    start: int
    length: int


class Frame(NamedTuple):
    """One video/share frame or raw record; ``data`` is a uint8 view into the ring (no copy)."""

    seq: int
    timestamp_ms: int
    user_id: int
    flags: int
    data: np.ndarray

    @property
    def key(self) -> bool:
        return bool(self.flags & REC_KEY)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One live stream as listed in the directory."""

    stream_id: str
    segment: str
    slot: int
    generation: int
    started_unix_ns: int
    segment_size: int
    shm_dir: str = DEFAULT_SHM_DIR


# --------------------------------------------------------------------------- futex (ctypes)

_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98, "riscv64": 98, "ppc64le": 221,
              "s390x": 238, "i686": 240, "armv7l": 240}.get(platform.machine())
_FUTEX_WAIT, _FUTEX_WAKE_OP = 0, 5
_FUTEX_OP_ADD = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
    _syscall = _libc.syscall
    _syscall.restype = ctypes.c_long
except (OSError, AttributeError):  # pragma: no cover - non-Linux
    _libc = None


def _futex_available() -> bool:
    return _libc is not None and _SYS_FUTEX is not None


def _futex_add_args(addr: int, delta: int) -> tuple[Any, ...]:
    """Arguments for an atomic ``*addr += delta`` on a shared u32, done by the kernel.

    FUTEX_WAKE_OP adds atomically and wakes nobody here (both counts 0, and nobody waits on the
    ``waiters`` word itself). The syscall is also a full barrier, which the wake-up protocol
    needs between announcing that we sleep and re-reading the index. Pure stdlib: no compiled
    helper. Prepared once per word: building ctypes arguments costs more than the call.
    """
    op = (_FUTEX_OP_ADD << 28) | ((delta & 0xFFF) << 12)
    return (ctypes.c_long(_SYS_FUTEX or 0), ctypes.c_void_p(addr), ctypes.c_int(_FUTEX_WAKE_OP), ctypes.c_int(0),
            ctypes.c_void_p(0), ctypes.c_void_p(addr), ctypes.c_uint(op))


_NULL = ctypes.c_void_p(0)
_ZERO = ctypes.c_uint(0)


def _futex_wait(addr: ctypes.c_void_p, expected: int, timeout: float | None) -> None:
    ts: Any = _NULL
    if timeout is not None:
        timeout = max(0.0, timeout)
        ts = ctypes.byref(_Timespec(int(timeout), int((timeout % 1.0) * 1e9)))
    _syscall(ctypes.c_long(_SYS_FUTEX or 0), addr, ctypes.c_int(_FUTEX_WAIT), ctypes.c_uint(expected), ts, _NULL, _ZERO)


# --------------------------------------------------------------------------- mapped segment

class _Mapped:
    """An mmap of one segment with u32/u64 views and its base address (for futex calls)."""

    def __init__(self, path: str, writable: bool = True) -> None:
        flags = os.O_RDWR if writable else os.O_RDONLY
        try:
            fd = os.open(path, flags | os.O_CLOEXEC)
        except PermissionError:
            if not writable:
                raise
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            writable = False
        try:
            size = os.fstat(fd).st_size
            if size < 256:
                raise LayoutError(f"{path}: too small for an rtms-gateway segment")
            self.mm = mmap.mmap(fd, size, prot=mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0))
        finally:
            os.close(fd)
        self.size = size
        self.writable = writable
        self.u32 = memoryview(self.mm).cast("B").cast("I")
        self.u64 = memoryview(self.mm).cast("B").cast("Q")
        self.base = 0
        if writable:
            anchor = ctypes.c_char.from_buffer(self.mm)
            self.base = ctypes.addressof(anchor)
            del anchor
        self.can_block = writable and _futex_available()
        self._futex_args: dict[int, tuple[Any, ...]] = {}

    def u32_at(self, off: int) -> int:
        return self.u32[off >> 2]

    def u64_at(self, off: int) -> int:
        return self.u64[off >> 3]

    def i64_at(self, off: int) -> int:
        v = self.u64[off >> 3]
        return v - (1 << 64) if v >= (1 << 63) else v

    def bytes_at(self, off: int, n: int) -> bytes:
        return self.mm[off : off + n]

    def block(self, futex_off: int, waiters_off: int, ready: Callable[[], bool], timeout: float | None) -> bool:
        """Sleep until ``ready()`` or the timeout, with the waiter-count futex protocol (docs/SHM.md)."""
        if ready():
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.can_block:  # read-only mapping or no futex: poll
            while not ready():
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(0.0005)
            return True
        args = self._futex_args.get(futex_off)
        if args is None:
            args = self._futex_args[futex_off] = (ctypes.c_void_p(self.base + futex_off),
                                                  _futex_add_args(self.base + waiters_off, 1),
                                                  _futex_add_args(self.base + waiters_off, -1))
        futex_addr, inc, dec = args
        u32, idx = self.u32, futex_off >> 2
        while True:
            word = u32[idx]
            _syscall(*inc)
            try:
                if ready():
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                _futex_wait(futex_addr, word, remaining)
            finally:
                _syscall(*dec)
            if ready():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def close(self) -> None:
        self.u32.release()
        self.u64.release()
        try:
            self.mm.close()
        except BufferError:  # numpy views still alive: the mapping goes when they do
            pass


# --------------------------------------------------------------------------- directory

def _dir_path(prefix: str, shm_dir: str) -> str:
    return os.path.join(shm_dir, f"{prefix}.dir")


def list_streams(prefix: str = DEFAULT_PREFIX, shm_dir: str = DEFAULT_SHM_DIR) -> list[StreamInfo]:
    """Live streams in the directory of the gateway using ``prefix`` (empty if none runs)."""
    try:
        m = _Mapped(_dir_path(prefix, shm_dir), writable=False)
    except (FileNotFoundError, LayoutError):
        return []
    try:
        return _read_dir(m, shm_dir)
    finally:
        m.close()


def _read_dir(m: _Mapped, shm_dir: str) -> list[StreamInfo]:
    if m.u32_at(DIR["magic"]) != MAGIC_DIR:
        return []
    if m.mm[4] | (m.mm[5] << 8) != VERSION_MAJOR:
        raise LayoutError("stream directory has an incompatible major version")
    count, slot_size, base = m.u32_at(DIR["slot_count"]), m.u32_at(DIR["slot_size"]), DIR["header_size"]
    count = min(count, (m.size - base) // slot_size)
    states = np.frombuffer(m.mm, dtype="<u4", count=count * slot_size // 4, offset=base)[SLOT["state"] // 4 :: slot_size // 4]
    out = []
    for i in np.flatnonzero(states == STATE_LIVE).tolist():
        off = base + i * slot_size
        for _ in range(100):  # seqlock read; the writer changes a slot in well under a microsecond
            seq = m.u64_at(off)
            if seq & 1:
                continue
            state = m.u32_at(off + SLOT["state"])
            gen = m.u64_at(off + SLOT["generation"])
            n = m.u32_at(off + SLOT["stream_id_len"])
            sid = m.bytes_at(off + SLOT["stream_id"], min(n, 128))
            seg = m.bytes_at(off + SLOT["segment"], 64).split(b"\0", 1)[0]
            started = m.u64_at(off + SLOT["started_unix_ns"])
            size = m.u64_at(off + SLOT["segment_size"])
            if m.u64_at(off) == seq:
                if state == STATE_LIVE:
                    out.append(StreamInfo(sid.decode("utf-8", "replace"), seg.decode(), i, gen, started, size, shm_dir))
                break
    return out


class Directory:
    """A gateway's stream directory kept open: list streams and block until they change.

    Survives gateway restarts: a directory file replaced by a new gateway is re-opened.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX, shm_dir: str = DEFAULT_SHM_DIR) -> None:
        self.path = _dir_path(prefix, shm_dir)
        self.shm_dir = shm_dir
        self._m: _Mapped | None = None
        self._ino = -1
        self._seen = -1

    def _current(self) -> _Mapped | None:
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            ino = -1
        if ino != self._ino or self._m is None:
            if self._m is not None:
                self._m.close()
                self._m = None
            self._ino = ino
            if ino != -1:
                try:
                    self._m = _Mapped(self.path)
                except (FileNotFoundError, LayoutError):
                    self._m, self._ino = None, -1
        return self._m

    def streams(self) -> list[StreamInfo]:
        m = self._current()
        if m is None:
            return []
        self._seen = m.u64_at(DIR["change_seq"])
        return _read_dir(m, self.shm_dir)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stream starts or ends (or the gateway restarts) since the last :meth:`streams`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ino, seen = self._ino, self._seen
        while True:
            m = self._current()
            if m is None or self._ino != ino:
                if self._ino != ino:
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)  # no gateway yet: poll for the directory to appear
                continue

            def ready(m: _Mapped = m) -> bool:
                return m.u64_at(DIR["change_seq"]) != seen or m.u32_at(DIR["state"]) == STATE_ENDED

            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            return m.block(DIR["futex"], DIR["waiters"], ready, remaining)

    def close(self) -> None:
        if self._m is not None:
            self._m.close()
            self._m = None

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def cpu_latency_limit(microseconds: int = 0, *, path: str = "/dev/cpu_dma_latency") -> Iterator[bool]:
    """Ask Linux to keep every CPU's wake-up latency under ``microseconds`` while inside (PM QoS).

    A consumer blocked in a futex wait is woken by an inter-processor interrupt; a core that went
    into a deep idle state (or, in a virtual machine, a halted virtual CPU) takes tens of
    microseconds to answer it. Holding ``/dev/cpu_dma_latency`` open with a small value keeps
    idle cores polling instead (tuned's "latency-performance" profile does the same), at the cost
    of power on idle cores. The limit is released when the block ends (or the process dies).
    Yields True if the limit is held, False if the device is missing or not writable (it needs
    root or a udev rule): the caller decides whether that matters.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        yield False
        return
    try:
        os.write(fd, struct.pack("<i", max(0, int(microseconds))))
        yield True
    finally:
        os.close(fd)


def attach(stream: str | StreamInfo, prefix: str = DEFAULT_PREFIX, shm_dir: str = DEFAULT_SHM_DIR) -> StreamReader:
    """Map one live stream (by id, or a :class:`StreamInfo` from :func:`list_streams`)."""
    if isinstance(stream, str):
        found = [s for s in list_streams(prefix, shm_dir) if s.stream_id == stream]
        if not found:
            raise KeyError(f"no live stream {stream!r} under prefix {prefix!r}")
        stream = found[0]
    try:
        return StreamReader(os.path.join(stream.shm_dir, stream.segment))
    except FileNotFoundError:
        raise StreamEnded(f"stream {stream.stream_id!r} ended before it could be attached") from None


# --------------------------------------------------------------------------- stream

@dataclass(frozen=True, slots=True)
class RingInfo:
    """One entry of a stream's ring table."""

    index: int
    kind: int
    ring_type: int
    offset: int
    size: int
    user_id: int
    generation: int
    user_name: str


class StreamReader:
    """An attached stream segment: ring table, info, readers, stream-wide wait."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._m = _Mapped(path)
        m = self._m
        if m.u32_at(0) != MAGIC_STREAM:
            m.close()
            raise LayoutError(f"{path}: not an rtms-gateway stream segment")
        if m.mm[4] | (m.mm[5] << 8) != VERSION_MAJOR:
            m.close()
            raise LayoutError(f"{path}: incompatible layout major version")
        self.stream_id = m.bytes_at(STREAM["stream_id"], min(m.u32_at(STREAM["stream_id_len"]), 128)).decode("utf-8", "replace")
        raw = m.bytes_at(m.u32_at(STREAM["info_offset"]), m.u32_at(STREAM["info_len"]))
        self.info: dict[str, Any] = json.loads(raw) if raw else {}
        self.audio_rate, self.audio_channels, self.audio_codec = struct.unpack_from("<IHH", m.mm, STREAM["audio_rate"])
        self.writer_pid = m.u32_at(STREAM["writer_pid"])
        self._seen_commit = m.u64_at(STREAM["commit_seq"])

    # -- ring table ----------------------------------------------------------------------------

    def rings(self) -> list[RingInfo]:
        m = self._m
        table, n, dsize = m.u32_at(STREAM["ring_table_offset"]), m.u32_at(STREAM["ring_count"]), m.u32_at(STREAM["ring_desc_size"])
        return [self._desc(i, table + i * dsize) for i in range(n)]

    def _desc(self, i: int, off: int) -> RingInfo:
        m = self._m
        for _ in range(1000):
            seq = m.u64_at(off)
            if seq & 1:
                continue
            uid, gen, nlen = m.u32_at(off + DESC["user_id"]), m.u32_at(off + DESC["generation"]), m.u32_at(off + DESC["user_name_len"])
            name = m.bytes_at(off + DESC["user_name"], min(nlen, 80))
            info = RingInfo(i, m.u32_at(off + DESC["kind"]), m.u32_at(off + DESC["ring_type"]), m.u64_at(off + DESC["offset"]),
                            m.u64_at(off + DESC["size"]), uid, gen, name.decode("utf-8", "replace"))
            if m.u64_at(off) == seq:
                return info
        raise LayoutError("ring table entry kept changing (writer stuck mid-update?)")

    def participants(self) -> list[RingInfo]:
        """Audio rings in use (user_id 0 is the mixed stream)."""
        return [r for r in self.rings() if r.kind == KIND_AUDIO and r.generation != 0]

    @property
    def origin_ms(self) -> int | None:
        """RTMS timestamp of audio frame index 0 (None before the first audio packet)."""
        v = self._m.i64_at(STREAM["origin_ms"])
        return None if v == INT64_MIN else v

    @property
    def ended(self) -> bool:
        return self._m.u32_at(STREAM["state"]) == STATE_ENDED

    def drops(self) -> dict[str, int]:
        base = STREAM["drops"]
        return {k: self._m.u64_at(base + 8 * i) for i, k in enumerate(("audio", "video", "share", "transcript", "chat"))}

    # -- readers -------------------------------------------------------------------------------

    def audio(self, user_id: int = 0) -> AudioReader:
        """Reader of one participant's PCM ring (0 = the mixed stream). KeyError if not present."""
        for r in self.rings():
            if r.kind == KIND_AUDIO and r.generation != 0 and r.user_id == user_id:
                return AudioReader(self, r)
        raise KeyError(f"no audio ring for user {user_id} in stream {self.stream_id!r}")

    def mixed(self) -> AudioReader:
        return self.audio(0)

    def formats(self) -> list[AudioReader]:
        """Readers of every format ring in use (1.1): a source (0 = mixed, or a participant) converted
        to a configured rate/format/channels."""
        return [AudioReader(self, r) for r in self.rings() if r.kind == KIND_AUDIO_FORMAT and r.ring_type == RING_PCM and r.generation != 0]

    def audio_format(self, rate: int | None = None, sample_format: str | None = None, channels: int | None = None,
                     user_id: int = 0) -> AudioReader:
        """The format ring of ``user_id`` (0 = mixed) matching the given rate / ``"int16"|"float32"`` / channels.

        Formats are configured on the gateway (``[audio] formats``) and produced once each,
        whoever reads them. KeyError if no ring matches.
        """
        for r in self.formats():
            if (r.user_id == user_id and (rate is None or r.rate == rate) and (channels is None or r.channels == channels)
                    and (sample_format is None or r.sample_format == sample_format)):
                return r
        raise KeyError(f"stream {self.stream_id!r} has no {rate} Hz {sample_format} x{channels} format ring of user {user_id}")

    def _record_ring(self, kind: int) -> RingInfo:
        for r in self.rings():
            if r.kind == kind and r.ring_type == RING_RECORDS:
                return r
        raise KeyError(f"stream {self.stream_id!r} has no ring of kind {kind}")

    def video(self) -> FrameReader:
        return FrameReader(self, self._record_ring(KIND_VIDEO))

    def share(self) -> FrameReader:
        return FrameReader(self, self._record_ring(KIND_SHARE))

    def raw_audio(self) -> FrameReader:
        """Undecoded audio payloads (streams whose codec is not L16)."""
        return FrameReader(self, self._record_ring(KIND_AUDIO_RAW))

    def events(self) -> EventReader:
        return EventReader(self, self._record_ring(KIND_EVENTS))

    # -- waiting -------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Block until anything was committed to any ring since the last wait (or the stream ended)."""
        m = self._m

        def ready() -> bool:
            return m.u64_at(STREAM["commit_seq"]) != self._seen_commit or self.ended

        ok = m.block(STREAM["futex"], STREAM["waiters"], ready, timeout)
        self._seen_commit = m.u64_at(STREAM["commit_seq"])
        return ok

    def close(self) -> None:
        self._m.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- audio

def _rx_stamp(m: _Mapped, seq_off: int, ns_off: int, expect: int) -> int | None:
    """Read a receive stamp under its seqlock (x86-64 keeps these loads in program order)."""
    first = m.u64_at(seq_off)
    t = m.i64_at(ns_off)
    return t if first == expect and m.u64_at(seq_off) == expect and t > 0 else None


class AudioReader:
    """One PCM ring. Indices are frames on the meeting's media clock (frame = one sample per channel).

    ``cursor`` starts at the oldest frame still in the ring; :meth:`read_since` without an
    explicit cursor continues from it and advances it.
    """

    def __init__(self, stream: StreamReader, ring: RingInfo) -> None:
        self.stream = stream
        self.user_id = ring.user_id
        self.user_name = ring.user_name
        self._desc_off = stream._m.u32_at(STREAM["ring_table_offset"]) + ring.index * stream._m.u32_at(STREAM["ring_desc_size"])
        self._generation = ring.generation
        m = self._m = stream._m
        r = self._r = ring.offset
        self.frame_bytes = m.u32_at(r + PCM["frame_bytes"])
        self.capacity = m.u64_at(r + PCM["capacity"])
        self.mirror = m.u64_at(r + PCM["mirror"])
        self.rate = m.u32_at(r + PCM["rate"])
        self.channels = m.u32_at(r + PCM["channels"]) & 0xFFFF
        code = m.u32_at(r + PCM["channels"]) >> 16  # sample_format (1.1; 0 = int16 in 1.0 segments)
        if code not in _SAMPLE_DTYPES:
            raise LayoutError(f"audio ring of user {self.user_id}: unknown sample format {code}")
        #: ``"int16"`` or ``"float32"`` (format rings may hold float32, full scale +-1.0).
        self.sample_format = "int16" if code == SAMPLE_S16 else "float32"
        self.kind = ring.kind
        self._mask = self.capacity - 1
        data = np.frombuffer(m.mm, dtype=_SAMPLE_DTYPES[code], count=(self.capacity + self.mirror) * self.channels,
                             offset=r + m.u64_at(r + PCM["data_offset"]))
        self._pcm = data if self.channels == 1 else data.reshape(-1, self.channels)
        self._gap_cap = m.u32_at(r + PCM["gap_capacity"])
        self._gaps = np.frombuffer(m.mm, dtype="<u8", count=2 * self._gap_cap, offset=r + m.u64_at(r + PCM["gap_offset"])).reshape(-1, 2)
        self._w, self._claim = (r + PCM["write_index"]) >> 3, (r + PCM["claim_index"]) >> 3
        self.cursor = self.oldest()

    # -- indices -------------------------------------------------------------------------------

    @property
    def write_index(self) -> int:
        return self._m.u64[self._w]

    @property
    def start_index(self) -> int:
        return self._m.u64_at(self._r + PCM["start_index"])

    def oldest(self) -> int:
        """Oldest frame index still readable."""
        claim = self._m.u64[self._claim]
        return max(self.start_index, claim - self.capacity if claim > self.capacity else 0)

    def intact(self, index: int) -> bool:
        """True while frame ``index`` has not been overwritten (check after using a view)."""
        if self._m.u32_at(self._desc_off + DESC["generation"]) != self._generation:
            return False  # the ring now belongs to another participant
        claim = self._m.u64[self._claim]
        return claim <= self.capacity or index >= claim - self.capacity

    def index_of(self, timestamp_ms: int) -> int | None:
        """Frame index of an RTMS timestamp on this stream's media clock."""
        origin = self.stream.origin_ms
        return None if origin is None else (timestamp_ms - origin) * self.rate // 1000

    def stats(self) -> dict[str, int]:
        m, r = self._m, self._r
        out = {k: m.u64_at(r + PCM[k]) for k in ("packets", "dropped_packets", "trimmed_frames", "gap_frames", "gap_count",
                                                 "waiter_repairs")}
        out["write_index"] = self.write_index
        return out

    def rx_ns(self, write_index: int | None = None) -> int | None:
        """When the gateway received the frame whose commit made the write index ``write_index``.

        In ``time.monotonic_ns()`` units (CLOCK_MONOTONIC, the same in every process), so
        ``time.monotonic_ns() - reader.rx_ns(w)`` right after a wake-up is the frame-in to
        consumer latency. None when unknown: the writer has moved past ``w`` (default: the
        current write index), or wrote audio it did not receive as one frame (the audio engine).
        """
        return _rx_stamp(self._m, self._r + PCM["rx_index"], self._r + PCM["rx_ns"],
                         self.write_index if write_index is None else write_index)

    def _check_generation(self) -> None:
        d = self._desc_off
        if self._m.u32_at(d + DESC["generation"]) != self._generation or self._m.u64_at(d) & 1:
            raise StreamEnded(f"audio ring of user {self.user_id} was reassigned to another participant")

    # -- reading -------------------------------------------------------------------------------

    def _view(self, start: int, n: int) -> np.ndarray:
        p = start & self._mask
        if p + n <= self.capacity + self.mirror:
            return self._pcm[p : p + n]
        head = self.capacity - p
        return np.concatenate((self._pcm[p : self.capacity], self._pcm[: n - head]))  # copy across the wrap

    def read_latest(self, ms: int) -> np.ndarray:
        """The most recent ``ms`` of audio (or less, if the ring has less); a view when <= mirror."""
        self._check_generation()
        w = self.write_index
        start = max(w - ms * self.rate // 1000, self.oldest())
        if start >= w:
            return self._pcm[:0]
        arr = self._view(start, w - start)
        cut = self.oldest() - start
        self._check_generation()
        return arr[cut:] if cut > 0 else arr

    def read_since(self, cursor: int | None = None, max_frames: int | None = None) -> tuple[np.ndarray, int, int, list[Gap]]:
        """Every frame from ``cursor`` (default: this reader's cursor) to the write index.

        Returns ``(frames, new_cursor, lost, gaps)``: ``lost`` counts frames overwritten before
        they were read (overrun: the cursor fell more than a ring behind); ``gaps`` lists the
        frames inside the returned range that the gateway never received (they read as zeros).
        The array is a view unless it wraps and is longer than the mirror.
        """
        self._check_generation()
        own = cursor is None
        c = self.cursor if own else cursor
        w = self.write_index
        if max(c, self.start_index) >= w:  # nothing new (or the participant's first packet is pending)
            return self._pcm[:0], c, 0, []
        c = max(c, self.start_index)
        lost = 0
        oldest = self.oldest()
        if c < oldest:
            lost, c = oldest - c, oldest
        end = w if max_frames is None else min(w, c + max_frames)
        arr = self._view(c, end - c)
        oldest = self.oldest()  # the writer may have lapped us while we looked: exact recount
        if oldest > c:
            cut = min(oldest, end) - c
            arr, lost, c = arr[cut:], lost + cut, c + cut
        gaps = self.gaps(c, end)
        self._check_generation()  # reassigned while we read: what we have may be the new participant's
        if own:
            self.cursor = end
        return arr, end, lost, gaps

    def gaps(self, start: int, end: int) -> list[Gap]:
        """Missing runs intersecting ``[start, end)``, clipped to it, oldest first."""
        if end <= start:
            return []
        m, r = self._m, self._r
        count = m.u64_at(r + PCM["gap_count"])
        first = max(m.u64_at(r + PCM["gap_first"]), count - self._gap_cap if count > self._gap_cap else 0)
        out: list[Gap] = []
        for n in range(count - 1, first - 1, -1):
            g_start, g_len = (int(x) for x in self._gaps[n & (self._gap_cap - 1)])
            g_end = g_start + g_len
            if g_end <= start:
                break
            if g_start < end:
                s = max(g_start, start)
                out.append(Gap(s, min(g_end, end) - s))
        out.reverse()
        return out

    def wait(self, timeout: float | None = None, cursor: int | None = None) -> bool:
        """Block until frames past ``cursor`` (default: this reader's) exist or the stream ended."""
        c = self.cursor if cursor is None else cursor
        d = self._desc_off

        def ready() -> bool:
            return (self._m.u64[self._w] > c or self.stream.ended
                    or self._m.u32_at(d + DESC["generation"]) != self._generation)

        return self._m.block(self._r + PCM["futex"], self._r + PCM["waiters"], ready, timeout)

    def seek_latest(self) -> int:
        self.cursor = self.write_index
        return self.cursor


# --------------------------------------------------------------------------- frames and events

class FrameReader:
    """A record ring (video, share, raw audio). Cursors are record sequence numbers."""

    def __init__(self, stream: StreamReader, ring: RingInfo) -> None:
        self.stream = stream
        m = self._m = stream._m
        r = self._r = ring.offset
        self.kind = ring.kind
        self.capacity = m.u64_at(r + REC["capacity"])
        self.codec = m.u32_at(r + REC["codec"])
        self.max_record = m.u32_at(r + REC["max_record"])
        self._mask = self.capacity - 1
        self._icap = m.u32_at(r + REC["index_capacity"])
        self._index = (r + m.u64_at(r + REC["index_offset"])) >> 3
        self._data_off = r + m.u64_at(r + REC["data_offset"])
        self._data = np.frombuffer(m.mm, dtype=np.uint8, count=self.capacity, offset=self._data_off)
        self._ws, self._claim = (r + REC["write_seq"]) >> 3, (r + REC["claim_pos"]) >> 3
        self.cursor = self.oldest()

    @property
    def write_seq(self) -> int:
        return self._m.u64[self._ws]

    def _pos(self, seq: int) -> int | None:
        """Byte position of record ``seq`` via the index, or None if that entry was reused."""
        u64 = self._m.u64
        e = self._index + 2 * (seq & (self._icap - 1))
        a = u64[e]
        pos = u64[e + 1]
        return pos if a == seq and u64[e] == seq else None

    def _valid(self, seq: int) -> bool:
        pos = self._pos(seq)
        claim = self._m.u64[self._claim]
        return pos is not None and (claim <= self.capacity or pos >= claim - self.capacity)

    def oldest(self) -> int:
        """Oldest record sequence number still readable."""
        ws = self.write_seq
        s = ws - self._icap if ws > self._icap else 0
        while s < ws and not self._valid(s):
            s += 1
        return s

    def intact(self, frame: Frame) -> bool:
        """True while ``frame``'s bytes have not been overwritten (check after using its view)."""
        return self._valid(frame.seq)

    def stats(self) -> dict[str, int]:
        m, r = self._m, self._r
        return {"records": self.write_seq, "dropped_too_large": m.u64_at(r + REC["dropped_too_large"]),
                "bytes_total": m.u64_at(r + REC["bytes_total"]), "waiter_repairs": m.u64_at(r + REC["waiter_repairs"])}

    def rx_ns(self, write_seq: int | None = None) -> int | None:
        """When the gateway received record ``write_seq - 1`` (see :meth:`AudioReader.rx_ns`)."""
        return _rx_stamp(self._m, self._r + REC["rx_seq"], self._r + REC["rx_ns"],
                         self.write_seq if write_seq is None else write_seq)

    def _records(self, cursor: int | None, max_records: int | None) -> tuple[list[tuple[int, int, int, int, int, int]], int, int]:
        own = cursor is None
        c = self.cursor if own else cursor
        ws = self.write_seq
        if c > ws:
            raise ValueError(f"cursor {c} is ahead of the write sequence {ws}")
        end = ws if max_records is None else min(ws, c + max_records)
        lost = 0
        if c < end and not self._valid(c):
            first = max(c, self.oldest())
            lost, c = first - c, first
            end = max(end, c) if max_records is None else min(ws, c + max_records)
        u32, u64 = self._m.u32, self._m.u64
        recs = []
        next_seq = c
        for seq in range(c, end):
            pos = self._pos(seq)
            if pos is None:  # index entry reused: the writer lapped us; the next call counts it
                break
            off = self._data_off + (pos & self._mask)
            size, flags = u32[off >> 2], u32[(off >> 2) + 1]
            ts = u64[(off >> 3) + 2]
            recs.append((seq, pos, off, size, flags, ts - (1 << 64) if ts >= (1 << 63) else ts))
            next_seq = seq + 1
        # Re-check after reading headers: drop (and count) what the writer overwrote meanwhile.
        drop = 0
        while drop < len(recs) and not self._valid(recs[drop][0]):
            drop += 1
        if drop:
            recs, lost = recs[drop:], lost + drop
        if own:
            self.cursor = next_seq
        return recs, next_seq, lost

    def read_since(self, cursor: int | None = None, max_frames: int | None = None) -> tuple[list[Frame], int, int]:
        """Every frame from ``cursor`` (default: this reader's): ``(frames, new_cursor, lost)``."""
        recs, new_cursor, lost = self._records(cursor, max_frames)
        u32 = self._m.u32
        frames = [Frame(seq, ts, u32[(off >> 2) + 6], flags, self._data[off - self._data_off + RECORD_HEADER : off - self._data_off + RECORD_HEADER + size])
                  for seq, _pos, off, size, flags, ts in recs]
        return frames, new_cursor, lost

    def __iter__(self) -> Iterator[Frame]:
        frames, _, _ = self.read_since()
        return iter(frames)

    def wait(self, timeout: float | None = None, cursor: int | None = None) -> bool:
        """Block until a record past ``cursor`` (default: this reader's) exists or the stream ended."""
        c = self.cursor if cursor is None else cursor

        def ready() -> bool:
            return self._m.u64[self._ws] > c or self.stream.ended

        return self._m.block(self._r + REC["futex"], self._r + REC["waiters"], ready, timeout)


class EventReader(FrameReader):
    """The event ring: transcripts, chat, participant and session events, as dicts (copied)."""

    def read_since(self, cursor: int | None = None, max_frames: int | None = None) -> tuple[list[dict[str, Any]], int, int]:  # type: ignore[override]
        recs, new_cursor, lost = self._records(cursor, max_frames)
        u32 = self._m.u32
        raw = [(seq, ts, u32[(off >> 2) + 6], flags, self._m.bytes_at(off + RECORD_HEADER, size))
               for seq, _pos, off, size, flags, ts in recs]
        # Copies taken; any overwritten meanwhile are counted as lost, never returned torn.
        keep = 0
        while keep < len(raw) and not self._valid(raw[keep][0]):
            keep += 1
        lost += keep
        events = [self._decode(*item) for item in raw[keep:]]
        return events, new_cursor, lost

    @staticmethod
    def _decode(seq: int, ts: int, user_id: int, flags: int, payload: bytes) -> dict[str, Any]:
        enc = flags & REC_ENC_MASK
        if enc == ENC_JSON:
            try:
                event = json.loads(payload)
            except ValueError:
                event = {"type": "invalid", "raw": payload.decode("utf-8", "replace")}
            if not isinstance(event, dict):
                event = {"type": "json", "value": event}
        elif enc in (ENC_TRANSCRIPT, ENC_CHAT):
            event = {"type": "transcript" if enc == ENC_TRANSCRIPT else "chat", "user_id": user_id,
                     "timestamp": ts, "text": payload.decode("utf-8", "replace")}
        else:
            event = {"type": "binary", "user_id": user_id, "timestamp": ts, "data": payload}
        event.setdefault("seq", seq)
        return event
