"""The 12-lead simulator: condition -> physiological parameters -> beats -> dipole -> leads.

One record = 10 s at 500 Hz, 12 leads (I, II, III, aVR, aVL, aVF, V1..V6), millivolts, float32.
Everything is drawn from one numpy Generator, so a seed reproduces a record bit for bit.

Pipeline of `simulate`:
  1. demographics (age 18-90, sex) and the condition's targets (rate, PR, QRS, QTc, axis, ...);
  2. a *template* beat: wave lists for the P wave, the QRS, repolarisation (ST + T) and U, each
     wave a dipole vector (waves.py); the frontal axis is set by rotating the QRS (and T) loop
     until the measured axis hits the target; ST shifts come from an injury-current plateau;
  3. a rhythm: times of atrial and ventricular events (sinus with respiratory arrhythmia,
     irregular AF, flutter with 2:1 / 4:1 / variable block, premature ventricular beats);
  4. rendering every beat with small beat-to-beat changes of amplitude, direction and width,
     plus continuous atrial activity (f or F waves), projected to the leads (leads.py);
  5. noise at the electrodes (noise.py);
  6. ground truth, computed from the noiseless template so it is exact by construction
     (intervals by the EDGE_FRACTION rule in waves.py, axis and ST the way the project's
     measurement code defines them).
"""

import numpy as np

from . import leads as L
from . import noise as N
from .waves import (EDGE_K, Plateau, Wave, edges, jitter_direction, render, rot_frontal,
                    rot_small, transform, unit)

FS = 500
DURATION = 10.0
NSAMP = int(FS * DURATION)
_MARGIN = 1.5  # seconds simulated before and after the record, so it starts mid-rhythm

CONDITIONS = (
    "normal_sinus_rhythm", "sinus_bradycardia", "sinus_tachycardia", "atrial_fibrillation",
    "atrial_flutter", "first_degree_av_block", "rbbb", "lbbb", "left_axis_deviation",
    "right_axis_deviation", "pvc", "stemi_inferior", "stemi_anterior", "stemi_lateral",
    "st_depression", "long_qt", "low_voltage",
)

# Leads where each ST pattern shows (used for scaling here, for checks and explanations).
ST_TERRITORY = {
    "stemi_inferior": (("II", "III", "aVF"), ("I", "aVL")),
    "stemi_anterior": (("V1", "V2", "V3", "V4"), ("II", "III", "aVF")),
    "stemi_lateral": (("I", "aVL", "V5", "V6"), ("II", "III", "aVF")),
    "st_depression": (("II", "V4", "V5", "V6"), ("aVR",)),   # depression leads, then aVR (elevated)
}
# Direction (Frank x left, y feet, z back) of the injury current of each pattern: the ST vector
# points toward the injured territory (so the leads facing it show elevation and the opposite
# leads reciprocal depression). Subendocardial ischaemia points toward aVR / away from the apex.
_ST_DIRECTION = {
    "stemi_inferior": (-0.15, 1.0, 0.1),
    "stemi_anterior": (0.2, -0.45, -1.0),
    "stemi_lateral": (1.0, -0.55, 0.15),
    "st_depression": (-0.7, -0.6, 0.45),
}

# Target ranges per condition; everything not listed is normal.
_RATE = {
    "sinus_bradycardia": (38, 56), "sinus_tachycardia": (106, 160),
    "atrial_fibrillation": (55, 160), "atrial_flutter": None, "pvc": (60, 90),
    "long_qt": (55, 85),
}
_NORMAL_RATE = (62, 98)


class SimulationError(ValueError):
    pass


# --------------------------------------------------------------------------------------------
# template beat
# --------------------------------------------------------------------------------------------

def _qrs_normal(rng, gain):
    """Septal (rightward, anterior: q in I/V6, r in V1), early apical, late left-posterior (tall R
    in V5-V6, S in V1-V2) and terminal basal (small s) forces."""
    j = lambda v: jitter_direction(rng, v, 8)
    return [
        Wave(-0.022, 0.0065, 0.0065, 0.18 * gain * j((-0.45, 0.25, -0.85))),
        Wave(-0.007, 0.0085, 0.0085, 0.75 * gain * j((0.45, 0.75, -0.45))),
        Wave(0.007, 0.0095, 0.0095, 1.15 * gain * j((0.8, 0.3, 0.5))),
        Wave(0.025, 0.0085, 0.0085, 0.40 * gain * j((-0.35, -0.5, 0.8))),
    ]


