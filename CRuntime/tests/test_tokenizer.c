/* Tokenizer tests against Hugging Face `tokenizers` (Tests/Fixtures/tokenizer, written by
 * Tools/reference/make_tokenizer_fixtures.py).
 *
 * For each fixture tokenizer: builds a tokenizer-only .uecg from <name>.meta.txt with the C
 * writer, then checks every string of <name>.cases.txt (ids with and without add_special, with
 * special tokens parsed and literal, decode with and without skip_special, streaming decode) and
 * every sequence of <name>.decode.txt; then error handling, and an encode speed figure.
 *
 * Fixtures: $UNIECG_FIXTURES/tokenizer when set, else found from the working directory or from
 * this file's path. Last output line: "N passed, M failed"; exit status 1 on any failure. */
#include "testing.h" /* test_find_fixtures; this program keeps its own pass/fail counters */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- files ---- */

static char fixtures[1024];

static bool find_fixtures(void) {
    return test_find_fixtures("tokenizer", "tiny-qwen2.meta.txt", fixtures, sizeof fixtures);
}

static char *read_file(const char *name, size_t *length) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)size + 1);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) { free(data); data = NULL; }
    fclose(f);
    if (data) { data[size] = 0; *length = (size_t)size; }
    return data;
}

/* Splits text into lines in place (NUL-terminated); returns the count. */
static size_t split_lines(char *text, char ***out) {
    size_t count = 0, capacity = 1024;
    char **lines = malloc(capacity * sizeof *lines);
    char *p = text;
    while (*p) {
        char *end = strchr(p, '\n');
        if (end) *end = 0;
        if (count == capacity) lines = realloc(lines, (capacity *= 2) * sizeof *lines);
        lines[count++] = p;
        if (!end) break;
        p = end + 1;
    }
    *out = lines;
    return count;
}

/* %XX unescaping into a new allocation. */
static char *unescape(const char *s, size_t n, size_t *out_length) {
    char *out = malloc(n + 1);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n) {
            unsigned v;
            char hex[3] = {s[i + 1], s[i + 2], 0};
            if (sscanf(hex, "%2x", &v) == 1) {
                out[w++] = (char)v;
                i += 2;
                continue;
            }
        }
        out[w++] = s[i];
    }
    out[w] = 0;
    *out_length = w;
    return out;
}

static size_t parse_ids(const char *s, int32_t *ids, size_t capacity) {
    size_t n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        if (n < capacity) ids[n] = (int32_t)v;
        n++;
        s = end;
    }
    return n;
}

static bool valid_utf8(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return false;
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            unsigned b = s[i + k];
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return false;
        }
        i += len;
    }
    return true;
}

/* ---- building a tokenizer-only model file from a metadata dump ---- */

typedef struct {
    char *removed_key;        /* skip this key */
    const char *override_key; /* replace this string key's value */
    const char *override_value;
    const char *retype_key;   /* write this key as a string "x" instead */
} meta_edit;

