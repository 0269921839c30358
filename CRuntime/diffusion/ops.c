/* Sequence ops of the diffusion networks, part 1: the context and its scratch, linear layers,
 * GroupNorm / LayerNorm, activations, timestep embeddings, nearest up-sampling and small
 * helpers. Convolutions are in conv.c, attention in attention.c. See ops.h. */
#include "ops.h"

#include <math.h>
#include <stdlib.h>

uniecg_status uniecg__seq_ctx_init(uniecg__seq_ctx *ctx, uniecg_kernel_variant variant, uniecg_thread_pool *pool,
                                   uniecg_error *error) {
    if (!ctx) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "seq_ctx_init: NULL context");
    *ctx = (uniecg__seq_ctx){0};
    uniecg_kernel_variant resolved;
    uniecg_status s = uniecg_kernel_variant_resolve(variant, &resolved, error);
    if (s) return s;
    ctx->kernels = uniecg__kernels_for(resolved);
    ctx->pool = pool;
    ctx->n_threads = uniecg_thread_pool_size(pool);
    return UNIECG_OK;
}

void uniecg__seq_ctx_free(uniecg__seq_ctx *ctx) {
    if (!ctx) return;
    free(ctx->scratch);
    ctx->scratch = NULL;
    ctx->scratch_size = 0;
}

void *uniecg__seq_scratch(uniecg__seq_ctx *ctx, uint64_t bytes, uniecg_error *error) {
    if (bytes <= ctx->scratch_size) return ctx->scratch;
    /* Grow by at least half again, so a forward pass whose ops grow step by step settles fast. */
    uint64_t size = ctx->scratch_size + ctx->scratch_size / 2;
    if (size < bytes) size = bytes;
    free(ctx->scratch);
    ctx->scratch = uniecg__aligned_alloc(size);
    ctx->scratch_size = ctx->scratch ? size : 0;
    if (!ctx->scratch)
        uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "cannot allocate %llu bytes of scratch", (unsigned long long)size);
    return ctx->scratch;
}

uniecg_status uniecg__seq_check_size(int64_t a, int64_t b, const char *what, uniecg_error *error) {
    uint64_t product;
    if (a < 0 || b < 0 || a > UNIECG__SEQ_MAX_ELEMENTS || b > UNIECG__SEQ_MAX_ELEMENTS ||
        uniecg__mul_overflows((uint64_t)a, (uint64_t)b, &product) || product > (uint64_t)UNIECG__SEQ_MAX_ELEMENTS)
        return uniecg__fail(error, UNIECG_ERR_LIMIT, "%s: %lld x %lld values exceed the limit of %lld", what,
                            (long long)a, (long long)b, (long long)UNIECG__SEQ_MAX_ELEMENTS);
    return UNIECG_OK;
}

void uniecg__seq_take_activations(uniecg__seq_arena *arena, int64_t tokens, int64_t cols, uniecg__activations *act) {
    act->q = uniecg__seq_take(arena, (uint64_t)(tokens * cols));
    act->scales = uniecg__seq_take(arena, (uint64_t)(tokens * (cols / UNIECG_Q8_GROUP)) * sizeof(float));
    act->tokens = tokens;
    act->cols = cols;
}

/* ---- linear -------------------------------------------------------------------------------- */

void uniecg__seq_linear_unchecked(uniecg__seq_ctx *ctx, uniecg__activations *act, const uniecg__weight *w,
                                  const float *bias, const float *x, int64_t tokens, float *y) {
    uniecg__linear(ctx->kernels, ctx->pool, act, w, x, tokens, y);
    if (bias)
        for (int64_t t = 0; t < tokens; t++)
            for (int64_t r = 0; r < w->rows; r++) y[t * w->rows + r] += bias[r];
}

/* Common checks of a weight matrix given to an op. */
static uniecg_status check_weight(const uniecg__weight *w, const char *op, uniecg_error *error) {
    if (!w || !w->data) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "%s: NULL weight", op);
    if (w->rows < 1 || w->cols < 1)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "%s: empty weight (%lld x %lld)", op,
                            (long long)w->rows, (long long)w->cols);
    if (w->dtype == UNIECG_DTYPE_Q8 && w->cols % UNIECG_Q8_GROUP)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "%s: a q8 weight needs rows of a multiple of 32 values, not %lld", op, (long long)w->cols);
    if ((unsigned)w->dtype > UNIECG_DTYPE_Q8)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "%s: unknown weight dtype %d", op, (int)w->dtype);
    return uniecg__seq_check_size(w->rows, w->cols, op, error);
}

