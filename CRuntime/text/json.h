/* A tiny bounds-checked JSON reader (RFC 8259) for the tokenizer's normalizer, pre_tokenizer and
 * decoder sections. The whole document is parsed into one allocation of nodes; strings are
 * unescaped into it. Not public API. */
#ifndef UNIECG_JSON_H
#define UNIECG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { UNIECG_JSON_NULL, UNIECG_JSON_BOOL, UNIECG_JSON_NUMBER, UNIECG_JSON_STRING, UNIECG_JSON_ARRAY,
               UNIECG_JSON_OBJECT } uniecg_json_type;

typedef struct uniecg_json uniecg_json;

typedef struct uniecg__json_doc uniecg__json_doc;

/* Parses text[0..length); NULL on failure with a message (naming the byte offset) in
 * message[0..message_size). Nesting deeper than 64 levels is refused. */
uniecg__json_doc *uniecg__json_parse(const char *text, size_t length, char *message, size_t message_size);
void uniecg__json_free(uniecg__json_doc *doc);
const uniecg_json *uniecg__json_root(const uniecg__json_doc *doc);

uniecg_json_type uniecg__json_type(const uniecg_json *v);
/* Member `key` of an object (NULL when v is not an object or lacks it). */
const uniecg_json *uniecg__json_get(const uniecg_json *v, const char *key);
/* Element i of an array (NULL when out of range or v is not an array). */
size_t uniecg__json_count(const uniecg_json *v);
const uniecg_json *uniecg__json_at(const uniecg_json *v, size_t i);
/* String value (NUL-terminated; may contain NUL, see length) or NULL when v is not a string. */
const char *uniecg__json_string(const uniecg_json *v, size_t *length);
/* True and *out when v is a bool / a number. */
bool uniecg__json_bool(const uniecg_json *v, bool *out);
bool uniecg__json_number(const uniecg_json *v, double *out);

#endif
