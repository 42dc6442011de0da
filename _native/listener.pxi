# The media-socket listener at C level: a cdef subclass of picows's WSListener.
#
# Fast path (audio/video/share in the usual shapes): scan_with_template() or scan_media() reads
# the frame where picows received it, the base64 is decoded straight into NativeSink memory (or into a reusable scratch
# buffer lent to a Python MediaSink as a memoryview), and no Python object is built per frame
# on the NativeSink path. Everything else -- control messages, keep-alives, transcripts, chat,
# odd or broken shapes -- takes the slow path: orjson + gateway._native_py.classify_media, the
# pure twin's own validation, so the two implementations cannot disagree about odd input.
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcmp, memcpy
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.buffer cimport PyBUF_READ
from cpython.unicode cimport PyUnicode_DecodeUTF8
from picows.picows cimport WSListener, WSFrame, WSTransport, WSMsgType

cdef extern from "Python.h":
    # CPython's memoryview object (public in cpython/memoryobject.h): only its state flags.
    ctypedef struct PyMemoryViewObject:
        int flags
    int _Py_MEMORYVIEW_RELEASED

import logging as _logging

import orjson as _orjson
from gateway import protocol as _protocol
from gateway._native_py import (
    DROP_REASONS as _DROP_REASONS,
    KINDS as _KINDS,
    MediaDrop as _MediaDrop,
    classify_media as _classify_media,
)

_listener_log = _logging.getLogger("gateway.listener")

cdef dict _DROP_CODES = {name: code + 1 for code, name in enumerate(_DROP_REASONS)}
cdef int _N_DROP = 6                 # codes 1..5 (index 0 unused)
DEF _NAME_CACHE = 4             # recent user names kept as str for Python sinks

cdef enum:
    _OK = 0
    _FALLBACK = 1                    # fast path gave up: run the slow path
    _DROPPED = 2


cdef inline int64_t _monotonic_ns() noexcept nogil:
    # CLOCK_MONOTONIC_COARSE: the timeline of time.monotonic_ns() at tick resolution (1-4 ms),
    # about 4x cheaper per frame; last_rx_ns only feeds liveness checks.
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline str _kind_name(int kind):
    return _KINDS[kind] if 0 <= kind < 5 else "unknown"


