/* Private kernel interface: one table of function pointers per implementation (portable C,
 * AVX2, NEON, NEON dot product), chosen once per model from the CPU's features. Every SIMD
 * variant has the portable kernel as its reference and is tested against it. */
#ifndef UNIECG_KERNELS_H
#define UNIECG_KERNELS_H

#include "internal.h"

/* Arguments of a q8 weight x q8 activation product over a range of weight rows. */
typedef struct {
    const int8_t *w;         /* (rows, cols) int8 weights                                  */
    const uint8_t *w_scales; /* (rows, cols/32) f16 little-endian scales                   */
    const int8_t *xq;        /* (n_tokens, cols) int8 activations                          */
    const float *xs;         /* (n_tokens, cols/32) activation scales                      */
    float *y;                /* y[t * y_stride + r]                                        */
    int64_t rows, cols, n_tokens, y_stride;
} q8_matmul_args;

/* Arguments of a tap-major q8 convolution product: one weight scale per output channel and
 * tap, one activation scale per input position, so each tap's products over all c_in input
 * channels sum in int32 before a single float scaling. Every variant computes, per output,
 *     y = 0; for each tap j: y = y + (w_scale[r][j] * x_scale[p]) * (float)isum(r, j, p)
 * with p = t * stride + j, in this order and without fused multiply-adds: the integer sums
 * are exact, so all variants give the same bits. */
typedef struct {
    const int8_t *w;       /* (rows, taps, c_in) int8 weights, c_in a multiple of 32       */
    const float *w_scales; /* (rows, taps)                                                 */
    const int8_t *xq;      /* (positions, c_in) int8 input positions                       */
    const float *xs;       /* (positions)                                                  */
    float *y;              /* y[r * y_stride + t], channels-major                          */
    int64_t rows, c_in, taps, stride, n_tokens, y_stride;
} q8_conv_args;

typedef struct {
    uniecg_kernel_variant variant;
    /* y rows [row_begin, row_end) for every token */
    void (*q8_matmul)(const q8_matmul_args *args, int64_t row_begin, int64_t row_end);
    /* sum of a[i] * b[i] over one group of 32 */
    int32_t (*q8_group_dot)(const int8_t *a, const int8_t *b);
    /* f32 helpers for attention: sum a[i]*b[i], and y[i] += alpha * x[i] */
    float (*f32_dot)(const float *a, const float *b, int64_t n);
    void (*f32_axpy)(float *y, float alpha, const float *x, int64_t n);
    /* optional: out[j] = sum a[i] * b[j * b_stride + i] for j = 0..3 (four dot products sharing
     * a, in one pass over it); NULL means four f32_dot calls */
    void (*f32_dot4)(const float *a, const float *b, int64_t b_stride, int64_t n, float *out);
    /* optional: a[i] = SiLU(a[i]) * b[i]; NULL means the caller's reference loop (portable,
     * whose bits are fixed) */
    void (*silu_mul)(float *a, const float *b, int64_t n);
    /* optional: attention of `heads` (at most 256) query heads sharing one KV head over `count`
     * cached positions: query h at q + h * head_dim, key p at k + p * stride, value p at
     * v + p * stride, head_dim a multiple of 8; out + h * head_dim = softmax(scale * q.k) @ v.
     * `scores` is scratch for heads * count floats. NULL means the caller's reference loop. */
    void (*attend)(const float *q, int64_t heads, const float *k, const float *v, int64_t stride, int64_t count,
                   int64_t head_dim, float scale, float *scores, float *out);
    /* optional: x[i] = exp(x[i]) for x[i] <= 0 (softmax numerators after the maximum is
     * subtracted), a polynomial with a relative error near 1e-7 rather than expf's bits; NULL
     * means expf */
    void (*exp_inplace)(float *x, int64_t n);
    /* optional: uniecg__quantize_activations, bit for bit (finite inputs); NULL means that
     * reference */
    void (*quantize)(const float *x, int64_t n, int8_t *q, float *scales);
    /* optional: uniecg__quantize_row_reference for n a multiple of 32, bit for bit (finite
     * inputs); NULL means that reference */
    void (*quantize_row)(const float *x, int64_t n, int8_t *q, float *scale);
    /* optional: uniecg__q8_conv_reference, bit for bit, over output rows [row_begin, row_end)
     * for every token; NULL means that reference */
    void (*q8_conv)(const q8_conv_args *args, int64_t row_begin, int64_t row_end);
} uniecg_kernels;

