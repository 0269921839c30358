/* The ECG image encoder (CRuntime/vision/image_encoder.c) against transformers: fixtures written
 * by Tools/reference/make_image_encoder_fixtures.py (transformers' CLIPVisionModel with random
 * weights in two configurations: quick-GELU, second-to-last layer, patch tokens; GELU, last
 * layer, class token kept; plus a projector).
 *
 * The fixtures hold the weights in the converter's input layout (image_encoder.safetensors +
 * image_config.json, CLIPVisionModel names after a tower prefix). This test builds the .uecg
 * itself with the C writer, mapping the names as ModelFormat.md's image encoder section says
 * (q, k and v stacked into attn_qkv), so the C core is checked without Swift; the Swift tests
 * run the real converter on the same fixtures. Per configuration:
 *   - f32: every tensor f32 -> hidden tokens and embeddings within 1e-4 of transformers,
 *     relative to the largest magnitude (max |c - ref| / max |ref|);
 *   - q8: every matrix whose rows are a multiple of 32 values quantized with
 *     uniecg_quantize_q8 (tiny_quick's 192-column patch matrix is q8, small_gelu's 108
 *     columns stay f32) -> Pearson correlation >= 0.999 with transformers;
 *   - f16 patch matrix (how the converter keeps ViT-L/14's 588-column one from a half-precision
 *     checkpoint; the encoder widens it at load): correlation >= 0.99999, relative error <= 1e-3.
 * Each runs with every kernel variant this CPU supports, on one thread and on a pool of 3; the
 * f32 results of both must agree bit for bit.
 * Then the refusals: missing keys, wrong tensor shapes, inconsistent or out-of-range metadata,
 * and a NaN or infinite pixel (channel, row and column named).
 *
 * Fixtures: $UNIECG_FIXTURES/image_encoder when set, else found from the working directory or
 * from this file's path. */
#include "testing.h"

#include "safetensors_fixture.h"

#include <math.h>
#include <stdint.h>

#define F32_BAR 1e-4
#define Q8_CORRELATION_BAR 0.999

static char fixtures[1024];

static bool find_fixtures(void) {
    return test_find_fixtures("image_encoder", "manifest.txt", fixtures, sizeof fixtures);
}

static unsigned char *read_file(const char *name, size_t *length) {
    char path[1400];
    snprintf(path, sizeof path, "%.1000s/%.390s", fixtures, name);
    return test_read_path(path, length);
}

static float *read_floats(const char *name, int64_t count) {
    char path[1400];
    snprintf(path, sizeof path, "%.1000s/%.390s", fixtures, name);
    return test_read_floats(path, count);
}

/* ---- the converter's input layout ---- */

typedef struct {
    test_safetensors st;
    uniecg__json_doc *config;
    char dir[64];
    /* from image_config.json */
    int64_t size, patch, width, layers, heads, ffn, select, n_proj, dims[9];
    bool cls;
    double eps, mean[3], std[3];
    char act[16], prefix[96];
    char acts[8][8];
    char sources[8][64];
} source;

static double num(const uniecg_json *v, const char *key) {
    double d = NAN;
    if (!uniecg__json_number(uniecg__json_get(v, key), &d)) printf("note: config lacks number '%s'\n", key);
    return d;
}

