/* The aligner (CRuntime/diffusion/aligner.c) against PyTorch: fixtures written by
 * Tools/reference/make_aligner_fixtures.py (two random configurations: mean pooling with L2
 * output, flattened tokens with a final LayerNorm), in the converter's input layout
 * (aligner.safetensors + aligner_config.json). This test builds the .uecg itself with the C
 * writer, naming tensors as ModelFormat.md's aligner section says, so the C core is checked
 * without Swift; the Swift tests run the real converter on the same fixtures.
 *   - f32: every tensor f32 -> within 1e-4 of torch relative to the largest magnitude;
 *   - q8: every Linear weight quantized (all fixture rows are multiples of 32 values) ->
 *     Pearson correlation >= 0.999 with torch;
 * each with every kernel variant this CPU supports, on one thread and on a pool of 3 (f32
 * results bit-identical between the two). Then the refusals: every missing metadata key
 * (named), a missing tensor (named), a weight of the wrong shape (named), an unknown pooling,
 * NaN / infinite input (token and index named, output untouched). */
#include "testing.h"

#include "safetensors_fixture.h"

#include <math.h>
#include <stdint.h>

#define F32_BAR 1e-4
#define Q8_CORRELATION_BAR 0.999

static char fixtures[1024];

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
    int64_t tokens, input_dim, hidden_dim, n_layers, output_dim;
    bool flatten, layer_norm, normalize;
    double eps;
} source;

static bool load_source(const char *dir, source *src) {
    memset(src, 0, sizeof *src);
    char name[200], message[200];
    size_t length = 0;
    snprintf(name, sizeof name, "%s/aligner_config.json", dir);
    unsigned char *text = read_file(name, &length);
    if (!text) return false;
    uniecg__json_doc *config = uniecg__json_parse((const char *)text, length, message, sizeof message);
    free(text);
    if (!config) return printf("note: %s: %s\n", name, message), false;
    const uniecg_json *root = uniecg__json_root(config);
    double v[5] = {0};
    const char *keys[5] = {"tokens", "input_dim", "hidden_dim", "n_layers", "output_dim"};
    bool ok = true;
    for (int i = 0; i < 5; i++) ok = ok && uniecg__json_number(uniecg__json_get(root, keys[i]), &v[i]);
    ok = ok && uniecg__json_number(uniecg__json_get(root, "norm_eps"), &src->eps) &&
         uniecg__json_bool(uniecg__json_get(root, "layer_norm"), &src->layer_norm) &&
         uniecg__json_bool(uniecg__json_get(root, "normalize"), &src->normalize);
    const char *pooling = uniecg__json_string(uniecg__json_get(root, "pooling"), NULL);
    ok = ok && pooling;
    src->flatten = pooling && !strcmp(pooling, "flatten");
    uniecg__json_free(config);
    if (!ok) return printf("note: %s is incomplete\n", name), false;
    src->tokens = (int64_t)v[0], src->input_dim = (int64_t)v[1], src->hidden_dim = (int64_t)v[2];
    src->n_layers = (int64_t)v[3], src->output_dim = (int64_t)v[4];

    char path[1400];
    snprintf(path, sizeof path, "%.1000s/%.100s/aligner.safetensors", fixtures, dir);
    return test_safetensors_open(path, &src->st);
}

static void free_source(source *src) {
    test_safetensors_close(&src->st);
}


/* ---- building the .uecg with the C writer ---- */

typedef struct {
    bool q8;
    const char *omit_key;      /* metadata key left out                                  */
    const char *pooling;       /* overrides the pooling string                           */
    bool wrong_shape;          /* layer 0's weight stored with one row too few            */
    const char *omit_tensor;   /* format tensor left out                                 */
} build_options;

static bool keep(const build_options *o, const char *key) { return !o->omit_key || strcmp(o->omit_key, key); }

