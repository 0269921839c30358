/* The DiffuSETS VAE: a 1-D port of the Stable Diffusion autoencoder between 12-lead ECGs
 * (signal_channels, signal_length) and latents (latent_channels, signal_length / 8), both
 * channels-major. Assembled from the sequence ops (ops.h), which are checked against PyTorch one
 * by one; this file only wires them in the published order (ModelFormat.md, "VAE (vae.*)",
 * Tools/reference/diffusets.py VAEEncoder / VAEDecoder).
 *
 * Each network is a list of steps that carry the published nn.Sequential index, so a tensor
 * name points straight at its source key. Activations live in three buffers sized at create time
 * for the widest step; the ops' own scratch (im2col, attention scores) is the only memory that
 * grows, and only on the first call. */
#include "internal.h"
#include "lookup.h"
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { VAE_LEVELS = 3, MAX_STEPS = 32 };

typedef enum {
    STEP_CONV,      /* nn.Conv1d (any padding / stride)                                             */
    STEP_RES,       /* ResBlock: GN, SiLU, conv k3, GN, SiLU, conv k3, + x (or its 1x1 conv)         */
    STEP_ATTN,      /* x + single-head self-attention (its GroupNorm is never applied)              */
    STEP_NORM_SILU, /* GroupNorm then SiLU (the published index of the SiLU is the next one)         */
    STEP_UPSAMPLE,  /* nearest x2; no tensors                                                      */
} step_kind;

typedef struct {
    uniecg__weight w;   /* (c_out, c_in * kernel), f32 or q8                                     */
    const float *bias;  /* (c_out)                                                               */
    uniecg__conv1d_shape shape;
    uniecg__conv1d_taps taps; /* a q8 kernel over a multiple of 32 channels: its tap-major form  */
} conv_layer;

typedef struct {
    step_kind kind;
    int32_t index;      /* the published nn.Sequential index                                     */
    int64_t c_in, c_out;
    conv_layer conv;    /* CONV                                                                  */
    const float *norm_1, *norm_1_bias, *norm_2, *norm_2_bias; /* (c_in) (c_in) (c_out) (c_out); NORM uses norm_1 */
    conv_layer conv_1, conv_2, skip;                          /* RES; skip only when c_in != c_out */
    bool has_skip;
    uniecg__weight attn_in, attn_out; /* (3C, C), (C, C)                                        */
    const float *attn_in_bias, *attn_out_bias; /* (3C), (C)                                     */
} step;

typedef struct {
    int32_t n_steps;
    step steps[MAX_STEPS];
} network;

struct uniecg_vae {
    uniecg_vae_info info;
    double logvar_min, logvar_max;
    float norm_eps;
    network encoder, decoder;
    uniecg__seq_ctx ctx;
    uniecg_thread_pool *pool;
    bool owns_pool;
    float *buffers[3]; /* each (max_values): the step input, output and one temporary            */
    int64_t max_values;
    void **owned;      /* made at create time: f16 / bf16 kernels widened to f32, tap-major forms */
    int32_t n_owned;
};

uniecg_vae_params uniecg_vae_default_params(void) {
    return (uniecg_vae_params){.kernels = UNIECG_KERNELS_AUTO, .pool = NULL, .n_threads = 0};
}

/* ------------------------------------------------------------------------------------------ */
/* The published layer order                                                                   */

static step *add_step(network *net, step_kind kind, int32_t index, int64_t c_in, int64_t c_out) {
    step *s = &net->steps[net->n_steps++];
    *s = (step){.kind = kind, .index = index, .c_in = c_in, .c_out = c_out};
    return s;
}

static void add_conv(network *net, int32_t index, int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride,
                     int64_t pad_left, int64_t pad_right) {
    step *s = add_step(net, STEP_CONV, index, c_in, c_out);
    s->conv.shape = (uniecg__conv1d_shape){.c_in = c_in, .c_out = c_out, .kernel = kernel, .stride = stride,
                                           .pad_left = pad_left, .pad_right = pad_right};
}

/* VAEEncoder: (signal, L) -> (2 latent, L / 8). The down-sampling convs see F.pad(x, (0, 1))
 * and no padding of their own: pad_right 1. */
