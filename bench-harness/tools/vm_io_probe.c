/*
 * Probe: how a machine's durable 1 MiB writes (O_DIRECT pwrite, then
 * fdatasync) depend on things outside the device: what happens to the
 * write buffer before the write, what the other CPU does meanwhile, and
 * how large the region written in turn is. No Corelog code runs here; it
 * separates the machine's behaviour from the log's.
 *
 * Build and run (x86-64, Linux):
 *   gcc -O2 -pthread -o /tmp/vm_io_probe bench-harness/tools/vm_io_probe.c
 *   cd /var/tmp && /tmp/vm_io_probe copy memcpy 2000
 *
 * Subcommands (files are created in the current directory and removed):
 *   copy MODE ITERS   Before each write, copy 1 MiB into the write buffer:
 *                     MODE memcpy (ordinary stores), streaming (SSE2
 *                     non-temporal stores) or none (the buffer is written
 *                     as it is). Prints the copy, the write + fdatasync
 *                     and their sum; the writes go over a 64 MiB ring.
 *   busy MODE ITERS   Writes from CPU 0 while a thread on CPU 1 is idle
 *                     (MODE idle: sleeps 1 ms at a time), copies 1 MiB
 *                     again and again (memcpy) or spins on arithmetic
 *                     (spin). Prints write + fdatasync.
 *   ring MIB ITERS    Writes over a ring of MIB MiB, in order, in a file
 *                     filled beforehand. Prints write + fdatasync.
 *
 * Each line: n, p50, p90, p99 and p99.9 in microseconds.
 */
#define _GNU_SOURCE
#include <emmintrin.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1u << 20)
#define FILE_NAME "vm_io_probe.dat"

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_line(const char *name, double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    printf("%-14s n %d p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f us\n", name, n, v[n / 2],
           v[n * 9 / 10], v[n * 99 / 100], v[n * 999 / 1000]);
}

/* Whole 64-byte lines with non-temporal stores: no read of the line first. */
static void copy_streaming(char *dst, const char *src, size_t n) {
    for (size_t i = 0; i + 64 <= n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
        _mm_stream_si128((__m128i *)(dst + i), a);
        _mm_stream_si128((__m128i *)(dst + i + 16), b);
        _mm_stream_si128((__m128i *)(dst + i + 32), c);
        _mm_stream_si128((__m128i *)(dst + i + 48), d);
    }
    _mm_sfence();
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static int open_filled(char *buf, int blocks) {
    int fd = open(FILE_NAME, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
    if (fd < 0) {
        perror("open");
        exit(1);
    }
    for (int i = 0; i < blocks; i++)
        if (pwrite(fd, buf, BLOCK, (off_t)i * BLOCK) != BLOCK) {
            perror("pwrite");
            exit(1);
        }
    fsync(fd);
    return fd;
}

static double write_sync(int fd, char *buf, int block) {
    double t0 = now_us();
    if (pwrite(fd, buf, BLOCK, (off_t)block * BLOCK) != BLOCK || fdatasync(fd) != 0) {
        perror("write");
        exit(1);
    }
    return now_us() - t0;
}

/* The index of `mode` in `names` (NULL-terminated); exits on a mode not in it. */
static int mode_index(const char *mode, const char *const names[]) {
    for (int i = 0; names[i]; i++)
        if (strcmp(mode, names[i]) == 0) return i;
    fprintf(stderr, "unknown mode %s\n", mode);
    exit(2);
}

static volatile int stop_busy;
static int busy_mode; /* 0 idle, 1 memcpy, 2 spin */

static void *busy(void *arg) {
    (void)arg;
    pin(1);
    char *a = malloc(BLOCK), *b = malloc(BLOCK);
    memset(a, 1, BLOCK);
    memset(b, 2, BLOCK);
    volatile unsigned long k = 0;
    while (!stop_busy) {
        if (busy_mode == 1)
            memcpy(b, a, BLOCK);
        else if (busy_mode == 2)
            for (int i = 0; i < 100000; i++) k += i;
        else
            usleep(1000);
    }
    free(a);
    free(b);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s copy|busy|ring MODE|MIB ITERS (see the source)\n", argv[0]);
        return 2;
    }
    const char *cmd = argv[1], *mode = argv[2];
    int iters = atoi(argv[3]);
    if (iters < 1) {
        fprintf(stderr, "ITERS must be at least 1, not %s\n", argv[3]);
        return 2;
    }
    char *src = aligned_alloc(4096, BLOCK), *buf = aligned_alloc(2 << 20, BLOCK);
    for (unsigned i = 0; i < BLOCK; i++) src[i] = (char)rand();
    memcpy(buf, src, BLOCK);
    double *a = malloc(iters * sizeof(double)), *b = malloc(iters * sizeof(double)),
           *c = malloc(iters * sizeof(double));
    if (strcmp(cmd, "copy") == 0) {
        static const char *const modes[] = {"memcpy", "streaming", "none", NULL};
        int m = mode_index(mode, modes);
        int fd = open_filled(buf, 64);
        for (int i = 0; i < iters; i++) {
            double t0 = now_us();
            if (m == 0)
                memcpy(buf, src, BLOCK);
            else if (m == 1)
                copy_streaming(buf, src, BLOCK);
            a[i] = now_us() - t0;
            b[i] = write_sync(fd, buf, i % 64);
            c[i] = a[i] + b[i];
        }
        close(fd);
        printf("copy %s\n", mode);
        print_line("copy", a, iters);
        print_line("write+sync", b, iters);
        print_line("total", c, iters);
    } else if (strcmp(cmd, "busy") == 0) {
        static const char *const modes[] = {"idle", "memcpy", "spin", NULL};
        busy_mode = mode_index(mode, modes);
        pin(0);
        int fd = open_filled(buf, 64);
        pthread_t t;
        pthread_create(&t, NULL, busy, NULL);
        usleep(10000);
        for (int i = 0; i < iters; i++) a[i] = write_sync(fd, buf, i % 64);
        stop_busy = 1;
        pthread_join(t, NULL);
        close(fd);
        printf("busy %s\n", mode);
        print_line("write+sync", a, iters);
    } else if (strcmp(cmd, "ring") == 0) {
        int mib = atoi(mode);
        if (mib < 1) {
            fprintf(stderr, "ring size must be at least 1 MiB, not %s\n", mode);
            return 2;
        }
        int fd = open_filled(buf, mib);
        for (int i = 0; i < iters; i++) a[i] = write_sync(fd, buf, i % mib);
        close(fd);
        printf("ring %d MiB\n", mib);
        print_line("write+sync", a, iters);
    } else {
        fprintf(stderr, "unknown subcommand %s\n", cmd);
        return 2;
    }
    unlink(FILE_NAME);
    return 0;
}
