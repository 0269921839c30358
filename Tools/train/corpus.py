#!/usr/bin/env python3
"""Synthetic ECG-text corpus: simulated 12-lead records with learning objectives and grounded
explanations, for training the bundled teaching model (issue 7). Synthetic data, not patients.

    python Tools/train/corpus.py --count 10000 --seed 1 --out /path/corpus [--shard-size 1000]

Writes, per shard k:
  shard-0000k.npz    signals: float16 (n, 12, 5000) mV (leads I..V6, 500 Hz, 10 s); ids: str (n,)
  shard-0000k.jsonl  one JSON object per record, same order: id, condition, labels, truth (the
                     simulator's ground truth: rate, intervals, axis, ST per lead, R peaks, ...),
                     objectives (several phrasings asking to generate such an ECG), explanations
                     (several explanations citing the evidence), notice
and manifest.json (counts, seed, timing, bytes). Record i is simulate(condition_i,
rng=default_rng([seed, i])), so any record can be regenerated from (seed, i) alone; conditions
cycle through ecgsim.CONDITIONS, so every shard is balanced.

The numbers in the text come from the simulator's ground truth (exact by construction; see
README.md for how they relate to the project's `uniecg measure`). Every explanation ends with the
educational-aid framing. Text variety: each condition has its own names and synonyms, shared and
specific objective frames, several wordings for each evidence sentence, evidence sentences in
random order, optional demographics, and varied conclusions and notices.
"""

import argparse
import json
import re
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ecgsim import CONDITIONS, LEADS, SimulationError, simulate  # noqa: E402

GENERATOR = "ecgsim-1"

# ------------------------------------------------------------------ names

# Noun phrases for each label (used in objectives and conclusions); the first is the plain name.
NAMES = {
    "sinus_rhythm": ["normal sinus rhythm", "a normal sinus rhythm", "sinus rhythm", "a normal ECG",
                     "a normal 12-lead ECG", "NSR"],
    "sinus_bradycardia": ["sinus bradycardia", "a slow sinus rhythm", "bradycardia of sinus origin",
                          "sinus brady"],
    "sinus_tachycardia": ["sinus tachycardia", "a fast sinus rhythm", "sinus tach",
                          "tachycardia of sinus origin"],
    "atrial_fibrillation": ["atrial fibrillation", "AF", "AFib", "A-fib",
                            "an irregularly irregular rhythm without P waves"],
    "atrial_flutter": ["atrial flutter", "typical atrial flutter", "flutter with sawtooth waves",
                       "AFL"],
    "first_degree_av_block": ["first-degree AV block", "1st degree heart block",
                              "first-degree atrioventricular block", "a prolonged PR interval"],
    "rbbb": ["right bundle branch block", "RBBB", "a complete right bundle branch block",
             "a right bundle branch block pattern"],
    "lbbb": ["left bundle branch block", "LBBB", "a complete left bundle branch block",
             "a left bundle branch block pattern"],
    "left_axis_deviation": ["left axis deviation", "LAD", "a leftward QRS axis",
                            "a left-deviated frontal axis"],
    "right_axis_deviation": ["right axis deviation", "RAD", "a rightward QRS axis",
                             "a right-deviated frontal axis"],
    "pvc": ["premature ventricular complexes", "PVCs", "ventricular ectopic beats",
            "ventricular extrasystoles", "premature ventricular contractions"],
    "stemi_inferior": ["an inferior ST-elevation myocardial infarction", "inferior STEMI",
                       "ST elevation in the inferior leads", "an acute inferior MI pattern"],
    "stemi_anterior": ["an anterior ST-elevation myocardial infarction", "anterior STEMI",
                       "ST elevation in the anterior leads", "an acute anterior MI pattern"],
    "stemi_lateral": ["a lateral ST-elevation myocardial infarction", "lateral STEMI",
                      "ST elevation in the lateral leads", "an acute lateral MI pattern"],
    "st_depression": ["ST depression", "widespread ST depression", "ST-segment depression",
                      "a subendocardial ischaemia pattern"],
    "long_qt": ["a long QT interval", "long QT", "a prolonged QTc", "QT prolongation"],
    "low_voltage": ["low QRS voltage", "low voltage", "a low-voltage ECG", "small QRS complexes"],
}
# The condition shown in objectives: the record's finding if it has one, else its rhythm.
PRIMARY = {c: c for c in CONDITIONS}
PRIMARY["normal_sinus_rhythm"] = "sinus_rhythm"

