# Shared-memory writer: one stream segment (audio PCM rings, frame/event record rings) and the
# stream directory. Layout and memory ordering are defined in include/rtms_shm.h and docs/SHM.md;
# gateway/client.py is the reader. The writer never waits for a reader: it publishes with release
# stores, issues a FUTEX_WAKE only when a reader has said it sleeps, and readers detect overrun
# from claim indices. Everything here runs on the event-loop thread (single writer).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, uint64_t, int64_t, INT64_MIN, UINT64_MAX
from libc.string cimport memcpy, memset
from libc.stdlib cimport malloc, realloc, free
from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_FAILED
from posix.unistd cimport ftruncate, getpid

cdef extern from "include/rtms_shm.h" nogil:
    enum:
        RTMS_SHM_VERSION_MAJOR
        RTMS_SHM_VERSION_MINOR
        RTMS_SHM_MAGIC_DIR
        RTMS_SHM_MAGIC_STREAM
        RTMS_SHM_MAGIC_PCM
        RTMS_SHM_MAGIC_RECORDS
        RTMS_STATE_FREE
        RTMS_STATE_LIVE
        RTMS_STATE_ENDED
        RTMS_KIND_AUDIO
        RTMS_KIND_VIDEO
        RTMS_KIND_SHARE
        RTMS_KIND_EVENTS
        RTMS_KIND_AUDIO_RAW
        RTMS_KIND_AUDIO_FORMAT
        RTMS_SAMPLE_S16
        RTMS_SAMPLE_F32
        RTMS_RING_PCM
        RTMS_RING_RECORDS
        RTMS_REC_KEY
        RTMS_REC_ENC_BINARY
        RTMS_REC_ENC_JSON
        RTMS_REC_ENC_TRANSCRIPT
        RTMS_REC_ENC_CHAT
        RTMS_REC_PAD
        RTMS_RECORD_ALIGN
        RTMS_STREAM_ID_MAX
        RTMS_SEGMENT_NAME_MAX
        RTMS_USER_NAME_MAX

    ctypedef struct rtms_dir_header:
        uint32_t magic
        uint16_t version_major
        uint16_t version_minor
        uint32_t header_size
        uint32_t slot_count
        uint32_t slot_size
        uint32_t owner_pid
        uint64_t owner_start_ticks
        uint64_t created_unix_ns
        uint32_t state
        uint64_t change_seq
        uint32_t futex
        uint32_t waiters

    ctypedef struct rtms_dir_slot:
        uint64_t seq
        uint64_t generation
        uint32_t state
        uint32_t stream_id_len
        uint64_t started_unix_ns
        uint64_t segment_size
        char segment[64]
        char stream_id[128]

    ctypedef struct rtms_stream_header:
        uint32_t magic
        uint16_t version_major
        uint16_t version_minor
        uint32_t header_size
        uint32_t ring_count
        uint32_t ring_desc_size
        uint32_t state
        uint64_t segment_size
        uint64_t created_unix_ns
        uint32_t writer_pid
        uint32_t info_offset
        uint32_t info_len
        uint32_t ring_table_offset
        uint32_t flags
        uint32_t audio_rate
        uint16_t audio_channels
        uint16_t audio_codec
        uint16_t video_codec
        uint16_t share_codec
        int64_t origin_ms
        uint32_t futex
        uint32_t waiters
        uint64_t commit_seq
        uint64_t table_seq
        uint64_t drops[5]
        uint64_t events
        char stream_id[128]
        uint32_t stream_id_len
        uint64_t waiter_repairs

    ctypedef struct rtms_ring_desc:
        uint64_t seq
        uint32_t kind
        uint32_t ring_type
        uint64_t offset
        uint64_t size
        uint32_t user_id
        uint32_t generation
        uint32_t user_name_len
        char user_name[80]

    ctypedef struct rtms_pcm_ring:
        uint32_t magic
        uint32_t frame_bytes
        uint64_t capacity
        uint64_t mirror
        uint32_t rate
        uint16_t channels
        uint16_t sample_format
        uint64_t data_offset
        uint64_t gap_offset
        uint32_t gap_capacity
        uint64_t write_index
        uint64_t start_index
        uint64_t gap_count
        uint64_t claim_index
        uint32_t futex
        uint32_t waiters
        uint64_t packets
        uint64_t dropped_packets
        uint64_t trimmed_frames
        uint64_t gap_frames
        int64_t last_timestamp_ms
        uint64_t gap_first
        int64_t rx_ns
        uint64_t rx_index
        uint64_t waiter_repairs

    ctypedef struct rtms_gap:
        uint64_t start
        uint64_t length

    ctypedef struct rtms_record_ring:
        uint32_t magic
        uint32_t kind
        uint64_t capacity
        uint64_t data_offset
        uint64_t index_offset
        uint32_t index_capacity
        uint32_t max_record
        uint32_t codec
        uint64_t write_seq
        uint64_t write_pos
        uint64_t claim_pos
        uint32_t futex
        uint32_t waiters
        uint64_t dropped_too_large
        uint64_t bytes_total
        int64_t rx_ns
        uint64_t rx_seq
        uint64_t waiter_repairs

    ctypedef struct rtms_record:
        uint32_t size
        uint32_t flags
        uint64_t seq
        int64_t timestamp_ms
        uint32_t user_id

    ctypedef struct rtms_index_entry:
        uint64_t seq
        uint64_t pos

    uint64_t rtms_load_acquire_u64(uint64_t* p)
    uint32_t rtms_load_acquire_u32(uint32_t* p)
    void rtms_store_release_u64(uint64_t* p, uint64_t v)
    void rtms_store_release_u32(uint32_t* p, uint32_t v)
    void rtms_store_release_i64(int64_t* p, int64_t v)
    void rtms_store_relaxed_u64(uint64_t* p, uint64_t v)
    void rtms_fence_release()
    void rtms_fence_seq_cst()
    void rtms_notify(uint32_t* futex, uint32_t* waiters)
    long rtms_futex_wake_all(uint32_t* word)
    uint32_t rtms_fetch_add_u32(uint32_t* p, int32_t d)
    int rtms_cas_u32(uint32_t* p, uint32_t expected, uint32_t desired)

DEF _PCM_HEADER = 384
DEF _REC_HEADER = 384
DEF _STREAM_HEADER = 512
DEF _DESC_SIZE = 128
DEF _PAGE = 4096
DEF _MAX_REC_KINDS = 6
DEF _REPAIR_MIN_WAKES = 8       # empty wake-ups in a row before a waiter count is presumed stale


cdef struct _WakeState:
    # Writer-side memory of one futex line, to repair a waiter count left by a reader that died
    # asleep (docs/SHM.md section 6): FUTEX_WAKE reports how many sleepers it woke, so
    # ``waiters - woken`` bounds the stale part of the count from above; its minimum over wake-ups
    # spread over longer than any live reader needs from "I sleep" to sleeping is stale.
    uint32_t empty          # wake-ups in a row where the count exceeded the sleepers woken
    uint32_t min_excess     # smallest excess over them
    int64_t since_ns        # CLOCK_MONOTONIC_COARSE of the first of them