static bool load_source(const char *dir, source *src) {
    memset(src, 0, sizeof *src);
    snprintf(src->dir, sizeof src->dir, "%.60s", dir);
    char name[200], message[200];
    size_t length = 0;
    snprintf(name, sizeof name, "%s/image_config.json", dir);
    unsigned char *text = read_file(name, &length);
    if (!text) return false;
    src->config = uniecg__json_parse((const char *)text, length, message, sizeof message);
    free(text);
    if (!src->config) return printf("note: %s: %s\n", name, message), false;
    const uniecg_json *root = uniecg__json_root(src->config), *cfg = uniecg__json_get(root, "vision_config");
    src->size = (int64_t)num(cfg, "image_size");
    src->patch = (int64_t)num(cfg, "patch_size");
    src->width = (int64_t)num(cfg, "hidden_size");
    src->layers = (int64_t)num(cfg, "num_hidden_layers");
    src->heads = (int64_t)num(cfg, "num_attention_heads");
    src->ffn = (int64_t)num(cfg, "intermediate_size");
    src->eps = num(cfg, "layer_norm_eps");
    snprintf(src->act, sizeof src->act, "%s", uniecg__json_string(uniecg__json_get(cfg, "hidden_act"), NULL));
    for (size_t c = 0; c < 3; c++) {
        uniecg__json_number(uniecg__json_at(uniecg__json_get(root, "image_mean"), c), &src->mean[c]);
        uniecg__json_number(uniecg__json_at(uniecg__json_get(root, "image_std"), c), &src->std[c]);
    }
    /* hidden_states indexing as Python does it: -2 is the second-to-last entry. */
    int64_t select = (int64_t)num(root, "mm_vision_select_layer");
    src->select = select < 0 ? src->layers + 1 + select : select;
    src->cls = !strcmp(uniecg__json_string(uniecg__json_get(root, "mm_vision_select_feature"), NULL), "cls_patch");
    snprintf(src->prefix, sizeof src->prefix, "%s", uniecg__json_string(uniecg__json_get(root, "tower_prefix"), NULL));
    const uniecg_json *proj = uniecg__json_get(root, "projector"), *dims = uniecg__json_get(proj, "dims");
    const uniecg_json *sources = uniecg__json_get(proj, "sources");
    src->n_proj = (int64_t)uniecg__json_count(dims) - 1;
    for (int64_t j = 0; j <= src->n_proj && j < 9; j++) {
        double d = 0;
        uniecg__json_number(uniecg__json_at(dims, (size_t)j), &d);
        src->dims[j] = (int64_t)d;
    }
    int64_t sequential = 0; /* nn.Sequential numbering when the config names no sources */
    for (int64_t j = 0; j < src->n_proj && j < 8; j++) {
        if (j + 1 < src->n_proj)
            snprintf(src->acts[j], 8, "%s",
                     uniecg__json_string(uniecg__json_at(uniecg__json_get(proj, "activations"), (size_t)j), NULL));
        const char *named = uniecg__json_string(uniecg__json_at(sources, (size_t)j), NULL);
        if (named) snprintf(src->sources[j], 64, "%s", named);
        else snprintf(src->sources[j], 64, "projector.%lld", (long long)sequential);
        sequential += !strcmp(src->acts[j], "gelu") ? 2 : 1;
    }
    char path[1400];
    snprintf(path, sizeof path, "%.1000s/%.100s/image_encoder.safetensors", fixtures, dir);
    return test_safetensors_open(path, &src->st);
}

static void free_source(source *src) {
    test_safetensors_close(&src->st);
    uniecg__json_free(src->config);
}

/* ---- building the .uecg with the C writer ---- */

typedef struct {
    bool q8;
    bool patch_f16;            /* image.patch_embed stored f16 (widened at load)        */
    const char *omit_key;      /* metadata key left out (NULL: none)                    */
    const char *bad_tensor;    /* target tensor written with one row too few           */
    const char *activation;    /* image.activation other than the source's (NULL: same) */
    int64_t select_layer;      /* image.select_layer override (0: the source's)         */
    int64_t image_size;        /* image.image_size override (0: the source's)           */
    int mean_count;            /* values written for image.mean (0: 3)                  */
} build_options;

/* The f32 values of source tensor `from` (tower names get the prefix); exactly `count` of them. */
static float *source_values(const source *src, const char *from, bool tower, int64_t count) {
    char name[256];
    snprintf(name, sizeof name, "%s%s", tower ? src->prefix : "", from);
    int64_t n = 0;
    float *data = test_safetensors_f32(&src->st, name, &n);
    CHECK_MSG(data != NULL, "%s: no F32 tensor '%s'", src->dir, name);
    if (data && n != count) {
        CHECK_MSG(false, "%s: '%s' has %lld values, expected %lld", src->dir, name, (long long)n, (long long)count);
        free(data);
        return NULL;
    }
    return data;
}

/* Writes `data` as target `name`: (rows, cols) as a matrix (q8 when asked, the rows allow it
 * and it is a weight: positions stay f32), or a vector when cols == 0. Frees `data`. */
