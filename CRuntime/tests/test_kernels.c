/* Numeric building blocks: half-precision conversions (exhaustive), q8 quantization (error
 * bound, ties to even, refusals), every kernel variant this CPU supports against the portable
 * one (integer dot products bit-exact), kernel selection and its override, the thread pool and
 * the sampler's documented behaviour.
 *
 * UNIECG_EXPECT_KERNELS (set by run.sh under qemu, e.g. "portable,neon") names the exact set of
 * variants the CPU must report, so a CPU model without SDOT is proven never to get it. */
#include "testing.h"
#include "kernels.h"

#include <math.h>

static float f32_from_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static uint32_t bits_of(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* ---- half precision ---- */

static void half_precision(void) {
    /* every f16 bit pattern survives f16 -> f32 -> f16; NaN stays NaN */
    int exact = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = uniecg_f16_to_f32((uint16_t)h);
        bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x03FF);
        if (nan) exact += isnan(f) && (uniecg_f32_to_f16(f) & 0x7C00) == 0x7C00 && (uniecg_f32_to_f16(f) & 0x03FF);
        else exact += uniecg_f32_to_f16(f) == h;
    }
    CHECK_MSG(exact == 65536, "f16 round trip: %d of 65536 patterns", exact);
    CHECK(uniecg_f16_to_f32(0x3C00) == 1.0f && uniecg_f16_to_f32(0xC000) == -2.0f);
    CHECK(uniecg_f16_to_f32(0x0001) == 0x1p-24f && uniecg_f16_to_f32(0x7BFF) == 65504.0f);
    CHECK(isinf(uniecg_f16_to_f32(0x7C00)) && signbit(uniecg_f16_to_f32(0x8000)));
    CHECK(uniecg_f32_to_f16(65504.0f) == 0x7BFF);
    CHECK(uniecg_f32_to_f16(65519.99f) == 0x7BFF); /* below the halfway point to 2^16 */
    CHECK(uniecg_f32_to_f16(65520.0f) == 0x7C00);  /* the tie rounds to even: infinity */
    CHECK(uniecg_f32_to_f16(1e10f) == 0x7C00 && uniecg_f32_to_f16(-1e10f) == 0xFC00);
    CHECK(uniecg_f32_to_f16(0x1p-25f) == 0x0000);        /* tie between 0 and the smallest: even */
    CHECK(uniecg_f32_to_f16(0x1.8p-24f) == 0x0002);      /* 1.5 ulp: tie, to even 2 */
    CHECK(uniecg_f32_to_f16(0x1.000002p-25f) == 0x0001); /* just above the tie */
    CHECK(uniecg_f32_to_f16(1.0f + 0x1p-11f) == 0x3C00); /* tie to even (down) */
    CHECK(uniecg_f32_to_f16(1.0f + 0x3p-11f) == 0x3C02); /* tie to even (up) */
    CHECK(uniecg_f32_to_f16(0x1.ffcp-15f) == 0x0400); /* halfway past the largest subnormal: even, a normal */
    CHECK(uniecg_f32_to_f16(-0.0f) == 0x8000);
    CHECK((uniecg_f32_to_f16(NAN) & 0x7C00) == 0x7C00 && (uniecg_f32_to_f16(NAN) & 0x03FF));

    /* bf16: the top half of f32, rounded to nearest even */
    int bf_exact = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = uniecg_bf16_to_f32((uint16_t)h);
        if (bits_of(f) != h << 16) continue;
        if (isnan(f)) bf_exact += isnan(uniecg_bf16_to_f32(uniecg_f32_to_bf16(f)));
        else bf_exact += uniecg_f32_to_bf16(f) == h;
    }
    CHECK_MSG(bf_exact == 65536, "bf16 round trip: %d of 65536 patterns", bf_exact);
    CHECK(uniecg_f32_to_bf16(1.0f) == 0x3F80);
    CHECK(uniecg_f32_to_bf16(f32_from_bits(0x3F808000)) == 0x3F80); /* tie, even down */
    CHECK(uniecg_f32_to_bf16(f32_from_bits(0x3F818000)) == 0x3F82); /* tie, even up */
    CHECK(uniecg_f32_to_bf16(f32_from_bits(0x3F808001)) == 0x3F81);
    CHECK(uniecg_f32_to_bf16(f32_from_bits(0x7F7FFFFF)) == 0x7F80); /* FLT_MAX rounds to infinity */
    CHECK(isnan(uniecg_bf16_to_f32(uniecg_f32_to_bf16(f32_from_bits(0x7F800001))))); /* a NaN whose payload is low */
}

/* ---- q8 quantization ---- */

/* Distance to the next f16 above |s| (the f16 rounding of a scale is within half of it). */
static float f16_ulp(float s) {
    uint16_t h = uniecg_f32_to_f16(s);
    return uniecg_f16_to_f32((uint16_t)((h & 0x7FFF) + 1)) - uniecg_f16_to_f32(h & 0x7FFF);
}

