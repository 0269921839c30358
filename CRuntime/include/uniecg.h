/*
 * uniecg.h — the whole public C API of the UniECG core.
 *
 * UniECG is an educational aid for learning to read ECGs. It is not a diagnostic device.
 *
 * Conventions: every function that can fail returns a uniecg_status; handles are opaque and
 * created/freed in pairs (freeing NULL does nothing); parameter structs come from
 * *_default_params() and are passed by value; the core never prints, exits or aborts.
 * Functions that can fail on user input take an optional `uniecg_error *` which, when not
 * NULL, receives a human-readable message naming the problem.
 */
#ifndef UNIECG_H
#define UNIECG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Status codes and errors                                                                     */

typedef enum {
    UNIECG_OK = 0,
    UNIECG_ERR_INVALID_ARGUMENT = 1, /* a caller passed a bad value (NULL, out of range)       */
    UNIECG_ERR_IO = 2,               /* open/read/write/mmap failed                            */
    UNIECG_ERR_FORMAT = 3,           /* the file is not a well-formed .uecg file               */
    UNIECG_ERR_VERSION = 4,          /* a format version or feature this reader does not know  */
    UNIECG_ERR_CHECKSUM = 5,         /* a stored hash does not match the bytes                 */
    UNIECG_ERR_COMPRESSION = 6,      /* a zstd frame is corrupt or has the wrong size          */
    UNIECG_ERR_OUT_OF_MEMORY = 7,
    UNIECG_ERR_NOT_FOUND = 8,        /* no metadata key / tensor of that name                  */
    UNIECG_ERR_TYPE = 9,             /* a metadata value or tensor has another type            */
    UNIECG_ERR_LIMIT = 10,           /* a size or count exceeds a documented hard limit        */
    UNIECG_ERR_RANGE = 11,           /* a value cannot be represented (NaN, f16 overflow)      */
    UNIECG_ERR_STATE = 12,           /* call made in the wrong order (e.g. writer finished)    */
    UNIECG_ERR_CANCELLED = 13,       /* a callback asked to stop                               */
} uniecg_status;

/* A short constant description of a status ("checksum mismatch"). Never NULL. */
const char *uniecg_status_string(uniecg_status status);

#define UNIECG_ERROR_MESSAGE_SIZE 512
typedef struct {
    uniecg_status status;
    char message[UNIECG_ERROR_MESSAGE_SIZE]; /* NUL-terminated UTF-8 */
} uniecg_error;

/* ------------------------------------------------------------------------------------------ */
/* Element types and half-precision conversion                                                 */

typedef enum {
    UNIECG_DTYPE_F32 = 0,
    UNIECG_DTYPE_F16 = 1,
    UNIECG_DTYPE_BF16 = 2,
    UNIECG_DTYPE_Q8 = 3, /* int8 symmetric, one f16 scale per group of 32 (ModelFormat.md §6) */
} uniecg_dtype;

#define UNIECG_Q8_GROUP 32

/* "f32", "f16", "bf16", "q8", or NULL for an unknown value. */
const char *uniecg_dtype_name(uniecg_dtype dtype);

/* Bytes of a payload holding `count` elements of `dtype` (count must be a multiple of 32 for
 * q8). Returns UNIECG_ERR_LIMIT on overflow. */
uniecg_status uniecg_dtype_payload_size(uniecg_dtype dtype, uint64_t count, uint64_t *out_bytes);

/* IEEE binary16 and bfloat16, round to nearest, ties to even; NaN stays NaN. */
uint16_t uniecg_f32_to_f16(float value);
float uniecg_f16_to_f32(uint16_t bits);
uint16_t uniecg_f32_to_bf16(float value);
float uniecg_bf16_to_f32(uint16_t bits);

/* Quantize `rows` x `cols` values (cols a multiple of 32) of `src_dtype` (f32, f16 or bf16)
 * into a q8 payload (ModelFormat.md §6) at `dst` of uniecg_dtype_payload_size(Q8, rows*cols)
 * bytes. Fails with UNIECG_ERR_RANGE on NaN/Inf or a scale beyond the f16 range. */
uniecg_status uniecg_quantize_q8(const void *src, uniecg_dtype src_dtype, uint64_t rows,
                                 uint64_t cols, void *dst, uniecg_error *error);

/* Expand `count` elements of any dtype to f32 (for q8, `src` is a whole payload of `count`
 * elements). */
uniecg_status uniecg_to_f32(const void *src, uniecg_dtype src_dtype, uint64_t count, float *dst);

/* XXH64 (the published xxHash 64-bit algorithm) of `length` bytes with `seed`. */
uint64_t uniecg_xxh64(const void *data, size_t length, uint64_t seed);

/* ------------------------------------------------------------------------------------------ */
/* Model files (.uecg): reading                                                                 */

#define UNIECG_FORMAT_MAJOR 1
#define UNIECG_FORMAT_MINOR 0
#define UNIECG_MAX_RANK 4
#define UNIECG_MAX_NAME_BYTES 255

typedef enum {
    UNIECG_ENCODING_RAW = 0,  /* payload bytes as they are, 64-byte aligned, mmapped          */
    UNIECG_ENCODING_ZSTD = 1, /* payload is one zstd frame                                     */
    UNIECG_ENCODING_AUTO = 255, /* writer only: zstd, unless it saves less than 10 %           */
} uniecg_encoding;

typedef enum {
    UNIECG_META_BOOL = 1,
    UNIECG_META_I64 = 2,
    UNIECG_META_F64 = 3,
    UNIECG_META_STRING = 4,
    UNIECG_META_I32_ARRAY = 5,
    UNIECG_META_I64_ARRAY = 6,
    UNIECG_META_F32_ARRAY = 7,
    UNIECG_META_F64_ARRAY = 8,
    UNIECG_META_STRING_ARRAY = 9,
} uniecg_meta_type;

