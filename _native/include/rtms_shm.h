/*
 * rtms_shm.h: the rtms-gateway shared-memory contract, version 1.1, for C/C++/Rust consumers.
 *
 * docs/SHM.md is the prose version (discovery, lifecycle, overrun and gap semantics, wake-up
 * protocol); this header is the binary layout plus the few atomic helpers a reader needs.
 * Everything is little-endian, naturally aligned, and at fixed offsets checked by the
 * _Static_asserts below (and by tests/shm against gateway/client.py's Python constants).
 *
 * One writer (the gateway), many readers. The writer never waits for a reader. Indices only grow
 * (64-bit, never wrap in practice). Readers may write exactly one kind of field: the `waiters`
 * counters, atomically, to announce that they sleep on the neighbouring futex word.
 */
#ifndef RTMS_SHM_H
#define RTMS_SHM_H

#include <stdint.h>
#include <stddef.h>
#ifdef __linux__
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if !defined(__cplusplus) && !defined(_DEFAULT_SOURCE) && !defined(_GNU_SOURCE)
long syscall(long number, ...); /* hidden by unistd.h under strict -std=c11 */
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define RTMS_SHM_VERSION_MAJOR 1u /* incompatible layout change: readers must refuse other majors */
#define RTMS_SHM_VERSION_MINOR 2u /* additive change (new fields in reserved space); 1.1: format rings; 1.2: receive stamps, waiter repairs */

#define RTMS_SHM_MAGIC_DIR     0x444D5452u /* "RTMD" */
#define RTMS_SHM_MAGIC_STREAM  0x534D5452u /* "RTMS" */
#define RTMS_SHM_MAGIC_PCM     0x414D5452u /* "RTMA" */
#define RTMS_SHM_MAGIC_RECORDS 0x464D5452u /* "RTMF" */

#define RTMS_CACHE_LINE 64

/* Directory slot / stream states. */
#define RTMS_STATE_FREE  0u
#define RTMS_STATE_LIVE  1u
#define RTMS_STATE_ENDED 2u

/* Ring kinds (rtms_ring_desc.kind). Numbered like the gateway's media kinds (msg_type - 14). */
#define RTMS_KIND_AUDIO     0u /* PCM ring, one per participant; user_id 0 = the mixed stream */
#define RTMS_KIND_VIDEO     1u /* record ring of video frames (JPEG/PNG images or H.264 chunks) */
#define RTMS_KIND_SHARE     2u /* record ring of screen-share frames */
#define RTMS_KIND_EVENTS    3u /* record ring of events: transcripts, chat, participant/session JSON */
#define RTMS_KIND_AUDIO_RAW 5u /* record ring of undecoded audio payloads (codec other than L16) */
#define RTMS_KIND_AUDIO_FORMAT 6u /* (1.1) PCM ring of one audio source converted to a consumer format:
                                     rate, channels and sample_format in the ring header; user_id is
                                     the source (0 = the mixed stream). Readers of 1.0 ignore it. */

/* PCM sample formats (rtms_pcm_ring.sample_format, 1.1; 0 in every 1.0 ring). */
#define RTMS_SAMPLE_S16 0u /* int16, little-endian */
#define RTMS_SAMPLE_F32 1u /* float32, little-endian, full scale +-1.0 */

/* Ring types (rtms_ring_desc.ring_type). */
#define RTMS_RING_PCM     1u
#define RTMS_RING_RECORDS 2u

/* Record flags (rtms_record.flags). */
#define RTMS_REC_KEY       0x00000001u /* video/share: decodable on its own (JPEG/PNG, H.264 IDR/SPS) */
#define RTMS_REC_ENC_MASK  0x0000FF00u /* events: how the payload is encoded */
#define RTMS_REC_ENC_BINARY     0x0000u
#define RTMS_REC_ENC_JSON       0x0100u /* UTF-8 JSON object with a "type" key */
#define RTMS_REC_ENC_TRANSCRIPT 0x0200u /* UTF-8 transcript text; user_id/timestamp in the header */
#define RTMS_REC_ENC_CHAT       0x0300u /* UTF-8 chat text (plain or JSON text as Zoom sent it) */
#define RTMS_REC_PAD       0x80000000u /* filler to the end of the data area; not a record */