static void quantization(void) {
    enum { ROWS = 64, COLS = 256 };
    static float x[ROWS * COLS], back[ROWS * COLS];
    static uint8_t q[ROWS * COLS + ROWS * COLS / 16];
    uniecg_error err = {0};
    /* rows of very different magnitude, down to scales in the f16 subnormal range */
    for (int r = 0; r < ROWS; r++) {
        float magnitude = powf(10.0f, -6.0f + 9.0f * (float)r / (ROWS - 1));
        for (int c = 0; c < COLS; c++) x[r * COLS + c] = test_uniform() * magnitude;
    }
    x[5] = 0.0f;
    CHECK_STATUS(uniecg_quantize_q8(x, UNIECG_DTYPE_F32, ROWS, COLS, q, &err), UNIECG_OK, &err);
    CHECK(uniecg_to_f32(q, UNIECG_DTYPE_Q8, ROWS * COLS, back) == UNIECG_OK);
    int within = 0, groups = ROWS * COLS / 32;
    double worst_ratio = 0;
    for (int g = 0; g < groups; g++) {
        float max_abs = 0;
        for (int i = 0; i < 32; i++) max_abs = fmaxf(max_abs, fabsf(x[g * 32 + i]));
        uint16_t scale_bits = (uint16_t)(q[ROWS * COLS + 2 * g] | q[ROWS * COLS + 2 * g + 1] << 8);
        float s = uniecg_f16_to_f32(scale_bits);
        /* ModelFormat.md §6.2: |x - q s| <= s/2 where nothing clamps; the f16 rounding of the
         * scale adds at most 127 * ulp/2 at the clamp. */
        float bound = 0.5f * s + 63.5f * f16_ulp(max_abs / 127.0f) + max_abs * 1e-6f;
        bool ok = true;
        for (int i = 0; i < 32; i++) {
            float e = fabsf(x[g * 32 + i] - back[g * 32 + i]);
            if (e > bound) ok = false;
            if (s >= 0x1p-14f) worst_ratio = fmax(worst_ratio, e / s); /* normal scales */
        }
        within += ok;
    }
    CHECK_MSG(within == groups, "q8 error bound holds in %d of %d groups", within, groups);
    printf("q8: bound holds in all %d groups (scales 1e-8..8); worst |error| / scale %.3f where the scale is an "
           "f16 normal\n", groups, worst_ratio);

    /* a group whose scale is exactly 1: x = 2.5 -> 2, 3.5 -> 4, -2.5 -> -2 (ties to even) */
    float ties[32] = {127.0f, 2.5f, 3.5f, -2.5f, 0.5f, 1.5f, -126.5f};
    int8_t expect[7] = {127, 2, 4, -2, 0, 2, -126};
    uint8_t tq[34];
    CHECK(uniecg_quantize_q8(ties, UNIECG_DTYPE_F32, 1, 32, tq, &err) == UNIECG_OK);
    CHECK(tq[32] == 0x00 && tq[33] == 0x3C); /* scale 1.0 as f16, little-endian */
    bool ties_ok = true;
    for (int i = 0; i < 7; i++) ties_ok &= (int8_t)tq[i] == expect[i];
    CHECK(ties_ok);

    /* f16 and bf16 sources quantize like their f32 values */
    uint16_t h[64], b[64];
    float hf[64], bf[64];
    for (int i = 0; i < 64; i++) {
        h[i] = uniecg_f32_to_f16(test_uniform() * 3);
        hf[i] = uniecg_f16_to_f32(h[i]);
        b[i] = uniecg_f32_to_bf16(test_uniform() * 3);
        bf[i] = uniecg_bf16_to_f32(b[i]);
    }
    uint8_t q1[68], q2[68];
    CHECK(uniecg_quantize_q8(h, UNIECG_DTYPE_F16, 2, 32, q1, NULL) == UNIECG_OK &&
          uniecg_quantize_q8(hf, UNIECG_DTYPE_F32, 2, 32, q2, NULL) == UNIECG_OK && memcmp(q1, q2, 68) == 0);
    CHECK(uniecg_quantize_q8(b, UNIECG_DTYPE_BF16, 1, 64, q1, NULL) == UNIECG_OK &&
          uniecg_quantize_q8(bf, UNIECG_DTYPE_F32, 1, 64, q2, NULL) == UNIECG_OK && memcmp(q1, q2, 68) == 0);

    /* refusals */
    float bad[32] = {0};
    bad[3] = NAN;
    CHECK(uniecg_quantize_q8(bad, UNIECG_DTYPE_F32, 1, 32, tq, &err) == UNIECG_ERR_RANGE && strstr(err.message, "3"));
    bad[3] = INFINITY;
    CHECK(uniecg_quantize_q8(bad, UNIECG_DTYPE_F32, 1, 32, tq, &err) == UNIECG_ERR_RANGE);
    bad[3] = 1e8f; /* scale 787401 > 65504 */
    CHECK(uniecg_quantize_q8(bad, UNIECG_DTYPE_F32, 1, 32, tq, &err) == UNIECG_ERR_RANGE &&
          strstr(err.message, "f16"));
    CHECK(uniecg_quantize_q8(x, UNIECG_DTYPE_F32, 1, 48, tq, &err) == UNIECG_ERR_INVALID_ARGUMENT);
    CHECK(uniecg_quantize_q8(x, UNIECG_DTYPE_Q8, 1, 32, tq, &err) == UNIECG_ERR_INVALID_ARGUMENT);
    uint64_t size;
    CHECK(uniecg_dtype_payload_size(UNIECG_DTYPE_Q8, 48, &size) != UNIECG_OK);
    CHECK(uniecg_dtype_payload_size(UNIECG_DTYPE_F32, UINT64_MAX / 2, &size) == UNIECG_ERR_LIMIT);
    CHECK(uniecg_dtype_payload_size(UNIECG_DTYPE_BF16, 3, &size) == UNIECG_OK && size == 6);
}

