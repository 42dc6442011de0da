/* Strict standard base64 decoding into caller memory: scalar (pre-shifted tables), AVX2 and
 * AVX-512 VBMI.
 *
 * gw_b64_decode(src, n, dst, cap): n must be a multiple of 4, padding only in the last quantum
 * ("xx==" or "xxx="); returns the bytes written (<= cap), or -1 when the input is invalid or the
 * output would not fit. Trailing bits of the last quantum are ignored, as binascii does.
 *
 * The AVX2 loop (after Mula & Lemire, "Faster Base64 Encoding and Decoding Using AVX2
 * Instructions", 2018, in the form of aklomp/base64) and the VBMI loop (Mula & Lemire, 2019) are
 * chosen at run time with __builtin_cpu_supports, so one build runs everywhere (valgrind, which
 * has no AVX-512, gets AVX2); both hand any block holding a non-alphabet character to the scalar
 * loop, which is the one that reports the error.
 */
#ifndef GW_B64_DECODE_H
#define GW_B64_DECODE_H

#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GW_B64_HAVE_AVX2 1
#include <immintrin.h>
#endif

#define GW_B64_BAD 0x01FFFFFFu

/* d0..d3: each input character's 6 bits already shifted to their place in a little-endian
 * 24-bit group; GW_B64_BAD (bit 24 set) for anything outside the alphabet. */
static uint32_t gw_b64_d0[256], gw_b64_d1[256], gw_b64_d2[256], gw_b64_d3[256];
static int gw_b64_use_avx2 = 0;
static int gw_b64_use_vbmi = 0;        /* AVX-512 VBMI (+BW): 64 characters per step */
/* Decoder paths: the best one is chosen at init; tests may force a lesser one. */
#define GW_B64_SCALAR 0
#define GW_B64_AVX2 1
#define GW_B64_VBMI 2
static int gw_b64_path = GW_B64_SCALAR;
/* VBMI tables: each ASCII character's 6-bit value (0x80: not in the alphabet), and where each
 * output byte sits after the multiply-add merge (3 of every 4 bytes, reversed). */
static uint8_t gw_b64_vbmi_lut[128], gw_b64_vbmi_pack[64];

static void gw_b64_init(void) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int i;
    for (i = 0; i < 256; i++) {
        gw_b64_d0[i] = gw_b64_d1[i] = gw_b64_d2[i] = gw_b64_d3[i] = GW_B64_BAD;
    }
    for (i = 0; i < 64; i++) {
        uint32_t v = (uint32_t)i;
        uint8_t c = (uint8_t)alphabet[i];
        gw_b64_d0[c] = v << 2;
        gw_b64_d1[c] = (v >> 4) | ((v & 0x0F) << 12);
        gw_b64_d2[c] = ((v >> 2) << 8) | ((v & 0x03) << 22);
        gw_b64_d3[c] = v << 16;
    }
    for (i = 0; i < 128; i++) gw_b64_vbmi_lut[i] = 0x80;
    for (i = 0; i < 64; i++) gw_b64_vbmi_lut[(uint8_t)alphabet[i]] = (uint8_t)i;
    for (i = 0; i < 64; i++) gw_b64_vbmi_pack[i] = i < 48 ? (uint8_t)(4 * (i / 3) + 2 - i % 3) : 0;
#ifdef GW_B64_HAVE_AVX2
    __builtin_cpu_init();
    gw_b64_use_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    /* libgcc's checks include the OS saving the AVX-512 state (XCR0). */
    gw_b64_use_vbmi = gw_b64_use_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vbmi") ? 1 : 0;
    gw_b64_path = gw_b64_use_vbmi ? GW_B64_VBMI : gw_b64_use_avx2 ? GW_B64_AVX2 : GW_B64_SCALAR;
#endif
}

static inline Py_ssize_t gw_b64_decoded_len(const uint8_t *src, Py_ssize_t n) {
    Py_ssize_t out;
    if (n % 4) return -1;
    if (n == 0) return 0;
    out = n / 4 * 3;
    if (src[n - 1] == '=') {
        out--;
        if (src[n - 2] == '=') out--;
    }
    return out;
}

#ifdef GW_B64_HAVE_AVX2
/* One 32-character block to 24 bytes (in the low 24 bytes of *out); 0 if any character is
 * outside the alphabet ('=' included). */
