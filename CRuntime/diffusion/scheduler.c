/* Diffusion schedulers: noise tables (betas -> cumulative alphas) and the update rules of
 * DDPM, DDIM and DPM-Solver++(2M) as Hugging Face diffusers computes them with its default
 * settings, so the same model outputs give the same trajectory (checked by fixtures). */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

#ifdef __clang__ /* gcc ignores the pragma; the C test build passes -ffp-contract=off */
#pragma STDC FP_CONTRACT OFF
#endif

#define UNIECG_PI 3.14159265358979323846

struct uniecg_scheduler {
    uniecg_scheduler_params p;
    double *alphas_cumprod; /* (train_steps) */
    int32_t *timesteps;     /* (steps) descending */
    float *sigmas;          /* DPM++: (steps + 1), the last 0, float32 as diffusers stores them */
    float *previous_x0;     /* DPM++: (sample_size) x0 prediction of the previous step */
    int32_t taken;          /* DPM++: steps taken since reset */
};

uniecg_scheduler_params uniecg_scheduler_default_params(void) {
    return (uniecg_scheduler_params){.kind = UNIECG_SCHEDULER_DDIM, .train_steps = 1000, .betas = UNIECG_BETAS_LINEAR,
                                     .beta_start = 0.00085, .beta_end = 0.012, .prediction = UNIECG_PREDICT_EPSILON,
                                     .steps = 50, .eta = 0.0f, .clip_sample = true, .clip_range = 1.0f, .sample_size = 0};
}

void uniecg_scheduler_free(uniecg_scheduler *s) {
    if (!s) return;
    free(s->alphas_cumprod);
    free(s->timesteps);
    free(s->sigmas);
    free(s->previous_x0);
    free(s);
}

void uniecg_scheduler_reset(uniecg_scheduler *s) {
    if (s) s->taken = 0;
}

int32_t uniecg_scheduler_steps(const uniecg_scheduler *s) { return s ? s->p.steps : 0; }

int32_t uniecg_scheduler_timestep(const uniecg_scheduler *s, int32_t i) {
    return s && i >= 0 && i < s->p.steps ? s->timesteps[i] : -1;
}

