/* The latent U-Net (CRuntime/diffusion/unet.c) and the guided sampler against the PyTorch
 * reference: fixtures written by Tools/reference/make_diffusets_fixtures.py
 * (Tests/Fixtures/diffusets/{small,tiny-k5}), converted to .uecg by
 * Tools/reference/convert_diffusets_fixtures.sh (unet-none.uecg: f32 as stored; unet-q8.uecg).
 *
 * For each configuration, quantization, kernel variant this CPU supports, and 1 and 2 threads:
 *   - unet_trace_down0: every intermediate of the first down block;
 *   - unet_forward (batch 1, t 500) and unet_forward_b2 (t 999 and 17, the second condition
 *     null): f32 weights within 1e-4 relative (max |c - ref| / max |ref|), q8 correlation >=
 *     0.999 (errors printed); row 1 of the batch equals a batch-1 call bit for bit;
 *   - 2 threads give the 1-thread result bit for bit;
 *   - small only, sample_ddim10: the 10-step classifier-free-guided DDIM sample (guidance 2,
 *     seed 42), step by step: the initial noise exactly, then each step teacher-forced (from the
 *     reference's previous latent: the forward bars) and free-running (our own trajectory:
 *     looser measured bars, see check_sample), and uniecg_diffusion_sample's final latent equal
 *     to the step-by-step loop's bit for bit.
 * Then: the sinusoid table against time_table.bin, the condition cache, batches of 3 and 5 on 2
 * threads equal to batch-1 calls, the sampler's progress / cancellation / guidance off / DDPM
 * noise seeds, bad input (missing tensor or key named, batch 0, NaN condition or latent,
 * timestep out of range, a schedule of other training steps), and the cross-architecture
 * fixture (glibc's log1pf and tanhf, used by Mish, differ in the last bit between x86-64 and
 * arm64, so the portable sample agrees to about 4e-6 there, not bit for bit):
 *   test_unet --record   (x86-64, portable kernels) writes small/cross_arch.txt: the latent of a
 *                        seeded 10-step guided DDPM sample (per-step noise included) and the
 *                        XXH64 of unet-none.uecg;
 *   test_unet            checks it within 1e-5 (relative, as above) with portable kernels on
 *                        every architecture and prints the deviation of the SIMD variants
 *                        (held to 1e-3: f32 weights, only the summation order differs).
 *   test_unet --bench FILE [REPEATS]   times uniecg_unet_predict on FILE (batch 1 and 2, 1 and
 *                        2 threads); Tools/reference/bench_unet.py runs it beside PyTorch.
 *   test_unet --bench-sample FILE [REPEATS [STEPS [GUIDANCE]]]   times whole samples (the file's
 *                        scheduler, guided, then the VAE decode); Tools/reference/bench_sample.py. */
#include "testing.h"

#include "../diffusion/ops.h"
#include "../diffusion/unet.h"

#include <math.h>

#define F32_BAR 1e-4
#define Q8_CORRELATION_BAR 0.999
#define CROSS_ARCH_BAR 1e-5

static char root[1024]; /* Tests/Fixtures/diffusets */

/* ---- files and the manifest ---- */

static unsigned char *read_all(const char *path, size_t *length) {
    return test_read_path(path, length);
}

enum { MAX_TENSORS = 16 };

typedef struct {
    char name[32];
    int64_t shape[4], count;
    int rank;
    float *data;
} tensor;

typedef struct {
    char params[512];
    int n;
    tensor t[MAX_TENSORS];
    float *blob;
} fixture;

/* The manifest line of case `name` in <config>/manifest.txt, with its tensors; false when absent. */
static bool load_case(const char *config, const char *name, fixture *f) {
    memset(f, 0, sizeof *f);
    char path[1400];
    snprintf(path, sizeof path, "%s/%s/manifest.txt", root, config);
    size_t length;
    char *text = (char *)read_all(path, &length);
    if (!text) return false;
    bool found = false;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && !found; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(name);
        if (strncmp(line, name, n) != 0 || line[n] != ' ') continue;
        found = true;
        int64_t total = 0;
        char *wsave = NULL;
        for (char *w = strtok_r(line + n + 1, " ", &wsave); w; w = strtok_r(NULL, " ", &wsave)) {
            char *eq = strchr(w, '=');
            if (!eq) continue;
            if (w[0] != '@') {
                snprintf(f->params + strlen(f->params), sizeof f->params - strlen(f->params), " %s", w);
                continue;
            }
            tensor *t = &f->t[f->n++];
            *eq = 0;
            snprintf(t->name, sizeof t->name, "%.30s", w + 1);
            t->count = 1;
            char *dsave = NULL;
            for (char *d = strtok_r(eq + 1, ",", &dsave); d && t->rank < 4; d = strtok_r(NULL, ",", &dsave)) {
                t->shape[t->rank++] = atoll(d);
                t->count *= t->shape[t->rank - 1];
            }
            total += t->count;
        }
        snprintf(path, sizeof path, "%s/%s/%s.bin", root, config, name);
        size_t bytes_length;
        unsigned char *bytes = read_all(path, &bytes_length);
        CHECK_MSG(bytes && bytes_length == (size_t)total * 4, "%s: %zu bytes, the manifest lists %lld floats", path,
                  bytes ? bytes_length : 0, (long long)total);
        if (!bytes || bytes_length != (size_t)total * 4) {
            free(bytes);
            free(text);
            return false;
        }
        f->blob = malloc(bytes_length);
        for (int64_t k = 0; k < total; k++) { /* little-endian float32 */
            const unsigned char *b = bytes + 4 * k;
            uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            memcpy(&f->blob[k], &bits, 4);
        }
        free(bytes);
        int64_t offset = 0;
        for (int i = 0; i < f->n; i++) {
            f->t[i].data = f->blob + offset;
            offset += f->t[i].count;
        }
    }
    free(text);
    return found;
}

static const tensor *get(const fixture *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    CHECK_MSG(false, "fixture lacks tensor %s", name);
    return NULL;
}

