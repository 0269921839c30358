/* AVX2 (+FMA, F16C) q8 kernels, compiled per function with target attributes so the rest of
 * the build stays baseline x86-64; only chosen when the CPU reports all three features. */
#include "kernels.h"
#include "attend_driver.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

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

/* Bytes ahead of the current position that the matvec prefetches: the weights are one
 * sequential stream, and the hardware prefetchers stop at 4 KiB page boundaries. */
enum { PREFETCH_DISTANCE = 4096 };

/* Combined scales of 4 consecutive groups: f16 weight scales (F16C) times activation scales. */
AVX2_TARGET static inline __m128 scales4(const uint16_t *ws, const float *xs) {
    return _mm_mul_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)ws)), _mm_loadu_ps(xs));
}

/* One token: one row at a time, so the weights are read as a single ascending stream (two
 * interleaved rows defeat the hardware prefetchers: a third of the bandwidth), four
 * independent accumulators so no FMA waits on the previous one. */
AVX2_TARGET static void matvec_rows(const q8_matmul_args *a, int64_t row_begin, int64_t row_end) {
    int64_t cols = a->cols, groups = cols / UNIECG_Q8_GROUP;
    const int8_t *x = a->xq;
    const float *xs = a->xs;
    for (int64_t r = row_begin; r < row_end; r++) {
        const int8_t *w = a->w + r * cols;
        const uint16_t *ws = (const uint16_t *)(a->w_scales + 2 * r * groups);
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        int64_t g = 0;
        for (; g + 4 <= groups; g += 4) {
            const int8_t *wg = w + g * UNIECG_Q8_GROUP, *xg = x + g * UNIECG_Q8_GROUP;
            _mm_prefetch((const char *)wg + PREFETCH_DISTANCE, _MM_HINT_T0);
            _mm_prefetch((const char *)wg + PREFETCH_DISTANCE + 64, _MM_HINT_T0);
            __m128 k = scales4(ws + g, xs + g);
            __m256i p0 = dot32(_mm256_loadu_si256((const __m256i *)wg), _mm256_loadu_si256((const __m256i *)xg));
            __m256i p1 = dot32(_mm256_loadu_si256((const __m256i *)(wg + 32)), _mm256_loadu_si256((const __m256i *)(xg + 32)));
            __m256i p2 = dot32(_mm256_loadu_si256((const __m256i *)(wg + 64)), _mm256_loadu_si256((const __m256i *)(xg + 64)));
            __m256i p3 = dot32(_mm256_loadu_si256((const __m256i *)(wg + 96)), _mm256_loadu_si256((const __m256i *)(xg + 96)));
            __m256 k2 = _mm256_set_m128(k, k); /* lanes 0-3 and 4-7 both hold the 4 scales */
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_permute_ps(k2, 0x00), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_permute_ps(k2, 0x55), acc1);
            acc2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p2), _mm256_permute_ps(k2, 0xAA), acc2);
            acc3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p3), _mm256_permute_ps(k2, 0xFF), acc3);
        }
        for (; g < groups; g++) {
            __m256i p = dot32(_mm256_loadu_si256((const __m256i *)(w + g * UNIECG_Q8_GROUP)),
                              _mm256_loadu_si256((const __m256i *)(x + g * UNIECG_Q8_GROUP)));
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(_cvtsh_ss(ws[g]) * xs[g]), acc0);
        }
        a->y[r] = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
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

/* ---- tap-major q8 convolution (kernels.h, q8_conv_args) ---------------------------------- */

/* The four int32 sums of four 8-lane vectors, in order. */
AVX2_TARGET static inline __m128i sum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d), abcd = _mm256_hadd_epi32(ab, cd);
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

AVX2_TARGET static inline int32_t sum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* acc += the int32 pair sums of |w| * (x signed like w), 32 products: dot32 with |w| hoisted. */
AVX2_TARGET static inline __m256i add_dot32(__m256i acc, __m256i abs_w, __m256i w, const int8_t *x) {
    __m256i pairs = _mm256_maddubs_epi16(abs_w, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)x), w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

