/* The .uecg reader and writer (ModelFormat.md): round trips of every metadata type, dtype and
 * encoding; a catalogue of damaged files, each refused with the status the spec names (hashes
 * are recomputed after a change so that the deeper check is the one reached); every truncation
 * length; random byte flips; writer refusals; XXH64 test vectors. */
#include "testing.h"

#include <math.h>
#include <sys/stat.h>

/* ---- little-endian helpers (the test's own, independent of the core's) ---- */

static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc((size_t)n + 1);
    if (fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return data;
}

static void write_all(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

/* ---- the reference file ---- */

#define ROWS 4
#define COLS 64

static float reference_values[ROWS * COLS];

static void fill_reference(void) {
    for (int i = 0; i < ROWS * COLS; i++) reference_values[i] = sinf((float)i * 0.37f) * (1.0f + (float)(i % 7));
}

/* Writes a file with one metadata entry of every type and one tensor of every dtype, in raw,
 * zstd and auto encodings. Returns the written infos of the tensors. */
static void write_reference(const char *path, uniecg_tensor_info written[5]) {
    uniecg_model_writer *w = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_writer_create(path, uniecg_writer_default_params(), &w, &err), UNIECG_OK, &err);
    if (!w) exit(2);
    CHECK(uniecg_model_writer_set_bool(w, "a.flag", true) == UNIECG_OK);
    CHECK(uniecg_model_writer_set_i64(w, "b.count", -1234567890123ll) == UNIECG_OK);
    CHECK(uniecg_model_writer_set_f64(w, "c.ratio", 0.1) == UNIECG_OK);
    const char *text = "QTc 452 ms — V1–V6 ✓";
    CHECK(uniecg_model_writer_set_string(w, "d.text", text, strlen(text)) == UNIECG_OK);
    int32_t i32s[3] = {1, -2, 2147483647};
    int64_t i64s[2] = {INT64_MIN, 42};
    float f32s[2] = {1.5f, -0.0f};
    double f64s[1] = {3.25};
    CHECK(uniecg_model_writer_set_array(w, "e.i32", UNIECG_META_I32_ARRAY, i32s, 3) == UNIECG_OK);
    CHECK(uniecg_model_writer_set_array(w, "f.i64", UNIECG_META_I64_ARRAY, i64s, 2) == UNIECG_OK);
    CHECK(uniecg_model_writer_set_array(w, "g.f32", UNIECG_META_F32_ARRAY, f32s, 2) == UNIECG_OK);
    CHECK(uniecg_model_writer_set_array(w, "h.f64", UNIECG_META_F64_ARRAY, f64s, 1) == UNIECG_OK);
    const char *items[3] = {"Ġthe", "", "<|im_end|>"};
    uint64_t lengths[3] = {strlen(items[0]), 0, strlen(items[2])};
    CHECK(uniecg_model_writer_set_string_array(w, "i.strs", items, lengths, 3) ==
          UNIECG_OK);
    CHECK(uniecg_model_writer_set_array(w, "j.empty", UNIECG_META_F32_ARRAY, NULL, 0) == UNIECG_OK);

    uint64_t shape[2] = {ROWS, COLS};
    uint16_t f16[ROWS * COLS], bf16[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++) {
        f16[i] = uniecg_f32_to_f16(reference_values[i]);
        bf16[i] = uniecg_f32_to_bf16(reference_values[i]);
    }
    uint64_t q8_size = 0;
    CHECK(uniecg_dtype_payload_size(UNIECG_DTYPE_Q8, ROWS * COLS, &q8_size) == UNIECG_OK);
    CHECK(q8_size == ROWS * COLS + 2 * ROWS * COLS / 32);
    uint8_t *q8 = malloc(q8_size);
    CHECK_STATUS(uniecg_quantize_q8(reference_values, UNIECG_DTYPE_F32, ROWS, COLS, q8, &err), UNIECG_OK, &err);
    CHECK(uniecg_model_writer_add_tensor(w, "t.f32", UNIECG_DTYPE_F32, 2, shape, reference_values,
                                         sizeof reference_values, UNIECG_ENCODING_RAW, &written[0]) == UNIECG_OK);
    CHECK(uniecg_model_writer_add_tensor(w, "t.f16", UNIECG_DTYPE_F16, 2, shape, f16, sizeof f16,
                                         UNIECG_ENCODING_ZSTD, &written[1]) == UNIECG_OK);
    CHECK(uniecg_model_writer_add_tensor(w, "t.bf16", UNIECG_DTYPE_BF16, 2, shape, bf16, sizeof bf16,
                                         UNIECG_ENCODING_AUTO, &written[2]) == UNIECG_OK);
    CHECK(uniecg_model_writer_add_tensor(w, "t.q8", UNIECG_DTYPE_Q8, 2, shape, q8, q8_size, UNIECG_ENCODING_RAW,
                                         &written[3]) == UNIECG_OK);
    static float zeros[4096]; /* compresses: zstd under AUTO */
    uint64_t flat[1] = {4096};
    CHECK(uniecg_model_writer_add_tensor(w, "t.zeros", UNIECG_DTYPE_F32, 1, flat, zeros, sizeof zeros,
                                         UNIECG_ENCODING_AUTO, &written[4]) == UNIECG_OK);
    CHECK_MSG(uniecg_model_writer_finish(w) == UNIECG_OK, "finish: %s", uniecg_model_writer_last_error(w));
    uniecg_model_writer_free(w);
    free(q8);
}

