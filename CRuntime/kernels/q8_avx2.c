/* AVX2 (+FMA, F16C) q8 kernels, compiled per function with target attributes so the rest of
 * the build stays baseline x86-64; only chosen when the CPU reports all three features. */
#include "kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))

/* 8 int32 partial sums of a 32-element int8 dot product. Weights and activations lie in
 * [-127, 127], so maddubs (|w| * sign-adjusted x, pairs) cannot saturate: 2*127*127 < 32767. */
AVX2_TARGET static inline __m256i dot32(__m256i w, __m256i x) {
    __m256i abs_w = _mm256_sign_epi8(w, w);
    __m256i signed_x = _mm256_sign_epi8(x, w);
    __m256i pairs = _mm256_maddubs_epi16(abs_w, signed_x);
    return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

AVX2_TARGET static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_TARGET static int32_t group_dot(const int8_t *a, const int8_t *b) {
    __m256i p = dot32(_mm256_loadu_si256((const __m256i *)a), _mm256_loadu_si256((const __m256i *)b));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* Combined scales of 8 consecutive groups: f16 weight scales (F16C) times activation scales. */
AVX2_TARGET static inline __m256 scales8(const uint16_t *ws, const float *xs) {
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)ws)), _mm256_loadu_ps(xs));
}

/* One token: two rows at a time and independent accumulators per group parity, so several
 * weight loads are in flight and no FMA waits on the previous one. */
AVX2_TARGET static void matvec_rows(const q8_matmul_args *a, int64_t row_begin, int64_t row_end) {
    int64_t groups = a->cols / UNIECG_Q8_GROUP;
    const int8_t *x = a->xq;
    const float *xs = a->xs;
    int64_t r = row_begin;
    for (; r + 2 <= row_end; r += 2) {
        const int8_t *w0 = a->w + r * a->cols, *w1 = w0 + a->cols;
        const uint16_t *s0 = (const uint16_t *)(a->w_scales + 2 * r * groups), *s1 = s0 + groups;
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
        int64_t g = 0;
        for (; g + 8 <= groups; g += 8) {
            /* two rows ahead: keeps enough cache-line requests in flight to stream from DRAM */
            for (int line = 0; line < 4; line++) {
                _mm_prefetch((const char *)(w0 + 8 * a->cols + (g * UNIECG_Q8_GROUP) + 64 * line), _MM_HINT_T0);
                _mm_prefetch((const char *)(w1 + 8 * a->cols + (g * UNIECG_Q8_GROUP) + 64 * line), _MM_HINT_T0);
            }
            __m256 c0 = scales8(s0 + g, xs + g), c1 = scales8(s1 + g, xs + g);
            float k0[8], k1[8];
            _mm256_storeu_ps(k0, c0);
            _mm256_storeu_ps(k1, c1);
            for (int j = 0; j < 8; j += 2) {
                const int8_t *xg = x + (g + j) * UNIECG_Q8_GROUP;
                __m256i xa = _mm256_loadu_si256((const __m256i *)xg), xb = _mm256_loadu_si256((const __m256i *)(xg + 32));
                const int8_t *p0 = w0 + (g + j) * UNIECG_Q8_GROUP, *p1 = w1 + (g + j) * UNIECG_Q8_GROUP;
                a00 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(_mm256_loadu_si256((const __m256i *)p0), xa)), _mm256_set1_ps(k0[j]), a00);
                a01 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(_mm256_loadu_si256((const __m256i *)(p0 + 32)), xb)), _mm256_set1_ps(k0[j + 1]), a01);
                a10 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(_mm256_loadu_si256((const __m256i *)p1), xa)), _mm256_set1_ps(k1[j]), a10);
                a11 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(_mm256_loadu_si256((const __m256i *)(p1 + 32)), xb)), _mm256_set1_ps(k1[j + 1]), a11);
            }
        }
        for (; g < groups; g++) {
            __m256i xg = _mm256_loadu_si256((const __m256i *)(x + g * UNIECG_Q8_GROUP));
            a00 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(_mm256_loadu_si256((const __m256i *)(w0 + g * UNIECG_Q8_GROUP)), xg)),
                                  _mm256_set1_ps(_cvtsh_ss(s0[g]) * xs[g]), a00);
            a10 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(_mm256_loadu_si256((const __m256i *)(w1 + g * UNIECG_Q8_GROUP)), xg)),
                                  _mm256_set1_ps(_cvtsh_ss(s1[g]) * xs[g]), a10);
        }
        a->y[r] = hsum(_mm256_add_ps(a00, a01));
        a->y[r + 1] = hsum(_mm256_add_ps(a10, a11));
    }
    for (; r < row_end; r++) {
        const int8_t *w = a->w + r * a->cols;
        const uint16_t *ws = (const uint16_t *)(a->w_scales + 2 * r * groups);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t g = 0; g < groups; g++) {
            __m256i wg = _mm256_loadu_si256((const __m256i *)(w + g * UNIECG_Q8_GROUP));
            __m256i xg = _mm256_loadu_si256((const __m256i *)(x + g * UNIECG_Q8_GROUP));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(wg, xg)), _mm256_set1_ps(_cvtsh_ss(ws[g]) * xs[g]), acc);
        }
        a->y[r] = hsum(acc);
    }
}