/* "t=999,17" -> values */
static int param_ints(const fixture *f, const char *key, int32_t *out, int max) {
    char pattern[40];
    snprintf(pattern, sizeof pattern, " %s=", key);
    const char *p = strstr(f->params, pattern);
    if (!p) return 0;
    p += strlen(pattern);
    int n = 0;
    while (n < max) {
        out[n++] = (int32_t)strtol(p, (char **)&p, 10);
        if (*p != ',') break;
        p++;
    }
    return n;
}

/* ---- comparisons ---- */

typedef struct {
    double rel, corr;
} stats;

static stats compare(const float *c, const float *ref, int64_t n) {
    double max_err = 0, max_ref = 0, sc = 0, sr = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)c[i] - ref[i]);
        if (!(e <= max_err)) max_err = e; /* NaN propagates */
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
        sc += c[i];
        sr += ref[i];
    }
    double mc = sc / n, mr = sr / n, cov = 0, vc = 0, vr = 0;
    for (int64_t i = 0; i < n; i++) {
        cov += (c[i] - mc) * (ref[i] - mr);
        vc += (c[i] - mc) * (c[i] - mc);
        vr += (ref[i] - mr) * (ref[i] - mr);
    }
    stats s = {.rel = max_ref > 0 ? max_err / max_ref : max_err, .corr = cov / sqrt(vc * vr)};
    if (isnan(max_err)) s.rel = s.corr = NAN;
    return s;
}

/* Relative error for f32 weights, correlation for q8; returns the statistic reported. */
static void check_close(const char *what, const float *c, const float *ref, int64_t n, bool q8, double f32_bar,
                        double *worst) {
    stats s = compare(c, ref, n);
    if (q8) {
        CHECK_MSG(s.corr >= Q8_CORRELATION_BAR, "%s: correlation %.6f (relative error %.2e)", what, s.corr, s.rel);
        if (worst && !(1 - s.corr <= *worst)) *worst = 1 - s.corr;
    } else {
        CHECK_MSG(s.rel <= f32_bar, "%s: relative error %.3e > %.1e", what, s.rel, f32_bar);
        if (worst && !(s.rel <= *worst)) *worst = s.rel;
    }
}

/* ---- models ---- */

static uniecg_model_file *open_model(const char *config, const char *quant) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s/unet-%s.uecg", root, config, quant);
    uniecg_model_file *file = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
    return file;
}

static uniecg_unet *make_unet(const uniecg_model_file *file, uniecg_kernel_variant v, int threads) {
    uniecg_unet_params p = uniecg_unet_default_params();
    p.kernels = v;
    p.n_threads = threads;
    uniecg_unet *u = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_unet_create(file, p, &u, &err), UNIECG_OK, &err);
    return u;
}

/* the trace callback: compare each intermediate with the fixture's tensor of that name */
typedef struct {
    const fixture *f;
    const char *label;
    bool q8;
    int seen;
    double worst;
} trace_state;

static void on_trace(void *user, const char *name, const float *values, int64_t channels, int64_t length) {
    trace_state *st = user;
    st->seen++;
    for (int i = 0; i < st->f->n; i++) {
        const tensor *t = &st->f->t[i];
        if (strcmp(t->name, name)) continue;
        CHECK_MSG(t->count == channels * length, "%s %s: %lld values, the fixture has %lld", st->label, name,
                  (long long)(channels * length), (long long)t->count);
        if (t->count != channels * length) return;
        char what[200];
        snprintf(what, sizeof what, "%s trace %s", st->label, name);
        check_close(what, values, t->data, t->count, st->q8, F32_BAR, &st->worst);
        return;
    }
    CHECK_MSG(false, "%s: the trace has %s, the fixture does not", st->label, name);
}

/* one row of the error table */
typedef struct {
    char label[96];
    double trace, fwd, b2, sample_eps, sample_latent, sample_free;
} row;
static row rows[64];
static int n_rows;

static const uniecg_kernel_variant variants[] = {UNIECG_KERNELS_PORTABLE, UNIECG_KERNELS_AVX2, UNIECG_KERNELS_NEON,
                                                 UNIECG_KERNELS_NEON_DOTPROD};

/* The guided DDIM sample step by step with predict + scheduler, two ways:
 *   - teacher-forced: step i starts from the reference's latent after step i - 1 (the initial
 *     noise for i = 0), so each step's error is the U-Net's and the scheduler's alone: eps_cond,
 *     eps_uncond and the latent after the step are held to the forward bars (f32 1e-4 relative,
 *     q8 correlation 0.999);
 *   - free-running: step i starts from our own step i - 1, as a real sample does. Errors feed
 *     back and grow along the trajectory (x0 clipping makes it worse where a value sits at the
 *     clip edge), so the bars here are looser and measured: f32 3e-4 relative per step (1.6e-4
 *     seen at the last step), q8 correlation 0.97 (0.983 seen at the last step).
 * Then uniecg_diffusion_sample, which must give the free-running final latent bit for bit. */
#define FREE_F32_BAR 3e-4
#define FREE_Q8_CORRELATION 0.97

static void one_step(uniecg_unet *u, uniecg_scheduler *sched, int i, int32_t t, float *x, const float *conds,
                     int64_t size, float guidance, float *eps, float *g) {
    uniecg_error err = {0};
    int32_t ts[2] = {t, t};
    memcpy(x + size, x, size * sizeof(float));
    CHECK_STATUS(uniecg_unet_predict(u, 2, x, ts, conds, eps, &err), UNIECG_OK, &err);
    for (int64_t k = 0; k < size; k++) g[k] = eps[size + k] + guidance * (eps[k] - eps[size + k]);
    CHECK_STATUS(uniecg_scheduler_step(sched, i, g, x, NULL, &err), UNIECG_OK, &err);
}

