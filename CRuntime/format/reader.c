/* .uecg reader: maps the file, validates header, metadata and tensor table with overflow-safe
 * arithmetic before anything is used, then maps raw payloads in place and decompresses zstd
 * payloads straight into their final 64-byte aligned buffers. ModelFormat.md is the spec. */
#define _GNU_SOURCE
#include "internal.h"
#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

typedef struct {
    char *key;
    uniecg_meta_type type;
    bool bool_value;
    int64_t i64_value;
    double f64_value;
    char *string;              /* STRING: NUL-terminated copy                               */
    uint64_t length;
    uint64_t count;            /* arrays                                                     */
    void *array;               /* numeric arrays: aligned copy                               */
    const uint8_t **items;     /* STRING_ARRAY: each points at a u32 length + bytes in the map */
} meta_entry;

typedef struct {
    uniecg_tensor_info info;
    char *name;
    void *owned; /* decompressed payload, or NULL when mapped in place */
} tensor_entry;

struct uniecg_model_file {
    const uint8_t *map;
    uint64_t size;
    uniecg_file_summary summary;
    meta_entry *meta;
    tensor_entry *tensors;
    uint32_t *by_name; /* tensor indices sorted by name, for find and duplicate detection */
};

uniecg_open_params uniecg_open_default_params(void) {
    return (uniecg_open_params){.load_tensors = true, .verify_checksums = true};
}

/* ------------------------------------------------------------------------------------------ */
/* Bounds-checked cursor over one section                                                       */

typedef struct {
    const uint8_t *p;
    uint64_t left;
    const char *where; /* "metadata entry 3" — for messages */
    uniecg_error *error;
} cursor;

static bool take(cursor *c, uint64_t n, const uint8_t **out, const char *what) {
    if (n > c->left) {
        uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: truncated %s (needs %llu bytes, %llu left in section)",
                     c->where, what, (unsigned long long)n, (unsigned long long)c->left);
        return false;
    }
    *out = c->p;
    c->p += n;
    c->left -= n;
    return true;
}

static bool take_u8(cursor *c, uint8_t *v, const char *what) {
    const uint8_t *p;
    if (!take(c, 1, &p, what)) return false;
    *v = *p;
    return true;
}
static bool take_u16(cursor *c, uint16_t *v, const char *what) {
    const uint8_t *p;
    if (!take(c, 2, &p, what)) return false;
    *v = uniecg__get_u16(p);
    return true;
}
static bool take_u32(cursor *c, uint32_t *v, const char *what) {
    const uint8_t *p;
    if (!take(c, 4, &p, what)) return false;
    *v = uniecg__get_u32(p);
    return true;
}
static bool take_u64(cursor *c, uint64_t *v, const char *what) {
    const uint8_t *p;
    if (!take(c, 8, &p, what)) return false;
    *v = uniecg__get_u64(p);
    return true;
}

/* A key or tensor name: u16 length (1..255) then UTF-8 bytes without NUL. */
static uniecg_status take_name(cursor *c, char **out, const char *what) {
    uint16_t n;
    const uint8_t *bytes;
    if (!take_u16(c, &n, what)) return UNIECG_ERR_FORMAT;
    if (n == 0 || n > LIMIT_KEY_BYTES)
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: %s length %u is outside 1..%u", c->where, what, n,
                            LIMIT_KEY_BYTES);
    if (!take(c, n, &bytes, what)) return UNIECG_ERR_FORMAT;
    if (!uniecg__valid_utf8(bytes, n))
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: %s is not valid UTF-8 (or contains NUL)", c->where, what);
    char *copy = malloc((size_t)n + 1);
    if (!copy) return uniecg__fail(c->error, UNIECG_ERR_OUT_OF_MEMORY, "%s: out of memory", c->where);
    memcpy(copy, bytes, n);
    copy[n] = 0;
    *out = copy;
    return UNIECG_OK;
}