static void encoder_plan(network *net, int64_t signal, int64_t latent, const int64_t *w) {
    int64_t a = w[0], b = w[1], c = w[2];
    net->n_steps = 0;
    add_conv(net, 0, signal, a, 3, 1, 1, 1);
    add_step(net, STEP_RES, 1, a, a);
    add_step(net, STEP_RES, 2, a, a);
    add_conv(net, 3, a, a, 3, 2, 0, 1);
    add_step(net, STEP_RES, 4, a, b);
    add_step(net, STEP_RES, 5, b, b);
    add_conv(net, 6, b, b, 3, 2, 0, 1);
    add_step(net, STEP_RES, 7, b, c);
    add_step(net, STEP_RES, 8, c, c);
    add_conv(net, 9, c, c, 3, 2, 0, 1);
    for (int32_t i = 10; i <= 12; i++) add_step(net, STEP_RES, i, c, c);
    add_step(net, STEP_ATTN, 13, c, c);
    add_step(net, STEP_RES, 14, c, c);
    add_step(net, STEP_NORM_SILU, 15, c, c);
    add_conv(net, 17, c, 2 * latent, 3, 1, 1, 1);
    add_conv(net, 18, 2 * latent, 2 * latent, 1, 1, 0, 0);
}

/* VAEDecoder: (latent, L / 8) -> (signal, L). */
static void decoder_plan(network *net, int64_t signal, int64_t latent, const int64_t *w) {
    int64_t a = w[0], b = w[1], c = w[2];
    net->n_steps = 0;
    add_conv(net, 0, latent, latent, 1, 1, 0, 0);
    add_conv(net, 1, latent, c, 3, 1, 1, 1);
    add_step(net, STEP_RES, 2, c, c);
    add_step(net, STEP_ATTN, 3, c, c);
    for (int32_t i = 4; i <= 7; i++) add_step(net, STEP_RES, i, c, c);
    add_step(net, STEP_UPSAMPLE, 8, c, c);
    add_conv(net, 9, c, c, 3, 1, 1, 1);
    for (int32_t i = 10; i <= 12; i++) add_step(net, STEP_RES, i, c, c);
    add_step(net, STEP_UPSAMPLE, 13, c, c);
    add_conv(net, 14, c, c, 3, 1, 1, 1);
    add_step(net, STEP_RES, 15, c, b);
    add_step(net, STEP_RES, 16, b, b);
    add_step(net, STEP_RES, 17, b, b);
    add_step(net, STEP_UPSAMPLE, 18, b, b);
    add_conv(net, 19, b, b, 3, 1, 1, 1);
    add_step(net, STEP_RES, 20, b, a);
    add_step(net, STEP_RES, 21, a, a);
    add_step(net, STEP_RES, 22, a, a);
    add_step(net, STEP_NORM_SILU, 23, a, a);
    add_conv(net, 25, a, signal, 3, 1, 1, 1);
}

/* Walks the steps from `length` input positions: the largest (channels x positions) any buffer
 * holds, and the final length. */
static int64_t plan_extent(const network *net, int64_t length, int64_t *out_length) {
    int64_t most = net->steps[0].c_in * length;
    for (int32_t i = 0; i < net->n_steps; i++) {
        const step *s = &net->steps[i];
        if (s->kind == STEP_CONV) length = uniecg__conv1d_out_length(&s->conv.shape, length);
        if (s->kind == STEP_UPSAMPLE) length *= 2;
        int64_t in = s->c_in * length, out = s->c_out * length;
        if (in > most) most = in;
        if (out > most) most = out;
    }
    *out_length = length;
    return most;
}

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                      */

static uniecg_status vector(const uniecg_model_file *file, const char *part, int32_t index, const char *suffix,
                            int64_t n, const float **out, uniecg_error *error) {
    char name[96];
    snprintf(name, sizeof name, "vae.%s.%d.%s", part, index, suffix);
    uniecg_status s = uniecg__vector_find(file, name, n, out, error);
    if (!s && !*out) s = uniecg__fail(error, UNIECG_ERR_STATE, "tensor '%s' is not loaded (open with load_tensors)", name);
    return s;
}

