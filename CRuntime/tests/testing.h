/* A minimal test harness for the plain-C test programs: checks count passes and failures,
 * failures print where they happened, and the last line of every program is
 * "N passed, M failed" (exit status 1 on any failure). */
#ifndef UNIECG_TESTING_H
#define UNIECG_TESTING_H

#define _POSIX_C_SOURCE 200809L
#include "uniecg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int test_passed, test_failed;

/* Failures printed in full; later ones are only counted. */
#define TEST_MAX_REPORTS 60

/* Line-buffered output, so a test that hangs or crashes still shows how far it got. */
__attribute__((constructor)) static void test_line_buffering(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

static void test_fail(const char *file, int line, const char *format, ...) __attribute__((format(printf, 3, 4)));
__attribute__((unused)) static void test_fail(const char *file, int line, const char *format, ...) {
    test_failed++;
    if (test_failed > TEST_MAX_REPORTS) return; /* the count still tells how many */
    va_list args;
    va_start(args, format);
    printf("FAIL %s:%d: ", file, line);
    vprintf(format, args);
    printf("\n");
    va_end(args);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) test_passed++;                                                                   \
        else test_fail(__FILE__, __LINE__, "%s", #cond);                                           \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (cond) test_passed++;                                                                   \
        else test_fail(__FILE__, __LINE__, __VA_ARGS__);                                           \
    } while (0)

/* A status check that prints the status and the error message on failure; `error` is a
 * uniecg_error pointer (never NULL). */
#define CHECK_STATUS(expr, expected, error)                                                        \
    do {                                                                                           \
        uniecg_status got_ = (expr);                                                               \
        if (got_ == (expected)) test_passed++;                                                     \
        else test_fail(__FILE__, __LINE__, "%s: got %s, expected %s (%s)", #expr,                  \
                       uniecg_status_string(got_), uniecg_status_string(expected),                 \
                       (error)->message);                        \
    } while (0)

__attribute__((unused)) static int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

/* Finds Tests/Fixtures/<subdir> as a directory holding `probe`: $UNIECG_FIXTURES/<subdir> when
 * set, else relative to the working directory (the repository root, CRuntime or
 * CRuntime/tests) or to this header's own path. Writes it to `out`; false when not found. */
__attribute__((unused)) static bool test_find_fixtures(const char *subdir, const char *probe, char *out,
                                                       size_t size) {
    const char *env = getenv("UNIECG_FIXTURES");
    char candidates[5][1024];
    int n = 0;
    if (env) snprintf(candidates[n++], sizeof candidates[0], "%.900s/%.100s", env, subdir);
    snprintf(candidates[n++], sizeof candidates[0], "Tests/Fixtures/%.100s", subdir);
    snprintf(candidates[n++], sizeof candidates[0], "../Tests/Fixtures/%.100s", subdir);
    snprintf(candidates[n++], sizeof candidates[0], "../../Tests/Fixtures/%.100s", subdir);
    const char *slash = strrchr(__FILE__, '/');
    if (slash)
        snprintf(candidates[n++], sizeof candidates[0], "%.*s/../../Tests/Fixtures/%.100s", (int)(slash - __FILE__ > 800 ? 800 : slash - __FILE__),
                 __FILE__, subdir);
    for (int i = 0; i < n; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%.1000s/%.150s", candidates[i], probe);
        if (access(path, R_OK) == 0) {
            snprintf(out, size, "%.1000s", candidates[i]);
            return true;
        }
    }
    return false;
}

/* max |c - ref| / max |ref| (NaN counts as the worst): the f32 fixture bar. */
__attribute__((unused)) static double test_max_relative(const float *c, const float *ref, int64_t n) {
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)c[i] - (double)ref[i]);
        if (!(d <= worst)) worst = d; /* NaN propagates as a failure */
        if (fabs((double)ref[i]) > scale) scale = fabs((double)ref[i]);
    }
    return worst / (scale > 0 ? scale : 1);
}

/* Pearson correlation of a and b: the q8 fixture bar. */
__attribute__((unused)) static double test_correlation(const float *a, const float *b, int64_t n) {
    double ma = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= (double)n;
    mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / sqrt(saa * sbb);
}

/* The whole file at `path`, NUL-terminated (for text); NULL when unreadable. */
__attribute__((unused)) static unsigned char *test_read_path(const char *path, size_t *length) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *data = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)size + 1);
        if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
            free(data);
            data = NULL;
        }
    }
    fclose(f);
    if (data) {
        data[size] = 0;
        *length = (size_t)size;
    }
    return data;
}

/* A file of exactly `count` little-endian float32 values (NULL, with a note, otherwise). */
__attribute__((unused)) static float *test_read_floats(const char *path, int64_t count) {
    size_t length = 0;
    unsigned char *bytes = test_read_path(path, &length);
    if (!bytes || length != (size_t)count * 4) {
        printf("note: %s has %zu bytes, expected %lld floats\n", path, length, (long long)count);
        free(bytes);
        return NULL;
    }
    float *out = malloc(length);
    for (int64_t k = 0; k < count; k++) {
        const unsigned char *b = bytes + 4 * k;
        uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&out[k], &bits, sizeof bits);
    }
    free(bytes);
    return out;
}

/* A fresh directory for the program's files, removed by test_cleanup_dir. */
static char test_dir[256];

__attribute__((unused)) static const char *test_make_dir(const char *prefix) {
    const char *base = getenv("TMPDIR");
    snprintf(test_dir, sizeof test_dir, "%s/%s-XXXXXX", base && *base ? base : "/tmp", prefix);
    if (!mkdtemp(test_dir)) {
        perror("mkdtemp");
        exit(2);
    }
    return test_dir;
}

__attribute__((unused)) static void test_path(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", test_dir, name); }

__attribute__((unused)) static void test_cleanup_dir(void) {
    char command[400];
    snprintf(command, sizeof command, "rm -rf '%s'", test_dir);
    if (system(command) != 0) printf("note: could not remove %s\n", test_dir);
}

/* xoshiro-free deterministic test data: splitmix64. */
static uint64_t test_rng_state = 0x9E3779B97F4A7C15ull;
__attribute__((unused)) static uint64_t test_next(void) {
    uint64_t z = (test_rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in [-1, 1). */
__attribute__((unused)) static float test_uniform(void) { return (float)((double)(test_next() >> 11) * 0x1.0p-52 - 1.0); }

/* Seconds on a clock (CLOCK_MONOTONIC for wall time, CLOCK_PROCESS_CPUTIME_ID for the CPU time of
 * all threads), for the --bench modes; no test depends on a time. */
__attribute__((unused)) static double test_clock_seconds(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* qsort comparator for doubles, ascending (best and median of timings). */
__attribute__((unused)) static int test_by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
