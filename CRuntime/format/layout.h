/* Constants of the .uecg byte layout (ModelFormat.md is the normative text). Shared by the
 * reader and the writer so the two cannot drift apart. */
#ifndef UNIECG_FORMAT_LAYOUT_H
#define UNIECG_FORMAT_LAYOUT_H

#include <stdint.h>

static const uint8_t UNIECG_MAGIC[8] = {0x89, 'U', 'E', 'C', 'G', '\r', '\n', 0x1A};

enum {
    HEADER_SIZE = 96,
    PAYLOAD_ALIGNMENT = 64,
    /* header field offsets */
    H_MAGIC = 0, H_MAJOR = 8, H_MINOR = 10, H_FLAGS = 12, H_FILE_SIZE = 16,
    H_META_OFFSET = 24, H_META_SIZE = 32, H_META_HASH = 40,
    H_TABLE_OFFSET = 48, H_TABLE_SIZE = 56, H_TABLE_HASH = 64,
    H_META_COUNT = 72, H_TENSOR_COUNT = 76, H_RESERVED = 80, H_HEADER_HASH = 88,
};

/* Hard limits (ModelFormat.md §9). */
#define LIMIT_KEY_BYTES 255u
#define LIMIT_META_SECTION (256ull << 20)
#define LIMIT_TABLE_SECTION (64ull << 20)
#define LIMIT_META_COUNT 65535u
#define LIMIT_TENSOR_COUNT 1000000u
#define LIMIT_STRING_BYTES (16u << 20)
#define LIMIT_ELEMENTS (1ull << 40)

#endif
