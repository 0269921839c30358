"""Explanations for stage 2 (issue 7 point 4) written from what the project's measurement code
reads on a record (`uniecg measure`), not from the simulator's truth: the language model sees
the same measurements as its evidence block at run time, so what it learns to write can be
checked against the table the user sees next to it.

    measured_values(findings)           -> dict of the numbers the evidence block shows
    consistent(condition, values)       -> do the measurements support the record's label?
    explanation(rng, condition, values) -> text: evidence sentences, impression, notice
    photo_explanation(rng, condition)   -> text for a photo alone: what the paper shows, no numbers
    named_condition(text)               -> the condition an explanation concludes (for eval)

A record whose measurements do not support its label (e.g. a first-degree AV block whose PR
reads 190 ms) or that carry another finding's signature (a "normal" record whose QTc reads
480 ms) is left out of training by `consistent`, so no training text contradicts its table.
Synthetic data; the result is a teaching demonstration.
"""
import re

ST = 0.1  # mV, Evidence.stThreshold in Sources/UniECG/Measurements/Evidence.swift
LIMB = ["I", "II", "III", "aVR", "aVL", "aVF"]
TERRITORY = {"stemi_inferior": ["II", "III", "aVF"], "stemi_anterior": ["V1", "V2", "V3", "V4"],
             "stemi_lateral": ["I", "aVL", "V5", "V6"]}

# Conclusion names; the first is what the evaluation looks for, the rest are accepted synonyms.
NAMES = {
    "normal_sinus_rhythm": ["normal sinus rhythm"],
    "sinus_bradycardia": ["sinus bradycardia"],
    "sinus_tachycardia": ["sinus tachycardia"],
    "atrial_fibrillation": ["atrial fibrillation"],
    "atrial_flutter": ["atrial flutter"],
    "first_degree_av_block": ["first-degree AV block"],
    "rbbb": ["right bundle branch block"],
    "lbbb": ["left bundle branch block"],
    "left_axis_deviation": ["left axis deviation"],
    "right_axis_deviation": ["right axis deviation"],
    "pvc": ["premature ventricular complexes"],
    "stemi_inferior": ["inferior ST elevation"],
    "stemi_anterior": ["anterior ST elevation"],
    "stemi_lateral": ["lateral ST elevation"],
    "st_depression": ["widespread ST depression"],
    "long_qt": ["a long QT interval"],
    "low_voltage": ["low QRS voltage"],
}


def measured_values(findings):
    """The numbers of `uniecg measure --json` that the evidence block prints."""
    f = {x["name"]: x["value"] for x in findings}
    st = {k[3:]: v for k, v in f.items() if k.startswith("ST ")}
    return {
        "rate": f.get("heart rate"), "rr_cv": f.get("RR variation"), "premature": int(f.get("premature beats", 0)),
        "p": None if "P wave" not in f else f["P wave"] > 0, "pr": f.get("PR interval"), "qrs": f.get("QRS duration"),
        "qtc": f.get("QTc (Bazett)"), "axis": f.get("QRS axis"), "limb": f.get("QRS voltage (limb)"),
        "chest": f.get("QRS voltage (chest)"), "v1": f.get("V1 terminal QRS"),
        "st_up": [(k, v) for k, v in st.items() if v >= ST], "st_down": [(k, v) for k, v in st.items() if v <= -ST],
    }