static uniecg_status write_model(const char *meta_name, const char *path, const meta_edit *edit, char *message) {
    size_t length;
    char *text = read_file(meta_name, &length);
    if (!text) {
        snprintf(message, 256, "cannot read %.150s/%.60s", fixtures, meta_name);
        return UNIECG_ERR_IO;
    }
    char **lines;
    size_t count = split_lines(text, &lines);
    uniecg_model_writer *w;
    uniecg_error error = {0};
    uniecg_status s = uniecg_model_writer_create(path, uniecg_writer_default_params(), &w, &error);
    if (s) {
        snprintf(message, 256, "%.200s", error.message);
        free(lines);
        free(text);
        return s;
    }
    for (size_t i = 0; i < count && !s; i++) {
        char *line = lines[i];
        if (!line[0] || line[0] == '#') continue;
        char kind[8], key[128];
        int consumed = 0;
        if (sscanf(line, "%7s %127s %n", kind, key, &consumed) < 2) continue;
        const char *value = line + consumed;
        bool skip = edit && edit->removed_key && strcmp(edit->removed_key, key) == 0;
        if (edit && edit->retype_key && strcmp(edit->retype_key, key) == 0) {
            skip = true;
            s = uniecg_model_writer_set_string(w, key, "x", 1);
        }
        if (strcmp(kind, "strs") == 0) {
            size_t n = (size_t)strtoull(value, NULL, 10);
            char **items = calloc(n ? n : 1, sizeof *items);
            uint64_t *lengths = calloc(n ? n : 1, sizeof *lengths);
            for (size_t k = 0; k < n && i + 1 < count; k++) {
                i++;
                size_t l;
                items[k] = unescape(lines[i], strlen(lines[i]), &l);
                lengths[k] = l;
            }
            if (!skip) s = uniecg_model_writer_set_string_array(w, key, (const char *const *)items, lengths, n);
            for (size_t k = 0; k < n; k++) free(items[k]);
            free(items);
            free(lengths);
        } else if (skip) {
            continue;
        } else if (strcmp(kind, "str") == 0) {
            size_t l;
            char *v;
            if (edit && edit->override_key && strcmp(edit->override_key, key) == 0) v = unescape(edit->override_value, strlen(edit->override_value), &l);
            else v = unescape(value, strlen(value), &l);
            s = uniecg_model_writer_set_string(w, key, v, l);
            free(v);
        } else if (strcmp(kind, "bool") == 0) {
            s = uniecg_model_writer_set_bool(w, key, atoi(value) != 0);
        } else if (strcmp(kind, "i64") == 0) {
            s = uniecg_model_writer_set_i64(w, key, strtoll(value, NULL, 10));
        } else if (strcmp(kind, "i32s") == 0) {
            char *end;
            size_t n = (size_t)strtoull(value, &end, 10);
            int32_t *v = calloc(n ? n : 1, sizeof *v);
            parse_ids(end, v, n);
            s = uniecg_model_writer_set_array(w, key, UNIECG_META_I32_ARRAY, v, n);
            free(v);
        }
    }
    if (!s) s = uniecg_model_writer_finish(w);
    if (s) snprintf(message, 256, "writer: %.200s", uniecg_model_writer_last_error(w));
    uniecg_model_writer_free(w);
    free(lines);
    free(text);
    return s;
}

static void temp_path(char *out, size_t size, const char *name) {
    const char *dir = getenv("TMPDIR");
    snprintf(out, size, "%s/uniecg-test-tokenizer-%ld-%s.uecg", dir ? dir : "/tmp", (long)getpid(), name);
}

/* Builds and opens the model file, creates the tokenizer, frees the file (the tokenizer must not
 * depend on it). */
static uniecg_status load_tokenizer(const char *name, const meta_edit *edit, uniecg_tokenizer **out, uniecg_error *error) {
    char meta[256], path[1024], message[256] = "";
    snprintf(meta, sizeof meta, "%s.meta.txt", name);
    temp_path(path, sizeof path, name);
    uniecg_status s = write_model(meta, path, edit, message);
    if (s) {
        snprintf(error->message, sizeof error->message, "%s", message);
        return s;
    }
    uniecg_model_file *file;
    s = uniecg_model_file_open(path, uniecg_open_default_params(), &file, error);
    remove(path);
    if (s) return s;
    s = uniecg_tokenizer_create(file, out, error);
    uniecg_model_file_free(file);
    return s;
}

/* ---- checks ---- */

typedef struct {
    int32_t *ids;
    size_t count;
} idvec;

static idvec encode(const uniecg_tokenizer *t, const char *s, size_t n, bool add_special, bool parse_special,
                    uniecg_status *status) {
    idvec v = {0};
    size_t needed = 0;
    uniecg_error error;
    *status = uniecg_tokenizer_encode(t, s, n, add_special, parse_special, NULL, 0, &needed, &error);
    if (*status == UNIECG_ERR_LIMIT || *status == UNIECG_OK) {
        v.ids = malloc((needed ? needed : 1) * sizeof *v.ids);
        *status = uniecg_tokenizer_encode(t, s, n, add_special, parse_special, v.ids, needed, &v.count, &error);
    }
    return v;
}