typedef struct uniecg_model_file uniecg_model_file;

typedef struct {
    bool load_tensors;     /* map raw and decompress zstd payloads at open (default true)    */
    bool verify_checksums; /* check every loaded payload's XXH64 (default true)              */
} uniecg_open_params;

uniecg_open_params uniecg_open_default_params(void);

/* Opens and validates a model file. Header, metadata and tensor table are always checked
 * completely; payloads are loaded (and verified) when params.load_tensors is set. */
uniecg_status uniecg_model_file_open(const char *path, uniecg_open_params params,
                                     uniecg_model_file **out_file, uniecg_error *error);
void uniecg_model_file_free(uniecg_model_file *file);

typedef struct {
    uint16_t major, minor;
    uint64_t file_size;
    uint32_t metadata_count;
    uint32_t tensor_count;
    uint64_t metadata_bytes;
    uint64_t table_bytes;
} uniecg_file_summary;

void uniecg_model_file_summary(const uniecg_model_file *file, uniecg_file_summary *out);

/* Metadata entry i (0 <= i < metadata_count), in file order. Pointers stay valid until the
 * file is freed. Strings are NUL-terminated and also carry their byte length. */
typedef struct {
    const char *key;
    uniecg_meta_type type;
    bool bool_value;
    int64_t i64_value;
    double f64_value;
    const char *string_value; /* STRING */
    uint64_t string_length;
    uint64_t count;           /* element count of arrays                                       */
    const void *array;        /* I32/I64/F32/F64 arrays: aligned native-endian elements         */
} uniecg_meta_entry;

uniecg_status uniecg_model_file_meta_at(const uniecg_model_file *file, uint32_t index,
                                        uniecg_meta_entry *out);
/* Look-up by key: UNIECG_ERR_NOT_FOUND when absent. */
uniecg_status uniecg_model_file_meta_find(const uniecg_model_file *file, const char *key,
                                          uniecg_meta_entry *out);
/* Element `item` of a STRING_ARRAY entry. */
uniecg_status uniecg_model_file_meta_string_at(const uniecg_model_file *file, uint32_t index,
                                               uint64_t item, const char **out_string,
                                               uint64_t *out_length);

typedef struct {
    const char *name;
    uniecg_dtype dtype;
    uniecg_encoding encoding;
    uint32_t rank;
    uint64_t shape[UNIECG_MAX_RANK]; /* outermost first; unused dimensions are 1             */
    uint64_t element_count;
    uint64_t offset;      /* absolute file offset of the stored payload                        */
    uint64_t stored_size; /* bytes in the file                                                 */
    uint64_t raw_size;    /* bytes once decoded                                                */
    uint64_t hash;        /* XXH64 (seed 0) of the decoded payload                             */
    const void *data;     /* decoded payload, 64-byte aligned; NULL unless loaded              */
} uniecg_tensor_info;

uniecg_status uniecg_model_file_tensor_at(const uniecg_model_file *file, uint32_t index,
                                          uniecg_tensor_info *out);
uniecg_status uniecg_model_file_tensor_find(const uniecg_model_file *file, const char *name,
                                            uniecg_tensor_info *out);

/* Decodes tensor `index` into a scratch buffer and checks its hash, whether or not payloads
 * were loaded at open. UNIECG_ERR_CHECKSUM / UNIECG_ERR_COMPRESSION name the tensor. */
uniecg_status uniecg_model_file_verify_tensor(const uniecg_model_file *file, uint32_t index,
                                              uniecg_error *error);

/* ------------------------------------------------------------------------------------------ */
/* Model files (.uecg): writing                                                                 */

typedef struct uniecg_model_writer uniecg_model_writer;

typedef struct {
    int zstd_level; /* 1..22, default 9 */
} uniecg_writer_params;

uniecg_writer_params uniecg_writer_default_params(void);

/* Creates `path` (truncating it). Payloads are written as tensors are added, so the writer
 * holds one tensor at a time; metadata and the tensor table are written by finish. */
uniecg_status uniecg_model_writer_create(const char *path, uniecg_writer_params params,
                                         uniecg_model_writer **out_writer, uniecg_error *error);

uniecg_status uniecg_model_writer_set_bool(uniecg_model_writer *w, const char *key, bool value);
uniecg_status uniecg_model_writer_set_i64(uniecg_model_writer *w, const char *key, int64_t value);
uniecg_status uniecg_model_writer_set_f64(uniecg_model_writer *w, const char *key, double value);
uniecg_status uniecg_model_writer_set_string(uniecg_model_writer *w, const char *key,
                                             const char *value, uint64_t length);
/* Numeric arrays: type is one of the *_ARRAY numeric types; `values` holds `count` elements. */
uniecg_status uniecg_model_writer_set_array(uniecg_model_writer *w, const char *key,
                                            uniecg_meta_type type, const void *values,
                                            uint64_t count);
/* String arrays: `strings[i]` has `lengths[i]` bytes (UTF-8, need not be NUL-terminated). */
uniecg_status uniecg_model_writer_set_string_array(uniecg_model_writer *w, const char *key,
                                                   const char *const *strings,
                                                   const uint64_t *lengths, uint64_t count);

/* Writes one tensor. `data` holds its decoded payload in `dtype` (for q8, the output of
 * uniecg_quantize_q8) and `size` must equal the payload size its shape implies. */
uniecg_status uniecg_model_writer_add_tensor(uniecg_model_writer *w, const char *name,
                                             uniecg_dtype dtype, uint32_t rank,
                                             const uint64_t *shape, const void *data,
                                             uint64_t size, uniecg_encoding encoding,
                                             uniecg_tensor_info *out_written);

/* Writes metadata, tensor table and header, and closes the file. */
uniecg_status uniecg_model_writer_finish(uniecg_model_writer *w);
/* Message of the writer's last failure ("" when none). */
const char *uniecg_model_writer_last_error(const uniecg_model_writer *w);
/* Frees the writer; a writer never finished leaves no file behind (it is removed). */
void uniecg_model_writer_free(uniecg_model_writer *w);

