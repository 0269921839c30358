/* The driver of a variant's grouped-query `attend` kernel (kernels.h), shared by the AVX2 and
 * NEON files: the positions are walked in blocks small enough to stay in L1, each block serving
 * every head, so the cache is read from memory once per group instead of once per head; scores
 * by the variant's dot products, a vectorized softmax, values accumulated in registers, all
 * normalized once at the end. Each file supplies its three helpers:
 *   SCORES(q, k, stride, n, head_dim, scale, scores)   scale * q.k for n positions
 *   SOFTMAX(scores, count) -> sum                      exp(score - max) in place, their sum
 *   VALUES(w, v, stride, n, head_dim, out)             out += sum of w[p] * v[p]
 * and TARGET, the function attribute its helpers need to inline. */
#ifndef UNIECG_ATTEND_DRIVER_H
#define UNIECG_ATTEND_DRIVER_H

enum { UNIECG_ATTENTION_BLOCK = 64 };

#define UNIECG_DEFINE_ATTEND(NAME, TARGET, SCORES, SOFTMAX, VALUES)                                                   \
    TARGET static void NAME(const float *q, int64_t heads, const float *k, const float *v, int64_t stride,            \
                            int64_t count, int64_t head_dim, float scale, float *scores, float *out) {                \
        for (int64_t p0 = 0; p0 < count; p0 += UNIECG_ATTENTION_BLOCK) {                                              \
            int64_t n = count - p0 < UNIECG_ATTENTION_BLOCK ? count - p0 : UNIECG_ATTENTION_BLOCK;                    \
            for (int64_t h = 0; h < heads; h++)                                                                       \
                SCORES(q + h * head_dim, k + p0 * stride, stride, n, head_dim, scale, scores + h * count + p0);      \
        }                                                                                                             \
        float inv[256];                                                                                               \
        for (int64_t h = 0; h < heads; h++) {                                                                         \
            inv[h] = 1.0f / SOFTMAX(scores + h * count, count);                                                       \
            for (int64_t i = 0; i < head_dim; i++) out[h * head_dim + i] = 0.0f;                                      \
        }                                                                                                             \
        for (int64_t p0 = 0; p0 < count; p0 += UNIECG_ATTENTION_BLOCK) {                                              \
            int64_t n = count - p0 < UNIECG_ATTENTION_BLOCK ? count - p0 : UNIECG_ATTENTION_BLOCK;                    \
            for (int64_t h = 0; h < heads; h++)                                                                       \
                VALUES(scores + h * count + p0, v + p0 * stride, stride, n, head_dim, out + h * head_dim);           \
        }                                                                                                             \
        for (int64_t h = 0; h < heads; h++)                                                                           \
            for (int64_t i = 0; i < head_dim; i++) out[h * head_dim + i] *= inv[h];                                   \
    }

#endif
