/* .uecg writer: streams payloads to "<path>.partial" one tensor at a time (zstd output goes
 * straight to the file in chunks), keeps only metadata and table entries in memory, writes
 * them and the header at finish, then renames the file into place. */
#define _GNU_SOURCE
#include "internal.h"
#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

typedef struct {
    uint8_t *bytes;
    uint64_t size, capacity;
} buffer;

struct uniecg_model_writer {
    int fd;
    char *path, *partial_path;
    uniecg_writer_params params;
    uint64_t position; /* end of the last payload written */
    buffer meta, table;
    uint32_t meta_count, tensor_count;
    char **keys, **names; /* for duplicate detection */
    ZSTD_CCtx *zstd;
    uint8_t *chunk; /* zstd output staging, ZSTD_CStreamOutSize() bytes */
    bool finished, failed;
    char last_error[UNIECG_ERROR_MESSAGE_SIZE];
};

uniecg_writer_params uniecg_writer_default_params(void) { return (uniecg_writer_params){.zstd_level = 9}; }

static uniecg_status writer_fail(uniecg_model_writer *w, uniecg_status s, const char *format, ...)
    UNIECG_PRINTF(3, 4);
static uniecg_status writer_fail(uniecg_model_writer *w, uniecg_status s, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(w->last_error, sizeof w->last_error, format, args);
    va_end(args);
    return s;
}

const char *uniecg_model_writer_last_error(const uniecg_model_writer *w) { return w ? w->last_error : ""; }

static bool buffer_reserve(buffer *b, uint64_t extra) {
    if (b->size + extra <= b->capacity) return true;
    uint64_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity < b->size + extra) capacity *= 2;
    uint8_t *bytes = realloc(b->bytes, (size_t)capacity);
    if (!bytes) return false;
    b->bytes = bytes;
    b->capacity = capacity;
    return true;
}

static void put_bytes(buffer *b, const void *bytes, uint64_t n) { memcpy(b->bytes + b->size, bytes, (size_t)n); b->size += n; }
static void put_u8(buffer *b, uint8_t v) { b->bytes[b->size++] = v; }
static void put_u16(buffer *b, uint16_t v) { uniecg__put_u16(b->bytes + b->size, v); b->size += 2; }
static void put_u32(buffer *b, uint32_t v) { uniecg__put_u32(b->bytes + b->size, v); b->size += 4; }
static void put_u64(buffer *b, uint64_t v) { uniecg__put_u64(b->bytes + b->size, v); b->size += 8; }

static uniecg_status write_at(uniecg_model_writer *w, uint64_t offset, const void *bytes, uint64_t n) {
    const uint8_t *p = bytes;
    while (n > 0) {
        ssize_t k = pwrite(w->fd, p, n > (1u << 30) ? (1u << 30) : (size_t)n, (off_t)offset);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return writer_fail(w, UNIECG_ERR_IO, "cannot write '%s': %s", w->partial_path, strerror(errno));
        p += k;
        offset += (uint64_t)k;
        n -= (uint64_t)k;
    }
    return UNIECG_OK;
}

uniecg_status uniecg_model_writer_create(const char *path, uniecg_writer_params params, uniecg_model_writer **out,
                                         uniecg_error *error) {
    if (!path || !out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "model_writer_create: NULL argument");
    *out = NULL;
    if (params.zstd_level < 1 || params.zstd_level > ZSTD_maxCLevel())
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "zstd level %d is outside 1..%d", params.zstd_level,
                            ZSTD_maxCLevel());
    uniecg_model_writer *w = calloc(1, sizeof *w);
    if (!w) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    w->fd = -1;
    w->params = params;
    size_t n = strlen(path);
    w->path = strdup(path);
    w->partial_path = malloc(n + sizeof ".partial");
    w->zstd = ZSTD_createCCtx();
    w->chunk = malloc(ZSTD_CStreamOutSize());
    if (!w->path || !w->partial_path || !w->zstd || !w->chunk) {
        uniecg_model_writer_free(w);
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    }
    memcpy(w->partial_path, path, n);
    memcpy(w->partial_path + n, ".partial", sizeof ".partial");
    w->fd = open(w->partial_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        uniecg_status s = uniecg__fail(error, UNIECG_ERR_IO, "cannot create '%s': %s", w->partial_path, strerror(errno));
        uniecg_model_writer_free(w);
        return s;
    }
    w->position = HEADER_SIZE; /* the header is written last */
    *out = w;
    return UNIECG_OK;
}

