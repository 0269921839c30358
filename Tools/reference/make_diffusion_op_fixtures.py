"""Golden fixtures for the C sequence operations of the diffusion networks (CRuntime/diffusion/ops.h),
from PyTorch (the oracle): conv1d, conv_transpose1d, nearest upsampling, GroupNorm, LayerNorm,
SiLU / GELU / Mish, linear, sinusoidal timestep embeddings and multi-head attention.

Every reference is the PyTorch module (or diffusers function) the published networks use,
configured as they configure it: nn.Conv1d(padding="same") for the DiffuSETS U-Net blocks,
F.pad(x, (0, 1)) + nn.Conv1d(stride=2) for the VAE encoder's down-sampling, nn.ConvTranspose1d
(k4, s2, p1) for the U-Net's up-sampling, nn.Upsample(scale_factor=2), nn.GroupNorm(1, C) and
nn.GroupNorm(32, C), nn.MultiheadAttention (packed and separate projections, kdim/vdim), the
VAE's own single-head SelfAttention class (copied below from DiffuSETS vae/vae_model.py), the
DiffuSETS TimeEmbedding table (copied from unet/unet_conditional.py) and diffusers'
get_timestep_embedding. Shapes include the DiffuSETS ones (4 x 128 latent, kernel 7, block
widths s = (in + out) // 2) but stay small so the whole directory is under 2 MB.

Writes, under Tests/Fixtures/diffusion_ops/:
  - manifest.txt  one case per line, space-separated:
                    <name> op=<op> key=value ... @tensor=d0,d1,... ...
                  key=value are the op's integer / float parameters; each @name=shape is a
                  float32 tensor stored in <name>.bin in the order listed (row-major, PyTorch
                  layout). q8=1 marks cases whose weights the C test also quantizes with
                  uniecg_quantize_q8 (every row length a multiple of 32) and compares, with each
                  kernel variant, against the same f32 PyTorch output by correlation.
                  Lines starting with '#' are comments.
  - <name>.bin    the tensors, little-endian float32, concatenated.

Ops and tensors (activations channels-major (C, L), batch 1; token-major (n, D) where noted):
  conv1d            c_in c_out kernel stride pad_left pad_right length bias q8
                    @x (c_in, L) @w (c_out, c_in, k) [@b (c_out)] @y (c_out, L_out)
  conv_transpose1d  c_in c_out kernel stride padding length bias q8
                    @x (c_in, L) @w (c_in, c_out, k) [@b] @y (c_out, L_out)
  upsample_nearest  channels length factor             @x @y (channels, L * factor)
  group_norm        groups channels length eps affine  @x [@gamma @beta] @y
  layer_norm        tokens dim eps                     @x (n, dim) @gamma @beta @y  (token-major)
  silu|gelu|mish    n                                  @x @y
  linear            tokens in out bias q8              @x (n, in) @w (out, in) [@b] @y (n, out)
  timestep_embedding dim log_max_period shift flip count form
                    @t (count) @y (count, dim); form=diffusers (get_timestep_embedding with
                    max_period = exp(log_max_period)) or form=diffusets (the DiffuSETS
                    TimeEmbedding table: 10.0 / (half - 1), rows for t + 1 = @t)
  mha               nn.MultiheadAttention(E, heads, kdim, vdim, batch_first=True) token-major:
                    tokens keys embed heads kdim vdim packed same_kv q8
                    @query (tokens, E) @key (keys, kdim) [@value (keys, vdim) unless same_kv]
                    packed=1: @in_proj_w (3E, E); else @q_w (E, E) @k_w (E, kdim) @v_w (E, vdim)
                    @in_proj_b (3E) @out_w (E, E) @out_b (E) @y (tokens, E)
  self_attention    (C, L) in and out, q = k = v = x^T: channels length heads q8
                    @x (C, L) @in_proj_w (3C, C) @in_proj_b @out_w (C, C) @out_b @y (C, L)
                    (no residual; heads=1 is the DiffuSETS VAE attention)
  cross_attention   (C, L) query, token-major condition: channels length keys cond_dim heads
                    packed q8  @x (C, L) @cond (keys, cond_dim), weights as mha
                    (packed only when cond_dim == C) @y (C, L)

Run from the repository root:
  /opt/uniecg-venv/bin/python Tools/reference/make_diffusion_op_fixtures.py
Deterministic: each case seeds torch with its own index, so reruns give identical files.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "diffusion_ops")

torch.set_num_threads(1)
cases = []  # (name, params dict, [(tensor name, tensor)])


def add(name, op, params, tensors):
    cases.append((name, dict(op=op, **params), tensors))


def seed(i):
    torch.manual_seed(1000 + i)


# ---- reference modules copied from DiffuSETS (PKUDigitalHealth/DiffuSETS) --------------------


class VAESelfAttention(nn.Module):
    """vae/vae_model.py SelfAttention: packed in_proj, softmax(q k^T / sqrt(d_head)) v, out_proj."""

    def __init__(self, n_heads, d_embed):
        super().__init__()
        self.in_proj = nn.Linear(d_embed, 3 * d_embed)
        self.out_proj = nn.Linear(d_embed, d_embed)
        self.n_heads = n_heads
        self.d_head = d_embed // n_heads

    def forward(self, x):
        batch_size, sequence_length, d_embed = x.shape
        interim_shape = (batch_size, sequence_length, self.n_heads, self.d_head)
        q, k, v = self.in_proj(x).chunk(3, dim=-1)
        q = q.view(interim_shape).transpose(1, 2)
        k = k.view(interim_shape).transpose(1, 2)
        v = v.view(interim_shape).transpose(1, 2)
        weight = q @ k.transpose(-1, -2)
        weight /= math.sqrt(self.d_head)
        weight = F.softmax(weight, dim=-1)
        output = (weight @ v).transpose(1, 2).reshape(x.shape)
        return self.out_proj(output)


def diffusets_time_table(number_of_diffusions, dim_embed):
    """unet/unet_conditional.py TimeEmbedding.embed_table: row i is the embedding of t = i + 1."""
    t = torch.arange(number_of_diffusions) + 1
    half_dim = dim_embed // 2
    emb = 10.0 / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim) * -emb)
    emb = t[:, None] * emb[None, :]
    return torch.cat((emb.sin(), emb.cos()), dim=-1)


# ---- cases ------------------------------------------------------------------------------------


def conv_case(i, name, c_in, c_out, kernel, stride, pad_left, pad_right, length, bias=True, same=False):
    seed(i)
    if same:  # the DiffuSETS U-Net's nn.Conv1d(..., padding="same") (odd kernels: (k-1)/2 each side)
        conv = nn.Conv1d(c_in, c_out, kernel, padding="same", bias=bias)
        assert pad_left == pad_right == (kernel - 1) // 2 and stride == 1
    elif pad_left == pad_right:
        conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad_left, bias=bias)
    else:  # the VAE encoder's F.pad(x, (0, 1)) before a stride-2 conv with padding 0
        conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=0, bias=bias)
    x = torch.randn(1, c_in, length)
    with torch.no_grad():
        xin = x if (same or pad_left == pad_right) else F.pad(x, (pad_left, pad_right))
        y = conv(xin)
    tensors = [("x", x[0]), ("w", conv.weight)]
    if bias:
        tensors.append(("b", conv.bias))
    tensors.append(("y", y[0]))
    add(name, "conv1d", dict(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride, pad_left=pad_left,
                             pad_right=pad_right, length=length, bias=int(bias),
                             q8=int((c_in * kernel) % 32 == 0)), tensors)


def conv_t_case(i, name, c_in, c_out, kernel, stride, padding, length, bias=True):
    seed(i)
    conv = nn.ConvTranspose1d(c_in, c_out, kernel, stride=stride, padding=padding, bias=bias)
    x = torch.randn(1, c_in, length)
    with torch.no_grad():
        y = conv(x)
    tensors = [("x", x[0]), ("w", conv.weight)]
    if bias:
        tensors.append(("b", conv.bias))
    tensors.append(("y", y[0]))
    add(name, "conv_transpose1d", dict(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride, padding=padding,
                                       length=length, bias=int(bias), q8=int((c_out * kernel) % 32 == 0)), tensors)


def group_norm_case(i, name, groups, channels, length, eps=1e-5, affine=True, offset=0.0):
    seed(i)
    gn = nn.GroupNorm(groups, channels, eps=eps, affine=affine)
    if affine:  # not the identity init, so gamma and beta are exercised
        with torch.no_grad():
            gn.weight.copy_(1 + 0.5 * torch.randn(channels))
            gn.bias.copy_(0.5 * torch.randn(channels))
    x = torch.randn(1, channels, length) * 2 + offset  # an offset tests the variance's cancellation
    with torch.no_grad():
        y = gn(x)
    tensors = [("x", x[0])]
    if affine:
        tensors += [("gamma", gn.weight), ("beta", gn.bias)]
    tensors.append(("y", y[0]))
    add(name, "group_norm", dict(groups=groups, channels=channels, length=length, eps=repr(eps),
                                 affine=int(affine)), tensors)


def linear_case(i, name, tokens, d_in, d_out, bias=True):
    seed(i)
    lin = nn.Linear(d_in, d_out, bias=bias)
    x = torch.randn(tokens, d_in)
    with torch.no_grad():
        y = lin(x)
    tensors = [("x", x), ("w", lin.weight)] + ([("b", lin.bias)] if bias else []) + [("y", y)]
    add(name, "linear", dict(tokens=tokens, **{"in": d_in}, out=d_out, bias=int(bias), q8=int(d_in % 32 == 0)),
        tensors)


def mha_tensors(mha, packed):
    if packed:
        t = [("in_proj_w", mha.in_proj_weight)]
    else:
        t = [("q_w", mha.q_proj_weight), ("k_w", mha.k_proj_weight), ("v_w", mha.v_proj_weight)]
    return t + [("in_proj_b", mha.in_proj_bias), ("out_w", mha.out_proj.weight), ("out_b", mha.out_proj.bias)]


def randomise_biases(mha):
    """nn.MultiheadAttention initialises its biases to zero; random ones test the bias paths."""
    with torch.no_grad():
        mha.in_proj_bias.copy_(0.3 * torch.randn_like(mha.in_proj_bias))
        mha.out_proj.bias.copy_(0.3 * torch.randn_like(mha.out_proj.bias))


def mha_case(i, name, tokens, keys, embed, heads, kdim, vdim, same_kv):
    seed(i)
    mha = nn.MultiheadAttention(embed, heads, kdim=kdim, vdim=vdim, batch_first=True)
    randomise_biases(mha)
    packed = mha._qkv_same_embed_dim
    query = torch.randn(1, tokens, embed)
    key = torch.randn(1, keys, kdim)
    value = key if same_kv else torch.randn(1, keys, vdim)
    with torch.no_grad():
        y, _ = mha(query, key, value, need_weights=False)
    tensors = [("query", query[0]), ("key", key[0])] + ([] if same_kv else [("value", value[0])])
    q8 = embed % 32 == 0 and kdim % 32 == 0 and vdim % 32 == 0
    add(name, "mha", dict(tokens=tokens, keys=keys, embed=embed, heads=heads, kdim=kdim, vdim=vdim,
                          packed=int(packed), same_kv=int(same_kv), q8=int(q8)),
        tensors + mha_tensors(mha, packed) + [("y", y[0])])


def cross_case(i, name, channels, length, keys, cond_dim, heads):
    seed(i)
    mha = nn.MultiheadAttention(channels, heads, kdim=cond_dim, vdim=cond_dim, batch_first=True)
    randomise_biases(mha)
    packed = mha._qkv_same_embed_dim
    x = torch.randn(1, channels, length)
    cond = torch.randn(1, keys, cond_dim)
    with torch.no_grad():
        y, _ = mha(x.transpose(1, 2), cond, cond, need_weights=False)
    add(name, "cross_attention", dict(channels=channels, length=length, keys=keys, cond_dim=cond_dim, heads=heads,
                                      packed=int(packed), q8=int(channels % 32 == 0 and cond_dim % 32 == 0)),
        [("x", x[0]), ("cond", cond[0])] + mha_tensors(mha, packed) + [("y", y[0].T)])


def build():
    n = iter(range(1000))
    # conv1d: the DiffuSETS U-Net (kernel 7 "same", widths s = (in + out) // 2, 4 x 128 latent),
    # its down-sampling (k3 s2 p1), the shortcut 1x1 conv, the VAE's k3 convs and right-padded
    # down-sampling, and general shapes (k5, no bias, odd lengths).
    conv_case(next(n), "conv_unet_in_4_6_k7", 4, 6, 7, 1, 3, 3, 128, same=True)        # level 0 pre-shortcut
    conv_case(next(n), "conv_unet_32_48_k7", 32, 48, 7, 1, 3, 3, 128, same=True)       # q8: 224 = 7 x 32
    conv_case(next(n), "conv_unet_64_96_k7", 64, 96, 7, 1, 3, 3, 16, same=True)        # level 4 pre-shortcut
    conv_case(next(n), "conv_96_32_k7", 96, 32, 7, 1, 3, 3, 16, same=True)                # rows of 672 = 21 x 32
    conv_case(next(n), "conv_unet_shortcut_k1", 96, 96, 1, 1, 0, 0, 16, same=True)
    conv_case(next(n), "conv_unet_down_k3s2", 64, 64, 3, 2, 1, 1, 16)                  # Conv1d(k3, s2, p1)
    conv_case(next(n), "conv_unet_out_4_4_k3", 4, 4, 3, 1, 1, 1, 128, same=True)       # output_conv.0
    conv_case(next(n), "conv_vae_k3_64", 64, 64, 3, 1, 1, 1, 160)
    conv_case(next(n), "conv_vae_down_rpad", 32, 32, 3, 2, 0, 1, 64)                   # F.pad (0, 1) + s2
    conv_case(next(n), "conv_vae_in_12_128", 12, 128, 3, 1, 1, 1, 64)                 # 36: f32 only
    conv_case(next(n), "conv_k5_s2_nobias_odd", 32, 24, 5, 2, 2, 2, 37, bias=False)
    conv_case(next(n), "conv_k7_s2_len9", 32, 16, 7, 2, 3, 3, 9)                       # window > half the input
    conv_case(next(n), "conv_bottleneck_k3_len2", 128, 64, 3, 1, 1, 1, 2)
    # conv_transpose1d: the U-Net's up-sampling ConvTranspose1d(k4, s2, p1), and a general one.
    conv_t_case(next(n), "convt_unet_k4s2p1", 64, 64, 4, 2, 1, 8)
    conv_t_case(next(n), "convt_unet_k4s2p1_len2", 32, 32, 4, 2, 1, 2)
    conv_t_case(next(n), "convt_k3s2p0_nobias", 16, 24, 3, 2, 0, 5, bias=False)
    conv_t_case(next(n), "convt_k5s3p2", 8, 12, 5, 3, 2, 6)
    # nearest up-sampling (the VAE decoder's nn.Upsample(scale_factor=2))
    i = next(n)
    seed(i)
    x = torch.randn(1, 16, 33)
    with torch.no_grad():
        y = nn.Upsample(scale_factor=2)(x)
    add("upsample_x2", "upsample_nearest", dict(channels=16, length=33, factor=2), [("x", x[0]), ("y", y[0])])
    # GroupNorm: DiffuSETS U-Net GroupNorm(1, C), VAE GroupNorm(32, C), no affine, large mean.
    group_norm_case(next(n), "gn1_96", 1, 96, 16)
    group_norm_case(next(n), "gn1_6_len128", 1, 6, 128)
    group_norm_case(next(n), "gn32_128_len136", 32, 128, 136)     # >= 16384 values: threaded
    group_norm_case(next(n), "gn32_64_offset", 32, 64, 40, offset=30.0)
    group_norm_case(next(n), "gn4_12_noaffine_eps1e-6", 4, 12, 50, eps=1e-6, affine=False)
    # LayerNorm over channels at each position (token-major): the U-Net's attention norms.
    i = next(n)
    seed(i)
    ln = nn.LayerNorm(96)
    with torch.no_grad():
        ln.weight.copy_(1 + 0.5 * torch.randn(96))
        ln.bias.copy_(0.5 * torch.randn(96))
        x = torch.randn(176, 96) * 3 + 1  # >= 16384 values: the C op runs threaded
        y = ln(x)
    add("layer_norm_96", "layer_norm", dict(tokens=176, dim=96, eps=repr(1e-5)),
        [("x", x), ("gamma", ln.weight), ("beta", ln.bias), ("y", y)])
    # activations over [-30, 30] (Mish's and SiLU's tails) and a dense band around 0
    i = next(n)
    seed(i)
    x = torch.cat([torch.linspace(-30, 30, 1201), torch.randn(2895) * 3])
    for op, fn in (("silu", F.silu), ("gelu", F.gelu), ("mish", F.mish)):
        add(op + "_4096", op, dict(n=x.numel()), [("x", x), ("y", fn(x))])
    # linear: the timestep MLP (64 -> 128 -> C), the condition combiner's odd width (D + 3)
    linear_case(next(n), "linear_temb_fc1", 1, 64, 128)
    linear_case(next(n), "linear_temb_fc2", 1, 128, 96)
    linear_case(next(n), "linear_tokens_nobias", 24, 96, 40, bias=False)
    linear_case(next(n), "linear_cond_odd", 1, 67, 48)
    # timestep embeddings
    ts = torch.tensor([0, 1, 2, 37, 500, 999, 1000], dtype=torch.int64)
    table = diffusets_time_table(1000, 64)
    add("temb_diffusets_64", "timestep_embedding",
        dict(dim=64, log_max_period=repr(10.0), shift=repr(1.0), flip=0, count=6, form="diffusets"),
        [("t", ts[1:].float()), ("y", table[ts[1:] - 1])])  # row i is t = i + 1: t in 1..1000
    for name, dim, flip, shift in (("temb_diffusers_128", 128, False, 1.0), ("temb_sd_320_flip", 320, True, 0.0),
                                   ("temb_odd_33", 33, False, 1.0)):
        t = torch.tensor([0.0, 1.0, 2.5, 37.0, 500.0, 999.0, 1000.0])
        y = get_timestep_embedding(t, dim, flip_sin_to_cos=flip, downscale_freq_shift=shift)
        add(name, "timestep_embedding",
            dict(dim=dim, log_max_period=repr(math.log(10000)), shift=repr(shift), flip=int(flip), count=t.numel(),
                 form="diffusers"), [("t", t), ("y", y)])
    # attention
    mha_case(next(n), "mha_packed_distinct", 16, 16, 32, 4, 32, 32, same_kv=False)   # DiffuSETS inner MHA
    mha_case(next(n), "mha_packed_16x8", 16, 16, 16, 8, 16, 16, same_kv=False)      # hidden 16, 8 heads
    mha_case(next(n), "mha_kvdim", 12, 7, 32, 4, 64, 96, same_kv=False)
    i = next(n)
    seed(i)
    vae_attn = VAESelfAttention(1, 64)
    x = torch.randn(1, 64, 32)
    with torch.no_grad():
        vae_attn.in_proj.bias.copy_(0.3 * torch.randn(192))
        y = vae_attn(x.transpose(-1, -2)).transpose(-1, -2)
    add("self_attn_vae_64", "self_attention", dict(channels=64, length=32, heads=1, q8=1),
        [("x", x[0]), ("in_proj_w", vae_attn.in_proj.weight), ("in_proj_b", vae_attn.in_proj.bias),
         ("out_w", vae_attn.out_proj.weight), ("out_b", vae_attn.out_proj.bias), ("y", y[0])])
    i = next(n)
    seed(i)
    mha = nn.MultiheadAttention(64, 8, batch_first=True)
    randomise_biases(mha)
    x = torch.randn(1, 64, 24)
    with torch.no_grad():
        xt = x.transpose(1, 2)
        y, _ = mha(xt, xt, xt, need_weights=False)
    add("self_attn_mh_64x8", "self_attention", dict(channels=64, length=24, heads=8, q8=1),
        [("x", x[0])] + mha_tensors(mha, True) + [("y", y[0].T)])
    cross_case(next(n), "cross_attn_m5", 32, 16, 5, 96, 4)
    cross_case(next(n), "cross_attn_one_token", 32, 16, 1, 96, 4)
    cross_case(next(n), "cross_attn_one_token_packed", 32, 16, 1, 32, 4)


def main():
    build()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    lines = ["# Written by Tools/reference/make_diffusion_op_fixtures.py (torch %s); see that file for the format."
             % torch.__version__]
    total = 0
    for name, params, tensors in cases:
        blobs = []
        fields = [name] + ["%s=%s" % kv for kv in params.items()]
        for tname, t in tensors:
            a = np.ascontiguousarray(t.detach().to(torch.float32).numpy(), dtype="<f4")
            fields.append("@%s=%s" % (tname, ",".join(str(d) for d in a.shape)))
            blobs.append(a.tobytes())
        data = b"".join(blobs)
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(data)
        total += len(data)
        lines.append(" ".join(fields))
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%d cases, %d bytes of tensors in %s" % (len(cases), total, OUT))


if __name__ == "__main__":
    main()
