"""Real-recording fixtures for the measurement tests, from an ECG that ships inside a Debian
package: `scipy/misc/ecg.dat` of python3-scipy (Debian 12 ships scipy 1.10.1; PyPI scipy up to
1.11 carries the same file). It is a 5-minute excerpt (19:35-24:35) of MIT-BIH Arrhythmia
Database record 208, lead MLII, 360 Hz, ADC gain 200/mV, ADC zero 1024 (Moody GB, Mark RG,
IEEE EMB 20(3):45-50, 2001; PhysioNet, Open Data Commons Attribution licence).

Writes two 15 s excerpts as WFDB records (format 16, the ADC values untouched) into
Tests/Fixtures/ecg/, named by their start second, with the lead named II (MLII is a modified
lead II), plus reference R-peak sample indices from wfdb-python's XQRS detector run on the
whole 5 minutes — an implementation independent of ours. Tests need only the committed files.

  apt-get download python3-scipy && dpkg -x python3-scipy_*.deb scipy-deb
  python make_real_ecg_fixture.py --ecg-dat scipy-deb/usr/lib/python3/dist-packages/scipy/misc/ecg.dat
"""
import argparse
import pathlib

import numpy as np
import wfdb
import wfdb.processing

FS = 360
GAIN = 200.0
ADC_ZERO = 1024
EXCERPTS = [(0, "sinus: before the first premature ventricular complex at about 16 s"),
            (150, "premature ventricular complexes, with a steady baseline")]
SECONDS = 15
# Beats XQRS missed, added after looking at the signal (sample index within the excerpt): wide
# premature complexes (+1.7 mV upstroke, then -1 mV for 150 ms) at 159.18 s and 160.48 s.
REVIEWED_ADDITIONS = {150: [3306, 3774]}


def write_record(directory, name, raw, comments):
    raw = raw.astype("<i2")
    raw.tofile(directory / f"{name}.dat")
    checksum = int(raw.astype(np.int64).sum()) & 0xFFFF
    checksum = checksum - 65536 if checksum >= 32768 else checksum
    lines = [f"{name} 1 {FS} {raw.size}",
             f"{name}.dat 16 {GAIN:g}({ADC_ZERO})/mV 11 {ADC_ZERO} {int(raw[0])} {checksum} 0 II"]
    lines += [f"# {c}" for c in comments]
    (directory / f"{name}.hea").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ecg-dat", required=True, help="path of scipy/misc/ecg.dat")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[2] / "Tests/Fixtures/ecg"))
    args = parser.parse_args()
    with np.load(args.ecg_dat) as f:
        raw = f["ecg"].astype(np.int64)
    assert raw.size == 5 * 60 * FS, raw.size
    mv = (raw - ADC_ZERO) / GAIN
    peaks = np.asarray(wfdb.processing.xqrs_detect(sig=mv, fs=FS, verbose=False))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for start, what in EXCERPTS:
        name = f"mitdb208-{start:03d}s"
        a, b = start * FS, (start + SECONDS) * FS
        write_record(out, name, raw[a:b], [
            f"MIT-BIH Arrhythmia Database record 208, lead MLII, excerpt seconds {start}-{start + SECONDS}",
            "of scipy's ecg.dat (record time 19:35 + offset); " + what,
            "Moody GB, Mark RG. IEEE Eng in Med and Biol 20(3):45-50 (2001); PhysioNet, ODC-By licence",
        ])
        inside = peaks[(peaks >= a) & (peaks < b)] - a
        added = REVIEWED_ADDITIONS.get(start, [])
        lines = [f"{int(p)}" for p in inside] + [f"{p} +" for p in added]
        lines.sort(key=lambda line: int(line.split()[0]))
        (out / f"{name}.xqrs.txt").write_text(
            "# R peaks (sample index in this excerpt) found by wfdb-python "
            f"{wfdb.__version__} xqrs_detect on the whole 5 min;\n"
            "# lines marked + are beats XQRS missed, added on review (see make_real_ecg_fixture.py)\n"
            + "\n".join(lines) + "\n")
        inside = np.sort(np.concatenate([inside, np.asarray(added, dtype=inside.dtype)]))
        # wfdb-python reads our record back to the same millivolts
        record = wfdb.rdrecord(str(out / name))
        assert np.allclose(record.p_signal[:, 0], mv[a:b], atol=1e-9), name
        rr = np.diff(inside) / FS * 1000
        print(f"{name}: {inside.size} beats, RR mean {rr.mean():.0f} ms, CV {rr.std() / rr.mean():.3f}, "
              f"rate {60000 / rr.mean():.1f} bpm")


if __name__ == "__main__":
    main()