uniecg_status uniecg_scheduler_create(uniecg_scheduler_params p, uniecg_scheduler **out, uniecg_error *error) {
    if (!out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "scheduler_create: NULL output");
    *out = NULL;
    if (p.kind < UNIECG_SCHEDULER_DDPM || p.kind > UNIECG_SCHEDULER_DPMPP_2M)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "unknown scheduler %d", (int)p.kind);
    if (p.train_steps < 2 || p.train_steps > 100000 || p.steps < 1 || p.steps > p.train_steps)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "%d inference steps of %d training steps: need 1 <= steps <= training steps",
                            p.steps, p.train_steps);
    if (!(p.beta_start > 0 && p.beta_end < 1 && p.beta_start <= p.beta_end) && p.betas != UNIECG_BETAS_COSINE)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "betas %g..%g must satisfy 0 < start <= end < 1", p.beta_start, p.beta_end);
    if (p.sample_size <= 0 || p.sample_size > (1 << 28))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "sample size %lld", (long long)p.sample_size);
    if (!(p.eta >= 0 && p.eta <= 1) || !(p.clip_range > 0))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "eta %g (0..1) or clip range %g (> 0)", (double)p.eta, (double)p.clip_range);
    if (p.betas != UNIECG_BETAS_LINEAR && p.betas != UNIECG_BETAS_SCALED_LINEAR && p.betas != UNIECG_BETAS_COSINE)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "unknown beta schedule %d", (int)p.betas);
    if (p.prediction != UNIECG_PREDICT_EPSILON && p.prediction != UNIECG_PREDICT_V)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "unknown prediction type %d", (int)p.prediction);
    uniecg_scheduler *s = calloc(1, sizeof *s);
    if (!s) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    s->p = p;
    int32_t T = p.train_steps, n = p.steps;
    s->alphas_cumprod = malloc((size_t)T * sizeof(double));
    s->timesteps = malloc((size_t)n * sizeof(int32_t));
    s->sigmas = malloc(((size_t)n + 1) * sizeof(float));
    s->previous_x0 = malloc((size_t)p.sample_size * sizeof(float));
    if (!s->alphas_cumprod || !s->timesteps || !s->sigmas || !s->previous_x0) {
        uniecg_scheduler_free(s);
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    }
    /* diffusers builds these tables in float32: betas and 1 - beta in float32, then
     * torch.cumprod, which on the CPU accumulates in double and rounds each output to float32 */
    double product = 1.0;
    for (int32_t t = 0; t < T; t++) {
        float beta;
        if (p.betas == UNIECG_BETAS_LINEAR) {
            beta = (float)(p.beta_start + (p.beta_end - p.beta_start) * t / (T - 1));
        } else if (p.betas == UNIECG_BETAS_SCALED_LINEAR) {
            float root = (float)(sqrt(p.beta_start) + (sqrt(p.beta_end) - sqrt(p.beta_start)) * t / (T - 1));
            beta = root * root;
        } else {
            double a1 = cos(((double)t / T + 0.008) / 1.008 * UNIECG_PI / 2), a2 = cos(((double)(t + 1) / T + 0.008) / 1.008 * UNIECG_PI / 2);
            double b = 1 - (a2 * a2) / (a1 * a1);
            beta = (float)(b < 0.999 ? b : 0.999);
        }
        product *= (double)(1.0f - beta);
        s->alphas_cumprod[t] = (float)product;
    }
    if (p.kind == UNIECG_SCHEDULER_DPMPP_2M) {
        /* "linspace" spacing: np.linspace(0, T-1, n+1).round() reversed, the last dropped. numpy
         * computes element k as k * ((T-1) / n) (the last exactly T-1), which rounds differently
         * from (T-1) * k / n where the value is near .5 (T 1000: 26 or 30 steps, ...) */
        double step = (double)(T - 1) / n;
        for (int32_t i = 0; i < n; i++) /* nearbyint: ties to even, as numpy's round */
            s->timesteps[i] = i == 0 ? T - 1 : (int32_t)nearbyint((double)(n - i) * step);
        /* steps == train_steps repeats a timestep (step < 1): h = 0 there, and the next
         * second-order step divides by r0 = 0 (diffusers returns inf / NaN) */
        for (int32_t i = 1; i < n; i++)
            if (s->timesteps[i] >= s->timesteps[i - 1]) {
                int32_t repeated = s->timesteps[i];
                uniecg_scheduler_free(s);
                return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                                    "DPM-Solver++ with %d steps of %d training steps repeats timestep %d: use fewer steps",
                                    n, T, repeated);
            }
        /* sigmas as diffusers stores them: ((1 - a) / a) ** 0.5 in float32 */
        for (int32_t i = 0; i < n; i++) {
            float a = (float)s->alphas_cumprod[s->timesteps[i]];
            s->sigmas[i] = sqrtf((1.0f - a) / a);
        }
        s->sigmas[n] = 0.0f;
    } else {
        /* "leading" spacing: (0..n-1) * (T / n), reversed */
        int32_t ratio = T / n;
        for (int32_t i = 0; i < n; i++) s->timesteps[i] = (n - 1 - i) * ratio;
    }
    *out = s;
    return UNIECG_OK;
}

static inline float clip(float v, float range) { return v > range ? range : v < -range ? -range : v; }

/* Precision: diffusers holds its tables (alphas_cumprod, sigmas) in float32 and evaluates each
 * step's scalars as float32 0-dim tensors. Here the tables, the DDPM/DDIM coefficients and DPM++'s
 * alpha_t / sigma_t are rounded to float as diffusers rounds them, and the element arithmetic is
 * done in double. DPM++'s lambda_t, h, exp(-h) and r0 are kept in double: in float32 they are
 * not reproducible (torch's float32 log / sqrt are not those of the C library) and a one-ulp
 * change of h = lambda_t - lambda_s moves a sample by ~1e-5 of its size. Checked against
 * diffusers by CRuntime/tests/test_scheduler.c (Tools/reference/make_scheduler_fixtures.py). */

