/* The latent U-Net of DiffuSETS ("diffusets-unet1d", ModelFormat.md "Latent U-Net (unet.*)")
 * and the guided sampling loop around it, assembled from the sequence ops (ops.h) and the
 * schedulers (scheduler.c). Reference: Tools/reference/diffusets.py (ConditionalUNet).
 *
 * One block (down block, the bottleneck, up block), channels-major x (cin, L):
 *   h = x + time_mlp(sinusoid(t + 1))              per channel
 *   h = conv_mid(Mish(GroupNorm1(conv1(h))))         conv1 k, conv_mid 1 (bottleneck: both k_b)
 *   over tokens: h += to_out(MHA(in_q to_q n, in_k to_k n, in_v to_v n)), n = LayerNorm(h)
 *                h += cross vector (one per block and condition)
 *                h = LayerNorm(h)
 *   out = Mish(GroupNorm1(conv2(h))) + res(x)        res: 1x1 conv when cin != cout, else x
 * The bottleneck is such a block with cin = cout = s and its own kernel, so one code path
 * serves all 2 (levels - 1) + 1 blocks.
 *
 * A batch-1 call runs every layer split over the pool's threads. A batch of several samples
 * with several threads runs the samples side by side instead, one per thread (the layers of
 * this U-Net are small: at the published shape most work on 2 to 16 positions, too little to
 * split), each thread on its own workspace. Every value is computed the same way on any
 * thread split, so sample b's result depends neither on the thread count nor on the other
 * samples, bit for bit.
 *
 * Products: q8 weights go through the ops (uniecg__seq_linear / uniecg__seq_conv1d, the q8
 * kernels); f32 weights through dot_product (the kernels' f32_dot), convolutions as receptive
 * fields times weight rows, and the transposed convolution in gather form (up_sample). */
#include "unet.h"

#include "internal.h"
#include "lookup.h"
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_LEVELS 12
#define MAX_BLOCKS (2 * (MAX_LEVELS - 1) + 1)
/* Cached condition sets: a guided sample needs two (the condition and the null one); the rest
 * is slack for callers alternating a few conditions. */
#define CACHE_ENTRIES 4

typedef struct {
    uniecg__weight w;
    const float *b;
    uniecg__conv1d_taps taps; /* a q8 convolution over a multiple of 32 channels: its tap-major form */
} dense;

typedef struct {
    int64_t cin, cout, s, k, k_mid, heads, hidden, length;
    bool has_res;
    dense fc1, fc2, conv1, conv_mid, conv2, res;
    const float *norm1, *norm1_b, *norm2, *norm2_b;
    /* self-attention */
    const float *sa_norm, *sa_norm_b, *sa_in_b; /* in_proj bias (3 hidden), packed as stored */
    dense sa_q, sa_k, sa_v, sa_out_proj, sa_out;
    uniecg__weight sa_in_q, sa_in_k, sa_in_v;
    /* cross-attention, reduced to one vector per condition */
    dense ca_comb, ca_v, ca_in_v, ca_out_proj, ca_out;
    const float *ca_norm, *ca_norm_b;
    const float *attn_norm, *attn_norm_b;
    int64_t cross_offset; /* of this block's vector in a cache entry */
} block;

typedef struct {
    dense down; /* down blocks: stride-2 conv k3 */
    dense up;   /* up blocks: transposed conv k4 s2 p1 (its bias; the weight as up_even / up_odd) */
    int64_t up_width;
} level_extra;

typedef struct {
    float *cond;    /* (cond_length) the key, compared byte for byte */
    float *vectors; /* (sum of block widths) */
    uint64_t last_use;
    bool valid;
} cache_entry;

/* Queries per lane group of the narrow-head attention (attend_group), and per call of a SIMD
 * variant's attention kernel (attend_simd, heads of a multiple of 8 values up to the maximum). */
#define ATTEND_GROUP 4
#define ATTEND_SIMD_MAX_HEAD 256

typedef struct {
    uniecg__seq_ctx ctx;      /* kernels, scratch, and the pool (NULL: this thread only) */
    uniecg_thread_pool *pool;
    float *skips[MAX_LEVELS];
    float *a, *b, *c, *d, *e, *f, *g, *h2; /* run_block's scratch */
    float *p0, *p1, *p2;                   /* carriers of the path between blocks */
    float *columns;                        /* receptive fields (f32 convolutions, up-sampling) */
    int64_t columns_size;
    float *scores;                         /* attention scores, (n_threads, ATTEND_GROUP * L) */
    float *sinusoid, *time_hidden, *temb;
} workspace;

struct uniecg_unet {
    uniecg_unet_info info;
    int64_t C, L, n_levels, cond_length, time_dim;
    double time_constant;
    float gn_eps, ln_eps;
    block blocks[MAX_BLOCKS]; /* down 0..n-1, the bottleneck n, up n+1..2n */
    level_extra down[MAX_LEVELS], up[MAX_LEVELS];
    dense out_conv, out_proj;
    float *up_expanded[MAX_LEVELS]; /* f32 copies of q8 transposed-conv weights (load only) */
    float *up_even[MAX_LEVELS], *up_odd[MAX_LEVELS]; /* up_sample's weights, (c, 2c) each */
    uniecg_scheduler_params schedule;
    uniecg_thread_pool *pool;
    bool owns_pool;
    int64_t max_act;      /* floats of the largest activation */
    int64_t columns_size; /* floats of the largest receptive-field matrix */
    /* Workspaces. ws[0] runs batch-1 calls with every op on the pool (each layer split over the
     * threads); for batch >= 2 with several threads, thread i runs samples i, i + n_threads, ...
     * on ws[1 + i] with ops on that thread alone. The ops and products here
     * compute every value the same way whatever the thread split, so both ways give the same
     * bits (checked by test_unet: 1 thread vs 2). */
    workspace *ws;
    int32_t n_ws;
    uniecg_error *ws_errors; /* (n_ws) failures inside batch_task */
    float *cond_tmp, *cond_hidden, *cond_hidden2;
    /* the condition cache */
    int64_t vector_floats;
    cache_entry cache[CACHE_ENTRIES];
    uint64_t use_clock;
    int64_t misses;
    /* sampler buffers */
    float *xb, *eps2, *eps_g, *noise, *sample, *null_cond, *conds2;
};

/* ---- loading ------------------------------------------------------------------------------- */

static uniecg_status find_dense(const uniecg_model_file *file, const char *name, int64_t rows, int64_t cols,
                                bool conv, dense *out, uniecg_error *error) {
    uniecg_status s = uniecg__weight_find(file, name, rows, cols, &out->w, error);
    if (s) return s;
    /* the convolutions take f32 or q8 weights only (the converter writes nothing else) */
    if (conv && out->w.dtype != UNIECG_DTYPE_F32 && out->w.dtype != UNIECG_DTYPE_Q8)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "tensor '%s' is %s: convolutions take f32 or q8", name,
                            uniecg_dtype_name(out->w.dtype) ? uniecg_dtype_name(out->w.dtype) : "unknown");
    if (out->w.dtype == UNIECG_DTYPE_Q8 && cols % UNIECG_Q8_GROUP)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "tensor '%s' is q8 with rows of %lld values", name, (long long)cols);
    char bias[192];
    snprintf(bias, sizeof bias, "%.160s_bias", name);
    return uniecg__vector_find(file, bias, rows, &out->b, error);
}

static uniecg_status find_norm(const uniecg_model_file *file, const char *name, int64_t n, const float **w,
                               const float **b, uniecg_error *error) {
    uniecg_status s = uniecg__vector_find(file, name, n, w, error);
    if (s) return s;
    char bias[192];
    snprintf(bias, sizeof bias, "%.160s_bias", name);
    return uniecg__vector_find(file, bias, n, b, error);
}