static bool valid_key(const char *key, size_t n) {
    if (n == 0 || n > LIMIT_KEY_BYTES) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = key[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-')) return false;
    }
    return true;
}

static bool contains(char **list, uint32_t count, const char *name) {
    for (uint32_t i = 0; i < count; i++)
        if (strcmp(list[i], name) == 0) return true;
    return false;
}

static uniecg_status remember(uniecg_model_writer *w, char ***list, uint32_t count, const char *name) {
    char **grown = realloc(*list, ((size_t)count + 1) * sizeof **list);
    if (!grown) return writer_fail(w, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    *list = grown;
    if (!(grown[count] = strdup(name))) return writer_fail(w, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    return UNIECG_OK;
}

/* Starts a metadata entry: checks the key, reserves room for it plus `value_bytes`. */
static uniecg_status begin_meta(uniecg_model_writer *w, const char *key, uniecg_meta_type type, uint64_t value_bytes) {
    if (!w) return UNIECG_ERR_INVALID_ARGUMENT;
    if (w->finished || w->failed) return writer_fail(w, UNIECG_ERR_STATE, "writer is already finished or failed");
    if (!key) return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "metadata key is NULL");
    size_t n = strlen(key);
    if (!valid_key(key, n))
        return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "metadata key '%.300s' must be 1..255 bytes of a-z 0-9 _ . -", key);
    if (contains(w->keys, w->meta_count, key))
        return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "metadata key '%s' is set twice", key);
    if (w->meta_count >= LIMIT_META_COUNT)
        return writer_fail(w, UNIECG_ERR_LIMIT, "more than %u metadata entries", LIMIT_META_COUNT);
    uint64_t total;
    if (uniecg__add_overflows(value_bytes, 3 + n, &total) || w->meta.size + total > LIMIT_META_SECTION)
        return writer_fail(w, UNIECG_ERR_LIMIT, "metadata key '%s': the metadata section would exceed %llu bytes", key,
                           (unsigned long long)LIMIT_META_SECTION);
    if (!buffer_reserve(&w->meta, total)) return writer_fail(w, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    uniecg_status s = remember(w, &w->keys, w->meta_count, key);
    if (s) return s;
    w->meta_count++;
    put_u16(&w->meta, (uint16_t)n);
    put_bytes(&w->meta, key, n);
    put_u8(&w->meta, (uint8_t)type);
    return UNIECG_OK;
}

uniecg_status uniecg_model_writer_set_bool(uniecg_model_writer *w, const char *key, bool value) {
    uniecg_status s = begin_meta(w, key, UNIECG_META_BOOL, 1);
    if (!s) put_u8(&w->meta, value ? 1 : 0);
    return s;
}

uniecg_status uniecg_model_writer_set_i64(uniecg_model_writer *w, const char *key, int64_t value) {
    uniecg_status s = begin_meta(w, key, UNIECG_META_I64, 8);
    if (!s) put_u64(&w->meta, (uint64_t)value);
    return s;
}

uniecg_status uniecg_model_writer_set_f64(uniecg_model_writer *w, const char *key, double value) {
    uint64_t bits;
    memcpy(&bits, &value, 8);
    uniecg_status s = begin_meta(w, key, UNIECG_META_F64, 8);
    if (!s) put_u64(&w->meta, bits);
    return s;
}

static uniecg_status check_string(uniecg_model_writer *w, const char *key, const char *value, uint64_t length) {
    if (!value && length) return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "metadata '%s': NULL string", key ? key : "?");
    if (length > LIMIT_STRING_BYTES)
        return writer_fail(w, UNIECG_ERR_LIMIT, "metadata '%s': string of %llu bytes exceeds the %u-byte limit",
                           key ? key : "?", (unsigned long long)length, LIMIT_STRING_BYTES);
    if (!uniecg__valid_utf8((const uint8_t *)value, length))
        return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "metadata '%s': string is not valid UTF-8 (or holds NUL)",
                           key ? key : "?");
    return UNIECG_OK;
}