static void check_sample(uniecg_unet *u, const fixture *f, bool q8, const char *label, row *r, bool verbose) {
    const float *cond = get(f, "cond")->data, *null = get(f, "null")->data, *initial = get(f, "initial")->data;
    const float *eps_c = get(f, "eps_cond")->data, *eps_u = get(f, "eps_uncond")->data, *lat = get(f, "latents")->data;
    uniecg_unet_info info;
    uniecg_unet_get_info(u, &info);
    int64_t size = (int64_t)info.latent_channels * info.latent_length, cl = info.cond_length;
    int32_t timesteps[16];
    int steps = param_ints(f, "timesteps", timesteps, 16);
    int32_t seed = 0;
    param_ints(f, "seed", &seed, 1);
    CHECK(steps == 10);
    float guidance = 2.0f; /* the manifest's guidance=2.0 */
    CHECK_MSG(strstr(f->params, " guidance=2.0") != NULL, "sample_ddim10: guidance is not 2.0 (%s)", f->params);
    float *x = malloc(2 * size * sizeof(float)), *xt = malloc(2 * size * sizeof(float));
    float *eps = malloc(2 * size * sizeof(float)), *g = malloc(size * sizeof(float));
    float *conds = malloc(2 * cl * sizeof(float));
    memcpy(conds, cond, cl * sizeof(float));
    memcpy(conds + cl, null, cl * sizeof(float));
    uniecg_normal_noise((uint64_t)seed, x, size);
    CHECK_MSG(memcmp(x, initial, size * sizeof(float)) == 0, "%s: uniecg_normal_noise(%d) differs from @initial", label, seed);
    uniecg_scheduler_params sp;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_unet_schedule(u, &sp), UNIECG_OK, &err);
    /* the small fixture's config.json scheduler section: DDIM, 10 steps, eta 0 */
    CHECK(sp.kind == UNIECG_SCHEDULER_DDIM && sp.steps == 10 && sp.eta == 0.0f && sp.clip_sample);
    uniecg_scheduler *sched = NULL, *forced = NULL;
    CHECK_STATUS(uniecg_scheduler_create(sp, &sched, &err), UNIECG_OK, &err);
    CHECK_STATUS(uniecg_scheduler_create(sp, &forced, &err), UNIECG_OK, &err);
    if (!sched || !forced) return;
    if (verbose) printf("%s, sample_ddim10 per step (teacher-forced eps / latent, free-running latent):\n", label);
    for (int i = 0; i < steps; i++) {
        CHECK(uniecg_scheduler_timestep(sched, i) == timesteps[i]);
        char what[200];
        /* teacher-forced */
        memcpy(xt, i == 0 ? initial : lat + (i - 1) * size, size * sizeof(float));
        one_step(u, forced, i, timesteps[i], xt, conds, size, guidance, eps, g);
        double w_eps = 0, w_lat = 0, w_free = 0;
        snprintf(what, sizeof what, "%s sample step %d eps_cond", label, i);
        check_close(what, eps, eps_c + i * size, size, q8, F32_BAR, &w_eps);
        snprintf(what, sizeof what, "%s sample step %d eps_uncond", label, i);
        check_close(what, eps + size, eps_u + i * size, size, q8, F32_BAR, &w_eps);
        snprintf(what, sizeof what, "%s sample step %d latent (teacher-forced)", label, i);
        check_close(what, xt, lat + i * size, size, q8, F32_BAR, &w_lat);
        /* free-running */
        one_step(u, sched, i, timesteps[i], x, conds, size, guidance, eps, g);
        stats st = compare(x, lat + i * size, size);
        if (q8) {
            CHECK_MSG(st.corr >= FREE_Q8_CORRELATION, "%s step %d free-running latent: correlation %.5f", label, i, st.corr);
            w_free = 1 - st.corr;
        } else {
            CHECK_MSG(st.rel <= FREE_F32_BAR, "%s step %d free-running latent: relative error %.3e", label, i, st.rel);
            w_free = st.rel;
        }
        if (verbose) printf("  step %d t %3d: %.2e %.2e %.2e\n", i, timesteps[i], w_eps, w_lat, w_free);
        if (w_eps > r->sample_eps) r->sample_eps = w_eps;
        if (w_lat > r->sample_latent) r->sample_latent = w_lat;
        if (w_free > r->sample_free) r->sample_free = w_free;
    }
    uniecg_scheduler_free(sched);
    uniecg_scheduler_free(forced);
    /* the library's loop: same calls, same order, so the same bits */
    uniecg_diffusion_sample_params p = uniecg_diffusion_sample_default_params();
    p.guidance_scale = guidance;
    p.seed = (uint64_t)seed;
    float *out = malloc(size * sizeof(float));
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, cond, NULL, out, &err), UNIECG_OK, &err);
    CHECK_MSG(memcmp(out, x, size * sizeof(float)) == 0, "%s: uniecg_diffusion_sample differs from the step-by-step loop",
              label);
    free(out);
    free(x);
    free(xt);
    free(eps);
    free(g);
    free(conds);
}