static void round_trip(const char *path) {
    uniecg_tensor_info written[5];
    write_reference(path, written);
    CHECK(written[0].encoding == UNIECG_ENCODING_RAW && written[1].encoding == UNIECG_ENCODING_ZSTD);
    CHECK(written[4].encoding == UNIECG_ENCODING_ZSTD && written[4].stored_size < 4096 * 4 / 10);
    char partial[320];
    snprintf(partial, sizeof partial, "%.300s.partial", path);
    CHECK(access(partial, F_OK) != 0);

    uniecg_model_file *f = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &f, &err), UNIECG_OK, &err);
    if (!f) return;
    uniecg_file_summary s;
    uniecg_model_file_summary(f, &s);
    CHECK(s.major == 1 && s.minor == 0 && s.metadata_count == 10 && s.tensor_count == 5);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == s.file_size);

    uniecg_meta_entry e;
    CHECK(uniecg_model_file_meta_find(f, "a.flag", &e) == UNIECG_OK && e.type == UNIECG_META_BOOL && e.bool_value);
    CHECK(uniecg_model_file_meta_find(f, "b.count", &e) == UNIECG_OK && e.i64_value == -1234567890123ll);
    CHECK(uniecg_model_file_meta_find(f, "c.ratio", &e) == UNIECG_OK && e.f64_value == 0.1);
    CHECK(uniecg_model_file_meta_find(f, "d.text", &e) == UNIECG_OK && e.type == UNIECG_META_STRING &&
          e.string_length == strlen("QTc 452 ms — V1–V6 ✓") && strcmp(e.string_value, "QTc 452 ms — V1–V6 ✓") == 0);
    CHECK(uniecg_model_file_meta_find(f, "e.i32", &e) == UNIECG_OK && e.count == 3 &&
          ((const int32_t *)e.array)[2] == 2147483647 && ((const int32_t *)e.array)[1] == -2);
    CHECK(uniecg_model_file_meta_find(f, "f.i64", &e) == UNIECG_OK && ((const int64_t *)e.array)[0] == INT64_MIN);
    CHECK(uniecg_model_file_meta_find(f, "g.f32", &e) == UNIECG_OK && ((const float *)e.array)[0] == 1.5f &&
          signbit(((const float *)e.array)[1]));
    CHECK(uniecg_model_file_meta_find(f, "h.f64", &e) == UNIECG_OK && ((const double *)e.array)[0] == 3.25);
    CHECK(uniecg_model_file_meta_find(f, "j.empty", &e) == UNIECG_OK && e.count == 0);
    CHECK(uniecg_model_file_meta_find(f, "no.such.key", &e) == UNIECG_ERR_NOT_FOUND);
    uint32_t strs_index = 8;
    CHECK(uniecg_model_file_meta_at(f, strs_index, &e) == UNIECG_OK && strcmp(e.key, "i.strs") == 0 && e.count == 3);
    const char *item;
    uint64_t item_length;
    CHECK(uniecg_model_file_meta_string_at(f, strs_index, 0, &item, &item_length) == UNIECG_OK && item_length == 5 &&
          memcmp(item, "Ġthe", 5) == 0);
    CHECK(uniecg_model_file_meta_string_at(f, strs_index, 1, &item, &item_length) == UNIECG_OK && item_length == 0);
    CHECK(uniecg_model_file_meta_string_at(f, strs_index, 3, &item, &item_length) != UNIECG_OK);

    uniecg_tensor_info t;
    CHECK(uniecg_model_file_tensor_find(f, "t.f32", &t) == UNIECG_OK && t.rank == 2 && t.shape[0] == ROWS &&
          t.shape[1] == COLS && t.dtype == UNIECG_DTYPE_F32 && t.data &&
          memcmp(t.data, reference_values, sizeof reference_values) == 0);
    CHECK(((uintptr_t)t.data % 64) == 0 && t.offset % 64 == 0 && t.offset >= 128);
    CHECK(t.hash == uniecg_xxh64(reference_values, sizeof reference_values, 0));
    CHECK(uniecg_model_file_tensor_find(f, "t.f16", &t) == UNIECG_OK && t.encoding == UNIECG_ENCODING_ZSTD &&
          ((uintptr_t)t.data % 64) == 0);
    float back[ROWS * COLS];
    bool f16_ok = uniecg_to_f32(t.data, UNIECG_DTYPE_F16, ROWS * COLS, back) == UNIECG_OK;
    for (int i = 0; i < ROWS * COLS && f16_ok; i++)
        f16_ok = fabsf(back[i] - reference_values[i]) <= fabsf(reference_values[i]) * 0x1p-11f + 0x1p-24f;
    CHECK(f16_ok);
    CHECK(uniecg_model_file_tensor_find(f, "t.bf16", &t) == UNIECG_OK);
    bool bf16_ok = uniecg_to_f32(t.data, UNIECG_DTYPE_BF16, ROWS * COLS, back) == UNIECG_OK;
    for (int i = 0; i < ROWS * COLS && bf16_ok; i++)
        bf16_ok = fabsf(back[i] - reference_values[i]) <= fabsf(reference_values[i]) * 0x1p-8f;
    CHECK(bf16_ok);
    CHECK(uniecg_model_file_tensor_find(f, "t.q8", &t) == UNIECG_OK && t.dtype == UNIECG_DTYPE_Q8 &&
          t.raw_size == ROWS * COLS + ROWS * COLS / 16);
    CHECK(uniecg_model_file_tensor_find(f, "t.zeros", &t) == UNIECG_OK && t.shape[0] == 4096 && t.rank == 1);
    CHECK(uniecg_model_file_tensor_find(f, "t.missing", &t) == UNIECG_ERR_NOT_FOUND);
    for (uint32_t i = 0; i < 5; i++) CHECK_STATUS(uniecg_model_file_verify_tensor(f, i, &err), UNIECG_OK, &err);
    CHECK(uniecg_model_file_verify_tensor(f, 5, &err) == UNIECG_ERR_INVALID_ARGUMENT);
    uniecg_model_file_free(f);

    /* Without loading, tensors have no data but verify on request. */
    uniecg_open_params lazy = uniecg_open_default_params();
    lazy.load_tensors = false;
    CHECK_STATUS(uniecg_model_file_open(path, lazy, &f, &err), UNIECG_OK, &err);
    if (f) {
        CHECK(uniecg_model_file_tensor_at(f, 1, &t) == UNIECG_OK && t.data == NULL);
        CHECK_STATUS(uniecg_model_file_verify_tensor(f, 1, &err), UNIECG_OK, &err);
        uniecg_model_file_free(f);
    }
}