static bool add_tensor(uniecg_model_writer *w, const source *src, const build_options *o, const char *from,
                       const char *to, int64_t rows, int64_t cols, bool matrix) {
    int64_t count = 0;
    float *data = test_safetensors_f32(&src->st, from, &count);
    CHECK_MSG(data && count == rows * cols, "source tensor %s: %lld values, expected %lld", from, (long long)count,
              (long long)(rows * cols));
    if (!data || count != rows * cols) return free(data), false;
    if (o->omit_tensor && !strcmp(o->omit_tensor, to)) return free(data), true;
    if (o->wrong_shape && !strcmp(to, "aligner.layers.0.weight")) rows--;
    uint64_t shape[2] = {(uint64_t)rows, (uint64_t)cols};
    uint32_t rank = matrix ? 2 : 1;
    if (!matrix) shape[0] = (uint64_t)(rows * cols);
    uniecg_status s;
    if (matrix && o->q8 && cols % 32 == 0) {
        uint64_t bytes = (uint64_t)rows * (uint64_t)(cols / 32) * 34;
        void *q = malloc(bytes);
        uniecg_error err = {0};
        CHECK_STATUS(uniecg_quantize_q8(data, UNIECG_DTYPE_F32, (uint64_t)rows, (uint64_t)cols, q, &err), UNIECG_OK, &err);
        s = uniecg_model_writer_add_tensor(w, to, UNIECG_DTYPE_Q8, rank, shape, q, bytes, UNIECG_ENCODING_RAW, NULL);
        free(q);
    } else {
        s = uniecg_model_writer_add_tensor(w, to, UNIECG_DTYPE_F32, rank, shape, data, (uint64_t)(rows * cols) * 4,
                                           UNIECG_ENCODING_RAW, NULL);
    }
    CHECK_MSG(s == UNIECG_OK, "add %s: %s", to, uniecg_model_writer_last_error(w));
    free(data);
    return s == UNIECG_OK;
}

static bool build_file(const source *src, const build_options *o, const char *path) {
    uniecg_model_writer *w = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_writer_create(path, uniecg_writer_default_params(), &w, &err), UNIECG_OK, &err);
    if (!w) return false;
    uniecg_model_writer_set_string(w, "general.architecture", "mlp", 3);
    uniecg_model_writer_set_string(w, "general.intended_use", "Educational aid only.", 21);
    const char *pooling = o->pooling ? o->pooling : src->flatten ? "flatten" : "mean";
    if (keep(o, "aligner.architecture")) uniecg_model_writer_set_string(w, "aligner.architecture", "mlp", 3);
    if (keep(o, "aligner.tokens")) uniecg_model_writer_set_i64(w, "aligner.tokens", src->tokens);
    if (keep(o, "aligner.input_dim")) uniecg_model_writer_set_i64(w, "aligner.input_dim", src->input_dim);
    if (keep(o, "aligner.hidden_dim")) uniecg_model_writer_set_i64(w, "aligner.hidden_dim", src->hidden_dim);
    if (keep(o, "aligner.n_layers")) uniecg_model_writer_set_i64(w, "aligner.n_layers", src->n_layers);
    if (keep(o, "aligner.output_dim")) uniecg_model_writer_set_i64(w, "aligner.output_dim", src->output_dim);
    if (keep(o, "aligner.pooling")) uniecg_model_writer_set_string(w, "aligner.pooling", pooling, strlen(pooling));
    if (keep(o, "aligner.layer_norm")) uniecg_model_writer_set_bool(w, "aligner.layer_norm", src->layer_norm);
    if (keep(o, "aligner.norm_eps")) uniecg_model_writer_set_f64(w, "aligner.norm_eps", src->eps);
    if (keep(o, "aligner.normalize")) uniecg_model_writer_set_bool(w, "aligner.normalize", src->normalize);
    bool ok = true;
    int64_t pooled = src->input_dim * (src->flatten ? src->tokens : 1);
    for (int64_t i = 0; i < src->n_layers && ok; i++) {
        int64_t cols = i == 0 ? pooled : src->hidden_dim, rows = i + 1 == src->n_layers ? src->output_dim : src->hidden_dim;
        char from[64], to[64], from_b[64], to_b[64];
        snprintf(from, sizeof from, "layers.%lld.weight", (long long)i);
        snprintf(to, sizeof to, "aligner.layers.%lld.weight", (long long)i);
        snprintf(from_b, sizeof from_b, "layers.%lld.bias", (long long)i);
        snprintf(to_b, sizeof to_b, "aligner.layers.%lld.bias", (long long)i);
        ok = add_tensor(w, src, o, from, to, rows, cols, true) && add_tensor(w, src, o, from_b, to_b, rows, 1, false);
    }
    if (ok && src->layer_norm)
        ok = add_tensor(w, src, o, "norm.weight", "aligner.norm", src->output_dim, 1, false) &&
             add_tensor(w, src, o, "norm.bias", "aligner.norm_bias", src->output_dim, 1, false);
    uniecg_status s = ok ? uniecg_model_writer_finish(w) : UNIECG_ERR_STATE;
    CHECK_MSG(s == UNIECG_OK, "finish %s: %s", path, uniecg_model_writer_last_error(w));
    uniecg_model_writer_free(w);
    return s == UNIECG_OK;
}

/* ---- statistics ---- */

/* ---- the cases ---- */

static const uniecg_kernel_variant all_variants[] = {UNIECG_KERNELS_PORTABLE, UNIECG_KERNELS_AVX2, UNIECG_KERNELS_NEON,
                                                     UNIECG_KERNELS_NEON_DOTPROD};

