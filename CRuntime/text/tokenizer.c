/* The tokenizer of Llama / Qwen2-family models, following Hugging Face `tokenizers` exactly for
 * the pieces those models use:
 *
 *   added tokens  split out first (leftmost-longest); special ones only when parse_special;
 *   normalizer    Sequence, NFC, NFD, Prepend, Replace (string or regex), Strip;
 *   pre-tokenizer Sequence, Split (string or regex; every behaviour; invert), ByteLevel
 *                 (add_prefix_space, use_regex: the GPT-2 pattern), Metaspace (replacement,
 *                 prepend_scheme always/first/never or legacy add_prefix_space, split), Digits,
 *                 WhitespaceSplit;
 *   model         BPE: merges by rank (leftmost first on ties) with a binary heap, byte fallback
 *                 to <0xNN> tokens, unk (fuse_unk and ignore_merges from optional keys);
 *   decoder       Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip; none
 *                 (tokens joined with spaces).
 *
 * Added tokens are matched on the raw text (lstrip / rstrip / single_word / normalized flags are
 * not in the model file; Hugging Face's defaults for special tokens are assumed). */
#define _GNU_SOURCE /* memmem */
#include "tokenizer_internal.h"

#include "json.h"
#include "unicode.h"

#include <stdio.h>

/* ------------------------------------------------------------------------------------------ */
/* UTF-8                                                                                       */

size_t uniecg__utf8_scan(const uint8_t *s, size_t n, int *status) {
    uint8_t c = s[0];
    if (c < 0x80) { *status = 1; return 1; }
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else { *status = -1; return 1; }
    for (size_t k = 1; k < need; k++) {
        if (k >= n) { *status = 0; return k; }
        uint8_t b = s[k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) { *status = -1; return k; }
    }
    *status = 1;
    return need;
}

size_t uniecg__utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        int status;
        size_t k = uniecg__utf8_scan(s + i, n - i, &status);
        if (status != 1) return i;
        i += k;
    }
    return n;
}

static const char REPLACEMENT_CHAR[] = "\xEF\xBF\xBD";

/* ------------------------------------------------------------------------------------------ */
/* Pipeline description                                                                        */

typedef enum { PAT_LITERAL, PAT_REGEX, PAT_DIGIT, PAT_SPACE, PAT_CHAR } pattern_kind;

typedef struct {
    pattern_kind kind;
    char *literal; /* LITERAL: bytes; CHAR: the character's UTF-8 */
    size_t literal_length;
    uniecg__regex *regex;
} pattern;

typedef enum { NORM_NFC, NORM_NFD, NORM_PREPEND, NORM_REPLACE, NORM_STRIP } norm_kind;

typedef struct {
    norm_kind kind;
    pattern pat;          /* REPLACE */
    char *text;           /* PREPEND: prefix; REPLACE: content */
    size_t text_length;
    bool left, right;     /* STRIP */
} norm_step;

typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREVIOUS, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } split_behavior;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } prepend_scheme;

typedef enum { PRE_SPLIT, PRE_BYTE_LEVEL, PRE_METASPACE } pre_kind;

typedef struct {
    pre_kind kind;
    pattern pat;               /* SPLIT */
    split_behavior behavior;   /* SPLIT */
    bool invert;               /* SPLIT */
    bool add_prefix_space;     /* BYTE_LEVEL */
    bool use_regex;            /* BYTE_LEVEL */
    char replacement[5];       /* METASPACE: one character */
    size_t replacement_length;
    prepend_scheme prepend;    /* METASPACE */
    bool split;                /* METASPACE */
} pre_step;

typedef enum { DEC_REPLACE, DEC_BYTE_FALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE, DEC_BYTE_LEVEL } dec_kind;

typedef struct {
    dec_kind kind;
    pattern pat;           /* REPLACE */
    char *text;            /* REPLACE: content */
    size_t text_length;
    uint32_t content;      /* STRIP: the character */
    uint32_t start, stop;  /* STRIP */
    uint32_t replacement;  /* METASPACE */
    bool prepend;          /* METASPACE: prepend_scheme != never */
    bool fused;            /* a Fuse or ByteLevel comes before this step */
} dec_step;

#define GPT2_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

typedef struct {
    uint64_t key; /* left << 32 | right */
    uint32_t rank;
    int32_t id;
} merge_slot;

struct uniecg_tokenizer {
    int32_t vocab_size;
    char *arena;               /* every token's text, NUL-terminated */
    const char **token;        /* (vocab) text for encoding: the vocabulary's */
    uint32_t *token_length;
    const char **display;      /* (vocab) text for decoding: added tokens' content first */
    uint32_t *display_length;
    uint8_t *special;          /* (vocab) 1 for special added tokens */
    int32_t *vocab_slots;      /* open addressing, -1 = empty */
    size_t vocab_mask;
    merge_slot *merges;
    size_t merge_mask;
    int32_t byte_token[256];   /* <0xNN> ids, -1 when absent */
    uint16_t byte_char[256];   /* GPT-2 byte -> code point */
    int16_t char_byte[324];    /* code point -> byte, -1 when none */
    /* added tokens, sorted by first byte then longest first */
    uint32_t added_count;
    const char **added_text;
    uint32_t *added_length;
    int32_t *added_id;
    uint8_t *added_special;
    uint32_t added_first[257]; /* by first byte: [added_first[b], added_first[b+1]) */

    norm_step *norm;
    size_t norm_count;
    pre_step *pre;
    size_t pre_count;
    dec_step *dec;
    size_t dec_count;
    bool no_decoder;
    uniecg__regex *gpt2;       /* ByteLevel use_regex */

    bool byte_level, byte_fallback, ignore_merges, fuse_unk, add_bos, add_eos;
    int32_t bos, eos, unk, pad;
};

/* ------------------------------------------------------------------------------------------ */
/* Hash tables                                                                                 */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ULL;
    return key ^ (key >> 31);
}

static int32_t vocab_find(const uniecg_tokenizer *t, const char *s, size_t n) {
    size_t i = hash_bytes(s, n) & t->vocab_mask;
    for (;;) {
        int32_t id = t->vocab_slots[i];
        if (id < 0) return -1;
        if (t->token_length[id] == n && memcmp(t->token[id], s, n) == 0) return id;
        i = (i + 1) & t->vocab_mask;
    }
}

static const merge_slot *merge_find(const uniecg_tokenizer *t, int32_t left, int32_t right) {
    if (!t->merges) return NULL;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = hash_pair(key) & t->merge_mask;
    for (;;) {
        const merge_slot *m = &t->merges[i];
        if (m->id < 0) return NULL;
        if (m->key == key) return m;
        i = (i + 1) & t->merge_mask;
    }
}

static size_t table_size(size_t count) {
    size_t size = 16;
    while (size < 2 * count) size *= 2;
    return size;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading the model file                                                                      */

static uniecg_status find_entry(const uniecg_model_file *file, const char *key, uniecg_meta_type type,
                                const char *type_name, bool optional, uniecg_meta_entry *e, uint32_t *index,
                                uniecg_error *error) {
    uniecg_file_summary summary;
    uniecg_model_file_summary(file, &summary);
    for (uint32_t i = 0; i < summary.metadata_count; i++) {
        if (uniecg_model_file_meta_at(file, i, e) != UNIECG_OK || strcmp(e->key, key) != 0) continue;
        if (e->type != type)
            return uniecg__fail(error, UNIECG_ERR_TYPE, "tokenizer: metadata key '%s' should be of type %s", key, type_name);
        if (index) *index = i;
        return UNIECG_OK;
    }
    if (optional) return UNIECG_ERR_NOT_FOUND;
    return uniecg__fail(error, UNIECG_ERR_NOT_FOUND, "tokenizer: model file lacks metadata key '%s'", key);
}

static uniecg_status meta_bool(const uniecg_model_file *file, const char *key, bool optional, bool *out,
                               uniecg_error *error) {
    uniecg_meta_entry e;
    uniecg_status s = find_entry(file, key, UNIECG_META_BOOL, "bool", optional, &e, NULL, error);
    if (s == UNIECG_OK) *out = e.bool_value;
    return optional && s == UNIECG_ERR_NOT_FOUND ? UNIECG_OK : s;
}

static uniecg_status meta_id(const uniecg_model_file *file, const char *key, int32_t vocab, int32_t *out,
                             uniecg_error *error) {
    uniecg_meta_entry e;
    uniecg_status s = find_entry(file, key, UNIECG_META_I64, "i64", false, &e, NULL, error);
    if (s) return s;
    if (e.i64_value < -1 || e.i64_value >= vocab)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: metadata '%s' = %lld is not a token id (or -1)", key,
                            (long long)e.i64_value);
    *out = (int32_t)e.i64_value;
    return UNIECG_OK;
}

/* ---- JSON sections ---- */

typedef struct {
    uniecg_tokenizer *t;
    const char *section;
    uniecg_error *error;
} build_ctx;

static uniecg_status section_fail(build_ctx *b, uniecg_status status, const char *what, const char *type) {
    return uniecg__fail(b->error, status, "tokenizer: %s '%s' %s", b->section, type ? type : "?", what);
}

static const char *json_str(const uniecg_json *v, const char *key, size_t *length) {
    return uniecg__json_string(uniecg__json_get(v, key), length);
}

static bool json_flag(const uniecg_json *v, const char *key, bool fallback) {
    bool value;
    return uniecg__json_bool(uniecg__json_get(v, key), &value) ? value : fallback;
}