/* ---- kernel variants ---- */

static const uniecg_kernel_variant all_variants[] = {UNIECG_KERNELS_PORTABLE, UNIECG_KERNELS_AVX2, UNIECG_KERNELS_NEON,
                                                     UNIECG_KERNELS_NEON_DOTPROD};

static void selection(void) {
    char supported[128] = "";
    for (int i = 0; i < 4; i++)
        if (uniecg_kernel_variant_supported(all_variants[i])) {
            if (supported[0]) strcat(supported, ",");
            strcat(supported, uniecg_kernel_variant_name(all_variants[i]));
        }
    printf("kernel variants on this CPU: %s\n", supported);
    const char *expected = getenv("UNIECG_EXPECT_KERNELS");
    if (expected) CHECK_MSG(strcmp(expected, supported) == 0, "supported '%s', expected '%s'", supported, expected);

    uniecg_error err = {0};
    uniecg_kernel_variant v;
    /* every variant: named explicitly and through the override, it is granted exactly when the
     * CPU supports it */
    for (int i = 0; i < 4; i++) {
        bool ok = uniecg_kernel_variant_supported(all_variants[i]);
        CHECK(uniecg_kernel_variant_resolve(all_variants[i], &v, &err) == (ok ? UNIECG_OK : UNIECG_ERR_INVALID_ARGUMENT));
        setenv("UNIECG_KERNELS", uniecg_kernel_variant_name(all_variants[i]), 1);
        uniecg_status s = uniecg_kernel_variant_resolve(UNIECG_KERNELS_AUTO, &v, &err);
        CHECK_MSG(ok ? s == UNIECG_OK && v == all_variants[i] : s == UNIECG_ERR_INVALID_ARGUMENT &&
                                                                     strstr(err.message, "not supported"),
                  "override %s: %s", uniecg_kernel_variant_name(all_variants[i]), err.message);
    }
    setenv("UNIECG_KERNELS", "turbo", 1);
    CHECK(uniecg_kernel_variant_resolve(UNIECG_KERNELS_AUTO, &v, &err) == UNIECG_ERR_INVALID_ARGUMENT &&
          strstr(err.message, "turbo"));
    unsetenv("UNIECG_KERNELS");
    CHECK(uniecg_kernel_variant_resolve(UNIECG_KERNELS_AUTO, &v, &err) == UNIECG_OK && uniecg_kernel_variant_supported(v) &&
          v != UNIECG_KERNELS_AUTO);
    CHECK(uniecg_kernel_variant_resolve((uniecg_kernel_variant)9, &v, &err) == UNIECG_ERR_INVALID_ARGUMENT);
    /* AUTO picks the fastest: never portable when a SIMD variant exists */
    bool simd = false;
    for (int i = 1; i < 4; i++) simd |= uniecg_kernel_variant_supported(all_variants[i]);
    CHECK(simd == (v != UNIECG_KERNELS_PORTABLE));
}

