/* Sequence ops of the diffusion networks, part 2: Conv1d and ConvTranspose1d over channels-major
 * (C, L) sequences. See ops.h.
 *
 * f32 conv1d runs as loops over (output channel, input channel, tap), each tap one axpy over the
 * positions (stride 1) with the kernels' f32_axpy, so there is no im2col copy. q8 conv1d is an
 * im2col product: every output position's receptive field (c_in x kernel values, PyTorch's
 * weight order) becomes one "token" of activations quantized per group of 32, and the decoder's
 * q8_matmul multiplies the q8 weight matrix (c_out x c_in*kernel) by all of them. The tap-major
 * q8 form (ops.h, made once at load) quantizes each padded input position once and sums each
 * tap in int32 (kernels.h, q8_conv). */
#include "ops.h"

#include <math.h>
#include <stdlib.h>

/* ceil(a / b) for b > 0 and any sign of a. */
static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

static int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static bool conv_shape_ok(const uniecg__conv1d_shape *s) {
    return s && s->c_in >= 1 && s->c_out >= 1 && s->kernel >= 1 && s->stride >= 1 && s->pad_left >= 0 &&
           s->pad_right >= 0 && s->c_in <= UNIECG__SEQ_MAX_ELEMENTS && s->c_out <= UNIECG__SEQ_MAX_ELEMENTS &&
           s->kernel <= UNIECG__SEQ_MAX_ELEMENTS && s->stride <= UNIECG__SEQ_MAX_ELEMENTS &&
           s->pad_left <= UNIECG__SEQ_MAX_ELEMENTS && s->pad_right <= UNIECG__SEQ_MAX_ELEMENTS;
}

int64_t uniecg__conv1d_out_length(const uniecg__conv1d_shape *s, int64_t length) {
    if (!conv_shape_ok(s) || length < 1 || length > UNIECG__SEQ_MAX_ELEMENTS) return 0;
    int64_t span = length + s->pad_left + s->pad_right - s->kernel;
    return span < 0 ? 0 : span / s->stride + 1;
}

/* ---- f32 ----------------------------------------------------------------------------------- */

typedef struct {
    const uniecg_kernels *kernels;
    const uniecg__conv1d_shape *s;
    const float *w, *bias, *x;
    float *y;
    int64_t length, out_length;
} conv_f32_job;

static void conv_f32_task(void *ctx, int32_t index, int32_t count) {
    const conv_f32_job *job = ctx;
    const uniecg__conv1d_shape *s = job->s;
    int64_t begin, end, L = job->length, n = job->out_length;
    uniecg__chunk(s->c_out, index, count, 1, &begin, &end);
    for (int64_t o = begin; o < end; o++) {
        float *y = job->y + o * n;
        float b = job->bias ? job->bias[o] : 0.0f;
        for (int64_t t = 0; t < n; t++) y[t] = b;
        for (int64_t i = 0; i < s->c_in; i++) {
            const float *x = job->x + i * L;
            const float *w = job->w + (o * s->c_in + i) * s->kernel;
            for (int64_t j = 0; j < s->kernel; j++) {
                /* Output t reads input p = t * stride - pad_left + j; keep 0 <= p < L. */
                int64_t shift = j - s->pad_left;
                int64_t t0 = clamp(ceil_div(-shift, s->stride), 0, n), t1 = clamp(ceil_div(L - shift, s->stride), 0, n);
                if (t0 >= t1) continue;
                if (s->stride == 1) {
                    job->kernels->f32_axpy(y + t0, w[j], x + t0 + shift, t1 - t0);
                } else {
                    for (int64_t t = t0; t < t1; t++) y[t] += w[j] * x[t * s->stride + shift];
                }
            }
        }
    }
}

/* ---- q8 ------------------------------------------------------------------------------------ */

typedef struct {
    const uniecg_kernels *kernels;
    const uniecg__conv1d_shape *s;
    const uniecg__weight *w;
    const float *bias, *x;
    float *y;
    int64_t length, out_length, cols;
    float *columns;  /* (n_threads, cols) f32 receptive fields before quantization */
    int8_t *xq;      /* (out_length, cols) */
    float *xs;       /* (out_length, cols / 32) */
    float *products; /* (out_length, c_out): q8_matmul writes token-major */
    bool split_rows;
} conv_q8_job;