static uniecg_status load_block(const uniecg_model_file *file, const char *p, block *B, int64_t time_dim,
                                int64_t time_hidden, int64_t cond_length, uniecg_error *error) {
    char n[160];
    uniecg_status s;
#define NAME(suffix) (snprintf(n, sizeof n, "%s.%s", p, suffix), n)
    int64_t s_ = B->s, hid = B->hidden;
    if ((s = find_dense(file, NAME("time.fc1"), time_hidden, time_dim, false, &B->fc1, error)) ||
        (s = find_dense(file, NAME("time.fc2"), B->cin, time_hidden, false, &B->fc2, error)) ||
        (s = find_dense(file, NAME("conv1"), s_, B->cin * B->k, true, &B->conv1, error)) ||
        (s = find_norm(file, NAME("norm1"), s_, &B->norm1, &B->norm1_b, error)) ||
        (s = find_dense(file, NAME("conv_mid"), s_, s_ * B->k_mid, true, &B->conv_mid, error)) ||
        (s = find_norm(file, NAME("attn.norm"), s_, &B->sa_norm, &B->sa_norm_b, error)) ||
        (s = find_dense(file, NAME("attn.q"), hid, s_, false, &B->sa_q, error)) ||
        (s = find_dense(file, NAME("attn.k"), hid, s_, false, &B->sa_k, error)) ||
        (s = find_dense(file, NAME("attn.v"), hid, s_, false, &B->sa_v, error)) ||
        (s = uniecg__weight_find(file, NAME("attn.in_q"), hid, hid, &B->sa_in_q, error)) ||
        (s = uniecg__weight_find(file, NAME("attn.in_k"), hid, hid, &B->sa_in_k, error)) ||
        (s = uniecg__weight_find(file, NAME("attn.in_v"), hid, hid, &B->sa_in_v, error)) ||
        (s = uniecg__vector_find(file, NAME("attn.in_proj_bias"), 3 * hid, &B->sa_in_b, error)) ||
        (s = find_dense(file, NAME("attn.out_proj"), hid, hid, false, &B->sa_out_proj, error)) ||
        (s = find_dense(file, NAME("attn.out"), s_, hid, false, &B->sa_out, error)) ||
        (s = find_dense(file, NAME("cross.combiner"), s_, cond_length, false, &B->ca_comb, error)) ||
        (s = find_norm(file, NAME("cross.cond_norm"), s_, &B->ca_norm, &B->ca_norm_b, error)) ||
        (s = find_dense(file, NAME("cross.v"), hid, s_, false, &B->ca_v, error)) ||
        (s = find_dense(file, NAME("cross.in_v"), hid, hid, false, &B->ca_in_v, error)) ||
        (s = find_dense(file, NAME("cross.out_proj"), hid, hid, false, &B->ca_out_proj, error)) ||
        (s = find_dense(file, NAME("cross.out"), s_, hid, false, &B->ca_out, error)) ||
        (s = find_norm(file, NAME("attn_norm"), s_, &B->attn_norm, &B->attn_norm_b, error)) ||
        (s = find_dense(file, NAME("conv2"), B->cout, s_ * B->k, true, &B->conv2, error)) ||
        (s = find_norm(file, NAME("norm2"), B->cout, &B->norm2, &B->norm2_b, error)))
        return s;
    if (B->has_res && (s = find_dense(file, NAME("res"), B->cout, B->cin, true, &B->res, error))) return s;
#undef NAME
    return UNIECG_OK;
}

static uniecg_status meta_i64_array(const uniecg_model_file *file, const char *key, int64_t count, int64_t min,
                                    int64_t max, int64_t *out, uniecg_error *error) {
    uniecg_meta_entry e;
    if (uniecg_model_file_meta_find(file, key, &e) != UNIECG_OK)
        return uniecg__fail(error, UNIECG_ERR_NOT_FOUND, "model file lacks metadata key '%s'", key);
    if (e.type != UNIECG_META_I64_ARRAY)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "metadata key '%s' should be of type i64[]", key);
    if ((int64_t)e.count != count)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "metadata '%s' has %llu values, the levels imply %lld", key,
                            (unsigned long long)e.count, (long long)count);
    const int64_t *v = e.array;
    for (int64_t i = 0; i < count; i++) {
        if (v[i] < min || v[i] > max)
            return uniecg__fail(error, UNIECG_ERR_LIMIT, "metadata '%s'[%lld] = %lld is outside %lld..%lld", key,
                                (long long)i, (long long)v[i], (long long)min, (long long)max);
        out[i] = v[i];
    }
    return UNIECG_OK;
}

/* The file's default sampling schedule (unet.schedule.*). */
static uniecg_status load_schedule(const uniecg_model_file *file, uniecg_scheduler_params *p, uniecg_error *error) {
    *p = uniecg_scheduler_default_params();
    const char *betas, *prediction, *sampler;
    double clip_range, eta;
    uniecg_status s;
    if ((s = uniecg__meta_int(file, "unet.schedule.train_steps", 2, 100000, &p->train_steps, error)) ||
        (s = uniecg__meta_string(file, "unet.schedule.betas", &betas, error)) ||
        (s = uniecg__meta_f64(file, "unet.schedule.beta_start", &p->beta_start, error)) ||
        (s = uniecg__meta_f64(file, "unet.schedule.beta_end", &p->beta_end, error)) ||
        (s = uniecg__meta_string(file, "unet.schedule.prediction", &prediction, error)) ||
        (s = uniecg__meta_bool(file, "unet.schedule.clip_sample", &p->clip_sample, error)) ||
        (s = uniecg__meta_f64(file, "unet.schedule.clip_range", &clip_range, error)) ||
        (s = uniecg__meta_string(file, "unet.schedule.sampler", &sampler, error)) ||
        (s = uniecg__meta_int(file, "unet.schedule.steps", 1, 100000, &p->steps, error)) ||
        (s = uniecg__meta_f64(file, "unet.schedule.eta", &eta, error)))
        return s;
    if (!strcmp(betas, "linear")) p->betas = UNIECG_BETAS_LINEAR;
    else if (!strcmp(betas, "scaled_linear")) p->betas = UNIECG_BETAS_SCALED_LINEAR;
    else if (!strcmp(betas, "squaredcos_cap_v2")) p->betas = UNIECG_BETAS_COSINE;
    else return uniecg__fail(error, UNIECG_ERR_VERSION, "unet.schedule.betas '%s' is not supported", betas);
    if (!strcmp(prediction, "epsilon")) p->prediction = UNIECG_PREDICT_EPSILON;
    else if (!strcmp(prediction, "v_prediction")) p->prediction = UNIECG_PREDICT_V;
    else return uniecg__fail(error, UNIECG_ERR_VERSION, "unet.schedule.prediction '%s' is not supported", prediction);
    if (!strcmp(sampler, "ddpm")) p->kind = UNIECG_SCHEDULER_DDPM;
    else if (!strcmp(sampler, "ddim")) p->kind = UNIECG_SCHEDULER_DDIM;
    else if (!strcmp(sampler, "dpmpp_2m")) p->kind = UNIECG_SCHEDULER_DPMPP_2M;
    else return uniecg__fail(error, UNIECG_ERR_VERSION, "unet.schedule.sampler '%s' is not supported", sampler);
    p->clip_range = (float)clip_range;
    p->eta = (float)eta;
    return UNIECG_OK;
}

uniecg_unet_params uniecg_unet_default_params(void) {
    return (uniecg_unet_params){.kernels = UNIECG_KERNELS_AUTO, .pool = NULL, .n_threads = 0};
}

static void workspace_free(workspace *w) {
    for (int i = 0; i < MAX_LEVELS; i++) free(w->skips[i]);
    float *buffers[] = {w->a, w->b, w->c, w->d, w->e, w->f, w->g, w->h2, w->p0, w->p1, w->p2,
                        w->columns, w->scores, w->sinusoid, w->time_hidden, w->temb};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) free(buffers[i]);
    uniecg__seq_ctx_free(&w->ctx);
}

/* Every convolution of the U-Net with its input width and kernel (the transposed up-sampling
 * convs have their own gather form, up_sample); *count on return. */
static int32_t conv_layers(uniecg_unet *u, dense **layers, int64_t *c_in, int64_t *kernel) {
    int32_t count = 0;
#define ADD(D, CIN, K) (layers[count] = (D), c_in[count] = (CIN), kernel[count] = (K), count++)
    int64_t n = u->n_levels - 1; /* down (and up) blocks; blocks 0..2n with the bottleneck */
    for (int64_t i = 0; i <= 2 * n && i < MAX_BLOCKS; i++) {
        block *B = &u->blocks[i];
        ADD(&B->conv1, B->cin, B->k);
        ADD(&B->conv_mid, B->s, B->k_mid);
        ADD(&B->conv2, B->s, B->k);
        if (B->has_res) ADD(&B->res, B->cin, 1);
    }
    for (int64_t i = 0; i < n && i < MAX_LEVELS; i++) ADD(&u->down[i].down, u->down[i].down.w.rows, 3);
    ADD(&u->out_conv, u->out_conv.w.cols / 3, 3);
    ADD(&u->out_proj, u->C, 1);
#undef ADD
    return count;
}

enum { MAX_CONV_LAYERS = 4 * MAX_BLOCKS + MAX_LEVELS + 2 };