/* ---- section walkers, to find the bytes a mutation changes ---- */

typedef struct {
    size_t entry;  /* offset of the entry in the file */
    size_t type;   /* offset of its type byte (metadata) or dtype byte (tensor) */
    size_t value;  /* metadata: first value byte; tensor: first shape u64 */
    size_t after;  /* end of the entry */
} entry_pos;

static size_t meta_value_size(const uint8_t *v, uint8_t type) {
    switch (type) {
    case 1: return 1;
    case 2: case 3: return 8;
    case 4: return 4 + get32(v);
    case 5: case 7: return 8 + 4 * get64(v);
    case 6: case 8: return 8 + 8 * get64(v);
    case 9: {
        uint64_t n = get64(v);
        size_t at = 8;
        for (uint64_t i = 0; i < n; i++) at += 4 + get32(v + at);
        return at;
    }
    default: return 0;
    }
}

static int walk_meta(const uint8_t *file, entry_pos *out, int max) {
    size_t at = (size_t)get64(file + 24);
    uint32_t n = get32(file + 72);
    for (uint32_t i = 0; i < n && (int)i < max; i++) {
        out[i].entry = at;
        out[i].type = at + 2 + get16(file + at);
        out[i].value = out[i].type + 1;
        out[i].after = out[i].value + meta_value_size(file + out[i].value, file[out[i].type]);
        at = out[i].after;
    }
    return (int)n;
}

static int walk_table(const uint8_t *file, entry_pos *out, int max) {
    size_t at = (size_t)get64(file + 48);
    uint32_t n = get32(file + 76);
    for (uint32_t i = 0; i < n && (int)i < max; i++) {
        out[i].entry = at;
        out[i].type = at + 2 + get16(file + at);
        out[i].value = out[i].type + 4; /* dtype, encoding, rank, reserved */
        uint8_t rank = file[out[i].type + 2];
        out[i].after = out[i].value + 8 * rank + 32;
        at = out[i].after;
    }
    return (int)n;
}

/* Offsets of a tensor entry's four u64 fields after the shape. */
static size_t t_offset(const uint8_t *file, const entry_pos *e) { return e->value + 8 * file[e->type + 2]; }

