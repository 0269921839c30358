#!/usr/bin/env python3
"""Token ids of the bundled model's tokenizer from Hugging Face `tokenizers` (the independent
reference), for the Swift test that checks the converted model file tokenizes the same way:

    python Tools/train/make_tokenizer_cases.py --tokenizer WORK/stage2/run/tokenizer.json \
        --data WORK/stage2/data --out Tests/Fixtures/bundled/tokenizer_cases.jsonl

One JSON object per line: text, ids (encode without added BOS/EOS; special tokens in the text
parsed, as the prompt templates are). Strings: evidence blocks, explanations and objectives of
held-out records (the last shard), the prompt templates filled in (the photo one too), generation answers,
photo explanations, and edge cases (empty, digits, whitespace, non-ASCII)."""
import argparse
import json
import os
import sys

import numpy as np
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import explain_text  # noqa: E402
from ecgsim import CONDITIONS  # noqa: E402
from train_unified import EXPLAIN, GENERATE, PHOTO, PHOTO_QUESTIONS, QUESTIONS, generation_answer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=30)
    args = ap.parse_args()
    tok = Tokenizer.from_file(args.tokenizer)
    last = sorted(f for f in os.listdir(args.data) if f.startswith("ushard-"))[-1]
    d = np.load(os.path.join(args.data, last))
    texts = []
    for i in range(args.count):
        texts += [str(d["evidence"][i]), str(d["explanations"][i][0]), str(d["objectives"][i][0])]
        texts.append(EXPLAIN.format(evidence=d["evidence"][i], question=QUESTIONS[i % len(QUESTIONS)]))
        texts.append(GENERATE.format(objective=d["objectives"][i][1]))
        texts.append(generation_answer(d["scalars"][i]))
    rng = np.random.default_rng(0)
    for c in CONDITIONS:
        texts.append(explain_text.photo_explanation(rng, c))
    texts += [PHOTO.format(question=q) for q in PHOTO_QUESTIONS]
    texts += ["", " ", "0", "007", "12.5 mV", "-30 degrees", "+0.25", "QTc 470", "A-fib at 150/min",
              "naïve façade – 10 µV ± 5 %", "心电图", "tab\tand\nnewline", "   leading spaces", "<ecg><ecg>",
              "<|user|><|end|>", "ecg_gen", "<ecg_gen_3>rate 48 bpm"]
    with open(args.out, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t, "ids": tok.encode(t, add_special_tokens=False).ids}, ensure_ascii=False) + "\n")
    print(f"wrote {len(texts)} cases to {args.out}")


if __name__ == "__main__":
    main()
