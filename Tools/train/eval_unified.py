#!/usr/bin/env python3
"""Quality bars of the bundled teaching model (issue 7 point 6), measured on the product itself:
the converted .uecg run by the `uniecg` binary (q8 weights, C kernels), on held-out synthetic
records. Prints tables and a summary; --json writes the numbers.

    python Tools/train/eval_unified.py --model Models/uniecg-tiny.uecg --uniecg .build/release/uniecg
           [--per-condition 8] [--seed 2] [--json out.json]

Held-out data: records of `corpus.py --seed 2` (training used seed 1), `--per-condition` of each
of the 17 conditions.

Explain: the 10 s record at 500 Hz goes to `uniecg explain --json` (greedy). Scored:
  named     the impression names the record's condition (explain_text.named_condition)
  no contradiction  every number the explanation states is the evidence block's value for the
            quantity the sentence is about (explain_text.contradictions: "QRS 132 ms" next to
            "QRS: 156 ms" is a contradiction even if 132 is the PR), and the named condition agrees
            with what the measurements show (explain_text.consistent): a text that names a
            first-degree AV block next to a PR of 160 ms contradicts its table. Scored twice: on
            the model's whole text (`model_text`) and on the text `uniecg explain` shows, from
            which the runtime's evidence check (EvidenceCheck.swift, the same number rules) has
            left out the sentences whose numbers disagree with the evidence and an impression
            whose simplified criteria the measurements do not meet (the same rules as
            `consistent`); the model's text must have an impression, the shown text may have
            lost it (it then contradicts nothing; `named_shown` counts how often it still names
            the record's condition)
Both are reported over all records and over the records whose measurements support their label
(on the others even a perfect reader of the evidence block would disagree with the label).

Generate: the record's first objective goes to `uniecg generate` (the model file's sampler, steps
and guidance unless --sampler/--steps/--guidance say otherwise; seed = record index; by default
the product's best of up to 16 samples, stopping at the first that meets both asks: fewest misses of the measured
criteria of the finding the model's intent head reads from the objective and of a rate within
10 % of the requested, then the nearest rate; --candidates 1 scores single draws); the result is measured with
`uniecg measure --json`. Scored:
  rate      measured rate within 10 % of the rate the objective asks for (objectives with a rate)
  rhythm    the measurement code recognises the requested rhythm or finding: the measured
            signature (explain_text) holds the condition (sinus rhythm: no other finding)

Photos (--photos, instead of the two above): each held-out record is drawn on ECG paper as
image_data.py draws training photos (`uniecg plot`, rsvg-convert at 1280 px) and photographed
once with image_data's distortions (draws from default_rng([seed, i, 3000]), a held-out seed);
the clean page and the photo go to `uniecg explain --image FILE --json` (no record). Scored:
  named     the shown explanation's impression names the record's condition
  numbers   sentences the runtime left out for stating a number (nothing is measured in a photo)
"""
import argparse
import json
import os
import re
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