uniecg_status uniecg_model_writer_set_string(uniecg_model_writer *w, const char *key, const char *value, uint64_t length) {
    if (!w) return UNIECG_ERR_INVALID_ARGUMENT;
    uniecg_status s = check_string(w, key, value, length);
    if (!s) s = begin_meta(w, key, UNIECG_META_STRING, 4 + length);
    if (!s) {
        put_u32(&w->meta, (uint32_t)length);
        put_bytes(&w->meta, value, length);
    }
    return s;
}

uniecg_status uniecg_model_writer_set_array(uniecg_model_writer *w, const char *key, uniecg_meta_type type,
                                            const void *values, uint64_t count) {
    if (!w) return UNIECG_ERR_INVALID_ARGUMENT;
    uint64_t size = type == UNIECG_META_I32_ARRAY || type == UNIECG_META_F32_ARRAY   ? 4
                    : type == UNIECG_META_I64_ARRAY || type == UNIECG_META_F64_ARRAY ? 8
                                                                                      : 0;
    uint64_t bytes;
    if (size == 0) return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "metadata '%s': %d is not a numeric array type",
                                      key ? key : "?", (int)type);
    if (uniecg__mul_overflows(count, size, &bytes) || bytes > LIMIT_META_SECTION)
        return writer_fail(w, UNIECG_ERR_LIMIT, "metadata '%s': array too large", key ? key : "?");
    if (!values && count) return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "metadata '%s': NULL values", key ? key : "?");
    uniecg_status s = begin_meta(w, key, type, 8 + bytes);
    if (!s) {
        put_u64(&w->meta, count);
        if (bytes) put_bytes(&w->meta, values, bytes);
    }
    return s;
}

uniecg_status uniecg_model_writer_set_string_array(uniecg_model_writer *w, const char *key, const char *const *strings,
                                                   const uint64_t *lengths, uint64_t count) {
    if (!w) return UNIECG_ERR_INVALID_ARGUMENT;
    if (count && (!strings || !lengths))
        return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "metadata '%s': NULL strings", key ? key : "?");
    uint64_t total = 8;
    for (uint64_t i = 0; i < count; i++) {
        uniecg_status s = check_string(w, key, strings[i], lengths[i]);
        if (s) return s;
        total += 4 + lengths[i];
        if (total > LIMIT_META_SECTION) return writer_fail(w, UNIECG_ERR_LIMIT, "metadata '%s': array too large", key ? key : "?");
    }
    uniecg_status s = begin_meta(w, key, UNIECG_META_STRING_ARRAY, total);
    if (s) return s;
    put_u64(&w->meta, count);
    for (uint64_t i = 0; i < count; i++) {
        put_u32(&w->meta, (uint32_t)lengths[i]);
        put_bytes(&w->meta, strings[i], lengths[i]);
    }
    return UNIECG_OK;
}

