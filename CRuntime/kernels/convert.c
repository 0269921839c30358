/* Element-type conversions: IEEE binary16 and bfloat16 (round to nearest, ties to even) and
 * the q8 block quantization of ModelFormat.md §6. Written portably so that every platform
 * produces the same bits. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

static inline uint32_t f32_bits(float f) { uint32_t x; memcpy(&x, &f, 4); return x; }
static inline float f32_from_bits(uint32_t x) { float f; memcpy(&f, &x, 4); return f; }

uint16_t uniecg_f32_to_f16(float value) {
    uint32_t x = f32_bits(value);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t magnitude = x & 0x7FFFFFFF;
    if (magnitude > 0x7F800000) /* NaN: keep it quiet and keep the top payload bits */
        return (uint16_t)(sign | 0x7E00 | ((magnitude >> 13) & 0x3FF));
    if (magnitude >= 0x477FF000) /* >= 65520 rounds past the largest finite half (65504) */
        return (uint16_t)(sign | 0x7C00);
    if (magnitude < 0x38800000) { /* below 2^-14: a subnormal half (units of 2^-24) or zero */
        uint32_t exponent = magnitude >> 23;
        uint32_t shift = 126 - exponent; /* value = mantissa * 2^-24 >> shift */
        if (shift > 24) return sign;
        uint32_t mantissa = (magnitude & 0x7FFFFF) | 0x800000;
        uint32_t half = mantissa >> shift;
        uint32_t rest = mantissa & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = (magnitude - 0x38000000) >> 13; /* rebias the exponent from 127 to 15 */
    uint32_t rest = magnitude & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
    return (uint16_t)(sign | half);
}

float uniecg_f16_to_f32(uint16_t bits) {
    uint32_t sign = (uint32_t)(bits & 0x8000) << 16;
    uint32_t exponent = (bits >> 10) & 0x1F;
    uint32_t mantissa = bits & 0x3FF;
    if (exponent == 0) {
        if (mantissa == 0) return f32_from_bits(sign);
        exponent = 113; /* normalise the subnormal */
        while (!(mantissa & 0x400)) { mantissa <<= 1; exponent--; }
        return f32_from_bits(sign | exponent << 23 | (mantissa & 0x3FF) << 13);
    }
    if (exponent == 31) return f32_from_bits(sign | 0x7F800000 | mantissa << 13);
    return f32_from_bits(sign | (exponent + 112) << 23 | mantissa << 13);
}