/* Keeps a buffer made at create time until uniecg_vae_free (frees it on failure). */
static uniecg_status own(uniecg_vae *vae, void *buffer, uniecg_error *error) {
    void **grown = realloc(vae->owned, (size_t)(vae->n_owned + 1) * sizeof *grown);
    if (!grown) {
        free(buffer);
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    }
    vae->owned = grown;
    vae->owned[vae->n_owned++] = buffer;
    return UNIECG_OK;
}

/* A convolution kernel, stored as the matrix (c_out, c_in * kernel) in PyTorch's element order,
 * and its bias. q8 and f32 are used in place; f16 and bf16 (a --quant none conversion of a
 * half-precision source) are widened to f32 once here, because the convolution op multiplies
 * f32 or q8 only. A q8 kernel over a multiple of 32 input channels also gets its tap-major form
 * (ops.h: the faster q8 product), which `convolve` then uses. */
static uniecg_status load_conv(uniecg_vae *vae, const uniecg_model_file *file, const char *part, int32_t index,
                               const char *name, conv_layer *conv, uniecg_error *error) {
    char weight_name[96], bias_name[64];
    snprintf(weight_name, sizeof weight_name, "vae.%s.%d.%s", part, index, name);
    snprintf(bias_name, sizeof bias_name, "%s_bias", name);
    const uniecg__conv1d_shape *sh = &conv->shape;
    int64_t cols = sh->c_in * sh->kernel;
    uniecg_status s = uniecg__weight_find(file, weight_name, sh->c_out, cols, &conv->w, error);
    if (s) return s;
    if (!conv->w.data)
        return uniecg__fail(error, UNIECG_ERR_STATE, "tensor '%s' is not loaded (open with load_tensors)", weight_name);
    uniecg_dtype dtype = conv->w.dtype;
    const void *data = conv->w.data;
    if (dtype == UNIECG_DTYPE_F16 || dtype == UNIECG_DTYPE_BF16) {
        float *f = uniecg__aligned_alloc((uint64_t)(sh->c_out * cols) * sizeof(float));
        if (!f) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory widening '%s'", weight_name);
        if ((s = own(vae, f, error))) return s;
        if ((s = uniecg_to_f32(data, dtype, (uint64_t)(sh->c_out * cols), f)))
            return uniecg__fail(error, s, "cannot widen '%s' to f32", weight_name);
        conv->w.data = f;
        conv->w.dtype = UNIECG_DTYPE_F32;
    } else if (dtype == UNIECG_DTYPE_Q8 && cols % UNIECG_Q8_GROUP) {
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "tensor '%s' is q8 but its rows hold %lld values (not a multiple of 32)",
                            weight_name, (long long)cols);
    } else if (dtype == UNIECG_DTYPE_Q8 && uniecg__conv1d_taps_fit(sh, &conv->w)) {
        if ((s = uniecg__conv1d_taps_make(sh, &conv->w, &conv->taps, error)) ||
            (s = own(vae, conv->taps.block, error))) {
            conv->taps = (uniecg__conv1d_taps){0};
            return s;
        }
    }
    return vector(file, part, index, bias_name, sh->c_out, &conv->bias, error);
}

static uniecg_status load_matrix(const uniecg_model_file *file, const char *part, int32_t index, const char *suffix,
                                 int64_t rows, int64_t cols, uniecg__weight *out, uniecg_error *error) {
    char name[96];
    snprintf(name, sizeof name, "vae.%s.%d.%s", part, index, suffix);
    uniecg_status s = uniecg__weight_find(file, name, rows, cols, out, error);
    if (!s && !out->data) s = uniecg__fail(error, UNIECG_ERR_STATE, "tensor '%s' is not loaded (open with load_tensors)", name);
    return s;
}