cdef class MediaListener(WSListener):
    """Media-socket listener: media to the sink, keep-alives answered inline, the rest to control.

    ``sink`` is a ``gateway.sink.MediaSink`` (Python methods; payloads lent as memoryviews valid
    during the call) or a ``NativeSink`` subclass (C calls: reserve, decode in place, commit).
    ``control`` gets ``on_connected(transport)``, ``on_control(doc)``, ``on_disconnected()``.
    Never raises out of a callback and never closes the socket over a bad message: every problem
    is a counted drop (see :meth:`stats`).
    """

    cdef public object transport
    cdef readonly object sink
    cdef readonly object control
    cdef readonly Py_ssize_t max_frame_bytes
    cdef readonly uint64_t frames
    cdef readonly uint64_t media_frames
    cdef readonly uint64_t rx_bytes
    cdef readonly uint64_t keepalives_answered
    cdef readonly uint64_t unknown_types
    cdef readonly uint64_t callback_errors
    cdef readonly uint64_t slow_path          # frames the scanner handed to orjson (native only)
    cdef readonly uint64_t template_hits      # frames read through the learned template (native only)
    cdef ScanTemplate _template
    cdef readonly int64_t last_rx_ns
    cdef uint64_t _drops[6]
    cdef NativeSink _nsink
    cdef tuple _on_binary             # on_audio, on_video, on_share
    cdef object _on_transcript
    cdef object _on_chat
    cdef object _on_drop
    cdef object _on_control
    # MediaSink path: decode target, and the memoryview lent last time (reused when same size).
    cdef bytearray _scratch
    cdef Py_ssize_t _scratch_cap
    cdef object _scratch_view
    cdef object _lent_view
    cdef Py_ssize_t _lent_len
    cdef list _name_bytes
    cdef list _name_str
    cdef int _name_next
    # Fragmented messages (rare): reassembled here.
    cdef bytearray _fragments
    cdef Py_ssize_t _fragment_bytes
    cdef bint _fragments_too_large

    def __init__(self, sink, control, *, Py_ssize_t max_frame_bytes=8 * 1024 * 1024):
        cdef int k
        self.transport = None
        self.sink = sink
        self.control = control
        self.max_frame_bytes = max_frame_bytes
        if isinstance(sink, NativeSink):
            self._nsink = <NativeSink>sink
        else:
            if not hasattr(sink, "on_audio"):
                raise TypeError("sink must be a gateway.sink.MediaSink or a gateway._native.NativeSink")
            self._nsink = None
            self._on_binary = (sink.on_audio, sink.on_video, sink.on_share)
            self._on_transcript = sink.on_transcript
            self._on_chat = sink.on_chat
            self._on_drop = sink.on_drop
        self._on_control = control.on_control
        for k in range(_N_DROP):
            self._drops[k] = 0
        self._scratch_cap = 0
        self._grow_scratch(4096)
        self._lent_len = -1
        self._name_bytes = [None] * _NAME_CACHE
        self._name_str = [None] * _NAME_CACHE
        self._name_next = 0
        self._fragments = None
        self._template.valid = False

    # ------------------------------------------------------------------ picows callbacks

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        try:
            self.control.on_connected(transport)
        except Exception:
            self.callback_errors += 1
            _listener_log.exception("control.on_connected raised")

    cpdef on_ws_disconnected(self, WSTransport transport):
        try:
            self.control.on_disconnected()
        except Exception:
            self.callback_errors += 1
            _listener_log.exception("control.on_disconnected raised")

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef WSMsgType msg_type = frame.msg_type
        if msg_type == WSMsgType.TEXT or msg_type == WSMsgType.BINARY:
            if frame.fin:
                self._on_message(<const uint8_t*>frame.payload_ptr, frame.payload_size)
            else:
                self._fragments = bytearray()
                self._fragment_bytes = 0
                self._fragments_too_large = False
                self._add_fragment(frame)
        elif msg_type == WSMsgType.CONTINUATION:
            if self._fragments is None:
                return
            self._add_fragment(frame)
            if frame.fin:
                payload = self._fragments
                self._fragments = None
                if self._fragments_too_large:
                    self._count_frame(self._fragment_bytes)
                    self._drop(-1, DROP_TOO_LARGE)
                else:
                    self._on_message(<const uint8_t*>PyByteArray_AS_STRING(payload), len(payload))
        elif msg_type == WSMsgType.PING or msg_type == WSMsgType.CLOSE:
            # Replies go to the connected transport (the same object picows passes here).
            reply_to = self.transport if self.transport is not None else transport
            if msg_type == WSMsgType.PING:
                reply_to.send_pong(frame.get_payload_as_bytes())   # only reached with auto-pong off
            else:
                reply_to.send_close(frame.get_close_code(), frame.get_close_message())
                reply_to.disconnect()

    cdef void _add_fragment(self, WSFrame frame) noexcept:
        self._fragment_bytes += frame.payload_size
        if self._fragment_bytes > self.max_frame_bytes:
            self._fragments_too_large = True
            self._fragments = bytearray()
        else:
            self._fragments += frame.get_payload_as_memoryview()

    # ------------------------------------------------------------------ public

    def feed(self, payload, bint binary=False):
        """Test hook: process one complete message exactly as ``on_ws_frame`` would."""
        cdef const uint8_t[::1] view = payload
        cdef uint8_t empty = 0
        self._on_message(&view[0] if view.shape[0] else &empty, view.shape[0])

    @property
    def bytes(self):
        """Payload bytes received (complete messages)."""
        return self.rx_bytes

    @property
    def drops_by_reason(self):
        """Dropped messages by reason (names as in gateway._native_py.DROP_REASONS)."""
        return {name: self._drops[code] for name, code in _DROP_CODES.items()}

    def stats(self):
        """Counters, for metrics and tests (a fresh dict)."""
        drops = self.drops_by_reason
        return {
            "frames": self.frames,
            "media_frames": self.media_frames,
            "bytes": self.rx_bytes,
            "keepalives_answered": self.keepalives_answered,
            "unknown_types": self.unknown_types,
            "callback_errors": self.callback_errors,
            "slow_path": self.slow_path,
            "template_hits": self.template_hits,
            "drops": sum(drops.values()),
            "drops_by_reason": drops,
            "last_rx_ns": self.last_rx_ns,
        }

    # ------------------------------------------------------------------ message path

    cdef inline void _count_frame(self, Py_ssize_t size) noexcept:
        self.frames += 1
        self.rx_bytes += size
        self.last_rx_ns = _monotonic_ns()

    cdef void _drop(self, int kind, int reason) noexcept:
        self._drops[reason] += 1
        if self._nsink is not None:
            self._nsink.drop(kind, reason)
            return
        try:
            self._on_drop(_kind_name(kind), _DROP_REASONS[reason - 1])
        except Exception:
            self.callback_errors += 1
            _listener_log.exception("sink.on_drop raised")

    cdef void _on_message(self, const uint8_t* p, Py_ssize_t n) noexcept:
        cdef MediaScan scan
        cdef int scanned
        cdef timespec ts
        if self._nsink is not None and self._nsink.stamp_rx:
            clock_gettime(CLOCK_MONOTONIC, &ts)     # frame-in time, published with the frame
            self.last_rx_ns = self._nsink.rx_ns = <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec
            self.frames += 1
            self.rx_bytes += n
        else:
            self._count_frame(n)
        if n > self.max_frame_bytes:
            self._drop(-1, DROP_TOO_LARGE)
            return
        scanned = SCAN_FALLBACK
        if self._template.valid:
            scanned = scan_with_template(p, n, &self._template, &scan)
            self.template_hits += scanned == SCAN_MEDIA
        if scanned != SCAN_MEDIA:
            scanned = scan_media(p, n, &scan)
            if scanned == SCAN_MEDIA:
                learn_template(&self._template, p, n, &scan)
        if scanned == SCAN_MEDIA:
            if self._nsink is not None:
                if self._deliver_native(&scan) != _FALLBACK:
                    return
            elif self._deliver_binary(<int>(scan.msg_type - MT_AUDIO), scan.user_id, scan.timestamp, scan.data,
                                      scan.data_len, scan.length, scan.name, scan.name_len, None,
                                      True) != _FALLBACK:
                return
        self.slow_path += 1
        try:
            self._slow_path(p, n)
        except Exception:
            self.callback_errors += 1
            _listener_log.exception("media listener slow path raised")

    cdef inline int _deliver_native(self, const MediaScan* scan) noexcept:
        """The fast path into a NativeSink (what _deliver_binary does with ``fast``): reserve,
        decode in place, commit. One exception frame for both sink calls."""
        cdef int kind = <int>(scan.msg_type - MT_AUDIO)
        cdef Py_ssize_t size = b64_decoded_len(scan.data, scan.data_len)
        cdef Py_ssize_t got
        cdef uint8_t* dst
        cdef bint committing = False
        if size < 0 or (scan.length >= 0 and scan.length != size):
            return _FALLBACK
        try:
            dst = self._nsink.reserve(kind, scan.user_id, scan.timestamp, size)
            if dst == NULL:
                self._drop(kind, DROP_NO_ROOM)
                return _DROPPED
            got = b64_decode_exact(scan.data, scan.data_len, dst, size)
            if got < 0:
                return _FALLBACK     # reservation abandoned; the slow path says why
            self.media_frames += 1
            committing = True
            self._nsink.commit(kind, scan.user_id, scan.timestamp, got, <const char*>scan.name, scan.name_len)
        except Exception:
            self.callback_errors += 1
            if committing:
                _listener_log.exception("NativeSink.commit raised")
                return _OK
            _listener_log.exception("NativeSink.reserve raised")
            return _DROPPED
        return _OK

    cdef int _deliver_binary(self, int kind, uint32_t user_id, int64_t timestamp, const uint8_t* b64,
                             Py_ssize_t b64_len, int64_t length, const uint8_t* name, Py_ssize_t name_len,
                             object name_obj, bint fast) noexcept:
        """Decode and hand over one audio/video/share payload. ``length`` -1: not declared.

        On the fast path every doubt returns _FALLBACK before anything is reported, so the slow
        path (the twin's rules) decides; on the slow path the outcome is final.
        """
        cdef Py_ssize_t size = b64_decoded_len(b64, b64_len)
        cdef Py_ssize_t got
        cdef uint8_t* dst
        if size < 0 or (length >= 0 and length != size):
            if fast:
                return _FALLBACK
            if size < 0 or not self._b64_valid(b64, b64_len, size):
                self._drop(kind, DROP_BAD_BASE64)
            else:
                self._drop(kind, DROP_BAD_FIELD)
            return _DROPPED
        if self._nsink is not None:
            try:
                dst = self._nsink.reserve(kind, user_id, timestamp, size)
            except Exception:
                self.callback_errors += 1
                _listener_log.exception("NativeSink.reserve raised")
                return _DROPPED
            if dst == NULL:
                self._drop(kind, DROP_NO_ROOM)
                return _DROPPED
            got = b64_decode_exact(b64, b64_len, dst, size)
            if got < 0:
                if fast:
                    return _FALLBACK     # reservation abandoned; the slow path says why
                self._drop(kind, DROP_BAD_BASE64)
                return _DROPPED
            self.media_frames += 1
            try:
                self._nsink.commit(kind, user_id, timestamp, got, <const char*>name, name_len)
            except Exception:
                self.callback_errors += 1
                _listener_log.exception("NativeSink.commit raised")
            return _OK
        if size > self._scratch_cap:
            self._grow_scratch(size)
        got = b64_decode_exact(b64, b64_len, <uint8_t*>PyByteArray_AS_STRING(self._scratch), size)
        if got < 0:
            if fast:
                return _FALLBACK
            self._drop(kind, DROP_BAD_BASE64)
            return _DROPPED
        self.media_frames += 1
        try:
            # Same size as last time and not released by the sink (``with data:`` does): reuse it.
            if got != self._lent_len or (<PyMemoryViewObject*>self._lent_view).flags & _Py_MEMORYVIEW_RELEASED:
                self._lent_view = self._scratch_view[:got]
                self._lent_len = got
            if fast and name != NULL:
                name_obj = self._name(name, name_len)
            self._on_binary[kind](user_id, name_obj, timestamp, self._lent_view)
        except Exception:
            self.callback_errors += 1
            _listener_log.exception("media sink raised on %s", _kind_name(kind))
        return _OK

    cdef bint _b64_valid(self, const uint8_t* b64, Py_ssize_t b64_len, Py_ssize_t size) noexcept:
        """Whether the base64 decodes (rare path: length mismatch must rank below bad base64)."""
        if size > self._scratch_cap:
            self._grow_scratch(size)
        return b64_decode_exact(b64, b64_len, <uint8_t*>PyByteArray_AS_STRING(self._scratch), size) >= 0

    cdef void _grow_scratch(self, Py_ssize_t size) noexcept:
        # A new buffer, never a resize: a sink that (wrongly) kept the old view keeps valid memory.
        cdef Py_ssize_t cap = max(size, 2 * self._scratch_cap, 4096)
        self._scratch = bytearray(cap)
        self._scratch_cap = cap
        self._scratch_view = memoryview(self._scratch)
        self._lent_len = -1

    cdef str _name(self, const uint8_t* name, Py_ssize_t name_len):
        """The user name as str, from a small cache of recent names (no allocation on a hit)."""
        cdef int k
        cdef bytes cached
        for k in range(_NAME_CACHE):
            cached = self._name_bytes[k]
            if cached is not None and PyBytes_GET_SIZE(cached) == name_len and \
                    memcmp(PyBytes_AS_STRING(cached), name, name_len) == 0:
                return self._name_str[k]
        k = self._name_next
        self._name_next = (k + 1) % _NAME_CACHE
        self._name_bytes[k] = (<const char*>name)[:name_len]
        self._name_str[k] = PyUnicode_DecodeUTF8(<const char*>name, name_len, NULL)
        return self._name_str[k]

    # ------------------------------------------------------------------ slow path (Python objects)

    cdef _slow_path(self, const uint8_t* p, Py_ssize_t n):
        try:
            doc = _orjson.loads(PyMemoryView_FromMemory(<char*>p, n, PyBUF_READ))
        except _orjson.JSONDecodeError:
            self._drop(-1, DROP_BAD_JSON)
            return
        if type(doc) is not dict:
            self._drop(-1, DROP_BAD_JSON)
            return
        msg_type = doc.get("msg_type")
        if type(msg_type) is not int:
            self._drop(-1, DROP_BAD_FIELD)
            return
        if MT_AUDIO <= msg_type <= MT_CHAT:
            self._slow_media(doc, msg_type)
        elif msg_type == MT_KEEP_ALIVE_REQ:
            self._answer_keep_alive(doc)
            self._call_on_control(doc)
        elif 0 < msg_type <= MT_MAX:
            self._call_on_control(doc)
        else:
            self.unknown_types += 1

    cdef _slow_media(self, dict doc, int msg_type):
        cdef int kind = msg_type - MT_AUDIO
        cdef bytes b64, name_utf8
        cdef int64_t length
        try:
            user_id, user_name, timestamp, data, declared = _classify_media(doc, msg_type)
            if msg_type >= MT_TRANSCRIPT:
                message = _protocol.parse_media(doc)
        except _MediaDrop as drop:
            self._drop(kind, _DROP_CODES[drop.reason])
            return
        except _protocol.ProtocolError:
            self._drop(kind, DROP_BAD_FIELD)
            return
        if msg_type < MT_TRANSCRIPT:
            if not data.isascii():
                self._drop(kind, DROP_BAD_BASE64)
                return
            b64 = data.encode("ascii")
            length = -1
            if declared is not None:
                length = declared if 0 <= declared < (1 << 62) else (1 << 62)  # never a real size
            name_utf8 = user_name.encode("utf-8") if user_name is not None else None
            self._deliver_binary(kind, user_id, timestamp, <const uint8_t*>PyBytes_AS_STRING(b64),
                                 PyBytes_GET_SIZE(b64), length,
                                 <const uint8_t*>PyBytes_AS_STRING(name_utf8) if name_utf8 is not None else NULL,
                                 PyBytes_GET_SIZE(name_utf8) if name_utf8 is not None else 0, user_name, False)
            return
        self.media_frames += 1
        if self._nsink is None:
            try:
                (self._on_transcript if msg_type == MT_TRANSCRIPT else self._on_chat)(message)
            except Exception:
                self.callback_errors += 1
                _listener_log.exception("media sink raised on %s", _kind_name(kind))
            return
        self._deliver_text(kind, message)

    cdef _deliver_text(self, int kind, message):
        """Transcript/chat into a NativeSink: the UTF-8 text through reserve/commit."""
        cdef bytes text = message.data.encode("utf-8")
        cdef bytes name_utf8 = message.user_name.encode("utf-8") if message.user_name is not None else None
        cdef uint8_t* dst
        try:
            dst = self._nsink.reserve(kind, message.user_id, message.timestamp, len(text))
            if dst == NULL:
                self.media_frames -= 1
                self._drop(kind, DROP_NO_ROOM)
                return
            memcpy(dst, PyBytes_AS_STRING(text), len(text))
            self._nsink.commit(kind, message.user_id, message.timestamp, len(text),
                               PyBytes_AS_STRING(name_utf8) if name_utf8 is not None else NULL,
                               len(name_utf8) if name_utf8 is not None else 0)
        except Exception:
            self.callback_errors += 1
            _listener_log.exception("NativeSink raised on %s", _kind_name(kind))

    cdef _answer_keep_alive(self, dict doc):
        transport = self.transport
        if transport is None:
            return
        try:
            transport.send(WSMsgType.TEXT, _protocol.encode(_protocol.build_keep_alive_response(doc)))
        except Exception:
            self.callback_errors += 1
            _listener_log.exception("keep-alive reply failed")
            return
        self.keepalives_answered += 1

    cdef _call_on_control(self, dict doc):
        try:
            self._on_control(doc)
        except Exception:
            self.callback_errors += 1
            _listener_log.exception("control.on_control raised")