/* im2col + quantization of the output positions of this chunk. */
static void im2col_task(void *ctx, int32_t index, int32_t count) {
    const conv_q8_job *job = ctx;
    const uniecg__conv1d_shape *s = job->s;
    int64_t begin, end, groups = job->cols / UNIECG_Q8_GROUP;
    uniecg__chunk(job->out_length, index, count, 1, &begin, &end);
    float *col = job->columns + (int64_t)index * job->cols;
    for (int64_t t = begin; t < end; t++) {
        int64_t first = t * s->stride - s->pad_left;
        for (int64_t i = 0; i < s->c_in; i++) {
            const float *x = job->x + i * job->length;
            for (int64_t j = 0; j < s->kernel; j++) {
                int64_t p = first + j;
                col[i * s->kernel + j] = p >= 0 && p < job->length ? x[p] : 0.0f;
            }
        }
        uniecg__quantize(job->kernels, col, job->cols, job->xq + t * job->cols, job->xs + t * groups);
    }
}

/* The q8 product over a chunk of weight rows (many output channels) or of positions (few
 * channels, long sequences), then this chunk's outputs moved to channels-major with the bias. */
static void conv_q8_task(void *ctx, int32_t index, int32_t count) {
    const conv_q8_job *job = ctx;
    int64_t c_out = job->s->c_out, n = job->out_length, groups = job->cols / UNIECG_Q8_GROUP;
    int64_t r0 = 0, r1 = c_out, t0 = 0, t1 = n;
    if (job->split_rows) uniecg__chunk(c_out, index, count, 4, &r0, &r1);
    else uniecg__chunk(n, index, count, 4, &t0, &t1);
    if (r0 >= r1 || t0 >= t1) return;
    q8_matmul_args args = {.w = job->w->data,
                           .w_scales = (const uint8_t *)job->w->data + c_out * job->cols,
                           .xq = job->xq + t0 * job->cols,
                           .xs = job->xs + t0 * groups,
                           .y = job->products + t0 * c_out,
                           .rows = c_out,
                           .cols = job->cols,
                           .n_tokens = t1 - t0,
                           .y_stride = c_out};
    job->kernels->q8_matmul(&args, r0, r1);
    for (int64_t r = r0; r < r1; r++) {
        float b = job->bias ? job->bias[r] : 0.0f;
        for (int64_t t = t0; t < t1; t++) job->y[r * n + t] = job->products[t * c_out + r] + b;
    }
}

/* The checks of a convolution's shapes and buffers; its output length on success. */
static uniecg_status check_conv(const uniecg__seq_ctx *ctx, const uniecg__conv1d_shape *s, int64_t w_rows,
                                int64_t w_cols, const float *x, int64_t length, const float *y, int64_t *out_length,
                                uniecg_error *error) {
    if (!ctx || !s || !x || !y) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "conv1d: NULL argument");
    if (x == y) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "conv1d: the output cannot be the input");
    if (!conv_shape_ok(s) || length < 1)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "conv1d: bad shape (c_in %lld, c_out %lld, kernel %lld, stride %lld, padding %lld/%lld, "
                            "length %lld)",
                            (long long)s->c_in, (long long)s->c_out, (long long)s->kernel, (long long)s->stride,
                            (long long)s->pad_left, (long long)s->pad_right, (long long)length);
    uniecg_status st;
    if ((st = uniecg__seq_check_size(s->c_in, s->kernel, "conv1d weight row", error)) ||
        (st = uniecg__seq_check_size(s->c_in, length, "conv1d input", error)))
        return st;
    int64_t n = uniecg__conv1d_out_length(s, length), cols = s->c_in * s->kernel;
    if (n < 1)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "conv1d: a kernel of %lld does not fit %lld positions padded by %lld + %lld",
                            (long long)s->kernel, (long long)length, (long long)s->pad_left, (long long)s->pad_right);
    if ((st = uniecg__seq_check_size(s->c_out, n, "conv1d output", error)) ||
        (st = uniecg__seq_check_size(n, cols, "conv1d receptive fields", error)))
        return st;
    if (w_rows != s->c_out || w_cols != cols)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "conv1d: weight is %lld x %lld, the shape needs %lld x %lld (c_out x c_in*kernel)",
                            (long long)w_rows, (long long)w_cols, (long long)s->c_out, (long long)cols);
    *out_length = n;
    return UNIECG_OK;
}

