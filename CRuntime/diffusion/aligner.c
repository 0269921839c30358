/* The aligner: K language-model hidden states -> the U-Net's text-embedding condition
 * (ModelFormat.md, "Aligner (aligner.*)"; PyTorch reference: Tools/reference/
 * make_aligner_fixtures.py). Pooling, then Linear / GELU / ... / Linear, then an optional
 * LayerNorm and an optional L2 normalisation, all with the sequence ops (ops.h) on one token:
 * this file only wires them. Two activation buffers of the widest layer are allocated at create
 * time; the ops' scratch (q8 activations) grows on the first call only. */
#include "internal.h"
#include "lookup.h"
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Deeper MLPs are not an aligner anyone trains; the bound keeps the layer arrays fixed. */
enum { MAX_LAYERS = 16 };

struct uniecg_aligner {
    uniecg_aligner_info info;
    uniecg__weight weights[MAX_LAYERS]; /* (out, in) of each Linear                               */
    const float *biases[MAX_LAYERS];     /* (out)                                                 */
    const float *norm, *norm_bias;       /* (output_dim), with layer_norm                         */
    float norm_eps;
    uniecg__seq_ctx ctx;
    uniecg_thread_pool *pool;
    bool owns_pool;
    float *buffers[2]; /* each (widest): a layer's input and output                              */
};

uniecg_aligner_params uniecg_aligner_default_params(void) {
    return (uniecg_aligner_params){.kernels = UNIECG_KERNELS_AUTO, .pool = NULL, .n_threads = 0};
}

void uniecg_aligner_free(uniecg_aligner *a) {
    if (!a) return;
    for (int i = 0; i < 2; i++) free(a->buffers[i]);
    uniecg__seq_ctx_free(&a->ctx);
    if (a->owns_pool) uniecg_thread_pool_free(a->pool);
    free(a);
}

static uniecg_status vector(const uniecg_model_file *file, const char *name, int64_t n, const float **out,
                            uniecg_error *error) {
    uniecg_status s = uniecg__vector_find(file, name, n, out, error);
    if (!s && !*out) s = uniecg__fail(error, UNIECG_ERR_STATE, "tensor '%s' is not loaded (open with load_tensors)", name);
    return s;
}

/* Linear layer i of (rows, cols). Any weight dtype (uniecg__seq_linear multiplies f32, f16, bf16
 * and q8); q8 needs rows of a multiple of 32 values, as everywhere in the format. */
static uniecg_status load_layer(uniecg_aligner *a, const uniecg_model_file *file, int32_t i, int64_t rows, int64_t cols,
                                uniecg_error *error) {
    char name[64], bias[64];
    snprintf(name, sizeof name, "aligner.layers.%d.weight", i);
    snprintf(bias, sizeof bias, "aligner.layers.%d.bias", i);
    uniecg_status s = uniecg__weight_find(file, name, rows, cols, &a->weights[i], error);
    if (s) return s;
    if (!a->weights[i].data)
        return uniecg__fail(error, UNIECG_ERR_STATE, "tensor '%s' is not loaded (open with load_tensors)", name);
    if (a->weights[i].dtype == UNIECG_DTYPE_Q8 && cols % UNIECG_Q8_GROUP)
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "tensor '%s' is q8 but its rows hold %lld values (not a multiple of 32)",
                            name, (long long)cols);
    return vector(file, bias, rows, &a->biases[i], error);
}

