/* Diffusion schedulers: noise tables (betas -> cumulative alphas) and the update rules of
 * DDPM, DDIM and DPM-Solver++(2M) as Hugging Face diffusers computes them with its default
 * settings, so the same model outputs give the same trajectory (checked by fixtures). */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

#define UNIECG_PI 3.14159265358979323846

struct uniecg_scheduler {
    uniecg_scheduler_params p;
    double *alphas_cumprod; /* (train_steps) */
    int32_t *timesteps;     /* (steps) descending */
    double *sigmas;         /* DPM++: (steps + 1), the last 0 */
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
    if (p.prediction != UNIECG_PREDICT_EPSILON && p.prediction != UNIECG_PREDICT_V)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "unknown prediction type %d", (int)p.prediction);
    uniecg_scheduler *s = calloc(1, sizeof *s);
    if (!s) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    s->p = p;
    int32_t T = p.train_steps, n = p.steps;
    s->alphas_cumprod = malloc((size_t)T * sizeof(double));
    s->timesteps = malloc((size_t)n * sizeof(int32_t));
    s->sigmas = malloc(((size_t)n + 1) * sizeof(double));
    s->previous_x0 = malloc((size_t)p.sample_size * sizeof(float));
    if (!s->alphas_cumprod || !s->timesteps || !s->sigmas || !s->previous_x0) {
        uniecg_scheduler_free(s);
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    }
    /* diffusers builds these tables in float32: round each stage the same way */
    float product = 1.0f;
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
        product *= 1.0f - beta;
        s->alphas_cumprod[t] = product;
    }
    if (p.kind == UNIECG_SCHEDULER_DPMPP_2M) {
        /* "linspace" spacing: round(linspace(0, T-1, n+1)) reversed, the last dropped */
        for (int32_t i = 0; i < n; i++) /* nearbyint: ties to even, as numpy's round */
            s->timesteps[i] = (int32_t)nearbyint((double)(T - 1) * (n - i) / n);
        for (int32_t i = 0; i < n; i++) {
            double a = s->alphas_cumprod[s->timesteps[i]];
            s->sigmas[i] = sqrt((1 - a) / a);
        }
        s->sigmas[n] = 0.0;
    } else {
        /* "leading" spacing: (0..n-1) * (T / n), reversed */
        int32_t ratio = T / n;
        for (int32_t i = 0; i < n; i++) s->timesteps[i] = (n - 1 - i) * ratio;
    }
    *out = s;
    return UNIECG_OK;
}

static inline float clip(float v, float range) { return v > range ? range : v < -range ? -range : v; }

/* x0 and epsilon predictions from the model output. */
static void predictions(const uniecg_scheduler *s, double alpha_prod, float out, float x, float *x0, float *eps) {
    double a = sqrt(alpha_prod), b = sqrt(1 - alpha_prod);
    if (s->p.prediction == UNIECG_PREDICT_EPSILON) {
        *x0 = (float)((x - b * out) / a);
        *eps = out;
    } else {
        *x0 = (float)(a * x - b * out);
        *eps = (float)(a * out + b * x);
    }
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
        double sigma_s0 = s->sigmas[i], sigma_t = s->sigmas[i + 1];
        double alpha_s0 = 1 / sqrt(sigma_s0 * sigma_s0 + 1), sig_s0 = sigma_s0 * alpha_s0;
        double alpha_t = 1 / sqrt(sigma_t * sigma_t + 1), sig_t = sigma_t * alpha_t;
        bool first_order = i == 0 || i == p->steps - 1; /* final sigma 0: the last step is Euler */
        for (int64_t k = 0; k < n; k++) {
            float x0, eps;
            /* dpmsolver++ works on the x0 prediction; the alpha here is the one of sigma_s0 */
            predictions(s, alpha_s0 * alpha_s0, model_output[k], sample[k], &x0, &eps);
            float x = sample[k], result;
            if (sig_t == 0.0) {
                result = x0; /* h is infinite: the update reduces to the x0 prediction */
            } else {
                double lambda_t = log(alpha_t) - log(sig_t), lambda_s0 = log(alpha_s0) - log(sig_s0);
                double h = lambda_t - lambda_s0;
                if (first_order) {
                    result = (float)((sig_t / sig_s0) * x - alpha_t * (exp(-h) - 1.0) * x0);
                } else {
                    double sigma_s1 = s->sigmas[i - 1];
                    double alpha_s1 = 1 / sqrt(sigma_s1 * sigma_s1 + 1), sig_s1 = sigma_s1 * alpha_s1;
                    double lambda_s1 = log(alpha_s1) - log(sig_s1);
                    double r0 = (lambda_s0 - lambda_s1) / h;
                    double d0 = x0, d1 = (1.0 / r0) * ((double)x0 - s->previous_x0[k]);
                    result = (float)((sig_t / sig_s0) * x - alpha_t * (exp(-h) - 1.0) * d0 - 0.5 * alpha_t * (exp(-h) - 1.0) * d1);
                }
            }
            s->previous_x0[k] = x0;
            sample[k] = result;
        }
        s->taken++;
        return UNIECG_OK;
    }

    int32_t prev_t = t - p->train_steps / p->steps;
    double alpha_prod = s->alphas_cumprod[t], alpha_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : 1.0;
    double beta_prod = 1 - alpha_prod, beta_prev = 1 - alpha_prev;
    if (p->kind == UNIECG_SCHEDULER_DDIM) {
        double variance = (beta_prev / beta_prod) * (1 - alpha_prod / alpha_prev);
        double std = p->eta * sqrt(variance);
        if (std > 0 && !noise) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "DDIM with eta > 0 needs noise");
        double direction = sqrt(1 - alpha_prev - std * std);
        for (int64_t k = 0; k < n; k++) {
            float x0, eps;
            predictions(s, alpha_prod, model_output[k], sample[k], &x0, &eps);
            if (p->clip_sample) x0 = clip(x0, p->clip_range);
            double prev = sqrt(alpha_prev) * x0 + direction * eps;
            if (std > 0) prev += std * noise[k];
            sample[k] = (float)prev;
        }
        return UNIECG_OK;
    }
    /* DDPM */
    double current_alpha = alpha_prod / alpha_prev, current_beta = 1 - current_alpha;
    double coef_x0 = sqrt(alpha_prev) * current_beta / beta_prod, coef_x = sqrt(current_alpha) * beta_prev / beta_prod;
    double variance = beta_prev / beta_prod * current_beta;
    if (variance < 1e-20) variance = 1e-20;
    bool add_noise = t > 0;
    if (add_noise && !noise) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "DDPM needs noise at every step but the last");
    for (int64_t k = 0; k < n; k++) {
        float x0, eps;
        predictions(s, alpha_prod, model_output[k], sample[k], &x0, &eps);
        if (p->clip_sample) x0 = clip(x0, p->clip_range);
        double prev = coef_x0 * x0 + coef_x * sample[k];
        if (add_noise) prev += sqrt(variance) * noise[k];
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
