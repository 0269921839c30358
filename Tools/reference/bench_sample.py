#!/usr/bin/env python3
"""A whole 12-lead 10 s sample at the published DiffuSETS shapes (the 7-level U-Net and the VAE
decoder, random weights): STEPS DDIM steps and one decode, guided (each step one batch-2 U-Net
forward: condition and null condition) and unguided (batch 1, as ANCHORS.md's "50-step DDIM +
decode"). PyTorch CPU fp32 with diffusers' DDIMScheduler first, then the C
core on the same weights converted by `uniecg-convert` (q8), `test_unet --bench-sample`, 1 and 2
threads, in one run, so the ratios in BENCHMARKS.md come from the same machine state. No test
depends on these times.

    /opt/uniecg-venv/bin/python Tools/reference/bench_sample.py [--repeats 3] [--steps 50]
        [--convert .build/release/uniecg-convert] [--test-unet CRuntime/tests/build/cc/test_unet]

Both binaries must exist (`swift build -c release`, `make -C CRuntime/tests`).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from diffusers import DDIMScheduler
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import diffusets as DS  # noqa: E402
from make_diffusets_fixtures import GUIDANCE, SCHEDULER, build, unet_tensors, vae_tensors  # noqa: E402


def torch_sample(unet, dec, cfg, steps, guidance, g):
    sched = DDIMScheduler(**SCHEDULER)
    sched.set_timesteps(steps)
    cdim = cfg.cond_dim + cfg.extra_conditions
    cond = torch.zeros(2, cdim)  # row 1 stays the null condition
    cond[0, :cfg.cond_dim] = torch.randn(cfg.cond_dim, generator=g)
    sample = torch.randn(1, cfg.channels, cfg.latent_length, generator=g)
    for t in sched.timesteps:
        if guidance == 1.0:  # no guidance: one batch-1 forward, as the C sampler does
            e = unet(sample, torch.tensor([int(t)]), cond[:1])
        else:
            e_c, e_u = unet(sample.repeat(2, 1, 1), torch.tensor([int(t), int(t)]), cond).chunk(2)
            e = e_u + guidance * (e_c - e_u)
        sample = sched.step(e, t, sample, eta=0.0).prev_sample
    return dec(sample)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--convert", default=os.path.join(ROOT, ".build", "release", "uniecg-convert"))
    ap.add_argument("--test-unet", default=os.path.join(ROOT, "CRuntime", "tests", "build", "cc", "test_unet"))
    args = ap.parse_args()
    for path in (args.convert, args.test_unet):
        if not os.path.exists(path):
            sys.exit(f"{path} does not exist (see --help)")
    ucfg, vcfg = DS.UNetConfig(), DS.VAEConfig()
    unet, enc, dec = build(ucfg, vcfg, 20261208)
    print(f"published shapes, random weights: {args.steps} DDIM steps (guidance {GUIDANCE}: batch 2 per step; "
          f"1: batch 1) + one decode; best and median of {args.repeats} samples after one warm-up, ms")
    print(f"| PyTorch {torch.__version__} fp32 | guidance | threads | best ms | median ms | decode best ms |\n"
          f"|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 4, 128, generator=g)
    for guidance in (GUIDANCE, 1.0):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                torch_sample(unet, dec, ucfg, args.steps, guidance, g)
                times, decodes = [], []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    torch_sample(unet, dec, ucfg, args.steps, guidance, g)
                    times.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    dec(z)
                    decodes.append(time.perf_counter() - t0)
            times.sort()
            print(f"| | {guidance:g} | {threads} | {times[0] * 1e3:.1f} | {times[len(times) // 2] * 1e3:.1f} | "
                  f"{min(decodes) * 1e3:.1f} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        save_file(unet_tensors(unet), os.path.join(src, "unet.safetensors"), metadata={"format": "pt"})
        save_file(vae_tensors(enc, dec), os.path.join(src, "vae.safetensors"), metadata={"format": "pt"})
        config = dict(unet=ucfg.to_dict(), vae=vcfg.to_dict(),
                      scheduler=dict(SCHEDULER, kind="ddim", steps=args.steps, eta=0.0),
                      guidance=dict(scale=GUIDANCE, formula="eps_uncond + scale * (eps_cond - eps_uncond)"),
                      weights=dict(omitted_from_unet_safetensors=f"*.time_emb.embeddings = time_table("
                                                                 f"{ucfg.train_steps}, {ucfg.time_dim}, {ucfg.time_constant})"))
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(config, f)
        out = os.path.join(tmp, "sample-q8.uecg")
        subprocess.run([args.convert, src, "-o", out, "--quant", "q8"], check=True, capture_output=True)
        for guidance in (GUIDANCE, 1.0):
            print(f"C core, q8 ({os.path.getsize(out) / 1e6:.1f} MB file), guidance {guidance:g}:", flush=True)
            r = subprocess.run([args.test_unet, "--bench-sample", out, str(args.repeats), str(args.steps), str(guidance)],
                               capture_output=True, text=True)
            print(r.stdout, end="", flush=True)
            if r.returncode:
                sys.exit(r.stderr)


if __name__ == "__main__":
    main()
