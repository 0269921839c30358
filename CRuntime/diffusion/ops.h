/* Sequence operations of the diffusion networks (the latent 1-D U-Net and the 1-D VAE): the
 * building blocks from which DiffuSETS-style models are assembled, each matching its PyTorch
 * module (checked against golden fixtures, Tools/reference/make_diffusion_op_fixtures.py).
 *
 * Layouts, batch 1:
 *   - activations between layers are channels-major (C, L) float32: x[c * L + t];
 *   - attention, LayerNorm and linear layers work token-major (n, D): x[t * D + d], the layout
 *     PyTorch has after x.transpose(-1, -2); uniecg__seq_transpose converts;
 *   - weights keep their PyTorch layout: Conv1d (c_out, c_in, k), ConvTranspose1d
 *     (c_in, c_out, k), Linear (out, in), flattened to a matrix of the first dimension by the
 *     rest. q8 weights are that matrix quantized by uniecg_quantize_q8 (rows of a multiple of
 *     32 values, ModelFormat.md §6.2).
 *
 * Ops that can fail take explicit shapes and return a status, with a message in `error` for
 * bad shapes or types. Outputs must not overlap inputs unless a function says otherwise.
 * Work is split over the context's thread pool; q8 products use the decoder's kernels
 * (kernels.h) through uniecg__linear or the q8_matmul entry point, never a second matmul.
 * Internal header: not part of the public API. */
#ifndef UNIECG_DIFFUSION_OPS_H
#define UNIECG_DIFFUSION_OPS_H

#include "../kernels/ops.h" /* uniecg__weight, uniecg__linear, kernels.h */

/* Kernels, threads and a scratch buffer shared by a sequence of ops. One context must not be
 * used by two threads at once (ops run one after another; each op splits its own work over the
 * pool). The scratch grows on demand and is reused, so a forward pass allocates only while its
 * largest op is first seen. */
typedef struct {
    const uniecg_kernels *kernels;
    uniecg_thread_pool *pool; /* borrowed; NULL runs everything on the calling thread */
    int32_t n_threads;
    void *scratch;
    uint64_t scratch_size;
} uniecg__seq_ctx;

/* `variant` may be AUTO (honours UNIECG_KERNELS); fails when it is unsupported. */
uniecg_status uniecg__seq_ctx_init(uniecg__seq_ctx *ctx, uniecg_kernel_variant variant, uniecg_thread_pool *pool,
                                   uniecg_error *error);
void uniecg__seq_ctx_free(uniecg__seq_ctx *ctx);

/* ---- convolutions and resampling (channels-major) ------------------------------------------ */

/* nn.Conv1d with dilation 1 and groups 1. Padding is with zeros and may be asymmetric: PyTorch's
 * padding=p is pad_left = pad_right = p, padding="same" with an odd kernel is (k-1)/2 on each
 * side, and the DiffuSETS VAE's F.pad(x, (0, 1)) before a stride-2 conv is pad_right = 1. */
typedef struct {
    int64_t c_in, c_out, kernel, stride, pad_left, pad_right;
} uniecg__conv1d_shape;

/* (length + pad_left + pad_right - kernel) / stride + 1, or 0 when the window does not fit
 * (or the shape is invalid). */
int64_t uniecg__conv1d_out_length(const uniecg__conv1d_shape *shape, int64_t length);

/* y (c_out, L_out) = conv1d(x (c_in, length)) + bias. `w` is the weight as a matrix of c_out
 * rows by c_in * kernel columns in PyTorch order (column i * kernel + j is W[o][i][j]), f32 or
 * q8; q8 needs c_in * kernel to be a multiple of 32. `bias` (c_out) may be NULL. f32 weights are
 * summed exactly in f32 (no activation quantization); q8 weights go through the q8 kernels
 * with each output position's receptive field (c_in * kernel values) quantized per group of 32
 * like the decoder's activations. */
uniecg_status uniecg__seq_conv1d(uniecg__seq_ctx *ctx, const uniecg__conv1d_shape *shape, const uniecg__weight *w,
                                 const float *bias, const float *x, int64_t length, float *y, uniecg_error *error);

/* The tap-major q8 form of a convolution weight, made once at load: W[o][i][j] reordered to
 * (c_out, kernel, c_in) and quantized with one scale per output channel and tap. With it each
 * input position is quantized once (one scale over its c_in channels) and each tap's c_in
 * products sum in int32 before one float scaling (kernels.h, q8_conv_args), about 1.5-2x the
 * q8 im2col product on AVX2 at c_in 128-512. The coarser scales change the quantization
 * error (checked against PyTorch in test_diffusion_ops and test_vae); the results are the same
 * bits on every kernel variant. */