# ------------------------------------------------------------------ objectives

FRAMES = [
    "Show me {x}.", "Show me an ECG with {x}.", "An example of {x}, please.", "An example of {x}.",
    "Generate a 12-lead ECG of {x}.", "Generate a 12-lead ECG showing {x}.",
    "Can you produce an ECG that shows {x}?", "I'd like to see {x}.",
    "Create a teaching ECG with {x}.", "Draw a 12-lead tracing of {x}.",
    "Give me a practice case of {x}.", "Simulate {x}.", "Make a 10-second 12-lead ECG demonstrating {x}.",
    "For my students: a 12-lead ECG of {x}.", "Please synthesise a 12-lead recording with {x}.",
    "What does {x} look like? Generate one.", "generate {x}", "ecg {x}",
    "I need an example ECG of {x} for a tutorial.", "Produce a case-based learning ECG: {x}.",
]
SPECIFIC = {
    "sinus_rhythm": ["Show me what a normal 12-lead ECG looks like.", "Generate a normal ECG for comparison."],
    "sinus_bradycardia": ["Show a sinus rhythm slower than 60 beats per minute."],
    "sinus_tachycardia": ["Show a sinus rhythm faster than 100 beats per minute."],
    "atrial_fibrillation": ["Show an irregularly irregular rhythm with fibrillatory waves."],
    "atrial_flutter": ["Show sawtooth flutter waves in the inferior leads."],
    "first_degree_av_block": ["Show an ECG with a PR interval longer than 200 ms."],
    "rbbb": ["Show the rSR' pattern in V1 of a right bundle branch block."],
    "lbbb": ["Show broad notched R waves in V6 from a left bundle branch block."],
    "left_axis_deviation": ["Show a QRS axis more negative than -30 degrees."],
    "right_axis_deviation": ["Show a QRS axis beyond +90 degrees."],
    "pvc": ["Show sinus rhythm interrupted by wide premature beats with compensatory pauses."],
    "stemi_inferior": ["Show ST elevation in II, III and aVF with reciprocal change in aVL."],
    "stemi_anterior": ["Show ST elevation across V1 to V4."],
    "stemi_lateral": ["Show ST elevation in I, aVL, V5 and V6."],
    "st_depression": ["Show ST depression in the lateral leads with ST elevation in aVR."],
    "long_qt": ["Show a QTc above 470 ms."],
    "low_voltage": ["Show an ECG whose limb-lead QRS complexes are all under 0.5 mV."],
}
RATE_Q = ["at {hr} bpm", "with a heart rate of about {hr}", "rate around {hr}/min", "at a rate of {hr}",
          "with a ventricular rate near {hr} beats per minute", "({hr} bpm)"]
PATIENT_Q = ["in a {age}-year-old {man}", "for a {age} year old {male} patient", "in a {man} aged {age}",
             "(patient: {sex}, {age} y)", "in a {age}-year-old {male}", "for a {man} of {age}"]
PATIENT_PRE = ["{Age}-year-old {man}: ", "Patient {age} {sexc}. ", "For a {age}-year-old {male}, "]


def _sexwords(sex, rng):
    if sex == "M":
        return {"man": rng.choice(["man", "man", "gentleman"]), "male": "male", "sex": "male", "sexc": "M"}
    return {"man": rng.choice(["woman", "woman", "lady"]), "male": "female", "sex": "female", "sexc": "F"}


