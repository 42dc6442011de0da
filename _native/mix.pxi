# Audio kernels for gateway.audio: per-participant staging rings, saturating mixer, format
# conversion (int16 <-> float32, stereo down-mix / up-mix) and table decoders (G.711).
#
# Why native: numpy costs about 1-2 us per call, which is the whole budget of a 20 ms packet
# (DESIGN.md 5); these loops run once per packet or per emitted window with no Python objects.
#
# Staging layout (owned by gateway.audio.AudioEngine): ``buf`` is int16[slots, cap * channels],
# interleaved frames; ``have`` is uint8[slots, cap], 1 where a packet delivered that frame. Both
# are circular over an absolute 64-bit frame index (position = index & (cap - 1), cap a power of
# two). Frames without data are kept at zero, so the mixer needs no mask.
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t
from libc.string cimport memchr, memcpy, memset


# Plain C loops the compiler can vectorise (restrict pointers; -O2 builds keep GCC's "very
# cheap" vectoriser, which rejects these, so they ask for O3 locally).
cdef extern from *:
    """
    #include <stdint.h>
    #include <stddef.h>
    #if defined(__GNUC__) && !defined(__clang__)
    #define GW_VEC __attribute__((optimize("O3")))
    #else
    #define GW_VEC
    #endif
    static inline int16_t gw_sat16(int32_t v) { v = v < -32768 ? -32768 : v; v = v > 32767 ? 32767 : v; return (int16_t)v; }
    static GW_VEC void gw_mix2(const int16_t* __restrict a, const int16_t* __restrict b, int16_t* __restrict o, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) o[i] = gw_sat16((int32_t)a[i] + b[i]);
    }
    static GW_VEC void gw_mix3(const int16_t* __restrict a, const int16_t* __restrict b, const int16_t* __restrict c, int16_t* __restrict o, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) o[i] = gw_sat16((int32_t)a[i] + b[i] + c[i]);
    }
    static GW_VEC void gw_or2(const uint8_t* __restrict a, const uint8_t* __restrict b, uint8_t* __restrict o, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) o[i] = a[i] | b[i];
    }
    static GW_VEC void gw_or3(const uint8_t* __restrict a, const uint8_t* __restrict b, const uint8_t* __restrict c, uint8_t* __restrict o, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) o[i] = a[i] | b[i] | c[i];
    }
    static GW_VEC void gw_acc_add(int32_t* __restrict acc, const int16_t* __restrict a, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) acc[i] += a[i];
    }
    static GW_VEC void gw_or_into(uint8_t* __restrict o, const uint8_t* __restrict a, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) o[i] |= a[i];
    }
    static GW_VEC void gw_sat_store(const int32_t* __restrict acc, int16_t* __restrict o, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) o[i] = gw_sat16(acc[i]);
    }
    static GW_VEC void gw_gain_store(const int32_t* __restrict acc, int16_t* __restrict o, ptrdiff_t n, int32_t g) {
        for (ptrdiff_t i = 0; i < n; i++) o[i] = gw_sat16((int32_t)(((int64_t)acc[i] * g + 16384) >> 15));
    }
    static GW_VEC void gw_i16_to_f32(const int16_t* __restrict a, float* __restrict o, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) o[i] = (float)a[i] * (1.0f / 32768.0f);
    }
    static GW_VEC void gw_down_i16(const int16_t* __restrict a, int16_t* __restrict o, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) o[i] = (int16_t)(((int32_t)a[2 * i] + a[2 * i + 1]) >> 1);
    }
    static GW_VEC void gw_down_f32(const int16_t* __restrict a, float* __restrict o, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) o[i] = ((float)a[2 * i] + (float)a[2 * i + 1]) * (1.0f / 65536.0f);
    }
    static GW_VEC void gw_up_i16(const int16_t* __restrict a, int16_t* __restrict o, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) { o[2 * i] = a[i]; o[2 * i + 1] = a[i]; }
    }
    static GW_VEC void gw_up_f32(const int16_t* __restrict a, float* __restrict o, ptrdiff_t n) {
        for (ptrdiff_t i = 0; i < n; i++) { float v = (float)a[i] * (1.0f / 32768.0f); o[2 * i] = v; o[2 * i + 1] = v; }
    }
    """
    void gw_mix2(const int16_t* a, const int16_t* b, int16_t* o, Py_ssize_t n) nogil
    void gw_mix3(const int16_t* a, const int16_t* b, const int16_t* c, int16_t* o, Py_ssize_t n) nogil
    void gw_or2(const uint8_t* a, const uint8_t* b, uint8_t* o, Py_ssize_t n) nogil
    void gw_or3(const uint8_t* a, const uint8_t* b, const uint8_t* c, uint8_t* o, Py_ssize_t n) nogil
    void gw_acc_add(int32_t* acc, const int16_t* a, Py_ssize_t n) nogil
    void gw_or_into(uint8_t* o, const uint8_t* a, Py_ssize_t n) nogil
    void gw_sat_store(const int32_t* acc, int16_t* o, Py_ssize_t n) nogil
    void gw_gain_store(const int32_t* acc, int16_t* o, Py_ssize_t n, int32_t g) nogil
    void gw_i16_to_f32(const int16_t* a, float* o, Py_ssize_t n) nogil
    void gw_down_i16(const int16_t* a, int16_t* o, Py_ssize_t n) nogil
    void gw_down_f32(const int16_t* a, float* o, Py_ssize_t n) nogil
    void gw_up_i16(const int16_t* a, int16_t* o, Py_ssize_t n) nogil
    void gw_up_f32(const int16_t* a, float* o, Py_ssize_t n) nogil