uniecg_status uniecg_aligner_create(const uniecg_model_file *file, uniecg_aligner_params params, uniecg_aligner **out,
                                    uniecg_error *error) {
    if (!file || !out) return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "aligner_create: NULL argument");
    *out = NULL;
    if (params.n_threads < 0)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "aligner_create: negative thread count");
    const char *arch, *pooling;
    uniecg_status s = uniecg__meta_string(file, "aligner.architecture", &arch, error);
    if (s) return s;
    if (strcmp(arch, "mlp") != 0)
        return uniecg__fail(error, UNIECG_ERR_VERSION, "unknown aligner architecture '%s' (mlp)", arch);

    uniecg_aligner *a = calloc(1, sizeof *a);
    if (!a) return uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory");
    uniecg_aligner_info *in = &a->info;
    double eps = 0;
    if ((s = uniecg__meta_int(file, "aligner.tokens", 1, 4096, &in->tokens, error)) ||
        (s = uniecg__meta_int(file, "aligner.input_dim", 1, 1 << 16, &in->input_dim, error)) ||
        (s = uniecg__meta_int(file, "aligner.hidden_dim", 1, 1 << 16, &in->hidden_dim, error)) ||
        (s = uniecg__meta_int(file, "aligner.n_layers", 1, MAX_LAYERS, &in->n_layers, error)) ||
        (s = uniecg__meta_int(file, "aligner.output_dim", 1, 1 << 16, &in->output_dim, error)) ||
        (s = uniecg__meta_string(file, "aligner.pooling", &pooling, error)) ||
        (s = uniecg__meta_bool(file, "aligner.layer_norm", &in->layer_norm, error)) ||
        (s = uniecg__meta_f64(file, "aligner.norm_eps", &eps, error)) ||
        (s = uniecg__meta_bool(file, "aligner.normalize", &in->normalize, error)))
        goto fail;
    if (!strcmp(pooling, "mean")) {
        in->pooling = UNIECG_ALIGNER_POOL_MEAN;
    } else if (!strcmp(pooling, "flatten")) {
        in->pooling = UNIECG_ALIGNER_POOL_FLATTEN;
    } else {
        s = uniecg__fail(error, UNIECG_ERR_VERSION, "metadata 'aligner.pooling' = '%s' is not \"mean\" or \"flatten\"",
                         pooling);
        goto fail;
    }
    if (!(eps > 0) || !isfinite(eps)) {
        s = uniecg__fail(error, UNIECG_ERR_FORMAT, "metadata 'aligner.norm_eps' = %g is not a positive number", eps);
        goto fail;
    }
    a->norm_eps = (float)eps;

    /* Layer i maps dims[i] -> dims[i + 1]: the pooled width, hidden_dim between layers, output_dim. */
    int64_t pooled = in->input_dim;
    if (in->pooling == UNIECG_ALIGNER_POOL_FLATTEN &&
        (s = uniecg__seq_check_size(in->tokens, in->input_dim, "aligner flattened input", error)))
        goto fail;
    if (in->pooling == UNIECG_ALIGNER_POOL_FLATTEN) pooled *= in->tokens;
    int64_t widest = pooled > in->hidden_dim ? pooled : in->hidden_dim;
    if (in->output_dim > widest) widest = in->output_dim;
    for (int32_t i = 0; i < in->n_layers; i++) {
        int64_t cols = i == 0 ? pooled : in->hidden_dim;
        int64_t rows = i + 1 == in->n_layers ? in->output_dim : in->hidden_dim;
        if ((s = load_layer(a, file, i, rows, cols, error))) goto fail;
    }
    if (in->layer_norm && ((s = vector(file, "aligner.norm", in->output_dim, &a->norm, error)) ||
                           (s = vector(file, "aligner.norm_bias", in->output_dim, &a->norm_bias, error))))
        goto fail;
    for (int i = 0; i < 2; i++)
        if (!(a->buffers[i] = uniecg__aligned_alloc((uint64_t)widest * sizeof(float)))) {
            s = uniecg__fail(error, UNIECG_ERR_OUT_OF_MEMORY, "out of memory for the aligner activations");
            goto fail;
        }

    if (params.pool) {
        a->pool = params.pool;
    } else {
        if ((s = uniecg_thread_pool_create(params.n_threads, &a->pool, error))) goto fail;
        a->owns_pool = true;
    }
    in->n_threads = uniecg_thread_pool_size(a->pool);
    if ((s = uniecg_kernel_variant_resolve(params.kernels, &in->kernels, error)) ||
        (s = uniecg__seq_ctx_init(&a->ctx, in->kernels, a->pool, error)))
        goto fail;
    *out = a;
    return UNIECG_OK;
fail:
    uniecg_aligner_free(a);
    return s;
}

void uniecg_aligner_get_info(const uniecg_aligner *a, uniecg_aligner_info *out) {
    if (a && out) *out = a->info;
}

uniecg_status uniecg_aligner_forward(uniecg_aligner *a, const float *hidden, float *condition, uniecg_error *error) {
    if (!a || !hidden || !condition)
        return uniecg__fail(error, UNIECG_ERR_INVALID_ARGUMENT, "aligner_forward: NULL argument");
    const uniecg_aligner_info *in = &a->info;
    int64_t K = in->tokens, D = in->input_dim;
    /* Checked first: a NaN would otherwise spread silently into every condition value. */
    for (int64_t i = 0; i < K * D; i++)
        if (!isfinite(hidden[i]))
            return uniecg__fail(error, UNIECG_ERR_RANGE, "aligner_forward: hidden state of token %lld, index %lld is not finite",
                                (long long)(i / D), (long long)(i % D));
    float *x = a->buffers[0], *y = a->buffers[1];
    int64_t width = D;
    if (in->pooling == UNIECG_ALIGNER_POOL_MEAN) {
        /* Summed in double and divided once: within an ulp of torch's float32 mean, whatever
         * its reduction order. */
        for (int64_t d = 0; d < D; d++) {
            double sum = 0;
            for (int64_t k = 0; k < K; k++) sum += hidden[k * D + d];
            x[d] = (float)(sum / (double)K);
        }
    } else {
        /* torch's flatten of (K, D) row-major: token 0's values first. */
        width = K * D;
        memcpy(x, hidden, (size_t)width * sizeof(float));
    }
    uniecg_status s = UNIECG_OK;
    for (int32_t i = 0; i < in->n_layers; i++) {
        if ((s = uniecg__seq_linear(&a->ctx, &a->weights[i], a->biases[i], x, 1, y, error))) {
            char op[UNIECG_ERROR_MESSAGE_SIZE];
            snprintf(op, sizeof op, "%s", error ? error->message : "");
            return uniecg__fail(error, s, "aligner layer %d: %s", i, op);
        }
        width = a->weights[i].rows;
        if (i + 1 < in->n_layers) uniecg__seq_activate(&a->ctx, UNIECG__ACT_GELU, y, width);
        float *t = x;
        x = y;
        y = t;
    }
    if (in->layer_norm &&
        (s = uniecg__seq_layer_norm(&a->ctx, x, 1, width, a->norm_eps, a->norm, a->norm_bias, x, error)))
        return s;
    if (in->normalize) {
        /* F.normalize: x / max(||x||, 1e-12), the norm accumulated in double. */
        double sq = 0;
        for (int64_t i = 0; i < width; i++) sq += (double)x[i] * x[i];
        float norm = (float)sqrt(sq);
        if (!(norm > 1e-12f)) norm = 1e-12f;
        for (int64_t i = 0; i < width; i++) x[i] /= norm;
    }
    memcpy(condition, x, (size_t)width * sizeof(float));
    return UNIECG_OK;
}