static uniecg_status load_network(uniecg_vae *vae, const uniecg_model_file *file, const char *part, network *net,
                                  uniecg_error *error) {
    uniecg_status s = UNIECG_OK;
    for (int32_t i = 0; i < net->n_steps && !s; i++) {
        step *st = &net->steps[i];
        int32_t k = st->index;
        int64_t ci = st->c_in, co = st->c_out;
        switch (st->kind) {
        case STEP_CONV: s = load_conv(vae, file, part, k, "conv", &st->conv, error); break;
        case STEP_RES:
            st->conv_1.shape = (uniecg__conv1d_shape){.c_in = ci, .c_out = co, .kernel = 3, .stride = 1, .pad_left = 1, .pad_right = 1};
            st->conv_2.shape = (uniecg__conv1d_shape){.c_in = co, .c_out = co, .kernel = 3, .stride = 1, .pad_left = 1, .pad_right = 1};
            st->skip.shape = (uniecg__conv1d_shape){.c_in = ci, .c_out = co, .kernel = 1, .stride = 1};
            st->has_skip = ci != co;
            if ((s = vector(file, part, k, "norm_1", ci, &st->norm_1, error)) ||
                (s = vector(file, part, k, "norm_1_bias", ci, &st->norm_1_bias, error)) ||
                (s = load_conv(vae, file, part, k, "conv_1", &st->conv_1, error)) ||
                (s = vector(file, part, k, "norm_2", co, &st->norm_2, error)) ||
                (s = vector(file, part, k, "norm_2_bias", co, &st->norm_2_bias, error)) ||
                (s = load_conv(vae, file, part, k, "conv_2", &st->conv_2, error)))
                break;
            if (st->has_skip) s = load_conv(vae, file, part, k, "skip", &st->skip, error);
            break;
        case STEP_ATTN:
            if ((s = load_matrix(file, part, k, "attn_in", 3 * ci, ci, &st->attn_in, error)) ||
                (s = vector(file, part, k, "attn_in_bias", 3 * ci, &st->attn_in_bias, error)) ||
                (s = load_matrix(file, part, k, "attn_out", ci, ci, &st->attn_out, error)))
                break;
            s = vector(file, part, k, "attn_out_bias", ci, &st->attn_out_bias, error);
            break;
        case STEP_NORM_SILU:
            if ((s = vector(file, part, k, "norm", ci, &st->norm_1, error))) break;
            s = vector(file, part, k, "norm_bias", ci, &st->norm_1_bias, error);
            break;
        case STEP_UPSAMPLE: break;
        }
    }
    return s;
}

void uniecg_vae_free(uniecg_vae *vae) {
    if (!vae) return;
    for (int i = 0; i < 3; i++) free(vae->buffers[i]);
    for (int32_t i = 0; i < vae->n_owned; i++) free(vae->owned[i]);
    free(vae->owned);
    uniecg__seq_ctx_free(&vae->ctx);
    if (vae->owns_pool) uniecg_thread_pool_free(vae->pool);
    free(vae);
}

/* vae.widths: exactly three positive widths (finest level first), i64 or i32 array. */
static uniecg_status read_widths(const uniecg_model_file *file, int64_t *w, uniecg_error *error) {
    uniecg_meta_entry e;
    if (uniecg_model_file_meta_find(file, "vae.widths", &e) != UNIECG_OK)
        return uniecg__fail(error, UNIECG_ERR_NOT_FOUND, "model file lacks metadata 'vae.widths'");
    if (e.type != UNIECG_META_I64_ARRAY && e.type != UNIECG_META_I32_ARRAY)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "metadata 'vae.widths' should be an i64 array");
    if (e.count != VAE_LEVELS)
        return uniecg__fail(error, UNIECG_ERR_VERSION,
                            "metadata 'vae.widths' has %llu entries; the DiffuSETS VAE has exactly %d levels",
                            (unsigned long long)e.count, VAE_LEVELS);
    for (int i = 0; i < VAE_LEVELS; i++) {
        w[i] = e.type == UNIECG_META_I64_ARRAY ? ((const int64_t *)e.array)[i] : ((const int32_t *)e.array)[i];
        if (w[i] < 1 || w[i] > 65536)
            return uniecg__fail(error, UNIECG_ERR_LIMIT, "metadata 'vae.widths'[%d] = %lld is outside 1..65536", i,
                                (long long)w[i]);
    }
    return UNIECG_OK;
}

