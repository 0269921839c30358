/* Portable C reference of the q8 kernels. The order of floating-point operations is fixed
 * (no contraction into FMA) so that every platform computes the same bits. */
#include "kernels.h"

#include <math.h>

#ifdef __clang__ /* gcc ignores the pragma; the C test build passes -ffp-contract=off */
#pragma STDC FP_CONTRACT OFF
#endif

void uniecg__quantize_activations(const float *x, int64_t n, int8_t *q, float *scales) {
    for (int64_t g = 0; g < n / UNIECG_Q8_GROUP; g++) {
        const float *xg = x + g * UNIECG_Q8_GROUP;
        float max_abs = 0.0f;
        for (int i = 0; i < UNIECG_Q8_GROUP; i++) {
            float a = fabsf(xg[i]);
            max_abs = a > max_abs ? a : max_abs;
        }
        float scale = max_abs / 127.0f;
        float inverse = scale > 0.0f ? 1.0f / scale : 0.0f;
        for (int i = 0; i < UNIECG_Q8_GROUP; i++) {
            float v = nearbyintf(xg[i] * inverse);
            q[g * UNIECG_Q8_GROUP + i] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
        }
        scales[g] = scale;
    }
}

void uniecg__quantize_row_reference(const float *x, int64_t n, int8_t *q, float *scale) {
    float max_abs = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        max_abs = a > max_abs ? a : max_abs;
    }
    *scale = max_abs / 127.0f;
    float inverse = *scale > 0.0f ? 1.0f / *scale : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * inverse);
        q[i] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
    }
}

void uniecg__q8_conv_reference(const q8_conv_args *a, int64_t row_begin, int64_t row_end) {
    for (int64_t r = row_begin; r < row_end; r++) {
        for (int64_t t = 0; t < a->n_tokens; t++) {
            float sum = 0.0f;
            for (int64_t j = 0; j < a->taps; j++) {
                const int8_t *w = a->w + (r * a->taps + j) * a->c_in;
                int64_t p = t * a->stride + j;
                const int8_t *x = a->xq + p * a->c_in;
                int32_t dot = 0;
                for (int64_t i = 0; i < a->c_in; i++) dot += (int32_t)w[i] * (int32_t)x[i];
                float scale = a->w_scales[r * a->taps + j] * a->xs[p];
                float term = scale * (float)dot; /* two statements: never fused into an FMA */
                sum = sum + term;
            }
            a->y[r * a->y_stride + t] = sum;
        }
    }
}

static int32_t group_dot(const int8_t *a, const int8_t *b) {
    int32_t sum = 0;
    for (int i = 0; i < UNIECG_Q8_GROUP; i++) sum += (int32_t)a[i] * (int32_t)b[i];
    return sum;
}

static void q8_matmul(const q8_matmul_args *a, int64_t row_begin, int64_t row_end) {
    int64_t groups = a->cols / UNIECG_Q8_GROUP;
    for (int64_t r = row_begin; r < row_end; r++) {
        const int8_t *w = a->w + r * a->cols;
        const uint8_t *ws = a->w_scales + 2 * r * groups;
        for (int64_t t = 0; t < a->n_tokens; t++) {
            const int8_t *x = a->xq + t * a->cols;
            const float *xs = a->xs + t * groups;
            float sum = 0.0f;
            for (int64_t g = 0; g < groups; g++) {
                float scale = uniecg_f16_to_f32(uniecg__get_u16(ws + 2 * g)) * xs[g];
                sum += (float)group_dot(w + g * UNIECG_Q8_GROUP, x + g * UNIECG_Q8_GROUP) * scale;
            }
            a->y[t * a->y_stride + r] = sum;
        }
    }
}

/* Eight interleaved partial sums, combined in a fixed order: fast and the same bits everywhere. */
static float f32_dot(const float *a, const float *b, int64_t n) {
    float lane[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) lane[j] += a[i + j] * b[i + j];
    for (; i < n; i++) lane[0] += a[i] * b[i];
    return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

static void f32_axpy(float *y, float alpha, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

const uniecg_kernels uniecg__kernels_portable = {
    .variant = UNIECG_KERNELS_PORTABLE,
    .q8_matmul = q8_matmul,
    .q8_group_dot = group_dot,
    .f32_dot = f32_dot,
    .f32_axpy = f32_axpy,
};