static void variants_against_portable(void) {
    /* integer dot products: bit-exact on random groups and on the extremes */
    int8_t a[32], b[32];
    for (int i = 0; i < 4; i++) {
        uniecg_kernel_variant variant = all_variants[i];
        if (!uniecg_kernel_variant_supported(variant) || variant == UNIECG_KERNELS_PORTABLE) continue;
        int same = 0, trials = 20000;
        for (int t = 0; t < trials; t++) {
            for (int k = 0; k < 32; k++) {
                int mode = t % 4;
                a[k] = mode == 0 ? 127 : (int8_t)((int)(test_next() % 255) - 127);
                b[k] = mode == 0 ? (k % 2 ? -127 : 127) : mode == 1 ? -127 : (int8_t)((int)(test_next() % 255) - 127);
            }
            same += uniecg_q8_group_dot(variant, a, b) == uniecg_q8_group_dot(UNIECG_KERNELS_PORTABLE, a, b);
        }
        CHECK_MSG(same == trials, "%s group dot: %d of %d bit-exact", uniecg_kernel_variant_name(variant), same, trials);
        printf("%s: group dot bit-exact on %d random and extreme groups\n", uniecg_kernel_variant_name(variant), trials);
    }
    for (int k = 0; k < 32; k++) a[k] = b[k] = 127;
    CHECK(uniecg_q8_group_dot(UNIECG_KERNELS_PORTABLE, a, b) == 32 * 127 * 127);

    /* activation quantization: a variant's vector form gives the reference's bits, on random
     * groups of several magnitudes, exact ties (k + 0.5 steps), all-zero groups and subnormals */
    enum { QN = 32 * 64 };
    static float xa[QN], sa[QN / 32], sb[QN / 32];
    static int8_t qa[QN], qb[QN];
    for (int g = 0; g < QN / 32; g++) {
        float magnitude = ldexpf(1.0f, g % 24 - 12);
        for (int k = 0; k < 32; k++) {
            float *v = &xa[g * 32 + k];
            switch (g % 5) {
            case 0: *v = 0.0f; break;                                           /* scale 0 */
            case 1: *v = k == 0 ? 127.0f : (float)((int)(test_next() % 254) - 127) + 0.5f; break; /* ties */
            case 2: *v = test_uniform() * 1e-40f; break;                        /* subnormal */
            default: *v = test_uniform() * magnitude;
            }
        }
    }
    uniecg__quantize_activations(xa, QN, qa, sa);
    for (int i = 1; i < 4; i++) {
        uniecg_kernel_variant variant = all_variants[i];
        if (!uniecg_kernel_variant_supported(variant)) continue;
        const uniecg_kernels *k = uniecg__kernels_for(variant);
        if (!k->quantize) continue;
        memset(qb, 0, sizeof qb);
        k->quantize(xa, QN, qb, sb);
        CHECK_MSG(memcmp(qa, qb, sizeof qa) == 0 && memcmp(sa, sb, sizeof sa) == 0, "%s quantize differs from the reference",
                  uniecg_kernel_variant_name(variant));
        printf("%s: activation quantization bit-exact on %d groups (ties, zeros, subnormals included)\n",
               uniecg_kernel_variant_name(variant), QN / 32);
    }
    /* vector exp of softmax numerators: within 2e-7 relative of expf from 0 down to -87 (below,
     * where expf is subnormal, within 1e-38 absolute), tails of every length */
    for (int i = 1; i < 4; i++) {
        uniecg_kernel_variant variant = all_variants[i];
        if (!uniecg_kernel_variant_supported(variant)) continue;
        const uniecg_kernels *k = uniecg__kernels_for(variant);
        if (!k->exp_inplace) continue;
        enum { EN = 2003 };
        static float ex[EN];
        double worst = 0;
        bool tails = true;
        for (int n = 0; n < EN; n++) ex[n] = -100.0f * (float)n / (EN - 1);
        k->exp_inplace(ex, EN);
        for (int n = 0; n < EN; n++) {
            float x = -100.0f * (float)n / (EN - 1), want = expf(x);
            double err = x >= -87.0f ? fabs(ex[n] - want) / want : (fabs(ex[n] - want) <= 1e-38 ? 0 : 1);
            if (err > worst) worst = err;
        }
        for (int n = 1; n <= 9; n++) { /* every tail length around a vector of 8 */
            float t[9], u[9];
            for (int j = 0; j < n; j++) t[j] = u[j] = -0.37f * (float)j;
            k->exp_inplace(t, n);
            for (int j = 0; j < n; j++) tails = tails && fabsf(t[j] - expf(u[j])) <= 2e-7f * expf(u[j]);
        }
        CHECK_MSG(worst <= 2e-7 && tails, "%s exp_inplace: worst relative error %.3g, tails %s",
                  uniecg_kernel_variant_name(variant), worst, tails ? "fine" : "wrong");
        printf("%s: vector exp within %.2g relative of expf on [-87, 0]\n", uniecg_kernel_variant_name(variant), worst);
    }

    /* four dot products in one pass: each within float rounding of a double-precision sum, for
     * every row length 1..40 (the vector body and every masked tail) */
    for (int i = 1; i < 4; i++) {
        uniecg_kernel_variant variant = all_variants[i];
        if (!uniecg_kernel_variant_supported(variant)) continue;
        const uniecg_kernels *k = uniecg__kernels_for(variant);
        if (!k->f32_dot4) continue;
        float da[40], db[4 * 41], got[4];
        double worst = 0;
        for (int n = 1; n <= 40; n++) {
            for (int j = 0; j < n; j++) da[j] = test_uniform() - 0.5f;
            for (int j = 0; j < 4 * 41; j++) db[j] = test_uniform() - 0.5f;
            k->f32_dot4(da, db, 41, n, got);
            for (int r = 0; r < 4; r++) {
                double want = 0, size = 0;
                for (int j = 0; j < n; j++) {
                    want += (double)da[j] * db[r * 41 + j];
                    size += fabs((double)da[j] * db[r * 41 + j]);
                }
                double err = fabs(got[r] - want) / (size + 1e-30);
                if (err > worst) worst = err;
            }
        }
        CHECK_MSG(worst <= 1e-6, "%s f32_dot4: error %.3g of sum |a b|", uniecg_kernel_variant_name(variant), worst);
        printf("%s: four-way dot within %.2g of sum |a b| for lengths 1-40\n", uniecg_kernel_variant_name(variant), worst);
    }

    /* the ties really are ties: 127 sets the scale to 1, so k + 0.5 rounds to the even side */
    CHECK(sa[1] == 1.0f && qa[32 + 1] == (int8_t)nearbyintf(xa[32 + 1]));

    /* matrix-vector products: every variant within float rounding of the portable one, and the
     * portable one within the activation-quantization bound of a double-precision product */
    enum { ROWS = 37, COLS = 320 };
    static float w[ROWS * COLS], wd[ROWS * COLS], x[COLS], y_ref[ROWS], y[ROWS];
    static double magnitude[ROWS]; /* sum of |w x| over a row: the scale of its rounding error */
    static uint8_t wq[ROWS * COLS + ROWS * COLS / 16];
    for (int i = 0; i < ROWS * COLS; i++) w[i] = test_uniform();
    for (int i = 0; i < COLS; i++) x[i] = test_uniform() * 4;
    CHECK(uniecg_quantize_q8(w, UNIECG_DTYPE_F32, ROWS, COLS, wq, NULL) == UNIECG_OK);
    CHECK(uniecg_to_f32(wq, UNIECG_DTYPE_Q8, ROWS * COLS, wd) == UNIECG_OK);
    CHECK(uniecg_q8_matvec(UNIECG_KERNELS_PORTABLE, wq, ROWS, COLS, x, y_ref) == UNIECG_OK);
    double worst = 0, norm = 0;
    for (int r = 0; r < ROWS; r++) {
        double exact = 0;
        for (int c = 0; c < COLS; c++) {
            exact += (double)wd[r * COLS + c] * x[c];
            magnitude[r] += fabs((double)wd[r * COLS + c] * x[c]);
        }
        worst = fmax(worst, fabs(exact - y_ref[r]));
        norm = fmax(norm, fabs(exact));
    }
    /* each activation is off by at most half its group's scale (max|x|/254 <= 4/254) */
    CHECK_MSG(worst <= COLS * (4.0 / 254.0) * 1.0 * 0.5, "portable matvec error %g", worst);
    printf("portable q8 matvec: max |error| %.4g vs the double product (max |y| %.3g)\n", worst, norm);
    for (int i = 1; i < 4; i++) {
        uniecg_kernel_variant variant = all_variants[i];
        if (!uniecg_kernel_variant_supported(variant)) {
            CHECK(uniecg_q8_matvec(variant, wq, ROWS, COLS, x, y) == UNIECG_ERR_INVALID_ARGUMENT);
            continue;
        }
        CHECK(uniecg_q8_matvec(variant, wq, ROWS, COLS, x, y) == UNIECG_OK);
        double diff = 0;
        for (int r = 0; r < ROWS; r++) diff = fmax(diff, fabs((double)y[r] - y_ref[r]) / magnitude[r]);
        CHECK_MSG(diff <= 1e-5, "%s matvec differs from portable by %g of sum |w x|", uniecg_kernel_variant_name(variant),
                  diff);
        printf("%s q8 matvec: max difference to portable %.3g of sum |w x|\n", uniecg_kernel_variant_name(variant), diff);
    }
    CHECK(uniecg_q8_matvec(UNIECG_KERNELS_PORTABLE, wq, ROWS, 48, x, y) == UNIECG_ERR_INVALID_ARGUMENT);
    CHECK(uniecg_q8_matvec(UNIECG_KERNELS_PORTABLE, NULL, ROWS, COLS, x, y) == UNIECG_ERR_INVALID_ARGUMENT);
}