cdef inline int16_t _sat16(int32_t v) noexcept nogil:
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return <int16_t>v


def audio_f32_to_i16(const float[::1] src, int16_t[::1] dst):
    """float32 -> int16, rounded to nearest and saturated."""
    cdef Py_ssize_t i, n = src.shape[0]
    cdef float v
    if dst.shape[0] < n:
        raise ValueError("audio_f32_to_i16: dst too small")
    with nogil:
        for i in range(n):
            v = src[i] * 32768.0
            if v >= 32767.0:
                dst[i] = 32767
            elif v <= -32768.0:
                dst[i] = -32768
            elif v >= 0:
                dst[i] = <int16_t>(v + 0.5)
            else:
                dst[i] = <int16_t>(v - 0.5)


def audio_table_decode(const uint8_t[::1] src, const int16_t[::1] table, int16_t[::1] dst):
    """Byte codes -> int16 through a 256-entry table (G.711 A-law and mu-law)."""
    cdef Py_ssize_t i, n = src.shape[0]
    if table.shape[0] != 256 or dst.shape[0] < n:
        raise ValueError("audio_table_decode: table must have 256 entries and dst room for every code")
    with nogil:
        for i in range(n):
            dst[i] = table[src[i]]
    return n


from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from libc.stdlib cimport malloc, free


