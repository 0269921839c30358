/* Diffusion schedulers against Hugging Face diffusers (fixtures written by
 * Tools/reference/make_scheduler_fixtures.py from DDPMScheduler, DDIMScheduler and
 * DPMSolverMultistepScheduler), the seeded normal noise against an independent Python
 * implementation, and the error paths.
 *
 * For each configuration of Tests/Fixtures/scheduler/manifest.txt: the C scheduler is created
 * with the same parameters, every timestep must equal diffusers' scheduler.timesteps, and the
 * steps are run with the stored model outputs and noise, twice:
 *   - each step on its own, from diffusers' sample before that step (the DPM++ history comes
 *     from the previous such step): every element must match diffusers' within 1e-5, absolute
 *     where |ref| < 1 and relative above (|c - ref| <= 1e-5 * max(1, |ref|));
 *   - one free-running trajectory from the stored initial sample (the C samples fed back, as a
 *     pipeline runs): after every step max |c - ref| <= 1e-5 * max(1, max |ref|). Norm-wise,
 *     because random epsilon outputs make some trajectories ill-conditioned: x0 = (x - sigma
 *     eps) / alpha amplifies the float32 rounding of the stored sample by 1 / alpha (up to 2e4
 *     at the cosine schedule's t = 999), so float32 trajectories drift apart element-wise; here
 *     diffusers' own float32 trajectory differs from the same formulas in float64 by ~1.3e-5 at
 *     an element of dpmpp_scaled_eps_26. The element-wise figure is printed too.
 * One line per configuration gives the worst errors.
 *
 * Fixtures: $UNIECG_FIXTURES/scheduler when set, else found from the working directory or from
 * this file's path. */
#include "testing.h"

#include "internal.h" /* uniecg__xoshiro_seed / _next, for the raw PRNG reference values */

#include <math.h>
#include <stdint.h>

#define BAR 1e-5

/* ---- files ---- */

static char fixtures[1024];

static bool find_fixtures(void) {
    return test_find_fixtures("scheduler", "manifest.txt", fixtures, sizeof fixtures);
}

static unsigned char *read_file(const char *name, size_t *length) {
    char path[1400];
    snprintf(path, sizeof path, "%.1000s/%.390s", fixtures, name);
    return test_read_path(path, length);
}

/* Little-endian float32 records, decoded byte by byte (host-order independent). */
static float *decode_f32(const unsigned char *bytes, size_t count) {
    float *out = malloc(count * sizeof(float));
    if (!out) return NULL;
    for (size_t k = 0; k < count; k++) {
        const unsigned char *b = bytes + 4 * k;
        uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&out[k], &bits, sizeof bits);
    }
    return out;
}

/* ---- manifest ---- */

#define MAX_STEPS 1000

typedef struct {
    char name[128];
    char file[160];
    uniecg_scheduler_params params;
    bool noise;
    int32_t timesteps[MAX_STEPS];
    int32_t timestep_count;
} fixture_config;

/* Value of `key` in a space-separated key=value line, copied into out (false when absent). */
static bool field(const char *line, const char *key, char *out, size_t size) {
    size_t key_length = strlen(key);
    const char *p = line;
    while (*p) {
        while (*p == ' ') p++;
        const char *end = p;
        while (*end && *end != ' ' && *end != '\n') end++;
        if ((size_t)(end - p) > key_length && strncmp(p, key, key_length) == 0 && p[key_length] == '=') {
            size_t length = (size_t)(end - p) - key_length - 1;
            if (length >= size) return false;
            memcpy(out, p + key_length + 1, length);
            out[length] = 0;
            return true;
        }
        p = *end ? end + 1 : end;
    }
    return false;
}