/* ---- grouped attention ---- */

/* kernels.h's definition of `attend` in double precision: out + h * head_dim = softmax(scale *
 * q . k) @ v, heads sharing k and v. */
static void attend_reference(const float *q, int heads, const float *k, const float *v, int stride, int count,
                             int head_dim, float scale, double *out) {
    double *s = malloc((size_t)count * sizeof(double));
    for (int h = 0; h < heads; h++) {
        double max = -INFINITY, sum = 0;
        for (int p = 0; p < count; p++) {
            double dot = 0;
            for (int i = 0; i < head_dim; i++) dot += (double)q[h * head_dim + i] * k[p * stride + i];
            s[p] = (double)scale * dot;
            max = fmax(max, s[p]);
        }
        for (int p = 0; p < count; p++) sum += s[p] = exp(s[p] - max);
        for (int i = 0; i < head_dim; i++) {
            double acc = 0;
            for (int p = 0; p < count; p++) acc += s[p] * v[p * stride + i];
            out[h * head_dim + i] = acc / sum;
        }
    }
    free(s);
}

/* Every variant's `attend` against that reference, over head counts, head sizes (8-lane and
 * 32/64-lane chunks with and without a rest) and lengths around the 64-position block. Scale
 * 1/sqrt(head_dim) with q in +-3 gives scores of standard deviation ~1; scale 4 gives scores tens
 * to hundreds apart (past expf's range for the larger heads unless the maximum is subtracted), a
 * softmax with one dominant weight. The padding between rows is NaN, so a read past head_dim
 * shows. */