cdef class AudioStage:
    """One meeting's staging rings with cached pointers: the per-packet and per-window hot path.

    ``buf`` int16[slots, cap * channels] and ``have`` uint8[slots, cap] (numpy, for Python-side
    views), circular over the absolute frame index. ``mix_out``/``mix_have`` hold the last
    :meth:`mix` result linearly (frame 0 = the ``start`` passed). States returned by
    :meth:`state` and :meth:`mix`: 0 = all gap, 1 = all data, 2 = both.
    """

    cdef readonly object buf
    cdef readonly object have
    cdef readonly object mix_out
    cdef readonly object mix_have
    cdef readonly Py_ssize_t cap
    cdef readonly Py_ssize_t channels
    cdef readonly Py_ssize_t slots
    cdef Py_ssize_t mask
    cdef int16_t* _buf
    cdef uint8_t* _have
    cdef int16_t* _mix
    cdef uint8_t* _mixh
    cdef int32_t* _acc
    cdef int32_t* _mix_slots
    cdef int32_t _gain_q15
    cdef Py_ssize_t _nmix
    cdef int64_t* _high
    # media clock and window (see gateway.audio): set by configure()
    cdef readonly int64_t origin_ms
    cdef readonly int64_t rate_hz
    cdef readonly int64_t window
    cdef readonly int64_t quantum
    cdef readonly int64_t snap
    cdef public int64_t closed
    cdef readonly int64_t max_start
    cdef readonly int64_t need
    # counters (read by gateway.audio.AudioEngine.stats)
    cdef readonly int64_t packets
    cdef readonly int64_t frames
    cdef readonly int64_t duplicates
    cdef readonly int64_t overlap_frames
    cdef readonly int64_t reorders
    cdef readonly int64_t late_packets
    cdef readonly int64_t late_frames
    cdef readonly int64_t snapped
    cdef readonly int64_t empty
    cdef readonly int64_t oversized

    def __cinit__(self, Py_ssize_t slots, Py_ssize_t cap, Py_ssize_t channels):
        import numpy as np
        if cap <= 0 or cap & (cap - 1) or channels not in (1, 2) or slots < 0:
            raise ValueError("AudioStage: cap must be a power of two, channels 1 or 2")
        self.cap = cap
        self.mask = cap - 1
        self.channels = channels
        self.slots = 0
        self._acc = <int32_t*>malloc(cap * channels * sizeof(int32_t))
        self._mix_slots = NULL
        self._nmix = 0
        self._high = NULL
        self._gain_q15 = 32768
        self.rate_hz = 16000
        self.max_start = -1
        if self._acc == NULL:
            raise MemoryError()
        self.mix_out = np.zeros(cap * channels, dtype=np.int16)
        self.mix_have = np.zeros(cap, dtype=np.uint8)
        cdef int16_t[::1] mo = self.mix_out
        cdef uint8_t[::1] mh = self.mix_have
        self._mix = &mo[0]
        self._mixh = &mh[0]
        self.buf = None
        self.have = None
        self.grow(slots)

    def __dealloc__(self):
        free(self._acc)
        free(self._mix_slots)
        free(self._high)

    def grow(self, Py_ssize_t slots):
        """Make room for ``slots`` participants (existing rows are kept)."""
        import numpy as np
        cdef Py_ssize_t k
        cdef int64_t* high
        if slots <= self.slots and self.buf is not None:
            return
        high = <int64_t*>malloc(max(slots, 1) * sizeof(int64_t))
        if high == NULL:
            raise MemoryError()
        for k in range(max(slots, 1)):
            high[k] = self._high[k] if self._high != NULL and k < self.slots else -1
        free(self._high)
        self._high = high
        buf = np.zeros((max(slots, 1), self.cap * self.channels), dtype=np.int16)
        have = np.zeros((max(slots, 1), self.cap), dtype=np.uint8)
        if self.buf is not None and self.slots:
            buf[: self.slots] = self.buf[: self.slots]
            have[: self.slots] = self.have[: self.slots]
        cdef int16_t[:, ::1] b = buf
        cdef uint8_t[:, ::1] h = have
        self._buf = &b[0, 0]
        self._have = &h[0, 0]
        self.buf = buf
        self.have = have
        self.slots = max(slots, 1)

    def configure(self, int64_t origin_ms, int64_t rate_hz, int64_t window, int64_t quantum, int64_t snap):
        """The media clock (index = (ts - origin_ms) * rate_hz // 1000) and the reorder window."""
        if rate_hz <= 0 or window < 0 or quantum <= 0 or snap < 0:
            raise ValueError("AudioStage.configure: bad clock or window")
        self.origin_ms = origin_ms
        self.rate_hz = rate_hz
        self.window = window
        self.quantum = quantum
        self.snap = snap

    cdef inline int64_t _index(self, int64_t ts) noexcept:
        cdef int64_t num = (ts - self.origin_ms) * self.rate_hz
        if num >= 0:
            return num // 1000
        return -((-num + 999) // 1000)  # floor, also before the origin

    def index_of(self, Py_ssize_t slot, int64_t ts):
        """Sample index of a packet of ``slot`` at ``ts``, snapped like :meth:`ingest` does."""
        cdef int64_t idx = self._index(ts)
        cdef int64_t high
        self._check(slot)
        high = self._high[slot]
        if high >= 0 and idx != high and -self.snap <= idx - high <= self.snap:
            idx = high
        return idx

    def high_end(self, Py_ssize_t slot):
        """End index of ``slot``'s newest packet (-1 before its first)."""
        self._check(slot)
        return self._high[slot]

    def ingest(self, Py_ssize_t slot, int64_t ts, object data):
        """One packet of ``slot`` at ``ts``: clock, snap, late/duplicate/reorder accounting, staging.

        Returns -1 when nothing is due, an index ``t >= 0`` when ``[closed, t)`` is now closed and
        must be emitted (the packet is already staged), or -2 when the packet is so far ahead that
        ``[closed, need)`` must be emitted first (nothing was changed: call again after emitting).
        """
        cdef Py_buffer view
        cdef int64_t r
        self._check(slot)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            r = self._ingest(slot, ts, <const uint8_t*>view.buf, view.len // (2 * self.channels))
        finally:
            PyBuffer_Release(&view)
        return r

    cdef int64_t _ingest(self, Py_ssize_t slot, int64_t ts, const uint8_t* src, Py_ssize_t n) except -3:
        cdef int64_t idx = self._index(ts)
        cdef int64_t high = self._high[slot]
        cdef int64_t late, end, t, target = -1
        cdef Py_ssize_t present
        if n <= 0:
            self.empty += 1
            return -1
        if n > self.cap // 2:  # far longer than any negotiated packet: never let it move the clock
            self.oversized += 1
            return -1
        if high >= 0 and idx != high and -self.snap <= idx - high <= self.snap:
            idx = high
            self.snapped += 1
        if idx < self.closed:
            late = self.closed - idx
            if late > n:
                late = n
            self.late_frames += late
            if late == n:
                self.packets += 1
                self.late_packets += 1
                return -1
            src += late * 2 * self.channels
            idx = self.closed
            n -= late
        end = idx + n
        if end - self.closed > self.cap:
            self.need = end - self.cap
            return -2
        self.packets += 1
        if idx > self.max_start:
            self.max_start = idx
            t = idx - self.window
            if t - self.closed >= self.quantum:
                target = t
        present = self._write(slot, idx, src, n)
        if present == n:
            self.duplicates += 1
            return target
        self.overlap_frames += present
        if idx < high:
            self.reorders += 1
        self.frames += n - present
        if end > high:
            self._high[slot] = end
        return target

    def reset_slot(self, Py_ssize_t slot):
        """Forget a participant's position (its slot is reused or it left)."""
        self._check(slot)
        self._high[slot] = -1

    cdef inline int _check(self, Py_ssize_t slot) except -1:
        if slot < 0 or slot >= self.slots:
            raise ValueError("AudioStage: bad slot")
        return 0

    def write(self, Py_ssize_t slot, int64_t index, object data):
        """Stage one packet of little-endian int16 frames at ``index``; returns frames already present."""
        cdef Py_buffer view
        cdef Py_ssize_t present
        self._check(slot)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            present = self._write(slot, index, <const uint8_t*>view.buf, view.len // (2 * self.channels))
        finally:
            PyBuffer_Release(&view)
        return present

    cdef Py_ssize_t _write(self, Py_ssize_t slot, int64_t index, const uint8_t* src, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap = self.cap, mask = self.mask
        cdef Py_ssize_t fb = 2 * self.channels
        cdef Py_ssize_t i, pos, present = 0, first, run
        cdef uint8_t* hrow = self._have + slot * cap
        cdef uint8_t* brow = <uint8_t*>(self._buf + slot * cap * self.channels)
        if n > cap:
            raise ValueError("AudioStage.write: packet longer than the staging ring")
        if n <= 0:
            return 0
        with nogil:
            for i in range(n):
                present += hrow[(index + i) & mask]
            if present == 0:
                first = index & mask
                run = cap - first
                if run > n:
                    run = n
                memcpy(brow + first * fb, src, run * fb)
                memset(hrow + first, 1, run)
                if run < n:
                    memcpy(brow, src + run * fb, (n - run) * fb)
                    memset(hrow, 1, n - run)
            elif present < n:
                for i in range(n):
                    pos = (index + i) & mask
                    if not hrow[pos]:
                        hrow[pos] = 1
                        memcpy(brow + pos * fb, src + i * fb, fb)
        return present

    def count(self, Py_ssize_t slot, int64_t start, int64_t end):
        """Frames of ``slot`` in ``[start, end)`` holding data."""
        cdef int64_t i
        cdef Py_ssize_t c = 0
        cdef uint8_t* hrow
        self._check(slot)
        if end - start > self.cap:
            raise ValueError("AudioStage.count: range longer than the ring")
        hrow = self._have + slot * self.cap
        for i in range(start, end):
            c += hrow[i & self.mask]
        return c

    cdef int _state(self, Py_ssize_t slot, int64_t start, int64_t end) noexcept nogil:
        """0 all gap, 1 all data, 2 both (memchr: SIMD in glibc)."""
        cdef const uint8_t* hrow = self._have + slot * self.cap
        cdef Py_ssize_t first = start & self.mask
        cdef Py_ssize_t n = end - start
        cdef Py_ssize_t seg = self.cap - first
        cdef bint any1, any0
        if seg > n:
            seg = n
        any1 = memchr(hrow + first, 1, seg) != NULL
        any0 = memchr(hrow + first, 0, seg) != NULL
        if seg < n:
            any1 = any1 or memchr(hrow, 1, n - seg) != NULL
            any0 = any0 or memchr(hrow, 0, n - seg) != NULL
        return 2 if (any1 and any0) else (1 if any1 else 0)

    def state(self, Py_ssize_t slot, int64_t start, int64_t end):
        """0 if ``[start, end)`` of ``slot`` is all gap, 1 if all data, 2 if both."""
        self._check(slot)
        if end <= start:
            return 0
        if end - start > self.cap:
            raise ValueError("AudioStage.state: range longer than the ring")
        return self._state(slot, start, end)

    def run_end(self, Py_ssize_t slot, int64_t start, int64_t end):
        """First index in ``(start, end]`` whose mark differs from ``start``'s."""
        cdef uint8_t* hrow
        cdef uint8_t v
        cdef int64_t i = start + 1
        self._check(slot)
        if start >= end:
            return end
        hrow = self._have + slot * self.cap
        v = hrow[start & self.mask]
        while i < end and hrow[i & self.mask] == v:
            i += 1
        return i

    def is_data(self, Py_ssize_t slot, int64_t index):
        self._check(slot)
        return self._have[slot * self.cap + (index & self.mask)] != 0

    def set_mix_gain(self, double gain):
        """Scale the mix by ``gain`` before saturating (e.g. 1/3: three full-scale speakers never clip).

        Q15 fixed point, rounded; 1.0 (the default) is the plain saturating sum.
        """
        if not 0.0 < gain <= 1.0:
            raise ValueError("AudioStage.set_mix_gain: gain must be in (0, 1]")
        self._gain_q15 = <int32_t>(gain * 32768.0 + 0.5)

    @property
    def mix_gain(self):
        return self._gain_q15 / 32768.0

    def set_mix_slots(self, slots):
        """The slots summed by :meth:`mix` (participants not excluded or muted)."""
        cdef Py_ssize_t k, n = len(slots)
        cdef int32_t* p = <int32_t*>malloc((n if n else 1) * sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        for k in range(n):
            if slots[k] < 0 or slots[k] >= self.slots:
                free(p)
                raise ValueError("AudioStage.set_mix_slots: bad slot")
            p[k] = slots[k]
        free(self._mix_slots)
        self._mix_slots = p
        self._nmix = n

    def mix(self, int64_t start, Py_ssize_t n):
        """Saturating sum of the mix slots over ``[start, start + n)`` into ``mix_out``; returns the state.

        Slots with no data in the window are skipped; one to three active slots are summed in one
        pass with the sum in registers (the common case: at most 3 speakers per 20 ms in RTMS).
        """
        cdef Py_ssize_t ch = self.channels, cap = self.cap, mask = self.mask
        cdef Py_ssize_t first, seg, done = 0, i, k, nact
        cdef int32_t* acc = self._acc
        cdef int16_t* out = self._mix
        cdef uint8_t* outh = self._mixh
        cdef const int16_t* buf = self._buf
        cdef const uint8_t* have = self._have
        cdef const int16_t* r0
        cdef const int16_t* r1
        cdef const int16_t* r2
        cdef const uint8_t* h0
        cdef const uint8_t* h1
        cdef const uint8_t* h2
        cdef int32_t act[64]
        cdef int16_t* o
        cdef uint8_t* oh
        cdef int32_t slot
        cdef bint any1, any0
        if n < 0 or n > cap:
            raise ValueError("AudioStage.mix: window longer than the ring")
        with nogil:
            while done < n:
                first = (start + done) & mask
                seg = cap - first
                if seg > n - done:
                    seg = n - done
                o = out + done * ch
                oh = outh + done
                nact = 0
                for k in range(self._nmix):
                    slot = self._mix_slots[k]
                    if memchr(have + slot * cap + first, 1, seg) != NULL:
                        if nact < 64:
                            act[nact] = slot
                        nact += 1
                if nact and self._gain_q15 != 32768:
                    nact = 65  # a scaled mix takes the accumulator path: gain applied before saturating
                if nact == 0:
                    memset(o, 0, seg * ch * 2)
                    memset(oh, 0, seg)
                elif nact == 1:
                    memcpy(o, buf + (act[0] * cap + first) * ch, seg * ch * 2)
                    memcpy(oh, have + act[0] * cap + first, seg)
                elif nact == 2:
                    r0 = buf + (act[0] * cap + first) * ch
                    r1 = buf + (act[1] * cap + first) * ch
                    gw_mix2(r0, r1, o, seg * ch)
                    gw_or2(have + act[0] * cap + first, have + act[1] * cap + first, oh, seg)
                elif nact == 3:
                    r0 = buf + (act[0] * cap + first) * ch
                    r1 = buf + (act[1] * cap + first) * ch
                    r2 = buf + (act[2] * cap + first) * ch
                    gw_mix3(r0, r1, r2, o, seg * ch)
                    gw_or3(have + act[0] * cap + first, have + act[1] * cap + first, have + act[2] * cap + first, oh, seg)
                else:  # many active slots: int32 accumulator, every mix slot (silent ones add zeros)
                    memset(acc, 0, seg * ch * sizeof(int32_t))
                    memset(oh, 0, seg)
                    for k in range(self._nmix):
                        slot = self._mix_slots[k]
                        gw_acc_add(acc, buf + (slot * cap + first) * ch, seg * ch)
                        gw_or_into(oh, have + slot * cap + first, seg)
                    if self._gain_q15 == 32768:
                        gw_sat_store(acc, o, seg * ch)
                    else:
                        gw_gain_store(acc, o, seg * ch, self._gain_q15)
                done += seg
            any1 = memchr(outh, 1, n) != NULL
            any0 = memchr(outh, 0, n) != NULL
        return 2 if (any1 and any0) else (1 if any1 else 0)

    def mix_run_end(self, Py_ssize_t start, Py_ssize_t end):
        """Like :meth:`run_end` over the linear ``mix_have`` of the last :meth:`mix`."""
        cdef Py_ssize_t i = start + 1
        cdef uint8_t v
        if start >= end:
            return end
        if end > self.cap:
            raise ValueError("AudioStage.mix_run_end: beyond the mix buffer")
        v = self._mixh[start]
        while i < end and self._mixh[i] == v:
            i += 1
        return i

    def clear(self, int64_t start, Py_ssize_t n):
        """Forget ``[start, start + n)`` in every slot (samples zeroed, marks cleared) once emitted."""
        cdef Py_ssize_t cap = self.cap, ch = self.channels, s, first, run
        if n > cap:
            n = cap
        if n <= 0:
            return
        with nogil:
            first = start & self.mask
            run = cap - first
            if run > n:
                run = n
            for s in range(self.slots):
                memset(self._have + s * cap + first, 0, run)
                memset(self._buf + (s * cap + first) * ch, 0, run * ch * 2)
                if run < n:
                    memset(self._have + s * cap, 0, n - run)
                    memset(self._buf + s * cap * ch, 0, (n - run) * ch * 2)


# Conversion modes for audio_convert (input is always interleaved int16 frames).
DEF CONV_I16_TO_F32 = 0
DEF CONV_DOWN_I16 = 1
DEF CONV_DOWN_F32 = 2
DEF CONV_UP_I16 = 3
DEF CONV_UP_F32 = 4


def audio_convert(object src, object dst, int mode):
    """int16 frames in ``src`` -> ``dst`` by ``mode`` (0 int16->float32, 1 stereo->mono int16,
    2 stereo->mono float32, 3 mono->stereo int16, 4 mono->stereo float32); returns output frames.

    Raw buffers (no typed-memoryview set-up): the per-chunk cost of a format converter.
    """
    cdef Py_buffer s, d
    cdef Py_ssize_t n_in, need, frames
    PyObject_GetBuffer(src, &s, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(dst, &d, PyBUF_SIMPLE | PyBUF_WRITABLE)
        try:
            n_in = s.len // 2
            if mode == CONV_I16_TO_F32:
                frames, need = n_in, n_in * 4
            elif mode == CONV_DOWN_I16:
                frames, need = n_in // 2, (n_in // 2) * 2
            elif mode == CONV_DOWN_F32:
                frames, need = n_in // 2, (n_in // 2) * 4
            elif mode == CONV_UP_I16:
                frames, need = n_in, n_in * 4
            elif mode == CONV_UP_F32:
                frames, need = n_in, n_in * 8
            else:
                raise ValueError(f"audio_convert: unknown mode {mode}")
            if d.len < need:
                raise ValueError("audio_convert: destination too small")
            with nogil:
                if mode == CONV_I16_TO_F32:
                    gw_i16_to_f32(<const int16_t*>s.buf, <float*>d.buf, n_in)
                elif mode == CONV_DOWN_I16:
                    gw_down_i16(<const int16_t*>s.buf, <int16_t*>d.buf, frames)
                elif mode == CONV_DOWN_F32:
                    gw_down_f32(<const int16_t*>s.buf, <float*>d.buf, frames)
                elif mode == CONV_UP_I16:
                    gw_up_i16(<const int16_t*>s.buf, <int16_t*>d.buf, frames)
                else:
                    gw_up_f32(<const int16_t*>s.buf, <float*>d.buf, frames)
        finally:
            PyBuffer_Release(&d)
    finally:
        PyBuffer_Release(&s)
    return frames