/* The tap-major form (ops.h) of every q8 convolution over a multiple of 32 input channels. */
static uniecg_status make_tap_major(uniecg_unet *u, uniecg_error *error) {
    dense *layers[MAX_CONV_LAYERS];
    int64_t c_in[MAX_CONV_LAYERS], kernel[MAX_CONV_LAYERS];
    int32_t count = conv_layers(u, layers, c_in, kernel);
    for (int32_t i = 0; i < count; i++) {
        uniecg__conv1d_shape shape = {.c_in = c_in[i], .c_out = layers[i]->w.rows, .kernel = kernel[i], .stride = 1};
        if (layers[i]->w.dtype != UNIECG_DTYPE_Q8 || !uniecg__conv1d_taps_fit(&shape, &layers[i]->w)) continue;
        uniecg_status s = uniecg__conv1d_taps_make(&shape, &layers[i]->w, &layers[i]->taps, error);
        if (s) return s;
    }
    return UNIECG_OK;
}

void uniecg_unet_free(uniecg_unet *u) {
    if (!u) return;
    {
        dense *layers[MAX_CONV_LAYERS];
        int64_t c_in[MAX_CONV_LAYERS], kernel[MAX_CONV_LAYERS];
        int32_t count = conv_layers(u, layers, c_in, kernel);
        for (int32_t i = 0; i < count; i++) uniecg__conv1d_taps_free(&layers[i]->taps);
    }
    for (int i = 0; i < MAX_LEVELS; i++) {
        free(u->up_expanded[i]);
        free(u->up_even[i]);
        free(u->up_odd[i]);
    }
    for (int32_t i = 0; u->ws && i < u->n_ws; i++) workspace_free(&u->ws[i]);
    free(u->ws);
    free(u->ws_errors);
    float *buffers[] = {u->cond_tmp, u->cond_hidden, u->cond_hidden2, u->xb, u->eps2, u->eps_g, u->noise, u->sample,
                        u->null_cond, u->conds2};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) free(buffers[i]);
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        free(u->cache[i].cond);
        free(u->cache[i].vectors);
    }
    if (u->owns_pool) uniecg_thread_pool_free(u->pool);
    free(u);
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

uniecg_status uniecg_unet_create(const uniecg_model_file *file, uniecg_unet_params params, uniecg_unet **out,
                                 uniecg_error *error) {
    if (!file || !out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "unet_create: NULL argument");
    *out = NULL;
    const char *arch;
    uniecg_status s = uniecg__meta_string(file, "unet.architecture", &arch, error);
    if (s) return s;
    if (strcmp(arch, "diffusets-unet1d") != 0)
        return uniecg__fail(error, UNIECG_ERR_VERSION, "unknown U-Net architecture '%s' (diffusets-unet1d)", arch);
    if (params.n_threads < 0) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "negative thread count");
    uniecg_unet *u = calloc(1, sizeof *u);
    if (!u) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    uniecg_unet_info *in = &u->info;
    int64_t base, extra, heads[2 * MAX_LEVELS], hidden[2 * MAX_LEVELS], time_hidden, b_heads, b_hidden, b_kernel;
    double gn_eps, ln_eps;
    if ((s = uniecg__meta_int(file, "unet.latent_channels", 1, 4096, &in->latent_channels, error)) ||
        (s = uniecg__meta_int(file, "unet.latent_length", 1, 1 << 20, &in->latent_length, error)) ||
        (s = uniecg__meta_int(file, "unet.levels", 3, MAX_LEVELS, &in->levels, error)) ||
        (s = uniecg__meta_i64(file, "unet.base_channels", 1, 4096, &base, error)) ||
        (s = uniecg__meta_int(file, "unet.kernel", 1, 63, &in->kernel, error)) ||
        (s = uniecg__meta_int(file, "unet.cond_dim", 1, 1 << 16, &in->cond_dim, error)) ||
        (s = uniecg__meta_i64(file, "unet.extra_conditions", 0, 64, &extra, error)) ||
        (s = uniecg__meta_i64(file, "unet.bottleneck_heads", 1, 1024, &b_heads, error)) ||
        (s = uniecg__meta_i64(file, "unet.bottleneck_hidden", 1, 1 << 16, &b_hidden, error)) ||
        (s = uniecg__meta_i64(file, "unet.bottleneck_kernel", 1, 63, &b_kernel, error)) ||
        (s = uniecg__meta_i64(file, "unet.time_dim", 4, 4096, &u->time_dim, error)) ||
        (s = uniecg__meta_i64(file, "unet.time_hidden", 1, 1 << 16, &time_hidden, error)) ||
        (s = uniecg__meta_f64(file, "unet.time_constant", &u->time_constant, error)) ||
        (s = uniecg__meta_int(file, "unet.train_steps", 2, 100000, &in->train_steps, error)) ||
        (s = uniecg__meta_f64(file, "unet.group_norm_eps", &gn_eps, error)) ||
        (s = uniecg__meta_f64(file, "unet.layer_norm_eps", &ln_eps, error)))
        goto fail;
    int64_t n = in->levels - 1;
    if ((s = meta_i64_array(file, "unet.block_heads", 2 * n, 1, 1024, heads, error)) ||
        (s = meta_i64_array(file, "unet.block_hidden", 2 * n, 1, 1 << 16, hidden, error)) ||
        (s = load_schedule(file, &u->schedule, error)))
        goto fail;
    u->C = in->latent_channels;
    u->L = in->latent_length;
    u->n_levels = in->levels;
    in->extra_conditions = (int32_t)extra;
    in->cond_length = in->cond_dim + (int32_t)extra;
    u->cond_length = in->cond_length;
    u->gn_eps = (float)gn_eps;
    u->ln_eps = (float)ln_eps;
    /* the first block takes the latent itself, and the output convolution returns to the latent
     * width: base channels other than the latent's have no place in this architecture */
    if (base != u->C || in->kernel % 2 == 0 || b_kernel % 2 == 0 || u->time_dim % 2 || !isfinite(u->time_constant) ||
        u->L % ((int64_t)1 << n) || u->C << n > (1 << 20) || !(gn_eps > 0) || !(ln_eps > 0) || b_hidden % b_heads) {
        s = uniecg__fail(error, UNIECG_ERR_FORMAT,
                         "inconsistent unet metadata: base %lld and latent %lld channels, kernels %d/%lld (odd), time_dim "
                         "%lld (even), latent length %lld (a multiple of 2^%lld), eps %g/%g, bottleneck %lld heads / %lld",
                         (long long)base, (long long)u->C, in->kernel, (long long)b_kernel, (long long)u->time_dim,
                         (long long)u->L, (long long)n, gn_eps, ln_eps, (long long)b_heads, (long long)b_hidden);
        goto fail;
    }
    for (int64_t i = 0; i < 2 * n; i++)
        if (hidden[i] % heads[i]) {
            s = uniecg__fail(error, UNIECG_ERR_FORMAT, "unet block %lld: %lld heads do not divide the width %lld",
                             (long long)i, (long long)heads[i], (long long)hidden[i]);
            goto fail;
        }

    /* widths (diffusets.py UNetConfig.widths()) */
    int64_t down_in[MAX_LEVELS], down_out[MAX_LEVELS], up_in[MAX_LEVELS], up_out[MAX_LEVELS], up_conv[MAX_LEVELS];
    for (int64_t i = 0; i < n; i++) {
        down_in[i] = u->C << i;
        down_out[i] = 2 * down_in[i];
    }
    for (int64_t j = 0; j < n; j++) up_out[j] = down_out[n - 1 - j] / 2;
    up_in[0] = down_out[n - 1];
    for (int64_t j = 1; j < n; j++) up_in[j] = up_out[j - 1] + down_out[n - 1 - j];
    up_conv[0] = up_in[0];
    for (int64_t j = 1; j < n; j++) up_conv[j] = up_in[j] / 2;
    int64_t width = down_out[n - 1];

    int64_t offset = 0, max_act = 0;
    for (int64_t i = 0; i <= 2 * n; i++) {
        block *B = &u->blocks[i];
        if (i < n) {
            *B = (block){.cin = down_in[i], .cout = down_out[i], .k = in->kernel, .k_mid = 1, .heads = heads[i],
                         .hidden = hidden[i], .length = u->L >> i};
        } else if (i == n) {
            *B = (block){.cin = width, .cout = width, .k = b_kernel, .k_mid = b_kernel, .heads = b_heads,
                         .hidden = b_hidden, .length = u->L >> n};
        } else {
            int64_t j = i - n - 1;
            *B = (block){.cin = up_in[j], .cout = up_out[j], .k = in->kernel, .k_mid = 1, .heads = heads[n + j],
                         .hidden = hidden[n + j], .length = u->L >> (n - 1 - j)};
        }
        B->s = i == n ? width : (B->cin + B->cout) / 2;
        B->has_res = B->cin != B->cout;
        B->cross_offset = offset;
        offset += B->s;
        int64_t widest = max64(max64(B->cin, B->cout), max64(B->s, B->hidden));
        /* receptive fields of conv1, conv_mid, conv2 and the down-sampling conv (stride 2) */
        int64_t fields = max64(max64(B->cin, B->s) * B->k, B->s * B->k_mid) * B->length;
        u->columns_size = max64(u->columns_size, max64(fields, B->cout * 3 * B->length / 2));
        max_act = max64(max_act, widest * B->length);
        char prefix[64];
        if (i < n) snprintf(prefix, sizeof prefix, "unet.down.%lld", (long long)i);
        else if (i == n) snprintf(prefix, sizeof prefix, "unet.mid");
        else snprintf(prefix, sizeof prefix, "unet.up.%lld", (long long)(i - n - 1));
        if ((s = load_block(file, prefix, B, u->time_dim, time_hidden, u->cond_length, error))) goto fail;
    }
    u->vector_floats = offset;
    for (int64_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "unet.down.%lld.down", (long long)i);
        if ((s = find_dense(file, name, down_out[i], down_out[i] * 3, true, &u->down[i].down, error))) goto fail;
        snprintf(name, sizeof name, "unet.up.%lld.up", (long long)i);
        u->up[i].up_width = up_conv[i];
        if ((s = find_dense(file, name, up_conv[i], up_conv[i] * 4, true, &u->up[i].up, error))) goto fail;
        /* the gather form's weights (up_sample): even[o][2i + a] = W[i][o][3 - 2a] (taps 3, 1),
         * odd[o][2i + a] = W[i][o][2 - 2a] (taps 2, 0), from f32 or a q8 weight expanded once */
        {
            int64_t c = up_conv[i];
            uint64_t count = (uint64_t)(c * c * 4);
            const float *wf = u->up[i].up.w.data;
            if (u->up[i].up.w.dtype == UNIECG_DTYPE_Q8) {
                if (!(u->up_expanded[i] = uniecg__aligned_alloc(count * sizeof(float)))) goto oom;
                if ((s = uniecg_to_f32(u->up[i].up.w.data, UNIECG_DTYPE_Q8, count, u->up_expanded[i]))) {
                    s = uniecg__fail(error, s, "cannot expand tensor '%s'", name);
                    goto fail;
                }
                wf = u->up_expanded[i];
            }
            if (!(u->up_even[i] = uniecg__aligned_alloc(count / 2 * sizeof(float))) ||
                !(u->up_odd[i] = uniecg__aligned_alloc(count / 2 * sizeof(float))))
                goto oom;
            for (int64_t ci = 0; ci < c; ci++)
                for (int64_t o = 0; o < c; o++)
                    for (int64_t a = 0; a < 2; a++) {
                        u->up_even[i][o * 2 * c + 2 * ci + a] = wf[(ci * c + o) * 4 + 3 - 2 * a];
                        u->up_odd[i][o * 2 * c + 2 * ci + a] = wf[(ci * c + o) * 4 + 2 - 2 * a];
                    }
            free(u->up_expanded[i]);
            u->up_expanded[i] = NULL;
            u->columns_size = max64(u->columns_size, 2 * c * ((u->L >> (n - 1 - i)) / 2 + 1));
        }
        max_act = max64(max_act, 2 * up_conv[i] * (u->L >> (n - 1 - i)));
    }
    if ((s = find_dense(file, "unet.out.conv", u->C, up_out[n - 1] * 3, true, &u->out_conv, error)) ||
        (s = find_dense(file, "unet.out.proj", u->C, u->C, true, &u->out_proj, error)))
        goto fail;
    max_act = max64(max_act, up_out[n - 1] * u->L);
    u->columns_size = max64(u->columns_size, up_out[n - 1] * 3 * u->L);
    u->max_act = max_act;
    if ((s = make_tap_major(u, error))) goto fail;

    if ((s = uniecg_kernel_variant_resolve(params.kernels, &in->kernels, error))) goto fail;
    if (params.pool) {
        u->pool = params.pool;
    } else {
        if ((s = uniecg_thread_pool_create(params.n_threads, &u->pool, error))) goto fail;
        u->owns_pool = true;
    }
    in->n_threads = uniecg_thread_pool_size(u->pool);

    /* the workspaces (every buffer of one sample), and the sampler's buffers */
    bool ok = true;