/* Several tokens: four at a time share each loaded weight group. */
AVX2_TARGET static void q8_matmul(const q8_matmul_args *a, int64_t row_begin, int64_t row_end) {
    if (a->n_tokens == 1) {
        matvec_rows(a, row_begin, row_end);
        return;
    }
    int64_t groups = a->cols / UNIECG_Q8_GROUP;
    for (int64_t r = row_begin; r < row_end; r++) {
        const int8_t *w = a->w + r * a->cols;
        const uint16_t *ws = (const uint16_t *)(a->w_scales + 2 * r * groups);
        int64_t t = 0;
        for (; t + 4 <= a->n_tokens; t += 4) {
            __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
            const int8_t *x0 = a->xq + t * a->cols;
            const float *s0 = a->xs + t * groups;
            for (int64_t g = 0; g < groups; g++) {
                __m256i wg = _mm256_loadu_si256((const __m256i *)(w + g * UNIECG_Q8_GROUP));
                float wscale = _cvtsh_ss(ws[g]);
                const int8_t *xg = x0 + g * UNIECG_Q8_GROUP;
                acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(wg, _mm256_loadu_si256((const __m256i *)xg))),
                                       _mm256_set1_ps(wscale * s0[g]), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(wg, _mm256_loadu_si256((const __m256i *)(xg + a->cols)))),
                                       _mm256_set1_ps(wscale * s0[groups + g]), acc1);
                acc2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(wg, _mm256_loadu_si256((const __m256i *)(xg + 2 * a->cols)))),
                                       _mm256_set1_ps(wscale * s0[2 * groups + g]), acc2);
                acc3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(wg, _mm256_loadu_si256((const __m256i *)(xg + 3 * a->cols)))),
                                       _mm256_set1_ps(wscale * s0[3 * groups + g]), acc3);
            }
            a->y[(t + 0) * a->y_stride + r] = hsum(acc0);
            a->y[(t + 1) * a->y_stride + r] = hsum(acc1);
            a->y[(t + 2) * a->y_stride + r] = hsum(acc2);
            a->y[(t + 3) * a->y_stride + r] = hsum(acc3);
        }
        for (; t < a->n_tokens; t++) {
            __m256 acc = _mm256_setzero_ps();
            const int8_t *x = a->xq + t * a->cols;
            const float *xs = a->xs + t * groups;
            for (int64_t g = 0; g < groups; g++) {
                __m256i wg = _mm256_loadu_si256((const __m256i *)(w + g * UNIECG_Q8_GROUP));
                __m256i xg = _mm256_loadu_si256((const __m256i *)(x + g * UNIECG_Q8_GROUP));
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(wg, xg)), _mm256_set1_ps(_cvtsh_ss(ws[g]) * xs[g]), acc);
            }
            a->y[t * a->y_stride + r] = hsum(acc);
        }
    }
}

AVX2_TARGET static float f32_dot(const float *a, const float *b, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    float sum = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

AVX2_TARGET static void f32_axpy(float *y, float alpha, const float *x, int64_t n) {
    __m256 va = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += alpha * x[i];
}

const uniecg_kernels uniecg__kernels_avx2 = {
    .variant = UNIECG_KERNELS_AVX2,
    .q8_matmul = q8_matmul,
    .q8_group_dot = group_dot,
    .f32_dot = f32_dot,
    .f32_axpy = f32_axpy,
};
#endif