# ---------------------------------------------------------------------- sinks for tests and benchmarks


cdef class _RecordingSink(NativeSink):
    """Test NativeSink: records every commit/drop as the tuples tests/native compare."""

    cdef bytearray _buf
    cdef public list calls
    cdef public bint refuse          # reserve() returns NULL (no room)
    cdef public object fail          # "reserve" or "commit": that call raises RuntimeError

    def __init__(self):
        self._buf = bytearray(64)
        self.calls = []
        self.refuse = False
        self.fail = None

    cdef uint8_t* reserve(self, int kind, uint32_t user_id, int64_t timestamp, Py_ssize_t nbytes) except? NULL:
        if self.fail == "reserve":
            raise RuntimeError("reserve failed")
        if self.refuse:
            return NULL
        self._buf = bytearray(nbytes + 1)
        self._buf[nbytes] = 0xA5     # guard byte: the decoder must not write past nbytes
        return <uint8_t*>PyByteArray_AS_STRING(self._buf)

    cdef int commit(self, int kind, uint32_t user_id, int64_t timestamp, Py_ssize_t nbytes,
                    const char* user_name, Py_ssize_t name_len) except -1:
        if self._buf[len(self._buf) - 1] != 0xA5:
            raise AssertionError("decoder wrote past the reservation")
        if self.fail == "commit":
            raise RuntimeError("commit failed")
        name = user_name[:name_len].decode("utf-8") if user_name != NULL else None
        self.calls.append((_kind_name(kind), user_id, name, timestamp, bytes(self._buf[:nbytes])))
        return 0

    cdef void drop(self, int kind, int reason) noexcept:
        self.calls.append(("drop", _kind_name(kind), _DROP_REASONS[reason - 1]))