def _qrs_rbbb(rng, gain):
    """Normal left-ventricular activation, then a slow late rightward-anterior force from the
    right ventricle activated muscle-to-muscle: R' in V1, broad S in I, aVL, V5, V6."""
    w = _qrs_normal(rng, gain)
    w[3] = w[3]._replace(v=w[3].v * 0.5)
    w.append(Wave(0.052, 0.014, 0.019, rng.uniform(0.6, 0.95) * gain * jitter_direction(rng, (-0.8, 0.05, -0.6), 8)))
    return w


def _qrs_lbbb(rng, gain):
    """The septum is activated from the right side (so no septal q in I / V6 and no r in V1), then
    the left ventricle slowly, muscle to muscle: leftward-posterior forces in two humps (broad
    notched R in I, aVL, V5, V6; QS / deep S in V1-V3)."""
    j = lambda v: jitter_direction(rng, v, 7)
    g = gain * rng.uniform(1.1, 1.35)
    return [
        Wave(-0.045, 0.010, 0.010, 0.25 * g * j((0.6, 0.4, 0.3))),
        Wave(-0.020, 0.015, 0.015, 1.00 * g * j((0.7, 0.2, 0.65))),
        Wave(0.024, 0.016, 0.018, 1.05 * g * j((0.85, -0.05, 0.45))),
    ]


def _qrs_pvc(rng, gain):
    """Ectopic ventricular beat: slow spread from one focus, two broad humps. Right-ventricular
    (outflow) foci give a left-bundle-like, inferior-axis beat; left-ventricular foci a
    right-bundle-like beat."""
    origin = "right ventricle" if rng.random() < 0.5 else "left ventricle"
    j = lambda v: jitter_direction(rng, v, 15)
    g = gain * rng.uniform(1.5, 2.0)
    if origin == "right ventricle":
        w = [Wave(-0.030, 0.020, 0.020, 1.0 * g * j((0.55, 0.7, 0.45))),
             Wave(0.022, 0.022, 0.024, 1.0 * g * j((0.8, 0.3, 0.5)))]
    else:
        w = [Wave(-0.030, 0.020, 0.020, 1.0 * g * j((-0.5, 0.3, -0.8))),
             Wave(0.022, 0.022, 0.024, 1.0 * g * j((-0.6, -0.5, -0.6)))]
    main = unit(w[0].v + w[1].v)
    # repolarisation opposite to depolarisation (secondary ST-T change)
    t = [Wave(0.30, 0.065, 0.045, -rng.uniform(0.45, 0.7) * g * main)]
    return w, t, origin


def _p_wave(rng, gain):
    """Right atrium (inferior, anterior) then left atrium (leftward, posterior): upright P in II,
    biphasic in V1."""
    j = lambda v: jitter_direction(rng, v, 10)
    return [Wave(-0.018, 0.019, 0.017, 0.11 * gain * j((0.15, 0.85, -0.5))),
            Wave(0.017, 0.020, 0.022, 0.10 * gain * j((0.75, 0.4, 0.55)))]


def _template_leads(waves, fs=2000.0, span=(-0.6, 1.2)):
    n = int((span[1] - span[0]) * fs)
    d = np.zeros((3, n))
    render(waves, d, fs, span[0])
    return L.dipole_to_leads(d), span[0], fs


class _Template:
    """The dominant beat, relative to its fiducial time 0 (the main R wave)."""

    def __init__(self):
        self.p = []          # relative to the P centre
        self.p_offset = None  # P centre relative to the fiducial (None: no P wave)
        self.qrs = []
        self.rep = []        # ST plateau(s) and T wave(s)
        self.u = []

    def all_waves(self):
        p = transform(self.p, shift=self.p_offset) if self.p_offset is not None else []
        return p + self.qrs + self.rep + self.u

    def measure(self):
        """Ground truth of the template: interval edges, axis, ST at J+60 and amplitudes."""
        q_on, q_off, q_peak = edges(self.qrs)
        out = {"qrs_on": q_on, "qrs_off": q_off, "qrs_peak": q_peak}
        out["t_end"] = edges(self.rep)[1]
        if self.p_offset is not None:
            out["p_on"] = edges(transform(self.p, shift=self.p_offset))[0]
        x, t0, fs = _template_leads(self.all_waves())
        idx = lambda t: int(round((t - t0) * fs))
        base = x[:, idx(q_on - 0.040):idx(q_on - 0.010)].mean(axis=1)
        out["st"] = x[:, idx(q_off + 0.060)] - base
        qrs = x[:, idx(q_on):idx(q_off) + 1] - base[:, None]
        area = qrs.sum(axis=1) / fs
        out["axis"] = float(np.degrees(np.arctan2(area[L.INDEX["aVF"]], area[L.INDEX["I"]])))
        out["qrs_pp"] = qrs.max(axis=1) - qrs.min(axis=1)
        return out


