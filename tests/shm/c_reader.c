/*
 * A consumer written in C against _native/include/rtms_shm.h only (no Python), used by the tests
 * to prove the header is enough, and by benchmarks/bench_shm.py for a native reader's wake-up.
 *
 *   c_reader follow <segment path> <user_id>   read the user's audio until the stream ends;
 *                                               print "frames lost gaps fnv1a64"
 *   c_reader wake <segment path> <samples>     block on the mixed ring; per wake-up print
 *                                               now - (int64 CLOCK_MONOTONIC ns stamped in the packet)
 * Build: cc -O2 -std=gnu11 -I_native/include tests/shm/c_reader.c -o c_reader
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rtms_shm.h"

static uint8_t *base;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: c_reader follow|wake PATH ARG\n"); return 2; }
    int fd = open(argv[2], O_RDWR);
    if (fd < 0) { perror("open"); return 1; }
    struct stat st;
    fstat(fd, &st);
    base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) { perror("mmap"); return 1; }
    rtms_stream_header *h = (rtms_stream_header *)base;
    if (rtms_load_acquire_u32(&h->magic) != RTMS_SHM_MAGIC_STREAM || h->version_major != RTMS_SHM_VERSION_MAJOR) {
        fprintf(stderr, "not a version-1 rtms stream segment\n");
        return 1;
    }
    int follow = strcmp(argv[1], "follow") == 0;
    rtms_pcm_ring *r = rtms_find_audio_ring(base, follow ? (uint32_t)strtoul(argv[3], NULL, 10) : 0);
    if (!r) { fprintf(stderr, "no such audio ring\n"); return 1; }
    const uint8_t *data = (const uint8_t *)r + r->data_offset;
    const rtms_gap *gaps = (const rtms_gap *)((const uint8_t *)r + r->gap_offset);
    uint64_t mask = r->capacity - 1, fb = r->frame_bytes;
    if (follow) {
        uint64_t cursor = rtms_load_acquire_u64(&r->start_index), frames = 0, lost = 0, ngaps = 0;
        uint64_t seen_gaps = r->gap_first; /* count every gap of this participant, from its start */
        uint64_t hash = 1469598103934665603ULL;
        uint8_t chunk[1 << 16];
        for (;;) {
            int ended = rtms_load_acquire_u32(&h->state) == RTMS_STATE_ENDED;
            uint64_t w = rtms_load_acquire_u64(&r->write_index);
            uint64_t start = rtms_load_acquire_u64(&r->start_index);
            if (cursor < start) cursor = start;
            if (cursor == w) {
                if (ended) break;
                rtms_wait_u64(&r->futex, &r->waiters, &r->write_index, w, 1000000000LL);
                continue;
            }
            uint64_t n = w - cursor;
            if (n > r->mirror) n = r->mirror;
            if (n * fb > sizeof chunk) n = sizeof chunk / fb;
            memcpy(chunk, data + (cursor & mask) * fb, n * fb); /* contiguous: n <= mirror */
            rtms_fence_acquire();
            uint64_t claim = __atomic_load_n(&r->claim_index, __ATOMIC_RELAXED);
            uint64_t oldest = claim > r->capacity ? claim - r->capacity : 0;
            uint64_t skip = oldest > cursor ? (oldest - cursor < n ? oldest - cursor : n) : 0;
            lost += skip;
            for (uint64_t i = skip * fb; i < n * fb; i++) { hash ^= chunk[i]; hash *= 1099511628211ULL; }
            frames += n - skip;
            cursor += n;
            uint64_t gc = rtms_load_acquire_u64(&r->gap_count);
            ngaps += gc - seen_gaps;
            seen_gaps = gc;
        }
        (void)gaps;
        printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %016" PRIx64 "\n", frames, lost, ngaps, hash);
        return 0;
    }
    long samples = strtol(argv[3], NULL, 10);
    uint64_t seen = rtms_load_acquire_u64(&r->write_index);
    printf("ready\n");
    fflush(stdout);
    for (long k = 0; k < samples; ) {
        if (!rtms_wait_u64(&r->futex, &r->waiters, &r->write_index, seen, 2000000000LL)) {
            if (rtms_load_acquire_u32(&h->state) == RTMS_STATE_ENDED) break;
            continue;
        }
        int64_t t1 = now_ns();
        uint64_t w = rtms_load_acquire_u64(&r->write_index);
        int64_t t0;
        memcpy(&t0, data + (seen & mask) * fb, sizeof t0); /* stamp of the first new packet */
        seen = w;
        printf("%" PRId64 "\n", t1 - t0);
        k++;
    }
    return 0;
}
