#!/usr/bin/env python3
"""Image training data for the unified model's image path: each stage 2 record drawn on ECG paper
by the project's plotter, photographed (simulated), and prepared as the runtime prepares photos.

    python Tools/train/image_data.py --data WORK/data2 --out WORK/images [--count N] [--variants 2]
                                     [--size 224] [--width 1280] [--uniecg PATH] [--preview DIR]
    python Tools/train/image_data.py --data WORK/data2 --check [--out WORK/images] [--preview DIR]

Record by record aligned with stage 2: `ishard-NNNNN.npz` holds the records of `ushard-NNNNN.npz`
in the same order (the first --count of them overall). Per record the 500 Hz signal is re-simulated
(`corpus.make_record(seed, i, 0, 0)`) and checked against the stored 102.4 Hz signal, written as
WFDB (format 16), drawn with `uniecg plot` (SVG) and rasterised with `rsvg-convert` at --width px.
Variant 0 is that clean rendering; variants 1..K are photo-like copies (below). Every image is then
prepared like Sources/UniECG/Image/ImagePreparation.swift: padded to a square with the CLIP mean
colour as int(mean * 255), resized to --size with Pillow's BICUBIC (the Swift resize matches it
byte for byte), stored as uint8; normalising with the CLIP mean/std is left to the trainer.

  images      uint8 (n, 1 + K, size, size, 3)   variant 0 clean
  ids         str (n,)                          = the ushard's ids
  condition   int16 (n,)
  paper       float32 (n, 1 + K)                share of pink/red grid pixels before preparation
                                                (the runtime warns below 0.01)
  params      str (n, 1 + K)                    JSON of the distortions drawn for each variant
  settings    str ()                            JSON; a shard with other settings is rebuilt

Distortions (per variant, numpy + Pillow only; the draws come from one
np.random.default_rng([seed, i, 3000]) per record, variants in order, so a record's images do not
depend on which other records are built):

  step          p     range
  framing       1     sheet on a surface (p .45): scale .80-.96, a background colour around it;
                      fill the frame (p .35): scale .97-1.03; zoomed in (p .20): scale 1.03-1.08;
                      shift +-4 % of the frame; the frame is 4:3 instead of the sheet's
                      aspect with p .25 (more surface above and below)
  rotation      .80   +-4 degrees
  perspective   .70   every corner moved independently by up to j of the frame, j in 1-5 %
                (framing, rotation and perspective are one homography, one bicubic resampling;
                 a draw that pushes the 12 leads' area more than 2.5 % of the frame out of it is
                 redrawn within its framing mode, up to 30 times, then the sheet is shown whole
                 at scale .85 (2 in 3000 draws); zoomed-in photos end up with smaller rotations
                 and shifts: mean |angle| 1.0 deg against 1.5 deg for the other modes)
  lighting      .85   exposure .80-1.10, linear gradient 5-30 % in a random direction,
                      vignette 0-35 % at the corners
  shadow        .20   a soft-edged half-plane darkened by 15-40 %
  colour cast   .60   white balance: R x(1 + .08 t), B x(1 - .12 t), t in -1..1, and each channel
                      x .97-1.03
  blur          .50   Gaussian, radius .4-2.0 px at 1280 px width (scaled with --width)
  noise         .60   Gaussian, sigma 1-6 grey levels (half shared by the channels)
  JPEG          .70   re-compression at quality 35-92

--check runs a handful of records (--count, default 6) without writing shards and fails (exit 1)
if the clean rendering lacks the paper grid (< 10 % pink/red pixels; the plotter's page has ~32 %),
the prepared clean image's first and last rows are not the pad colour, a second run differs,
re-preparing the saved PNG differs from the prepared image, or (when --out has the shard) the
stored images differ; it prints seconds per record per stage and how many distorted variants fall
below the runtime's 1 % paper-warning threshold (information: dark or blue-tinted photos do).
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image, ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
from diffusion_data import resample_to_1024  # noqa: E402
from ecgsim import LEADS  # noqa: E402

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
PAD = tuple(int(m * 255) for m in CLIP_MEAN)   # LLaVA's expand2square truncates, so does the runtime
FS = 500
# The plotter's page is 265 x 122 mm; the 12 leads and the rhythm strip lie in x 4-261, y 6-101 mm
# (the rest is calibration pulse ends, the caption and the disclaimer, which a crop may cut).
PAGE_MM = (265.0, 122.0)
KEEP_MM = (4.0, 6.0, 261.0, 101.0)
# How far (share of the photo's width/height) that area may leave the frame: without any slack the
# 1.5 % side margins of the page rule out zooming in and most rotations of a sheet filling the
# frame; 2.5 % of 1280 px costs at most ~7 mm (0.26 s) at one end of a lead's strip.
CUT = 0.025
SURFACES = [(92, 64, 44), (140, 104, 70), (182, 150, 112), (60, 60, 64), (118, 120, 124),
            (200, 200, 196), (30, 32, 36), (94, 110, 86)]
STAGES = ("simulate", "plot", "rsvg", "distort", "prepare")


def write_wfdb(base, sig):
    """Format 16 at 1 µV per unit, with the initial values and checksums the reader verifies."""
    d = np.clip(np.round(np.asarray(sig, np.float64) * 1000), -32767, 32767).astype("<i2")
    d.T.tofile(base + ".dat")
    name = os.path.basename(base)
    lines = [f"{name} {d.shape[0]} {FS} {d.shape[1]}"]
    for k, lead in enumerate(LEADS):
        check = int(np.int16(np.sum(d[k], dtype=np.int64) & 0xFFFF))
        lines.append(f"{name}.dat 16 1000(0)/mV 16 0 {int(d[k, 0])} {check} 0 {lead}")
    with open(base + ".hea", "w") as f:
        f.write("\n".join(lines) + "\n")


def render(uniecg, sig, name, width, tmp, times):
    """The plotter's page as an RGB image `width` px wide."""
    base = os.path.join(tmp, name)
    t = time.perf_counter()
    write_wfdb(base, sig)
    p = subprocess.run([uniecg, "plot", base + ".hea", "-o", base + ".svg"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"uniecg plot {name}: {p.stderr.strip()[-300:]}")
    times["plot"] += time.perf_counter() - t
    t = time.perf_counter()
    # The page has an opaque background rect; -b white only guards against a future transparent one.
    p = subprocess.run(["rsvg-convert", "-w", str(width), "-b", "white", base + ".svg"], capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"rsvg-convert {name}: {p.stderr.decode(errors='replace')[-300:]}")
    img = Image.open(io.BytesIO(p.stdout)).convert("RGB")
    times["rsvg"] += time.perf_counter() - t
    for ext in (".hea", ".dat", ".svg"):
        os.remove(base + ext)
    return img


def homography(src, dst):
    """The 8 coefficients of the projective map taking the 4 points src to dst (Pillow's order)."""
    a = []
    b = []
    for (x, y), (u, v) in zip(src, dst):
        a.append([x, y, 1, 0, 0, 0, -x * u, -y * u])
        a.append([0, 0, 0, x, y, 1, -x * v, -y * v])
        b += [u, v]
    return np.linalg.solve(np.array(a, np.float64), np.array(b, np.float64))


def apply_h(h, pts):
    pts = np.asarray(pts, np.float64)
    x, y = pts[:, 0], pts[:, 1]
    w = h[6] * x + h[7] * y + 1
    return np.stack([(h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w], 1)


def draw_geometry(rng, w, h):
    """Where the sheet's corners land in the photo, and the photo's size (module docstring)."""
    fw = w
    fh = int(round(0.75 * w)) if rng.random() < 0.25 else h
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    sx, sy = w / PAGE_MM[0], h / PAGE_MM[1]
    keep = np.array([[KEEP_MM[0] * sx, KEEP_MM[1] * sy], [KEEP_MM[2] * sx, KEEP_MM[1] * sy],
                     [KEEP_MM[2] * sx, KEEP_MM[3] * sy], [KEEP_MM[0] * sx, KEEP_MM[3] * sy]])
    surface = SURFACES[int(rng.integers(len(SURFACES)))]
    surface = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in surface)
    # The mode is drawn once so that redrawing keeps its share; within it, redrawing favours
    # smaller rotations, shifts and scales.
    u = rng.random()
    mode = "surface" if u < 0.45 else "fill" if u < 0.80 else "zoom"
    for attempt in range(30):
        s = rng.uniform(*{"surface": (0.80, 0.96), "fill": (0.97, 1.03), "zoom": (1.03, 1.08)}[mode])
        shift = rng.uniform(-0.04, 0.04, 2) * (fw, fh)
        angle = rng.uniform(-4, 4) if rng.random() < 0.80 else 0.0
        jitter = rng.uniform(0.01, 0.05) if rng.random() < 0.70 else 0.0
        moves = rng.uniform(-1, 1, (4, 2)) * jitter * (fw, fh)
        c, sn = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        rot = np.array([[c, -sn], [sn, c]])
        dst = (corners - (w / 2, h / 2)) @ rot.T * s + (fw / 2, fh / 2) + shift + moves
        fwd = homography(corners, dst)
        k = apply_h(fwd, keep)
        if np.all(k >= -CUT * np.array([fw, fh])) and np.all(k <= (1 + CUT) * np.array([fw, fh])):
            return dict(frame=[fw, fh], dst=dst.round(2).tolist(), mode=mode, scale=round(s, 4),
                        angle=round(angle, 3), jitter=round(jitter, 4), surface=surface, attempts=attempt + 1)
    s = 0.85
    dst = (corners - (w / 2, h / 2)) * s + (fw / 2, fh / 2)
    return dict(frame=[fw, fh], dst=dst.tolist(), mode="fallback", scale=s, angle=0.0, jitter=0.0,
                surface=surface, attempts=30)


def photograph(img, rng):
    """One photo-like copy of the clean rendering and the parameters drawn for it."""
    w, h = img.size
    g = draw_geometry(rng, w, h)
    fw, fh = g["frame"]
    corners = [[0, 0], [w, 0], [w, h], [0, h]]
    inv = homography(g["dst"], corners)   # Pillow maps output pixels back to input pixels
    out = img.transform((fw, fh), Image.PERSPECTIVE, tuple(inv), resample=Image.BICUBIC, fillcolor=g["surface"])
    params = {"geometry": g}

    # Row and column coordinates in -1..1; the fields below are built by broadcasting them, which
    # keeps the full-size float work to the one multiply that applies them.
    xn = (np.arange(fw, dtype=np.float32) + 0.5) / fw * 2 - 1
    yn = ((np.arange(fh, dtype=np.float32) + 0.5) / fh * 2 - 1)[:, None]
    field = None
    if rng.random() < 0.85:
        exposure = rng.uniform(0.80, 1.10)
        grad = rng.uniform(0.05, 0.30)
        theta = rng.uniform(0, 2 * np.pi)
        vig = rng.uniform(0, 0.35)
        field = (np.float32(exposure) * (1 + np.float32(grad * 0.5) * (np.float32(np.cos(theta)) * xn + np.float32(np.sin(theta)) * yn))
                 * (1 - np.float32(vig / 2) * (xn ** 2 + yn ** 2)))
        params["lighting"] = dict(exposure=round(exposure, 3), gradient=round(grad, 3),
                                  direction=round(theta, 3), vignette=round(vig, 3))
    if rng.random() < 0.20:
        depth = rng.uniform(0.15, 0.40)
        theta = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(-0.6, 0.6)
        soft = rng.uniform(0.03, 0.20)
        dist = np.float32(np.cos(theta)) * xn + np.float32(np.sin(theta)) * yn - np.float32(offset)
        shadow = 1 - np.float32(depth) / (1 + np.exp(-dist / np.float32(soft)))
        field = shadow if field is None else field * shadow
        params["shadow"] = dict(depth=round(depth, 3), direction=round(theta, 3), offset=round(offset, 3),
                                softness=round(soft, 3))
    gains = None
    if rng.random() < 0.60:
        t = rng.uniform(-1, 1)
        gains = np.array([1 + 0.08 * t, 1, 1 - 0.12 * t]) * rng.uniform(0.97, 1.03, 3)
        params["cast"] = [round(float(x), 3) for x in gains]
    if field is not None or gains is not None:
        a = np.asarray(out, np.float32)
        scale = np.ones((1, 1, 3), np.float32) if field is None else np.broadcast_to(field, (fh, fw))[..., None]
        if gains is not None:
            scale = scale * gains.astype(np.float32)
        a *= scale
        a += 0.5
        out = Image.fromarray(np.clip(a, 0, 255, out=a).astype(np.uint8))

    if rng.random() < 0.50:
        radius = rng.uniform(0.4, 2.0) * w / 1280
        out = out.filter(ImageFilter.GaussianBlur(radius))
        params["blur"] = round(radius, 3)
    if rng.random() < 0.60:
        sigma = rng.uniform(1, 6)
        nrng = np.random.default_rng(rng.integers(2 ** 63))
        shared = nrng.standard_normal((fh, fw, 1), np.float32)
        own = nrng.standard_normal((fh, fw, 3), np.float32)
        a = np.asarray(out, np.float32) + sigma * np.float32(np.sqrt(0.5)) * (shared + own)
        out = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))
        params["noise"] = round(sigma, 3)
    if rng.random() < 0.70:
        q = int(rng.integers(35, 93))
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=q)
        out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        params["jpeg"] = q
    return out, params