def _set_axis(tp, cond, target, rot_total, iterations=10):
    """Rotate the QRS waves in the frontal plane until the measured axis is within 1 degree of
    the target; returns the accumulated rotation (the T wave follows part of it)."""
    for _ in range(iterations):
        err = (target - tp.measure()["axis"] + 180) % 360 - 180
        if abs(err) < 1.0:
            break
        r = rot_frontal(err * 0.9)
        tp.qrs = transform(tp.qrs, rot=r)
        rot_total = r @ rot_total
    return rot_total


def _build_template(rng, cond, age, sex, rr, targets):
    tp = _Template()
    female = sex == "F"
    gain = rng.uniform(0.85, 1.25) * (0.88 if female else 1.0) * (1.12 - 0.0035 * (age - 18))

    # --- QRS, scaled in time to the target duration
    if cond == "rbbb":
        qrs = _qrs_rbbb(rng, gain)
    elif cond == "lbbb":
        qrs = _qrs_lbbb(rng, gain)
    else:
        qrs = _qrs_normal(rng, gain)
    for _ in range(3):
        on, off, _pk = edges(qrs)
        qrs = transform(qrs, stretch=targets["qrs"] / (off - on))
    tp.qrs = qrs

    # --- frontal axis: rotate the QRS loop until atan2(area aVF, area I) is on target
    rot_total = _set_axis(tp, cond, targets["axis"], np.eye(3))
    m = tp.measure()
    q_on, q_off = m["qrs_on"], m["qrs_off"]

    # --- T wave (and ST shape) placed to give the target QT; T follows part of the QRS rotation
    qt = targets["qtc"] * np.sqrt(rr) / 1000.0
    qs = float(np.clip(qt / 0.40, 0.65, 1.35))
    sl, sr = rng.uniform(0.045, 0.065) * qs, rng.uniform(0.028, 0.038) * qs
    t_gain = rng.uniform(0.3, 0.5) * gain
    t_rot = rot_frontal(0.6 * np.degrees(np.arctan2(rot_total[1, 0], rot_total[0, 0])))
    if cond == "lbbb":      # secondary (discordant) ST-T: opposite to the QRS
        t_vec = -t_gain * 1.2 * jitter_direction(rng, (0.75, 0.1, 0.6), 8)
        st_vec = -rng.uniform(0.12, 0.2) * gain * jitter_direction(rng, (0.75, 0.05, 0.65), 8)
    elif cond == "rbbb":    # T inverted in V1-V2, opposite to the terminal R'
        t_vec = t_gain * jitter_direction(rng, (0.7, 0.5, 0.45), 8)
        st_vec = None
    else:
        t_vec = t_gain * (t_rot @ jitter_direction(rng, (0.75, 0.55, -0.3), 10))
        st_vec = None
    if cond == "st_depression":
        t_vec *= 0.6
    tc = q_on + qt - EDGE_K * sr
    tc = max(tc, q_off + 2.2 * sl + 0.01)        # keep an ST segment at fast rates
    tp.rep = [Wave(tc, sl, sr, t_vec)]
    if st_vec is not None:
        tp.rep.append(Plateau(q_off - 0.015, tc, sr, st_vec))
    # injury current (STEMI) or subendocardial ischaemia: scaled so the largest ST shift in the
    # territory hits the target; STEMI also gets a taller (hyperacute) T in the same direction
    if cond in _ST_DIRECTION:
        u = unit(_ST_DIRECTION[cond]) if cond == "st_depression" else jitter_direction(rng, _ST_DIRECTION[cond], 6)
        if cond == "st_depression":
            # resolves during the T upstroke: falling with the T's downstroke, the plateau
            # (nearly opposite to T, about as large) cancelled the T wave to a ~35 µV remnant
            unit_waves = [Plateau(q_off - 0.015, tc - 1.5 * sl, sl, u)]
        else:
            unit_waves = [Plateau(q_off - 0.015, tc, sr, u)]
        if cond != "st_depression":
            unit_waves.append(Wave(tc, sl, sr, 0.6 * u))
        base = tp.measure()["st"]
        tp.rep += unit_waves
        per_unit = tp.measure()["st"] - base
        tp.rep = tp.rep[:-len(unit_waves)]
        leads = [L.INDEX[n] for n in ST_TERRITORY[cond][0]]
        if cond == "st_depression":
            amp = rng.uniform(0.15, 0.35) / max(-per_unit[leads].min(), 1e-6)
        else:
            amp = rng.uniform(0.2, 0.45) / max(per_unit[leads].max(), 1e-6)
        tp.rep += transform(unit_waves, gain=amp)
    # fine-tune T position so the measured QT end is on target
    for _ in range(2):
        t_end = edges(tp.rep)[1]
        tp.rep = transform(tp.rep, shift=(q_on + qt) - t_end)
    t_end = edges(tp.rep)[1]

    # --- U wave: small, after T, only when there is room before the next P
    if rng.random() < 0.45 and rr > 0.75 and cond != "st_depression":
        tp.u = [Wave(t_end + rng.uniform(0.04, 0.07), 0.035, 0.035,
                     rng.uniform(0.04, 0.09) * gain * jitter_direction(rng, (0.4, 0.3, -0.9), 10))]

    # --- P wave placed for the target PR (P onset to QRS onset)
    if targets["pr"] is not None:
        tp.p = _p_wave(rng, rng.uniform(0.8, 1.35) * (1.05 - 0.002 * (age - 18)))
        p_on_rel = edges(tp.p)[0]
        tp.p_offset = q_on - targets["pr"] / 1000.0 - p_on_rel

    # --- the T and P waves reach into the QRS window a little: settle the axis once more (not
    # in RBBB, whose net QRS areas in I and aVF are both small, which makes the axis unstable)
    if cond != "rbbb":
        _set_axis(tp, cond, targets["axis"], np.eye(3), iterations=4)

    # --- voltage: low-voltage records scaled down; all others kept clearly above the limits
    pp = tp.measure()["qrs_pp"]
    limb, prec = pp[:6].max(), pp[6:].max()
    if cond == "low_voltage":
        s = min(0.5 / limb, 1.0 / prec) * rng.uniform(0.6, 0.9)
    else:
        s = max(1.0, 0.65 / limb, 1.3 / prec)
    if s != 1.0:
        tp.p = transform(tp.p, gain=s)
        tp.qrs = transform(tp.qrs, gain=s)
        tp.rep = transform(tp.rep, gain=s)
        tp.u = transform(tp.u, gain=s)
    return tp