/* Recomputes the section hashes (of sections that lie inside the file) and then the header
 * hash, so a change reaches the check past them. */
static void rehash(uint8_t *file, size_t size) {
    uint64_t mo = get64(file + 24), ms = get64(file + 32), to = get64(file + 48), ts = get64(file + 56);
    if (mo <= size && ms <= size - mo) put64(file + 40, uniecg_xxh64(file + mo, (size_t)ms, 0));
    if (to <= size && ts <= size - to) put64(file + 64, uniecg_xxh64(file + to, (size_t)ts, 0));
    put64(file + 88, uniecg_xxh64(file, 88, 0));
}

/* ---- the catalogue of damaged files ---- */

typedef struct {
    uint8_t *data;
    size_t size;
    entry_pos meta[16], table[8];
} image;

typedef void (*mutation)(image *m);

static uint8_t *base;
static size_t base_size;
static char damaged_path[300];

/* Applies the mutation to a copy of the reference file and checks the reader's status, that the
 * message is not empty and, when given, that it contains `needle`. */
static void expect_damage(const char *label, mutation mutate, bool fix_hashes, uniecg_status expected,
                          const char *needle) {
    image m = {malloc(base_size + 64), base_size, {{0}}, {{0}}};
    memcpy(m.data, base, base_size);
    walk_meta(m.data, m.meta, 16);
    walk_table(m.data, m.table, 8);
    mutate(&m);
    if (fix_hashes) rehash(m.data, m.size);
    write_all(damaged_path, m.data, m.size);
    uniecg_model_file *f = NULL;
    uniecg_error err = {0};
    uniecg_status got = uniecg_model_file_open(damaged_path, uniecg_open_default_params(), &f, &err);
    CHECK_MSG(got == expected && (f != NULL) == (expected == UNIECG_OK), "%s: got %s (%s), expected %s", label, uniecg_status_string(got),
              err.message, uniecg_status_string(expected));
    CHECK_MSG(got == UNIECG_OK || (err.status == got && err.message[0] != 0), "%s: error not filled in", label);
    if (needle) CHECK_MSG(strstr(err.message, needle) != NULL, "%s: message '%s' lacks '%s'", label, err.message, needle);
    uniecg_model_file_free(f);
    free(m.data);
}

