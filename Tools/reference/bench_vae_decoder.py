#!/usr/bin/env python3
"""The published DiffuSETS VAE decoder shape (4 x 128 -> 12 x 1024, widths 128/256/512), random
weights: PyTorch CPU fp32 and then the C core (`test_vae --bench`, q8 and f32) in one run, so the
ratio in BENCHMARKS.md comes from the same machine state. No test depends on these times.

    /opt/uniecg-venv/bin/python Tools/reference/bench_vae_decoder.py [--repeats 7] [--test-vae PATH]

PATH defaults to CRuntime/tests/build/cc/test_vae (`make -C CRuntime/tests` builds it).
"""
import argparse
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import diffusets as DS  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--test-vae", default=os.path.join(HERE, "..", "..", "CRuntime", "tests", "build", "cc", "test_vae"))
    args = ap.parse_args()
    torch.manual_seed(0)
    decoder = DS.VAEDecoder(DS.VAEConfig()).eval()
    z = torch.randn(1, 4, 128)
    print("| PyTorch fp32 | threads | best ms | median ms |\n|---|---|---|---|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            decoder(z)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                decoder(z)
                times.append(time.perf_counter() - t0)
        times.sort()
        print(f"| torch {torch.__version__} | {threads} | {times[0] * 1e3:.1f} | {times[len(times) // 2] * 1e3:.1f} |")
    sys.stdout.flush()
    subprocess.run([args.test_vae, "--bench", str(args.repeats)], check=True)


if __name__ == "__main__":
    main()