uniecg_status uniecg_vae_create(const uniecg_model_file *file, uniecg_vae_params params, uniecg_vae **out,
                                uniecg_error *error) {
    if (!file || !out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "vae_create: NULL argument");
    *out = NULL;
    if (params.n_threads < 0) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "vae_create: negative thread count");
    const char *arch;
    uniecg_status s = uniecg__meta_string(file, "vae.architecture", &arch, error);
    if (s) return s;
    if (strcmp(arch, "diffusets-vae1d") != 0)
        return uniecg__fail(error, UNIECG_ERR_VERSION, "unknown VAE architecture '%s' (diffusets-vae1d)", arch);

    uniecg_vae *vae = calloc(1, sizeof *vae);
    if (!vae) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    uniecg_vae_info *in = &vae->info;
    int64_t widths[VAE_LEVELS];
    double eps;
    if ((s = uniecg__meta_int(file, "vae.signal_channels", 1, 4096, &in->signal_channels, error)) ||
        (s = uniecg__meta_int(file, "vae.signal_length", 8, 1 << 20, &in->signal_length, error)) ||
        (s = uniecg__meta_int(file, "vae.latent_channels", 1, 4096, &in->latent_channels, error)) ||
        (s = uniecg__meta_int(file, "vae.groups", 1, 65536, &in->groups, error)) ||
        (s = read_widths(file, widths, error)) ||
        (s = uniecg__meta_f64(file, "vae.scale", &in->scale, error)) ||
        (s = uniecg__meta_f64(file, "vae.logvar_min", &vae->logvar_min, error)) ||
        (s = uniecg__meta_f64(file, "vae.logvar_max", &vae->logvar_max, error)) ||
        (s = uniecg__meta_f64(file, "vae.norm_eps", &eps, error)) ||
        (s = uniecg__meta_f64(file, "vae.sample_rate", &in->sample_rate, error)))
        goto fail;
    for (int i = 0; i < VAE_LEVELS; i++) in->widths[i] = (int32_t)widths[i];
    vae->norm_eps = (float)eps;
    bool groups_fit = true;
    for (int i = 0; i < VAE_LEVELS; i++) groups_fit = groups_fit && widths[i] % in->groups == 0;
    if (in->signal_length % 8 || !groups_fit || !(in->scale > 0) || !isfinite(in->scale) || !(eps > 0) ||
        !(vae->logvar_min <= vae->logvar_max) || !(in->sample_rate > 0)) {
        s = uniecg__fail(error, UNIECG_ERR_FORMAT,
                         "inconsistent vae metadata: signal_length %d (a multiple of 8), %d groups for widths "
                         "%lld/%lld/%lld, scale %g, norm_eps %g, logvar range [%g, %g], sample_rate %g",
                         in->signal_length, in->groups, (long long)widths[0], (long long)widths[1],
                         (long long)widths[2], in->scale, eps, vae->logvar_min, vae->logvar_max, in->sample_rate);
        goto fail;
    }
    in->latent_length = in->signal_length / 8;

    encoder_plan(&vae->encoder, in->signal_channels, in->latent_channels, widths);
    decoder_plan(&vae->decoder, in->signal_channels, in->latent_channels, widths);
    if ((s = load_network(vae, file, "encoder", &vae->encoder, error)) ||
        (s = load_network(vae, file, "decoder", &vae->decoder, error)))
        goto fail;

    int64_t enc_length, dec_length;
    int64_t most = plan_extent(&vae->encoder, in->signal_length, &enc_length);
    int64_t dec_most = plan_extent(&vae->decoder, in->latent_length, &dec_length);
    if (dec_most > most) most = dec_most;
    /* The plans are fixed, so these only fail on a bug in the plans. */
    if (enc_length != in->latent_length || dec_length != in->signal_length) {
        s = uniecg__fail(error, UNIECG_ERR_STATE, "vae plan gives %lld latent / %lld signal positions",
                         (long long)enc_length, (long long)dec_length);
        goto fail;
    }
    if ((s = uniecg__seq_check_size(most, 1, "vae activations", error))) goto fail;
    vae->max_values = most;
    for (int i = 0; i < 3; i++)
        if (!(vae->buffers[i] = uniecg__aligned_alloc((uint64_t)most * sizeof(float)))) {
            s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory for the vae activations");
            goto fail;
        }

    if (params.pool) {
        vae->pool = params.pool;
    } else {
        if ((s = uniecg_thread_pool_create(params.n_threads, &vae->pool, error))) goto fail;
        vae->owns_pool = true;
    }
    in->n_threads = uniecg_thread_pool_size(vae->pool);
    if ((s = uniecg_kernel_variant_resolve(params.kernels, &in->kernels, error)) ||
        (s = uniecg__seq_ctx_init(&vae->ctx, in->kernels, vae->pool, error)))
        goto fail;
    *out = vae;
    return UNIECG_OK;
