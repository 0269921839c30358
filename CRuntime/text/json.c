/* Recursive-descent JSON parser over an explicit length, two passes: the first counts nodes
 * and string bytes (and validates), the second fills one allocation. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct uniecg_json {
    uniecg_json_type type;
    bool boolean;
    double number;
    const char *string; /* STRING: value; members of an OBJECT: see key */
    size_t length;
    const char *key;    /* when this node is an object member */
    size_t count;       /* ARRAY / OBJECT: children */
    uniecg_json *first; /* first child; children are contiguous */
};

struct uniecg__json_doc {
    uniecg_json *nodes;
    char *strings;
};

typedef struct {
    const char *s;
    size_t n, i;
    int depth;
    /* pass 1 counts, pass 2 fills */
    bool fill;
    size_t node_count, string_bytes;
    uniecg_json *nodes;
    size_t next_node;
    char *strings;
    size_t next_string;
    char *message;
    size_t message_size;
    bool failed;
} parser;

static bool fail(parser *p, const char *what) {
    if (!p->failed && p->message_size) snprintf(p->message, p->message_size, "JSON: %s at byte %zu", what, p->i);
    p->failed = true;
    return false;
}

static void skip_ws(parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static bool literal(parser *p, const char *word) {
    size_t k = strlen(word);
    if (p->n - p->i < k || memcmp(p->s + p->i, word, k) != 0) return fail(p, "unexpected token");
    p->i += k;
    return true;
}

static int hex4(parser *p) {
    if (p->n - p->i < 4) return -1;
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i + k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    p->i += 4;
    return v;
}

static void put(parser *p, const char *bytes, size_t k) {
    if (p->fill) memcpy(p->strings + p->next_string, bytes, k);
    p->next_string += k;
}

/* Parses a string at p->i (the opening quote); on the fill pass stores it and sets *out. */
static bool string(parser *p, const char **out, size_t *out_length) {
    p->i++; /* quote */
    size_t start = p->next_string;
    for (;;) {
        if (p->i >= p->n) return fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) return fail(p, "control character in string");
        if (c != '\\') {
            put(p, p->s + p->i, 1);
            p->i++;
            continue;
        }
        if (++p->i >= p->n) return fail(p, "unterminated escape");
        char e = p->s[p->i++];
        char ch;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            int u = hex4(p);
            if (u < 0) return fail(p, "bad \\u escape");
            uint32_t cp = (uint32_t)u;
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') return fail(p, "lone surrogate");
                p->i += 2;
                int lo = hex4(p);
                if (lo < 0xDC00 || lo > 0xDFFF) return fail(p, "lone surrogate");
                cp = 0x10000 + ((uint32_t)(u - 0xD800) << 10) + (uint32_t)(lo - 0xDC00);
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return fail(p, "lone surrogate");
            }
            char buf[4];
            size_t k;
            if (cp < 0x80) { buf[0] = (char)cp; k = 1; }
            else if (cp < 0x800) { buf[0] = (char)(0xC0 | cp >> 6); buf[1] = (char)(0x80 | (cp & 0x3F)); k = 2; }
            else if (cp < 0x10000) {
                buf[0] = (char)(0xE0 | cp >> 12); buf[1] = (char)(0x80 | (cp >> 6 & 0x3F)); buf[2] = (char)(0x80 | (cp & 0x3F));
                k = 3;
            } else {
                buf[0] = (char)(0xF0 | cp >> 18); buf[1] = (char)(0x80 | (cp >> 12 & 0x3F));
                buf[2] = (char)(0x80 | (cp >> 6 & 0x3F)); buf[3] = (char)(0x80 | (cp & 0x3F));
                k = 4;
            }
            put(p, buf, k);
            continue;
        }
        default: return fail(p, "bad escape");
        }
        put(p, &ch, 1);
    }
    size_t length = p->next_string - start;
    put(p, "", 1);
    if (p->fill) {
        *out = p->strings + start;
        *out_length = length;
    }
    return true;
}

static bool value(parser *p, uniecg_json *node);

/* Children of a container are contiguous nodes. On the counting pass they are just parsed; on
 * the fill pass a counting walk over the container first learns how many there are (nesting is
 * at most 64 levels, so the repeated walks stay within 64x the text). */
