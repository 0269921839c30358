/* The ECG signal encoder (CRuntime/vision/signal_encoder.c) against PyTorch: fixtures written by
 * Tools/reference/make_signal_encoder_fixtures.py (an open_clip-style EcgTransformer with random
 * weights in two configurations, plus a projector; inputs of the model's length, shorter
 * (zero-padded) and longer (truncated)).
 *
 * The fixtures hold the weights in the converter's input layout (signal_encoder.safetensors +
 * signal_config.json, open_clip names). This test builds the .uecg itself with the C writer,
 * mapping the names as ModelFormat.md's signal encoder section says, so the C core is checked
 * without Swift and no converted model is committed; the Swift tests run the real converter on
 * the same fixtures. Two files per configuration:
 *   - f32: every tensor f32 -> hidden tokens and embeddings within 1e-4 of torch, relative to
 *     the largest magnitude (max |c - ref| / max |ref|);
 *   - q8: every matrix whose rows are a multiple of 32 values quantized with
 *     uniecg_quantize_q8 (the 12 x 50 = 600-column patch conv of one configuration stays f32,
 *     the other's 12 x 40 = 480 columns are q8) -> Pearson correlation >= 0.999 with torch.
 * A third file stores the patch matrix as f16 (the converter keeps a half-precision source's
 * 600-column GEM patch conv so; the encoder widens it at load): correlation >= 0.99999 and
 * relative error <= 1e-3, the size of f16 rounding.
 * Each runs with every kernel variant this CPU supports, on one thread and on a pool of 3; the
 * f32 results of both must agree bit for bit (each value is computed by one thread in a fixed
 * order).
 * Then the refusals: a missing metadata key (named), a tensor of the wrong shape (named), NaN
 * samples (lead and sample named).
 *
 * Fixtures: $UNIECG_FIXTURES/signal_encoder when set, else found from the working directory or
 * from this file's path. */
#include "testing.h"

#include "safetensors_fixture.h"

#include <math.h>
#include <stdint.h>

#define F32_BAR 1e-4
#define Q8_CORRELATION_BAR 0.999

static char fixtures[1024];

static bool find_fixtures(void) {
    return test_find_fixtures("signal_encoder", "manifest.txt", fixtures, sizeof fixtures);
}

static unsigned char *read_file(const char *name, size_t *length) {
    char path[1400];
    snprintf(path, sizeof path, "%.1000s/%.390s", fixtures, name);
    return test_read_path(path, length);
}

/* Little-endian float32 file of exactly `count` values (NULL otherwise). */
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
    /* from signal_config.json */
    int64_t seq_length, leads, layers, width, patch, heads, ffn, n_proj, dims[9];
    double rate, eps;
    char acts[8][8];
    char sources[8][64];
    char lead_names[16][8];
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
    snprintf(name, sizeof name, "%s/signal_config.json", dir);
    unsigned char *text = read_file(name, &length);
    if (!text) return false;
    src->config = uniecg__json_parse((const char *)text, length, message, sizeof message);
    free(text);
    if (!src->config) return printf("note: %s: %s\n", name, message), false;
    const uniecg_json *root = uniecg__json_root(src->config), *cfg = uniecg__json_get(root, "ecg_cfg");
    src->seq_length = (int64_t)num(cfg, "seq_length");
    src->leads = (int64_t)num(cfg, "lead_num");
    src->layers = (int64_t)num(cfg, "layers");
    src->width = (int64_t)num(cfg, "width");
    src->patch = (int64_t)num(cfg, "patch_size");
    src->heads = src->width / (int64_t)num(cfg, "head_width");
    src->ffn = (int64_t)(src->width * num(cfg, "mlp_ratio"));
    src->rate = num(root, "sample_rate");
    src->eps = num(root, "layer_norm_eps");
    const uniecg_json *leads = uniecg__json_get(root, "leads");
    for (size_t i = 0; i < uniecg__json_count(leads) && i < 16; i++)
        snprintf(src->lead_names[i], 8, "%s", uniecg__json_string(uniecg__json_at(leads, i), NULL));
    const uniecg_json *proj = uniecg__json_get(root, "projector"), *dims = uniecg__json_get(proj, "dims");
    src->n_proj = (int64_t)uniecg__json_count(dims) - 1;
    for (int64_t j = 0; j <= src->n_proj && j < 9; j++) {
        double d = 0;
        uniecg__json_number(uniecg__json_at(dims, (size_t)j), &d);
        src->dims[j] = (int64_t)d;
    }
    for (int64_t j = 0; j < src->n_proj && j < 8; j++) {
        snprintf(src->sources[j], 64, "%s",
                 uniecg__json_string(uniecg__json_at(uniecg__json_get(proj, "sources"), (size_t)j), NULL));
        if (j + 1 < src->n_proj)
            snprintf(src->acts[j], 8, "%s",
                     uniecg__json_string(uniecg__json_at(uniecg__json_get(proj, "activations"), (size_t)j), NULL));
    }
    char path[1400];
    snprintf(path, sizeof path, "%.1000s/%.100s/signal_encoder.safetensors", fixtures, dir);
    return test_safetensors_open(path, &src->st);
}

