/* The DiffuSETS VAE (uniecg_vae_*) against PyTorch: Tests/Fixtures/diffusets/small, written by
 * Tools/reference/make_diffusets_fixtures.py from diffusets.py's VAEEncoder / VAEDecoder (small
 * widths 16/16/32, GroupNorm 8, random weights), converted to .uecg by
 * Tools/reference/convert_diffusets_fixtures.sh:
 *   vae-none.uecg  f32 as stored: decode and encode (z, mean, logvar) within F32_BAR of torch
 *                  (max |c - ref| / max |ref|);
 *   vae-q8.uecg    kernels with c_in * k a multiple of 32 and the attention matrices in q8: the
 *                  outputs' Pearson correlation with torch's >= Q8_CORRELATION_BAR (printed).
 * Each file runs with every kernel variant this CPU supports, on 1 and on 2 threads, and the
 * two must agree bit for bit (every value is computed by one thread in a fixed order); the
 * portable kernels must reproduce the x86-64 recording in small/vae_portable.txt bit for bit
 * (`test_vae --record` rewrites it after a reconversion). Then the
 * refusals: files without vae.* keys or tensors (the error names them), NULL buffers,
 * non-finite input.
 *
 *   test_vae --bench [REPEATS [f32|q8]]   times decode of the published shape (widths
 *       128/256/512, GroupNorm 32, 12 x 1024) with random weights, f32 and q8, 1 and 2 threads;
 *       the files are written to a temporary directory and removed. */
#include "testing.h"

#include <math.h>
#include <time.h>

#define F32_BAR 1e-4
#define Q8_CORRELATION_BAR 0.999

static char fixtures[1024];

/* ---- the manifest's vae cases ---- */

enum { MAX_TENSORS = 8 };

typedef struct {
    char name[32];
    int64_t count;
    float *data;
} tensor;

typedef struct {
    int n;
    tensor t[MAX_TENSORS];
    float *blob;
} fixture;

static const float *T(const fixture *f, const char *name, int64_t count) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) {
            CHECK_MSG(f->t[i].count == count, "fixture tensor %s has %lld values, expected %lld", name,
                      (long long)f->t[i].count, (long long)count);
            return f->t[i].count == count ? f->t[i].data : NULL;
        }
    CHECK_MSG(false, "fixture lacks tensor %s", name);
    return NULL;
}

/* Case `name` of small/manifest.txt: its @tensors, read from <name>.bin (little-endian f32). */
static bool load_case(const char *name, fixture *f) {
    memset(f, 0, sizeof *f);
    char path[1200], line[2048];
    snprintf(path, sizeof path, "%s/small/manifest.txt", fixtures);
    FILE *m = fopen(path, "r");
    if (!m) return false;
    bool found = false;
    while (!found && fgets(line, sizeof line, m)) {
        char *save = NULL, *word = strtok_r(line, " \n", &save);
        if (!word || strcmp(word, name)) continue;
        found = true;
        while ((word = strtok_r(NULL, " \n", &save)))
            if (word[0] == '@' && f->n < MAX_TENSORS) {
                tensor *t = &f->t[f->n++];
                char *eq = strchr(word, '=');
                if (!eq) return fclose(m), false;
                snprintf(t->name, sizeof t->name, "%.*s", (int)(eq - word - 1), word + 1);
                t->count = 1;
                for (char *d = eq + 1; d; d = strchr(d, ',')) t->count *= atoll(*d == ',' ? ++d : d);
            }
    }
    fclose(m);
    if (!found) return false;
    int64_t total = 0;
    for (int i = 0; i < f->n; i++) total += f->t[i].count;
    snprintf(path, sizeof path, "%s/small/%s.bin", fixtures, name);
    FILE *b = fopen(path, "rb");
    if (!b) return false;
    unsigned char *bytes = malloc((size_t)total * 4 + 1);
    size_t got = fread(bytes, 1, (size_t)total * 4 + 1, b);
    fclose(b);
    if (got != (size_t)total * 4) {
        printf("%s: %zu bytes, the manifest lists %lld floats\n", path, got, (long long)total);
        free(bytes);
        return false;
    }
    f->blob = malloc((size_t)total * sizeof(float));
    for (int64_t k = 0; k < total; k++) {
        const unsigned char *p = bytes + 4 * k;
        uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&f->blob[k], &bits, 4);
    }
    free(bytes);
    for (int i = 0, at = 0; i < f->n; at += (int)f->t[i].count, i++) f->t[i].data = f->blob + at;
    return true;
}