def prepare(img, size):
    """ImagePreparation.swift before normalisation: expand2square with PAD, bicubic resize."""
    w, h = img.size
    if w != h:
        side = max(w, h)
        sq = Image.new("RGB", (side, side), PAD)
        sq.paste(img, ((side - w) // 2, (side - h) // 2))
        img = sq
    return np.asarray(img.resize((size, size), Image.BICUBIC), np.uint8)


def paper_share(img):
    """ImagePreparation.paperWarnings' measure: share of pixels with the grid's pink/red."""
    a = np.asarray(img, np.int16)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    return float(np.mean((r >= 150) & (r - g >= 20) & (r - b >= 10)))


def record_index(rid):
    return int(str(rid).rsplit("-", 1)[1])


def make_images(rid, stored_signal, args, tmp, times):
    """(clean rendering, [(distorted, params)] * K) for one stage 2 record."""
    t = time.perf_counter()
    i = record_index(rid)
    sig, meta = corpus.make_record(args.seed, i, 0, 0)
    if meta["id"] != str(rid):
        raise RuntimeError(f"record {rid}: corpus seed {args.seed} gives id {meta['id']} (wrong --seed?)")
    # Cheap proof that the picture shows the signal stage 2 trains on, not a neighbour's.
    err = float(np.max(np.abs(resample_to_1024(sig) - np.asarray(stored_signal, np.float32))))
    if err > 0.02:
        raise RuntimeError(f"record {rid}: re-simulated signal differs from stage 2's by {err:.3f} mV")
    times["simulate"] += time.perf_counter() - t
    # The plotter prints the file name under the traces; the id would give the condition away
    # (record i has condition i mod 17), so every page is called "ecg".
    clean = render(args.uniecg, sig, "ecg", args.width, tmp, times)
    t = time.perf_counter()
    rng = np.random.default_rng([args.seed, i, 3000])
    variants = [photograph(clean, rng) for _ in range(args.variants)]
    times["distort"] += time.perf_counter() - t
    return clean, variants


def settings_of(args):
    return json.dumps(dict(seed=args.seed, variants=args.variants, size=args.size, width=args.width,
                           pad=PAD, version=1), sort_keys=True)


def build_shard(src, out, n, args, tmp, preview_left):
    d = np.load(src)
    ids = d["ids"][:n]
    signals = d["signals"][:n]
    times = dict.fromkeys(STAGES, 0.0)
    v = 1 + args.variants
    images = np.zeros((n, v, args.size, args.size, 3), np.uint8)
    paper = np.zeros((n, v), np.float32)
    params = np.empty((n, v), dtype=object)
    for j, rid in enumerate(ids):
        clean, variants = make_images(rid, signals[j], args, tmp, times)
        t = time.perf_counter()
        for k, (im, p) in enumerate([(clean, {})] + variants):
            images[j, k] = prepare(im, args.size)
            paper[j, k] = paper_share(im)
            params[j, k] = json.dumps(p, sort_keys=True)
        times["prepare"] += time.perf_counter() - t
        if preview_left[0] > 0:
            write_preview(args.preview, rid, clean, variants, images[j])
            preview_left[0] -= 1
    part = out + ".tmp.npz"
    save = np.savez if args.no_compress else np.savez_compressed
    save(part, images=images, ids=ids, condition=d["condition"][:n], paper=paper,
         params=params.astype(str), settings=np.array(settings_of(args)))
    os.replace(part, out)
    return times


def write_preview(dirname, rid, clean, variants, prepared):
    os.makedirs(dirname, exist_ok=True)
    clean.save(os.path.join(dirname, f"{rid}-v0.png"))
    for k, (im, _) in enumerate(variants, 1):
        im.save(os.path.join(dirname, f"{rid}-v{k}.png"))
    for k in range(len(prepared)):
        Image.fromarray(prepared[k]).save(os.path.join(dirname, f"{rid}-v{k}-{prepared.shape[1]}.png"))


def shard_ok(path, ids, args):
    """An existing shard is kept if it holds exactly these records with these settings."""
    try:
        with np.load(path) as d:
            return str(d["settings"]) == settings_of(args) and list(d["ids"]) == list(ids)
    except Exception:   # a damaged file is rebuilt rather than trusted
        return False


def sources(args):
    names = sorted(f for f in os.listdir(args.data) if f.startswith("ushard-") and f.endswith(".npz"))
    left = args.count
    for name in names:
        if left is not None and left <= 0:
            break
        ids = np.load(os.path.join(args.data, name))["ids"]
        n = len(ids) if left is None else min(left, len(ids))
        if left is not None:
            left -= n
        yield name, ids[:n]


def tally(counts, params, paper):
    """How often each distortion step and framing mode was drawn, and how many photo-like
    variants would get the runtime's "may not be an ECG" warning."""
    for text, share in zip(params[:, 1:].ravel(), paper[:, 1:].ravel()):
        p = json.loads(str(text))
        counts["variants"] = counts.get("variants", 0) + 1
        for key in [p["geometry"]["mode"]] + [k for k in p if k != "geometry"]:
            counts[key] = counts.get(key, 0) + 1
        if p["geometry"]["angle"] != 0:
            counts["rotation"] = counts.get("rotation", 0) + 1
        if p["geometry"]["jitter"] != 0:
            counts["perspective"] = counts.get("perspective", 0) + 1
        if share < 0.01:
            counts["paper_warning"] = counts.get("paper_warning", 0) + 1


def build(args):
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    done, shards, totals = 0, [], dict.fromkeys(STAGES, 0.0)
    built = 0
    counts = {}
    preview_left = [args.preview_count if args.preview else 0]
    with tempfile.TemporaryDirectory(prefix="uniecg-img-") as tmp:
        for name, ids in sources(args):
            out = os.path.join(args.out, name.replace("ushard", "ishard"))
            ts = time.time()
            if shard_ok(out, ids, args):
                status = "kept"
            else:
                times = build_shard(os.path.join(args.data, name), out, len(ids), args, tmp, preview_left)
                for k in STAGES:
                    totals[k] += times[k]
                built += len(ids)
                status = "built"
            done += len(ids)
            size = os.path.getsize(out)
            with np.load(out) as d:
                tally(counts, d["params"], d["paper"])
            shards.append(dict(file=os.path.basename(out), source=name, records=len(ids), bytes=size))
            dt = time.time() - ts
            rate = f"{len(ids) / dt:.2f} records/s" if status == "built" else "-"
            print(f"{out}: {status}, {len(ids)} records, {rate}, {size / 1e6:.1f} MB; "
                  f"{done} records in {time.time() - t0:.0f} s", flush=True)
    if built:
        print("s per record: " + ", ".join(f"{k} {totals[k] / built:.3f}" for k in STAGES), flush=True)
    if counts.get("variants"):
        print("share of distorted variants: " + ", ".join(
            f"{k} {v / counts['variants']:.2f}" for k, v in sorted(counts.items()) if k != "variants"), flush=True)
    total_bytes = sum(s["bytes"] for s in shards)
    manifest = dict(records=done, variants=1 + args.variants, size=args.size, width=args.width, seed=args.seed,
                    pad=PAD, compressed=not args.no_compress, data=os.path.abspath(args.data),
                    uniecg=os.path.abspath(args.uniecg), bytes=total_bytes,
                    bytes_per_1000_records=int(total_bytes * 1000 / max(done, 1)), shards=shards,
                    distortion_counts=counts,
                    seconds_per_record=({k: round(totals[k] / built, 4) for k in STAGES} if built else None),
                    note="synthetic ECGs drawn by uniecg plot; distortions in image_data.py's docstring")
    part = os.path.join(args.out, "manifest.json.tmp")
    with open(part, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(part, os.path.join(args.out, "manifest.json"))


def check(args):
    n = args.count or 6
    name, ids = next(sources(argparse.Namespace(**{**vars(args), "count": n})))
    d = np.load(os.path.join(args.data, name))
    signals = d["signals"][:n]
    times = dict.fromkeys(STAGES, 0.0)
    failures = []
    warned = 0
    stored = None
    shard = os.path.join(args.out, name.replace("ushard", "ishard")) if args.out else None
    if shard and os.path.exists(shard):
        s = np.load(shard)
        if str(s["settings"]) == settings_of(args):
            stored = {str(r): s["images"][j] for j, r in enumerate(s["ids"])}
        else:
            print(f"{shard} was built with other settings: not compared")
    with tempfile.TemporaryDirectory(prefix="uniecg-imgcheck-") as tmp:
        pdir = args.preview or os.path.join(tmp, "preview")
        for j, rid in enumerate(ids):
            clean, variants = make_images(rid, signals[j], args, tmp, times)
            t = time.perf_counter()
            ims = [clean] + [im for im, _ in variants]
            prepared = np.stack([prepare(im, args.size) for im in ims])
            times["prepare"] += time.perf_counter() - t
            shares = [paper_share(im) for im in ims]
            print(f"{rid}: paper share clean {shares[0]:.3f}, variants "
                  + " ".join(f"{x:.3f}" for x in shares[1:]) + "; "
                  + "; ".join(describe(p) for _, p in variants))
            if shares[0] < 0.10:
                failures.append(f"{rid}: clean rendering has only {shares[0]:.3f} grid-coloured pixels")
            warned += sum(x < 0.01 for x in shares[1:])
            if not np.all(prepared[0, 0] == PAD) or not np.all(prepared[0, -1] == PAD):
                failures.append(f"{rid}: first/last row of the prepared clean image is not the pad colour")
            write_preview(pdir, rid, clean, variants, prepared)
            for k in range(len(ims)):
                again = prepare(Image.open(os.path.join(pdir, f"{rid}-v{k}.png")).convert("RGB"), args.size)
                if not np.array_equal(again, prepared[k]):
                    failures.append(f"{rid} v{k}: re-preparing the saved PNG differs")
            if j == 0:
                clean2, variants2 = make_images(rid, signals[j], args, tmp, dict.fromkeys(STAGES, 0.0))
                if np.asarray(clean2).tobytes() != np.asarray(clean).tobytes() or any(
                        np.asarray(a).tobytes() != np.asarray(b).tobytes() or p != q
                        for (a, p), (b, q) in zip(variants, variants2)):
                    failures.append(f"{rid}: a second rendering with the same seed differs")
            if stored is not None and str(rid) in stored and not np.array_equal(stored[str(rid)], prepared):
                failures.append(f"{rid}: the images in {shard} differ from a fresh build")
    print(f"s per record ({n} records, {args.variants} variants): "
          + ", ".join(f"{k} {times[k] / n:.3f}" for k in STAGES)
          + f"; total {sum(times.values()) / n:.3f}")
    # Not a failure: a cool white balance or a dark exposure takes real photos below the runtime's
    # threshold too, and the encoder should see such photos.
    print(f"distorted variants below the runtime's 1 % paper threshold: {warned} of {n * args.variants}")
    if stored is not None:
        print(f"compared with {shard}: {sum(str(r) in stored for r in ids)} records")
    for f in failures:
        print("FAIL", f)
    print("check:", "failed" if failures else "ok")
    return 1 if failures else 0


def describe(p):
    g = p["geometry"]
    parts = [f"{g['mode']} x{g['scale']:.2f} {g['angle']:+.1f}deg persp {g['jitter']:.3f}"]
    for k in ("blur", "noise", "jpeg"):
        if k in p:
            parts.append(f"{k} {p[k]}")
    for k in ("lighting", "shadow", "cast"):
        if k in p:
            parts.append(k)
    return " ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="stage 2 data directory (stage2_data.py --out, ushard-*.npz)")
    ap.add_argument("--out", help="output directory (ishard-*.npz, manifest.json); with --check: shards to compare")
    ap.add_argument("--uniecg", default="/work/main/.build/release/uniecg", help="a built uniecg binary")
    ap.add_argument("--count", type=int, help="records from the first shard on (default all; --check: 6)")
    ap.add_argument("--seed", type=int, default=1, help="the corpus seed stage 2 used")
    ap.add_argument("--variants", type=int, default=2, help="distorted copies per record besides the clean one")
    ap.add_argument("--size", type=int, default=224, help="the image encoder's image_size")
    ap.add_argument("--width", type=int, default=1280, help="rendering width in px (the page is 265 x 122 mm)")
    ap.add_argument("--no-compress", action="store_true", help="np.savez instead of savez_compressed")
    ap.add_argument("--preview", metavar="DIR", help="write PNGs (full size and prepared) of the first records")
    ap.add_argument("--preview-count", type=int, default=3)
    ap.add_argument("--check", action="store_true", help="verify a handful of records (module docstring)")
    args = ap.parse_args()
    if args.check:
        sys.exit(check(args))
    if not args.out:
        ap.error("--out is required to build")
    build(args)


if __name__ == "__main__":
    main()