__attribute__((target("avx2"), always_inline))
static inline int gw_b64_block_avx2(const uint8_t *src, __m256i *out) {
    const __m256i lut_lo = _mm256_setr_epi8(
        0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A,
        0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
    const __m256i lut_hi = _mm256_setr_epi8(
        0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
        0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
    const __m256i lut_roll = _mm256_setr_epi8(
        0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i mask_2f = _mm256_set1_epi8(0x2f);
    const __m256i pack_shuffle = _mm256_setr_epi8(
        2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1,
        2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
    const __m256i pack_permute = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, -1, -1);
    __m256i str = _mm256_loadu_si256((const __m256i *)src);
    __m256i hi_nibbles = _mm256_and_si256(_mm256_srli_epi32(str, 4), mask_2f);
    __m256i lo_nibbles = _mm256_and_si256(str, mask_2f);
    __m256i hi = _mm256_shuffle_epi8(lut_hi, hi_nibbles);
    __m256i lo = _mm256_shuffle_epi8(lut_lo, lo_nibbles);
    if (!_mm256_testz_si256(lo, hi)) return 0;
    __m256i eq_2f = _mm256_cmpeq_epi8(str, mask_2f);
    __m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(eq_2f, hi_nibbles));
    str = _mm256_add_epi8(str, roll);
    str = _mm256_maddubs_epi16(str, _mm256_set1_epi32(0x01400140));
    str = _mm256_madd_epi16(str, _mm256_set1_epi32(0x00011000));
    str = _mm256_shuffle_epi8(str, pack_shuffle);
    *out = _mm256_permutevar8x32_epi32(str, pack_permute);
    return 1;
}

/* Decodes src[0:body) (body a multiple of 4, at least 32; the caller keeps the last, possibly
 * padded, quantum) into dst, which has `cap` >= body / 4 * 3 bytes of room. Whole blocks are
 * stored straight while 32 bytes of room remain (each store writes 32, 24 of them real), the
 * others through a local buffer; a last partial block is decoded as the 32 characters ending at
 * `body` (overlapping, rewriting the same bytes). Stops at the first block with a non-alphabet
 * character. Returns characters consumed (a multiple of 4): body when all is done. */
__attribute__((target("avx2")))
static Py_ssize_t gw_b64_decode_avx2(const uint8_t *src, Py_ssize_t body, uint8_t *dst, Py_ssize_t cap) {
    Py_ssize_t nb = body / 32, direct = cap >= 32 ? (cap - 32) / 24 + 1 : 0, k;
    __m256i v;
    uint8_t buf[32];
    if (direct > nb) direct = nb;
    for (k = 0; k < direct; k++) {
        if (!gw_b64_block_avx2(src + 32 * k, &v)) return 32 * k;
        _mm256_storeu_si256((__m256i *)(dst + 24 * k), v);
    }
    for (; k < nb; k++) {
        if (!gw_b64_block_avx2(src + 32 * k, &v)) return 32 * k;
        _mm256_storeu_si256((__m256i *)buf, v);
        memcpy(dst + 24 * k, buf, 24);
    }
    if (32 * nb < body) {
        if (!gw_b64_block_avx2(src + body - 32, &v)) return 32 * nb;
        _mm256_storeu_si256((__m256i *)buf, v);
        memcpy(dst + (body - 32) / 4 * 3, buf, 24);
    }
    return body;
}

/* 64 characters to 48 bytes (low 48 bytes of *out); 0 if any is outside the alphabet. After
 * Mula & Lemire, "Base64 encoding and decoding at almost the speed of a memory copy" (2019):
 * one two-table byte permute translates, the sign bits flag bad (or non-ASCII) characters. */
__attribute__((target("avx512f,avx512bw,avx512vbmi"), always_inline))
static inline int gw_b64_block_vbmi(__m512i str, __m512i lut_lo, __m512i lut_hi, __m512i pack, __m512i *out) {
    __m512i values = _mm512_permutex2var_epi8(lut_lo, str, lut_hi);
    if (_mm512_movepi8_mask(_mm512_or_si512(values, str))) return 0;
    values = _mm512_maddubs_epi16(values, _mm512_set1_epi32(0x01400140));
    values = _mm512_madd_epi16(values, _mm512_set1_epi32(0x00011000));
    *out = _mm512_permutexvar_epi8(pack, values);
    return 1;
}

/* As gw_b64_decode_avx2, 64 characters per step: straight 64-byte stores while 64 bytes of room
 * remain, masked stores (48 bytes) after that, and the last partial step through a masked load
 * padded with 'A' (never read past body) and a masked store (never written past its bytes). */
__attribute__((target("avx512f,avx512bw,avx512vbmi")))
static Py_ssize_t gw_b64_decode_vbmi(const uint8_t *src, Py_ssize_t body, uint8_t *dst, Py_ssize_t cap) {
    const __m512i lut_lo = _mm512_loadu_si512((const void *)gw_b64_vbmi_lut);
    const __m512i lut_hi = _mm512_loadu_si512((const void *)(gw_b64_vbmi_lut + 64));
    const __m512i pack = _mm512_loadu_si512((const void *)gw_b64_vbmi_pack);
    Py_ssize_t i = 0, o = 0, rest;
    __m512i v;
    for (; body - i >= 64; i += 64, o += 48) {
        if (!gw_b64_block_vbmi(_mm512_loadu_si512((const void *)(src + i)), lut_lo, lut_hi, pack, &v)) return i;
        if (cap - o >= 64) _mm512_storeu_si512((void *)(dst + o), v);
        else _mm512_mask_storeu_epi8(dst + o, (__mmask64)0xFFFFFFFFFFFFULL, v);
    }
    rest = body - i;                    /* 0..60, a multiple of 4 */
    if (rest) {
        __m512i str = _mm512_mask_loadu_epi8(_mm512_set1_epi8('A'), ((__mmask64)1 << rest) - 1, src + i);
        if (!gw_b64_block_vbmi(str, lut_lo, lut_hi, pack, &v)) return i;
        _mm512_mask_storeu_epi8(dst + o, ((__mmask64)1 << (rest / 4 * 3)) - 1, v);
    }
    return body;
}
#endif

/* Decodes n characters whose decoded size is out_len (== gw_b64_decoded_len(src, n) >= 0, the
 * caller's check) into dst (out_len bytes of room). */
static Py_ssize_t gw_b64_decode_exact_impl(const uint8_t *src, Py_ssize_t n, uint8_t *dst, Py_ssize_t out_len,
                                           int path) {
    Py_ssize_t i = 0, o = 0, body;
    uint32_t x, a, b, c, d;
    if (n == 0) return 0;
    body = n - 4;                       /* the last quantum may hold padding */
#ifdef GW_B64_HAVE_AVX2
    if (path == GW_B64_VBMI && body >= 32) {
        i = gw_b64_decode_vbmi(src, body, dst, out_len);
        o = i / 4 * 3;
    } else if (path >= GW_B64_AVX2 && body >= 32) {
        i = gw_b64_decode_avx2(src, body, dst, out_len);
        o = i / 4 * 3;
    }
#endif
    /* 4-byte stores while at least 4 bytes of room remain, then 3 single-byte stores. */
    while (i < body && o + 4 <= out_len) {
        x = gw_b64_d0[src[i]] | gw_b64_d1[src[i + 1]] | gw_b64_d2[src[i + 2]] | gw_b64_d3[src[i + 3]];
        if (x >= 0x01000000u) return -1;
        memcpy(dst + o, &x, 4);
        i += 4;
        o += 3;
    }
    while (i < body) {
        x = gw_b64_d0[src[i]] | gw_b64_d1[src[i + 1]] | gw_b64_d2[src[i + 2]] | gw_b64_d3[src[i + 3]];
        if (x >= 0x01000000u) return -1;
        dst[o] = (uint8_t)x;
        dst[o + 1] = (uint8_t)(x >> 8);
        dst[o + 2] = (uint8_t)(x >> 16);
        i += 4;
        o += 3;
    }
    /* last quantum: "xxxx", "xxx=" or "xx==" */
    a = gw_b64_d0[src[i]];
    b = gw_b64_d1[src[i + 1]];
    if ((a | b) >= 0x01000000u) return -1;
    if (src[i + 2] == '=') {
        if (src[i + 3] != '=') return -1;
        dst[o] = (uint8_t)(a | b);
        return o + 1;
    }
    c = gw_b64_d2[src[i + 2]];
    if (c >= 0x01000000u) return -1;
    if (src[i + 3] == '=') {
        x = a | b | c;
        dst[o] = (uint8_t)x;
        dst[o + 1] = (uint8_t)(x >> 8);
        return o + 2;
    }
    d = gw_b64_d3[src[i + 3]];
    if (d >= 0x01000000u) return -1;
    x = a | b | c | d;
    dst[o] = (uint8_t)x;
    dst[o + 1] = (uint8_t)(x >> 8);
    dst[o + 2] = (uint8_t)(x >> 16);
    return o + 3;
}

/* path: GW_B64_SCALAR, GW_B64_AVX2 or GW_B64_VBMI (the caller checks the CPU has it). */
static Py_ssize_t gw_b64_decode_impl(const uint8_t *src, Py_ssize_t n, uint8_t *dst, Py_ssize_t cap,
                                     int path) {
    Py_ssize_t out_len = gw_b64_decoded_len(src, n);
    if (out_len < 0 || out_len > cap) return -1;
    return gw_b64_decode_exact_impl(src, n, dst, out_len, path);
}

/* For a caller that has checked out_len == gw_b64_decoded_len(src, n) >= 0 (no second pass). */
static inline Py_ssize_t gw_b64_decode_exact(const uint8_t *src, Py_ssize_t n, uint8_t *dst, Py_ssize_t out_len) {
    return gw_b64_decode_exact_impl(src, n, dst, out_len, gw_b64_path);
}

static inline Py_ssize_t gw_b64_decode(const uint8_t *src, Py_ssize_t n, uint8_t *dst, Py_ssize_t cap) {
    return gw_b64_decode_impl(src, n, dst, cap, gw_b64_path);
}

/* The scalar decoder alone (tests compare it with the SIMD paths). */
static inline Py_ssize_t gw_b64_decode_scalar(const uint8_t *src, Py_ssize_t n, uint8_t *dst, Py_ssize_t cap) {
    return gw_b64_decode_impl(src, n, dst, cap, GW_B64_SCALAR);
}

#endif