/* ---- comparisons ---- */

typedef struct {
    double rel;  /* max |c - r| / max |r| */
    double corr; /* Pearson correlation */
} stats;

static stats compare(const float *got, const float *ref, int64_t n) {
    double max_ref = 0, max_err = 0, sg = 0, sr = 0, sgg = 0, srr = 0, sgr = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i], e = fabs(g - r);
        if (!(e <= max_err)) max_err = e; /* NaN propagates */
        if (fabs(r) > max_ref) max_ref = fabs(r);
        sg += g, sr += r, sgg += g * g, srr += r * r, sgr += g * r;
    }
    double cov = sgr - sg * sr / (double)n, vg = sgg - sg * sg / (double)n, vr = srr - sr * sr / (double)n;
    return (stats){.rel = max_ref > 0 ? max_err / max_ref : max_err,
                   .corr = vg > 0 && vr > 0 ? cov / sqrt(vg * vr) : (max_err == 0 ? 1.0 : 0.0)};
}

static void check_close(const char *what, const char *file, const char *variant, int threads, bool q8,
                        const float *got, const float *ref, int64_t n) {
    stats s = compare(got, ref, n);
    if (q8) {
        printf("  %-8s %-12s %d thread(s) %-7s correlation %.6f (rel %.2e)\n", file, variant, threads, what, s.corr, s.rel);
        CHECK_MSG(s.corr >= Q8_CORRELATION_BAR, "%s %s %s %d threads: correlation %.6f < %g", file, what, variant,
                  threads, s.corr, Q8_CORRELATION_BAR);
    } else {
        printf("  %-8s %-12s %d thread(s) %-7s rel error %.2e\n", file, variant, threads, what, s.rel);
        CHECK_MSG(s.rel <= F32_BAR, "%s %s %s %d threads: relative error %.3e > %g", file, what, variant, threads,
                  s.rel, F32_BAR);
    }
}

/* ---- the cross-architecture recording ----
 * small/vae_portable.txt holds the XXH64 of every output of the portable kernels on 1 thread,
 * recorded on x86-64 by `test_vae --record`: every architecture must reproduce them bit for bit
 * (the core rounds as written, without implicit FMA contraction). Each line names the converted
 * file's own XXH64, so a reconverted fixture asks for a new recording instead of failing
 * obscurely. */

static bool recording;
static char record_lines[16][160];
static int n_record_lines;

static uint64_t file_hash(const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/small/%s", fixtures, name);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)size + 1);
    uint64_t hash = bytes && fread(bytes, 1, (size_t)size, f) == (size_t)size ? uniecg_xxh64(bytes, (size_t)size, 0) : 0;
    free(bytes);
    fclose(f);
    return hash;
}

static void recorded(const char *file, const char *output, const float *values, int64_t n) {
    char line[160];
    snprintf(line, sizeof line, "%s %016llx %s %016llx", file, (unsigned long long)file_hash(file), output,
             (unsigned long long)uniecg_xxh64(values, (size_t)n * sizeof(float), 0));
    if (recording) {
        if (n_record_lines < 16) snprintf(record_lines[n_record_lines++], sizeof record_lines[0], "%s", line);
        return;
    }
    char path[1200], text[160];
    snprintf(path, sizeof path, "%s/small/vae_portable.txt", fixtures);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "%s is missing: record it on x86-64 with test_vae --record", path);
    if (!f) return;
    bool found = false, same_file = false;
    size_t prefix = strlen(file) + 18; /* "<file> <16 hex> " */
    while (fgets(text, sizeof text, f)) {
        text[strcspn(text, "\n")] = 0;
        if (!strncmp(text, line, prefix)) same_file = true;
        if (!strcmp(text, line)) found = true;
    }
    fclose(f);
    CHECK_MSG(same_file, "vae_portable.txt was recorded for another %s: rerun test_vae --record on x86-64", file);
    CHECK_MSG(!same_file || found, "%s %s with the portable kernels differs from the x86-64 recording (%s)", file,
              output, line);
}

static const uniecg_kernel_variant all_variants[] = {UNIECG_KERNELS_PORTABLE, UNIECG_KERNELS_AVX2, UNIECG_KERNELS_NEON,
                                                     UNIECG_KERNELS_NEON_DOTPROD};