def _signatures(v):
    """Which findings the measurements show, with the label thresholds of the simulator."""
    s = set()
    if v["rate"] is None or v["qrs"] is None:
        return None
    irregular = (v["rr_cv"] or 0) > 0.10
    if irregular and v["p"] is False:
        s.add("atrial_fibrillation")
    elif v["p"] is False:
        s.add("atrial_flutter")
    elif v["rate"] < 60:
        s.add("sinus_bradycardia")
    elif v["rate"] > 100:
        s.add("sinus_tachycardia")
    if v["pr"] is not None and v["pr"] > 200:
        s.add("first_degree_av_block")
    if v["qrs"] >= 120 and v["premature"] == 0:
        s.add("rbbb" if (v["v1"] or 0) > 0 else "lbbb")
    if v["axis"] is not None and v["qrs"] < 120:
        if v["axis"] < -30:
            s.add("left_axis_deviation")
        elif v["axis"] > 90:
            s.add("right_axis_deviation")
    if v["premature"] > 0:
        s.add("pvc")
    if v["qtc"] is not None and v["qtc"] > 470 and v["qrs"] < 120 and v["p"] is not False:
        s.add("long_qt")
    if v["limb"] is not None and v["limb"] < 0.5 and (v["chest"] or 9) < 1.0:
        s.add("low_voltage")
    if v["qrs"] < 120:
        # An injury current raises one territory and lowers the opposite leads; fast sinus
        # rhythms of the simulator raise V2-V4 a little with nothing reciprocal. So: elevation in
        # >= 2 leads of a territory plus reciprocal depression, and the territory whose leads are
        # highest on average (a lateral injury also raises V3-V4).
        up = {k for k, _ in v["st_up"]}
        st = dict(v["st_up"] + v["st_down"])
        mean = {n: sum(st.get(k, 0) for k in leads) / len(leads) for n, leads in TERRITORY.items()}
        hit = [n for n, leads in TERRITORY.items() if len(up & set(leads)) >= 2]
        if hit and v["st_down"]:
            s.add(max(hit, key=lambda n: mean[n]))
        down = [k for k, _ in v["st_down"] if k != "aVR"]
        if len(down) >= 3 and not any(n in s for n in TERRITORY):
            s.add("st_depression")
    return s


def consistent(condition, v):
    """True when the measurements show exactly the record's finding (and its rhythm)."""
    s = _signatures(v)
    if s is None:
        return False
    expected = {condition} - {"normal_sinus_rhythm"}
    if condition in ("atrial_fibrillation", "atrial_flutter"):
        # Intervals and ST next to f/F waves are uncertain; only the rhythm must match.
        return condition in s and not ({"atrial_fibrillation", "atrial_flutter"} - {condition}) & s
    return s == expected


def _pick(rng, options, **kw):
    return str(rng.choice(options)).format(**kw)


def _leads(items):
    return ", ".join(f"{k} {x:+.2f} mV" for k, x in items)


