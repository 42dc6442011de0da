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
from libc.string cimport memcpy, memset


cdef inline int16_t _sat16(int32_t v) noexcept nogil:
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return <int16_t>v


def audio_stage_write(int16_t[:, ::1] buf, uint8_t[:, ::1] have, Py_ssize_t slot, int64_t index,
                      const uint8_t[::1] data, Py_ssize_t channels):
    """Copy one packet of little-endian int16 frames into ``slot``'s staging ring at ``index``.

    Frames already present are left untouched (first arrival wins: a duplicate or overlapping
    packet never writes a sample twice). Returns how many of the packet's frames were present.
    """
    cdef Py_ssize_t cap = have.shape[1]
    cdef Py_ssize_t mask = cap - 1
    cdef Py_ssize_t frame_bytes = 2 * channels
    cdef Py_ssize_t n = data.shape[0] // frame_bytes
    cdef Py_ssize_t i, pos, present = 0, first, run
    if slot < 0 or slot >= have.shape[0] or buf.shape[1] != cap * channels or cap & mask:
        raise ValueError("audio_stage_write: bad staging shape or slot")
    if n > cap:
        raise ValueError("audio_stage_write: packet longer than the staging ring")
    if n == 0:
        return 0
    cdef const uint8_t* src = &data[0]
    cdef uint8_t* hrow = &have[slot, 0]
    cdef uint8_t* brow = <uint8_t*>&buf[slot, 0]
    with nogil:
        for i in range(n):
            present += hrow[(index + i) & mask]
        if present == 0:
            first = index & mask
            run = cap - first
            if run > n:
                run = n
            memcpy(brow + first * frame_bytes, src, run * frame_bytes)
            memset(hrow + first, 1, run)
            if run < n:
                memcpy(brow, src + run * frame_bytes, (n - run) * frame_bytes)
                memset(hrow, 1, n - run)
        elif present < n:
            for i in range(n):
                pos = (index + i) & mask
                if not hrow[pos]:
                    hrow[pos] = 1
                    memcpy(brow + pos * frame_bytes, src + i * frame_bytes, frame_bytes)
    return present


def audio_stage_clear(int16_t[:, ::1] buf, uint8_t[:, ::1] have, Py_ssize_t slot, int64_t index, Py_ssize_t n):
    """Forget ``n`` frames of ``slot`` from ``index`` on (zero samples and marks) once emitted."""
    cdef Py_ssize_t cap = have.shape[1]
    cdef Py_ssize_t mask = cap - 1
    cdef Py_ssize_t channels = buf.shape[1] // cap
    cdef Py_ssize_t first, run
    if slot < 0 or slot >= have.shape[0] or n < 0:
        raise ValueError("audio_stage_clear: bad slot or length")
    if n > cap:
        n = cap
    if n == 0:
        return
    cdef uint8_t* hrow = &have[slot, 0]
    cdef int16_t* brow = &buf[slot, 0]
    with nogil:
        first = index & mask
        run = cap - first
        if run > n:
            run = n
        memset(hrow + first, 0, run)
        memset(brow + first * channels, 0, run * channels * 2)
        if run < n:
            memset(hrow, 0, n - run)
            memset(brow, 0, (n - run) * channels * 2)


def audio_run_end(const uint8_t[:, ::1] have, Py_ssize_t slot, int64_t start, int64_t end):
    """First index in ``(start, end]`` whose mark differs from ``start``'s (``end`` if none)."""
    cdef Py_ssize_t mask = have.shape[1] - 1
    cdef const uint8_t* hrow = &have[slot, 0]
    cdef uint8_t v
    cdef int64_t i = start + 1
    if slot < 0 or slot >= have.shape[0]:
        raise ValueError("audio_run_end: bad slot")
    if start >= end:
        return end
    with nogil:
        v = hrow[start & mask]
        while i < end and hrow[i & mask] == v:
            i += 1
    return i


def audio_count(const uint8_t[:, ::1] have, Py_ssize_t slot, int64_t start, int64_t end):
    """How many frames of ``slot`` in ``[start, end)`` hold data (duplicate check before decoding)."""
    cdef Py_ssize_t mask = have.shape[1] - 1
    cdef const uint8_t* hrow = &have[slot, 0]
    cdef int64_t i
    cdef Py_ssize_t count = 0
    if slot < 0 or slot >= have.shape[0] or end - start > have.shape[1]:
        raise ValueError("audio_count: bad slot or range longer than the ring")
    with nogil:
        for i in range(start, end):
            count += hrow[i & mask]
    return count