static bool same_ids(const int32_t *a, size_t an, const int32_t *b, size_t bn) {
    return an == bn && (an == 0 || memcmp(a, b, an * sizeof *a) == 0);
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    if (test_failed > TEST_MAX_REPORTS) return;
    printf("  %s:", label);
    for (size_t i = 0; i < n && i < 60; i++) printf(" %d", ids[i]);
    printf(n > 60 ? " ...\n" : "\n");
}

/* decode with uniecg_tokenizer_decode, then with the streaming detokenizer; checks they agree,
 * that every chunk is valid UTF-8, and compares with `expected`. */
static void check_decode(const uniecg_tokenizer *t, const char *name, size_t line, const int32_t *ids, size_t n,
                         bool skip, const char *expected, size_t expected_length) {
    size_t length = 0;
    uniecg_error error;
    uniecg_status s = uniecg_tokenizer_decode(t, ids, n, skip, NULL, 0, &length, &error);
    char *text = malloc(length + 1);
    if (s == UNIECG_ERR_LIMIT) s = uniecg_tokenizer_decode(t, ids, n, skip, text, length + 1, &length, &error);
    if (s) {
        test_fail(__FILE__, __LINE__, "%s line %zu: decode failed: %s", name, line, error.message);
        free(text);
        return;
    }
    if (length != expected_length || memcmp(text, expected, length) != 0) {
        test_fail(__FILE__, __LINE__, "%s line %zu: decode(skip=%d) gives \"%.*s\", Hugging Face \"%.*s\"", name, line, skip, (int)length, text,
                (int)expected_length, expected);
    } else {
        test_passed++;
    }
    uniecg_detokenizer *d;
    if (uniecg_detokenizer_create(t, skip, &d, &error)) {
        test_fail(__FILE__, __LINE__, "detokenizer_create: %s", error.message);
        free(text);
        return;
    }
    char *stream = malloc(length + 64);
    size_t at = 0;
    bool ok = true, valid = true;
    for (size_t i = 0; i <= n && ok; i++) {
        const char *piece;
        size_t pn;
        s = i < n ? uniecg_detokenizer_push(d, ids[i], &piece, &pn, &error) : uniecg_detokenizer_flush(d, &piece, &pn, &error);
        if (s || at + pn > length) { ok = false; break; }
        if (!valid_utf8(piece, pn) || piece[pn] != 0) valid = false;
        memcpy(stream + at, piece, pn);
        at += pn;
    }
    if (!ok || at != length || memcmp(stream, text, length) != 0)
        test_fail(__FILE__, __LINE__, "%s line %zu: streaming decode(skip=%d) differs from decode", name, line, skip);
    else if (!valid)
        test_fail(__FILE__, __LINE__, "%s line %zu: streaming decode emitted invalid UTF-8", name, line);
    else
        test_passed++;
    uniecg_detokenizer_free(d);
    free(stream);
    free(text);
}

