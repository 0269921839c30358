/* Internal hooks of the latent U-Net (unet.c) for the tests: not part of the public API. */
#ifndef UNIECG_UNET_INTERNAL_H
#define UNIECG_UNET_INTERNAL_H

#include "uniecg.h"

/* Called with the intermediates of the first down block of sample 0, in order: "temb" (cin),
 * "time_added" (cin, L), "pre_conv", "shortcut_conv", "self_attention", "cross_attention",
 * "attention_norm" (s, L), "block_out" (cout, L), "down_out" (cout, L / 2) and "cross_vec" (s),
 * channels-major: the names of Tools/reference/make_diffusets_fixtures.py's unet_trace case. */
typedef void (*uniecg__unet_trace_fn)(void *user, const char *name, const float *values, int64_t channels,
                                      int64_t length);

/* uniecg_unet_predict with a trace of down block 0 (trace may be NULL). */
uniecg_status uniecg__unet_predict_traced(uniecg_unet *unet, int32_t batch, const float *x, const int32_t *timesteps,
                                          const float *cond, float *eps, uniecg__unet_trace_fn trace, void *user,
                                          uniecg_error *error);

/* Cached conditions (for the tests of the cache): how many cross-attention vector sets were
 * computed since create. */
int64_t uniecg__unet_condition_misses(const uniecg_unet *unet);

#endif
