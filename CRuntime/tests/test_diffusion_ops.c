/* The diffusion networks' sequence ops (CRuntime/diffusion/ops.h) against PyTorch: fixtures
 * written by Tools/reference/make_diffusion_op_fixtures.py from the torch modules the published
 * networks use (Conv1d, ConvTranspose1d, Upsample, GroupNorm, LayerNorm, SiLU/GELU/Mish,
 * Linear, nn.MultiheadAttention, the DiffuSETS VAE attention and time-embedding table,
 * diffusers' get_timestep_embedding).
 *
 * Every case runs with each kernel variant this CPU supports, once on the calling thread and
 * once on a pool of 3 threads:
 *   - f32 weights: max |c - ref| / max |ref| <= 1e-4, and elementwise for the elementwise ops
 *     (activations, norms, embeddings: |c - ref| <= 1e-4 * max(1, |ref|); up-sampling exact);
 *     the threaded result must equal the single-threaded one bit for bit (each output value is
 *     computed by one thread in a fixed order);
 *   - q8 weights (cases marked q8=1): the f32 weights quantized with uniecg_quantize_q8, the
 *     output compared with the same f32 torch output: Pearson correlation >= 0.999; the
 *     norm-wise relative error is printed.
 * One-token cross-attention: the fast path's vector, broadcast over the positions, must equal
 * the general path (bit for bit with f32 weights) and match torch.
 * Then the refusals of bad shapes, and a table of the worst errors per op.
 *
 * Fixtures: $UNIECG_FIXTURES/diffusion_ops when set, else found from the working directory or
 * from this file's path. */
#include "testing.h"

#include "../diffusion/ops.h"

#include <math.h>
#include <stdint.h>

#define F32_BAR 1e-4
#define Q8_CORRELATION_BAR 0.999

/* ---- files ---- */

static char fixtures[1024];

static bool find_fixtures(void) {
    return test_find_fixtures("diffusion_ops", "manifest.txt", fixtures, sizeof fixtures);
}

static unsigned char *read_file(const char *name, size_t *length) {
    char path[1400];
    snprintf(path, sizeof path, "%.1000s/%.390s", fixtures, name);
    return test_read_path(path, length);
}

/* ---- manifest ---- */

enum { MAX_PARAMS = 24, MAX_TENSORS = 16 };

typedef struct {
    char name[32];
    int rank;
    int64_t shape[4], count;
    const float *data;
} tensor;

typedef struct {
    char name[96], op[32];
    int n_params, n_tensors;
    char keys[MAX_PARAMS][32], values[MAX_PARAMS][48];
    tensor t[MAX_TENSORS];
    float *blob;
} fixture;

/* One manifest line into f, reading its .bin; false (with `why`) when malformed. */
static bool parse_fixture(char *line, fixture *f, char *why, size_t why_size) {
    memset(f, 0, sizeof *f);
    char *save = NULL;
    char *word = strtok_r(line, " \n", &save);
    if (!word) return false;
    snprintf(f->name, sizeof f->name, "%.90s", word);
    int64_t total = 0;
    while ((word = strtok_r(NULL, " \n", &save))) {
        char *eq = strchr(word, '=');
        if (!eq) {
            snprintf(why, why_size, "field '%.40s' has no '='", word);
            return false;
        }
        *eq = 0;
        if (word[0] == '@') {
            if (f->n_tensors == MAX_TENSORS) return snprintf(why, why_size, "too many tensors"), false;
            tensor *t = &f->t[f->n_tensors++];
            snprintf(t->name, sizeof t->name, "%.30s", word + 1);
            t->count = 1;
            for (char *dim = strtok(eq + 1, ","); dim; dim = strtok(NULL, ",")) {
                if (t->rank == 4) return snprintf(why, why_size, "rank above 4"), false;
                t->shape[t->rank++] = atoll(dim);
                t->count *= t->shape[t->rank - 1];
            }
            total += t->count;
        } else if (!strcmp(word, "op")) {
            snprintf(f->op, sizeof f->op, "%.30s", eq + 1);
        } else {
            if (f->n_params == MAX_PARAMS) return snprintf(why, why_size, "too many parameters"), false;
            snprintf(f->keys[f->n_params], sizeof f->keys[0], "%.30s", word);
            snprintf(f->values[f->n_params], sizeof f->values[0], "%.46s", eq + 1);
            f->n_params++;
        }
    }
    char file[128];
    snprintf(file, sizeof file, "%.100s.bin", f->name);
    size_t length = 0;
    unsigned char *bytes = read_file(file, &length);
    if (!bytes || length != (size_t)total * 4) {
        snprintf(why, why_size, "%s: %zu bytes, the manifest lists %lld floats", file, length, (long long)total);
        free(bytes);
        return false;
    }
    f->blob = malloc(length);
    for (int64_t k = 0; k < total; k++) { /* little-endian float32, byte by byte */
        const unsigned char *b = bytes + 4 * k;
        uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&f->blob[k], &bits, sizeof bits);
    }
    free(bytes);
    int64_t offset = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        f->t[i].data = f->blob + offset;
        offset += f->t[i].count;
    }
    return true;
}