static bool put(uniecg_model_writer *w, const build_options *o, const char *name, float *data, int64_t rows,
                int64_t cols, bool weight) {
    if (!data) return false;
    if (o->bad_tensor && !strcmp(o->bad_tensor, name) && rows > 1) rows--; /* a shape the metadata contradicts */
    uint64_t shape[2] = {(uint64_t)rows, (uint64_t)cols};
    uint32_t rank = cols ? 2 : 1;
    uint64_t count = (uint64_t)(cols ? rows * cols : rows);
    uniecg_status s;
    if (o->patch_f16 && !strcmp(name, "image.patch_embed")) {
        uint16_t *half = malloc(count * sizeof(uint16_t));
        for (uint64_t i = 0; i < count; i++) half[i] = uniecg_f32_to_f16(data[i]);
        s = uniecg_model_writer_add_tensor(w, name, UNIECG_DTYPE_F16, rank, shape, half, count * 2, UNIECG_ENCODING_RAW,
                                           NULL);
        free(half);
    } else if (cols && weight && o->q8 && cols % 32 == 0) {
        uint64_t bytes = 0;
        uniecg_dtype_payload_size(UNIECG_DTYPE_Q8, count, &bytes);
        void *q = malloc(bytes);
        uniecg_error err = {0};
        CHECK_STATUS(uniecg_quantize_q8(data, UNIECG_DTYPE_F32, (uint64_t)rows, (uint64_t)cols, q, &err), UNIECG_OK, &err);
        s = uniecg_model_writer_add_tensor(w, name, UNIECG_DTYPE_Q8, rank, shape, q, bytes, UNIECG_ENCODING_RAW, NULL);
        free(q);
    } else {
        s = uniecg_model_writer_add_tensor(w, name, UNIECG_DTYPE_F32, rank, shape, data, count * 4, UNIECG_ENCODING_RAW,
                                           NULL);
    }
    CHECK_MSG(s == UNIECG_OK, "add %s: %s", name, uniecg_model_writer_last_error(w));
    free(data);
    return s == UNIECG_OK;
}

/* HF's separate q, k, v projections of layer i stacked into one (3 rows, cols) block. */
static float *stacked_qkv(const source *src, int64_t layer, const char *what, int64_t rows, int64_t cols) {
    int64_t part = rows * (cols ? cols : 1);
    float *all = malloc((size_t)(3 * part) * sizeof(float));
    const char *names[3] = {"q_proj", "k_proj", "v_proj"};
    for (int p = 0; p < 3; p++) {
        char from[128];
        snprintf(from, sizeof from, "encoder.layers.%lld.self_attn.%s.%s", (long long)layer, names[p], what);
        float *one = source_values(src, from, true, part);
        if (!one) return free(all), NULL;
        memcpy(all + p * part, one, (size_t)part * sizeof(float));
        free(one);
    }
    return all;
}

static bool keep(const build_options *o, const char *key) { return !o->omit_key || strcmp(o->omit_key, key); }