static void attend_against_reference(void) {
    static const int heads_set[] = {1, 3, 8}, dims[] = {8, 16, 64, 72, 128}, counts[] = {1, 7, 64, 65, 200};
    enum { GUARD = 4 };
    for (int vi = 0; vi < 4; vi++) {
        uniecg_kernel_variant variant = all_variants[vi];
        if (!uniecg_kernel_variant_supported(variant)) continue;
        const uniecg_kernels *kern = uniecg__kernels_for(variant);
        if (!kern->attend) continue;
        test_rng_state = 12345; /* the same inputs for every variant, whatever ran before */
        double worst[2] = {0, 0}; /* by scale: 1/sqrt(head_dim), 4 */
        bool guards = true;
        int cases = 0;
        for (int c = 0; c < 3 * 5 * 5 * 2; c++) {
            int heads = heads_set[c / 50], hd = dims[c / 10 % 5], count = counts[c / 2 % 5], peaked = c % 2;
            int stride = hd + 8;
            float scale = peaked ? 4.0f : 1.0f / sqrtf((float)hd);
            /* exact sizes, so the sanitizer build sees any overrun */
            float *q = malloc((size_t)heads * hd * sizeof(float));
            float *k = malloc((size_t)count * stride * sizeof(float));
            float *v = malloc((size_t)count * stride * sizeof(float));
            float *scores = malloc((size_t)heads * count * sizeof(float));
            float *out = malloc((size_t)(heads * hd + GUARD) * sizeof(float));
            double *want = malloc((size_t)heads * hd * sizeof(double));
            for (int i = 0; i < heads * hd; i++) q[i] = 3.0f * test_uniform();
            double v_max = 0;
            for (int p = 0; p < count; p++)
                for (int i = 0; i < stride; i++) {
                    k[p * stride + i] = i < hd ? test_uniform() : NAN;
                    v[p * stride + i] = i < hd ? test_uniform() : NAN;
                    if (i < hd) v_max = fmax(v_max, fabs(v[p * stride + i]));
                }
            for (int i = 0; i < GUARD; i++) out[heads * hd + i] = 1234.5f;
            kern->attend(q, heads, k, v, stride, count, hd, scale, scores, out);
            attend_reference(q, heads, k, v, stride, count, hd, scale, want);
            for (int i = 0; i < heads * hd; i++) {
                double err = fabs(out[i] - want[i]) / v_max;
                if (isnan(err)) err = INFINITY;
                if (err > worst[peaked]) worst[peaked] = err;
            }
            for (int i = 0; i < GUARD; i++) guards = guards && out[heads * hd + i] == 1234.5f;
            cases++;
            free(q);
            free(k);
            free(v);
            free(scores);
            free(out);
            free(want);
        }
        /* Scale 1/sqrt(d): float rounding of the dot products and of the sums over up to 200
         * positions, and the polynomial exp (2e-7), keep the error near 2e-7 of max |v| (avx2 and
         * neon 1.7e-7); 1e-5 leaves a wide margin yet catches a wrong lane, position or
         * normalization (errors ~0.1), even tail weights 1e-4 off (4e-5). Scale 4: scores
         * up to ~400, where a float's ulp is 3e-5, so any float kernel's scores are off by ~1e-5,
         * and in a near tie of the two largest the output moves by that times |v1 - v2| (3e-6 to
         * 1.2e-5 seen over seeds): 1e-4. */
        CHECK_MSG(worst[0] <= 1e-5 && worst[1] <= 1e-4 && guards,
                  "%s attend: error %.3g (scale 1/sqrt(d)) and %.3g (scale 4) of max |v|, writes past out: %s",
                  uniecg_kernel_variant_name(variant), worst[0], worst[1], guards ? "none" : "yes");
        printf("%s: attend within %.2g (scale 1/sqrt(d)) and %.2g (scale 4) of max |v| of a double-precision "
               "softmax attention, %d shapes\n",
               uniecg_kernel_variant_name(variant), worst[0], worst[1], cases);
    }
}

/* Tap-major q8 convolution products: the portable reference against a double-precision sum of
 * the same integer products (an independent check of its indexing and scaling), and every
 * variant against the reference bit for bit (kernels.h promises the same bits). Shapes cover
 * odd row counts, token tails (n_tokens not a multiple of 4), kernel 1, 3 and 7, stride 1 and 2,
 * c_in 32 to 512, and the extremes of the int8 range. Row quantization: each variant's vector
 * form against the reference, bits of values and scale. */
