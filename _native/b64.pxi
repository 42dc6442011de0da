# Table-driven base64 decoding straight into caller-owned memory (rings), no bytes objects.
from libc.stdint cimport uint8_t, int64_t

cdef uint8_t _B64_INVALID = 0xFF
cdef uint8_t _B64_TABLE[256]

cdef void _b64_init_table() noexcept:
    cdef int i
    cdef bytes alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for i in range(256):
        _B64_TABLE[i] = _B64_INVALID
    for i in range(64):
        _B64_TABLE[<uint8_t>alphabet[i]] = <uint8_t>i

_b64_init_table()


cdef inline Py_ssize_t b64_decoded_len(const uint8_t* src, Py_ssize_t n) noexcept nogil:
    """Decoded size of padded base64 of length n, or -1 if n is not a multiple of 4."""
    if n % 4:
        return -1
    if n == 0:
        return 0
    cdef Py_ssize_t out = n // 4 * 3
    if src[n - 1] == b'=':
        out -= 1
        if src[n - 2] == b'=':
            out -= 1
    return out


cdef Py_ssize_t b64_decode_into(const uint8_t* src, Py_ssize_t n, uint8_t* dst, Py_ssize_t cap) noexcept nogil:
    """Decode padded standard base64; returns bytes written, or -1 on any invalid input/overflow."""
    cdef Py_ssize_t out_len = b64_decoded_len(src, n)
    if out_len < 0 or out_len > cap:
        return -1
    cdef Py_ssize_t i = 0, o = 0
    cdef uint8_t a, b, c, d
    cdef Py_ssize_t full = n - 4 if n else 0
    while i < full:
        a = _B64_TABLE[src[i]]; b = _B64_TABLE[src[i + 1]]; c = _B64_TABLE[src[i + 2]]; d = _B64_TABLE[src[i + 3]]
        if (a | b | c | d) & 0xC0:
            return -1
        dst[o] = (a << 2) | (b >> 4)
        dst[o + 1] = ((b & 0x0F) << 4) | (c >> 2)
        dst[o + 2] = ((c & 0x03) << 6) | d
        i += 4
        o += 3
    if n == 0:
        return 0
    # last quantum, with padding
    a = _B64_TABLE[src[i]]; b = _B64_TABLE[src[i + 1]]
    if (a | b) & 0xC0:
        return -1
    dst[o] = (a << 2) | (b >> 4)
    o += 1
    if src[i + 2] == b'=':
        if src[i + 3] != b'=':
            return -1
        return o
    c = _B64_TABLE[src[i + 2]]
    if c & 0xC0:
        return -1
    dst[o] = ((b & 0x0F) << 4) | (c >> 2)
    o += 1
    if src[i + 3] == b'=':
        return o
    d = _B64_TABLE[src[i + 3]]
    if d & 0xC0:
        return -1
    dst[o] = ((c & 0x03) << 6) | d
    return o + 1


def b64decode(data) -> bytes:
    """Decode standard padded base64 with the native decoder (test and benchmark entry point)."""
    cdef const uint8_t[::1] view = data
    cdef Py_ssize_t n = view.shape[0]
    cdef Py_ssize_t cap = (n // 4) * 3
    out = bytearray(cap)
    cdef uint8_t[::1] dst = out
    cdef Py_ssize_t got = b64_decode_into(&view[0] if n else NULL, n, &dst[0] if cap else NULL, cap)
    if got < 0:
        raise ValueError("invalid base64")
    return bytes(out[:got])
