#include "ops.h"
#include "lookup.h"

#include <stdlib.h>

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

static void q8_task(void *ctx, int32_t index, int32_t count) {
    const linear_job *job = ctx;
    int64_t begin, end;
    uniecg__chunk(job->q8.rows, index, count, 4, &begin, &end);
    if (begin < end) job->kernels->q8_matmul(&job->q8, begin, end);
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

void uniecg__linear(const uniecg_kernels *kernels, uniecg_thread_pool *pool, uniecg__activations *act,
                    const uniecg__weight *w, const float *x, int64_t n, float *y) {
    linear_job job = {.kernels = kernels, .w = w, .x = x, .n = n};
    job.q8.y = y;
    job.q8.rows = w->rows;
    if (w->dtype == UNIECG_DTYPE_Q8) {
        for (int64_t t = 0; t < n; t++)
            uniecg__quantize_activations(x + t * w->cols, w->cols, act->q + t * w->cols,
                                         act->scales + t * (w->cols / UNIECG_Q8_GROUP));
        job.q8 = (q8_matmul_args){.w = w->data, .w_scales = (const uint8_t *)w->data + w->rows * w->cols, .xq = act->q,
                                  .xs = act->scales, .y = y, .rows = w->rows, .cols = w->cols, .n_tokens = n,
                                  .y_stride = w->rows};
        uniecg__parallel(pool, q8_task, &job);
    } else {
        uniecg__parallel(pool, float_task, &job);
    }
}