static void run_cases(const char *name, const uniecg_tokenizer *t, int *round_trips, int *strings) {
    char file[256];
    snprintf(file, sizeof file, "%s.cases.txt", name);
    size_t length;
    char *text = read_file(file, &length);
    if (!text) { test_fail(__FILE__, __LINE__, "cannot read %s", file); return; }
    uniecg_tokenizer_info info;
    uniecg_tokenizer_get_info(t, &info);
    char **lines;
    size_t count = split_lines(text, &lines);
    for (size_t li = 0; li < count; li++) {
        char *fields[6];
        int nf = 0;
        char *p = lines[li];
        fields[nf++] = p;
        while (nf < 6 && (p = strchr(p, '\t'))) { *p++ = 0; fields[nf++] = p; }
        if (nf != 6) { test_fail(__FILE__, __LINE__, "%s line %zu: malformed", file, li + 1); continue; }
        size_t sn;
        char *s = unescape(fields[0], strlen(fields[0]), &sn);
        size_t want_n = parse_ids(fields[1], NULL, 0);
        int32_t *want = malloc((want_n + 2) * sizeof *want);
        parse_ids(fields[1], want, want_n);
        uniecg_status status;
        idvec got = encode(t, s, sn, false, true, &status);
        if (status || !same_ids(got.ids, got.count, want, want_n)) {
            test_fail(__FILE__, __LINE__, "%s line %zu: encode \"%s\" (status %d)", name, li + 1, fields[0], status);
            print_ids("got ", got.ids, got.count);
            print_ids("want", want, want_n);
        } else {
            test_passed++;
        }
        /* add_special */
        int32_t *with = malloc((want_n + 2) * sizeof *with);
        size_t wn = 0;
        if (info.add_bos) with[wn++] = info.bos_id;
        memcpy(with + wn, want, want_n * sizeof *want);
        wn += want_n;
        if (info.add_eos) with[wn++] = info.eos_id;
        if (strcmp(fields[2], "+") != 0) wn = parse_ids(fields[2], with, want_n + 2);
        idvec got2 = encode(t, s, sn, true, true, &status);
        if (status || !same_ids(got2.ids, got2.count, with, wn)) test_fail(__FILE__, __LINE__, "%s line %zu: encode with add_special", name, li + 1);
        else test_passed++;
        /* special tokens as text */
        if (strcmp(fields[3], "=") != 0) {
            size_t ln = parse_ids(fields[3], NULL, 0);
            int32_t *lit = malloc((ln ? ln : 1) * sizeof *lit);
            parse_ids(fields[3], lit, ln);
            idvec got3 = encode(t, s, sn, false, false, &status);
            if (status || !same_ids(got3.ids, got3.count, lit, ln)) {
                test_fail(__FILE__, __LINE__, "%s line %zu: encode with parse_special = false", name, li + 1);
                print_ids("got ", got3.ids, got3.count);
                print_ids("want", lit, ln);
            } else {
                test_passed++;
            }
            free(got3.ids);
            free(lit);
        } else {
            idvec got3 = encode(t, s, sn, false, false, &status);
            if (status || !same_ids(got3.ids, got3.count, want, want_n))
                test_fail(__FILE__, __LINE__, "%s line %zu: encode with parse_special = false", name, li + 1);
            else test_passed++;
            free(got3.ids);
        }
        /* decode */
        size_t dn, kn;
        char *decoded = strcmp(fields[4], "%=") == 0 ? unescape(fields[0], strlen(fields[0]), &dn)
                                                      : unescape(fields[4], strlen(fields[4]), &dn);
        char *skipped;
        if (strcmp(fields[5], "%=") == 0) {
            skipped = malloc(dn + 1);
            memcpy(skipped, decoded, dn + 1);
            kn = dn;
        } else {
            skipped = unescape(fields[5], strlen(fields[5]), &kn);
        }
        check_decode(t, name, li + 1, want, want_n, false, decoded, dn);
        check_decode(t, name, li + 1, want, want_n, true, skipped, kn);
        if (strcmp(fields[4], "%=") == 0) ++*round_trips;
        ++*strings;
        free(decoded);
        free(skipped);
        free(got.ids);
        free(got2.ids);
        free(with);
        free(want);
        free(s);
    }
    free(lines);
    free(text);
}

static void run_decode(const char *name, const uniecg_tokenizer *t, int *sequences) {
    char file[256];
    snprintf(file, sizeof file, "%s.decode.txt", name);
    size_t length;
    char *text = read_file(file, &length);
    if (!text) { test_fail(__FILE__, __LINE__, "cannot read %s", file); return; }
    char **lines;
    size_t count = split_lines(text, &lines);
    for (size_t li = 0; li < count; li++) {
        char *fields[3];
        int nf = 0;
        char *p = lines[li];
        fields[nf++] = p;
        while (nf < 3 && (p = strchr(p, '\t'))) { *p++ = 0; fields[nf++] = p; }
        if (nf != 3) { test_fail(__FILE__, __LINE__, "%s line %zu: malformed", file, li + 1); continue; }
        size_t n = parse_ids(fields[0], NULL, 0);
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        parse_ids(fields[0], ids, n);
        size_t dn, kn;
        char *decoded = unescape(fields[1], strlen(fields[1]), &dn);
        char *skipped = unescape(fields[2], strlen(fields[2]), &kn);
        char label[300];
        snprintf(label, sizeof label, "%s (decode)", name);
        check_decode(t, label, li + 1, ids, n, false, decoded, dn);
        check_decode(t, label, li + 1, ids, n, true, skipped, kn);
        ++*sequences;
        free(decoded);
        free(skipped);
        free(ids);
    }
    free(lines);
    free(text);
}

