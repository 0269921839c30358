#!/usr/bin/env python3
"""Stage 1 of the bundled teaching model (issue 7 point 3): train the 12-lead VAE, then the latent
1-D U-Net conditioned on [all-MiniLM-L6-v2 embedding of the objective, sex, age, heart rate].
Synthetic data only (Tools/train/ecgsim); the result is a teaching demonstration.

    python Tools/train/diffusion_data.py --out DATA --count 20000 --seed 1     # the data, once
    python Tools/train/train_diffusion.py vae  --data DATA --run RUN --steps 4000 --max-minutes 15
    python Tools/train/train_diffusion.py unet --data DATA --run RUN --steps 9000 --max-minutes 35
    python Tools/train/train_diffusion.py bench --threads 2        # throughput and FLOPs only

Both stages resume from RUN/<stage>.pt when run again with the same arguments (`--steps` may be
raised); a checkpoint is written every --save-every steps, at the end, when --max-minutes runs
out (the budget counts the training time of all sessions of a run, so re-running a finished or
timed-out stage does nothing) and on SIGINT/SIGTERM. Every random draw of training (batch indices, the objective phrasing
picked per record, VAE posterior noise, diffusion times and noise, guidance dropout) comes from
one torch.Generator whose state is in the checkpoint, and model, EMA, optimiser and step are
restored with it, so a resumed run continues bit for bit like an uninterrupted one (same
--threads: a different thread count changes float summation order).

The models are the DiffuSETS family of Tools/reference/diffusets.py in a small configuration
(--size): the files they export carry the published key names (export_diffusion.py).
The U-Net stage first encodes the whole data set once with the trained VAE encoder (posterior
mean and log-variance, RUN/latents.npz) and fixes the latent scale as Stable Diffusion did:
scale = 1 / std of the posterior samples, so the U-Net sees unit-variance latents.
"""
import argparse
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import diffusets as DS  # noqa: E402
from text_embedding import D as TEXT_DIM  # noqa: E402

# DDPM schedule of DiffuSETS (diffusers' defaults they used): 1000 steps, linear betas
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear")

# Model sizes. "tiny" is the default bundled model: it must stay far below the 30 MB file (the
# language model needs most of it) and sample a 12-lead ECG in well under 2 s on 2 cores.
SIZES = {
    # U-Net: 5 levels (latent 4 x 128 -> bottleneck 64 x 8), kernel 7, 2 heads, hidden 2 x input
    # width as released; VAE widths 16/32/64 (DiffuSETS: 128/256/512), GroupNorm(8).
    "tiny": dict(unet=dict(channels=4, levels=5, kernel=7, heads=2),
                 vae=dict(widths=(16, 32, 64), groups=8)),
    # one level more (bottleneck 128 x 4) and a 2x wider VAE, if a longer budget allows
    "small": dict(unet=dict(channels=4, levels=6, kernel=7, heads=4),
                  vae=dict(widths=(32, 64, 128), groups=16)),
}


def make_configs(size):
    s = SIZES[size]
    ucfg = DS.UNetConfig(cond_dim=TEXT_DIM, extra_conditions=3, **s["unet"])
    vcfg = DS.VAEConfig(**s["vae"])
    return ucfg, vcfg


def unet_from_dict(d):
    d = {k: v for k, v in d.items() if k != "derived"}
    return DS.UNetConfig(**d)


def vae_from_dict(d):
    d = dict(d)
    d["widths"] = tuple(d["widths"])
    return DS.VAEConfig(**d)


def alphas_cumprod():
    # diffusers' "linear" schedule: betas evenly spaced from beta_start to beta_end
    betas = torch.linspace(SCHEDULE["beta_start"], SCHEDULE["beta_end"], SCHEDULE["num_train_timesteps"],
                           dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0)