static char *dup_bytes(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        if (n) memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static void pattern_free(pattern *p) {
    free(p->literal);
    uniecg__regex_free(p->regex);
    memset(p, 0, sizeof *p);
}

/* {"String": "..."} or {"Regex": "..."} */
static uniecg_status parse_pattern(build_ctx *b, const uniecg_json *v, const char *type, pattern *out) {
    size_t n;
    const char *s;
    if ((s = json_str(v, "String", &n))) {
        out->kind = PAT_LITERAL;
        out->literal = dup_bytes(s, n);
        out->literal_length = n;
        return out->literal ? UNIECG_OK : uniecg__fail(b->error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    }
    if ((s = json_str(v, "Regex", &n))) {
        out->kind = PAT_REGEX;
        uniecg_error inner;
        uniecg_status st = uniecg__regex_compile(s, n, &out->regex, &inner);
        if (st) return uniecg__fail(b->error, st, "tokenizer: %s '%s': %s", b->section, type, inner.message);
        return UNIECG_OK;
    }
    return section_fail(b, UNIECG_ERR_FORMAT, "has no String or Regex pattern", type);
}

static bool one_char(const char *s, size_t n, uint32_t *cp) {
    if (n == 0 || n > 4 || uniecg__utf8_check((const uint8_t *)s, n) != n) return false;
    size_t i = 0;
    *cp = uniecg__utf8_next(s, &i);
    return i == n;
}

static uniecg_status parse_prepend_scheme(build_ctx *b, const uniecg_json *v, const char *type, prepend_scheme *out) {
    const char *scheme = json_str(v, "prepend_scheme", NULL);
    if (scheme) {
        if (strcmp(scheme, "always") == 0) *out = PREPEND_ALWAYS;
        else if (strcmp(scheme, "first") == 0) *out = PREPEND_FIRST;
        else if (strcmp(scheme, "never") == 0) *out = PREPEND_NEVER;
        else return section_fail(b, UNIECG_ERR_VERSION, "has an unknown prepend_scheme", type);
    } else {
        *out = json_flag(v, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
    }
    return UNIECG_OK;
}

static uniecg_status add_norm(build_ctx *b, const uniecg_json *v, int depth) {
    uniecg_tokenizer *t = b->t;
    if (uniecg__json_type(v) == UNIECG_JSON_NULL) return UNIECG_OK;
    const char *type = json_str(v, "type", NULL);
    if (!type) return section_fail(b, UNIECG_ERR_FORMAT, "is not an object with a type", "");
    if (strcmp(type, "Sequence") == 0) {
        const uniecg_json *list = uniecg__json_get(v, "normalizers");
        if (uniecg__json_type(list) != UNIECG_JSON_ARRAY || depth > 8)
            return section_fail(b, UNIECG_ERR_FORMAT, "lacks a normalizers list", type);
        for (size_t i = 0; i < uniecg__json_count(list); i++) {
            uniecg_status s = add_norm(b, uniecg__json_at(list, i), depth + 1);
            if (s) return s;
        }
        return UNIECG_OK;
    }
    norm_step *steps = realloc(t->norm, (t->norm_count + 1) * sizeof *steps);
    if (!steps) return uniecg__fail(b->error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    t->norm = steps;
    norm_step *st = memset(&steps[t->norm_count], 0, sizeof *st);
    size_t n;
    const char *s;
    if (strcmp(type, "NFC") == 0) st->kind = NORM_NFC;
    else if (strcmp(type, "NFD") == 0) st->kind = NORM_NFD;
    else if (strcmp(type, "Prepend") == 0) {
        st->kind = NORM_PREPEND;
        if (!(s = json_str(v, "prepend", &n))) return section_fail(b, UNIECG_ERR_FORMAT, "lacks 'prepend'", type);
        if (!(st->text = dup_bytes(s, n))) return uniecg__fail(b->error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        st->text_length = n;
    } else if (strcmp(type, "Replace") == 0) {
        st->kind = NORM_REPLACE;
        t->norm_count++; /* owned from here on, so a failure below frees it */
        if (!(s = json_str(v, "content", &n))) return section_fail(b, UNIECG_ERR_FORMAT, "lacks 'content'", type);
        if (!(st->text = dup_bytes(s, n))) return uniecg__fail(b->error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        st->text_length = n;
        return parse_pattern(b, uniecg__json_get(v, "pattern"), type, &st->pat);
    } else if (strcmp(type, "Strip") == 0) {
        st->kind = NORM_STRIP;
        st->left = json_flag(v, "strip_left", false);
        st->right = json_flag(v, "strip_right", false);
    } else {
        return section_fail(b, UNIECG_ERR_VERSION,
                            "is not supported (supported: Sequence, NFC, NFD, Prepend, Replace, Strip)", type);
    }
    t->norm_count++;
    return UNIECG_OK;
}

static uniecg_status add_pre(build_ctx *b, const uniecg_json *v, int depth) {
    uniecg_tokenizer *t = b->t;
    if (uniecg__json_type(v) == UNIECG_JSON_NULL) return UNIECG_OK;
    const char *type = json_str(v, "type", NULL);
    if (!type) return section_fail(b, UNIECG_ERR_FORMAT, "is not an object with a type", "");
    if (strcmp(type, "Sequence") == 0) {
        const uniecg_json *list = uniecg__json_get(v, "pretokenizers");
        if (uniecg__json_type(list) != UNIECG_JSON_ARRAY || depth > 8)
            return section_fail(b, UNIECG_ERR_FORMAT, "lacks a pretokenizers list", type);
        for (size_t i = 0; i < uniecg__json_count(list); i++) {
            uniecg_status s = add_pre(b, uniecg__json_at(list, i), depth + 1);
            if (s) return s;
        }
        return UNIECG_OK;
    }
    pre_step *steps = realloc(t->pre, (t->pre_count + 1) * sizeof *steps);
    if (!steps) return uniecg__fail(b->error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    t->pre = steps;
    pre_step *st = memset(&steps[t->pre_count], 0, sizeof *st);
    t->pre_count++;
    if (strcmp(type, "Split") == 0) {
        st->kind = PRE_SPLIT;
        const char *behavior = json_str(v, "behavior", NULL);
        static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        bool known = false;
        for (int i = 0; behavior && i < 5; i++)
            if (strcmp(behavior, names[i]) == 0) { st->behavior = (split_behavior)i; known = true; }
        if (!known) return section_fail(b, UNIECG_ERR_VERSION, "has an unknown behavior", type);
        st->invert = json_flag(v, "invert", false);
        return parse_pattern(b, uniecg__json_get(v, "pattern"), type, &st->pat);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        st->kind = PRE_BYTE_LEVEL;
        st->add_prefix_space = json_flag(v, "add_prefix_space", true);
        st->use_regex = json_flag(v, "use_regex", true);
        if (st->use_regex && !t->gpt2) {
            uniecg_status s = uniecg__regex_compile(GPT2_PATTERN, strlen(GPT2_PATTERN), &t->gpt2, b->error);
            if (s) return s;
        }
        return UNIECG_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        st->kind = PRE_METASPACE;
        size_t n;
        const char *r = json_str(v, "replacement", &n);
        uint32_t cp;
        if (!r || !one_char(r, n, &cp)) return section_fail(b, UNIECG_ERR_FORMAT, "needs a one-character replacement", type);
        memcpy(st->replacement, r, n);
        st->replacement_length = n;
        st->split = json_flag(v, "split", true);
        return parse_prepend_scheme(b, v, type, &st->prepend);
    }
    if (strcmp(type, "Digits") == 0) {
        st->kind = PRE_SPLIT;
        st->pat.kind = PAT_DIGIT;
        st->behavior = json_flag(v, "individual_digits", false) ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
        return UNIECG_OK;
    }
    if (strcmp(type, "WhitespaceSplit") == 0) {
        st->kind = PRE_SPLIT;
        st->pat.kind = PAT_SPACE;
        st->behavior = SPLIT_REMOVED;
        return UNIECG_OK;
    }
    return section_fail(b, UNIECG_ERR_VERSION,
                        "is not supported (supported: Sequence, Split, ByteLevel, Metaspace, Digits, WhitespaceSplit)",
                        type);
}

static uniecg_status add_dec(build_ctx *b, const uniecg_json *v, int depth) {
    uniecg_tokenizer *t = b->t;
    if (uniecg__json_type(v) == UNIECG_JSON_NULL) return UNIECG_OK;
    const char *type = json_str(v, "type", NULL);
    if (!type) return section_fail(b, UNIECG_ERR_FORMAT, "is not an object with a type", "");
    if (strcmp(type, "Sequence") == 0) {
        const uniecg_json *list = uniecg__json_get(v, "decoders");
        if (uniecg__json_type(list) != UNIECG_JSON_ARRAY || depth > 8)
            return section_fail(b, UNIECG_ERR_FORMAT, "lacks a decoders list", type);
        for (size_t i = 0; i < uniecg__json_count(list); i++) {
            uniecg_status s = add_dec(b, uniecg__json_at(list, i), depth + 1);
            if (s) return s;
        }
        return UNIECG_OK;
    }
    dec_step *steps = realloc(t->dec, (t->dec_count + 1) * sizeof *steps);
    if (!steps) return uniecg__fail(b->error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    t->dec = steps;
    dec_step *st = memset(&steps[t->dec_count], 0, sizeof *st);
    st->fused = t->dec_count > 0 && (steps[t->dec_count - 1].fused || steps[t->dec_count - 1].kind == DEC_FUSE ||
                                     steps[t->dec_count - 1].kind == DEC_BYTE_LEVEL);
    t->dec_count++;
    size_t n;
    const char *s;
    if (strcmp(type, "Replace") == 0) {
        st->kind = DEC_REPLACE;
        if (!(s = json_str(v, "content", &n))) return section_fail(b, UNIECG_ERR_FORMAT, "lacks 'content'", type);
        if (!(st->text = dup_bytes(s, n))) return uniecg__fail(b->error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        st->text_length = n;
        uniecg_status status = parse_pattern(b, uniecg__json_get(v, "pattern"), type, &st->pat);
        if (status) return status;
        uint32_t cp;
        if (st->fused && !(st->pat.kind == PAT_LITERAL && one_char(st->pat.literal, st->pat.literal_length, &cp)))
            return section_fail(b, UNIECG_ERR_VERSION, "after Fuse/ByteLevel must replace a single character", type);
        return UNIECG_OK;
    }
    if (strcmp(type, "ByteFallback") == 0 || strcmp(type, "ByteLevel") == 0) {
        st->kind = type[4] == 'F' ? DEC_BYTE_FALLBACK : DEC_BYTE_LEVEL;
        if (st->fused) return section_fail(b, UNIECG_ERR_VERSION, "after Fuse/ByteLevel is not supported", type);
        return UNIECG_OK;
    }
    if (strcmp(type, "Fuse") == 0) {
        st->kind = DEC_FUSE;
        return UNIECG_OK;
    }
    if (strcmp(type, "Strip") == 0) {
        st->kind = DEC_STRIP;
        double start = 0, stop = 0;
        s = json_str(v, "content", &n);
        if (!s || !one_char(s, n, &st->content) || !uniecg__json_number(uniecg__json_get(v, "start"), &start) ||
            !uniecg__json_number(uniecg__json_get(v, "stop"), &stop) || !(start >= 0 && start <= 1e6) ||
            !(stop >= 0 && stop <= 1e6))
            return section_fail(b, UNIECG_ERR_FORMAT, "needs a one-character content and start/stop counts", type);
        st->start = (uint32_t)start;
        st->stop = (uint32_t)stop;
        return UNIECG_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        st->kind = DEC_METASPACE;
        s = json_str(v, "replacement", &n);
        if (!s || !one_char(s, n, &st->replacement))
            return section_fail(b, UNIECG_ERR_FORMAT, "needs a one-character replacement", type);
        prepend_scheme scheme;
        uniecg_status status = parse_prepend_scheme(b, v, type, &scheme);
        st->prepend = scheme != PREPEND_NEVER;
        return status;
    }
    return section_fail(b, UNIECG_ERR_VERSION,
                        "is not supported (supported: Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip)",
                        type);
}

static uniecg_status parse_section(uniecg_tokenizer *t, const uniecg_model_file *file, const char *key,
                                   uniecg_status (*add)(build_ctx *, const uniecg_json *, int), bool *is_null,
                                   uniecg_error *error) {
    uniecg_meta_entry e;
    uniecg_status s = find_entry(file, key, UNIECG_META_STRING, "string", false, &e, NULL, error);
    if (s) return s;
    char message[256];
    uniecg__json_doc *doc = uniecg__json_parse(e.string_value, (size_t)e.string_length, message, sizeof message);
    if (!doc) return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: metadata '%s' is not JSON: %s", key, message);
    const uniecg_json *root = uniecg__json_root(doc);
    if (is_null) *is_null = uniecg__json_type(root) == UNIECG_JSON_NULL;
    build_ctx b = {.t = t, .section = key + strlen("tokenizer."), .error = error};
    if (uniecg__json_type(root) != UNIECG_JSON_NULL && uniecg__json_type(root) != UNIECG_JSON_OBJECT)
        s = uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: metadata '%s' is neither null nor an object", key);
    else
        s = add(&b, root, 0);
    uniecg__json_free(doc);
    return s;
}

/* ---- create / free ---- */

void uniecg_tokenizer_free(uniecg_tokenizer *t) {
    if (!t) return;
    free(t->arena);
    free(t->token);
    free(t->token_length);
    free(t->display);
    free(t->display_length);
    free(t->special);
    free(t->vocab_slots);
    free(t->merges);
    for (uint32_t i = 0; t->added_text && i < t->added_count; i++) free((char *)t->added_text[i]);
    free(t->added_text);
    free(t->added_length);
    free(t->added_id);
    free(t->added_special);
    for (size_t i = 0; i < t->norm_count; i++) {
        pattern_free(&t->norm[i].pat);
        free(t->norm[i].text);
    }
    free(t->norm);
    for (size_t i = 0; i < t->pre_count; i++) pattern_free(&t->pre[i].pat);
    free(t->pre);
    for (size_t i = 0; i < t->dec_count; i++) {
        pattern_free(&t->dec[i].pat);
        free(t->dec[i].text);
    }
    free(t->dec);
    uniecg__regex_free(t->gpt2);
    free(t);
}

#define MAX_VOCAB 10000000

static uniecg_status load_vocab(uniecg_tokenizer *t, const uniecg_model_file *file, uniecg_error *error) {
    uniecg_meta_entry e;
    uint32_t index;
    uniecg_status s = find_entry(file, "tokenizer.tokens", UNIECG_META_STRING_ARRAY, "string array", false, &e, &index, error);
    if (s) return s;
    if (e.count == 0 || e.count > MAX_VOCAB)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: 'tokenizer.tokens' has %llu entries (1..%d allowed)",
                            (unsigned long long)e.count, MAX_VOCAB);
    t->vocab_size = (int32_t)e.count;
    size_t total = 0;
    for (uint64_t i = 0; i < e.count; i++) {
        const char *str;
        uint64_t len;
        if (uniecg_model_file_meta_string_at(file, index, i, &str, &len) != UNIECG_OK || len > 65535)
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: token %llu is unreadable or longer than 65535 bytes",
                                (unsigned long long)i);
        if (uniecg__utf8_check((const uint8_t *)str, (size_t)len) != len)
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: token %llu is not UTF-8", (unsigned long long)i);
        total += (size_t)len + 1;
    }
    size_t n = (size_t)e.count;
    t->arena = malloc(total);
    t->token = calloc(n, sizeof *t->token);
    t->token_length = calloc(n, sizeof *t->token_length);
    t->display = calloc(n, sizeof *t->display);
    t->display_length = calloc(n, sizeof *t->display_length);
    t->special = calloc(n, 1);
    t->vocab_mask = table_size(n) - 1;
    t->vocab_slots = malloc((t->vocab_mask + 1) * sizeof *t->vocab_slots);
    if (!t->arena || !t->token || !t->token_length || !t->display || !t->display_length || !t->special || !t->vocab_slots)
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %zu tokens", n);
    memset(t->vocab_slots, 0xFF, (t->vocab_mask + 1) * sizeof *t->vocab_slots);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *str;
        uint64_t len;
        uniecg_model_file_meta_string_at(file, index, i, &str, &len);
        memcpy(t->arena + at, str, (size_t)len);
        t->arena[at + len] = 0;
        t->token[i] = t->display[i] = t->arena + at;
        t->token_length[i] = t->display_length[i] = (uint32_t)len;
        at += (size_t)len + 1;
    }
    return UNIECG_OK;
}

/* Vocabulary look-up table; for a text held by two ids, the one that is not only an added
 * token wins (as in Hugging Face, whose model vocabulary excludes added-only tokens). */
static void index_vocab(uniecg_tokenizer *t, const uint8_t *added_only) {
    for (int32_t id = 0; id < t->vocab_size; id++) {
        size_t i = hash_bytes(t->token[id], t->token_length[id]) & t->vocab_mask;
        for (;;) {
            int32_t other = t->vocab_slots[i];
            if (other < 0) {
                t->vocab_slots[i] = id;
                break;
            }
            if (t->token_length[other] == t->token_length[id] &&
                memcmp(t->token[other], t->token[id], t->token_length[id]) == 0) {
                if (added_only[other] && !added_only[id]) t->vocab_slots[i] = id;
                break;
            }
            i = (i + 1) & t->vocab_mask;
        }
    }
}

static uniecg_status load_merges(uniecg_tokenizer *t, const uniecg_model_file *file, uniecg_error *error) {
    uniecg_meta_entry e;
    uint32_t index;
    uniecg_status s = find_entry(file, "tokenizer.merges", UNIECG_META_STRING_ARRAY, "string array", false, &e, &index, error);
    if (s) return s;
    if (e.count == 0) return UNIECG_OK;
    if (e.count > 4 * (uint64_t)MAX_VOCAB) return uniecg__fail(error, UNIECG_ERR_LIMIT, "tokenizer: too many merges");
    t->merge_mask = table_size((size_t)e.count) - 1;
    t->merges = malloc((t->merge_mask + 1) * sizeof *t->merges);
    if (!t->merges) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for merges");
    for (size_t i = 0; i <= t->merge_mask; i++) t->merges[i].id = -1;
    char *joined = NULL;
    size_t joined_capacity = 0;
    for (uint64_t r = 0; r < e.count; r++) {
        const char *str;
        uint64_t len;
        uniecg_model_file_meta_string_at(file, index, r, &str, &len);
        const char *space = memchr(str, ' ', (size_t)len);
        if (!space || space == str || space == str + len - 1 || memchr(space + 1, ' ', (size_t)(str + len - space - 1))) {
            free(joined);
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: merge %llu (\"%.*s\") is not 'left right'",
                                (unsigned long long)r, (int)(len > 100 ? 100 : len), str);
        }
        size_t ln = (size_t)(space - str), rn = (size_t)len - ln - 1;
        int32_t left = vocab_find(t, str, ln), right = vocab_find(t, space + 1, rn);
        if (joined_capacity < ln + rn) {
            joined_capacity = 2 * (ln + rn);
            char *p = realloc(joined, joined_capacity);
            if (!p) { free(joined); return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory"); }
            joined = p;
        }
        memcpy(joined, str, ln);
        memcpy(joined + ln, space + 1, rn);
        int32_t merged = vocab_find(t, joined, ln + rn);
        if (left < 0 || right < 0 || merged < 0) {
            free(joined);
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: merge %llu (\"%.*s\") uses a token not in the vocabulary",
                                (unsigned long long)r, (int)(len > 100 ? 100 : len), str);
        }
        uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
        size_t i = hash_pair(key) & t->merge_mask;
        while (t->merges[i].id >= 0 && t->merges[i].key != key) i = (i + 1) & t->merge_mask;
        if (t->merges[i].id < 0) t->merges[i] = (merge_slot){.key = key, .rank = (uint32_t)r, .id = merged};
        /* a repeated pair keeps its later rank, as a Hugging Face HashMap insert would */
        else t->merges[i].rank = (uint32_t)r, t->merges[i].id = merged;
    }
    free(joined);
    return UNIECG_OK;
}

static uniecg_status load_added(uniecg_tokenizer *t, const uniecg_model_file *file, uint8_t *added_only,
                                uniecg_error *error) {
    uniecg_meta_entry texts, ids, special;
    uint32_t index;
    uniecg_status s;
    if ((s = find_entry(file, "tokenizer.added_tokens", UNIECG_META_STRING_ARRAY, "string array", false, &texts, &index, error)) ||
        (s = find_entry(file, "tokenizer.added_token_ids", UNIECG_META_I32_ARRAY, "i32 array", false, &ids, NULL, error)) ||
        (s = find_entry(file, "tokenizer.added_token_special", UNIECG_META_I32_ARRAY, "i32 array", false, &special, NULL, error)))
        return s;
    if (ids.count != texts.count || special.count != texts.count)
        return uniecg__fail(error, UNIECG_ERR_FORMAT,
                            "tokenizer: added_tokens, added_token_ids and added_token_special differ in length");
    size_t n = (size_t)texts.count;
    if (n > (size_t)t->vocab_size) return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: more added tokens than tokens");
    t->added_count = (uint32_t)n;
    t->added_text = calloc(n ? n : 1, sizeof *t->added_text);
    t->added_length = calloc(n ? n : 1, sizeof *t->added_length);
    t->added_id = calloc(n ? n : 1, sizeof *t->added_id);
    t->added_special = calloc(n ? n : 1, 1);
    if (!t->added_text || !t->added_length || !t->added_id || !t->added_special)
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    const int32_t *id_values = ids.array, *special_values = special.array;
    /* counting sort by first byte, then longest first within a byte (insertion sort: few) */
    uint32_t counts[257] = {0};
    for (size_t i = 0; i < n; i++) {
        const char *str;
        uint64_t len;
        uniecg_model_file_meta_string_at(file, index, i, &str, &len);
        int32_t id = id_values[i];
        if (id < 0 || id >= t->vocab_size)
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: added token %zu has id %d outside the vocabulary", i, id);
        if (len == 0) return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: added token %zu is empty", i);
        if (uniecg__utf8_check((const uint8_t *)str, (size_t)len) != len)
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: added token %zu is not UTF-8", i);
        counts[(uint8_t)str[0] + 1]++;
    }
    for (int b = 1; b <= 256; b++) counts[b] += counts[b - 1];
    memcpy(t->added_first, counts, sizeof counts);
    uint32_t fill[256];
    memcpy(fill, counts, sizeof fill);
    for (size_t i = 0; i < n; i++) {
        const char *str;
        uint64_t len;
        uniecg_model_file_meta_string_at(file, index, i, &str, &len);
        int32_t id = id_values[i];
        /* texts live in the file: copy them next to the token texts (display override) */
        char *copy = dup_bytes(str, (size_t)len);
        if (!copy) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        uint32_t slot = fill[(uint8_t)str[0]]++;
        t->added_text[slot] = copy;
        t->added_length[slot] = (uint32_t)len;
        t->added_id[slot] = id;
        t->added_special[slot] = special_values[i] != 0;
        if (special_values[i]) t->special[id] = 1;
        /* Hugging Face decodes an added id to the added token's content */
        t->display[id] = copy;
        t->display_length[id] = (uint32_t)len;
        if (t->token_length[id] != len || memcmp(t->token[id], str, (size_t)len) != 0) added_only[id] = 0;
        else added_only[id] = 1;
    }
    for (int b = 0; b < 256; b++) /* longest first within each first byte */
        for (uint32_t i = counts[b] + 1; i < counts[b + 1]; i++)
            for (uint32_t j = i; j > counts[b] && t->added_length[j] > t->added_length[j - 1]; j--) {
                const char *ts = t->added_text[j]; t->added_text[j] = t->added_text[j - 1]; t->added_text[j - 1] = ts;
                uint32_t tl = t->added_length[j]; t->added_length[j] = t->added_length[j - 1]; t->added_length[j - 1] = tl;
                int32_t ti = t->added_id[j]; t->added_id[j] = t->added_id[j - 1]; t->added_id[j - 1] = ti;
                uint8_t tsp = t->added_special[j]; t->added_special[j] = t->added_special[j - 1]; t->added_special[j - 1] = tsp;
            }
    return UNIECG_OK;
}

uniecg_status uniecg_tokenizer_create(const uniecg_model_file *file, uniecg_tokenizer **out, uniecg_error *error) {
    if (!out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "tokenizer_create: NULL output");
    *out = NULL;
    if (!file) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "tokenizer_create: NULL file");
    uniecg_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    uint8_t *added_only = NULL;
    uniecg_status s;
    uniecg_meta_entry e;
    if ((s = find_entry(file, "tokenizer.model", UNIECG_META_STRING, "string", false, &e, NULL, error))) goto fail;
    if (strcmp(e.string_value, "bpe-byte-level") == 0) t->byte_level = true;
    else if (strcmp(e.string_value, "bpe-sentencepiece") != 0) {
        s = uniecg__fail(error, UNIECG_ERR_VERSION,
                         "tokenizer: tokenizer.model '%s' is not supported (bpe-byte-level, bpe-sentencepiece)",
                         e.string_value);
        goto fail;
    }
    if ((s = load_vocab(t, file, error))) goto fail;
    added_only = calloc((size_t)t->vocab_size, 1);
    if (!added_only) { s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer: out of memory"); goto fail; }
    if ((s = load_added(t, file, added_only, error))) goto fail;
    index_vocab(t, added_only);
    if ((s = load_merges(t, file, error))) goto fail;
    if ((s = meta_bool(file, "tokenizer.byte_fallback", false, &t->byte_fallback, error)) ||
        (s = meta_bool(file, "tokenizer.add_bos", false, &t->add_bos, error)) ||
        (s = meta_bool(file, "tokenizer.add_eos", false, &t->add_eos, error)) ||
        (s = meta_bool(file, "tokenizer.ignore_merges", true, &t->ignore_merges, error)) ||
        (s = meta_bool(file, "tokenizer.fuse_unk", true, &t->fuse_unk, error)) ||
        (s = meta_id(file, "tokenizer.bos_id", t->vocab_size, &t->bos, error)) ||
        (s = meta_id(file, "tokenizer.eos_id", t->vocab_size, &t->eos, error)) ||
        (s = meta_id(file, "tokenizer.unk_id", t->vocab_size, &t->unk, error)) ||
        (s = meta_id(file, "tokenizer.pad_id", t->vocab_size, &t->pad, error)))
        goto fail;
    if ((t->add_bos && t->bos < 0) || (t->add_eos && t->eos < 0)) {
        s = uniecg__fail(error, UNIECG_ERR_FORMAT, "tokenizer: tokenizer.add_%s is true but tokenizer.%s_id is -1",
                         t->add_bos && t->bos < 0 ? "bos" : "eos", t->add_bos && t->bos < 0 ? "bos" : "eos");
        goto fail;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_token[b] = vocab_find(t, name, 6);
    }
    for (int c = 0; c < 324; c++) t->char_byte[c] = -1;
    for (int b = 0, extra = 0; b < 256; b++) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        t->byte_char[b] = (uint16_t)(printable ? b : 256 + extra++);
        t->char_byte[t->byte_char[b]] = (int16_t)b;
    }
    if ((s = parse_section(t, file, "tokenizer.normalizer", add_norm, NULL, error)) ||
        (s = parse_section(t, file, "tokenizer.pre_tokenizer", add_pre, NULL, error)) ||
        (s = parse_section(t, file, "tokenizer.decoder", add_dec, &t->no_decoder, error)))
        goto fail;
    free(added_only);
    *out = t;
    return UNIECG_OK;
fail:
    free(added_only);
    uniecg_tokenizer_free(t);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Queries                                                                                     */

void uniecg_tokenizer_get_info(const uniecg_tokenizer *t, uniecg_tokenizer_info *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!t) return;
    out->vocab_size = t->vocab_size;
    out->bos_id = t->bos;
    out->eos_id = t->eos;
    out->unk_id = t->unk;
    out->pad_id = t->pad;
    out->add_bos = t->add_bos;
    out->add_eos = t->add_eos;
    out->byte_level = t->byte_level;
}

int32_t uniecg_tokenizer_vocab_size(const uniecg_tokenizer *t) { return t ? t->vocab_size : 0; }

uniecg_status uniecg_tokenizer_token_text(const uniecg_tokenizer *t, int32_t id, const char **out_text,
                                          size_t *out_length) {
    if (!t || !out_text || !out_length || id < 0 || id >= t->vocab_size) return UNIECG_ERR_INVALID_ARGUMENT;
    *out_text = t->display[id];
    *out_length = t->display_length[id];
    return UNIECG_OK;
}

bool uniecg_tokenizer_is_special(const uniecg_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->vocab_size && t->special[id];
}

/* ------------------------------------------------------------------------------------------ */
/* Encoding                                                                                    */

typedef struct {
    size_t start, length;
    bool origin; /* starts at offset 0 of the input (Metaspace prepend_scheme "first") */
} piece;

typedef struct {
    uniecg__buf text;
    piece *items;
    size_t count, capacity;
} piece_list;

typedef struct { uint32_t rank; uint32_t pos; int32_t id; } heap_item;

typedef struct {
    int32_t *ids;
    size_t count, capacity;
    piece_list lists[2];
    uniecg__buf norm[2];
    uint32_t *cps, *cps_out;
    size_t cps_capacity, cps_out_capacity;
    uniecg__regex_scratch regex;
    /* BPE */
    int32_t *sym_id;
    int32_t *sym_prev, *sym_next;
    uint32_t *sym_len;
    size_t sym_capacity;
    heap_item *heap;
    size_t heap_capacity;
} encoder;

static void encoder_free(encoder *e) {
    free(e->ids);
    for (int i = 0; i < 2; i++) {
        uniecg__buf_free(&e->lists[i].text);
        free(e->lists[i].items);
        uniecg__buf_free(&e->norm[i]);
    }
    free(e->cps);
    free(e->cps_out);
    uniecg__regex_scratch_free(&e->regex);
    free(e->sym_id);
    free(e->sym_prev);
    free(e->sym_next);
    free(e->sym_len);
    free(e->heap);
}

static bool push_id(encoder *e, int32_t id) {
    if (e->count == e->capacity) {
        size_t cap = e->capacity ? e->capacity * 2 : 256;
        int32_t *p = realloc(e->ids, cap * sizeof *p);
        if (!p) return false;
        e->ids = p;
        e->capacity = cap;
    }
    e->ids[e->count++] = id;
    return true;
}

static bool add_piece(piece_list *l, const char *s, size_t n, bool origin) {
    if (n == 0) return true;
    if (l->count == l->capacity) {
        size_t cap = l->capacity ? l->capacity * 2 : 64;
        piece *p = realloc(l->items, cap * sizeof *p);
        if (!p) return false;
        l->items = p;
        l->capacity = cap;
    }
    size_t start = l->text.length;
    if (!uniecg__buf_append(&l->text, s, n)) return false;
    l->items[l->count++] = (piece){.start = start, .length = n, .origin = origin};
    return true;
}

static void list_clear(piece_list *l) {
    l->text.length = 0;
    l->count = 0;
}

/* Finds matches of a pattern in s[0..n): calls back for every (start, end) in order. Returns
 * false when out of memory. */
typedef struct {
    size_t *starts, *ends;
    size_t count, capacity;
} match_list;

static bool add_match(match_list *m, size_t start, size_t end) {
    if (m->count == m->capacity) {
        size_t cap = m->capacity ? m->capacity * 2 : 64;
        size_t *a = realloc(m->starts, cap * sizeof *a);
        if (!a) return false;
        m->starts = a;
        size_t *b = realloc(m->ends, cap * sizeof *b);
        if (!b) return false;
        m->ends = b;
        m->capacity = cap;
    }
    m->starts[m->count] = start;
    m->ends[m->count++] = end;
    return true;
}

static bool find_matches(const pattern *p, const char *s, size_t n, uniecg__regex_scratch *scratch, match_list *m) {
    m->count = 0;
    switch (p->kind) {
    case PAT_REGEX: {
        size_t from = 0, start, end;
        while (from < n) {
            int r = uniecg__regex_find(p->regex, s, n, from, scratch, &start, &end);
            if (r < 0) return false;
            if (r == 0) break;
            if (!add_match(m, start, end)) return false;
            if (end > start) from = end;
            else if (end < n) from = end + uniecg__utf8_length((uint8_t)s[end]); /* (patterns never match empty) */
            else break;
        }
        return true;
    }
    case PAT_LITERAL: {
        if (p->literal_length == 0) return true;
        size_t i = 0;
        while (i + p->literal_length <= n) {
            const char *hit = memmem(s + i, n - i, p->literal, p->literal_length);
            if (!hit) break;
            size_t at = (size_t)(hit - s);
            if (!add_match(m, at, at + p->literal_length)) return false;
            i = at + p->literal_length;
        }
        return true;
    }
    default: {
        for (size_t i = 0; i < n;) {
            size_t j = i;
            uint32_t cp = uniecg__utf8_next(s, &j);
            /* Digits splits on Rust's char::is_numeric: general category N */
            bool hit = p->kind == PAT_DIGIT ? ((UNIECG_GC_N >> uniecg__unicode_category(cp)) & 1)
                       : p->kind == PAT_SPACE ? uniecg__unicode_is_space(cp)
                       : (j - i == p->literal_length && memcmp(s + i, p->literal, j - i) == 0);
            if (hit && !add_match(m, i, j)) return false;
            i = j;
        }
        return true;
    }
    }
}

/* NormalizedString::split of Hugging Face: splits piece s[0..n) into `out`. */
static bool split_piece(const char *s, size_t n, bool origin, const match_list *m, split_behavior behavior,
                        bool invert, piece_list *out) {
    /* (start, end, is_match) covering the piece */
    size_t count = 0, capacity = 2 * m->count + 1;
    size_t *a = malloc(capacity * sizeof *a), *b = malloc(capacity * sizeof *b);
    bool *hit = malloc(capacity * sizeof *hit);
    bool ok = a && b && hit;
    if (ok) {
        size_t prev = 0;
        for (size_t k = 0; k < m->count; k++) {
            if (prev != m->starts[k]) { a[count] = prev; b[count] = m->starts[k]; hit[count++] = false; }
            a[count] = m->starts[k]; b[count] = m->ends[k]; hit[count++] = true;
            prev = m->ends[k];
        }
        if (prev != n) { a[count] = prev; b[count] = n; hit[count++] = false; }
        if (invert)
            for (size_t k = 0; k < count; k++) hit[k] = !hit[k];
        /* behaviours: produce (start, end, remove) */
        size_t w = 0;
        bool previous = false;
        switch (behavior) {
        case SPLIT_REMOVED: w = count; break;
        case SPLIT_ISOLATED:
            for (size_t k = 0; k < count; k++) hit[k] = false;
            w = count;
            break;
        case SPLIT_CONTIGUOUS:
            for (size_t k = 0; k < count; k++) {
                bool h = hit[k];
                if (h == previous && w > 0) b[w - 1] = b[k];
                else { a[w] = a[k]; b[w] = b[k]; hit[w++] = false; }
                previous = h;
            }
            break;
        case SPLIT_MERGED_PREVIOUS:
            for (size_t k = 0; k < count; k++) {
                bool h = hit[k];
                if (h && !previous && w > 0) b[w - 1] = b[k];
                else { a[w] = a[k]; b[w] = b[k]; hit[w++] = false; }
                previous = h;
            }
            break;
        case SPLIT_MERGED_NEXT: {
            /* folded from the end, then reversed */
            size_t *ra = malloc((count ? count : 1) * sizeof *ra), *rb = malloc((count ? count : 1) * sizeof *rb);
            if (!ra || !rb) { free(ra); free(rb); ok = false; break; }
            for (size_t k = count; k-- > 0;) {
                bool h = hit[k];
                if (h && !previous && w > 0) ra[w - 1] = a[k];
                else { ra[w] = a[k]; rb[w] = b[k]; w++; }
                previous = h;
            }
            for (size_t k = 0; k < w; k++) { a[k] = ra[w - 1 - k]; b[k] = rb[w - 1 - k]; hit[k] = false; }
            free(ra);
            free(rb);
            break;
        }
        }
        for (size_t k = 0; ok && k < w; k++)
            if (!hit[k] && b[k] > a[k]) ok = add_piece(out, s + a[k], b[k] - a[k], origin && a[k] == 0);
    }
    free(a);
    free(b);
    free(hit);
    return ok;
}

/* Applies the normalizer steps to s[0..n); the result is in *result (one of e->norm). */
static uniecg_status normalize(const uniecg_tokenizer *t, encoder *e, const char *s, size_t n, const char **result,
                               size_t *result_length) {
    const char *cur = s;
    size_t cur_n = n;
    int which = 0;
    match_list m = {0};
    uniecg_status status = UNIECG_OK;
    for (size_t k = 0; k < t->norm_count && status == UNIECG_OK; k++) {
        const norm_step *st = &t->norm[k];
        uniecg__buf *out = &e->norm[which];
        out->length = 0;
        switch (st->kind) {
        case NORM_NFC:
        case NORM_NFD: {
            uint8_t limit = st->kind == NORM_NFC ? 0xCC : 0xC3; /* below U+0300 / U+00C0: unchanged */
            bool quick = true;
            for (size_t i = 0; i < cur_n && quick; i++) quick = (uint8_t)cur[i] < limit;
            if (quick) continue;
            if (e->cps_capacity < cur_n) {
                free(e->cps);
                e->cps = malloc(cur_n * sizeof *e->cps);
                e->cps_capacity = e->cps ? cur_n : 0;
                if (!e->cps) { status = UNIECG_ERR_OUT_OF_MEMORY; break; }
            }
            size_t count = 0;
            for (size_t i = 0; i < cur_n;) e->cps[count++] = uniecg__utf8_next(cur, &i);
            if (e->cps_out_capacity < 4 * count) {
                free(e->cps_out);
                e->cps_out = malloc(4 * count * sizeof *e->cps_out);
                e->cps_out_capacity = e->cps_out ? 4 * count : 0;
                if (!e->cps_out) { status = UNIECG_ERR_OUT_OF_MEMORY; break; }
            }
            size_t m_count = uniecg__unicode_normalize(e->cps, count, st->kind == NORM_NFC, e->cps_out, e->cps_out_capacity);
            if (!uniecg__buf_reserve(out, 4 * m_count)) { status = UNIECG_ERR_OUT_OF_MEMORY; break; }
            for (size_t i = 0; i < m_count; i++)
                out->length += uniecg__utf8_encode(e->cps_out[i], out->data + out->length);
            out->data[out->length] = 0;
            break;
        }
        case NORM_PREPEND:
            if (cur_n == 0) continue;
            if (!uniecg__buf_append(out, st->text, st->text_length) || !uniecg__buf_append(out, cur, cur_n))
                status = UNIECG_ERR_OUT_OF_MEMORY;
            break;
        case NORM_REPLACE: {
            if (!find_matches(&st->pat, cur, cur_n, &e->regex, &m)) {
                status = e->regex.limit_hit ? UNIECG_ERR_LIMIT : UNIECG_ERR_OUT_OF_MEMORY;
                break;
            }
            if (m.count == 0) continue;
            size_t prev = 0;
            bool ok = true;
            for (size_t i = 0; i < m.count && ok; i++) {
                ok = uniecg__buf_append(out, cur + prev, m.starts[i] - prev) &&
                     uniecg__buf_append(out, st->text, st->text_length);
                prev = m.ends[i];
            }
            if (!ok || !uniecg__buf_append(out, cur + prev, cur_n - prev)) status = UNIECG_ERR_OUT_OF_MEMORY;
            break;
        }
        case NORM_STRIP: {
            size_t a = 0, b = cur_n;
            if (st->left)
                while (a < b) {
                    size_t j = a;
                    if (!uniecg__unicode_is_space(uniecg__utf8_next(cur, &j))) break;
                    a = j;
                }
            if (st->right)
                while (b > a) {
                    size_t j = b - 1;
                    while (j > a && ((uint8_t)cur[j] & 0xC0) == 0x80) j--;
                    size_t k = j;
                    if (!uniecg__unicode_is_space(uniecg__utf8_next(cur, &k))) break;
                    b = j;
                }
            if (a == 0 && b == cur_n) continue;
            if (!uniecg__buf_append(out, cur + a, b - a)) status = UNIECG_ERR_OUT_OF_MEMORY;
            break;
        }
        }
        if (status) break;
        cur = out->data ? out->data : "";
        cur_n = out->length;
        which ^= 1;
    }
    free(m.starts);
    free(m.ends);
    *result = cur;
    *result_length = cur_n;
    return status;
}

/* Applies the pre-tokenizer steps to one normalized segment; the pieces end up in *result. */
static bool pre_tokenize(const uniecg_tokenizer *t, encoder *e, const char *s, size_t n, bool origin,
                         piece_list **result) {
    piece_list *in = &e->lists[0], *out = &e->lists[1];
    list_clear(in);
    if (!add_piece(in, s, n, origin)) return false;
    match_list m = {0};
    uniecg__buf tmp = {0};
    bool ok = true;
    for (size_t k = 0; k < t->pre_count && ok; k++) {
        const pre_step *st = &t->pre[k];
        list_clear(out);
        for (size_t p = 0; p < in->count && ok; p++) {
            const char *ps = in->text.data + in->items[p].start;
            size_t pn = in->items[p].length;
            bool porigin = in->items[p].origin;
            switch (st->kind) {
            case PRE_SPLIT:
                ok = find_matches(&st->pat, ps, pn, &e->regex, &m) &&
                     split_piece(ps, pn, porigin, &m, st->behavior, st->invert, out);
                break;
            case PRE_BYTE_LEVEL: {
                tmp.length = 0;
                if (st->add_prefix_space && ps[0] != ' ') ok = uniecg__buf_append(&tmp, " ", 1);
                if (ok) ok = uniecg__buf_append(&tmp, ps, pn);
                if (!ok) break;
                size_t first = out->count;
                if (st->use_regex) {
                    ok = find_matches(&(pattern){.kind = PAT_REGEX, .regex = t->gpt2}, tmp.data, tmp.length, &e->regex, &m) &&
                         split_piece(tmp.data, tmp.length, porigin, &m, SPLIT_ISOLATED, false, out);
                } else {
                    ok = add_piece(out, tmp.data, tmp.length, porigin);
                }
                /* map every byte of the new pieces to its GPT-2 character, in place at the end */
                for (size_t q = first; ok && q < out->count; q++) {
                    size_t start = out->items[q].start, len = out->items[q].length;
                    size_t new_start = out->text.length;
                    if (!uniecg__buf_reserve(&out->text, 2 * len)) { ok = false; break; }
                    for (size_t i = 0; i < len; i++) {
                        uint16_t cp = t->byte_char[(uint8_t)out->text.data[start + i]];
                        out->text.length += uniecg__utf8_encode(cp, out->text.data + out->text.length);
                    }
                    out->text.data[out->text.length] = 0;
                    out->items[q].start = new_start;
                    out->items[q].length = out->text.length - new_start;
                }
                break;
            }
            case PRE_METASPACE: {
                tmp.length = 0;
                bool starts = pn >= st->replacement_length && memcmp(ps, st->replacement, st->replacement_length) == 0;
                bool prepend = st->prepend == PREPEND_ALWAYS || (st->prepend == PREPEND_FIRST && porigin);
                /* "starts with the replacement" is checked after spaces are replaced */
                if (!starts && pn > 0 && ps[0] == ' ') starts = true;
                if (prepend && !starts) ok = uniecg__buf_append(&tmp, st->replacement, st->replacement_length);
                for (size_t i = 0; ok && i < pn; i++)
                    ok = ps[i] == ' ' ? uniecg__buf_append(&tmp, st->replacement, st->replacement_length)
                                      : uniecg__buf_append(&tmp, ps + i, 1);
                if (!ok) break;
                if (st->split) {
                    pattern pat = {.kind = PAT_CHAR, .literal = (char *)st->replacement,
                                   .literal_length = st->replacement_length};
                    ok = find_matches(&pat, tmp.data, tmp.length, &e->regex, &m) &&
                         split_piece(tmp.data, tmp.length, porigin, &m, SPLIT_MERGED_NEXT, false, out);
                } else {
                    ok = add_piece(out, tmp.data, tmp.length, porigin);
                }
                break;
            }
            }
        }
        piece_list *swap = in;
        in = out;
        out = swap;
    }
    free(m.starts);
    free(m.ends);
    uniecg__buf_free(&tmp);
    *result = in;
    return ok;
}

static bool reserve_symbols(encoder *e, size_t n) {
    if (n <= e->sym_capacity) return true;
    size_t cap = e->sym_capacity ? e->sym_capacity : 64;
    while (cap < n) cap *= 2;
    int32_t *a = realloc(e->sym_id, cap * sizeof *a);
    if (!a) return false;
    e->sym_id = a;
    int32_t *b = realloc(e->sym_prev, cap * sizeof *b);
    if (!b) return false;
    e->sym_prev = b;
    int32_t *c = realloc(e->sym_next, cap * sizeof *c);
    if (!c) return false;
    e->sym_next = c;
    uint32_t *d = realloc(e->sym_len, cap * sizeof *d);
    if (!d) return false;
    e->sym_len = d;
    heap_item *h = realloc(e->heap, 2 * cap * sizeof *h);
    if (!h) return false;
    e->heap = h;
    e->heap_capacity = 2 * cap;
    e->sym_capacity = cap;
    return true;
}

static bool heap_less(const heap_item *a, const heap_item *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static bool heap_push(encoder *e, size_t *count, heap_item item) {
    if (*count == e->heap_capacity) {
        size_t cap = e->heap_capacity * 2;
        heap_item *h = realloc(e->heap, cap * sizeof *h);
        if (!h) return false;
        e->heap = h;
        e->heap_capacity = cap;
    }
    size_t i = (*count)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&item, &e->heap[parent])) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = item;
    return true;
}

static heap_item heap_pop(encoder *e, size_t *count) {
    heap_item top = e->heap[0], last = e->heap[--*count];
    size_t i = 0, n = *count;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap_less(&e->heap[child + 1], &e->heap[child])) child++;
        if (!heap_less(&e->heap[child], &last)) break;
        e->heap[i] = e->heap[child];
        i = child;
    }
    if (n) e->heap[i] = last;
    return top;
}

/* The BPE model on one pre-token. */
static bool bpe(const uniecg_tokenizer *t, encoder *e, const char *w, size_t n) {
    if (n == 0) return true;
    if (t->ignore_merges) {
        int32_t id = vocab_find(t, w, n);
        if (id >= 0) return push_id(e, id);
    }
    if (!reserve_symbols(e, n)) return false;
    size_t count = 0;
    int32_t unk = -1;
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + uniecg__utf8_length((uint8_t)w[i]);
        int32_t id = vocab_find(t, w + i, j - i);
        if (id >= 0) {
            if (unk >= 0) { e->sym_id[count] = unk; e->sym_len[count++] = unk_len; unk = -1; }
            e->sym_id[count] = id;
            e->sym_len[count++] = (uint32_t)(j - i);
        } else {
            bool fallback = t->byte_fallback;
            for (size_t k = i; fallback && k < j; k++) fallback = t->byte_token[(uint8_t)w[k]] >= 0;
            if (fallback) {
                for (size_t k = i; k < j; k++) {
                    e->sym_id[count] = t->byte_token[(uint8_t)w[k]];
                    e->sym_len[count++] = 1;
                }
            } else if (t->unk >= 0) {
                if (unk >= 0 && t->fuse_unk) {
                    unk_len += (uint32_t)(j - i);
                } else {
                    if (unk >= 0) { e->sym_id[count] = unk; e->sym_len[count++] = unk_len; }
                    unk = t->unk;
                    unk_len = (uint32_t)(j - i);
                }
            }
        }
        i = j;
    }
    if (unk >= 0) { e->sym_id[count] = unk; e->sym_len[count++] = unk_len; }
    if (count == 0) return true;
    for (size_t i = 0; i < count; i++) {
        e->sym_prev[i] = (int32_t)i - 1;
        e->sym_next[i] = i + 1 < count ? (int32_t)i + 1 : -1;
    }
    size_t heap_count = 0;
    for (size_t i = 0; i + 1 < count; i++) {
        const merge_slot *m = merge_find(t, e->sym_id[i], e->sym_id[i + 1]);
        if (m && !heap_push(e, &heap_count, (heap_item){m->rank, (uint32_t)i, m->id})) return false;
    }
    while (heap_count) {
        heap_item top = heap_pop(e, &heap_count);
        uint32_t pos = top.pos;
        if (e->sym_len[pos] == 0 || e->sym_next[pos] < 0) continue;
        int32_t right = e->sym_next[pos];
        const merge_slot *m = merge_find(t, e->sym_id[pos], e->sym_id[right]);
        if (!m || m->id != top.id) continue;
        e->sym_id[pos] = top.id;
        e->sym_len[pos] += e->sym_len[right];
        e->sym_len[right] = 0;
        e->sym_next[pos] = e->sym_next[right];
        if (e->sym_next[right] >= 0) e->sym_prev[e->sym_next[right]] = (int32_t)pos;
        if (e->sym_prev[pos] >= 0) {
            int32_t prev = e->sym_prev[pos];
            const merge_slot *pm = merge_find(t, e->sym_id[prev], e->sym_id[pos]);
            if (pm && !heap_push(e, &heap_count, (heap_item){pm->rank, (uint32_t)prev, pm->id})) return false;
        }
        if (e->sym_next[pos] >= 0) {
            const merge_slot *nm = merge_find(t, e->sym_id[pos], e->sym_id[e->sym_next[pos]]);
            if (nm && !heap_push(e, &heap_count, (heap_item){nm->rank, pos, nm->id})) return false;
        }
    }
    for (int32_t i = 0; i >= 0; i = e->sym_next[i])
        if (!push_id(e, e->sym_id[i])) return false;
    return true;
}

static uniecg_status encode_segment(const uniecg_tokenizer *t, encoder *e, const char *s, size_t n, bool origin) {
    if (n == 0) return UNIECG_OK;
    const char *norm;
    size_t norm_n;
    uniecg_status status = normalize(t, e, s, n, &norm, &norm_n);
    if (status) return status;
    if (norm_n == 0) return UNIECG_OK;
    piece_list *pieces;
    if (!pre_tokenize(t, e, norm, norm_n, origin, &pieces))
        return e->regex.limit_hit ? UNIECG_ERR_LIMIT : UNIECG_ERR_OUT_OF_MEMORY;
    for (size_t p = 0; p < pieces->count; p++)
        if (!bpe(t, e, pieces->text.data + pieces->items[p].start, pieces->items[p].length))
            return UNIECG_ERR_OUT_OF_MEMORY;
    return UNIECG_OK;
}

uniecg_status uniecg_tokenizer_encode(const uniecg_tokenizer *t, const char *text, size_t length, bool add_special,
                                      bool parse_special, int32_t *ids, size_t capacity, size_t *out_count,
                                      uniecg_error *error) {
    if (out_count) *out_count = 0;
    if (!t || !out_count || (!text && length) || (!ids && capacity))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "tokenizer_encode: NULL argument");
    size_t bad = uniecg__utf8_check((const uint8_t *)text, length);
    if (bad != length)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "tokenizer_encode: the text is not valid UTF-8 (byte %zu)", bad);
    if (length == 0) text = "";
    encoder e = {0};
    uniecg_status status = UNIECG_OK;
    if (add_special && t->add_bos && !push_id(&e, t->bos)) status = UNIECG_ERR_OUT_OF_MEMORY;
    size_t segment = 0;
    for (size_t i = 0; i < length && !status;) {
        uint8_t b = (uint8_t)text[i];
        int32_t found = -1;
        uint32_t found_length = 0;
        for (uint32_t k = t->added_first[b]; k < t->added_first[b + 1]; k++) {
            uint32_t len = t->added_length[k];
            if (len <= length - i && (parse_special || !t->added_special[k]) && memcmp(text + i, t->added_text[k], len) == 0) {
                found = t->added_id[k];
                found_length = len;
                break; /* longest first */
            }
        }
        if (found < 0) {
            i++;
            continue;
        }
        status = encode_segment(t, &e, text + segment, i - segment, segment == 0);
        if (!status && !push_id(&e, found)) status = UNIECG_ERR_OUT_OF_MEMORY;
        i += found_length;
        segment = i;
    }
    if (!status) status = encode_segment(t, &e, text + segment, length - segment, segment == 0);
    if (!status && add_special && t->add_eos && !push_id(&e, t->eos)) status = UNIECG_ERR_OUT_OF_MEMORY;
    if (status) {
        encoder_free(&e);
        return uniecg__fail(error, status, status == UNIECG_ERR_LIMIT
                                               ? "tokenizer_encode: a pre-tokenizer regex exceeded its backtracking budget"
                                               : "tokenizer_encode: out of memory");
    }
    *out_count = e.count;
    if (e.count > capacity) {
        encoder_free(&e);
        return uniecg__fail(error, UNIECG_ERR_LIMIT, "tokenizer_encode: %zu ids do not fit in %zu", *out_count, capacity);
    }
    if (e.count) memcpy(ids, e.ids, e.count * sizeof *ids);
    encoder_free(&e);
    return UNIECG_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding                                                                                    */

typedef struct {
    uint64_t index;        /* tokens seen (METASPACE) */
    uniecg__buf run;       /* BYTE_FALLBACK: pending bytes; BYTE_LEVEL: incomplete character */
    bool lead_done;        /* STRIP (fused): past the leading part */
    uint32_t lead_count;
    uint32_t held;         /* STRIP (fused): trailing content characters held back */
} dec_state;

struct uniecg_detokenizer {
    const uniecg_tokenizer *t;
    bool skip_special;
    dec_state *state;
    bool any_token;        /* no decoder: tokens are joined with spaces */
    uniecg__buf out;
    bool failed;
};

static void stage_push(uniecg_detokenizer *d, size_t k, const char *s, size_t n);

static void emit_out(uniecg_detokenizer *d, size_t k, const char *s, size_t n) {
    if (k < d->t->dec_count) { stage_push(d, k, s, n); return; }
    if (d->t->no_decoder) {
        if (d->any_token && !uniecg__buf_append(&d->out, " ", 1)) d->failed = true;
        d->any_token = true;
    }
    if (!uniecg__buf_append(&d->out, s, n)) d->failed = true;
}

static void repeat_char(uniecg_detokenizer *d, size_t k, uint32_t cp, uint32_t times) {
    char c[4];
    size_t len = uniecg__utf8_encode(cp, c);
    for (uint32_t i = 0; i < times; i++) emit_out(d, k, c, len);
}

/* Emits the complete characters of a byte buffer (lossy like Rust's from_utf8_lossy); an
 * incomplete character at the end stays in the buffer unless `final`. */
static void emit_lossy(uniecg_detokenizer *d, size_t k, uniecg__buf *run, bool final) {
    const uint8_t *s = (const uint8_t *)run->data;
    size_t n = run->length, i = 0, good = 0;
    while (i < n) {
        int status;
        size_t len = uniecg__utf8_scan(s + i, n - i, &status);
        if (status == 1) { i += len; continue; }
        if (status == 0 && !final) break;
        if (i > good) emit_out(d, k, (const char *)s + good, i - good);
        emit_out(d, k, REPLACEMENT_CHAR, 3);
        i += len;
        good = i;
    }
    if (i > good) emit_out(d, k, (const char *)s + good, i - good);
    if (i < n) memmove(run->data, run->data + i, n - i);
    run->length = n - i;
}

static int hex_digit(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The byte of a "<0xNN>" token as Hugging Face's ByteFallback decoder reads it, or -1. */
static int byte_token_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    if (lo < 0) return -1;
    if (s[3] == '+') return lo; /* Rust's u8::from_str_radix accepts a '+' sign */
    return hi < 0 ? -1 : hi * 16 + lo;
}

static void flush_byte_run(uniecg_detokenizer *d, size_t k) {
    dec_state *st = &d->state[k];
    if (st->run.length == 0) return;
    if (uniecg__utf8_check((const uint8_t *)st->run.data, st->run.length) == st->run.length) {
        emit_out(d, k + 1, st->run.data, st->run.length);
    } else {
        for (size_t i = 0; i < st->run.length; i++) emit_out(d, k + 1, REPLACEMENT_CHAR, 3);
    }
    st->run.length = 0;
}

static void replace_into(const pattern *p, const char *text, size_t text_length, const char *s, size_t n,
                         uniecg__regex_scratch *scratch, uniecg__buf *out, bool *failed) {
    match_list m = {0};
    if (!find_matches(p, s, n, scratch, &m)) { *failed = true; return; }
    size_t prev = 0;
    bool ok = true;
    for (size_t i = 0; i < m.count && ok; i++) {
        ok = uniecg__buf_append(out, s + prev, m.starts[i] - prev) && uniecg__buf_append(out, text, text_length);
        prev = m.ends[i];
    }
    if (!ok || !uniecg__buf_append(out, s + prev, n - prev)) *failed = true;
    free(m.starts);
    free(m.ends);
}

static void stage_push(uniecg_detokenizer *d, size_t k, const char *s, size_t n) {
    const dec_step *step = &d->t->dec[k];
    dec_state *st = &d->state[k];
    switch (step->kind) {
    case DEC_REPLACE: {
        uniecg__buf tmp = {0};
        uniecg__regex_scratch scratch = {0};
        replace_into(&step->pat, step->text, step->text_length, s, n, &scratch, &tmp, &d->failed);
        uniecg__regex_scratch_free(&scratch);
        emit_out(d, k + 1, tmp.data ? tmp.data : "", tmp.length);
        uniecg__buf_free(&tmp);
        return;
    }
    case DEC_BYTE_FALLBACK: {
        int v = byte_token_value(s, n);
        if (v >= 0) {
            uint8_t byte = (uint8_t)v;
            if (!uniecg__buf_append(&st->run, &byte, 1)) d->failed = true;
            return;
        }
        flush_byte_run(d, k);
        emit_out(d, k + 1, s, n);
        return;
    }
    case DEC_FUSE: emit_out(d, k + 1, s, n); return;
    case DEC_BYTE_LEVEL: {
        /* a token with a character outside the GPT-2 map contributes its own bytes */
        bool mappable = true;
        for (size_t i = 0; i < n && mappable;) {
            uint32_t cp = uniecg__utf8_next(s, &i);
            mappable = cp < 324 && d->t->char_byte[cp] >= 0;
        }
        if (!mappable) {
            if (!uniecg__buf_append(&st->run, s, n)) d->failed = true;
        } else {
            for (size_t i = 0; i < n;) {
                uint8_t byte = (uint8_t)d->t->char_byte[uniecg__utf8_next(s, &i)];
                if (!uniecg__buf_append(&st->run, &byte, 1)) d->failed = true;
            }
        }
        emit_lossy(d, k + 1, &st->run, false);
        return;
    }
    case DEC_METASPACE: {
        uint64_t index = step->fused ? 0 : st->index++;
        uniecg__buf tmp = {0};
        for (size_t i = 0; i < n;) {
            size_t j = i;
            uint32_t cp = uniecg__utf8_next(s, &j);
            bool ok = true;
            if (cp == step->replacement) {
                if (!(index == 0 && step->prepend)) ok = uniecg__buf_append(&tmp, " ", 1);
            } else {
                ok = uniecg__buf_append(&tmp, s + i, j - i);
            }
            if (!ok) d->failed = true;
            i = j;
        }
        emit_out(d, k + 1, tmp.data ? tmp.data : "", tmp.length);
        uniecg__buf_free(&tmp);
        return;
    }
    case DEC_STRIP: {
        if (!step->fused) {
            /* per token, as Hugging Face's Strip::decode_chain */
            size_t count = 0;
            for (size_t i = 0; i < n; count++) uniecg__utf8_next(s, &i);
            size_t start_byte = 0;
            for (size_t c = 0; c < step->start && c < count; c++) {
                size_t j = start_byte;
                if (uniecg__utf8_next(s, &j) != step->content) break;
                start_byte = j;
            }
            size_t stop_byte = n;
            for (size_t c = 0; c < step->stop && c < count; c++) {
                size_t j = stop_byte - 1;
                while (j > 0 && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
                size_t q = j;
                if (uniecg__utf8_next(s, &q) != step->content) break;
                stop_byte = j;
            }
            emit_out(d, k + 1, s + start_byte, stop_byte > start_byte ? stop_byte - start_byte : 0);
            return;
        }
        /* on the fused stream: leading characters at its start, trailing ones held back */
        size_t i = 0, from = 0;
        while (i < n) {
            size_t j = i;
            uint32_t cp = uniecg__utf8_next(s, &j);
            if (!st->lead_done) {
                if (st->lead_count < step->start && cp == step->content) {
                    st->lead_count++;
                    i = from = j;
                    continue;
                }
                st->lead_done = true;
            }
            if (step->stop > 0) {
                if (cp == step->content) {
                    if (i > from) emit_out(d, k + 1, s + from, i - from);
                    from = j;
                    if (st->held == step->stop) repeat_char(d, k + 1, step->content, 1);
                    else st->held++;
                } else if (st->held) {
                    if (i > from) emit_out(d, k + 1, s + from, i - from);
                    from = i;
                    repeat_char(d, k + 1, step->content, st->held);
                    st->held = 0;
                }
            }
            i = j;
        }
        if (n > from) emit_out(d, k + 1, s + from, n - from);
        return;
    }
    }
}

static void stage_flush(uniecg_detokenizer *d, size_t k) {
    if (k >= d->t->dec_count) return;
    const dec_step *step = &d->t->dec[k];
    dec_state *st = &d->state[k];
    if (step->kind == DEC_BYTE_FALLBACK) flush_byte_run(d, k);
    else if (step->kind == DEC_BYTE_LEVEL) emit_lossy(d, k + 1, &st->run, true);
    else if (step->kind == DEC_STRIP) st->held = 0;
    stage_flush(d, k + 1);
}

uniecg_status uniecg_detokenizer_create(const uniecg_tokenizer *t, bool skip_special, uniecg_detokenizer **out,
                                        uniecg_error *error) {
    if (!out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "detokenizer_create: NULL output");
    *out = NULL;
    if (!t) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "detokenizer_create: NULL tokenizer");
    uniecg_detokenizer *d = calloc(1, sizeof *d);
    if (d) d->state = calloc(t->dec_count ? t->dec_count : 1, sizeof *d->state);
    if (!d || !d->state || !uniecg__buf_reserve(&d->out, 256)) {
        if (d) free(d->state);
        free(d);
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "detokenizer: out of memory");
    }
    d->t = t;
    d->skip_special = skip_special;
    *out = d;
    return UNIECG_OK;
}