cdef inline void _notify(uint32_t* futex, uint32_t* waiters, _WakeState* st, uint64_t* repairs,
                         int64_t repair_ns) noexcept nogil:
    """rtms_notify plus the repair of stale waiter counts (never blocks, never loses a wake-up).

    The count is lowered with a compare-and-swap from the value read *before* the wake, so a
    reader that registered since (or left) makes it fail; a reader that was in its "registered,
    not yet asleep" window finds the futex word bumped by this wake and does not sleep. A negative
    count (a repaired reader came back and decremented) is set to zero at once.
    """
    cdef uint32_t seen = rtms_load_acquire_u32(waiters)
    cdef long woken
    cdef int64_t excess, now
    if seen == 0:
        st.empty = 0
        return
    rtms_fetch_add_u32(futex, 1)
    woken = rtms_futex_wake_all(futex)
    if <int32_t>seen < 0:
        if rtms_cas_u32(waiters, seen, 0):
            repairs[0] += 1
        st.empty = 0
        return
    excess = <int64_t>seen - (woken if woken > 0 else 0)
    if excess <= 0:
        st.empty = 0
        return
    now = _monotonic_ns()
    if st.empty == 0:
        st.since_ns = now
        st.min_excess = <uint32_t>excess
    elif excess < st.min_excess:
        st.min_excess = <uint32_t>excess
    st.empty += 1
    if st.empty >= _REPAIR_MIN_WAKES and now - st.since_ns >= repair_ns:
        if rtms_cas_u32(waiters, seen, seen - st.min_excess):
            repairs[0] += 1
        st.empty = 0


cdef inline uint64_t _align(uint64_t n, uint64_t a) noexcept nogil:
    return (n + a - 1) & ~(a - 1)


cdef inline bint _pow2(uint64_t n) noexcept nogil:
    return n != 0 and (n & (n - 1)) == 0


cdef struct _PcmSlot:
    rtms_pcm_ring* ring
    rtms_ring_desc* desc
    rtms_gap* gaps
    uint8_t* data
    uint64_t cap
    uint64_t mask
    uint64_t mirror
    uint64_t fb            # frame bytes
    uint64_t write         # writer's copy of write_index
    uint64_t gap_count
    uint64_t last_use      # LRU clock for recycling participant slots
    uint32_t user_id
    uint32_t generation
    bint has_data
    bint name_set
    _WakeState wake


cdef struct _RecSlot:
    rtms_record_ring* ring
    rtms_index_entry* index
    uint8_t* data
    uint64_t cap
    uint64_t mask
    uint64_t imask
    uint64_t seq
    uint64_t pos
    uint64_t max_record
    uint32_t codec
    _WakeState wake


cdef inline void _desc_begin(rtms_ring_desc* d) noexcept nogil:
    # Seqlock write side: odd sequence, then a release fence before the protected stores.
    rtms_store_relaxed_u64(&d.seq, d.seq + 1)
    rtms_fence_release()


cdef inline void _desc_end(rtms_ring_desc* d) noexcept nogil:
    rtms_store_release_u64(&d.seq, d.seq + 1)