def objectives(rng, truth, k):
    """k distinct phrasings; some with rate, some with age/sex, some with both, some plain."""
    primary = PRIMARY[truth["condition"]]
    hr = int(round(truth["heart_rate_bpm"]))
    out, tries = [], 0
    while len(out) < k and tries < 50:
        tries += 1
        specific = rng.random() < 0.12
        if specific:
            text = str(rng.choice(SPECIFIC[primary]))
            base = text.rstrip(".")
            tail = "."
        else:
            x = str(rng.choice(NAMES[primary]))
            if truth["condition"] == "atrial_fibrillation" and hr > 100 and rng.random() < 0.5:
                x += str(rng.choice([" with rapid ventricular response", " with RVR", " with a fast ventricular rate"]))
            frame = str(rng.choice(FRAMES))
            base, tail = frame.split("{x}")[0] + x, frame.split("{x}")[1]
        quals = []
        sw = _sexwords(truth["sex"], rng)
        fill = dict(hr=hr, age=truth["age"], Age=str(truth["age"]), **sw)
        use_rate, use_pat = rng.random() < 0.5, rng.random() < 0.5
        if use_rate:
            quals.append(str(rng.choice(RATE_Q)).format(**fill))
        prefix = ""
        if use_pat:
            if rng.random() < 0.25:
                prefix = str(rng.choice(PATIENT_PRE)).format(**fill)
            else:
                quals.append(str(rng.choice(PATIENT_Q)).format(**fill))
        rng.shuffle(quals)
        joiner = ", " if specific and quals and not quals[0].startswith("(") else " "
        body = base + ("" if not quals else joiner + " ".join(quals))
        text = body + tail      # (question frames: the qualifiers go before the question part)
        if prefix:
            lower = prefix.endswith((", ", ": ")) and not text.split(" ")[0].isupper()
            text = prefix + (text[0].lower() + text[1:] if lower else text)
        text = re.sub(r"\b([Aa]) (8\d|18|11)\b", r"\1n \2", text)     # "an 84-year-old"
        if text not in out:
            out.append(text)
    return out


# ------------------------------------------------------------------ explanations

def _pick(rng, options, **kw):
    return str(rng.choice(options)).format(**kw)


def _fmt_st(truth, leads):
    return ", ".join(f"{truth['st_mv'][n]:+.2f} mV in {n}" for n in leads)


def _fmt_mm(v):
    return f"{abs(v) * 10:.1f} mm"