static uniecg_model_file *open_file(const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/small/%s", fixtures, name);
    uniecg_model_file *file = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
    return file;
}

/* Decode and encode of one converted file against torch, every variant, 1 and 2 threads. */
static void test_file(const char *name, bool q8, const fixture *dec, const fixture *enc) {
    uniecg_model_file *file = open_file(name);
    if (!file) return;
    uniecg_error err = {0};
    const int64_t n_sig = 12 * 1024, n_lat = 4 * 128;
    const float *z_in = T(dec, "z", n_lat), *ecg_ref = T(dec, "ecg", n_sig);
    const float *ecg_in = T(enc, "ecg", n_sig), *noise = T(enc, "noise", n_lat), *z_ref = T(enc, "z", n_lat);
    const float *mean_ref = T(enc, "mean", n_lat), *logvar_ref = T(enc, "logvar", n_lat);
    if (!z_in || !ecg_ref || !ecg_in || !noise || !z_ref || !mean_ref || !logvar_ref) {
        uniecg_model_file_free(file);
        return;
    }
    float *sig[2], *lat[2], *mean[2], *logvar[2], *det = malloc(n_lat * sizeof(float));
    float *mean_scaled = malloc(n_lat * sizeof(float)), *z_copy = malloc(n_lat * sizeof(float));
    float *again = malloc(n_sig * sizeof(float));
    for (int i = 0; i < 2; i++) {
        sig[i] = malloc(n_sig * sizeof(float));
        lat[i] = malloc(n_lat * sizeof(float));
        mean[i] = malloc(n_lat * sizeof(float));
        logvar[i] = malloc(n_lat * sizeof(float));
    }
    memcpy(z_copy, z_in, n_lat * sizeof(float));
    for (size_t v = 0; v < sizeof all_variants / sizeof *all_variants; v++) {
        if (!uniecg_kernel_variant_supported(all_variants[v])) continue;
        const char *vname = uniecg_kernel_variant_name(all_variants[v]);
        for (int threads = 1; threads <= 2; threads++) {
            int k = threads - 1;
            uniecg_vae_params params = uniecg_vae_default_params();
            params.kernels = all_variants[v];
            params.n_threads = threads;
            uniecg_vae *vae = NULL;
            CHECK_STATUS(uniecg_vae_create(file, params, &vae, &err), UNIECG_OK, &err);
            if (!vae) continue;
            uniecg_vae_info info;
            uniecg_vae_get_info(vae, &info);
            CHECK(info.signal_channels == 12 && info.signal_length == 1024 && info.latent_channels == 4 &&
                  info.latent_length == 128 && info.widths[0] == 16 && info.widths[2] == 32 && info.groups == 8 &&
                  info.n_threads == threads && info.kernels == all_variants[v]);
            CHECK(fabs(info.scale - 0.18215) < 1e-12 && fabs(info.sample_rate - 102.4) < 1e-12);

            CHECK_STATUS(uniecg_vae_decode(vae, z_in, sig[k], &err), UNIECG_OK, &err);
            check_close("decode", name, vname, threads, q8, sig[k], ecg_ref, n_sig);
            CHECK_MSG(!memcmp(z_in, z_copy, n_lat * sizeof(float)), "decode modified the caller's latent");

            CHECK_STATUS(uniecg_vae_encode(vae, ecg_in, noise, lat[k], mean[k], logvar[k], &err), UNIECG_OK, &err);
            check_close("z", name, vname, threads, q8, lat[k], z_ref, n_lat);
            check_close("mean", name, vname, threads, q8, mean[k], mean_ref, n_lat);
            check_close("logvar", name, vname, threads, q8, logvar[k], logvar_ref, n_lat);
            if (all_variants[v] == UNIECG_KERNELS_PORTABLE && threads == 1) {
                recorded(name, "decode", sig[k], n_sig);
                recorded(name, "z", lat[k], n_lat);
                recorded(name, "mean", mean[k], n_lat);
                recorded(name, "logvar", logvar[k], n_lat);
            }

            /* Without noise the latent is the mean, scaled: exactly mean * scale in float. */
            CHECK_STATUS(uniecg_vae_encode(vae, ecg_in, NULL, det, NULL, NULL, &err), UNIECG_OK, &err);
            for (int64_t i = 0; i < n_lat; i++) mean_scaled[i] = mean[k][i] * (float)0.18215;
            CHECK_MSG(!memcmp(det, mean_scaled, n_lat * sizeof(float)), "%s %s: noise-free latent != mean * scale",
                      name, vname);

            /* A second call gives the same bits (no state carried between calls). */
            CHECK_STATUS(uniecg_vae_decode(vae, z_in, again, &err), UNIECG_OK, &err);
            CHECK_MSG(!memcmp(again, sig[k], n_sig * sizeof(float)), "%s %s: a repeated decode differs", name, vname);
            uniecg_vae_free(vae);
        }
        CHECK_MSG(!memcmp(sig[0], sig[1], n_sig * sizeof(float)), "%s %s: decode on 1 and 2 threads differs", name, vname);
        CHECK_MSG(!memcmp(lat[0], lat[1], n_lat * sizeof(float)) && !memcmp(mean[0], mean[1], n_lat * sizeof(float)) &&
                      !memcmp(logvar[0], logvar[1], n_lat * sizeof(float)),
                  "%s %s: encode on 1 and 2 threads differs", name, vname);
    }
    for (int i = 0; i < 2; i++) free(sig[i]), free(lat[i]), free(mean[i]), free(logvar[i]);
    free(det);
    free(mean_scaled);
    free(z_copy);
    free(again);
    uniecg_model_file_free(file);
}

