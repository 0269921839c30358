/* What the signal and image encoders share: the pre-LN transformer block of an open_clip / CLIP
 * tower and the Linear [GELU] Linear ... projector that maps its tokens to the decoder's width.
 * Tensor and metadata names take the encoder's prefix ("signal" or "image"), as ModelFormat.md
 * lists them; all work goes through the sequence ops of diffusion/ops.h. */
#ifndef UNIECG_VISION_TOWER_H
#define UNIECG_VISION_TOWER_H

#include "internal.h"
#include "../diffusion/ops.h"

#define UNIECG__MAX_PROJECTOR_LAYERS 8

/* PREFIX.layers.N.{attn_norm, attn_qkv, attn_out, ffn_norm, ffn_up, ffn_down}[_bias] */
typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    uniecg__weight qkv, out, up, down;
    const float *qkv_b, *out_b, *up_b, *down_b;
} uniecg__tower_block;

uniecg_status uniecg__tower_block_load(const uniecg_model_file *file, const char *prefix, int32_t layer, int64_t width,
                                       int64_t ffn_dim, uniecg__tower_block *out, uniecg_error *error);

/* Buffers of one block: h and a (tokens, width), ffn (tokens, ffn_dim). */
typedef struct {
    float *h, *a, *ffn;
} uniecg__tower_scratch;

/* x (tokens, width) += MHA(LN1(x)); x += down(act(up(LN2(x)))). */
uniecg_status uniecg__tower_block_run(uniecg__seq_ctx *ctx, const uniecg__tower_block *b, int64_t heads, float eps,
                                      uniecg__activation act, int64_t tokens, int64_t width, int64_t ffn_dim, float *x,
                                      const uniecg__tower_scratch *scratch, uniecg_error *error);

/* PREFIX.projector.dims / .activations (metadata) and PREFIX.projector.N[_bias] (tensors). */
typedef struct {
    int32_t layers;
    int64_t dims[UNIECG__MAX_PROJECTOR_LAYERS + 1];
    bool gelu[UNIECG__MAX_PROJECTOR_LAYERS];
    uniecg__weight w[UNIECG__MAX_PROJECTOR_LAYERS];
    const float *b[UNIECG__MAX_PROJECTOR_LAYERS];
    int64_t widest; /* the widest layer output, for the ping-pong buffers */
} uniecg__projector;

/* The shape from metadata: dims[0] must be the tower's width. */
uniecg_status uniecg__projector_load_shape(const uniecg_model_file *file, const char *prefix, int64_t width,
                                           uniecg__projector *p, uniecg_error *error);
/* The weights, after the shape. */
uniecg_status uniecg__projector_load_weights(const uniecg_model_file *file, const char *prefix, uniecg__projector *p,
                                             uniecg_error *error);
/* out (tokens, dims[layers]) from src (tokens, dims[0]); pa, pb (tokens, widest) in between. */
uniecg_status uniecg__projector_run(uniecg__seq_ctx *ctx, const uniecg__projector *p, const float *src, int64_t tokens,
                                    float *pa, float *pb, float *out, uniecg_error *error);

#endif
