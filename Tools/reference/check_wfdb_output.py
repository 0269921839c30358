"""Checks that the WFDB records UniECG writes are read by wfdb-python (the PhysioNet reference
reader) as the same millivolts, sample rate, lead names and comments.

Makes a 12-lead CSV (smooth waves, two sample rates), rewrites it with `uniecg record`, reads the
result with wfdb.rdrecord and compares with the CSV UniECG wrote beside it and with the input
(WFDB stores 1 µV steps: agreement within 0.5 µV plus float rounding).

  swift build -c release && python check_wfdb_output.py --uniecg .build/release/uniecg
"""
import argparse
import pathlib
import subprocess
import tempfile

import numpy as np
import wfdb

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--uniecg", required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for rate in (500, 360):
            n = 10 * rate
            t = np.arange(n) / rate
            signals = np.stack([np.sin(2 * np.pi * (1 + i / 7) * t) * (0.5 + i / 10) + rng.normal(0, 0.05, n)
                                for i in range(12)])
            signals[3, 100] = 12.3456  # large values keep their 1 µV step
            table = "time_s," + ",".join(LEADS) + "\n" + "\n".join(
                f"{t[s]:.6f}," + ",".join(f"{signals[l, s]:.6f}" for l in range(12)) for s in range(n))
            source = tmp / f"in{rate}.csv"
            source.write_text(table + "\n")
            subprocess.run([args.uniecg, "record", str(source), "-o", str(tmp / f"out{rate}")], check=True,
                           stdout=subprocess.DEVNULL)
            record = wfdb.rdrecord(str(tmp / f"out{rate}"))
            assert record.fs == rate, record.fs
            assert record.sig_name == LEADS, record.sig_name
            assert all(u == "mV" for u in record.units), record.units
            ours = np.loadtxt(tmp / f"out{rate}.csv", delimiter=",", skiprows=1)[:, 1:].T
            worst_input = np.abs(record.p_signal.T - signals).max()
            worst_csv = np.abs(record.p_signal.T - ours).max()
            assert worst_input <= 0.5e-3 + 1e-6, worst_input
            assert worst_csv <= 0.5e-3 + 0.5e-4 + 1e-6, worst_csv  # the CSV keeps 0.1 µV steps
            print(f"{rate} Hz: wfdb-python {wfdb.__version__} reads 12 leads x {n}; max |difference| "
                  f"{worst_input * 1000:.3f} µV vs the input, {worst_csv * 1000:.3f} µV vs UniECG's CSV")
    print("ok")


if __name__ == "__main__":
    main()