/* The table of a concrete, supported variant (not AUTO). */
const uniecg_kernels *uniecg__kernels_for(uniecg_kernel_variant variant);

/* Quantizes n floats (n a multiple of 32) per group of 32: scale = max|x| / 127 (f32),
 * q = nearbyint(x / scale) (ties to even). Shared by every variant so the activations are
 * bit-identical whatever kernel runs. */
void uniecg__quantize_activations(const float *x, int64_t n, int8_t *q, float *scales);

/* Quantizes n floats with one scale for all of them (max|x| / 127, the same rounding as
 * uniecg__quantize_activations): an input position of a tap-major q8 convolution. */
void uniecg__quantize_row_reference(const float *x, int64_t n, int8_t *q, float *scale);

/* The variant's vector form of it when it has one and n is a multiple of 32, else the reference. */
static inline void uniecg__quantize_row(const uniecg_kernels *kernels, const float *x, int64_t n, int8_t *q,
                                        float *scale) {
    if (kernels && kernels->quantize_row && n % UNIECG_Q8_GROUP == 0) kernels->quantize_row(x, n, q, scale);
    else uniecg__quantize_row_reference(x, n, q, scale);
}

/* The portable tap-major q8 convolution product (q8_conv_args). */
void uniecg__q8_conv_reference(const q8_conv_args *args, int64_t row_begin, int64_t row_end);

static inline void uniecg__q8_conv(const uniecg_kernels *kernels, const q8_conv_args *args, int64_t row_begin,
                                   int64_t row_end) {
    if (kernels && kernels->q8_conv) kernels->q8_conv(args, row_begin, row_end);
    else uniecg__q8_conv_reference(args, row_begin, row_end);
}

/* The variant's vector form of it when it has one (the same bits), else the reference. */
static inline void uniecg__quantize(const uniecg_kernels *kernels, const float *x, int64_t n, int8_t *q,
                                    float *scales) {
    if (kernels && kernels->quantize) kernels->quantize(x, n, q, scales);
    else uniecg__quantize_activations(x, n, q, scales);
}

extern const uniecg_kernels uniecg__kernels_portable;
#if defined(__x86_64__)
extern const uniecg_kernels uniecg__kernels_avx2;
#endif
#if defined(__aarch64__)
extern const uniecg_kernels uniecg__kernels_neon;
extern const uniecg_kernels uniecg__kernels_neon_dotprod;
#endif

/* Thread pool: runs fn(ctx, i, n) once for each i in [0, n) on the pool's threads and the
 * caller, and returns when all are done. Which thread runs which i is not fixed (the caller
 * runs the indices of a worker that has not woken up yet), but no two run the same i at once,
 * so per-index scratch is safe. A NULL pool runs fn(ctx, 0, 1) inline. */
typedef void (*uniecg_parallel_fn)(void *ctx, int32_t index, int32_t count);
void uniecg__parallel(uniecg_thread_pool *pool, uniecg_parallel_fn fn, void *ctx);

/* Splits [0, total) into `count` near-equal chunks aligned to `align`; chunk `index`. */
static inline void uniecg__chunk(int64_t total, int32_t index, int32_t count, int64_t align, int64_t *begin,
                                 int64_t *end) {
    int64_t units = (total + align - 1) / align;
    int64_t b = units * index / count * align, e = units * (index + 1) / count * align;
    *begin = b < total ? b : total;
    *end = e < total ? e : total;
}

#endif