typedef struct {
    void *block;           /* one allocation: the scales, then the int8 values; NULL = none */
    const float *scales;   /* (c_out, kernel) */
    const int8_t *values;  /* (c_out, kernel, c_in) */
} uniecg__conv1d_taps;

/* Whether `w` can have a tap-major form: q8 or f32, shaped for `shape`, c_in a multiple of 32
 * (at most 65536, so a tap's int32 sum cannot overflow). */
bool uniecg__conv1d_taps_fit(const uniecg__conv1d_shape *shape, const uniecg__weight *w);

/* Makes the tap-major form of `w` (from its q8 or f32 values); free with
 * uniecg__conv1d_taps_free. Fails (INVALID_ARGUMENT) when it does not fit. */
uniecg_status uniecg__conv1d_taps_make(const uniecg__conv1d_shape *shape, const uniecg__weight *w,
                                       uniecg__conv1d_taps *out, uniecg_error *error);
void uniecg__conv1d_taps_free(uniecg__conv1d_taps *taps);

/* uniecg__seq_conv1d with the tap-major form of its weight. */
uniecg_status uniecg__seq_conv1d_taps(uniecg__seq_ctx *ctx, const uniecg__conv1d_shape *shape,
                                      const uniecg__conv1d_taps *taps, const float *bias, const float *x,
                                      int64_t length, float *y, uniecg_error *error);

/* nn.ConvTranspose1d with dilation 1, groups 1, symmetric padding and output_padding. */
typedef struct {
    int64_t c_in, c_out, kernel, stride, padding, output_padding;
} uniecg__conv_transpose1d_shape;

/* (length - 1) * stride - 2 * padding + kernel + output_padding, or 0 when not positive (or
 * the shape is invalid: output_padding must be below stride, as PyTorch requires). */
int64_t uniecg__conv_transpose1d_out_length(const uniecg__conv_transpose1d_shape *shape, int64_t length);

/* y (c_out, L_out) = conv_transpose1d(x (c_in, length)) + bias. `w` is PyTorch's (c_in, c_out, k)
 * weight as a matrix of c_in rows by c_out * kernel columns, f32 or q8 (c_out * kernel a
 * multiple of 32). The contraction runs over the weight's rows, which the q8 kernels cannot do,
 * so a q8 weight is expanded to f32 in the scratch and the product is f32 (these layers are
 * small: the DiffuSETS U-Net's largest is 256 x 256 x 4, 1 MB of f32). `bias` (c_out) may be
 * NULL. */
uniecg_status uniecg__seq_conv_transpose1d(uniecg__seq_ctx *ctx, const uniecg__conv_transpose1d_shape *shape,
                                           const uniecg__weight *w, const float *bias, const float *x, int64_t length,
                                           float *y, uniecg_error *error);

/* nn.Upsample(scale_factor=factor, mode="nearest"): y (channels, length * factor),
 * y[c][t] = x[c][t / factor]. */
uniecg_status uniecg__seq_upsample_nearest(const float *x, int64_t channels, int64_t length, int64_t factor,
                                           float *y, uniecg_error *error);

/* ---- normalisation and activations ----------------------------------------------------------- */

/* nn.GroupNorm(groups, channels, eps, affine) over x (channels, length): each group of
 * channels / groups consecutive channels is normalised by its own mean and biased variance over
 * all its values, then y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c]. gamma and beta
 * (channels) are both NULL for affine=False. GroupNorm(1, C) normalises the whole tensor, as the
 * DiffuSETS U-Net does. y may equal x (in place). Statistics are accumulated in double. */
uniecg_status uniecg__seq_group_norm(uniecg__seq_ctx *ctx, const float *x, int64_t channels, int64_t length,
                                     int64_t groups, float eps, const float *gamma, const float *beta, float *y,
                                     uniecg_error *error);

/* nn.LayerNorm(dim, eps) over each of `tokens` rows of x (tokens, dim), token-major: the
 * U-Net's norms over channels at each position. gamma/beta (dim) both NULL for no affine.
 * y may equal x. */
uniecg_status uniecg__seq_layer_norm(uniecg__seq_ctx *ctx, const float *x, int64_t tokens, int64_t dim, float eps,
                                     const float *gamma, const float *beta, float *y, uniecg_error *error);

