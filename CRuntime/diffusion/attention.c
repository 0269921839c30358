/* Sequence ops of the diffusion networks, part 3: multi-head attention as nn.MultiheadAttention
 * computes it (token-major), self- and cross-attention over channels-major sequences, and the
 * one-token cross-attention fast path. See ops.h. */
#include "ops.h"

#include <math.h>
#include <stdlib.h>

/* Widths implied by the weights. */
typedef struct {
    int64_t embed, head_dim, dq, dk, dv, dout;
    bool packed;
} mha_dims;

static uniecg_status check_matrix(const uniecg__weight *w, const char *name, uniecg_error *error) {
    if (!w->data || w->rows < 1 || w->cols < 1)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "attention: %s is empty or NULL", name);
    if ((unsigned)w->dtype > UNIECG_DTYPE_Q8)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "attention: %s has an unknown dtype %d", name, (int)w->dtype);
    if (w->dtype == UNIECG_DTYPE_Q8 && w->cols % UNIECG_Q8_GROUP)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "attention: q8 %s needs rows of a multiple of 32 values, not %lld", name, (long long)w->cols);
    return uniecg__seq_check_size(w->rows, w->cols, name, error);
}

static uniecg_status resolve(const uniecg__attention_weights *a, mha_dims *d, uniecg_error *error) {
    if (!a) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "attention: NULL weights");
    bool separate = a->q_proj || a->k_proj || a->v_proj;
    if (!a->in_proj == !separate || (separate && !(a->q_proj && a->k_proj && a->v_proj)) || !a->out_proj)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "attention: give either in_proj or all of q_proj, k_proj, v_proj, and out_proj");
    uniecg_status s;
    d->packed = a->in_proj != NULL;
    if (d->packed) {
        if ((s = check_matrix(a->in_proj, "in_proj", error))) return s;
        if (a->in_proj->rows % 3)
            return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "attention: in_proj has %lld rows, not 3 x embed",
                                (long long)a->in_proj->rows);
        d->embed = a->in_proj->rows / 3;
        d->dq = d->dk = d->dv = a->in_proj->cols;
    } else {
        if ((s = check_matrix(a->q_proj, "q_proj", error)) || (s = check_matrix(a->k_proj, "k_proj", error)) ||
            (s = check_matrix(a->v_proj, "v_proj", error)))
            return s;
        if (a->k_proj->rows != a->q_proj->rows || a->v_proj->rows != a->q_proj->rows)
            return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                                "attention: q/k/v projections have %lld/%lld/%lld rows (must be equal)",
                                (long long)a->q_proj->rows, (long long)a->k_proj->rows, (long long)a->v_proj->rows);
        d->embed = a->q_proj->rows;
        d->dq = a->q_proj->cols;
        d->dk = a->k_proj->cols;
        d->dv = a->v_proj->cols;
    }
    if ((s = check_matrix(a->out_proj, "out_proj", error))) return s;
    if (a->heads < 1 || d->embed % a->heads)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "attention: %lld heads do not divide the width %lld",
                            (long long)a->heads, (long long)d->embed);
    if (a->out_proj->cols != d->embed)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "attention: out_proj takes %lld values, not %lld",
                            (long long)a->out_proj->cols, (long long)d->embed);
    d->head_dim = d->embed / a->heads;
    d->dout = a->out_proj->rows;
    return UNIECG_OK;
}

/* ---- the attention core --------------------------------------------------------------------- */

typedef struct {
    const uniecg_kernels *kernels;
    const float *q, *k, *v;
    int64_t q_stride, k_stride, v_stride; /* floats between consecutive tokens */
    float *out;                           /* (tokens, embed) */
    float *scores;                        /* (n_threads, keys) */
    int64_t tokens, keys, heads, head_dim;
} attention_job;

/* (query, head) pairs split over threads: softmax(q k^T / sqrt(head_dim)) v, the softmax with
 * the maximum subtracted (as PyTorch's), the weighted sum accumulated in f32. */