/* ---- refusals ---- */

/* Copies `src`'s metadata into a new file at `path`, replacing the string at `replace_key` (when
 * not NULL) by `replace_value` and leaving out `drop_key`; with or without src's tensors. */
static bool rewrite(const uniecg_model_file *src, const char *path, const char *drop_key, const char *replace_key,
                    const char *replace_value, bool tensors) {
    uniecg_model_writer *w = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_writer_create(path, uniecg_writer_default_params(), &w, &err), UNIECG_OK, &err);
    if (!w) return false;
    uniecg_file_summary sum;
    uniecg_model_file_summary(src, &sum);
    bool ok = true;
    for (uint32_t i = 0; i < sum.metadata_count && ok; i++) {
        uniecg_meta_entry e;
        ok = uniecg_model_file_meta_at(src, i, &e) == UNIECG_OK;
        if (!ok || (drop_key && !strcmp(e.key, drop_key))) continue;
        switch (e.type) {
        case UNIECG_META_STRING:
            if (replace_key && !strcmp(e.key, replace_key))
                ok = uniecg_model_writer_set_string(w, e.key, replace_value, strlen(replace_value)) == UNIECG_OK;
            else ok = uniecg_model_writer_set_string(w, e.key, e.string_value, e.string_length) == UNIECG_OK;
            break;
        case UNIECG_META_I64: ok = uniecg_model_writer_set_i64(w, e.key, e.i64_value) == UNIECG_OK; break;
        case UNIECG_META_F64: ok = uniecg_model_writer_set_f64(w, e.key, e.f64_value) == UNIECG_OK; break;
        case UNIECG_META_BOOL: ok = uniecg_model_writer_set_bool(w, e.key, e.bool_value) == UNIECG_OK; break;
        case UNIECG_META_I64_ARRAY:
            ok = uniecg_model_writer_set_array(w, e.key, e.type, e.array, e.count) == UNIECG_OK;
            break;
        default: ok = false;
        }
    }
    for (uint32_t i = 0; tensors && i < sum.tensor_count && ok; i++) {
        uniecg_tensor_info t;
        ok = uniecg_model_file_tensor_at(src, i, &t) == UNIECG_OK &&
             uniecg_model_writer_add_tensor(w, t.name, t.dtype, t.rank, t.shape, t.data, t.raw_size,
                                            UNIECG_ENCODING_RAW, NULL) == UNIECG_OK;
    }
    CHECK_MSG(ok, "rewriting %s: %s", path, uniecg_model_writer_last_error(w));
    ok = ok && uniecg_model_writer_finish(w) == UNIECG_OK;
    uniecg_model_writer_free(w);
    return ok;
}

