/* Private helpers shared by the C core: error reporting, checked arithmetic, little-endian
 * byte access. Not part of the public API. */
#ifndef UNIECG_INTERNAL_H
#define UNIECG_INTERNAL_H

#include "uniecg.h"

#include <stdarg.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "UniECG payloads are little-endian and read in place: big-endian hosts are not supported"
#endif

/* Every file of the core rounds as written: no fused multiply-adds the source did not ask for,
 * so the portable path gives the same bits on x86-64 and arm64 (clang contracts by default on
 * arm64; SwiftPM passes no -ffp-contract flag). gcc ignores the pragma, so the C test build
 * passes -ffp-contract=off. SIMD kernels use explicit FMA intrinsics where they want them. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__GNUC__)
#define UNIECG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define UNIECG_PRINTF(fmt, args)
#endif

/* Fills `error` (when not NULL) and returns `status`, so callers can `return uniecg__fail(...)`. */
uniecg_status uniecg__fail(uniecg_error *error, uniecg_status status, const char *format, ...)
    UNIECG_PRINTF(3, 4);

static inline bool uniecg__add_overflows(uint64_t a, uint64_t b, uint64_t *sum) {
    return __builtin_add_overflow(a, b, sum);
}
static inline bool uniecg__mul_overflows(uint64_t a, uint64_t b, uint64_t *product) {
    return __builtin_mul_overflow(a, b, product);
}
static inline uint64_t uniecg__align_up(uint64_t value, uint64_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

static inline uint16_t uniecg__get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t uniecg__get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t uniecg__get_u64(const uint8_t *p) {
    return (uint64_t)uniecg__get_u32(p) | (uint64_t)uniecg__get_u32(p + 4) << 32;
}
static inline void uniecg__put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void uniecg__put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void uniecg__put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* True when `bytes` is well-formed UTF-8 (no overlongs, no surrogates) without NUL bytes. */
bool uniecg__valid_utf8(const uint8_t *bytes, uint64_t length);

/* xoshiro256** seeded through splitmix64: the one PRNG of the core (sampler, noise). */
void uniecg__xoshiro_seed(uint64_t state[4], uint64_t seed);
uint64_t uniecg__xoshiro_next(uint64_t state[4]);

/* 64-byte aligned allocation of at least `size` bytes (rounded up); free with free(). */
void *uniecg__aligned_alloc(uint64_t size);

#endif
