#!/usr/bin/env python3
"""Speed of the bundled model in the product against the same weights in PyTorch, timed in one
script on the same machine and threads (issue 5 point 7 for our default configuration).

    python Tools/train/bench_unified.py --stage1 WORK/stage1/export --stage2 WORK/stage2/export \
        --model Models/uniecg-tiny.uecg --uniecg .build/release/uniecg [--threads 1] [--repeat 5]

PyTorch side (fp32, torch.set_num_threads): a 25-step guided DDIM sample (U-Net on a batch of
2: conditional + null) and the VAE decode (export_diffusion.sample); the language model
(transformers LlamaForCausalLM, KV cache) reading a 150-token prompt and generating 100 tokens
greedily. uniecg side (q8 weights, the C kernels): `uniecg generate` (its "N steps in X s,
decoded in Y s" line) and `uniecg explain` (its tokens/s line, which times the generated tokens;
prompt time is reported separately by the library and not on that line). Medians of --repeat
interleaved runs; ratio = PyTorch time / uniecg time (> 1: uniecg is faster). Process start-up
and model loading are not in either number.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from export_diffusion import load_export, sample  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage1", required=True)
    ap.add_argument("--stage2", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--uniecg", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--record", default="Models/examples/stemi_inferior.hea")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    unet, _, dec, cfg = load_export(args.stage1)
    from transformers import LlamaForCausalLM
    lm = LlamaForCausalLM.from_pretrained(args.stage2, torch_dtype=torch.float32).eval()
    cond = torch.randn(1, cfg["unet"]["cond_dim"] + 3)
    cond[0, -3:] = torch.tensor([1.0, 60.0, 75.0])
    prompt = torch.randint(10, 1000, (1, 150))

    times = {"torch_sample": [], "torch_tokens": [], "ours_sample": [], "ours_decode": [], "ours_tokens": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            with torch.no_grad():
                t0 = time.perf_counter()
                sample(unet, dec, cond, cfg["scheduler"], 25, 2.0, torch.Generator().manual_seed(0))
                times["torch_sample"].append(time.perf_counter() - t0)
                out = lm(prompt, use_cache=True)
                past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
                t0 = time.perf_counter()
                for _ in range(100):
                    out = lm(nxt, past_key_values=past, use_cache=True)
                    past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
                times["torch_tokens"].append(100 / (time.perf_counter() - t0))
            g = subprocess.run([args.uniecg, "generate", "An example of atrial flutter.", "--model", args.model,
                                "-o", os.path.join(tmp, "g"), "--steps", "25", "--guidance", "2",
                                "--threads", str(args.threads)], capture_output=True, text=True)
            m = re.search(r"(\d+) steps in ([\d.]+) s, decoded in ([\d.]+) s", g.stderr)
            if not m:
                raise RuntimeError(f"uniecg generate: {g.stderr[-400:]}")
            times["ours_sample"].append(float(m.group(2)) + float(m.group(3)))
            times["ours_decode"].append(float(m.group(3)))
            e = subprocess.run([args.uniecg, "explain", args.record, "--model", args.model, "--threads", str(args.threads)],
                               capture_output=True, text=True)
            m = re.search(r"(\d+) tokens, ([\d.]+) tokens/s", e.stderr)
            if not m:
                raise RuntimeError(f"uniecg explain: {e.stderr[-400:]}")
            times["ours_tokens"].append(float(m.group(2)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"threads {args.threads}, medians of {args.repeat}")
    print(f"25-step guided sample + decode: PyTorch {med['torch_sample'] * 1000:.0f} ms, uniecg {med['ours_sample'] * 1000:.0f} ms "
          f"(decode {med['ours_decode'] * 1000:.0f} ms): {med['torch_sample'] / med['ours_sample']:.1f}x")
    print(f"language model, tokens/s: PyTorch {med['torch_tokens']:.0f}, uniecg {med['ours_tokens']:.0f}: "
          f"{med['ours_tokens'] / med['torch_tokens']:.1f}x")
    print(json.dumps(med))


if __name__ == "__main__":
    main()
