# Media-message scanner: reads msg 14-16 (audio, video, share) without building Python objects.
#
# It validates the WHOLE document as strictly as orjson does (so a message it accepts is one the
# pure twin accepts with the same values) and records the fields the listener needs. Anything it
# is not sure about -- escapes in any string, floats, integers over 18 digits, deep nesting,
# duplicate keys it cares about, wrong types, other msg_types -- makes it answer SCAN_FALLBACK and
# the listener runs the slow path (orjson + the twin's validation), which decides. So the scanner
# only has to be right when it says SCAN_MEDIA; everything else is the twin's word.
#
# Per stream, the listener keeps a template learned from the last clean message (the exact bytes
# between its values, see ScanTemplate): the next message of the same shape is checked literal by
# literal and only its values are parsed, which is most of Zoom's audio traffic.
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memchr, memcmp, memcpy

cdef enum:
    SCAN_FALLBACK = 0
    SCAN_MEDIA = 1
    SCAN_MAX_DEPTH = 32
    SCAN_MAX_INT_DIGITS = 18
    SCAN_MAX_SPANS = 12
    TEMPLATE_MAX_LITERAL = 256
    TEMPLATE_MAX_VALUE = 48
    TEMPLATE_MAX_FLAT = 512

# Byte classes inside a JSON string: 0 plain ASCII, 1 quote, 2 backslash, 3 control, 4 non-ASCII.
cdef uint8_t _STR_CLASS[256]

cdef void _scan_init_tables() noexcept:
    cdef int i
    for i in range(256):
        if i < 0x20:
            _STR_CLASS[i] = 3
        elif i >= 0x80:
            _STR_CLASS[i] = 4
        else:
            _STR_CLASS[i] = 0
    _STR_CLASS[ord('"')] = 1
    _STR_CLASS[ord('\\')] = 2

_scan_init_tables()

cdef int64_t _UINT32_MAX = 4294967295

# Wire numbers come from gateway.protocol (the one place they are defined), read once at import.
from gateway.protocol import MsgType as _MsgType

cdef int64_t MT_AUDIO = int(_MsgType.MEDIA_DATA_AUDIO)           # first media type, kind 0
cdef int64_t MT_SHARE = int(_MsgType.MEDIA_DATA_SHARE)           # last binary media type
cdef int64_t MT_TRANSCRIPT = int(_MsgType.MEDIA_DATA_TRANSCRIPT)
cdef int64_t MT_CHAT = int(_MsgType.MEDIA_DATA_CHAT)             # last media type
cdef int64_t MT_KEEP_ALIVE_REQ = int(_MsgType.KEEP_ALIVE_REQ)
cdef int64_t MT_MAX = int(max(_MsgType))

# Content fields the scanner records (bit per field, for duplicate detection).
cdef enum:
    F_USER_ID = 1 << 0
    F_USER_NAME = 1 << 1
    F_DATA = 1 << 2
    F_TIMESTAMP = 1 << 3
    F_LENGTH = 1 << 4
    F_CHANNEL_ID = 1 << 5
    F_START_TIME = 1 << 6
    F_END_TIME = 1 << 7
    F_LANGUAGE = 1 << 8
    F_ATTRIBUTE = 1 << 9


# Keys the scanner knows, matched with their closing quote straight from the frame bytes.
cdef enum:
    K_UNKNOWN = 0
    K_MSG_TYPE
    K_CONTENT
    K_DATA
    K_USER_ID
    K_USER_NAME
    K_TIMESTAMP
    K_LENGTH
    K_CHANNEL_ID
    K_START_TIME
    K_END_TIME
    K_LANGUAGE
    K_ATTRIBUTE


cdef inline bint _at(const uint8_t* p, Py_ssize_t i, Py_ssize_t n, const char* key, Py_ssize_t key_len) noexcept nogil:
    return i + key_len <= n and memcmp(p + i, key, key_len) == 0


