#!/usr/bin/env python3
"""Cases for the Swift criteria (Sources/UniECG/Measurements/Criteria.swift), labelled by the
Python rules that label the simulator's records for training and scoring
(explain_text._signatures), so the runtime's "criteria met" agree with them:

    python Tools/train/make_criteria_cases.py --uniecg .build/release/uniecg \
        --out Tests/Fixtures/bundled/criteria_cases.jsonl [--per-condition 10] [--seed 7]

One JSON object per line: the measured values the rules read (from `uniecg measure --json` on a
simulated 10 s record) and the findings they meet (sorted ids; [] for normal sinus rhythm, null
when rate or QRS is missing). Records: --per-condition of each of the 17 conditions of
`corpus.py --seed SEED`, plus copies of some with one value moved across a threshold, so every
rule is exercised on both sides."""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import explain_text  # noqa: E402
from ecgsim import CONDITIONS  # noqa: E402


def case(v):
    s = explain_text._signatures(v)
    return {"values": v, "criteria": None if s is None else sorted(s)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uniecg", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-condition", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for ci in range(len(CONDITIONS)):
            for k in range(args.per_condition):
                i = ci + len(CONDITIONS) * k
                sig, _ = corpus.make_record(args.seed, i, 0, 0)
                paths.append(os.path.join(tmp, f"r{i}.npy"))
                np.save(paths[-1], sig.astype(np.float32))
        out = subprocess.run([args.uniecg, "measure", "--sample-rate", "500", "--json"] + paths,
                             capture_output=True, text=True, check=True)
    values = [explain_text.measured_values(json.loads(line)["findings"]) for line in out.stdout.splitlines() if line.strip()]
    cases = [case(v) for v in values]
    # Threshold crossings: the same records with one value moved.
    rng = np.random.default_rng(args.seed)
    edits = [("rate", 59.0), ("rate", 101.0), ("pr", 201.0), ("pr", 199.0), ("qrs", 121.0), ("qrs", 119.0),
             ("axis", -31.0), ("axis", 91.0), ("qtc", 471.0), ("p", False), ("p", None), ("rr_cv", 0.2),
             ("premature", 2), ("limb", 0.4), ("chest", 0.9), ("v1", 5.0), ("rate", None), ("qrs", None)]
    for key, value in edits:
        for j in rng.choice(len(values), 4, replace=False):
            v = copy.deepcopy(values[j])
            v[key] = value
            cases.append(case(v))
    with open(args.out, "w") as f:
        for c in cases:
            f.write(json.dumps(c) + "\n")
    found = {}
    for c in cases:
        for s in c["criteria"] or ["(none)" if c["criteria"] == [] else "(unmeasurable)"]:
            found[s] = found.get(s, 0) + 1
    print(f"{len(cases)} cases -> {args.out}; findings met: {dict(sorted(found.items()))}")


if __name__ == "__main__":
    main()