def evidence(rng, truth):
    """Evidence as groups of sentences (a group stays together and in order, e.g. the rate and
    what it means; the groups are shuffled). Every claim is decided from the ground truth with
    the same thresholds the labels use, so no sentence can contradict the record."""
    groups = []
    s = []

    def close():
        nonlocal s
        if s:
            groups.append(s)
        s = []

    t = truth
    labels = t["labels"]
    hr = t["heart_rate_bpm"]
    hr_i = int(round(hr))
    rr = t["rr_ms"]
    nbeats = len(t["r_peaks"])
    cv = t["rr_cv"]
    # rate
    s.append(_pick(rng, [
        "The heart rate is {hr} bpm (mean RR {rr} ms).",
        "Ventricular rate: about {hr} beats per minute, mean RR interval {rr} ms.",
        "There are {n} QRS complexes in 10 s; the mean RR of {rr} ms gives a rate of {hr}/min.",
        "Rate {hr} bpm, from a mean RR interval of {rr} ms.",
        "The mean RR interval is {rr} ms, i.e. a rate of {hr} beats per minute.",
    ], hr=hr_i, rr=rr, n=nbeats))
    rhythm = t["rhythm"]
    if rhythm.startswith("sinus"):
        if t["pvc_count"] == 0:
            s.append(_pick(rng, [
                "Each QRS is preceded by an upright P wave in lead II at a constant PR interval, so the rhythm is sinus.",
                "P waves are upright in II and negative in aVR, one before every QRS: the rhythm originates in the sinus node.",
                "There is a P wave before every QRS complex with a fixed relation to it, which makes this a sinus rhythm.",
                "Sinus P waves (positive in II) precede each QRS.",
            ]))
        else:
            s.append(_pick(rng, [
                "Every narrow QRS is preceded by an upright P wave in lead II at a constant PR interval: the underlying rhythm is sinus.",
                "Apart from the premature beats, P waves (upright in II) precede each QRS: sinus rhythm underneath.",
            ]))
        if t["pvc_count"] == 0:
            s.append(_pick(rng, [
                "The RR intervals are regular (variation {cv:.0f} %).",
                "The rhythm is regular: RR intervals vary by only {cv:.0f} %.",
                "RR intervals are essentially constant (coefficient of variation {cv:.0f} %).",
            ], cv=100 * cv))
        if rhythm == "sinus_bradycardia":
            s.append(_pick(rng, ["A sinus rate of {hr} bpm is below 60, so this is sinus bradycardia.",
                                 "At {hr}/min the sinus rate is under 60: bradycardia.",
                                 "The rate is below 60 beats per minute (RR {rr} ms > 1000 ms)."], hr=hr_i, rr=rr))
        elif rhythm == "sinus_tachycardia":
            s.append(_pick(rng, ["A sinus rate of {hr} bpm is above 100, so this is sinus tachycardia.",
                                 "At {hr}/min the sinus rate exceeds 100: tachycardia.",
                                 "The rate is above 100 beats per minute (RR {rr} ms < 600 ms)."], hr=hr_i, rr=rr))
        else:
            s.append(_pick(rng, ["The rate lies in the normal range of 60-100 bpm.",
                                 "A rate of {hr} is within 60 to 100 beats per minute."], hr=hr_i))
        close()
    elif rhythm == "atrial_fibrillation":
        s.append(_pick(rng, [
            "The RR intervals are irregularly irregular (coefficient of variation {cv:.2f}) and no P waves are seen.",
            "There are no discrete P waves and the ventricular response is irregularly irregular (RR variation {pc:.0f} %).",
            "RR intervals vary without any pattern ({pc:.0f} % variation) and organised atrial activity is absent.",
        ], cv=cv, pc=100 * cv))
        s.append(_pick(rng, [
            "The baseline shows {fw} fibrillatory f waves, best seen in V1.",
            "Between the QRS complexes the baseline has {fw} irregular f waves (clearest in V1 and the inferior leads).",
            "{Fw} fibrillatory activity replaces the P waves.",
        ], fw=t.get("f_waves", "fine"), Fw=t.get("f_waves", "fine").capitalize()))
        if hr > 100:
            s.append(_pick(rng, ["The ventricular rate above 100 bpm means a rapid ventricular response.",
                                 "With a mean rate of {hr}/min the ventricular response is rapid."], hr=hr_i))
        close()
    elif rhythm == "atrial_flutter":
        s.append(_pick(rng, [
            "Regular sawtooth flutter waves at about {ar}/min are seen in II, III and aVF, with positive F waves in V1.",
            "The baseline is replaced by a sawtooth of F waves at roughly {ar} per minute (negative in the inferior leads).",
            "Flutter waves run at about {ar}/min without an isoelectric baseline between them, best seen in II, III, aVF and V1.",
        ], ar=t["atrial_rate_bpm"]))
        cond = t.get("av_conduction")
        s.append(_pick(rng, [
            "AV conduction is {c}, giving a ventricular rate of {hr} bpm.",
            "With {c} block the ventricles beat at {hr}/min.",
            "Only some flutter waves are conducted ({c}), so the ventricular rate is {hr}.",
        ], c=("variable" if cond == "variable" else cond), hr=hr_i))
        close()
    # PR
    if t["pr_ms"] is not None:
        if t["pr_ms"] > 200:
            s.append(_pick(rng, [
                "The PR interval is prolonged at {pr} ms (> 200 ms) and constant, and every P wave is conducted.",
                "PR {pr} ms: longer than 200 ms but fixed from beat to beat, with no dropped beats.",
                "Each P wave conducts after a long, constant PR interval of {pr} ms.",
            ], pr=t["pr_ms"]))
        else:
            s.append(_pick(rng, ["The PR interval is {pr} ms (normal 120-200 ms).", "PR {pr} ms, within normal limits.",
                                 "AV conduction is normal with a PR interval of {pr} ms."], pr=t["pr_ms"]))
    close()
    # QRS
    q = t["qrs_ms"]
    if "rbbb" in labels:
        s.append(_pick(rng, [
            "The QRS is wide ({q} ms) with an rSR' pattern in V1 and a broad, slurred S wave in leads I and V6.",
            "QRS duration {q} ms (>= 120 ms); V1 shows rSR' (an M-shaped complex) and I, aVL and V6 have wide terminal S waves.",
            "A broad QRS of {q} ms ends with a late rightward force: R' in V1, wide S in I and V6.",
        ], q=q))
        s.append(_pick(rng, ["The T waves in V1-V2 are inverted, secondary to the conduction delay.",
                             "Repolarisation in V1 and V2 is discordant (inverted T), as expected with RBBB."]))
    elif "lbbb" in labels:
        s.append(_pick(rng, [
            "The QRS is wide ({q} ms) with broad, notched R waves in I, aVL, V5 and V6 and a deep S wave in V1.",
            "QRS {q} ms (>= 120 ms): no septal q waves in I or V6, broad monophasic notched R in the lateral leads, QS or rS in V1-V3.",
            "A broad QRS of {q} ms, predominantly negative in V1 and broad and notched in V6.",
        ], q=q))
        s.append(_pick(rng, ["The ST segments and T waves are discordant, opposite to the main QRS deflection.",
                             "Secondary ST-T changes point opposite to the QRS (ST elevation in V1-V3, T inversion in I and V6)."]))
    elif q < 120:
        s.append(_pick(rng, ["The QRS is narrow ({q} ms).", "QRS duration {q} ms (normal < 120 ms).",
                             "Ventricular depolarisation is normal, QRS {q} ms."], q=q))
    close()
    # PVCs
    if t["pvc_count"]:
        pos = [i + 1 for i, k in enumerate(t["beat_types"]) if k == "V"]
        times = [t["r_peaks"][i - 1] / t["fs"] for i in pos]
        n = t["pvc_count"]
        s.append(_pick(rng, [
            "{N} premature wide complex{es} (QRS about {w} ms) appear{s} as beat{bs} {pos}, without a preceding P wave and with a discordant T wave.",
            "Beat{bs} {pos} (at {times} s) {are} early, broad ({w} ms) and bizarre, not preceded by a P wave: ventricular ectopy.",
            "There {are} {n} premature ventricular complex{es} ({times} s), each wider than 120 ms ({w} ms).",
        ], N=str(n).capitalize() if n > 1 else "One", n=n, es="es" if n > 1 else "", s="" if n > 1 else "s",
            bs="s" if n > 1 else "", pos=", ".join(map(str, pos)), times=", ".join(f"{x:.1f}" for x in times),
            are="are" if n > 1 else "is", w=t["pvc_qrs_ms"]))
        s.append(_pick(rng, [
            "The RR interval surrounding each premature beat equals two normal cycles: a full compensatory pause.",
            "Each ectopic beat is followed by a full compensatory pause, because the sinus node is not reset.",
        ]))
    close()
    # QT
    if "long_qt" in labels:
        s.append(_pick(rng, [
            "The QT interval is {qt} ms; corrected for the rate (Bazett) QTc = {qtc} ms, above 470 ms: the QT is prolonged.",
            "QTc (Bazett) is {qtc} ms (QT {qt} ms at RR {rr} ms), well beyond the 470 ms limit.",
            "Repolarisation is prolonged: QT {qt} ms, QTc {qtc} ms (> 470 ms).",
        ], qt=t["qt_ms"], qtc=t["qtc_ms"], rr=rr))
    else:
        s.append(_pick(rng, ["QT {qt} ms, QTc (Bazett) {qtc} ms, not prolonged.", "The QTc is {qtc} ms (QT {qt} ms).",
                             "Corrected QT (Bazett) {qtc} ms."], qt=t["qt_ms"], qtc=t["qtc_ms"]))
    close()
    # axis
    ax = t["axis_deg"]
    if "left_axis_deviation" in labels:
        s.append(_pick(rng, [
            "The frontal QRS axis is {ax} degrees: lead I is positive while aVF and II are predominantly negative, so there is left axis deviation.",
            "Axis {ax} deg (more negative than -30): left axis deviation.",
            "With QRS positive in I and negative in II and aVF, the axis is leftward at {ax} degrees.",
        ], ax=ax))
    elif "right_axis_deviation" in labels:
        s.append(_pick(rng, [
            "The frontal QRS axis is +{ax} degrees: lead I is predominantly negative and aVF positive, so there is right axis deviation.",
            "Axis +{ax} deg (beyond +90): right axis deviation.",
            "A negative QRS in lead I with a positive aVF puts the axis to the right, at about +{ax} degrees.",
        ], ax=ax))
    else:
        s.append(_pick(rng, ["The frontal QRS axis is {ax:+d} degrees (normal).", "Axis {ax:+d} deg, within the normal range.",
                             "The QRS axis is normal at {ax:+d} degrees."], ax=ax))
    close()
    # ST
    st = t["st_mv"]
    stl = [k for k in labels if k.startswith("stemi_") or k == "st_depression"]
    if stl:
        lab = stl[0]
        leads, recip = t["st_leads"], t["st_reciprocal_leads"]
        if lab == "st_depression":
            dep = [n for n in leads if st[n] <= -0.05]
            s.append(_pick(rng, [
                "At J+60 ms the ST segment is depressed: {v}.",
                "ST depression measured 60 ms after the J point: {v}.",
                "Horizontal ST depression is seen in {ls} ({v}).",
            ], v=_fmt_st(t, dep), ls=", ".join(dep)))
            s.append(_pick(rng, ["aVR shows reciprocal ST elevation ({a:+.2f} mV).",
                                 "Lead aVR is the mirror image, with ST elevation of {a:+.2f} mV."], a=st["aVR"]))
        else:
            up = [n for n in leads if st[n] >= 0.1]
            down = [n for n in recip if st[n] <= -0.03]
            big = max(leads, key=lambda n: st[n])
            s.append(_pick(rng, [
                "At J+60 ms the ST segment is elevated in {ls}: {v}.",
                "ST elevation (measured 60 ms after the J point) in {ls}: {v}.",
                "The ST segments rise above the PR baseline in {ls}, up to {mx:+.2f} mV ({mm}) in {big}.",
            ], ls=", ".join(up), v=_fmt_st(t, up), mx=st[big], mm=_fmt_mm(st[big]), big=big))
            if down:
                s.append(_pick(rng, ["There is reciprocal ST depression in {ls} ({v}).",
                                     "Reciprocal change: {v}.",
                                     "The opposite leads ({ls}) show reciprocal ST depression."],
                               ls=", ".join(down), v=_fmt_st(t, down)))
            s.append(_pick(rng, ["The T waves in the same leads are tall (hyperacute).",
                                 "The ST elevation merges into tall T waves."]))
    else:
        mx = max(LEADS, key=lambda n: abs(st[n]))
        if abs(st[mx]) < 0.1:
            s.append(_pick(rng, ["There is no significant ST deviation (all leads within 0.1 mV at J+60 ms).",
                                 "ST segments are isoelectric (largest shift {v:+.2f} mV in {l}).",
                                 "No ST elevation or depression."], v=st[mx], l=mx))
        elif "lbbb" not in labels and "rbbb" not in labels:
            s.append(_pick(rng, ["The largest ST shift is {v:+.2f} mV in {l}, below the usual ischaemia thresholds.",
                                 "ST deviation is small (at most {v:+.2f} mV, in {l})."], v=st[mx], l=mx))
    close()
    # voltage
    amp = t["qrs_amplitude_mv"]
    limb_max = max(amp[n] for n in LEADS[:6])
    prec_max = max(amp[n] for n in LEADS[6:])
    if "low_voltage" in labels:
        s.append(_pick(rng, [
            "QRS amplitudes are small: the largest limb-lead QRS is {a:.2f} mV (< 0.5 mV) and the largest precordial QRS {b:.2f} mV (< 1.0 mV).",
            "Low voltage: no limb lead exceeds {a:.2f} mV peak to peak and no chest lead {b:.2f} mV.",
            "All QRS complexes are small (limb leads at most {a:.2f} mV, precordial at most {b:.2f} mV).",
        ], a=limb_max, b=prec_max))
    close()
    return groups