cdef inline int _known_key(const uint8_t* p, Py_ssize_t i, Py_ssize_t n, Py_ssize_t* end) noexcept nogil:
    """p[i] is just after a key's opening quote: the key id if it is one of ours (``end`` after
    its closing quote), else K_UNKNOWN. Exact bytes, so an escaped spelling is never "ours"."""
    if i >= n:
        return K_UNKNOWN
    cdef uint8_t c = p[i]
    if c == c'd':
        if _at(p, i, n, 'data"', 5):
            end[0] = i + 5
            return K_DATA
    elif c == c'u':
        if _at(p, i, n, 'user_id"', 8):
            end[0] = i + 8
            return K_USER_ID
        if _at(p, i, n, 'user_name"', 10):
            end[0] = i + 10
            return K_USER_NAME
    elif c == c't':
        if _at(p, i, n, 'timestamp"', 10):
            end[0] = i + 10
            return K_TIMESTAMP
    elif c == c'l':
        if _at(p, i, n, 'length"', 7):
            end[0] = i + 7
            return K_LENGTH
        if _at(p, i, n, 'language"', 9):
            end[0] = i + 9
            return K_LANGUAGE
    elif c == c'm':
        if _at(p, i, n, 'msg_type"', 9):
            end[0] = i + 9
            return K_MSG_TYPE
    elif c == c'c':
        if _at(p, i, n, 'content"', 8):
            end[0] = i + 8
            return K_CONTENT
        if _at(p, i, n, 'channel_id"', 11):
            end[0] = i + 11
            return K_CHANNEL_ID
    elif c == c's':
        if _at(p, i, n, 'start_time"', 11):
            end[0] = i + 11
            return K_START_TIME
    elif c == c'e':
        if _at(p, i, n, 'end_time"', 9):
            end[0] = i + 9
            return K_END_TIME
    elif c == c'a':
        if _at(p, i, n, 'attribute"', 10):
            end[0] = i + 10
            return K_ATTRIBUTE
    return K_UNKNOWN


cdef struct MediaScan:
    int64_t msg_type
    uint32_t user_id             # 0 when absent or null
    const uint8_t* name          # raw UTF-8 (no escapes); NULL when absent or null
    Py_ssize_t name_len
    const uint8_t* data          # the base64 text between the quotes
    Py_ssize_t data_len
    int64_t timestamp
    int64_t length               # -1 when absent or null
    uint32_t seen                # F_* bits
    bint has_msg_type
    bint has_content
    # Where each known value lies, in document order (for learning a template, see below).
    bint templatable             # only known keys, no nulls, at most SCAN_MAX_SPANS values
    int nspans
    int span_key[12]
    Py_ssize_t span_start[12]
    Py_ssize_t span_end[12]


# A template is the exact bytes between the values of the last message that scanned cleanly.
# Zoom's serializer writes every audio message of a stream the same way, so the next message
# is checked literal by literal (memcmp) and only its values are parsed -- no key dispatch, no
# whitespace handling. Same literals around values the full scanner would accept = the same
# document structure, so a template match accepts exactly what scan_media accepts; any
# difference fails the match and the full scanner runs (and learns the new shape).
#
# Values that repeat from message to message (msg_type, user_id, user_name, length and the
# ignored ones; not data or timestamp) are cached per slot as their exact bytes and parsed value:
# the same bytes, followed by the same literal, parse to the same value, so a match skips the
# parse. A different value is parsed as usual and replaces the cached one.
cdef struct ScanTemplate:
    bint valid
    int nvals
    int key[12]
    int lit_off[13]
    int lit_len[13]
    Py_ssize_t data_len          # the last data string's length: audio packets keep it
    uint8_t lit[256]
    int val_len[12]              # cached value bytes per slot (0: nothing cached)
    int64_t val_int[12]          # its parsed value (msg_type, user_id, length)
    uint8_t val[12 * 48]         # TEMPLATE_MAX_VALUE bytes per slot
    # The same template flattened once every cached value matched a message: the literals and
    # cached values folded into a few segments around the values that change (data, timestamp),
    # so a message of a steady stream is three compares, the base64 and one integer.
    bint flat_valid
    int flat_n                   # values between the segments (data, timestamp)
    int flat_key[12]
    int flat_off[13]
    int flat_len[13]
    int flat_name_seg            # segment holding the user_name value (-1: none)
    int flat_name_off            # its opening quote's offset in that segment
    int flat_name_len
    int64_t flat_msg_type
    uint32_t flat_user_id
    int64_t flat_length
    uint8_t flat[512]            # TEMPLATE_MAX_FLAT


cdef inline bint _is_ws(uint8_t c) noexcept nogil:
    return c == 32 or c == 9 or c == 10 or c == 13