static bool members(parser *p, uniecg_json *children, bool object, size_t *count) {
    char close = object ? '}' : ']';
    *count = 0;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        return true;
    }
    for (;;) {
        skip_ws(p);
        uniecg_json *child = children ? children + *count : NULL;
        if (!children) p->next_node++;
        if (object) {
            if (p->i >= p->n || p->s[p->i] != '"') return fail(p, "expected a member name");
            const char *k = NULL;
            size_t kl = 0;
            if (!string(p, &k, &kl)) return false;
            if (child) child->key = k;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') return fail(p, "expected ':'");
            p->i++;
        }
        if (!value(p, child)) return false;
        ++*count;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
        if (p->i < p->n && p->s[p->i] == close) { p->i++; return true; }
        return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool container(parser *p, uniecg_json *node, bool object) {
    p->i++;
    if (++p->depth > 64) return fail(p, "nesting deeper than 64");
    size_t count;
    if (!p->fill) {
        if (!members(p, NULL, object, &count)) return false;
    } else {
        parser q = *p;
        q.fill = false;
        if (!members(&q, NULL, object, &count)) return fail(p, "malformed container");
        uniecg_json *children = p->nodes + p->next_node;
        p->next_node += count;
        node->count = count;
        node->first = count ? children : NULL;
        size_t filled;
        if (!members(p, children, object, &filled) || filled != count) return fail(p, "malformed container");
    }
    p->depth--;
    return true;
}

static bool number(parser *p, uniecg_json *node) {
    size_t start = p->i;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad number");
    if (p->s[p->i] == '0') p->i++;
    else while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (node) {
        char buf[64];
        size_t k = p->i - start;
        if (k >= sizeof buf) {
            node->number = NAN; /* absurdly long literal: not a value any section uses */
        } else {
            memcpy(buf, p->s + start, k);
            buf[k] = 0;
            node->number = strtod(buf, NULL);
        }
    }
    return true;
}

static bool value(parser *p, uniecg_json *node) {
    skip_ws(p);
    if (p->i >= p->n) return fail(p, "unexpected end");
    char c = p->s[p->i];
    uniecg_json_type type;
    bool ok;
    const char *str = NULL;
    size_t len = 0;
    switch (c) {
    case '{': type = UNIECG_JSON_OBJECT; if (node) node->type = type; ok = container(p, node, true); break;
    case '[': type = UNIECG_JSON_ARRAY; if (node) node->type = type; ok = container(p, node, false); break;
    case '"': type = UNIECG_JSON_STRING; ok = string(p, &str, &len); break;
    case 't': type = UNIECG_JSON_BOOL; ok = literal(p, "true"); if (node) node->boolean = true; break;
    case 'f': type = UNIECG_JSON_BOOL; ok = literal(p, "false"); if (node) node->boolean = false; break;
    case 'n': type = UNIECG_JSON_NULL; ok = literal(p, "null"); break;
    default: type = UNIECG_JSON_NUMBER; ok = number(p, node); break;
    }
    if (ok && node) {
        node->type = type;
        if (type == UNIECG_JSON_STRING) {
            node->string = str;
            node->length = len;
        }
    }
    return ok;
}

uniecg__json_doc *uniecg__json_parse(const char *text, size_t length, char *message, size_t message_size) {
    if (message_size) message[0] = 0;
    parser p = {.s = text, .n = length, .message = message, .message_size = message_size};
    /* pass 1: validate and count */
    p.next_node = 1;
    if (!value(&p, NULL)) return NULL;
    skip_ws(&p);
    if (p.i != p.n) { fail(&p, "trailing characters"); return NULL; }
    size_t nodes = p.next_node, bytes = p.next_string;
    uniecg__json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) { if (message_size) snprintf(message, message_size, "JSON: out of memory"); return NULL; }
    doc->nodes = calloc(nodes, sizeof *doc->nodes);
    doc->strings = malloc(bytes ? bytes : 1);
    if (!doc->nodes || !doc->strings) {
        uniecg__json_free(doc);
        if (message_size) snprintf(message, message_size, "JSON: out of memory");
        return NULL;
    }
    parser q = {.s = text, .n = length, .fill = true, .nodes = doc->nodes, .next_node = 1, .strings = doc->strings,
                .message = message, .message_size = message_size};
    if (!value(&q, doc->nodes) || q.next_node != nodes || q.next_string != bytes) {
        uniecg__json_free(doc);
        if (message_size) snprintf(message, message_size, "JSON: internal inconsistency");
        return NULL;
    }
    return doc;
}

void uniecg__json_free(uniecg__json_doc *doc) {
    if (!doc) return;
    free(doc->nodes);
    free(doc->strings);
    free(doc);
}

const uniecg_json *uniecg__json_root(const uniecg__json_doc *doc) { return doc ? doc->nodes : NULL; }

uniecg_json_type uniecg__json_type(const uniecg_json *v) { return v ? v->type : UNIECG_JSON_NULL; }

const uniecg_json *uniecg__json_get(const uniecg_json *v, const char *key) {
    if (!v || v->type != UNIECG_JSON_OBJECT) return NULL;
    for (size_t i = 0; i < v->count; i++)
        if (strcmp(v->first[i].key, key) == 0) return &v->first[i];
    return NULL;
}

size_t uniecg__json_count(const uniecg_json *v) {
    return v && (v->type == UNIECG_JSON_ARRAY || v->type == UNIECG_JSON_OBJECT) ? v->count : 0;
}

const uniecg_json *uniecg__json_at(const uniecg_json *v, size_t i) {
    if (!v || v->type != UNIECG_JSON_ARRAY || i >= v->count) return NULL;
    return &v->first[i];
}

const char *uniecg__json_string(const uniecg_json *v, size_t *length) {
    if (!v || v->type != UNIECG_JSON_STRING) return NULL;
    if (length) *length = v->length;
    return v->string;
}

bool uniecg__json_bool(const uniecg_json *v, bool *out) {
    if (!v || v->type != UNIECG_JSON_BOOL) return false;
    *out = v->boolean;
    return true;
}

bool uniecg__json_number(const uniecg_json *v, double *out) {
    if (!v || v->type != UNIECG_JSON_NUMBER) return false;
    *out = v->number;
    return true;
}