static void conv_taps(void) {
    static const int64_t shapes[][5] = {/* rows, c_in, taps, stride, tokens */
                                        {1, 32, 1, 1, 1},   {3, 32, 3, 1, 7},  {5, 64, 3, 2, 9},   {8, 128, 3, 1, 16},
                                        {7, 96, 7, 1, 13},  {2, 512, 3, 1, 6}, {9, 160, 3, 2, 5},  {4, 32, 5, 3, 11}};
    int checked = 0;
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        int64_t rows = shapes[c][0], c_in = shapes[c][1], taps = shapes[c][2], stride = shapes[c][3],
                n = shapes[c][4], positions = (n - 1) * stride + taps;
        int8_t *w = malloc((size_t)(rows * taps * c_in)), *xq = malloc((size_t)(positions * c_in));
        float *ws = malloc((size_t)(rows * taps) * sizeof(float)), *xs = malloc((size_t)positions * sizeof(float));
        float *ref = malloc((size_t)(rows * n) * sizeof(float)), *got = malloc((size_t)(rows * n) * sizeof(float));
        bool extreme = c % 2 == 1;
        for (int64_t i = 0; i < rows * taps * c_in; i++)
            w[i] = extreme ? (i % 3 ? 127 : -127) : (int8_t)((int)(test_next() % 255) - 127);
        for (int64_t i = 0; i < positions * c_in; i++)
            xq[i] = extreme ? (i % 5 ? 127 : -127) : (int8_t)((int)(test_next() % 255) - 127);
        for (int64_t i = 0; i < rows * taps; i++) ws[i] = (0.5f + test_uniform()) * 1e-3f;
        for (int64_t i = 0; i < positions; i++) xs[i] = i == 1 ? 0.0f : (0.5f + test_uniform()) * 1e-2f;
        q8_conv_args args = {.w = w, .w_scales = ws, .xq = xq, .xs = xs, .y = ref, .rows = rows, .c_in = c_in,
                             .taps = taps, .stride = stride, .n_tokens = n, .y_stride = n};
        uniecg__q8_conv_reference(&args, 0, rows);
        double worst = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t t = 0; t < n; t++) {
                double sum = 0, magnitude = 0;
                for (int64_t j = 0; j < taps; j++) {
                    int64_t p = t * stride + j, dot = 0;
                    for (int64_t i = 0; i < c_in; i++) dot += (int64_t)w[(r * taps + j) * c_in + i] * xq[p * c_in + i];
                    sum += (double)ws[r * taps + j] * xs[p] * (double)dot;
                    magnitude += fabs((double)ws[r * taps + j] * xs[p] * (double)dot);
                }
                double e = fabs(ref[r * n + t] - sum) / (magnitude > 0 ? magnitude : 1);
                worst = e > worst ? e : worst;
            }
        CHECK_MSG(worst < 1e-6, "q8 conv reference, shape %zu: relative error %.2e against double sums", c, worst);
        for (int v = 1; v < 4; v++) {
            uniecg_kernel_variant variant = all_variants[v];
            if (!uniecg_kernel_variant_supported(variant)) continue;
            const uniecg_kernels *k = uniecg__kernels_for(variant);
            /* a row range inside the block, and the whole block */
            for (int part = 0; part < 2; part++) {
                int64_t r0 = part ? 0 : rows / 2, r1 = part ? rows : rows - rows / 3;
                for (int64_t i = 0; i < rows * n; i++) got[i] = -1.0f;
                args.y = got;
                uniecg__q8_conv(k, &args, r0, r1);
                bool same = memcmp(got + r0 * n, ref + r0 * n, (size_t)((r1 - r0) * n) * sizeof(float)) == 0, untouched = true;
                for (int64_t i = 0; i < rows * n; i++)
                    if ((i < r0 * n || i >= r1 * n) && got[i] != -1.0f) untouched = false;
                CHECK_MSG(same && untouched, "%s q8 conv, shape %zu rows %lld-%lld: %s", uniecg_kernel_variant_name(variant),
                          c, (long long)r0, (long long)r1, same ? "wrote outside its rows" : "differs from the reference");
                checked++;
            }
        }
        free(w), free(xq), free(ws), free(xs), free(ref), free(got);
    }
    printf("q8 conv: reference within 1e-6 of double sums; %d variant runs bit-identical to it\n", checked);

    enum { RN = 32 * 24 };
    static float row[RN];
    static int8_t qa[RN], qb[RN];
    for (int trial = 0; trial < 4; trial++) {
        for (int i = 0; i < RN; i++)
            row[i] = trial == 0   ? 0.0f                                                  /* scale 0 */
                     : trial == 1 ? (i == 0 ? 127.0f : (float)((int)(test_next() % 254) - 127) + 0.5f) /* ties */
                     : trial == 2 ? test_uniform() * 1e-40f                              /* subnormal */
                                  : test_uniform() * ldexpf(1.0f, i % 24 - 12);
        float sa = -1, sb = -2;
        uniecg__quantize_row_reference(row, RN, qa, &sa);
        for (int v = 1; v < 4; v++) {
            uniecg_kernel_variant variant = all_variants[v];
            if (!uniecg_kernel_variant_supported(variant)) continue;
            const uniecg_kernels *k = uniecg__kernels_for(variant);
            if (!k->quantize_row) continue;
            memset(qb, 0, sizeof qb);
            k->quantize_row(row, RN, qb, &sb);
            CHECK_MSG(memcmp(qa, qb, sizeof qa) == 0 && memcmp(&sa, &sb, sizeof sa) == 0,
                      "%s row quantization differs from the reference (trial %d)", uniecg_kernel_variant_name(variant), trial);
        }
    }
    /* the reference itself: the largest value maps to 127, a value half a step off rounds to even */
    float small[32] = {2.54f, -1.27f, 0.03f, 0.01f, 0.0f};
    int8_t q[32];
    float scale;
    uniecg__quantize_row_reference(small, 32, q, &scale);
    CHECK(scale == 2.54f / 127.0f && q[0] == 127 && q[1] == -64 && q[2] == 2 && q[3] == 0 && q[4] == 0);
}

static void thread_pool(void) {
    uniecg_thread_pool *pool = NULL;
    uniecg_error err = {0};
    CHECK(uniecg_physical_cores() >= 1);
    CHECK_STATUS(uniecg_thread_pool_create(0, &pool, &err), UNIECG_OK, &err);
    CHECK(pool && uniecg_thread_pool_size(pool) == uniecg_physical_cores());
    uniecg_thread_pool_free(pool);
    CHECK_STATUS(uniecg_thread_pool_create(3, &pool, &err), UNIECG_OK, &err);
    CHECK(pool && uniecg_thread_pool_size(pool) == 3);
    double bandwidth = 0;
    CHECK(uniecg_measure_read_bandwidth(pool, 1 << 20, 2, &bandwidth) == UNIECG_OK && bandwidth > 0);
    uniecg_thread_pool_free(pool);
    CHECK(uniecg_thread_pool_create(-1, &pool, &err) == UNIECG_ERR_INVALID_ARGUMENT);
    uniecg_thread_pool_free(NULL);
}

/* ---- sampler ---- */