/* x0 and epsilon predictions from the model output; a = sqrt(alpha_prod), b = sqrt(1 - alpha_prod)
 * (in DPM++ the alpha_t and sigma_t of the step's sigma). */
static inline void predictions(uniecg_prediction prediction, float a, float b, float out, float x, float *x0, float *eps) {
    if (prediction == UNIECG_PREDICT_EPSILON) {
        *x0 = (float)(((double)x - (double)b * out) / a);
        *eps = out;
    } else {
        *x0 = (float)((double)a * x - (double)b * out);
        *eps = (float)((double)a * out + (double)b * x);
    }
}

/* DPM-Solver's alpha_t and sigma_t of a noise level sigma (_sigma_to_alpha_sigma_t), rounded to
 * float32 as diffusers holds them, and lambda_t = log(alpha_t) - log(sigma_t) of those (in double). */
typedef struct {
    float alpha, sigma;
    double lambda;
} dpm_level;

static dpm_level dpm_level_of(float sigma) {
    dpm_level q;
    q.alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
    q.sigma = sigma * q.alpha;
    q.lambda = log((double)q.alpha) - log((double)q.sigma);
    return q;
}

/* NaN or infinity in an input would silently spread through the rest of the trajectory (and
 * into the DPM++ history): refuse it before anything is written. */
static uniecg_status check_finite(const float *values, int64_t n, const char *what, int32_t i, uniecg_error *error) {
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(values[k]))
            return uniecg__fail(error, UNIECG_ERR_RANGE, "scheduler step %d: %s[%lld] is %s", i, what, (long long)k,
                                isnan(values[k]) ? "NaN" : "infinite");
    return UNIECG_OK;
}

static uniecg_status check_inputs(const float *model_output, const float *sample, const float *noise, int64_t n,
                                  int32_t i, uniecg_error *error) {
    uniecg_status status = check_finite(model_output, n, "model output", i, error);
    if (status == UNIECG_OK) status = check_finite(sample, n, "sample", i, error);
    if (status == UNIECG_OK && noise) status = check_finite(noise, n, "noise", i, error);
    return status;
}