static bool valid_key(const char *key) {
    for (const char *k = key; *k; k++) {
        char ch = *k;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Metadata                                                                                     */

static uint64_t numeric_element_size(uniecg_meta_type type) {
    switch (type) {
    case UNIECG_META_I32_ARRAY: case UNIECG_META_F32_ARRAY: return 4;
    case UNIECG_META_I64_ARRAY: case UNIECG_META_F64_ARRAY: return 8;
    default: return 0;
    }
}

static uniecg_status parse_meta_entry(cursor *c, meta_entry *e, uint32_t index) {
    char where[96];
    snprintf(where, sizeof where, "metadata entry %u", index);
    c->where = where;
    uniecg_status s = take_name(c, &e->key, "key");
    if (s) return s;
    snprintf(where, sizeof where, "metadata entry %u ('%.60s')", index, e->key);
    if (!valid_key(e->key))
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: key may only hold a-z 0-9 _ . -", where);
    uint8_t type;
    if (!take_u8(c, &type, "type")) return UNIECG_ERR_FORMAT;
    e->type = (uniecg_meta_type)type;
    const uint8_t *p;
    switch (e->type) {
    case UNIECG_META_BOOL: {
        uint8_t v;
        if (!take_u8(c, &v, "bool value")) return UNIECG_ERR_FORMAT;
        if (v > 1) return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: bool value %u is not 0 or 1", where, v);
        e->bool_value = v;
        return UNIECG_OK;
    }
    case UNIECG_META_I64: {
        uint64_t v;
        if (!take_u64(c, &v, "i64 value")) return UNIECG_ERR_FORMAT;
        e->i64_value = (int64_t)v;
        return UNIECG_OK;
    }
    case UNIECG_META_F64: {
        uint64_t v;
        if (!take_u64(c, &v, "f64 value")) return UNIECG_ERR_FORMAT;
        memcpy(&e->f64_value, &v, 8);
        return UNIECG_OK;
    }
    case UNIECG_META_STRING: {
        uint32_t n;
        if (!take_u32(c, &n, "string length")) return UNIECG_ERR_FORMAT;
        if (n > LIMIT_STRING_BYTES)
            return uniecg__fail(c->error, UNIECG_ERR_LIMIT, "%s: string of %u bytes exceeds the %u-byte limit",
                                where, n, LIMIT_STRING_BYTES);
        if (!take(c, n, &p, "string")) return UNIECG_ERR_FORMAT;
        if (!uniecg__valid_utf8(p, n))
            return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: string is not valid UTF-8 (or contains NUL)", where);
        e->string = malloc((size_t)n + 1);
        if (!e->string) return uniecg__fail(c->error, UNIECG_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
        memcpy(e->string, p, n);
        e->string[n] = 0;
        e->length = n;
        return UNIECG_OK;
    }
    case UNIECG_META_I32_ARRAY: case UNIECG_META_I64_ARRAY:
    case UNIECG_META_F32_ARRAY: case UNIECG_META_F64_ARRAY: {
        uint64_t count, bytes, size = numeric_element_size(e->type);
        if (!take_u64(c, &count, "array count")) return UNIECG_ERR_FORMAT;
        if (uniecg__mul_overflows(count, size, &bytes) || bytes > c->left)
            return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: array of %llu elements runs past the metadata section",
                                where, (unsigned long long)count);
        if (!take(c, bytes, &p, "array")) return UNIECG_ERR_FORMAT;
        e->count = count;
        e->array = uniecg__aligned_alloc(bytes);
        if (!e->array) return uniecg__fail(c->error, UNIECG_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
        memcpy(e->array, p, bytes); /* little-endian file, little-endian host */
        return UNIECG_OK;
    }
    case UNIECG_META_STRING_ARRAY: {
        uint64_t count;
        if (!take_u64(c, &count, "array count")) return UNIECG_ERR_FORMAT;
        if (count > c->left / 4) /* each item needs at least its 4-byte length */
            return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: array of %llu strings runs past the metadata section",
                                where, (unsigned long long)count);
        e->count = count;
        e->items = malloc(count ? (size_t)count * sizeof *e->items : 1);
        if (!e->items) return uniecg__fail(c->error, UNIECG_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
        for (uint64_t i = 0; i < count; i++) {
            uint32_t n;
            const uint8_t *start = c->p;
            if (!take_u32(c, &n, "string length")) return UNIECG_ERR_FORMAT;
            if (n > LIMIT_STRING_BYTES)
                return uniecg__fail(c->error, UNIECG_ERR_LIMIT, "%s: item %llu of %u bytes exceeds the %u-byte limit",
                                    where, (unsigned long long)i, n, LIMIT_STRING_BYTES);
            if (!take(c, n, &p, "string")) return UNIECG_ERR_FORMAT;
            if (!uniecg__valid_utf8(p, n))
                return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: item %llu is not valid UTF-8 (or contains NUL)",
                                    where, (unsigned long long)i);
            e->items[i] = start;
        }
        return UNIECG_OK;
    }
    }
    return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: unknown value type %u", where, type);
}

/* ------------------------------------------------------------------------------------------ */
/* Tensor table                                                                                 */

static uniecg_status parse_tensor_entry(cursor *c, tensor_entry *t, uint32_t index) {
    char where[320];
    snprintf(where, sizeof where, "tensor %u", index);
    c->where = where;
    uniecg_status s = take_name(c, &t->name, "name");
    if (s) return s;
    snprintf(where, sizeof where, "tensor '%s'", t->name);
    uniecg_tensor_info *info = &t->info;
    info->name = t->name;
    uint8_t dtype, encoding, rank, reserved;
    if (!take_u8(c, &dtype, "dtype") || !take_u8(c, &encoding, "encoding") || !take_u8(c, &rank, "rank") ||
        !take_u8(c, &reserved, "reserved byte"))
        return UNIECG_ERR_FORMAT;
    if (!uniecg_dtype_name((uniecg_dtype)dtype))
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: unknown dtype %u", where, dtype);
    if (encoding != UNIECG_ENCODING_RAW && encoding != UNIECG_ENCODING_ZSTD)
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: unknown payload encoding %u", where, encoding);
    if (rank < 1 || rank > UNIECG_MAX_RANK)
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: rank %u is outside 1..%d", where, rank, UNIECG_MAX_RANK);
    if (reserved != 0)
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: reserved byte is %u, not 0", where, reserved);
    info->dtype = (uniecg_dtype)dtype;
    info->encoding = (uniecg_encoding)encoding;
    info->rank = rank;
    uint64_t count = 1;
    for (uint32_t d = 0; d < UNIECG_MAX_RANK; d++) info->shape[d] = 1;
    for (uint32_t d = 0; d < rank; d++) {
        if (!take_u64(c, &info->shape[d], "shape")) return UNIECG_ERR_FORMAT;
        if (info->shape[d] == 0)
            return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: dimension %u is 0", where, d);
        if (uniecg__mul_overflows(count, info->shape[d], &count) || count > LIMIT_ELEMENTS)
            return uniecg__fail(c->error, UNIECG_ERR_LIMIT, "%s: element count overflows the %llu-element limit",
                                where, (unsigned long long)LIMIT_ELEMENTS);
    }
    info->element_count = count;
    if (!take_u64(c, &info->offset, "offset") || !take_u64(c, &info->stored_size, "stored size") ||
        !take_u64(c, &info->raw_size, "raw size") || !take_u64(c, &info->hash, "hash"))
        return UNIECG_ERR_FORMAT;
    if (info->dtype == UNIECG_DTYPE_Q8 && info->shape[rank - 1] % UNIECG_Q8_GROUP)
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: q8 innermost dimension %llu is not a multiple of %d",
                            where, (unsigned long long)info->shape[rank - 1], UNIECG_Q8_GROUP);
    uint64_t expected;
    if (uniecg_dtype_payload_size(info->dtype, count, &expected) != UNIECG_OK || expected != info->raw_size)
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: raw size %llu does not match its shape and dtype (%llu)",
                            where, (unsigned long long)info->raw_size, (unsigned long long)expected);
    if (info->encoding == UNIECG_ENCODING_RAW && info->stored_size != info->raw_size)
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: raw payload stores %llu bytes, not %llu", where,
                            (unsigned long long)info->stored_size, (unsigned long long)info->raw_size);
    if (info->stored_size == 0)
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: stored size is 0", where);
    if (info->offset % PAYLOAD_ALIGNMENT)
        return uniecg__fail(c->error, UNIECG_ERR_FORMAT, "%s: offset %llu is not %d-byte aligned", where,
                            (unsigned long long)info->offset, PAYLOAD_ALIGNMENT);
    return UNIECG_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Layout checks: every byte range inside the file, no two ranges overlapping                  */