static void free_source(source *src) {
    test_safetensors_close(&src->st);
    uniecg__json_free(src->config);
}


/* ---- building the .uecg with the C writer ---- */

typedef struct {
    bool q8;
    const char *omit_key;    /* metadata key left out (NULL: none)            */
    const char *bad_tensor;  /* target tensor written with one row too few    */
    bool patch_f16;          /* signal.patch_embed stored f16 (widened at load) */
} build_options;

/* Adds target `name` from source tensor `from`: (rows, cols) as a matrix (q8 when asked, the
 * rows allow it and it is a weight: positions stay f32), or a vector when cols == 0. */
static bool add_tensor(uniecg_model_writer *w, const source *src, const build_options *o, const char *from,
                       const char *name, int64_t rows, int64_t cols, bool weight) {
    int64_t count = 0;
    float *data = test_safetensors_f32(&src->st, from, &count);
    CHECK_MSG(data != NULL, "%s: no F32 tensor '%s'", src->dir, from);
    if (!data) return false;
    int64_t expected = cols ? rows * cols : rows;
    CHECK_MSG(count == expected, "%s: '%s' has %lld values, expected %lld", src->dir, from, (long long)count,
              (long long)expected);
    if (o->bad_tensor && !strcmp(o->bad_tensor, name) && rows > 1) rows--; /* a shape the metadata contradicts */
    uint64_t shape[2] = {(uint64_t)rows, (uint64_t)cols};
    uint32_t rank = cols ? 2 : 1;
    uniecg_status s;
    if (o->patch_f16 && !strcmp(name, "signal.patch_embed")) {
        uint16_t *half = malloc((size_t)(rows * cols) * sizeof(uint16_t));
        for (int64_t i = 0; i < rows * cols; i++) half[i] = uniecg_f32_to_f16(data[i]);
        s = uniecg_model_writer_add_tensor(w, name, UNIECG_DTYPE_F16, rank, shape, half, (uint64_t)(rows * cols) * 2,
                                           UNIECG_ENCODING_RAW, NULL);
        free(half);
    } else if (cols && weight && o->q8 && cols % 32 == 0) {
        uint64_t bytes = 0;
        uniecg_dtype_payload_size(UNIECG_DTYPE_Q8, (uint64_t)(rows * cols), &bytes);
        void *q = malloc(bytes);
        uniecg_error err = {0};
        CHECK_STATUS(uniecg_quantize_q8(data, UNIECG_DTYPE_F32, (uint64_t)rows, (uint64_t)cols, q, &err), UNIECG_OK, &err);
        s = uniecg_model_writer_add_tensor(w, name, UNIECG_DTYPE_Q8, rank, shape, q, bytes, UNIECG_ENCODING_RAW, NULL);
        free(q);
    } else {
        s = uniecg_model_writer_add_tensor(w, name, UNIECG_DTYPE_F32, rank, shape, data,
                                           (uint64_t)(cols ? rows * cols : rows) * 4, UNIECG_ENCODING_RAW, NULL);
    }
    CHECK_MSG(s == UNIECG_OK, "add %s: %s", name, uniecg_model_writer_last_error(w));
    free(data);
    return s == UNIECG_OK;
}

