"""Golden fixtures for the C DiffuSETS networks (U-Net, VAE) and a full guided sample, from our
PyTorch reference (Tools/reference/diffusets.py) and diffusers' DDIMScheduler (the oracles).

Writes, under Tests/Fixtures/diffusets/:

  published/                 the full published shape (U-Net D = 1536, 7 levels, kernel 7; VAE
                             128/256/512, GroupNorm 32). No weights (60 MB even in f16):
    config.json              every hyper-parameter, derived widths, parameter counts
    keys.txt                 every checkpoint tensor: "<file> <key> <d0,d1,...> <use>", in
                             state_dict order. <file> is "unet" (the published U-Net checkpoint,
                             a bare state_dict) or "vae" (the published VAE file is a dict
                             {'encoder': sd, 'decoder': sd}; flattened here as encoder.<k> /
                             decoder.<k>). <use>: "used"; "unused" (never read by the forward
                             pass: every Block's own `down` conv, the cross-attention's to_q /
                             to_k / normalization, the VAE attention GroupNorms); "v_rows" (the
                             cross-attention's packed in_proj weight / bias: only rows 2E..3E,
                             the value projection, matter); "table" (the fixed time-embedding
                             table, equal to time_table(1000, 64, 10.0) in every block).

  small/                     our small configuration (U-Net 4 levels, kernel 7, D = 32, 2 heads,
                             attention hidden 16, time MLP 64 -> 64; VAE widths 16/16/32,
                             GroupNorm 8), random weights, every case below:
    config.json              every hyper-parameter (same layout as published/config.json), the
                             weight recipe, seeds, scheduler and guidance settings, statistics
    unet.safetensors         float32, the published U-Net key names, EXCEPT the copies of
                             `*.time_emb.embeddings` (1000 x 64 f32 = 256 KB each, one per block):
                             they are the fixed table, stored once as the `time_table` case below;
                             a loader inserts it under every `time_emb.embeddings` key (see
                             load_small()) and then loads strictly.
    vae.safetensors          float32, keys encoder.<published key> and decoder.<published key>
    manifest.txt             one case per line, space-separated:
                               <name> op=<op> key=value ... @tensor=d0,d1,... ...
                             each @tensor is little-endian float32, row-major, stored in
                             <name>.bin in the order listed. '#' lines are comments.
    <name>.bin

  tiny-k5/                   the published block form (8 heads, hidden 2 x block input, time MLP
                             64 -> 128, bottleneck 4 heads / hidden 32 / kernel 3) at 3 levels,
                             kernel 5, D = 8: U-Net cases only (unet_forward, unet_forward_b2,
                             unet_trace_down0); its time table is small/time_table.bin's.

  Cases (B = batch, activations channels-major (B, C, L)):
    time_table     @table (1000, 64): row t = [sin((t+1) f_i), cos((t+1) f_i)], f_i = exp(-i 10/31)
    unet_forward   t=<t> @x (1,4,128) @cond (1,D+3) @eps (1,4,128)
    unet_forward_b2  t=<t0>,<t1>: two samples, different timesteps, the second condition null
    unet_trace_down0  the first down block on unet_forward's input, layer by layer:
                   @temb (1,4) time MLP output; @time_added (1,4,128) x + temb; @pre_conv (1,s,128)
                   after pre_shortcut_convs; @shortcut_conv after GroupNorm(1), Mish,
                   shortcut_convs; @self_attention, @cross_attention (1,s,128) after each
                   attention (residual included, shown channels-major); @attention_norm after the
                   LayerNorm; @block_out (1,8,128) after post conv, GroupNorm, Mish, + res_conv(x);
                   @down_out (1,8,64) after the stride-2 conv; @cross_vec (1,s) the vector the
                   cross-attention adds at every position (s = (4 + 8) // 2 = 6).
    vae_decode     @z (1,4,128) @ecg (1,12,1024)  (the decoder divides z by 0.18215 first)
    vae_encode     @ecg (1,12,1024) @noise (1,4,128) @z @mean @logvar (1,4,128)
                   (z = (mean + sqrt(exp(logvar)) * noise) * 0.18215, logvar clamped to [-30, 20])
    sample_ddim10  a full classifier-free-guided sample: steps=10 timesteps=900,...,0
                   guidance=2.0 seed=<s>: @cond (1,D+3) @null (1,D+3) (zeros: the null
                   condition is the zero vector of length D + 3, scalars included) @initial
                   (1,4,128) = uniecg_normal_noise(seed, 512) (also given so a test need not
                   regenerate it); per step i (rows in order): @eps_cond, @eps_uncond (10,4,128)
                   the U-Net outputs (one batch-2 call [cond, null] per step, both at timestep
                   timesteps[i]); @eps (10,4,128) = eps_uncond + 2.0 * (eps_cond - eps_uncond);
                   @latents (10,4,128) the sample after step i (DDIM prev_sample, fed back);
                   @ecg (1,12,1024) = VAE decode of the last latent.
                   DDIM as diffusers' DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085,
                   beta_end=0.012, beta_schedule="linear", prediction_type="epsilon",
                   clip_sample=True, clip_sample_range=1.0, set_alpha_to_one=True,
                   steps_offset=0, timestep_spacing="leading", thresholding=False), eta 0 (the
                   C scheduler's UNIECG_SCHEDULER_DDIM semantics).

Random weights (documented so activations stay O(1), independent of width): torch.Generator
seeded per configuration, modules visited in named_modules() order, then
  Conv1d / Linear weight       N(0, 1) / sqrt(fan_in)         (fan_in = in_channels * kernel)
  ConvTranspose1d weight       N(0, 1) * sqrt(2 / (in * k))   (stride 2: each output sees in*k/2)
  MultiheadAttention in_proj   N(0, 1) / sqrt(E)
  every bias                   0.1 * N(0, 1)
  GroupNorm / LayerNorm        weight 1 + 0.2 * N(0, 1), bias 0.1 * N(0, 1)
  time_emb.embeddings          the fixed table (not random)
then the U-Net's last layer (output_conv.2) is multiplied by OUTPUT_GAIN, the knob that keeps the
predicted noise's standard deviation near 1; with this recipe 1.0 already does (printed: eps std
1.06 small, 0.60 tiny-k5; every traced activation |x| < 7; VAE logvar within [-2.7, 2.1], so the
[-30, 20] clamp is inactive here). In the guided sample 45 % of the x0 predictions leave [-1, 1],
so clip_sample matters.

safetensors files carry one metadata entry ({"format": "pt"}): safetensors serialises
__metadata__ from a hash map, so several entries would come out in varying order and the files
would not be reproducible.

Run from the repository root (about 10 s, one thread):
  /opt/uniecg-venv/bin/python Tools/reference/make_diffusets_fixtures.py
Deterministic: fixed seeds, one thread; reruns reproduce every file byte for byte.
"""
import json
import os
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import diffusers  # noqa: E402
from diffusers import DDIMScheduler  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import diffusets as D  # noqa: E402
from make_scheduler_fixtures import normal_noise  # noqa: E402  (uniecg_normal_noise in Python)

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "diffusets")

