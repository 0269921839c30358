/* Operations shared by the networks: a weight matrix of any dtype, the linear layer over a
 * batch of tokens, and row look-up. */
#ifndef UNIECG_OPS_H
#define UNIECG_OPS_H

#include "kernels.h"

typedef struct {
    const void *data; /* payload: (rows, cols) of dtype                                         */
    uniecg_dtype dtype;
    int64_t rows, cols;
} uniecg__weight;

/* Quantized activations for q8 products: room for (tokens, cols). */
typedef struct {
    int8_t *q;      /* (tokens, cols) */
    float *scales;  /* (tokens, cols/32) */
    int64_t tokens, cols;
} uniecg__activations;

uniecg_status uniecg__activations_init(uniecg__activations *a, int64_t tokens, int64_t cols);
void uniecg__activations_free(uniecg__activations *a);

/* The matrix `name` of shape (rows, cols); any dtype. */
uniecg_status uniecg__weight_find(const uniecg_model_file *file, const char *name, int64_t rows, int64_t cols,
                                  uniecg__weight *out, uniecg_error *error);
/* The f32 vector `name` of n elements. */
uniecg_status uniecg__vector_find(const uniecg_model_file *file, const char *name, int64_t n, const float **out,
                                  uniecg_error *error);

/* The index of metadata `key` (to read its string-array items with uniecg_model_file_meta_string_at),
 * or -1 when the file has no such key. */
int64_t uniecg__meta_index(const uniecg_model_file *file, const char *key);

/* y (n, rows) = x (n, cols) @ W^T, split over the pool by rows. */
void uniecg__linear(const uniecg_kernels *kernels, uniecg_thread_pool *pool, uniecg__activations *act,
                    const uniecg__weight *w, const float *x, int64_t n, float *y);

/* y[i] (n, w[i].rows) = x (n, cols) @ w[i]^T for `count` matrices of the same width: the
 * activations are quantized once and one pool dispatch covers every product. Same results as
 * `count` calls of uniecg__linear. */
void uniecg__linear_many(const uniecg_kernels *kernels, uniecg_thread_pool *pool, uniecg__activations *act,
                         const uniecg__weight *const *w, float *const *y, int32_t count, const float *x, int64_t n);

/* Row `row` of W as floats (embedding look-up). */
void uniecg__weight_row(const uniecg__weight *w, int64_t row, float *out);

#endif
