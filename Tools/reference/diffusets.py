"""DiffuSETS networks in PyTorch: the reference ("oracle") for the C diffusion runtime.

Our own implementation of the two networks of DiffuSETS (PKUDigitalHealth/DiffuSETS), written
from the architecture facts in ../shared/DIFFUSETS.md and from reading the published module
definitions (vae/vae_model.py, unet/unet_conditional.py). The modules here produce state_dicts
whose key names and shapes are exactly those of the published checkpoints, so a released
checkpoint loads into them with strict=True, and they compute the same function.

  UNetConfig / ConditionalUNet   the conditional 1-D U-Net over the 4 x 128 VAE latent
  VAEConfig / VAEEncoder / VAEDecoder
                                 the 1-D port of the Stable Diffusion VAE (12 x 1024 <-> 4 x 128)

Tensor layout: channels-major (B, C, L) everywhere, also at the VAE's outer interface. (The
published VAE_Encoder takes (B, L, 12) and VAE_Decoder returns (B, L, 12): they transpose at
their borders. Our modules do not; the weights are the same.)

The U-Net's condition is one vector per sample, c = [text embedding (D), sex, age, heart rate]
of length D + 3 (the published forward receives the text embedding as (B, 1, D) and the three
scalars as a dict {'gender', 'age', 'heart rate'} of (B, 1, 1) tensors and concatenates them in
that order; ConditionalUNet.forward takes the concatenation (B, D + 3)).

Facts that differ from the shortest reading of the published code (all reproduced here):
  * Every Block owns a stride-2 conv `down` that is never used (the DownsamplingBlock's own
    `down` is the one applied); the unused one is in the checkpoint.
  * The cross-attention's keys are the same vector repeated over the sequence, so its softmax is
    uniform: the layer reduces to x + to_out(out_proj(W_v to_v(cond') + b_v)) with
    cond' = LayerNorm(value_combiner(c)). `reduced_cross_attention()` computes that form; the
    forward pass runs the full attention, as published.
  * The time-embedding table `time_emb.embeddings` (train_steps x 64, requires_grad False) is a
    Parameter, so it is in every block's state_dict (13 copies of the same table at 7 levels).
  * The VAE attention block's GroupNorm is in the checkpoint but never applied.
  * The published U-Net code in tuhlnaa/DiffuSETS_Exp-Extended has per-level lists
    heads [8, 8, 4, 4, 4, 4, 8, 8] / hidden [16, 16, 16, 32, 32, 16, 16, 16] that only suffice for
    num_levels <= 5 (level 7 raises IndexError); the 7-level release uses 8 heads and hidden =
    2 x block input width (the form in ../shared/DIFFUSETS.md). Both are expressible here:
    UNetConfig(heads=..., hidden=...) take an int / None or a per-block list.

Run this file to print parameter counts and run the self-checks:
  /opt/uniecg-venv/bin/python Tools/reference/diffusets.py
"""
import math
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

LATENT_SCALE = 0.18215
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


# ------------------------------------------------------------------------------------------------
# U-Net