static const char *param(const fixture *f, const char *key) {
    for (int i = 0; i < f->n_params; i++)
        if (!strcmp(f->keys[i], key)) return f->values[i];
    return NULL;
}

static int64_t iparam(const fixture *f, const char *key) {
    const char *v = param(f, key);
    CHECK_MSG(v != NULL, "%s: no parameter %s", f->name, key);
    return v ? atoll(v) : 0;
}

static double dparam(const fixture *f, const char *key) {
    const char *v = param(f, key);
    CHECK_MSG(v != NULL, "%s: no parameter %s", f->name, key);
    return v ? strtod(v, NULL) : 0.0;
}

static const tensor *find_tensor(const fixture *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

/* The f32 values of tensor `name` (NULL when absent). */
static const float *T(const fixture *f, const char *name) {
    const tensor *t = find_tensor(f, name);
    return t ? t->data : NULL;
}

/* ---- weights: f32 as stored, or quantized to q8 ---- */

typedef struct {
    uniecg__weight w;
    void *q8; /* owned payload when quantized */
} test_weight;

static bool make_weight(const fixture *f, const char *name, int64_t rows, int64_t cols, bool q8, test_weight *out) {
    const float *data = T(f, name);
    memset(out, 0, sizeof *out);
    CHECK_MSG(data != NULL, "%s: no tensor %s", f->name, name);
    if (!data) return false;
    const tensor *t = find_tensor(f, name);
    CHECK_MSG(t->count == rows * cols, "%s: %s has %lld values, expected %lld x %lld", f->name, name,
              (long long)t->count, (long long)rows, (long long)cols);
    out->w = (uniecg__weight){.data = data, .dtype = UNIECG_DTYPE_F32, .rows = rows, .cols = cols};
    if (!q8) return true;
    uint64_t bytes = 0;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_dtype_payload_size(UNIECG_DTYPE_Q8, (uint64_t)(rows * cols), &bytes), UNIECG_OK, &err);
    out->q8 = malloc(bytes);
    uniecg_status s = uniecg_quantize_q8(data, UNIECG_DTYPE_F32, (uint64_t)rows, (uint64_t)cols, out->q8, &err);
    CHECK_STATUS(s, UNIECG_OK, &err);
    out->w = (uniecg__weight){.data = out->q8, .dtype = UNIECG_DTYPE_Q8, .rows = rows, .cols = cols};
    return s == UNIECG_OK;
}

/* ---- statistics and the summary table ---- */

typedef struct {
    double rel;        /* max |c - r| / max |r| */
    double elem;       /* max |c - r| / max(1, |r|) */
    double corr;       /* Pearson correlation */
    int64_t mismatch;  /* bits differing (exactness checks) */
} stats;

static stats compare(const float *got, const float *ref, int64_t n) {
    stats s = {0};
    double max_ref = 0, max_err = 0, sg = 0, sr = 0, sgg = 0, srr = 0, sgr = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i], e = fabs(g - r);
        if (!(e <= max_err)) max_err = e; /* NaN propagates */
        if (fabs(r) > max_ref) max_ref = fabs(r);
        double elem = e / (fabs(r) > 1.0 ? fabs(r) : 1.0);
        if (!(elem <= s.elem)) s.elem = elem;
        sg += g, sr += r, sgg += g * g, srr += r * r, sgr += g * r;
        if (memcmp(&got[i], &ref[i], sizeof(float)) != 0) s.mismatch++;
    }
    s.rel = max_ref > 0 ? max_err / max_ref : max_err;
    double cov = sgr - sg * sr / (double)n, vg = sgg - sg * sg / (double)n, vr = srr - sr * sr / (double)n;
    s.corr = vg > 0 && vr > 0 ? cov / sqrt(vg * vr) : (max_err == 0 ? 1.0 : 0.0);
    return s;
}

