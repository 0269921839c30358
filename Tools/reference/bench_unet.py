#!/usr/bin/env python3
"""The published DiffuSETS U-Net shape (7 levels, kernel 7, D = 1536, 4 x 128 latent), random
weights: PyTorch CPU fp32 forward and then the C core's (`test_unet --bench` on the same weights
converted by `uniecg-convert`, q8 and f32) in one run, so the ratios in BENCHMARKS.md come from
the same machine state. Batch 1 is a sampling step without guidance, batch 2 a guided step
(condition and null condition). No test depends on these times.

    /opt/uniecg-venv/bin/python Tools/reference/bench_unet.py [--repeats 20]
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
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import diffusets as DS  # noqa: E402
from make_diffusets_fixtures import randomize, unet_tensors  # noqa: E402


def time_torch(unet, cfg, repeats):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, cfg.channels, cfg.latent_length, generator=g)
    cond = torch.zeros(2, cfg.cond_dim + cfg.extra_conditions)
    cond[0, :cfg.cond_dim] = torch.randn(cfg.cond_dim, generator=g)
    t = torch.full((2,), 500, dtype=torch.long)
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (1, 2):
            with torch.inference_mode():
                unet(x[:batch], t[:batch], cond[:batch])
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    unet(x[:batch], t[:batch], cond[:batch])
                    times.append(time.perf_counter() - t0)
            times.sort()
            rows.append((threads, batch, times[0] * 1e3, times[len(times) // 2] * 1e3))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--convert", default=os.path.join(ROOT, ".build", "release", "uniecg-convert"))
    ap.add_argument("--test-unet", default=os.path.join(ROOT, "CRuntime", "tests", "build", "cc", "test_unet"))
    args = ap.parse_args()
    for path in (args.convert, args.test_unet):
        if not os.path.exists(path):
            sys.exit(f"{path} does not exist (see --help)")
    cfg = DS.UNetConfig()
    unet = randomize(DS.ConditionalUNet(cfg), 20261207).eval()
    print(f"published U-Net shape, random weights, {sum(p.numel() for p in unet.parameters()):,} parameters; "
          f"best and median of {args.repeats} forwards after one warm-up, ms")
    print(f"| PyTorch {torch.__version__} fp32 | threads | batch | best ms | median ms |\n|---|---|---|---|---|")
    for threads, batch, best, median in time_torch(unet, cfg, args.repeats):
        print(f"| | {threads} | {batch} | {best:.2f} | {median:.2f} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "unet")
        os.makedirs(src)
        save_file(unet_tensors(unet), os.path.join(src, "unet.safetensors"), metadata={"format": "pt"})
        config = dict(unet=cfg.to_dict(), vae=None, scheduler=None, guidance=None,
                      weights=dict(omitted_from_unet_safetensors=f"*.time_emb.embeddings = time_table("
                                                                 f"{cfg.train_steps}, {cfg.time_dim}, {cfg.time_constant})"))
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(config, f)
        for quant in ("q8", "none"):
            out = os.path.join(tmp, f"unet-{quant}.uecg")
            subprocess.run([args.convert, src, "-o", out, "--quant", quant], check=True, capture_output=True)
            print(f"C core, {quant} ({os.path.getsize(out) / 1e6:.1f} MB file):", flush=True)
            r = subprocess.run([args.test_unet, "--bench", out, str(args.repeats)], capture_output=True, text=True)
            print(r.stdout.replace(out, f"unet-{quant}"), end="", flush=True)
            if r.returncode:
                sys.exit(r.stderr)


if __name__ == "__main__":
    main()
