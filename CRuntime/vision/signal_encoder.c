/* The ECG signal encoder: a 1-D patch transformer (open_clip's EcgTransformer, GEM's ECG-CoCa
 * tower) and the projector that maps its tokens to the decoder's embedding width.
 *
 *   signal (leads, samples) mV, zero-padded / truncated to the model's sample count
 *   -> Conv1d(leads -> width, kernel = stride = patch, no bias)      (width, patches)
 *   -> tokens = [class_embed ; patches^T] + pos_embed                (tokens, width)
 *   -> ln_pre (optional) -> n_layers x pre-LN block:
 *        x += MHA(LN1(x))    (packed in_proj, biases)
 *        x += down(GELU(up(LN2(x))))
 *   -> hidden: every token of the last layer, before ln_post (what GEM feeds its projector)
 *   -> projector: Linear_0, [GELU], Linear_1, ... per signal.projector.* metadata
 *   -> embeddings (tokens, output_dim)
 *
 * Every shape comes from the file's signal.* metadata (ModelFormat.md, "Signal encoder"). All
 * sequence work goes through the shared ops of diffusion/ops.h (conv1d, layer_norm, linear,
 * GELU, MHA), so q8 weights run on every kernel variant with the thread pool, exactly as in
 * the diffusion networks. The transformer block and the projector are tower.c's, shared with the
 * image encoder; this file holds the lead layout, the patch convolution and the wiring. */
#include "internal.h"
#include "lookup.h"
#include "tower.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_LEADS 64
#define LEAD_NAME_BYTES 32

struct uniecg_signal_encoder {
    uniecg_signal_encoder_info info;
    char lead_names[MAX_LEADS][LEAD_NAME_BYTES];
    float norm_eps;
    uniecg__seq_ctx ctx;
    uniecg_thread_pool *pool;
    bool owns_pool;
    uniecg__weight patch;      /* (width, leads * patch): f32 or q8                         */
    float *patch_f32;          /* owned f32 copy when the file stores f16 / bf16            */
    const float *class_embed;  /* (width)                                                   */
    const float *pos_embed;    /* (tokens, width)                                           */
    const float *ln_pre_w, *ln_pre_b; /* NULL when the model has no ln_pre                  */
    uniecg__tower_block *blocks;
    uniecg__projector proj;
    /* buffers for one forward pass */
    float *input;        /* (leads, samples) padded / truncated copy                         */
    float *patches;      /* (width, patches) conv output, channels-major                     */
    float *x, *h, *a;    /* (tokens, width) residual stream, normed, attention / MLP output */
    float *ffn;          /* (tokens, ffn_dim)                                                */
    float *pa, *pb;      /* (tokens, widest projector dim) ping-pong                         */
};

uniecg_signal_encoder_params uniecg_signal_encoder_default_params(void) {
    return (uniecg_signal_encoder_params){.kernels = UNIECG_KERNELS_AUTO, .pool = NULL, .n_threads = 0};
}

void uniecg_signal_encoder_free(uniecg_signal_encoder *enc) {
    if (!enc) return;
    free(enc->blocks);
    free(enc->patch_f32);
    free(enc->input);
    free(enc->patches);
    free(enc->x);
    free(enc->h);
    free(enc->a);
    free(enc->ffn);
    free(enc->pa);
    free(enc->pb);
    uniecg__seq_ctx_free(&enc->ctx);
    if (enc->owns_pool) uniecg_thread_pool_free(enc->pool);
    free(enc);
}

/* ---- loading ------------------------------------------------------------------------------ */