CONCLUDE = ["Impression: {x}.", "Taken together, this is {x}.", "These findings fit {x}.",
            "So this ECG shows {x}.", "Summary: {x}.", "Interpretation: {x}.", "Conclusion: {x}.",
            "Overall: {x}.", "This is {x}.", "The pattern is {x}."]
NOTICE = [
    "This is a synthetic teaching example, not a real patient; UniECG is an educational aid, not a diagnostic device.",
    "Synthetic ECG for learning only - not a diagnosis and not from a real patient.",
    "Educational aid only: this tracing was simulated and must not be used for clinical decisions.",
    "(Teaching example from simulated data; UniECG does not diagnose.)",
    "Remember: a simulated record for practice, never a substitute for a clinician's reading.",
    "For teaching only: simulated data, not a diagnostic interpretation.",
]
DEMOGRAPHIC = ["This is a {age}-year-old {man}.", "Patient: {age}-year-old {man}.",
               "The record belongs to a (simulated) {age}-year-old {man}."]


def _conclusion_names(rng, labels):
    names = [str(NAMES[k][0]) for k in labels]
    if labels[0] == "sinus_rhythm" and len(labels) > 1:
        names[0] = "sinus rhythm"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1] if rng.random() < 0.5 else names[0] + " with " + " and ".join(names[1:])