#define RTMS_RECORD_ALIGN 32u
#define RTMS_STREAM_ID_MAX 128u
#define RTMS_SEGMENT_NAME_MAX 64u
#define RTMS_USER_NAME_MAX 80u

/* ------------------------------------------------------------------ directory segment
 * Name: <prefix>.dir in /dev/shm. rtms_dir_header, then slot_count slots of slot_size bytes. */
typedef struct rtms_dir_header {
    uint32_t magic;              /* 0   RTMS_SHM_MAGIC_DIR */
    uint16_t version_major;      /* 4 */
    uint16_t version_minor;      /* 6 */
    uint32_t header_size;        /* 8   sizeof(rtms_dir_header) = 256 */
    uint32_t slot_count;         /* 12 */
    uint32_t slot_size;          /* 16  sizeof(rtms_dir_slot) = 256 */
    uint32_t owner_pid;          /* 20  gateway process id */
    uint64_t owner_start_ticks;  /* 24  /proc/<pid>/stat field 22: tells a live owner from a reused pid */
    uint64_t created_unix_ns;    /* 32 */
    uint32_t state;              /* 40  RTMS_STATE_LIVE, RTMS_STATE_ENDED once the gateway stopped */
    uint8_t  _pad0[20];          /* 44 */
    /* line 1: change notification */
    uint64_t change_seq;         /* 64  incremented (release) after every slot change */
    uint32_t futex;              /* 72  futex word, bumped when a slot changes and waiters != 0 */
    uint32_t waiters;            /* 76  readers sleeping on `futex` (readers add/subtract atomically) */
    uint8_t  _pad1[48];          /* 80 */
    uint8_t  _reserved[128];     /* 128 */
} rtms_dir_header;

typedef struct rtms_dir_slot {
    uint64_t seq;                /* 0   seqlock: odd while the writer changes the slot */
    uint64_t generation;         /* 8   incremented each time the slot is (re)used */
    uint32_t state;              /* 16  RTMS_STATE_FREE / LIVE / ENDED */
    uint32_t stream_id_len;      /* 20 */
    uint64_t started_unix_ns;    /* 24 */
    uint64_t segment_size;       /* 32 */
    char     segment[RTMS_SEGMENT_NAME_MAX];  /* 40  NUL-terminated shm name (no leading '/') */
    char     stream_id[RTMS_STREAM_ID_MAX];   /* 104 not NUL-terminated; stream_id_len bytes */
    uint8_t  _pad[24];           /* 232 */
} rtms_dir_slot;

/* ------------------------------------------------------------------ stream segment
 * Name: <prefix>.<pid>.<n>. rtms_stream_header, ring_count rtms_ring_desc at ring_table_offset,
 * an info JSON blob (negotiated params, ids), then the rings, each page-aligned. */