uniecg_status uniecg_scheduler_step(uniecg_scheduler *s, int32_t i, const float *model_output, float *sample,
                                    const float *noise, uniecg_error *error) {
    if (!s || !model_output || !sample) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "scheduler_step: NULL argument");
    const uniecg_scheduler_params *p = &s->p;
    if (i < 0 || i >= p->steps) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "step %d of %d", i, p->steps);
    int64_t n = p->sample_size;
    int32_t t = s->timesteps[i];

    if (p->kind == UNIECG_SCHEDULER_DPMPP_2M) {
        if (i != s->taken) return uniecg__fail(error, UNIECG_ERR_STATE, "DPM-Solver++ steps must be taken in order (expected %d)", s->taken);
        uniecg_status status = check_inputs(model_output, sample, NULL, n, i, error);
        if (status != UNIECG_OK) return status;
        /* dpmsolver++ works on the x0 prediction, from the alpha and sigma of sigma_s0 */
        dpm_level s0 = dpm_level_of(s->sigmas[i]);
        if (s->sigmas[i + 1] == 0.0f) {
            /* final sigma 0 (always first order): alpha_t 1, sigma_t 0, h infinite, exp(-h) 0,
             * so the update is exactly the x0 prediction */
            for (int64_t k = 0; k < n; k++) {
                float x0, eps;
                predictions(p->prediction, s0.alpha, s0.sigma, model_output[k], sample[k], &x0, &eps);
                s->previous_x0[k] = x0;
                sample[k] = x0;
            }
        } else {
            dpm_level lt = dpm_level_of(s->sigmas[i + 1]);
            double h = lt.lambda - s0.lambda;
            double ratio = (double)lt.sigma / s0.sigma, c0 = lt.alpha * (exp(-h) - 1.0), half_c0 = 0.5 * c0;
            bool first_order = i == 0; /* no history yet (the last step is first order above) */
            double inverse_r0 = 0.0;
            if (!first_order) {
                dpm_level s1 = dpm_level_of(s->sigmas[i - 1]);
                double r0 = (s0.lambda - s1.lambda) / h;
                inverse_r0 = 1.0 / r0;
            }
            for (int64_t k = 0; k < n; k++) {
                float x0, eps, x = sample[k];
                predictions(p->prediction, s0.alpha, s0.sigma, model_output[k], x, &x0, &eps);
                double result = ratio * x - c0 * x0;
                if (!first_order) {
                    double d1 = inverse_r0 * ((double)x0 - s->previous_x0[k]); /* D1 = (m0 - m1) / r0 */
                    result -= half_c0 * d1;
                }
                s->previous_x0[k] = x0;
                sample[k] = (float)result;
            }
        }
        s->taken++;
        return UNIECG_OK;
    }

    int32_t prev_t = t - p->train_steps / p->steps;
    float alpha_prod = (float)s->alphas_cumprod[t], alpha_prev = prev_t >= 0 ? (float)s->alphas_cumprod[prev_t] : 1.0f;
    float beta_prod = 1.0f - alpha_prod, beta_prev = 1.0f - alpha_prev;
    float a = sqrtf(alpha_prod), b = sqrtf(beta_prod), root_prev = sqrtf(alpha_prev);
    if (p->kind == UNIECG_SCHEDULER_DDIM) {
        float variance = (beta_prev / beta_prod) * (1.0f - alpha_prod / alpha_prev);
        float std = p->eta * sqrtf(variance);
        if (std > 0 && !noise) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "DDIM with eta > 0 needs noise");
        uniecg_status status = check_inputs(model_output, sample, std > 0 ? noise : NULL, n, i, error);
        if (status != UNIECG_OK) return status;
        float squared = 1.0f - alpha_prev - std * std; /* >= 0 for eta <= 1; guard the rounding */
        float direction = sqrtf(squared > 0.0f ? squared : 0.0f);
        for (int64_t k = 0; k < n; k++) {
            float x0, eps;
            predictions(p->prediction, a, b, model_output[k], sample[k], &x0, &eps);
            if (p->clip_sample) x0 = clip(x0, p->clip_range);
            double prev = (double)root_prev * x0 + (double)direction * eps;
            if (std > 0) prev += (double)std * noise[k];
            sample[k] = (float)prev;
        }
        return UNIECG_OK;
    }
    /* DDPM */
    float current_alpha = alpha_prod / alpha_prev, current_beta = 1.0f - current_alpha;
    float coef_x0 = (root_prev * current_beta) / beta_prod, coef_x = (sqrtf(current_alpha) * beta_prev) / beta_prod;
    float variance = (beta_prev / beta_prod) * current_beta;
    if (!(variance >= 1e-20f)) variance = 1e-20f;
    float std = sqrtf(variance);
    bool add_noise = t > 0;
    if (add_noise && !noise) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "DDPM needs noise at every step but the last");
    uniecg_status status = check_inputs(model_output, sample, add_noise ? noise : NULL, n, i, error);
    if (status != UNIECG_OK) return status;
    for (int64_t k = 0; k < n; k++) {
        float x0, eps;
        predictions(p->prediction, a, b, model_output[k], sample[k], &x0, &eps);
        if (p->clip_sample) x0 = clip(x0, p->clip_range);
        double prev = (double)coef_x0 * x0 + (double)coef_x * sample[k];
        if (add_noise) prev += (double)std * noise[k];
        sample[k] = (float)prev;
    }
    return UNIECG_OK;
}

void uniecg_normal_noise(uint64_t seed, float *out, int64_t count) {
    uint64_t state[4];
    uniecg__xoshiro_seed(state, seed);
    for (int64_t k = 0; k < count; k += 2) {
        double u1 = (double)(uniecg__xoshiro_next(state) >> 11) * 0x1.0p-53;
        double u2 = (double)(uniecg__xoshiro_next(state) >> 11) * 0x1.0p-53;
        double radius = sqrt(-2.0 * log(1.0 - u1)), angle = 2.0 * UNIECG_PI * u2;
        out[k] = (float)(radius * cos(angle));
        if (k + 1 < count) out[k + 1] = (float)(radius * sin(angle));
    }
}