uniecg_status uniecg__seq_conv1d(uniecg__seq_ctx *ctx, const uniecg__conv1d_shape *shape, const uniecg__weight *w,
                                 const float *bias, const float *x, int64_t length, float *y, uniecg_error *error) {
    if (!w || !w->data) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "conv1d: NULL argument");
    const uniecg__conv1d_shape *s = shape;
    int64_t n;
    uniecg_status st = check_conv(ctx, s, w->rows, w->cols, x, length, y, &n, error);
    if (st) return st;
    int64_t cols = s->c_in * s->kernel;
    if (w->dtype == UNIECG_DTYPE_F32) {
        conv_f32_job job = {.kernels = ctx->kernels, .s = s, .w = w->data, .bias = bias, .x = x, .y = y,
                            .length = length, .out_length = n};
        uniecg__parallel(s->c_out * n * cols >= 65536 ? ctx->pool : NULL, conv_f32_task, &job);
        return UNIECG_OK;
    }
    if (w->dtype != UNIECG_DTYPE_Q8)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "conv1d: weights must be f32 or q8, not %s",
                            uniecg_dtype_name(w->dtype) ? uniecg_dtype_name(w->dtype) : "unknown");
    if (cols % UNIECG_Q8_GROUP)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "conv1d: q8 weights need c_in * kernel (%lld x %lld = %lld) to be a multiple of 32; "
                            "keep this layer in f32",
                            (long long)s->c_in, (long long)s->kernel, (long long)cols);

    conv_q8_job job = {.kernels = ctx->kernels, .s = s, .w = w, .bias = bias, .x = x, .y = y, .length = length,
                       .out_length = n, .cols = cols};
    uniecg__seq_arena arena = {0};
    for (int pass = 0; pass < 2; pass++) { /* measure, then carve the reserved scratch */
        job.columns = uniecg__seq_take(&arena, (uint64_t)(ctx->n_threads * cols) * sizeof(float));
        job.xq = uniecg__seq_take(&arena, (uint64_t)(n * cols));
        job.xs = uniecg__seq_take(&arena, (uint64_t)(n * (cols / UNIECG_Q8_GROUP)) * sizeof(float));
        job.products = uniecg__seq_take(&arena, (uint64_t)(n * s->c_out) * sizeof(float));
        if (pass == 0) {
            if (!(arena.base = uniecg__seq_scratch(ctx, arena.used, error))) return UNIECG_ERR_OUT_OF_MEMORY;
            arena.used = 0;
        }
    }
    /* Rows when there are enough output channels for every thread to take whole blocks of 4
     * (each thread then reads only its share of the weights); positions otherwise. */
    job.split_rows = s->c_out >= 4 * (int64_t)ctx->n_threads;
    uniecg_thread_pool *pool = n * cols >= 16384 ? ctx->pool : NULL;
    uniecg__parallel(pool, im2col_task, &job);
    uniecg__parallel(s->c_out * n * cols >= 65536 ? ctx->pool : NULL, conv_q8_task, &job);
    return UNIECG_OK;
}

/* ---- q8, tap-major ------------------------------------------------------------------------- */

/* A tap's int32 sum holds at most c_in products of 127 x 127 = 16129: up to 65536 channels. */
enum { TAPS_MAX_C_IN = 65536 };

bool uniecg__conv1d_taps_fit(const uniecg__conv1d_shape *s, const uniecg__weight *w) {
    return s && w && w->data && conv_shape_ok(s) && (w->dtype == UNIECG_DTYPE_Q8 || w->dtype == UNIECG_DTYPE_F32) &&
           s->c_in % UNIECG_Q8_GROUP == 0 && s->c_in <= TAPS_MAX_C_IN && w->rows == s->c_out &&
           w->cols == s->c_in * s->kernel;
}

void uniecg__conv1d_taps_free(uniecg__conv1d_taps *taps) {
    if (!taps) return;
    free(taps->block);
    *taps = (uniecg__conv1d_taps){0};
}