static bool parse_config(const char *line, fixture_config *c, char *why, size_t why_size) {
    char v[8192];
    memset(c, 0, sizeof *c);
    c->params = uniecg_scheduler_default_params();
#define NEED(key)                                                                                  \
    if (!field(line, key, v, sizeof v)) {                                                          \
        snprintf(why, why_size, "missing %s", key);                                                \
        return false;                                                                              \
    }
    NEED("name");
    snprintf(c->name, sizeof c->name, "%.120s", v);
    snprintf(c->file, sizeof c->file, "%.120s.f32", v);
    NEED("kind");
    if (!strcmp(v, "ddpm")) c->params.kind = UNIECG_SCHEDULER_DDPM;
    else if (!strcmp(v, "ddim")) c->params.kind = UNIECG_SCHEDULER_DDIM;
    else if (!strcmp(v, "dpmpp_2m")) c->params.kind = UNIECG_SCHEDULER_DPMPP_2M;
    else {
        snprintf(why, why_size, "kind %.40s", v);
        return false;
    }
    NEED("betas");
    if (!strcmp(v, "linear")) c->params.betas = UNIECG_BETAS_LINEAR;
    else if (!strcmp(v, "scaled_linear")) c->params.betas = UNIECG_BETAS_SCALED_LINEAR;
    else if (!strcmp(v, "cosine")) c->params.betas = UNIECG_BETAS_COSINE;
    else {
        snprintf(why, why_size, "betas %.40s", v);
        return false;
    }
    NEED("beta_start");
    c->params.beta_start = strtod(v, NULL);
    NEED("beta_end");
    c->params.beta_end = strtod(v, NULL);
    NEED("train_steps");
    c->params.train_steps = (int32_t)strtol(v, NULL, 10);
    NEED("prediction");
    if (!strcmp(v, "epsilon")) c->params.prediction = UNIECG_PREDICT_EPSILON;
    else if (!strcmp(v, "v")) c->params.prediction = UNIECG_PREDICT_V;
    else {
        snprintf(why, why_size, "prediction %.40s", v);
        return false;
    }
    NEED("steps");
    c->params.steps = (int32_t)strtol(v, NULL, 10);
    NEED("eta");
    c->params.eta = strtof(v, NULL);
    NEED("clip_sample");
    c->params.clip_sample = strtol(v, NULL, 10) != 0;
    NEED("clip_range");
    c->params.clip_range = strtof(v, NULL);
    NEED("sample_size");
    c->params.sample_size = strtoll(v, NULL, 10);
    NEED("noise");
    c->noise = strtol(v, NULL, 10) != 0;
    NEED("timesteps");
    char *p = v;
    while (*p && c->timestep_count < MAX_STEPS) {
        char *end;
        long t = strtol(p, &end, 10);
        if (end == p) break;
        c->timesteps[c->timestep_count++] = (int32_t)t;
        p = *end == ',' ? end + 1 : end;
    }
#undef NEED
    if (c->timestep_count != c->params.steps || c->params.sample_size <= 0 || c->params.sample_size > (1 << 20)) {
        snprintf(why, why_size, "%d timesteps for %d steps, sample size %lld", c->timestep_count, c->params.steps,
                 (long long)c->params.sample_size);
        return false;
    }
    return true;
}

/* ---- comparing trajectories ---- */

typedef struct {
    double max_abs;  /* max |c - ref| */
    double max_rel;  /* max |c - ref| / |ref| over |ref| >= 1 */
    double worst;    /* max |c - ref| / max(1, |ref|): the element-wise bar */
    double normwise; /* max over steps of max |c - ref| / max(1, max |ref|) */
    int worst_step;
    bool finite;
} errors;

static void compare(const float *got, const float *ref, int64_t n, int step, errors *e) {
    double step_abs = 0, step_scale = 1;
    for (int64_t k = 0; k < n; k++) {
        if (!isfinite(got[k])) {
            e->finite = false;
            e->worst = e->normwise = INFINITY;
            e->worst_step = step;
            continue;
        }
        double d = fabs((double)got[k] - (double)ref[k]), r = fabs((double)ref[k]);
        if (d > e->max_abs) e->max_abs = d;
        if (d > step_abs) step_abs = d;
        if (r > step_scale) step_scale = r;
        if (r >= 1.0 && d / r > e->max_rel) e->max_rel = d / r;
        double mixed = d / (r > 1.0 ? r : 1.0);
        if (mixed > e->worst) {
            e->worst = mixed;
            e->worst_step = step;
        }
    }
    if (step_abs / step_scale > e->normwise) e->normwise = step_abs / step_scale;
}

