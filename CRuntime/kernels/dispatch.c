/* Chooses a kernel implementation from the CPU's features, honouring UNIECG_KERNELS. */
#define _GNU_SOURCE
#include "kernels.h"

#include <stdlib.h>
#include <unistd.h>
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

const char *uniecg_kernel_variant_name(uniecg_kernel_variant variant) {
    switch (variant) {
    case UNIECG_KERNELS_AUTO: return "auto";
    case UNIECG_KERNELS_PORTABLE: return "portable";
    case UNIECG_KERNELS_AVX2: return "avx2";
    case UNIECG_KERNELS_NEON: return "neon";
    case UNIECG_KERNELS_NEON_DOTPROD: return "neon-dotprod";
    }
    return NULL;
}

bool uniecg_kernel_variant_supported(uniecg_kernel_variant variant) {
    switch (variant) {
    case UNIECG_KERNELS_AUTO:
    case UNIECG_KERNELS_PORTABLE: return true;
    case UNIECG_KERNELS_AVX2:
#if defined(__x86_64__)
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
        return false;
#endif
    case UNIECG_KERNELS_NEON:
#if defined(__aarch64__)
        return true; /* Advanced SIMD is part of the arm64 baseline */
#else
        return false;
#endif
    case UNIECG_KERNELS_NEON_DOTPROD:
#if defined(__aarch64__) && defined(__linux__)
        return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
        return false;
#endif
    }
    return false;
}

static uniecg_kernel_variant best_supported(void) {
    static const uniecg_kernel_variant preference[] = {UNIECG_KERNELS_AVX2, UNIECG_KERNELS_NEON_DOTPROD,
                                                       UNIECG_KERNELS_NEON};
    for (size_t i = 0; i < sizeof preference / sizeof *preference; i++)
        if (uniecg_kernel_variant_supported(preference[i])) return preference[i];
    return UNIECG_KERNELS_PORTABLE;
}

uniecg_status uniecg_kernel_variant_resolve(uniecg_kernel_variant requested, uniecg_kernel_variant *out,
                                            uniecg_error *error) {
    if (!out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "kernel_variant_resolve: NULL output");
    const char *source = "requested";
    if (requested == UNIECG_KERNELS_AUTO) {
        const char *env = getenv("UNIECG_KERNELS");
        if (!env || !*env || strcmp(env, "auto") == 0) {
            *out = best_supported();
            return UNIECG_OK;
        }
        requested = (uniecg_kernel_variant)-1;
        for (int v = UNIECG_KERNELS_PORTABLE; v <= UNIECG_KERNELS_NEON_DOTPROD; v++)
            if (strcmp(env, uniecg_kernel_variant_name((uniecg_kernel_variant)v)) == 0) requested = (uniecg_kernel_variant)v;
        if ((int)requested == -1)
            return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                                "UNIECG_KERNELS='%.40s' is not one of auto, portable, avx2, neon, neon-dotprod", env);
        source = "UNIECG_KERNELS";
    }
    if (!uniecg_kernel_variant_name(requested))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "unknown kernel variant %d", (int)requested);
    if (!uniecg_kernel_variant_supported(requested))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "%s kernels '%s' are not supported by this CPU or build",
                            source, uniecg_kernel_variant_name(requested));
    *out = requested;
    return UNIECG_OK;
}

const uniecg_kernels *uniecg__kernels_for(uniecg_kernel_variant variant) {
    switch (variant) {
#if defined(__x86_64__)
    case UNIECG_KERNELS_AVX2: return &uniecg__kernels_avx2;
#endif
#if defined(__aarch64__)
    case UNIECG_KERNELS_NEON: return &uniecg__kernels_neon;
    case UNIECG_KERNELS_NEON_DOTPROD: return &uniecg__kernels_neon_dotprod;
#endif
    default: return &uniecg__kernels_portable;
    }
}

int32_t uniecg_q8_group_dot(uniecg_kernel_variant variant, const int8_t *a, const int8_t *b) {
    uniecg_kernel_variant v;
    if (uniecg_kernel_variant_resolve(variant, &v, NULL) != UNIECG_OK) v = UNIECG_KERNELS_PORTABLE;
    return uniecg__kernels_for(v)->q8_group_dot(a, b);
}

uniecg_status uniecg_q8_matvec(uniecg_kernel_variant variant, const void *w_payload, uint64_t rows, uint64_t cols,
                               const float *x, float *y) {
    if (!w_payload || !x || !y || cols == 0 || cols % UNIECG_Q8_GROUP || rows == 0 || cols > (1u << 30) ||
        rows > (1u << 30))
        return UNIECG_ERR_INVALID_ARGUMENT;
    uniecg_kernel_variant v;
    uniecg_status s = uniecg_kernel_variant_resolve(variant, &v, NULL);
    if (s) return s;
    int8_t *xq = uniecg__aligned_alloc(cols);
    float *xs = uniecg__aligned_alloc(cols / UNIECG_Q8_GROUP * sizeof(float));
    if (!xq || !xs) {
        free(xq);
        free(xs);
        return UNIECG_ERR_OUT_OF_MEMORY;
    }
    uniecg__quantize(uniecg__kernels_for(v), x, (int64_t)cols, xq, xs);
    q8_matmul_args args = {.w = w_payload, .w_scales = (const uint8_t *)w_payload + rows * cols, .xq = xq, .xs = xs,
                           .y = y, .rows = (int64_t)rows, .cols = (int64_t)cols, .n_tokens = 1, .y_stride = (int64_t)rows};
    uniecg__kernels_for(v)->q8_matmul(&args, 0, (int64_t)rows);
    free(xq);
    free(xs);
    return UNIECG_OK;
}
