/* The ECG image encoder: a CLIP vision transformer (Hugging Face's CLIPVisionModel, LLaVA's
 * image tower) and the projector that maps its patch tokens to the decoder's embedding width.
 *
 *   image (3, S, S), already resized and normalised by the caller with image.mean / image.std
 *   -> patches (P, 3 p p) gathered in Conv2d weight order                  P = (S / p)^2
 *   -> Linear(3 p p -> width, no bias) = Conv2d(kernel = stride = p)       (P, width)
 *   -> tokens = [class_embed ; patches] + pos_embed                        (T = P + 1, width)
 *   -> ln_pre -> select_layer x pre-LN block:
 *        x += MHA(LN1(x))    (q, k, v packed by the converter, biases)
 *        x += fc2(act(fc1(LN2(x))))        act = quick-GELU (OpenAI CLIP) or GELU
 *   -> features: hidden_states[select_layer], without (patch) or with (cls_patch) the class token
 *   -> projector: Linear_0, [GELU], Linear_1, ... per image.projector.* metadata
 *   -> embeddings (tokens, output_dim)
 *
 * Every shape comes from the file's image.* metadata (ModelFormat.md, "Image encoder"). Like
 * the signal encoder, all sequence work goes through the shared ops of diffusion/ops.h, so q8
 * weights run on every kernel variant with the thread pool; the block and the projector are
 * tower.c's (shared with the signal encoder), this file holds the patches and the wiring. */
#include "internal.h"
#include "lookup.h"
#include "tower.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define CHANNELS 3

struct uniecg_image_encoder {
    uniecg_image_encoder_info info;
    float norm_eps;
    uniecg__activation act;    /* the MLP's: QUICK_GELU or GELU                               */
    uniecg__seq_ctx ctx;
    uniecg_thread_pool *pool;
    bool owns_pool;
    uniecg__weight patch;      /* (width, 3 * patch * patch): f32 or q8                        */
    float *patch_f32;          /* owned f32 copy when the file stores f16 / bf16               */
    const float *class_embed;  /* (width)                                                      */
    const float *pos_embed;    /* (patches + 1, width)                                         */
    const float *ln_pre_w, *ln_pre_b; /* (width)                                               */
    uniecg__tower_block *blocks;     /* select_layer of them                                         */
    uniecg__projector proj;
    /* buffers for one forward pass */
    float *cols;         /* (patches, 3 * patch * patch) the image gathered patch by patch    */
    float *x, *h, *a;    /* (patches + 1, width) residual stream, normed, attention / MLP out */
    float *ffn;          /* (patches + 1, ffn_dim)                                             */
    float *pa, *pb;      /* (tokens, widest projector dim) ping-pong                           */
};

uniecg_image_encoder_params uniecg_image_encoder_default_params(void) {
    return (uniecg_image_encoder_params){.kernels = UNIECG_KERNELS_AUTO, .pool = NULL, .n_threads = 0};
}

void uniecg_image_encoder_free(uniecg_image_encoder *enc) {
    if (!enc) return;
    free(enc->blocks);
    free(enc->patch_f32);
    free(enc->cols);
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


/* image.mean / image.std: three finite f64 values (std also > 0). The encoder only reports
 * them; they are here so a caller can prepare an image from the file alone. */
static uniecg_status load_channel_stats(const uniecg_model_file *file, const char *key, bool positive, double *out,
                                        uniecg_error *error) {
    uniecg_meta_entry e;
    if (uniecg_model_file_meta_find(file, key, &e) != UNIECG_OK)
        return uniecg__fail(error, UNIECG_ERR_NOT_FOUND, "model file lacks metadata key '%s'", key);
    if (e.type != UNIECG_META_F64_ARRAY)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "metadata key '%s' should be of type f64[]", key);
    if (e.count != CHANNELS)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "metadata '%s' holds %llu values, one per channel (3) expected",
                            key, (unsigned long long)e.count);
    const double *v = e.array;
    for (int c = 0; c < CHANNELS; c++) {
        if (!isfinite(v[c]) || (positive && !(v[c] > 0)))
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "metadata '%s'[%d] = %g is not %s", key, c, v[c],
                                positive ? "a finite positive number" : "finite");
        out[c] = v[c];
    }
    return UNIECG_OK;
}