#define ALLOC(ptr, count) ok = ok && ((ptr) = uniecg__aligned_alloc((uint64_t)(count) * sizeof(float))) != NULL
    /* ws[0] with the pool; with several threads, one pool-less workspace per thread after it
     * (a pool task must not dispatch to its own pool) */
    u->n_ws = in->n_threads > 1 ? in->n_threads + 1 : 1;
    if (!(u->ws = calloc((size_t)u->n_ws, sizeof *u->ws)) || !(u->ws_errors = calloc((size_t)u->n_ws, sizeof *u->ws_errors)))
        goto oom;
    for (int32_t k = 0; k < u->n_ws; k++) {
        workspace *w = &u->ws[k];
        w->pool = k == 0 ? u->pool : NULL;
        if ((s = uniecg__seq_ctx_init(&w->ctx, in->kernels, w->pool, error))) goto fail;
        for (int64_t i = 0; i < n; i++) ALLOC(w->skips[i], down_out[i] * (u->L >> i));
        float **act[] = {&w->a, &w->b, &w->c, &w->d, &w->e, &w->f, &w->g, &w->h2, &w->p0, &w->p1, &w->p2};
        for (size_t i = 0; i < sizeof act / sizeof *act; i++) ALLOC(*act[i], max_act);
        w->columns_size = u->columns_size;
        ALLOC(w->columns, u->columns_size);
        ALLOC(w->scores, (int64_t)in->n_threads * ATTEND_GROUP * u->L);
        ALLOC(w->sinusoid, u->time_dim);
        ALLOC(w->time_hidden, time_hidden);
        ALLOC(w->temb, max64(width, up_in[0]) * 2);
    }
    int64_t widest_hidden = max64(time_hidden, b_hidden);
    for (int64_t i = 0; i < 2 * n; i++) widest_hidden = max64(widest_hidden, hidden[i]);
    ALLOC(u->cond_tmp, max64(width, up_in[0]) * 2);
    ALLOC(u->cond_hidden, widest_hidden);
    ALLOC(u->cond_hidden2, widest_hidden);
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        ALLOC(u->cache[i].cond, u->cond_length);
        ALLOC(u->cache[i].vectors, u->vector_floats);
    }
    int64_t sample = u->C * u->L;
    ALLOC(u->xb, 2 * sample);
    ALLOC(u->eps2, 2 * sample);
    ALLOC(u->eps_g, sample);
    ALLOC(u->noise, sample);
    ALLOC(u->sample, sample);
    ALLOC(u->null_cond, u->cond_length);
    ALLOC(u->conds2, 2 * u->cond_length);
#undef ALLOC
    if (!ok) goto oom;
    memset(u->null_cond, 0, (size_t)u->cond_length * sizeof(float));
    *out = u;
    return UNIECG_OK;
oom:
    s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
fail:
    uniecg_unet_free(u);
    return s;
}

void uniecg_unet_get_info(const uniecg_unet *u, uniecg_unet_info *out) {
    if (u && out) *out = u->info;
}

uniecg_status uniecg_unet_schedule(const uniecg_unet *u, uniecg_scheduler_params *out) {
    if (!u || !out) return UNIECG_ERR_INVALID_ARGUMENT;
    *out = u->schedule;
    out->sample_size = u->C * u->L;
    return UNIECG_OK;
}

int64_t uniecg__unet_condition_misses(const uniecg_unet *u) { return u ? u->misses : 0; }

/* ---- the forward pass ---------------------------------------------------------------------- */

/* f32 weights: every output value is one kernels->f32_dot of a weight row and an input row,
 * plus the bias. The generic f32 paths of the ops (a scalar loop for nn.Linear, one axpy per
 * tap for Conv1d) are slow on the U-Net's short sequences and narrow rows (a 256-channel conv
 * at length 4 is 7 x 256 axpys of 4 values per output channel); the dot kernel is the same on
 * every thread split (each value is one call), so 1 and 2 threads agree bit for bit. */