def explanation(rng, truth):
    ev = evidence(rng, truth)
    # evidence groups in random order, but rate and rhythm first half the time (a common
    # systematic reading order: rate, rhythm, intervals, axis, ST, ...)
    if rng.random() < 0.5:
        order = list(range(len(ev)))
    else:
        order = list(rng.permutation(len(ev)))
    parts = [x for i in order for x in ev[i]]
    if rng.random() < 0.3:
        sw = _sexwords(truth["sex"], rng)
        parts.insert(0, _pick(rng, DEMOGRAPHIC, age=truth["age"], man=sw["man"]))
    x = _conclusion_names(rng, truth["labels"])
    if truth["rhythm"] == "atrial_fibrillation" and truth["heart_rate_bpm"] > 100:
        x += " with rapid ventricular response"
    parts.append(_pick(rng, CONCLUDE, x=x))
    parts.append(str(rng.choice(NOTICE)))
    return re.sub(r"\b([Aa]) (8\d|18|11)\b", r"\1n \2", " ".join(parts))


# ------------------------------------------------------------------ driver

def make_record(seed, i, n_obj, n_exp):
    cond = CONDITIONS[i % len(CONDITIONS)]
    for attempt in range(5):
        try:
            rec = simulate(cond, rng=np.random.default_rng([seed, i, attempt]))
            break
        except SimulationError:
            continue
    else:
        raise RuntimeError(f"record {i}: {cond} failed 5 times")
    t = rec["truth"]
    trng = np.random.default_rng([seed, i, 1000 + attempt])   # text draws, separate stream
    meta = {
        "id": f"syn-{seed}-{i:07d}",
        "index": i,
        "seed": [seed, i, attempt],
        "generator": GENERATOR,
        "condition": cond,
        "labels": t["labels"],
        "truth": t,
        "objectives": objectives(trng, t, n_obj),
        "explanations": [explanation(trng, t) for _ in range(n_exp)],
        "notice": "Synthetic data from a physiological simulator, not a real patient. Educational use only.",
    }
    return rec["signal"], meta