/* ------------------------------------------------------------------------------------------ */
/* Kernels and threads                                                                          */

/* Implementations of the int8 kernels. AUTO picks the best one this CPU supports; the
 * environment variable UNIECG_KERNELS=portable|avx2|neon|neon-dotprod overrides AUTO (a
 * variant the CPU lacks is refused, never run). */
typedef enum {
    UNIECG_KERNELS_AUTO = 0,
    UNIECG_KERNELS_PORTABLE = 1,
    UNIECG_KERNELS_AVX2 = 2,         /* x86-64 with AVX2, FMA and F16C                         */
    UNIECG_KERNELS_NEON = 3,         /* arm64 baseline (armv8.0 Advanced SIMD)                 */
    UNIECG_KERNELS_NEON_DOTPROD = 4, /* arm64 with the dot-product extension (SDOT)            */
} uniecg_kernel_variant;

/* "portable", "avx2", "neon", "neon-dotprod" ("auto" for AUTO); NULL when unknown. */
const char *uniecg_kernel_variant_name(uniecg_kernel_variant variant);
/* True when this build and CPU can run `variant` (AUTO and PORTABLE always can). */
bool uniecg_kernel_variant_supported(uniecg_kernel_variant variant);
/* Resolves AUTO (honouring UNIECG_KERNELS) to a concrete supported variant. Fails with
 * UNIECG_ERR_INVALID_ARGUMENT when a named or requested variant is unknown or unsupported. */
uniecg_status uniecg_kernel_variant_resolve(uniecg_kernel_variant requested, uniecg_kernel_variant *out,
                                            uniecg_error *error);

/* q8 matrix-vector product with on-the-fly activation quantization, exposed for tests and
 * benchmarks: y[r] = sum_c W[r][c] * x[c] for r < rows, W a q8 payload (rows x cols, cols a
 * multiple of 32). x is quantized per group of 32 first (see ModelFormat.md §6 for W). */
uniecg_status uniecg_q8_matvec(uniecg_kernel_variant variant, const void *w_payload, uint64_t rows,
                               uint64_t cols, const float *x, float *y);
/* Integer dot product of two int8 groups of 32 with the given variant (bit-exactness tests). */
int32_t uniecg_q8_group_dot(uniecg_kernel_variant variant, const int8_t *a, const int8_t *b);

/* A small persistent pool of worker threads shared by every op of the models that use it. */
typedef struct uniecg_thread_pool uniecg_thread_pool;
/* n_threads counts the calling thread; 0 means the number of physical cores. */
uniecg_status uniecg_thread_pool_create(int32_t n_threads, uniecg_thread_pool **out, uniecg_error *error);
int32_t uniecg_thread_pool_size(const uniecg_thread_pool *pool);
void uniecg_thread_pool_free(uniecg_thread_pool *pool);
/* Physical cores of this machine (at least 1). */
int32_t uniecg_physical_cores(void);

/* Best read bandwidth over `repeats` passes summing a `bytes` buffer with the pool's threads
 * (NULL pool: one thread); the benchmark's roofline. */
uniecg_status uniecg_measure_read_bandwidth(uniecg_thread_pool *pool, uint64_t bytes, int32_t repeats,
                                            double *out_bytes_per_second);

/* ------------------------------------------------------------------------------------------ */
/* Text decoder (Llama / Qwen2 family)                                                          */

typedef struct uniecg_lm uniecg_lm;

typedef struct {
    int32_t context_length;        /* KV cache positions; 0 = the model's, capped at 4096     */
    int32_t batch_size;            /* tokens per batched prompt step; 0 = 64                   */
    uniecg_kernel_variant kernels; /* AUTO honours UNIECG_KERNELS                              */
    uniecg_thread_pool *pool;      /* shared pool; NULL = the model makes its own              */
    int32_t n_threads;             /* threads when pool is NULL; 0 = physical cores            */
    /* Polled between layers of a decode; returning true stops it with UNIECG_ERR_CANCELLED. */
    bool (*abort_callback)(void *user_data);
    void *abort_user_data;
} uniecg_lm_params;

uniecg_lm_params uniecg_lm_default_params(void);

/* Builds a decoder over the tensors of `file` (opened with load_tensors), which must outlive it.
 * Every hyper-parameter comes from the file's text.* metadata; a missing key or tensor is an
 * error naming it. */
uniecg_status uniecg_lm_create(const uniecg_model_file *file, uniecg_lm_params params, uniecg_lm **out_lm,
                               uniecg_error *error);
void uniecg_lm_free(uniecg_lm *lm);

typedef struct {
    int32_t vocab_size, dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim;
    int32_t context_length; /* of this instance's KV cache */
    int32_t n_threads;
    uniecg_kernel_variant kernels;
} uniecg_lm_info;

void uniecg_lm_get_info(const uniecg_lm *lm, uniecg_lm_info *out);

/* One step of evaluation: n_tokens positions appended after the current position. */
typedef struct {
    int32_t n_tokens;
    const int32_t *tokens;         /* (n_tokens) ids; ignored where an embedding is given      */
    const float *embeddings;       /* optional (n_tokens, dim) input rows ...                  */
    const uint8_t *embedding_mask; /* ... used where mask[i] != 0 (NULL mask: all rows)        */
    float *logits;                 /* optional: (n_tokens, vocab) if all_logits, else (vocab)  */
    bool all_logits;
    float *hidden;                 /* optional (n_tokens, dim): last-layer hidden states after
                                      the final norm (Hugging Face hidden_states[-1])          */
} uniecg_lm_batch;

/* Runs the batch; fails with UNIECG_ERR_LIMIT when it would pass the context length, and with
 * UNIECG_ERR_INVALID_ARGUMENT for a token id outside the vocabulary. On error the position is
 * unchanged. */