typedef struct {
    const uniecg_kernels *kernels;
    const float *w, *bias, *x;
    float *y;
    int64_t rows, cols, tokens;
    bool channels_major; /* y[r * tokens + t] (a convolution's output) instead of y[t * rows + r] */
} dot_job;

static void dot_store(const dot_job *job, int64_t r, int64_t t, float v) {
    if (job->channels_major) job->y[r * job->tokens + t] = v;
    else job->y[t * job->rows + r] = v;
}

static void dot_task(void *ctx, int32_t index, int32_t count) {
    const dot_job *job = ctx;
    int64_t begin, end;
    uniecg__chunk(job->rows, index, count, 1, &begin, &end);
    for (int64_t r = begin; r < end; r++) {
        const float *w = job->w + r * job->cols;
        float b = job->bias ? job->bias[r] : 0.0f;
        int64_t t = 0;
        float v[4];
        if (job->kernels->f32_dot4) /* a SIMD variant: four tokens per pass over the row */
            for (; t + 4 <= job->tokens; t += 4) {
                job->kernels->f32_dot4(w, job->x + t * job->cols, job->cols, job->cols, v);
                for (int j = 0; j < 4; j++) dot_store(job, r, t + j, v[j] + b);
            }
        for (; t < job->tokens; t++) dot_store(job, r, t, job->kernels->f32_dot(w, job->x + t * job->cols, job->cols) + b);
    }
}

static void dot_product(workspace *w, const dense *d, const float *x, int64_t tokens, float *y, bool channels_major) {
    dot_job job = {.kernels = w->ctx.kernels, .w = d->w.data, .bias = d->b, .x = x, .y = y, .rows = d->w.rows,
                   .cols = d->w.cols, .tokens = tokens, .channels_major = channels_major};
    /* waking the pool costs more than small products */
    uniecg__parallel(d->w.rows * d->w.cols * tokens >= 32768 ? w->pool : NULL, dot_task, &job);
}

/* Scaled dot-product attention of projected q, k, v (tokens, hidden), heads of hidden / heads,
 * into out (tokens, hidden): softmax(q k^T / sqrt(head_dim)) v with the maximum subtracted,
 * (query, head) pairs split over the pool, the sum accumulated with f32_axpy; the core of
 * uniecg__seq_mha (attention.c) in the same order. The op itself is not used because it also
 * runs the in-projections, and with f32 weights those go through the generic scalar f32
 * linear, which made them 60 % of an f32 forward at the published shape; here they are
 * lin() products (dot kernel or q8). The published first and last blocks have 8 heads of 1 to 4
 * values at length 128: those go through attend_group below. */
typedef struct {
    const uniecg_kernels *kernels;
    const float *q, *k, *v;
    float *out, *scores; /* scores: (n_threads, ATTEND_GROUP * tokens) */
    int64_t tokens, heads, head_dim;
} attend_job;

/* Narrow heads (fewer than 8 values) take ATTEND_GROUP queries at a time, one per lane of a
 * 4-float vector: every key then costs one vector multiply-add per head value instead of a
 * scalar dot of 1-4 values per query (the attention over 128 positions was a quarter of the
 * bundled model's sampling time). Each lane does exactly the scalar path's operations in the same
 * order (separate multiply and add, keys in order), so with the portable kernels the results are
 * the same as before and the same on every architecture; a SIMD variant's vector exp
 * (exp_inplace) changes the last bits of the softmax, within its tests' bounds. */
typedef float attend_v4 __attribute__((vector_size(16)));

static void attend_group(const attend_job *job, int64_t t0, int64_t h, float *scores) {
    int64_t hd = job->head_dim, hidden = job->heads * hd, n = job->tokens;
    int64_t lanes = n - t0 < ATTEND_GROUP ? n - t0 : ATTEND_GROUP;
    attend_v4 q[32], zero = {0, 0, 0, 0};
    for (int64_t i = 0; i < hd; i++)
        for (int64_t g = 0; g < ATTEND_GROUP; g++) /* missing lanes repeat the last query */
            q[i][g] = job->q[(t0 + (g < lanes ? g : lanes - 1)) * hidden + h * hd + i];
    float scale = 1.0f / sqrtf((float)hd);
    attend_v4 *s = (attend_v4 *)(void *)scores, max = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (int64_t m = 0; m < n; m++) {
        const float *k = job->k + m * hidden + h * hd;
        attend_v4 dot = zero;
        for (int64_t i = 0; i < hd; i++) dot = dot + q[i] * k[i];
        s[m] = dot * scale;
        for (int g = 0; g < ATTEND_GROUP; g++)
            if (s[m][g] > max[g]) max[g] = s[m][g];
    }
    attend_v4 sum = zero;
    if (job->kernels->exp_inplace) { /* a SIMD variant's vector exp over all lanes at once */
        for (int64_t m = 0; m < n; m++) s[m] = s[m] - max;
        job->kernels->exp_inplace(scores, n * ATTEND_GROUP);
        for (int64_t m = 0; m < n; m++) sum = sum + s[m];
    } else {
        for (int64_t m = 0; m < n; m++) {
            for (int g = 0; g < ATTEND_GROUP; g++) s[m][g] = expf(s[m][g] - max[g]);
            sum = sum + s[m];
        }
    }
    attend_v4 out[32];
    for (int64_t i = 0; i < hd; i++) out[i] = zero;
    for (int64_t m = 0; m < n; m++) {
        const float *v = job->v + m * hidden + h * hd;
        attend_v4 w = s[m] / sum;
        for (int64_t i = 0; i < hd; i++) out[i] = out[i] + w * v[i];
    }
    for (int64_t g = 0; g < lanes; g++)
        for (int64_t i = 0; i < hd; i++) job->out[(t0 + g) * hidden + h * hd + i] = out[i][g];
}

/* The kernel variant's attention (a SIMD variant's `attend`: vectorized dot products, softmax
 * with a polynomial exp, values in registers) for ATTEND_GROUP queries of head h at a time,
 * taken as the "query heads" that share that head's keys and values. */
static void attend_simd(const attend_job *job, int64_t t0, int64_t h, float *scores) {
    int64_t hd = job->head_dim, hidden = job->heads * hd, n = job->tokens;
    int64_t lanes = n - t0 < ATTEND_GROUP ? n - t0 : ATTEND_GROUP;
    float q[ATTEND_GROUP * ATTEND_SIMD_MAX_HEAD], out[ATTEND_GROUP * ATTEND_SIMD_MAX_HEAD];
    for (int64_t g = 0; g < lanes; g++) memcpy(q + g * hd, job->q + (t0 + g) * hidden + h * hd, (size_t)hd * sizeof(float));
    job->kernels->attend(q, lanes, job->k + h * hd, job->v + h * hd, hidden, n, hd, 1.0f / sqrtf((float)hd), scores, out);
    for (int64_t g = 0; g < lanes; g++) memcpy(job->out + (t0 + g) * hidden + h * hd, out + g * hd, (size_t)hd * sizeof(float));
}

static void attend_task(void *ctx, int32_t index, int32_t count) {
    const attend_job *job = ctx;
    int64_t hd = job->head_dim, hidden = job->heads * hd, begin, end;
    float *scores = job->scores + (int64_t)index * ATTEND_GROUP * job->tokens;
    if (job->kernels->attend && hd % 8 == 0 && hd <= ATTEND_SIMD_MAX_HEAD) {
        int64_t groups = (job->tokens + ATTEND_GROUP - 1) / ATTEND_GROUP;
        uniecg__chunk(groups * job->heads, index, count, 1, &begin, &end);
        for (int64_t task = begin; task < end; task++)
            attend_simd(job, task / job->heads * ATTEND_GROUP, task % job->heads, scores);
        return;
    }
    if (hd <= 32) {
        int64_t groups = (job->tokens + ATTEND_GROUP - 1) / ATTEND_GROUP;
        uniecg__chunk(groups * job->heads, index, count, 1, &begin, &end);
        for (int64_t task = begin; task < end; task++)
            attend_group(job, task / job->heads * ATTEND_GROUP, task % job->heads, scores);
        return;
    }
    float scale = 1.0f / sqrtf((float)hd);
    uniecg__chunk(job->tokens * job->heads, index, count, 1, &begin, &end);
    for (int64_t task = begin; task < end; task++) {
        int64_t t = task / job->heads, h = task % job->heads;
        const float *q = job->q + t * hidden + h * hd;
        float max = -INFINITY;
        for (int64_t m = 0; m < job->tokens; m++) {
            scores[m] = job->kernels->f32_dot(q, job->k + m * hidden + h * hd, hd) * scale;
            if (scores[m] > max) max = scores[m];
        }
        float sum = 0.0f;
        for (int64_t m = 0; m < job->tokens; m++) {
            scores[m] = expf(scores[m] - max);
            sum += scores[m];
        }
        float *out = job->out + t * hidden + h * hd;
        for (int64_t i = 0; i < hd; i++) out[i] = 0.0f;
        for (int64_t m = 0; m < job->tokens; m++)
            job->kernels->f32_axpy(out, scores[m] / sum, job->v + m * hidden + h * hd, hd);
    }
}