def explanation(rng, condition, v):
    """Evidence sentences citing the measured numbers, then the impression, then the notice.
    Only statements the measurements support are made (the caller checked `consistent`)."""
    hr = int(round(v["rate"]))
    parts = [_pick(rng, ["The rate is {hr} bpm.", "Heart rate: {hr} beats per minute.", "Rate {hr} bpm.",
                         "The ventricular rate is about {hr}/min."], hr=hr)]
    if condition == "atrial_fibrillation":
        parts.append(_pick(rng, ["The rhythm is irregularly irregular (RR variation {cv:.2f}) and P waves are absent.",
                                 "No P waves are seen and the RR intervals vary irregularly ({cv:.2f}).",
                                 "RR intervals are irregular (variation {cv:.2f}) without P waves."], cv=v["rr_cv"]))
    elif condition == "atrial_flutter":
        parts.append(_pick(rng, ["No normal P waves are found; the baseline shows flutter waves.",
                                 "P waves are absent and regular atrial flutter waves replace them.",
                                 "There are no sinus P waves: the atrial activity is a sawtooth of flutter waves."]))
    else:
        parts.append(_pick(rng, ["P waves are present and the rhythm is {reg}.", "Sinus P waves precede the QRS complexes; the rhythm is {reg}.",
                                 "There is a P wave before each QRS and the RR intervals are {reg}."],
                           reg="regular" if condition != "pvc" else "regular apart from early beats"))
    if condition == "sinus_bradycardia":
        parts.append(_pick(rng, ["A sinus rate below 60 bpm is bradycardia.", "{hr} bpm is under 60, so the sinus rate is slow."], hr=hr))
    elif condition == "sinus_tachycardia":
        parts.append(_pick(rng, ["A sinus rate above 100 bpm is tachycardia.", "{hr} bpm is over 100, so the sinus rate is fast."], hr=hr))
    if v["pr"] is not None and condition not in ("atrial_fibrillation", "atrial_flutter"):
        if condition == "first_degree_av_block":
            parts.append(_pick(rng, ["The PR interval is long at {pr} ms (over 200 ms).", "PR {pr} ms is prolonged beyond 200 ms."], pr=int(round(v["pr"]))))
        elif rng.random() < 0.6:
            parts.append(_pick(rng, ["PR is {pr} ms.", "The PR interval is normal at {pr} ms."], pr=int(round(v["pr"]))))
    qrs = int(round(v["qrs"]))
    if condition == "rbbb":
        parts.append(_pick(rng, ["The QRS is wide at {q} ms with a positive terminal deflection in V1.",
                                 "QRS {q} ms is broad, and the end of the QRS in V1 is positive (rSR')."], q=qrs))
    elif condition == "lbbb":
        parts.append(_pick(rng, ["The QRS is wide at {q} ms and negative at its end in V1.",
                                 "QRS {q} ms is broad with a negative terminal QRS in V1."], q=qrs))
    elif condition == "pvc":
        n = v["premature"]
        parts.append(_pick(rng, ["There {be} {n} premature {beat} followed by a compensatory pause.",
                                 "{N} early {beat} with a pause after {it} interrupt{s} the rhythm."],
                           n=n, N=str(n).capitalize(), be="is" if n == 1 else "are", beat="beat" if n == 1 else "beats",
                           it="it" if n == 1 else "them", s="s" if n == 1 else ""))
    elif rng.random() < 0.6:
        parts.append(_pick(rng, ["QRS duration is {q} ms.", "The QRS is narrow ({q} ms)."], q=qrs))
    if condition == "long_qt":
        parts.append(_pick(rng, ["The QTc is prolonged at {qtc} ms (above 470 ms).", "QTc {qtc} ms is long."], qtc=int(round(v["qtc"]))))
    elif v["qtc"] is not None and condition not in ("atrial_fibrillation", "atrial_flutter") and rng.random() < 0.4:
        parts.append(_pick(rng, ["QTc is {qtc} ms.", "The QTc of {qtc} ms is not prolonged."], qtc=int(round(v["qtc"]))))
    if v["axis"] is not None:
        ax = int(round(v["axis"]))
        if condition == "left_axis_deviation":
            parts.append(_pick(rng, ["The QRS axis is {a:+d} degrees, beyond -30.", "Axis {a:+d} degrees: deviated to the left."], a=ax))
        elif condition == "right_axis_deviation":
            parts.append(_pick(rng, ["The QRS axis is {a:+d} degrees, beyond +90.", "Axis {a:+d} degrees: deviated to the right."], a=ax))
        elif rng.random() < 0.4 and condition not in ("rbbb", "lbbb"):
            parts.append(_pick(rng, ["The axis is normal at {a:+d} degrees.", "Axis {a:+d} degrees."], a=ax))
    if condition == "low_voltage":
        parts.append(_pick(rng, ["QRS voltage is low: {l:.2f} mV at most in the limb leads and {c:.2f} mV in the chest leads.",
                                 "The largest QRS is only {l:.2f} mV in the limb leads ({c:.2f} mV in the chest leads)."],
                           l=v["limb"], c=v["chest"]))
    if condition in TERRITORY:
        lead_up = [(k, x) for k, x in v["st_up"] if k in TERRITORY[condition]]
        parts.append(_pick(rng, ["ST elevation in {l}.", "The ST segment is raised in {l}."], l=_leads(lead_up)))
        rec = [(k, x) for k, x in v["st_down"]]
        if rec and rng.random() < 0.7:
            parts.append(_pick(rng, ["Reciprocal ST depression in {l}.", "There is reciprocal depression in {l}."], l=_leads(rec)))
    elif condition == "st_depression":
        down = [(k, x) for k, x in v["st_down"]]
        parts.append(_pick(rng, ["ST depression in {l}.", "The ST segment is depressed in {l}."], l=_leads(down)))
    elif not v["st_up"] and not v["st_down"] and rng.random() < 0.5:
        parts.append(_pick(rng, ["There is no significant ST deviation.", "ST segments are not shifted."]))
    parts.append(_pick(rng, ["Impression: {x}.", "This ECG shows {x}.", "Conclusion: {x}.", "Interpretation: {x}."],
                       x=NAMES[condition][0]))
    parts.append(_pick(rng, ["Educational aid only, not a diagnosis.", "This is a teaching example, not a diagnosis.",
                             "For learning only; UniECG does not diagnose."]))
    return " ".join(parts)