typedef struct {
    uint64_t start, end;
    const char *what;
} byte_range;

/* By start, then end, so the order is total whatever qsort's stability. */
static int compare_ranges(const void *a, const void *b) {
    const byte_range *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Empty ranges (a section with no entries) hold no bytes and cannot overlap anything. */
static uniecg_status check_ranges(byte_range *ranges, uint64_t n, uniecg_error *error) {
    uint64_t kept = 0;
    for (uint64_t i = 0; i < n; i++)
        if (ranges[i].end > ranges[i].start) ranges[kept++] = ranges[i];
    n = kept;
    qsort(ranges, (size_t)n, sizeof *ranges, compare_ranges);
    for (uint64_t i = 1; i < n; i++)
        if (ranges[i].start < ranges[i - 1].end)
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "payload placement: %s overlaps %s", ranges[i].what,
                                ranges[i - 1].what);
    return UNIECG_OK;
}

static int compare_tensor_names(const uniecg_model_file *f, uint32_t a, uint32_t b) {
    return strcmp(f->tensors[a].name, f->tensors[b].name);
}

/* Bottom-up merge sort of the tensor indices by name (qsort has no context argument, and the
 * core keeps no global state). Returns false when out of memory. */
static bool sort_names(uniecg_model_file *f) {
    uint32_t n = f->summary.tensor_count;
    uint32_t *tmp = malloc((size_t)n * sizeof *tmp + 1);
    if (!tmp) return false;
    uint32_t *a = f->by_name;
    for (uint32_t i = 0; i < n; i++) a[i] = i;
    for (uint64_t width = 1; width < n; width *= 2) {
        for (uint64_t lo = 0; lo < n; lo += 2 * width) {
            uint64_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            uint64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = compare_tensor_names(f, a[i], a[j]) <= 0 ? a[i++] : a[j++];
            while (i < mid) tmp[k++] = a[i++];
            while (j < hi) tmp[k++] = a[j++];
        }
        memcpy(a, tmp, (size_t)n * sizeof *tmp);
    }
    free(tmp);
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Payloads                                                                                     */

/* Decodes tensor payload into `dst` (raw_size bytes) and checks its hash when asked. */
static uniecg_status decode_payload(const uniecg_model_file *f, const uniecg_tensor_info *t, void *dst,
                                    bool verify, uniecg_error *error) {
    const uint8_t *src = f->map + t->offset;
    if (t->encoding == UNIECG_ENCODING_ZSTD) {
        unsigned long long content = ZSTD_getFrameContentSize(src, (size_t)t->stored_size);
        if (content == ZSTD_CONTENTSIZE_ERROR)
            return uniecg__fail(error, UNIECG_ERR_COMPRESSION, "tensor '%s': payload is not a zstd frame", t->name);
        if (content == ZSTD_CONTENTSIZE_UNKNOWN)
            return uniecg__fail(error, UNIECG_ERR_COMPRESSION, "tensor '%s': zstd frame does not record its content size",
                                t->name);
        if (content != t->raw_size)
            return uniecg__fail(error, UNIECG_ERR_COMPRESSION,
                                "tensor '%s': zstd frame declares %llu bytes, the table says %llu", t->name, content,
                                (unsigned long long)t->raw_size);
        size_t frame = ZSTD_findFrameCompressedSize(src, (size_t)t->stored_size);
        if (ZSTD_isError(frame) || frame != t->stored_size)
            return uniecg__fail(error, UNIECG_ERR_COMPRESSION, "tensor '%s': payload is not exactly one zstd frame (%s)",
                                t->name, ZSTD_isError(frame) ? ZSTD_getErrorName(frame) : "trailing bytes");
        size_t got = ZSTD_decompress(dst, (size_t)t->raw_size, src, (size_t)t->stored_size);
        if (ZSTD_isError(got) || got != t->raw_size)
            return uniecg__fail(error, UNIECG_ERR_COMPRESSION, "tensor '%s': zstd frame does not decode (%s)", t->name,
                                ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short output");
    } else if (dst != src) {
        memcpy(dst, src, (size_t)t->raw_size);
    }
    if (verify && uniecg_xxh64(dst, (size_t)t->raw_size, 0) != t->hash)
        return uniecg__fail(error, UNIECG_ERR_CHECKSUM, "tensor '%s': payload checksum mismatch (XXH64 %016llx expected)",
                            t->name, (unsigned long long)t->hash);
    return UNIECG_OK;
}

/* The stored bytes of a decompressed tensor are no longer needed: let the kernel drop them so
 * peak memory is the model plus one frame, not the model twice. */
static void release_stored_pages(const uniecg_model_file *f, const uniecg_tensor_info *t) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    uint64_t start = uniecg__align_up(t->offset, (uint64_t)page);
    uint64_t end = (t->offset + t->stored_size) / (uint64_t)page * (uint64_t)page;
    if (end > start) madvise((void *)(f->map + start), (size_t)(end - start), MADV_DONTNEED);
}

static uniecg_status load_tensor(uniecg_model_file *f, tensor_entry *t, bool verify, uniecg_error *error) {
    if (t->info.encoding == UNIECG_ENCODING_RAW) {
        t->info.data = f->map + t->info.offset;
        if (verify && uniecg_xxh64(t->info.data, (size_t)t->info.raw_size, 0) != t->info.hash)
            return uniecg__fail(error, UNIECG_ERR_CHECKSUM, "tensor '%s': payload checksum mismatch (XXH64 %016llx expected)",
                                t->name, (unsigned long long)t->info.hash);
        return UNIECG_OK;
    }
    t->owned = uniecg__aligned_alloc(t->info.raw_size);
    if (!t->owned)
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tensor '%s': cannot allocate %llu bytes", t->name,
                            (unsigned long long)t->info.raw_size);
    uniecg_status s = decode_payload(f, &t->info, t->owned, verify, error);
    release_stored_pages(f, &t->info);
    if (s == UNIECG_OK) t->info.data = t->owned;
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Open                                                                                         */

static uniecg_status map_file(const char *path, uniecg_model_file *f, uniecg_error *error) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return uniecg__fail(error, UNIECG_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return uniecg__fail(error, UNIECG_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return uniecg__fail(error, UNIECG_ERR_IO, "'%s' is not a regular file", path);
    }
    if ((uint64_t)st.st_size < HEADER_SIZE) {
        close(fd);
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "'%s' is %lld bytes, shorter than the %d-byte header (truncated?)",
                            path, (long long)st.st_size, HEADER_SIZE);
    }
    f->size = (uint64_t)st.st_size;
    void *map = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return uniecg__fail(error, UNIECG_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    f->map = map;
    return UNIECG_OK;
}

static uniecg_status check_section(const uniecg_model_file *f, uint64_t offset, uint64_t size, uint64_t limit,
                                   const char *name, uniecg_error *error) {
    uint64_t end;
    if (size > limit)
        return uniecg__fail(error, UNIECG_ERR_LIMIT, "%s of %llu bytes exceeds the %llu-byte limit", name,
                            (unsigned long long)size, (unsigned long long)limit);
    if (offset < HEADER_SIZE || uniecg__add_overflows(offset, size, &end) || end > f->size)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "%s (offset %llu, %llu bytes) lies outside the %llu-byte file", name,
                            (unsigned long long)offset, (unsigned long long)size, (unsigned long long)f->size);
    return UNIECG_OK;
}