enum { MAX_OPS = 16, MAX_VARIANTS = 5 };
static struct {
    char op[32];
    double f32_rel, f32_elem;
    bool has_q8[MAX_VARIANTS];
    double q8_corr[MAX_VARIANTS], q8_rel[MAX_VARIANTS];
} summary[MAX_OPS];
static int summary_count;

static int summary_row(const char *op) {
    for (int i = 0; i < summary_count; i++)
        if (!strcmp(summary[i].op, op)) return i;
    if (summary_count == MAX_OPS) return MAX_OPS - 1;
    snprintf(summary[summary_count].op, sizeof summary[0].op, "%s", op);
    for (int v = 0; v < MAX_VARIANTS; v++) summary[summary_count].q8_corr[v] = 1.0;
    return summary_count++;
}

/* ---- running one case ---- */

/* Runs the op of `f` with f32 (q8 = false) or quantized weights into `out` (room for the
 * reference y); returns the status. */
static uniecg_status run_case(const fixture *f, uniecg__seq_ctx *ctx, bool q8, bool tap_major, float *out,
                              uniecg_error *err) {
    const char *op = f->op;
    uniecg_status s = UNIECG_ERR_INVALID_ARGUMENT;
    test_weight w[5] = {0};
    if (!strcmp(op, "conv1d")) {
        uniecg__conv1d_shape shape = {iparam(f, "c_in"), iparam(f, "c_out"), iparam(f, "kernel"), iparam(f, "stride"),
                                      iparam(f, "pad_left"), iparam(f, "pad_right")};
        if (make_weight(f, "w", shape.c_out, shape.c_in * shape.kernel, q8, &w[0])) {
            if (tap_major) { /* made from the q8 weight, as a model file's VAE does at load */
                uniecg__conv1d_taps taps;
                s = uniecg__conv1d_taps_make(&shape, &w[0].w, &taps, err);
                if (!s) s = uniecg__seq_conv1d_taps(ctx, &shape, &taps, T(f, "b"), T(f, "x"), iparam(f, "length"), out, err);
                uniecg__conv1d_taps_free(&taps);
            } else {
                s = uniecg__seq_conv1d(ctx, &shape, &w[0].w, T(f, "b"), T(f, "x"), iparam(f, "length"), out, err);
            }
        }
    } else if (!strcmp(op, "conv_transpose1d")) {
        uniecg__conv_transpose1d_shape shape = {iparam(f, "c_in"), iparam(f, "c_out"), iparam(f, "kernel"),
                                                iparam(f, "stride"), iparam(f, "padding"), 0};
        if (make_weight(f, "w", shape.c_in, shape.c_out * shape.kernel, q8, &w[0]))
            s = uniecg__seq_conv_transpose1d(ctx, &shape, &w[0].w, T(f, "b"), T(f, "x"), iparam(f, "length"), out, err);
    } else if (!strcmp(op, "upsample_nearest")) {
        s = uniecg__seq_upsample_nearest(T(f, "x"), iparam(f, "channels"), iparam(f, "length"), iparam(f, "factor"), out,
                                         err);
    } else if (!strcmp(op, "group_norm")) {
        s = uniecg__seq_group_norm(ctx, T(f, "x"), iparam(f, "channels"), iparam(f, "length"), iparam(f, "groups"),
                                   (float)dparam(f, "eps"), T(f, "gamma"), T(f, "beta"), out, err);
    } else if (!strcmp(op, "layer_norm")) {
        s = uniecg__seq_layer_norm(ctx, T(f, "x"), iparam(f, "tokens"), iparam(f, "dim"), (float)dparam(f, "eps"),
                                   T(f, "gamma"), T(f, "beta"), out, err);
    } else if (!strcmp(op, "silu") || !strcmp(op, "gelu") || !strcmp(op, "mish")) {
        int64_t n = iparam(f, "n");
        memcpy(out, T(f, "x"), (size_t)n * sizeof(float));
        uniecg__seq_activate(ctx, !strcmp(op, "silu") ? UNIECG__ACT_SILU : !strcmp(op, "gelu") ? UNIECG__ACT_GELU
                                                                                                : UNIECG__ACT_MISH,
                             out, n);
        s = UNIECG_OK;
    } else if (!strcmp(op, "linear")) {
        if (make_weight(f, "w", iparam(f, "out"), iparam(f, "in"), q8, &w[0]))
            s = uniecg__seq_linear(ctx, &w[0].w, T(f, "b"), T(f, "x"), iparam(f, "tokens"), out, err);
    } else if (!strcmp(op, "timestep_embedding")) {
        uniecg__timestep_embedding_params p = {.log_max_period = dparam(f, "log_max_period"),
                                               .downscale_freq_shift = dparam(f, "shift"),
                                               .flip_sin_to_cos = iparam(f, "flip") != 0};
        int64_t dim = iparam(f, "dim");
        s = UNIECG_OK;
        for (int64_t i = 0; i < iparam(f, "count") && s == UNIECG_OK; i++)
            s = uniecg__seq_timestep_embedding(&p, T(f, "t")[i], dim, out + i * dim, err);
    } else if (!strcmp(op, "mha") || !strcmp(op, "self_attention") || !strcmp(op, "cross_attention")) {
        bool mha = !strcmp(op, "mha"), self = !strcmp(op, "self_attention");
        int64_t e = mha ? iparam(f, "embed") : iparam(f, "channels");
        int64_t kdim = mha ? iparam(f, "kdim") : self ? e : iparam(f, "cond_dim");
        int64_t vdim = mha ? iparam(f, "vdim") : self ? e : iparam(f, "cond_dim");
        bool packed = find_tensor(f, "in_proj_w") != NULL, ok = true;
        uniecg__attention_weights a = {.heads = iparam(f, "heads"), .in_proj_bias = T(f, "in_proj_b"),
                                       .out_bias = T(f, "out_b")};
        if (packed) {
            ok = make_weight(f, "in_proj_w", 3 * e, e, q8, &w[0]);
            a.in_proj = &w[0].w;
        } else {
            ok = make_weight(f, "q_w", e, e, q8, &w[0]) && make_weight(f, "k_w", e, kdim, q8, &w[1]) &&
                 make_weight(f, "v_w", e, vdim, q8, &w[2]);
            a.q_proj = &w[0].w, a.k_proj = &w[1].w, a.v_proj = &w[2].w;
        }
        ok = ok && make_weight(f, "out_w", e, e, q8, &w[3]);
        a.out_proj = &w[3].w;
        if (ok && mha) {
            const float *key = T(f, "key"), *value = iparam(f, "same_kv") ? key : T(f, "value");
            s = uniecg__seq_mha(ctx, &a, T(f, "query"), iparam(f, "tokens"), key, value, iparam(f, "keys"), out, err);
        } else if (ok && self) {
            s = uniecg__seq_self_attention(ctx, &a, T(f, "x"), e, iparam(f, "length"), out, err);
        } else if (ok) {
            int64_t length = iparam(f, "length");
            s = uniecg__seq_cross_attention(ctx, &a, T(f, "x"), e, length, T(f, "cond"), iparam(f, "keys"), kdim, out,
                                            err);
            if (s == UNIECG_OK && iparam(f, "keys") == 1) {
                /* The fast path: one vector, broadcast, must be what the general path computed. */
                float *vector = malloc((size_t)e * sizeof(float)), *broadcast = malloc((size_t)(e * length) * sizeof(float));
                uniecg_status fs = uniecg__seq_cross_attention_one_token(ctx, &a, T(f, "cond"), kdim, vector, err);
                CHECK_STATUS(fs, UNIECG_OK, err);
                memset(broadcast, 0, (size_t)(e * length) * sizeof(float));
                uniecg__seq_add_per_channel(broadcast, e, length, vector);
                stats st = compare(broadcast, out, e * length);
                if (q8) /* the kernels may sum one token and many tokens in different orders */
                    CHECK_MSG(st.rel <= 1e-6, "%s q8: fast path differs from the general path by %.3g", f->name, st.rel);
                else
                    CHECK_MSG(st.mismatch == 0, "%s: fast path differs from the general path in %lld values (%.3g)",
                              f->name, (long long)st.mismatch, st.rel);
                free(vector);
                free(broadcast);
            }
        }
    } else {
        CHECK_MSG(false, "%s: unknown op %s", f->name, op);
    }
    for (int i = 0; i < 5; i++) free(w[i].q8);
    return s;
}