# --------------------------------------------------------------------------------------------
# rhythms: lists of (time, kind) ventricular events and atrial P-wave times
# --------------------------------------------------------------------------------------------

def _sinus_times(rng, rr, age, start, stop):
    """Sinus node firing with respiratory sinus arrhythmia (larger when young) and jitter."""
    a = rng.uniform(0.01, 0.045) * (1.4 - age / 90.0)
    fr, ph = rng.uniform(0.2, 0.33), rng.uniform(0, 2 * np.pi)
    t, out = start + rng.uniform(0, rr), []
    while t < stop:
        out.append(t)
        t += rr * (1 + a * np.sin(2 * np.pi * fr * t + ph)) + rng.normal(0, 0.004 * rr)
    return out


def _af_times(rng, rr, start, stop):
    """Irregularly irregular: independent RR intervals (log-normal, cv ~0.15-0.3), >= 0.28 s."""
    sd = rng.uniform(0.16, 0.3)
    t, out = start + rng.uniform(0, rr), []
    while t < stop:
        out.append(t)
        t += max(0.28, rr * np.exp(rng.normal(-0.5 * sd * sd, sd)))
    return out


def _slow_noise(rng, t, n=4, fmax=0.8):
    """A smooth random function of time, about unit amplitude (sum of slow sinusoids)."""
    out = np.zeros_like(t)
    for _ in range(n):
        out += np.sin(2 * np.pi * rng.uniform(0.05, fmax) * t + rng.uniform(0, 2 * np.pi))
    return out / np.sqrt(n / 2)


