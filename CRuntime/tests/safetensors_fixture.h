/* Reading the float32 tensors of a fixture's .safetensors file in C tests that build a .uecg
 * with the C writer (the Swift tests use the real converter on the same files). Uses the
 * core's internal JSON parser; include after testing.h. */
#ifndef UNIECG_SAFETENSORS_FIXTURE_H
#define UNIECG_SAFETENSORS_FIXTURE_H

#include "../text/json.h"
#include "testing.h"

typedef struct {
    unsigned char *bytes;
    size_t length, data_start; /* data_start: the end of the 8-byte length and the JSON header */
    uniecg__json_doc *header;
} test_safetensors;

/* False (with a note for a bad header) when the file is unreadable or malformed. */
__attribute__((unused)) static bool test_safetensors_open(const char *path, test_safetensors *st) {
    memset(st, 0, sizeof *st);
    st->bytes = test_read_path(path, &st->length);
    if (!st->bytes || st->length < 8) return false;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | st->bytes[i];
    if (n > st->length - 8) return false;
    st->data_start = 8 + (size_t)n;
    char message[200];
    st->header = uniecg__json_parse((const char *)st->bytes + 8, (size_t)n, message, sizeof message);
    if (!st->header) return printf("note: %s: %s\n", path, message), false;
    return true;
}

__attribute__((unused)) static void test_safetensors_close(test_safetensors *st) {
    uniecg__json_free(st->header);
    free(st->bytes);
    memset(st, 0, sizeof *st);
}

/* The f32 values of tensor `name` (a fresh copy; NULL when absent or not F32). */
__attribute__((unused)) static float *test_safetensors_f32(const test_safetensors *st, const char *name,
                                                           int64_t *count) {
    const uniecg_json *t = uniecg__json_get(uniecg__json_root(st->header), name);
    const char *dtype = uniecg__json_string(uniecg__json_get(t, "dtype"), NULL);
    const uniecg_json *off = uniecg__json_get(t, "data_offsets");
    double a = -1, b = -1;
    if (!t || !dtype || strcmp(dtype, "F32") || !uniecg__json_number(uniecg__json_at(off, 0), &a) ||
        !uniecg__json_number(uniecg__json_at(off, 1), &b) || a < 0 || b < a ||
        st->data_start + (size_t)b > st->length)
        return NULL;
    *count = (int64_t)(b - a) / 4;
    float *out = malloc((size_t)(b - a) + 4);
    memcpy(out, st->bytes + st->data_start + (size_t)a, (size_t)(b - a));
    return out;
}

#endif