static void sampler(void) {
    enum { V = 50 };
    float logits[V], work[V];
    for (int i = 0; i < V; i++) logits[i] = (float)(i % 10) * 0.3f - (float)i * 0.01f;
    uniecg_sampler *s = NULL;
    uniecg_error err = {0};
    uniecg_sampler_params p = uniecg_sampler_default_params();
    CHECK(p.temperature == 0.8f && p.top_k == 40 && p.top_p == 0.95f && p.min_p == 0.05f &&
          p.repetition_penalty == 1.1f && p.repetition_window == 64 && p.seed == 0);

    /* greedy: the highest logit, the lowest id on ties */
    p.temperature = 0;
    p.repetition_penalty = 1;
    CHECK_STATUS(uniecg_sampler_create(p, V, &s, &err), UNIECG_OK, &err);
    int32_t token = -1;
    memcpy(work, logits, sizeof work);
    CHECK(uniecg_sampler_sample(s, work, &token) == UNIECG_OK && token == 9);
    for (int i = 0; i < V; i++) work[i] = 1.0f;
    CHECK(uniecg_sampler_sample(s, work, &token) == UNIECG_OK && token == 0);
    work[7] = NAN;
    CHECK(uniecg_sampler_sample(s, work, &token) == UNIECG_ERR_RANGE);
    uniecg_sampler_free(s);

    /* repetition penalty: a repeated leader loses to the runner-up */
    p.repetition_penalty = 2.0f;
    CHECK(uniecg_sampler_create(p, V, &s, &err) == UNIECG_OK);
    uniecg_sampler_accept(s, 9);
    memcpy(work, logits, sizeof work);
    CHECK(uniecg_sampler_sample(s, work, &token) == UNIECG_OK && token == 19);
    CHECK(fabsf(work[9] - logits[9] / 2) < 1e-6f);
    uniecg_sampler_reset(s);
    memcpy(work, logits, sizeof work);
    CHECK(uniecg_sampler_sample(s, work, &token) == UNIECG_OK && token == 9);
    uniecg_sampler_free(s);

    /* seeded draws: the same seed gives the same tokens; reset starts again; another seed differs */
    p = uniecg_sampler_default_params();
    p.repetition_penalty = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.temperature = 1.0f;
    p.seed = 1234;
    uniecg_sampler *s2 = NULL;
    CHECK(uniecg_sampler_create(p, V, &s, &err) == UNIECG_OK && uniecg_sampler_create(p, V, &s2, &err) == UNIECG_OK);
    int32_t first[200];
    int same = 0;
    for (int i = 0; i < 200; i++) {
        memcpy(work, logits, sizeof work);
        uniecg_sampler_sample(s, work, &first[i]);
        memcpy(work, logits, sizeof work);
        uniecg_sampler_sample(s2, work, &token);
        same += token == first[i];
    }
    CHECK(same == 200);
    uniecg_sampler_reset(s);
    same = 0;
    for (int i = 0; i < 200; i++) {
        memcpy(work, logits, sizeof work);
        uniecg_sampler_sample(s, work, &token);
        same += token == first[i];
    }
    CHECK(same == 200);
    uniecg_sampler_free(s2);

    /* the draws follow softmax(logits / T): chi-square over 20000 draws against the exact
     * probabilities (49 degrees of freedom; 99.99 % quantile about 95) */
    enum { DRAWS = 20000 };
    int counts[V] = {0};
    for (int i = 0; i < DRAWS; i++) {
        memcpy(work, logits, sizeof work);
        uniecg_sampler_sample(s, work, &token);
        counts[token]++;
    }
    double z = 0, probs[V], chi2 = 0;
    for (int i = 0; i < V; i++) z += exp(logits[i]);
    for (int i = 0; i < V; i++) {
        probs[i] = exp(logits[i]) / z;
        double e = probs[i] * DRAWS;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    CHECK_MSG(chi2 < 95, "chi-square %.1f", chi2);
    printf("sampler: chi-square %.1f over %d draws (49 dof)\n", chi2, DRAWS);
    uniecg_sampler_free(s);

    /* top-k 3 draws only the three best ids; top-p 0.3 only the smallest set holding 30 %;
     * min-p 0.9 only ids within 90 % of the best's probability */
    p.top_k = 3;
    CHECK(uniecg_sampler_create(p, V, &s, &err) == UNIECG_OK);
    bool only_top3 = true;
    for (int i = 0; i < 500; i++) {
        memcpy(work, logits, sizeof work);
        uniecg_sampler_sample(s, work, &token);
        only_top3 &= token == 9 || token == 19 || token == 29;
    }
    CHECK(only_top3);
    uniecg_sampler_free(s);
    p.top_k = 0;
    p.top_p = 0.1f;
    CHECK(uniecg_sampler_create(p, V, &s, &err) == UNIECG_OK);
    /* probabilities of 9, 19, 29, 39 are ~0.092, 0.083, 0.075, 0.068: a 10 % nucleus needs two */
    bool nucleus = true;
    for (int i = 0; i < 500; i++) {
        memcpy(work, logits, sizeof work);
        uniecg_sampler_sample(s, work, &token);
        nucleus &= token == 9 || token == 19;
    }
    CHECK(nucleus);
    uniecg_sampler_free(s);
    p.top_p = 1.0f;
    p.min_p = 0.95f;
    CHECK(uniecg_sampler_create(p, V, &s, &err) == UNIECG_OK);
    bool min_p_only_best = true;
    for (int i = 0; i < 200; i++) {
        memcpy(work, logits, sizeof work);
        uniecg_sampler_sample(s, work, &token);
        min_p_only_best &= token == 9;
    }
    CHECK(min_p_only_best);
    uniecg_sampler_free(s);

    p = uniecg_sampler_default_params();
    p.temperature = -1;
    CHECK(uniecg_sampler_create(p, V, &s, &err) == UNIECG_ERR_INVALID_ARGUMENT);
    p = uniecg_sampler_default_params();
    CHECK(uniecg_sampler_create(p, 0, &s, &err) == UNIECG_ERR_INVALID_ARGUMENT);
}

int main(void) {
    half_precision();
    quantization();
    selection();
    variants_against_portable();
    attend_against_reference();
    conv_taps();
    thread_pool();
    sampler();
    return test_summary();
}