static uniecg_status load_leads(const uniecg_model_file *file, uniecg_signal_encoder *enc, uniecg_error *error) {
    uniecg_meta_entry e;
    if (uniecg_model_file_meta_find(file, "signal.leads", &e) != UNIECG_OK)
        return uniecg__fail(error, UNIECG_ERR_NOT_FOUND, "model file lacks metadata key 'signal.leads'");
    if (e.type != UNIECG_META_STRING_ARRAY)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "metadata key 'signal.leads' should be of type string[]");
    if (e.count < 1 || e.count > MAX_LEADS)
        return uniecg__fail(error, UNIECG_ERR_LIMIT, "metadata 'signal.leads' names %llu leads (1..%d)",
                            (unsigned long long)e.count, MAX_LEADS);
    int64_t index = uniecg__meta_index(file, "signal.leads");
    for (uint64_t i = 0; i < e.count; i++) {
        const char *name;
        uint64_t length;
        if (index < 0 || uniecg_model_file_meta_string_at(file, (uint32_t)index, i, &name, &length) != UNIECG_OK)
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "cannot read item %llu of 'signal.leads'",
                                (unsigned long long)i);
        if (length < 1 || length >= LEAD_NAME_BYTES)
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "lead name %llu of 'signal.leads' is empty or longer than %d bytes",
                                (unsigned long long)i, LEAD_NAME_BYTES - 1);
        memcpy(enc->lead_names[i], name, (size_t)length);
        enc->lead_names[i][length] = 0;
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(enc->lead_names[j], enc->lead_names[i]) == 0)
                return uniecg__fail(error, UNIECG_ERR_FORMAT, "lead '%s' appears twice in 'signal.leads'", enc->lead_names[i]);
    }
    enc->info.n_leads = (int32_t)e.count;
    return UNIECG_OK;
}

/* The patch convolution's weight: q8 or f32 in place; f16 / bf16 widened once into an owned
 * f32 copy, because the conv1d op takes f32 or q8 (ModelFormat.md lets the converter keep a
 * source's half precision when the 600-column GEM patch matrix cannot be q8). */
static uniecg_status load_patch(const uniecg_model_file *file, uniecg_signal_encoder *enc, uniecg_error *error) {
    int64_t rows = enc->info.width, cols = (int64_t)enc->info.n_leads * enc->info.patch_size;
    uniecg_status s = uniecg__weight_find(file, "signal.patch_embed", rows, cols, &enc->patch, error);
    if (s) return s;
    if (enc->patch.dtype == UNIECG_DTYPE_F16 || enc->patch.dtype == UNIECG_DTYPE_BF16) {
        enc->patch_f32 = uniecg__aligned_alloc((uint64_t)(rows * cols) * sizeof(float));
        if (!enc->patch_f32) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
        if ((s = uniecg_to_f32(enc->patch.data, enc->patch.dtype, (uint64_t)(rows * cols), enc->patch_f32)))
            return uniecg__fail(error, s, "cannot widen 'signal.patch_embed' to f32");
        enc->patch.data = enc->patch_f32;
        enc->patch.dtype = UNIECG_DTYPE_F32;
    }
    return UNIECG_OK;
}

static void *alloc_floats(int64_t count, bool *ok) {
    void *p = uniecg__aligned_alloc((uint64_t)count * sizeof(float));
    if (!p) *ok = false;
    return p;
}