def audio_mix(const int16_t[:, ::1] buf, const uint8_t[:, ::1] have, const int32_t[::1] slots,
              int64_t start, Py_ssize_t n, int16_t[::1] out, uint8_t[::1] out_have):
    """Saturating int16 sum of the staged ``slots`` over ``[start, start + n)`` into ``out``.

    Sums in int32 and clips once per sample (clip of the sum, not a chain of clipped adds).
    ``out_have[i]`` is 1 where at least one mixed slot had data (else the frame is a gap).
    """
    cdef Py_ssize_t cap = have.shape[1]
    cdef Py_ssize_t mask = cap - 1
    cdef Py_ssize_t channels = buf.shape[1] // cap
    cdef Py_ssize_t nslots = slots.shape[0]
    cdef Py_ssize_t i, c, k, pos
    cdef int32_t acc
    cdef uint8_t h
    if n > cap or out.shape[0] < n * channels or out_have.shape[0] < n:
        raise ValueError("audio_mix: output too small or window longer than the ring")
    for k in range(nslots):
        if slots[k] < 0 or slots[k] >= have.shape[0]:
            raise ValueError("audio_mix: bad slot")
    with nogil:
        for i in range(n):
            pos = (start + i) & mask
            h = 0
            for k in range(nslots):
                h |= have[slots[k], pos]
            out_have[i] = h
            for c in range(channels):
                acc = 0
                for k in range(nslots):
                    acc += buf[slots[k], pos * channels + c]
                out[i * channels + c] = _sat16(acc)


def audio_i16_to_f32(const int16_t[::1] src, float[::1] dst):
    """int16 -> float32 in [-1, 1) (divide by 32768, the usual ML convention)."""
    cdef Py_ssize_t i, n = src.shape[0]
    if dst.shape[0] < n:
        raise ValueError("audio_i16_to_f32: dst too small")
    with nogil:
        for i in range(n):
            dst[i] = src[i] * <float>(1.0 / 32768.0)


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


def audio_downmix_i16(const int16_t[::1] src, int16_t[::1] dst):
    """Interleaved stereo int16 -> mono int16 (mean of the two channels, floor)."""
    cdef Py_ssize_t i, n = src.shape[0] // 2
    if dst.shape[0] < n:
        raise ValueError("audio_downmix_i16: dst too small")
    with nogil:
        for i in range(n):
            dst[i] = <int16_t>((<int32_t>src[2 * i] + <int32_t>src[2 * i + 1]) >> 1)


def audio_downmix_i16_to_f32(const int16_t[::1] src, float[::1] dst):
    """Interleaved stereo int16 -> mono float32 (mean of the two channels / 32768)."""
    cdef Py_ssize_t i, n = src.shape[0] // 2
    if dst.shape[0] < n:
        raise ValueError("audio_downmix_i16_to_f32: dst too small")
    with nogil:
        for i in range(n):
            dst[i] = (<float>src[2 * i] + <float>src[2 * i + 1]) * <float>(1.0 / 65536.0)


def audio_upmix_i16(const int16_t[::1] src, int16_t[::1] dst):
    """Mono int16 -> interleaved stereo int16 (the sample on both channels)."""
    cdef Py_ssize_t i, n = src.shape[0]
    if dst.shape[0] < 2 * n:
        raise ValueError("audio_upmix_i16: dst too small")
    with nogil:
        for i in range(n):
            dst[2 * i] = src[i]
            dst[2 * i + 1] = src[i]


def audio_table_decode(const uint8_t[::1] src, const int16_t[::1] table, int16_t[::1] dst):
    """Byte codes -> int16 through a 256-entry table (G.711 A-law and mu-law)."""
    cdef Py_ssize_t i, n = src.shape[0]
    if table.shape[0] != 256 or dst.shape[0] < n:
        raise ValueError("audio_table_decode: table must have 256 entries and dst room for every code")
    with nogil:
        for i in range(n):
            dst[i] = table[src[i]]
    return n
