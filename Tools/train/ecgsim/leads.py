"""Lead field: from a 3-D cardiac dipole (and electrode noise) to the standard 12 leads.

The heart is modelled as one time-varying current dipole d(t) = (x, y, z) in the Frank
coordinate frame: x points to the patient's left, y to the feet (inferior), z to the back
(posterior). A surface lead is a fixed linear combination of the three components. We use the
published inverse Dower transform (Dower, Machado & Osborne, Clin. Cardiol. 1980; coefficients as
tabulated in Edenbrandt & Pahlm 1988), which maps Frank XYZ to I, II and V1..V6. Only I and II
come from the matrix: III, aVR, aVL and aVF are *derived* from them with the Einthoven /
Goldberger identities, so those identities hold exactly in every record, noise included.

Noise is added at the electrodes (RA, LA, LL, V1..V6), not to the leads, for the same reason: a
lead is a difference of electrode potentials, so a noise source on one electrode appears in all
the leads that use it, with the right signs, and common-mode noise cancels as it does in life.
"""

import numpy as np

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB = LEADS[:6]
PRECORDIAL = LEADS[6:]
INDEX = {name: i for i, name in enumerate(LEADS)}

# Rows: I, II, V1..V6. Columns: Frank X (left), Y (feet), Z (back). Units: lead mV per dipole mV.
DOWER = np.array([
    [0.632, -0.235, 0.059],   # I
    [0.235, 1.066, -0.132],   # II
    [-0.515, 0.157, -0.917],  # V1
    [0.044, 0.164, -1.387],   # V2
    [0.882, 0.098, -1.277],   # V3
    [1.213, 0.127, -0.601],   # V4
    [1.125, 0.127, -0.086],   # V5
    [0.831, 0.076, 0.230],    # V6
])


def assemble(lead_i, lead_ii, precordial):
    """12 x N array from I, II (N,) and V1..V6 (6, N); the other limb leads by identity:
    III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2."""
    out = np.empty((12, lead_i.shape[-1]), dtype=np.result_type(lead_i, lead_ii, precordial))
    out[0] = lead_i
    out[1] = lead_ii
    out[2] = lead_ii - lead_i
    out[3] = -(lead_i + lead_ii) / 2.0
    out[4] = lead_i - lead_ii / 2.0
    out[5] = lead_ii - lead_i / 2.0
    out[6:] = precordial
    return out


def dipole_to_leads(d):
    """(3, N) dipole in mV -> (12, N) leads in mV."""
    p = DOWER @ d
    return assemble(p[0], p[1], p[2:])


def electrodes_to_leads(e):
    """(9, N) electrode potentials RA, LA, LL, V1..V6 -> (12, N) leads.
    Precordial leads are referred to Wilson's central terminal (RA + LA + LL) / 3."""
    ra, la, ll = e[0], e[1], e[2]
    wct = (ra + la + ll) / 3.0
    return assemble(la - ra, ll - ra, e[3:] - wct)