uniecg_status uniecg_signal_encoder_create(const uniecg_model_file *file, uniecg_signal_encoder_params params,
                                           uniecg_signal_encoder **out, uniecg_error *error) {
    if (!file || !out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "signal_encoder_create: NULL argument");
    *out = NULL;
    if (params.n_threads < 0)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "signal_encoder_create: negative thread count");
    const char *arch, *activation;
    uniecg_status s = uniecg__meta_string(file, "signal.architecture", &arch, error);
    if (s) return s;
    if (strcmp(arch, "patch-transformer-1d") != 0)
        return uniecg__fail(error, UNIECG_ERR_VERSION, "unknown signal encoder architecture '%s' (patch-transformer-1d)",
                            arch);
    if ((s = uniecg__meta_string(file, "signal.activation", &activation, error))) return s;
    if (strcmp(activation, "gelu") != 0)
        return uniecg__fail(error, UNIECG_ERR_VERSION, "signal encoder activation '%s' is not supported (gelu)",
                            activation);

    uniecg_signal_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    uniecg_signal_encoder_info *in = &enc->info;
    double eps;
    bool ln_pre;
    static const int32_t limit = 1 << 20;
    if ((s = load_leads(file, enc, error)) ||
        (s = uniecg__meta_f64(file, "signal.sample_rate", &in->sample_rate, error)) ||
        (s = uniecg__meta_int(file, "signal.samples", 1, 1 << 24, &in->samples, error)) ||
        (s = uniecg__meta_int(file, "signal.patch_size", 1, 1 << 16, &in->patch_size, error)) ||
        (s = uniecg__meta_int(file, "signal.width", 1, limit, &in->width, error)) ||
        (s = uniecg__meta_int(file, "signal.n_layers", 0, 1024, &in->n_layers, error)) ||
        (s = uniecg__meta_int(file, "signal.n_heads", 1, 1024, &in->n_heads, error)) ||
        (s = uniecg__meta_int(file, "signal.ffn_dim", 1, limit, &in->ffn_dim, error)) ||
        (s = uniecg__meta_f64(file, "signal.norm_eps", &eps, error)) ||
        (s = uniecg__meta_bool(file, "signal.ln_pre", &ln_pre, error)))
        goto fail;
    if (!(in->sample_rate > 0) || !isfinite(in->sample_rate) || !(eps > 0) || !isfinite(eps) ||
        in->samples % in->patch_size || in->width % in->n_heads) {
        s = uniecg__fail(error, UNIECG_ERR_FORMAT,
                         "inconsistent signal metadata: sample_rate %g, norm_eps %g, %d samples in patches of %d "
                         "(must divide), width %d over %d heads (must divide)",
                         in->sample_rate, eps, in->samples, in->patch_size, in->width, in->n_heads);
        goto fail;
    }
    enc->norm_eps = (float)eps;
    in->tokens = in->samples / in->patch_size + 1;
    if ((s = uniecg__projector_load_shape(file, "signal", in->width, &enc->proj, error))) goto fail;
    in->output_dim = (int32_t)enc->proj.dims[enc->proj.layers];

    if ((s = uniecg_kernel_variant_resolve(params.kernels, &in->kernels, error))) goto fail;
    if (params.pool) {
        enc->pool = params.pool;
    } else {
        if ((s = uniecg_thread_pool_create(params.n_threads, &enc->pool, error))) goto fail;
        enc->owns_pool = true;
    }
    in->n_threads = uniecg_thread_pool_size(enc->pool);
    if ((s = uniecg__seq_ctx_init(&enc->ctx, in->kernels, enc->pool, error))) goto fail;

    int64_t w = in->width, T = in->tokens, ffn = in->ffn_dim;
    int64_t pos_shape[2] = {T, w};
    uniecg_tensor_info pos;
    if ((s = load_patch(file, enc, error)) ||
        (s = uniecg__vector_find(file, "signal.class_embed", w, &enc->class_embed, error)) ||
        (s = uniecg__tensor_find(file, "signal.pos_embed", 2, pos_shape, &pos, error)))
        goto fail;
    if (pos.dtype != UNIECG_DTYPE_F32) {
        s = uniecg__fail(error, UNIECG_ERR_TYPE, "tensor 'signal.pos_embed' should be f32");
        goto fail;
    }
    enc->pos_embed = pos.data;
    if (ln_pre && ((s = uniecg__vector_find(file, "signal.ln_pre", w, &enc->ln_pre_w, error)) ||
                   (s = uniecg__vector_find(file, "signal.ln_pre_bias", w, &enc->ln_pre_b, error))))
        goto fail;
    enc->blocks = calloc((size_t)(in->n_layers ? in->n_layers : 1), sizeof *enc->blocks);
    if (!enc->blocks) { s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory"); goto fail; }
    for (int32_t i = 0; i < in->n_layers; i++) {
        if ((s = uniecg__tower_block_load(file, "signal", i, w, ffn, &enc->blocks[i], error))) goto fail;
    }
    if ((s = uniecg__projector_load_weights(file, "signal", &enc->proj, error))) goto fail;
    int64_t widest = enc->proj.widest;

    int64_t leads = in->n_leads, P = T - 1;
    if ((s = uniecg__seq_check_size(leads, in->samples, "signal input", error)) ||
        (s = uniecg__seq_check_size(T, ffn > widest ? ffn : widest, "signal tokens", error)) ||
        (s = uniecg__seq_check_size(T, 3 * w, "signal tokens", error)))
        goto fail;
    bool ok = true;
    enc->input = alloc_floats(leads * in->samples, &ok);
    enc->patches = alloc_floats(w * P, &ok);
    enc->x = alloc_floats(T * w, &ok);
    enc->h = alloc_floats(T * w, &ok);
    enc->a = alloc_floats(T * w, &ok);
    enc->ffn = alloc_floats(T * ffn, &ok);
    enc->pa = alloc_floats(T * widest, &ok);
    enc->pb = alloc_floats(T * widest, &ok);
    if (!ok) {
        s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "cannot allocate the signal encoder's buffers");
        goto fail;
    }
    *out = enc;
    return UNIECG_OK;