@dataclass
class UNetConfig:
    channels: int = 4            # latent channels = width of the first level ("n_channels")
    levels: int = 7              # num_levels: levels - 1 down blocks, bottleneck, levels - 1 up
    kernel: int = 7              # kernel of the blocks' two wide convolutions
    cond_dim: int = 1536         # D, the text-embedding width; the condition is D + extra
    extra_conditions: int = 3    # sex, age, heart rate
    train_steps: int = 1000      # rows of the time-embedding table
    time_dim: int = 64           # sinusoid width (32 sin + 32 cos)
    time_hidden: int = 128       # fc1 output
    time_constant: float = 10.0  # frequencies exp(-i * constant / (time_dim / 2 - 1))
    # attention of the 2 * (levels - 1) blocks (down blocks first, then up blocks): an int for
    # every block, or a list; hidden=None means 2 x the block's input width (the release)
    heads: Union[int, List[int]] = 8
    hidden: Union[None, int, List[int]] = None
    bottleneck_heads: int = 4
    bottleneck_hidden: int = 32
    bottleneck_kernel: int = 3
    latent_length: int = 128

    def widths(self):
        """(in, out) of each down block and each up block, the bottleneck width and the
        transposed-convolution width of each up block."""
        L, c = self.levels, self.channels
        if L < 3:
            raise ValueError("levels must be at least 3")
        down_in = [c * 2 ** i for i in range(L - 1)]
        down_out = [2 * w for w in down_in]
        up_out = [down_out[L - 2 - j] // 2 for j in range(L - 1)]
        # the first up block sees only the bottleneck output; the others the up-sampled previous
        # output concatenated with the matching skip (the deepest skip is dropped)
        up_in = [down_out[L - 2]] + [up_out[j - 1] + down_out[L - 2 - j] for j in range(1, L - 1)]
        up_conv = [up_in[0]] + [w // 2 for w in up_in[1:]]
        for j in range(1, L - 1):
            assert up_conv[j] == up_out[j - 1], "inconsistent up-path widths"
        bottleneck = up_in[1]
        assert bottleneck == down_out[L - 2]
        return down_in, down_out, up_in, up_out, up_conv, bottleneck

    def block_attention(self):
        """(heads, hidden) of every block, down blocks then up blocks."""
        down_in, _, up_in, _, _, _ = self.widths()
        n = 2 * (self.levels - 1)
        ins = down_in + up_in
        heads = self.heads if isinstance(self.heads, list) else [self.heads] * n
        if self.hidden is None:
            hidden = [2 * w for w in ins]
        elif isinstance(self.hidden, list):
            hidden = self.hidden
        else:
            hidden = [self.hidden] * n
        if len(heads) < n or len(hidden) < n:
            raise ValueError(f"need {n} heads / hidden entries, have {len(heads)} / {len(hidden)}")
        for h, d in zip(heads[:n], hidden[:n]):
            if d % h:
                raise ValueError(f"hidden {d} not divisible by {h} heads")
        return list(heads[:n]), list(hidden[:n])

    def to_dict(self):
        down_in, down_out, up_in, up_out, up_conv, bottleneck = self.widths()
        heads, hidden = self.block_attention()
        d = asdict(self)
        d.update(derived=dict(down_in=down_in, down_out=down_out, up_in=up_in, up_out=up_out,
                              up_conv=up_conv, bottleneck=bottleneck,
                              block_width=[(i + o) // 2 for i, o in zip(down_in + up_in, down_out + up_out)],
                              block_heads=heads, block_hidden=hidden,
                              cond_length=self.cond_dim + self.extra_conditions))
        return d


def time_table(steps, dim=64, constant=10.0):
    """The fixed DiffuSETS sinusoid table: row t holds [sin((t+1) f_i), cos((t+1) f_i)],
    f_i = exp(-i * constant / (dim/2 - 1)), i < dim/2. Computed in float32 with the same
    torch operations, in the same order, as the published module builds its table."""
    half = dim // 2
    step = constant / (half - 1)
    freqs = torch.exp(torch.arange(half) * -step)
    args = (torch.arange(steps) + 1)[:, None] * freqs[None, :]
    return torch.cat((args.sin(), args.cos()), dim=-1)


class TimeMLP(nn.Module):
    """Per-block time embedding: table row -> fc1 -> Mish -> fc2 -> one value per channel."""

    def __init__(self, steps, out_channels, dim=64, hidden=128, constant=10.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out_channels)
        self.embeddings = nn.Parameter(time_table(steps, dim, constant), requires_grad=False)

    def forward(self, t):
        return self.fc2(F.mish(self.fc1(self.embeddings[t])))


class SelfAttn(nn.Module):
    """Token-major: LayerNorm, separate q/k/v projections to `hidden`, a multi-head attention
    with its own packed in-projection and out-projection, projection back, residual."""

    def __init__(self, width, hidden, heads):
        super().__init__()
        self.to_q = nn.Linear(width, hidden)
        self.to_k = nn.Linear(width, hidden)
        self.to_v = nn.Linear(width, hidden)
        self.to_out = nn.Linear(hidden, width)
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.norm = nn.LayerNorm(width)

    def forward(self, x):
        n = self.norm(x)
        h = self.attention(self.to_q(n), self.to_k(n), self.to_v(n), need_weights=False)[0]
        return x + self.to_out(h)


class CondCrossAttn(nn.Module):
    """Cross-attention to the one-token condition, as published: the condition is projected to
    the block width, repeated over the sequence and normalised; it supplies keys and values."""

    def __init__(self, width, hidden, heads, cond_length):
        super().__init__()
        self.to_q = nn.Linear(width, hidden)
        self.to_k = nn.Linear(width, hidden)
        self.to_v = nn.Linear(width, hidden)
        self.to_out = nn.Linear(hidden, width)
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.normalization = nn.LayerNorm(width)
        self.value_combiner = nn.Linear(cond_length, width)
        self.condition_normalization = nn.LayerNorm(width)

    def condition_tokens(self, cond, length):
        # cond (B, D+3) -> (B, length, width): one projected token repeated `length` times
        token = self.value_combiner(cond[:, None, :])
        return self.condition_normalization(token.repeat(1, length, 1))

    def forward(self, x, cond):
        q = self.to_q(self.normalization(x))
        c = self.condition_tokens(cond, x.shape[1])
        h = self.attention(q, self.to_k(c), self.to_v(c), need_weights=False)[0]
        return x + self.to_out(h)

    def reduced(self, cond):
        """The vector the layer adds at every position (uniform softmax over identical keys):
        to_out(out_proj(W_v to_v(cond') + b_v)), (B, width)."""
        c = self.condition_normalization(self.value_combiner(cond))
        e = self.attention.embed_dim
        v = F.linear(self.to_v(c), self.attention.in_proj_weight[2 * e:], self.attention.in_proj_bias[2 * e:])
        return self.to_out(self.attention.out_proj(v))


class Block(nn.Module):
    """One U-Net level's block, width s = (cin + cout) // 2."""

    def __init__(self, cin, cout, cfg: UNetConfig, heads, hidden):
        super().__init__()
        s = (cin + cout) // 2
        k = cfg.kernel
        self.pre_shortcut_convs = nn.Conv1d(cin, s, k, padding="same")
        self.shortcut_convs = nn.Conv1d(s, s, 1)
        self.post_shortcut_convs = nn.Conv1d(s, cout, k, padding="same")
        self.down = nn.Conv1d(cout, cout, 3, stride=2, padding=1)  # in the checkpoint, never used
        self.layer_norm1 = nn.GroupNorm(1, s)
        self.layer_norm2 = nn.GroupNorm(1, cout)
        self.res_conv = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        self.self_attention = SelfAttn(s, hidden, heads)
        self.cross_attention = CondCrossAttn(s, hidden, heads, cfg.cond_dim + cfg.extra_conditions)
        self.attention_norm = nn.LayerNorm(s)
        self.time_emb = TimeMLP(cfg.train_steps, cin, cfg.time_dim, cfg.time_hidden, cfg.time_constant)

    def forward(self, x, t, cond, trace=None):
        h = x + self.time_emb(t)[:, :, None]
        _note(trace, "time_added", h)
        h = self.pre_shortcut_convs(h)
        _note(trace, "pre_conv", h)
        h = self.shortcut_convs(F.mish(self.layer_norm1(h)))
        _note(trace, "shortcut_conv", h)
        h = h.transpose(1, 2)
        h = self.self_attention(h)
        _note(trace, "self_attention", h.transpose(1, 2))
        h = self.cross_attention(h, cond)
        _note(trace, "cross_attention", h.transpose(1, 2))
        h = self.attention_norm(h).transpose(1, 2)
        _note(trace, "attention_norm", h)
        out = F.mish(self.layer_norm2(self.post_shortcut_convs(h))) + self.res_conv(x)
        _note(trace, "block_out", out)
        return out


def _note(trace, name, value):
    if trace is not None:
        trace.append((name, value.detach().clone()))


class DownBlock(nn.Module):
    def __init__(self, cin, cout, cfg, heads, hidden):
        super().__init__()
        self.down = nn.Conv1d(cout, cout, 3, stride=2, padding=1)
        self.block = Block(cin, cout, cfg, heads, hidden)

    def forward(self, x, t, cond, trace=None):
        skip = self.block(x, t, cond, trace)
        out = self.down(skip)
        _note(trace, "down_out", out)
        return skip, out


class UpBlock(nn.Module):
    def __init__(self, cin, cout, up_width, cfg, heads, hidden):
        super().__init__()
        self.block = Block(cin, cout, cfg, heads, hidden)
        self.up = nn.ConvTranspose1d(up_width, up_width, 4, stride=2, padding=1)

    def forward(self, x, skip, t, cond):
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.block(x, t, cond)


class Bottleneck(nn.Module):
    def __init__(self, width, cfg: UNetConfig):
        super().__init__()
        k = cfg.bottleneck_kernel
        self.time_emb = TimeMLP(cfg.train_steps, width, cfg.time_dim, cfg.time_hidden, cfg.time_constant)
        self.bottleneck_conv1 = nn.Conv1d(width, width, k, padding="same")
        self.bottleneck_conv1_2 = nn.Conv1d(width, width, k, padding="same")
        self.bottleneck_conv2 = nn.Conv1d(width, width, k, padding="same")
        self.bottleneck_layer_norm1 = nn.GroupNorm(1, width)
        self.bottleneck_layer_norm2 = nn.GroupNorm(1, width)
        self.attention_norm = nn.LayerNorm(width)
        self.self_attention = SelfAttn(width, cfg.bottleneck_hidden, cfg.bottleneck_heads)
        self.cross_attention = CondCrossAttn(width, cfg.bottleneck_hidden, cfg.bottleneck_heads,
                                             cfg.cond_dim + cfg.extra_conditions)

    def forward(self, x, t, cond):
        h = x + self.time_emb(t)[:, :, None]
        h = self.bottleneck_conv1_2(F.mish(self.bottleneck_layer_norm1(self.bottleneck_conv1(h))))
        h = h.transpose(1, 2)
        h = self.attention_norm(self.cross_attention(self.self_attention(h), cond)).transpose(1, 2)
        return x + F.mish(self.bottleneck_layer_norm2(self.bottleneck_conv2(h)))


class ConditionalUNet(nn.Module):
    """eps = UNet(x (B, C, L), t (B,) int64 in [0, train_steps), cond (B, D + 3))."""

    def __init__(self, cfg: Optional[UNetConfig] = None):
        super().__init__()
        cfg = cfg or UNetConfig()
        if cfg.kernel % 2 != 1:
            raise ValueError("kernel must be odd")
        self.cfg = cfg
        down_in, down_out, up_in, up_out, up_conv, width = cfg.widths()
        heads, hidden = cfg.block_attention()
        n = cfg.levels - 1
        self.downsampling_blocks = nn.ModuleList(
            DownBlock(down_in[i], down_out[i], cfg, heads[i], hidden[i]) for i in range(n))
        self.bottelneck = Bottleneck(width, cfg)  # (sic) the published spelling
        self.upsampling_blocks = nn.ModuleList(
            UpBlock(up_in[j], up_out[j], up_conv[j], cfg, heads[n + j], hidden[n + j]) for j in range(n))
        self.output_conv = nn.Sequential(nn.Conv1d(up_out[-1], cfg.channels, 3, padding="same"), nn.Mish(),
                                         nn.Conv1d(cfg.channels, cfg.channels, 1))

    def forward(self, x, t, cond, trace=None):
        """trace: optional list receiving (name, tensor) intermediates of the first down block."""
        if cond.shape[-1] != self.cfg.cond_dim + self.cfg.extra_conditions:
            raise ValueError(f"condition width {cond.shape[-1]}")
        skips = []
        h = x
        for i, blk in enumerate(self.downsampling_blocks):
            skip, h = blk(h, t, cond, trace if i == 0 else None)
            skips.append(skip)
        skips.pop()  # the deepest skip is not used
        h = self.bottelneck(h, t, cond)
        for j, blk in enumerate(self.upsampling_blocks):
            h = blk(h, skips[-j] if j > 0 else None, t, cond)
        return self.output_conv(h)

    def blocks(self):
        """Every attention-carrying block in order: down blocks, bottleneck, up blocks."""
        return ([b.block for b in self.downsampling_blocks] + [self.bottelneck]
                + [b.block for b in self.upsampling_blocks])


# ------------------------------------------------------------------------------------------------
# VAE


@dataclass
class VAEConfig:
    signal_channels: int = 12
    latent_channels: int = 4
    widths: Sequence[int] = (128, 256, 512)   # finest to coarsest level
    groups: int = 32                           # GroupNorm groups
    scale: float = LATENT_SCALE
    logvar_min: float = LOGVAR_MIN
    logvar_max: float = LOGVAR_MAX

    def to_dict(self):
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d


class ResBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.groupnorm_1 = nn.GroupNorm(groups, cin)
        self.conv_1 = nn.Conv1d(cin, cout, 3, padding=1)
        self.groupnorm_2 = nn.GroupNorm(groups, cout)
        self.conv_2 = nn.Conv1d(cout, cout, 3, padding=1)
        self.residual_layer = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv_1(F.silu(self.groupnorm_1(x)))
        h = self.conv_2(F.silu(self.groupnorm_2(h)))
        return h + self.residual_layer(x)


class SingleHeadAttention(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.in_proj = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x):  # token-major (B, L, C)
        q, k, v = self.in_proj(x).chunk(3, dim=-1)
        w = q @ k.transpose(-1, -2)
        w = w / math.sqrt(x.shape[-1])
        return self.out_proj(torch.softmax(w, dim=-1) @ v)


class AttnBlock(nn.Module):
    def __init__(self, width, groups):
        super().__init__()
        self.groupnorm = nn.GroupNorm(groups, width)  # in the checkpoint, never applied
        self.attention = SingleHeadAttention(width)

    def forward(self, x):
        return x + self.attention(x.transpose(1, 2)).transpose(1, 2)


class _Stride2(nn.Conv1d):
    """The encoder's down-sampling conv: k3, stride 2, no padding, after a right pad of 1."""

    def forward(self, x):
        return super().forward(F.pad(x, (0, 1)))


class VAEEncoder(nn.Sequential):
    """(B, 12, L) -> z (B, 4, L/8) scaled by 0.18215, plus mean and clamped log-variance.
    Children numbered as the published nn.Sequential (no keys at the SiLU index)."""

    def __init__(self, cfg: Optional[VAEConfig] = None):
        cfg = cfg or VAEConfig()
        a, b, c = cfg.widths
        g = cfg.groups
        super().__init__(
            nn.Conv1d(cfg.signal_channels, a, 3, padding=1),
            ResBlock(a, a, g), ResBlock(a, a, g),
            _Stride2(a, a, 3, stride=2),
            ResBlock(a, b, g), ResBlock(b, b, g),
            _Stride2(b, b, 3, stride=2),
            ResBlock(b, c, g), ResBlock(c, c, g),
            _Stride2(c, c, 3, stride=2),
            ResBlock(c, c, g), ResBlock(c, c, g), ResBlock(c, c, g),
            AttnBlock(c, g),
            ResBlock(c, c, g),
            nn.GroupNorm(g, c), nn.SiLU(),
            nn.Conv1d(c, 2 * cfg.latent_channels, 3, padding=1),
            nn.Conv1d(2 * cfg.latent_channels, 2 * cfg.latent_channels, 1),
        )
        self.cfg = cfg

    def forward(self, x, noise):
        """noise: (B, 4, L/8) standard normals (required: the oracle never draws its own)."""
        h = x
        for m in self:
            h = m(h)
        mean, logvar = torch.chunk(h, 2, dim=1)
        logvar = torch.clamp(logvar, self.cfg.logvar_min, self.cfg.logvar_max)
        std = logvar.exp().sqrt()
        z = (mean + std * noise) * self.cfg.scale
        return z, mean, logvar


class VAEDecoder(nn.Sequential):
    """z (B, 4, L/8) -> (B, 12, L). Divides a copy of z by 0.18215 (the published module divides
    its argument in place)."""

    def __init__(self, cfg: Optional[VAEConfig] = None):
        cfg = cfg or VAEConfig()
        a, b, c = cfg.widths
        g = cfg.groups
        lat = cfg.latent_channels
        super().__init__(
            nn.Conv1d(lat, lat, 1),
            nn.Conv1d(lat, c, 3, padding=1),
            ResBlock(c, c, g), AttnBlock(c, g), ResBlock(c, c, g),
            ResBlock(c, c, g), ResBlock(c, c, g), ResBlock(c, c, g),
            nn.Upsample(scale_factor=2), nn.Conv1d(c, c, 3, padding=1),
            ResBlock(c, c, g), ResBlock(c, c, g), ResBlock(c, c, g),
            nn.Upsample(scale_factor=2), nn.Conv1d(c, c, 3, padding=1),
            ResBlock(c, b, g), ResBlock(b, b, g), ResBlock(b, b, g),
            nn.Upsample(scale_factor=2), nn.Conv1d(b, b, 3, padding=1),
            ResBlock(b, a, g), ResBlock(a, a, g), ResBlock(a, a, g),
            nn.GroupNorm(g, a), nn.SiLU(),
            nn.Conv1d(a, cfg.signal_channels, 3, padding=1),
        )
        self.cfg = cfg

    def forward(self, z):
        h = z / self.cfg.scale
        for m in self:
            h = m(h)
        return h


# ------------------------------------------------------------------------------------------------
# Parameter counts and the published key list


def count(module, trainable_only=True):
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameter_report(unet_cfg=None, vae_cfg=None, out=print, include_vae=True):
    unet_cfg = unet_cfg or UNetConfig()
    vae_cfg = vae_cfg or VAEConfig()
    with torch.device("meta"):
        u = ConditionalUNet(unet_cfg)
        enc = VAEEncoder(vae_cfg)
        dec = VAEDecoder(vae_cfg)
    tables = sum(m.embeddings.numel() for m in u.modules() if isinstance(m, TimeMLP))
    unused = sum(b.down.weight.numel() + b.down.bias.numel() for b in
                 [d.block for d in u.downsampling_blocks] + [x.block for x in u.upsampling_blocks])
    cross_qk = 0
    for blk in u.blocks():
        ca = blk.cross_attention
        e = ca.attention.embed_dim
        cross_qk += sum(p.numel() for p in (ca.to_q.weight, ca.to_q.bias, ca.to_k.weight, ca.to_k.bias,
                                            ca.normalization.weight, ca.normalization.bias))
        cross_qk += 2 * e * e + 2 * e  # q and k rows of the packed in-projection
    r = dict(unet_trainable=count(u), unet_tables=tables, unet_unused_block_down=unused,
             unet_unused_cross_qk=cross_qk)
    out(f"U-Net (D={unet_cfg.cond_dim}, levels {unet_cfg.levels}, kernel {unet_cfg.kernel}): "
        f"{r['unet_trainable']:,} trainable parameters (+ {tables:,} in the fixed time tables; "
        f"{unused:,} in the blocks' unused `down` convs, {cross_qk:,} in cross-attention q/k paths)")
    if include_vae:
        r.update(vae_encoder=count(enc), vae_decoder=count(dec),
                 vae_unused_attn_groupnorm=sum(p.numel() for m in list(enc) + list(dec) if isinstance(m, AttnBlock)
                                               for p in m.groupnorm.parameters()))
        out(f"VAE encoder {r['vae_encoder']:,}, decoder {r['vae_decoder']:,} parameters "
            f"(widths {list(vae_cfg.widths)}, groups {vae_cfg.groups})")
    return r


def state_shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def expected_unet_keys(levels=7, mha_keys=("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")):
    """The U-Net checkpoint's key names, spelled out from our reading of the published module
    definitions (independent of the classes above)."""
    lin = ("weight", "bias")

    def attn(prefix, cross):
        keys = [f"{prefix}.{p}.{w}" for p in ("to_q", "to_k", "to_v", "to_out") for w in lin]
        keys += [f"{prefix}.attention.{m}" for m in mha_keys]
        norms = ("normalization", "condition_normalization") if cross else ("norm",)
        keys += [f"{prefix}.{n}.{w}" for n in norms for w in lin]
        if cross:
            keys += [f"{prefix}.value_combiner.{w}" for w in lin]
        return keys

    def time(prefix):
        return [f"{prefix}.time_emb.embeddings"] + [f"{prefix}.time_emb.{f}.{w}" for f in ("fc1", "fc2") for w in lin]

    def block(prefix):
        keys = [f"{prefix}.{m}.{w}" for m in ("pre_shortcut_convs", "shortcut_convs", "post_shortcut_convs", "down",
                                             "layer_norm1", "layer_norm2", "res_conv", "attention_norm") for w in lin]
        return keys + attn(prefix + ".self_attention", False) + attn(prefix + ".cross_attention", True) + time(prefix)

    keys = []
    for i in range(levels - 1):
        keys += [f"downsampling_blocks.{i}.down.{w}" for w in lin] + block(f"downsampling_blocks.{i}.block")
        keys += [f"upsampling_blocks.{i}.up.{w}" for w in lin] + block(f"upsampling_blocks.{i}.block")
    b = "bottelneck"
    keys += [f"{b}.{m}.{w}" for m in ("bottleneck_conv1", "bottleneck_conv1_2", "bottleneck_conv2",
                                       "bottleneck_layer_norm1", "bottleneck_layer_norm2", "attention_norm")
             for w in lin]
    keys += attn(b + ".self_attention", False) + attn(b + ".cross_attention", True) + time(b)
    keys += [f"output_conv.{i}.{w}" for i in (0, 2) for w in lin]
    return set(keys)


def expected_vae_keys(decoder):
    lin = ("weight", "bias")
    res = ("groupnorm_1", "conv_1", "groupnorm_2", "conv_2")
    if decoder:
        plain = (0, 1, 9, 14, 19, 23, 25)
        resblocks = (2, 4, 5, 6, 7, 10, 11, 12, 15, 16, 17, 20, 21, 22)
        projected = (15, 20)  # width changes 512 -> 256 and 256 -> 128: residual 1x1 conv
        attn = (3,)
    else:
        plain = (0, 3, 6, 9, 15, 17, 18)
        resblocks = (1, 2, 4, 5, 7, 8, 10, 11, 12, 14)
        projected = (4, 7)
        attn = (13,)
    keys = [f"{i}.{w}" for i in plain for w in lin]
    keys += [f"{i}.{m}.{w}" for i in resblocks for m in res for w in lin]
    keys += [f"{i}.residual_layer.{w}" for i in projected for w in lin]
    keys += [f"{i}.{m}.{w}" for i in attn for m in ("groupnorm", "attention.in_proj", "attention.out_proj") for w in lin]
    return set(keys)


def self_check(verbose=True):
    """Key names against the list spelled out above, shapes against DIFFUSETS.md's examples, the
    cross-attention reduction and a strict round trip of a state_dict."""
    say = print if verbose else (lambda *a: None)
    with torch.device("meta"):
        u = ConditionalUNet(UNetConfig())
        enc, dec = VAEEncoder(), VAEDecoder()
    us, es, ds = state_shapes(u), state_shapes(enc), state_shapes(dec)
    assert set(us) == expected_unet_keys(7), sorted(set(us) ^ expected_unet_keys(7))
    assert set(es) == expected_vae_keys(False), sorted(set(es) ^ expected_vae_keys(False))
    assert set(ds) == expected_vae_keys(True), sorted(set(ds) ^ expected_vae_keys(True))
    # examples quoted in DIFFUSETS.md / read off the published definitions
    assert ds["1.weight"] == (512, 4, 3)
    assert ds["3.attention.in_proj.weight"] == (1536, 512)
    assert ds["25.weight"] == (12, 128, 3)
    assert ds["15.residual_layer.weight"] == (256, 512, 1) and ds["20.residual_layer.weight"] == (128, 256, 1)
    assert es["0.weight"] == (128, 12, 3) and es["17.weight"] == (8, 512, 3) and es["18.weight"] == (8, 8, 1)
    assert us["downsampling_blocks.0.block.pre_shortcut_convs.weight"] == (6, 4, 7)
    assert us["downsampling_blocks.5.block.post_shortcut_convs.weight"] == (256, 192, 7)
    assert us["downsampling_blocks.0.block.time_emb.embeddings"] == (1000, 64)
    assert us["downsampling_blocks.0.block.time_emb.fc2.weight"] == (4, 128)
    assert us["downsampling_blocks.0.block.cross_attention.value_combiner.weight"] == (6, 1539)
    assert us["downsampling_blocks.0.block.self_attention.attention.in_proj_weight"] == (24, 8)
    assert us["downsampling_blocks.0.block.down.weight"] == (8, 8, 3)
    assert us["bottelneck.bottleneck_conv1.weight"] == (256, 256, 3)
    assert us["bottelneck.self_attention.to_q.weight"] == (32, 256)
    assert us["upsampling_blocks.0.up.weight"] == (256, 256, 4)
    assert us["upsampling_blocks.1.up.weight"] == (128, 128, 4)
    assert us["upsampling_blocks.1.block.pre_shortcut_convs.weight"] == (160, 256, 7)
    assert us["upsampling_blocks.5.block.pre_shortcut_convs.weight"] == (10, 16, 7)
    assert us["output_conv.0.weight"] == (4, 4, 3) and us["output_conv.2.weight"] == (4, 4, 1)
    say(f"key names: U-Net {len(us)}, VAE encoder {len(es)}, decoder {len(ds)} keys match the published naming")

    # small real modules: strict round trip, the cross-attention reduction, the time table
    torch.manual_seed(0)
    cfg = UNetConfig(levels=4, cond_dim=16, heads=2)
    net = ConditionalUNet(cfg).eval()
    again = ConditionalUNet(cfg)
    again.load_state_dict(net.state_dict(), strict=True)
    x, t, c = torch.randn(2, 4, 128), torch.tensor([5, 900]), torch.randn(2, 19)
    with torch.no_grad():
        assert torch.equal(net(x, t, c), again.eval()(x, t, c))
        for blk in net.blocks():
            ca = blk.cross_attention
            h = torch.randn(2, 17, ca.to_q.in_features)
            full = ca(h, c)
            red = h + ca.reduced(c)[:, None, :]
            assert torch.allclose(full, red, atol=1e-5, rtol=1e-5), (full - red).abs().max()
    tab = time_table(1000)
    assert abs(float(tab[0, 0]) - math.sin(1.0)) < 1e-6 and abs(float(tab[999, 63]) - math.cos(1000 * math.exp(-10.0))) < 1e-5
    say("strict state_dict round trip, cross-attention == its reduced vector form, time table: ok")
    return True


if __name__ == "__main__":
    parameter_report()
    self_check()