void uniecg_detokenizer_free(uniecg_detokenizer *d) {
    if (!d) return;
    for (size_t k = 0; k < d->t->dec_count; k++) uniecg__buf_free(&d->state[k].run);
    free(d->state);
    uniecg__buf_free(&d->out);
    free(d);
}

static void reset_state(uniecg_detokenizer *d) {
    for (size_t k = 0; k < d->t->dec_count; k++) {
        uniecg__buf run = d->state[k].run;
        run.length = 0;
        d->state[k] = (dec_state){.run = run};
    }
    d->any_token = false;
    d->failed = false;
}

void uniecg_detokenizer_reset(uniecg_detokenizer *d) {
    if (!d) return;
    reset_state(d);
    d->out.length = 0;
    d->out.data[0] = 0;
}

static uniecg_status finish_output(uniecg_detokenizer *d, const char **out_text, size_t *out_length,
                                   uniecg_error *error) {
    if (d->failed) {
        d->failed = false;
        d->out.length = 0;
        d->out.data[0] = 0;
        *out_text = d->out.data;
        *out_length = 0;
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "detokenizer: out of memory");
    }
    *out_text = d->out.data;
    *out_length = d->out.length;
    return UNIECG_OK;
}

uniecg_status uniecg_detokenizer_push(uniecg_detokenizer *d, int32_t id, const char **out_text, size_t *out_length,
                                      uniecg_error *error) {
    if (!d || !out_text || !out_length) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "detokenizer_push: NULL argument");
    d->out.length = 0;
    d->out.data[0] = 0;
    *out_text = d->out.data;
    *out_length = 0;
    const uniecg_tokenizer *t = d->t;
    if (id < 0 || id >= t->vocab_size)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "detokenizer_push: token id %d is outside 0..%d", id,
                            t->vocab_size - 1);
    if (d->skip_special && t->special[id]) return UNIECG_OK;
    emit_out(d, 0, t->display[id], t->display_length[id]);
    return finish_output(d, out_text, out_length, error);
}

