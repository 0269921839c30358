"""Wave primitives: each ECG wave is one dipole vector times a bump in time.

A wave is (c, sl, sr, v): an asymmetric Gaussian bump centred at time c (seconds), with width
sl before and sr after the centre, multiplying the fixed 3-D vector v (its length is the
amplitude in mV, its direction where that part of the heart's activation points). A QRS complex
is four or five such waves a few milliseconds apart with different directions, so the summed
vector sweeps a loop (the vectorcardiogram) and each lead sees its own q/R/S pattern - the
precordial R-wave progression and the frontal axis then follow from the geometry instead of
being drawn lead by lead. The idea is the one of McSharry's ECGSYN (sums of Gaussians), moved
from one lead to a 3-D dipole.

Besides bumps there is one more primitive, the ST "plateau" (an injury current): a level that
switches on smoothly at the J point and fades out with the T wave.
"""

from collections import namedtuple

import numpy as np

Wave = namedtuple("Wave", "c sl sr v")     # bump: centre, left/right widths (s), vector (mV)
Plateau = namedtuple("Plateau", "j end sr v")  # on at j (s), flat to `end`, Gaussian fall sr

# A bump is counted as "present" where its magnitude is at least this fraction of its peak. The
# same rule gives the ground-truth onsets and ends (P, QRS, T) so they are reproducible and
# independent of any detector: for a single Gaussian it is 2.45 sigma from the centre.
EDGE_FRACTION = 0.05
EDGE_K = float(np.sqrt(2.0 * np.log(1.0 / EDGE_FRACTION)))

_SUPPORT = 5.0  # render each bump over +-5 sigma (beyond that it is < 4e-6 of its peak)


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def jitter_direction(rng, v, degrees):
    """Unit vector `v` tilted by a random angle (normal, sd `degrees`) in a random plane: the
    record-to-record variation of a wave's direction."""
    u = unit(v)
    p = rng.normal(size=3)
    p -= p.dot(u) * u
    p = unit(p)
    a = np.deg2rad(degrees) * rng.normal()
    return u * np.cos(a) + p * np.sin(a)


def rot_frontal(angle_deg):
    """Rotation about the antero-posterior (z) axis: turns x (left) toward y (feet), i.e. a
    positive angle moves the frontal axis clockwise on the hexaxial diagram (more inferior)."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_small(rng, degrees):
    """A small random 3-D rotation (beat-to-beat change of heart position with breathing)."""
    axis = unit(rng.normal(size=3))
    a = np.deg2rad(degrees) * rng.normal()
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def transform(waves, shift=0.0, gain=1.0, rot=None, stretch=1.0):
    """Copy of a wave list moved by `shift` seconds, scaled in amplitude and time, rotated."""
    out = []
    for w in waves:
        v = w.v * gain if rot is None else (rot @ w.v) * gain
        if isinstance(w, Plateau):
            out.append(Plateau(w.j * stretch + shift, w.end * stretch + shift, w.sr * stretch, v))
        else:
            out.append(Wave(w.c * stretch + shift, w.sl * stretch, w.sr * stretch, v))
    return out


def render(waves, d, fs, t0):
    """Add the waves into the (3, N) dipole array `d`, whose sample 0 is at time t0 (s)."""
    n = d.shape[1]
    for w in waves:
        if isinstance(w, Plateau):
            lo, hi = w.j - 0.05, w.end + _SUPPORT * w.sr
        else:
            lo, hi = w.c - _SUPPORT * w.sl, w.c + _SUPPORT * w.sr
        i0 = max(int(np.floor((lo - t0) * fs)), 0)
        i1 = min(int(np.ceil((hi - t0) * fs)) + 1, n)
        if i1 <= i0:
            continue
        t = t0 + np.arange(i0, i1) / fs
        if isinstance(w, Plateau):
            # smooth switch-on over ~10 ms around J, flat, then a Gaussian fall after `end`
            g = 1.0 / (1.0 + np.exp(-(t - w.j) / 0.004))
            after = t > w.end
            g[after] *= np.exp(-0.5 * ((t[after] - w.end) / w.sr) ** 2)
        else:
            x = t - w.c
            s = np.where(x < 0, w.sl, w.sr)
            g = np.exp(-0.5 * (x / s) ** 2)
        d[:, i0:i1] += w.v[:, None] * g


def edges(waves, fs=2000.0, span=(-0.6, 1.2)):
    """Onset, end (s) and peak time of the summed magnitude of a wave group, by EDGE_FRACTION;
    computed numerically on a fine grid so overlapping bumps are handled."""
    n = int((span[1] - span[0]) * fs)
    d = np.zeros((3, n))
    render(waves, d, fs, span[0])
    m = np.linalg.norm(d, axis=0)
    peak = int(np.argmax(m))
    idx = np.nonzero(m >= EDGE_FRACTION * m[peak])[0]
    t = span[0] + np.arange(n) / fs
    return float(t[idx[0]]), float(t[idx[-1]]), float(t[peak])
