#!/usr/bin/env python3
"""How close `uniecg measure` (Sources/UniECG/Measurements) comes to the simulator's ground truth,
per condition, on full 10 s records at 500 Hz with the corpus's noise (issue 6 point 2 bars:
rate within 2 bpm; PR, QRS and QT within 12 ms; axis within 15 degrees):

    python Tools/train/eval_measurements.py --uniecg .build/release/uniecg [--per-condition 10] [--seed 5]

For each quantity: mean signed error (measured - truth, ms / bpm / degrees) and the share within
the bar, over the records where both exist. PR only where the simulator has P waves and one PR
(not atrial fibrillation or flutter); QT only where P waves exist (the F waves of flutter run
through the T wave, and the runtime marks that QT uncertain).
Definitions differ: the simulator takes a wave's edges where the spatial magnitude of the
noiseless beat template reaches 5 % of its peak; the measurement code works on the noisy median
beat (Measurements.swift documents its methods). A mean error far from 0 is a definition offset,
a spread is noise or a failure.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
from ecgsim import CONDITIONS  # noqa: E402

BARS = {"rate": 2.0, "PR": 12.0, "QRS": 12.0, "QT": 12.0, "axis": 15.0}
NAMES = {"rate": "heart rate", "PR": "PR interval", "QRS": "QRS duration", "QT": "QT interval", "axis": "QRS axis"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uniecg", required=True)
    ap.add_argument("--per-condition", type=int, default=10)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--worst", type=int, default=0, help="print this many worst records per quantity")
    args = ap.parse_args()
    conds = args.conditions.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths, truths = [], []
        for ci, cond in enumerate(CONDITIONS):
            if cond not in conds:
                continue
            for k in range(args.per_condition):
                i = ci + len(CONDITIONS) * k
                sig, meta = corpus.make_record(args.seed, i, 0, 0)
                p = os.path.join(tmp, f"{cond}-{i}.npy")
                np.save(p, sig.astype(np.float32))
                paths.append(p)
                truths.append((cond, i, meta["truth"]))
        out = subprocess.run([args.uniecg, "measure", "--sample-rate", "500", "--json"] + paths,
                             capture_output=True, text=True)
        lines = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    if len(lines) != len(paths):
        sys.exit(f"uniecg measure gave {len(lines)} results for {len(paths)} records: {out.stderr[-500:]}")
    for (cond, i, t), m in zip(truths, lines):
        if "error" in m:
            rows.append(dict(cond=cond, i=i, error=m["error"]))
            continue
        f = {x["name"]: x["value"] for x in m["findings"]}
        p = t.get("p_waves", True) and t.get("pr_ms") is not None
        truth = {"rate": t["heart_rate_bpm"], "PR": t.get("pr_ms") if p else None, "QRS": t["qrs_ms"],
                 "QT": t["qt_ms"] if t.get("p_waves", True) else None, "axis": t["axis_deg"]}
        row = dict(cond=cond, i=i)
        for q, tv in truth.items():
            mv = f.get(NAMES[q])
            if tv is None or mv is None:
                row[q] = None if tv is None else "missing"
                continue
            e = mv - tv
            if q == "axis":
                e = (e + 180) % 360 - 180
            row[q] = e
        rows.append(row)
    print(f"uniecg measure against the simulator's truth, corpus seed {args.seed}, {args.per_condition} per condition "
          f"(mean signed error / share within the bar; '-' where not applicable; missing = not measured)")
    head = f"{'condition':24s}" + "".join(f"{q + ' (' + str(int(b)) + ')':>22s}" for q, b in BARS.items())
    print(head)
    print("-" * len(head))
    totals = {q: [] for q in BARS}
    missing = {q: 0 for q in BARS}
    for cond in conds:
        rs = [r for r in rows if r["cond"] == cond]
        cells = []
        for q, bar in BARS.items():
            es = [r[q] for r in rs if isinstance(r.get(q), (int, float))]
            miss = sum(1 for r in rs if r.get(q) == "missing" or "error" in r)
            missing[q] += miss
            totals[q] += es
            if not es and not miss:
                cells.append(f"{'-':>22s}")
                continue
            within = np.mean([abs(e) <= bar for e in es] + [False] * miss)
            cells.append(f"{(np.mean(es) if es else float('nan')):+8.1f} {within:5.2f}" + (f" ({miss} miss)" if miss else " " * 9))
        print(f"{cond:24s}" + "".join(cells))
    print("-" * len(head))
    print(f"{'all':24s}" + "".join(
        f"{np.mean(totals[q]):+8.1f} {np.mean([abs(e) <= b for e in totals[q]] + [False] * missing[q]):5.2f}" + " " * 9
        for q, b in BARS.items()))
    if args.worst:
        for q in BARS:
            rs = sorted((r for r in rows if isinstance(r.get(q), (int, float))), key=lambda r: -abs(r[q]))[:args.worst]
            print(f"worst {q}: " + ", ".join(f"{r['cond']}#{r['i']} {r[q]:+.0f}" for r in rs))


if __name__ == "__main__":
    main()
