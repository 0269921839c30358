/* arm64 q8 kernels: armv8.0 Advanced SIMD (widening multiplies), and the dot-product
 * extension (SDOT) compiled per function and chosen only when the CPU reports it. */
#include "kernels.h"
#include "attend_driver.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>

static inline int32x4_t dot32_neon(const int8_t *a, const int8_t *b) {
    int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16), b0 = vld1q_s8(b), b1 = vld1q_s8(b + 16);
    /* each int16 lane sums two products of magnitude <= 127*127: no overflow */
    int16x8_t p0 = vmlal_s8(vmull_s8(vget_low_s8(a0), vget_low_s8(b0)), vget_high_s8(a0), vget_high_s8(b0));
    int16x8_t p1 = vmlal_s8(vmull_s8(vget_low_s8(a1), vget_low_s8(b1)), vget_high_s8(a1), vget_high_s8(b1));
    return vpadalq_s16(vpaddlq_s16(p0), p1);
}

static int32_t group_dot_neon(const int8_t *a, const int8_t *b) { return vaddvq_s32(dot32_neon(a, b)); }

/* GCC's arm_neon.h declares SDOT under arch=armv8.2-a+dotprod and refuses to inline it into a
 * function that names only the extension; clang spells the extension alone. */
#if defined(__clang__)
#define DOTPROD_TARGET __attribute__((target("dotprod")))
#else
#define DOTPROD_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

DOTPROD_TARGET static inline int32x4_t dot32_sdot(const int8_t *a, const int8_t *b) {
    int32x4_t acc = vdotq_s32(vdupq_n_s32(0), vld1q_s8(a), vld1q_s8(b));
    return vdotq_s32(acc, vld1q_s8(a + 16), vld1q_s8(b + 16));
}

DOTPROD_TARGET static int32_t group_dot_sdot(const int8_t *a, const int8_t *b) { return vaddvq_s32(dot32_sdot(a, b)); }

/* One body, two integer dot products. */
#define DEFINE_MATMUL(NAME, DOT, TARGET)                                                               \
    TARGET static void NAME(const q8_matmul_args *a, int64_t row_begin, int64_t row_end) {            \
        int64_t groups = a->cols / UNIECG_Q8_GROUP;                                                    \
        for (int64_t r = row_begin; r < row_end; r++) {                                                \
            const int8_t *w = a->w + r * a->cols;                                                      \
            const uint8_t *ws = a->w_scales + 2 * r * groups;                                          \
            for (int64_t t = 0; t < a->n_tokens; t++) {                                                \
                const int8_t *x = a->xq + t * a->cols;                                                 \
                const float *xs = a->xs + t * groups;                                                  \
                float32x4_t acc = vdupq_n_f32(0.0f);                                                   \
                for (int64_t g = 0; g < groups; g++) {                                                 \
                    float scale = uniecg_f16_to_f32(uniecg__get_u16(ws + 2 * g)) * xs[g];              \
                    int32x4_t p = DOT(w + g * UNIECG_Q8_GROUP, x + g * UNIECG_Q8_GROUP);               \
                    acc = vfmaq_n_f32(acc, vcvtq_f32_s32(p), scale);                                   \
                }                                                                                      \
                a->y[t * a->y_stride + r] = vaddvq_f32(acc);                                           \
            }                                                                                          \
        }                                                                                              \
    }

DEFINE_MATMUL(q8_matmul_neon, dot32_neon, )
DEFINE_MATMUL(q8_matmul_sdot, dot32_sdot, DOTPROD_TARGET)

/* Tap-major q8 convolution (kernels.h): int32 sums over a whole tap, then the reference's
 * float steps as two statements so that no compiler fuses them. */
#define DEFINE_CONV(NAME, DOT, TARGET)                                                                 \
    TARGET static void NAME(const q8_conv_args *a, int64_t row_begin, int64_t row_end) {              \
        int64_t groups = a->c_in / UNIECG_Q8_GROUP;                                                    \
        for (int64_t r = row_begin; r < row_end; r++) {                                                \
            for (int64_t t = 0; t < a->n_tokens; t++) {                                                \
                float sum = 0.0f;                                                                      \
                for (int64_t j = 0; j < a->taps; j++) {                                                \
                    int64_t p = t * a->stride + j;                                                     \
                    const int8_t *w = a->w + (r * a->taps + j) * a->c_in, *x = a->xq + p * a->c_in;    \
                    int32x4_t acc = vdupq_n_s32(0);                                                    \
                    for (int64_t g = 0; g < groups; g++)                                               \
                        acc = vaddq_s32(acc, DOT(w + g * UNIECG_Q8_GROUP, x + g * UNIECG_Q8_GROUP));   \
                    float scale = a->w_scales[r * a->taps + j] * a->xs[p];                             \
                    float term = scale * (float)vaddvq_s32(acc);                                       \
                    sum = sum + term;                                                                  \
                }                                                                                      \
                a->y[r * a->y_stride + t] = sum;                                                       \
            }                                                                                          \
        }                                                                                              \
    }