static void attend(workspace *w, const float *q, const float *k, const float *v, int64_t tokens, int64_t heads,
                   int64_t hidden, float *out) {
    attend_job job = {.kernels = w->ctx.kernels, .q = q, .k = k, .v = v, .out = out, .scores = w->scores,
                      .tokens = tokens, .heads = heads, .head_dim = hidden / heads};
    uniecg__parallel(tokens * tokens * hidden >= 16384 ? w->pool : NULL, attend_task, &job);
}

/* Token-major y (tokens, rows) = x @ W^T + b. */
static uniecg_status lin(workspace *w, const dense *d, const float *x, int64_t tokens, float *y, uniecg_error *error) {
    if (d->w.dtype == UNIECG_DTYPE_F32) {
        dot_product(w, d, x, tokens, y, false);
        return UNIECG_OK;
    }
    return uniecg__seq_linear(&w->ctx, &d->w, d->b, x, tokens, y, error);
}

/* Channels-major conv, zero padding `pad` on both sides. f32 weights: the receptive field of
 * every output position (c_in x kernel values in PyTorch's weight order) is gathered into
 * w->columns, then dot products; q8 weights: the op's tap-major product where the layer has
 * one (make_tap_major), else its im2col q8 product. */
static uniecg_status conv(workspace *w, const dense *d, int64_t c_in, int64_t kernel, int64_t stride, int64_t pad,
                          const float *x, int64_t length, float *y, uniecg_error *error) {
    uniecg__conv1d_shape shape = {.c_in = c_in, .c_out = d->w.rows, .kernel = kernel, .stride = stride,
                                  .pad_left = pad, .pad_right = pad};
    if (d->taps.block) return uniecg__seq_conv1d_taps(&w->ctx, &shape, &d->taps, d->b, x, length, y, error);
    if (d->w.dtype != UNIECG_DTYPE_F32) return uniecg__seq_conv1d(&w->ctx, &shape, &d->w, d->b, x, length, y, error);
    int64_t out_length = uniecg__conv1d_out_length(&shape, length), cols = c_in * kernel;
    if (out_length * cols > w->columns_size)
        return uniecg__fail(error, UNIECG_ERR_STATE, "unet: conv of %lld x %lld columns exceeds the workspace",
                            (long long)out_length, (long long)cols);
    for (int64_t t = 0; t < out_length; t++) {
        float *col = w->columns + t * cols;
        int64_t first = t * stride - pad;
        for (int64_t i = 0; i < c_in; i++)
            for (int64_t j = 0; j < kernel; j++) {
                int64_t p = first + j;
                col[i * kernel + j] = p >= 0 && p < length ? x[i * length + p] : 0.0f;
            }
    }
    dot_product(w, d, w->columns, out_length, y, true);
    return UNIECG_OK;
}

/* ConvTranspose1d(kernel 4, stride 2, padding 1), the U-Net's only up-sampling, in gather form:
 * output 2m reads inputs m-1 (tap 3) and m (tap 1), output 2m+1 inputs m (tap 2) and m+1
 * (tap 0). With windows w_s = [x[s], x[s+1]] per input channel (s = -1..length-1, zero outside),
 * y[o][2m] = b[o] + even[o] . w_{m-1} and y[o][2m+1] = b[o] + odd[o] . w_m, where even / odd
 * are the weights rearranged at load (up_weights). Each output is one dot product, which the
 * scatter loop of uniecg__seq_conv_transpose1d (one multiply-add per tap, strided over the
 * (in, out, k) weight) was not: it took a fifth of a q8 forward at the published shape. */
static void up_sample(const uniecg_unet *u, workspace *w, int64_t level, const float *x, int64_t length, float *y) {
    const level_extra *e = &u->up[level];
    int64_t c = e->up_width, windows = length + 1;
    for (int64_t s = 0; s < windows; s++) {
        float *col = w->columns + s * 2 * c;
        for (int64_t i = 0; i < c; i++) {
            int64_t p = s - 1;
            col[2 * i] = p >= 0 ? x[i * length + p] : 0.0f;
            col[2 * i + 1] = p + 1 < length ? x[i * length + p + 1] : 0.0f;
        }
    }
    /* even outputs from windows 0..length-1, odd ones from windows 1..length */
    dense even = {.w = {.data = u->up_even[level], .dtype = UNIECG_DTYPE_F32, .rows = c, .cols = 2 * c}, .b = e->up.b};
    dense odd = {.w = {.data = u->up_odd[level], .dtype = UNIECG_DTYPE_F32, .rows = c, .cols = 2 * c}, .b = e->up.b};
    dot_product(w, &even, w->columns, length, w->a, true);
    dot_product(w, &odd, w->columns + 2 * c, length, w->b, true);
    for (int64_t o = 0; o < c; o++)
        for (int64_t m = 0; m < length; m++) {
            y[o * 2 * length + 2 * m] = w->a[o * length + m];
            y[o * 2 * length + 2 * m + 1] = w->b[o * length + m];
        }
}

/* The cross-attention's vector of block B for condition `cond`: to_out(out_proj(in_v(to_v(c'))))
 * with c' = LayerNorm(combiner(cond)), each with its bias. This is what the one-token attention
 * (uniecg__seq_cross_attention_one_token) computes after the value projection; the stored
 * value rows are a separate matrix here, so the chain of linear layers is written out. */
static uniecg_status cross_vector(uniecg_unet *u, workspace *w, const block *B, const float *cond, float *y, uniecg_error *error) {
    uniecg_status s;
    if ((s = lin(w, &B->ca_comb, cond, 1, u->cond_tmp, error)) ||
        (s = uniecg__seq_layer_norm(&w->ctx, u->cond_tmp, 1, B->s, u->ln_eps, B->ca_norm, B->ca_norm_b, u->cond_tmp,
                                    error)) ||
        (s = lin(w, &B->ca_v, u->cond_tmp, 1, u->cond_hidden, error)) ||
        (s = lin(w, &B->ca_in_v, u->cond_hidden, 1, u->cond_hidden2, error)) ||
        (s = lin(w, &B->ca_out_proj, u->cond_hidden2, 1, u->cond_hidden, error)) ||
        (s = lin(w, &B->ca_out, u->cond_hidden, 1, y, error)))
        return s;
    return UNIECG_OK;
}

/* The cached vectors of a condition (computed on a miss into the least recently used entry).
 * The key is the condition's bytes: equal bytes give equal vectors, so the cache never changes
 * a result. */
/* Entries used since `pinned_after` (this call's earlier samples) are not evicted. */
static uniecg_status condition_vectors(uniecg_unet *u, const float *cond, uint64_t pinned_after, const float **out,
                                       uniecg_error *error) {
    size_t bytes = (size_t)u->cond_length * sizeof(float);
    cache_entry *victim = NULL;
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        cache_entry *e = &u->cache[i];
        if (e->valid && memcmp(e->cond, cond, bytes) == 0) {
            e->last_use = ++u->use_clock;
            *out = e->vectors;
            return UNIECG_OK;
        }
        if (e->valid && e->last_use > pinned_after) continue; /* an earlier sample of this call */
        if (!victim || (victim->valid && (!e->valid || e->last_use < victim->last_use))) victim = e;
    }
    if (!victim) /* callers pin at most CACHE_ENTRIES - 1 entries */
        return uniecg__fail(error, UNIECG_ERR_STATE, "unet: no free condition cache entry");
    victim->valid = false;
    for (int64_t i = 0; i <= 2 * (u->n_levels - 1); i++) {
        const block *B = &u->blocks[i];
        uniecg_status s = cross_vector(u, &u->ws[0], B, cond, victim->vectors + B->cross_offset, error);
        if (s) return s;
    }
    memcpy(victim->cond, cond, bytes);
    victim->valid = true;
    victim->last_use = ++u->use_clock;
    u->misses++;
    *out = victim->vectors;
    return UNIECG_OK;
}