static uniecg_status parse(uniecg_model_file *f, uniecg_open_params params, uniecg_error *error) {
    const uint8_t *h = f->map;
    if (memcmp(h + H_MAGIC, UNIECG_MAGIC, sizeof UNIECG_MAGIC) != 0)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "not a UniECG model file (wrong magic bytes)");
    uint16_t major = uniecg__get_u16(h + H_MAJOR), minor = uniecg__get_u16(h + H_MINOR);
    if (major != UNIECG_FORMAT_MAJOR)
        return uniecg__fail(error, UNIECG_ERR_VERSION, "format version %u.%u is not readable by this %d.%d reader", major,
                            minor, UNIECG_FORMAT_MAJOR, UNIECG_FORMAT_MINOR);
    if (uniecg_xxh64(h, H_HEADER_HASH, 0) != uniecg__get_u64(h + H_HEADER_HASH))
        return uniecg__fail(error, UNIECG_ERR_CHECKSUM, "header checksum mismatch (the first %d bytes are damaged)",
                            HEADER_SIZE);
    uint32_t flags = uniecg__get_u32(h + H_FLAGS);
    if (flags != 0)
        return uniecg__fail(error, UNIECG_ERR_VERSION, "header flags 0x%08x name features this reader does not know", flags);
    if (uniecg__get_u64(h + H_RESERVED) != 0)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "reserved header field is not 0");
    uint64_t declared = uniecg__get_u64(h + H_FILE_SIZE);
    if (declared != f->size)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "file is %llu bytes but its header says %llu (%s)",
                            (unsigned long long)f->size, (unsigned long long)declared,
                            f->size < declared ? "truncated" : "trailing bytes");
    f->summary.major = major;
    f->summary.minor = minor;
    f->summary.file_size = f->size;
    uint64_t meta_offset = uniecg__get_u64(h + H_META_OFFSET), meta_size = uniecg__get_u64(h + H_META_SIZE);
    uint64_t table_offset = uniecg__get_u64(h + H_TABLE_OFFSET), table_size = uniecg__get_u64(h + H_TABLE_SIZE);
    uint32_t meta_count = uniecg__get_u32(h + H_META_COUNT), tensor_count = uniecg__get_u32(h + H_TENSOR_COUNT);
    uniecg_status s;
    if ((s = check_section(f, meta_offset, meta_size, LIMIT_META_SECTION, "metadata section", error)) ||
        (s = check_section(f, table_offset, table_size, LIMIT_TABLE_SECTION, "tensor table", error)))
        return s;
    if (meta_count > LIMIT_META_COUNT)
        return uniecg__fail(error, UNIECG_ERR_LIMIT, "%u metadata entries exceed the limit of %u", meta_count, LIMIT_META_COUNT);
    if (tensor_count > LIMIT_TENSOR_COUNT)
        return uniecg__fail(error, UNIECG_ERR_LIMIT, "%u tensors exceed the limit of %u", tensor_count, LIMIT_TENSOR_COUNT);
    if (uniecg_xxh64(f->map + meta_offset, (size_t)meta_size, 0) != uniecg__get_u64(h + H_META_HASH))
        return uniecg__fail(error, UNIECG_ERR_CHECKSUM, "metadata section checksum mismatch");
    if (uniecg_xxh64(f->map + table_offset, (size_t)table_size, 0) != uniecg__get_u64(h + H_TABLE_HASH))
        return uniecg__fail(error, UNIECG_ERR_CHECKSUM, "tensor table checksum mismatch");
    f->summary.metadata_count = meta_count;
    f->summary.tensor_count = tensor_count;
    f->summary.metadata_bytes = meta_size;
    f->summary.table_bytes = table_size;

    f->meta = calloc((size_t)meta_count + 1, sizeof *f->meta);
    f->tensors = calloc((size_t)tensor_count + 1, sizeof *f->tensors);
    f->by_name = calloc((size_t)tensor_count + 1, sizeof *f->by_name);
    if (!f->meta || !f->tensors || !f->by_name)
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory for the tensor table");

    cursor c = {.p = f->map + meta_offset, .left = meta_size, .error = error};
    for (uint32_t i = 0; i < meta_count; i++) {
        if ((s = parse_meta_entry(&c, &f->meta[i], i))) return s;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(f->meta[j].key, f->meta[i].key) == 0)
                return uniecg__fail(error, UNIECG_ERR_FORMAT, "metadata key '%s' appears twice", f->meta[i].key);
    }
    if (c.left != 0)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "metadata section has %llu bytes after its last entry",
                            (unsigned long long)c.left);

    c = (cursor){.p = f->map + table_offset, .left = table_size, .error = error};
    for (uint32_t i = 0; i < tensor_count; i++)
        if ((s = parse_tensor_entry(&c, &f->tensors[i], i))) return s;
    if (c.left != 0)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "tensor table has %llu bytes after its last entry",
                            (unsigned long long)c.left);

    if (!sort_names(f)) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory sorting tensor names");
    for (uint32_t i = 1; i < tensor_count; i++)
        if (strcmp(f->tensors[f->by_name[i]].name, f->tensors[f->by_name[i - 1]].name) == 0)
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "tensor name '%s' appears twice", f->tensors[f->by_name[i]].name);

    byte_range *ranges = malloc(((size_t)tensor_count + 3) * sizeof *ranges);
    if (!ranges) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory for the layout check");
    ranges[0] = (byte_range){0, HEADER_SIZE, "the header"};
    ranges[1] = (byte_range){meta_offset, meta_offset + meta_size, "the metadata section"};
    ranges[2] = (byte_range){table_offset, table_offset + table_size, "the tensor table"};
    for (uint32_t i = 0; i < tensor_count; i++) {
        const uniecg_tensor_info *t = &f->tensors[i].info;
        uint64_t end;
        if (uniecg__add_overflows(t->offset, t->stored_size, &end) || end > f->size) {
            free(ranges);
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "tensor '%s': payload (offset %llu, %llu bytes) runs past the end of the %llu-byte file",
                                t->name, (unsigned long long)t->offset, (unsigned long long)t->stored_size,
                                (unsigned long long)f->size);
        }
        ranges[i + 3] = (byte_range){t->offset, end, t->name};
    }
    s = check_ranges(ranges, (uint64_t)tensor_count + 3, error);
    free(ranges);
    if (s) return s;

    if (params.load_tensors)
        for (uint32_t i = 0; i < tensor_count; i++)
            if ((s = load_tensor(f, &f->tensors[i], params.verify_checksums, error))) return s;
    return UNIECG_OK;
}

