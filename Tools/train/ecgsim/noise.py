"""Recording noise, generated per electrode (RA, LA, LL, V1..V6) and then turned into leads by
the same differences as the signal (see leads.electrodes_to_leads).

Four sources, each with its own per-record level so a data set spans clean to messy records:
  baseline wander  - breathing and skin-electrode drift: a few sinusoids of 0.05-0.5 Hz
  mains hum        - 50 or 60 Hz (plus a weak 3rd harmonic); it reaches the leads only through the
                     imbalance between electrodes, so each electrode gets a slightly different
                     amplitude and phase
  muscle (EMG)     - broadband noise above ~20 Hz in bursts, stronger on the limb electrodes
  electrode motion - occasional abrupt baseline shifts on one electrode that relax over ~1 s
"""

import numpy as np

# name: (wander mV, hum mV, emg rms mV, probability of a motion artefact)
LEVELS = {
    "clean":    (0.02, 0.000, 0.002, 0.00),
    "light":    (0.08, 0.010, 0.006, 0.05),
    "moderate": (0.20, 0.025, 0.015, 0.20),
    "heavy":    (0.40, 0.050, 0.035, 0.50),
}
LEVEL_WEIGHTS = {"clean": 0.2, "light": 0.45, "moderate": 0.28, "heavy": 0.07}


def sample_settings(rng, level=None):
    if level is None:
        names = list(LEVEL_WEIGHTS)
        level = names[rng.choice(len(names), p=np.array(list(LEVEL_WEIGHTS.values())))]
    wander, hum, emg, p_motion = LEVELS[level]
    return {
        "level": level,
        "baseline_wander_mv": float(wander * rng.uniform(0.5, 1.2)),
        "mains_hz": int(rng.choice([50, 60])),
        "mains_mv": float(hum * rng.uniform(0.3, 1.0)),
        "emg_rms_mv": float(emg * rng.uniform(0.4, 1.0)),
        "motion_artefact": bool(rng.random() < p_motion),
    }


def _highpass_noise(rng, shape):
    # white noise minus its 3-point moving average: keeps mostly > ~60 Hz at 500 Hz, EMG-like
    w = rng.normal(size=(shape[0], shape[1] + 2))
    return w[:, 1:-1] - (w[:, :-2] + w[:, 1:-1] + w[:, 2:]) / 3.0


def electrode_noise(rng, settings, n, fs):
    """(9, n) electrode noise in mV."""
    t = np.arange(n) / fs
    e = np.zeros((9, n))
    # baseline wander: a common breathing component plus two drifts per electrode
    breath = rng.uniform(0.12, 0.4)
    common = np.sin(2 * np.pi * breath * t + rng.uniform(0, 2 * np.pi))
    for k in range(9):
        e[k] += settings["baseline_wander_mv"] * rng.uniform(0.2, 1.0) * common
        for _ in range(2):
            f = rng.uniform(0.05, 0.5)
            e[k] += settings["baseline_wander_mv"] * rng.uniform(0.0, 0.6) * np.sin(
                2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    # mains hum with electrode imbalance
    if settings["mains_mv"] > 0:
        f0 = settings["mains_hz"]
        phase0 = rng.uniform(0, 2 * np.pi)
        for k in range(9):
            a = settings["mains_mv"] * rng.uniform(0.2, 1.0)
            ph = phase0 + rng.normal(0, 0.3)
            e[k] += a * np.sin(2 * np.pi * f0 * t + ph) + 0.15 * a * np.sin(2 * np.pi * 3 * f0 * t + 3 * ph)
    # muscle noise in bursts (envelope varies at ~0.3-2 Hz); limb electrodes twice as noisy
    emg = _highpass_noise(rng, (9, n))
    emg /= emg.std() + 1e-12
    env = 0.5 + np.abs(np.sin(2 * np.pi * rng.uniform(0.3, 2.0, size=(9, 1)) * t + rng.uniform(0, 6.3, size=(9, 1))))
    weight = np.array([2.0, 2.0, 2.0, 1, 1, 1, 1, 1, 1])[:, None]
    e += settings["emg_rms_mv"] * weight * env * emg
    # electrode motion: a step that relaxes exponentially, on one electrode
    if settings["motion_artefact"]:
        k = rng.integers(0, 9)
        t0 = rng.uniform(0.5, 9.0)
        amp = rng.uniform(0.2, 1.0) * rng.choice([-1, 1])
        tau = rng.uniform(0.3, 1.5)
        x = t - t0
        rise = 1.0 / (1.0 + np.exp(-np.clip(x, -1, 1) / 0.01))   # ~40 ms shift
        e[k] += amp * rise * np.exp(-np.clip(x, 0, None) / tau)     # then relaxation
    return e