static bool build_file(const source *src, const build_options *o, const char *path) {
    uniecg_model_writer *w = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_writer_create(path, uniecg_writer_default_params(), &w, &err), UNIECG_OK, &err);
    if (!w) return false;
    uniecg_model_writer_set_string(w, "general.architecture", "image-encoder", 13);
    uniecg_model_writer_set_string(w, "general.intended_use", "Educational aid only.", 21);
    const char *act_ptrs[8];
    uint64_t act_lengths[8];
    for (int64_t j = 0; j + 1 < src->n_proj; j++) {
        act_ptrs[j] = src->acts[j];
        act_lengths[j] = strlen(src->acts[j]);
    }
    const char *act = o->activation ? o->activation : src->act;
    const char *feature = src->cls ? "cls_patch" : "patch";
    if (keep(o, "image.architecture")) uniecg_model_writer_set_string(w, "image.architecture", "clip-vit", 8);
    if (keep(o, "image.image_size")) uniecg_model_writer_set_i64(w, "image.image_size", o->image_size ? o->image_size : src->size);
    if (keep(o, "image.patch_size")) uniecg_model_writer_set_i64(w, "image.patch_size", src->patch);
    if (keep(o, "image.mean"))
        uniecg_model_writer_set_array(w, "image.mean", UNIECG_META_F64_ARRAY, src->mean, o->mean_count ? (uint64_t)o->mean_count : 3);
    if (keep(o, "image.std")) uniecg_model_writer_set_array(w, "image.std", UNIECG_META_F64_ARRAY, src->std, 3);
    if (keep(o, "image.width")) uniecg_model_writer_set_i64(w, "image.width", src->width);
    if (keep(o, "image.n_layers")) uniecg_model_writer_set_i64(w, "image.n_layers", src->layers);
    if (keep(o, "image.select_layer"))
        uniecg_model_writer_set_i64(w, "image.select_layer", o->select_layer ? o->select_layer : src->select);
    if (keep(o, "image.n_heads")) uniecg_model_writer_set_i64(w, "image.n_heads", src->heads);
    if (keep(o, "image.ffn_dim")) uniecg_model_writer_set_i64(w, "image.ffn_dim", src->ffn);
    if (keep(o, "image.norm_eps")) uniecg_model_writer_set_f64(w, "image.norm_eps", src->eps);
    if (keep(o, "image.activation")) uniecg_model_writer_set_string(w, "image.activation", act, strlen(act));
    if (keep(o, "image.feature_select")) uniecg_model_writer_set_string(w, "image.feature_select", feature, strlen(feature));
    if (keep(o, "image.projector.dims"))
        uniecg_model_writer_set_array(w, "image.projector.dims", UNIECG_META_I64_ARRAY, src->dims, (uint64_t)src->n_proj + 1);
    if (keep(o, "image.projector.activations"))
        uniecg_model_writer_set_string_array(w, "image.projector.activations", act_ptrs, act_lengths,
                                             (uint64_t)src->n_proj - 1);
    int64_t W = src->width, T = (src->size / src->patch) * (src->size / src->patch) + 1, F = src->ffn;
    int64_t K = 3 * src->patch * src->patch;
    bool ok = put(w, o, "image.patch_embed", source_values(src, "embeddings.patch_embedding.weight", true, W * K), W, K, true) &&
              put(w, o, "image.class_embed", source_values(src, "embeddings.class_embedding", true, W), W, 0, false) &&
              put(w, o, "image.pos_embed", source_values(src, "embeddings.position_embedding.weight", true, T * W), T, W,
                  false) &&
              put(w, o, "image.ln_pre", source_values(src, "pre_layrnorm.weight", true, W), W, 0, false) &&
              put(w, o, "image.ln_pre_bias", source_values(src, "pre_layrnorm.bias", true, W), W, 0, false);
    /* Only the blocks that run are written, as the converter does. */
    for (int64_t i = 0; ok && i < src->select; i++) {
        char from[128], to[128];
        static const struct { const char *from, *to; int rows, cols; } map[] = {
            /* rows / cols: 1 = width, 4 = ffn, 0 = vector */
            {"layer_norm1.weight", "attn_norm", 1, 0},     {"layer_norm1.bias", "attn_norm_bias", 1, 0},
            {"self_attn.out_proj.weight", "attn_out", 1, 1}, {"self_attn.out_proj.bias", "attn_out_bias", 1, 0},
            {"layer_norm2.weight", "ffn_norm", 1, 0},     {"layer_norm2.bias", "ffn_norm_bias", 1, 0},
            {"mlp.fc1.weight", "ffn_up", 4, 1},           {"mlp.fc1.bias", "ffn_up_bias", 4, 0},
            {"mlp.fc2.weight", "ffn_down", 1, 4},         {"mlp.fc2.bias", "ffn_down_bias", 1, 0},
        };
        snprintf(to, sizeof to, "image.layers.%lld.attn_qkv", (long long)i);
        ok = put(w, o, to, stacked_qkv(src, i, "weight", W, W), 3 * W, W, true);
        snprintf(to, sizeof to, "image.layers.%lld.attn_qkv_bias", (long long)i);
        ok = ok && put(w, o, to, stacked_qkv(src, i, "bias", W, 0), 3 * W, 0, false);
        for (size_t m = 0; ok && m < sizeof map / sizeof map[0]; m++) {
            int64_t size[5] = {0, W, 0, 0, F};
            int64_t rows = size[map[m].rows], cols = size[map[m].cols];
            snprintf(from, sizeof from, "encoder.layers.%lld.%s", (long long)i, map[m].from);
            snprintf(to, sizeof to, "image.layers.%lld.%s", (long long)i, map[m].to);
            ok = put(w, o, to, source_values(src, from, true, cols ? rows * cols : rows), rows, cols, true);
        }
    }
    for (int64_t j = 0; ok && j < src->n_proj; j++) {
        char from[128], to[128];
        int64_t rows = src->dims[j + 1], cols = src->dims[j];
        snprintf(from, sizeof from, "%s.weight", src->sources[j]);
        snprintf(to, sizeof to, "image.projector.%lld", (long long)j);
        ok = put(w, o, to, source_values(src, from, false, rows * cols), rows, cols, true);
        snprintf(from, sizeof from, "%s.bias", src->sources[j]);
        snprintf(to, sizeof to, "image.projector.%lld_bias", (long long)j);
        ok = ok && put(w, o, to, source_values(src, from, false, rows), rows, 0, false);
    }
    uniecg_status s = ok ? uniecg_model_writer_finish(w) : UNIECG_ERR_STATE;
    CHECK_MSG(s == UNIECG_OK, "finish %s: %s", path, uniecg_model_writer_last_error(w));
    uniecg_model_writer_free(w);
    return s == UNIECG_OK;
}