typedef struct rtms_stream_header {
    uint32_t magic;              /* 0   RTMS_SHM_MAGIC_STREAM */
    uint16_t version_major;      /* 4 */
    uint16_t version_minor;      /* 6 */
    uint32_t header_size;        /* 8   512 */
    uint32_t ring_count;         /* 12 */
    uint32_t ring_desc_size;     /* 16  128 */
    uint32_t state;              /* 20  RTMS_STATE_LIVE, then RTMS_STATE_ENDED (release) at stream end */
    uint64_t segment_size;       /* 24 */
    uint64_t created_unix_ns;    /* 32 */
    uint32_t writer_pid;         /* 40 */
    uint32_t info_offset;        /* 44  UTF-8 JSON object */
    uint32_t info_len;           /* 48 */
    uint32_t ring_table_offset;  /* 52  512 */
    uint32_t flags;              /* 56  reserved, 0 */
    uint32_t _pad0;              /* 60 */
    /* line 1: media clock and formats (written once; origin_ms written before the first audio publish) */
    uint32_t audio_rate;         /* 64  Hz; 0 when the stream has no audio */
    uint16_t audio_channels;     /* 68 */
    uint16_t audio_codec;        /* 70  RTMS codec number (1 = L16) */
    uint16_t video_codec;        /* 72 */
    uint16_t share_codec;        /* 74 */
    uint32_t _pad1;              /* 76 */
    int64_t  origin_ms;          /* 80  RTMS timestamp of sample index 0; INT64_MIN until known */
    uint8_t  _pad2[40];          /* 88 */
    /* line 2: stream-wide wake-up (any ring committed) */
    uint32_t futex;              /* 128 */
    uint32_t waiters;            /* 132 */
    uint64_t commit_seq;         /* 136 incremented after every commit to any ring */
    uint64_t table_seq;          /* 144 incremented after every ring-table change (participant slot assigned) */
    uint8_t  _pad3[40];          /* 152 */
    /* line 3: drop counters by media kind (audio, video, share, transcript, chat) */
    uint64_t drops[5];           /* 192 */
    uint64_t events;             /* 232 events published */
    uint8_t  _pad4[16];          /* 240 */
    char     stream_id[RTMS_STREAM_ID_MAX]; /* 256 */
    uint32_t stream_id_len;      /* 384 */
    uint32_t _pad5;              /* 388 */
    uint64_t waiter_repairs;     /* 392 (1.2) stream-wide line: see rtms_pcm_ring.waiter_repairs */
    uint8_t  _reserved[112];     /* 400 */
} rtms_stream_header;

typedef struct rtms_ring_desc {
    uint64_t seq;                /* 0   seqlock over user_id/generation/user_name */
    uint32_t kind;               /* 8   RTMS_KIND_* */
    uint32_t ring_type;          /* 12  RTMS_RING_PCM / RTMS_RING_RECORDS */
    uint64_t offset;             /* 16  of the ring header from the segment start */
    uint64_t size;               /* 24  ring header + data + index/gap log */
    uint32_t user_id;            /* 32  audio: participant (0 = mixed); other kinds: 0 */
    uint32_t generation;         /* 36  0 = slot unused; bumped when the slot gets a new participant */
    uint32_t user_name_len;      /* 40 */
    uint32_t _pad;               /* 44 */
    char     user_name[RTMS_USER_NAME_MAX];  /* 48 */
} rtms_ring_desc;

/* ------------------------------------------------------------------ PCM ring (audio, L16)
 * int16 samples (float32 in format rings: see sample_format), channels interleaved; a "frame" is one sample per channel. Frame index i lives at
 * data[(i & (capacity-1)) * frame_bytes]. The data area holds capacity + mirror frames: frames at
 * physical [0, mirror) are duplicated at [capacity, capacity + mirror), so any run of <= mirror
 * frames is contiguous in memory. Valid frames: [max(start_index, claim_index - capacity), write_index). */