/* Runs all steps with the C scheduler `s` on the fixture's records `data`. forced: every step
 * starts from diffusers' sample before that step (checks each step's arithmetic alone);
 * otherwise the C samples are fed back (one free-running trajectory). Writes the final sample to
 * `final` when not NULL. */
static bool run_trajectory(uniecg_scheduler *s, const fixture_config *c, const float *data, bool forced, errors *e,
                           float *final, char *why, size_t why_size) {
    int64_t n = c->params.sample_size;
    float *sample = malloc((size_t)n * sizeof(float));
    if (!sample) return false;
    memcpy(sample, data, (size_t)n * sizeof(float));
    const float *record = data + n, *previous_reference = data;
    memset(e, 0, sizeof *e);
    e->finite = true;
    bool ok = true;
    for (int32_t i = 0; i < c->params.steps && ok; i++) {
        const float *model_output = record;
        record += n;
        const float *noise = NULL;
        if (c->noise) {
            noise = record;
            record += n;
        }
        /* DDPM adds no noise at t = 0: pass none there, as the header allows */
        if (c->params.kind == UNIECG_SCHEDULER_DDPM && c->timesteps[i] == 0) noise = NULL;
        const float *reference = record;
        record += n;
        if (forced) memcpy(sample, previous_reference, (size_t)n * sizeof(float));
        uniecg_error error = {0};
        uniecg_status status = uniecg_scheduler_step(s, i, model_output, sample, noise, &error);
        if (status != UNIECG_OK) {
            snprintf(why, why_size, "step %d: %s (%.300s)", i, uniecg_status_string(status), error.message);
            ok = false;
            break;
        }
        compare(sample, reference, n, i, e);
        previous_reference = reference;
    }
    if (ok && final) memcpy(final, sample, (size_t)n * sizeof(float));
    free(sample);
    return ok;
}