def init_condition_projection(unet):
    """Scale down the initial weights that read the raw age and heart-rate scalars.
    The condition is used raw, as in DiffuSETS (age ~20-90, rate ~40-160, against unit-length text
    embeddings), so with the default init these two inputs would dominate every block's condition
    token at the start and the text would have to fight its way in; dividing their initial weight
    columns by a typical magnitude puts all inputs on a similar footing. Only the initial values
    change: the network and the exported format are the same."""
    with torch.no_grad():
        for blk in unet.blocks():
            w = blk.cross_attention.value_combiner.weight  # (width, D + 3)
            w[:, TEXT_DIM + 1] /= 60.0     # age
            w[:, TEXT_DIM + 2] /= 80.0     # heart rate


def lr_at(step, base, warmup, total):
    # linear warm-up, then cosine to 10 %: a function of the step only, so resuming is exact
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def save_atomic(obj, path):
    tmp = path + ".partial"
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill during the write never leaves a truncated checkpoint


class Stopper:
    """SIGINT/SIGTERM set a flag; the loop then saves and exits cleanly."""

    def __init__(self):
        self.stop = False
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handle)

    def _handle(self, *_):
        self.stop = True


def fmt_min(s):
    return f"{s / 60:.1f} min"


# ------------------------------------------------------------------------------------------------ VAE

def vae_losses(enc, dec, x, noise, kl_weight):
    z, mean, logvar = enc(x, noise)
    xr = dec(z)
    l1 = (xr - x).abs().mean()
    mse = (xr - x).pow(2).mean()
    # KL(q(z|x) || N(0, 1)) per latent element; small weight: it only keeps the latent space
    # bounded and smooth for the diffusion model, reconstruction is what matters
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
    return l1 + mse + kl_weight * kl, dict(l1=l1.item(), mse=mse.item(), kl=kl.item())