/* Activation scales of tokens t..t+3 at tap j. */
AVX2_TARGET static inline __m128 token_scales4(const q8_conv_args *a, int64_t t, int64_t j) {
    const float *xs = a->xs + t * a->stride + j;
    if (a->stride == 1) return _mm_loadu_ps(xs);
    int64_t s = a->stride;
    return _mm_set_ps(xs[3 * s], xs[2 * s], xs[s], xs[0]);
}

/* sum + (w_scale * x_scales) * (float)sums, the reference's order, no FMA. */
AVX2_TARGET static inline __m128 scale_add4(__m128 sum, float w_scale, __m128 x_scales, __m128i sums) {
    return _mm_add_ps(sum, _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(w_scale), x_scales), _mm_cvtepi32_ps(sums)));
}

/* Blocks of two output rows x four tokens: each loaded activation vector serves two rows and
 * each weight vector four tokens; the int32 sums run over a whole tap. */
AVX2_TARGET static void q8_conv(const q8_conv_args *a, int64_t row_begin, int64_t row_end) {
    int64_t c_in = a->c_in, taps = a->taps, groups = c_in / UNIECG_Q8_GROUP, step = a->stride * c_in;
    int64_t r = row_begin;
    for (; r < row_end; r += 2) {
        bool pair = r + 1 < row_end;
        const int8_t *w0 = a->w + r * taps * c_in, *w1 = pair ? w0 + taps * c_in : w0;
        const float *ws0 = a->w_scales + r * taps, *ws1 = pair ? ws0 + taps : ws0;
        int64_t t = 0;
        for (; t + 4 <= a->n_tokens; t += 4) {
            __m128 sum0 = _mm_setzero_ps(), sum1 = sum0;
            for (int64_t j = 0; j < taps; j++) {
                const int8_t *wj0 = w0 + j * c_in, *wj1 = w1 + j * c_in;
                const int8_t *x = a->xq + (t * a->stride + j) * c_in;
                __m256i p0 = _mm256_setzero_si256(), p1 = p0, p2 = p0, p3 = p0, q0 = p0, q1 = p0, q2 = p0, q3 = p0;
                for (int64_t g = 0; g < groups; g++) {
                    int64_t o = g * UNIECG_Q8_GROUP;
                    __m256i v0 = _mm256_loadu_si256((const __m256i *)(wj0 + o)), v1 = _mm256_loadu_si256((const __m256i *)(wj1 + o));
                    __m256i abs0 = _mm256_sign_epi8(v0, v0), abs1 = _mm256_sign_epi8(v1, v1);
                    p0 = add_dot32(p0, abs0, v0, x + o);
                    p1 = add_dot32(p1, abs0, v0, x + step + o);
                    p2 = add_dot32(p2, abs0, v0, x + 2 * step + o);
                    p3 = add_dot32(p3, abs0, v0, x + 3 * step + o);
                    q0 = add_dot32(q0, abs1, v1, x + o);
                    q1 = add_dot32(q1, abs1, v1, x + step + o);
                    q2 = add_dot32(q2, abs1, v1, x + 2 * step + o);
                    q3 = add_dot32(q3, abs1, v1, x + 3 * step + o);
                }
                __m128 xs = token_scales4(a, t, j);
                sum0 = scale_add4(sum0, ws0[j], xs, sum4_epi32(p0, p1, p2, p3));
                sum1 = scale_add4(sum1, ws1[j], xs, sum4_epi32(q0, q1, q2, q3));
            }
            _mm_storeu_ps(a->y + r * a->y_stride + t, sum0);
            if (pair) _mm_storeu_ps(a->y + (r + 1) * a->y_stride + t, sum1);
        }
        for (; t < a->n_tokens; t++) {
            for (int64_t k = 0; k < (pair ? 2 : 1); k++) {
                const int8_t *w = k ? w1 : w0;
                const float *ws = k ? ws1 : ws0;
                float sum = 0.0f;
                for (int64_t j = 0; j < taps; j++) {
                    int64_t p = t * a->stride + j;
                    const int8_t *wj = w + j * c_in, *x = a->xq + p * c_in;
                    __m256i acc = _mm256_setzero_si256();
                    for (int64_t g = 0; g < groups; g++) {
                        __m256i v = _mm256_loadu_si256((const __m256i *)(wj + g * UNIECG_Q8_GROUP));
                        acc = add_dot32(acc, _mm256_sign_epi8(v, v), v, x + g * UNIECG_Q8_GROUP);
                    }
                    float scale = ws[j] * a->xs[p];
                    float term = scale * (float)sum_epi32(acc); /* two statements: never fused */
                    sum = sum + term;
                }
                a->y[(r + k) * a->y_stride + t] = sum;
            }
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

AVX2_TARGET static void f32_dot4(const float *a, const float *b, int64_t b_stride, int64_t n, float *out) {
    const float *b0 = b, *b1 = b + b_stride, *b2 = b + 2 * b_stride, *b3 = b + 3 * b_stride;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(a + i);
        acc0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b0 + i), acc0);
        acc1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b1 + i), acc1);
        acc2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b2 + i), acc2);
        acc3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b3 + i), acc3);
    }
    if (i < n) { /* the last 1-7 values through a mask: the short rows of small layers end here */
        static const int32_t ramp[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
        __m256i mask = _mm256_loadu_si256((const __m256i *)(ramp + 8 - (n - i)));
        __m256 x = _mm256_maskload_ps(a + i, mask);
        acc0 = _mm256_fmadd_ps(x, _mm256_maskload_ps(b0 + i, mask), acc0);
        acc1 = _mm256_fmadd_ps(x, _mm256_maskload_ps(b1 + i, mask), acc1);
        acc2 = _mm256_fmadd_ps(x, _mm256_maskload_ps(b2 + i, mask), acc2);
        acc3 = _mm256_fmadd_ps(x, _mm256_maskload_ps(b3 + i, mask), acc3);
    }
    /* four horizontal sums at once: pairwise hadds, then the two 128-bit halves */
    __m256 s01 = _mm256_hadd_ps(acc0, acc1), s23 = _mm256_hadd_ps(acc2, acc3);
    __m256 s = _mm256_hadd_ps(s01, s23);
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
}

