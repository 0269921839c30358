/* The transformer block and projector of the signal and image encoders. See tower.h. */
#include "tower.h"

#include "lookup.h"

#include <stdio.h>
#include <string.h>

uniecg_status uniecg__tower_block_load(const uniecg_model_file *file, const char *prefix, int32_t layer, int64_t width,
                                       int64_t ffn_dim, uniecg__tower_block *b, uniecg_error *error) {
    struct {
        const char *suffix;
        int64_t rows, cols; /* cols 0: a vector of `rows` */
        uniecg__weight *matrix;
        const float **vector;
    } parts[] = {
        {"attn_norm", width, 0, NULL, &b->ln1_w},      {"attn_norm_bias", width, 0, NULL, &b->ln1_b},
        {"attn_qkv", 3 * width, width, &b->qkv, NULL}, {"attn_qkv_bias", 3 * width, 0, NULL, &b->qkv_b},
        {"attn_out", width, width, &b->out, NULL},     {"attn_out_bias", width, 0, NULL, &b->out_b},
        {"ffn_norm", width, 0, NULL, &b->ln2_w},       {"ffn_norm_bias", width, 0, NULL, &b->ln2_b},
        {"ffn_up", ffn_dim, width, &b->up, NULL},      {"ffn_up_bias", ffn_dim, 0, NULL, &b->up_b},
        {"ffn_down", width, ffn_dim, &b->down, NULL},  {"ffn_down_bias", width, 0, NULL, &b->down_b},
    };
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s.layers.%d.%s", prefix, layer, parts[i].suffix);
        uniecg_status s = parts[i].matrix
                              ? uniecg__weight_find(file, name, parts[i].rows, parts[i].cols, parts[i].matrix, error)
                              : uniecg__vector_find(file, name, parts[i].rows, parts[i].vector, error);
        if (s) return s;
    }
    return UNIECG_OK;
}

uniecg_status uniecg__tower_block_run(uniecg__seq_ctx *ctx, const uniecg__tower_block *b, int64_t heads, float eps,
                                      uniecg__activation act, int64_t T, int64_t w, int64_t ffn_dim, float *x,
                                      const uniecg__tower_scratch *m, uniecg_error *error) {
    uniecg__attention_weights attn = {.heads = heads, .in_proj = &b->qkv, .in_proj_bias = b->qkv_b,
                                      .out_proj = &b->out, .out_bias = b->out_b};
    uniecg_status s;
    if ((s = uniecg__seq_layer_norm(ctx, x, T, w, eps, b->ln1_w, b->ln1_b, m->h, error)) ||
        (s = uniecg__seq_mha(ctx, &attn, m->h, T, m->h, m->h, T, m->a, error)))
        return s;
    for (int64_t i = 0; i < T * w; i++) x[i] += m->a[i];
    if ((s = uniecg__seq_layer_norm(ctx, x, T, w, eps, b->ln2_w, b->ln2_b, m->h, error)) ||
        (s = uniecg__seq_linear(ctx, &b->up, b->up_b, m->h, T, m->ffn, error)))
        return s;
    uniecg__seq_activate(ctx, act, m->ffn, T * ffn_dim);
    if ((s = uniecg__seq_linear(ctx, &b->down, b->down_b, m->ffn, T, m->a, error))) return s;
    for (int64_t i = 0; i < T * w; i++) x[i] += m->a[i];
    return UNIECG_OK;
}