uint16_t uniecg_f32_to_bf16(float value) {
    uint32_t x = f32_bits(value);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7FFF + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

float uniecg_bf16_to_f32(uint16_t bits) { return f32_from_bits((uint32_t)bits << 16); }

const char *uniecg_dtype_name(uniecg_dtype dtype) {
    switch (dtype) {
    case UNIECG_DTYPE_F32: return "f32";
    case UNIECG_DTYPE_F16: return "f16";
    case UNIECG_DTYPE_BF16: return "bf16";
    case UNIECG_DTYPE_Q8: return "q8";
    }
    return NULL;
}

uniecg_status uniecg_dtype_payload_size(uniecg_dtype dtype, uint64_t count, uint64_t *out) {
    uint64_t bytes;
    switch (dtype) {
    case UNIECG_DTYPE_F32:
        if (uniecg__mul_overflows(count, 4, &bytes)) return UNIECG_ERR_LIMIT;
        break;
    case UNIECG_DTYPE_F16:
    case UNIECG_DTYPE_BF16:
        if (uniecg__mul_overflows(count, 2, &bytes)) return UNIECG_ERR_LIMIT;
        break;
    case UNIECG_DTYPE_Q8: /* count int8 values, then one f16 scale per 32 of them */
        if (count % UNIECG_Q8_GROUP) return UNIECG_ERR_INVALID_ARGUMENT;
        if (uniecg__add_overflows(count, count / UNIECG_Q8_GROUP * 2, &bytes)) return UNIECG_ERR_LIMIT;
        break;
    default: return UNIECG_ERR_INVALID_ARGUMENT;
    }
    *out = bytes;
    return UNIECG_OK;
}

static inline float load_element(const void *src, uniecg_dtype dtype, uint64_t i) {
    switch (dtype) {
    case UNIECG_DTYPE_F16: return uniecg_f16_to_f32(((const uint16_t *)src)[i]);
    case UNIECG_DTYPE_BF16: return uniecg_bf16_to_f32(((const uint16_t *)src)[i]);
    default: return ((const float *)src)[i];
    }
}

uniecg_status uniecg_quantize_q8(const void *src, uniecg_dtype src_dtype, uint64_t rows,
                                 uint64_t cols, void *dst, uniecg_error *error) {
    if (!src || !dst)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "quantize_q8: NULL buffer");
    if (src_dtype != UNIECG_DTYPE_F32 && src_dtype != UNIECG_DTYPE_F16 && src_dtype != UNIECG_DTYPE_BF16)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "quantize_q8: source must be f32, f16 or bf16");
    uint64_t count;
    if (cols == 0 || cols % UNIECG_Q8_GROUP || uniecg__mul_overflows(rows, cols, &count))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "quantize_q8: %llu columns is not a positive multiple of %d",
                            (unsigned long long)cols, UNIECG_Q8_GROUP);
    int8_t *values = dst;
    uint8_t *scales = (uint8_t *)dst + count;
    for (uint64_t g = 0; g < count / UNIECG_Q8_GROUP; g++) {
        float x[UNIECG_Q8_GROUP];
        float max_abs = 0.0f;
        for (int i = 0; i < UNIECG_Q8_GROUP; i++) {
            x[i] = load_element(src, src_dtype, g * UNIECG_Q8_GROUP + (uint64_t)i);
            if (!isfinite(x[i]))
                return uniecg__fail(error, UNIECG_ERR_RANGE,
                                    "quantize_q8: element %llu is not finite",
                                    (unsigned long long)(g * UNIECG_Q8_GROUP + (uint64_t)i));
            float a = fabsf(x[i]);
            if (a > max_abs) max_abs = a;
        }
        uint16_t scale_bits = uniecg_f32_to_f16(max_abs / 127.0f);
        if ((scale_bits & 0x7C00) == 0x7C00)
            return uniecg__fail(error, UNIECG_ERR_RANGE,
                                "quantize_q8: group %llu (max |x| = %g) needs a scale beyond the f16 range",
                                (unsigned long long)g, (double)max_abs);
        float scale = uniecg_f16_to_f32(scale_bits);
        for (int i = 0; i < UNIECG_Q8_GROUP; i++) {
            float q = scale == 0.0f ? 0.0f : nearbyintf(x[i] / scale); /* ties to even */
            if (q > 127.0f) q = 127.0f;
            if (q < -127.0f) q = -127.0f;
            values[g * UNIECG_Q8_GROUP + (uint64_t)i] = (int8_t)q;
        }
        uniecg__put_u16(scales + 2 * g, scale_bits);
    }
    return UNIECG_OK;
}

uniecg_status uniecg_to_f32(const void *src, uniecg_dtype dtype, uint64_t count, float *dst) {
    if (!src || !dst) return UNIECG_ERR_INVALID_ARGUMENT;
    if (dtype == UNIECG_DTYPE_Q8) {
        if (count % UNIECG_Q8_GROUP) return UNIECG_ERR_INVALID_ARGUMENT;
        const int8_t *values = src;
        const uint8_t *scales = (const uint8_t *)src + count;
        for (uint64_t i = 0; i < count; i++)
            dst[i] = (float)values[i] * uniecg_f16_to_f32(uniecg__get_u16(scales + 2 * (i / UNIECG_Q8_GROUP)));
        return UNIECG_OK;
    }
    if (!uniecg_dtype_name(dtype)) return UNIECG_ERR_INVALID_ARGUMENT;
    for (uint64_t i = 0; i < count; i++) dst[i] = load_element(src, dtype, i);
    return UNIECG_OK;
}
