/* A small backtracking regex engine for the patterns of Hugging Face pre-tokenizers (GPT-2,
 * Llama 3, Qwen2, DeepSeek, ...), with Oniguruma's semantics for them: leftmost-first
 * alternation, greedy/lazy quantifiers, Unicode classes.
 *
 * Supported: literals and escapes (\n \r \t \f \v \e \xHH \x{H..} \uHHHH, escaped punctuation),
 * '.', classes [...] with ranges, negation and the escapes \s \S \d \D \p{..} \P{..} inside,
 * \s \S \d \D \p{..} \P{..} outside, groups (...) (?:...) (?i:...) (?i) and look-aheads
 * (?=...) (?!...), quantifiers ? * + {n} {n,} {n,m} and their lazy forms.
 * Refused with a clear error: anchors, backreferences, look-behind, atomic groups, possessive
 * quantifiers, \w \b, nested classes, case-insensitive non-ASCII letters.
 *
 * The pattern is compiled to a program for a backtracking machine (Cox, "Regular Expression
 * Matching: the Virtual Machine Approach") whose thread stack lives in caller scratch space. */
#include "tokenizer_internal.h"
#include "unicode.h"

#include <stdio.h>

enum { OP_CLASS, OP_LIT, OP_ANY, OP_SPLIT, OP_JMP, OP_LOOK, OP_MATCH };

typedef struct {
    uint8_t op;
    bool fold;     /* LIT: case-insensitive */
    bool negative; /* LOOK */
    uint32_t arg;  /* CLASS: class index; LIT: code point; LOOK: sub-program pc */
    uint32_t x, y; /* SPLIT: preferred, other; JMP: x; LOOK: y = pc after */
} inst;

typedef struct {
    uint8_t kind; /* 0 range, 1 category mask, 2 white space */
    bool negated;
    uint32_t lo, hi, mask;
} class_item;

typedef struct {
    uint32_t first, count; /* items */
    bool negated, fold;
    uint32_t ascii[4];     /* precomputed membership of U+0000..U+007F */
} char_class;

struct uniecg__regex {
    inst *prog;
    uint32_t prog_count, prog_capacity;
    class_item *items;
    uint32_t item_count, item_capacity;
    char_class *classes;
    uint32_t class_count, class_capacity;
};

/* ---- parsing into a tree ---- */

enum { N_EMPTY, N_CLASS, N_LIT, N_ANY, N_CAT, N_ALT, N_REPEAT, N_LOOK };

typedef struct node {
    uint8_t type;
    bool fold, greedy, negative;
    uint32_t value; /* LIT: code point; CLASS: class index */
    uint32_t min, max; /* REPEAT; max UINT32_MAX = unbounded */
    struct node *a, *b; /* CAT / ALT: children; REPEAT / LOOK: a */
} node;

typedef struct {
    const char *s;
    size_t n, i;
    uniecg__regex *re;
    node *nodes;
    size_t node_count, node_capacity;
    uniecg_error *error;
    uniecg_status status;
    int depth;
} compiler;

#define MAX_NODES 100000u
#define MAX_PROGRAM 200000u

static bool cfail(compiler *c, uniecg_status status, const char *what) {
    if (c->status == UNIECG_OK) {
        c->status = status;
        uniecg__fail(c->error, status, "regex pattern: %s at offset %zu of \"%.*s\"", what, c->i,
                     c->n > 200 ? 200 : (int)c->n, c->s);
    }
    return false;
}

static node *new_node(compiler *c, uint8_t type) {
    if (c->node_count == c->node_capacity) {
        /* nodes are referenced by pointer: allocate all up front (pattern length bounds them) */
        cfail(c, UNIECG_ERR_LIMIT, "pattern too complex");
        return NULL;
    }
    node *n = &c->nodes[c->node_count++];
    memset(n, 0, sizeof *n);
    n->type = type;
    return n;
}