/* Encode speed on ~100 KB of the fixture strings (mixed scripts, code, ECG prose). */
static void speed(const char *name, const uniecg_tokenizer *t) {
    char file[256];
    snprintf(file, sizeof file, "%s.cases.txt", name);
    size_t length;
    char *text = read_file(file, &length);
    if (!text) return;
    char **lines;
    size_t count = split_lines(text, &lines);
    size_t cap = 110000, n = 0;
    char *corpus = malloc(cap + 8192);
    while (n < 100000) {
        for (size_t li = 0; li < count && n < 100000; li++) {
            char *tab = strchr(lines[li], '\t');
            size_t sn;
            char *s = unescape(lines[li], tab ? (size_t)(tab - lines[li]) : strlen(lines[li]), &sn);
            if (n + sn + 1 < cap + 8192) {
                memcpy(corpus + n, s, sn);
                n += sn;
                corpus[n++] = '\n';
            }
            free(s);
        }
    }
    double best = 1e9;
    size_t tokens = 0;
    int32_t *ids = malloc(n * sizeof *ids + 64);
    for (int rep = 0; rep < 5; rep++) {
        double t0 = test_clock_seconds(CLOCK_MONOTONIC);
        uniecg_status status = uniecg_tokenizer_encode(t, corpus, n, false, true, ids, n + 16, &tokens, NULL);
        double dt = test_clock_seconds(CLOCK_MONOTONIC) - t0;
        if (status) test_fail(__FILE__, __LINE__, "%s: encoding the speed corpus failed", name);
        if (dt < best) best = dt;
    }
    free(ids);
    printf("speed %-16s %zu bytes -> %zu tokens in %.1f ms: %.2f MB/s\n", name, n, tokens, best * 1e3, n / best / 1e6);
    free(corpus);
    free(lines);
    free(text);
}

/* ---- error handling ---- */