def _af_waves(rng, t, gain):
    """Fibrillatory f waves: three atrial 'wavelet' sources at 5-8 Hz whose frequency and
    amplitude wander; coarse (0.1-0.2 mV) or fine (0.03-0.07 mV)."""
    coarse = rng.random() < 0.5
    amp = rng.uniform(0.08, 0.18) if coarse else rng.uniform(0.03, 0.07)
    d = np.zeros((3, t.size))
    f0 = rng.uniform(5.0, 8.0)
    for _ in range(3):
        f = f0 * rng.uniform(0.85, 1.15) + 0.6 * _slow_noise(rng, t)
        phase = 2 * np.pi * np.cumsum(f) * (t[1] - t[0]) + rng.uniform(0, 2 * np.pi)
        env = np.clip(1.0 + 0.4 * _slow_noise(rng, t), 0.2, None)
        d += (amp / np.sqrt(3)) * gain * env * np.sin(phase) * jitter_direction(rng, (-0.3, 0.5, -0.8), 20)[:, None]
    return d, ("coarse" if coarse else "fine"), f0 * 60.0


def _flutter_wave(rng, t, cycle, t0, gain):
    """Macro-reentry around the tricuspid ring: a continuous sawtooth (slow 70 % of the cycle,
    fast 30 %) along a superior, anterior vector: negative sawtooth in II, III, aVF, positive
    F waves in V1."""
    amp = rng.uniform(0.22, 0.38) * gain
    ph = ((t - t0) / cycle) % 1.0
    r = 0.7
    saw = np.where(ph < r, ph / r, (1 - ph) / (1 - r)) - 0.5
    k = np.exp(-0.5 * (np.arange(-15, 16) / 3.0) ** 2)   # smooth the corners (~6 ms)
    saw = np.convolve(saw, k / k.sum(), mode="same")
    return amp * saw * jitter_direction(rng, (-0.2, -0.8, -0.7), 8)[:, None]


# --------------------------------------------------------------------------------------------
# main entry
# --------------------------------------------------------------------------------------------

def _targets(rng, cond, age, sex, heart_rate):
    female = sex == "F"
    lo, hi = _RATE.get(cond, _NORMAL_RATE) or (0, 0)
    hr = heart_rate
    if hr is None and cond != "atrial_flutter":
        hr = rng.uniform(lo, hi) + (3.0 if female else 0.0) * (cond not in _RATE)
    elif hr is not None and cond != "atrial_flutter" and not lo - 1e-9 <= hr <= hi + 1e-9:
        raise SimulationError(f"{cond}: heart rate {hr} outside {lo}-{hi} bpm")
    t = {"hr": hr}
    t["pr"] = float(np.clip(120 + 0.6 * (age - 18) + rng.normal(0, 15), 120, 190))
    if hr is not None and hr > 100:      # AV conduction speeds up with the rate
        t["pr"] = float(np.clip(t["pr"] - 0.6 * (hr - 100), 112, 190))
    if cond == "first_degree_av_block":
        t["pr"] = rng.uniform(230, 340)   # margin: other PR methods read 10-25 ms shorter
    if cond in ("atrial_fibrillation", "atrial_flutter"):
        t["pr"] = None
    t["qrs"] = rng.uniform(0.076, 0.100)   # (velocity-based measurement reads ~10-15 ms longer)
    if cond in ("rbbb", "lbbb"):
        t["qrs"] = rng.uniform(0.126, 0.165)
    # normal QTc kept <= 440 ms: slope-based T-end methods read 10-35 ms longer than ours
    qtc = (398.0 + (12.0 if female else 0.0) + 0.25 * (age - 18) + rng.normal(0, 10))
    t["qtc"] = float(np.clip(qtc, 370, 440))
    if cond == "long_qt":
        t["qtc"] = rng.uniform(490, 570)
    axis = float(np.clip(65 - 0.45 * (age - 18) + rng.normal(0, 15), -15, 85))
    if cond == "left_axis_deviation":
        axis = rng.uniform(-80, -42)
    elif cond == "right_axis_deviation":
        axis = rng.uniform(100, 130)
    elif cond == "lbbb":
        axis = rng.uniform(-10, 45)
    t["axis"] = axis
    return t