static void expect_create_error(const char *path, uniecg_status expected, const char *needle) {
    uniecg_model_file *file = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
    if (!file) return;
    uniecg_vae *vae = NULL;
    uniecg_vae_params params = uniecg_vae_default_params();
    params.n_threads = 1;
    CHECK_STATUS(uniecg_vae_create(file, params, &vae, &err), expected, &err);
    CHECK_MSG(vae == NULL, "a failed create must leave *out NULL");
    CHECK_MSG(strstr(err.message, needle) != NULL, "error '%s' should name '%s'", err.message, needle);
    uniecg_vae_free(vae);
    uniecg_model_file_free(file);
}

static void test_refusals(void) {
    uniecg_model_file *src = open_file("vae-none.uecg");
    if (!src) return;
    test_make_dir("uniecg-vae");
    char path[400];

    /* No vae.* keys at all: the first key read is named. */
    test_path(path, sizeof path, "no-vae.uecg");
    if (rewrite(src, path, "vae.architecture", NULL, NULL, false))
        expect_create_error(path, UNIECG_ERR_NOT_FOUND, "vae.architecture");
    /* A missing key further down. */
    test_path(path, sizeof path, "no-groups.uecg");
    if (rewrite(src, path, "vae.groups", NULL, NULL, true)) expect_create_error(path, UNIECG_ERR_NOT_FOUND, "vae.groups");
    /* Metadata but no tensors: the first tensor is named. */
    test_path(path, sizeof path, "no-tensors.uecg");
    if (rewrite(src, path, NULL, NULL, NULL, false))
        expect_create_error(path, UNIECG_ERR_NOT_FOUND, "vae.encoder.0.conv");
    /* Another architecture. */
    test_path(path, sizeof path, "other-arch.uecg");
    if (rewrite(src, path, NULL, "vae.architecture", "sd-vae2d", true))
        expect_create_error(path, UNIECG_ERR_VERSION, "sd-vae2d");

    uniecg_error err = {0};
    uniecg_vae *vae = NULL;
    CHECK_STATUS(uniecg_vae_create(NULL, uniecg_vae_default_params(), &vae, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
    CHECK_STATUS(uniecg_vae_create(src, uniecg_vae_default_params(), NULL, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
    uniecg_vae_params params = uniecg_vae_default_params();
    params.n_threads = -1;
    CHECK_STATUS(uniecg_vae_create(src, params, &vae, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
    params.n_threads = 1;
    CHECK_STATUS(uniecg_vae_create(src, params, &vae, &err), UNIECG_OK, &err);
    if (vae) {
        float *lat = calloc(4 * 128, sizeof(float)), *sig = calloc(12 * 1024, sizeof(float));
        CHECK_STATUS(uniecg_vae_decode(vae, NULL, sig, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
        CHECK_STATUS(uniecg_vae_decode(vae, lat, NULL, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
        CHECK_STATUS(uniecg_vae_decode(NULL, lat, sig, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
        CHECK_STATUS(uniecg_vae_encode(vae, NULL, NULL, lat, NULL, NULL, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
        CHECK_STATUS(uniecg_vae_encode(vae, sig, NULL, NULL, NULL, NULL, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
        lat[3 * 128 + 5] = NAN;
        CHECK_STATUS(uniecg_vae_decode(vae, lat, sig, &err), UNIECG_ERR_RANGE, &err);
        CHECK_MSG(strstr(err.message, "channel 3, position 5"), "error '%s' should name channel 3, position 5", err.message);
        sig[7 * 1024 + 1000] = INFINITY;
        CHECK_STATUS(uniecg_vae_encode(vae, sig, NULL, lat, NULL, NULL, &err), UNIECG_ERR_RANGE, &err);
        CHECK_MSG(strstr(err.message, "channel 7, position 1000"), "error '%s' should name channel 7, position 1000",
                  err.message);
        free(lat);
        free(sig);
    }
    uniecg_vae_free(vae);
    uniecg_vae_free(NULL); /* freeing NULL does nothing */
    uniecg_model_file_free(src);
    test_cleanup_dir();
}

/* ---- benchmark: the published decoder shape ---- */

/* Writes a random-weight file of the published shape (N(0,1)-like uniform / sqrt(fan_in)
 * kernels, so activations stay O(1) as in the fixtures' recipe). q8: every kernel whose rows
 * are a multiple of 32 and the attention matrices quantized, as the converter does. */
static bool write_published(const char *path, bool q8) {
    uniecg_model_writer *w = NULL;
    uniecg_error err = {0};
    uniecg_writer_params wp = uniecg_writer_default_params();
    if (uniecg_model_writer_create(path, wp, &w, &err)) return printf("%s\n", err.message), false;
    const int64_t widths[3] = {128, 256, 512};
    bool ok = !uniecg_model_writer_set_string(w, "general.architecture", "uniecg", 6) &&
              !uniecg_model_writer_set_string(w, "vae.architecture", "diffusets-vae1d", 15) &&
              !uniecg_model_writer_set_i64(w, "vae.signal_channels", 12) &&
              !uniecg_model_writer_set_i64(w, "vae.signal_length", 1024) &&
              !uniecg_model_writer_set_f64(w, "vae.sample_rate", 102.4) &&
              !uniecg_model_writer_set_i64(w, "vae.latent_channels", 4) &&
              !uniecg_model_writer_set_array(w, "vae.widths", UNIECG_META_I64_ARRAY, widths, 3) &&
              !uniecg_model_writer_set_i64(w, "vae.groups", 32) && !uniecg_model_writer_set_f64(w, "vae.norm_eps", 1e-5) &&
              !uniecg_model_writer_set_f64(w, "vae.scale", 0.18215) &&
              !uniecg_model_writer_set_f64(w, "vae.logvar_min", -30) &&
              !uniecg_model_writer_set_f64(w, "vae.logvar_max", 20);
    /* The tensor list, spelled as the format section lists it. */
    typedef struct { const char *part; int idx; char kind; int64_t cin, cout, k; } layer;
    const int64_t a = 128, b = 256, c = 512;
    const layer layers[] = {
        {"encoder", 0, 'c', 12, a, 3},  {"encoder", 1, 'r', a, a, 0},   {"encoder", 2, 'r', a, a, 0},
        {"encoder", 3, 'c', a, a, 3},   {"encoder", 4, 'r', a, b, 0},   {"encoder", 5, 'r', b, b, 0},
        {"encoder", 6, 'c', b, b, 3},   {"encoder", 7, 'r', b, c, 0},   {"encoder", 8, 'r', c, c, 0},
        {"encoder", 9, 'c', c, c, 3},   {"encoder", 10, 'r', c, c, 0},  {"encoder", 11, 'r', c, c, 0},
        {"encoder", 12, 'r', c, c, 0},  {"encoder", 13, 'a', c, c, 0},  {"encoder", 14, 'r', c, c, 0},
        {"encoder", 15, 'n', c, c, 0},  {"encoder", 17, 'c', c, 8, 3},  {"encoder", 18, 'c', 8, 8, 1},
        {"decoder", 0, 'c', 4, 4, 1},   {"decoder", 1, 'c', 4, c, 3},   {"decoder", 2, 'r', c, c, 0},
        {"decoder", 3, 'a', c, c, 0},   {"decoder", 4, 'r', c, c, 0},   {"decoder", 5, 'r', c, c, 0},
        {"decoder", 6, 'r', c, c, 0},   {"decoder", 7, 'r', c, c, 0},   {"decoder", 9, 'c', c, c, 3},
        {"decoder", 10, 'r', c, c, 0},  {"decoder", 11, 'r', c, c, 0},  {"decoder", 12, 'r', c, c, 0},
        {"decoder", 14, 'c', c, c, 3},  {"decoder", 15, 'r', c, b, 0},  {"decoder", 16, 'r', b, b, 0},
        {"decoder", 17, 'r', b, b, 0},  {"decoder", 19, 'c', b, b, 3},  {"decoder", 20, 'r', b, a, 0},
        {"decoder", 21, 'r', a, a, 0},  {"decoder", 22, 'r', a, a, 0},  {"decoder", 23, 'n', a, a, 0},
        {"decoder", 25, 'c', a, 12, 3},
    };
    float *buf = malloc((size_t)(3 * c * c) * sizeof(float));
    void *qbuf = malloc((size_t)(3 * c * c) * 2);
    char name[96];
    /* One tensor: rows x cols values, a matrix for weights (convolutions (c_out, c_in * k)),
     * else a vector. kind 'w' weight, 'b' bias, 'g' norm gain. */
#define ADD(suffix, rows, cols, k, kindc)                                                                              \
    do {                                                                                                               \
        snprintf(name, sizeof name, "vae.%s.%d.%s", L->part, L->idx, suffix);                                          \
        int64_t n_ = (int64_t)(rows) * (cols);                                                                         \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                                                          \
            float u_ = test_uniform() * 1.7320508f; /* unit variance */                                              \
            buf[i_] = (kindc) == 'w' ? u_ / sqrtf((float)(cols)) : (kindc) == 'g' ? 1 + 0.2f * u_ : 0.1f * u_;        \
        }                                                                                                              \
        uint64_t shape_[2] = {(uint64_t)(rows), (uint64_t)(cols)};                                                     \
        uint32_t rank_ = (kindc) != 'w' ? 1 : 2;                                                                       \
        if ((kindc) == 'w' && q8 && (cols) % 32 == 0) {                                                                \
            uint64_t bytes_ = 0;                                                                                       \
            uniecg_dtype_payload_size(UNIECG_DTYPE_Q8, (uint64_t)n_, &bytes_);                                         \
            ok = ok && !uniecg_quantize_q8(buf, UNIECG_DTYPE_F32, (uint64_t)(rows), (uint64_t)(cols), qbuf, NULL) &&   \
                 !uniecg_model_writer_add_tensor(w, name, UNIECG_DTYPE_Q8, rank_, shape_, qbuf, bytes_,                \
                                                 UNIECG_ENCODING_RAW, NULL);                                           \
        } else {                                                                                                       \
            ok = ok && !uniecg_model_writer_add_tensor(w, name, UNIECG_DTYPE_F32, rank_, shape_, buf,                 \
                                                       (uint64_t)n_ * 4, UNIECG_ENCODING_RAW, NULL);                   \
        }                                                                                                              \
    } while (0)
    for (size_t i = 0; i < sizeof layers / sizeof *layers && ok; i++) {
        const layer *L = &layers[i];
        switch (L->kind) {
        case 'c':
            ADD("conv", L->cout, L->cin * L->k, L->k, 'w');
            ADD("conv_bias", L->cout, 1, 0, 'b');
            break;
        case 'n':
            ADD("norm", L->cin, 1, 0, 'g');
            ADD("norm_bias", L->cin, 1, 0, 'b');
            break;
        case 'a':
            ADD("attn_in", 3 * L->cin, L->cin, 0, 'w');
            ADD("attn_in_bias", 3 * L->cin, 1, 0, 'b');
            ADD("attn_out", L->cin, L->cin, 0, 'w');
            ADD("attn_out_bias", L->cin, 1, 0, 'b');
            break;
        case 'r':
            ADD("norm_1", L->cin, 1, 0, 'g');
            ADD("norm_1_bias", L->cin, 1, 0, 'b');
            ADD("conv_1", L->cout, L->cin * 3, 3, 'w');
            ADD("conv_1_bias", L->cout, 1, 0, 'b');
            ADD("norm_2", L->cout, 1, 0, 'g');
            ADD("norm_2_bias", L->cout, 1, 0, 'b');
            ADD("conv_2", L->cout, L->cout * 3, 3, 'w');
            ADD("conv_2_bias", L->cout, 1, 0, 'b');
            if (L->cin != L->cout) {
                ADD("skip", L->cout, L->cin, 1, 'w');
                ADD("skip_bias", L->cout, 1, 0, 'b');
            }
            break;
        }
    }
#undef ADD
    free(buf);
    free(qbuf);
    ok = ok && !uniecg_model_writer_finish(w);
    if (!ok) printf("writing %s: %s\n", path, uniecg_model_writer_last_error(w));
    uniecg_model_writer_free(w);
    return ok;
}

static int bench(int repeats, const char *only) {
    test_make_dir("uniecg-vae-bench");
    printf("published VAE decoder shape (4 x 128 -> 12 x 1024, widths 128/256/512), random weights; best and "
           "median of %d decodes after one warm-up\n", repeats);
    printf("| weights | threads | best ms | median ms | best CPU ms |\n|---|---|---|---|---|\n");
    float *lat = malloc(4 * 128 * sizeof(float)), *sig = malloc(12 * 1024 * sizeof(float));
    uniecg_normal_noise(1, lat, 4 * 128);
    for (int q = 0; q < 2; q++) {
        if (only && strcmp(only, q ? "q8" : "f32")) continue;
        char path[400];
        test_path(path, sizeof path, q ? "published-q8.uecg" : "published-f32.uecg");
        if (!write_published(path, q)) return 1;
        uniecg_model_file *file = NULL;
        uniecg_error err = {0};
        if (uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err)) return printf("%s\n", err.message), 1;
        for (int threads = 1; threads <= 2; threads++) {
            uniecg_vae_params params = uniecg_vae_default_params();
            params.n_threads = threads;
            uniecg_vae *vae = NULL;
            if (uniecg_vae_create(file, params, &vae, &err)) return printf("%s\n", err.message), 1;
            /* Wall time, and the process's CPU time (all threads): on a shared machine the CPU
             * time of a one-thread run is the steadier figure. */
            double t[64], cpu[64];
            if (repeats > 64) repeats = 64;
            if (uniecg_vae_decode(vae, lat, sig, &err)) return printf("%s\n", err.message), 1;
            for (int r = 0; r < repeats; r++) {
                double t0 = test_clock_seconds(CLOCK_MONOTONIC), c0 = test_clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
                uniecg_vae_decode(vae, lat, sig, &err);
                t[r] = test_clock_seconds(CLOCK_MONOTONIC) - t0;
                cpu[r] = test_clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
            }
            qsort(t, (size_t)repeats, sizeof *t, test_by_value);
            qsort(cpu, (size_t)repeats, sizeof *cpu, test_by_value);
            double sd = 0;
            for (int i = 0; i < 12 * 1024; i++) sd += (double)sig[i] * sig[i];
            /* One encode of the decoded signal, timed once: the encoder runs at the same shape. */
            float *back = malloc(4 * 128 * sizeof(float));
            double e0 = test_clock_seconds(CLOCK_MONOTONIC);
            uniecg_status es = uniecg_vae_encode(vae, sig, NULL, back, NULL, NULL, &err);
            double encode_ms = (test_clock_seconds(CLOCK_MONOTONIC) - e0) * 1e3;
            free(back);
            if (es) return printf("%s\n", err.message), 1;
            printf("| %s | %d | %.1f | %.1f | %.1f |   (output rms %.3f; one encode %.1f ms)\n", q ? "q8" : "f32", threads,
                   t[0] * 1e3, t[repeats / 2] * 1e3, cpu[0] * 1e3, sqrt(sd / (12 * 1024)), encode_ms);
            uniecg_vae_free(vae);
        }
        uniecg_model_file_free(file);
        remove(path);
    }
    free(lat);
    free(sig);
    test_cleanup_dir();
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) return bench(argc > 2 ? atoi(argv[2]) : 7, argc > 3 ? argv[3] : NULL);
    recording = argc > 1 && !strcmp(argv[1], "--record");
#if !defined(__x86_64__)
    if (recording) return printf("--record is for x86-64 only\n"), 1;
#endif
    if (!test_find_fixtures("diffusets", "small/manifest.txt", fixtures, sizeof fixtures)) {
        printf("FAIL: Tests/Fixtures/diffusets not found (set UNIECG_FIXTURES)\n");
        return 1;
    }
    fixture dec, enc;
    CHECK_MSG(load_case("vae_decode", &dec), "cannot read the vae_decode case");
    CHECK_MSG(load_case("vae_encode", &enc), "cannot read the vae_encode case");
    printf("f32 bar: max |c - ref| / max |ref| <= %g; q8 bar: correlation >= %g\n", F32_BAR, Q8_CORRELATION_BAR);
    test_file("vae-none.uecg", false, &dec, &enc);
    test_file("vae-q8.uecg", true, &dec, &enc);
    test_refusals();
    if (recording) {
        char path[1200];
        snprintf(path, sizeof path, "%s/small/vae_portable.txt", fixtures);
        FILE *f = fopen(path, "w");
        CHECK_MSG(f != NULL, "cannot write %s", path);
        if (f) {
            fprintf(f, "# Recorded by CRuntime/tests/test_vae.c --record on x86-64: XXH64 of the outputs of the\n"
                       "# portable kernels on 1 thread (decode of vae_decode's z; encode of vae_encode's ecg and noise),\n"
                       "# which every architecture must reproduce bit for bit.\n"
                       "# <converted file> <its XXH64> <output> <XXH64 of the little-endian f32 values>\n");
            for (int i = 0; i < n_record_lines; i++) fprintf(f, "%s\n", record_lines[i]);
            fclose(f);
            printf("recorded %s\n", path);
        }
    }
    free(dec.blob);
    free(enc.blob);
    return test_summary();
}