typedef struct rtms_pcm_ring {
    uint32_t magic;              /* 0   RTMS_SHM_MAGIC_PCM */
    uint32_t frame_bytes;        /* 4   2 * channels */
    uint64_t capacity;           /* 8   frames, power of two */
    uint64_t mirror;             /* 16  frames */
    uint32_t rate;               /* 24 */
    uint16_t channels;           /* 28 */
    uint16_t sample_format;      /* 30  RTMS_SAMPLE_S16 / RTMS_SAMPLE_F32 (1.1; frame_bytes follows it) */
    uint64_t data_offset;        /* 32  from the ring header */
    uint64_t gap_offset;         /* 40  from the ring header: gap_capacity rtms_gap entries */
    uint32_t gap_capacity;       /* 48  power of two */
    uint8_t  _pad1[12];          /* 52 */
    /* line 1: published indices (write_index stored last, release) */
    uint64_t write_index;        /* 64  one past the last committed frame */
    uint64_t start_index;        /* 72  first frame this participant ever had */
    uint64_t gap_count;          /* 80  gaps ever recorded; entry n at gaps[n & (gap_capacity-1)] */
    int64_t  rx_ns;              /* 88  (1.2) CLOCK_MONOTONIC ns at which the gateway received the frame
                                  *      whose commit set write_index to rx_index; 0 = not known */
    uint64_t rx_index;           /* 96  (1.2) seqlock for rx_ns: UINT64_MAX while rewritten (see rtms_pcm_rx_ns) */
    uint8_t  _pad2[24];          /* 104 */
    /* line 2 */
    uint64_t claim_index;        /* 128 end of the region the writer may be overwriting (>= write_index) */
    uint8_t  _pad3[56];          /* 136 */
    /* line 3 */
    uint32_t futex;              /* 192 */
    uint32_t waiters;            /* 196 */
    uint8_t  _pad4[56];          /* 200 */
    /* line 4: statistics (relaxed) */
    uint64_t packets;            /* 256 committed packets */
    uint64_t dropped_packets;    /* 264 duplicates / older than write_index / before the origin */
    uint64_t trimmed_frames;     /* 272 frames cut from packets overlapping already written audio */
    uint64_t gap_frames;         /* 280 frames marked missing in total */
    int64_t  last_timestamp_ms;  /* 288 */
    uint64_t gap_first;          /* 296 first gap entry of the current generation (slot reuse) */
    uint64_t waiter_repairs;     /* 304 (1.2) times the writer reset a waiter count left by a dead reader */
    uint8_t  _pad5[72];          /* 312 */
} rtms_pcm_ring;

typedef struct rtms_gap {
    uint64_t start;              /* first missing frame index */
    uint64_t length;             /* missing frames (zero-filled in the data area) */
} rtms_gap;

/* ------------------------------------------------------------------ record ring (frames, events)
 * Variable-size records, each RTMS_RECORD_ALIGN-aligned, never split: a record that would not fit
 * before the end of the data area is preceded by a RTMS_REC_PAD filler and starts at offset 0.
 * Record n (0-based) is found through index[n & (index_capacity-1)] = {seq=n, pos}; pos is a
 * byte position that only grows (data offset = pos & (capacity-1)). A record is intact while
 * pos >= claim_pos - capacity. */
typedef struct rtms_record_ring {
    uint32_t magic;              /* 0   RTMS_SHM_MAGIC_RECORDS */
    uint32_t kind;               /* 4 */
    uint64_t capacity;           /* 8   data bytes, power of two */
    uint64_t data_offset;        /* 16  from the ring header */
    uint64_t index_offset;       /* 24  from the ring header */
    uint32_t index_capacity;     /* 32  entries, power of two */
    uint32_t max_record;         /* 36  largest payload accepted (bytes) */
    uint32_t codec;              /* 40  RTMS codec number of the payloads (0 for events) */
    uint8_t  _pad0[20];          /* 44 */
    /* line 1 */
    uint64_t write_seq;          /* 64  records committed (stored last, release) */
    uint64_t write_pos;          /* 72  byte position after the last committed record */
    int64_t  rx_ns;              /* 80  (1.2) CLOCK_MONOTONIC ns at which the gateway received record rx_seq - 1; 0 = not known */
    uint64_t rx_seq;             /* 88  (1.2) seqlock for rx_ns: the write_seq it belongs to, UINT64_MAX while rewritten */
    uint8_t  _pad1[32];          /* 96 */
    /* line 2 */
    uint64_t claim_pos;          /* 128 */
    uint8_t  _pad2[56];          /* 136 */
    /* line 3 */
    uint32_t futex;              /* 192 */
    uint32_t waiters;            /* 196 */
    uint8_t  _pad3[56];          /* 200 */
    /* line 4: statistics */
    uint64_t dropped_too_large;  /* 256 */
    uint64_t bytes_total;        /* 264 payload bytes committed */
    uint64_t waiter_repairs;     /* 272 (1.2) see rtms_pcm_ring.waiter_repairs */
    uint8_t  _pad4[104];         /* 280 */
} rtms_record_ring;

