# Base64 decoding straight into caller-owned memory (rings), no bytes objects: the C in
# b64_decode.h -- pre-shifted tables (scalar), and AVX2 or AVX-512 VBMI loops chosen at run time.
from libc.stdint cimport uint8_t, int64_t

cdef extern from "b64_decode.h" nogil:
    void gw_b64_init()
    int gw_b64_use_avx2
    int gw_b64_use_vbmi
    int gw_b64_path
    int GW_B64_SCALAR, GW_B64_AVX2, GW_B64_VBMI
    Py_ssize_t gw_b64_decode_impl(const uint8_t* src, Py_ssize_t n, uint8_t* dst, Py_ssize_t cap, int path)
    Py_ssize_t gw_b64_decoded_len(const uint8_t* src, Py_ssize_t n)
    Py_ssize_t gw_b64_decode(const uint8_t* src, Py_ssize_t n, uint8_t* dst, Py_ssize_t cap)
    Py_ssize_t gw_b64_decode_scalar(const uint8_t* src, Py_ssize_t n, uint8_t* dst, Py_ssize_t cap)
    Py_ssize_t gw_b64_decode_exact(const uint8_t* src, Py_ssize_t n, uint8_t* dst, Py_ssize_t out_len)

gw_b64_init()


cdef inline Py_ssize_t b64_decoded_len(const uint8_t* src, Py_ssize_t n) noexcept nogil:
    """Decoded size of padded base64 of length n, or -1 if n is not a multiple of 4."""
    return gw_b64_decoded_len(src, n)


cdef inline Py_ssize_t b64_decode_into(const uint8_t* src, Py_ssize_t n, uint8_t* dst, Py_ssize_t cap) noexcept nogil:
    """Decode padded standard base64; returns bytes written, or -1 on any invalid input/overflow."""
    return gw_b64_decode(src, n, dst, cap)


cdef inline Py_ssize_t b64_decode_exact(const uint8_t* src, Py_ssize_t n, uint8_t* dst, Py_ssize_t size) noexcept nogil:
    """b64_decode_into for a caller that already has ``size == b64_decoded_len(src, n) >= 0``
    (and ``size`` bytes of room): the length is not worked out twice."""
    return gw_b64_decode_exact(src, n, dst, size)


_B64_PATHS = {"scalar": GW_B64_SCALAR, "avx2": GW_B64_AVX2, "avx512vbmi": GW_B64_VBMI}


def b64_paths() -> list:
    """The decoder paths this CPU can run, worst to best ("scalar", "avx2", "avx512vbmi")."""
    return ["scalar"] + (["avx2"] if gw_b64_use_avx2 else []) + (["avx512vbmi"] if gw_b64_use_vbmi else [])


def b64decode(data, *, bint simd=True, str path=None) -> bytes:
    """Decode standard padded base64 with the native decoder (test and benchmark entry point).

    ``simd=False`` forces the scalar loop, ``path`` (one of :func:`b64_paths`) any one path
    (tests compare them).
    """
    cdef const uint8_t[::1] view = data
    cdef Py_ssize_t n = view.shape[0]
    cdef Py_ssize_t cap = (n // 4) * 3
    cdef uint8_t empty = 0
    cdef int chosen = gw_b64_path if simd else GW_B64_SCALAR
    if path is not None:
        if path not in b64_paths():
            raise ValueError(f"decoder path {path!r} not available here: {b64_paths()}")
        chosen = _B64_PATHS[path]
    out = bytearray(cap)
    cdef uint8_t[::1] dst = out
    cdef const uint8_t* src = &view[0] if n else &empty
    cdef uint8_t* dst_ptr = &dst[0] if cap else &empty
    cdef Py_ssize_t got = gw_b64_decode_impl(src, n, dst_ptr, cap, chosen)
    if got < 0:
        raise ValueError("invalid base64")
    return bytes(out[:got])


def b64_simd() -> str:
    """The decoder the CPU got at import: "avx512vbmi", "avx2" or "scalar"."""
    return "avx512vbmi" if gw_b64_path == GW_B64_VBMI else "avx2" if gw_b64_path == GW_B64_AVX2 else "scalar"