static void attention_task(void *ctx, int32_t index, int32_t count) {
    const attention_job *job = ctx;
    int64_t hd = job->head_dim, embed = job->heads * hd, begin, end;
    float *scores = job->scores + (int64_t)index * job->keys;
    float scale = 1.0f / sqrtf((float)hd);
    uniecg__chunk(job->tokens * job->heads, index, count, 1, &begin, &end);
    for (int64_t task = begin; task < end; task++) {
        int64_t t = task / job->heads, h = task % job->heads;
        const float *q = job->q + t * job->q_stride + h * hd;
        float max = -INFINITY;
        for (int64_t m = 0; m < job->keys; m++) {
            scores[m] = job->kernels->f32_dot(q, job->k + m * job->k_stride + h * hd, hd) * scale;
            if (scores[m] > max) max = scores[m];
        }
        float sum = 0.0f;
        for (int64_t m = 0; m < job->keys; m++) {
            scores[m] = expf(scores[m] - max);
            sum += scores[m];
        }
        float *out = job->out + t * embed + h * hd;
        for (int64_t i = 0; i < hd; i++) out[i] = 0.0f;
        for (int64_t m = 0; m < job->keys; m++)
            job->kernels->f32_axpy(out, scores[m] / sum, job->v + m * job->v_stride + h * hd, hd);
    }
}

/* The buffers of one MHA call, carved from the scratch (or only measured when arena->base is
 * NULL). */
typedef struct {
    float *q, *k, *v, *att, *scores;
    int64_t q_stride, k_stride, v_stride;
    uniecg__activations act;
} mha_buffers;

static void mha_layout(const uniecg__seq_ctx *ctx, const mha_dims *d, int64_t tokens, int64_t keys, bool self,
                       bool same_kv, uniecg__seq_arena *arena, mha_buffers *b) {
    int64_t e = d->embed;
    if (d->packed) {
        /* Packed weights give all of q, k, v for each input; keep the part each input is for. */
        b->q_stride = b->k_stride = b->v_stride = 3 * e;
        float *qkv = uniecg__seq_take(arena, (uint64_t)(tokens * 3 * e) * sizeof(float));
        float *kv = self ? qkv : uniecg__seq_take(arena, (uint64_t)(keys * 3 * e) * sizeof(float));
        float *vv = self || same_kv ? kv : uniecg__seq_take(arena, (uint64_t)(keys * 3 * e) * sizeof(float));
        b->q = qkv;
        b->k = kv ? kv + e : NULL;
        b->v = vv ? vv + 2 * e : NULL;
    } else {
        b->q_stride = b->k_stride = b->v_stride = e;
        b->q = uniecg__seq_take(arena, (uint64_t)(tokens * e) * sizeof(float));
        b->k = uniecg__seq_take(arena, (uint64_t)(keys * e) * sizeof(float));
        b->v = uniecg__seq_take(arena, (uint64_t)(keys * e) * sizeof(float));
    }
    b->att = uniecg__seq_take(arena, (uint64_t)(tokens * e) * sizeof(float));
    b->scores = uniecg__seq_take(arena, (uint64_t)(ctx->n_threads * keys) * sizeof(float));
    int64_t widest = d->dq > d->dk ? d->dq : d->dk;
    if (d->dv > widest) widest = d->dv;
    if (e > widest) widest = e;
    uniecg__seq_take_activations(arena, tokens > keys ? tokens : keys, widest, &b->act);
}

static uniecg_status check_tokens(const mha_dims *d, int64_t tokens, int64_t keys, uniecg_error *error) {
    if (tokens < 1 || keys < 1)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "attention: %lld queries and %lld keys",
                            (long long)tokens, (long long)keys);
    int64_t widest = d->dq > d->dk ? d->dq : d->dk;
    if (d->dv > widest) widest = d->dv;
    if (3 * d->embed > widest) widest = 3 * d->embed;
    if (d->dout > widest) widest = d->dout;
    uniecg_status s;
    if ((s = uniecg__seq_check_size(tokens, widest, "attention queries", error)) ||
        (s = uniecg__seq_check_size(keys, widest, "attention keys", error)))
        return s;
    return UNIECG_OK;
}