uniecg_status uniecg__seq_linear(uniecg__seq_ctx *ctx, const uniecg__weight *w, const float *bias, const float *x,
                                 int64_t tokens, float *y, uniecg_error *error) {
    if (!ctx || !x || !y) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "linear: NULL argument");
    uniecg_status s = check_weight(w, "linear", error);
    if (s) return s;
    if (tokens < 1) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "linear: %lld tokens", (long long)tokens);
    if ((s = uniecg__seq_check_size(tokens, w->cols, "linear input", error)) ||
        (s = uniecg__seq_check_size(tokens, w->rows, "linear output", error)))
        return s;
    uniecg__activations act = {0};
    if (w->dtype == UNIECG_DTYPE_Q8) {
        uniecg__seq_arena arena = {0};
        uniecg__seq_take_activations(&arena, tokens, w->cols, &act);
        if (!(arena.base = uniecg__seq_scratch(ctx, arena.used, error))) return UNIECG_ERR_OUT_OF_MEMORY;
        arena.used = 0;
        uniecg__seq_take_activations(&arena, tokens, w->cols, &act);
    }
    uniecg__seq_linear_unchecked(ctx, &act, w, bias, x, tokens, y);
    return UNIECG_OK;
}

/* ---- normalisation ------------------------------------------------------------------------- */

/* Normalises each of `units` runs of unit_size consecutive values with its own mean and biased
 * variance, then applies gamma/beta: per channel (GroupNorm: a unit is channels/groups whole
 * channels of `length` values) or per value (LayerNorm: a unit is one token). Two passes in
 * double: PyTorch's float32 Welford is close to exact, a float sum of squares is not when the
 * mean is large. */
typedef struct {
    const float *x;
    float *y;
    const float *gamma, *beta;
    int64_t units, unit_size;
    int64_t length; /* GroupNorm: values per channel; 0 for LayerNorm (gamma per value) */
    float eps;
} norm_job;

static void norm_task(void *ctx, int32_t index, int32_t count) {
    const norm_job *job = ctx;
    int64_t begin, end;
    uniecg__chunk(job->units, index, count, 1, &begin, &end);
    for (int64_t u = begin; u < end; u++) {
        const float *x = job->x + u * job->unit_size;
        float *y = job->y + u * job->unit_size;
        double sum = 0.0;
        for (int64_t i = 0; i < job->unit_size; i++) sum += x[i];
        double mean = sum / (double)job->unit_size, squares = 0.0;
        for (int64_t i = 0; i < job->unit_size; i++) squares += ((double)x[i] - mean) * ((double)x[i] - mean);
        float inv = (float)(1.0 / sqrt(squares / (double)job->unit_size + (double)job->eps));
        float m = (float)mean;
        if (!job->gamma) {
            for (int64_t i = 0; i < job->unit_size; i++) y[i] = (x[i] - m) * inv;
        } else if (job->length) {
            int64_t first = u * (job->unit_size / job->length); /* the unit's first channel */
            for (int64_t i = 0; i < job->unit_size; i++) {
                int64_t c = first + i / job->length;
                y[i] = (x[i] - m) * inv * job->gamma[c] + job->beta[c];
            }
        } else {
            for (int64_t i = 0; i < job->unit_size; i++) y[i] = (x[i] - m) * inv * job->gamma[i] + job->beta[i];
        }
    }
}

/* Runs on the pool only when there is enough work to pay for waking it. */
static void run(uniecg__seq_ctx *ctx, int64_t work, uniecg_parallel_fn fn, void *job) {
    uniecg__parallel(work >= 16384 ? ctx->pool : NULL, fn, job);
}

uniecg_status uniecg__seq_group_norm(uniecg__seq_ctx *ctx, const float *x, int64_t channels, int64_t length,
                                     int64_t groups, float eps, const float *gamma, const float *beta, float *y,
                                     uniecg_error *error) {
    if (!ctx || !x || !y) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "group_norm: NULL argument");
    if (!gamma != !beta)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "group_norm: gamma and beta go together");
    if (channels < 1 || length < 1 || groups < 1 || channels % groups)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "group_norm: %lld groups over %lld channels x %lld positions (groups must divide channels)",
                            (long long)groups, (long long)channels, (long long)length);
    if (!(eps >= 0.0f)) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "group_norm: eps %g", (double)eps);
    uniecg_status s = uniecg__seq_check_size(channels, length, "group_norm", error);
    if (s) return s;
    norm_job job = {.x = x, .y = y, .gamma = gamma, .beta = beta, .units = groups,
                    .unit_size = channels / groups * length, .length = length, .eps = eps};
    run(ctx, channels * length, norm_task, &job);
    return UNIECG_OK;
}

uniecg_status uniecg__seq_layer_norm(uniecg__seq_ctx *ctx, const float *x, int64_t tokens, int64_t dim, float eps,
                                     const float *gamma, const float *beta, float *y, uniecg_error *error) {
    if (!ctx || !x || !y) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "layer_norm: NULL argument");
    if (!gamma != !beta)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "layer_norm: gamma and beta go together");
    if (tokens < 1 || dim < 1)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "layer_norm: %lld tokens of %lld values",
                            (long long)tokens, (long long)dim);
    if (!(eps >= 0.0f)) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "layer_norm: eps %g", (double)eps);
    uniecg_status s = uniecg__seq_check_size(tokens, dim, "layer_norm", error);
    if (s) return s;
    norm_job job = {.x = x, .y = y, .gamma = gamma, .beta = beta, .units = tokens, .unit_size = dim, .length = 0,
                    .eps = eps};
    run(ctx, tokens * dim, norm_task, &job);
    return UNIECG_OK;
}