static void check_config(const fixture_config *c) {
    size_t length = 0;
    unsigned char *bytes = read_file(c->file, &length);
    CHECK_MSG(bytes != NULL, "%s: cannot read %s/%s", c->name, fixtures, c->file);
    if (!bytes) return;
    int64_t n = c->params.sample_size;
    size_t records = 1 + (size_t)c->params.steps * (c->noise ? 3 : 2);
    CHECK_MSG(length == records * (size_t)n * 4, "%s: %zu bytes, expected %zu", c->name, length,
              records * (size_t)n * 4);
    if (length != records * (size_t)n * 4) {
        free(bytes);
        return;
    }
    float *data = decode_f32(bytes, records * (size_t)n);
    free(bytes);
    if (!data) return;

    uniecg_scheduler *s = NULL;
    uniecg_error error = {0};
    CHECK_STATUS(uniecg_scheduler_create(c->params, &s, &error), UNIECG_OK, &error);
    if (!s) {
        free(data);
        return;
    }
    CHECK_MSG(uniecg_scheduler_steps(s) == c->params.steps, "%s: %d steps", c->name, uniecg_scheduler_steps(s));
    int timestep_mismatches = 0;
    for (int32_t i = 0; i < c->params.steps; i++) {
        int32_t t = uniecg_scheduler_timestep(s, i);
        if (t != c->timesteps[i] && timestep_mismatches++ < 3)
            printf("  %s: timestep %d is %d, diffusers %d\n", c->name, i, t, c->timesteps[i]);
    }
    CHECK_MSG(timestep_mismatches == 0, "%s: %d timesteps differ from diffusers", c->name, timestep_mismatches);

    char why[400] = "";
    float *first = malloc((size_t)n * sizeof(float)), *second = malloc((size_t)n * sizeof(float));
    errors step_errors, run_errors;
    bool forced = run_trajectory(s, c, data, true, &step_errors, NULL, why, sizeof why);
    CHECK_MSG(forced, "%s (per step): %s", c->name, why);
    uniecg_scheduler_reset(s);
    bool ran = first && second && run_trajectory(s, c, data, false, &run_errors, first, why, sizeof why);
    CHECK_MSG(ran, "%s: %s", c->name, why);
    if (forced && ran) {
        printf("%-26s %2d steps: each step %.2g (abs %.2g, rel %.2g); trajectory %.2g element-wise (abs %.2g), "
               "%.2g norm-wise\n",
               c->name, c->params.steps, step_errors.worst, step_errors.max_abs, step_errors.max_rel, run_errors.worst,
               run_errors.max_abs, run_errors.normwise);
        CHECK_MSG(step_errors.finite && run_errors.finite, "%s: non-finite sample", c->name);
        CHECK_MSG(step_errors.worst <= BAR, "%s: step %d differs from diffusers by %.3g (bar %g)", c->name,
                  step_errors.worst_step, step_errors.worst, BAR);
        CHECK_MSG(run_errors.normwise <= BAR, "%s: the trajectory differs from diffusers' by %.3g of its size (bar %g)",
                  c->name, run_errors.normwise, BAR);

        /* the same scheduler again after reset: the same numbers, bit for bit */
        uniecg_scheduler_reset(s);
        errors again;
        bool reran = run_trajectory(s, c, data, false, &again, second, why, sizeof why);
        CHECK_MSG(reran && memcmp(first, second, (size_t)n * sizeof(float)) == 0,
                  "%s: a second run after reset differs (%s)", c->name, why);
    }
    uniecg_scheduler_free(s);

    /* Negative control: the other prediction type must miss the reference by far, so the
     * comparison above is able to fail. */
    uniecg_scheduler_params other = c->params;
    other.prediction = c->params.prediction == UNIECG_PREDICT_EPSILON ? UNIECG_PREDICT_V : UNIECG_PREDICT_EPSILON;
    s = NULL;
    CHECK_STATUS(uniecg_scheduler_create(other, &s, &error), UNIECG_OK, &error);
    if (s) {
        errors wrong;
        if (run_trajectory(s, c, data, true, &wrong, NULL, why, sizeof why))
            CHECK_MSG(wrong.worst > 1e-2, "%s: the wrong prediction type still matches (%.3g)", c->name, wrong.worst);
        else CHECK_MSG(false, "%s (other prediction): %s", c->name, why);
        uniecg_scheduler_free(s);
    }
    free(first);
    free(second);
    free(data);
}

static int check_fixtures(void) {
    size_t length = 0;
    char *manifest = (char *)read_file("manifest.txt", &length);
    CHECK_MSG(manifest != NULL, "cannot read %s/manifest.txt", fixtures);
    if (!manifest) return 0;
    int count = 0, kinds[3] = {0};
    fixture_config *c = malloc(sizeof *c);
    for (char *line = strtok(manifest, "\n"); line && c; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || line[0] == 0) continue;
        char why[200];
        bool parsed = parse_config(line, c, why, sizeof why);
        CHECK_MSG(parsed, "manifest line %.60s...: %s", line, why);
        if (!parsed) continue;
        count++;
        kinds[c->params.kind]++;
        check_config(c);
    }
    free(c);
    free(manifest);
    CHECK_MSG(count >= 8 && kinds[0] >= 2 && kinds[1] >= 3 && kinds[2] >= 3,
              "manifest: %d configurations (%d DDPM, %d DDIM, %d DPM++)", count, kinds[0], kinds[1], kinds[2]);
    return count;
}

/* ---- uniecg_normal_noise ---- */