uniecg_status uniecg_lm_decode(uniecg_lm *lm, const uniecg_lm_batch *batch, uniecg_error *error);
/* Positions evaluated so far (the KV cache fill). */
int32_t uniecg_lm_position(const uniecg_lm *lm);
/* Forgets every position from `position` on (0 = start over). */
uniecg_status uniecg_lm_rewind(uniecg_lm *lm, int32_t position);

/* ------------------------------------------------------------------------------------------ */
/* Sampler                                                                                      */

/* Order of application: repetition penalty (Hugging Face rule: positive logits divided, negative
 * multiplied, over the last repetition_window accepted tokens), temperature (0 = greedy:
 * the highest logit, lowest id on ties), top-k, top-p, min-p, then one draw. Randomness:
 * xoshiro256** seeded through splitmix64 from `seed`; a draw is (next() >> 40) / 2^24. */
typedef struct {
    float temperature;        /* 0 = greedy                                       (default 0.8)  */
    int32_t top_k;            /* 0 = off                                          (default 40)   */
    float top_p;              /* 1 = off                                          (default 0.95) */
    float min_p;              /* 0 = off                                          (default 0.05) */
    float repetition_penalty; /* 1 = off                                          (default 1.1)  */
    int32_t repetition_window;/* tokens remembered for the penalty                (default 64)   */
    uint64_t seed;            /*                                                  (default 0)    */
} uniecg_sampler_params;

typedef struct uniecg_sampler uniecg_sampler;

uniecg_sampler_params uniecg_sampler_default_params(void);
uniecg_status uniecg_sampler_create(uniecg_sampler_params params, int32_t vocab_size, uniecg_sampler **out,
                                    uniecg_error *error);
void uniecg_sampler_free(uniecg_sampler *sampler);
/* Picks a token from `logits` (vocab_size values; modified in place). UNIECG_ERR_RANGE on NaN. */
uniecg_status uniecg_sampler_sample(uniecg_sampler *sampler, float *logits, int32_t *out_token);
/* Records a token (prompt or generated) for the repetition penalty. */
void uniecg_sampler_accept(uniecg_sampler *sampler, int32_t token);
/* Back to the seed's first draw, with an empty history. */
void uniecg_sampler_reset(uniecg_sampler *sampler);

/* ------------------------------------------------------------------------------------------ */
/* Diffusion schedulers (the update rules of diffusers' DDPM, DDIM and DPM-Solver++ 2M)         */

typedef enum {
    UNIECG_SCHEDULER_DDPM = 0,     /* ancestral, "fixed_small" variance, "leading" timesteps   */
    UNIECG_SCHEDULER_DDIM = 1,     /* with eta; "leading" timesteps, alpha at t<0 is 1          */
    UNIECG_SCHEDULER_DPMPP_2M = 2, /* dpmsolver++ order 2, "linspace" timesteps, first order at
                                      the last step, final sigma 0                            */
} uniecg_scheduler_kind;

typedef enum {
    UNIECG_BETAS_LINEAR = 0,        /* linspace(beta_start, beta_end)                            */
    UNIECG_BETAS_SCALED_LINEAR = 1, /* linspace(sqrt(beta_start), sqrt(beta_end))^2              */
    UNIECG_BETAS_COSINE = 2,        /* "squaredcos_cap_v2", betas capped at 0.999                */
} uniecg_beta_schedule;

typedef enum { UNIECG_PREDICT_EPSILON = 0, UNIECG_PREDICT_V = 1 } uniecg_prediction;

typedef struct {
    uniecg_scheduler_kind kind;
    int32_t train_steps;       /* default 1000                                                 */
    uniecg_beta_schedule betas;/* default LINEAR                                               */
    double beta_start, beta_end; /* default 0.00085, 0.012                                     */
    uniecg_prediction prediction; /* default EPSILON                                           */
    int32_t steps;             /* inference steps, default 50                                  */
    float eta;                 /* DDIM only, default 0                                         */
    bool clip_sample;          /* clamp the x0 prediction (DDPM, DDIM), default true           */
    float clip_range;          /* default 1                                                    */
    int64_t sample_size;       /* floats per sample (e.g. 4 x 128), required                   */
} uniecg_scheduler_params;

typedef struct uniecg_scheduler uniecg_scheduler;

uniecg_scheduler_params uniecg_scheduler_default_params(void);
uniecg_status uniecg_scheduler_create(uniecg_scheduler_params params, uniecg_scheduler **out, uniecg_error *error);
void uniecg_scheduler_free(uniecg_scheduler *scheduler);
/* Restarts the multistep history (before a new sample). */
void uniecg_scheduler_reset(uniecg_scheduler *scheduler);
int32_t uniecg_scheduler_steps(const uniecg_scheduler *scheduler);
/* Training timestep of inference step i (descending). */
int32_t uniecg_scheduler_timestep(const uniecg_scheduler *scheduler, int32_t i);
/* Step i: sample <- the update from the model output at that step. `noise` (sample_size
 * standard normals) is needed by DDPM (except the last step) and by DDIM with eta > 0. Steps
 * must be taken in order 0, 1, ... for the multistep solver. A NaN or infinity in the model
 * output, the sample or the noise fails with UNIECG_ERR_RANGE before anything is written.
 * DPM-Solver++ needs steps < train_steps (linspace would repeat a timestep). */
uniecg_status uniecg_scheduler_step(uniecg_scheduler *scheduler, int32_t i, const float *model_output, float *sample,
                                    const float *noise, uniecg_error *error);

/* Standard normal noise from a seed: xoshiro256** seeded through splitmix64, u = (next >> 11)
 * * 2^-53, Box-Muller pairs z0 = sqrt(-2 ln(1 - u1)) cos(2 pi u2), z1 = ... sin(...), all in
 * double and rounded to float. The same seed gives the same numbers everywhere. */