DEFINE_CONV(q8_conv_neon, dot32_neon, )
DEFINE_CONV(q8_conv_sdot, dot32_sdot, DOTPROD_TARGET)

static float f32_dot_neon(const float *a, const float *b, int64_t n) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void f32_axpy_neon(float *y, float alpha, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), alpha));
    for (; i < n; i++) y[i] += alpha * x[i];
}

/* Four dot products sharing a (see kernels.h), four lanes at a time; the last 1-3 values of each
 * are added after the lanes are summed. */
static void f32_dot4_neon(const float *a, const float *b, int64_t b_stride, int64_t n, float *out) {
    const float *bs[4] = {b, b + b_stride, b + 2 * b_stride, b + 3 * b_stride};
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t x = vld1q_f32(a + i);
        for (int j = 0; j < 4; j++) acc[j] = vfmaq_f32(acc[j], x, vld1q_f32(bs[j] + i));
    }
    for (int j = 0; j < 4; j++) {
        float sum = vaddvq_f32(acc[j]);
        for (int64_t k = i; k < n; k++) sum += a[k] * bs[j][k];
        out[j] = sum;
    }
}

/* e^x for x in [-88, 88], the AVX2 form's method in four lanes: x = n ln2 + r, a degree-6
 * polynomial for e^r (Cephes expf coefficients), 2^n built in the exponent bits. */
static inline float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-88.0f)), vdupq_n_f32(88.0f));
    float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

static void exp_inplace_neon(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, exp4(vld1q_f32(x + i)));
    if (i < n) { /* the last few through the same polynomial */
        float tail[4] = {0};
        for (int64_t k = i; k < n; k++) tail[k - i] = x[k];
        vst1q_f32(tail, exp4(vld1q_f32(tail)));
        for (int64_t k = i; k < n; k++) x[k] = tail[k - i];
    }
}

/* scores[p] = scale * q . k[p] for n positions (keys `stride` floats apart): four positions at a
 * time with two accumulators each, eight independent multiply-add chains */
static void attention_scores_neon(const float *q, const float *k, int64_t stride, int64_t n, int64_t head_dim,
                                  float scale, float *scores) {
    int64_t p = 0;
    for (; p + 4 <= n; p += 4) {
        const float *k0 = k + p * stride, *k1 = k0 + stride, *k2 = k1 + stride, *k3 = k2 + stride;
        float32x4_t a0 = vdupq_n_f32(0.0f), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
        for (int64_t i = 0; i < head_dim; i += 8) {
            float32x4_t x = vld1q_f32(q + i), y = vld1q_f32(q + i + 4);
            a0 = vfmaq_f32(a0, x, vld1q_f32(k0 + i));
            b0 = vfmaq_f32(b0, y, vld1q_f32(k0 + i + 4));
            a1 = vfmaq_f32(a1, x, vld1q_f32(k1 + i));
            b1 = vfmaq_f32(b1, y, vld1q_f32(k1 + i + 4));
            a2 = vfmaq_f32(a2, x, vld1q_f32(k2 + i));
            b2 = vfmaq_f32(b2, y, vld1q_f32(k2 + i + 4));
            a3 = vfmaq_f32(a3, x, vld1q_f32(k3 + i));
            b3 = vfmaq_f32(b3, y, vld1q_f32(k3 + i + 4));
        }
        /* pairwise adds leave the sum of position j's accumulators in lane j */
        float32x4_t d01 = vpaddq_f32(vaddq_f32(a0, b0), vaddq_f32(a1, b1));
        float32x4_t d23 = vpaddq_f32(vaddq_f32(a2, b2), vaddq_f32(a3, b3));
        vst1q_f32(scores + p, vmulq_n_f32(vpaddq_f32(d01, d23), scale));
    }
    for (; p < n; p++) {
        const float *kp = k + p * stride;
        float32x4_t a = vdupq_n_f32(0.0f), b = a, c = a, d = a;
        int64_t i = 0;
        for (; i + 16 <= head_dim; i += 16) {
            a = vfmaq_f32(a, vld1q_f32(q + i), vld1q_f32(kp + i));
            b = vfmaq_f32(b, vld1q_f32(q + i + 4), vld1q_f32(kp + i + 4));
            c = vfmaq_f32(c, vld1q_f32(q + i + 8), vld1q_f32(kp + i + 8));
            d = vfmaq_f32(d, vld1q_f32(q + i + 12), vld1q_f32(kp + i + 12));
        }
        if (i < head_dim) { /* the last 8 (head_dim is a multiple of 8) */
            a = vfmaq_f32(a, vld1q_f32(q + i), vld1q_f32(kp + i));
            b = vfmaq_f32(b, vld1q_f32(q + i + 4), vld1q_f32(kp + i + 4));
        }
        scores[p] = vaddvq_f32(vaddq_f32(vaddq_f32(a, b), vaddq_f32(c, d))) * scale;
    }
}