static void m_magic(image *m) { m->data[1] = 'X'; }
static void m_major(image *m) { put16(m->data + 8, 2); }
static void m_minor(image *m) { put16(m->data + 10, 7); }
static void m_header_byte(image *m) { m->data[20] ^= 1; }
static void m_flags(image *m) { put32(m->data + 12, 1); }
static void m_reserved(image *m) { put64(m->data + 80, 1); }
static void m_trailing(image *m) { m->data[m->size++] = 0; }
static void m_file_size(image *m) { put64(m->data + 16, m->size + 1); }
static void m_meta_huge(image *m) { put64(m->data + 32, (256ull << 20) + 1); }
static void m_meta_low(image *m) { put64(m->data + 24, 40); }
static void m_meta_overflow(image *m) { put64(m->data + 24, UINT64_MAX - 4); }
static void m_table_past_end(image *m) { put64(m->data + 48, m->size - 2); }
static void m_meta_count(image *m) { put32(m->data + 72, 70000); }
static void m_tensor_count(image *m) { put32(m->data + 76, 2000000); }
static void m_meta_hash(image *m) { m->data[m->meta[0].entry + 3] ^= 0x20; }
static void m_table_hash(image *m) { m->data[m->table[0].entry + 3] ^= 0x20; }
static void m_meta_type(image *m) { m->data[m->meta[1].type] = 99; }
static void m_bool_two(image *m) { m->data[m->meta[0].value] = 2; }
static void m_key_upper(image *m) { m->data[m->meta[0].entry + 2] = 'A'; }
static void m_key_length0(image *m) { put16(m->data + m->meta[0].entry, 0); }
static void m_dup_key_same_length(image *m) {
    /* "c.ratio" (7 bytes) becomes "b.count" (7 bytes): a duplicate of entry 1. */
    memcpy(m->data + m->meta[2].entry + 2, "b.count", 7);
}
static void m_bad_utf8(image *m) { m->data[m->meta[3].value + 4] = 0xC0; }
static void m_string_too_long(image *m) { put32(m->data + m->meta[3].value, (16u << 20) + 1); }
static void m_string_past_section(image *m) { put32(m->data + m->meta[3].value, 1000000); }
static void m_array_past_section(image *m) { put64(m->data + m->meta[4].value, 1ull << 40); }
static void m_meta_leftover(image *m) { put32(m->data + 72, get32(m->data + 72) - 1); }
static void m_dtype(image *m) { m->data[m->table[0].type] = 9; }
static void m_encoding(image *m) { m->data[m->table[0].type + 1] = 7; }
static void m_rank0(image *m) { m->data[m->table[0].type + 2] = 0; }
static void m_rank5(image *m) { m->data[m->table[0].type + 2] = 5; }
static void m_table_reserved(image *m) { m->data[m->table[0].type + 3] = 1; }
static void m_dim0(image *m) { put64(m->data + m->table[0].value, 0); }
static void m_shape_overflow(image *m) {
    put64(m->data + m->table[0].value, 1ull << 32);
    put64(m->data + m->table[0].value + 8, 1ull << 32);
}
static void m_raw_size(image *m) {
    size_t p = t_offset(m->data, &m->table[0]);
    put64(m->data + p + 16, get64(m->data + p + 16) + 4);
}
static void m_stored_ne_raw(image *m) {
    size_t p = t_offset(m->data, &m->table[0]);
    put64(m->data + p + 8, get64(m->data + p + 8) - 4);
}
static void m_unaligned(image *m) {
    size_t p = t_offset(m->data, &m->table[0]);
    put64(m->data + p, get64(m->data + p) + 4);
}
static void m_past_end(image *m) {
    size_t p = t_offset(m->data, &m->table[0]);
    put64(m->data + p, (m->size + 63) / 64 * 64);
}
static void m_offset_overflow(image *m) {
    size_t p = t_offset(m->data, &m->table[0]);
    put64(m->data + p, UINT64_MAX - 63);
}
static void m_overlap(image *m) {
    /* the q8 tensor's payload pointed into the f32 tensor's */
    size_t p0 = t_offset(m->data, &m->table[0]), p3 = t_offset(m->data, &m->table[3]);
    put64(m->data + p3, get64(m->data + p0));
}
static void m_over_header(image *m) {
    size_t p = t_offset(m->data, &m->table[0]);
    put64(m->data + p, 0);
}
static void m_dup_name(image *m) { memcpy(m->data + m->table[1].entry + 2, "t.f32", 5); /* "t.f16" */ }
static void m_q8_cols(image *m) {
    /* (4, 64) -> (256, 1): the same element count, an innermost dimension of 1 */
    put64(m->data + m->table[3].value, 256);
    put64(m->data + m->table[3].value + 8, 1);
}
static void m_payload_flip(image *m) {
    size_t p = t_offset(m->data, &m->table[0]);
    m->data[get64(m->data + p) + 5] ^= 0x40;
}
static void m_zstd_flip(image *m) {
    size_t p = t_offset(m->data, &m->table[1]);
    uint64_t offset = get64(m->data + p), stored = get64(m->data + p + 8);
    m->data[offset + stored / 2] ^= 0xFF;
}
static void m_zstd_short(image *m) {
    size_t p = t_offset(m->data, &m->table[1]);
    put64(m->data + p + 8, get64(m->data + p + 8) - 1);
}
static void m_zstd_magic(image *m) {
    size_t p = t_offset(m->data, &m->table[1]);
    m->data[get64(m->data + p)] ^= 0xFF;
}
static void m_zstd_wrong_size(image *m) {
    /* the f16 tensor claims the shape (2, 64): its frame decodes to twice the bytes */
    put64(m->data + m->table[1].value, ROWS / 2);
    size_t p = t_offset(m->data, &m->table[1]);
    put64(m->data + p + 16, ROWS / 2 * COLS * 2);
}
static void m_nothing(image *m) { (void)m; }
static void m_minor_hashed(image *m) { put16(m->data + 10, 9); }