void uniecg_normal_noise(uint64_t seed, float *out, int64_t count);

/* ------------------------------------------------------------------------------------------ */
/* Tokenizer                                                                                    */

/* Byte-level and SentencePiece-style BPE tokenizers (Llama / Qwen2 family) read from a file's
 * tokenizer.* metadata, giving the ids of Hugging Face `tokenizers`. Read-only once created:
 * one tokenizer may encode and decode on several threads at once. */
typedef struct uniecg_tokenizer uniecg_tokenizer;

/* Fails with an error naming a missing or malformed tokenizer.* key, or an unsupported
 * normalizer / pre-tokenizer / decoder type or regex construct. The tokenizer copies what it
 * needs: `file` may be freed afterwards. */
uniecg_status uniecg_tokenizer_create(const uniecg_model_file *file, uniecg_tokenizer **out, uniecg_error *error);
void uniecg_tokenizer_free(uniecg_tokenizer *tok);

typedef struct {
    int32_t vocab_size;
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when the model has none                      */
    bool add_bos, add_eos;                  /* what encode's add_special adds                   */
    bool byte_level;                        /* tokenizer.model is "bpe-byte-level"              */
} uniecg_tokenizer_info;

void uniecg_tokenizer_get_info(const uniecg_tokenizer *tok, uniecg_tokenizer_info *out);
int32_t uniecg_tokenizer_vocab_size(const uniecg_tokenizer *tok);
/* True for the ids of special added tokens (<s>, <|im_start|>, ...). */
bool uniecg_tokenizer_is_special(const uniecg_tokenizer *tok, int32_t id);
/* The stored text of token `id` ("Ġthe", "▁the", "<0x0A>", "<|im_end|>"), for display; not
 * NUL-terminated in general. Valid until the tokenizer is freed. */
uniecg_status uniecg_tokenizer_token_text(const uniecg_tokenizer *tok, int32_t id, const char **out_text,
                                          size_t *out_length);

/* Encodes `length` bytes of UTF-8. add_special: prepend bos / append eos as the model's add_bos /
 * add_eos say. parse_special: special added tokens written in the text ("<|im_start|>") become
 * their ids; when false they are tokenized as plain text (non-special added tokens are always
 * recognised, as in Hugging Face). Text that is not valid UTF-8 is refused with
 * UNIECG_ERR_INVALID_ARGUMENT naming the byte offset (Hugging Face only accepts valid strings).
 * *out_count always receives the number of ids; when it exceeds `capacity` the call fails with
 * UNIECG_ERR_LIMIT (ids may be NULL with capacity 0 to ask for the count). */
uniecg_status uniecg_tokenizer_encode(const uniecg_tokenizer *tok, const char *utf8, size_t length, bool add_special,
                                      bool parse_special, int32_t *ids, size_t capacity, size_t *out_count,
                                      uniecg_error *error);

/* Decodes ids to UTF-8 exactly as Hugging Face's Tokenizer.decode (skip_special drops special
 * added tokens). Writes a NUL-terminated string; *out_length receives its length without the
 * NUL, and UNIECG_ERR_LIMIT means capacity < length + 1. An id outside the vocabulary is
 * UNIECG_ERR_INVALID_ARGUMENT. */
uniecg_status uniecg_tokenizer_decode(const uniecg_tokenizer *tok, const int32_t *ids, size_t count, bool skip_special,
                                      char *text, size_t capacity, size_t *out_length, uniecg_error *error);

/* Streaming decode, one token at a time, for generation. Each push returns the text that this
 * token completes: only whole UTF-8 characters, never invalid UTF-8; bytes of a character split
 * across tokens are held back until it is complete. Concatenating every push and the final
 * flush gives exactly uniecg_tokenizer_decode of the same ids. Byte-fallback runs (<0xNN>
 * tokens) are held until the run ends, because Hugging Face turns a whole run with any invalid
 * byte into one U+FFFD per byte. The returned text is owned by the detokenizer, NUL-terminated,
 * and valid until its next call. */
typedef struct uniecg_detokenizer uniecg_detokenizer;

/* `tok` must outlive the detokenizer. */
uniecg_status uniecg_detokenizer_create(const uniecg_tokenizer *tok, bool skip_special, uniecg_detokenizer **out,
                                        uniecg_error *error);
void uniecg_detokenizer_free(uniecg_detokenizer *d);
/* Forgets held bytes and starts a new text (the first-token rules apply again). */
void uniecg_detokenizer_reset(uniecg_detokenizer *d);
uniecg_status uniecg_detokenizer_push(uniecg_detokenizer *d, int32_t id, const char **out_text, size_t *out_length,
                                      uniecg_error *error);
/* Ends the text: emits what was held back (an incomplete character as U+FFFD, like Hugging
 * Face) and resets, so the next push starts a new text. */
uniecg_status uniecg_detokenizer_flush(uniecg_detokenizer *d, const char **out_text, size_t *out_length,
                                       uniecg_error *error);

/* ------------------------------------------------------------------------------------------ */
/* ECG signal encoder (1-D patch transformer + projector; GEM's ECG-CoCa tower)                 */

/* A 1-D patch transformer over a (leads, samples) ECG in millivolts: Conv1d(leads -> width,
 * kernel = stride = patch, no bias), a class token, learned positions, optional ln_pre, pre-LN
 * transformer blocks (LayerNorm, multi-head self-attention, LayerNorm, GELU MLP), then a
 * projector (a chain of Linear layers with optional GELU between them) to the decoder's width.
 * Every shape comes from the file's signal.* metadata (ModelFormat.md, "Signal encoder").
 * Holds scratch for one forward pass: one encode at a time per encoder. */
typedef struct uniecg_signal_encoder uniecg_signal_encoder;