/* scores[p] = exp(scores[p] - max) over n; returns their sum */
static float softmax_numerators_neon(float *scores, int64_t n) {
    float32x4_t vmax = vdupq_n_f32(-INFINITY);
    int64_t p = 0;
    for (; p + 4 <= n; p += 4) vmax = vmaxq_f32(vmax, vld1q_f32(scores + p));
    float max = vmaxvq_f32(vmax);
    for (; p < n; p++) max = scores[p] > max ? scores[p] : max;
    vmax = vdupq_n_f32(max);
    float32x4_t vsum = vdupq_n_f32(0.0f);
    for (p = 0; p + 4 <= n; p += 4) {
        float32x4_t e = exp4(vsubq_f32(vld1q_f32(scores + p), vmax));
        vst1q_f32(scores + p, e);
        vsum = vaddq_f32(vsum, e);
    }
    float sum = vaddvq_f32(vsum);
    for (; p < n; p++) {
        scores[p] = expf(scores[p] - max);
        sum += scores[p];
    }
    return sum;
}

/* out[0..head_dim) += sum over n positions of w[p] * v[p] (values `stride` floats apart) */
static void attention_values_neon(const float *w, const float *v, int64_t stride, int64_t n, int64_t head_dim,
                                  float *out) {
    int64_t i0 = 0;
    for (; i0 + 32 <= head_dim; i0 += 32) { /* eight independent accumulators */
        float32x4_t o0 = vld1q_f32(out + i0), o1 = vld1q_f32(out + i0 + 4), o2 = vld1q_f32(out + i0 + 8),
                    o3 = vld1q_f32(out + i0 + 12), o4 = vld1q_f32(out + i0 + 16), o5 = vld1q_f32(out + i0 + 20),
                    o6 = vld1q_f32(out + i0 + 24), o7 = vld1q_f32(out + i0 + 28);
        const float *vp = v + i0;
        for (int64_t p = 0; p < n; p++, vp += stride) {
            float x = w[p];
            o0 = vfmaq_n_f32(o0, vld1q_f32(vp), x);
            o1 = vfmaq_n_f32(o1, vld1q_f32(vp + 4), x);
            o2 = vfmaq_n_f32(o2, vld1q_f32(vp + 8), x);
            o3 = vfmaq_n_f32(o3, vld1q_f32(vp + 12), x);
            o4 = vfmaq_n_f32(o4, vld1q_f32(vp + 16), x);
            o5 = vfmaq_n_f32(o5, vld1q_f32(vp + 20), x);
            o6 = vfmaq_n_f32(o6, vld1q_f32(vp + 24), x);
            o7 = vfmaq_n_f32(o7, vld1q_f32(vp + 28), x);
        }
        vst1q_f32(out + i0, o0);
        vst1q_f32(out + i0 + 4, o1);
        vst1q_f32(out + i0 + 8, o2);
        vst1q_f32(out + i0 + 12, o3);
        vst1q_f32(out + i0 + 16, o4);
        vst1q_f32(out + i0 + 20, o5);
        vst1q_f32(out + i0 + 24, o6);
        vst1q_f32(out + i0 + 28, o7);
    }
    for (; i0 < head_dim; i0 += 8) { /* the rest, 8 lanes at a time (head_dim is a multiple of 8) */
        float32x4_t o0 = vld1q_f32(out + i0), o1 = vld1q_f32(out + i0 + 4);
        const float *vp = v + i0;
        for (int64_t p = 0; p < n; p++, vp += stride) {
            o0 = vfmaq_n_f32(o0, vld1q_f32(vp), w[p]);
            o1 = vfmaq_n_f32(o1, vld1q_f32(vp + 4), w[p]);
        }
        vst1q_f32(out + i0, o0);
        vst1q_f32(out + i0 + 4, o1);
    }
}

