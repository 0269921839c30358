#!/usr/bin/env python3
"""Training data of the unified model (issue 7 point 4), built on top of stage 1's data.

    python Tools/train/stage2_data.py --stage1 WORK/data --out WORK/data2 --uniecg .build/release/uniecg
                                      [--count 6000] [--seed 1]

Stage 1's shard k holds records i of `corpus.py --seed S` at 12 x 1024 (102.4 Hz) with their
objectives and MiniLM embeddings. For each record this script re-simulates the 500 Hz signal
from its seed (corpus.make_record), has the project's measurement code read it
(`uniecg measure --json`, many records per call), and keeps:
  signals      float16 (n, 12, 1024)   the signal encoder's input (102.4 Hz, as stage 1)
  scalars      float32 (n, 3)          sex, age, rate (simulator truth: what generation asks for)
  condition    int16 (n,)
  evidence     str (n,)                the evidence block exactly as `uniecg measure --evidence`
  explanations str (n, E)              explain_text.explanation from the measured values
  objectives   str (n, K), objective_embeddings float32 (n, K, 384)
  consistent   bool (n,)               explain_text.consistent (False: used for generation only)
Shards are written atomically and kept when they exist (a killed build resumes).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import explain_text  # noqa: E402
from ecgsim import CONDITIONS  # noqa: E402


def measure(uniecg, signals):
    """`uniecg measure --json` of each (12, 5000) 500 Hz signal, via NPY files in one call."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for j, s in enumerate(signals):
            p = os.path.join(tmp, f"{j:05d}.npy")
            np.save(p, np.asarray(s, np.float32))
            paths.append(p)
        out = subprocess.run([uniecg, "measure", "--sample-rate", "500", *paths], capture_output=True, text=True)
        lines = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    if len(lines) != len(signals):
        raise RuntimeError(f"uniecg measure returned {len(lines)} results for {len(signals)} records: {out.stderr[-500:]}")
    return lines


def build_shard(stage1_path, out_path, uniecg, seed, n_expl):
    d = np.load(stage1_path)
    ids = [str(x) for x in d["ids"]]
    idx = [int(x.rsplit("-", 1)[1]) for x in ids]
    signals500, metas = [], []
    for i in idx:
        sig, meta = corpus.make_record(seed, i, 0, 0)
        signals500.append(sig)
        metas.append(meta)
    results = measure(uniecg, signals500)
    evidence, expl, ok = [], [], []
    for i, meta, r in zip(idx, metas, results):
        cond = meta["condition"]
        if "error" in r:
            evidence.append("")
            expl.append([""] * n_expl)
            ok.append(False)
            continue
        v = explain_text.measured_values(r["findings"])
        good = explain_text.consistent(cond, v)
        rng = np.random.default_rng([seed, i, 2000])
        evidence.append(r["evidence"])
        expl.append([explain_text.explanation(rng, cond, v) if good else "" for _ in range(n_expl)])
        ok.append(good)
    texts = d["texts"]
    obj = d["objective"]
    tmp = out_path + ".tmp.npz"
    np.savez(tmp, signals=d["signals"], scalars=d["scalars"], condition=d["condition"], ids=d["ids"],
             evidence=np.array(evidence), explanations=np.array(expl), consistent=np.array(ok),
             objectives=texts[obj], objective_embeddings=d["embeddings"][obj])
    os.replace(tmp, out_path)
    return int(np.sum(ok)), len(ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage1", required=True, help="stage 1 data directory (diffusion_data.py --out)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--uniecg", required=True, help="a built uniecg binary (swift build -c release)")
    ap.add_argument("--count", type=int, default=6000, help="records (whole stage 1 shards, from the first)")
    ap.add_argument("--seed", type=int, default=1, help="the corpus seed stage 1 used")
    ap.add_argument("--explanations", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    shards = sorted(f for f in os.listdir(args.stage1) if f.startswith("dshard-") and f.endswith(".npz"))
    t0, done, kept, total = time.time(), 0, 0, 0
    per_condition = {}
    for name in shards:
        if done >= args.count:
            break
        out = os.path.join(args.out, name.replace("dshard", "ushard"))
        if not os.path.exists(out):
            build_shard(os.path.join(args.stage1, name), out, args.uniecg, args.seed, args.explanations)
        d = np.load(out)
        done += len(d["ids"])
        for c, ok in zip(d["condition"], d["consistent"]):
            a = per_condition.setdefault(CONDITIONS[c], [0, 0])
            a[0] += int(ok)
            a[1] += 1
        kept += int(d["consistent"].sum())
        total += len(d["ids"])
        print(f"{out}: {done} records, {kept}/{total} consistent, {time.time() - t0:.0f} s", flush=True)
    print("consistent share per condition: " +
          ", ".join(f"{c} {a[0] / a[1]:.2f}" for c, a in per_condition.items()), flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"records": total, "consistent": kept, "per_condition": per_condition,
                   "stage1": os.path.abspath(args.stage1), "seed": args.seed}, f, indent=1)


if __name__ == "__main__":
    main()