typedef struct {
    uniecg_kernel_variant kernels; /* AUTO honours UNIECG_KERNELS                               */
    uniecg_thread_pool *pool;      /* shared pool; NULL = the encoder makes its own             */
    int32_t n_threads;             /* threads when pool is NULL; 0 = physical cores             */
} uniecg_signal_encoder_params;

uniecg_signal_encoder_params uniecg_signal_encoder_default_params(void);

/* Builds the encoder over the tensors of `file` (opened with load_tensors), which must outlive
 * it. A missing or malformed signal.* key or tensor is an error naming it. */
uniecg_status uniecg_signal_encoder_create(const uniecg_model_file *file, uniecg_signal_encoder_params params,
                                           uniecg_signal_encoder **out, uniecg_error *error);
void uniecg_signal_encoder_free(uniecg_signal_encoder *enc);

typedef struct {
    int32_t n_leads;       /* input rows, in the order of uniecg_signal_encoder_lead_name          */
    int32_t samples;       /* samples per lead the model takes (shorter input is zero-padded,
                              longer input truncated)                                           */
    double sample_rate;    /* Hz the model expects (the caller resamples)                          */
    int32_t patch_size;
    int32_t tokens;        /* samples / patch_size + 1 (the class token first)                     */
    int32_t width, n_layers, n_heads, ffn_dim;
    int32_t output_dim;    /* width of each output embedding (the projector's last layer)          */
    int32_t n_threads;
    uniecg_kernel_variant kernels;
} uniecg_signal_encoder_info;

void uniecg_signal_encoder_get_info(const uniecg_signal_encoder *enc, uniecg_signal_encoder_info *out);
/* The name of input row `lead` ("I", "II", ..., "V6" as the file's signal.leads says); NULL when
 * out of range. Valid until the encoder is freed. */
const char *uniecg_signal_encoder_lead_name(const uniecg_signal_encoder *enc, int32_t lead);

/* Encodes one ECG. `signal` holds n_leads rows of `samples` values each (row-major, mV, in the
 * lead order above, at the model's sample rate); the first min(samples, info.samples) of each
 * row are used and the rest of the model's length is zeros. `out_embeddings` (tokens x
 * output_dim) receives the projected tokens; `out_hidden` (tokens x width, optional, may be
 * NULL) the last transformer layer's tokens before the projector. One of them may be NULL, not
 * both. A NaN or infinity among the samples used fails with UNIECG_ERR_RANGE naming the lead
 * and sample. */
uniecg_status uniecg_signal_encoder_encode(uniecg_signal_encoder *enc, const float *signal, int64_t samples,
                                           float *out_embeddings, float *out_hidden, uniecg_error *error);

/* ------------------------------------------------------------------------------------------ */
/* ECG image encoder (CLIP vision transformer + projector; LLaVA's image tower)                 */

/* A CLIP ViT over a prepared 3 x S x S image: Conv2d(3 -> width, kernel = stride = patch, no
 * bias), a class token, learned positions, ln_pre, pre-LN transformer blocks (LayerNorm,
 * multi-head self-attention, LayerNorm, quick-GELU or GELU MLP) of which the first
 * select_layer run, the patch tokens (optionally with the class token) of that layer, then a
 * projector (a chain of Linear layers with optional GELU between them) to the decoder's width.
 * Every shape comes from the file's image.* metadata (ModelFormat.md, "Image encoder").
 * Holds scratch for one forward pass: one forward at a time per encoder. */
typedef struct uniecg_image_encoder uniecg_image_encoder;

typedef struct {
    uniecg_kernel_variant kernels; /* AUTO honours UNIECG_KERNELS                               */
    uniecg_thread_pool *pool;      /* shared pool; NULL = the encoder makes its own             */
    int32_t n_threads;             /* threads when pool is NULL; 0 = physical cores             */
} uniecg_image_encoder_params;

uniecg_image_encoder_params uniecg_image_encoder_default_params(void);

/* Builds the encoder over the tensors of `file` (opened with load_tensors), which must outlive
 * it. A missing or malformed image.* key or tensor is an error naming it. */
uniecg_status uniecg_image_encoder_create(const uniecg_model_file *file, uniecg_image_encoder_params params,
                                          uniecg_image_encoder **out, uniecg_error *error);
void uniecg_image_encoder_free(uniecg_image_encoder *enc);

typedef struct {
    int32_t image_size;    /* side of the square input the model takes (pixels)                   */
    int32_t patch_size;
    int32_t patches;       /* (image_size / patch_size)^2                                          */
    double mean[3], std[3];/* per-channel normalisation the caller applies before forward          */
    int32_t width, n_layers, n_heads, ffn_dim;
    int32_t select_layer;  /* blocks run (LLaVA: n_layers - 1, the second-to-last layer)           */
    bool class_token;      /* the output keeps the class token as row 0 (feature_select cls_patch) */
    int32_t tokens;        /* output rows: patches, plus 1 with the class token                    */
    int32_t output_dim;    /* width of each output embedding (the projector's last layer)          */
    int32_t n_threads;
    uniecg_kernel_variant kernels;
} uniecg_image_encoder_info;

void uniecg_image_encoder_get_info(const uniecg_image_encoder *enc, uniecg_image_encoder_info *out);

/* Encodes one prepared image: `image` holds 3 planes of image_size x image_size values
 * (channel-major, row-major within a plane), already resized and normalised with the info's
 * mean and std. `out_embeddings` (tokens x output_dim) receives the projected tokens;
 * `out_hidden` (tokens x width, optional, may be NULL) the selected layer's tokens before the
 * projector. One of them may be NULL, not both. A NaN or infinity in the image fails with
 * UNIECG_ERR_RANGE naming the channel, row and column. */
uniecg_status uniecg_image_encoder_forward(uniecg_image_encoder *enc, const float *image, float *out_embeddings,
                                           float *out_hidden, uniecg_error *error);

/* ------------------------------------------------------------------------------------------ */
/* VAE (DiffuSETS 1-D variational autoencoder: latent <-> 12-lead ECG)                          */