static void check_normal_noise(void) {
    size_t length = 0;
    char *text = (char *)read_file("normal_noise.txt", &length);
    CHECK_MSG(text != NULL, "cannot read %s/normal_noise.txt", fixtures);
    if (!text) return;
    int seeds_checked = 0;
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    while (line) {
        unsigned long long seed;
        int count;
        if (sscanf(line, "seed=%llu count=%d", &seed, &count) == 2 && count > 0 && count <= 4096) {
            float *expected = malloc((size_t)count * sizeof(float));
            float *got = malloc(((size_t)count + 1) * sizeof(float));
            int read = 0;
            while (read < count && (line = strtok_r(NULL, "\n", &save))) expected[read++] = strtof(line, NULL);
            CHECK_MSG(read == count, "normal_noise seed %llu: %d of %d values", seed, read, count);
            got[count] = 12345.0f; /* must stay untouched */
            uniecg_normal_noise(seed, got, count);
            int exact = 0;
            double worst = 0;
            for (int k = 0; k < read; k++) {
                double d = fabs((double)got[k] - expected[k]) / fmax(1.0, fabs((double)expected[k]));
                if (got[k] == expected[k]) exact++;
                if (!(d <= worst)) worst = d;
            }
            printf("normal_noise seed %llu: %d of %d values bit-exact, worst error %.3g\n", seed, exact, read, worst);
            /* numpy's and the C library's cos/log/sqrt may differ in the last bit of a double;
             * after rounding to float that is at most one float ulp */
            CHECK_MSG(worst <= 2.4e-7, "normal_noise seed %llu: error %.3g", seed, worst);
            CHECK_MSG(exact >= read - 2, "normal_noise seed %llu: only %d of %d bit-exact", seed, exact, read);
            CHECK(got[count] == 12345.0f);
            /* an odd count is the prefix of the even one */
            float *odd = malloc((size_t)count * sizeof(float));
            odd[count - 1] = -7.0f;
            uniecg_normal_noise(seed, odd, count - 1);
            CHECK_MSG(memcmp(odd, got, ((size_t)count - 1) * sizeof(float)) == 0 && odd[count - 1] == -7.0f,
                      "normal_noise seed %llu: count %d is not the prefix of count %d", seed, count - 1, count);
            free(odd);
            free(expected);
            free(got);
            seeds_checked++;
        } else if (sscanf(line, "xoshiro seed=%llu", &seed) == 1) {
            uint64_t state[4];
            uniecg__xoshiro_seed(state, seed);
            int mismatches = 0, values = 0;
            for (int k = 0; k < 8 && (line = strtok_r(NULL, "\n", &save)); k++) {
                unsigned long long expected = strtoull(line, NULL, 10);
                if (uniecg__xoshiro_next(state) != expected) mismatches++;
                values++;
            }
            CHECK_MSG(values == 8 && mismatches == 0, "xoshiro256** seed %llu: %d of %d outputs differ", seed,
                      mismatches, values);
        }
        line = strtok_r(NULL, "\n", &save);
    }
    CHECK_MSG(seeds_checked == 2, "normal_noise: %d seeds in the fixture", seeds_checked);
    free(text);

    /* count 0 writes nothing; different seeds differ; the numbers look standard normal */
    float one = 3.0f;
    uniecg_normal_noise(1, &one, 0);
    CHECK(one == 3.0f);
    enum { N = 20000 };
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    uniecg_normal_noise(7, a, N);
    uniecg_normal_noise(8, b, N);
    double mean = 0, square = 0;
    int same = 0;
    for (int k = 0; k < N; k++) {
        mean += a[k];
        square += (double)a[k] * a[k];
        same += a[k] == b[k];
    }
    mean /= N;
    square /= N;
    CHECK_MSG(fabs(mean) < 0.05 && fabs(square - 1) < 0.05 && same < 5, "normal noise: mean %.4f, E[z^2] %.4f, %d equal",
              mean, square, same);
    free(a);
    free(b);
}

/* ---- bad input ---- */

static uniecg_scheduler_params small(uniecg_scheduler_kind kind) {
    uniecg_scheduler_params p = uniecg_scheduler_default_params();
    p.kind = kind;
    p.steps = 4;
    p.sample_size = 8;
    return p;
}

static void expect_create_error(uniecg_scheduler_params p, uniecg_status expected, const char *what) {
    uniecg_scheduler *s = (uniecg_scheduler *)&p; /* must be overwritten with NULL */
    uniecg_error error = {0};
    uniecg_status status = uniecg_scheduler_create(p, &s, &error);
    CHECK_MSG(status == expected && s == NULL && error.message[0] != 0,
              "create with %s: %s, expected %s, out %p, message \"%s\"", what, uniecg_status_string(status),
              uniecg_status_string(expected), (void *)s, error.message);
    uniecg_scheduler_free(status == UNIECG_OK ? s : NULL);
}