def no_contradiction(expl, evidence, condition_said, values, need_impression=True):
    wrong = explain_text.contradictions(expl, evidence)
    if wrong:
        return False, "; ".join(f"{why} ({sentence})" for sentence, why in wrong[:3])
    if condition_said is None:
        # The model's text must conclude; in the shown text the runtime may have left out an
        # impression the measurements do not meet, and a text without one contradicts nothing.
        return (False, "no impression") if need_impression else (True, "")
    if not explain_text.consistent(condition_said, values):
        return False, f"names {condition_said}, which the measurements do not show"
    return True, ""


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def photo_eval(args):
    import image_data
    from PIL import Image
    rows, t0 = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for ci, cond in enumerate(CONDITIONS):
            for k in range(args.per_condition):
                i = ci + len(CONDITIONS) * k
                sig, _ = corpus.make_record(args.seed, i, 0, 0)
                times = dict.fromkeys(image_data.STAGES, 0.0)
                clean = image_data.render(args.uniecg, sig, "ecg", 1280, tmp, times)
                photo, _ = image_data.photograph(clean, np.random.default_rng([args.seed, i, 3000]))
                row = {"condition": cond, "index": i}
                for kind, img in (("clean", clean), ("photo", photo)):
                    path = os.path.join(tmp, f"{kind}.png")
                    Image.fromarray(np.asarray(img)).save(path)
                    r = run([args.uniecg, "explain", "--image", path, "--json", "--model", args.model])
                    if r.returncode != 0:
                        row[kind + "_error"] = r.stderr.strip()[-300:]
                        continue
                    out = json.loads(r.stdout)
                    said = explain_text.named_condition(out["explanation"])
                    row.update({kind + "_said": said, kind + "_named": said == cond, kind + "_left_out": len(out["left_out"])})
                rows.append(row)
            done = [x for x in rows if x["condition"] == cond]
            print(f"{cond:24s} named clean {np.mean([x.get('clean_named', False) for x in done]):.2f}  "
                  f"photo {np.mean([x.get('photo_named', False) for x in done]):.2f}  "
                  f"said (photo) {[x.get('photo_said') for x in done][:4]}  [{time.time() - t0:.0f} s]", flush=True)
    summary = {"records": len(rows),
               "named_clean": float(np.mean([x.get("clean_named", False) for x in rows])),
               "named_photo": float(np.mean([x.get("photo_named", False) for x in rows])),
               "sentences_left_out": int(sum(x.get("clean_left_out", 0) + x.get("photo_left_out", 0) for x in rows)),
               "seconds": round(time.time() - t0, 1)}
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--uniecg", required=True)
    ap.add_argument("--per-condition", type=int, default=8)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model file's)")
    ap.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp_2m"], default=None,
                    help="sampler (default: the model file's)")
    ap.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model file's)")
    ap.add_argument("--generate-only", action="store_true", help="skip the explain half")
    ap.add_argument("--explain-only", action="store_true", help="skip the generate half")
    ap.add_argument("--candidates", type=int, default=None,
                    help="samples per objective (default: uniecg generate's, up to 16: best by the measured criteria and rate)")
    ap.add_argument("--photos", action="store_true", help="score the photo path instead (module docstring)")
    ap.add_argument("--conditions", nargs="+", choices=CONDITIONS, help="only these conditions (explain and generate)")
    ap.add_argument("--json")
    ap.add_argument("--show", type=int, default=3, help="print this many explanations")
    args = ap.parse_args()
    if args.photos:
        return photo_eval(args)
    t0 = time.time()
    rows = []
    shown = 0
    with tempfile.TemporaryDirectory() as tmp:
        for ci, cond in enumerate(CONDITIONS):
            if args.conditions and cond not in args.conditions:
                continue
            for k in range(args.per_condition):
                i = ci + len(CONDITIONS) * k          # corpus record i has condition i % 17
                sig, meta = corpus.make_record(args.seed, i, 2, 0)
                truth = meta["truth"]
                path = os.path.join(tmp, f"r{i}.npy")
                np.save(path, sig.astype(np.float32))
                row = {"condition": cond, "index": i}
                r = None if args.generate_only else run(
                    [args.uniecg, "explain", path, "--sample-rate", "500", "--json", "--model", args.model])
                if r is None:
                    pass
                elif r.returncode != 0:
                    row.update(explain_error=r.stderr.strip()[-300:])
                else:
                    out = json.loads(r.stdout)
                    values = explain_text.measured_values(out["findings"])
                    said = explain_text.named_condition(out["model_text"])
                    ok, why = no_contradiction(out["model_text"], out["evidence"], said, values)
                    said_shown = explain_text.named_condition(out["explanation"])
                    ok_shown, why_shown = no_contradiction(out["explanation"], out["evidence"], said_shown, values,
                                                           need_impression=False)
                    row.update(named=said == cond, said=said, named_shown=said_shown == cond, supported=explain_text.consistent(cond, values),
                               no_contradiction=ok, why=why, no_contradiction_shown=ok_shown, why_shown=why_shown,
                               left_out=len(out["left_out"]))
                    if shown < args.show:
                        print(f"--- {cond} (record {i})\n{out['evidence']}\n>>> {out['explanation']}\n", flush=True)
                        shown += 1
                if args.explain_only:
                    row.update(asks_rate=False)
                    rows.append(row)
                    continue
                objective = meta["objectives"][0]
                hr = int(round(truth["heart_rate_bpm"]))
                asks_rate = re.search(rf"(?<!\d){hr}(?!\d)", objective) is not None
                base = os.path.join(tmp, f"g{i}")
                g = run([args.uniecg, "generate", objective, "--model", args.model, "-o", base, "--seed", str(i)]
                        + (["--steps", str(args.steps)] if args.steps else [])
                        + (["--sampler", args.sampler] if args.sampler else [])
                        + (["--guidance", str(args.guidance)] if args.guidance else [])
                        + (["--candidates", str(args.candidates)] if args.candidates else []))
                row.update(objective=objective, asks_rate=asks_rate, requested_rate=hr)
                if g.returncode != 0:
                    row.update(generate_error=(g.stderr.strip() or g.stdout.strip())[-300:])
                else:
                    m = run([args.uniecg, "measure", base + ".hea", "--json"])
                    if m.returncode != 0:
                        row.update(generated_rate=None, rate_ok=False, rhythm_ok=False, generated_error=m.stderr.strip()[-200:])
                    else:
                        gm = json.loads(m.stdout)
                        gv = explain_text.measured_values(gm["findings"])
                        sig_set = explain_text._signatures(gv) or set()
                        rate = gv["rate"]
                        want = {cond} - {"normal_sinus_rhythm"}
                        rhythm_ok = (cond in sig_set) if want else not sig_set
                        drawn = re.search(r"kept sample \d+ of (\d+) drawn", g.stdout)
                        row.update(generated_rate=rate, rate_ok=rate is not None and abs(rate - hr) <= 0.1 * hr,
                                   rhythm_ok=rhythm_ok, generated_signature=sorted(sig_set),
                                   only_asked=rhythm_ok and not (sig_set - {cond}),
                                   drawn=int(drawn.group(1)) if drawn else 1)
                rows.append(row)
            done = [x for x in rows if x["condition"] == cond]
            print(f"{cond:24s} named {np.mean([x.get('named', False) for x in done]):.2f}  "
                  f"no-contradiction {np.mean([x.get('no_contradiction', False) for x in done]):.2f} "
                  f"(shown {np.mean([x.get('no_contradiction_shown', False) for x in done]):.2f})  "
                  f"rate<=10% {np.mean([x.get('rate_ok', False) for x in done if x['asks_rate']] or [np.nan]):.2f} "
                  f"(of {sum(x['asks_rate'] for x in done)})  rhythm {np.mean([x.get('rhythm_ok', False) for x in done]):.2f}  "
                  f"[{time.time() - t0:.0f} s]", flush=True)

    def share(key, subset):
        xs = [x.get(key, False) for x in subset]
        return float(np.mean(xs)) if xs else float("nan"), len(xs)
    supported = [x for x in rows if x.get("supported")]
    summary = {
        "records": len(rows),
        "named_all": share("named", rows), "named_supported": share("named", supported),
        "named_shown": share("named_shown", rows),
        "no_contradiction_all": share("no_contradiction", rows),
        "no_contradiction_shown": share("no_contradiction_shown", rows),
        "sentences_left_out": int(sum(x.get("left_out", 0) for x in rows)),
        "rate_within_10pct": share("rate_ok", [x for x in rows if x["asks_rate"]]),
        "rhythm_recognised": share("rhythm_ok", rows),
        # recognised and meeting no other finding's criteria: a clean teaching example
        "rhythm_recognised_alone": share("only_asked", rows),
        "mean_samples_drawn": float(np.mean([x["drawn"] for x in rows if "drawn" in x])) if any("drawn" in x for x in rows) else None,
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