static void damage_catalogue(void) {
    expect_damage("intact copy", m_nothing, false, UNIECG_OK, NULL);
    expect_damage("newer minor version", m_minor_hashed, true, UNIECG_OK, NULL);
    expect_damage("wrong magic", m_magic, false, UNIECG_ERR_FORMAT, "magic");
    expect_damage("major version 2", m_major, false, UNIECG_ERR_VERSION, "version");
    expect_damage("minor changed without rehash", m_minor, false, UNIECG_ERR_CHECKSUM, "header");
    expect_damage("damaged header byte", m_header_byte, false, UNIECG_ERR_CHECKSUM, "header");
    expect_damage("unknown flag", m_flags, true, UNIECG_ERR_VERSION, "flags");
    expect_damage("reserved header field", m_reserved, true, UNIECG_ERR_FORMAT, "reserved");
    expect_damage("trailing byte", m_trailing, false, UNIECG_ERR_FORMAT, "bytes");
    expect_damage("file_size too large", m_file_size, true, UNIECG_ERR_FORMAT, "bytes");
    expect_damage("metadata over 256 MiB", m_meta_huge, true, UNIECG_ERR_LIMIT, "limit");
    expect_damage("metadata inside the header", m_meta_low, true, UNIECG_ERR_FORMAT, NULL);
    expect_damage("metadata offset overflow", m_meta_overflow, true, UNIECG_ERR_FORMAT, NULL);
    expect_damage("table past the end", m_table_past_end, true, UNIECG_ERR_FORMAT, NULL);
    expect_damage("70000 metadata entries", m_meta_count, true, UNIECG_ERR_LIMIT, "limit");
    expect_damage("2e6 tensors", m_tensor_count, true, UNIECG_ERR_LIMIT, "limit");
    expect_damage("metadata byte flipped", m_meta_hash, false, UNIECG_ERR_CHECKSUM, "metadata");
    expect_damage("table byte flipped", m_table_hash, false, UNIECG_ERR_CHECKSUM, "table");
    expect_damage("unknown metadata type", m_meta_type, true, UNIECG_ERR_FORMAT, "type");
    expect_damage("bool value 2", m_bool_two, true, UNIECG_ERR_FORMAT, "bool");
    expect_damage("upper-case key", m_key_upper, true, UNIECG_ERR_FORMAT, "key");
    expect_damage("empty key", m_key_length0, true, UNIECG_ERR_FORMAT, NULL);
    expect_damage("duplicate key", m_dup_key_same_length, true, UNIECG_ERR_FORMAT, "twice");
    expect_damage("string not UTF-8", m_bad_utf8, true, UNIECG_ERR_FORMAT, "UTF-8");
    expect_damage("string over 16 MiB", m_string_too_long, true, UNIECG_ERR_LIMIT, "limit");
    expect_damage("string past its section", m_string_past_section, true, UNIECG_ERR_FORMAT, NULL);
    expect_damage("array past its section", m_array_past_section, true, UNIECG_ERR_FORMAT, NULL);
    expect_damage("bytes after the last metadata entry", m_meta_leftover, true, UNIECG_ERR_FORMAT, "after");
    expect_damage("unknown dtype", m_dtype, true, UNIECG_ERR_FORMAT, "dtype");
    expect_damage("unknown encoding", m_encoding, true, UNIECG_ERR_FORMAT, "encoding");
    expect_damage("rank 0", m_rank0, true, UNIECG_ERR_FORMAT, "rank");
    expect_damage("rank 5", m_rank5, true, UNIECG_ERR_FORMAT, "rank");
    expect_damage("table reserved byte", m_table_reserved, true, UNIECG_ERR_FORMAT, "reserved");
    expect_damage("dimension 0", m_dim0, true, UNIECG_ERR_FORMAT, "dimension");
    expect_damage("2^64 elements", m_shape_overflow, true, UNIECG_ERR_LIMIT, "limit");
    expect_damage("raw size does not match the shape", m_raw_size, true, UNIECG_ERR_FORMAT, "raw size");
    expect_damage("raw payload stored size differs", m_stored_ne_raw, true, UNIECG_ERR_FORMAT, NULL);
    expect_damage("unaligned payload", m_unaligned, true, UNIECG_ERR_FORMAT, "aligned");
    expect_damage("payload past the end", m_past_end, true, UNIECG_ERR_FORMAT, NULL);
    expect_damage("payload offset overflow", m_offset_overflow, true, UNIECG_ERR_FORMAT, NULL);
    expect_damage("overlapping payloads", m_overlap, true, UNIECG_ERR_FORMAT, "overlaps");
    expect_damage("payload over the header", m_over_header, true, UNIECG_ERR_FORMAT, NULL);
    expect_damage("duplicate tensor name", m_dup_name, true, UNIECG_ERR_FORMAT, "twice");
    expect_damage("q8 innermost not a multiple of 32", m_q8_cols, true, UNIECG_ERR_FORMAT, "multiple");
    expect_damage("raw payload byte flipped", m_payload_flip, false, UNIECG_ERR_CHECKSUM, "t.f32");
    /* the frame still decodes, to other bytes: the payload hash catches it */
    expect_damage("zstd payload damaged", m_zstd_flip, false, UNIECG_ERR_CHECKSUM, "t.f16");
    expect_damage("zstd frame cut short", m_zstd_short, true, UNIECG_ERR_COMPRESSION, "t.f16");
    expect_damage("zstd payload not a frame", m_zstd_magic, false, UNIECG_ERR_COMPRESSION, "zstd");
    expect_damage("zstd frame of the wrong size", m_zstd_wrong_size, true, UNIECG_ERR_COMPRESSION, "t.f16");

    /* A flipped payload byte is found by --verify even when the file opened without checks. */
    image m = {malloc(base_size), base_size, {{0}}, {{0}}};
    memcpy(m.data, base, base_size);
    walk_table(m.data, m.table, 8);
    m_payload_flip(&m);
    write_all(damaged_path, m.data, m.size);
    uniecg_open_params fast = uniecg_open_default_params();
    fast.verify_checksums = false;
    uniecg_model_file *f = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_file_open(damaged_path, fast, &f, &err), UNIECG_OK, &err);
    if (f) {
        CHECK(uniecg_model_file_verify_tensor(f, 0, &err) == UNIECG_ERR_CHECKSUM && strstr(err.message, "t.f32"));
        CHECK(uniecg_model_file_verify_tensor(f, 1, &err) == UNIECG_OK);
        uniecg_model_file_free(f);
    }
    free(m.data);
}