SMALL_UNET = D.UNetConfig(levels=4, kernel=7, cond_dim=32, heads=2, hidden=16, time_hidden=64)
SMALL_VAE = D.VAEConfig(widths=(16, 16, 32), groups=8)
# the published block form (8 heads, hidden 2 x input width, time MLP 64 -> 128, bottleneck 4 heads /
# hidden 32 / kernel 3) at another kernel, depth and condition width: U-Net cases only
TINY_UNET = D.UNetConfig(levels=3, kernel=5, cond_dim=8)
WEIGHT_SEED = 20261125
INPUT_SEED = 7
SAMPLE_SEED = 42
OUTPUT_GAIN = 1.0
GUIDANCE = 2.0
STEPS = 10
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
                 trained_betas=None, prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0,
                 set_alpha_to_one=True, steps_offset=0, timestep_spacing="leading", thresholding=False,
                 rescale_betas_zero_snr=False)


# ------------------------------------------------------------------------------------------------
# weights


def randomize(module, seed):
    g = torch.Generator().manual_seed(seed)

    def normal(shape):
        return torch.randn(shape, generator=g)

    with torch.no_grad():
        for _, m in module.named_modules():
            if isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
                m.weight.copy_(1 + 0.2 * normal(m.weight.shape))
                m.bias.copy_(0.1 * normal(m.bias.shape))
            elif isinstance(m, nn.ConvTranspose1d):
                cin, _, k = m.weight.shape
                m.weight.copy_(normal(m.weight.shape) * (2.0 / (cin * k)) ** 0.5)
                m.bias.copy_(0.1 * normal(m.bias.shape))
            elif isinstance(m, (nn.Conv1d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(normal(m.weight.shape) / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * normal(m.bias.shape))
            elif isinstance(m, nn.MultiheadAttention):
                e = m.embed_dim
                m.in_proj_weight.copy_(normal(m.in_proj_weight.shape) / e ** 0.5)
                m.in_proj_bias.copy_(0.1 * normal(m.in_proj_bias.shape))
                # out_proj is a Linear: visited as a child module
    return module


def build(ucfg, vcfg, seed):
    unet = randomize(D.ConditionalUNet(ucfg), seed)
    with torch.no_grad():
        unet.output_conv[2].weight.mul_(OUTPUT_GAIN)
        unet.output_conv[2].bias.mul_(OUTPUT_GAIN)
    if vcfg is None:
        return unet.eval(), None, None
    enc = randomize(D.VAEEncoder(vcfg), seed + 1)
    dec = randomize(D.VAEDecoder(vcfg), seed + 2)
    return unet.eval(), enc.eval(), dec.eval()


def unet_tensors(unet):
    return {k: v.contiguous() for k, v in unet.state_dict().items() if not k.endswith("time_emb.embeddings")}


def vae_tensors(enc, dec):
    t = {f"encoder.{k}": v.contiguous() for k, v in enc.state_dict().items()}
    t.update({f"decoder.{k}": v.contiguous() for k, v in dec.state_dict().items()})
    return t


def load_small(directory, ucfg=None, vcfg=None):
    """Rebuild the modules of a fixture directory (the reverse of what main() writes); the
    configurations default to the small one."""
    from safetensors.torch import load_file
    ucfg = ucfg or SMALL_UNET
    vcfg = vcfg or SMALL_VAE
    unet = D.ConditionalUNet(ucfg)
    sd = load_file(os.path.join(directory, "unet.safetensors"))
    table = D.time_table(ucfg.train_steps, ucfg.time_dim, ucfg.time_constant)
    for k in unet.state_dict():
        if k.endswith("time_emb.embeddings"):
            sd[k] = table
    unet.load_state_dict(sd, strict=True)
    if not os.path.exists(os.path.join(directory, "vae.safetensors")):
        return unet.eval(), None, None
    enc, dec = D.VAEEncoder(vcfg), D.VAEDecoder(vcfg)
    vae = load_file(os.path.join(directory, "vae.safetensors"))
    enc.load_state_dict({k[8:]: v for k, v in vae.items() if k.startswith("encoder.")}, strict=True)
    dec.load_state_dict({k[8:]: v for k, v in vae.items() if k.startswith("decoder.")}, strict=True)
    return unet.eval(), enc.eval(), dec.eval()


# ------------------------------------------------------------------------------------------------
# key list of the published shape


def key_use(key):
    if key.endswith("time_emb.embeddings"):
        return "table"
    if ".block.down." in key:
        return "unused"
    if ".cross_attention." in key:
        part = key.split(".cross_attention.")[1]
        if part.startswith(("to_q.", "to_k.", "normalization.")):
            return "unused"
        if part in ("attention.in_proj_weight", "attention.in_proj_bias"):
            return "v_rows"
    return "used"


def vae_key_use(key, decoder_module_types):
    idx = int(key.split(".")[1])
    if ".groupnorm." in key and isinstance(decoder_module_types[key.split(".")[0]][idx], D.AttnBlock):
        return "unused"
    return "used"


def write_published():
    d = os.path.join(OUT, "published")
    os.makedirs(d, exist_ok=True)
    ucfg, vcfg = D.UNetConfig(), D.VAEConfig()
    with torch.device("meta"):
        unet, enc, dec = D.ConditionalUNet(ucfg), D.VAEEncoder(vcfg), D.VAEDecoder(vcfg)
    lines = ["# DiffuSETS published shapes (written by Tools/reference/make_diffusets_fixtures.py): "
             "<file> <key> <shape> <use>; float32 in the released checkpoints"]
    for k, v in unet.state_dict().items():
        lines.append(f"unet {k} {','.join(map(str, v.shape))} {key_use(k)}")
    mods = {"encoder": list(enc), "decoder": list(dec)}
    for name, m in (("encoder", enc), ("decoder", dec)):
        for k, v in m.state_dict().items():
            key = f"{name}.{k}"
            lines.append(f"vae {key} {','.join(map(str, v.shape))} {vae_key_use(key, mods)}")
    with open(os.path.join(d, "keys.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    counts = D.parameter_report(ucfg, vcfg, out=lambda s: print("published:", s))
    cfg = dict(unet=ucfg.to_dict(), vae=vcfg.to_dict(), parameters=counts,
               unet_tensors=len(unet.state_dict()), vae_encoder_tensors=len(enc.state_dict()),
               vae_decoder_tensors=len(dec.state_dict()),
               note="No weights: keys.txt lists every tensor of the released checkpoints.")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1, sort_keys=True)
        f.write("\n")
    return [os.path.join(d, n) for n in ("keys.txt", "config.json")]


# ------------------------------------------------------------------------------------------------
# cases


class Manifest:
    def __init__(self, directory):
        self.dir = directory
        self.lines = [f"# Written by Tools/reference/make_diffusets_fixtures.py (torch {torch.__version__}, "
                      f"diffusers {diffusers.__version__}); see that file for the format."]
        self.files = []

    def add(self, name, op, params, tensors):
        fields = [name, f"op={op}"] + [f"{k}={v}" for k, v in params.items()]
        blobs = []
        for tname, value in tensors:
            a = value.detach().to(torch.float32).contiguous().numpy()
            assert np.isfinite(a).all(), (name, tname)
            fields.append(f"@{tname}=" + ",".join(str(s) for s in a.shape))
            blobs.append(a.astype("<f4").tobytes())
        path = os.path.join(self.dir, name + ".bin")
        with open(path, "wb") as f:
            f.write(b"".join(blobs))
        self.files.append(path)
        self.lines.append(" ".join(fields))

    def close(self):
        path = os.path.join(self.dir, "manifest.txt")
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        self.files.append(path)


def condition(g, dim, sex, age, hr):
    return torch.cat([torch.randn(dim, generator=g), torch.tensor([sex, age, hr], dtype=torch.float32)])[None]


def write_config(name, ucfg, vcfg, seed):
    """Every case for a configuration with a VAE; U-Net cases only when vcfg is None."""
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    unet, enc, dec = build(ucfg, vcfg, seed)
    files = []
    p = os.path.join(d, "unet.safetensors")
    # one metadata entry only: safetensors writes __metadata__ from a hash map, so several entries
    # come out in varying order and the file would not be reproducible byte for byte
    save_file(unet_tensors(unet), p, metadata={"format": "pt"})
    files.append(p)
    if vcfg is not None:
        p = os.path.join(d, "vae.safetensors")
        save_file(vae_tensors(enc, dec), p, metadata={"format": "pt"})
        files.append(p)
    # the files reload into fresh modules with identical tensors
    reloaded = load_small(d, ucfg, vcfg)
    for a, b in zip((unet, enc, dec), reloaded):
        if a is None:
            continue
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb), ka

    cdim = ucfg.cond_dim + ucfg.extra_conditions
    g = torch.Generator().manual_seed(INPUT_SEED)
    m = Manifest(d)
    stats = {}

    if vcfg is not None:
        m.add("time_table", "time_table", dict(steps=ucfg.train_steps, dim=ucfg.time_dim, constant=ucfg.time_constant),
              [("table", D.time_table(ucfg.train_steps, ucfg.time_dim, ucfg.time_constant))])

    with torch.no_grad():
        # (a) U-Net forward, batch 1 and batch 2
        x = torch.randn(1, 4, 128, generator=g)
        t = 500
        c = condition(g, ucfg.cond_dim, 1.0, 63.0, 72.0)
        trace = []
        eps = unet(x, torch.tensor([t]), c, trace=trace)
        stats["unet eps std"] = float(eps.std())
        m.add("unet_forward", "unet", dict(batch=1, t=t), [("x", x), ("cond", c), ("eps", eps)])
        x2 = torch.randn(2, 4, 128, generator=g)
        t2 = [999, 17]
        c2 = torch.cat([condition(g, ucfg.cond_dim, 0.0, 38.0, 104.0), torch.zeros(1, cdim)])
        eps2 = unet(x2, torch.tensor(t2), c2)
        m.add("unet_forward_b2", "unet", dict(batch=2, t=",".join(map(str, t2))), [("x", x2), ("cond", c2), ("eps", eps2)])
        # (c) the first down block layer by layer (same input as unet_forward)
        blk = unet.downsampling_blocks[0].block
        temb = blk.time_emb(torch.tensor([t]))
        tensors = [("temb", temb)] + trace + [("cross_vec", blk.cross_attention.reduced(c))]
        names = [n for n, _ in tensors]
        assert names == ["temb", "time_added", "pre_conv", "shortcut_conv", "self_attention", "cross_attention",
                         "attention_norm", "block_out", "down_out", "cross_vec"], names
        m.add("unet_trace_down0", "unet_trace", dict(block="downsampling_blocks.0", t=t,
                                                     width=blk.layer_norm1.num_channels), tensors)

    if vcfg is not None:
        write_vae_and_sample(m, unet, enc, dec, ucfg, vcfg, g, c, stats)
    m.close()
    files += m.files
    counts = D.parameter_report(ucfg, vcfg, out=lambda s: print(f"{name}:", s), include_vae=vcfg is not None)
    cfg = dict(unet=ucfg.to_dict(), vae=vcfg.to_dict() if vcfg else None, parameters=counts,
               weights=dict(seed_unet=seed, seed_vae_encoder=seed + 1, seed_vae_decoder=seed + 2,
                            output_gain=OUTPUT_GAIN,
                            recipe="see Tools/reference/make_diffusets_fixtures.py docstring",
                            omitted_from_unet_safetensors="*.time_emb.embeddings = time_table(train_steps, 64, 10.0)"),
               inputs=dict(seed=INPUT_SEED, sample_seed=SAMPLE_SEED,
                           condition_layout="[text embedding (D), sex (1 male / 0 other), age (years), heart rate (bpm)]",
                           null_condition="zeros(D + 3)"),
               scheduler=dict(SCHEDULER, kind="ddim", steps=STEPS, eta=0.0) if vcfg else None,
               guidance=dict(scale=GUIDANCE, formula="eps_uncond + scale * (eps_cond - eps_uncond)") if vcfg else None,
               stats=stats)
    p = os.path.join(d, "config.json")
    with open(p, "w") as f:
        json.dump(cfg, f, indent=1, sort_keys=True)
        f.write("\n")
    files.append(p)
    for k, v in stats.items():
        print(f"{name}: {k}: {v}")
    return files


def write_vae_and_sample(m, unet, enc, dec, ucfg, vcfg, g, c, stats):
    cdim = ucfg.cond_dim + ucfg.extra_conditions
    with torch.no_grad():
        # (b) VAE decode and encode
        z = torch.randn(1, 4, 128, generator=g)
        ecg = dec(z)
        stats["vae decode std"] = float(ecg.std())
        m.add("vae_decode", "vae_decode", dict(scale=vcfg.scale), [("z", z), ("ecg", ecg)])
        sig = torch.randn(1, 12, 1024, generator=g)
        noise = torch.randn(1, 4, 128, generator=g)
        ze, mean, logvar = enc(sig, noise)
        stats["vae encode logvar range"] = (float(logvar.min()), float(logvar.max()))
        m.add("vae_encode", "vae_encode", dict(scale=vcfg.scale, logvar_min=vcfg.logvar_min,
                                                logvar_max=vcfg.logvar_max),
              [("ecg", sig), ("noise", noise), ("z", ze), ("mean", mean), ("logvar", logvar)])

        # (d) 10-step DDIM with classifier-free guidance
        sched = DDIMScheduler(**SCHEDULER)
        sched.set_timesteps(STEPS)
        timesteps = [int(v) for v in sched.timesteps]
        null = torch.zeros(1, cdim)
        initial = torch.tensor(np.array(normal_noise(SAMPLE_SEED, 4 * 128), dtype=np.float32)).reshape(1, 4, 128)
        sample = initial.clone()
        conds = torch.cat([c, null])
        rec = {"eps_cond": [], "eps_uncond": [], "eps": [], "latents": []}
        clipped = total = 0
        acp = sched.alphas_cumprod
        for ts in timesteps:
            out = unet(sample.repeat(2, 1, 1), torch.tensor([ts, ts]), conds)
            e_c, e_u = out[0:1], out[1:2]
            e = e_u + GUIDANCE * (e_c - e_u)
            x0 = (sample - (1 - acp[ts]) ** 0.5 * e) / acp[ts] ** 0.5
            clipped += int((x0.abs() > 1).sum())
            total += x0.numel()
            sample = sched.step(e, ts, sample, eta=0.0, use_clipped_model_output=False).prev_sample
            for k, v in (("eps_cond", e_c), ("eps_uncond", e_u), ("eps", e), ("latents", sample)):
                rec[k].append(v[0])
        final = dec(sample)
        stats["sample clipped fraction"] = clipped / total
        stats["final latent std"] = float(sample.std())
        stats["final ecg std"] = float(final.std())
        m.add("sample_ddim10", "guided_sample",
              dict(scheduler="ddim", steps=STEPS, eta=0.0, guidance=GUIDANCE, seed=SAMPLE_SEED,
                   timesteps=",".join(map(str, timesteps)), batch_call=2),
              [("cond", c), ("null", null), ("initial", initial)]
              + [(k, torch.stack(v)) for k, v in rec.items()] + [("ecg", final)])


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    files = write_published()
    files += write_config("small", SMALL_UNET, SMALL_VAE, WEIGHT_SEED)
    files += write_config("tiny-k5", TINY_UNET, None, WEIGHT_SEED + 10)
    total = 0
    for p in files:
        n = os.path.getsize(p)
        total += n
        print(f"{os.path.relpath(p, ROOT)}: {n} bytes")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