typedef struct rtms_record {
    uint32_t size;               /* 0   payload bytes (the payload follows this header) */
    uint32_t flags;              /* 4   RTMS_REC_* */
    uint64_t seq;                /* 8 */
    int64_t  timestamp_ms;       /* 16  RTMS timestamp */
    uint32_t user_id;            /* 24 */
    uint32_t _reserved;          /* 28 */
} rtms_record;

typedef struct rtms_index_entry {
    uint64_t seq;                /* record number, or UINT64_MAX while being rewritten */
    uint64_t pos;
} rtms_index_entry;

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(rtms_dir_header) == 256, "dir header");
_Static_assert(sizeof(rtms_dir_slot) == 256, "dir slot");
_Static_assert(sizeof(rtms_stream_header) == 512, "stream header");
_Static_assert(sizeof(rtms_ring_desc) == 128, "ring desc");
_Static_assert(sizeof(rtms_pcm_ring) == 384, "pcm ring");
_Static_assert(sizeof(rtms_record_ring) == 384, "record ring");
_Static_assert(sizeof(rtms_record) == 32, "record");
_Static_assert(offsetof(rtms_pcm_ring, sample_format) == 30, "pcm sample_format");
_Static_assert(offsetof(rtms_pcm_ring, write_index) == 64, "pcm write_index");
_Static_assert(offsetof(rtms_pcm_ring, claim_index) == 128, "pcm claim_index");
_Static_assert(offsetof(rtms_pcm_ring, futex) == 192, "pcm futex");
_Static_assert(offsetof(rtms_record_ring, claim_pos) == 128, "rec claim_pos");
_Static_assert(offsetof(rtms_stream_header, futex) == 128, "stream futex");
_Static_assert(offsetof(rtms_pcm_ring, rx_ns) == 88 && offsetof(rtms_pcm_ring, rx_index) == 96, "pcm rx stamp");
_Static_assert(offsetof(rtms_pcm_ring, waiter_repairs) == 304, "pcm waiter_repairs");
_Static_assert(offsetof(rtms_record_ring, rx_ns) == 80 && offsetof(rtms_record_ring, rx_seq) == 88, "rec rx stamp");
_Static_assert(offsetof(rtms_record_ring, waiter_repairs) == 272, "rec waiter_repairs");
_Static_assert(offsetof(rtms_stream_header, waiter_repairs) == 392, "stream waiter_repairs");
_Static_assert(offsetof(rtms_stream_header, stream_id) == 256, "stream id");
#endif

