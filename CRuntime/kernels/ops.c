#include "ops.h"
#include "lookup.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

uniecg_status uniecg__activations_init(uniecg__activations *a, int64_t tokens, int64_t cols) {
    int64_t padded = (cols + UNIECG_Q8_GROUP - 1) / UNIECG_Q8_GROUP * UNIECG_Q8_GROUP;
    a->q = uniecg__aligned_alloc((uint64_t)(tokens * padded));
    a->scales = uniecg__aligned_alloc((uint64_t)(tokens * padded / UNIECG_Q8_GROUP) * sizeof(float));
    a->tokens = tokens;
    a->cols = padded;
    return a->q && a->scales ? UNIECG_OK : UNIECG_ERR_OUT_OF_MEMORY;
}

void uniecg__activations_free(uniecg__activations *a) {
    free(a->q);
    free(a->scales);
    a->q = NULL;
    a->scales = NULL;
}

uniecg_status uniecg__weight_find(const uniecg_model_file *file, const char *name, int64_t rows, int64_t cols,
                                  uniecg__weight *out, uniecg_error *error) {
    uniecg_tensor_info t;
    int64_t shape[2] = {rows, cols};
    uniecg_status s = uniecg__tensor_find(file, name, 2, shape, &t, error);
    if (s) return s;
    *out = (uniecg__weight){.data = t.data, .dtype = t.dtype, .rows = rows, .cols = cols};
    return UNIECG_OK;
}

int64_t uniecg__meta_index(const uniecg_model_file *file, const char *key) {
    uniecg_file_summary summary;
    uniecg_model_file_summary(file, &summary);
    for (uint32_t i = 0; i < summary.metadata_count; i++) {
        uniecg_meta_entry e;
        if (uniecg_model_file_meta_at(file, i, &e) == UNIECG_OK && strcmp(e.key, key) == 0) return i;
    }
    return -1;
}

uniecg_status uniecg__vector_find(const uniecg_model_file *file, const char *name, int64_t n, const float **out,
                                  uniecg_error *error) {
    uniecg_tensor_info t;
    uniecg_status s = uniecg__tensor_find(file, name, 1, &n, &t, error);
    if (s) return s;
    if (t.dtype != UNIECG_DTYPE_F32) return uniecg__fail(error, UNIECG_ERR_TYPE, "tensor '%s' should be f32", name);
    *out = t.data;
    return UNIECG_OK;
}

void uniecg__weight_row(const uniecg__weight *w, int64_t row, float *out) {
    switch (w->dtype) {
    case UNIECG_DTYPE_Q8: {
        const int8_t *q = (const int8_t *)w->data + row * w->cols;
        const uint8_t *scales = (const uint8_t *)w->data + w->rows * w->cols + 2 * row * (w->cols / UNIECG_Q8_GROUP);
        for (int64_t i = 0; i < w->cols; i++)
            out[i] = (float)q[i] * uniecg_f16_to_f32(uniecg__get_u16(scales + 2 * (i / UNIECG_Q8_GROUP)));
        break;
    }
    case UNIECG_DTYPE_F32: memcpy(out, (const float *)w->data + row * w->cols, (size_t)w->cols * sizeof(float)); break;
    case UNIECG_DTYPE_F16:
        for (int64_t i = 0; i < w->cols; i++) out[i] = uniecg_f16_to_f32(((const uint16_t *)w->data)[row * w->cols + i]);
        break;
    case UNIECG_DTYPE_BF16:
        for (int64_t i = 0; i < w->cols; i++) out[i] = uniecg_bf16_to_f32(((const uint16_t *)w->data)[row * w->cols + i]);
        break;
    }
}

typedef struct {
    const uniecg_kernels *kernels;
    q8_matmul_args q8;
    const uniecg__weight *w;
    const float *x;
    int64_t n;
} linear_job;

/* Several q8 products over the same activations, their rows handed out in chunks from one
 * shared counter: a thread that is descheduled or slower does fewer chunks instead of holding
 * up the op, and one pool wake-up covers all the products. Each output row is computed by the
 * same kernel call whichever thread takes it, so the results do not depend on the split. */
enum { MAX_FUSED = 4 };
typedef struct {
    const uniecg_kernels *kernels;
    q8_matmul_args q8[MAX_FUSED];
    int64_t first[MAX_FUSED + 1]; /* combined row index where product i starts */
    int32_t count;
    int64_t min_rows;
    atomic_int_fast64_t next; /* first row not yet claimed */
} q8_fused_job;

static void q8_rows(const q8_fused_job *job, int64_t begin, int64_t end) {
    for (int32_t i = 0; i < job->count; i++) {
        int64_t b = begin > job->first[i] ? begin : job->first[i];
        int64_t e = end < job->first[i + 1] ? end : job->first[i + 1];
        if (b < e) job->kernels->q8_matmul(&job->q8[i], b - job->first[i], e - job->first[i]);
    }
}

