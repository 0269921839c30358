/* Token sampler: repetition penalty, temperature, top-k, top-p, min-p, then a draw from a
 * documented PRNG (xoshiro256**, seeded through splitmix64), so a seed gives the same tokens on
 * every platform whose logits agree. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

#ifdef __clang__ /* gcc ignores the pragma; the C test build passes -ffp-contract=off */
#pragma STDC FP_CONTRACT OFF
#endif

struct uniecg_sampler {
    uniecg_sampler_params params;
    int32_t vocab_size;
    uint64_t state[4];
    int32_t *history; /* ring of the last repetition_window accepted tokens */
    int32_t history_count, history_next;
    int32_t *order;   /* (vocab) candidate ids */
    float *probs;     /* (vocab) */
};

uniecg_sampler_params uniecg_sampler_default_params(void) {
    return (uniecg_sampler_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                                   .repetition_penalty = 1.1f, .repetition_window = 64, .seed = 0};
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t uniecg__xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void uniecg__xoshiro_seed(uint64_t s[4], uint64_t seed) {
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&seed);
}

void uniecg_sampler_reset(uniecg_sampler *s) {
    if (!s) return;
    uniecg__xoshiro_seed(s->state, s->params.seed);
    s->history_count = 0;
    s->history_next = 0;
}

uniecg_status uniecg_sampler_create(uniecg_sampler_params p, int32_t vocab_size, uniecg_sampler **out,
                                    uniecg_error *error) {
    if (!out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "sampler_create: NULL output");
    *out = NULL;
    if (vocab_size <= 0) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "vocabulary size %d", vocab_size);
    if (!(p.temperature >= 0) || p.top_k < 0 || !(p.top_p > 0 && p.top_p <= 1) || !(p.min_p >= 0 && p.min_p < 1) ||
        !(p.repetition_penalty > 0) || p.repetition_window < 0 || p.repetition_window > 1 << 20)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT,
                            "sampler parameters out of range: temperature %g (>= 0), top_k %d (>= 0), top_p %g (0..1], "
                            "min_p %g [0..1), repetition_penalty %g (> 0), window %d",
                            (double)p.temperature, p.top_k, (double)p.top_p, (double)p.min_p,
                            (double)p.repetition_penalty, p.repetition_window);
    uniecg_sampler *s = calloc(1, sizeof *s);
    if (!s) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    s->params = p;
    s->vocab_size = vocab_size;
    s->history = malloc(((size_t)p.repetition_window + 1) * sizeof *s->history);
    s->order = malloc((size_t)vocab_size * sizeof *s->order);
    s->probs = malloc((size_t)vocab_size * sizeof *s->probs);
    if (!s->history || !s->order || !s->probs) {
        uniecg_sampler_free(s);
        return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    }
    uniecg_sampler_reset(s);
    *out = s;
    return UNIECG_OK;
}

void uniecg_sampler_free(uniecg_sampler *s) {
    if (!s) return;
    free(s->history);
    free(s->order);
    free(s->probs);
    free(s);
}

void uniecg_sampler_accept(uniecg_sampler *s, int32_t token) {
    if (!s || s->params.repetition_window == 0) return;
    s->history[s->history_next] = token;
    s->history_next = (s->history_next + 1) % s->params.repetition_window;
    if (s->history_count < s->params.repetition_window) s->history_count++;
}

/* True when id a ranks before id b: more probable, or as probable with a lower id. */
static inline bool ranks_above(const float *probs, int32_t a, int32_t b) {
    return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
}

/* Sorts candidate ids by descending probability, ties by ascending id (deterministic). */
static void sort_by_probability(int32_t *ids, const float *probs, int32_t n) {
    for (int32_t gap = n / 2; gap > 0; gap /= 2) /* shell sort: no recursion, no qsort context */
        for (int32_t i = gap; i < n; i++) {
            int32_t v = ids[i], j = i;
            while (j >= gap && ranks_above(probs, v, ids[j - gap])) {
                ids[j] = ids[j - gap];
                j -= gap;
            }
            ids[j] = v;
        }
}

uniecg_status uniecg_sampler_sample(uniecg_sampler *s, float *logits, int32_t *out_token) {
    if (!s || !logits || !out_token) return UNIECG_ERR_INVALID_ARGUMENT;
    const uniecg_sampler_params *p = &s->params;
    int32_t n = s->vocab_size;
    for (int32_t i = 0; i < n; i++)
        if (isnan(logits[i])) return UNIECG_ERR_RANGE;
    if (p->repetition_penalty != 1.0f) /* Hugging Face's rule: shrink positive, grow negative logits */
        for (int32_t i = 0; i < s->history_count; i++) {
            int32_t id = s->history[i];
            if (id < 0 || id >= n) continue;
            float *l = &logits[id];
            *l = *l > 0 ? *l / p->repetition_penalty : *l * p->repetition_penalty;
        }
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    if (p->temperature == 0.0f) {
        *out_token = best;
        return UNIECG_OK;
    }
    /* softmax over the tempered logits */
    float max = logits[best];
    for (int32_t i = 0; i < n; i++) s->probs[i] = expf((logits[i] - max) / p->temperature);
    int32_t kept = n;
    if (p->top_k > 0 && p->top_k < n) {
        /* keep the top_k most probable ids with a min-heap (O(n log k)), then sort those */
        int32_t k = p->top_k, *heap = s->order;
        for (int32_t i = 0; i < n; i++) {
            if (i >= k && !ranks_above(s->probs, i, heap[0])) continue;
            int32_t at;
            if (i < k) { /* sift up */
                at = i;
                while (at > 0 && ranks_above(s->probs, heap[(at - 1) / 2], i)) {
                    heap[at] = heap[(at - 1) / 2];
                    at = (at - 1) / 2;
                }
            } else { /* replace the root, sift down */
                at = 0;
                for (;;) {
                    int32_t child = 2 * at + 1;
                    if (child >= k) break;
                    if (child + 1 < k && ranks_above(s->probs, heap[child], heap[child + 1])) child++;
                    if (!ranks_above(s->probs, i, heap[child])) break;
                    heap[at] = heap[child];
                    at = child;
                }
            }
            heap[at] = i;
        }
        kept = k;
    } else {
        for (int32_t i = 0; i < n; i++) s->order[i] = i;
    }
    sort_by_probability(s->order, s->probs, kept);
    float total = 0.0f;
    for (int32_t i = 0; i < kept; i++) total += s->probs[s->order[i]];
    if (p->top_p < 1.0f) { /* smallest prefix whose mass reaches top_p */
        float mass = 0.0f;
        int32_t i = 0;
        while (i < kept) {
            mass += s->probs[s->order[i]] / total;
            i++;
            if (mass >= p->top_p) break;
        }
        kept = i;
    }
    if (p->min_p > 0.0f) { /* drop tokens below min_p times the best probability */
        float floor = p->min_p * s->probs[s->order[0]];
        int32_t i = 1;
        while (i < kept && s->probs[s->order[i]] >= floor) i++;
        kept = i;
    }
    total = 0.0f;
    for (int32_t i = 0; i < kept; i++) total += s->probs[s->order[i]];
    /* 24 random bits -> a uniform float in [0, 1) */
    float u = (float)(uniecg__xoshiro_next(s->state) >> 40) * (1.0f / 16777216.0f) * total;
    float acc = 0.0f;
    for (int32_t i = 0; i < kept; i++) {
        acc += s->probs[s->order[i]];
        if (u < acc) {
            *out_token = s->order[i];
            return UNIECG_OK;
        }
    }
    *out_token = s->order[kept - 1];
    return UNIECG_OK;
}
