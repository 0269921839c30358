"""ecgsim: a small 12-lead ECG simulator (synthetic teaching data, not real patients).

    from ecgsim import simulate, CONDITIONS
    rec = simulate("atrial_fibrillation", seed=1)
    rec["signal"]   # float32 (12, 5000) mV, leads ecgsim.LEADS, 500 Hz, 10 s
    rec["truth"]    # ground truth: rhythm, labels, rate, PR, QRS, QT, QTc, axis, ST, R peaks...

See Tools/train/README.md for the model and its limits.
"""

from .leads import LEADS
from .simulate import CONDITIONS, DURATION, FS, NSAMP, ST_TERRITORY, SimulationError, simulate

__all__ = ["CONDITIONS", "DURATION", "FS", "LEADS", "NSAMP", "ST_TERRITORY", "SimulationError", "simulate"]