cdef class _BenchSink(NativeSink):
    """Benchmark NativeSink: a 1 MiB byte ring; reserve hands out the write position, commit advances it."""

    cdef uint8_t* _ring
    cdef bytearray _mem
    cdef Py_ssize_t _size
    cdef Py_ssize_t _pos
    cdef readonly uint64_t commits
    cdef readonly uint64_t committed_bytes
    cdef readonly uint64_t drops

    def __init__(self, Py_ssize_t size=1 << 20):
        self._mem = bytearray(size)
        self._ring = <uint8_t*>PyByteArray_AS_STRING(self._mem)
        self._size = size
        self._pos = 0

    cdef uint8_t* reserve(self, int kind, uint32_t user_id, int64_t timestamp, Py_ssize_t nbytes) except? NULL:
        if nbytes > self._size:
            return NULL
        if self._pos + nbytes > self._size:
            self._pos = 0
        return self._ring + self._pos

    cdef int commit(self, int kind, uint32_t user_id, int64_t timestamp, Py_ssize_t nbytes,
                    const char* user_name, Py_ssize_t name_len) except -1:
        self._pos += nbytes
        self.commits += 1
        self.committed_bytes += nbytes
        return 0

    cdef void drop(self, int kind, int reason) noexcept:
        self.drops += 1


