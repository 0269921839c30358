#!/usr/bin/env python3
"""Cases for the Swift evidence check (Sources/UniECG/Measurements/EvidenceCheck.swift), scored by
the Python rules that score the bundled model (explain_text.contradictions), so the runtime
leaves out exactly the sentences the evaluation would count as contradictions:

    python Tools/train/make_evidence_check_cases.py --data WORK/stage2/data \
        --out Tests/Fixtures/bundled/evidence_check_cases.jsonl

One JSON object per line: evidence, text, found = [[sentence, reason], ...]. Texts: training
explanations of the last shard (these agree with their evidence), and copies with one change
each of the kinds a small model makes: a digit of a number changed, an ST value moved to another
lead, a number stated for the wrong quantity, a lead's ST value copied from a neighbour."""
import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import explain_text  # noqa: E402

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def mutations(rng, text):
    out = []
    nums = list(re.finditer(r"(?<![A-Za-z\d.])\d+", text))
    if nums:
        m = nums[rng.integers(len(nums))]
        digit = str((int(m.group()[-1]) + 1 + rng.integers(8)) % 10)
        out.append(text[:m.end() - 1] + digit + text[m.end():])
    st = list(re.finditer(r"\b(I|II|III|aVR|aVL|aVF|V[1-6]) ([-+]\d\.\d\d) mV", text))
    if st:
        m = st[rng.integers(len(st))]
        other = [x for x in LEADS if x != m.group(1)][rng.integers(11)]
        out.append(text[:m.start(1)] + other + text[m.end(1):])
    if "PR interval" in text and "QRS" in text:
        qrs = re.search(r"QRS[^.]*?(\d+) ms", text)
        pr = re.search(r"PR interval[^.]*?(\d+) ms", text)
        if qrs and pr:
            out.append(text[:pr.start(1)] + qrs.group(1) + text[pr.end(1):])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=60, help="records (explanations taken from the last shard)")
    args = ap.parse_args()
    shards = sorted(f for f in os.listdir(args.data) if f.startswith("ushard-"))
    d = np.load(os.path.join(args.data, shards[-1]))
    rng = np.random.default_rng(7)
    picks = [i for i in rng.permutation(len(d["ids"])) if d["consistent"][i]][:args.count]
    cases = []
    for i in picks:
        evidence = str(d["evidence"][i])
        text = str(d["explanations"][i][rng.integers(d["explanations"].shape[1])])
        for t in [text] + mutations(rng, text):
            cases.append(dict(evidence=evidence, text=t,
                              found=[[s, why] for s, why in explain_text.contradictions(t, evidence)]))
    # Texts with no quantity keyword, a sentence split inside a number, and reference limits.
    ev = "rate: 72 bpm\nPR: 150 ms\nQRS: 90 ms\nST: no deviation of 0.1 mV or more"
    for t in ["It lasts 7 seconds.", "Rate 72 bpm; PR 150 ms; QRS 91 ms.", "The ST segment is flat (under 0.1 mV).",
              "Normal rate is 60-100 bpm and this is 72.", "A 12-lead ECG of 10 s. The QRS is 90 ms."]:
        cases.append(dict(evidence=ev, text=t, found=[[s, why] for s, why in explain_text.contradictions(t, ev)]))
    with open(args.out, "w") as f:
        for c in cases:
            f.write(json.dumps(c) + "\n")
    bad = sum(1 for c in cases if c["found"])
    print(f"{len(cases)} cases ({bad} with disagreements) -> {args.out}")


if __name__ == "__main__":
    main()
