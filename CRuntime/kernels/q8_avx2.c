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

/* Four tokens at a time share each loaded weight group. */
AVX2_TARGET static void q8_matmul(const q8_matmul_args *a, int64_t row_begin, int64_t row_end) {
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

const uniecg_kernels uniecg__kernels_avx2 = {
    .variant = UNIECG_KERNELS_AVX2,
    .q8_matmul = q8_matmul,
    .q8_group_dot = group_dot,
};
#endif