uniecg_status uniecg__conv1d_taps_make(const uniecg__conv1d_shape *s, const uniecg__weight *w,
                                       uniecg__conv1d_taps *out, uniecg_error *error) {
    if (!out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "conv1d tap-major: NULL argument");
    *out = (uniecg__conv1d_taps){0};
    if (!uniecg__conv1d_taps_fit(s, w))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "conv1d tap-major: needs a q8 or f32 weight of c_out x c_in*kernel with c_in a multiple of 32");
    uniecg_status st;
    if ((st = uniecg__seq_check_size(s->c_out, s->c_in * s->kernel, "conv1d weight", error))) return st;
    int64_t taps = s->c_out * s->kernel, count = taps * s->c_in;
    float *values = malloc((size_t)count * sizeof(float)), *row = malloc((size_t)s->c_in * sizeof(float));
    uint8_t *block = uniecg__aligned_alloc((uint64_t)(taps * (int64_t)sizeof(float) + count));
    if (!values || !row || !block) {
        free(values);
        free(row);
        free(block);
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "conv1d tap-major: out of memory for %lld weights",
                            (long long)count);
    }
    if ((st = uniecg_to_f32(w->data, w->dtype, (uint64_t)count, values))) {
        free(values);
        free(row);
        free(block);
        return uniecg__fail(error, st, "conv1d tap-major: cannot read the weight");
    }
    float *scales = (float *)block;
    int8_t *q = (int8_t *)(block + taps * (int64_t)sizeof(float));
    for (int64_t o = 0; o < s->c_out; o++)
        for (int64_t j = 0; j < s->kernel; j++) {
            for (int64_t i = 0; i < s->c_in; i++) row[i] = values[(o * s->c_in + i) * s->kernel + j];
            uniecg__quantize_row(NULL, row, s->c_in, q + (o * s->kernel + j) * s->c_in, &scales[o * s->kernel + j]);
        }
    free(values);
    free(row);
    *out = (uniecg__conv1d_taps){.block = block, .scales = scales, .values = q};
    return UNIECG_OK;
}

typedef struct {
    const uniecg_kernels *kernels;
    const uniecg__conv1d_shape *s;
    const uniecg__conv1d_taps *taps;
    const float *bias, *x;
    float *y;
    int64_t length, out_length, positions;
    float *columns; /* (n_threads, c_in) one padded input position before quantization */
    int8_t *xq;     /* (positions, c_in) */
    float *xs;      /* (positions) */
    bool split_rows;
} conv_taps_job;

/* Padded input position p (input p - pad_left, zeros outside the input), gathered from the
 * channels-major input and quantized once. */
static void positions_task(void *ctx, int32_t index, int32_t count) {
    const conv_taps_job *job = ctx;
    int64_t c_in = job->s->c_in, begin, end;
    uniecg__chunk(job->positions, index, count, 1, &begin, &end);
    float *column = job->columns + (int64_t)index * c_in;
    for (int64_t p = begin; p < end; p++) {
        int64_t at = p - job->s->pad_left;
        bool inside = at >= 0 && at < job->length;
        for (int64_t i = 0; i < c_in; i++) column[i] = inside ? job->x[i * job->length + at] : 0.0f;
        uniecg__quantize_row(job->kernels, column, c_in, job->xq + p * c_in, job->xs + p);
    }
}

/* Output channels in pairs when there are enough for every thread, positions otherwise; the
 * kernel writes channels-major straight into y, the bias follows. */
static void conv_taps_task(void *ctx, int32_t index, int32_t count) {
    const conv_taps_job *job = ctx;
    const uniecg__conv1d_shape *s = job->s;
    int64_t n = job->out_length, r0 = 0, r1 = s->c_out, t0 = 0, t1 = n;
    if (job->split_rows) uniecg__chunk(s->c_out, index, count, 2, &r0, &r1);
    else uniecg__chunk(n, index, count, 4, &t0, &t1);
    if (r0 >= r1 || t0 >= t1) return;
    q8_conv_args args = {.w = job->taps->values,
                         .w_scales = job->taps->scales,
                         .xq = job->xq + t0 * s->stride * s->c_in,
                         .xs = job->xs + t0 * s->stride,
                         .y = job->y + t0,
                         .rows = s->c_out,
                         .c_in = s->c_in,
                         .taps = s->kernel,
                         .stride = s->stride,
                         .n_tokens = t1 - t0,
                         .y_stride = n};
    uniecg__q8_conv(job->kernels, &args, r0, r1);
    if (!job->bias) return;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = t0; t < t1; t++) job->y[r * n + t] += job->bias[r];
}