/* ---- activations --------------------------------------------------------------------------- */

typedef struct {
    float *x;
    int64_t n;
    uniecg__activation act;
} act_job;

static void act_task(void *ctx, int32_t index, int32_t count) {
    const act_job *job = ctx;
    int64_t begin, end;
    uniecg__chunk(job->n, index, count, 16, &begin, &end);
    float *x = job->x;
    switch (job->act) {
    case UNIECG__ACT_SILU:
        for (int64_t i = begin; i < end; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    case UNIECG__ACT_GELU:
        for (int64_t i = begin; i < end; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    case UNIECG__ACT_MISH:
        /* tanh(log(1 + e)) = e (e + 2) / (e (e + 2) + 2) with e = exp(x): one exp in double.
         * glibc's tanhf and log1pf round differently on x86-64 and arm64, exp does not, so this
         * form keeps the portable path bit-identical across architectures. Above 20 the factor
         * is 1 in float (and e^2 would overflow later). */
        for (int64_t i = begin; i < end; i++) {
            if (x[i] > 20.0f) continue;
            double e = exp((double)x[i]), n = e * (e + 2.0);
            x[i] = x[i] * (float)(n / (n + 2.0));
        }
        break;
    case UNIECG__ACT_QUICK_GELU:
        for (int64_t i = begin; i < end; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
        break;
    }
}

void uniecg__seq_activate(uniecg__seq_ctx *ctx, uniecg__activation act, float *x, int64_t n) {
    if (!ctx || !x || n <= 0) return;
    act_job job = {.x = x, .n = n, .act = act};
    run(ctx, n * 8, act_task, &job); /* transcendental functions: worth threads sooner */
}

/* ---- timestep embedding -------------------------------------------------------------------- */

uniecg_status uniecg__seq_timestep_embedding(const uniecg__timestep_embedding_params *params, float t, int64_t dim,
                                             float *y, uniecg_error *error) {
    if (!params || !y) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "timestep_embedding: NULL argument");
    int64_t half = dim / 2;
    if (dim < 2 || dim > (1 << 24) || (double)half == params->downscale_freq_shift || !isfinite(t) ||
        !isfinite(params->log_max_period) || !isfinite(params->downscale_freq_shift))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "timestep_embedding: dim %lld, t %g, log_max_period %g, shift %g", (long long)dim,
                            (double)t, params->log_max_period, params->downscale_freq_shift);
    /* diffusers: exponent = -ln(max_period) * arange(half, float32); exponent /= (half - shift);
     * emb = t * exp(exponent); every step in float32, as the tensors are. */
    float minus_log = (float)-params->log_max_period, denominator = (float)((double)half - params->downscale_freq_shift);
    float *sin_part = y + (params->flip_sin_to_cos ? half : 0), *cos_part = y + (params->flip_sin_to_cos ? 0 : half);
    for (int64_t i = 0; i < half; i++) {
        float exponent = minus_log * (float)i / denominator;
        float angle = t * expf(exponent);
        sin_part[i] = sinf(angle);
        cos_part[i] = cosf(angle);
    }
    if (dim % 2) y[dim - 1] = 0.0f;
    return UNIECG_OK;
}

/* ---- resampling and helpers ---------------------------------------------------------------- */

uniecg_status uniecg__seq_upsample_nearest(const float *x, int64_t channels, int64_t length, int64_t factor,
                                           float *y, uniecg_error *error) {
    if (!x || !y) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "upsample_nearest: NULL argument");
    if (channels < 1 || length < 1 || factor < 1)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "upsample_nearest: %lld channels x %lld positions x %lld",
                            (long long)channels, (long long)length, (long long)factor);
    uniecg_status s;
    if ((s = uniecg__seq_check_size(length, factor, "upsample_nearest", error)) ||
        (s = uniecg__seq_check_size(channels, length * factor, "upsample_nearest", error)))
        return s;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t t = 0; t < length; t++)
            for (int64_t k = 0; k < factor; k++) y[(c * length + t) * factor + k] = x[c * length + t];
    return UNIECG_OK;
}

void uniecg__seq_transpose(const float *x, int64_t rows, int64_t cols, float *y) {
    /* Blocks of 32 x 32 keep both sides in cache for the (512, 1024) tensors of the VAE. */
    for (int64_t r0 = 0; r0 < rows; r0 += 32)
        for (int64_t c0 = 0; c0 < cols; c0 += 32)
            for (int64_t r = r0; r < rows && r < r0 + 32; r++)
                for (int64_t c = c0; c < cols && c < c0 + 32; c++) y[c * rows + r] = x[r * cols + c];
}

void uniecg__seq_add_per_channel(float *x, int64_t channels, int64_t length, const float *v) {
    for (int64_t c = 0; c < channels; c++)
        for (int64_t t = 0; t < length; t++) x[c * length + t] += v[c];
}