/* In-place activations over n values (as torch.nn.functional computes them in float32):
 *   SiLU  x / (1 + exp(-x))
 *   GELU  0.5 x (1 + erf(x / sqrt 2))            (the exact, erf form: F.gelu's default)
 *   Mish  x tanh(log1p(exp(x)))                  (F.mish; exp overflow gives tanh(inf) = 1)
 *   QuickGELU  x / (1 + exp(-1.702 x))           (x * sigmoid(1.702 x): OpenAI CLIP's MLP) */
typedef enum { UNIECG__ACT_SILU, UNIECG__ACT_GELU, UNIECG__ACT_MISH, UNIECG__ACT_QUICK_GELU } uniecg__activation;
void uniecg__seq_activate(uniecg__seq_ctx *ctx, uniecg__activation act, float *x, int64_t n);

/* ---- linear layers and embeddings (token-major) ---------------------------------------------- */

/* y (tokens, w.rows) = x (tokens, w.cols) @ W^T + bias: nn.Linear. Any weight dtype (q8 with the
 * decoder's kernels and per-token activation quantization; f32/f16/bf16 summed in f32).
 * `bias` (w.rows) may be NULL. */
uniecg_status uniecg__seq_linear(uniecg__seq_ctx *ctx, const uniecg__weight *w, const float *bias, const float *x,
                                 int64_t tokens, float *y, uniecg_error *error);

/* Sinusoidal timestep embedding of `dim` values for timestep t (fractional allowed), half =
 * dim / 2, for i < half:
 *     freq_i = exp(-log_max_period * i / (half - downscale_freq_shift))
 *     y = [sin(t freq_i) for i] ++ [cos(t freq_i) for i]     ([cos ++ sin] with flip_sin_to_cos)
 * and a trailing 0 when dim is odd. This is diffusers' get_timestep_embedding(t, dim,
 * flip_sin_to_cos, downscale_freq_shift, scale=1, max_period) with log_max_period =
 * ln(max_period) (diffusers' UNets: ln 10000, shift 1, no flip; Stable Diffusion: shift 0,
 * flip). DiffuSETS' TimeEmbedding is log_max_period = 10 (exp(-10 i / 31) for dim 64), shift 1,
 * no flip, evaluated at t + 1 (its table row t holds step t + 1): the caller passes t + 1.
 * Computed in float32 in diffusers' order (DiffuSETS rounds the exponent in another order; the
 * frequencies differ by at most an ulp). At t = 1000 float32 itself limits agreement: the C
 * values are within 6.1e-5 of torch's, and torch's float32 table is 5.4e-5 from the exact
 * one. Fails on dim < 2, half == shift, or a non-finite t. */
typedef struct {
    double log_max_period;
    double downscale_freq_shift;
    bool flip_sin_to_cos;
} uniecg__timestep_embedding_params;

uniecg_status uniecg__seq_timestep_embedding(const uniecg__timestep_embedding_params *params, float t, int64_t dim,
                                             float *y, uniecg_error *error);

/* ---- attention ------------------------------------------------------------------------------ */

/* The weights of one nn.MultiheadAttention (or the DiffuSETS VAE's SelfAttention, which is the
 * same computation with one head): query, key and value projections to `embed` = heads *
 * head_dim, scaled dot-product attention per head with softmax(q k^T / sqrt(head_dim)), and
 * an output projection. Projections are either
 *   - packed: in_proj (3 embed, D) with q, k, v stacked (in_proj_weight; the VAE's
 *     Linear(C, 3C)), which needs the query, key and value inputs to have the same width, or
 *   - separate: q_proj (embed, Dq), k_proj (embed, Dk), v_proj (embed, Dv) (PyTorch's
 *     q_proj_weight etc. when kdim/vdim differ, or packed weights split by a converter).
 * Set exactly one of in_proj / (q_proj, k_proj, v_proj). The biases are the packed in_proj_bias
 * (3 embed), as PyTorch stores it in both cases, or NULL; out_bias (out_proj rows) or NULL. */
typedef struct {
    int64_t heads;
    const uniecg__weight *in_proj;
    const uniecg__weight *q_proj, *k_proj, *v_proj;
    const float *in_proj_bias;
    const uniecg__weight *out_proj;
    const float *out_bias;
} uniecg__attention_weights;

/* nn.MultiheadAttention(query, key, value, batch_first=True)[0] for one sample, token-major:
 * query (tokens, Dq), key (keys, Dk), value (keys, Dv) -> y (tokens, out_proj rows). key and
 * value may be the same pointer (projected once); with packed weights and query == key ==
 * value (self-attention) the projection is one product of (3 embed) rows. No mask, no dropout. */