static bool add(uniecg_model_writer *w, const source *src, const build_options *o, const char *from, const char *name,
                int64_t rows, int64_t cols) {
    return add_tensor(w, src, o, from, name, rows, cols, true);
}

static bool keep(const build_options *o, const char *key) { return !o->omit_key || strcmp(o->omit_key, key); }

static bool build_file(const source *src, const build_options *o, const char *path) {
    uniecg_model_writer *w = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_writer_create(path, uniecg_writer_default_params(), &w, &err), UNIECG_OK, &err);
    if (!w) return false;
    uniecg_model_writer_set_string(w, "general.architecture", "signal-encoder", 14);
    uniecg_model_writer_set_string(w, "general.intended_use", "Educational aid only.", 21);
    const char *lead_ptrs[16];
    uint64_t lead_lengths[16];
    for (int64_t i = 0; i < src->leads; i++) {
        lead_ptrs[i] = src->lead_names[i];
        lead_lengths[i] = strlen(src->lead_names[i]);
    }
    const char *act_ptrs[8];
    uint64_t act_lengths[8];
    for (int64_t j = 0; j + 1 < src->n_proj; j++) {
        act_ptrs[j] = src->acts[j];
        act_lengths[j] = strlen(src->acts[j]);
    }
    if (keep(o, "signal.architecture")) uniecg_model_writer_set_string(w, "signal.architecture", "patch-transformer-1d", 20);
    if (keep(o, "signal.leads")) uniecg_model_writer_set_string_array(w, "signal.leads", lead_ptrs, lead_lengths, (uint64_t)src->leads);
    if (keep(o, "signal.sample_rate")) uniecg_model_writer_set_f64(w, "signal.sample_rate", src->rate);
    if (keep(o, "signal.samples")) uniecg_model_writer_set_i64(w, "signal.samples", src->seq_length);
    if (keep(o, "signal.patch_size")) uniecg_model_writer_set_i64(w, "signal.patch_size", src->patch);
    if (keep(o, "signal.width")) uniecg_model_writer_set_i64(w, "signal.width", src->width);
    if (keep(o, "signal.n_layers")) uniecg_model_writer_set_i64(w, "signal.n_layers", src->layers);
    if (keep(o, "signal.n_heads")) uniecg_model_writer_set_i64(w, "signal.n_heads", src->heads);
    if (keep(o, "signal.ffn_dim")) uniecg_model_writer_set_i64(w, "signal.ffn_dim", src->ffn);
    if (keep(o, "signal.norm_eps")) uniecg_model_writer_set_f64(w, "signal.norm_eps", src->eps);
    if (keep(o, "signal.ln_pre")) uniecg_model_writer_set_bool(w, "signal.ln_pre", true);
    if (keep(o, "signal.activation")) uniecg_model_writer_set_string(w, "signal.activation", "gelu", 4);
    if (keep(o, "signal.projector.dims"))
        uniecg_model_writer_set_array(w, "signal.projector.dims", UNIECG_META_I64_ARRAY, src->dims, (uint64_t)src->n_proj + 1);
    if (keep(o, "signal.projector.activations"))
        uniecg_model_writer_set_string_array(w, "signal.projector.activations", act_ptrs, act_lengths,
                                             (uint64_t)src->n_proj - 1);
    int64_t W = src->width, T = src->seq_length / src->patch + 1, F = src->ffn;
    bool ok = add(w, src, o, "conv1.weight", "signal.patch_embed", W, src->leads * src->patch) &&
              add(w, src, o, "class_embedding", "signal.class_embed", W, 0) &&
              add_tensor(w, src, o, "positional_embedding", "signal.pos_embed", T, W, false) &&
              add(w, src, o, "ln_pre.weight", "signal.ln_pre", W, 0) &&
              add(w, src, o, "ln_pre.bias", "signal.ln_pre_bias", W, 0);
    for (int64_t i = 0; ok && i < src->layers; i++) {
        char from[128], to[128];
        static const struct { const char *from, *to; int rows, cols; } map[] = {
            /* rows / cols: 1 = width, 3 = 3 x width, 4 = ffn, 0 = vector */
            {"ln_1.weight", "attn_norm", 1, 0},          {"ln_1.bias", "attn_norm_bias", 1, 0},
            {"attn.in_proj_weight", "attn_qkv", 3, 1},   {"attn.in_proj_bias", "attn_qkv_bias", 3, 0},
            {"attn.out_proj.weight", "attn_out", 1, 1},  {"attn.out_proj.bias", "attn_out_bias", 1, 0},
            {"ln_2.weight", "ffn_norm", 1, 0},           {"ln_2.bias", "ffn_norm_bias", 1, 0},
            {"mlp.c_fc.weight", "ffn_up", 4, 1},         {"mlp.c_fc.bias", "ffn_up_bias", 4, 0},
            {"mlp.c_proj.weight", "ffn_down", 1, 4},     {"mlp.c_proj.bias", "ffn_down_bias", 1, 0},
        };
        for (size_t m = 0; ok && m < sizeof map / sizeof map[0]; m++) {
            int64_t size[5] = {0, W, 0, 3 * W, F};
            snprintf(from, sizeof from, "transformer.resblocks.%lld.%s", (long long)i, map[m].from);
            snprintf(to, sizeof to, "signal.layers.%lld.%s", (long long)i, map[m].to);
            ok = add(w, src, o, from, to, size[map[m].rows], size[map[m].cols]);
        }
    }
    for (int64_t j = 0; ok && j < src->n_proj; j++) {
        char from[128], to[128];
        snprintf(from, sizeof from, "%s.weight", src->sources[j]);
        snprintf(to, sizeof to, "signal.projector.%lld", (long long)j);
        ok = add(w, src, o, from, to, src->dims[j + 1], src->dims[j]);
        snprintf(from, sizeof from, "%s.bias", src->sources[j]);
        snprintf(to, sizeof to, "signal.projector.%lld_bias", (long long)j);
        ok = ok && add(w, src, o, from, to, src->dims[j + 1], 0);
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
    long long samples = 0;
    if (sscanf(line, "%63s config=%63s samples=%lld input=%95s hidden=%95s embeddings=%95s", name, config, &samples,
               input, hidden_name, emb_name) != 6) {
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
    int64_t T = src.seq_length / src.patch + 1, out_dim = src.dims[src.n_proj];
    float *x = read_floats(input, src.leads * samples);
    float *want_hidden = read_floats(hidden_name, T * src.width);
    float *want_emb = read_floats(emb_name, T * out_dim);
    CHECK_MSG(x && want_hidden && want_emb, "%s: missing fixture files", name);
    float *hidden = malloc((size_t)(T * src.width) * 4), *emb = malloc((size_t)(T * out_dim) * 4);
    float *first_hidden = malloc((size_t)(T * src.width) * 4), *first_emb = malloc((size_t)(T * out_dim) * 4);
    /* mode 0: f32, 1: q8, 2: f32 with an f16 patch matrix (how the converter keeps GEM's 600-column
     * patch conv from an f16 checkpoint): torch's f32 weights rounded to f16 move the output by
     * about the f16 rounding (2^-11 relative), so it is judged by correlation >= 0.99999. */
    for (int mode = 0; mode < 3 && x && want_hidden && want_emb; mode++) {
        int q8 = mode == 1;
        char path[512];
        test_path(path, sizeof path, mode == 1 ? "q8.uecg" : mode == 2 ? "f16patch.uecg" : "f32.uecg");
        build_options o = {.q8 = q8 != 0, .patch_f16 = mode == 2};
        if (!build_file(&src, &o, path)) continue;
        uniecg_model_file *file = NULL;
        uniecg_error err = {0};
        CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
        if (!file) continue;
        for (size_t v = 0; v < sizeof all_variants / sizeof all_variants[0]; v++) {
            if (!uniecg_kernel_variant_supported(all_variants[v])) continue;
            for (int threaded = 0; threaded < 2; threaded++) {
                uniecg_signal_encoder_params p = uniecg_signal_encoder_default_params();
                p.kernels = all_variants[v];
                p.n_threads = 1;
                p.pool = threaded ? pool : NULL;
                uniecg_signal_encoder *enc = NULL;
                CHECK_STATUS(uniecg_signal_encoder_create(file, p, &enc, &err), UNIECG_OK, &err);
                if (!enc) continue;
                uniecg_signal_encoder_info info;
                uniecg_signal_encoder_get_info(enc, &info);
                CHECK(info.tokens == T && info.width == src.width && info.output_dim == out_dim &&
                      info.n_leads == src.leads && info.samples == src.seq_length && info.sample_rate == src.rate);
                CHECK(!strcmp(uniecg_signal_encoder_lead_name(enc, 0), src.lead_names[0]) &&
                      uniecg_signal_encoder_lead_name(enc, (int32_t)src.leads) == NULL);
                CHECK_STATUS(uniecg_signal_encoder_encode(enc, x, samples, emb, hidden, &err), UNIECG_OK, &err);
                const char *vn = uniecg_kernel_variant_name(all_variants[v]);
                if (mode == 2) {
                    double ce = test_correlation(emb, want_emb, T * out_dim), ee = test_max_relative(emb, want_emb, T * out_dim);
                    CHECK_MSG(ce >= 0.99999 && ee <= 1e-3, "%s f16 patch %s: correlation %.7f, relative error %.3g", name,
                              vn, ce, ee);
                    if (!threaded)
                        printf("  %-20s f16 patch %-7s correlation: embeddings %.7f (max rel error %.2e)\n", name, vn, ce, ee);
                } else if (!q8) {
                    double eh = test_max_relative(hidden, want_hidden, T * src.width);
                    double ee = test_max_relative(emb, want_emb, T * out_dim);
                    CHECK_MSG(eh <= F32_BAR && ee <= F32_BAR, "%s f32 %s: relative error hidden %.3g, embeddings %.3g",
                              name, vn, eh, ee);
                    if (!threaded) {
                        printf("  %-20s f32 %-13s max rel error: hidden %.2e, embeddings %.2e\n", name, vn, eh, ee);
                        memcpy(first_hidden, hidden, (size_t)(T * src.width) * 4);
                        memcpy(first_emb, emb, (size_t)(T * out_dim) * 4);
                    } else {
                        CHECK_MSG(!memcmp(first_hidden, hidden, (size_t)(T * src.width) * 4) &&
                                      !memcmp(first_emb, emb, (size_t)(T * out_dim) * 4),
                                  "%s f32 %s: 3 threads differ from 1", name, vn);
                    }
                } else {
                    double ch = test_correlation(hidden, want_hidden, T * src.width);
                    double ce = test_correlation(emb, want_emb, T * out_dim);
                    CHECK_MSG(ch >= Q8_CORRELATION_BAR && ce >= Q8_CORRELATION_BAR,
                              "%s q8 %s: correlation hidden %.6f, embeddings %.6f", name, vn, ch, ce);
                    if (!threaded)
                        printf("  %-20s q8  %-13s correlation: hidden %.6f, embeddings %.6f (max rel error %.2e)\n",
                               name, vn, ch, ce, test_max_relative(emb, want_emb, T * out_dim));
                }
                uniecg_signal_encoder_free(enc);
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
    uniecg_signal_encoder_params p = uniecg_signal_encoder_default_params();
    p.n_threads = 1;
    uniecg_signal_encoder *enc = NULL;
    CHECK_STATUS(uniecg_signal_encoder_create(file, p, &enc, &err), status, &err);
    CHECK_MSG(strstr(err.message, needle) != NULL, "message '%s' does not name '%s'", err.message, needle);
    CHECK(enc == NULL);
    uniecg_model_file_free(file);
}

static void refusals(void) {
    source src;
    bool loaded = load_source("narrow_linear", &src);
    CHECK(loaded);
    if (!loaded) {
        free_source(&src);
        return;
    }
    expect_refusal(&src, (build_options){.omit_key = "signal.ffn_dim"}, UNIECG_ERR_NOT_FOUND, "signal.ffn_dim");
    expect_refusal(&src, (build_options){.omit_key = "signal.leads"}, UNIECG_ERR_NOT_FOUND, "signal.leads");
    expect_refusal(&src, (build_options){.omit_key = "signal.projector.dims"}, UNIECG_ERR_NOT_FOUND,
                   "signal.projector.dims");
    expect_refusal(&src, (build_options){.bad_tensor = "signal.layers.1.ffn_up"}, UNIECG_ERR_FORMAT,
                   "signal.layers.1.ffn_up");

    /* NaN and infinity among the samples: refused, naming lead and sample; a NaN beyond the
     * model's length is never read (truncated away). */
    char path[512];
    test_path(path, sizeof path, "ok.uecg");
    build_options o = {0};
    if (build_file(&src, &o, path)) {
        uniecg_model_file *file = NULL;
        uniecg_error err = {0};
        CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
        uniecg_signal_encoder_params p = uniecg_signal_encoder_default_params();
        p.n_threads = 1;
        uniecg_signal_encoder *enc = NULL;
        CHECK_STATUS(uniecg_signal_encoder_create(file, p, &enc, &err), UNIECG_OK, &err);
        if (enc) {
            int64_t n = src.seq_length + 10, T = src.seq_length / src.patch + 1;
            float *x = calloc((size_t)(src.leads * n), sizeof(float));
            float *emb = malloc((size_t)(T * src.dims[src.n_proj]) * sizeof(float));
            x[2 * n + 7] = NAN;
            CHECK_STATUS(uniecg_signal_encoder_encode(enc, x, n, emb, NULL, &err), UNIECG_ERR_RANGE, &err);
            CHECK_MSG(strstr(err.message, "lead 2 (III)") && strstr(err.message, "sample 7"), "message: %s",
                      err.message);
            x[2 * n + 7] = INFINITY;
            CHECK_STATUS(uniecg_signal_encoder_encode(enc, x, n, emb, NULL, &err), UNIECG_ERR_RANGE, &err);
            x[2 * n + 7] = 0;
            x[3 * n + src.seq_length + 5] = NAN; /* beyond the model's length */
            CHECK_STATUS(uniecg_signal_encoder_encode(enc, x, n, emb, NULL, &err), UNIECG_OK, &err);
            CHECK_STATUS(uniecg_signal_encoder_encode(enc, x, 0, emb, NULL, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
            CHECK_STATUS(uniecg_signal_encoder_encode(enc, x, n, NULL, NULL, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
            free(x);
            free(emb);
        }
        uniecg_signal_encoder_free(enc);
        uniecg_model_file_free(file);
    }
    free_source(&src);
}

int main(void) {
    if (!find_fixtures()) {
        printf("FAIL: Tests/Fixtures/signal_encoder not found (set UNIECG_FIXTURES)\n");
        return 1;
    }
    test_make_dir("uniecg-signal");
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
    CHECK_MSG(cases >= 4, "only %d cases in the manifest", cases);
    refusals();
    uniecg_thread_pool_free(pool);
    free(manifest);
    test_cleanup_dir();
    return test_summary();
}