def _morphology_ok(tp, cond):
    """Textbook features that the random directions could wash out: RBBB needs a wide terminal S
    wave in I and V6 (the last 40 % of the QRS below -0.05 mV)."""
    if cond != "rbbb":
        return True
    m = tp.measure()
    x, t0, fs = _template_leads(tp.all_waves())
    i0 = int(round((m["qrs_on"] + 0.6 * (m["qrs_off"] - m["qrs_on"]) - t0) * fs))
    i1 = int(round((m["qrs_off"] - t0) * fs))
    base = x[:, int(round((m["qrs_on"] - 0.04 - t0) * fs)):int(round((m["qrs_on"] - 0.01 - t0) * fs))].mean(axis=1)
    late = x[:, i0:i1 + 1] - base[:, None]
    return bool(late[L.INDEX["I"]].min() < -0.05 and late[L.INDEX["V6"]].min() < -0.05)


def _labels(cond, truth):
    """Labels derived from the ground truth (so they can never contradict it), plus the
    morphology labels that exist only by construction."""
    labels = [truth["rhythm"]]
    if truth["pr_ms"] is not None and truth["pr_ms"] > 200:
        labels.append("first_degree_av_block")
    if cond in ("rbbb", "lbbb"):
        labels.append(cond)
    if truth["axis_deg"] < -30:
        labels.append("left_axis_deviation")
    elif truth["axis_deg"] > 90:
        labels.append("right_axis_deviation")
    if truth["pvc_count"] > 0:
        labels.append("pvc")
    if cond.startswith("stemi_") or cond == "st_depression":
        labels.append(cond)
    if truth["qtc_ms"] > 470:
        labels.append("long_qt")
    amp = truth["qrs_amplitude_mv"]
    if max(amp[n] for n in L.LIMB) < 0.5 and max(amp[n] for n in L.PRECORDIAL) < 1.0:
        labels.append("low_voltage")
    return labels


def _expected(cond):
    rhythm = {"sinus_bradycardia": "sinus_bradycardia", "sinus_tachycardia": "sinus_tachycardia",
              "atrial_fibrillation": "atrial_fibrillation", "atrial_flutter": "atrial_flutter"}
    exp = [rhythm.get(cond, "sinus_rhythm")]
    if cond not in rhythm and cond != "normal_sinus_rhythm":
        exp.append(cond)
    return exp


def simulate(condition, seed=None, rng=None, age=None, sex=None, heart_rate=None,
             noise=None, return_clean=False):
    """One 10 s 12-lead record of `condition`.

    seed / rng: a numpy Generator (or seed for one); the record is a pure function of it and
    of the other arguments. age: 18-90 years; sex: "M" or "F"; heart_rate: bpm (must lie in the
    condition's range; for atrial flutter it picks the block ratio); noise: a level name from
    noise.LEVELS or None for a random one.

    Returns {"signal": float32 (12, 5000) mV, "truth": dict, ["clean": float32 (12, 5000)]}.
    """
    if condition not in CONDITIONS:
        raise SimulationError(f"unknown condition {condition!r}; one of {', '.join(CONDITIONS)}")
    if rng is None:
        rng = np.random.default_rng(seed)
    # The labels are derived from the measured truth; in the rare case a random draw crosses a
    # threshold that belongs to another condition, or misses the textbook morphology of its own
    # (see _morphology_ok), draw again (same stream: still deterministic).
    for _attempt in range(8):
        out = _simulate_once(condition, rng, age, sex, heart_rate, noise, return_clean)
        if out["truth"]["labels"] == _expected(condition) and out.pop("_morphology_ok"):
            return out
    raise SimulationError(f"{condition}: could not meet the label constraints (rate {heart_rate})")