def regenerate(meta):
    """The float32 (12, 5000) signal of a corpus record, re-simulated from its seed (identical to
    what corpus.py stored, before the float16 cast). Lets a corpus be kept as JSONL only."""
    return simulate(meta["condition"], rng=np.random.default_rng(meta["seed"]))["signal"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--objectives", type=int, default=4, help="objective phrasings per record")
    ap.add_argument("--explanations", type=int, default=2, help="explanations per record")
    ap.add_argument("--compress", action="store_true", help="np.savez_compressed (slower, ~7 %% smaller)")
    ap.add_argument("--no-signals", action="store_true",
                    help="write only the JSONL; signals are re-simulated from each record's seed (regenerate())")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    total_bytes, shards = 0, []
    for s0 in range(0, args.count, args.shard_size):
        idx = range(s0, min(s0 + args.shard_size, args.count))
        sigs, metas = [], []
        for i in idx:
            sig, meta = make_record(args.seed, i, args.objectives, args.explanations)
            sigs.append(sig.astype(np.float16))
            metas.append(meta)
        name = f"shard-{s0 // args.shard_size:05d}"
        exts = [".jsonl"]
        if not args.no_signals:
            save = np.savez_compressed if args.compress else np.savez
            save(os.path.join(args.out, name + ".npz"), signals=np.stack(sigs), ids=np.array([m["id"] for m in metas]))
            exts.append(".npz")
        with open(os.path.join(args.out, name + ".jsonl"), "w") as f:
            for m in metas:
                f.write(json.dumps(m, separators=(",", ":")) + "\n")
        b = sum(os.path.getsize(os.path.join(args.out, name + ext)) for ext in exts)
        total_bytes += b
        shards.append({"name": name, "count": len(metas), "bytes": b})
        dt = time.time() - t0
        print(f"{name}: {idx.stop} / {args.count} records, {idx.stop / dt:.1f} records/s", flush=True)
    dt = time.time() - t0
    manifest = {
        "generator": GENERATOR, "count": args.count, "seed": args.seed, "shards": shards,
        "conditions": list(CONDITIONS), "leads": list(LEADS), "fs": 500, "samples": 5000, "units": "mV",
        "signal_dtype": None if args.no_signals else "float16", "compressed": args.compress,
        "seconds": round(dt, 1), "records_per_second": round(args.count / dt, 1),
        "bytes": total_bytes, "bytes_per_10k_records": int(total_bytes / args.count * 10000),
        "notice": "Synthetic ECGs from a physiological simulator (Tools/train/ecgsim), not real patients; "
                  "for training a teaching demonstration model only.",
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"{args.count} records in {dt:.1f} s ({args.count / dt:.1f} records/s), "
          f"{total_bytes / 1e6:.1f} MB, {manifest['bytes_per_10k_records'] / 1e9:.2f} GB per 10k records")


if __name__ == "__main__":
    main()
