/* Typed look-ups of metadata and tensors for the model builders, with errors that name the
 * missing or malformed key or tensor. */
#ifndef UNIECG_LOOKUP_H
#define UNIECG_LOOKUP_H

#include "internal.h"

uniecg_status uniecg__meta_string(const uniecg_model_file *file, const char *key, const char **out, uniecg_error *error);
uniecg_status uniecg__meta_i64(const uniecg_model_file *file, const char *key, int64_t min, int64_t max, int64_t *out,
                               uniecg_error *error);
uniecg_status uniecg__meta_int(const uniecg_model_file *file, const char *key, int32_t min, int32_t max, int32_t *out,
                               uniecg_error *error);
uniecg_status uniecg__meta_f64(const uniecg_model_file *file, const char *key, double *out, uniecg_error *error);
uniecg_status uniecg__meta_bool(const uniecg_model_file *file, const char *key, bool *out, uniecg_error *error);

/* A loaded tensor of exactly the given rank and shape (outermost first). */
uniecg_status uniecg__tensor_find(const uniecg_model_file *file, const char *name, uint32_t rank, const int64_t *shape,
                                  uniecg_tensor_info *out, uniecg_error *error);

#endif