fail:
    uniecg_vae_free(vae);
    return s;
}

void uniecg_vae_get_info(const uniecg_vae *vae, uniecg_vae_info *out) {
    if (vae && out) *out = vae->info;
}

/* ------------------------------------------------------------------------------------------ */
/* Forward passes                                                                               */

static void add_into(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

/* GroupNorm then SiLU from x into y (y may equal x). */
static uniecg_status norm_silu(uniecg_vae *vae, const float *x, int64_t channels, int64_t length, const float *gamma,
                               const float *beta, float *y, uniecg_error *error) {
    uniecg_status s = uniecg__seq_group_norm(&vae->ctx, x, channels, length, vae->info.groups, vae->norm_eps, gamma,
                                             beta, y, error);
    if (!s) uniecg__seq_activate(&vae->ctx, UNIECG__ACT_SILU, y, channels * length);
    return s;
}

static uniecg_status convolve(uniecg__seq_ctx *ctx, const conv_layer *c, const float *x, int64_t length, float *y,
                              uniecg_error *error) {
    if (c->taps.block) return uniecg__seq_conv1d_taps(ctx, &c->shape, &c->taps, c->bias, x, length, y, error);
    return uniecg__seq_conv1d(ctx, &c->shape, &c->w, c->bias, x, length, y, error);
}

/* Runs every step of `net` on the (c_in, *length) activations in vae->buffers[0]; the result
 * is left in vae->buffers[0] and *length updated. Buffers rotate: each step reads [0], writes
 * [1] (using [2] as a temporary) and the two swap. */
static uniecg_status run(uniecg_vae *vae, const network *net, int64_t *length, uniecg_error *error) {
    uniecg__seq_ctx *ctx = &vae->ctx;
    float **b = vae->buffers;
    int64_t L = *length;
    uniecg_status s = UNIECG_OK;
    for (int32_t i = 0; i < net->n_steps && !s; i++) {
        const step *st = &net->steps[i];
        float *x = b[0], *y = b[1], *t = b[2];
        bool swap = true;
        switch (st->kind) {
        case STEP_CONV:
            s = convolve(ctx, &st->conv, x, L, y, error);
            L = uniecg__conv1d_out_length(&st->conv.shape, L);
            break;
        case STEP_RES:
            /* t = SiLU(GN(x)); y = conv_1(t); y = SiLU(GN(y)) in place; t = conv_2(y); then
             * y = t + (x or skip(x)): three buffers suffice because x is read last by the skip. */
            if ((s = norm_silu(vae, x, st->c_in, L, st->norm_1, st->norm_1_bias, t, error)) ||
                (s = convolve(ctx, &st->conv_1, t, L, y, error)) ||
                (s = norm_silu(vae, y, st->c_out, L, st->norm_2, st->norm_2_bias, y, error)) ||
                (s = convolve(ctx, &st->conv_2, y, L, t, error)))
                break;
            if (st->has_skip) {
                if ((s = convolve(ctx, &st->skip, x, L, y, error))) break;
                add_into(y, t, st->c_out * L); /* one rounding per value, as PyTorch's h + residual */
            } else {
                for (int64_t k = 0; k < st->c_out * L; k++) y[k] = t[k] + x[k];
            }
            break;
        case STEP_ATTN: {
            uniecg__attention_weights a = {.heads = 1, .in_proj = &st->attn_in, .in_proj_bias = st->attn_in_bias,
                                           .out_proj = &st->attn_out, .out_bias = st->attn_out_bias};
            s = uniecg__seq_self_attention(ctx, &a, x, st->c_in, L, t, error);
            if (!s) add_into(x, t, st->c_in * L);
            swap = false;
            break;
        }
        case STEP_NORM_SILU:
            s = norm_silu(vae, x, st->c_in, L, st->norm_1, st->norm_1_bias, x, error);
            swap = false;
            break;
        case STEP_UPSAMPLE:
            s = uniecg__seq_upsample_nearest(x, st->c_in, L, 2, y, error);
            L *= 2;
            break;
        }
        if (s) {
            /* Name the layer: the op's message says what, this says where. */
            char op[UNIECG_ERROR_MESSAGE_SIZE];
            snprintf(op, sizeof op, "%s", error ? error->message : "");
            return uniecg__fail(error, s, "vae step %d: %s", st->index, op);
        }
        if (swap) {
            b[0] = y;
            b[1] = x;
        }
    }
    *length = L;
    return s;
}

/* UNIECG_ERR_RANGE naming the first NaN or infinity of a (channels, length) input. */
static uniecg_status check_finite(const float *x, int64_t channels, int64_t length, const char *what,
                                  uniecg_error *error) {
    for (int64_t i = 0; i < channels * length; i++)
        if (!isfinite(x[i]))
            return uniecg__fail(error, UNIECG_ERR_RANGE, "%s: channel %lld, position %lld is not finite", what,
                                (long long)(i / length), (long long)(i % length));
    return UNIECG_OK;
}

uniecg_status uniecg_vae_decode(uniecg_vae *vae, const float *latent, float *signal, uniecg_error *error) {
    if (!vae || !latent || !signal) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "vae_decode: NULL argument");
    const uniecg_vae_info *in = &vae->info;
    int64_t L = in->latent_length, n = (int64_t)in->latent_channels * L;
    uniecg_status s = check_finite(latent, in->latent_channels, L, "vae_decode latent", error);
    if (s) return s;
    /* The decoder's first act is z / scale, on a copy (the published module divides its argument
     * in place). Divided, not multiplied by 1 / scale, to round as PyTorch does. */
    float scale = (float)in->scale;
    for (int64_t i = 0; i < n; i++) vae->buffers[0][i] = latent[i] / scale;
    if ((s = run(vae, &vae->decoder, &L, error))) return s;
    memcpy(signal, vae->buffers[0], (size_t)((int64_t)in->signal_channels * L) * sizeof(float));
    return UNIECG_OK;
}