AVX2_TARGET static void f32_axpy(float *y, float alpha, const float *x, int64_t n) {
    __m256 va = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += alpha * x[i];
}

/* e^x for x in [-88, 88]: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r
 * (Cephes expf coefficients, about 1 ulp), 2^n built in the exponent bits. */
AVX2_TARGET static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

AVX2_TARGET static void silu_mul(float *a, const float *b, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(a + i);
        __m256 sig = _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), g)));
        _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_div_ps(g, sig), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) a[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

/* scores[p] = scale * q . k[p] for n positions (keys `stride` floats apart) */
AVX2_TARGET static void attention_scores(const float *q, const float *k, int64_t stride, int64_t n, int64_t head_dim,
                                         float scale, float *scores) {
    int64_t p = 0;
    if (head_dim == 64) { /* the common head size: q in registers, four positions at a time */
        __m256 q0 = _mm256_loadu_ps(q), q1 = _mm256_loadu_ps(q + 8), q2 = _mm256_loadu_ps(q + 16),
               q3 = _mm256_loadu_ps(q + 24), q4 = _mm256_loadu_ps(q + 32), q5 = _mm256_loadu_ps(q + 40),
               q6 = _mm256_loadu_ps(q + 48), q7 = _mm256_loadu_ps(q + 56);
        __m128 vscale = _mm_set1_ps(scale);
        for (; p + 4 <= n; p += 4) {
            __m256 d[4];
            for (int j = 0; j < 4; j++) {
                const float *kp = k + (p + j) * stride;
                __m256 a = _mm256_mul_ps(q0, _mm256_loadu_ps(kp)), b = _mm256_mul_ps(q1, _mm256_loadu_ps(kp + 8));
                a = _mm256_fmadd_ps(q2, _mm256_loadu_ps(kp + 16), a);
                b = _mm256_fmadd_ps(q3, _mm256_loadu_ps(kp + 24), b);
                a = _mm256_fmadd_ps(q4, _mm256_loadu_ps(kp + 32), a);
                b = _mm256_fmadd_ps(q5, _mm256_loadu_ps(kp + 40), b);
                a = _mm256_fmadd_ps(q6, _mm256_loadu_ps(kp + 48), a);
                b = _mm256_fmadd_ps(q7, _mm256_loadu_ps(kp + 56), b);
                d[j] = _mm256_add_ps(a, b);
            }
            __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(d[0], d[1]), _mm256_hadd_ps(d[2], d[3]));
            _mm_storeu_ps(scores + p, _mm_mul_ps(_mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)), vscale));
        }
    }
    for (; p < n; p++) {
        const float *kp = k + p * stride;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
        int64_t i = 0;
        for (; i + 16 <= head_dim; i += 16) {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kp + i), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(kp + i + 8), acc1);
        }
        if (i < head_dim) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kp + i), acc0);
        scores[p] = hsum(_mm256_add_ps(acc0, acc1)) * scale;
    }
}