/* The whole MHA on carved buffers: projections, attention, output projection into y. */
static void mha_run(uniecg__seq_ctx *ctx, const uniecg__attention_weights *a, const mha_dims *d, const float *query,
                    int64_t tokens, const float *key, const float *value, int64_t keys, bool self, bool same_kv,
                    mha_buffers *b, float *y) {
    int64_t e = d->embed;
    const float *bias = a->in_proj_bias;
    if (d->packed) {
        uniecg__seq_linear_unchecked(ctx, &b->act, a->in_proj, bias, query, tokens, b->q);
        if (!self) {
            uniecg__seq_linear_unchecked(ctx, &b->act, a->in_proj, bias, key, keys, b->k - e);
            if (!same_kv) uniecg__seq_linear_unchecked(ctx, &b->act, a->in_proj, bias, value, keys, b->v - 2 * e);
        }
    } else {
        uniecg__seq_linear_unchecked(ctx, &b->act, a->q_proj, bias, query, tokens, b->q);
        uniecg__seq_linear_unchecked(ctx, &b->act, a->k_proj, bias ? bias + e : NULL, key, keys, b->k);
        uniecg__seq_linear_unchecked(ctx, &b->act, a->v_proj, bias ? bias + 2 * e : NULL, value, keys, b->v);
    }
    attention_job job = {.kernels = ctx->kernels, .q = b->q, .k = b->k, .v = b->v, .q_stride = b->q_stride,
                         .k_stride = b->k_stride, .v_stride = b->v_stride, .out = b->att, .scores = b->scores,
                         .tokens = tokens, .keys = keys, .heads = a->heads, .head_dim = d->head_dim};
    uniecg__parallel(tokens * keys * e >= 16384 ? ctx->pool : NULL, attention_task, &job);
    uniecg__seq_linear_unchecked(ctx, &b->act, a->out_proj, a->out_bias, b->att, tokens, y);
}

uniecg_status uniecg__seq_mha(uniecg__seq_ctx *ctx, const uniecg__attention_weights *a, const float *query,
                              int64_t tokens, const float *key, const float *value, int64_t keys, float *y,
                              uniecg_error *error) {
    if (!ctx || !query || !key || !value || !y)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "mha: NULL argument");
    mha_dims d;
    uniecg_status s = resolve(a, &d, error);
    if (s || (s = check_tokens(&d, tokens, keys, error))) return s;
    bool self = d.packed && query == key && key == value && tokens == keys, same_kv = key == value;
    mha_buffers b;
    uniecg__seq_arena arena = {0};
    mha_layout(ctx, &d, tokens, keys, self, same_kv, &arena, &b);
    if (!(arena.base = uniecg__seq_scratch(ctx, arena.used, error))) return UNIECG_ERR_OUT_OF_MEMORY;
    arena.used = 0;
    mha_layout(ctx, &d, tokens, keys, self, same_kv, &arena, &b);
    mha_run(ctx, a, &d, query, tokens, key, value, keys, self, same_kv, &b, y);
    return UNIECG_OK;
}

uniecg_status uniecg__seq_self_attention(uniecg__seq_ctx *ctx, const uniecg__attention_weights *a, const float *x,
                                         int64_t channels, int64_t length, float *y, uniecg_error *error) {
    if (!ctx || !x || !y) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "self_attention: NULL argument");
    mha_dims d;
    uniecg_status s = resolve(a, &d, error);
    if (s || (s = check_tokens(&d, length, length, error))) return s;
    if (channels != d.dq || channels != d.dk || channels != d.dv)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "self_attention: %lld channels, the projections take %lld/%lld/%lld", (long long)channels,
                            (long long)d.dq, (long long)d.dk, (long long)d.dv);
    float *xt = NULL, *yt = NULL;
    mha_buffers b;
    uniecg__seq_arena arena = {0};
    for (int pass = 0; pass < 2; pass++) {
        xt = uniecg__seq_take(&arena, (uint64_t)(length * channels) * sizeof(float));
        yt = uniecg__seq_take(&arena, (uint64_t)(length * d.dout) * sizeof(float));
        mha_layout(ctx, &d, length, length, d.packed, true, &arena, &b);
        if (pass == 0) {
            if (!(arena.base = uniecg__seq_scratch(ctx, arena.used, error))) return UNIECG_ERR_OUT_OF_MEMORY;
            arena.used = 0;
        }
    }
    uniecg__seq_transpose(x, channels, length, xt);
    mha_run(ctx, a, &d, xt, length, xt, xt, length, d.packed, true, &b, yt);
    uniecg__seq_transpose(yt, length, d.dout, y);
    return UNIECG_OK;
}