static void check_config(const char *config, bool has_sample) {
    fixture fwd, b2, trace, sample;
    bool ok = load_case(config, "unet_forward", &fwd) & load_case(config, "unet_forward_b2", &b2) &
              load_case(config, "unet_trace_down0", &trace);
    CHECK_MSG(ok, "%s: fixture cases missing", config);
    if (has_sample) {
        ok = ok && load_case(config, "sample_ddim10", &sample);
        CHECK_MSG(ok, "%s: sample_ddim10 missing", config);
    }
    if (!ok) return;
    const char *quants[] = {"none", "q8"};
    for (int qi = 0; qi < 2; qi++) {
        uniecg_model_file *file = open_model(config, quants[qi]);
        if (!file) continue;
        bool q8 = qi == 1;
        for (size_t vi = 0; vi < sizeof variants / sizeof *variants; vi++) {
            if (!uniecg_kernel_variant_supported(variants[vi])) continue;
            const char *vname = uniecg_kernel_variant_name(variants[vi]);
            int64_t size = 4 * 128;
            float results[2][3 * 512 + 512];
            for (int threads = 1; threads <= 2; threads++) {
                uniecg_unet *u = make_unet(file, variants[vi], threads);
                if (!u) continue;
                row *r = &rows[n_rows++];
                memset(r, 0, sizeof *r);
                snprintf(r->label, sizeof r->label, "%s %s %s %dT", config, quants[qi], vname, threads);
                uniecg_unet_info info;
                uniecg_unet_get_info(u, &info);
                CHECK(info.latent_channels == 4 && info.latent_length == 128 && info.n_threads == threads);
                size = (int64_t)info.latent_channels * info.latent_length;
                uniecg_error err = {0};
                float *out = results[threads - 1];
                /* trace of down block 0, with the forward of unet_forward's input */
                int32_t t = 0;
                param_ints(&trace, "t", &t, 1);
                trace_state st = {.f = &trace, .label = r->label, .q8 = q8};
                CHECK_STATUS(uniecg__unet_predict_traced(u, 1, get(&fwd, "x")->data, &t, get(&fwd, "cond")->data, out,
                                                         on_trace, &st, &err),
                             UNIECG_OK, &err);
                CHECK_MSG(st.seen == 10, "%s: %d traced intermediates, expected 10", r->label, st.seen);
                r->trace = st.worst;
                char what[200];
                snprintf(what, sizeof what, "%s unet_forward", r->label);
                check_close(what, out, get(&fwd, "eps")->data, size, q8, F32_BAR, &r->fwd);
                int32_t t2[2];
                CHECK(param_ints(&b2, "t", t2, 2) == 2);
                float *out2 = out + size;
                CHECK_STATUS(uniecg_unet_predict(u, 2, get(&b2, "x")->data, t2, get(&b2, "cond")->data, out2, &err),
                             UNIECG_OK, &err);
                snprintf(what, sizeof what, "%s unet_forward_b2", r->label);
                check_close(what, out2, get(&b2, "eps")->data, 2 * size, q8, F32_BAR, &r->b2);
                /* sample 1 alone (the null condition, t 17) equals its row of the batch */
                float *single = out + 3 * size;
                CHECK_STATUS(uniecg_unet_predict(u, 1, get(&b2, "x")->data + size, &t2[1], get(&b2, "cond")->data + info.cond_length,
                                                 single, &err),
                             UNIECG_OK, &err);
                CHECK_MSG(memcmp(single, out2 + size, size * sizeof(float)) == 0, "%s: batch row 1 != batch-1 call", r->label);
                if (has_sample) check_sample(u, &sample, q8, r->label, r, vi == 0 && threads == 1);
                uniecg_unet_free(u);
            }
            CHECK_MSG(memcmp(results[0], results[1], sizeof results[0]) == 0, "%s %s %s: 2 threads differ from 1", config,
                      quants[qi], vname);
        }
        uniecg_model_file_free(file);
    }
    free(fwd.blob);
    free(b2.blob);
    free(trace.blob);
    if (has_sample) free(sample.blob);
}

/* ---- the sinusoid table ---- */

static void check_time_table(void) {
    fixture f;
    if (!load_case("small", "time_table", &f)) {
        CHECK_MSG(false, "small/time_table missing");
        return;
    }
    const tensor *table = get(&f, "table");
    uniecg__timestep_embedding_params tp = {.log_max_period = 10.0, .downscale_freq_shift = 1.0, .flip_sin_to_cos = false};
    double worst = 0;
    int worst_t = 0;
    float row_values[64];
    uniecg_error err = {0};
    for (int t = 0; t < 1000; t++) {
        CHECK_STATUS(uniecg__seq_timestep_embedding(&tp, (float)(t + 1), 64, row_values, &err), UNIECG_OK, &err);
        for (int i = 0; i < 64; i++) {
            double e = fabs((double)row_values[i] - table->data[t * 64 + i]);
            if (e > worst) {
                worst = e;
                worst_t = t;
            }
        }
    }
    /* float32 arguments near 1000 have an ulp of 6.1e-5 (ops.h): the rows differ from torch's
     * by about that much at the end of the table, and by far less where t is small */
    printf("time table: max |C - torch| = %.2e (row %d)\n", worst, worst_t);
    CHECK_MSG(worst <= 1.3e-4, "time table: max error %.2e", worst);
    free(f.blob);
}

/* ---- cache, cancellation, bad input ---- */

typedef struct {
    int calls, cancel_at, last_step;
    bool ordered;
} progress_state;

static bool on_progress(int32_t step, int32_t steps, const float *latent, void *user) {
    progress_state *p = user;
    if (step != p->calls || steps != 10 || !latent) p->ordered = false;
    p->calls++;
    p->last_step = step;
    return step == p->cancel_at;
}