/* The DiffuSETS VAE (ModelFormat.md, "VAE (vae.*)"): an encoder from an ECG (signal_channels,
 * signal_length) to a latent (latent_channels, signal_length / 8) and a decoder back. Layouts
 * are channels-major, x[c * length + t], batch 1: the published module works on (B, L, 12) and
 * transposes at its edges; a caller holding (length, channels) data transposes first. Latents
 * are scaled (multiplied by vae.scale, 0.18215), as the U-Net produces and consumes them.
 * Every shape comes from the file's vae.* metadata. Holds activations for one pass, sized at
 * create time: one call at a time per VAE. */
typedef struct uniecg_vae uniecg_vae;

typedef struct {
    uniecg_kernel_variant kernels; /* AUTO honours UNIECG_KERNELS                               */
    uniecg_thread_pool *pool;      /* shared pool; NULL = the VAE makes its own                 */
    int32_t n_threads;             /* threads when pool is NULL; 0 = physical cores             */
} uniecg_vae_params;

uniecg_vae_params uniecg_vae_default_params(void);

/* Builds encoder and decoder over the tensors of `file` (opened with load_tensors), which must
 * outlive the VAE. A missing or malformed vae.* key or tensor is an error naming it. */
uniecg_status uniecg_vae_create(const uniecg_model_file *file, uniecg_vae_params params, uniecg_vae **out,
                                uniecg_error *error);
void uniecg_vae_free(uniecg_vae *vae);

typedef struct {
    int32_t signal_channels, signal_length; /* the ECG: leads x samples (12 x 1024)              */
    int32_t latent_channels, latent_length; /* the latent: 4 x signal_length / 8                 */
    int32_t widths[3];                      /* channels per level, finest first (128, 256, 512)  */
    int32_t groups;                         /* GroupNorm groups                                  */
    double scale;                           /* latent scale (0.18215)                            */
    double sample_rate;                     /* Hz of the signal (102.4)                          */
    int32_t n_threads;
    uniecg_kernel_variant kernels;
} uniecg_vae_info;

void uniecg_vae_get_info(const uniecg_vae *vae, uniecg_vae_info *out);

/* Decodes one latent (latent_channels x latent_length, scaled) into `signal` (signal_channels x
 * signal_length, mV). The latent is not modified (the decoder divides a copy by the scale). A
 * NaN or infinity in the latent fails with UNIECG_ERR_RANGE naming its channel and position. */
uniecg_status uniecg_vae_decode(uniecg_vae *vae, const float *latent, float *signal, uniecg_error *error);

/* Encodes one ECG (signal_channels x signal_length, mV) into `latent` (latent_channels x
 * latent_length) = (mean + sqrt(exp(logvar)) * noise) * scale, with logvar clamped to
 * [vae.logvar_min, vae.logvar_max]. `noise` (latent_channels x latent_length standard normals,
 * e.g. from uniecg_normal_noise) may be NULL: the latent is then mean * scale, the
 * deterministic encoding. `mean` and `logvar` (same shape, unscaled, logvar clamped) are
 * optional outputs (NULL = not wanted). Non-finite signal or noise: UNIECG_ERR_RANGE. */
uniecg_status uniecg_vae_encode(uniecg_vae *vae, const float *signal, const float *noise, float *latent, float *mean,
                                float *logvar, uniecg_error *error);

/* ------------------------------------------------------------------------------------------ */
/* Latent U-Net (DiffuSETS conditional 1-D U-Net) and guided sampling                          */

/* The denoiser of DiffuSETS (ModelFormat.md, "Latent U-Net (unet.*)"): eps = UNet(x, t, c) over
 * a (latent_channels, latent_length) latent, timestep t in 0..train_steps-1 and a condition
 * c = [text embedding (cond_dim), sex, age, heart rate] of cond_length = cond_dim +
 * extra_conditions floats. Every shape comes from the file's unet.* metadata. Holds a
 * preallocated workspace: one predict or sample at a time per U-Net.
 *
 * The cross-attention sees the condition as one token, so it adds one vector per block and
 * condition whatever the position and timestep. The U-Net computes those vectors once per
 * distinct condition and keeps the last 4 conditions it saw (compared byte for byte: equal
 * bytes give equal vectors, so the cache never changes a result); a sampling loop therefore
 * pays for them once, not at every step. */
typedef struct uniecg_unet uniecg_unet;

typedef struct {
    uniecg_kernel_variant kernels; /* AUTO honours UNIECG_KERNELS                               */
    uniecg_thread_pool *pool;      /* shared pool; NULL = the U-Net makes its own               */
    int32_t n_threads;             /* threads when pool is NULL; 0 = physical cores             */
} uniecg_unet_params;

uniecg_unet_params uniecg_unet_default_params(void);

/* Builds the U-Net over the tensors of `file` (opened with load_tensors), which must outlive it.
 * A missing or malformed unet.* key or tensor is an error naming it. */
uniecg_status uniecg_unet_create(const uniecg_model_file *file, uniecg_unet_params params, uniecg_unet **out,
                                 uniecg_error *error);
void uniecg_unet_free(uniecg_unet *unet);

typedef struct {
    int32_t latent_channels, latent_length, levels, kernel;
    int32_t cond_dim, extra_conditions, cond_length; /* cond_length = cond_dim + extra_conditions */
    int32_t train_steps;
    int32_t n_threads;
    uniecg_kernel_variant kernels;
} uniecg_unet_info;

void uniecg_unet_get_info(const uniecg_unet *unet, uniecg_unet_info *out);

/* The file's default sampling schedule (unet.schedule.*: sampler, steps, eta, noise table,
 * prediction, clipping) as scheduler parameters, sample_size filled in. Change what you like
 * and pass it to uniecg_diffusion_sample. */
uniecg_status uniecg_unet_schedule(const uniecg_unet *unet, uniecg_scheduler_params *out);