uniecg_status uniecg__seq_cross_attention(uniecg__seq_ctx *ctx, const uniecg__attention_weights *a, const float *x,
                                          int64_t channels, int64_t length, const float *cond, int64_t keys,
                                          int64_t cond_dim, float *y, uniecg_error *error) {
    if (!ctx || !x || !cond || !y)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "cross_attention: NULL argument");
    mha_dims d;
    uniecg_status s = resolve(a, &d, error);
    if (s || (s = check_tokens(&d, length, keys, error))) return s;
    if (channels != d.dq || cond_dim != d.dk || cond_dim != d.dv)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "cross_attention: %lld channels and a condition of %lld, the projections take %lld/%lld/%lld",
                            (long long)channels, (long long)cond_dim, (long long)d.dq, (long long)d.dk,
                            (long long)d.dv);
    float *xt = NULL, *yt = NULL;
    mha_buffers b;
    uniecg__seq_arena arena = {0};
    for (int pass = 0; pass < 2; pass++) {
        xt = uniecg__seq_take(&arena, (uint64_t)(length * channels) * sizeof(float));
        yt = uniecg__seq_take(&arena, (uint64_t)(length * d.dout) * sizeof(float));
        mha_layout(ctx, &d, length, keys, false, true, &arena, &b);
        if (pass == 0) {
            if (!(arena.base = uniecg__seq_scratch(ctx, arena.used, error))) return UNIECG_ERR_OUT_OF_MEMORY;
            arena.used = 0;
        }
    }
    uniecg__seq_transpose(x, channels, length, xt);
    mha_run(ctx, a, &d, xt, length, cond, cond, keys, false, true, &b, yt);
    uniecg__seq_transpose(yt, length, d.dout, y);
    return UNIECG_OK;
}

uniecg_status uniecg__seq_cross_attention_one_token(uniecg__seq_ctx *ctx, const uniecg__attention_weights *a,
                                                    const float *cond, int64_t cond_dim, float *y,
                                                    uniecg_error *error) {
    if (!ctx || !cond || !y)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "cross_attention_one_token: NULL argument");
    mha_dims d;
    uniecg_status s = resolve(a, &d, error);
    if (s || (s = check_tokens(&d, 1, 1, error))) return s;
    if (cond_dim != d.dv)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "cross_attention_one_token: a condition of %lld, the value projection takes %lld",
                            (long long)cond_dim, (long long)d.dv);
    /* The value projection (packed weights: all of q, k, v of the token, keeping v; one token, so
     * the wasted two thirds are negligible), then the output projection. */
    int64_t e = d.embed, projected = d.packed ? 3 * e : e;
    float *v = NULL;
    uniecg__activations act;
    uniecg__seq_arena arena = {0};
    for (int pass = 0; pass < 2; pass++) {
        v = uniecg__seq_take(&arena, (uint64_t)projected * sizeof(float));
        uniecg__seq_take_activations(&arena, 1, d.dv > e ? d.dv : e, &act);
        if (pass == 0) {
            if (!(arena.base = uniecg__seq_scratch(ctx, arena.used, error))) return UNIECG_ERR_OUT_OF_MEMORY;
            arena.used = 0;
        }
    }
    const float *bias = a->in_proj_bias;
    if (d.packed) {
        uniecg__seq_linear_unchecked(ctx, &act, a->in_proj, bias, cond, 1, v);
        v += 2 * e;
    } else {
        uniecg__seq_linear_unchecked(ctx, &act, a->v_proj, bias ? bias + 2 * e : NULL, cond, 1, v);
    }
    uniecg__seq_linear_unchecked(ctx, &act, a->out_proj, a->out_bias, v, 1, y);
    return UNIECG_OK;
}