def train_vae(args):
    from diffusion_data import Dataset
    run, path = args.run, os.path.join(args.run, "vae.pt")
    os.makedirs(run, exist_ok=True)
    data = Dataset(args.data, limit=args.limit)
    n_val = min(args.val, len(data) // 10)
    n_train = len(data) - n_val
    val_x = torch.from_numpy(data.signals[n_train:].astype(np.float32))
    if os.path.exists(path):
        ck = torch.load(path, weights_only=False)
        vcfg = vae_from_dict(ck["vae_config"])
        print(f"resuming VAE at step {ck['step']} from {path}")
    else:
        ck = None
        vcfg = make_configs(args.size)[1]
    torch.manual_seed(args.seed)  # the initial weights
    enc, dec = DS.VAEEncoder(vcfg), DS.VAEDecoder(vcfg)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0, foreach=True)
    g = torch.Generator().manual_seed(args.seed + 1)
    step, history = 0, []
    if ck:
        enc.load_state_dict(ck["encoder"]); dec.load_state_dict(ck["decoder"])
        opt.load_state_dict(ck["opt"]); g.set_state(ck["generator"])
        step, history = ck["step"], ck["history"]
    spent = ck.get("train_seconds", 0.0) if ck else 0.0   # --max-minutes counts across resumes
    val_noise = torch.randn(len(val_x), vcfg.latent_channels, val_x.shape[-1] // 8,
                            generator=torch.Generator().manual_seed(12345))

    def checkpoint():
        save_atomic(dict(stage="vae", step=step, encoder=enc.state_dict(), decoder=dec.state_dict(),
                         opt=opt.state_dict(), generator=g.get_state(), vae_config=vcfg.to_dict(),
                         train_seconds=spent + time.time() - t0,
                         history=history, args=vars(args), data_manifest=data.manifest), path)

    @torch.no_grad()
    def validate():
        enc.eval(); dec.eval()
        tot = {}
        for i in range(0, len(val_x), 64):
            _, parts = vae_losses(enc, dec, val_x[i:i + 64], val_noise[i:i + 64], args.kl)
            for k, v in parts.items():
                tot[k] = tot.get(k, 0.0) + v * len(val_x[i:i + 64])
        enc.train(); dec.train()
        return {k: v / len(val_x) for k, v in tot.items()}

    print(f"VAE {vcfg.to_dict()}: encoder {DS.count(enc):,} + decoder {DS.count(dec):,} parameters; "
          f"{n_train} training / {n_val} validation records; batch {args.batch}, {args.threads} thread(s)")
    weights = record_weights(data.condition[:n_train], args.condition_weight)
    stopper, t0, win, t_win = Stopper(), time.time(), [], time.time()
    start = step
    while step < args.steps and spent < args.max_minutes * 60 and not stopper.stop:
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, args.lr, args.warmup, args.steps)
        idx = (torch.randint(0, n_train, (args.batch,), generator=g) if weights is None
               else torch.multinomial(weights, args.batch, replacement=True, generator=g))
        x = torch.from_numpy(data.signals[idx.numpy()].astype(np.float32))
        noise = torch.randn(args.batch, vcfg.latent_channels, x.shape[-1] // 8, generator=g)
        loss, parts = vae_losses(enc, dec, x, noise, args.kl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        step += 1
        win.append([loss.item(), parts["l1"], parts["mse"], parts["kl"]])
        elapsed = spent + time.time() - t0     # training time of the whole run, all sessions
        if step % args.log_every == 0 or step == args.steps:
            m = np.mean(win, axis=0)
            rate = len(win) / (time.time() - t_win)
            eta = min((args.steps - step) / rate, args.max_minutes * 60 - elapsed)
            print(f"vae step {step}/{args.steps} loss {m[0]:.5f} (L1 {m[1]:.5f} mV, MSE {m[2]:.6f}, KL {m[3]:.2f}) "
                  f"lr {opt.param_groups[0]['lr']:.2e} {rate:.2f} steps/s {rate * args.batch:.1f} samples/s "
                  f"elapsed {fmt_min(elapsed)} ETA {fmt_min(max(0, eta))}", flush=True)
            history.append(dict(step=step, loss=float(m[0]), l1=float(m[1]), mse=float(m[2]), kl=float(m[3]),
                                steps_per_s=rate, elapsed_s=elapsed))
            win, t_win = [], time.time()
        if step % args.save_every == 0 and step < args.steps:
            v = validate()
            history.append(dict(step=step, val=v))
            print(f"vae step {step}: validation L1 {v['l1']:.5f} mV, MSE {v['mse']:.6f}, KL {v['kl']:.2f}; checkpoint",
                  flush=True)
            checkpoint()
        if elapsed > args.max_minutes * 60:
            print(f"--max-minutes {args.max_minutes} reached at step {step} (training time of all sessions)")
            break
        if step == args.stop_at:
            print(f"--stop-at {step}")
            break
    v = validate()
    history.append(dict(step=step, val=v))
    checkpoint()
    print(f"vae done at step {step} ({step - start} steps in {fmt_min(time.time() - t0)}): "
          f"validation L1 {v['l1']:.5f} mV, MSE {v['mse']:.6f}, KL {v['kl']:.2f} -> {path}")


# ------------------------------------------------------------------------------------------------ latents

@torch.no_grad()
def encode_dataset(run, data, threads):
    """Posterior mean / log-variance of every record (deterministic: eval mode, no noise drawn),
    cached in RUN/latents.npz for the VAE checkpoint's step; plus the latent scale."""
    ck = torch.load(os.path.join(run, "vae.pt"), weights_only=False)
    path = os.path.join(run, "latents.npz")
    if os.path.exists(path):
        z = np.load(path)
        if int(z["vae_step"]) == ck["step"] and len(z["mean"]) == len(data):
            return z["mean"], z["logvar"], float(z["scale"]), float(z["clip"])
    vcfg = vae_from_dict(ck["vae_config"])
    enc = DS.VAEEncoder(vcfg).eval()
    enc.load_state_dict(ck["encoder"])
    t0 = time.time()
    means, logvars = [], []
    zero = torch.zeros(64, vcfg.latent_channels, 128)
    for i in range(0, len(data), 64):
        x = torch.from_numpy(data.signals[i:i + 64].astype(np.float32))
        _, m, lv = enc(x, zero[:len(x)])
        means.append(m.numpy()); logvars.append(lv.numpy())
    mean, logvar = np.concatenate(means), np.concatenate(logvars)
    # scale = 1 / std of posterior samples (Stable Diffusion's recipe for 0.18215), from a fixed draw
    rs = np.random.default_rng(0)
    sample = mean + np.exp(0.5 * logvar) * rs.standard_normal(mean.shape).astype(np.float32)
    scale = float(1.0 / sample.std())
    # x0 clip range of the sampler: diffusers clips the predicted x0 to +-1, which suits image
    # latents but would cut unit-variance ECG latents; clip at the data's 99.99th percentile
    clip = float(math.ceil(np.quantile(np.abs(sample * scale), 0.9999) * 2) / 2)
    np.savez(path, mean=mean, logvar=logvar, scale=scale, clip=clip, vae_step=ck["step"])
    print(f"encoded {len(data)} records in {time.time() - t0:.1f} s: latent scale {scale:.5f} "
          f"(posterior std mean {np.exp(0.5 * logvar).mean():.3f}), x0 clip range {clip}")
    return mean, logvar, scale, clip


# ------------------------------------------------------------------------------------------------ U-Net

def ema_update(ema, model, step):
    # EMA with a warm-up (short runs would otherwise export mostly the initial weights)
    d = min(0.999, (1 + step) / (10 + step))
    pairs = [(pe, p) for pe, p in zip(ema.parameters(), model.parameters()) if p.requires_grad]
    with torch.no_grad():   # one fused call over all tensors: the U-Net has ~400 small ones
        torch._foreach_lerp_([pe for pe, _ in pairs], [p.detach() for _, p in pairs], 1 - d)


def use_reduced_cross_attention(unet):
    """Every block's cross-attention attends to one condition token repeated along the sequence,
    so its softmax is uniform and its output is the same vector at every position, whatever the
    queries (DIFFUSETS.md; the runtime computes it that way too). Training through that vector
    gives the same outputs (within 1e-6) and the same gradients, without the attention over the
    repeated keys, and takes a third less time per step (README, "Training speed"); the query and
    key projections, which cannot change the output, get no gradient and keep their initial values."""
    for m in unet.modules():
        if isinstance(m, DS.CondCrossAttn):
            m.forward = lambda x, cond, m=m: x + m.reduced(cond)[:, None, :]


def unet_batch(data, mean, logvar, scale, idx, g, abar, p_uncond, train=True):
    B = len(idx)
    i = idx.numpy()
    k = data.objective.shape[1]
    pick = torch.randint(0, k, (B,), generator=g).numpy()          # one phrasing per record
    emb = torch.from_numpy(data.embeddings[data.objective[i, pick]])
    cond = torch.cat([emb, torch.from_numpy(data.scalars[i])], dim=1)
    drop = torch.rand(B, generator=g) < p_uncond                      # classifier-free guidance
    cond[drop] = 0.0                                                  # null condition = zeros(D+3)
    m, lv = torch.from_numpy(mean[i]), torch.from_numpy(logvar[i])
    z0 = (m + (0.5 * lv).exp() * torch.randn(m.shape, generator=g)) * scale
    t = torch.randint(0, SCHEDULE["num_train_timesteps"], (B,), generator=g)
    noise = torch.randn(z0.shape, generator=g)
    a = abar[t][:, None, None]
    zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
    return zt, t, cond, noise


def record_weights(conditions, spec):
    """Sampling weights of the training records from --condition-weight NAME=W,... (None: uniform).
    The U-Net of the first bundled model drew atrial flutter and PVCs the measurement code did not
    recognise (0 and 1 of 8 held-out objectives); showing it those conditions more often is cheaper
    than a larger network."""
    if not spec:
        return None
    from ecgsim import CONDITIONS
    w = np.ones(len(CONDITIONS))
    for item in spec.split(","):
        name, _, value = item.partition("=")
        if name.strip() not in CONDITIONS or not value:
            raise SystemExit(f"--condition-weight: '{item}' is not CONDITION=WEIGHT with a condition of ecgsim")
        w[CONDITIONS.index(name.strip())] = float(value)
    share = w / w.sum()
    print("condition sampling weights: " + ", ".join(f"{c} {x:.3f}" for c, x in zip(CONDITIONS, share) if w[CONDITIONS.index(c)] != 1)
          + f" (others {share[w == 1][0] if (w == 1).any() else 0:.3f} each)")
    return torch.from_numpy(w[np.asarray(conditions, dtype=np.int64)]).double()


def train_unet(args):
    from diffusion_data import Dataset
    run, path = args.run, os.path.join(args.run, "unet.pt")
    data = Dataset(args.data, limit=args.limit)
    mean, logvar, scale, clip = encode_dataset(run, data, args.threads)
    n_val = min(args.val, len(data) // 10)
    n_train = len(data) - n_val
    if os.path.exists(path):
        ck = torch.load(path, weights_only=False)
        ucfg = unet_from_dict(ck["unet_config"])
        print(f"resuming U-Net at step {ck['step']} from {path}")
    else:
        ck = None
        ucfg = make_configs(args.size)[0]
    torch.manual_seed(args.seed + 10)
    unet = DS.ConditionalUNet(ucfg)
    init_condition_projection(unet)
    ema = DS.ConditionalUNet(ucfg)
    ema.load_state_dict(unet.state_dict())
    params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0, foreach=True)
    use_reduced_cross_attention(unet)
    use_reduced_cross_attention(ema)
    g = torch.Generator().manual_seed(args.seed + 11)
    step, history = 0, []
    if ck:
        unet.load_state_dict(ck["unet"]); ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"]); g.set_state(ck["generator"])
        step, history = ck["step"], ck["history"]
    spent = ck.get("train_seconds", 0.0) if ck else 0.0   # --max-minutes counts across resumes
    abar = alphas_cumprod()
    # fixed validation batch (records, phrasing, t, noise, no dropout): comparable across steps
    vg = torch.Generator().manual_seed(54321)
    val = unet_batch(data, mean, logvar, scale, torch.arange(n_train, len(data)), vg, abar, 0.0)

    def checkpoint():
        save_atomic(dict(stage="unet", step=step, unet=unet.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(),
                         generator=g.get_state(), unet_config=ucfg.to_dict(), scale=scale, clip=clip,
                         train_seconds=spent + time.time() - t0,
                         history=history, args=vars(args), data_manifest=data.manifest), path)

    @torch.no_grad()
    def validate():
        out = {}
        for name, net in (("model", unet), ("ema", ema)):
            net.eval()
            tot = 0.0
            for i in range(0, len(val[0]), 64):
                s = slice(i, i + 64)
                tot += F.mse_loss(net(val[0][s], val[1][s], val[2][s]), val[3][s], reduction="sum").item()
            out[name] = tot / val[3].numel()
            net.train()
        return out

    print(f"U-Net {json.dumps({k: v for k, v in ucfg.to_dict().items() if k != 'derived'})}: "
          f"{DS.count(unet):,} trainable parameters; {n_train} training / {n_val} validation records; "
          f"latent scale {scale:.5f}; batch {args.batch}; guidance dropout {args.p_uncond}; {args.threads} thread(s)")
    weights = record_weights(data.condition[:n_train], args.condition_weight)
    stopper, t0, win, t_win = Stopper(), time.time(), [], time.time()
    start = step
    while step < args.steps and spent < args.max_minutes * 60 and not stopper.stop:
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, args.lr, args.warmup, args.steps)
        idx = (torch.randint(0, n_train, (args.batch,), generator=g) if weights is None
               else torch.multinomial(weights, args.batch, replacement=True, generator=g))
        zt, t, cond, noise = unet_batch(data, mean, logvar, scale, idx, g, abar, args.p_uncond)
        loss = F.mse_loss(unet(zt, t, cond), noise)   # DDPM epsilon objective
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        ema_update(ema, unet, step)
        step += 1
        win.append(loss.item())
        elapsed = spent + time.time() - t0     # training time of the whole run, all sessions
        if step % args.log_every == 0 or step == args.steps:
            rate = len(win) / (time.time() - t_win)
            eta = min((args.steps - step) / rate, args.max_minutes * 60 - elapsed)
            print(f"unet step {step}/{args.steps} loss {np.mean(win):.5f} lr {opt.param_groups[0]['lr']:.2e} "
                  f"{rate:.2f} steps/s {rate * args.batch:.1f} samples/s elapsed {fmt_min(elapsed)} "
                  f"ETA {fmt_min(max(0, eta))}", flush=True)
            history.append(dict(step=step, loss=float(np.mean(win)), steps_per_s=rate, elapsed_s=elapsed))
            win, t_win = [], time.time()
        if step % args.save_every == 0 and step < args.steps:
            v = validate()
            history.append(dict(step=step, val=v))
            print(f"unet step {step}: validation eps-MSE {v['model']:.5f} (EMA {v['ema']:.5f}); checkpoint", flush=True)
            checkpoint()
        if elapsed > args.max_minutes * 60:
            print(f"--max-minutes {args.max_minutes} reached at step {step} (training time of all sessions)")
            break
        if step == args.stop_at:
            print(f"--stop-at {step}")
            break
    v = validate()
    history.append(dict(step=step, val=v))
    checkpoint()
    print(f"unet done at step {step} ({step - start} steps in {fmt_min(time.time() - t0)}): "
          f"validation eps-MSE {v['model']:.5f} (EMA {v['ema']:.5f}) -> {path}")


# ------------------------------------------------------------------------------------------------ bench

def flops(fn):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def bench(args):
    """Parameters, FLOPs and training / inference speed of a size on random data (no data set)."""
    ucfg, vcfg = make_configs(args.size)
    torch.manual_seed(0)
    unet, enc, dec = DS.ConditionalUNet(ucfg), DS.VAEEncoder(vcfg), DS.VAEDecoder(vcfg)

    def timeit(fn, seconds=args.bench_seconds):
        fn()
        n, t0 = 0, time.time()
        while time.time() - t0 < seconds:
            fn(); n += 1
        return (time.time() - t0) / n

    def interleaved(base, fast):
        """Mean seconds per step of two step functions timed base, fast, base, fast: load changes
        on a shared machine hit both."""
        dt = [timeit(f, args.bench_seconds / 2) for f in (base, fast, base, fast)]
        return (dt[0] + dt[2]) / 2, (dt[1] + dt[3]) / 2

    x = torch.randn(1, 12, 1024)
    z = torch.randn(1, 4, 128)
    c = torch.randn(1, TEXT_DIM + 3)
    t = torch.tensor([500])
    with torch.no_grad():
        f_unet = flops(lambda: unet(z, t, c))
        f_enc = flops(lambda: enc(x, z))
        f_dec = flops(lambda: dec(z))
    print(f"size {args.size}: U-Net {DS.count(unet):,} trainable parameters ({f_unet / 1e6:.1f} MFLOP per forward, "
          f"batch 1); VAE encoder {DS.count(enc):,} ({f_enc / 1e6:.1f} MFLOP), decoder {DS.count(dec):,} "
          f"({f_dec / 1e6:.1f} MFLOP per decode); fp32 files {4 * (DS.count(unet) + DS.count(enc) + DS.count(dec)) / 1e6:.1f} MB")
    print(f"threads {args.threads}; load average {os.getloadavg()[0]:.2f} (shared machine: numbers are noisy)")
    Bv, Bu = args.vae_batch, args.batch
    xs = torch.randn(Bv, 12, 1024)

    def vstep_with(opt):
        def step():
            loss, _ = vae_losses(enc, dec, xs, torch.randn(Bv, 4, 128), 1e-5)
            opt.zero_grad(); loss.backward(); opt.step()
        return step
    vparams = list(enc.parameters()) + list(dec.parameters())
    vbase = vstep_with(torch.optim.AdamW(vparams, 1e-3, foreach=False))
    vfast = vstep_with(torch.optim.AdamW(vparams, 1e-3, foreach=True))
    # baseline = the training step before 2026-12-07 (published cross-attention over the repeated
    # condition token, one AdamW update per tensor)
    db, df = interleaved(vbase, vfast)
    print(f"VAE training step (batch {Bv}): {df * 1000:.0f} ms = {1 / df:.2f} steps/s = {Bv / df:.1f} samples/s "
          f"(per-tensor AdamW {db * 1000:.0f} ms: {db / df:.2f}x)")
    fast_unet = DS.ConditionalUNet(ucfg)
    fast_unet.load_state_dict(unet.state_dict())
    use_reduced_cross_attention(fast_unet)
    zs, ts, cs = torch.randn(Bu, 4, 128), torch.randint(0, 1000, (Bu,)), torch.randn(Bu, TEXT_DIM + 3)

    def ustep_with(net, foreach):
        opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], 1e-3, foreach=foreach)

        def step():
            loss = F.mse_loss(net(zs, ts, cs), zs)
            opt.zero_grad(); loss.backward(); opt.step()
        return step
    ubase, ufast = ustep_with(unet, False), ustep_with(fast_unet, True)
    db, df = interleaved(ubase, ufast)
    print(f"U-Net training step (batch {Bu}): {df * 1000:.0f} ms = {1 / df:.2f} steps/s = {Bu / df:.1f} samples/s "
          f"(full cross-attention and per-tensor AdamW {db * 1000:.0f} ms: {db / df:.2f}x)")
    unet.eval(); dec.eval()
    with torch.no_grad():
        z2, t2, c2 = torch.randn(2, 4, 128), torch.tensor([500, 500]), torch.randn(2, TEXT_DIM + 3)
        du = timeit(lambda: unet(z2, t2, c2), 2)
        dd = timeit(lambda: dec(z), 2)
    print(f"inference (PyTorch): U-Net forward batch 2 (guidance) {du * 1000:.1f} ms, decode {dd * 1000:.1f} ms; "
          f"25-step DDIM + decode ~{(25 * du + dd):.2f} s, 50-step ~{(50 * du + dd):.2f} s")