static bool elementwise_op(const char *op) {
    return !strcmp(op, "silu") || !strcmp(op, "gelu") || !strcmp(op, "mish") || !strcmp(op, "group_norm") ||
           !strcmp(op, "layer_norm") || !strcmp(op, "timestep_embedding");
}

static const uniecg_kernel_variant all_variants[] = {UNIECG_KERNELS_PORTABLE, UNIECG_KERNELS_AVX2, UNIECG_KERNELS_NEON,
                                                     UNIECG_KERNELS_NEON_DOTPROD};

static void test_fixture(const fixture *f, uniecg_thread_pool *pool) {
    const tensor *y = find_tensor(f, "y");
    CHECK_MSG(y != NULL, "%s: no output tensor", f->name);
    if (!y) return;
    int row = summary_row(f->op);
    float *out = malloc((size_t)y->count * sizeof(float)), *single = malloc((size_t)y->count * sizeof(float));
    bool q8_case = param(f, "q8") && iparam(f, "q8");
    /* mode 2: the tap-major q8 convolution, for c_in a multiple of 32 */
    bool taps_case = q8_case && !strcmp(f->op, "conv1d") && iparam(f, "c_in") % 32 == 0;
    float *taps_first = taps_case ? malloc((size_t)y->count * sizeof(float)) : NULL;
    for (size_t v = 0; v < sizeof all_variants / sizeof *all_variants; v++) {
        if (!uniecg_kernel_variant_supported(all_variants[v])) continue;
        const char *vname = uniecg_kernel_variant_name(all_variants[v]);
        for (int mode = 0; mode <= (taps_case ? 2 : q8_case ? 1 : 0); mode++) {
            bool quantized = mode > 0;
            for (int threaded = 0; threaded < 2; threaded++) {
                uniecg__seq_ctx ctx;
                uniecg_error err = {0};
                CHECK_STATUS(uniecg__seq_ctx_init(&ctx, all_variants[v], threaded ? pool : NULL, &err), UNIECG_OK, &err);
                for (int64_t i = 0; i < y->count; i++) out[i] = NAN; /* every value must be written */
                uniecg_status s = run_case(f, &ctx, quantized, mode == 2, out, &err);
                uniecg__seq_ctx_free(&ctx);
                CHECK_STATUS(s, UNIECG_OK, &err);
                if (s) continue;
                stats st = compare(out, y->data, y->count);
                if (!quantized) {
                    CHECK_MSG(st.rel <= F32_BAR, "%s [%s, %d thread(s)]: max error %.3g of the largest |y|", f->name,
                              vname, threaded ? 3 : 1, st.rel);
                    if (elementwise_op(f->op))
                        CHECK_MSG(st.elem <= F32_BAR, "%s [%s]: elementwise error %.3g", f->name, vname, st.elem);
                    if (!strcmp(f->op, "upsample_nearest"))
                        CHECK_MSG(st.mismatch == 0, "%s: %lld values differ", f->name, (long long)st.mismatch);
                    if (summary[row].f32_rel < st.rel) summary[row].f32_rel = st.rel;
                    if (elementwise_op(f->op) && summary[row].f32_elem < st.elem) summary[row].f32_elem = st.elem;
                } else {
                    CHECK_MSG(st.corr >= Q8_CORRELATION_BAR, "%s [%s q8, %d thread(s)]: correlation %.6f", f->name, vname,
                              threaded ? 3 : 1, st.corr);
                    summary[row].has_q8[all_variants[v]] = true;
                    if (summary[row].q8_corr[all_variants[v]] > st.corr) summary[row].q8_corr[all_variants[v]] = st.corr;
                    if (summary[row].q8_rel[all_variants[v]] < st.rel) summary[row].q8_rel[all_variants[v]] = st.rel;
                }
                if (mode == 2 && !threaded) { /* the same bits on every variant (kernels.h) */
                    if (v == 0) memcpy(taps_first, out, (size_t)y->count * sizeof(float));
                    else CHECK_MSG(memcmp(taps_first, out, (size_t)y->count * sizeof(float)) == 0,
                                   "%s [%s tap-major q8]: differs from the portable kernels", f->name, vname);
                }
                if (!threaded) {
                    memcpy(single, out, (size_t)y->count * sizeof(float));
                    printf("  %-28s %-12s %s  max err/max|y| %.2e%s", f->name, vname,
                           mode == 2 ? "q8t" : quantized ? "q8 " : "f32", st.rel, quantized ? "" : "\n");
                    if (quantized) printf("  corr %.7f\n", st.corr);
                } else {
                    stats same = compare(out, single, y->count);
                    CHECK_MSG(same.mismatch == 0, "%s [%s%s]: 3 threads differ from 1 in %lld values", f->name, vname,
                              quantized ? " q8" : "", (long long)same.mismatch);
                }
            }
        }
        /* Elementwise ops without weights do not use the kernels: one variant is enough. */
        if (!strcmp(f->op, "upsample_nearest") || elementwise_op(f->op)) break;
    }
    free(out);
    free(single);
    free(taps_first);
}