cdef inline Py_ssize_t _skip_ws(const uint8_t* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and _is_ws(p[i]):
        i += 1
    return i


cdef inline Py_ssize_t _utf8_len(const uint8_t* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Length of the valid UTF-8 sequence starting at p[i] (a non-ASCII lead), 0 if invalid."""
    cdef uint8_t c = p[i], lo = 0x80, hi = 0xBF
    cdef Py_ssize_t need, k
    if c < 0xC2:
        return 0
    if c < 0xE0:
        need = 1
    elif c < 0xF0:
        need = 2
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F            # no UTF-16 surrogates
    elif c < 0xF5:
        need = 3
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F
    else:
        return 0
    if i + need >= n:
        return 0
    if p[i + 1] < lo or p[i + 1] > hi:
        return 0
    for k in range(2, need + 1):
        if p[i + k] < 0x80 or p[i + k] > 0xBF:
            return 0
    return need + 1


cdef inline Py_ssize_t _scan_string(const uint8_t* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """p[i] is just after an opening quote: index after the closing quote, -1 to fall back.

    Validates like orjson (no raw control characters, valid UTF-8); any escape falls back.
    """
    cdef uint8_t cls
    cdef Py_ssize_t k
    while i < n:
        cls = _STR_CLASS[p[i]]
        if cls == 0:
            i += 1
        elif cls == 1:
            return i + 1
        elif cls == 4:
            k = _utf8_len(p, i, n)
            if k == 0:
                return -1
            i += k
        else:
            return -1
    return -1


cdef extern from *:
    """
    #define GW_CTZ64(x) ((Py_ssize_t)__builtin_ctzll(x))
    """
    Py_ssize_t GW_CTZ64(uint64_t x) nogil


cdef inline uint64_t _nondigits(uint64_t v) noexcept nogil:
    """Per byte of an 8-byte little-endian load: zero where the byte is an ASCII digit (SWAR, as
    in simdjson). A carry out of a byte >= 0xFA only disturbs the bytes after it, so the lowest
    non-zero byte is exactly the first non-digit."""
    return ((v & 0xF0F0F0F0F0F0F0F0ULL) | (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) \
        ^ 0x3333333333333333ULL


cdef inline uint64_t _parse_eight_digits(uint64_t v) noexcept nogil:
    """The value of 8 ASCII digits loaded little-endian (first digit in the lowest byte)."""
    v -= 0x3030303030303030ULL
    v = v * 10 + (v >> 8)
    return (((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32)))
            + (((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32


cdef inline uint64_t _parse_digits(uint64_t v, Py_ssize_t count) noexcept nogil:
    """The value of the first ``count`` (1..8) digits of a little-endian load: shifted to the top
    and padded with '0' below, then parsed as eight."""
    if count < 8:
        v = (v << (8 * (8 - count))) | (0x3030303030303030ULL >> (8 * count))
    return _parse_eight_digits(v)


cdef inline uint64_t _load8(const uint8_t* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """p[i:i+8] little-endian, bytes past n read as 0 (a non-digit). Needs n >= 8 or i + 8 <= n."""
    cdef uint64_t w
    if i + 8 <= n:
        memcpy(&w, p + i, 8)
        return w
    if i >= n:
        return 0
    memcpy(&w, p + n - 8, 8)     # the frame's last 8 bytes, shifted so p[i] is the lowest
    return w >> (8 * (8 - (n - i)))


cdef uint64_t _POW10[9]
_POW10[:] = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000]


cdef inline Py_ssize_t _scan_int(const uint8_t* p, Py_ssize_t i, Py_ssize_t n, int64_t* out) noexcept nogil:
    """A JSON integer at p[i]: index after it, -1 to fall back (floats, > 18 digits, bad grammar)."""
    cdef bint neg = False
    cdef int64_t value = 0
    cdef uint64_t w1, w2, m
    cdef Py_ssize_t start, count
    if i < n and p[i] == c'-':
        neg = True
        i += 1
    start = i
    if i >= n or p[i] < c'0' or p[i] > c'9':
        return -1
    if p[i] == c'0':
        i += 1
    elif n >= 8:
        # Up to 16 digits from two 8-byte loads: count them (first non-digit), then parse.
        w1 = _load8(p, i, n)
        m = _nondigits(w1)
        if m:
            count = GW_CTZ64(m) >> 3
            value = <int64_t>_parse_digits(w1, count)
            i += count
        else:
            w2 = _load8(p, i + 8, n)
            m = _nondigits(w2)
            value = <int64_t>_parse_eight_digits(w1)
            if m:
                count = GW_CTZ64(m) >> 3
                if count:
                    value = value * <int64_t>_POW10[count] + <int64_t>_parse_digits(w2, count)
                i += 8 + count
            else:
                value = value * 100000000 + <int64_t>_parse_eight_digits(w2)
                i += 16
                while i < n and c'0' <= p[i] <= c'9':
                    if i - start >= SCAN_MAX_INT_DIGITS:
                        return -1        # could overflow int64: the slow path decides
                    value = value * 10 + (p[i] - c'0')
                    i += 1
    else:
        while i < n and c'0' <= p[i] <= c'9':
            value = value * 10 + (p[i] - c'0')
            i += 1
    if i < n and (p[i] == c'.' or p[i] == c'e' or p[i] == c'E' or (c'0' <= p[i] <= c'9')):
        return -1                # a float, or a leading zero: the slow path decides
    out[0] = -value if neg else value
    return i


cdef inline Py_ssize_t _scan_literal(const uint8_t* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    if i + 4 <= n and memcmp(p + i, b"true", 4) == 0:
        return i + 4
    if i + 5 <= n and memcmp(p + i, b"false", 5) == 0:
        return i + 5
    if i + 4 <= n and memcmp(p + i, b"null", 4) == 0:
        return i + 4
    return -1


cdef inline bint _is_null(const uint8_t* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    return i + 4 <= n and memcmp(p + i, b"null", 4) == 0


cdef Py_ssize_t _skip_value(const uint8_t* p, Py_ssize_t i, Py_ssize_t n, int depth) noexcept nogil:
    """Skip any JSON value at p[i] (after whitespace): index after it, -1 to fall back."""
    cdef int64_t ignored
    cdef uint8_t c
    if i >= n:
        return -1
    c = p[i]
    if c == c'"':
        return _scan_string(p, i + 1, n)
    if c == c'{' or c == c'[':
        if depth >= SCAN_MAX_DEPTH:
            return -1
        i = _skip_ws(p, i + 1, n)
        if i < n and p[i] == (c'}' if c == c'{' else c']'):
            return i + 1
        while True:
            if c == c'{':
                if i >= n or p[i] != c'"':
                    return -1
                i = _scan_string(p, i + 1, n)
                if i < 0:
                    return -1
                i = _skip_ws(p, i, n)
                if i >= n or p[i] != c':':
                    return -1
                i = _skip_ws(p, i + 1, n)
            i = _skip_value(p, i, n, depth + 1)
            if i < 0:
                return -1
            i = _skip_ws(p, i, n)
            if i >= n:
                return -1
            if p[i] == c',':
                i = _skip_ws(p, i + 1, n)
            elif p[i] == (c'}' if c == c'{' else c']'):
                return i + 1
            else:
                return -1
    if c == c'-' or (c'0' <= c <= c'9'):
        return _scan_int(p, i, n, &ignored)
    return _scan_literal(p, i, n)


cdef inline bint _key_is(const uint8_t* key, Py_ssize_t key_len, const char* name, Py_ssize_t name_len) noexcept nogil:
    return key_len == name_len and memcmp(key, name, name_len) == 0


cdef inline Py_ssize_t _scan_opt_int(const uint8_t* p, Py_ssize_t i, Py_ssize_t n, int64_t* out, bint* present) noexcept nogil:
    """An integer or null (null means absent, as in the twin)."""
    if _is_null(p, i, n):
        present[0] = False
        return i + 4
    present[0] = True
    return _scan_int(p, i, n, out)


cdef inline Py_ssize_t _scan_opt_str(const uint8_t* p, Py_ssize_t i, Py_ssize_t n,
                                     const uint8_t** out, Py_ssize_t* out_len) noexcept nogil:
    """A string (no escapes) or null (out = NULL)."""
    cdef Py_ssize_t end
    if _is_null(p, i, n):
        out[0] = NULL
        out_len[0] = 0
        return i + 4
    if i >= n or p[i] != c'"':
        return -1
    end = _scan_string(p, i + 1, n)
    if end < 0:
        return -1
    out[0] = p + i + 1
    out_len[0] = end - i - 2
    return end


cdef inline Py_ssize_t _scan_user_id(const uint8_t* p, Py_ssize_t i, Py_ssize_t n, uint32_t* out) noexcept nogil:
    """user_id: an integer, a string of ASCII digits, or null (0); must fit uint32."""
    cdef int64_t value = 0
    cdef Py_ssize_t k, end
    if _is_null(p, i, n):
        out[0] = 0
        return i + 4
    if i < n and p[i] == c'"':
        k = i + 1
        while k < n and c'0' <= p[k] <= c'9':
            value = value * 10 + (p[k] - c'0')
            if value > _UINT32_MAX:
                return -1
            k += 1
        if k == i + 1 or k >= n or p[k] != c'"':
            return -1
        out[0] = <uint32_t>value
        return k + 1
    end = _scan_int(p, i, n, &value)
    if end < 0 or value < 0 or value > _UINT32_MAX:
        return -1
    out[0] = <uint32_t>value
    return end


cdef inline void _record(MediaScan* s, const uint8_t* p, int key, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    """Note a known value's span; nulls and overflow make the message unfit for a template."""
    if not s.templatable:
        return
    if s.nspans >= SCAN_MAX_SPANS or p[start] == c'n':
        s.templatable = False
        return
    s.span_key[s.nspans] = key
    s.span_start[s.nspans] = start
    s.span_end[s.nspans] = end
    s.nspans += 1


cdef Py_ssize_t _scan_content(const uint8_t* p, Py_ssize_t i, Py_ssize_t n, MediaScan* s) noexcept nogil:
    """The ``content`` object (p[i] == '{'): index after it, -1 to fall back."""
    cdef int key
    cdef const uint8_t* quote
    cdef Py_ssize_t end
    cdef uint32_t bit
    cdef int64_t ignored
    cdef bint present
    cdef const uint8_t* ignored_str
    cdef Py_ssize_t ignored_len, start
    i = _skip_ws(p, i + 1, n)
    if i < n and p[i] == c'}':
        return i + 1
    while True:
        if i >= n or p[i] != c'"':
            return -1
        key = _known_key(p, i + 1, n, &end)
        if key == K_UNKNOWN:
            end = _scan_string(p, i + 1, n)
            if end < 0:
                return -1
        i = _skip_ws(p, end, n)
        if i >= n or p[i] != c':':
            return -1
        i = _skip_ws(p, i + 1, n)
        start = i
        bit = 0
        if key == K_DATA:
            bit = F_DATA
            if i >= n or p[i] != c'"':
                return -1
            # The end is the first quote (memchr: fast). If the string holds any escape, a
            # backslash lies inside that span, and the decoder (which validates every
            # character) fails, so the listener falls back: escapes never reach the sink.
            quote = <const uint8_t*>memchr(p + i + 1, c'"', n - i - 1)
            if quote == NULL:
                return -1
            end = quote - p
            s.data = p + i + 1
            s.data_len = end - i - 1
            i = end + 1
        elif key == K_USER_ID:
            bit = F_USER_ID
            i = _scan_user_id(p, i, n, &s.user_id)
        elif key == K_USER_NAME:
            bit = F_USER_NAME
            i = _scan_opt_str(p, i, n, &s.name, &s.name_len)
        elif key == K_TIMESTAMP:
            bit = F_TIMESTAMP
            if i >= n or _is_null(p, i, n):
                return -1
            i = _scan_int(p, i, n, &s.timestamp)
        elif key == K_LENGTH:
            bit = F_LENGTH
            i = _scan_opt_int(p, i, n, &s.length, &present)
            if i >= 0:
                if not present:
                    s.length = -1
                elif s.length < 0:
                    return -1    # can never match; the slow path ranks it against bad base64
        elif key == K_CHANNEL_ID:
            bit = F_CHANNEL_ID
            i = _scan_opt_str(p, i, n, &ignored_str, &ignored_len)
        elif key == K_START_TIME:
            bit = F_START_TIME
            i = _scan_opt_int(p, i, n, &ignored, &present)
        elif key == K_END_TIME:
            bit = F_END_TIME
            i = _scan_opt_int(p, i, n, &ignored, &present)
        elif key == K_LANGUAGE:
            bit = F_LANGUAGE
            i = _scan_opt_int(p, i, n, &ignored, &present)
        elif key == K_ATTRIBUTE:
            bit = F_ATTRIBUTE
            i = _scan_opt_int(p, i, n, &ignored, &present)
        else:
            s.templatable = False
            i = _skip_value(p, i, n, 2)
        if i < 0:
            return -1
        if bit:
            _record(s, p, key, start, i)
            if s.seen & bit:
                return -1        # duplicate key: orjson keeps the last; let it decide
            s.seen |= bit
        i = _skip_ws(p, i, n)
        if i >= n:
            return -1
        if p[i] == c',':
            i = _skip_ws(p, i + 1, n)
        elif p[i] == c'}':
            return i + 1
        else:
            return -1


cdef int scan_media(const uint8_t* p, Py_ssize_t n, MediaScan* s) noexcept nogil:
    """Scan one frame. SCAN_MEDIA: a valid msg 14-16 with every field the listener needs in ``s``."""
    cdef Py_ssize_t i, end, start
    cdef int key
    s.user_id = 0
    s.name = NULL
    s.name_len = 0
    s.data = NULL
    s.data_len = 0
    s.timestamp = 0
    s.length = -1
    s.seen = 0
    s.has_msg_type = False
    s.has_content = False
    s.templatable = True
    s.nspans = 0
    i = _skip_ws(p, 0, n)
    if i >= n or p[i] != c'{':
        return SCAN_FALLBACK
    i = _skip_ws(p, i + 1, n)
    if i < n and p[i] == c'}':
        return SCAN_FALLBACK
    while True:
        if i >= n or p[i] != c'"':
            return SCAN_FALLBACK
        key = _known_key(p, i + 1, n, &end)
        if key == K_UNKNOWN:
            end = _scan_string(p, i + 1, n)
            if end < 0:
                return SCAN_FALLBACK
        i = _skip_ws(p, end, n)
        if i >= n or p[i] != c':':
            return SCAN_FALLBACK
        i = _skip_ws(p, i + 1, n)
        if key == K_MSG_TYPE:
            if s.has_msg_type:
                return SCAN_FALLBACK
            s.has_msg_type = True
            start = i
            i = _scan_int(p, i, n, &s.msg_type)
            if i >= 0 and not (MT_AUDIO <= s.msg_type <= MT_SHARE):
                return SCAN_FALLBACK
            if i >= 0:
                _record(s, p, K_MSG_TYPE, start, i)
        elif key == K_CONTENT:
            if s.has_content or i >= n or p[i] != c'{':
                return SCAN_FALLBACK
            s.has_content = True
            i = _scan_content(p, i, n, s)
        else:
            s.templatable = False
            i = _skip_value(p, i, n, 1)
        if i < 0:
            return SCAN_FALLBACK
        i = _skip_ws(p, i, n)
        if i >= n:
            return SCAN_FALLBACK
        if p[i] == c',':
            i = _skip_ws(p, i + 1, n)
        elif p[i] == c'}':
            break
        else:
            return SCAN_FALLBACK
    if _skip_ws(p, i + 1, n) != n:
        return SCAN_FALLBACK
    if not (s.has_msg_type and s.has_content) or (s.seen & (F_DATA | F_TIMESTAMP)) != (F_DATA | F_TIMESTAMP):
        return SCAN_FALLBACK
    return SCAN_MEDIA



cdef inline void _cache_value(ScanTemplate* t, int k, const uint8_t* p, Py_ssize_t start, Py_ssize_t end,
                              int64_t value) noexcept nogil:
    """Remember slot k's value bytes (a non-null value of a key that repeats) and what they parse to."""
    cdef int key = t.key[k]
    if key == K_DATA or key == K_TIMESTAMP or end - start > TEMPLATE_MAX_VALUE or p[start] == c'n':
        t.val_len[k] = 0
        return
    memcpy(t.val + k * TEMPLATE_MAX_VALUE, p + start, end - start)
    t.val_len[k] = <int>(end - start)
    t.val_int[k] = value


cdef inline int64_t _scanned_value(const MediaScan* s, int key) noexcept nogil:
    if key == K_MSG_TYPE:
        return s.msg_type
    if key == K_USER_ID:
        return s.user_id
    if key == K_LENGTH:
        return s.length
    return 0


cdef void learn_template(ScanTemplate* t, const uint8_t* p, Py_ssize_t n, const MediaScan* s) noexcept nogil:
    """Keep the literal bytes around the values of a message scan_media accepted (and the values)."""
    cdef Py_ssize_t pos = 0, seg
    cdef int k, off = 0
    t.valid = False
    if not s.templatable:
        return
    for k in range(s.nspans + 1):
        seg = (s.span_start[k] if k < s.nspans else n) - pos
        if off + seg > TEMPLATE_MAX_LITERAL:
            return
        memcpy(t.lit + off, p + pos, seg)
        t.lit_off[k] = off
        t.lit_len[k] = <int>seg
        off += <int>seg
        if k < s.nspans:
            t.key[k] = s.span_key[k]
            _cache_value(t, k, p, s.span_start[k], s.span_end[k], _scanned_value(s, s.span_key[k]))
            pos = s.span_end[k]
    t.nvals = s.nspans
    t.data_len = s.data_len
    t.flat_valid = False
    t.valid = True


cdef void _build_flat(ScanTemplate* t) noexcept nogil:
    """Fold the literals and every cached value into segments around data and timestamp."""
    cdef int k, key, j = 0, off = 0, seg = 0, vlen
    t.flat_valid = False
    t.flat_name_seg = -1
    t.flat_msg_type = 0
    t.flat_user_id = 0
    t.flat_length = -1
    for k in range(t.nvals + 1):
        if off + t.lit_len[k] > TEMPLATE_MAX_FLAT:
            return
        memcpy(t.flat + off, t.lit + t.lit_off[k], t.lit_len[k])
        off += t.lit_len[k]
        if k == t.nvals:
            break
        key = t.key[k]
        if key == K_DATA or key == K_TIMESTAMP:
            t.flat_off[j] = seg
            t.flat_len[j] = off - seg
            t.flat_key[j] = key
            j += 1
            seg = off
            continue
        vlen = t.val_len[k]
        if vlen == 0 or off + vlen > TEMPLATE_MAX_FLAT:
            return               # a value that is not cached: no flat form
        if key == K_MSG_TYPE:
            t.flat_msg_type = t.val_int[k]
        elif key == K_USER_ID:
            t.flat_user_id = <uint32_t>t.val_int[k]
        elif key == K_LENGTH:
            t.flat_length = t.val_int[k]
        elif key == K_USER_NAME:
            t.flat_name_seg = j
            t.flat_name_off = off - seg
            t.flat_name_len = vlen - 2
        memcpy(t.flat + off, t.val + k * TEMPLATE_MAX_VALUE, vlen)
        off += vlen
    t.flat_off[j] = seg
    t.flat_len[j] = off - seg
    t.flat_n = j
    t.flat_valid = True


cdef inline bint _same_bytes(const uint8_t* a, const uint8_t* b, Py_ssize_t n) noexcept nogil:
    """memcmp(a, b, n) == 0 for short literals, inlined: 8-byte words, the last one overlapping."""
    cdef uint64_t x, y
    cdef uint32_t u, v
    if n >= 8:
        while n > 8:
            memcpy(&x, a, 8)
            memcpy(&y, b, 8)
            if x != y:
                return False
            a += 8
            b += 8
            n -= 8
        memcpy(&x, a + n - 8, 8)
        memcpy(&y, b + n - 8, 8)
        return x == y
    if n >= 4:
        memcpy(&u, a, 4)
        memcpy(&v, b, 4)
        if u != v:
            return False
        memcpy(&u, a + n - 4, 4)
        memcpy(&v, b + n - 4, 4)
        return u == v
    if n > 0:
        return a[0] == b[0] and a[n >> 1] == b[n >> 1] and a[n - 1] == b[n - 1]
    return True


cdef inline Py_ssize_t _template_data(const uint8_t* p, Py_ssize_t pos, Py_ssize_t n, const ScanTemplate* t,
                                      MediaScan* s) noexcept nogil:
    """The data string at p[pos] (its opening quote): index after it, -1 to fall back."""
    cdef const uint8_t* quote
    if pos >= n or p[pos] != c'"':
        return -1
    # Same length as last time? Then no search: a quote earlier in the span is not
    # base64, so the decoder rejects it and the listener falls back.
    if pos + 1 + t.data_len < n and p[pos + 1 + t.data_len] == c'"':
        quote = p + pos + 1 + t.data_len
    else:
        quote = <const uint8_t*>memchr(p + pos + 1, c'"', n - pos - 1)
        if quote == NULL:
            return -1
    s.data = p + pos + 1
    s.data_len = quote - p - pos - 1
    return quote - p + 1


cdef inline Py_ssize_t _scan_tail_uint(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, int64_t* out) noexcept nogil:
    """Digits filling exactly p[pos:end] (1 to 16, no leading zero): ``end``, else -1.

    For the last value of a flat template, whose end is fixed by the final segment: two loads
    ending at ``end``, no search. Anything else (a sign, more digits, a float) is -1, and the
    slot-by-slot template, which would reject this frame's flat form anyway, decides."""
    cdef Py_ssize_t count = end - pos
    cdef uint64_t lo, hi
    if count < 1 or count > 16 or end < 16 or (p[pos] == c'0' and count > 1):
        return -1
    memcpy(&lo, p + end - 8, 8)
    if count <= 8:
        lo >>= 8 * (8 - count)
        if _nondigits(lo) & (0xFFFFFFFFFFFFFFFFULL >> (8 * (8 - count))):
            return -1
        out[0] = <int64_t>_parse_digits(lo, count)
        return end
    memcpy(&hi, p + end - 16, 8)
    hi >>= 8 * (16 - count)
    if _nondigits(lo) or (_nondigits(hi) & (0xFFFFFFFFFFFFFFFFULL >> (8 * (16 - count)))):
        return -1
    out[0] = <int64_t>(_parse_digits(hi, count - 8) * 100000000 + _parse_eight_digits(lo))
    return end


cdef inline int _scan_flat(const uint8_t* p, Py_ssize_t n, const ScanTemplate* t, MediaScan* s) noexcept nogil:
    """The flat template: SCAN_MEDIA when every segment is there byte for byte around valid values."""
    cdef Py_ssize_t pos = 0, name_at = 0, seg_len
    cdef int j
    for j in range(t.flat_n):
        seg_len = t.flat_len[j]
        if pos + seg_len > n or not _same_bytes(p + pos, t.flat + t.flat_off[j], seg_len):
            return SCAN_FALLBACK
        if j == t.flat_name_seg:
            name_at = pos
        pos += seg_len
        if t.flat_key[j] == K_DATA:
            pos = _template_data(p, pos, n, t, s)
        elif j == t.flat_n - 1:  # K_TIMESTAMP, the last value: it ends where the final segment starts
            pos = _scan_tail_uint(p, pos, n - t.flat_len[t.flat_n], &s.timestamp)
        else:                    # K_TIMESTAMP
            if _is_null(p, pos, n):
                return SCAN_FALLBACK
            pos = _scan_int(p, pos, n, &s.timestamp)
        if pos < 0:
            return SCAN_FALLBACK
    seg_len = t.flat_len[t.flat_n]
    if pos + seg_len != n or not _same_bytes(p + pos, t.flat + t.flat_off[t.flat_n], seg_len):
        return SCAN_FALLBACK
    if t.flat_n == t.flat_name_seg:
        name_at = pos
    s.msg_type = t.flat_msg_type
    s.user_id = t.flat_user_id
    s.length = t.flat_length
    if t.flat_name_seg >= 0:
        s.name = p + name_at + t.flat_name_off + 1
        s.name_len = t.flat_name_len
    return SCAN_MEDIA


cdef int scan_with_template(const uint8_t* p, Py_ssize_t n, ScanTemplate* t, MediaScan* s) noexcept nogil:
    """SCAN_MEDIA when the frame has the template's exact literals and valid values in between.

    Tries the flat form first; slot by slot, updates the value cache with values that changed,
    and (re)builds the flat form when every cached value matched."""
    cdef Py_ssize_t pos = 0, lit_len, start, vlen
    cdef int k, key
    cdef bint present, all_cached = True
    cdef int64_t ignored
    cdef const uint8_t* ignored_str
    cdef Py_ssize_t ignored_len
    s.user_id = 0
    s.name = NULL
    s.name_len = 0
    s.length = -1
    s.templatable = False
    if t.flat_valid and _scan_flat(p, n, t, s) == SCAN_MEDIA:
        return SCAN_MEDIA
    s.user_id = 0
    s.name = NULL
    s.name_len = 0
    s.length = -1
    for k in range(t.nvals):
        lit_len = t.lit_len[k]
        if pos + lit_len > n or not _same_bytes(p + pos, t.lit + t.lit_off[k], lit_len):
            return SCAN_FALLBACK
        pos += lit_len
        key = t.key[k]
        vlen = t.val_len[k]
        if vlen and pos + vlen <= n and _same_bytes(p + pos, t.val + k * TEMPLATE_MAX_VALUE, vlen):
            # The cached bytes again (the next literal, checked next, ends the value as before).
            if key == K_MSG_TYPE:
                s.msg_type = t.val_int[k]
            elif key == K_USER_ID:
                s.user_id = <uint32_t>t.val_int[k]
            elif key == K_USER_NAME:
                s.name = p + pos + 1
                s.name_len = vlen - 2
            elif key == K_LENGTH:
                s.length = t.val_int[k]
            pos += vlen
            continue
        start = pos
        if key == K_DATA:
            pos = _template_data(p, pos, n, t, s)
            if pos < 0:
                return SCAN_FALLBACK
            continue
        elif key == K_TIMESTAMP:
            if _is_null(p, pos, n):
                return SCAN_FALLBACK
            pos = _scan_int(p, pos, n, &s.timestamp)
            if pos < 0:
                return SCAN_FALLBACK
            continue
        elif key == K_MSG_TYPE:
            pos = _scan_int(p, pos, n, &s.msg_type)
            if pos >= 0 and not (MT_AUDIO <= s.msg_type <= MT_SHARE):
                return SCAN_FALLBACK
        elif key == K_USER_ID:
            pos = _scan_user_id(p, pos, n, &s.user_id)
        elif key == K_USER_NAME:
            pos = _scan_opt_str(p, pos, n, &s.name, &s.name_len)
        elif key == K_LENGTH:
            pos = _scan_opt_int(p, pos, n, &s.length, &present)
            if pos >= 0:
                if not present:
                    s.length = -1
                elif s.length < 0:
                    return SCAN_FALLBACK
        elif key == K_CHANNEL_ID:
            pos = _scan_opt_str(p, pos, n, &ignored_str, &ignored_len)
        else:                    # start_time, end_time, language, attribute
            pos = _scan_opt_int(p, pos, n, &ignored, &present)
        if pos < 0:
            return SCAN_FALLBACK
        _cache_value(t, k, p, start, pos, _scanned_value(s, key))
        all_cached = False
    lit_len = t.lit_len[t.nvals]
    if pos + lit_len != n or not _same_bytes(p + pos, t.lit + t.lit_off[t.nvals], lit_len):
        return SCAN_FALLBACK
    if all_cached:
        _build_flat(t)           # a steady stream: the next message takes the flat form
    return SCAN_MEDIA