/* A string key that must be one of `count` names; its index in *out. */
static uniecg_status load_choice(const uniecg_model_file *file, const char *key, const char *const *names, int count,
                                 int *out, uniecg_error *error) {
    const char *value;
    uniecg_status s = uniecg__meta_string(file, key, &value, error);
    if (s) return s;
    for (int i = 0; i < count; i++)
        if (strcmp(value, names[i]) == 0) return *out = i, UNIECG_OK;
    return uniecg__fail(error, UNIECG_ERR_VERSION, "metadata '%s' = '%s' is not supported (%s, %s)", key, value,
                        names[0], count > 1 ? names[1] : "");
}

/* The patch convolution's weight: q8 or f32 in place; f16 / bf16 widened once into an owned
 * f32 copy, because ViT-L/14's 588-column patch matrix cannot be q8 and the converter keeps
 * the source's half precision for it. */
static uniecg_status load_patch(const uniecg_model_file *file, uniecg_image_encoder *enc, uniecg_error *error) {
    int64_t rows = enc->info.width, cols = (int64_t)CHANNELS * enc->info.patch_size * enc->info.patch_size;
    uniecg_status s = uniecg__weight_find(file, "image.patch_embed", rows, cols, &enc->patch, error);
    if (s) return s;
    if (enc->patch.dtype == UNIECG_DTYPE_F16 || enc->patch.dtype == UNIECG_DTYPE_BF16) {
        enc->patch_f32 = uniecg__aligned_alloc((uint64_t)(rows * cols) * sizeof(float));
        if (!enc->patch_f32) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
        if ((s = uniecg_to_f32(enc->patch.data, enc->patch.dtype, (uint64_t)(rows * cols), enc->patch_f32)))
            return uniecg__fail(error, s, "cannot widen 'image.patch_embed' to f32");
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

static const char *const activation_names[] = {"quick_gelu", "gelu"};
static const char *const feature_names[] = {"patch", "cls_patch"};

uniecg_status uniecg_image_encoder_create(const uniecg_model_file *file, uniecg_image_encoder_params params,
                                          uniecg_image_encoder **out, uniecg_error *error) {
    if (!file || !out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "image_encoder_create: NULL argument");
    *out = NULL;
    if (params.n_threads < 0)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "image_encoder_create: negative thread count");
    const char *arch;
    uniecg_status s = uniecg__meta_string(file, "image.architecture", &arch, error);
    if (s) return s;
    if (strcmp(arch, "clip-vit") != 0)
        return uniecg__fail(error, UNIECG_ERR_VERSION, "unknown image encoder architecture '%s' (clip-vit)", arch);

    uniecg_image_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    uniecg_image_encoder_info *in = &enc->info;
    double eps;
    int activation = 0, feature = 0;
    static const int32_t limit = 1 << 20;
    if ((s = uniecg__meta_int(file, "image.image_size", 1, 1 << 14, &in->image_size, error)) ||
        (s = uniecg__meta_int(file, "image.patch_size", 1, 1 << 10, &in->patch_size, error)) ||
        (s = load_channel_stats(file, "image.mean", false, in->mean, error)) ||
        (s = load_channel_stats(file, "image.std", true, in->std, error)) ||
        (s = uniecg__meta_int(file, "image.width", 1, limit, &in->width, error)) ||
        (s = uniecg__meta_int(file, "image.n_layers", 0, 1024, &in->n_layers, error)) ||
        (s = uniecg__meta_int(file, "image.select_layer", 0, 1024, &in->select_layer, error)) ||
        (s = uniecg__meta_int(file, "image.n_heads", 1, 1024, &in->n_heads, error)) ||
        (s = uniecg__meta_int(file, "image.ffn_dim", 1, limit, &in->ffn_dim, error)) ||
        (s = uniecg__meta_f64(file, "image.norm_eps", &eps, error)) ||
        (s = load_choice(file, "image.activation", activation_names, 2, &activation, error)) ||
        (s = load_choice(file, "image.feature_select", feature_names, 2, &feature, error)))
        goto fail;
    if (!(eps > 0) || !isfinite(eps) || in->image_size % in->patch_size || in->width % in->n_heads ||
        in->select_layer > in->n_layers) {
        s = uniecg__fail(error, UNIECG_ERR_FORMAT,
                         "inconsistent image metadata: norm_eps %g, image_size %d in patches of %d (must divide), "
                         "width %d over %d heads (must divide), select_layer %d of %d layers",
                         eps, in->image_size, in->patch_size, in->width, in->n_heads, in->select_layer, in->n_layers);
        goto fail;
    }
    int64_t side = in->image_size / in->patch_size;
    if (side * side > limit) {
        s = uniecg__fail(error, UNIECG_ERR_LIMIT, "image of %d pixels in patches of %d makes %lld patches (at most %d)",
                         in->image_size, in->patch_size, (long long)(side * side), limit);
        goto fail;
    }
    enc->norm_eps = (float)eps;
    enc->act = activation == 0 ? UNIECG__ACT_QUICK_GELU : UNIECG__ACT_GELU;
    in->class_token = feature == 1;
    in->patches = (int32_t)(side * side);
    in->tokens = in->patches + (in->class_token ? 1 : 0);
    if ((s = uniecg__projector_load_shape(file, "image", in->width, &enc->proj, error))) goto fail;
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

    int64_t w = in->width, P = in->patches, T = P + 1, ffn = in->ffn_dim;
    int64_t kernel = (int64_t)CHANNELS * in->patch_size * in->patch_size;
    int64_t pos_shape[2] = {T, w};
    uniecg_tensor_info pos;
    if ((s = load_patch(file, enc, error)) ||
        (s = uniecg__vector_find(file, "image.class_embed", w, &enc->class_embed, error)) ||
        (s = uniecg__tensor_find(file, "image.pos_embed", 2, pos_shape, &pos, error)) ||
        (s = uniecg__vector_find(file, "image.ln_pre", w, &enc->ln_pre_w, error)) ||
        (s = uniecg__vector_find(file, "image.ln_pre_bias", w, &enc->ln_pre_b, error)))
        goto fail;
    if (pos.dtype != UNIECG_DTYPE_F32) {
        s = uniecg__fail(error, UNIECG_ERR_TYPE, "tensor 'image.pos_embed' should be f32");
        goto fail;
    }
    enc->pos_embed = pos.data;
    enc->blocks = calloc((size_t)(in->select_layer ? in->select_layer : 1), sizeof *enc->blocks);
    if (!enc->blocks) { s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory"); goto fail; }
    for (int32_t i = 0; i < in->select_layer; i++) {
        if ((s = uniecg__tower_block_load(file, "image", i, w, ffn, &enc->blocks[i], error))) goto fail;
    }
    if ((s = uniecg__projector_load_weights(file, "image", &enc->proj, error))) goto fail;
    int64_t widest = enc->proj.widest;

    if ((s = uniecg__seq_check_size(P, kernel, "image patches", error)) ||
        (s = uniecg__seq_check_size(T, ffn > widest ? ffn : widest, "image tokens", error)) ||
        (s = uniecg__seq_check_size(T, 3 * w, "image tokens", error)))
        goto fail;
    bool ok = true;
    enc->cols = alloc_floats(P * kernel, &ok);
    enc->x = alloc_floats(T * w, &ok);
    enc->h = alloc_floats(T * w, &ok);
    enc->a = alloc_floats(T * w, &ok);
    enc->ffn = alloc_floats(T * ffn, &ok);
    enc->pa = alloc_floats(T * widest, &ok);
    enc->pb = alloc_floats(T * widest, &ok);
    if (!ok) {
        s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "cannot allocate the image encoder's buffers");
        goto fail;
    }
    *out = enc;
    return UNIECG_OK;
fail:
    uniecg_image_encoder_free(enc);
    return s;
}

void uniecg_image_encoder_get_info(const uniecg_image_encoder *enc, uniecg_image_encoder_info *out) {
    if (enc && out) *out = enc->info;
}

/* ---- forward pass ------------------------------------------------------------------------- */

/* Row p of `cols` is patch p's receptive field in Conv2d weight order (c, ky, kx), so that a
 * Linear layer with the (width, 3 p p) weight computes the stride-p convolution. */
static void gather_patches(const float *image, int64_t size, int64_t patch, float *cols) {
    int64_t side = size / patch, k = CHANNELS * patch * patch;
    for (int64_t gy = 0; gy < side; gy++)
        for (int64_t gx = 0; gx < side; gx++) {
            float *row = cols + (gy * side + gx) * k;
            for (int64_t c = 0; c < CHANNELS; c++)
                for (int64_t ky = 0; ky < patch; ky++)
                    memcpy(row + (c * patch + ky) * patch, image + (c * size + gy * patch + ky) * size + gx * patch,
                           (size_t)patch * sizeof(float));
        }
}

uniecg_status uniecg_image_encoder_forward(uniecg_image_encoder *enc, const float *image, float *out_embeddings,
                                           float *out_hidden, uniecg_error *error) {
    if (!enc || !image || (!out_embeddings && !out_hidden))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "image_encoder_forward: NULL argument");
    const uniecg_image_encoder_info *in = &enc->info;
    int64_t S = in->image_size, w = in->width, P = in->patches, T = P + 1;
    /* A non-finite pixel would spread to every token through attention; refuse it where it
     * can still be named. */
    for (int64_t i = 0; i < CHANNELS * S * S; i++)
        if (!isfinite(image[i]))
            return uniecg__fail(error, UNIECG_ERR_RANGE, "image channel %lld has a non-finite value at row %lld, column %lld",
                                (long long)(i / (S * S)), (long long)(i / S % S), (long long)(i % S));

    uniecg__seq_ctx *ctx = &enc->ctx;
    uniecg_status s;
    gather_patches(image, S, in->patch_size, enc->cols);
    /* Token 0 is the class token; token 1 + p is patch p. */
    memcpy(enc->x, enc->class_embed, (size_t)w * sizeof(float));
    if ((s = uniecg__seq_linear(ctx, &enc->patch, NULL, enc->cols, P, enc->x + w, error))) return s;
    for (int64_t i = 0; i < T * w; i++) enc->x[i] += enc->pos_embed[i];
    if ((s = uniecg__seq_layer_norm(ctx, enc->x, T, w, enc->norm_eps, enc->ln_pre_w, enc->ln_pre_b, enc->x, error)))
        return s;

    const uniecg__tower_scratch scratch = {.h = enc->h, .a = enc->a, .ffn = enc->ffn};
    for (int32_t l = 0; l < in->select_layer; l++) {
        if ((s = uniecg__tower_block_run(ctx, &enc->blocks[l], in->n_heads, enc->norm_eps, enc->act, T, w, in->ffn_dim,
                                         enc->x, &scratch, error)))
            return s;
    }
    /* LLaVA's "patch" features drop the class token. */
    const float *features = in->class_token ? enc->x : enc->x + w;
    int64_t N = in->tokens;
    if (out_hidden) memcpy(out_hidden, features, (size_t)(N * w) * sizeof(float));
    if (!out_embeddings) return UNIECG_OK;
    return uniecg__projector_run(ctx, &enc->proj, features, N, enc->pa, enc->pb, out_embeddings, error);
}