static bool same_floats(const float *a, const float *b, int n) { return memcmp(a, b, (size_t)n * sizeof(float)) == 0; }

static void check_bad_input(void) {
    /* documented defaults */
    uniecg_scheduler_params d = uniecg_scheduler_default_params();
    CHECK(d.train_steps == 1000 && d.betas == UNIECG_BETAS_LINEAR && d.beta_start == 0.00085 && d.beta_end == 0.012);
    CHECK(d.prediction == UNIECG_PREDICT_EPSILON && d.steps == 50 && d.eta == 0.0f && d.clip_sample &&
          d.clip_range == 1.0f);

    uniecg_scheduler_params p;
    p = small(UNIECG_SCHEDULER_DDIM), p.steps = 0;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "0 steps");
    p = small(UNIECG_SCHEDULER_DPMPP_2M), p.steps = -3;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "negative steps");
    p = small(UNIECG_SCHEDULER_DDPM), p.steps = 1001;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "steps > train_steps");
    p = small(UNIECG_SCHEDULER_DDPM), p.train_steps = 1, p.steps = 1;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "1 training step");
    p = small(UNIECG_SCHEDULER_DDIM), p.sample_size = 0;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "sample_size 0");
    p = small(UNIECG_SCHEDULER_DDIM), p.sample_size = -512;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "negative sample_size");
    p = small(UNIECG_SCHEDULER_DDIM), p.kind = (uniecg_scheduler_kind)3;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "unknown kind");
    p = small(UNIECG_SCHEDULER_DDIM), p.betas = (uniecg_beta_schedule)3;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "unknown beta schedule");
    p = small(UNIECG_SCHEDULER_DDIM), p.prediction = (uniecg_prediction)2;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "unknown prediction");
    p = small(UNIECG_SCHEDULER_DDIM), p.beta_start = 0;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "beta_start 0");
    p = small(UNIECG_SCHEDULER_DDIM), p.beta_end = 1.0;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "beta_end 1");
    p = small(UNIECG_SCHEDULER_DDIM), p.beta_start = 0.02, p.beta_end = 0.01;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "beta_start > beta_end");
    p = small(UNIECG_SCHEDULER_DDIM), p.beta_start = NAN;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "NaN beta_start");
    p = small(UNIECG_SCHEDULER_DDIM), p.eta = 1.5f;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "eta 1.5");
    p = small(UNIECG_SCHEDULER_DDIM), p.eta = NAN;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "NaN eta");
    p = small(UNIECG_SCHEDULER_DDIM), p.clip_range = 0;
    expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "clip_range 0");
    {
        uniecg_error error = {0};
        CHECK_STATUS(uniecg_scheduler_create(small(UNIECG_SCHEDULER_DDIM), NULL, &error), UNIECG_ERR_INVALID_ARGUMENT,
                     &error);
        uniecg_scheduler *s = NULL;
        p = small(UNIECG_SCHEDULER_DDIM), p.steps = 0;
        CHECK(uniecg_scheduler_create(p, &s, NULL) == UNIECG_ERR_INVALID_ARGUMENT); /* a NULL error is fine */
        CHECK(s == NULL);
        /* cosine ignores beta_start / beta_end */
        p = small(UNIECG_SCHEDULER_DDIM), p.betas = UNIECG_BETAS_COSINE, p.beta_start = 0;
        CHECK_STATUS(uniecg_scheduler_create(p, &s, &error), UNIECG_OK, &error);
        uniecg_scheduler_free(s);
        /* steps == train_steps is allowed for DDPM / DDIM and for DPM++ one step fewer; the
         * timesteps are distinct, descending, in range */
        for (int kind = 0; kind < 3; kind++) {
            p = small((uniecg_scheduler_kind)kind), p.steps = p.train_steps = 50;
            if (kind == UNIECG_SCHEDULER_DPMPP_2M) p.steps = 49;
            s = NULL;
            CHECK_STATUS(uniecg_scheduler_create(p, &s, &error), UNIECG_OK, &error);
            bool ordered = s != NULL;
            for (int32_t i = 0; s && i < p.steps; i++) {
                int32_t t = uniecg_scheduler_timestep(s, i);
                if (t < 0 || t > 49 || (i > 0 && t >= uniecg_scheduler_timestep(s, i - 1))) ordered = false;
            }
            CHECK_MSG(ordered, "kind %d, %d of 50 steps: timesteps not descending in 0..49", kind, p.steps);
            uniecg_scheduler_free(s);
        }
        /* DPM++ with steps == train_steps: linspace repeats a timestep, where diffusers divides
         * by zero (its samples become inf / NaN); the C scheduler refuses the configuration */
        p = small(UNIECG_SCHEDULER_DPMPP_2M), p.steps = p.train_steps = 50;
        expect_create_error(p, UNIECG_ERR_INVALID_ARGUMENT, "DPM++ steps == train_steps");
    }
    uniecg_scheduler_free(NULL);
    uniecg_scheduler_reset(NULL);
    CHECK(uniecg_scheduler_steps(NULL) == 0);
    CHECK(uniecg_scheduler_timestep(NULL, 0) == -1);

    float out[8], x[8], x_before[8], noise[8];
    for (int k = 0; k < 8; k++) {
        out[k] = 0.1f * (float)k - 0.3f;
        x_before[k] = 0.25f * (float)k - 1.0f;
        noise[k] = 0.5f - 0.125f * (float)k;
    }
    for (int kind = 0; kind < 3; kind++) {
        uniecg_scheduler *s = NULL;
        uniecg_error error = {0};
        p = small((uniecg_scheduler_kind)kind);
        p.eta = kind == UNIECG_SCHEDULER_DDIM ? 0.5f : 0.0f;
        CHECK_STATUS(uniecg_scheduler_create(p, &s, &error), UNIECG_OK, &error);
        if (!s) continue;
        CHECK(uniecg_scheduler_timestep(s, -1) == -1 && uniecg_scheduler_timestep(s, 4) == -1);
        memcpy(x, x_before, sizeof x);
        CHECK_STATUS(uniecg_scheduler_step(NULL, 0, out, x, noise, &error), UNIECG_ERR_INVALID_ARGUMENT, &error);
        CHECK_STATUS(uniecg_scheduler_step(s, 0, NULL, x, noise, &error), UNIECG_ERR_INVALID_ARGUMENT, &error);
        CHECK_STATUS(uniecg_scheduler_step(s, 0, out, NULL, noise, &error), UNIECG_ERR_INVALID_ARGUMENT, &error);
        CHECK_STATUS(uniecg_scheduler_step(s, -1, out, x, noise, &error), UNIECG_ERR_INVALID_ARGUMENT, &error);
        CHECK_STATUS(uniecg_scheduler_step(s, 4, out, x, noise, &error), UNIECG_ERR_INVALID_ARGUMENT, &error);
        CHECK_MSG(same_floats(x, x_before, 8), "kind %d: a refused step changed the sample", kind);

        /* non-finite model output (or noise, or sample): UNIECG_ERR_RANGE, sample untouched */
        float bad[8];
        memcpy(bad, out, sizeof bad);
        bad[5] = NAN;
        error.message[0] = 0;
        CHECK_STATUS(uniecg_scheduler_step(s, 0, bad, x, noise, &error), UNIECG_ERR_RANGE, &error);
        CHECK_MSG(error.message[0] != 0, "kind %d: NaN model output without a message", kind);
        bad[5] = INFINITY;
        CHECK_STATUS(uniecg_scheduler_step(s, 0, bad, x, noise, &error), UNIECG_ERR_RANGE, &error);
        if (kind != UNIECG_SCHEDULER_DPMPP_2M) {
            memcpy(bad, noise, sizeof bad);
            bad[2] = NAN;
            CHECK_STATUS(uniecg_scheduler_step(s, 0, out, x, bad, &error), UNIECG_ERR_RANGE, &error);
        }
        memcpy(bad, x, sizeof bad);
        bad[7] = -INFINITY;
        CHECK_STATUS(uniecg_scheduler_step(s, 0, out, bad, noise, &error), UNIECG_ERR_RANGE, &error);
        CHECK_MSG(same_floats(x, x_before, 8), "kind %d: a refused step changed the sample", kind);

        if (kind == UNIECG_SCHEDULER_DDPM) {
            /* noise is needed at every step but the last (t = 0) */
            CHECK_STATUS(uniecg_scheduler_step(s, 0, out, x, NULL, &error), UNIECG_ERR_INVALID_ARGUMENT, &error);
            CHECK_MSG(same_floats(x, x_before, 8), "DDPM without noise changed the sample");
            CHECK(uniecg_scheduler_timestep(s, 3) == 0);
            CHECK_STATUS(uniecg_scheduler_step(s, 3, out, x, NULL, &error), UNIECG_OK, &error);
        } else if (kind == UNIECG_SCHEDULER_DDIM) {
            CHECK_STATUS(uniecg_scheduler_step(s, 0, out, x, NULL, &error), UNIECG_ERR_INVALID_ARGUMENT, &error);
            CHECK_MSG(same_floats(x, x_before, 8), "DDIM without noise changed the sample");
            CHECK_STATUS(uniecg_scheduler_step(s, 0, out, x, noise, &error), UNIECG_OK, &error);
            /* eta 0 needs no noise */
            uniecg_scheduler *s0 = NULL;
            p.eta = 0;
            CHECK_STATUS(uniecg_scheduler_create(p, &s0, &error), UNIECG_OK, &error);
            memcpy(x, x_before, sizeof x);
            if (s0) CHECK_STATUS(uniecg_scheduler_step(s0, 0, out, x, NULL, &error), UNIECG_OK, &error);
            uniecg_scheduler_free(s0);
        } else {
            /* the multistep solver: steps in order 0, 1, ... */
            CHECK_STATUS(uniecg_scheduler_step(s, 1, out, x, NULL, &error), UNIECG_ERR_STATE, &error);
            CHECK_MSG(same_floats(x, x_before, 8), "an out-of-order DPM++ step changed the sample");
            CHECK_STATUS(uniecg_scheduler_step(s, 0, out, x, NULL, &error), UNIECG_OK, &error);
            float after0[8];
            memcpy(after0, x, sizeof x);
            CHECK_STATUS(uniecg_scheduler_step(s, 0, out, x, NULL, &error), UNIECG_ERR_STATE, &error);
            CHECK_STATUS(uniecg_scheduler_step(s, 2, out, x, NULL, &error), UNIECG_ERR_STATE, &error);
            bad[0] = NAN; /* a refused NaN step does not count as taken */
            memcpy(bad + 1, out + 1, 7 * sizeof(float));
            CHECK_STATUS(uniecg_scheduler_step(s, 1, bad, x, NULL, &error), UNIECG_ERR_RANGE, &error);
            CHECK_MSG(same_floats(x, after0, 8), "refused DPM++ steps changed the sample");
            CHECK_STATUS(uniecg_scheduler_step(s, 1, out, x, NULL, &error), UNIECG_OK, &error);
            /* reset restarts at step 0 */
            uniecg_scheduler_reset(s);
            CHECK_STATUS(uniecg_scheduler_step(s, 2, out, x, NULL, &error), UNIECG_ERR_STATE, &error);
            memcpy(x, x_before, sizeof x);
            CHECK_STATUS(uniecg_scheduler_step(s, 0, out, x, NULL, &error), UNIECG_OK, &error);
            CHECK_MSG(same_floats(x, after0, 8), "DPM++ step 0 after reset differs");
        }
        uniecg_scheduler_free(s);
    }
}

int main(void) {
    if (!find_fixtures()) {
        printf("cannot find Tests/Fixtures/scheduler (set UNIECG_FIXTURES)\n0 passed, 1 failed\n");
        return 1;
    }
    check_fixtures();
    check_normal_noise();
    check_bad_input();
    return test_summary();
}