static void check_api(void) {
    uniecg_model_file *file = open_model("small", "none");
    if (!file) return;
    uniecg_unet *u = make_unet(file, UNIECG_KERNELS_AUTO, 1);
    if (!u) {
        uniecg_model_file_free(file);
        return;
    }
    uniecg_unet_info info;
    uniecg_unet_get_info(u, &info);
    CHECK(info.cond_dim == 32 && info.extra_conditions == 3 && info.cond_length == 35 && info.levels == 4 &&
          info.kernel == 7 && info.train_steps == 1000);
    int64_t size = 512, cl = info.cond_length;
    float x[1024], eps[1024], eps_again[1024], cond[70];
    for (int i = 0; i < 1024; i++) x[i] = test_uniform();
    for (int i = 0; i < 70; i++) cond[i] = test_uniform();
    float original[70];
    memcpy(original, cond, sizeof original);
    int32_t t[2] = {3, 3};
    uniecg_error err = {0};

    /* the cache: a second call with the same condition computes no new vectors and gives the
     * same result; a new condition does */
    int64_t before = uniecg__unet_condition_misses(u);
    CHECK_STATUS(uniecg_unet_predict(u, 1, x, t, cond, eps, &err), UNIECG_OK, &err);
    CHECK(uniecg__unet_condition_misses(u) == before + 1);
    CHECK_STATUS(uniecg_unet_predict(u, 1, x, t, cond, eps_again, &err), UNIECG_OK, &err);
    CHECK(uniecg__unet_condition_misses(u) == before + 1);
    CHECK(memcmp(eps, eps_again, size * sizeof(float)) == 0);
    cond[0] += 0.5f;
    CHECK_STATUS(uniecg_unet_predict(u, 1, x, t, cond, eps_again, &err), UNIECG_OK, &err);
    CHECK(uniecg__unet_condition_misses(u) == before + 2);
    CHECK_MSG(memcmp(eps, eps_again, size * sizeof(float)) != 0, "another condition gave the same output");
    /* five conditions cycling through a 4-entry cache (the first is evicted), then the first
     * again: recomputed, the same bits */
    for (int k = 0; k < 5; k++) {
        cond[1] = (float)k;
        CHECK_STATUS(uniecg_unet_predict(u, 1, x, t, cond, eps_again, &err), UNIECG_OK, &err);
    }
    memcpy(cond, original, sizeof cond);
    int64_t misses = uniecg__unet_condition_misses(u);
    CHECK_STATUS(uniecg_unet_predict(u, 1, x, t, cond, eps_again, &err), UNIECG_OK, &err);
    CHECK(uniecg__unet_condition_misses(u) == misses + 1);
    CHECK(memcmp(eps, eps_again, size * sizeof(float)) == 0);

    /* batches of 3 (side by side on 2 threads) and 5 (more conditions than the cache holds:
     * one after another) on a 2-thread U-Net: every row equals a batch-1 call here */
    {
        uniecg_unet *u2 = make_unet(file, UNIECG_KERNELS_AUTO, 2);
        float xs[5 * 512], cs[5 * 35], out5[5 * 512], one[512];
        int32_t ts[5] = {0, 250, 999, 7, 500};
        for (int i = 0; i < 5 * 512; i++) xs[i] = test_uniform();
        for (int i = 0; i < 5 * 35; i++) cs[i] = test_uniform();
        for (int batch = 3; batch <= 5 && u2; batch += 2) {
            CHECK_STATUS(uniecg_unet_predict(u2, batch, xs, ts, cs, out5, &err), UNIECG_OK, &err);
            for (int b = 0; b < batch; b++) {
                CHECK_STATUS(uniecg_unet_predict(u, 1, xs + b * 512, &ts[b], cs + b * 35, one, &err), UNIECG_OK, &err);
                CHECK_MSG(memcmp(one, out5 + b * 512, sizeof one) == 0, "batch %d row %d differs from a batch-1 call", batch, b);
            }
        }
        uniecg_unet_free(u2);
    }

    /* bad input: nothing is written */
    float guard[1024];
    for (int i = 0; i < 1024; i++) guard[i] = 12345.0f;
    memcpy(eps_again, guard, sizeof guard);
    CHECK_STATUS(uniecg_unet_predict(u, 0, x, t, cond, eps_again, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
    CHECK_STATUS(uniecg_unet_predict(u, -1, x, t, cond, eps_again, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
    int32_t bad_t[2] = {3, 1000};
    CHECK_STATUS(uniecg_unet_predict(u, 2, x, bad_t, cond, eps_again, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
    CHECK_MSG(strstr(err.message, "1000") != NULL, "timestep message: %s", err.message);
    float nan_cond[70];
    memcpy(nan_cond, cond, sizeof nan_cond);
    nan_cond[cl + 34] = NAN; /* the second sample's heart rate */
    CHECK_STATUS(uniecg_unet_predict(u, 2, x, t, nan_cond, eps_again, &err), UNIECG_ERR_RANGE, &err);
    CHECK_MSG(strstr(err.message, "condition") != NULL && strstr(err.message, "sample 1") != NULL, "NaN message: %s",
              err.message);
    float nan_x[1024];
    memcpy(nan_x, x, sizeof nan_x);
    nan_x[7] = INFINITY;
    CHECK_STATUS(uniecg_unet_predict(u, 1, nan_x, t, cond, eps_again, &err), UNIECG_ERR_RANGE, &err);
    CHECK(memcmp(eps_again, guard, sizeof guard) == 0);
    CHECK_STATUS(uniecg_unet_predict(u, 1, NULL, t, cond, eps_again, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);

    /* sampling: progress in order, cancellation, NaN condition */
    uniecg_diffusion_sample_params p = uniecg_diffusion_sample_default_params();
    p.guidance_scale = 2.0f;
    p.seed = 5;
    progress_state ps = {.cancel_at = -1, .ordered = true};
    p.progress = on_progress;
    p.progress_user_data = &ps;
    float latent[512], latent_guard[512];
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, cond, NULL, latent, &err), UNIECG_OK, &err);
    CHECK_MSG(ps.calls == 11 && ps.ordered && ps.last_step == 10, "progress: %d calls, ordered %d", ps.calls, ps.ordered);
    /* an explicit zero null condition is the default one */
    float zeros[35] = {0}, latent_zero[512];
    ps = (progress_state){.cancel_at = -1, .ordered = true};
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, cond, zeros, latent_zero, &err), UNIECG_OK, &err);
    CHECK(memcmp(latent, latent_zero, sizeof latent) == 0);
    for (int i = 0; i < 512; i++) latent_guard[i] = latent[i] = -7.0f;
    ps = (progress_state){.cancel_at = 3, .ordered = true};
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, cond, NULL, latent, &err), UNIECG_ERR_CANCELLED, &err);
    CHECK_MSG(ps.calls == 4, "cancelled at step 3 after %d progress calls", ps.calls);
    CHECK_MSG(memcmp(latent, latent_guard, sizeof latent) == 0, "a cancelled sample wrote its output");
    p.progress = NULL;
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, nan_cond + cl, NULL, latent, &err), UNIECG_ERR_RANGE, &err);
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, cond, nan_cond + cl, latent, &err), UNIECG_ERR_RANGE, &err);
    /* guidance off: one batch-1 call per step, a different result */
    float latent_unguided[512];
    p.guidance_scale = 1.0f;
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, cond, NULL, latent_unguided, &err), UNIECG_OK, &err);
    CHECK(memcmp(latent_unguided, latent_zero, sizeof latent_unguided) != 0);
    /* DDPM draws per-step noise: two seeds differ, one seed repeats */
    uniecg_scheduler_params sp;
    CHECK_STATUS(uniecg_unet_schedule(u, &sp), UNIECG_OK, &err);
    sp.kind = UNIECG_SCHEDULER_DDPM;
    sp.steps = 5;
    p.scheduler = &sp;
    float d1[512], d2[512], d3[512];
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, cond, NULL, d1, &err), UNIECG_OK, &err);
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, cond, NULL, d2, &err), UNIECG_OK, &err);
    p.seed = 6;
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, cond, NULL, d3, &err), UNIECG_OK, &err);
    CHECK(memcmp(d1, d2, sizeof d1) == 0 && memcmp(d1, d3, sizeof d1) != 0);
    CHECK(uniecg_diffusion_step_seed(5, 0) != uniecg_diffusion_step_seed(5, 1) &&
          uniecg_diffusion_step_seed(5, 0) != uniecg_diffusion_step_seed(6, 0));
    sp.train_steps = 500;
    CHECK_STATUS(uniecg_diffusion_sample(u, &p, cond, NULL, d1, &err), UNIECG_ERR_INVALID_ARGUMENT, &err);
    uniecg_unet_free(u);

    /* a file without one tensor or one key: the error names it */
    const char *drop[] = {"unet.up.1.cross.in_v", "unet.block_heads", "unet.mid.conv_mid_bias"};
    for (int d = 0; d < 3; d++) {
        char path[300];
        test_path(path, sizeof path, "partial.uecg");
        uniecg_model_writer *w = NULL;
        CHECK_STATUS(uniecg_model_writer_create(path, uniecg_writer_default_params(), &w, &err), UNIECG_OK, &err);
        if (!w) continue;
        uniecg_file_summary sum;
        uniecg_model_file_summary(file, &sum);
        for (uint32_t i = 0; i < sum.metadata_count; i++) {
            uniecg_meta_entry e;
            uniecg_model_file_meta_at(file, i, &e);
            if (!strcmp(e.key, drop[d])) continue;
            switch (e.type) {
            case UNIECG_META_BOOL: uniecg_model_writer_set_bool(w, e.key, e.bool_value); break;
            case UNIECG_META_I64: uniecg_model_writer_set_i64(w, e.key, e.i64_value); break;
            case UNIECG_META_F64: uniecg_model_writer_set_f64(w, e.key, e.f64_value); break;
            case UNIECG_META_STRING: uniecg_model_writer_set_string(w, e.key, e.string_value, e.string_length); break;
            case UNIECG_META_I64_ARRAY: uniecg_model_writer_set_array(w, e.key, e.type, e.array, e.count); break;
            default: break;
            }
        }
        for (uint32_t i = 0; i < sum.tensor_count; i++) {
            uniecg_tensor_info ti;
            uniecg_model_file_tensor_at(file, i, &ti);
            if (!strcmp(ti.name, drop[d])) continue;
            uniecg_model_writer_add_tensor(w, ti.name, ti.dtype, ti.rank, ti.shape, ti.data, ti.raw_size,
                                           UNIECG_ENCODING_RAW, NULL);
        }
        CHECK_STATUS(uniecg_model_writer_finish(w), UNIECG_OK, &err);
        uniecg_model_writer_free(w);
        uniecg_model_file *partial = NULL;
        CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &partial, &err), UNIECG_OK, &err);
        uniecg_unet *bad = NULL;
        CHECK_STATUS(uniecg_unet_create(partial, uniecg_unet_default_params(), &bad, &err), UNIECG_ERR_NOT_FOUND, &err);
        CHECK_MSG(strstr(err.message, drop[d]) != NULL, "missing %s: message '%s'", drop[d], err.message);
        CHECK(bad == NULL);
        uniecg_model_file_free(partial);
    }
    uniecg_model_file_free(file);
}