# What a reader sees on the paper, per condition, in words only: a photo is explained without
# measurements, so a photo explanation states no number the runtime could check.
_LOOKS = {
    "normal_sinus_rhythm": ["The complexes are regular and narrow, each one preceded by an upright P wave in lead II.",
                            "A regular rhythm of narrow QRS complexes, every one with a P wave in front of it, at a normal rate."],
    "sinus_bradycardia": ["Sinus beats, each with a P wave, are spaced far apart: the rate is slow.",
                          "The beats are regular with P waves but widely spaced, more than five large squares apart."],
    "sinus_tachycardia": ["Sinus beats with P waves follow each other closely: the rate is fast.",
                          "The beats are regular with P waves and close together, less than three large squares apart."],
    "atrial_fibrillation": ["The RR intervals vary without any pattern and there are no clear P waves.",
                            "The rhythm is irregularly irregular and the baseline between the beats shows no P waves."],
    "atrial_flutter": ["A sawtooth baseline of flutter waves, best seen in II, III and aVF, takes the place of the P waves.",
                       "Instead of P waves the baseline shows regular sawtooth flutter waves."],
    "first_degree_av_block": ["Every P wave is followed by a QRS complex, but the gap from P to QRS looks long.",
                              "The P waves sit far ahead of their QRS complexes: the PR interval looks prolonged."],
    "rbbb": ["The QRS complexes are broad, with an rSR' shape in V1 and a wide S wave in I and V6.",
             "Wide QRS complexes: an M-shaped rSR' in V1 and slurred S waves in the lateral leads."],
    "lbbb": ["The QRS complexes are broad, deep and negative in V1, with notched tall R waves in I, aVL and V6.",
             "Wide QRS complexes: QS or rS in V1 and broad notched R waves in the lateral leads."],
    "left_axis_deviation": ["The QRS is upright in lead I but mainly negative in II and aVF: the axis points to the left.",
                            "Lead I is positive while II and aVF are mostly negative, so the axis is deviated to the left."],
    "right_axis_deviation": ["The QRS is mainly negative in lead I and positive in aVF: the axis points to the right.",
                             "Lead I is mostly negative and aVF upright, so the axis is deviated to the right."],
    "pvc": ["A regular sinus rhythm is interrupted by early, wide and oddly shaped beats, each followed by a pause.",
            "Among the normal beats there are premature broad complexes without a P wave, then a compensatory pause."],
    "stemi_inferior": ["The ST segments are raised in II, III and aVF, with reciprocal depression in I and aVL.",
                       "ST elevation sits in the inferior leads II, III and aVF; the high lateral leads show depression."],
    "stemi_anterior": ["The ST segments are raised across the anterior chest leads V1 to V4.",
                       "ST elevation runs through V1 to V4, the anterior leads."],
    "stemi_lateral": ["The ST segments are raised in I, aVL, V5 and V6, the lateral leads.",
                      "ST elevation sits in the lateral leads I, aVL, V5 and V6."],
    "st_depression": ["The ST segments are pushed down in many leads, from II to V4-V6, with elevation only in aVR.",
                      "Widespread ST depression is seen in the inferior and lateral leads, with aVR raised."],
    "long_qt": ["The T waves end late: the QT interval takes up more than half of the RR interval.",
                "The QT interval looks long, the T wave ending well past the middle of the cycle."],
    "low_voltage": ["All the QRS complexes are small, less than half a big square tall in the limb leads.",
                    "The complexes are low everywhere: small QRS amplitudes in the limb and chest leads."],
}