/* ---- statistics ---- */

/* ---- the cases ---- */

static const uniecg_kernel_variant all_variants[] = {UNIECG_KERNELS_PORTABLE, UNIECG_KERNELS_AVX2, UNIECG_KERNELS_NEON,
                                                     UNIECG_KERNELS_NEON_DOTPROD};

static void run_case(const char *line, uniecg_thread_pool *pool) {
    char name[64] = "", config[64] = "", input[96] = "", hidden_name[96] = "", emb_name[96] = "";
    if (sscanf(line, "%63s config=%63s input=%95s hidden=%95s embeddings=%95s", name, config, input, hidden_name,
               emb_name) != 5) {
        CHECK_MSG(false, "malformed manifest line: %s", line);
        return;
    }
    source src;
    bool loaded = load_source(config, &src);
    CHECK_MSG(loaded, "%s: cannot load the weights of %s", name, config);
    if (!loaded) {
        free_source(&src);
        return;
    }
    int64_t P = (src.size / src.patch) * (src.size / src.patch), N = P + (src.cls ? 1 : 0);
    int64_t W = src.width, out_dim = src.dims[src.n_proj];
    float *x = read_floats(input, 3 * src.size * src.size);
    float *want_hidden = read_floats(hidden_name, N * W);
    float *want_emb = read_floats(emb_name, N * out_dim);
    CHECK_MSG(x && want_hidden && want_emb, "%s: missing fixture files", name);
    float *hidden = malloc((size_t)(N * W) * 4), *emb = malloc((size_t)(N * out_dim) * 4);
    float *first_hidden = malloc((size_t)(N * W) * 4), *first_emb = malloc((size_t)(N * out_dim) * 4);
    /* mode 0: f32, 1: q8, 2: f32 with an f16 patch matrix */
    for (int mode = 0; mode < 3 && x && want_hidden && want_emb; mode++) {
        char path[512];
        test_path(path, sizeof path, mode == 1 ? "q8.uecg" : mode == 2 ? "f16patch.uecg" : "f32.uecg");
        build_options o = {.q8 = mode == 1, .patch_f16 = mode == 2};
        if (!build_file(&src, &o, path)) continue;
        uniecg_model_file *file = NULL;
        uniecg_error err = {0};
        CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
        if (!file) continue;
        for (size_t v = 0; v < sizeof all_variants / sizeof all_variants[0]; v++) {
            if (!uniecg_kernel_variant_supported(all_variants[v])) continue;
            for (int threaded = 0; threaded < 2; threaded++) {
                uniecg_image_encoder_params p = uniecg_image_encoder_default_params();
                p.kernels = all_variants[v];
                p.n_threads = 1;
                p.pool = threaded ? pool : NULL;
                uniecg_image_encoder *enc = NULL;
                CHECK_STATUS(uniecg_image_encoder_create(file, p, &enc, &err), UNIECG_OK, &err);
                if (!enc) continue;
                uniecg_image_encoder_info info;
                uniecg_image_encoder_get_info(enc, &info);
                CHECK(info.tokens == N && info.patches == P && info.width == W && info.output_dim == out_dim &&
                      info.image_size == src.size && info.patch_size == src.patch && info.class_token == src.cls &&
                      info.select_layer == src.select && info.n_layers == src.layers);
                CHECK(info.mean[1] == src.mean[1] && info.std[2] == src.std[2]);
                CHECK_STATUS(uniecg_image_encoder_forward(enc, x, emb, hidden, &err), UNIECG_OK, &err);
                const char *vn = uniecg_kernel_variant_name(all_variants[v]);
                if (mode == 2) {
                    double ce = test_correlation(emb, want_emb, N * out_dim), ee = test_max_relative(emb, want_emb, N * out_dim);
                    CHECK_MSG(ce >= 0.99999 && ee <= 1e-3, "%s f16 patch %s: correlation %.7f, relative error %.3g", name,
                              vn, ce, ee);
                    if (!threaded)
                        printf("  %-14s f16 patch %-7s correlation: embeddings %.7f (max rel error %.2e)\n", name, vn, ce, ee);
                } else if (mode == 0) {
                    double eh = test_max_relative(hidden, want_hidden, N * W), ee = test_max_relative(emb, want_emb, N * out_dim);
                    CHECK_MSG(eh <= F32_BAR && ee <= F32_BAR, "%s f32 %s: relative error hidden %.3g, embeddings %.3g",
                              name, vn, eh, ee);
                    if (!threaded) {
                        printf("  %-14s f32 %-13s max rel error: hidden %.2e, embeddings %.2e\n", name, vn, eh, ee);
                        memcpy(first_hidden, hidden, (size_t)(N * W) * 4);
                        memcpy(first_emb, emb, (size_t)(N * out_dim) * 4);
                    } else {
                        CHECK_MSG(!memcmp(first_hidden, hidden, (size_t)(N * W) * 4) &&
                                      !memcmp(first_emb, emb, (size_t)(N * out_dim) * 4),
                                  "%s f32 %s: 3 threads differ from 1", name, vn);
                    }
                } else {
                    double ch = test_correlation(hidden, want_hidden, N * W), ce = test_correlation(emb, want_emb, N * out_dim);
                    CHECK_MSG(ch >= Q8_CORRELATION_BAR && ce >= Q8_CORRELATION_BAR,
                              "%s q8 %s: correlation hidden %.6f, embeddings %.6f", name, vn, ch, ce);
                    if (!threaded)
                        printf("  %-14s q8  %-13s correlation: hidden %.6f, embeddings %.6f (max rel error %.2e)\n",
                               name, vn, ch, ce, test_max_relative(emb, want_emb, N * out_dim));
                }
                /* Embeddings alone (no hidden wanted) are the same values. */
                if (mode == 0 && !threaded) {
                    float *again = malloc((size_t)(N * out_dim) * 4);
                    CHECK_STATUS(uniecg_image_encoder_forward(enc, x, again, NULL, &err), UNIECG_OK, &err);
                    CHECK(!memcmp(again, emb, (size_t)(N * out_dim) * 4));
                    free(again);
                }
                uniecg_image_encoder_free(enc);
            }
        }
        uniecg_model_file_free(file);
    }
    free(hidden);
    free(emb);
    free(first_hidden);
    free(first_emb);
    free(x);
    free(want_hidden);
    free(want_emb);
    free_source(&src);
}