/* ---- the cross-architecture fixture ---- */

#define CROSS_SEED 7
#define CROSS_STEPS 10

#define CROSS_ECG (12 * 1024)

/* The ECG of the cross-architecture sample: the latent decoded by small/vae-none.uecg with the
 * same kernels, so the fixture covers the whole path from seed to signal. */
static bool cross_decode(uniecg_kernel_variant v, const float *latent, float *ecg) {
    char path[1400];
    snprintf(path, sizeof path, "%s/small/vae-none.uecg", root);
    uniecg_model_file *file = NULL;
    uniecg_vae *vae = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err), UNIECG_OK, &err);
    uniecg_vae_params p = uniecg_vae_default_params();
    p.kernels = v;
    p.n_threads = 1;
    if (file) CHECK_STATUS(uniecg_vae_create(file, p, &vae, &err), UNIECG_OK, &err);
    bool ok = vae != NULL;
    if (ok) {
        CHECK_STATUS(uniecg_vae_decode(vae, latent, ecg, &err), UNIECG_OK, &err);
        ok = err.status == UNIECG_OK;
    }
    uniecg_vae_free(vae);
    uniecg_model_file_free(file);
    return ok;
}

/* A seeded guided DDPM sample: it draws per-step noise, so the fixture covers the seed
 * derivation too. */
static bool cross_sample(const uniecg_model_file *file, uniecg_kernel_variant v, float *latent) {
    uniecg_unet *u = make_unet(file, v, 1);
    if (!u) return false;
    fixture f;
    bool ok = load_case("small", "sample_ddim10", &f);
    CHECK(ok);
    uniecg_scheduler_params sp;
    uniecg_error err = {0};
    uniecg_unet_schedule(u, &sp);
    sp.kind = UNIECG_SCHEDULER_DDPM;
    sp.steps = CROSS_STEPS;
    uniecg_diffusion_sample_params p = uniecg_diffusion_sample_default_params();
    p.scheduler = &sp;
    p.guidance_scale = 2.0f;
    p.seed = CROSS_SEED;
    if (ok) CHECK_STATUS(uniecg_diffusion_sample(u, &p, get(&f, "cond")->data, NULL, latent, &err), UNIECG_OK, &err);
    if (ok) free(f.blob);
    uniecg_unet_free(u);
    return ok && err.status == UNIECG_OK;
}