typedef struct {
    uniecg__unet_trace_fn fn;
    void *user;
} tracer;

static void note(const tracer *t, const char *name, const float *v, int64_t channels, int64_t length) {
    if (t && t->fn) t->fn(t->user, name, v, channels, length);
}

/* One block: x (cin, L) -> out (cout, L). Uses w->a .. w->h2 as scratch: x and out must be
 * other buffers, and distinct (x is read again for the residual at the end). */
static uniecg_status run_block(const uniecg_unet *u, workspace *w, const block *B, const float *x, const float *cross, float *out,
                               const tracer *tr, uniecg_error *error) {
    int64_t L = B->length, s_ = B->s;
    uniecg_status s;
    /* time embedding: fc2(Mish(fc1(sinusoid))) per channel */
    if ((s = lin(w, &B->fc1, w->sinusoid, 1, w->time_hidden, error))) return s;
    uniecg__seq_activate(&w->ctx, UNIECG__ACT_MISH, w->time_hidden, B->fc1.w.rows);
    if ((s = lin(w, &B->fc2, w->time_hidden, 1, w->temb, error))) return s;
    note(tr, "temb", w->temb, B->cin, 1);
    float *h = w->a;
    memcpy(h, x, (size_t)(B->cin * L) * sizeof(float));
    uniecg__seq_add_per_channel(h, B->cin, L, w->temb);
    note(tr, "time_added", h, B->cin, L);
    /* conv1 -> GroupNorm(1) -> Mish -> conv_mid */
    if ((s = conv(w, &B->conv1, B->cin, B->k, 1, (B->k - 1) / 2, h, L, w->b, error))) return s;
    note(tr, "pre_conv", w->b, s_, L);
    if ((s = uniecg__seq_group_norm(&w->ctx, w->b, s_, L, 1, u->gn_eps, B->norm1, B->norm1_b, w->b, error))) return s;
    uniecg__seq_activate(&w->ctx, UNIECG__ACT_MISH, w->b, s_ * L);
    if ((s = conv(w, &B->conv_mid, s_, B->k_mid, 1, (B->k_mid - 1) / 2, w->b, L, w->c, error))) return s;
    note(tr, "shortcut_conv", w->c, s_, L);
    /* self-attention over tokens: t (L, s) */
    float *t = w->d, *n = w->e, *q = w->f, *k = w->g, *v = w->h2;
    uniecg__seq_transpose(w->c, s_, L, t);
    if ((s = uniecg__seq_layer_norm(&w->ctx, t, L, s_, u->ln_eps, B->sa_norm, B->sa_norm_b, n, error)) ||
        (s = lin(w, &B->sa_q, n, L, q, error)) || (s = lin(w, &B->sa_k, n, L, k, error)) ||
        (s = lin(w, &B->sa_v, n, L, v, error)))
        return s;
    /* the multi-head attention's own in-projections (q, k, v rows of in_proj), attention,
     * out_proj, then to_out; n (L, s) receives the result */
    dense in_q = {.w = B->sa_in_q, .b = B->sa_in_b}, in_k = {.w = B->sa_in_k, .b = B->sa_in_b + B->hidden},
          in_v = {.w = B->sa_in_v, .b = B->sa_in_b + 2 * B->hidden};
    if ((s = lin(w, &in_q, q, L, w->b, error)) || (s = lin(w, &in_k, k, L, q, error)) ||
        (s = lin(w, &in_v, v, L, k, error)))
        return s;
    attend(w, w->b, q, k, L, B->heads, B->hidden, v);
    if ((s = lin(w, &B->sa_out_proj, v, L, w->b, error)) || (s = lin(w, &B->sa_out, w->b, L, n, error))) return s;
    for (int64_t i = 0; i < L * s_; i++) t[i] += n[i];
    if (tr && tr->fn) {
        uniecg__seq_transpose(t, L, s_, w->c);
        note(tr, "self_attention", w->c, s_, L);
    }
    /* cross-attention: the condition's vector at every position */
    for (int64_t p = 0; p < L; p++)
        for (int64_t c = 0; c < s_; c++) t[p * s_ + c] += cross[c];
    if (tr && tr->fn) {
        uniecg__seq_transpose(t, L, s_, w->c);
        note(tr, "cross_attention", w->c, s_, L);
        note(tr, "cross_vec", cross, s_, 1);
    }
    if ((s = uniecg__seq_layer_norm(&w->ctx, t, L, s_, u->ln_eps, B->attn_norm, B->attn_norm_b, t, error))) return s;
    uniecg__seq_transpose(t, L, s_, w->c);
    note(tr, "attention_norm", w->c, s_, L);
    /* conv2 -> GroupNorm(1) -> Mish, plus the residual of the input before the time embedding */
    if ((s = conv(w, &B->conv2, s_, B->k, 1, (B->k - 1) / 2, w->c, L, out, error)) ||
        (s = uniecg__seq_group_norm(&w->ctx, out, B->cout, L, 1, u->gn_eps, B->norm2, B->norm2_b, out, error)))
        return s;
    uniecg__seq_activate(&w->ctx, UNIECG__ACT_MISH, out, B->cout * L);
    if (B->has_res) {
        if ((s = conv(w, &B->res, B->cin, 1, 1, 0, x, L, w->b, error))) return s;
        for (int64_t i = 0; i < B->cout * L; i++) out[i] += w->b[i];
    } else {
        for (int64_t i = 0; i < B->cout * L; i++) out[i] += x[i];
    }
    note(tr, "block_out", out, B->cout, L);
    return UNIECG_OK;
}

/* One sample: x (C, L) at timestep t with the condition's vectors -> eps (C, L). Block inputs
 * and outputs travel in the carriers p0, p1, p2 (never touched by run_block's scratch). */
static uniecg_status forward(const uniecg_unet *u, workspace *w, const float *x, int32_t t, const float *vectors, float *eps,
                             const tracer *tr, uniecg_error *error) {
    int64_t n = u->n_levels - 1;
    uniecg_status s;
    /* DiffuSETS' table row t holds step t + 1: frequencies exp(-i constant / (dim/2 - 1)) */
    uniecg__timestep_embedding_params tp = {.log_max_period = u->time_constant, .downscale_freq_shift = 1.0,
                                            .flip_sin_to_cos = false};
    if ((s = uniecg__seq_timestep_embedding(&tp, (float)(t + 1), u->time_dim, w->sinusoid, error))) return s;
    float *P[2] = {w->p0, w->p1};
    const float *cur = x;
    for (int64_t i = 0; i < n; i++) {
        const block *B = &u->blocks[i];
        if ((s = run_block(u, w, B, cur, vectors + B->cross_offset, w->skips[i], i == 0 ? tr : NULL, error))) return s;
        float *down = P[i % 2];
        if ((s = conv(w, &u->down[i].down, B->cout, 3, 2, 1, w->skips[i], B->length, down, error))) return s;
        if (i == 0) note(tr, "down_out", down, B->cout, B->length / 2);
        cur = down;
    }
    /* the bottleneck; the deepest skip (skips[n - 1]) is not used again */
    const block *M = &u->blocks[n];
    float *mid = P[n % 2];
    if ((s = run_block(u, w, M, cur, vectors + M->cross_offset, mid, NULL, error))) return s;
    float *h = mid;
    for (int64_t j = 0; j < n; j++) {
        const block *B = &u->blocks[n + 1 + j];
        int64_t width = u->up[j].up_width, length = B->length / 2;
        up_sample(u, w, j, h, length, w->p2);
        if (j > 0) /* concatenate the matching skip after the up-sampled channels */
            memcpy(w->p2 + width * B->length, w->skips[n - 1 - j],
                   (size_t)((B->cin - width) * B->length) * sizeof(float));
        /* h was consumed by the transposed convolution: the block writes over it */
        if ((s = run_block(u, w, B, w->p2, vectors + B->cross_offset, h, NULL, error))) return s;
    }
    /* output: conv k3 -> Mish -> conv 1x1 */
    int64_t last = u->blocks[2 * n].cout;
    if ((s = conv(w, &u->out_conv, last, 3, 1, 1, h, u->L, w->p2, error))) return s;
    uniecg__seq_activate(&w->ctx, UNIECG__ACT_MISH, w->p2, u->C * u->L);
    return conv(w, &u->out_proj, u->C, 1, 1, 0, w->p2, u->L, eps, error);
}