fail:
    uniecg_signal_encoder_free(enc);
    return s;
}

void uniecg_signal_encoder_get_info(const uniecg_signal_encoder *enc, uniecg_signal_encoder_info *out) {
    if (enc && out) *out = enc->info;
}

const char *uniecg_signal_encoder_lead_name(const uniecg_signal_encoder *enc, int32_t lead) {
    if (!enc || lead < 0 || lead >= enc->info.n_leads) return NULL;
    return enc->lead_names[lead];
}

/* ---- forward pass ------------------------------------------------------------------------- */

uniecg_status uniecg_signal_encoder_encode(uniecg_signal_encoder *enc, const float *signal, int64_t samples,
                                           float *out_embeddings, float *out_hidden, uniecg_error *error) {
    if (!enc || !signal || (!out_embeddings && !out_hidden))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "signal_encoder_encode: NULL argument");
    const uniecg_signal_encoder_info *in = &enc->info;
    if (samples < 1 || samples > UNIECG__SEQ_MAX_ELEMENTS / in->n_leads)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "signal_encoder_encode: %lld samples per lead",
                            (long long)samples);
    int64_t S = in->samples, L = in->n_leads, w = in->width, T = in->tokens, P = T - 1;
    /* Non-finite samples would turn every token into NaN after the first attention; refuse
     * them where they can still be named. Samples beyond the model's length are not read. */
    int64_t used = samples < S ? samples : S;
    for (int64_t c = 0; c < L; c++)
        for (int64_t t = 0; t < used; t++)
            if (!isfinite(signal[c * samples + t]))
                return uniecg__fail(error, UNIECG_ERR_RANGE, "signal lead %lld (%s) has a non-finite value at sample %lld",
                                    (long long)c, enc->lead_names[c], (long long)t);
    /* GEM zero-pads or truncates to the model's length (10 s at 500 Hz). */
    for (int64_t c = 0; c < L; c++) {
        memcpy(enc->input + c * S, signal + c * samples, (size_t)used * sizeof(float));
        memset(enc->input + c * S + used, 0, (size_t)(S - used) * sizeof(float));
    }

    uniecg__seq_ctx *ctx = &enc->ctx;
    uniecg_status s;
    uniecg__conv1d_shape conv = {.c_in = L, .c_out = w, .kernel = in->patch_size, .stride = in->patch_size,
                                 .pad_left = 0, .pad_right = 0};
    if ((s = uniecg__seq_conv1d(ctx, &conv, &enc->patch, NULL, enc->input, S, enc->patches, error))) return s;
    /* Token 0 is the class token; token 1 + p is patch p (the conv output transposed). */
    memcpy(enc->x, enc->class_embed, (size_t)w * sizeof(float));
    uniecg__seq_transpose(enc->patches, w, P, enc->x + w);
    for (int64_t i = 0; i < T * w; i++) enc->x[i] += enc->pos_embed[i];
    if (enc->ln_pre_w &&
        (s = uniecg__seq_layer_norm(ctx, enc->x, T, w, enc->norm_eps, enc->ln_pre_w, enc->ln_pre_b, enc->x, error)))
        return s;

    const uniecg__tower_scratch scratch = {.h = enc->h, .a = enc->a, .ffn = enc->ffn};
    for (int32_t l = 0; l < in->n_layers; l++) {
        if ((s = uniecg__tower_block_run(ctx, &enc->blocks[l], in->n_heads, enc->norm_eps, UNIECG__ACT_GELU, T, w, in->ffn_dim,
                                         enc->x, &scratch, error)))
            return s;
    }
    if (out_hidden) memcpy(out_hidden, enc->x, (size_t)(T * w) * sizeof(float));
    if (!out_embeddings) return UNIECG_OK;
    return uniecg__projector_run(ctx, &enc->proj, enc->x, T, enc->pa, enc->pb, out_embeddings, error);
}