/* A file built with `o` fails to make an encoder with `status` and a message containing `needle`. */
static void expect_refusal(const source *src, build_options o, uniecg_status status, const char *needle) {
    char path[512];
    test_path(path, sizeof path, "bad.uecg");
    if (!build_file(src, &o, path)) return;
    uniecg_model_file *file = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
    uniecg_image_encoder_params p = uniecg_image_encoder_default_params();
    p.n_threads = 1;
    uniecg_image_encoder *enc = NULL;
    CHECK_STATUS(uniecg_image_encoder_create(file, p, &enc, &err), status, &err);
    CHECK_MSG(strstr(err.message, needle) != NULL, "message '%s' does not name '%s'", err.message, needle);
    CHECK(enc == NULL);
    uniecg_model_file_free(file);
}

static void refusals(void) {
    source src;
    bool loaded = load_source("tiny_quick", &src);
    CHECK(loaded);
    if (!loaded) {
        free_source(&src);
        return;
    }
    expect_refusal(&src, (build_options){.omit_key = "image.select_layer"}, UNIECG_ERR_NOT_FOUND, "image.select_layer");
    expect_refusal(&src, (build_options){.omit_key = "image.std"}, UNIECG_ERR_NOT_FOUND, "image.std");
    expect_refusal(&src, (build_options){.omit_key = "image.projector.activations"}, UNIECG_ERR_NOT_FOUND,
                   "image.projector.activations");
    expect_refusal(&src, (build_options){.bad_tensor = "image.layers.0.attn_qkv"}, UNIECG_ERR_FORMAT,
                   "image.layers.0.attn_qkv");
    expect_refusal(&src, (build_options){.bad_tensor = "image.pos_embed"}, UNIECG_ERR_FORMAT, "image.pos_embed");
    expect_refusal(&src, (build_options){.bad_tensor = "image.projector.1"}, UNIECG_ERR_FORMAT, "image.projector.1");
    /* Layer 1 of tiny_quick is not in the file: asking to run it names the missing tensor. */
    expect_refusal(&src, (build_options){.select_layer = 2}, UNIECG_ERR_NOT_FOUND, "image.layers.1.attn_norm");
    expect_refusal(&src, (build_options){.select_layer = 3}, UNIECG_ERR_FORMAT, "select_layer 3 of 2 layers");
    expect_refusal(&src, (build_options){.activation = "relu"}, UNIECG_ERR_VERSION, "relu");
    expect_refusal(&src, (build_options){.mean_count = 2}, UNIECG_ERR_FORMAT, "image.mean");
    expect_refusal(&src, (build_options){.image_size = 36}, UNIECG_ERR_FORMAT, "image_size 36 in patches of 8");
    expect_refusal(&src, (build_options){.image_size = (int64_t)1 << 40}, UNIECG_ERR_LIMIT, "image.image_size");
    /* 2^14 pixels in patches of 8 would be 2^22 patches. */
    expect_refusal(&src, (build_options){.image_size = 1 << 14}, UNIECG_ERR_LIMIT, "patches");

    /* NaN and infinity in the image: refused, naming channel, row and column. */
    char path[512];
    test_path(path, sizeof path, "ok.uecg");
    build_options o = {0};
    if (build_file(&src, &o, path)) {
        uniecg_model_file *file = NULL;
        uniecg_error err = {0};
        CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
        uniecg_image_encoder_params p = uniecg_image_encoder_default_params();
        p.n_threads = 1;
        uniecg_image_encoder *enc = NULL;
        CHECK_STATUS(uniecg_image_encoder_create(file, p, &enc, &err), UNIECG_OK, &err);
        if (enc) {
            int64_t S = src.size, N = (S / src.patch) * (S / src.patch);
            float *x = calloc((size_t)(3 * S * S), sizeof(float));
            float *emb = malloc((size_t)(N * src.dims[src.n_proj]) * sizeof(float));
            x[(2 * S + 5) * S + 7] = NAN;
            CHECK_STATUS(uniecg_image_encoder_forward(enc, x, emb, NULL, &err), UNIECG_ERR_RANGE, &err);
            CHECK_MSG(strstr(err.message, "channel 2") && strstr(err.message, "row 5, column 7"), "message: %s",
                      err.message);
            x[(2 * S + 5) * S + 7] = -INFINITY;
            CHECK_STATUS(uniecg_image_encoder_forward(enc, x, emb, NULL, &err), UNIECG_ERR_RANGE, &err);
            x[(2 * S + 5) * S + 7] = 0;
            CHECK_STATUS(uniecg_image_encoder_forward(enc, x, emb, NULL, &err), UNIECG_OK, &err);
            CHECK_STATUS(uniecg_image_encoder_forward(enc, x, NULL, NULL, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
            CHECK_STATUS(uniecg_image_encoder_forward(enc, NULL, emb, NULL, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
            free(x);
            free(emb);
        }
        uniecg_image_encoder_free(enc);
        uniecg_model_file_free(file);
    }
    free_source(&src);
}

int main(void) {
    if (!find_fixtures()) {
        printf("FAIL: Tests/Fixtures/image_encoder not found (set UNIECG_FIXTURES)\n");
        return 1;
    }
    test_make_dir("uniecg-image");
    size_t length = 0;
    char *manifest = (char *)read_file("manifest.txt", &length);
    CHECK(manifest != NULL);
    uniecg_thread_pool *pool = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_thread_pool_create(3, &pool, &err), UNIECG_OK, &err);
    int cases = 0;
    char *save = NULL;
    for (char *line = manifest ? strtok_r(manifest, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || !line[0]) continue;
        run_case(line, pool);
        cases++;
    }
    CHECK_MSG(cases >= 3, "only %d cases in the manifest", cases);
    refusals();
    uniecg_thread_pool_free(pool);
    free(manifest);
    test_cleanup_dir();
    return test_summary();
}