uniecg_status uniecg__projector_load_shape(const uniecg_model_file *file, const char *prefix, int64_t width,
                                           uniecg__projector *p, uniecg_error *error) {
    char key[64], acts_key[64];
    snprintf(key, sizeof key, "%s.projector.dims", prefix);
    snprintf(acts_key, sizeof acts_key, "%s.projector.activations", prefix);
    uniecg_meta_entry dims, acts;
    if (uniecg_model_file_meta_find(file, key, &dims) != UNIECG_OK)
        return uniecg__fail(error, UNIECG_ERR_NOT_FOUND, "model file lacks metadata key '%s'", key);
    if (dims.type != UNIECG_META_I64_ARRAY)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "metadata key '%s' should be of type i64[]", key);
    if (dims.count < 2 || dims.count > UNIECG__MAX_PROJECTOR_LAYERS + 1)
        return uniecg__fail(error, UNIECG_ERR_LIMIT, "metadata '%s' holds %llu widths (2..%d: input, then one per layer)",
                            key, (unsigned long long)dims.count, UNIECG__MAX_PROJECTOR_LAYERS + 1);
    p->layers = (int32_t)dims.count - 1;
    const int64_t *d = dims.array;
    p->widest = 0;
    for (int32_t j = 0; j <= p->layers; j++) {
        if (d[j] < 1 || d[j] > (1 << 20))
            return uniecg__fail(error, UNIECG_ERR_LIMIT, "metadata '%s'[%d] = %lld is outside 1..%d", key, j,
                                (long long)d[j], 1 << 20);
        p->dims[j] = d[j];
        if (j > 0 && d[j] > p->widest) p->widest = d[j];
    }
    if (d[0] != width)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "metadata '%s' starts at %lld, the encoder's width is %lld", key,
                            (long long)d[0], (long long)width);
    if (uniecg_model_file_meta_find(file, acts_key, &acts) != UNIECG_OK)
        return uniecg__fail(error, UNIECG_ERR_NOT_FOUND, "model file lacks metadata key '%s'", acts_key);
    if (acts.type != UNIECG_META_STRING_ARRAY)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "metadata key '%s' should be of type string[]", acts_key);
    if (acts.count != (uint64_t)(p->layers - 1))
        return uniecg__fail(error, UNIECG_ERR_FORMAT,
                            "metadata '%s' has %llu entries, %d layers need %d (one between each pair)", acts_key,
                            (unsigned long long)acts.count, p->layers, p->layers - 1);
    int64_t index = uniecg__meta_index(file, acts_key);
    for (int32_t j = 0; j + 1 < p->layers; j++) {
        const char *name;
        uint64_t length;
        if (uniecg_model_file_meta_string_at(file, (uint32_t)index, (uint64_t)j, &name, &length) != UNIECG_OK)
            return uniecg__fail(error, UNIECG_ERR_FORMAT, "cannot read '%s'[%d]", acts_key, j);
        /* string[] items carry a length and are not NUL-terminated */
        if (length == 4 && memcmp(name, "gelu", 4) == 0) p->gelu[j] = true;
        else if (length == 4 && memcmp(name, "none", 4) == 0) p->gelu[j] = false;
        else
            return uniecg__fail(error, UNIECG_ERR_VERSION, "projector activation '%.*s' is not supported (gelu, none)",
                                (int)(length < 64 ? length : 64), name);
    }
    return UNIECG_OK;
}

uniecg_status uniecg__projector_load_weights(const uniecg_model_file *file, const char *prefix, uniecg__projector *p,
                                             uniecg_error *error) {
    for (int32_t j = 0; j < p->layers; j++) {
        char name[64];
        uniecg_status s;
        snprintf(name, sizeof name, "%s.projector.%d", prefix, j);
        if ((s = uniecg__weight_find(file, name, p->dims[j + 1], p->dims[j], &p->w[j], error))) return s;
        snprintf(name, sizeof name, "%s.projector.%d_bias", prefix, j);
        if ((s = uniecg__vector_find(file, name, p->dims[j + 1], &p->b[j], error))) return s;
    }
    return UNIECG_OK;
}

uniecg_status uniecg__projector_run(uniecg__seq_ctx *ctx, const uniecg__projector *p, const float *src, int64_t T,
                                    float *pa, float *pb, float *out, uniecg_error *error) {
    for (int32_t j = 0; j < p->layers; j++) {
        float *dst = j + 1 == p->layers ? out : (j % 2 ? pb : pa);
        uniecg_status s = uniecg__seq_linear(ctx, &p->w[j], p->b[j], src, T, dst, error);
        if (s) return s;
        if (j + 1 < p->layers && p->gelu[j]) uniecg__seq_activate(ctx, UNIECG__ACT_GELU, dst, T * p->dims[j + 1]);
        src = dst;
    }
    return UNIECG_OK;
}
