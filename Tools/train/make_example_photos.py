#!/usr/bin/env python3
"""Photos of the bundled example records' printouts (Models/examples/*.jpg), for
`uniecg explain --image` and its end-to-end test: each example drawn on ECG paper by `uniecg plot`
and photographed once with image_data.py's distortions, as the photo path was trained.

    python Tools/train/make_example_photos.py [--uniecg .build/release/uniecg] [--out Models/examples]

The examples are `corpus.py --seed 3` records (Models/README.md gives their indices); the
distortions are drawn from default_rng([3, index, 3000]), so a rerun writes the same pictures
(JPEG quality 85 at 960 px wide, small enough to commit). Synthetic, like the records.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import image_data  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
EXAMPLES = {"atrial_fibrillation": 3, "stemi_inferior": 11, "rbbb": 23, "first_degree_av_block": 22}


def read_example(path):
    """The 12 x 5000 mV signal of a format 16 example written at 1000 units per mV."""
    with open(path + ".hea") as f:
        header = f.readline().split()
    leads, samples = int(header[1]), int(header[3])
    d = np.fromfile(path + ".dat", dtype="<i2").reshape(samples, leads).T
    return d.astype(np.float32) / 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uniecg", default=os.path.join(ROOT, ".build", "release", "uniecg"))
    ap.add_argument("--out", default=os.path.join(ROOT, "Models", "examples"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, index in EXAMPLES.items():
            sig = read_example(os.path.join(ROOT, "Models", "examples", name))
            times = dict.fromkeys(image_data.STAGES, 0.0)
            clean = image_data.render(args.uniecg, sig, "ecg", 1280, tmp, times)
            photo, params = image_data.photograph(clean, np.random.default_rng([3, index, 3000]))
            img = Image.fromarray(np.asarray(photo))
            img = img.resize((960, round(img.height * 960 / img.width)), Image.LANCZOS)
            out = os.path.join(args.out, name + ".jpg")
            img.save(out, quality=85)
            print(f"{out}: {os.path.getsize(out) // 1024} KB; {image_data.describe(params)}")


if __name__ == "__main__":
    main()