/* ---- refusals ---- */

static void expect_refusal(uniecg_status got, uniecg_status expected, const uniecg_error *err, const char *what) {
    CHECK_MSG(got == expected, "%s: got %s, expected %s", what, uniecg_status_string(got),
              uniecg_status_string(expected));
    CHECK_MSG(err->message[0] != 0, "%s: no error message", what);
    if (got == expected) printf("  refused %-44s %s\n", what, err->message);
}

static void test_refusals(void) {
    printf("bad shapes:\n");
    uniecg__seq_ctx ctx;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg__seq_ctx_init(&ctx, UNIECG_KERNELS_PORTABLE, NULL, &err), UNIECG_OK, &err);
    static float x[4096], y[4096], w[4096];
    static int8_t q8[4096];
#define REFUSE(expr, expected, what)                                                               \
    do {                                                                                           \
        memset(&err, 0, sizeof err);                                                               \
        expect_refusal((expr), (expected), &err, (what));                                          \
    } while (0)

    /* conv1d */
    uniecg__conv1d_shape cs = {4, 6, 7, 1, 3, 3};
    uniecg__weight cw = {.data = w, .dtype = UNIECG_DTYPE_F32, .rows = 6, .cols = 28};
    uniecg__weight cq = {.data = q8, .dtype = UNIECG_DTYPE_Q8, .rows = 6, .cols = 28};
    REFUSE(uniecg__seq_conv1d(&ctx, &cs, &cq, NULL, x, 16, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv1d q8 with c_in*k = 28");
    REFUSE(uniecg__seq_conv1d(&ctx, &cs, &cw, NULL, x, 0, y, &err), UNIECG_ERR_INVALID_ARGUMENT, "conv1d length 0");
    uniecg__conv1d_shape nopad = {4, 6, 7, 1, 0, 0};
    CHECK(uniecg__conv1d_out_length(&nopad, 6) == 0 && uniecg__conv1d_out_length(&nopad, 7) == 1);
    REFUSE(uniecg__seq_conv1d(&ctx, &nopad, &cw, NULL, x, 6, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv1d output length 0");
    uniecg__conv1d_shape stride0 = {4, 6, 7, 0, 3, 3};
    REFUSE(uniecg__seq_conv1d(&ctx, &stride0, &cw, NULL, x, 16, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv1d stride 0");
    uniecg__conv1d_shape negpad = {4, 6, 7, 1, -1, 3};
    REFUSE(uniecg__seq_conv1d(&ctx, &negpad, &cw, NULL, x, 16, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv1d negative padding");
    uniecg__weight wrong = cw;
    wrong.cols = 21;
    REFUSE(uniecg__seq_conv1d(&ctx, &cs, &wrong, NULL, x, 16, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv1d weight of the wrong shape");
    uniecg__weight half = cw;
    half.dtype = UNIECG_DTYPE_F16;
    REFUSE(uniecg__seq_conv1d(&ctx, &cs, &half, NULL, x, 16, y, &err), UNIECG_ERR_TYPE, "conv1d f16 weight");
    REFUSE(uniecg__seq_conv1d(&ctx, &cs, &cw, NULL, x, 16, x, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv1d in place");
    REFUSE(uniecg__seq_conv1d(&ctx, &cs, &cw, NULL, NULL, 16, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv1d NULL input");
    uniecg__conv1d_shape huge = {1 << 20, 6, 1, 1, 0, 0};
    uniecg__weight hw = {.data = w, .dtype = UNIECG_DTYPE_F32, .rows = 6, .cols = 1 << 20};
    REFUSE(uniecg__seq_conv1d(&ctx, &huge, &hw, NULL, x, 1 << 12, y, &err), UNIECG_ERR_LIMIT,
           "conv1d of 2^32 input values");

    /* conv_transpose1d */
    uniecg__conv_transpose1d_shape ts = {4, 8, 4, 2, 1, 0};
    uniecg__weight tw = {.data = w, .dtype = UNIECG_DTYPE_F32, .rows = 4, .cols = 32};
    CHECK(uniecg__conv_transpose1d_out_length(&ts, 8) == 16);
    uniecg__conv_transpose1d_shape outpad = {4, 8, 4, 2, 1, 2};
    REFUSE(uniecg__seq_conv_transpose1d(&ctx, &outpad, &tw, NULL, x, 8, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv_transpose1d output_padding >= stride");
    uniecg__conv_transpose1d_shape bigpad = {4, 8, 4, 2, 3, 0};
    REFUSE(uniecg__seq_conv_transpose1d(&ctx, &bigpad, &tw, NULL, x, 1, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv_transpose1d output length <= 0");
    uniecg__weight tq = {.data = q8, .dtype = UNIECG_DTYPE_Q8, .rows = 4, .cols = 24};
    uniecg__conv_transpose1d_shape ts6 = {4, 6, 4, 2, 1, 0};
    REFUSE(uniecg__seq_conv_transpose1d(&ctx, &ts6, &tq, NULL, x, 8, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv_transpose1d q8 with c_out*k = 24");
    REFUSE(uniecg__seq_conv_transpose1d(&ctx, &ts, &cw, NULL, x, 8, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "conv_transpose1d weight of the wrong shape");

    /* norms */
    REFUSE(uniecg__seq_group_norm(&ctx, x, 48, 16, 32, 1e-5f, NULL, NULL, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "group_norm 32 groups over 48 channels");
    REFUSE(uniecg__seq_group_norm(&ctx, x, 48, 16, 0, 1e-5f, NULL, NULL, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "group_norm 0 groups");
    REFUSE(uniecg__seq_group_norm(&ctx, x, 48, 0, 1, 1e-5f, NULL, NULL, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "group_norm length 0");
    REFUSE(uniecg__seq_group_norm(&ctx, x, 48, 16, 1, 1e-5f, w, NULL, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "group_norm gamma without beta");
    REFUSE(uniecg__seq_layer_norm(&ctx, x, 4, 0, 1e-5f, NULL, NULL, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "layer_norm dim 0");
    REFUSE(uniecg__seq_upsample_nearest(x, 4, 8, 0, y, &err), UNIECG_ERR_INVALID_ARGUMENT, "upsample factor 0");

    /* linear */
    uniecg__weight lw = {.data = w, .dtype = UNIECG_DTYPE_F32, .rows = 8, .cols = 16};
    REFUSE(uniecg__seq_linear(&ctx, &lw, NULL, x, 0, y, &err), UNIECG_ERR_INVALID_ARGUMENT, "linear 0 tokens");
    uniecg__weight lq = {.data = q8, .dtype = UNIECG_DTYPE_Q8, .rows = 8, .cols = 40};
    REFUSE(uniecg__seq_linear(&ctx, &lq, NULL, x, 1, y, &err), UNIECG_ERR_INVALID_ARGUMENT, "linear q8 of 40 columns");

    /* timestep embedding */
    uniecg__timestep_embedding_params tp = {.log_max_period = 10.0, .downscale_freq_shift = 1.0};
    REFUSE(uniecg__seq_timestep_embedding(&tp, 3.0f, 1, y, &err), UNIECG_ERR_INVALID_ARGUMENT, "timestep_embedding dim 1");
    REFUSE(uniecg__seq_timestep_embedding(&tp, 3.0f, 2, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "timestep_embedding half == shift");
    REFUSE(uniecg__seq_timestep_embedding(&tp, NAN, 64, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "timestep_embedding t = NaN");

    /* attention */
    uniecg__weight in_proj = {.data = w, .dtype = UNIECG_DTYPE_F32, .rows = 96, .cols = 32};
    uniecg__weight out_proj = {.data = w, .dtype = UNIECG_DTYPE_F32, .rows = 32, .cols = 32};
    uniecg__attention_weights a = {.heads = 5, .in_proj = &in_proj, .out_proj = &out_proj};
    REFUSE(uniecg__seq_mha(&ctx, &a, x, 4, x, x, 4, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "mha 5 heads over a width of 32");
    a.heads = 4;
    REFUSE(uniecg__seq_mha(&ctx, &a, x, 0, x, x, 4, y, &err), UNIECG_ERR_INVALID_ARGUMENT, "mha 0 queries");
    uniecg__attention_weights both = a;
    both.q_proj = both.k_proj = both.v_proj = &out_proj;
    REFUSE(uniecg__seq_mha(&ctx, &both, x, 4, x, x, 4, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "mha packed and separate projections");
    uniecg__weight in_proj_95 = in_proj;
    in_proj_95.rows = 95;
    uniecg__attention_weights a95 = a;
    a95.in_proj = &in_proj_95;
    REFUSE(uniecg__seq_mha(&ctx, &a95, x, 4, x, x, 4, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "mha in_proj of 95 rows");
    uniecg__weight out_wide = {.data = w, .dtype = UNIECG_DTYPE_F32, .rows = 32, .cols = 48};
    uniecg__attention_weights aw = a;
    aw.out_proj = &out_wide;
    REFUSE(uniecg__seq_mha(&ctx, &aw, x, 4, x, x, 4, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "mha out_proj of the wrong width");
    REFUSE(uniecg__seq_self_attention(&ctx, &a, x, 24, 4, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "self_attention of 24 channels into 32");
    REFUSE(uniecg__seq_cross_attention(&ctx, &a, x, 32, 4, x, 1, 40, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "cross_attention condition of the wrong width");
    REFUSE(uniecg__seq_cross_attention_one_token(&ctx, &a, x, 40, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "one-token cross_attention of the wrong width");
    uniecg__weight q40 = {.data = q8, .dtype = UNIECG_DTYPE_Q8, .rows = 32, .cols = 40};
    uniecg__attention_weights sep = {.heads = 4, .q_proj = &out_proj, .k_proj = &q40, .v_proj = &out_proj,
                                     .out_proj = &out_proj};
    REFUSE(uniecg__seq_mha(&ctx, &sep, x, 4, x, x, 4, y, &err), UNIECG_ERR_INVALID_ARGUMENT,
           "mha q8 k_proj of 40 columns");

    /* a variant this CPU cannot run */
    for (size_t v = 0; v < sizeof all_variants / sizeof *all_variants; v++)
        if (!uniecg_kernel_variant_supported(all_variants[v])) {
            uniecg__seq_ctx other;
            REFUSE(uniecg__seq_ctx_init(&other, all_variants[v], NULL, &err), UNIECG_ERR_INVALID_ARGUMENT,
                   "context with an unsupported kernel variant");
            break;
        }
    uniecg__seq_ctx_free(&ctx);
#undef REFUSE
}

/* ---- main ---- */

int main(void) {
    if (!find_fixtures()) {
        printf("cannot find Tests/Fixtures/diffusion_ops (set UNIECG_FIXTURES)\n0 passed, 1 failed\n");
        return 1;
    }
    size_t length = 0;
    char *manifest = (char *)read_file("manifest.txt", &length);
    CHECK_MSG(manifest != NULL, "cannot read %s/manifest.txt", fixtures);
    if (!manifest) return test_summary();
    uniecg_thread_pool *pool = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_thread_pool_create(3, &pool, &err), UNIECG_OK, &err);

    int cases = 0;
    char *save = NULL;
    for (char *line = strtok_r(manifest, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == 0) continue;
        fixture f;
        char why[256] = "";
        bool ok = parse_fixture(line, &f, why, sizeof why);
        CHECK_MSG(ok, "manifest line %d: %s", cases + 1, why);
        if (ok) test_fixture(&f, pool);
        free(f.blob);
        cases++;
    }
    CHECK_MSG(cases >= 40, "only %d fixture cases", cases);
    free(manifest);
    uniecg_thread_pool_free(pool);

    test_refusals();

    printf("\nworst errors per op (max |c - ref| / max |ref|; elementwise |c - ref| / max(1, |ref|)):\n");
    for (int i = 0; i < summary_count; i++) {
        printf("  %-20s f32 %.2e", summary[i].op, summary[i].f32_rel);
        if (summary[i].f32_elem > 0) printf(" (elementwise %.2e)", summary[i].f32_elem);
        for (int v = 0; v < MAX_VARIANTS; v++)
            if (summary[i].has_q8[v])
                printf("  q8 %s: corr >= %.6f, err %.2e", uniecg_kernel_variant_name((uniecg_kernel_variant)v),
                       summary[i].q8_corr[v], summary[i].q8_rel[v]);
        printf("\n");
    }
    return test_summary();
}
