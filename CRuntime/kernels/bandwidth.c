#define _POSIX_C_SOURCE 200809L
/* Memory read bandwidth probe for the benchmark's roofline: the pool's threads sum disjoint
 * slices of a buffer larger than every cache, the way a decoder streams its weights. */
#include "kernels.h"

#include <stdlib.h>
#include <time.h>

typedef struct {
    const uint64_t *data;
    int64_t words;
    uint64_t sums[256];
} sum_job;

static void sum_task(void *ctx, int32_t index, int32_t count) {
    sum_job *job = ctx;
    int64_t begin, end;
    uniecg__chunk(job->words, index, count, 8, &begin, &end);
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (int64_t i = begin; i + 4 <= end; i += 4) {
        a += job->data[i];
        b += job->data[i + 1];
        c += job->data[i + 2];
        d += job->data[i + 3];
    }
    job->sums[index] = a + b + c + d;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uniecg_status uniecg_measure_read_bandwidth(uniecg_thread_pool *pool, uint64_t bytes, int32_t repeats,
                                            double *out_bytes_per_second) {
    if (!out_bytes_per_second || bytes < 1024 || repeats < 1) return UNIECG_ERR_INVALID_ARGUMENT;
    if (uniecg_thread_pool_size(pool) > 256) return UNIECG_ERR_INVALID_ARGUMENT;
    uint64_t *data = uniecg__aligned_alloc(bytes);
    if (!data) return UNIECG_ERR_OUT_OF_MEMORY;
    int64_t words = (int64_t)(bytes / 8);
    for (int64_t i = 0; i < words; i++) data[i] = (uint64_t)i; /* touch every page */
    sum_job job = {.data = data, .words = words};
    double best = 0;
    for (int32_t r = 0; r < repeats; r++) {
        double start = now_seconds();
        uniecg__parallel(pool, sum_task, &job);
        double rate = (double)bytes / (now_seconds() - start);
        if (rate > best) best = rate;
    }
    free(data);
    *out_bytes_per_second = best;
    return UNIECG_OK;
}
