/* Llama / Qwen2 decoder forward pass: RMSNorm, RoPE ("half" layout), grouped-query attention
 * with a KV cache, SwiGLU, optional QKV bias, tied or untied output. Prompts are processed in
 * batches (weights x many tokens), generation one token at a time. Hyper-parameters all come
 * from the file's text.* metadata (ModelFormat.md §4). */
#define _GNU_SOURCE
#include "kernels.h"
#include "lookup.h"
#include "ops.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

/* Per-op timing of the forward pass, compiled in only with -DUNIECG_DECODER_PROFILE (the
 * benchmark harness reads uniecg__decoder_profile). */
#ifdef UNIECG_DECODER_PROFILE
#include <time.h>
enum { PROF_EMBED, PROF_NORM, PROF_QKV, PROF_ROPE, PROF_ATTN, PROF_O, PROF_RESID, PROF_GATEUP, PROF_SILU, PROF_DOWN,
       PROF_OUTPUT, PROF_COUNT };
const char *const uniecg__decoder_profile_names[PROF_COUNT] = {"embed", "norm", "qkv", "rope+cache", "attention", "attn_out",
                                                               "residual", "gate+up", "silu", "down", "output"};
double uniecg__decoder_profile[PROF_COUNT];
#ifndef UNIECG_DECODER_PROFILE_CLOCK /* CLOCK_THREAD_CPUTIME_ID: one thread's CPU time, robust to preemption */
#define UNIECG_DECODER_PROFILE_CLOCK CLOCK_MONOTONIC
#endif
static double prof_now(void) {
    struct timespec ts;
    clock_gettime(UNIECG_DECODER_PROFILE_CLOCK, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
#define PROF_START() double prof_t = prof_now()
#define PROF_MARK(k)                                                                                                   \
    do {                                                                                                               \
        double prof_n = prof_now();                                                                                    \
        uniecg__decoder_profile[k] += prof_n - prof_t;                                                                 \
        prof_t = prof_n;                                                                                               \
    } while (0)
#else
#define PROF_START() ((void)0)
#define PROF_MARK(k) ((void)0)
#endif

typedef struct {
    const float *attn_norm, *ffn_norm; /* (dim)                                               */
    uniecg__weight q, k, v, o;         /* (n_heads*hd, dim) (kv_dim, dim) x2 (dim, n_heads*hd)  */
    uniecg__weight gate, up, down;     /* (ffn, dim) x2, (dim, ffn)                             */
    const float *bq, *bk, *bv;         /* (n_heads*hd) (kv_dim) (kv_dim) or NULL                */
} layer_weights;

struct uniecg_lm {
    uniecg_lm_info info;
    double rope_theta, norm_eps;
    int32_t batch_size, q_dim, kv_dim, position;
    bool (*abort_callback)(void *user_data);
    void *abort_user_data;
    uniecg__weight embed, output; /* (vocab, dim); output may alias embed (tied)           */
    const float *final_norm;      /* (dim)                                                 */
    layer_weights *layers;
    const uniecg_kernels *kernels;
    uniecg_thread_pool *pool;
    bool owns_pool;
    float *k_cache, *v_cache;   /* (n_layers, context, kv_dim)                                   */
    float *rope_cos, *rope_sin; /* (context, head_dim/2)                                         */
    /* scratch for one batch of up to batch_size tokens */
    float *x, *xb, *q, *k, *v, *att, *ffn_a, *ffn_b; /* (B,dim) (B,dim) (B,q) (B,kv) (B,kv) (B,q) (B,ffn) x2 */
    float *scores;                                   /* (n_threads, group or 1, context)           */
    uniecg__activations act;                         /* quantized activations, (B, max(dim,ffn,q)) */
    void *weights_copy;                              /* huge-page copy of the matrices, or NULL    */
    size_t weights_copy_size;
};

static bool use_attend_kernel(const uniecg_lm *lm);

uniecg_lm_params uniecg_lm_default_params(void) {
    return (uniecg_lm_params){.context_length = 0, .batch_size = 0, .kernels = UNIECG_KERNELS_AUTO, .pool = NULL,
                              .n_threads = 0};
}

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                      */

static uniecg_status layer_tensor(const uniecg_model_file *file, int32_t layer, const char *suffix, int64_t rows,
                                  int64_t cols, uniecg__weight *out, uniecg_error *error) {
    char name[96];
    snprintf(name, sizeof name, "text.layers.%d.%s", layer, suffix);
    return uniecg__weight_find(file, name, rows, cols, out, error);
}

static uniecg_status layer_vector(const uniecg_model_file *file, int32_t layer, const char *suffix, int64_t n,
                                  const float **out, uniecg_error *error) {
    char name[96];
    snprintf(name, sizeof name, "text.layers.%d.%s", layer, suffix);
    return uniecg__vector_find(file, name, n, out, error);
}

static void lm_free_buffers(uniecg_lm *lm) {
    free(lm->layers);
    free(lm->k_cache);
    free(lm->v_cache);
    free(lm->rope_cos);
    free(lm->rope_sin);
    free(lm->x);
    free(lm->xb);
    free(lm->q);
    free(lm->k);
    free(lm->v);
    free(lm->att);
    free(lm->ffn_a);
    free(lm->ffn_b);
    free(lm->scores);
    uniecg__activations_free(&lm->act);
}

void uniecg_lm_free(uniecg_lm *lm) {
    if (!lm) return;
    lm_free_buffers(lm);
#if defined(__linux__)
    if (lm->weights_copy) munmap(lm->weights_copy, lm->weights_copy_size);
#endif
    if (lm->owns_pool) uniecg_thread_pool_free(lm->pool);
    free(lm);
}

static void *alloc_floats(int64_t count, bool *ok) {
    void *p = uniecg__aligned_alloc((uint64_t)count * sizeof(float));
    if (!p) *ok = false;
    return p;
}

/* On Linux with transparent huge pages, the matrices stored raw in the file are copied into
 * one anonymous 2 MiB-page region, in the order a token reads them, and the file's pages
 * under them are dropped from the mapping (so the resident size does not double). Streaming
 * the weights from page-cache pages (4 KiB, scattered) reached about 0.7 of the read
 * bandwidth of huge pages here, and generation is that stream. The copy holds the same
 * bytes, so every kernel computes the same results; anything else fails over to the file's
 * own pages. UNIECG_HUGE_PAGES=0 turns the copy off. */
#if defined(__linux__)
static bool huge_pages_enabled(void) {
    const char *env = getenv("UNIECG_HUGE_PAGES"); /* "0": keep reading the file's pages */
    if (env && strcmp(env, "0") == 0) return false;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return false;
    char text[128] = {0};
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    return n > 0 && strstr(text, "[never]") == NULL;
}

typedef struct {
    uniecg__weight *w;
    const char *name; /* tensor name, for its encoding */
} weight_slot;

static void copy_weights_to_huge_pages(uniecg_lm *lm, const uniecg_model_file *file) {
    if (!huge_pages_enabled()) return;
    int32_t layers = lm->info.n_layers;
    int64_t count = 7 * (int64_t)layers + 1;
    weight_slot *slots = calloc((size_t)count, sizeof *slots);
    char (*names)[96] = calloc((size_t)count, sizeof *names);
    if (!slots || !names) goto done;
    static const char *const suffix[7] = {"attn_q", "attn_k", "attn_v", "attn_out", "ffn_gate", "ffn_up", "ffn_down"};
    int64_t n = 0;
    for (int32_t l = 0; l < layers; l++) {
        layer_weights *L = &lm->layers[l];
        uniecg__weight *w[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int i = 0; i < 7; i++, n++) {
            snprintf(names[n], sizeof names[n], "text.layers.%d.%s", l, suffix[i]);
            slots[n] = (weight_slot){w[i], names[n]};
        }
    }
    bool tied = lm->output.data == lm->embed.data;
    slots[n++] = (weight_slot){&lm->output, tied ? "text.embed" : "text.output"};
    /* sizes of the raw (file-mapped) ones, 2 MiB-rounded total */
    size_t total = 0;
    uniecg_tensor_info *infos = calloc((size_t)count, sizeof *infos);
    if (!infos) goto done;
    for (int64_t i = 0; i < n; i++) {
        if (uniecg_model_file_tensor_find(file, slots[i].name, &infos[i]) != UNIECG_OK ||
            infos[i].data != slots[i].w->data || infos[i].encoding != UNIECG_ENCODING_RAW) {
            slots[i].w = NULL; /* decoded into memory of its own, or not what we looked up: leave it */
            continue;
        }
        total += (size_t)uniecg__align_up(infos[i].raw_size, 64);
    }
    size_t huge = (size_t)2 << 20;
    total = (total + huge - 1) / huge * huge;
    if (total == 0) goto done_infos;
    /* over-allocate by one huge page so the region can start on a 2 MiB boundary */
    uint8_t *region = mmap(NULL, total + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) goto done_infos;
    uint8_t *base = (uint8_t *)(((uintptr_t)region + huge - 1) / huge * huge);
    if (base > region) munmap(region, (size_t)(base - region));
    if (base + total < region + total + huge) munmap(base + total, (size_t)(region + total + huge - (base + total)));
    madvise(base, total, MADV_HUGEPAGE);
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *cursor = base;
    for (int64_t i = 0; i < n; i++) {
        if (!slots[i].w) continue;
        const uint8_t *src = slots[i].w->data;
        size_t size = (size_t)infos[i].raw_size;
        memcpy(cursor, src, size);
        if (slots[i].w == &lm->output && tied) lm->embed.data = cursor;
        slots[i].w->data = cursor;
        cursor += uniecg__align_up(size, 64);
        if (page > 0) { /* the file's pages now unused by this process */
            uintptr_t start = ((uintptr_t)src + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
            uintptr_t end = ((uintptr_t)src + size) / (uintptr_t)page * (uintptr_t)page;
            if (end > start) madvise((void *)start, end - start, MADV_DONTNEED);
        }
    }
    lm->weights_copy = base;
    lm->weights_copy_size = total;
done_infos:
    free(infos);
done:
    free(slots);
    free(names);
}
#endif

uniecg_status uniecg_lm_create(const uniecg_model_file *file, uniecg_lm_params params, uniecg_lm **out,
                               uniecg_error *error) {
    if (!file || !out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "lm_create: NULL argument");
    *out = NULL;
    const char *arch;
    uniecg_status s = uniecg__meta_string(file, "text.architecture", &arch, error);
    if (s) return s;
    if (strcmp(arch, "llama") != 0 && strcmp(arch, "qwen2") != 0)
        return uniecg__fail(error, UNIECG_ERR_VERSION, "unknown text architecture '%s' (llama, qwen2)", arch);
    const char *layout;
    if ((s = uniecg__meta_string(file, "text.rope_layout", &layout, error))) return s;
    if (strcmp(layout, "half") != 0)
        return uniecg__fail(error, UNIECG_ERR_VERSION, "RoPE layout '%s' is not supported (half)", layout);

    uniecg_lm *lm = calloc(1, sizeof *lm);
    if (!lm) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    uniecg_lm_info *in = &lm->info;
    int64_t context_max;
    bool tied, qkv_bias;
    static const int64_t limit = 1 << 20;
    if ((s = uniecg__meta_int(file, "text.vocab_size", 1, 1 << 24, &in->vocab_size, error)) ||
        (s = uniecg__meta_int(file, "text.dim", 1, limit, &in->dim, error)) ||
        (s = uniecg__meta_int(file, "text.n_layers", 1, 1024, &in->n_layers, error)) ||
        (s = uniecg__meta_int(file, "text.n_heads", 1, 1024, &in->n_heads, error)) ||
        (s = uniecg__meta_int(file, "text.n_kv_heads", 1, 1024, &in->n_kv_heads, error)) ||
        (s = uniecg__meta_int(file, "text.head_dim", 2, 4096, &in->head_dim, error)) ||
        (s = uniecg__meta_int(file, "text.ffn_dim", 1, limit, &in->ffn_dim, error)) ||
        (s = uniecg__meta_i64(file, "text.context_length", 1, INT32_MAX, &context_max, error)) ||
        (s = uniecg__meta_f64(file, "text.rope_theta", &lm->rope_theta, error)) ||
        (s = uniecg__meta_f64(file, "text.norm_eps", &lm->norm_eps, error)) ||
        (s = uniecg__meta_bool(file, "text.tied_embeddings", &tied, error)) ||
        (s = uniecg__meta_bool(file, "text.qkv_bias", &qkv_bias, error)))
        goto fail;
    if (in->n_heads % in->n_kv_heads || in->head_dim % 2 || !(lm->rope_theta > 0) || !(lm->norm_eps > 0)) {
        s = uniecg__fail(error, UNIECG_ERR_FORMAT,
                         "inconsistent text metadata: %d heads, %d kv heads, head_dim %d, rope_theta %g, norm_eps %g",
                         in->n_heads, in->n_kv_heads, in->head_dim, lm->rope_theta, lm->norm_eps);
        goto fail;
    }
    if (params.context_length < 0 || params.batch_size < 0 || params.n_threads < 0) {
        s = uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "negative context length, batch size or thread count");
        goto fail;
    }
    in->context_length = params.context_length ? params.context_length : (int32_t)(context_max < 4096 ? context_max : 4096);
    if (in->context_length > context_max) {
        s = uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "context length %d exceeds the model's %lld",
                         in->context_length, (long long)context_max);
        goto fail;
    }
    lm->batch_size = params.batch_size ? params.batch_size : 64;
    lm->abort_callback = params.abort_callback;
    lm->abort_user_data = params.abort_user_data;
    lm->q_dim = in->n_heads * in->head_dim;
    lm->kv_dim = in->n_kv_heads * in->head_dim;

    if ((s = uniecg_kernel_variant_resolve(params.kernels, &in->kernels, error))) goto fail;
    lm->kernels = uniecg__kernels_for(in->kernels);
    if (params.pool) {
        lm->pool = params.pool;
    } else {
        if ((s = uniecg_thread_pool_create(params.n_threads, &lm->pool, error))) goto fail;
        lm->owns_pool = true;
    }
    in->n_threads = uniecg_thread_pool_size(lm->pool);

    int64_t dim = in->dim;
    if ((s = uniecg__weight_find(file, "text.embed", in->vocab_size, dim, &lm->embed, error)) ||
        (s = uniecg__vector_find(file, "text.norm", dim, &lm->final_norm, error)))
        goto fail;
    if (tied) lm->output = lm->embed;
    else if ((s = uniecg__weight_find(file, "text.output", in->vocab_size, dim, &lm->output, error)))
        goto fail;
    lm->layers = calloc((size_t)in->n_layers, sizeof *lm->layers);
    if (!lm->layers) { s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory"); goto fail; }
    for (int32_t i = 0; i < in->n_layers; i++) {
        layer_weights *L = &lm->layers[i];
        if ((s = layer_vector(file, i, "attn_norm", dim, &L->attn_norm, error)) ||
            (s = layer_vector(file, i, "ffn_norm", dim, &L->ffn_norm, error)) ||
            (s = layer_tensor(file, i, "attn_q", lm->q_dim, dim, &L->q, error)) ||
            (s = layer_tensor(file, i, "attn_k", lm->kv_dim, dim, &L->k, error)) ||
            (s = layer_tensor(file, i, "attn_v", lm->kv_dim, dim, &L->v, error)) ||
            (s = layer_tensor(file, i, "attn_out", dim, lm->q_dim, &L->o, error)) ||
            (s = layer_tensor(file, i, "ffn_gate", in->ffn_dim, dim, &L->gate, error)) ||
            (s = layer_tensor(file, i, "ffn_up", in->ffn_dim, dim, &L->up, error)) ||
            (s = layer_tensor(file, i, "ffn_down", dim, in->ffn_dim, &L->down, error)))
            goto fail;
        if (qkv_bias &&
            ((s = layer_vector(file, i, "attn_q_bias", lm->q_dim, &L->bq, error)) ||
             (s = layer_vector(file, i, "attn_k_bias", lm->kv_dim, &L->bk, error)) ||
             (s = layer_vector(file, i, "attn_v_bias", lm->kv_dim, &L->bv, error))))
            goto fail;
    }

#if defined(__linux__)
    copy_weights_to_huge_pages(lm, file);
#endif

    int64_t ctx = in->context_length, B = lm->batch_size, half = in->head_dim / 2;
    int64_t widest = dim > in->ffn_dim ? dim : in->ffn_dim;
    if (lm->q_dim > widest) widest = lm->q_dim;
    bool ok = true;
    lm->k_cache = alloc_floats((int64_t)in->n_layers * ctx * lm->kv_dim, &ok);
    lm->v_cache = alloc_floats((int64_t)in->n_layers * ctx * lm->kv_dim, &ok);
    lm->rope_cos = alloc_floats(ctx * half, &ok);
    lm->rope_sin = alloc_floats(ctx * half, &ok);
    lm->x = alloc_floats(B * dim, &ok);
    lm->xb = alloc_floats(B * dim, &ok);
    lm->q = alloc_floats(B * lm->q_dim, &ok);
    lm->k = alloc_floats(B * lm->kv_dim, &ok);
    lm->v = alloc_floats(B * lm->kv_dim, &ok);
    lm->att = alloc_floats(B * lm->q_dim, &ok);
    lm->ffn_a = alloc_floats(B * in->ffn_dim, &ok);
    lm->ffn_b = alloc_floats(B * in->ffn_dim, &ok);
    lm->scores = alloc_floats((int64_t)in->n_threads * ctx * (use_attend_kernel(lm) ? in->n_heads / in->n_kv_heads : 1), &ok);
    if (!ok || uniecg__activations_init(&lm->act, B, widest) != UNIECG_OK) {
        s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "cannot allocate the KV cache and buffers for %lld positions",
                         (long long)ctx);
        goto fail;
    }
    /* Same arithmetic as Hugging Face: inv_freq = 1 / theta^(2i/d) and angle = pos * inv_freq,
     * both in float32. */
    for (int64_t i = 0; i < half; i++) {
        float inv_freq = 1.0f / (float)pow(lm->rope_theta, (double)(float)(2 * i) / (double)in->head_dim);
        for (int64_t p = 0; p < ctx; p++) {
            float angle = (float)p * inv_freq;
            lm->rope_cos[p * half + i] = cosf(angle);
            lm->rope_sin[p * half + i] = sinf(angle);
        }
    }
    *out = lm;
    return UNIECG_OK;
fail:
    uniecg_lm_free(lm);
    return s;
}

void uniecg_lm_get_info(const uniecg_lm *lm, uniecg_lm_info *out) {
    if (lm && out) *out = lm->info;
}

int32_t uniecg_lm_position(const uniecg_lm *lm) { return lm ? lm->position : 0; }

uniecg_status uniecg_lm_rewind(uniecg_lm *lm, int32_t position) {
    if (!lm || position < 0 || position > lm->position) return UNIECG_ERR_INVALID_ARGUMENT;
    lm->position = position;
    return UNIECG_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Forward pass                                                                                 */

static void rms_norm(float *out, const float *x, const float *weight, int64_t n, int64_t dim, double eps) {
    for (int64_t t = 0; t < n; t++) {
        const float *xt = x + t * dim;
        float *ot = out + t * dim;
        float sum = 0.0f;
        for (int64_t i = 0; i < dim; i++) sum += xt[i] * xt[i];
        float scale = 1.0f / sqrtf(sum / (float)dim + (float)eps);
        for (int64_t i = 0; i < dim; i++) ot[i] = weight[i] * (xt[i] * scale);
    }
}

/* Rotates each head's pairs (i, i + head_dim/2) by the angle of its position. */
static void rope(const uniecg_lm *lm, float *vectors, int64_t n, int64_t width, int32_t first_position) {
    int64_t hd = lm->info.head_dim, half = hd / 2;
    for (int64_t t = 0; t < n; t++) {
        const float *c = lm->rope_cos + (first_position + t) * half, *s = lm->rope_sin + (first_position + t) * half;
        for (int64_t h = 0; h < width / hd; h++) {
            float *v = vectors + t * width + h * hd;
            for (int64_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

typedef struct {
    const uniecg_lm *lm;
    int32_t layer, n, first_position;
    atomic_int next; /* next (token, head) task to take */
} attention_job;

/* The kernels' grouped attention applies to this model's heads. */
static bool use_attend_kernel(const uniecg_lm *lm) {
    int64_t group = lm->info.n_heads / lm->info.n_kv_heads;
    return lm->kernels->attend && lm->info.head_dim % 8 == 0 && group <= 256;
}

/* Causal attention split across threads: (token, head) tasks for the reference loop, or
 * (token, KV head) tasks, each serving the query heads of its group, for the kernels'. */
static void attention_task(void *ctx, int32_t index, int32_t count) {
    attention_job *job = ctx;
    const uniecg_lm *lm = job->lm;
    int64_t hd = lm->info.head_dim, heads = lm->info.n_heads, group = heads / lm->info.n_kv_heads;
    int64_t ctx_len = lm->info.context_length;
    const float *kc = lm->k_cache + (int64_t)job->layer * ctx_len * lm->kv_dim;
    const float *vc = lm->v_cache + (int64_t)job->layer * ctx_len * lm->kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    bool grouped = use_attend_kernel(lm);
    float *scores = lm->scores + (int64_t)index * ctx_len * (grouped ? group : 1);
    /* tasks handed out one by one: a descheduled thread does not hold up the others, and each
     * task's arithmetic is the same whichever thread runs it */
    int64_t per_token = grouped ? lm->info.n_kv_heads : heads;
    int64_t tasks = (int64_t)job->n * per_token;
    (void)count;
    for (;;) {
        int64_t task = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (task >= tasks) break;
        int64_t t = task / per_token;
        int64_t last = job->first_position + t; /* attends to positions 0..last */
        if (grouped) {
            int64_t kvh = task % per_token, h = kvh * group;
            lm->kernels->attend(lm->q + t * lm->q_dim + h * hd, group, kc + kvh * hd, vc + kvh * hd, lm->kv_dim,
                                last + 1, hd, scale, scores, lm->att + t * lm->q_dim + h * hd);
            continue;
        }
        int64_t h = task % heads, kvh = h / group;
        const float *q = lm->q + t * lm->q_dim + h * hd;
        float max = -INFINITY;
        for (int64_t p = 0; p <= last; p++) {
            scores[p] = lm->kernels->f32_dot(q, kc + p * lm->kv_dim + kvh * hd, hd) * scale;
            if (scores[p] > max) max = scores[p];
        }
        float sum = 0.0f;
        for (int64_t p = 0; p <= last; p++) {
            scores[p] = expf(scores[p] - max);
            sum += scores[p];
        }
        float *out = lm->att + t * lm->q_dim + h * hd;
        for (int64_t i = 0; i < hd; i++) out[i] = 0.0f;
        for (int64_t p = 0; p <= last; p++) lm->kernels->f32_axpy(out, scores[p] / sum, vc + p * lm->kv_dim + kvh * hd, hd);
    }
}

static void add_bias(float *y, const float *bias, int64_t n, int64_t width) {
    if (!bias) return;
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < width; i++) y[t * width + i] += bias[i];
}

/* One batch of n <= batch_size tokens at positions position..position+n-1. */
static uniecg_status forward_chunk(uniecg_lm *lm, const uniecg_lm_batch *batch, int32_t offset, int32_t n,
                                   uniecg_error *error) {
    const uniecg_lm_info *in = &lm->info;
    int64_t dim = in->dim, ffn = in->ffn_dim, ctx = in->context_length;
    int32_t first = lm->position;
    PROF_START();
    for (int32_t t = 0; t < n; t++) {
        int32_t i = offset + t;
        float *row = lm->x + (int64_t)t * dim;
        if (batch->embeddings && (!batch->embedding_mask || batch->embedding_mask[i])) {
            memcpy(row, batch->embeddings + (int64_t)i * dim, (size_t)dim * sizeof(float));
            continue;
        }
        int32_t id = batch->tokens ? batch->tokens[i] : -1;
        if (id < 0 || id >= in->vocab_size)
            return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "token %d at position %d is outside the vocabulary (0..%d)",
                                id, first + t, in->vocab_size - 1);
        uniecg__weight_row(&lm->embed, id, row);
    }
    PROF_MARK(PROF_EMBED);
    for (int32_t l = 0; l < in->n_layers; l++) {
        if (lm->abort_callback && lm->abort_callback(lm->abort_user_data))
            return uniecg__fail(error, UNIECG_ERR_CANCELLED, "decoding cancelled");
        const layer_weights *L = &lm->layers[l];
        rms_norm(lm->xb, lm->x, L->attn_norm, n, dim, lm->norm_eps);
        PROF_MARK(PROF_NORM);
        {
            const uniecg__weight *w[3] = {&L->q, &L->k, &L->v};
            float *y[3] = {lm->q, lm->k, lm->v};
            uniecg__linear_many(lm->kernels, lm->pool, &lm->act, w, y, 3, lm->xb, n);
        }
        PROF_MARK(PROF_QKV);
        add_bias(lm->q, L->bq, n, lm->q_dim);
        add_bias(lm->k, L->bk, n, lm->kv_dim);
        add_bias(lm->v, L->bv, n, lm->kv_dim);
        rope(lm, lm->q, n, lm->q_dim, first);
        rope(lm, lm->k, n, lm->kv_dim, first);
        float *kc = lm->k_cache + ((int64_t)l * ctx + first) * lm->kv_dim;
        float *vc = lm->v_cache + ((int64_t)l * ctx + first) * lm->kv_dim;
        memcpy(kc, lm->k, (size_t)n * (size_t)lm->kv_dim * sizeof(float));
        memcpy(vc, lm->v, (size_t)n * (size_t)lm->kv_dim * sizeof(float));
        PROF_MARK(PROF_ROPE);
        attention_job job = {.lm = lm, .layer = l, .n = n, .first_position = first};
        atomic_init(&job.next, 0);
        uniecg__parallel(lm->pool, attention_task, &job);
        PROF_MARK(PROF_ATTN);
        uniecg__linear(lm->kernels, lm->pool, &lm->act, &L->o, lm->att, n, lm->xb);
        PROF_MARK(PROF_O);
        for (int64_t i = 0; i < n * dim; i++) lm->x[i] += lm->xb[i];
        PROF_MARK(PROF_RESID);

        rms_norm(lm->xb, lm->x, L->ffn_norm, n, dim, lm->norm_eps);
        PROF_MARK(PROF_NORM);
        {
            const uniecg__weight *w[2] = {&L->gate, &L->up};
            float *y[2] = {lm->ffn_a, lm->ffn_b};
            uniecg__linear_many(lm->kernels, lm->pool, &lm->act, w, y, 2, lm->xb, n);
        }
        PROF_MARK(PROF_GATEUP);
        if (lm->kernels->silu_mul) {
            lm->kernels->silu_mul(lm->ffn_a, lm->ffn_b, n * ffn);
        } else {
            for (int64_t i = 0; i < n * ffn; i++) {
                float g = lm->ffn_a[i];
                lm->ffn_a[i] = g / (1.0f + expf(-g)) * lm->ffn_b[i]; /* SiLU(gate) * up */
            }
        }
        PROF_MARK(PROF_SILU);
        uniecg__linear(lm->kernels, lm->pool, &lm->act, &L->down, lm->ffn_a, n, lm->xb);
        PROF_MARK(PROF_DOWN);
        for (int64_t i = 0; i < n * dim; i++) lm->x[i] += lm->xb[i];
        PROF_MARK(PROF_RESID);
    }
    rms_norm(lm->xb, lm->x, lm->final_norm, n, dim, lm->norm_eps);
    PROF_MARK(PROF_NORM);
    if (batch->hidden) memcpy(batch->hidden + (int64_t)offset * dim, lm->xb, (size_t)n * (size_t)dim * sizeof(float));
    if (batch->logits) {
        if (batch->all_logits) {
            uniecg__linear(lm->kernels, lm->pool, &lm->act, &lm->output, lm->xb, n,
                           batch->logits + (int64_t)offset * in->vocab_size);
        } else if (offset + n == batch->n_tokens) { /* only the batch's last token */
            uniecg__linear(lm->kernels, lm->pool, &lm->act, &lm->output, lm->xb + (int64_t)(n - 1) * dim, 1,
                           batch->logits);
        }
    }
    PROF_MARK(PROF_OUTPUT);
    lm->position += n;
    return UNIECG_OK;
}

uniecg_status uniecg_lm_decode(uniecg_lm *lm, const uniecg_lm_batch *batch, uniecg_error *error) {
    if (!lm || !batch) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "lm_decode: NULL argument");
    if (batch->n_tokens <= 0)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "lm_decode: a batch needs at least one token");
    if (!batch->tokens && !(batch->embeddings && !batch->embedding_mask))
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "lm_decode: tokens are needed where no embedding is given");
    if (batch->n_tokens > lm->info.context_length - lm->position)
        return uniecg__fail(error, UNIECG_ERR_LIMIT, "%d more tokens after %d would exceed the context length of %d",
                            batch->n_tokens, lm->position, lm->info.context_length);
    int32_t start = lm->position;
    for (int32_t offset = 0; offset < batch->n_tokens; offset += lm->batch_size) {
        int32_t n = batch->n_tokens - offset < lm->batch_size ? batch->n_tokens - offset : lm->batch_size;
        uniecg_status s = forward_chunk(lm, batch, offset, n, error);
        if (s) {
            lm->position = start;
            return s;
        }
    }
    return UNIECG_OK;
}