/* Streams `data` through zstd straight into the file at `offset`; returns the frame size. */
static uniecg_status write_zstd(uniecg_model_writer *w, const char *name, const void *data, uint64_t size,
                                uint64_t offset, uint64_t *out_stored) {
    ZSTD_CCtx_reset(w->zstd, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(w->zstd, ZSTD_c_compressionLevel, w->params.zstd_level);
    ZSTD_CCtx_setParameter(w->zstd, ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setPledgedSrcSize(w->zstd, size); /* the frame header then records the content size */
    ZSTD_inBuffer in = {data, (size_t)size, 0};
    uint64_t stored = 0;
    size_t remaining;
    do {
        ZSTD_outBuffer out = {w->chunk, ZSTD_CStreamOutSize(), 0};
        remaining = ZSTD_compressStream2(w->zstd, &out, &in, ZSTD_e_end);
        if (ZSTD_isError(remaining))
            return writer_fail(w, UNIECG_ERR_COMPRESSION, "tensor '%s': zstd failed: %s", name, ZSTD_getErrorName(remaining));
        uniecg_status s = write_at(w, offset + stored, w->chunk, out.pos);
        if (s) return s;
        stored += out.pos;
    } while (remaining != 0);
    *out_stored = stored;
    return UNIECG_OK;
}

uniecg_status uniecg_model_writer_add_tensor(uniecg_model_writer *w, const char *name, uniecg_dtype dtype, uint32_t rank,
                                             const uint64_t *shape, const void *data, uint64_t size,
                                             uniecg_encoding encoding, uniecg_tensor_info *out_written) {
    if (!w) return UNIECG_ERR_INVALID_ARGUMENT;
    if (w->finished || w->failed) return writer_fail(w, UNIECG_ERR_STATE, "writer is already finished or failed");
    if (!name || !shape || !data) return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "add_tensor: NULL argument");
    size_t name_length = strlen(name);
    if (name_length == 0 || name_length > UNIECG_MAX_NAME_BYTES || !uniecg__valid_utf8((const uint8_t *)name, name_length))
        return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "tensor name '%.300s' must be 1..255 bytes of UTF-8", name);
    if (contains(w->names, w->tensor_count, name))
        return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "tensor '%s' is added twice", name);
    if (!uniecg_dtype_name(dtype)) return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "tensor '%s': unknown dtype %d", name, (int)dtype);
    if (encoding != UNIECG_ENCODING_RAW && encoding != UNIECG_ENCODING_ZSTD && encoding != UNIECG_ENCODING_AUTO)
        return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "tensor '%s': unknown encoding %d", name, (int)encoding);
    if (rank < 1 || rank > UNIECG_MAX_RANK)
        return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "tensor '%s': rank %u is outside 1..%d", name, rank, UNIECG_MAX_RANK);
    if (w->tensor_count >= LIMIT_TENSOR_COUNT) return writer_fail(w, UNIECG_ERR_LIMIT, "more than %u tensors", LIMIT_TENSOR_COUNT);
    uint64_t count = 1, expected;
    for (uint32_t d = 0; d < rank; d++)
        if (shape[d] == 0 || uniecg__mul_overflows(count, shape[d], &count) || count > LIMIT_ELEMENTS)
            return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "tensor '%s': dimension %u (%llu) is 0 or overflows", name, d,
                               (unsigned long long)shape[d]);
    if (dtype == UNIECG_DTYPE_Q8 && shape[rank - 1] % UNIECG_Q8_GROUP)
        return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "tensor '%s': q8 needs an innermost dimension divisible by %d",
                           name, UNIECG_Q8_GROUP);
    if (uniecg_dtype_payload_size(dtype, count, &expected) != UNIECG_OK || expected != size)
        return writer_fail(w, UNIECG_ERR_INVALID_ARGUMENT, "tensor '%s': %llu bytes given, its shape and dtype need %llu",
                           name, (unsigned long long)size, (unsigned long long)expected);
    uint64_t entry_bytes = 2 + name_length + 4 + 8ull * rank + 32;
    if (w->table.size + entry_bytes > LIMIT_TABLE_SECTION)
        return writer_fail(w, UNIECG_ERR_LIMIT, "tensor table would exceed %llu bytes", (unsigned long long)LIMIT_TABLE_SECTION);
    if (!buffer_reserve(&w->table, entry_bytes)) return writer_fail(w, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");

    uint64_t offset = uniecg__align_up(w->position, PAYLOAD_ALIGNMENT), stored = size;
    uniecg_encoding used = encoding == UNIECG_ENCODING_RAW ? UNIECG_ENCODING_RAW : UNIECG_ENCODING_ZSTD;
    uniecg_status s;
    if (used == UNIECG_ENCODING_ZSTD) {
        if ((s = write_zstd(w, name, data, size, offset, &stored))) { w->failed = true; return s; }
        if (encoding == UNIECG_ENCODING_AUTO && stored > size / 10 * 9) { /* saves < 10 %: keep it mappable */
            used = UNIECG_ENCODING_RAW;
            stored = size;
        }
    }
    if (used == UNIECG_ENCODING_RAW && (s = write_at(w, offset, data, size))) { w->failed = true; return s; }
    if (ftruncate(w->fd, (off_t)(offset + stored)) != 0) { /* drops a longer zstd attempt's tail */
        w->failed = true;
        return writer_fail(w, UNIECG_ERR_IO, "cannot truncate '%s': %s", w->partial_path, strerror(errno));
    }
    w->position = offset + stored;
    if ((s = remember(w, &w->names, w->tensor_count, name))) {
        w->failed = true; /* its payload is written but could not be recorded */
        return s;
    }
    w->tensor_count++;

    uint64_t hash = uniecg_xxh64(data, (size_t)size, 0);
    put_u16(&w->table, (uint16_t)name_length);
    put_bytes(&w->table, name, name_length);
    put_u8(&w->table, (uint8_t)dtype);
    put_u8(&w->table, (uint8_t)used);
    put_u8(&w->table, (uint8_t)rank);
    put_u8(&w->table, 0);
    for (uint32_t d = 0; d < rank; d++) put_u64(&w->table, shape[d]);
    put_u64(&w->table, offset);
    put_u64(&w->table, stored);
    put_u64(&w->table, size);
    put_u64(&w->table, hash);
    if (out_written) {
        *out_written = (uniecg_tensor_info){.name = NULL, .dtype = dtype, .encoding = used, .rank = rank,
                                            .element_count = count, .offset = offset, .stored_size = stored,
                                            .raw_size = size, .hash = hash};
        for (uint32_t d = 0; d < UNIECG_MAX_RANK; d++) out_written->shape[d] = d < rank ? shape[d] : 1;
    }
    return UNIECG_OK;
}