/* scores[p] = exp(scores[p] - max) over n; returns their sum */
AVX2_TARGET static float softmax_numerators(float *scores, int64_t n) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int64_t p = 0;
    for (; p + 8 <= n; p += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(scores + p));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float max = _mm_cvtss_f32(m4);
    for (; p < n; p++) max = scores[p] > max ? scores[p] : max;
    vmax = _mm256_set1_ps(max);
    __m256 vsum = _mm256_setzero_ps();
    for (p = 0; p + 8 <= n; p += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + p), vmax));
        _mm256_storeu_ps(scores + p, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float sum = hsum(vsum);
    for (; p < n; p++) {
        scores[p] = expf(scores[p] - max);
        sum += scores[p];
    }
    return sum;
}

AVX2_TARGET static void exp_inplace(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) { /* the last few through the same polynomial, so every value gets the same rule */
        float tail[8] = {0};
        memcpy(tail, x + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(tail, exp8(_mm256_loadu_ps(tail)));
        memcpy(x + i, tail, (size_t)(n - i) * sizeof(float));
    }
}

/* out[0..head_dim) += sum over n positions of w[p] * v[p] (values `stride` floats apart) */
AVX2_TARGET static void attention_values(const float *w, const float *v, int64_t stride, int64_t n, int64_t head_dim,
                                         float *out) {
    int64_t i0 = 0;
    for (; i0 + 64 <= head_dim; i0 += 64) { /* eight independent accumulators */
        __m256 o0 = _mm256_loadu_ps(out + i0), o1 = _mm256_loadu_ps(out + i0 + 8), o2 = _mm256_loadu_ps(out + i0 + 16),
               o3 = _mm256_loadu_ps(out + i0 + 24), o4 = _mm256_loadu_ps(out + i0 + 32),
               o5 = _mm256_loadu_ps(out + i0 + 40), o6 = _mm256_loadu_ps(out + i0 + 48),
               o7 = _mm256_loadu_ps(out + i0 + 56);
        const float *vp = v + i0;
        for (int64_t p = 0; p < n; p++, vp += stride) {
            __m256 x = _mm256_broadcast_ss(w + p);
            o0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vp), o0);
            o1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vp + 8), o1);
            o2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vp + 16), o2);
            o3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vp + 24), o3);
            o4 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vp + 32), o4);
            o5 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vp + 40), o5);
            o6 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vp + 48), o6);
            o7 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vp + 56), o7);
        }
        _mm256_storeu_ps(out + i0, o0);
        _mm256_storeu_ps(out + i0 + 8, o1);
        _mm256_storeu_ps(out + i0 + 16, o2);
        _mm256_storeu_ps(out + i0 + 24, o3);
        _mm256_storeu_ps(out + i0 + 32, o4);
        _mm256_storeu_ps(out + i0 + 40, o5);
        _mm256_storeu_ps(out + i0 + 48, o6);
        _mm256_storeu_ps(out + i0 + 56, o7);
    }
    for (; i0 < head_dim; i0 += 8) { /* the rest, 8 lanes at a time (head_dim is a multiple of 8) */
        __m256 o = _mm256_loadu_ps(out + i0);
        const float *vp = v + i0;
        for (int64_t p = 0; p < n; p++, vp += stride) o = _mm256_fmadd_ps(_mm256_broadcast_ss(w + p), _mm256_loadu_ps(vp), o);
        _mm256_storeu_ps(out + i0, o);
    }
}