/* eps (batch x C x L) = UNet(x (batch x C x L), timesteps (batch), cond (batch x cond_length)),
 * all float32, channels-major. Batch 1 splits each layer over the threads; a larger batch runs
 * its samples side by side, one per thread. Samples are independent: sample b's output does not
 * depend on the batch size, the other samples or the thread count, bit for bit. Fails before writing anything with
 * UNIECG_ERR_INVALID_ARGUMENT for batch < 1 or a timestep outside 0..train_steps-1, and with
 * UNIECG_ERR_RANGE for a NaN or infinity in a condition or latent. */
uniecg_status uniecg_unet_predict(uniecg_unet *unet, int32_t batch, const float *x, const int32_t *timesteps,
                                  const float *cond, float *eps, uniecg_error *error);

typedef struct {
    /* NULL: the file's schedule (uniecg_unet_schedule), with `steps` steps when steps > 0.
     * Otherwise used as given (sample_size is set by the sampler; train_steps must be the
     * U-Net's). */
    const uniecg_scheduler_params *scheduler;
    int32_t steps;
    /* Classifier-free guidance: eps = eps_null + scale * (eps_cond - eps_null), both from one
     * batch-2 predict [cond, null] per step. 1 = off: one batch-1 predict per step. */
    float guidance_scale;
    /* Initial latent: uniecg_normal_noise(seed, C * L). Step i's noise (DDPM before its last
     * step, DDIM with eta > 0): uniecg_normal_noise(uniecg_diffusion_step_seed(seed, i), C * L). */
    uint64_t seed;
    /* Called before step i with (i, steps) and once with (steps, steps) at the end; `latent`
     * is the current sample (C x L, valid during the call: after i steps, the final latent at
     * the end), so a caller can decode previews. Returning true before a step stops the sample
     * with UNIECG_ERR_CANCELLED (latent_out untouched). */
    bool (*progress)(int32_t step, int32_t steps, const float *latent, void *user_data);
    void *progress_user_data;
} uniecg_diffusion_sample_params;

uniecg_diffusion_sample_params uniecg_diffusion_sample_default_params(void);

/* The seed of step i's noise: XXH64 (seed 0) of the 16 bytes seed, i + 1 (each u64
 * little-endian), so steps and neighbouring seeds draw unrelated streams. */
uint64_t uniecg_diffusion_step_seed(uint64_t seed, int32_t step);

/* Draws one latent (C x L floats into latent_out) for condition `cond` (cond_length floats);
 * `null_cond` is the unconditional condition for guidance (NULL = zeros, DiffuSETS' null
 * condition). A NaN or infinity in a condition: UNIECG_ERR_RANGE. */
uniecg_status uniecg_diffusion_sample(uniecg_unet *unet, const uniecg_diffusion_sample_params *params,
                                      const float *cond, const float *null_cond, float *latent_out,
                                      uniecg_error *error);

/* ------------------------------------------------------------------------------------------ */
/* Aligner (language-model hidden states -> diffusion condition)                              */

/* The aligner (ModelFormat.md, "Aligner (aligner.*)"): maps the hidden states of the K
 * ECG-generation tokens of the language model (K x input_dim, token-major) to the U-Net's text
 * embedding (output_dim = the U-Net's cond_dim; the sex / age / rate scalars are appended by the
 * caller). Pool the K states (mean, or flatten: the K rows concatenated), an MLP of n_layers
 * Linear layers with exact GELU between them, then an optional LayerNorm and an optional L2
 * normalisation. Every shape comes from the file's aligner.* metadata. Holds its activations:
 * one forward at a time per aligner. */
typedef struct uniecg_aligner uniecg_aligner;

typedef struct {
    uniecg_kernel_variant kernels; /* AUTO honours UNIECG_KERNELS                               */
    uniecg_thread_pool *pool;      /* shared pool; NULL = the aligner makes its own             */
    int32_t n_threads;             /* threads when pool is NULL; 0 = physical cores             */
} uniecg_aligner_params;

uniecg_aligner_params uniecg_aligner_default_params(void);

/* Builds the aligner over the tensors of `file` (opened with load_tensors), which must outlive
 * it. A missing or malformed aligner.* key or tensor is an error naming it. */
uniecg_status uniecg_aligner_create(const uniecg_model_file *file, uniecg_aligner_params params,
                                    uniecg_aligner **out, uniecg_error *error);
void uniecg_aligner_free(uniecg_aligner *aligner);

typedef enum { UNIECG_ALIGNER_POOL_MEAN = 0, UNIECG_ALIGNER_POOL_FLATTEN = 1 } uniecg_aligner_pooling;

typedef struct {
    int32_t tokens;      /* K, hidden states per condition                                      */
    int32_t input_dim;   /* width of each hidden state (the language model's hidden size)       */
    int32_t output_dim;  /* the condition's embedding width (the U-Net's cond_dim)              */
    int32_t hidden_dim;  /* width between the Linear layers                                     */
    int32_t n_layers;    /* Linear layers (1 = a single projection)                             */
    uniecg_aligner_pooling pooling;
    bool layer_norm;     /* a final LayerNorm                                                   */
    bool normalize;      /* the output is scaled to unit L2 norm                                */
    int32_t n_threads;
    uniecg_kernel_variant kernels;
} uniecg_aligner_info;

void uniecg_aligner_get_info(const uniecg_aligner *aligner, uniecg_aligner_info *out);

/* condition (output_dim) = aligner(hidden (tokens x input_dim, row-major)). A NaN or infinity in
 * `hidden` fails with UNIECG_ERR_RANGE naming its token and index, before anything is written. */
uniecg_status uniecg_aligner_forward(uniecg_aligner *aligner, const float *hidden, float *condition,
                                     uniecg_error *error);

#ifdef __cplusplus
}
#endif
#endif /* UNIECG_H */