/* Every proper prefix of the file is refused; none crashes. */
static void truncations(void) {
    int refused = 0;
    for (size_t n = 0; n < base_size; n++) {
        write_all(damaged_path, base, n);
        uniecg_model_file *f = NULL;
        uniecg_error err = {0};
        uniecg_status s = uniecg_model_file_open(damaged_path, uniecg_open_default_params(), &f, &err);
        if (s != UNIECG_OK && f == NULL && err.message[0]) refused++;
        else test_fail(__FILE__, __LINE__, "truncated to %zu bytes: %s", n, uniecg_status_string(s));
        uniecg_model_file_free(f);
    }
    CHECK(refused == (int)base_size);
    printf("truncations: all %zu prefixes refused\n", base_size);
}

/* Random byte changes, with and without recomputed hashes: the reader may accept a change that
 * only touches padding or a value, but must never crash or read out of bounds (the sanitizer
 * build checks the latter). Accepted files must still verify. */
static void random_flips(void) {
    int accepted = 0, refused = 0;
    uint8_t *copy = malloc(base_size);
    for (int iteration = 0; iteration < 3000; iteration++) {
        memcpy(copy, base, base_size);
        int flips = 1 + (int)(test_next() % 3);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(test_next() % base_size);
            copy[at] ^= (uint8_t)(1u << (test_next() % 8));
        }
        if (iteration % 2) rehash(copy, base_size);
        write_all(damaged_path, copy, base_size);
        uniecg_model_file *f = NULL;
        uniecg_error err = {0};
        if (uniecg_model_file_open(damaged_path, uniecg_open_default_params(), &f, &err) == UNIECG_OK) {
            accepted++;
            uniecg_file_summary s;
            uniecg_model_file_summary(f, &s);
            for (uint32_t i = 0; i < s.tensor_count; i++)
                CHECK_MSG(uniecg_model_file_verify_tensor(f, i, &err) == UNIECG_OK, "accepted file fails verify");
        } else {
            refused++;
            CHECK_MSG(err.message[0] != 0, "refusal without a message");
        }
        uniecg_model_file_free(f);
    }
    free(copy);
    printf("random flips: %d refused, %d accepted (padding or values)\n", refused, accepted);
    CHECK(refused > 2000);
}

/* ---- writer refusals ---- */