/* The AVX2 attend's method (attend_driver.h) with four-lane helpers. */
UNIECG_DEFINE_ATTEND(attend_neon, , attention_scores_neon, softmax_numerators_neon, attention_values_neon)

static inline float max_abs32_neon(const float *x) {
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int k = 0; k < 8; k++) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + 4 * k)));
    return vmaxvq_f32(m);
}

/* q = nearbyint(x * inverse) clamped to [-127, 127], 32 values. */
static inline void quantize32_neon(const float *x, float inverse_scale, int8_t *q) {
    const float32x4_t hi = vdupq_n_f32(127.0f), lo = vdupq_n_f32(-127.0f), inverse = vdupq_n_f32(inverse_scale);
    int16x8_t h[4];
    for (int k = 0; k < 4; k++) {
        int32x4_t a = vcvtq_s32_f32(vminq_f32(vmaxq_f32(vrndnq_f32(vmulq_f32(vld1q_f32(x + 8 * k), inverse)), lo), hi));
        int32x4_t b = vcvtq_s32_f32(vminq_f32(vmaxq_f32(vrndnq_f32(vmulq_f32(vld1q_f32(x + 8 * k + 4), inverse)), lo), hi));
        h[k] = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
    }
    vst1q_s8(q, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
    vst1q_s8(q + 16, vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3])));
}

/* uniecg__quantize_activations in 4-lane steps, the same operations in the same order (see the
 * AVX2 form): vrndnq_f32 rounds to nearest even like nearbyintf in the default mode. */
static void quantize_neon(const float *x, int64_t n, int8_t *q, float *scales) {
    for (int64_t g = 0; g < n / UNIECG_Q8_GROUP; g++) {
        const float *xg = x + g * UNIECG_Q8_GROUP;
        float scale = max_abs32_neon(xg) / 127.0f;
        quantize32_neon(xg, scale > 0.0f ? 1.0f / scale : 0.0f, q + g * UNIECG_Q8_GROUP);
        scales[g] = scale;
    }
}

static void quantize_row_neon(const float *x, int64_t n, int8_t *q, float *scale) {
    float max_abs = 0.0f;
    for (int64_t i = 0; i < n; i += UNIECG_Q8_GROUP) {
        float m = max_abs32_neon(x + i);
        max_abs = m > max_abs ? m : max_abs;
    }
    *scale = max_abs / 127.0f;
    float inverse = *scale > 0.0f ? 1.0f / *scale : 0.0f;
    for (int64_t i = 0; i < n; i += UNIECG_Q8_GROUP) quantize32_neon(x + i, inverse, q + i);
}

const uniecg_kernels uniecg__kernels_neon = {
    .variant = UNIECG_KERNELS_NEON,
    .q8_matmul = q8_matmul_neon,
    .q8_conv = q8_conv_neon,
    .q8_group_dot = group_dot_neon,
    .f32_dot = f32_dot_neon,
    .f32_axpy = f32_axpy_neon,
    .f32_dot4 = f32_dot4_neon,
    .attend = attend_neon,
    .exp_inplace = exp_inplace_neon,
    .quantize = quantize_neon,
    .quantize_row = quantize_row_neon,
};

const uniecg_kernels uniecg__kernels_neon_dotprod = {
    .variant = UNIECG_KERNELS_NEON_DOTPROD,
    .q8_matmul = q8_matmul_sdot,
    .q8_conv = q8_conv_sdot,
    .q8_group_dot = group_dot_sdot,
    .f32_dot = f32_dot_neon,
    .f32_axpy = f32_axpy_neon,
    .f32_dot4 = f32_dot4_neon,
    .attend = attend_neon,
    .exp_inplace = exp_inplace_neon,
    .quantize = quantize_neon,
    .quantize_row = quantize_row_neon,
};
#endif