# ------------------------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["vae", "unet", "bench"])
    ap.add_argument("--data", help="directory written by diffusion_data.py")
    ap.add_argument("--run", help="run directory: checkpoints, latents, logs")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny", help="model size (new runs only)")
    ap.add_argument("--steps", type=int, default=4000, help="total optimiser steps (also the LR schedule length)")
    ap.add_argument("--max-minutes", type=float, default=10.0, help="stop (and checkpoint) after this much wall time")
    ap.add_argument("--batch", type=int, default=None, help="default: VAE 16, U-Net 64")
    ap.add_argument("--vae-batch", type=int, default=16, help="bench only")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--kl", type=float, default=1e-5, help="VAE KL weight")
    ap.add_argument("--condition-weight", default=None,
                    help="U-Net: sample records of these conditions more often, e.g. atrial_flutter=3,pvc=3")
    ap.add_argument("--p-uncond", type=float, default=0.1, help="probability of the null condition (guidance)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--val", type=int, default=256, help="records held out for the validation loss")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N records")
    ap.add_argument("--stop-at", type=int, default=None,
                    help="checkpoint and stop at this step (to test that resuming is exact)")
    ap.add_argument("--bench-seconds", type=float, default=8.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.batch is None:
        args.batch = 16 if args.stage == "vae" else 64
    if args.stage == "bench":
        return bench(args)
    if not args.data or not args.run:
        ap.error("--data and --run are required")
    os.makedirs(args.run, exist_ok=True)
    (train_vae if args.stage == "vae" else train_unet)(args)


if __name__ == "__main__":
    main()