static void run_config(const char *line, uniecg_thread_pool *pool) {
    char name[64] = "";
    long long cases = 0, tokens = 0, input_dim = 0, output_dim = 0;
    if (sscanf(line, "%63s cases=%lld tokens=%lld input_dim=%lld output_dim=%lld", name, &cases, &tokens, &input_dim,
               &output_dim) != 5) {
        CHECK_MSG(false, "malformed manifest line: %s", line);
        return;
    }
    source src;
    bool loaded = load_source(name, &src);
    CHECK_MSG(loaded, "%s: cannot load the weights", name);
    if (!loaded) return free_source(&src);
    CHECK(src.tokens == tokens && src.input_dim == input_dim && src.output_dim == output_dim);
    char file_name[160];
    snprintf(file_name, sizeof file_name, "%s/input.bin", name);
    float *x = read_floats(file_name, cases * tokens * input_dim);
    snprintf(file_name, sizeof file_name, "%s/expected.bin", name);
    float *want = read_floats(file_name, cases * output_dim);
    CHECK_MSG(x && want, "%s: missing fixture files", name);
    int64_t n_out = cases * output_dim;
    float *got = malloc((size_t)n_out * 4), *first = malloc((size_t)n_out * 4);
    for (int q8 = 0; q8 < 2 && x && want; q8++) {
        char path[512];
        test_path(path, sizeof path, q8 ? "q8.uecg" : "f32.uecg");
        build_options o = {.q8 = q8 != 0};
        if (!build_file(&src, &o, path)) continue;
        uniecg_model_file *file = NULL;
        uniecg_error err = {0};
        CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
        if (!file) continue;
        int ran = 0;
        for (size_t v = 0; v < sizeof all_variants / sizeof all_variants[0]; v++) {
            if (!uniecg_kernel_variant_supported(all_variants[v])) continue;
            const char *vn = uniecg_kernel_variant_name(all_variants[v]);
            for (int threaded = 0; threaded < 2; threaded++) {
                uniecg_aligner_params p = uniecg_aligner_default_params();
                p.kernels = all_variants[v];
                p.n_threads = 1;
                p.pool = threaded ? pool : NULL;
                uniecg_aligner *a = NULL;
                CHECK_STATUS(uniecg_aligner_create(file, p, &a, &err), UNIECG_OK, &err);
                if (!a) continue;
                uniecg_aligner_info info;
                uniecg_aligner_get_info(a, &info);
                CHECK(info.tokens == tokens && info.input_dim == input_dim && info.output_dim == output_dim &&
                      info.hidden_dim == src.hidden_dim && info.n_layers == src.n_layers &&
                      info.pooling == (src.flatten ? UNIECG_ALIGNER_POOL_FLATTEN : UNIECG_ALIGNER_POOL_MEAN) &&
                      info.layer_norm == src.layer_norm && info.normalize == src.normalize &&
                      info.kernels == all_variants[v] && info.n_threads == (threaded ? 3 : 1));
                for (int64_t c = 0; c < cases; c++)
                    CHECK_STATUS(uniecg_aligner_forward(a, x + c * tokens * input_dim, got + c * output_dim, &err),
                                 UNIECG_OK, &err);
                if (!q8) {
                    double e = test_max_relative(got, want, n_out);
                    CHECK_MSG(e <= F32_BAR, "%s f32 %s: relative error %.3g", name, vn, e);
                    if (!threaded) {
                        printf("  %-12s f32 %-13s max rel error %.2e\n", name, vn, e);
                        memcpy(first, got, (size_t)n_out * 4);
                    } else {
                        CHECK_MSG(!memcmp(first, got, (size_t)n_out * 4), "%s f32 %s: 3 threads differ from 1", name, vn);
                    }
                } else {
                    double r = test_correlation(got, want, n_out);
                    CHECK_MSG(r >= Q8_CORRELATION_BAR, "%s q8 %s: correlation %.6f", name, vn, r);
                    if (!threaded)
                        printf("  %-12s q8  %-13s correlation %.6f (max rel error %.2e)\n", name, vn, r,
                               test_max_relative(got, want, n_out));
                }
                if (src.normalize) {
                    /* Whatever the weights' precision, the output lies on the unit sphere. */
                    for (int64_t c = 0; c < cases; c++) {
                        double sq = 0;
                        for (int64_t i = 0; i < output_dim; i++) sq += (double)got[c * output_dim + i] * got[c * output_dim + i];
                        CHECK_MSG(fabs(sqrt(sq) - 1) < 1e-5, "%s: case %lld has norm %.7f", name, (long long)c, sqrt(sq));
                    }
                }
                uniecg_aligner_free(a);
                ran++;
            }
        }
        CHECK(ran >= 2); /* at least the portable kernels, on both thread set-ups */
        uniecg_model_file_free(file);
    }
    free(got);
    free(first);
    free(x);
    free(want);
    free_source(&src);
}