static void check_cross_arch(bool record) {
    char model[1400], path[1400];
    snprintf(model, sizeof model, "%s/small/unet-none.uecg", root);
    snprintf(path, sizeof path, "%s/small/cross_arch.txt", root);
    size_t length;
    unsigned char *bytes = read_all(model, &length);
    CHECK(bytes != NULL);
    if (!bytes) return;
    uint64_t hash = uniecg_xxh64(bytes, length, 0);
    free(bytes);
    uniecg_model_file *file = open_model("small", "none");
    if (!file) return;
    static float latent[512], ecg[CROSS_ECG];
    if (record) {
#if !defined(__x86_64__)
        printf("--record is for x86-64 only\n");
        CHECK(false);
#else
        if (cross_sample(file, UNIECG_KERNELS_PORTABLE, latent) && cross_decode(UNIECG_KERNELS_PORTABLE, latent, ecg)) {
            FILE *f = fopen(path, "w");
            CHECK(f != NULL);
            if (f) {
                fprintf(f, "# Cross-architecture fixture (issue 8.3), recorded by CRuntime/tests/test_unet.c --record on x86-64\n"
                           "# with the portable kernels, 1 thread: the latent of a guided DDPM sample of %d steps (guidance 2,\n"
                           "# seed %d, per-step noise from uniecg_diffusion_step_seed) with the condition of sample_ddim10,\n"
                           "# from unet-none.uecg (its XXH64 below), then that latent decoded by vae-none.uecg: 512 latent\n"
                           "# values, then the 12 x 1024 ECG (mV, lead-major). test_unet checks both within %.0e relative on\n"
                           "# every architecture with portable kernels.\n",
                        CROSS_STEPS, CROSS_SEED, CROSS_ARCH_BAR);
                fprintf(f, "file unet-none.uecg xxh64 %016llx\n", (unsigned long long)hash);
                for (int i = 0; i < 512; i++) fprintf(f, "%.9g\n", (double)latent[i]);
                for (int i = 0; i < CROSS_ECG; i++) fprintf(f, "%.9g\n", (double)ecg[i]);
                fclose(f);
                printf("recorded %s\n", path);
            }
        }
#endif
        uniecg_model_file_free(file);
        return;
    }
    char *text = (char *)read_all(path, &length);
    CHECK_MSG(text != NULL, "%s: missing (record it on x86-64 with test_unet --record)", path);
    if (!text) {
        uniecg_model_file_free(file);
        return;
    }
    static float expected[512 + CROSS_ECG];
    int n = 0;
    unsigned long long recorded_hash = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        if (sscanf(line, "file unet-none.uecg xxh64 %llx", &recorded_hash) == 1) continue;
        if (n < 512 + CROSS_ECG) expected[n++] = strtof(line, NULL);
    }
    free(text);
    CHECK_MSG(n == 512 + CROSS_ECG, "cross_arch.txt: %d values (rerun --record)", n);
    CHECK_MSG(recorded_hash == hash, "cross_arch.txt was recorded for another unet-none.uecg (%016llx, now %016llx): rerun --record",
              recorded_hash, (unsigned long long)hash);
    for (size_t vi = 0; vi < sizeof variants / sizeof *variants && n == 512 + CROSS_ECG; vi++) {
        if (!uniecg_kernel_variant_supported(variants[vi])) continue;
        if (!cross_sample(file, variants[vi], latent) || !cross_decode(variants[vi], latent, ecg)) continue;
        stats s = compare(latent, expected, 512), e = compare(ecg, expected + 512, CROSS_ECG);
        printf("cross-architecture sample, %-12s: relative deviation from the x86-64 recording: latent %.3e, ECG %.3e\n",
               uniecg_kernel_variant_name(variants[vi]), s.rel, e.rel);
        if (variants[vi] == UNIECG_KERNELS_PORTABLE) {
            CHECK_MSG(s.rel <= CROSS_ARCH_BAR, "cross-architecture latent (portable): %.3e > %.0e", s.rel, CROSS_ARCH_BAR);
            CHECK_MSG(e.rel <= CROSS_ARCH_BAR, "cross-architecture ECG (portable): %.3e > %.0e", e.rel, CROSS_ARCH_BAR);
        } else { /* f32 weights: the SIMD variants differ only in summation order */
            CHECK_MSG(s.rel <= 1e-3, "cross-architecture latent (%s): %.3e", uniecg_kernel_variant_name(variants[vi]), s.rel);
            CHECK_MSG(e.rel <= 1e-3, "cross-architecture ECG (%s): %.3e", uniecg_kernel_variant_name(variants[vi]), e.rel);
        }
    }
    uniecg_model_file_free(file);
}

/* ---- benchmark: a converted U-Net file (Tools/reference/bench_unet.py writes the published
 * shape with random weights) ---- */

/* One predict per repeat, as a guided sampling step calls it (batch 2: condition and null
 * condition; batch 1: guidance off), after one warm-up that also fills the condition cache. */
static int bench(const char *path, int repeats) {
    uniecg_model_file *file = NULL;
    uniecg_error err = {0};
    if (uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err)) return printf("%s\n", err.message), 1;
    printf("| file | threads | batch | best ms | median ms | best CPU ms |\n|---|---|---|---|---|---|\n");
    if (repeats > 64) repeats = 64;
    for (int threads = 1; threads <= 2; threads++) {
        uniecg_unet_params params = uniecg_unet_default_params();
        params.n_threads = threads;
        uniecg_unet *unet = NULL;
        if (uniecg_unet_create(file, params, &unet, &err)) return printf("%s\n", err.message), 1;
        uniecg_unet_info info;
        uniecg_unet_get_info(unet, &info);
        int64_t latent = (int64_t)info.latent_channels * info.latent_length;
        float *x = malloc((size_t)(2 * latent) * sizeof(float)), *eps = malloc((size_t)(2 * latent) * sizeof(float));
        float *cond = calloc((size_t)(2 * info.cond_length), sizeof(float));
        uniecg_normal_noise(1, x, (uint64_t)latent);
        memcpy(x + latent, x, (size_t)latent * sizeof(float));
        uniecg_normal_noise(2, cond, (uint64_t)info.cond_dim); /* sample 2 keeps the null condition */
        int32_t timesteps[2] = {500, 500};
        for (int batch = 1; batch <= 2; batch++) {
            double t[64], cpu[64];
            if (uniecg_unet_predict(unet, batch, x, timesteps, cond, eps, &err)) return printf("%s\n", err.message), 1;
            for (int r = 0; r < repeats; r++) {
                double t0 = test_clock_seconds(CLOCK_MONOTONIC), c0 = test_clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
                uniecg_unet_predict(unet, batch, x, timesteps, cond, eps, &err);
                t[r] = test_clock_seconds(CLOCK_MONOTONIC) - t0;
                cpu[r] = test_clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
            }
            qsort(t, (size_t)repeats, sizeof *t, test_by_value);
            qsort(cpu, (size_t)repeats, sizeof *cpu, test_by_value);
            printf("| %s | %d | %d | %.2f | %.2f | %.2f |\n", path, threads, batch, t[0] * 1e3, t[repeats / 2] * 1e3,
                   cpu[0] * 1e3);
        }
        free(x);
        free(eps);
        free(cond);
        uniecg_unet_free(unet);
    }
    uniecg_model_file_free(file);
    return 0;
}

