/*
 * Wake-up probe: a consumer in C (rtms_shm.h only) that blocks on one participant's audio ring and,
 * on every wake-up, records how long ago the gateway received the frame it was woken for.
 *
 *   wakeup_probe <segment path> <user_id> <max samples>
 *
 * Per wake-up: now = CLOCK_MONOTONIC; w = write_index; inside = now - rtms_pcm_rx_ns(ring, w)
 * (the gateway's receive stamp, contract 1.2: frame-in to consumer wake-up); wire = now - the
 * simulator's send stamp in the first 8 bytes of the packet that ends at w (gateway bench's
 * StampedLoad). Samples are kept in memory; on SIGUSR1, SIGTERM or the stream's end it prints one
 * line per wake-up, "now_ns inside_ns wire_ns" (-1 where a stamp was not readable), and exits 0.
 * Used by benchmarks/contenders/gateway.py (BENCH_C_PROBES) and benchmarks/bench_wakeup.py.
 * Build: cc -O2 -std=gnu11 -I_native/include benchmarks/wakeup_probe.c -o wakeup_probe
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rtms_shm.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: wakeup_probe PATH USER_ID MAX_SAMPLES\n"); return 2; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;             /* no SA_RESTART: the futex wait returns EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) { perror("open"); return 1; }
    struct stat st;
    fstat(fd, &st);
    uint8_t *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) { perror("mmap"); return 1; }
    rtms_stream_header *h = (rtms_stream_header *)base;
    if (h->magic != RTMS_SHM_MAGIC_STREAM || h->version_major != 1 || h->version_minor < 2) {
        fprintf(stderr, "not a version >= 1.2 rtms stream segment\n");
        return 1;
    }
    uint32_t user_id = (uint32_t)strtoul(argv[2], NULL, 10);
    long max = strtol(argv[3], NULL, 10);
    int64_t *rows = calloc((size_t)max * 3, sizeof *rows);
    if (!rows) return 1;
    rtms_pcm_ring *r = NULL;
    while (!r && !stop) {                  /* the participant's ring appears with its first packet */
        r = rtms_find_audio_ring(base, user_id);
        if (!r) usleep(1000);
    }
    printf("ready\n");
    fflush(stdout);
    long n = 0;
    uint64_t seen = r ? rtms_load_acquire_u64(&r->write_index) : 0;
    const uint8_t *data = r ? (const uint8_t *)r + r->data_offset : NULL;
    while (r && !stop && n < max) {
        if (!rtms_wait_u64(&r->futex, &r->waiters, &r->write_index, seen, 200000000LL)) {
            if (rtms_load_acquire_u32(&h->state) == RTMS_STATE_ENDED) break;
            continue;
        }
        int64_t t = now_ns();
        uint64_t w = rtms_load_acquire_u64(&r->write_index);
        int64_t rx = rtms_pcm_rx_ns(r, w);
        int64_t sent = -1;
        if (w >= 320 && w - 320 >= rtms_load_acquire_u64(&r->start_index)) /* packet ending at w: 20 ms of 16 kHz mono */
            memcpy(&sent, data + ((w - 320) & (r->capacity - 1)) * r->frame_bytes, sizeof sent);
        rows[3 * n] = t;
        rows[3 * n + 1] = rx > 0 ? t - rx : -1;
        rows[3 * n + 2] = sent > 0 && t - sent < 10000000000LL ? t - sent : -1;
        n++;
        seen = w;
    }
    for (long i = 0; i < n; i++)
        printf("%" PRId64 " %" PRId64 " %" PRId64 "\n", rows[3 * i], rows[3 * i + 1], rows[3 * i + 2]);
    fflush(stdout);
    return 0;
}