uniecg_status uniecg_detokenizer_flush(uniecg_detokenizer *d, const char **out_text, size_t *out_length,
                                       uniecg_error *error) {
    if (!d || !out_text || !out_length) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "detokenizer_flush: NULL argument");
    d->out.length = 0;
    d->out.data[0] = 0;
    stage_flush(d, 0);
    uniecg_status s = finish_output(d, out_text, out_length, error);
    reset_state(d); /* the next push starts a new text */
    return s;
}

uniecg_status uniecg_tokenizer_decode(const uniecg_tokenizer *t, const int32_t *ids, size_t count, bool skip_special,
                                      char *text, size_t capacity, size_t *out_length, uniecg_error *error) {
    if (out_length) *out_length = 0;
    if (!t || !out_length || (!ids && count) || (!text && capacity))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "tokenizer_decode: NULL argument");
    uniecg_detokenizer *d;
    uniecg_status s = uniecg_detokenizer_create(t, skip_special, &d, error);
    if (s) return s;
    uniecg__buf all = {0};
    const char *piece;
    size_t n;
    for (size_t i = 0; i < count && !s; i++) {
        s = uniecg_detokenizer_push(d, ids[i], &piece, &n, error);
        if (!s && !uniecg__buf_append(&all, piece, n)) s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer_decode: out of memory");
    }
    if (!s) s = uniecg_detokenizer_flush(d, &piece, &n, error);
    if (!s && !uniecg__buf_append(&all, piece, n)) s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tokenizer_decode: out of memory");
    uniecg_detokenizer_free(d);
    if (!s) {
        *out_length = all.length;
        if (all.length + 1 > capacity)
            s = uniecg__fail(error, UNIECG_ERR_LIMIT, "tokenizer_decode: %zu bytes (and a NUL) do not fit in %zu", all.length, capacity);
        else {
            if (all.length) memcpy(text, all.data, all.length);
            text[all.length] = 0;
        }
    }
    uniecg__buf_free(&all);
    return s;
}