uniecg_status uniecg__seq_conv1d_taps(uniecg__seq_ctx *ctx, const uniecg__conv1d_shape *shape,
                                      const uniecg__conv1d_taps *taps, const float *bias, const float *x,
                                      int64_t length, float *y, uniecg_error *error) {
    if (!taps || !taps->block) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "conv1d tap-major: NULL weight");
    const uniecg__conv1d_shape *s = shape;
    int64_t n;
    uniecg_status st = check_conv(ctx, s, s ? s->c_out : 0, s ? s->c_in * s->kernel : 0, x, length, y, &n, error);
    if (st) return st;
    if (s->c_in % UNIECG_Q8_GROUP || s->c_in > TAPS_MAX_C_IN)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "conv1d tap-major: c_in (%lld) must be a multiple of 32 and at most %d", (long long)s->c_in,
                            TAPS_MAX_C_IN);
    int64_t positions = (n - 1) * s->stride + s->kernel;
    if ((st = uniecg__seq_check_size(positions, s->c_in, "conv1d padded input", error))) return st;
    conv_taps_job job = {.kernels = ctx->kernels, .s = s, .taps = taps, .bias = bias, .x = x, .y = y,
                         .length = length, .out_length = n, .positions = positions};
    uniecg__seq_arena arena = {0};
    for (int pass = 0; pass < 2; pass++) { /* measure, then carve the reserved scratch */
        job.columns = uniecg__seq_take(&arena, (uint64_t)(ctx->n_threads * s->c_in) * sizeof(float));
        job.xq = uniecg__seq_take(&arena, (uint64_t)(positions * s->c_in));
        job.xs = uniecg__seq_take(&arena, (uint64_t)positions * sizeof(float));
        if (pass == 0) {
            if (!(arena.base = uniecg__seq_scratch(ctx, arena.used, error))) return UNIECG_ERR_OUT_OF_MEMORY;
            arena.used = 0;
        }
    }
    job.split_rows = s->c_out >= 2 * (int64_t)ctx->n_threads;
    uniecg__parallel(positions * s->c_in >= 16384 ? ctx->pool : NULL, positions_task, &job);
    uniecg__parallel(s->c_out * n * s->c_in * s->kernel >= 65536 ? ctx->pool : NULL, conv_taps_task, &job);
    return UNIECG_OK;
}

/* ---- conv_transpose1d ---------------------------------------------------------------------- */

static bool conv_t_shape_ok(const uniecg__conv_transpose1d_shape *s) {
    return s && s->c_in >= 1 && s->c_out >= 1 && s->kernel >= 1 && s->stride >= 1 && s->padding >= 0 &&
           s->output_padding >= 0 && s->output_padding < s->stride && s->c_in <= UNIECG__SEQ_MAX_ELEMENTS &&
           s->c_out <= UNIECG__SEQ_MAX_ELEMENTS && s->kernel <= UNIECG__SEQ_MAX_ELEMENTS &&
           s->stride <= UNIECG__SEQ_MAX_ELEMENTS && s->padding <= UNIECG__SEQ_MAX_ELEMENTS;
}

int64_t uniecg__conv_transpose1d_out_length(const uniecg__conv_transpose1d_shape *s, int64_t length) {
    if (!conv_t_shape_ok(s) || length < 1 || length > UNIECG__SEQ_MAX_ELEMENTS) return 0;
    if ((length - 1) > UNIECG__SEQ_MAX_ELEMENTS / s->stride) return 0;
    int64_t n = (length - 1) * s->stride - 2 * s->padding + s->kernel + s->output_padding;
    return n < 1 ? 0 : n;
}

typedef struct {
    const uniecg_kernels *kernels;
    const uniecg__conv_transpose1d_shape *s;
    const float *w, *bias, *x;
    float *y;
    int64_t length, out_length;
} conv_t_job;

/* Output channels split over threads: each adds x[i][p] * W[i][o][j] at t = p * stride -
 * padding + j (the scatter form of the transposed convolution), so no two threads write the
 * same output row. */