/* ------------------------------------------------------------------ atomics (GCC/Clang builtins) */
static inline uint64_t rtms_load_acquire_u64(const volatile uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline uint32_t rtms_load_acquire_u32(const volatile uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline uint64_t rtms_load_relaxed_u64(const volatile uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void rtms_store_release_u64(volatile uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void rtms_store_release_u32(volatile uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void rtms_store_release_i64(volatile int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void rtms_store_relaxed_u64(volatile uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint32_t rtms_fetch_add_u32(volatile uint32_t *p, int32_t d) { return __atomic_fetch_add(p, (uint32_t)d, __ATOMIC_SEQ_CST); }
static inline int rtms_cas_u32(volatile uint32_t *p, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}
static inline void rtms_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void rtms_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static inline void rtms_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* (1.2) Receive stamps, reader side. After loading write_index w (acquire), returns the
 * CLOCK_MONOTONIC time in ns at which the gateway received the frame whose commit made the index w,
 * or -1 when it is not known (the writer already moved on, or wrote audio it did not receive as a
 * frame, such as the audio engine's output). Same clock as clock_gettime(CLOCK_MONOTONIC) in any
 * process on the host, so now - rtms_pcm_rx_ns() is the frame-in to consumer latency. */
static inline int64_t rtms_pcm_rx_ns(const volatile rtms_pcm_ring *r, uint64_t w) {
    uint64_t i1 = __atomic_load_n(&r->rx_index, __ATOMIC_ACQUIRE);
    int64_t t = __atomic_load_n(&r->rx_ns, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint64_t i2 = __atomic_load_n(&r->rx_index, __ATOMIC_RELAXED);
    return (i1 == w && i2 == w && t > 0) ? t : -1;
}
/* The same for record rings: ws is the write_seq loaded (acquire); the stamp is record ws - 1's. */
static inline int64_t rtms_record_rx_ns(const volatile rtms_record_ring *r, uint64_t ws) {
    uint64_t i1 = __atomic_load_n(&r->rx_seq, __ATOMIC_ACQUIRE);
    int64_t t = __atomic_load_n(&r->rx_ns, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint64_t i2 = __atomic_load_n(&r->rx_seq, __ATOMIC_RELAXED);
    return (i1 == ws && i2 == ws && t > 0) ? t : -1;
}

/* Reader side: the PCM ring of participant user_id (0 = the mixed stream) in a mapped stream
 * segment, found through the seqlocked ring table (a descriptor being rewritten is read again);
 * NULL while the stream has none (a participant's ring appears with its first packet). */
static inline rtms_pcm_ring *rtms_find_audio_ring(uint8_t *segment, uint32_t user_id) {
    const rtms_stream_header *h = (const rtms_stream_header *)segment;
    for (uint32_t i = 0; i < h->ring_count;) {
        rtms_ring_desc *d = (rtms_ring_desc *)(segment + h->ring_table_offset + (uint64_t)i * h->ring_desc_size);
        uint64_t seq = rtms_load_acquire_u64(&d->seq);
        if (seq & 1) continue;
        int match = d->kind == RTMS_KIND_AUDIO && d->generation != 0 && d->user_id == user_id;
        uint64_t off = d->offset;
        rtms_fence_acquire();
        if (__atomic_load_n(&d->seq, __ATOMIC_RELAXED) != seq) continue;
        if (match) return (rtms_pcm_ring *)(segment + off);
        i++;
    }
    return NULL;
}

#ifdef __linux__
/* Shared (not PRIVATE) futex ops: the words live in memory mapped by several processes. */
/* Returns the number of sleepers woken (or -1). */
static inline long rtms_futex_wake_all(volatile uint32_t *word) {
    return syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
/* Sleeps while *word == expected, at most timeout_ns (< 0: forever). Returns 0 or -1 (errno). */
static inline int rtms_futex_wait(volatile uint32_t *word, uint32_t expected, int64_t timeout_ns) {
    struct timespec ts, *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000LL);
        ts.tv_nsec = (long)(timeout_ns % 1000000000LL);
        tp = &ts;
    }
    return (int)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, tp, NULL, 0);
}

/* Writer side of the wake-up protocol, after the release store of an index:
 * full fence, then wake only if someone said it sleeps. */
static inline void rtms_notify(volatile uint32_t *futex, volatile uint32_t *waiters) {
    if (__atomic_load_n(waiters, __ATOMIC_RELAXED) != 0) {
        __atomic_fetch_add(futex, 1u, __ATOMIC_SEQ_CST);
        rtms_futex_wake_all(futex);
    }
}

/* Reader side, C consumers: wait until *index != seen (e.g. pcm->write_index != my cursor). */
static inline int rtms_wait_u64(volatile uint32_t *futex, volatile uint32_t *waiters,
                                const volatile uint64_t *index, uint64_t seen, int64_t timeout_ns) {
    uint32_t word = __atomic_load_n(futex, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(index, __ATOMIC_ACQUIRE) != seen) return 1;
    __atomic_fetch_add(waiters, 1u, __ATOMIC_SEQ_CST); /* full barrier before re-reading the index */
    int ready = __atomic_load_n(index, __ATOMIC_SEQ_CST) != seen;
    if (!ready) rtms_futex_wait(futex, word, timeout_ns);
    __atomic_fetch_sub(waiters, 1u, __ATOMIC_SEQ_CST);
    return __atomic_load_n(index, __ATOMIC_ACQUIRE) != seen;
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* RTMS_SHM_H */