/* A file built with `o` fails to make an aligner with `status` and a message containing `needle`. */
static void expect_refusal(const source *src, build_options o, uniecg_status status, const char *needle) {
    char path[512];
    test_path(path, sizeof path, "bad.uecg");
    if (!build_file(src, &o, path)) return;
    uniecg_model_file *file = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
    uniecg_aligner_params p = uniecg_aligner_default_params();
    p.n_threads = 1;
    uniecg_aligner *a = NULL;
    CHECK_STATUS(uniecg_aligner_create(file, p, &a, &err), status, &err);
    CHECK_MSG(strstr(err.message, needle) != NULL, "message '%s' does not name '%s'", err.message, needle);
    CHECK(a == NULL);
    uniecg_model_file_free(file);
}

static void refusals(void) {
    source src;
    bool loaded = load_source("flatten_ln", &src);
    CHECK(loaded);
    if (!loaded) return free_source(&src);
    static const char *keys[] = {"aligner.architecture", "aligner.tokens",     "aligner.input_dim",
                                 "aligner.hidden_dim",   "aligner.n_layers",   "aligner.output_dim",
                                 "aligner.pooling",      "aligner.layer_norm", "aligner.norm_eps",
                                 "aligner.normalize"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        expect_refusal(&src, (build_options){.omit_key = keys[i]}, UNIECG_ERR_NOT_FOUND, keys[i]);
    expect_refusal(&src, (build_options){.pooling = "max"}, UNIECG_ERR_VERSION, "aligner.pooling");
    expect_refusal(&src, (build_options){.wrong_shape = true}, UNIECG_ERR_FORMAT, "aligner.layers.0.weight");
    static const char *tensors[] = {"aligner.layers.0.weight", "aligner.layers.1.bias", "aligner.norm",
                                    "aligner.norm_bias"};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++)
        expect_refusal(&src, (build_options){.omit_tensor = tensors[i]}, UNIECG_ERR_NOT_FOUND, tensors[i]);

    /* Non-finite input: refused before anything is written, naming token and index. */
    char path[512];
    test_path(path, sizeof path, "good.uecg");
    build_options o = {0};
    if (build_file(&src, &o, path)) {
        uniecg_model_file *file = NULL;
        uniecg_error err = {0};
        CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
        uniecg_aligner_params p = uniecg_aligner_default_params();
        p.n_threads = 1;
        uniecg_aligner *a = NULL;
        CHECK_STATUS(uniecg_aligner_create(file, p, &a, &err), UNIECG_OK, &err);
        if (a) {
            int64_t n = src.tokens * src.input_dim;
            float *x = calloc((size_t)n, sizeof(float)), out[64];
            for (int bad = 0; bad < 2; bad++) {
                x[n - 3] = bad ? INFINITY : NAN; /* token 1, index input_dim - 3 */
                for (int i = 0; i < 64; i++) out[i] = 7.0f;
                CHECK_STATUS(uniecg_aligner_forward(a, x, out, &err), UNIECG_ERR_RANGE, &err);
                char needle[64];
                snprintf(needle, sizeof needle, "token 1, index %lld", (long long)(src.input_dim - 3));
                CHECK_MSG(strstr(err.message, needle) != NULL, "message '%s' lacks '%s'", err.message, needle);
                CHECK(out[0] == 7.0f && out[src.output_dim - 1] == 7.0f);
            }
            CHECK_STATUS(uniecg_aligner_forward(a, NULL, out, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
            free(x);
            uniecg_aligner_free(a);
        }
        uniecg_model_file_free(file);
    }
    free_source(&src);
}

int main(void) {
    if (!test_find_fixtures("aligner", "manifest.txt", fixtures, sizeof fixtures)) {
        printf("FAIL: Tests/Fixtures/aligner not found (set UNIECG_FIXTURES)\n");
        return 1;
    }
    test_make_dir("uniecg-aligner");
    uniecg_thread_pool *pool = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_thread_pool_create(3, &pool, &err), UNIECG_OK, &err);
    size_t length = 0;
    char *manifest = (char *)read_file("manifest.txt", &length);
    CHECK(manifest != NULL);
    int configs = 0;
    for (char *line = manifest ? strtok(manifest, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || !line[0]) continue;
        run_config(line, pool);
        configs++;
    }
    CHECK(configs == 2);
    free(manifest);
    refusals();
    uniecg_thread_pool_free(pool);
    test_cleanup_dir();
    return test_summary();
}