static void conv_t_task(void *ctx, int32_t index, int32_t count) {
    const conv_t_job *job = ctx;
    const uniecg__conv_transpose1d_shape *s = job->s;
    int64_t begin, end, L = job->length, n = job->out_length;
    uniecg__chunk(s->c_out, index, count, 1, &begin, &end);
    for (int64_t o = begin; o < end; o++) {
        float *y = job->y + o * n;
        float b = job->bias ? job->bias[o] : 0.0f;
        for (int64_t t = 0; t < n; t++) y[t] = b;
        for (int64_t i = 0; i < s->c_in; i++) {
            const float *x = job->x + i * L;
            const float *w = job->w + (i * s->c_out + o) * s->kernel;
            for (int64_t j = 0; j < s->kernel; j++) {
                int64_t shift = j - s->padding; /* t = p * stride + shift, keep 0 <= t < n */
                int64_t p0 = clamp(ceil_div(-shift, s->stride), 0, L), p1 = clamp(ceil_div(n - shift, s->stride), 0, L);
                for (int64_t p = p0; p < p1; p++) y[p * s->stride + shift] += w[j] * x[p];
            }
        }
    }
}

uniecg_status uniecg__seq_conv_transpose1d(uniecg__seq_ctx *ctx, const uniecg__conv_transpose1d_shape *shape,
                                           const uniecg__weight *w, const float *bias, const float *x, int64_t length,
                                           float *y, uniecg_error *error) {
    if (!ctx || !shape || !w || !w->data || !x || !y)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "conv_transpose1d: NULL argument");
    if (x == y)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "conv_transpose1d: the output cannot be the input");
    const uniecg__conv_transpose1d_shape *s = shape;
    if (!conv_t_shape_ok(s) || length < 1)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "conv_transpose1d: bad shape (c_in %lld, c_out %lld, kernel %lld, stride %lld, padding "
                            "%lld, output_padding %lld, length %lld)",
                            (long long)s->c_in, (long long)s->c_out, (long long)s->kernel, (long long)s->stride,
                            (long long)s->padding, (long long)s->output_padding, (long long)length);
    uniecg_status st;
    if ((st = uniecg__seq_check_size(s->c_out, s->kernel, "conv_transpose1d weight row", error)) ||
        (st = uniecg__seq_check_size(s->c_in, s->c_out * s->kernel, "conv_transpose1d weight", error)) ||
        (st = uniecg__seq_check_size(s->c_in, length, "conv_transpose1d input", error)))
        return st;
    int64_t n = uniecg__conv_transpose1d_out_length(s, length), cols = s->c_out * s->kernel;
    if (n < 1)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "conv_transpose1d: no output positions for length %lld, stride %lld, padding %lld, kernel "
                            "%lld",
                            (long long)length, (long long)s->stride, (long long)s->padding, (long long)s->kernel);
    if ((st = uniecg__seq_check_size(s->c_out, n, "conv_transpose1d output", error))) return st;
    if (w->rows != s->c_in || w->cols != cols)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "conv_transpose1d: weight is %lld x %lld, the shape needs %lld x %lld (c_in x c_out*kernel)",
                            (long long)w->rows, (long long)w->cols, (long long)s->c_in, (long long)cols);
    const float *wf = w->data;
    if (w->dtype == UNIECG_DTYPE_Q8) {
        if (cols % UNIECG_Q8_GROUP)
            return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                                "conv_transpose1d: q8 weights need c_out * kernel (%lld) to be a multiple of 32",
                                (long long)cols);
        float *expanded = uniecg__seq_scratch(ctx, (uint64_t)(s->c_in * cols) * sizeof(float), error);
        if (!expanded) return UNIECG_ERR_OUT_OF_MEMORY;
        if ((st = uniecg_to_f32(w->data, w->dtype, (uint64_t)(s->c_in * cols), expanded)))
            return uniecg__fail(error, st, "conv_transpose1d: cannot expand the q8 weight");
        wf = expanded;
    } else if (w->dtype != UNIECG_DTYPE_F32) {
        return uniecg__fail(error, UNIECG_ERR_TYPE, "conv_transpose1d: weights must be f32 or q8, not %s",
                            uniecg_dtype_name(w->dtype) ? uniecg_dtype_name(w->dtype) : "unknown");
    }
    conv_t_job job = {.kernels = ctx->kernels, .s = s, .w = wf, .bias = bias, .x = x, .y = y, .length = length,
                      .out_length = n};
    uniecg__parallel(s->c_out * cols * length >= 65536 ? ctx->pool : NULL, conv_t_task, &job);
    return UNIECG_OK;
}
