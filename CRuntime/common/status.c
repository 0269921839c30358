#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

const char *uniecg_status_string(uniecg_status status) {
    switch (status) {
    case UNIECG_OK: return "ok";
    case UNIECG_ERR_INVALID_ARGUMENT: return "invalid argument";
    case UNIECG_ERR_IO: return "input/output error";
    case UNIECG_ERR_FORMAT: return "malformed model file";
    case UNIECG_ERR_VERSION: return "unsupported format version or feature";
    case UNIECG_ERR_CHECKSUM: return "checksum mismatch";
    case UNIECG_ERR_COMPRESSION: return "corrupt compressed payload";
    case UNIECG_ERR_OUT_OF_MEMORY: return "out of memory";
    case UNIECG_ERR_NOT_FOUND: return "not found";
    case UNIECG_ERR_TYPE: return "wrong type";
    case UNIECG_ERR_LIMIT: return "size limit exceeded";
    case UNIECG_ERR_RANGE: return "value out of range";
    case UNIECG_ERR_STATE: return "call out of order";
    case UNIECG_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

uniecg_status uniecg__fail(uniecg_error *error, uniecg_status status, const char *format, ...) {
    if (error) {
        error->status = status;
        va_list args;
        va_start(args, format);
        vsnprintf(error->message, sizeof error->message, format, args);
        va_end(args);
    }
    return status;
}

bool uniecg__valid_utf8(const uint8_t *s, uint64_t n) {
    uint64_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0) return false;
        if (c < 0x80) { i++; continue; }
        uint32_t cp;
        int extra;
        if (c >= 0xC2 && c <= 0xDF) { cp = c & 0x1F; extra = 1; }
        else if (c >= 0xE0 && c <= 0xEF) { cp = c & 0x0F; extra = 2; }
        else if (c >= 0xF0 && c <= 0xF4) { cp = c & 0x07; extra = 3; }
        else return false;
        if (n - i <= (uint64_t)extra) return false;
        for (int k = 1; k <= extra; k++) {
            uint8_t cc = s[i + k];
            if ((cc & 0xC0) != 0x80) return false;
            cp = cp << 6 | (cc & 0x3F);
        }
        if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return false;
        if (cp >= 0xD800 && cp <= 0xDFFF) return false;
        i += (uint64_t)extra + 1;
    }
    return true;
}

void *uniecg__aligned_alloc(uint64_t size) {
    uint64_t rounded = uniecg__align_up(size ? size : 1, 64);
    if (rounded < size || rounded > (uint64_t)SIZE_MAX) return NULL;
    return aligned_alloc(64, (size_t)rounded);
}
