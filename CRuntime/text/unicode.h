/* Unicode properties and normalisation for the tokenizer, from the generated tables in
 * unicode_tables.h (Tools/reference/make_unicode_tables.py). Not public API. */
#ifndef UNIECG_UNICODE_H
#define UNIECG_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* General categories, in this order (the table values). */
enum {
    UNIECG_GC_LU, UNIECG_GC_LL, UNIECG_GC_LT, UNIECG_GC_LM, UNIECG_GC_LO,
    UNIECG_GC_MN, UNIECG_GC_MC, UNIECG_GC_ME,
    UNIECG_GC_ND, UNIECG_GC_NL, UNIECG_GC_NO,
    UNIECG_GC_PC, UNIECG_GC_PD, UNIECG_GC_PS, UNIECG_GC_PE, UNIECG_GC_PI, UNIECG_GC_PF, UNIECG_GC_PO,
    UNIECG_GC_SM, UNIECG_GC_SC, UNIECG_GC_SK, UNIECG_GC_SO,
    UNIECG_GC_ZS, UNIECG_GC_ZL, UNIECG_GC_ZP,
    UNIECG_GC_CC, UNIECG_GC_CF, UNIECG_GC_CS, UNIECG_GC_CO, UNIECG_GC_CN,
    UNIECG_GC_COUNT
};

#define UNIECG_GC_MASK(c) (1u << (c))
#define UNIECG_GC_L (UNIECG_GC_MASK(UNIECG_GC_LU) | UNIECG_GC_MASK(UNIECG_GC_LL) | UNIECG_GC_MASK(UNIECG_GC_LT) | \
                     UNIECG_GC_MASK(UNIECG_GC_LM) | UNIECG_GC_MASK(UNIECG_GC_LO))
#define UNIECG_GC_N (UNIECG_GC_MASK(UNIECG_GC_ND) | UNIECG_GC_MASK(UNIECG_GC_NL) | UNIECG_GC_MASK(UNIECG_GC_NO))

/* General category of a code point (UNIECG_GC_CN beyond U+10FFFF). */
int uniecg__unicode_category(uint32_t cp);
/* Mask of the general categories named by a property name of \p{...} (short or long names,
 * e.g. L, Letter, Lu, Uppercase_Letter, LC, N, Nd, Digit, P, S, Z, C; matched like Oniguruma,
 * ignoring case, '_', '-' and spaces). 0 when unknown (scripts and binary properties). */
uint32_t uniecg__unicode_category_mask(const char *name, size_t length);
/* The White_Space property (Oniguruma's \s, Rust's char::is_whitespace). */
bool uniecg__unicode_is_space(uint32_t cp);
/* Canonical combining class. */
uint8_t uniecg__unicode_ccc(uint32_t cp);

/* NFC (compose = true) or NFD of code points in[0..n) into out (capacity out_capacity). Returns
 * the output length; when that exceeds out_capacity nothing useful was written and the caller
 * retries with that much room (decomposition expands by at most 4x per code point, Hangul 3x). */
size_t uniecg__unicode_normalize(const uint32_t *in, size_t n, bool compose, uint32_t *out, size_t out_capacity);

#endif
