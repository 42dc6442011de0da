# NativeSink: the C-level contract between the media listener (parser) and what stores media
# (shared-memory rings, audio engine). The listener decodes base64 *into the memory reserve()
# returns*, then calls commit(); no Python object is built per frame on this path.
# Python-level sinks (gateway.sink.MediaSink) are served by the listener's slow path instead.
from libc.stdint cimport uint8_t, uint32_t, int64_t

# Media kinds, numbered as msg_type - 14 (audio 0, video 1, share 2, transcript 3, chat 4).
DEF KIND_AUDIO = 0
DEF KIND_VIDEO = 1
DEF KIND_SHARE = 2
DEF KIND_TRANSCRIPT = 3
DEF KIND_CHAT = 4

# Drop reasons passed to NativeSink.drop() (and counted by the listener).
DEF DROP_BAD_JSON = 1
DEF DROP_BAD_BASE64 = 2
DEF DROP_TOO_LARGE = 3
DEF DROP_NO_ROOM = 4
DEF DROP_BAD_FIELD = 5


cdef class NativeSink:
    """Base class for sinks fed by the native listener through C calls.

    Subclasses override the three cdef methods. ``reserve`` returns a pointer to at least
    ``nbytes`` writable bytes (or NULL to drop the frame); the listener has already scanned the
    whole message, so ``user_id`` and ``timestamp`` are known before decoding. It writes the
    decoded payload there and then calls ``commit`` with the real size (<= nbytes). Both run on the event-loop
    thread, between two frames; a reservation is never held across frames. If decoding fails after
    ``reserve`` (bad base64), the listener calls ``drop`` instead of ``commit`` and the reservation
    is abandoned: publish on ``commit`` only. ``drop`` gets ``kind`` -1 when the message type could
    not be read (malformed JSON, oversized frame). ``user_name`` is UTF-8 (NULL when absent).
    """

    # Set by a subclass that wants each frame's receive time: the listener then stores
    # CLOCK_MONOTONIC ns in ``rx_ns`` before ``reserve`` (one vDSO clock read per frame).
    cdef bint stamp_rx
    cdef int64_t rx_ns

    cdef uint8_t* reserve(self, int kind, uint32_t user_id, int64_t timestamp, Py_ssize_t nbytes) except? NULL:
        return NULL

    cdef int commit(self, int kind, uint32_t user_id, int64_t timestamp, Py_ssize_t nbytes,
                    const char* user_name, Py_ssize_t name_len) except -1:
        return 0

    cdef void drop(self, int kind, int reason) noexcept:
        pass