def _simulate_once(cond, rng, age, sex, heart_rate, noise_level, return_clean):
    age = int(rng.integers(18, 91)) if age is None else int(age)
    sex = ("F" if rng.random() < 0.5 else "M") if sex is None else sex
    if not 18 <= age <= 90 or sex not in ("M", "F"):
        raise SimulationError("age must be 18-90 and sex 'M' or 'F'")
    tg = _targets(rng, cond, age, sex, heart_rate)
    start, stop = -_MARGIN, DURATION + _MARGIN
    flutter = None
    if cond == "atrial_flutter":
        if tg["hr"] is not None:
            ratio = 2 if tg["hr"] > 110 else 4
            atrial = tg["hr"] * ratio
            if not 240 <= atrial <= 350:
                raise SimulationError(f"atrial flutter: rate {tg['hr']} gives atrial rate {atrial}")
            block = f"{ratio}:1"
        else:
            block = ["2:1", "4:1", "variable"][rng.choice(3, p=[0.5, 0.2, 0.3])]
            atrial = rng.uniform(260, 330)
        cycle = 60.0 / atrial
        flutter = {"cycle": cycle, "block": block, "t0": start + rng.uniform(0, cycle),
                   "av": rng.uniform(0.20, 0.28)}
        mean_ratio = {"2:1": 2, "4:1": 4}.get(block, 3)
        rr_nominal = cycle * mean_ratio
    else:
        rr_nominal = 60.0 / tg["hr"]
    tp = _build_template(rng, cond, age, sex, rr_nominal, tg)

    # ---- rhythm
    vent = []   # (time, "N" | "V")
    atrial_p = []
    if cond == "atrial_fibrillation":
        vent = [(t, "N") for t in _af_times(rng, rr_nominal, start, stop)]
    elif cond == "atrial_flutter":
        f_start = flutter["t0"]
        k = 0
        while f_start + k * flutter["cycle"] < stop:
            vent.append((f_start + k * flutter["cycle"] + flutter["av"], "N"))
            if flutter["block"] == "variable":
                k += int(rng.choice([2, 3, 4], p=[0.45, 0.2, 0.35]))
            else:
                k += int(flutter["block"][0])
    else:
        sinus = _sinus_times(rng, rr_nominal, age, start, stop)
        atrial_p = [t + tp.p_offset for t in sinus]
        vent = [(t, "N") for t in sinus]
        if cond == "pvc":
            # premature beats replace a sinus QRS; the sinus P still fires (hidden in the PVC) and
            # is not conducted, so the next sinus beat comes on time: a full compensatory pause
            inside = [i for i, (t, _) in enumerate(vent) if 0.5 < t < DURATION - 1.0 and i > 0]
            n_pvc = int(rng.integers(1, 4))
            chosen = []
            for i in rng.permutation(inside):
                if all(abs(i - c) >= 3 for c in chosen):
                    chosen.append(int(i))
                if len(chosen) == n_pvc:
                    break
            for i in chosen:
                prev = vent[i - 1][0]
                vent[i] = (prev + rng.uniform(0.45, 0.62) * rr_nominal, "V")
    pvc_qrs, pvc_t, pvc_origin = _qrs_pvc(rng, 1.0) if cond == "pvc" else (None, None, None)
    if pvc_qrs is not None:
        for _ in range(2):
            on, off, _pk = edges(pvc_qrs)
            pvc_qrs = transform(pvc_qrs, stretch=rng.uniform(0.145, 0.18) / (off - on))

    # ---- render
    n_ext = int(round((stop - start) * FS))
    d = np.zeros((3, n_ext))
    resp_f, resp_ph = rng.uniform(0.2, 0.33), rng.uniform(0, 2 * np.pi)
    resp_amp = rng.uniform(0.02, 0.06)
    q_peak = edges(tp.qrs)[2]
    r_times, kinds = [], []
    for t, kind in vent:
        breath = np.sin(2 * np.pi * resp_f * t + resp_ph)
        g = 1.0 + resp_amp * breath + rng.normal(0, 0.02)
        rot = rot_frontal(3.0 * breath) @ rot_small(rng, 1.5)
        st = 1.0 + rng.normal(0, 0.01)
        if kind == "N":
            beat = tp.qrs + tp.rep + tp.u
            peak = q_peak
        else:
            beat = pvc_qrs + pvc_t
            peak = edges(pvc_qrs)[2]
        render(transform(beat, shift=t, gain=g, rot=rot, stretch=st), d, FS, start)
        r_times.append(t + peak * st)
        kinds.append(kind)
    for t in atrial_p:
        render(transform(tp.p, shift=t, gain=1.0 + rng.normal(0, 0.03)), d, FS, start)
    tt = start + np.arange(n_ext) / FS
    atrial_info, atrial = {}, None
    if cond == "atrial_fibrillation":
        atrial, kind, rate = _af_waves(rng, tt, 1.0)
        atrial_info = {"f_waves": kind, "atrial_rate_bpm": round(rate)}
    elif cond == "atrial_flutter":
        atrial = _flutter_wave(rng, tt, flutter["cycle"], flutter["t0"], 1.0)
        atrial_info = {"atrial_rate_bpm": round(60.0 / flutter["cycle"]), "av_conduction": flutter["block"]}
    if atrial is not None:
        d += atrial

    i0 = int(round(-start * FS))
    clean = L.dipole_to_leads(d[:, i0:i0 + NSAMP])
    settings = N.sample_settings(rng, noise_level)
    sig = clean + L.electrodes_to_leads(N.electrode_noise(rng, settings, NSAMP, FS))
    # Einthoven / Goldberger identities hold for signal and noise alike; the derived leads are
    # recomputed from the float32 I and II so they also hold in float32 (to rounding).
    f = sig.astype(np.float32)
    signal = L.assemble(f[0], f[1], f[6:])

    # ---- ground truth
    m = tp.measure()
    r_idx, r_kind = [], []
    for t, k in zip(r_times, kinds):
        i = int(round(t * FS))
        if 0 <= i < NSAMP:
            r_idx.append(i)
            r_kind.append(k)
    rr = np.diff(np.array(r_idx)) / FS
    hr = 60.0 / rr.mean()
    qt = (m["t_end"] - m["qrs_on"]) * 1000.0
    rr_nom = rr.mean() if cond != "pvc" else rr_nominal
    truth = {
        "condition": cond,
        "rhythm": None,
        "age": age, "sex": sex,
        "heart_rate_bpm": round(float(hr), 1),
        "rr_ms": round(float(rr.mean() * 1000)),
        "rr_cv": round(float(rr.std() / rr.mean()), 3),
        "pr_ms": None if tp.p_offset is None else round((m["qrs_on"] - m["p_on"]) * 1000.0),
        "qrs_ms": round((m["qrs_off"] - m["qrs_on"]) * 1000.0),
        "qt_ms": round(qt),
        "qtc_ms": round(qt / np.sqrt(rr_nom)),
        "axis_deg": round(m["axis"]),
        "st_mv": {n: round(float(v), 3) for n, v in zip(L.LEADS, m["st"])},
        "qrs_amplitude_mv": {n: round(float(v), 3) for n, v in zip(L.LEADS, m["qrs_pp"])},
        "r_peaks": r_idx,
        "beat_types": "".join(r_kind),
        "pvc_count": r_kind.count("V"),
        "pvc_origin": pvc_origin if r_kind.count("V") else None,
        "pvc_qrs_ms": round((lambda e: (e[1] - e[0]) * 1000.0)(edges(pvc_qrs))) if r_kind.count("V") else None,
        "p_waves": tp.p_offset is not None,
        "u_wave": bool(tp.u),
        "noise": settings,
        "fs": FS, "leads": list(L.LEADS),
        # wave edges of the normal beats relative to their R peak (ms), for checks and plots
        "edges_from_r_ms": {k: round((m[k] - m["qrs_peak"]) * 1000, 1)
                            for k in ("p_on", "qrs_on", "qrs_off", "t_end") if k in m},
    }
    truth.update(atrial_info)
    if cond in ST_TERRITORY:
        truth["st_leads"], truth["st_reciprocal_leads"] = map(list, ST_TERRITORY[cond])
    if cond == "atrial_fibrillation":
        truth["rhythm"] = "atrial_fibrillation"
    elif cond == "atrial_flutter":
        truth["rhythm"] = "atrial_flutter"
    else:
        # sinus rate from the sinus beats (PVCs excluded)
        truth["rhythm"] = ("sinus_bradycardia" if hr < 60 else "sinus_tachycardia" if hr > 100
                           else "sinus_rhythm")
    truth["labels"] = _labels(cond, truth)
    out = {"signal": signal, "truth": truth, "_morphology_ok": _morphology_ok(tp, cond)}
    if return_clean:
        out["clean"] = clean.astype(np.float32)
        if atrial is not None:   # the continuous f / F waves alone (already inside "clean")
            out["atrial"] = L.dipole_to_leads(atrial[:, i0:i0 + NSAMP]).astype(np.float32)
    return out