static void q8_task(void *ctx, int32_t index, int32_t count) {
    q8_fused_job *job = ctx;
    (void)index;
    int64_t total = job->first[job->count];
    if (count == 1) {
        q8_rows(job, 0, total);
        return;
    }
    /* guided: each claim takes a share of what is left, never less than min_rows, so the
     * first chunks are long streams and the last ones short enough that the threads finish
     * together */
    int64_t begin = atomic_load_explicit(&job->next, memory_order_relaxed);
    for (;;) {
        if (begin >= total) return;
        int64_t size = (total - begin) / (2 * count);
        size = size < job->min_rows ? job->min_rows : (size + 3) / 4 * 4;
        int64_t end = begin + size < total ? begin + size : total;
        if (!atomic_compare_exchange_weak_explicit(&job->next, &begin, end, memory_order_relaxed, memory_order_relaxed))
            continue; /* begin now holds the current position */
        q8_rows(job, begin, end);
        begin = atomic_load_explicit(&job->next, memory_order_relaxed);
    }
}

/* Float weights (unquantized models): exact f32 accumulation, one row at a time. */
static void float_task(void *ctx, int32_t index, int32_t count) {
    const linear_job *job = ctx;
    const uniecg__weight *w = job->w;
    int64_t begin, end;
    uniecg__chunk(w->rows, index, count, 4, &begin, &end);
    float row[4096];
    for (int64_t r = begin; r < end; r++) {
        for (int64_t c0 = 0; c0 < w->cols; c0 += 4096) { /* widen f16/bf16 rows in slices */
            int64_t width = w->cols - c0 < 4096 ? w->cols - c0 : 4096;
            const float *wr;
            if (w->dtype == UNIECG_DTYPE_F32) {
                wr = (const float *)w->data + r * w->cols + c0;
            } else {
                const uint16_t *src = (const uint16_t *)w->data + r * w->cols + c0;
                for (int64_t i = 0; i < width; i++)
                    row[i] = w->dtype == UNIECG_DTYPE_F16 ? uniecg_f16_to_f32(src[i]) : uniecg_bf16_to_f32(src[i]);
                wr = row;
            }
            for (int64_t t = 0; t < job->n; t++) {
                const float *x = job->x + t * w->cols + c0;
                float sum = 0.0f;
                for (int64_t i = 0; i < width; i++) sum += wr[i] * x[i];
                job->q8.y[t * w->rows + r] = (c0 == 0 ? 0.0f : job->q8.y[t * w->rows + r]) + sum;
            }
        }
    }
}

void uniecg__linear_many(const uniecg_kernels *kernels, uniecg_thread_pool *pool, uniecg__activations *act,
                         const uniecg__weight *const *w, float *const *y, int32_t count, const float *x, int64_t n) {
    bool fused = count <= MAX_FUSED;
    for (int32_t i = 0; i < count; i++)
        if (w[i]->dtype != UNIECG_DTYPE_Q8 || w[i]->cols != w[0]->cols) fused = false;
    if (!fused) {
        for (int32_t i = 0; i < count; i++) uniecg__linear(kernels, pool, act, w[i], x, n, y[i]);
        return;
    }
    int64_t cols = w[0]->cols;
    for (int64_t t = 0; t < n; t++)
        uniecg__quantize(kernels, x + t * cols, cols, act->q + t * cols, act->scales + t * (cols / UNIECG_Q8_GROUP));
    q8_fused_job job = {.kernels = kernels, .count = count};
    job.first[0] = 0;
    for (int32_t i = 0; i < count; i++) {
        job.q8[i] = (q8_matmul_args){.w = w[i]->data, .w_scales = (const uint8_t *)w[i]->data + w[i]->rows * cols,
                                     .xq = act->q, .xs = act->scales, .y = y[i], .rows = w[i]->rows, .cols = cols,
                                     .n_tokens = n, .y_stride = w[i]->rows};
        job.first[i + 1] = job.first[i] + w[i]->rows;
    }
    /* the smallest claim: about 32 KiB of weights per token of work (so that a product over
     * many tokens and few rows still splits), a whole multiple of 4 rows */
    int64_t min_rows = ((32 << 10) / (cols + cols / 16) + 1 + n - 1) / n;
    job.min_rows = (min_rows + 3) / 4 * 4;
    atomic_init(&job.next, 0);
    uniecg__parallel(pool, q8_task, &job);
}

void uniecg__linear(const uniecg_kernels *kernels, uniecg_thread_pool *pool, uniecg__activations *act,
                    const uniecg__weight *w, const float *x, int64_t n, float *y) {
    if (w->dtype == UNIECG_DTYPE_Q8) {
        uniecg__linear_many(kernels, pool, act, &w, &y, 1, x, n);
        return;
    }
    linear_job job = {.kernels = kernels, .w = w, .x = x, .n = n};
    job.q8.y = y;
    job.q8.rows = w->rows;
    uniecg__parallel(pool, float_task, &job);
}