static bool add_item(compiler *c, class_item item) {
    uniecg__regex *re = c->re;
    if (re->item_count == re->item_capacity) {
        uint32_t cap = re->item_capacity ? re->item_capacity * 2 : 16;
        class_item *p = realloc(re->items, cap * sizeof *p);
        if (!p) return cfail(c, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
        re->items = p;
        re->item_capacity = cap;
    }
    re->items[re->item_count++] = item;
    return true;
}

static uint32_t fold_cp(uint32_t cp) {
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    if (cp == 0x17F) return 's'; /* LATIN SMALL LETTER LONG S */
    if (cp == 0x212A) return 'k'; /* KELVIN SIGN */
    return cp;
}

static bool is_cased(uint32_t cp) {
    int g = uniecg__unicode_category(cp);
    return g == UNIECG_GC_LU || g == UNIECG_GC_LL || g == UNIECG_GC_LT;
}

static bool item_matches(const class_item *it, uint32_t cp) {
    bool m;
    switch (it->kind) {
    case 0: m = cp >= it->lo && cp <= it->hi; break;
    case 1: m = (it->mask >> uniecg__unicode_category(cp)) & 1; break;
    default: m = uniecg__unicode_is_space(cp); break;
    }
    return m != it->negated;
}

static bool class_raw(const uniecg__regex *re, const char_class *cl, uint32_t cp) {
    for (uint32_t k = 0; k < cl->count; k++)
        if (item_matches(&re->items[cl->first + k], cp)) return true;
    return false;
}

static bool class_matches(const uniecg__regex *re, const char_class *cl, uint32_t cp) {
    if (cp < 128) return (cl->ascii[cp >> 5] >> (cp & 31)) & 1;
    bool m = class_raw(re, cl, cp);
    if (!m && cl->fold) {
        uint32_t f = fold_cp(cp);
        if (f != cp) m = class_raw(re, cl, f) || (f >= 'a' && f <= 'z' && class_raw(re, cl, f - 32));
    }
    return m != cl->negated;
}

static bool finish_class(compiler *c, uint32_t first, bool negated, bool fold, uint32_t *out_index) {
    uniecg__regex *re = c->re;
    if (re->class_count == re->class_capacity) {
        uint32_t cap = re->class_capacity ? re->class_capacity * 2 : 8;
        char_class *p = realloc(re->classes, cap * sizeof *p);
        if (!p) return cfail(c, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
        re->classes = p;
        re->class_capacity = cap;
    }
    char_class *cl = &re->classes[re->class_count];
    *cl = (char_class){.first = first, .count = re->item_count - first, .negated = negated, .fold = fold};
    for (uint32_t cp = 0; cp < 128; cp++) {
        bool m = class_raw(re, cl, cp);
        if (!m && fold) {
            uint32_t f = fold_cp(cp);
            m = (f != cp && class_raw(re, cl, f)) || (cp >= 'a' && cp <= 'z' && class_raw(re, cl, cp - 32));
        }
        if (m != negated) cl->ascii[cp >> 5] |= 1u << (cp & 31);
    }
    if (fold)
        for (uint32_t k = first; k < re->item_count; k++) {
            const class_item *it = &re->items[k];
            if (it->kind == 0 && it->hi >= 128)
                for (uint32_t cp = it->lo < 128 ? 128 : it->lo; cp <= it->hi && cp < 0x30000; cp++)
                    if (is_cased(cp)) return cfail(c, UNIECG_ERR_VERSION, "case-insensitive non-ASCII class is not supported");
        }
    *out_index = re->class_count++;
    return true;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static bool next_cp(compiler *c, uint32_t *cp) {
    if (c->i >= c->n) return cfail(c, UNIECG_ERR_FORMAT, "unexpected end");
    size_t len = uniecg__utf8_length((uint8_t)c->s[c->i]);
    if (uniecg__utf8_check((const uint8_t *)c->s + c->i, c->n - c->i < len ? c->n - c->i : len) != len)
        return cfail(c, UNIECG_ERR_FORMAT, "invalid UTF-8");
    *cp = uniecg__utf8_next(c->s, &c->i);
    return true;
}

/* An escape after the backslash: either a code point (*is_cp) or a class item. */
static bool parse_escape(compiler *c, uint32_t *cp, bool *is_cp, class_item *item) {
    if (c->i >= c->n) return cfail(c, UNIECG_ERR_FORMAT, "trailing backslash");
    char e = c->s[c->i++];
    *is_cp = true;
    switch (e) {
    case 'n': *cp = '\n'; return true;
    case 'r': *cp = '\r'; return true;
    case 't': *cp = '\t'; return true;
    case 'f': *cp = '\f'; return true;
    case 'v': *cp = '\v'; return true;
    case 'e': *cp = 0x1B; return true;
    case 'a': *cp = 0x07; return true;
    case 'x': case 'u': {
        uint32_t v = 0;
        int digits = 0;
        bool braced = c->i < c->n && c->s[c->i] == '{';
        if (braced) c->i++;
        int limit = braced ? 8 : e == 'x' ? 2 : 4;
        while (digits < limit && c->i < c->n && hexval(c->s[c->i]) >= 0) {
            v = v << 4 | (uint32_t)hexval(c->s[c->i++]);
            digits++;
        }
        if (braced) {
            if (c->i >= c->n || c->s[c->i] != '}') return cfail(c, UNIECG_ERR_FORMAT, "bad \\x{...} escape");
            c->i++;
        }
        if (!digits || (e == 'u' && !braced && digits != 4) || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return cfail(c, UNIECG_ERR_FORMAT, "bad hexadecimal escape");
        *cp = v;
        return true;
    }
    case 's': case 'S':
        *is_cp = false;
        *item = (class_item){.kind = 2, .negated = e == 'S'};
        return true;
    case 'd': case 'D':
        *is_cp = false;
        *item = (class_item){.kind = 1, .negated = e == 'D', .mask = UNIECG_GC_MASK(UNIECG_GC_ND)};
        return true;
    case 'p': case 'P': {
        bool negated = e == 'P';
        const char *name;
        size_t length;
        if (c->i < c->n && c->s[c->i] == '{') {
            size_t close = c->i + 1;
            while (close < c->n && c->s[close] != '}') close++;
            if (close >= c->n) return cfail(c, UNIECG_ERR_FORMAT, "unterminated \\p{");
            name = c->s + c->i + 1;
            length = close - c->i - 1;
            if (length && name[0] == '^') { negated = !negated; name++; length--; }
            c->i = close + 1;
        } else {
            *cp = (uint32_t)e; /* Oniguruma reads \p without braces as a plain 'p' */
            return true;
        }
        uint32_t mask = uniecg__unicode_category_mask(name, length);
        if (!mask) return cfail(c, UNIECG_ERR_VERSION, "unsupported Unicode property (general categories only)");
        *is_cp = false;
        *item = (class_item){.kind = 1, .negated = negated, .mask = mask};
        return true;
    }
    default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'))
            return cfail(c, UNIECG_ERR_VERSION, "unsupported escape (anchors, \\w, backreferences are not supported)");
        c->i--;
        return next_cp(c, cp);
    }
}

static node *parse_alt(compiler *c, bool *fold);

static node *parse_class(compiler *c, bool fold) {
    c->i++; /* [ */
    bool negated = false;
    if (c->i < c->n && c->s[c->i] == '^') { negated = true; c->i++; }
    uint32_t first = c->re->item_count;
    bool any = false;
    for (;;) {
        if (c->i >= c->n) { cfail(c, UNIECG_ERR_FORMAT, "unterminated class"); return NULL; }
        char ch = c->s[c->i];
        if (ch == ']' && any) { c->i++; break; }
        if (ch == '[') { cfail(c, UNIECG_ERR_VERSION, "nested classes are not supported"); return NULL; }
        if (ch == '&' && c->i + 1 < c->n && c->s[c->i + 1] == '&') {
            cfail(c, UNIECG_ERR_VERSION, "class intersection is not supported");
            return NULL;
        }
        uint32_t lo;
        bool is_cp = true;
        class_item item;
        if (ch == '\\') {
            c->i++;
            if (!parse_escape(c, &lo, &is_cp, &item)) return NULL;
        } else if (!next_cp(c, &lo)) {
            return NULL;
        }
        any = true;
        if (!is_cp) {
            if (!add_item(c, item)) return NULL;
            continue;
        }
        uint32_t hi = lo;
        if (c->i + 1 < c->n && c->s[c->i] == '-' && c->s[c->i + 1] != ']') {
            c->i++;
            if (c->s[c->i] == '\\') {
                c->i++;
                if (!parse_escape(c, &hi, &is_cp, &item)) return NULL;
                if (!is_cp) { cfail(c, UNIECG_ERR_FORMAT, "bad class range"); return NULL; }
            } else if (!next_cp(c, &hi)) {
                return NULL;
            }
            if (hi < lo) { cfail(c, UNIECG_ERR_FORMAT, "empty class range"); return NULL; }
        }
        if (!add_item(c, (class_item){.kind = 0, .lo = lo, .hi = hi})) return NULL;
    }
    node *n = new_node(c, N_CLASS);
    if (!n || !finish_class(c, first, negated, fold, &n->value)) return NULL;
    return n;
}

static node *single_item_class(compiler *c, class_item item) {
    uint32_t first = c->re->item_count;
    if (!add_item(c, item)) return NULL;
    node *n = new_node(c, N_CLASS);
    if (!n || !finish_class(c, first, false, false, &n->value)) return NULL;
    return n;
}

static node *parse_atom(compiler *c, bool *fold) {
    char ch = c->s[c->i];
    if (ch == '(') {
        c->i++;
        if (++c->depth > 100) { cfail(c, UNIECG_ERR_LIMIT, "nesting too deep"); return NULL; }
        bool inner_fold = *fold;
        node *look = NULL;
        if (c->i < c->n && c->s[c->i] == '?') {
            c->i++;
            if (c->i >= c->n) { cfail(c, UNIECG_ERR_FORMAT, "bad group"); return NULL; }
            char k = c->s[c->i];
            if (k == ':') {
                c->i++;
            } else if (k == '=' || k == '!') {
                c->i++;
                look = new_node(c, N_LOOK);
                if (!look) return NULL;
                look->negative = k == '!';
            } else if (k == 'i' || k == '-') {
                bool on = true;
                while (c->i < c->n && (c->s[c->i] == 'i' || c->s[c->i] == '-')) {
                    if (c->s[c->i] == '-') on = false; else inner_fold = on;
                    c->i++;
                }
                if (c->i < c->n && c->s[c->i] == ')') { /* (?i) applies to the rest of the group */
                    c->i++;
                    c->depth--;
                    *fold = inner_fold;
                    return new_node(c, N_EMPTY);
                }
                if (c->i >= c->n || c->s[c->i] != ':') {
                    cfail(c, UNIECG_ERR_VERSION, "unsupported group flags (only i)");
                    return NULL;
                }
                c->i++;
            } else {
                cfail(c, UNIECG_ERR_VERSION, "unsupported group (look-behind, atomic, named, flags other than i)");
                return NULL;
            }
        }
        node *inner = parse_alt(c, &inner_fold);
        if (!inner) return NULL;
        if (c->i >= c->n || c->s[c->i] != ')') { cfail(c, UNIECG_ERR_FORMAT, "missing ')'"); return NULL; }
        c->i++;
        c->depth--;
        if (look) { look->a = inner; return look; }
        return inner;
    }
    if (ch == '[') return parse_class(c, *fold);
    if (ch == '.') {
        c->i++;
        return new_node(c, N_ANY);
    }
    if (ch == '^' || ch == '$') { cfail(c, UNIECG_ERR_VERSION, "anchors are not supported"); return NULL; }
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{') { cfail(c, UNIECG_ERR_FORMAT, "nothing to repeat"); return NULL; }
    uint32_t cp;
    bool is_cp = true;
    class_item item;
    if (ch == '\\') {
        c->i++;
        if (!parse_escape(c, &cp, &is_cp, &item)) return NULL;
    } else if (!next_cp(c, &cp)) {
        return NULL;
    }
    if (!is_cp) return single_item_class(c, item);
    if (*fold && cp >= 128 && is_cased(cp)) {
        cfail(c, UNIECG_ERR_VERSION, "case-insensitive non-ASCII letters are not supported");
        return NULL;
    }
    node *n = new_node(c, N_LIT);
    if (!n) return NULL;
    n->value = cp;
    n->fold = *fold && fold_cp(cp) != cp ? true : *fold && cp >= 'a' && cp <= 'z';
    return n;
}

static bool parse_number(compiler *c, uint32_t *out) {
    if (c->i >= c->n || c->s[c->i] < '0' || c->s[c->i] > '9') return false;
    uint32_t v = 0;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
        v = v * 10 + (uint32_t)(c->s[c->i++] - '0');
        if (v > 100000) return cfail(c, UNIECG_ERR_LIMIT, "repetition count too large");
    }
    *out = v;
    return true;
}

static node *parse_repeat(compiler *c, bool *fold) {
    node *atom = parse_atom(c, fold);
    if (!atom) return NULL;
    for (;;) {
        if (c->i >= c->n) return atom;
        char ch = c->s[c->i];
        uint32_t min, max;
        if (ch == '*') { min = 0; max = UINT32_MAX; c->i++; }
        else if (ch == '+') { min = 1; max = UINT32_MAX; c->i++; }
        else if (ch == '?') { min = 0; max = 1; c->i++; }
        else if (ch == '{') {
            size_t save = c->i;
            c->i++;
            if (!parse_number(c, &min)) {
                if (c->status) return NULL;
                c->i = save; /* a literal '{' (Oniguruma) */
                return atom;
            }
            max = min;
            if (c->i < c->n && c->s[c->i] == ',') {
                c->i++;
                max = UINT32_MAX;
                if (c->i < c->n && c->s[c->i] != '}' && !parse_number(c, &max)) {
                    if (!c->status) cfail(c, UNIECG_ERR_FORMAT, "bad {n,m}");
                    return NULL;
                }
            }
            if (c->i >= c->n || c->s[c->i] != '}' || max < min) { cfail(c, UNIECG_ERR_FORMAT, "bad {n,m}"); return NULL; }
            c->i++;
        } else {
            return atom;
        }
        if (atom->type == N_LOOK || atom->type == N_EMPTY) {
            cfail(c, UNIECG_ERR_FORMAT, "nothing to repeat");
            return NULL;
        }
        node *r = new_node(c, N_REPEAT);
        if (!r) return NULL;
        r->a = atom;
        r->min = min;
        r->max = max;
        r->greedy = true;
        if (c->i < c->n && c->s[c->i] == '?') { r->greedy = false; c->i++; }
        else if (c->i < c->n && c->s[c->i] == '+') {
            cfail(c, UNIECG_ERR_VERSION, "possessive quantifiers are not supported");
            return NULL;
        }
        atom = r;
    }
}

static node *parse_seq(compiler *c, bool *fold) {
    node *seq = NULL;
    while (c->i < c->n && c->s[c->i] != '|' && c->s[c->i] != ')') {
        node *item = parse_repeat(c, fold);
        if (!item) return NULL;
        if (item->type == N_EMPTY) continue;
        if (!seq) { seq = item; continue; }
        node *cat = new_node(c, N_CAT);
        if (!cat) return NULL;
        cat->a = seq;
        cat->b = item;
        seq = cat;
    }
    return seq ? seq : new_node(c, N_EMPTY);
}

static node *parse_alt(compiler *c, bool *fold) {
    node *left = parse_seq(c, fold);
    if (!left) return NULL;
    while (c->i < c->n && c->s[c->i] == '|') {
        c->i++;
        node *right = parse_seq(c, fold); /* an inline (?i) lasts to the end of its group */
        if (!right) return NULL;
        node *alt = new_node(c, N_ALT);
        if (!alt) return NULL;
        alt->a = left;
        alt->b = right;
        left = alt;
    }
    return left;
}

static bool nullable(const node *n) {
    switch (n->type) {
    case N_EMPTY: case N_LOOK: return true;
    case N_CAT: return nullable(n->a) && nullable(n->b);
    case N_ALT: return nullable(n->a) || nullable(n->b);
    case N_REPEAT: return n->min == 0 || nullable(n->a);
    default: return false;
    }
}

/* ---- code generation ---- */

static bool emit(compiler *c, inst in, uint32_t *at) {
    uniecg__regex *re = c->re;
    if (re->prog_count >= MAX_PROGRAM) return cfail(c, UNIECG_ERR_LIMIT, "pattern expands to too many instructions");
    if (re->prog_count == re->prog_capacity) {
        uint32_t cap = re->prog_capacity ? re->prog_capacity * 2 : 64;
        inst *p = realloc(re->prog, cap * sizeof *p);
        if (!p) return cfail(c, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
        re->prog = p;
        re->prog_capacity = cap;
    }
    if (at) *at = re->prog_count;
    re->prog[re->prog_count++] = in;
    return true;
}

static bool gen(compiler *c, const node *n) {
    uniecg__regex *re = c->re;
    uint32_t at, at2;
    switch (n->type) {
    case N_EMPTY: return true;
    case N_CLASS: return emit(c, (inst){.op = OP_CLASS, .arg = n->value}, NULL);
    case N_LIT: return emit(c, (inst){.op = OP_LIT, .arg = n->value, .fold = n->fold}, NULL);
    case N_ANY: return emit(c, (inst){.op = OP_ANY}, NULL);
    case N_CAT: return gen(c, n->a) && gen(c, n->b);
    case N_ALT:
        if (!emit(c, (inst){.op = OP_SPLIT}, &at)) return false;
        re->prog[at].x = re->prog_count;
        if (!gen(c, n->a) || !emit(c, (inst){.op = OP_JMP}, &at2)) return false;
        re->prog[at].y = re->prog_count;
        if (!gen(c, n->b)) return false;
        re->prog[at2].x = re->prog_count;
        return true;
    case N_LOOK:
        if (!emit(c, (inst){.op = OP_LOOK, .negative = n->negative}, &at)) return false;
        re->prog[at].arg = re->prog_count;
        if (!gen(c, n->a) || !emit(c, (inst){.op = OP_MATCH}, NULL)) return false;
        re->prog[at].y = re->prog_count;
        return true;
    case N_REPEAT: {
        if (n->max == UINT32_MAX && nullable(n->a))
            return cfail(c, UNIECG_ERR_VERSION, "unbounded repetition of something that can match empty");
        for (uint32_t k = 0; k < n->min; k++)
            if (!gen(c, n->a)) return false;
        if (n->max == UINT32_MAX) {
            /* L: split body, out; body; jmp L */
            uint32_t loop;
            if (!emit(c, (inst){.op = OP_SPLIT}, &loop)) return false;
            uint32_t body = re->prog_count;
            if (!gen(c, n->a) || !emit(c, (inst){.op = OP_JMP, .x = loop}, NULL)) return false;
            uint32_t out = re->prog_count;
            re->prog[loop].x = n->greedy ? body : out;
            re->prog[loop].y = n->greedy ? out : body;
            return true;
        }
        /* optional copies, nested: (a(a(a)?)?)? */
        uint32_t optional = n->max - n->min;
        uint32_t *splits = malloc((optional ? optional : 1) * sizeof *splits);
        if (!splits) return cfail(c, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
        for (uint32_t k = 0; k < optional; k++) {
            if (!emit(c, (inst){.op = OP_SPLIT}, &splits[k])) { free(splits); return false; }
            re->prog[splits[k]].x = re->prog_count; /* body follows */
            if (!gen(c, n->a)) { free(splits); return false; }
        }
        uint32_t out = re->prog_count;
        for (uint32_t k = 0; k < optional; k++) {
            uint32_t body = re->prog[splits[k]].x;
            re->prog[splits[k]].x = n->greedy ? body : out;
            re->prog[splits[k]].y = n->greedy ? out : body;
        }
        free(splits);
        return true;
    }
    }
    return cfail(c, UNIECG_ERR_FORMAT, "internal: unknown node");
}

uniecg_status uniecg__regex_compile(const char *pattern, size_t length, uniecg__regex **out, uniecg_error *error) {
    *out = NULL;
    uniecg__regex *re = calloc(1, sizeof *re);
    if (!re) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory compiling a regex");
    compiler c = {.s = pattern, .n = length, .re = re, .error = error};
    c.node_capacity = 2 * length + 4;
    if (c.node_capacity > MAX_NODES) c.node_capacity = MAX_NODES;
    c.nodes = calloc(c.node_capacity, sizeof *c.nodes);
    if (!c.nodes) {
        free(re);
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory compiling a regex");
    }
    bool fold = false;
    node *root = parse_alt(&c, &fold);
    if (root && c.i < c.n) cfail(&c, UNIECG_ERR_FORMAT, "unbalanced ')'");
    if (root && !c.status) {
        if (nullable(root)) cfail(&c, UNIECG_ERR_VERSION, "a pattern that can match the empty string is not supported");
        else if (gen(&c, root)) emit(&c, (inst){.op = OP_MATCH}, NULL);
    }
    free(c.nodes);
    if (c.status || !root) {
        uniecg__regex_free(re);
        return c.status ? c.status : uniecg__fail(error, UNIECG_ERR_FORMAT, "regex pattern: malformed");
    }
    *out = re;
    return UNIECG_OK;
}

void uniecg__regex_free(uniecg__regex *re) {
    if (!re) return;
    free(re->prog);
    free(re->items);
    free(re->classes);
    free(re);
}

void uniecg__regex_scratch_free(uniecg__regex_scratch *scratch) {
    free(scratch->stack);
    scratch->stack = NULL;
    scratch->capacity = 0;
}

/* ---- matching ---- */

typedef struct {
    uint32_t pc;
    size_t pos;
} thread;

static bool push(uniecg__regex_scratch *sc, size_t *top, uint32_t pc, size_t pos) {
    if (*top == sc->capacity) {
        size_t cap = sc->capacity ? sc->capacity * 2 : 256;
        thread *p = realloc(sc->stack, cap * sizeof *p);
        if (!p) return false;
        sc->stack = p;
        sc->capacity = cap;
    }
    ((thread *)sc->stack)[(*top)++] = (thread){pc, pos};
    return true;
}

/* Runs the program from pc at pos; 1 with *end on a match, 0 on none, -1 out of memory or
 * budget. */
static int run(const uniecg__regex *re, uint32_t start_pc, const char *s, size_t n, size_t start_pos,
               uniecg__regex_scratch *sc, size_t base, size_t *end, uint64_t *budget) {
    size_t top = base;
    if (!push(sc, &top, start_pc, start_pos)) return -1;
    while (top > base) {
        thread t = ((thread *)sc->stack)[--top];
        uint32_t pc = t.pc;
        size_t pos = t.pos;
        for (;;) {
            if (--*budget == 0) {
                sc->limit_hit = true;
                return -1;
            }
            const inst *in = &re->prog[pc];
            if (in->op == OP_CLASS || in->op == OP_LIT || in->op == OP_ANY) {
                if (pos >= n) break;
                uint32_t cp = (uint8_t)s[pos];
                size_t next = pos;
                if (cp < 0x80) next++;
                else cp = uniecg__utf8_next(s, &next);
                bool ok;
                if (in->op == OP_CLASS) ok = class_matches(re, &re->classes[in->arg], cp);
                else if (in->op == OP_LIT) ok = cp == in->arg || (in->fold && fold_cp(cp) == fold_cp(in->arg));
                else ok = cp != '\n';
                if (!ok) break;
                pos = next;
                pc++;
                continue;
            }
            if (in->op == OP_SPLIT) {
                if (!push(sc, &top, in->y, pos)) return -1;
                pc = in->x;
                continue;
            }
            if (in->op == OP_JMP) {
                pc = in->x;
                continue;
            }
            if (in->op == OP_LOOK) {
                size_t ignored;
                int r = run(re, in->arg, s, n, pos, sc, top, &ignored, budget);
                if (r < 0) return -1;
                if ((r == 1) == in->negative) break;
                pc = in->y;
                continue;
            }
            /* OP_MATCH */
            *end = pos;
            return 1;
        }
    }
    return 0;
}

int uniecg__regex_find(const uniecg__regex *re, const char *s, size_t n, size_t from, uniecg__regex_scratch *scratch,
                       size_t *start, size_t *end) {
    /* A quick filter: the first instruction, when it is a plain class or literal, must match. */
    const inst *first = &re->prog[0];
    uint64_t budget = (uint64_t)(n - from) * UNIECG__REGEX_STEPS_PER_BYTE + 1000000;
    for (size_t pos = from; pos < n;) {
        bool try_here = true;
        if (first->op == OP_CLASS && (uint8_t)s[pos] < 0x80)
            try_here = class_matches(re, &re->classes[first->arg], (uint8_t)s[pos]);
        if (try_here) {
            int r = run(re, 0, s, n, pos, scratch, 0, end, &budget);
            if (r != 0) {
                *start = pos;
                return r;
            }
        }
        pos += uniecg__utf8_length((uint8_t)s[pos]);
    }
    return 0;
}
