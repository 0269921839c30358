/* Private pieces of the tokenizer: a growable byte buffer, UTF-8 helpers, and the small regex
 * engine used by the Split pre-tokenizer and the Replace normaliser. Not public API. */
#ifndef UNIECG_TOKENIZER_INTERNAL_H
#define UNIECG_TOKENIZER_INTERNAL_H

#include "internal.h"

#include <stdlib.h>

/* ---- growable byte buffer (always NUL-terminated when data != NULL) ---- */

typedef struct {
    char *data;
    size_t length, capacity;
} uniecg__buf;

static inline bool uniecg__buf_reserve(uniecg__buf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->length) return false;
    size_t need = b->length + extra + 1;
    if (need <= b->capacity) return true;
    size_t cap = b->capacity ? b->capacity : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return false;
    b->data = p;
    b->capacity = cap;
    return true;
}

static inline bool uniecg__buf_append(uniecg__buf *b, const void *s, size_t n) {
    if (!uniecg__buf_reserve(b, n)) return false;
    if (n) memcpy(b->data + b->length, s, n);
    b->length += n;
    b->data[b->length] = 0;
    return true;
}

static inline void uniecg__buf_free(uniecg__buf *b) {
    free(b->data);
    b->data = NULL;
    b->length = b->capacity = 0;
}

/* ---- UTF-8 ---- */

/* Decodes the code point at s[*i] of well-formed UTF-8 (as validated by uniecg__utf8_check)
 * and advances *i. */
static inline uint32_t uniecg__utf8_next(const char *str, size_t *i) {
    const uint8_t *s = (const uint8_t *)str;
    uint32_t c = s[*i];
    if (c < 0x80) { *i += 1; return c; }
    if (c < 0xE0) { c = (c & 0x1F) << 6 | (s[*i + 1] & 0x3F); *i += 2; return c; }
    if (c < 0xF0) { c = (c & 0x0F) << 12 | (uint32_t)(s[*i + 1] & 0x3F) << 6 | (s[*i + 2] & 0x3F); *i += 3; return c; }
    c = (c & 0x07) << 18 | (uint32_t)(s[*i + 1] & 0x3F) << 12 | (uint32_t)(s[*i + 2] & 0x3F) << 6 | (s[*i + 3] & 0x3F);
    *i += 4;
    return c;
}

/* Bytes of the UTF-8 character starting with lead byte `c` (1 for an invalid lead). */
static inline size_t uniecg__utf8_length(uint8_t c) {
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 1;
}

static inline size_t uniecg__utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { o[0] = (uint8_t)(0xC0 | cp >> 6); o[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12); o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)); o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18); o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)); o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

static inline bool uniecg__buf_append_cp(uniecg__buf *b, uint32_t cp) {
    char tmp[4];
    return uniecg__buf_append(b, tmp, uniecg__utf8_encode(cp, tmp));
}

/* Length of the maximal prefix of s[0..n) that is a well-formed UTF-8 character or a prefix of
 * one ("maximal subpart", Unicode §3.9): returns the character's length when complete (*status
 * = 1), the bytes seen when the input ends inside a valid prefix (*status = 0), or the length
 * of the ill-formed maximal subpart, at least 1 (*status = -1). n must be > 0. */
size_t uniecg__utf8_scan(const uint8_t *s, size_t n, int *status);

/* Offset of the first ill-formed byte of s[0..n), or n when it is all well-formed UTF-8 (NUL
 * bytes are allowed). */
size_t uniecg__utf8_check(const uint8_t *s, size_t n);

/* ---- regex (the subset used by Hugging Face pre-tokenizer patterns; see regex.c) ---- */

typedef struct uniecg__regex uniecg__regex;

uniecg_status uniecg__regex_compile(const char *pattern, size_t length, uniecg__regex **out, uniecg_error *error);
void uniecg__regex_free(uniecg__regex *re);

/* Scratch space for matching, owned by the caller (one per thread). */
typedef struct {
    void *stack;
    size_t capacity;
    bool limit_hit; /* set when a find gave up: more than UNIECG__REGEX_STEPS_PER_BYTE steps per byte */
} uniecg__regex_scratch;

/* Backtracking budget of one search: steps per byte of the searched text (plus a constant), so a
 * pathological pattern in a model file cannot hang the caller. */
#define UNIECG__REGEX_STEPS_PER_BYTE 2000

void uniecg__regex_scratch_free(uniecg__regex_scratch *scratch);

/* Leftmost match in s[from..n) with Oniguruma's leftmost-first semantics (s is whole-string
 * context for look-arounds): 1 and *start, *end when found, 0 when none, -1 out of memory or
 * over the step budget (then scratch->limit_hit is set). */
int uniecg__regex_find(const uniecg__regex *re, const char *s, size_t n, size_t from, uniecg__regex_scratch *scratch,
                       size_t *start, size_t *end);

#endif