def photo_explanation(rng, condition):
    """An explanation of a photo of the printout alone: what the paper shows in words, the
    impression, a sentence saying that nothing was measured, and the notice."""
    parts = [_pick(rng, ["From the picture of the printout:", "Reading the photo of this tracing:",
                         "Looking at the paper ECG in the photo:"]),
             _pick(rng, _LOOKS[condition]),
             _pick(rng, ["Impression: {x}.", "This ECG shows {x}.", "Conclusion: {x}.", "Interpretation: {x}."],
                   x=NAMES[condition][0]),
             _pick(rng, ["Nothing was measured from the photo; check the intervals on the paper or load the recording.",
                         "This reading comes from the picture alone, without measurements: confirm it on the recording.",
                         "No intervals were measured from a photo; measure them with calipers or open the signal file."]),
             _pick(rng, ["Educational aid only, not a diagnosis.", "This is a teaching example, not a diagnosis.",
                         "For learning only; UniECG does not diagnose."])]
    return " ".join(parts)


def named_condition(text):
    """The condition an explanation's impression names, or None."""
    m = re.search(r"(?:Impression|This ECG shows|Conclusion|Interpretation):? ([^.]*)\.", text)
    if not m:
        return None
    said = m.group(1).strip().lower()
    for c, names in NAMES.items():
        if any(said == n.lower() for n in names):
            return c
    return None


# Which evidence line a sentence's numbers must come from, by the first keyword it holds
# (checked in this order: "QTc" before "QRS", "QRS voltage" before "QRS").
_KINDS = [("QTc", "QTc:"), ("PR", "PR:"), ("variation", "RR variation:"), ("vary irregularly", "RR variation:"),
          ("voltage", "QRS voltage:"), ("limb leads", "QRS voltage:"), ("depression", "ST "), ("elevation", "ST "),
          ("raised", "ST "), ("QRS axis", "axis:"), ("xis", "axis:"), ("QRS", "QRS:"), ("premature", "premature beats:"), ("early", "premature beats:"),
          ("ST", "ST "), ("bpm", "rate:"), ("/min", "rate:"), ("beats per minute", "rate:"), ("rate", "rate:")]
_FIXED = {"60", "100", "200", "470", "30", "-30", "+90", "90", "0.1", "0.5", "1.0", "12", "10"}


def contradictions(text, evidence):
    """Statements of `text` whose numbers are not the evidence block's value for that quantity:
    "QRS 132 ms" next to "QRS: 156 ms" is one, even if 132 is the PR. Returns a list of
    (sentence, reason); empty means every stated number is the measured one."""
    lines = evidence.split("\n")
    found = []
    for sentence in re.split(r"(?<=[.;])\s+", text):
        # Numbers, not the digits of lead names (V1) or of "12-lead".
        nums = [n for n in re.findall(r"(?<![A-Za-z\d.])[-+]?\d+(?:\.\d+)?(?!\d|-lead)", sentence)
                if n not in _FIXED and n.lstrip("+") not in _FIXED]
        if not nums:
            continue
        kind = next((prefix for key, prefix in _KINDS if key in sentence), None)
        if kind is None:
            found.append((sentence, "numbers without a measured quantity"))
            continue
        source = " ".join(x for x in lines if x.startswith(kind))
        if kind == "ST ":
            # Each "LEAD +0.19 mV" must be that lead's value in an ST line.
            for lead, value in re.findall(r"\b(I|II|III|aVR|aVL|aVF|V[1-6]) ([-+]\d\.\d\d) mV", sentence):
                if f"{lead} {value}" not in source:
                    found.append((sentence, f"ST {lead} {value} is not measured"))
            continue
        have = set(re.findall(r"[-+]?\d+(?:\.\d+)?", source))
        have |= {h.lstrip("+") for h in have}
        for n in nums:
            if n not in have and n.lstrip("+") not in have:
                found.append((sentence, f"{n} is not the measured {kind.rstrip(':')}"))
    return found