uniecg_status uniecg_model_file_open(const char *path, uniecg_open_params params, uniecg_model_file **out,
                                     uniecg_error *error) {
    if (!path || !out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "model_file_open: NULL argument");
    *out = NULL;
    uniecg_model_file *f = calloc(1, sizeof *f);
    if (!f) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    uniecg_status s = map_file(path, f, error);
    if (s == UNIECG_OK) s = parse(f, params, error);
    if (s != UNIECG_OK) {
        uniecg_model_file_free(f);
        return s;
    }
    *out = f;
    return UNIECG_OK;
}

void uniecg_model_file_free(uniecg_model_file *f) {
    if (!f) return;
    if (f->meta)
        for (uint32_t i = 0; i < f->summary.metadata_count; i++) {
            free(f->meta[i].key);
            free(f->meta[i].string);
            free(f->meta[i].array);
            free((void *)f->meta[i].items);
        }
    if (f->tensors)
        for (uint32_t i = 0; i < f->summary.tensor_count; i++) {
            free(f->tensors[i].name);
            free(f->tensors[i].owned);
        }
    free(f->meta);
    free(f->tensors);
    free(f->by_name);
    if (f->map) munmap((void *)f->map, (size_t)f->size);
    free(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Queries                                                                                      */

void uniecg_model_file_summary(const uniecg_model_file *f, uniecg_file_summary *out) {
    if (f && out) *out = f->summary;
}

static void fill_meta(const meta_entry *e, uniecg_meta_entry *out) {
    *out = (uniecg_meta_entry){
        .key = e->key, .type = e->type, .bool_value = e->bool_value, .i64_value = e->i64_value,
        .f64_value = e->f64_value, .string_value = e->string, .string_length = e->length,
        .count = e->count, .array = e->array,
    };
}

uniecg_status uniecg_model_file_meta_at(const uniecg_model_file *f, uint32_t index, uniecg_meta_entry *out) {
    if (!f || !out || index >= f->summary.metadata_count) return UNIECG_ERR_INVALID_ARGUMENT;
    fill_meta(&f->meta[index], out);
    return UNIECG_OK;
}

uniecg_status uniecg_model_file_meta_find(const uniecg_model_file *f, const char *key, uniecg_meta_entry *out) {
    if (!f || !key || !out) return UNIECG_ERR_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < f->summary.metadata_count; i++)
        if (strcmp(f->meta[i].key, key) == 0) {
            fill_meta(&f->meta[i], out);
            return UNIECG_OK;
        }
    return UNIECG_ERR_NOT_FOUND;
}

uniecg_status uniecg_model_file_meta_string_at(const uniecg_model_file *f, uint32_t index, uint64_t item,
                                               const char **out_string, uint64_t *out_length) {
    if (!f || !out_string || !out_length || index >= f->summary.metadata_count) return UNIECG_ERR_INVALID_ARGUMENT;
    const meta_entry *e = &f->meta[index];
    if (e->type != UNIECG_META_STRING_ARRAY) return UNIECG_ERR_TYPE;
    if (item >= e->count) return UNIECG_ERR_INVALID_ARGUMENT;
    *out_length = uniecg__get_u32(e->items[item]);
    *out_string = (const char *)e->items[item] + 4;
    return UNIECG_OK;
}

uniecg_status uniecg_model_file_tensor_at(const uniecg_model_file *f, uint32_t index, uniecg_tensor_info *out) {
    if (!f || !out || index >= f->summary.tensor_count) return UNIECG_ERR_INVALID_ARGUMENT;
    *out = f->tensors[index].info;
    return UNIECG_OK;
}

uniecg_status uniecg_model_file_tensor_find(const uniecg_model_file *f, const char *name, uniecg_tensor_info *out) {
    if (!f || !name || !out) return UNIECG_ERR_INVALID_ARGUMENT;
    uint32_t lo = 0, hi = f->summary.tensor_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int order = strcmp(f->tensors[f->by_name[mid]].name, name);
        if (order == 0) {
            *out = f->tensors[f->by_name[mid]].info;
            return UNIECG_OK;
        }
        if (order < 0) lo = mid + 1; else hi = mid;
    }
    return UNIECG_ERR_NOT_FOUND;
}

uniecg_status uniecg_model_file_verify_tensor(const uniecg_model_file *f, uint32_t index, uniecg_error *error) {
    if (!f || index >= f->summary.tensor_count)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "verify_tensor: no tensor %u", index);
    const uniecg_tensor_info *t = &f->tensors[index].info;
    if (t->encoding == UNIECG_ENCODING_RAW) /* hash in place: no copy needed */
        return uniecg_xxh64(f->map + t->offset, (size_t)t->raw_size, 0) == t->hash
                   ? UNIECG_OK
                   : uniecg__fail(error, UNIECG_ERR_CHECKSUM, "tensor '%s': payload checksum mismatch", t->name);
    void *scratch = uniecg__aligned_alloc(t->raw_size);
    if (!scratch)
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "tensor '%s': cannot allocate %llu bytes to verify it",
                            t->name, (unsigned long long)t->raw_size);
    uniecg_status s = decode_payload(f, t, scratch, true, error);
    free(scratch);
    return s;
}