static uniecg_status check_finite(const float *v, int64_t n, const char *what, int32_t sample, uniecg_error *error) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return uniecg__fail(error, UNIECG_ERR_RANGE, "unet: %s of sample %d has %s at %lld", what, sample,
                                isnan(v[i]) ? "NaN" : "an infinity", (long long)i);
    return UNIECG_OK;
}

typedef struct {
    uniecg_unet *u;
    int32_t batch;
    const float *x;
    const int32_t *timesteps;
    const float *const *vectors;
    float *eps;
    const tracer *tr;
} batch_job;

/* Thread `index` runs samples index, index + count, ... on its own workspace ws[1 + index]. */
static void batch_task(void *ctx, int32_t index, int32_t count) {
    const batch_job *job = ctx;
    uniecg_unet *u = job->u;
    int64_t size = u->C * u->L;
    for (int32_t b = index; b < job->batch; b += count) {
        uniecg_status s = forward(u, &u->ws[1 + index], job->x + b * size, job->timesteps[b], job->vectors[b],
                                  job->eps + b * size, b == 0 ? job->tr : NULL, &u->ws_errors[1 + index]);
        if (s) {
            u->ws_errors[1 + index].status = s;
            return;
        }
    }
}

uniecg_status uniecg__unet_predict_traced(uniecg_unet *u, int32_t batch, const float *x, const int32_t *timesteps,
                                          const float *cond, float *eps, uniecg__unet_trace_fn trace, void *user,
                                          uniecg_error *error) {
    if (!u || !x || !timesteps || !cond || !eps)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "unet_predict: NULL argument");
    if (batch < 1 || batch > (1 << 20))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "unet_predict: batch %d (need at least 1)", batch);
    int64_t size = u->C * u->L;
    /* every input is checked before anything is written */
    for (int32_t b = 0; b < batch; b++) {
        if (timesteps[b] < 0 || timesteps[b] >= u->info.train_steps)
            return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "unet_predict: timestep %d of sample %d is outside 0..%d",
                                timesteps[b], b, u->info.train_steps - 1);
        uniecg_status s = check_finite(cond + b * u->cond_length, u->cond_length, "the condition", b, error);
        if (s == UNIECG_OK) s = check_finite(x + b * size, size, "the latent", b, error);
        if (s) return s;
    }
    tracer tr = {.fn = trace, .user = user};
    uint64_t call_start = u->use_clock;
    if (batch == 1 || u->n_ws == 1 || batch > CACHE_ENTRIES) {
        /* one sample after another on ws[0], each layer split over the pool */
        for (int32_t b = 0; b < batch; b++) {
            const float *vectors;
            uniecg_status s = condition_vectors(u, cond + b * u->cond_length, u->use_clock, &vectors, error);
            if (s == UNIECG_OK)
                s = forward(u, &u->ws[0], x + b * size, timesteps[b], vectors, eps + b * size, b == 0 ? &tr : NULL, error);
            if (s) return s;
        }
        return UNIECG_OK;
    }
    /* samples side by side, one per thread: the vectors of every sample first (kept in the
     * cache for the whole call: batch <= CACHE_ENTRIES) */
    const float *vectors[CACHE_ENTRIES];
    for (int32_t b = 0; b < batch; b++) {
        uniecg_status s = condition_vectors(u, cond + b * u->cond_length, call_start, &vectors[b], error);
        if (s) return s;
    }
    batch_job job = {.u = u, .batch = batch, .x = x, .timesteps = timesteps, .vectors = vectors, .eps = eps, .tr = &tr};
    for (int32_t k = 0; k < u->n_ws; k++) u->ws_errors[k] = (uniecg_error){0};
    uniecg__parallel(u->pool, batch_task, &job);
    for (int32_t k = 0; k < u->n_ws; k++)
        if (u->ws_errors[k].status != UNIECG_OK) {
            if (error) *error = u->ws_errors[k];
            return u->ws_errors[k].status;
        }
    return UNIECG_OK;
}

uniecg_status uniecg_unet_predict(uniecg_unet *u, int32_t batch, const float *x, const int32_t *timesteps,
                                  const float *cond, float *eps, uniecg_error *error) {
    return uniecg__unet_predict_traced(u, batch, x, timesteps, cond, eps, NULL, NULL, error);
}

/* ---- sampling ------------------------------------------------------------------------------ */

uniecg_diffusion_sample_params uniecg_diffusion_sample_default_params(void) {
    return (uniecg_diffusion_sample_params){.scheduler = NULL, .steps = 0, .guidance_scale = 1.0f, .seed = 0,
                                            .progress = NULL, .progress_user_data = NULL};
}

uint64_t uniecg_diffusion_step_seed(uint64_t seed, int32_t step) {
    uint8_t bytes[16];
    uniecg__put_u64(bytes, seed);
    uniecg__put_u64(bytes + 8, (uint64_t)step + 1);
    return uniecg_xxh64(bytes, sizeof bytes, 0);
}

uniecg_status uniecg_diffusion_sample(uniecg_unet *u, const uniecg_diffusion_sample_params *params, const float *cond,
                                      const float *null_cond, float *latent_out, uniecg_error *error) {
    if (!u || !params || !cond || !latent_out)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "diffusion_sample: NULL argument");
    float scale = params->guidance_scale;
    if (!isfinite(scale))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "diffusion_sample: guidance scale %g", (double)scale);
    int64_t size = u->C * u->L;
    uniecg_scheduler_params sp;
    if (params->scheduler) {
        sp = *params->scheduler;
    } else {
        sp = u->schedule;
        if (params->steps < 0)
            return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "diffusion_sample: %d steps", params->steps);
        if (params->steps) sp.steps = params->steps;
    }
    sp.sample_size = size;
    if (sp.train_steps != u->info.train_steps)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "diffusion_sample: a schedule of %d training steps for a U-Net trained with %d",
                            sp.train_steps, u->info.train_steps);
    uniecg_status s = check_finite(cond, u->cond_length, "the condition", 0, error);
    if (s == UNIECG_OK && null_cond) s = check_finite(null_cond, u->cond_length, "the null condition", 1, error);
    if (s) return s;
    uniecg_scheduler *sched;
    if ((s = uniecg_scheduler_create(sp, &sched, error))) return s;
    bool guided = scale != 1.0f;
    const float *null_c = null_cond ? null_cond : u->null_cond;
    /* batch 2 = [condition, null condition], as the reference runs it */
    float *conds = u->conds2;
    if (guided) {
        memcpy(conds, cond, (size_t)u->cond_length * sizeof(float));
        memcpy(conds + u->cond_length, null_c, (size_t)u->cond_length * sizeof(float));
    }
    float *x = u->sample;
    uniecg_normal_noise(params->seed, x, size);
    int32_t steps = uniecg_scheduler_steps(sched);
    for (int32_t i = 0; i < steps && s == UNIECG_OK; i++) {
        if (params->progress && params->progress(i, steps, x, params->progress_user_data)) {
            s = uniecg__fail(error, UNIECG_ERR_CANCELLED, "diffusion_sample: cancelled before step %d of %d", i, steps);
            break;
        }
        int32_t t = uniecg_scheduler_timestep(sched, i);
        const float *model_output;
        if (guided) {
            int32_t ts[2] = {t, t};
            memcpy(u->xb, x, (size_t)size * sizeof(float));
            memcpy(u->xb + size, x, (size_t)size * sizeof(float));
            if ((s = uniecg_unet_predict(u, 2, u->xb, ts, conds, u->eps2, error))) break;
            const float *ec = u->eps2, *eu = u->eps2 + size;
            for (int64_t k = 0; k < size; k++) u->eps_g[k] = eu[k] + scale * (ec[k] - eu[k]);
            model_output = u->eps_g;
        } else {
            if ((s = uniecg_unet_predict(u, 1, x, &t, cond, u->eps2, error))) break;
            model_output = u->eps2;
        }
        /* fresh noise where the update needs it: DDPM before the last step, DDIM with eta > 0 */
        bool needs_noise = (sp.kind == UNIECG_SCHEDULER_DDPM && t > 0) || (sp.kind == UNIECG_SCHEDULER_DDIM && sp.eta > 0);
        if (needs_noise) uniecg_normal_noise(uniecg_diffusion_step_seed(params->seed, i), u->noise, size);
        s = uniecg_scheduler_step(sched, i, model_output, x, needs_noise ? u->noise : NULL, error);
    }
    if (s == UNIECG_OK) {
        memcpy(latent_out, x, (size_t)size * sizeof(float));
        if (params->progress) (void)params->progress(steps, steps, x, params->progress_user_data);
    }
    uniecg_scheduler_free(sched);
    return s;
}
