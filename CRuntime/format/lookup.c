#include "lookup.h"

#include <stdio.h>

static uniecg_status find(const uniecg_model_file *file, const char *key, uniecg_meta_type type, const char *type_name,
                          uniecg_meta_entry *e, uniecg_error *error) {
    if (uniecg_model_file_meta_find(file, key, e) != UNIECG_OK)
        return uniecg__fail(error, UNIECG_ERR_NOT_FOUND, "model file lacks metadata key '%s'", key);
    if (e->type != type)
        return uniecg__fail(error, UNIECG_ERR_TYPE, "metadata key '%s' should be of type %s", key, type_name);
    return UNIECG_OK;
}

uniecg_status uniecg__meta_string(const uniecg_model_file *file, const char *key, const char **out, uniecg_error *error) {
    uniecg_meta_entry e;
    uniecg_status s = find(file, key, UNIECG_META_STRING, "string", &e, error);
    if (!s) *out = e.string_value;
    return s;
}

uniecg_status uniecg__meta_i64(const uniecg_model_file *file, const char *key, int64_t min, int64_t max, int64_t *out,
                               uniecg_error *error) {
    uniecg_meta_entry e;
    uniecg_status s = find(file, key, UNIECG_META_I64, "i64", &e, error);
    if (s) return s;
    if (e.i64_value < min || e.i64_value > max)
        return uniecg__fail(error, UNIECG_ERR_LIMIT, "metadata '%s' = %lld is outside %lld..%lld", key,
                            (long long)e.i64_value, (long long)min, (long long)max);
    *out = e.i64_value;
    return UNIECG_OK;
}

uniecg_status uniecg__meta_int(const uniecg_model_file *file, const char *key, int32_t min, int32_t max, int32_t *out,
                               uniecg_error *error) {
    int64_t v = 0;
    uniecg_status s = uniecg__meta_i64(file, key, min, max, &v, error);
    if (!s) *out = (int32_t)v;
    return s;
}

uniecg_status uniecg__meta_f64(const uniecg_model_file *file, const char *key, double *out, uniecg_error *error) {
    uniecg_meta_entry e;
    uniecg_status s = find(file, key, UNIECG_META_F64, "f64", &e, error);
    if (!s) *out = e.f64_value;
    return s;
}

uniecg_status uniecg__meta_bool(const uniecg_model_file *file, const char *key, bool *out, uniecg_error *error) {
    uniecg_meta_entry e;
    uniecg_status s = find(file, key, UNIECG_META_BOOL, "bool", &e, error);
    if (!s) *out = e.bool_value;
    return s;
}

uniecg_status uniecg__tensor_find(const uniecg_model_file *file, const char *name, uint32_t rank, const int64_t *shape,
                                  uniecg_tensor_info *out, uniecg_error *error) {
    if (uniecg_model_file_tensor_find(file, name, out) != UNIECG_OK)
        return uniecg__fail(error, UNIECG_ERR_NOT_FOUND, "model file lacks tensor '%s'", name);
    bool match = out->rank == rank;
    for (uint32_t d = 0; match && d < rank; d++) match = out->shape[d] == (uint64_t)shape[d];
    if (!match) {
        char want[96] = "", have[96] = "";
        for (uint32_t d = 0; d < rank; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "x" : "", (long long)shape[d]);
        for (uint32_t d = 0; d < out->rank; d++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%llu", d ? "x" : "", (unsigned long long)out->shape[d]);
        return uniecg__fail(error, UNIECG_ERR_FORMAT, "tensor '%s' has shape %s, the metadata implies %s", name, have, want);
    }
    if (!out->data)
        return uniecg__fail(error, UNIECG_ERR_STATE, "tensor '%s' is not loaded (open the file with load_tensors)", name);
    return UNIECG_OK;
}