def _bench_feed(MediaListener listener, bytes payload, Py_ssize_t repeat):
    """Benchmark hook: run the listener's message path ``repeat`` times from C (no Python loop)."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(payload)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(payload), k
    for k in range(repeat):
        listener._on_message(p, n)


cdef class _BenchBareListener(WSListener):
    """Benchmark ceiling: a C-level picows listener that only counts frames (no parsing at all).

    ``done`` (an asyncio future) gets ``time.perf_counter_ns()`` when frame number ``total`` arrives;
    ``started`` is taken on connect with the same clock. ``started_cpu``/``ended_cpu``: the
    thread's CPU time (``time.thread_time_ns()``) at the same two points.
    """

    cdef readonly uint64_t seen
    cdef readonly uint64_t total
    cdef readonly object done
    cdef readonly object started
    cdef readonly object started_cpu
    cdef readonly object ended_cpu
    cdef object _clock
    cdef object _cpu_clock

    def __init__(self, uint64_t total, done):
        import time
        self.total = total
        self.done = done
        self._clock = time.perf_counter_ns
        self._cpu_clock = time.thread_time_ns
        self.seen = 0
        self.started = 0
        self.started_cpu = 0
        self.ended_cpu = 0

    cpdef on_ws_connected(self, WSTransport transport):
        self.started_cpu = self._cpu_clock()
        self.started = self._clock()

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        self.seen += 1
        if self.seen == self.total:
            end = self._clock()
            self.ended_cpu = self._cpu_clock()
            self.done.set_result(end)