/* A whole sample from a file with a U-Net, a VAE and a schedule: `steps` guided steps of the
 * file's scheduler (batch 2: condition and null condition) and one decode, per repeat; 1 and 2
 * threads. Tools/reference/bench_sample.py times PyTorch on the same weights in the same run. */
static int bench_sample(const char *path, int repeats, int steps, float guidance) {
    uniecg_model_file *file = NULL;
    uniecg_error err = {0};
    if (uniecg_model_file_open(path, uniecg_open_default_params(), &file, &err)) return printf("%s\n", err.message), 1;
    printf("| threads | best ms | median ms | best CPU ms | decode best ms |\n|---|---|---|---|---|\n");
    if (repeats > 64) repeats = 64;
    for (int threads = 1; threads <= 2; threads++) {
        uniecg_thread_pool *pool = NULL;
        if (threads > 1 && uniecg_thread_pool_create(threads, &pool, &err)) return printf("%s\n", err.message), 1;
        uniecg_unet_params up = uniecg_unet_default_params();
        uniecg_vae_params vp = uniecg_vae_default_params();
        up.pool = vp.pool = pool;
        up.n_threads = vp.n_threads = threads;
        uniecg_unet *unet = NULL;
        uniecg_vae *vae = NULL;
        if (uniecg_unet_create(file, up, &unet, &err) || uniecg_vae_create(file, vp, &vae, &err))
            return printf("%s\n", err.message), 1;
        uniecg_unet_info ui;
        uniecg_vae_info vi;
        uniecg_unet_get_info(unet, &ui);
        uniecg_vae_get_info(vae, &vi);
        float *cond = calloc((size_t)ui.cond_length, sizeof(float));
        float *latent = malloc((size_t)ui.latent_channels * ui.latent_length * sizeof(float));
        float *signal = malloc((size_t)vi.signal_channels * vi.signal_length * sizeof(float));
        uniecg_normal_noise(2, cond, (uint64_t)ui.cond_dim);
        uniecg_diffusion_sample_params sp = uniecg_diffusion_sample_default_params();
        sp.steps = steps;
        sp.guidance_scale = guidance;
        double t[64], cpu[64], decode[64];
        for (int r = -1; r < repeats; r++) { /* r = -1: warm-up */
            double t0 = test_clock_seconds(CLOCK_MONOTONIC), c0 = test_clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
            sp.seed = (uint64_t)(r + 2);
            if (uniecg_diffusion_sample(unet, &sp, cond, NULL, latent, &err)) return printf("%s\n", err.message), 1;
            double d0 = test_clock_seconds(CLOCK_MONOTONIC);
            if (uniecg_vae_decode(vae, latent, signal, &err)) return printf("%s\n", err.message), 1;
            double end = test_clock_seconds(CLOCK_MONOTONIC);
            if (r < 0) continue;
            t[r] = end - t0;
            decode[r] = end - d0;
            cpu[r] = test_clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
        qsort(t, (size_t)repeats, sizeof *t, test_by_value);
        qsort(cpu, (size_t)repeats, sizeof *cpu, test_by_value);
        qsort(decode, (size_t)repeats, sizeof *decode, test_by_value);
        printf("| %d | %.1f | %.1f | %.1f | %.1f |\n", threads, t[0] * 1e3, t[repeats / 2] * 1e3, cpu[0] * 1e3,
               decode[0] * 1e3);
        fflush(stdout);
        free(cond);
        free(latent);
        free(signal);
        uniecg_vae_free(vae);
        uniecg_unet_free(unet);
        uniecg_thread_pool_free(pool);
    }
    uniecg_model_file_free(file);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "--bench")) return bench(argv[2], argc > 3 ? atoi(argv[3]) : 20);
    if (argc > 2 && !strcmp(argv[1], "--bench-sample"))
        return bench_sample(argv[2], argc > 3 ? atoi(argv[3]) : 5, argc > 4 ? atoi(argv[4]) : 50,
                            argc > 5 ? (float)atof(argv[5]) : 2.0f);
    bool record = argc == 2 && !strcmp(argv[1], "--record");
    if (!test_find_fixtures("diffusets", "small/manifest.txt", root, sizeof root)) {
        printf("FAIL: Tests/Fixtures/diffusets not found (set UNIECG_FIXTURES)\n");
        return 1;
    }
    if (record) {
        check_cross_arch(true);
        return test_summary();
    }
    test_make_dir("test_unet");
    check_time_table();
    check_config("small", true);
    check_config("tiny-k5", false);
    printf("%-26s %9s %9s %9s %9s %9s %9s   (worst; f32: max relative error, q8: 1 - correlation)\n", "case", "trace",
           "forward", "batch 2", "step eps", "step lat", "free lat");
    for (int i = 0; i < n_rows; i++)
        printf("%-26s %9.2e %9.2e %9.2e %9.2e %9.2e %9.2e\n", rows[i].label, rows[i].trace, rows[i].fwd, rows[i].b2,
               rows[i].sample_eps, rows[i].sample_latent, rows[i].sample_free);
    check_api();
    check_cross_arch(false);
    test_cleanup_dir();
    return test_summary();
}