UNIECG_DEFINE_ATTEND(attend, AVX2_TARGET, attention_scores, softmax_numerators, attention_values)

/* max|x| over 32 floats (exact: the order of a maximum does not matter). */
AVX2_TARGET static inline float max_abs32(const float *x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    return _mm_cvtss_f32(m4);
}

/* q = nearbyint(x * inverse) clamped to [-127, 127], 32 values. */
AVX2_TARGET static inline void quantize32(const float *x, float inverse_scale, int8_t *q) {
    const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f), inverse = _mm256_set1_ps(inverse_scale);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i i32[4];
    for (int k = 0; k < 4; k++) {
        __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), inverse),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        i32[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
    }
    /* packs work within 128-bit lanes: 0-3 8-11 4-7 12-15 | 16-19 ..., put back in order */
    __m256i i16a = _mm256_packs_epi32(i32[0], i32[1]), i16b = _mm256_packs_epi32(i32[2], i32[3]);
    _mm256_storeu_si256((__m256i *)q, _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i16a, i16b), order));
}

/* uniecg__quantize_activations in 8-lane steps, the same operations in the same order: max of
 * |x| (exact), scale = max / 127 and its inverse in scalar f32, x * inverse rounded to nearest
 * even (_mm256_round_ps = nearbyintf in the default rounding mode), clamped to +-127. */
AVX2_TARGET static void quantize(const float *x, int64_t n, int8_t *q, float *scales) {
    for (int64_t g = 0; g < n / UNIECG_Q8_GROUP; g++) {
        const float *xg = x + g * UNIECG_Q8_GROUP;
        float scale = max_abs32(xg) / 127.0f;
        quantize32(xg, scale > 0.0f ? 1.0f / scale : 0.0f, q + g * UNIECG_Q8_GROUP);
        scales[g] = scale;
    }
}

/* uniecg__quantize_row_reference the same way, one scale for the whole row. */
AVX2_TARGET static void quantize_row(const float *x, int64_t n, int8_t *q, float *scale) {
    float max_abs = 0.0f;
    for (int64_t i = 0; i < n; i += UNIECG_Q8_GROUP) {
        float m = max_abs32(x + i);
        max_abs = m > max_abs ? m : max_abs;
    }
    *scale = max_abs / 127.0f;
    float inverse = *scale > 0.0f ? 1.0f / *scale : 0.0f;
    for (int64_t i = 0; i < n; i += UNIECG_Q8_GROUP) quantize32(x + i, inverse, q + i);
}

const uniecg_kernels uniecg__kernels_avx2 = {
    .variant = UNIECG_KERNELS_AVX2,
    .q8_matmul = q8_matmul,
    .q8_group_dot = group_dot,
    .f32_dot = f32_dot,
    .f32_axpy = f32_axpy,
    .f32_dot4 = f32_dot4,
    .silu_mul = silu_mul,
    .attend = attend,
    .exp_inplace = exp_inplace,
    .quantize = quantize,
    .quantize_row = quantize_row,
    .q8_conv = q8_conv,
};
#endif