uniecg_status uniecg__seq_mha(uniecg__seq_ctx *ctx, const uniecg__attention_weights *a, const float *query,
                              int64_t tokens, const float *key, const float *value, int64_t keys, float *y,
                              uniecg_error *error);

/* Self-attention over a channels-major sequence: y (out rows, length) = MHA(x^T, x^T, x^T)^T for
 * x (channels, length). No residual (add x yourself): this is the DiffuSETS VAE attention
 * block without its `+= residue`. */
uniecg_status uniecg__seq_self_attention(uniecg__seq_ctx *ctx, const uniecg__attention_weights *a, const float *x,
                                         int64_t channels, int64_t length, float *y, uniecg_error *error);

/* Cross-attention of a channels-major sequence to a token-major condition: y (out rows, length)
 * = MHA(x^T, cond, cond)^T for x (channels, length) and cond (keys, cond_dim). This general
 * path computes every score, even for one key: use the fast path below then. */
uniecg_status uniecg__seq_cross_attention(uniecg__seq_ctx *ctx, const uniecg__attention_weights *a, const float *x,
                                          int64_t channels, int64_t length, const float *cond, int64_t keys,
                                          int64_t cond_dim, float *y, uniecg_error *error);

/* With a single condition token every query sees one key, its softmax weight is exactly 1, and
 * the attention output at every position is that token's value projection: MHA(q, c, c) =
 * out_proj(v_proj(c) + b_v) + b_out whatever the queries. This computes that vector y (out rows)
 * from cond (cond_dim) without the query and key projections; broadcasting it over the length
 * gives what uniecg__seq_cross_attention computes for keys = 1: bit for bit with f32 weights;
 * with q8 ones up to the kernels' summation order for one token versus many (DiffuSETS
 * conditions on one token, so its cross-attention is one such vector per block and sample). */
uniecg_status uniecg__seq_cross_attention_one_token(uniecg__seq_ctx *ctx, const uniecg__attention_weights *a,
                                                    const float *cond, int64_t cond_dim, float *y,
                                                    uniecg_error *error);

/* ---- small helpers --------------------------------------------------------------------------- */

/* The context's scratch, at least `bytes` long (grown when needed; the contents are not kept
 * and every op reuses it, so it is valid only until the next op). NULL on failure. */
void *uniecg__seq_scratch(uniecg__seq_ctx *ctx, uint64_t bytes, uniecg_error *error);

/* Carving one scratch block into 64-byte aligned pieces. With base NULL it only measures:
 * run the same carving twice, first to learn the size, then on the reserved block. */
typedef struct {
    uint8_t *base;
    uint64_t used;
} uniecg__seq_arena;

static inline void *uniecg__seq_take(uniecg__seq_arena *arena, uint64_t bytes) {
    uint64_t at = arena->used;
    arena->used = at + (bytes + 63) / 64 * 64;
    return arena->base ? arena->base + at : NULL;
}

/* The largest tensor (elements) the ops accept; sizes are checked against it so that every
 * product of two checked sizes fits in int64 and every buffer size in uint64. */
#define UNIECG__SEQ_MAX_ELEMENTS ((int64_t)1 << 31)

/* UNIECG_ERR_LIMIT (with a message naming `what`) when a * b exceeds the limit. */
uniecg_status uniecg__seq_check_size(int64_t a, int64_t b, const char *what, uniecg_error *error);

/* Room for the quantized activations of a q8 product of `tokens` x `cols` (cols a multiple of
 * 32), carved from an arena. */
void uniecg__seq_take_activations(uniecg__seq_arena *arena, int64_t tokens, int64_t cols, uniecg__activations *act);

/* nn.Linear without checks, for ops that have validated the shapes and carved `act` (room for
 * tokens x w.cols when w is q8; unused otherwise). */
void uniecg__seq_linear_unchecked(uniecg__seq_ctx *ctx, uniecg__activations *act, const uniecg__weight *w,
                                  const float *bias, const float *x, int64_t tokens, float *y);

/* y (cols, rows) = x (rows, cols)^T: between channels-major and token-major. */
void uniecg__seq_transpose(const float *x, int64_t rows, int64_t cols, float *y);

/* x[c][t] += v[c] for x (channels, length): a per-channel vector (timestep embedding, a
 * one-token cross-attention output) added at every position. */
void uniecg__seq_add_per_channel(float *x, int64_t channels, int64_t length, const float *v);

#endif