/* Makes the rename durable; best effort (some file systems refuse fsync on directories). */
static void sync_directory(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

uniecg_status uniecg_model_writer_finish(uniecg_model_writer *w) {
    if (!w) return UNIECG_ERR_INVALID_ARGUMENT;
    if (w->finished || w->failed) return writer_fail(w, UNIECG_ERR_STATE, "writer is already finished or failed");
    uint64_t meta_offset = w->position, table_offset = meta_offset + w->meta.size;
    uint64_t file_size = table_offset + w->table.size;
    uniecg_status s;
    if ((s = write_at(w, meta_offset, w->meta.bytes, w->meta.size)) ||
        (s = write_at(w, table_offset, w->table.bytes, w->table.size))) {
        w->failed = true;
        return s;
    }
    uint8_t h[HEADER_SIZE] = {0};
    memcpy(h + H_MAGIC, UNIECG_MAGIC, sizeof UNIECG_MAGIC);
    uniecg__put_u16(h + H_MAJOR, UNIECG_FORMAT_MAJOR);
    uniecg__put_u16(h + H_MINOR, UNIECG_FORMAT_MINOR);
    uniecg__put_u64(h + H_FILE_SIZE, file_size);
    uniecg__put_u64(h + H_META_OFFSET, meta_offset);
    uniecg__put_u64(h + H_META_SIZE, w->meta.size);
    uniecg__put_u64(h + H_META_HASH, uniecg_xxh64(w->meta.bytes, (size_t)w->meta.size, 0));
    uniecg__put_u64(h + H_TABLE_OFFSET, table_offset);
    uniecg__put_u64(h + H_TABLE_SIZE, w->table.size);
    uniecg__put_u64(h + H_TABLE_HASH, uniecg_xxh64(w->table.bytes, (size_t)w->table.size, 0));
    uniecg__put_u32(h + H_META_COUNT, w->meta_count);
    uniecg__put_u32(h + H_TENSOR_COUNT, w->tensor_count);
    uniecg__put_u64(h + H_HEADER_HASH, uniecg_xxh64(h, H_HEADER_HASH, 0));
    if ((s = write_at(w, 0, h, HEADER_SIZE))) {
        w->failed = true;
        return s;
    }
    if (ftruncate(w->fd, (off_t)file_size) != 0 || fsync(w->fd) != 0 || close(w->fd) != 0) {
        w->fd = -1;
        w->failed = true;
        return writer_fail(w, UNIECG_ERR_IO, "cannot finish '%s': %s", w->partial_path, strerror(errno));
    }
    w->fd = -1;
    if (rename(w->partial_path, w->path) != 0) {
        w->failed = true;
        return writer_fail(w, UNIECG_ERR_IO, "cannot rename '%s' to '%s': %s", w->partial_path, w->path, strerror(errno));
    }
    w->finished = true;
    sync_directory(w->path);
    return UNIECG_OK;
}

void uniecg_model_writer_free(uniecg_model_writer *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (!w->finished && w->partial_path) unlink(w->partial_path);
    for (uint32_t i = 0; i < w->meta_count; i++) free(w->keys[i]);
    for (uint32_t i = 0; i < w->tensor_count; i++) free(w->names[i]);
    free(w->keys);
    free(w->names);
    free(w->meta.bytes);
    free(w->table.bytes);
    ZSTD_freeCCtx(w->zstd);
    free(w->chunk);
    free(w->path);
    free(w->partial_path);
    free(w);
}