uniecg_status uniecg_vae_encode(uniecg_vae *vae, const float *signal, const float *noise, float *latent, float *mean,
                                float *logvar, uniecg_error *error) {
    if (!vae || !signal || !latent) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "vae_encode: NULL argument");
    const uniecg_vae_info *in = &vae->info;
    int64_t L = in->signal_length, C = in->latent_channels;
    uniecg_status s = check_finite(signal, in->signal_channels, L, "vae_encode signal", error);
    if (!s && noise) s = check_finite(noise, C, in->latent_length, "vae_encode noise", error);
    if (s) return s;
    memcpy(vae->buffers[0], signal, (size_t)((int64_t)in->signal_channels * L) * sizeof(float));
    if ((s = run(vae, &vae->encoder, &L, error))) return s;
    /* (2 C, L): the mean's channels, then the log-variance's (torch.chunk(h, 2, dim=1)). */
    const float *h = vae->buffers[0];
    float lo = (float)vae->logvar_min, hi = (float)vae->logvar_max, scale = (float)in->scale;
    for (int64_t i = 0; i < C * L; i++) {
        float m = h[i], lv = h[C * L + i];
        lv = lv < lo ? lo : lv > hi ? hi : lv;
        if (mean) mean[i] = m;
        if (logvar) logvar[i] = lv;
        /* std = sqrt(exp(logvar)), as the published encoder computes it (not exp(logvar / 2)). */
        latent[i] = noise ? (m + sqrtf(expf(lv)) * noise[i]) * scale : m * scale;
    }
    return UNIECG_OK;
}