static void writer_refusals(void) {
    char path[300];
    test_path(path, sizeof path, "refusals.uecg");
    uniecg_model_writer *w = NULL;
    uniecg_error err = {0};
    CHECK_STATUS(uniecg_model_writer_create(path, uniecg_writer_default_params(), &w, &err), UNIECG_OK, &err);
    if (!w) return;
    CHECK(uniecg_model_writer_set_bool(w, "Bad.Key", true) != UNIECG_OK);
    CHECK(uniecg_model_writer_set_bool(w, "", true) != UNIECG_OK);
    char long_key[300];
    memset(long_key, 'k', 256);
    long_key[256] = 0;
    CHECK(uniecg_model_writer_set_i64(w, long_key, 1) != UNIECG_OK);
    CHECK(uniecg_model_writer_set_i64(w, "ok.key", 1) == UNIECG_OK);
    CHECK(uniecg_model_writer_set_i64(w, "ok.key", 2) != UNIECG_OK); /* duplicate */
    CHECK(uniecg_model_writer_set_string(w, "bad.utf8", "\xff\xfe", 2) != UNIECG_OK);
    float data[64] = {0};
    uint64_t shape[2] = {2, 32};
    CHECK(uniecg_model_writer_add_tensor(w, "w", UNIECG_DTYPE_F32, 2, shape, data, 100, UNIECG_ENCODING_RAW, NULL) !=
          UNIECG_OK); /* size mismatch */
    CHECK(uniecg_model_writer_add_tensor(w, "w", UNIECG_DTYPE_F32, 0, shape, data, 0, UNIECG_ENCODING_RAW, NULL) !=
          UNIECG_OK);
    CHECK(uniecg_model_writer_add_tensor(w, "w", UNIECG_DTYPE_F32, 5, shape, data, 256, UNIECG_ENCODING_RAW, NULL) !=
          UNIECG_OK);
    uint64_t q8_shape[2] = {1, 48};
    CHECK(uniecg_model_writer_add_tensor(w, "q", UNIECG_DTYPE_Q8, 2, q8_shape, data, 48 + 4, UNIECG_ENCODING_RAW,
                                         NULL) != UNIECG_OK);
    CHECK(uniecg_model_writer_add_tensor(w, "w", (uniecg_dtype)7, 2, shape, data, 256, UNIECG_ENCODING_RAW, NULL) !=
          UNIECG_OK);
    CHECK(uniecg_model_writer_add_tensor(w, "w", UNIECG_DTYPE_F32, 2, shape, data, 256, UNIECG_ENCODING_RAW, NULL) ==
          UNIECG_OK); /* the rejected calls left the writer usable */
    CHECK(uniecg_model_writer_add_tensor(w, "w", UNIECG_DTYPE_F32, 2, shape, data, 256, UNIECG_ENCODING_RAW, NULL) !=
          UNIECG_OK); /* duplicate name */
    CHECK(uniecg_model_writer_last_error(w)[0] != 0);
    CHECK(uniecg_model_writer_finish(w) == UNIECG_OK);
    CHECK(uniecg_model_writer_finish(w) == UNIECG_ERR_STATE);
    CHECK(uniecg_model_writer_set_i64(w, "late", 1) == UNIECG_ERR_STATE);
    uniecg_model_writer_free(w);
    uniecg_model_file *f = NULL;
    CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &f, &err), UNIECG_OK, &err);
    uniecg_model_file_free(f);

    /* A writer freed before finish leaves neither the file nor the .partial behind, and an
     * existing file of that name is untouched. */
    char abandoned[300], partial[320];
    test_path(abandoned, sizeof abandoned, "abandoned.uecg");
    snprintf(partial, sizeof partial, "%.300s.partial", abandoned);
    CHECK(uniecg_model_writer_create(abandoned, uniecg_writer_default_params(), &w, &err) == UNIECG_OK);
    CHECK(uniecg_model_writer_add_tensor(w, "w", UNIECG_DTYPE_F32, 2, shape, data, 256, UNIECG_ENCODING_ZSTD, NULL) ==
          UNIECG_OK);
    CHECK(access(partial, F_OK) == 0);
    uniecg_model_writer_free(w);
    CHECK(access(partial, F_OK) != 0 && access(abandoned, F_OK) != 0);
    CHECK(uniecg_model_writer_create(path, uniecg_writer_default_params(), &w, &err) == UNIECG_OK);
    uniecg_model_writer_free(w);
    CHECK_STATUS(uniecg_model_file_open(path, uniecg_open_default_params(), &f, &err), UNIECG_OK, &err);
    uniecg_model_file_free(f);

    CHECK(uniecg_model_writer_create("/nonexistent-dir/x.uecg", uniecg_writer_default_params(), &w, &err) ==
              UNIECG_ERR_IO &&
          w == NULL && strstr(err.message, "nonexistent"));
    CHECK(uniecg_model_file_open("/nonexistent-dir/x.uecg", uniecg_open_default_params(), &f, &err) == UNIECG_ERR_IO &&
          strstr(err.message, "x.uecg"));
    CHECK(uniecg_model_file_open(test_dir, uniecg_open_default_params(), &f, &err) == UNIECG_ERR_IO &&
          strstr(err.message, "regular"));
    CHECK(uniecg_model_file_open(NULL, uniecg_open_default_params(), &f, &err) == UNIECG_ERR_INVALID_ARGUMENT);
}

/* ---- hashes ---- */

static void hashes(void) {
    CHECK(uniecg_xxh64("", 0, 0) == 0xEF46DB3751D8E999ull);
    CHECK(uniecg_xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ull);
    /* 39 bytes: one 32-byte stripe, then a u32 and three single bytes */
    const char *s = "Nobody inspects the spammish repetition";
    CHECK(uniecg_xxh64(s, strlen(s), 0) == 0xFBCEA83C8A378BF1ull);
    /* the hash of a buffer does not depend on its alignment */
    uint8_t buffer[200];
    for (int i = 0; i < 200; i++) buffer[i] = (uint8_t)(i * 7 + 3);
    uint64_t h = uniecg_xxh64(buffer + 1, 150, 0);
    memmove(buffer, buffer + 1, 150);
    CHECK(uniecg_xxh64(buffer, 150, 0) == h);
}

int main(void) {
    fill_reference();
    test_make_dir("uniecg-format");
    char path[300];
    test_path(path, sizeof path, "reference.uecg");
    test_path(damaged_path, sizeof damaged_path, "damaged.uecg");
    hashes();
    round_trip(path);
    base = read_all(path, &base_size);
    if (!base) {
        printf("cannot read the reference file\n");
        return 1;
    }
    damage_catalogue();
    truncations();
    random_flips();
    writer_refusals();
    free(base);
    test_cleanup_dir();
    return test_summary();
}