cdef bint _h264_has_key(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """True if an Annex-B chunk holds an IDR slice (5) or an SPS (7)."""
    cdef Py_ssize_t i = 0
    cdef uint8_t t
    while i + 3 < n:
        if p[i] == 0 and p[i + 1] == 0 and p[i + 2] == 1:
            t = p[i + 3] & 0x1F
            if t == 5 or t == 7:
                return True
            i += 3
        else:
            i += 1
    return False


cdef class ShmWriter(NativeSink):
    """Writer of one stream segment (see docs/SHM.md). Created empty; ``_open`` maps a file.

    The listener drives it through the C methods (reserve/commit/drop); the Python path through
    ``on_audio``/``on_video``/``on_share`` and ``write_record``. gateway.shm.ShmPublisher is the
    Python subclass that names, creates, registers and removes the segment.
    """

    cdef uint8_t* _base
    cdef size_t _size
    cdef rtms_stream_header* _hdr
    cdef _PcmSlot* _pcm
    cdef int _n_pcm
    cdef _PcmSlot* _fmt        # format rings (RTMS_KIND_AUDIO_FORMAT), fixed at open
    cdef int _n_fmt
    cdef _RecSlot _rec[_MAX_REC_KINDS]
    cdef bint _has_rec[_MAX_REC_KINDS]
    cdef uint32_t _rate, _channels, _codec, _video_codec, _share_codec
    cdef int64_t _origin_ms
    cdef bint _origin_set
    cdef uint64_t _jitter_frames
    cdef uint64_t _use_clock
    # pending reservation (never held across frames)
    cdef int _pend_kind
    cdef _PcmSlot* _pend_pcm
    cdef uint64_t _pend_start, _pend_gap, _pend_trim
    cdef bint _pend_scratch
    cdef bint _pend_is_gap
    cdef int _pend_rec
    cdef uint64_t _pend_pos
    cdef uint32_t _pend_flags
    cdef uint8_t* _scratch
    cdef size_t _scratch_size
    cdef _WakeState _hdr_wake
    cdef int64_t _repair_ns

    def __cinit__(self, *args, **kwargs):
        self._base = NULL
        self._pcm = NULL
        self._fmt = NULL
        self._n_fmt = 0
        self._scratch = NULL
        self._pend_kind = -1
        self._pend_rec = -1
        self._origin_set = False
        self._origin_ms = 0
        self._repair_ns = 2000000000
        self.stamp_rx = True           # the listener stamps each frame's receive time (rx_ns)
        cdef int i
        for i in range(_MAX_REC_KINDS):
            self._has_rec[i] = False

    def __dealloc__(self):
        self._unmap()

    cdef void _unmap(self) noexcept:
        if self._base != NULL:
            munmap(self._base, self._size)
            self._base = NULL
            self._hdr = NULL
        if self._pcm != NULL:
            free(self._pcm)
            self._pcm = NULL
        if self._fmt != NULL:
            free(self._fmt)
            self._fmt = NULL
        if self._scratch != NULL:
            free(self._scratch)
            self._scratch = NULL

    # ------------------------------------------------------------------ set-up

    def _open(self, int fd, bytes stream_id, bytes info, *, uint32_t audio_rate=0, uint32_t audio_channels=1,
              uint32_t audio_codec=0, int audio_slots=0, uint64_t audio_capacity=0, uint64_t audio_mirror=0,
              uint32_t gap_capacity=0, uint32_t video_codec=0, uint64_t video_bytes=0, uint32_t share_codec=0,
              uint64_t share_bytes=0, uint64_t event_bytes=65536, uint64_t raw_audio_bytes=0,
              uint64_t jitter_frames=0, uint64_t created_unix_ns=0, formats=()):
        """Lay out, size (ftruncate) and map the segment behind ``fd``; returns its size in bytes.

        Capacities must be powers of two. ``audio_slots`` counts PCM rings (slot 0 is user 0,
        the mixed stream); with ``raw_audio_bytes`` the audio goes to an undecoded record ring.
        ``formats``: format rings (kind 6), each ``(source_user_id, rate, channels, sample_format,
        capacity, mirror, gap_capacity[, assigned])`` with ``sample_format`` 0 (int16) or 1
        (float32); ``assigned`` False makes a spare ring (generation 0) for :meth:`assign_format`.
        """
        if self._base != NULL:
            raise ValueError("writer already open")
        if len(stream_id) > RTMS_STREAM_ID_MAX:
            raise ValueError("stream id longer than 128 bytes")
        if audio_slots:
            if not _pow2(audio_capacity) or audio_mirror == 0 or audio_mirror > audio_capacity // 2:
                raise ValueError("audio capacity must be a power of two and mirror <= capacity/2")
            if not _pow2(gap_capacity) or audio_rate == 0 or audio_channels == 0:
                raise ValueError("bad audio ring parameters")
        cdef uint64_t rec_bytes[_MAX_REC_KINDS]
        memset(rec_bytes, 0, sizeof(rec_bytes))
        rec_bytes[RTMS_KIND_VIDEO] = video_bytes
        rec_bytes[RTMS_KIND_SHARE] = share_bytes
        rec_bytes[RTMS_KIND_EVENTS] = event_bytes
        rec_bytes[RTMS_KIND_AUDIO_RAW] = raw_audio_bytes
        cdef int k, i
        cdef int n_fmt = len(formats)
        cdef int n_rings = audio_slots + n_fmt
        cdef uint64_t f_cap, f_mirror, f_gaps, f_fb, f_size
        for spec in formats:
            if len(spec) not in (7, 8) or spec[3] not in (RTMS_SAMPLE_S16, RTMS_SAMPLE_F32) or spec[2] not in (1, 2) or spec[1] <= 0:
                raise ValueError(f"bad format ring {spec!r}")
            if not _pow2(spec[4]) or spec[5] == 0 or spec[5] > spec[4] // 2 or not _pow2(spec[6]):
                raise ValueError("format ring capacity must be a power of two and mirror <= capacity/2")
        for k in range(_MAX_REC_KINDS):
            if rec_bytes[k]:
                if not _pow2(rec_bytes[k]) or rec_bytes[k] < 1024:
                    raise ValueError(f"ring size for kind {k} must be a power of two >= 1024")
                n_rings += 1
        # Layout: header, ring table, info JSON, then page-aligned rings.
        cdef uint64_t off = _align(_STREAM_HEADER + n_rings * _DESC_SIZE, 8)
        cdef uint64_t info_off = off
        off = _align(off + len(info), _PAGE)
        cdef uint64_t fb = 2 * audio_channels
        cdef uint64_t pcm_size = _align(_align(_PCM_HEADER + gap_capacity * 16, 64) + (audio_capacity + audio_mirror) * fb, _PAGE)
        cdef uint64_t rec_off[_MAX_REC_KINDS]
        cdef uint64_t rec_icap[_MAX_REC_KINDS]
        cdef uint64_t pcm_off = off
        off += pcm_size * audio_slots
        fmt_offs = []
        for spec in formats:
            f_fb = (2 if spec[3] == RTMS_SAMPLE_S16 else 4) * spec[2]
            f_size = _align(_align(_PCM_HEADER + spec[6] * 16, 64) + (spec[4] + spec[5]) * f_fb, _PAGE)
            fmt_offs.append((off, f_size))
            off += f_size
        for k in range(_MAX_REC_KINDS):
            rec_off[k] = 0
            rec_icap[k] = 0
            if rec_bytes[k]:
                # Index entries: one per 1 KiB of data for frames, per 128 B for small records.
                rec_icap[k] = rec_bytes[k] // (1024 if k == RTMS_KIND_VIDEO or k == RTMS_KIND_SHARE else 128)
                if rec_icap[k] < 64:
                    rec_icap[k] = 64
                rec_off[k] = off
                off += _align(_align(_REC_HEADER + rec_icap[k] * 16, 64) + rec_bytes[k], _PAGE)
        cdef uint64_t size = off
        if ftruncate(fd, <long>size) != 0:
            raise OSError("ftruncate failed for a shared-memory segment")
        cdef void* m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        if m == MAP_FAILED:
            raise OSError("mmap failed for a shared-memory segment")
        self._base = <uint8_t*>m
        self._size = size
        cdef rtms_stream_header* h = <rtms_stream_header*>m
        self._hdr = h
        h.version_major = RTMS_SHM_VERSION_MAJOR
        h.version_minor = RTMS_SHM_VERSION_MINOR
        h.header_size = _STREAM_HEADER
        h.ring_count = n_rings
        h.ring_desc_size = _DESC_SIZE
        h.segment_size = size
        h.created_unix_ns = created_unix_ns
        h.writer_pid = getpid()
        h.info_offset = info_off
        h.info_len = len(info)
        h.ring_table_offset = _STREAM_HEADER
        h.audio_rate = audio_rate
        h.audio_channels = audio_channels
        h.audio_codec = audio_codec
        h.video_codec = video_codec
        h.share_codec = share_codec
        h.origin_ms = INT64_MIN
        memcpy(h.stream_id, <const char*>stream_id, len(stream_id))
        h.stream_id_len = len(stream_id)
        if len(info):
            memcpy(self._base + info_off, <const char*>info, len(info))
        self._rate = audio_rate
        self._channels = audio_channels
        self._codec = audio_codec
        self._video_codec = video_codec
        self._share_codec = share_codec
        self._jitter_frames = jitter_frames
        cdef rtms_ring_desc* desc = <rtms_ring_desc*>(self._base + _STREAM_HEADER)
        cdef int r = 0
        cdef _PcmSlot* s
        cdef uint64_t gap_bytes = _align(_PCM_HEADER + gap_capacity * 16, 64)
        if audio_slots:
            self._pcm = <_PcmSlot*>malloc(sizeof(_PcmSlot) * audio_slots)
            if self._pcm == NULL:
                raise MemoryError()
            memset(self._pcm, 0, sizeof(_PcmSlot) * audio_slots)
            self._n_pcm = audio_slots
        for i in range(audio_slots):
            s = &self._pcm[i]
            s.desc = &desc[r]
            s.desc.kind = RTMS_KIND_AUDIO
            s.desc.ring_type = RTMS_RING_PCM
            s.desc.offset = pcm_off + i * pcm_size
            s.desc.size = pcm_size
            s.ring = <rtms_pcm_ring*>(self._base + s.desc.offset)
            s.ring.frame_bytes = fb
            s.ring.capacity = audio_capacity
            s.ring.mirror = audio_mirror
            s.ring.rate = audio_rate
            s.ring.channels = audio_channels
            s.ring.data_offset = gap_bytes
            s.ring.gap_offset = _PCM_HEADER
            s.ring.gap_capacity = gap_capacity
            s.ring.magic = RTMS_SHM_MAGIC_PCM
            s.gaps = <rtms_gap*>(<uint8_t*>s.ring + _PCM_HEADER)
            s.data = <uint8_t*>s.ring + gap_bytes
            s.cap = audio_capacity
            s.mask = audio_capacity - 1
            s.mirror = audio_mirror
            s.fb = fb
            r += 1
        if audio_slots:
            self._assign(&self._pcm[0], 0)   # the mixed ring always exists, even before audio
        if n_fmt:
            self._fmt = <_PcmSlot*>malloc(sizeof(_PcmSlot) * n_fmt)
            if self._fmt == NULL:
                raise MemoryError()
            memset(self._fmt, 0, sizeof(_PcmSlot) * n_fmt)
            self._n_fmt = n_fmt
        for i in range(n_fmt):
            spec = formats[i]
            f_cap, f_mirror, f_gaps = spec[4], spec[5], spec[6]
            f_fb = (2 if spec[3] == RTMS_SAMPLE_S16 else 4) * spec[2]
            s = &self._fmt[i]
            s.desc = &desc[r]
            s.desc.kind = RTMS_KIND_AUDIO_FORMAT
            s.desc.ring_type = RTMS_RING_PCM
            s.desc.offset = fmt_offs[i][0]
            s.desc.size = fmt_offs[i][1]
            s.desc.user_id = spec[0]
            s.desc.generation = 0 if len(spec) == 8 and not spec[7] else 1   # 0: a spare ring (assign_format)
            s.ring = <rtms_pcm_ring*>(self._base + s.desc.offset)
            s.ring.frame_bytes = f_fb
            s.ring.capacity = f_cap
            s.ring.mirror = f_mirror
            s.ring.rate = spec[1]
            s.ring.channels = spec[2]
            s.ring.sample_format = spec[3]
            s.ring.data_offset = _align(_PCM_HEADER + f_gaps * 16, 64)
            s.ring.gap_offset = _PCM_HEADER
            s.ring.gap_capacity = f_gaps
            s.ring.magic = RTMS_SHM_MAGIC_PCM
            s.gaps = <rtms_gap*>(<uint8_t*>s.ring + _PCM_HEADER)
            s.data = <uint8_t*>s.ring + s.ring.data_offset
            s.cap = f_cap
            s.mask = f_cap - 1
            s.mirror = f_mirror
            s.fb = f_fb
            s.user_id = spec[0]
            s.generation = s.desc.generation
            r += 1
        cdef _RecSlot* rs
        for k in range(_MAX_REC_KINDS):
            if not rec_bytes[k]:
                continue
            self._has_rec[k] = True
            rs = &self._rec[k]
            memset(rs, 0, sizeof(_RecSlot))
            desc[r].kind = k
            desc[r].ring_type = RTMS_RING_RECORDS
            desc[r].offset = rec_off[k]
            desc[r].size = _align(_align(_REC_HEADER + rec_icap[k] * 16, 64) + rec_bytes[k], _PAGE)
            desc[r].generation = 1
            rs.ring = <rtms_record_ring*>(self._base + rec_off[k])
            rs.ring.kind = k
            rs.ring.capacity = rec_bytes[k]
            rs.ring.index_offset = _REC_HEADER
            rs.ring.index_capacity = rec_icap[k]
            rs.ring.data_offset = _align(_REC_HEADER + rec_icap[k] * 16, 64)
            rs.ring.max_record = rec_bytes[k] // 2 - RTMS_RECORD_ALIGN
            rs.ring.codec = video_codec if k == RTMS_KIND_VIDEO else (share_codec if k == RTMS_KIND_SHARE else (audio_codec if k == RTMS_KIND_AUDIO_RAW else 0))
            rs.ring.magic = RTMS_SHM_MAGIC_RECORDS
            rs.index = <rtms_index_entry*>(<uint8_t*>rs.ring + _REC_HEADER)
            for i in range(<int>rec_icap[k]):
                rs.index[i].seq = UINT64_MAX
            rs.data = <uint8_t*>rs.ring + rs.ring.data_offset
            rs.cap = rec_bytes[k]
            rs.mask = rec_bytes[k] - 1
            rs.imask = rec_icap[k] - 1
            rs.max_record = rs.ring.max_record
            rs.codec = rs.ring.codec
            r += 1
        rtms_store_release_u32(&h.state, RTMS_STATE_LIVE)
        rtms_store_release_u32(&h.magic, RTMS_SHM_MAGIC_STREAM)
        return size

    def _end(self):
        """Mark the stream ended and wake every sleeping reader (they drain, then see the end)."""
        if self._base == NULL:
            return
        rtms_store_release_u32(&self._hdr.state, RTMS_STATE_ENDED)
        rtms_fence_seq_cst()
        self._hdr.futex += 1
        rtms_futex_wake_all(&self._hdr.futex)
        cdef int i
        for i in range(self._n_pcm):
            self._pcm[i].ring.futex += 1
            rtms_futex_wake_all(&self._pcm[i].ring.futex)
        for i in range(self._n_fmt):
            self._fmt[i].ring.futex += 1
            rtms_futex_wake_all(&self._fmt[i].ring.futex)
        for i in range(_MAX_REC_KINDS):
            if self._has_rec[i]:
                self._rec[i].ring.futex += 1
                rtms_futex_wake_all(&self._rec[i].ring.futex)

    def _close_map(self):
        """Unmap (readers keep their own mappings; the name is unlinked by the Python side)."""
        self._unmap()

    def set_stamp_rx(self, bint on):
        """Whether the listener stamps frames' receive time into the rings (default on; for benchmarks)."""
        self.stamp_rx = on

    def set_waiter_repair(self, double seconds):
        """How long wake-ups must find nobody before a waiter count is reset (docs/SHM.md 6)."""
        self._repair_ns = <int64_t>(seconds * 1e9)

    @property
    def is_open(self) -> bool:
        return self._base != NULL

    @property
    def segment_size(self) -> int:
        return self._size

    @property
    def origin_ms(self):
        return self._origin_ms if self._origin_set else None

    def set_origin(self, int64_t origin_ms):
        """Fix the media clock origin before the first audio packet (e.g. the rtms_started time)."""
        if self._base == NULL:
            raise ValueError("writer closed")
        if self._origin_set:
            raise ValueError("media clock origin already set")
        self._set_origin(origin_ms)

    cdef inline void _set_origin(self, int64_t ts) noexcept:
        self._origin_ms = ts
        self._origin_set = True
        rtms_store_release_i64(&self._hdr.origin_ms, ts)

    # ------------------------------------------------------------------ PCM rings

    cdef _PcmSlot* _slot_for(self, uint32_t user_id) noexcept:
        cdef int i, victim = -1
        cdef _PcmSlot* s
        self._use_clock += 1
        if user_id == 0:
            s = &self._pcm[0]
            if s.generation == 0:
                self._assign(s, 0)
            s.last_use = self._use_clock
            return s
        for i in range(1, self._n_pcm):
            s = &self._pcm[i]
            if s.generation != 0 and s.user_id == user_id:
                s.last_use = self._use_clock
                return s
        if self._n_pcm < 2:
            return NULL
        for i in range(1, self._n_pcm):   # free slot first, else the least recently written one
            s = &self._pcm[i]
            if s.generation == 0:
                victim = i
                break
            if victim < 0 or s.last_use < self._pcm[victim].last_use:
                victim = i
        s = &self._pcm[victim]
        self._assign(s, user_id)
        s.last_use = self._use_clock
        return s

    cdef void _assign(self, _PcmSlot* s, uint32_t user_id) noexcept:
        # A recycled slot starts over: readers holding the old generation see it change.
        _desc_begin(s.desc)
        s.generation += 1
        s.user_id = user_id
        s.has_data = False
        s.name_set = False
        s.desc.user_id = user_id
        s.desc.generation = s.generation
        s.desc.user_name_len = 0
        s.ring.gap_first = s.gap_count
        rtms_store_relaxed_u64(&s.ring.write_index, 0)
        rtms_store_relaxed_u64(&s.ring.start_index, 0)
        rtms_store_relaxed_u64(&s.ring.claim_index, 0)   # the new participant's clock position is its own
        s.write = 0
        _desc_end(s.desc)
        self._hdr.table_seq += 1

    cdef void _pcm_copy_in(self, _PcmSlot* s, uint64_t index, const uint8_t* src, uint64_t frames) noexcept nogil:
        """Write frames at a logical index (wrapping, keeping the mirror); src NULL writes zeros."""
        cdef uint64_t p, n, m
        if frames > s.cap:
            if src != NULL:
                src += (frames - s.cap) * s.fb
            index += frames - s.cap
            frames = s.cap
        while frames:
            p = index & s.mask
            n = s.cap - p
            if n > frames:
                n = frames
            if src != NULL:
                memcpy(s.data + p * s.fb, src, n * s.fb)
                src += n * s.fb
            else:
                memset(s.data + p * s.fb, 0, n * s.fb)
            if p < s.mirror:
                m = s.mirror - p
                if m > n:
                    m = n
                memcpy(s.data + (s.cap + p) * s.fb, s.data + p * s.fb, m * s.fb)
            index += n
            frames -= n

    cdef uint8_t* _pcm_reserve(self, uint32_t user_id, int64_t timestamp, Py_ssize_t nbytes) except? NULL:
        cdef _PcmSlot* s = self._slot_for(user_id)
        if s == NULL:
            return NULL
        if not self._origin_set:
            self._set_origin(timestamp)
        cdef uint64_t frames = <uint64_t>nbytes // s.fb
        if frames == 0 or frames > s.cap or timestamp < self._origin_ms:  # empty, longer than the ring, or too old
            s.ring.dropped_packets += 1
            return NULL
        return self._pcm_reserve_at(s, <uint64_t>(timestamp - self._origin_ms) * self._rate // 1000, frames, nbytes)

    cdef uint8_t* _pcm_reserve_at(self, _PcmSlot* s, uint64_t start, uint64_t frames, Py_ssize_t nbytes) except? NULL:
        """Reserve ``frames`` at frame index ``start`` of a PCM ring (the rules of docs/SHM.md 4)."""
        cdef uint64_t w
        if not s.has_data:
            w = start
            rtms_store_relaxed_u64(&s.ring.start_index, start)
            s.write = start
        w = s.write
        if start + frames <= w:               # duplicate or older than what readers already have
            s.ring.dropped_packets += 1
            return NULL
        if self._jitter_frames and (start - w if start > w else w - start) <= self._jitter_frames:
            start = w
        cdef uint64_t trim = w - start if start < w else 0
        cdef uint64_t gap = start - w if start > w else 0
        cdef uint64_t end = start + frames
        if trim:
            start = w                          # keep only the part after what is already written
        # Claim before touching memory: readers treat [claim - capacity, ...) as possibly torn.
        rtms_store_relaxed_u64(&s.ring.claim_index, end)
        rtms_fence_release()
        cdef uint64_t fill_from
        cdef uint8_t* grown
        if gap:
            fill_from = w
            if end > s.cap and end - s.cap > fill_from:
                fill_from = end - s.cap
            if fill_from < start:
                self._pcm_copy_in(s, fill_from, NULL, start - fill_from)
        self._pend_kind = RTMS_KIND_AUDIO
        self._pend_pcm = s
        self._pend_start = start
        self._pend_gap = gap
        self._pend_trim = trim
        self._pend_scratch = trim != 0 or frames > s.mirror
        if self._pend_scratch:
            if self._scratch_size < <size_t>nbytes:
                grown = <uint8_t*>realloc(self._scratch, nbytes)
                if grown == NULL:
                    self._pend_kind = -1
                    raise MemoryError()
                self._scratch = grown
                self._scratch_size = nbytes
            return self._scratch
        return s.data + (start & s.mask) * s.fb

    cdef int _pcm_commit(self, int64_t timestamp, Py_ssize_t nbytes, const char* user_name,
                         Py_ssize_t name_len) except -1:
        cdef _PcmSlot* s = self._pend_pcm
        cdef uint64_t frames = <uint64_t>nbytes // s.fb
        cdef uint64_t start = self._pend_start
        cdef uint64_t p, over, m
        cdef bint is_gap = self._pend_is_gap
        cdef int64_t rx_ns = self.rx_ns
        self.rx_ns = 0                         # a later write the listener did not stamp is "unknown"
        self._pend_kind = -1
        self._pend_is_gap = False
        if frames <= self._pend_trim:
            s.ring.dropped_packets += 1
            return 0
        frames -= self._pend_trim
        if self._pend_scratch:
            self._pcm_copy_in(s, start, self._scratch + self._pend_trim * s.fb, frames)
        else:                                  # written in place; keep the mirror identical
            p = start & s.mask
            if p + frames > s.cap:
                over = p + frames - s.cap
                memcpy(s.data, s.data + s.cap * s.fb, over * s.fb)
            elif p < s.mirror:
                m = s.mirror - p
                if m > frames:
                    m = frames
                memcpy(s.data + (s.cap + p) * s.fb, s.data + p * s.fb, m * s.fb)
        cdef rtms_gap* g
        cdef uint64_t g_start = start, g_len = 0
        if self._pend_gap and s.has_data:      # skipped frames before this packet
            g_start = s.write
            g_len = self._pend_gap
        if is_gap:                             # the packet itself stands for missing audio
            g_len += frames
        if g_len:
            g = &s.gaps[(s.gap_count - 1) & (s.ring.gap_capacity - 1)]
            if s.gap_count > s.ring.gap_first and g.start + g.length == g_start:
                # Adjacent to the previous gap: extend it. Only frames past the published write
                # index are added, which readers clip away until write_index covers them.
                rtms_store_release_u64(&g.length, g.length + g_len)
            else:
                g = &s.gaps[s.gap_count & (s.ring.gap_capacity - 1)]
                g.start = g_start
                g.length = g_len
                s.gap_count += 1
                rtms_store_release_u64(&s.ring.gap_count, s.gap_count)
            s.ring.gap_frames += g_len
        s.ring.trimmed_frames += self._pend_trim
        s.ring.packets += 1
        s.ring.last_timestamp_ms = timestamp
        if name_len > 0 and not s.name_set:
            self._set_name(s.desc, user_name, name_len)
            s.name_set = True
        s.has_data = True
        s.write = start + frames
        rtms_store_relaxed_u64(&s.ring.rx_index, UINT64_MAX)   # seqlock over rx_ns (rtms_pcm_rx_ns)
        rtms_fence_release()
        s.ring.rx_ns = rx_ns
        rtms_store_release_u64(&s.ring.rx_index, s.write)
        rtms_store_release_u64(&s.ring.write_index, s.write)
        self._published(&s.ring.futex, &s.ring.waiters, &s.wake, &s.ring.waiter_repairs)
        return 0

    cdef void _set_name(self, rtms_ring_desc* d, const char* name, Py_ssize_t n) noexcept:
        if n > RTMS_USER_NAME_MAX:
            n = RTMS_USER_NAME_MAX
        _desc_begin(d)
        memcpy(d.user_name, name, n)
        d.user_name_len = <uint32_t>n
        _desc_end(d)
        self._hdr.table_seq += 1

    cdef inline void _published(self, uint32_t* futex, uint32_t* waiters, _WakeState* wake,
                                uint64_t* repairs) noexcept:
        # Wake-up protocol: index stored (release) -> full fence -> read the waiter counts.
        rtms_store_release_u64(&self._hdr.commit_seq, self._hdr.commit_seq + 1)
        rtms_fence_seq_cst()
        _notify(futex, waiters, wake, repairs, self._repair_ns)
        _notify(&self._hdr.futex, &self._hdr.waiters, &self._hdr_wake, &self._hdr.waiter_repairs, self._repair_ns)

    # ------------------------------------------------------------------ record rings

    cdef uint8_t* _rec_reserve(self, int k, Py_ssize_t nbytes) except? NULL:
        cdef _RecSlot* rs = &self._rec[k]
        if <uint64_t>nbytes > rs.max_record:
            rs.ring.dropped_too_large += 1
            return NULL
        cdef uint64_t need = _align(RTMS_RECORD_ALIGN + nbytes, RTMS_RECORD_ALIGN)
        cdef uint64_t pos = rs.pos
        cdef uint64_t off = pos & rs.mask
        cdef uint64_t rem = rs.cap - off
        cdef uint64_t rec_pos = pos
        if need > rem:
            rec_pos = pos + rem
        rtms_store_relaxed_u64(&rs.ring.claim_pos, rec_pos + need)
        rtms_fence_release()
        cdef rtms_record* pad
        if rec_pos != pos:                      # filler so that C readers walking records can skip
            pad = <rtms_record*>(rs.data + off)
            pad.size = <uint32_t>(rem - RTMS_RECORD_ALIGN)
            pad.flags = RTMS_REC_PAD
            pad.seq = rs.seq
        self._pend_kind = k
        self._pend_rec = k
        self._pend_pos = rec_pos
        return rs.data + (rec_pos & rs.mask) + RTMS_RECORD_ALIGN

    cdef int _rec_commit(self, uint32_t flags, uint32_t user_id, int64_t timestamp, Py_ssize_t nbytes) except -1:
        cdef _RecSlot* rs = &self._rec[self._pend_rec]
        self._pend_kind = -1
        cdef int64_t rx_ns = self.rx_ns
        self.rx_ns = 0
        cdef uint64_t pos = self._pend_pos
        cdef rtms_record* rec = <rtms_record*>(rs.data + (pos & rs.mask))
        rec.size = <uint32_t>nbytes
        rec.flags = flags
        rec.seq = rs.seq
        rec.timestamp_ms = timestamp
        rec.user_id = user_id
        cdef rtms_index_entry* e = &rs.index[rs.seq & rs.imask]
        rtms_store_relaxed_u64(&e.seq, UINT64_MAX)
        rtms_fence_release()
        e.pos = pos
        rtms_store_release_u64(&e.seq, rs.seq)
        rs.seq += 1
        rs.pos = pos + _align(RTMS_RECORD_ALIGN + nbytes, RTMS_RECORD_ALIGN)
        rs.ring.bytes_total += nbytes
        rtms_store_relaxed_u64(&rs.ring.write_pos, rs.pos)
        rtms_store_relaxed_u64(&rs.ring.rx_seq, UINT64_MAX)    # seqlock over rx_ns (rtms_record_rx_ns)
        rtms_fence_release()
        rs.ring.rx_ns = rx_ns
        rtms_store_release_u64(&rs.ring.rx_seq, rs.seq)
        rtms_store_release_u64(&rs.ring.write_seq, rs.seq)
        self._published(&rs.ring.futex, &rs.ring.waiters, &rs.wake, &rs.ring.waiter_repairs)
        return 0

    cdef uint32_t _frame_flags(self, int kind, const uint8_t* p, Py_ssize_t n) noexcept:
        cdef uint32_t codec = self._video_codec if kind == KIND_VIDEO else self._share_codec
        if codec == 7:   # H.264 (protocol.Codec.H264): key when the chunk carries an IDR or SPS
            return RTMS_REC_KEY if _h264_has_key(p, n) else 0
        return RTMS_REC_KEY  # JPEG/PNG images are self-contained

    # ------------------------------------------------------------------ NativeSink (C path)

    cdef uint8_t* reserve(self, int kind, uint32_t user_id, int64_t timestamp, Py_ssize_t nbytes) except? NULL:
        if self._base == NULL or nbytes < 0:
            return NULL
        if kind == KIND_AUDIO:
            if self._n_pcm:
                return self._pcm_reserve(user_id, timestamp, nbytes)
            if self._has_rec[RTMS_KIND_AUDIO_RAW]:
                return self._rec_reserve(RTMS_KIND_AUDIO_RAW, nbytes)
            return NULL
        if kind == KIND_VIDEO or kind == KIND_SHARE:
            if self._has_rec[kind]:
                return self._rec_reserve(kind, nbytes)
            return NULL
        if kind == KIND_TRANSCRIPT or kind == KIND_CHAT:
            if self._has_rec[RTMS_KIND_EVENTS]:
                return self._rec_reserve(RTMS_KIND_EVENTS, nbytes)
        return NULL

    cdef int commit(self, int kind, uint32_t user_id, int64_t timestamp, Py_ssize_t nbytes,
                    const char* user_name, Py_ssize_t name_len) except -1:
        if self._pend_kind < 0 or self._base == NULL:
            return 0
        if kind == KIND_AUDIO and self._pend_kind == RTMS_KIND_AUDIO:
            return self._pcm_commit(timestamp, nbytes, user_name, name_len)
        cdef uint32_t flags = 0
        cdef const uint8_t* payload = self._rec[self._pend_rec].data + (self._pend_pos & self._rec[self._pend_rec].mask) + RTMS_RECORD_ALIGN
        if kind == KIND_VIDEO or kind == KIND_SHARE:
            flags = self._frame_flags(kind, payload, nbytes)
        elif kind == KIND_TRANSCRIPT:
            flags = RTMS_REC_ENC_TRANSCRIPT
            self._hdr.events += 1
        elif kind == KIND_CHAT:
            flags = RTMS_REC_ENC_CHAT
            self._hdr.events += 1
        return self._rec_commit(flags, user_id, timestamp, nbytes)

    cdef void drop(self, int kind, int reason) noexcept:
        self._pend_kind = -1
        self._pend_is_gap = False
        self.rx_ns = 0
        if self._base != NULL and 0 <= kind < 5:
            self._hdr.drops[kind] += 1

    # ------------------------------------------------------------------ Python path (MediaSink)

    cdef int _write_py(self, int kind, uint32_t user_id, int64_t timestamp, const uint8_t[::1] data,
                       object user_name) except -1:
        cdef Py_ssize_t n = data.shape[0]
        cdef uint8_t* dst = self.reserve(kind, user_id, timestamp, n)
        if dst == NULL:
            return 0
        if n:
            memcpy(dst, &data[0], n)
        cdef bytes name = b""
        if kind == KIND_AUDIO and user_name is not None and self._pend_kind == RTMS_KIND_AUDIO and not self._pend_pcm.name_set:
            name = (<str>user_name).encode("utf-8")
        return self.commit(kind, user_id, timestamp, n, name, len(name))

    def on_audio(self, user_id, user_name, timestamp, data):
        """MediaSink.on_audio: copies the borrowed payload into the participant's ring."""
        self._write_py(KIND_AUDIO, user_id, timestamp, data, user_name)

    def on_video(self, user_id, user_name, timestamp, data):
        self._write_py(KIND_VIDEO, user_id, timestamp, data, None)

    def on_share(self, user_id, user_name, timestamp, data):
        self._write_py(KIND_SHARE, user_id, timestamp, data, None)

    def write_pcm(self, uint32_t user_id, uint64_t index, const uint8_t[::1] data, bint gap=False):
        """Write int16 frames at an explicit frame index of a PCM ring (audio engine output).

        ``index`` is on the stream's media clock (call :meth:`set_origin` with the engine's
        origin first so timestamps map too). ``gap=True`` marks the frames as missing (they are
        written as zeros whatever ``data`` holds). Same rules as packets: older frames are dropped,
        a jump ahead is a gap. False if nothing was written.
        """
        self.rx_ns = 0                          # not a received frame: no receive stamp
        if self._base == NULL or self._n_pcm == 0:
            return False
        cdef Py_ssize_t n = data.shape[0]
        cdef _PcmSlot* s = self._slot_for(user_id)
        if s == NULL or n < <Py_ssize_t>s.fb or <uint64_t>n > s.cap * s.fb:
            return False
        cdef uint8_t* dst = self._pcm_reserve_at(s, index, <uint64_t>n // s.fb, n)
        if dst == NULL:
            return False
        if gap:
            memset(dst, 0, n)
        else:
            memcpy(dst, &data[0], n)
        self._pend_is_gap = gap
        cdef int64_t ts = self._origin_ms + <int64_t>(index * 1000 // self._rate) if self._origin_set else 0
        self._pcm_commit(ts, n, NULL, 0)
        return True

    def set_user_name(self, uint32_t user_id, bytes name):
        """Name the ring of ``user_id`` if it has none yet (the audio engine's path carries no names).

        False if the participant has no ring (or the name is empty).
        """
        cdef int i
        cdef _PcmSlot* s
        if self._base == NULL or not len(name):
            return False
        for i in range(1, self._n_pcm):
            s = &self._pcm[i]
            if s.generation != 0 and s.user_id == user_id:
                if not s.name_set:
                    self._set_name(s.desc, name, len(name))
                    s.name_set = True
                return True
        return False

    def write_format(self, int k, uint64_t index, const uint8_t[::1] data, bint gap=False):
        """Write frames (the ring's sample format, channels interleaved) at ``index`` of format ring ``k``.

        ``index`` is on the media clock at the ring's own rate. Same rules as :meth:`write_pcm`.
        False if nothing was written.
        """
        self.rx_ns = 0
        if self._base == NULL or not (0 <= k < self._n_fmt):
            return False
        cdef _PcmSlot* s = &self._fmt[k]
        cdef Py_ssize_t n = data.shape[0]
        if s.generation == 0 or n < <Py_ssize_t>s.fb or <uint64_t>n > s.cap * s.fb or n % <Py_ssize_t>s.fb:
            return False
        cdef uint8_t* dst = self._pcm_reserve_at(s, index, <uint64_t>n // s.fb, n)
        if dst == NULL:
            return False
        if gap:
            memset(dst, 0, n)
        else:
            memcpy(dst, &data[0], n)
        self._pend_is_gap = gap
        cdef int64_t ts = self._origin_ms + <int64_t>(index * 1000 // s.ring.rate) if self._origin_set else 0
        self._pcm_commit(ts, n, NULL, 0)
        return True

    def assign_format(self, int k, uint32_t user_id):
        """Give format ring ``k`` to the source ``user_id`` (a participant), starting it afresh.

        Its generation grows, so readers of a previous source see it change (like participant rings).
        """
        if self._base == NULL or not (0 <= k < self._n_fmt):
            raise IndexError(f"no format ring {k}")
        cdef _PcmSlot* s = &self._fmt[k]
        _desc_begin(s.desc)
        s.generation += 1
        s.user_id = user_id
        s.has_data = False
        s.desc.user_id = user_id
        s.desc.generation = s.generation
        s.ring.gap_first = s.gap_count
        rtms_store_relaxed_u64(&s.ring.write_index, 0)
        rtms_store_relaxed_u64(&s.ring.start_index, 0)
        rtms_store_relaxed_u64(&s.ring.claim_index, 0)
        s.write = 0
        _desc_end(s.desc)
        self._hdr.table_seq += 1

    @property
    def format_count(self) -> int:
        return self._n_fmt

    def write_record(self, int ring_kind, uint32_t flags, uint32_t user_id, int64_t timestamp, const uint8_t[::1] data):
        """Append one record to a record ring (events: flags carry the encoding). False if dropped."""
        self.rx_ns = 0
        if self._base == NULL or not (0 <= ring_kind < _MAX_REC_KINDS) or not self._has_rec[ring_kind]:
            return False
        cdef Py_ssize_t n = data.shape[0]
        cdef uint8_t* dst = self._rec_reserve(ring_kind, n)
        if dst == NULL:
            return False
        if n:
            memcpy(dst, &data[0], n)
        if ring_kind == RTMS_KIND_EVENTS:
            self._hdr.events += 1
        self._rec_commit(flags, user_id, timestamp, n)
        return True

    def count_drop(self, int kind):
        """Count a media message dropped upstream (kind numbered as msg_type - 14)."""
        self.drop(kind, 0)


cdef class ShmDirWriter:
    """Writer of the stream directory segment ``<prefix>.dir`` (slot table, see docs/SHM.md)."""

    cdef uint8_t* _base
    cdef size_t _size
    cdef rtms_dir_header* _hdr
    cdef uint32_t _slots

    def __cinit__(self, *args, **kwargs):
        self._base = NULL

    def __dealloc__(self):
        if self._base != NULL:
            munmap(self._base, self._size)
            self._base = NULL

    def _open(self, int fd, uint32_t slot_count, uint64_t owner_start_ticks, uint64_t created_unix_ns):
        if self._base != NULL:
            raise ValueError("directory already open")
        cdef size_t size = 256 + <size_t>slot_count * 256
        if ftruncate(fd, <long>size) != 0:
            raise OSError("ftruncate failed for the stream directory")
        cdef void* m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        if m == MAP_FAILED:
            raise OSError("mmap failed for the stream directory")
        self._base = <uint8_t*>m
        self._size = size
        self._slots = slot_count
        self._hdr = <rtms_dir_header*>m
        self._hdr.version_major = RTMS_SHM_VERSION_MAJOR
        self._hdr.version_minor = RTMS_SHM_VERSION_MINOR
        self._hdr.header_size = 256
        self._hdr.slot_count = slot_count
        self._hdr.slot_size = 256
        self._hdr.owner_pid = getpid()
        self._hdr.owner_start_ticks = owner_start_ticks
        self._hdr.created_unix_ns = created_unix_ns
        rtms_store_release_u32(&self._hdr.state, RTMS_STATE_LIVE)
        rtms_store_release_u32(&self._hdr.magic, RTMS_SHM_MAGIC_DIR)
        return size

    cdef rtms_dir_slot* _slot(self, uint32_t i) noexcept:
        return <rtms_dir_slot*>(self._base + 256 + <size_t>i * 256)

    cdef void _changed(self) noexcept:
        rtms_store_release_u64(&self._hdr.change_seq, self._hdr.change_seq + 1)
        rtms_fence_seq_cst()
        rtms_notify(&self._hdr.futex, &self._hdr.waiters)

    def add(self, bytes stream_id, bytes segment, uint64_t segment_size, uint64_t started_unix_ns):
        """Publish a live stream in a free slot; returns the slot number."""
        if self._base == NULL:
            raise ValueError("directory closed")
        if len(stream_id) > RTMS_STREAM_ID_MAX or len(segment) >= RTMS_SEGMENT_NAME_MAX:
            raise ValueError("stream id or segment name too long")
        cdef uint32_t i
        cdef rtms_dir_slot* s
        for i in range(self._slots):
            s = self._slot(i)
            if s.state == RTMS_STATE_FREE:
                rtms_store_relaxed_u64(&s.seq, s.seq + 1)
                rtms_fence_release()
                s.generation += 1
                s.stream_id_len = len(stream_id)
                s.started_unix_ns = started_unix_ns
                s.segment_size = segment_size
                memset(s.segment, 0, RTMS_SEGMENT_NAME_MAX)
                memcpy(s.segment, <const char*>segment, len(segment))
                memcpy(s.stream_id, <const char*>stream_id, len(stream_id))
                s.state = RTMS_STATE_LIVE
                rtms_store_release_u64(&s.seq, s.seq + 1)
                self._changed()
                return i
        raise OverflowError("stream directory full")

    def remove(self, uint32_t slot):
        if self._base == NULL or slot >= self._slots:
            return
        cdef rtms_dir_slot* s = self._slot(slot)
        rtms_store_relaxed_u64(&s.seq, s.seq + 1)
        rtms_fence_release()
        s.state = RTMS_STATE_FREE
        rtms_store_release_u64(&s.seq, s.seq + 1)
        self._changed()

    def _end(self):
        if self._base == NULL:
            return
        rtms_store_release_u32(&self._hdr.state, RTMS_STATE_ENDED)
        self._hdr.futex += 1
        rtms_fence_seq_cst()
        rtms_futex_wake_all(&self._hdr.futex)

    def _close_map(self):
        if self._base != NULL:
            munmap(self._base, self._size)
            self._base = NULL


cdef size_t o(void* field, void* base) noexcept:
    return <size_t>field - <size_t>base


def _shm_layout():
    """Offsets/sizes from the C header, so tests can check gateway/client.py's constants."""
    cdef rtms_stream_header h
    cdef rtms_ring_desc d
    cdef rtms_pcm_ring p
    cdef rtms_record_ring r
    cdef rtms_record rec
    cdef rtms_dir_header dh
    cdef rtms_dir_slot ds
    return {
        "version": (RTMS_SHM_VERSION_MAJOR, RTMS_SHM_VERSION_MINOR),
        "sizeof": {"dir_header": sizeof(rtms_dir_header), "dir_slot": sizeof(rtms_dir_slot),
                   "stream_header": sizeof(rtms_stream_header), "ring_desc": sizeof(rtms_ring_desc),
                   "pcm_ring": sizeof(rtms_pcm_ring), "record_ring": sizeof(rtms_record_ring),
                   "record": sizeof(rtms_record), "gap": sizeof(rtms_gap), "index_entry": sizeof(rtms_index_entry)},
        "stream": {"magic": o(&h.magic, &h), "state": o(&h.state, &h), "ring_count": o(&h.ring_count, &h),
                   "ring_table_offset": o(&h.ring_table_offset, &h), "info_offset": o(&h.info_offset, &h),
                   "info_len": o(&h.info_len, &h), "audio_rate": o(&h.audio_rate, &h),
                   "audio_channels": o(&h.audio_channels, &h), "audio_codec": o(&h.audio_codec, &h),
                   "origin_ms": o(&h.origin_ms, &h), "futex": o(&h.futex, &h), "waiters": o(&h.waiters, &h),
                   "commit_seq": o(&h.commit_seq, &h), "table_seq": o(&h.table_seq, &h),
                   "drops": o(&h.drops[0], &h), "events": o(&h.events, &h), "stream_id": o(&h.stream_id[0], &h),
                   "stream_id_len": o(&h.stream_id_len, &h), "segment_size": o(&h.segment_size, &h),
                   "writer_pid": o(&h.writer_pid, &h), "waiter_repairs": o(&h.waiter_repairs, &h)},
        "desc": {"seq": o(&d.seq, &d), "kind": o(&d.kind, &d), "ring_type": o(&d.ring_type, &d),
                 "offset": o(&d.offset, &d), "size": o(&d.size, &d), "user_id": o(&d.user_id, &d),
                 "generation": o(&d.generation, &d), "user_name_len": o(&d.user_name_len, &d),
                 "user_name": o(&d.user_name[0], &d)},
        "pcm": {"frame_bytes": o(&p.frame_bytes, &p), "capacity": o(&p.capacity, &p), "mirror": o(&p.mirror, &p),
                "rate": o(&p.rate, &p), "channels": o(&p.channels, &p), "sample_format": o(&p.sample_format, &p), "data_offset": o(&p.data_offset, &p),
                "gap_offset": o(&p.gap_offset, &p), "gap_capacity": o(&p.gap_capacity, &p),
                "write_index": o(&p.write_index, &p), "start_index": o(&p.start_index, &p),
                "gap_count": o(&p.gap_count, &p), "claim_index": o(&p.claim_index, &p), "futex": o(&p.futex, &p),
                "waiters": o(&p.waiters, &p), "packets": o(&p.packets, &p), "dropped_packets": o(&p.dropped_packets, &p),
                "trimmed_frames": o(&p.trimmed_frames, &p), "gap_frames": o(&p.gap_frames, &p),
                "last_timestamp_ms": o(&p.last_timestamp_ms, &p), "gap_first": o(&p.gap_first, &p),
                "rx_ns": o(&p.rx_ns, &p), "rx_index": o(&p.rx_index, &p), "waiter_repairs": o(&p.waiter_repairs, &p)},
        "rec": {"kind": o(&r.kind, &r), "capacity": o(&r.capacity, &r), "data_offset": o(&r.data_offset, &r),
                "index_offset": o(&r.index_offset, &r), "index_capacity": o(&r.index_capacity, &r),
                "max_record": o(&r.max_record, &r), "codec": o(&r.codec, &r), "write_seq": o(&r.write_seq, &r),
                "write_pos": o(&r.write_pos, &r), "claim_pos": o(&r.claim_pos, &r), "futex": o(&r.futex, &r),
                "waiters": o(&r.waiters, &r), "dropped_too_large": o(&r.dropped_too_large, &r),
                "bytes_total": o(&r.bytes_total, &r), "rx_ns": o(&r.rx_ns, &r), "rx_seq": o(&r.rx_seq, &r),
                "waiter_repairs": o(&r.waiter_repairs, &r)},
        "record": {"size": o(&rec.size, &rec), "flags": o(&rec.flags, &rec), "seq": o(&rec.seq, &rec),
                   "timestamp_ms": o(&rec.timestamp_ms, &rec), "user_id": o(&rec.user_id, &rec)},
        "dir": {"magic": o(&dh.magic, &dh), "slot_count": o(&dh.slot_count, &dh), "owner_pid": o(&dh.owner_pid, &dh),
                "owner_start_ticks": o(&dh.owner_start_ticks, &dh), "state": o(&dh.state, &dh),
                "change_seq": o(&dh.change_seq, &dh), "futex": o(&dh.futex, &dh), "waiters": o(&dh.waiters, &dh)},
        "slot": {"seq": o(&ds.seq, &ds), "generation": o(&ds.generation, &ds), "state": o(&ds.state, &ds),
                 "stream_id_len": o(&ds.stream_id_len, &ds), "started_unix_ns": o(&ds.started_unix_ns, &ds),
                 "segment_size": o(&ds.segment_size, &ds), "segment": o(&ds.segment[0], &ds),
                 "stream_id": o(&ds.stream_id[0], &ds)},
    }


def _test_write_audio(ShmWriter sink, uint32_t user_id, int64_t timestamp, bytes data, bytes user_name=b"",
                      int64_t rx_ns=0):
    """Test hook: one audio packet through the C path (reserve, copy, commit), like the listener."""
    return _test_write(sink, KIND_AUDIO, user_id, timestamp, data, user_name, rx_ns)


def _test_write(ShmWriter sink, int kind, uint32_t user_id, int64_t timestamp, bytes data, bytes user_name=b"",
                int64_t rx_ns=0):
    """Test hook: one media message of any kind through reserve/commit; False if the sink dropped it.

    ``rx_ns`` stands for the receive time the listener stamps on each frame (0: none).
    """
    cdef Py_ssize_t n = len(data)
    sink.rx_ns = rx_ns
    cdef uint8_t* dst = sink.reserve(kind, user_id, timestamp, n)
    if dst == NULL:
        return False
    if n:
        memcpy(dst, <const char*>data, n)
    sink.commit(kind, user_id, timestamp, n, user_name, len(user_name))
    return True


from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC


def _bench_write(ShmWriter sink, int kind, uint32_t user_id, int64_t ts0, int64_t step_ms, bytes payload, Py_ssize_t count):
    """Benchmark hook: ``count`` messages through reserve/memcpy/commit; returns elapsed ns."""
    cdef timespec a, b
    cdef Py_ssize_t i, n = len(payload)
    cdef const char* src = payload
    cdef uint8_t* dst
    clock_gettime(CLOCK_MONOTONIC, &a)
    for i in range(count):
        dst = sink.reserve(kind, user_id, ts0 + i * step_ms, n)
        if dst != NULL:
            memcpy(dst, src, n)
            sink.commit(kind, user_id, ts0 + i * step_ms, n, NULL, 0)
    clock_gettime(CLOCK_MONOTONIC, &b)
    return (b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec)