static void errors(void) {
    uniecg_tokenizer *t = NULL;
    uniecg_error error = {0};
    meta_edit missing = {.removed_key = "tokenizer.merges"};
    uniecg_status s = load_tokenizer("tiny-qwen2", &missing, &t, &error);
    CHECK_MSG(s == UNIECG_ERR_NOT_FOUND && strstr(error.message, "tokenizer.merges"), "missing key is named");
    uniecg_tokenizer_free(t);
    t = NULL;

    meta_edit retyped = {.retype_key = "tokenizer.bos_id"};
    s = load_tokenizer("tiny-qwen2", &retyped, &t, &error);
    CHECK_MSG(s == UNIECG_ERR_TYPE && strstr(error.message, "tokenizer.bos_id"), "mistyped key is named");
    uniecg_tokenizer_free(t);
    t = NULL;

    meta_edit lower = {.override_key = "tokenizer.normalizer", .override_value = "{\"type\":\"Lowercase\"}"};
    s = load_tokenizer("tiny-qwen2", &lower, &t, &error);
    CHECK_MSG(s == UNIECG_ERR_VERSION && strstr(error.message, "Lowercase") && strstr(error.message, "normalizer"),
          "unsupported normalizer is named");
    uniecg_tokenizer_free(t);
    t = NULL;

    meta_edit lookbehind = {.override_key = "tokenizer.pre_tokenizer",
                            .override_value = "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?<=a)b\"},\"behavior\":\"Isolated\",\"invert\":false}"};
    s = load_tokenizer("tiny-qwen2", &lookbehind, &t, &error);
    CHECK_MSG(s == UNIECG_ERR_VERSION && strstr(error.message, "regex"), "unsupported regex construct is refused");
    uniecg_tokenizer_free(t);
    t = NULL;

    meta_edit exponential = {.override_key = "tokenizer.pre_tokenizer",
                             .override_value = "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a|a)*b\"},\"behavior\":\"Isolated\",\"invert\":false}"};
    s = load_tokenizer("tiny-qwen2", &exponential, &t, &error);
    CHECK_MSG(s == UNIECG_OK, "a backtracking-heavy pattern compiles");
    if (!s) {
        const char *as = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        size_t count;
        s = uniecg_tokenizer_encode(t, as, strlen(as), false, true, NULL, 0, &count, &error);
        CHECK_MSG(s == UNIECG_ERR_LIMIT && strstr(error.message, "backtracking"), "regex backtracking is bounded");
    }
    uniecg_tokenizer_free(t);
    t = NULL;

    meta_edit broken = {.override_key = "tokenizer.decoder", .override_value = "{\"type\": \"ByteLevel\""};
    s = load_tokenizer("tiny-qwen2", &broken, &t, &error);
    CHECK_MSG(s == UNIECG_ERR_FORMAT && strstr(error.message, "tokenizer.decoder"), "malformed JSON is named");
    uniecg_tokenizer_free(t);
    t = NULL;

    meta_edit model = {.override_key = "tokenizer.model", .override_value = "unigram"};
    s = load_tokenizer("tiny-qwen2", &model, &t, &error);
    CHECK_MSG(s == UNIECG_ERR_VERSION && strstr(error.message, "unigram"), "unsupported model is named");
    uniecg_tokenizer_free(t);
    t = NULL;

    s = load_tokenizer("tiny-qwen2", NULL, &t, &error);
    CHECK_MSG(s == UNIECG_OK, "tiny-qwen2 loads");
    if (s) return;
    int32_t ids[4];
    size_t n = 99;
    s = uniecg_tokenizer_encode(t, "ab\xC3(", 4, false, true, ids, 4, &n, &error);
    CHECK_MSG(s == UNIECG_ERR_INVALID_ARGUMENT && strstr(error.message, "UTF-8") && strstr(error.message, "byte 2"),
          "invalid UTF-8 is refused with its offset");
    const char *sentence = "The quick brown fox jumps over the lazy dog, twice over.";
    s = uniecg_tokenizer_encode(t, sentence, strlen(sentence), false, true, NULL, 0, &n, &error);
    CHECK_MSG(s == UNIECG_ERR_LIMIT && n > 4, "encode reports the needed capacity");
    size_t needed = n;
    s = uniecg_tokenizer_encode(t, sentence, strlen(sentence), false, true, ids, 4, &n, &error);
    CHECK_MSG(s == UNIECG_ERR_LIMIT && n == needed, "encode refuses a short buffer");
    s = uniecg_tokenizer_encode(t, "", 0, true, true, ids, 4, &n, &error);
    CHECK_MSG(s == UNIECG_OK && n == 0, "empty text encodes to nothing");
    char small[4];
    size_t dl;
    int32_t hello[2];
    s = uniecg_tokenizer_encode(t, "h", 1, false, true, hello, 1, &n, &error);
    s |= uniecg_tokenizer_encode(t, "i", 1, false, true, hello + 1, 1, &n, &error);
    CHECK_MSG(s == UNIECG_OK, "single letters encode to one token");
    s = uniecg_tokenizer_decode(t, hello, 2, false, small, 2, &dl, &error);
    CHECK_MSG(s == UNIECG_ERR_LIMIT && dl == 2, "decode reports the needed capacity");
    s = uniecg_tokenizer_decode(t, hello, 2, false, small, 3, &dl, &error);
    CHECK_MSG(s == UNIECG_OK && strcmp(small, "hi") == 0, "decode fits exactly");
    uniecg_detokenizer *d;
    uniecg_detokenizer_create(t, false, &d, &error);
    const char *piece;
    s = uniecg_detokenizer_push(d, 1 << 30, &piece, &dl, &error);
    CHECK_MSG(s == UNIECG_ERR_INVALID_ARGUMENT && strstr(error.message, "outside"), "detokenizer refuses a bad id");
    uniecg_detokenizer_free(d);
    uniecg_detokenizer_free(NULL);
    const char *tt;
    CHECK_MSG(uniecg_tokenizer_token_text(t, hello[0], &tt, &dl) == UNIECG_OK && dl == 1 && tt[0] == 'h', "token text");
    CHECK_MSG(uniecg_tokenizer_token_text(t, -1, &tt, &dl) == UNIECG_ERR_INVALID_ARGUMENT, "token text of a bad id");
    uniecg_tokenizer_free(t);
    uniecg_tokenizer_free(NULL);
}

/* Split UTF-8 across byte-level tokens: each character appears only once complete. */
static void streaming_split(void) {
    uniecg_tokenizer *t = NULL;
    uniecg_error error;
    if (load_tokenizer("tiny-qwen2", NULL, &t, &error)) { test_fail(__FILE__, __LINE__, "tiny-qwen2: %s", error.message); return; }
    const char *text = "心电图 ❤️ 👨‍👩‍👧";
    uniecg_status s;
    idvec v = encode(t, text, strlen(text), false, true, &s);
    uniecg_detokenizer *d;
    uniecg_detokenizer_create(t, false, &d, &error);
    size_t pieces = 0, bytes = 0;
    bool ok = true;
    for (size_t i = 0; i < v.count; i++) {
        const char *piece;
        size_t n;
        if (uniecg_detokenizer_push(d, v.ids[i], &piece, &n, &error) || !valid_utf8(piece, n)) ok = false;
        if (n) pieces++;
        bytes += n;
    }
    CHECK_MSG(ok && v.count > pieces && bytes == strlen(text), "streaming holds back split characters");
    /* a dangling lead byte at the end becomes U+FFFD at flush, like Hugging Face: the byte-level
     * token of byte 0xE5 is the character U+00E5 */
    const char *piece;
    size_t n;
    int32_t lead = -1;
    for (int32_t id = 0; id < uniecg_tokenizer_vocab_size(t) && lead < 0; id++)
        if (uniecg_tokenizer_token_text(t, id, &piece, &n) == UNIECG_OK && n == 2 && memcmp(piece, "\xC3\xA5", 2) == 0) lead = id;
    CHECK_MSG(lead >= 0, "the vocabulary has the byte token of 0xE5");
    s = uniecg_detokenizer_push(d, lead, &piece, &n, &error);
    CHECK_MSG(s == UNIECG_OK && n == 0, "a lone lead byte is held back");
    s = uniecg_detokenizer_flush(d, &piece, &n, &error);
    CHECK_MSG(s == UNIECG_OK && n == 3 && memcmp(piece, "\xEF\xBF\xBD", 3) == 0, "flush turns a partial character into U+FFFD");
    uniecg_detokenizer_free(d);
    free(v.ids);
    uniecg_tokenizer_free(t);
}

/* Without arguments: every fixture tokenizer, the error checks and the speed figures. With
 * arguments: only the named fixtures (for trying other tokenizer configurations). */
int main(int argc, char **argv) {
    if (!find_fixtures()) {
        printf("cannot find Tests/Fixtures/tokenizer (set UNIECG_FIXTURES)\n0 passed, 1 failed\n");
        return 1;
    }
    const char *defaults[] = {"tiny-llama", "tiny-qwen2", "large-bytelevel", "gpt2-bytelevel"};
    const char *const *names = argc > 1 ? (const char *const *)argv + 1 : defaults;
    int count = argc > 1 ? argc - 1 : 4;
    if (count > 16) count = 16;
    uniecg_tokenizer *tokenizers[16] = {0};
    for (int i = 0; i < count; i++) {
        uniecg_error error = {0};
        if (load_tokenizer(names[i], NULL, &tokenizers[i], &error)) {
            test_fail(__FILE__, __LINE__, "%s: %s", names[i], error.message);
            continue;
        }
        int round_trips = 0, strings = 0, sequences = 0;
        int before = test_failed;
        run_cases(names[i], tokenizers[i], &round_trips, &strings);
        run_decode(names[i], tokenizers[i], &sequences);
        printf("%-16s %d strings (%d round-trip), %d decode sequences: %s\n", names[i], strings, round_trips, sequences,
               test_failed == before ? "all identical to Hugging Face" : "MISMATCHES");
    }
    if (argc == 1) {
        errors();
        streaming_split();
    }
    for (int i = 0; i < count; i++)
        if (tokenizers[i]) speed(names[i], tokenizers[i]);
    for (int i = 0; i < count; i++) uniecg_tokenizer_free(tokenizers[i]);
    return test_summary();
}
