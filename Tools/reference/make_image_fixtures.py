#!/usr/bin/env python3
"""Golden fixtures for the pure-Swift image readers and image preparation (Sources/UniECG/Image).

Independent oracles: Python's zlib for DEFLATE/zlib; for PNG, a small writer here (every colour
type, bit depth, filter and Adam7) whose expected RGB is computed from the source samples and
cross-checked against Pillow's decoding of the same file; Pillow/libjpeg for JPEG (decoded RGB);
LLaVA's expand2square + Pillow's bicubic resize + numpy normalisation for preparation.
Run with the project venv:  /opt/uniecg-venv/bin/python Tools/reference/make_image_fixtures.py
"""
import io, json, os, struct, zlib
import numpy as np
from PIL import Image, ImageDraw, ImageOps

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "images")
rng = np.random.default_rng(20240607)


def put(rel, data):
    path = os.path.join(ROOT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def put_json(rel, obj):
    put(rel, (json.dumps(obj, indent=1) + "\n").encode())


# ---------------------------------------------------------------- DEFLATE / zlib

class Bits:
    """LSB-first bit writer as RFC 1951 packs data; Huffman codes go MSB first."""
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, value, count):
        for i in range(count):
            self.acc |= ((value >> i) & 1) << self.n
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc); self.acc, self.n = 0, 0

    def code(self, code, length):
        for i in reversed(range(length)):
            self.put((code >> i) & 1, 1)

    def align(self):
        if self.n: self.out.append(self.acc); self.acc, self.n = 0, 0

    def bytes(self):
        self.align(); return bytes(self.out)


def fixed_literal(b, sym):
    if sym < 144: b.code(0x30 + sym, 8)
    elif sym < 256: b.code(0x190 + sym - 144, 9)
    elif sym < 280: b.code(sym - 256, 7)
    else: b.code(0xC0 + sym - 280, 8)


def deflate_fixtures():
    words = [b"sinus", b"rhythm", b"QRS", b"axis", b"PR", b"interval", b"ST", b"elevation", b"lead", b"V1", b"\n", b" "]
    text = b"".join(words[i] for i in rng.integers(0, len(words), 5000))[:20000]
    noise = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    # The noise repeats ~30 KB later so matches reach near the end of the 32 KiB window.
    plain = noise + text + rng.integers(0, 256, 7000, dtype=np.uint8).tobytes() + noise + bytes(500) + b"end"
    put("deflate/plain.bin", plain)
    cases = []
    for name, level, strategy in [("level0", 0, 0), ("level1", 1, 0), ("level6", 6, 0), ("level9", 9, 0),
                                  ("fixed", 6, zlib.Z_FIXED), ("huffman_only", 6, zlib.Z_HUFFMAN_ONLY), ("rle", 6, zlib.Z_RLE)]:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
        put(f"deflate/{name}.deflate", c.compress(plain) + c.flush())
        cases.append({"file": f"{name}.deflate", "wrapper": "raw", "plain": "plain.bin"})
    put("deflate/level6.zlib", zlib.compress(plain, 6))
    cases.append({"file": "level6.zlib", "wrapper": "zlib", "plain": "plain.bin"})
    put("deflate/empty.zlib", zlib.compress(b"", 9)); put("deflate/empty.bin", b"")
    cases.append({"file": "empty.zlib", "wrapper": "zlib", "plain": "empty.bin"})
    put_json("deflate/valid.json", cases)

    bad = []
    def add(name, data, wrapper, expect):
        put(f"deflate/corrupt/{name}", data); bad.append({"file": name, "wrapper": wrapper, "expect": expect})

    good = zlib.compressobj(6, zlib.DEFLATED, -15).compress(plain) + b""
    c = zlib.compressobj(6, zlib.DEFLATED, -15); stream = c.compress(plain) + c.flush()
    add("truncated.deflate", stream[: len(stream) // 2], "raw", "truncated")
    add("block_type3.deflate", bytes([0x07]), "raw", "invalid block type 3")
    b = Bits(); b.put(1, 1); b.put(0, 2); b.align(); b.put(5, 16); b.put(0x1234, 16); b.out += b"hello"
    add("stored_complement.deflate", b.bytes(), "raw", "does not match its complement")
    b = Bits(); b.put(1, 1); b.put(0, 2); b.align(); b.put(100, 16); b.put(100 ^ 0xFFFF, 16); b.out += b"0123456789"
    add("stored_truncated.deflate", b.bytes(), "raw", "truncated inside a stored block")
    b = Bits(); b.put(1, 1); b.put(1, 2); fixed_literal(b, ord("a")); fixed_literal(b, 257); b.code(5, 5); b.put(0, 1); fixed_literal(b, 256)
    add("distance_too_far.deflate", b.bytes(), "raw", "reaches before the start of the output")
    b = Bits(); b.put(1, 1); b.put(1, 2); fixed_literal(b, 286)
    add("literal_286.deflate", b.bytes(), "raw", "invalid literal/length symbol 286")
    b = Bits(); b.put(1, 1); b.put(1, 2); fixed_literal(b, ord("a")); fixed_literal(b, 257); b.code(30, 5)
    add("distance_30.deflate", b.bytes(), "raw", "invalid distance symbol 30")
    # Dynamic headers: HLIT-257, HDIST-1, HCLEN-4, then 3-bit code-length code lengths in RFC order.
    b = Bits(); b.put(1, 1); b.put(2, 2); b.put(0, 5); b.put(0, 5); b.put(0, 4)
    for _ in range(4): b.put(1, 3)  # four codes of length 1: more than two 1-bit patterns exist
    add("oversubscribed.deflate", b.bytes(), "raw", "over-subscribed")
    b = Bits(); b.put(1, 1); b.put(2, 2); b.put(0, 5); b.put(0, 5); b.put(0, 4)
    for length in [1, 0, 0, 1]: b.put(length, 3)  # symbols 16 and 0 get 1-bit codes: 0 -> '0', 16 -> '1'
    b.code(1, 1)  # first length is "repeat previous"
    add("repeat_first.deflate", b.bytes(), "raw", "no previous length")
    b = Bits(); b.put(1, 1); b.put(2, 2); b.put(0, 5); b.put(0, 5); b.put(14, 4)
    order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
    for sym in order[:18]: b.put(1 if sym in (0, 1) else 0, 3)  # code-length symbols 0 -> '0', 1 -> '1'
    for i in range(258): b.code(1 if i < 2 else 0, 1)  # literals 0 and 1 have length 1, 256 none
    add("no_end_of_block.deflate", b.bytes(), "raw", "no end-of-block code")
    b = Bits(); b.put(1, 1); b.put(2, 2); b.put(0, 5); b.put(31, 5); b.put(0, 4)
    add("too_many_distance_codes.deflate", b.bytes(), "raw", "32 distance codes")
    z = zlib.compress(plain[:2000], 6)
    add("bad_header.zlib", bytes([0x78, 0x9D]) + z[2:], "zlib", "header check bits")
    cmf = 0x77; flg = (31 - (cmf * 256) % 31) % 31
    add("bad_method.zlib", bytes([cmf, flg]) + z[2:], "zlib", "compression method 7")
    flg = 0x20; flg += (31 - (0x78 * 256 + flg) % 31) % 31
    add("dictionary.zlib", bytes([0x78, flg]) + z[2:], "zlib", "preset dictionary")
    add("bad_adler.zlib", z[:-1] + bytes([z[-1] ^ 0x55]), "zlib", "Adler-32 mismatch")
    add("missing_adler.zlib", z[:-4], "zlib", "checksum is missing")
    put_json("deflate/corrupt.json", bad)


# ---------------------------------------------------------------- PNG

def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """samples: 1-D ints of one scanline (pixels x channels flattened)."""
    if depth == 8: return bytes(np.asarray(samples, dtype=np.uint8))
    if depth == 16: return np.asarray(samples, dtype=">u2").tobytes()
    out, acc, n = bytearray(), 0, 0
    for s in samples:
        acc = (acc << depth) | int(s); n += depth
        if n == 8: out.append(acc); acc, n = 0, 0
    if n: out.append(acc << (8 - n))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filter_row(kind, row, prev, bpp):
    out = bytearray([kind])
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((x - pred) & 0xFF)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_raw(samples, depth, channels, interlace, filters="cycle"):
    """samples: (H, W, C) ints. The filtered scanlines of every pass, concatenated."""
    h, w = samples.shape[:2]
    bpp = max(1, channels * depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw, rowno = bytearray(), 0
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0: continue
        prev = bytes(len(pack_row(sub[0].reshape(-1), depth)))
        for r in range(sub.shape[0]):
            row = pack_row(sub[r].reshape(-1), depth)
            kind = rowno % 5 if filters == "cycle" else filters
            raw += filter_row(kind, row, prev, bpp); prev = row; rowno += 1
    return bytes(raw)


def png_file(samples, depth, ctype, interlace=False, plte=None, trns=None, split=None, extra=b"", raw=None, ihdr=None):
    h, w = samples.shape[:2]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    if raw is None: raw = png_raw(samples, depth, channels, interlace)
    data = zlib.compress(raw, 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr or struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace)))
    out += chunk(b"gAMA", struct.pack(">I", 45455)) + extra
    if plte is not None: out += chunk(b"PLTE", bytes(np.asarray(plte, dtype=np.uint8).reshape(-1)))
    if trns is not None: out += chunk(b"tRNS", trns)
    pieces = [data] if not split else [data[i:i + split] for i in range(0, len(data), split)]
    for p in pieces: out += chunk(b"IDAT", p)
    return out + chunk(b"tEXt", b"Comment\x00test") + chunk(b"IEND", b"")


def on_white(c, a):
    c, a = c.astype(np.int64), a.astype(np.int64)
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def level(v, depth):
    v = v.astype(np.int64)
    return (v >> 8) if depth == 16 else (v if depth == 8 else v * 255 // ((1 << depth) - 1))


def smooth_samples(h, w, c, depth):
    """Gradients plus noise: compresses, and exercises every filter's arithmetic."""
    top = (1 << depth) - 1
    y, x = np.mgrid[0:h, 0:w]
    base = [(x * top // max(1, w - 1)), (y * top // max(1, h - 1)), ((x + y) * top // max(1, w + h - 2)), ((x * y) % (top + 1))]
    out = np.stack([base[i % 4] for i in range(c)], axis=-1)
    noise = rng.integers(0, top + 1, (h, w, c))
    mask = rng.random((h, w, c)) < 0.2
    return np.where(mask, noise, out).astype(np.int64)


def png_fixtures():
    manifest, check_notes = [], []
    def add(name, data, expected, pillow):
        put(f"png/{name}.png", data); put(f"png/{name}.rgb", expected.astype(np.uint8).tobytes())
        h, w = expected.shape[:2]
        manifest.append({"file": f"{name}.png", "rgb": f"{name}.rgb", "width": w, "height": h})
        im = Image.open(io.BytesIO(data)); im.load()
        got = pillow(im)
        assert got.shape == expected.shape and (got == expected).all(), f"Pillow disagrees on {name}"

    def pillow_rgba(im):
        a = np.array(im.convert("RGBA"))
        return np.stack([on_white(a[..., i], a[..., 3]) for i in range(3)], axis=-1)

    def pillow_gray16(samples, key=None):
        def check(im):
            assert (np.array(im).astype(np.int64) == samples[..., 0]).all()  # Pillow keeps 16-bit grey as is
            return expected_gray(samples, 16, key)
        return check

    def expected_gray(s, depth, key=None):
        g = level(s[..., 0], depth).astype(np.uint8)
        if key is not None: g = np.where(s[..., 0] == key, 255, g)
        return np.repeat(g[..., None], 3, axis=-1)

    for (w, h) in [(37, 23)]:
        for depth in [1, 2, 4, 8, 16]:
            for interlace in [False, True] if depth in (2, 16) else [False]:
                s = smooth_samples(h, w, 1, depth)
                name = f"gray{depth}" + ("_adam7" if interlace else "")
                exp = expected_gray(s, depth)
                add(name, png_file(s, depth, 0, interlace, split=50), exp,
                    pillow_gray16(s) if depth == 16 else (lambda im: np.array(im.convert("RGB"))))
        for depth in [8, 16]:
            s = smooth_samples(h, w, 3, depth)
            exp = level(s, depth).astype(np.uint8)
            add(f"rgb{depth}", png_file(s, depth, 2), exp, lambda im: np.array(im.convert("RGB")))
            s = smooth_samples(h, w, 2, depth)
            exp = np.repeat(on_white(level(s[..., 0], depth), level(s[..., 1], depth))[..., None], 3, axis=-1)
            add(f"gray_alpha{depth}", png_file(s, depth, 4), exp, pillow_rgba)
            s = smooth_samples(h, w, 4, depth)
            exp = np.stack([on_white(level(s[..., i], depth), level(s[..., 3], depth)) for i in range(3)], axis=-1)
            add(f"rgba{depth}", png_file(s, depth, 6, interlace=depth == 8), exp, pillow_rgba)
        for depth in [1, 2, 4, 8]:
            n = min(1 << depth, 200)
            plte = rng.integers(0, 256, (n, 3))
            s = rng.integers(0, n, (h, w, 1))
            add(f"palette{depth}", png_file(s, depth, 3, plte=plte, interlace=depth == 4), plte[s[..., 0]].astype(np.uint8),
                lambda im: np.array(im.convert("RGB")))
        # Palette transparency for some entries only.
        plte = rng.integers(0, 256, (16, 3)); alpha = rng.integers(0, 256, 10)
        s = rng.integers(0, 16, (h, w, 1))
        a_full = np.concatenate([alpha, np.full(6, 255)])
        exp = np.stack([on_white(plte[s[..., 0], i], a_full[s[..., 0]]) for i in range(3)], axis=-1)
        add("palette4_trns", png_file(s, 4, 3, plte=plte, trns=bytes(alpha.astype(np.uint8))), exp, pillow_rgba)
        # Colour-key transparency.
        s = smooth_samples(h, w, 1, 8); key = int(s[3, 4, 0])
        add("gray8_trns", png_file(s, 8, 0, trns=struct.pack(">H", key)), expected_gray(s, 8, key), pillow_rgba)
        s = smooth_samples(h, w, 3, 8); s[5, 6] = [10, 20, 30]; s[7, 1] = [10, 20, 31]
        exp = np.where((s == [10, 20, 30]).all(-1)[..., None], 255, s).astype(np.uint8)
        add("rgb8_trns", png_file(s, 8, 2, trns=struct.pack(">HHH", 10, 20, 30)), exp, pillow_rgba)
    # Tiny interlaced images leave some Adam7 passes empty.
    for (w, h) in [(1, 1), (3, 2), (5, 3), (9, 9)]:
        s = smooth_samples(h, w, 3, 8)
        add(f"rgb8_adam7_{w}x{h}", png_file(s, 8, 2, interlace=True), s.astype(np.uint8), lambda im: np.array(im.convert("RGB")))
    # One written by Pillow itself (its own filter choices and zlib settings).
    s = smooth_samples(40, 61, 3, 8).astype(np.uint8)
    buf = io.BytesIO(); Image.fromarray(s).save(buf, "PNG", optimize=True)
    add("pillow_rgb", buf.getvalue(), s, lambda im: np.array(im.convert("RGB")))
    put_json("png/valid.json", manifest)

    # Damaged files, each with the phrase its error must contain.
    bad = []
    def bad_add(name, data, expect):
        put(f"png/corrupt/{name}.png", data); bad.append({"file": f"{name}.png", "expect": expect})
    s = smooth_samples(8, 8, 3, 8)
    good = png_file(s, 8, 2)
    bad_add("bad_signature", b"\x88" + good[1:], "bad signature")
    i = good.index(b"IDAT") + 10
    bad_add("crc", good[:i] + bytes([good[i] ^ 1]) + good[i + 1:], "CRC mismatch")
    bad_add("truncated", good[: good.index(b"IDAT") + 20], "truncated inside chunk 'IDAT'")
    bad_add("no_iend", good[: good.index(b"IEND") - 4], "ends before the IEND")
    bad_add("no_ihdr", b"\x89PNG\r\n\x1a\n" + good[good.index(b"gAMA") - 4:], "instead of IHDR")
    bad_add("bad_depth", png_file(s, 8, 2, ihdr=struct.pack(">IIBBBBB", 8, 8, 4, 2, 0, 0, 0)), "bit depth 4 is not allowed for colour type 2")
    bad_add("bad_colour_type", png_file(s, 8, 2, ihdr=struct.pack(">IIBBBBB", 8, 8, 8, 5, 0, 0, 0)), "colour type 5 does not exist")
    bad_add("zero_width", png_file(s, 8, 2, ihdr=struct.pack(">IIBBBBB", 0, 8, 8, 2, 0, 0, 0)), "zero size")
    bad_add("huge_side", png_file(s, 8, 2, ihdr=struct.pack(">IIBBBBB", 20000, 8, 8, 2, 0, 0, 0)), "at most 16384")
    bad_add("huge_area", png_file(s, 8, 2, ihdr=struct.pack(">IIBBBBB", 16000, 16000, 8, 2, 0, 0, 0)), "64 Mpixel")
    bad_add("interlace2", png_file(s, 8, 2, ihdr=struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 2)), "interlace method 2")
    bad_add("unknown_critical", png_file(s, 8, 2, extra=chunk(b"ABCD", b"xyz")), "unknown critical chunk 'ABCD'")
    p = rng.integers(0, 4, (8, 8, 1))
    bad_add("no_plte", png_file(p, 8, 3), "no PLTE")
    p[2, 3, 0] = 5
    bad_add("palette_index", png_file(p, 8, 3, plte=[[1, 2, 3]] * 4), "palette index 5")
    raw = bytearray(png_raw(s, 8, 3, False)); raw[(1 + 24) * 3] = 5
    bad_add("bad_filter", png_file(s, 8, 2, raw=bytes(raw)), "row 3 has unknown filter type 5")
    bad_add("short_data", png_file(s, 8, 2, raw=png_raw(s, 8, 3, False)[:-25]), "decompresses to 175 bytes")
    bad_add("long_data", png_file(s, 8, 2, raw=png_raw(s, 8, 3, False) + bytes(10)), "more than the 200 bytes")
    broken = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
    bad_add("bad_zlib", broken + chunk(b"IDAT", bytes([0x78, 0x9C, 0x07])) + chunk(b"IEND", b""), "invalid block type 3")
    bad_add("no_idat", broken + chunk(b"IEND", b""), "no IDAT")
    z = zlib.compress(png_raw(s, 8, 3, False))
    bad_add("split_idat", broken + chunk(b"IDAT", z[:20]) + chunk(b"tEXt", b"a\x00b") + chunk(b"IDAT", z[20:]) + chunk(b"IEND", b""),
            "not consecutive")
    put_json("png/corrupt.json", bad)


# ---------------------------------------------------------------- JPEG

def ecg_picture(w, h, seed=0):
    """Pink grid paper, a black trace and a colour patch (so chroma carries detail)."""
    im = Image.new("RGB", (w, h), (255, 235, 235))
    d = ImageDraw.Draw(im)
    for x in range(0, w, 5): d.line([(x, 0), (x, h)], fill=(245, 170, 170) if x % 25 else (225, 90, 90))
    for y in range(0, h, 5): d.line([(0, y), (w, y)], fill=(245, 170, 170) if y % 25 else (225, 90, 90))
    r = np.random.default_rng(seed)
    pts = [(x, h / 2 + (h / 3 if x % 37 == 18 else r.normal(0, h / 30))) for x in range(0, w, 2)]
    d.line(pts, fill=(10, 10, 20), width=2)
    d.rectangle([w * 0.7, h * 0.1, w * 0.9, h * 0.35], fill=(40, 120, 230))
    d.ellipse([w * 0.05, h * 0.6, w * 0.3, h * 0.9], fill=(250, 220, 30))
    return im


def jpeg_fixtures():
    manifest = []
    def add(name, im, **options):
        buf = io.BytesIO(); im.save(buf, "JPEG", **options); data = buf.getvalue()
        put(f"jpeg/{name}.jpg", data)
        # Upright as viewers show it: the EXIF orientation applied, as the Swift reader does.
        ref = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        put(f"jpeg/{name}.rgb", np.array(ref).tobytes())
        manifest.append({"file": f"{name}.jpg", "rgb": f"{name}.rgb", "width": ref.width, "height": ref.height})
        return data
    pic = ecg_picture(96, 64)
    add("ycc444", pic, quality=90, subsampling=0)
    add("ycc422", pic, quality=90, subsampling=1)
    add("ycc420", pic, quality=90, subsampling=2)
    add("ycc420_q40_optimized", pic, quality=40, subsampling=2, optimize=True)
    add("gray", pic.convert("L"), quality=85)
    odd = ecg_picture(37, 23, seed=1)
    add("odd_420", odd, quality=92, subsampling=2)
    add("odd_422", odd, quality=92, subsampling=1)
    add("odd_gray", odd.convert("L"), quality=92)
    restart = add("restart_420", pic, quality=88, subsampling=2, restart_marker_blocks=3)
    add("restart_gray_rows", pic.convert("L"), quality=88, restart_marker_rows=1)
    exif = Image.Exif(); exif[0x0112] = 6; exif[0x010F] = "UniECG test"
    add("exif_comment", pic, quality=85, exif=exif.tobytes(), comment=b"a COM segment")
    add("adobe_rgb", pic, quality=90, keep_rgb=True)
    for orientation in range(2, 9):
        exif = Image.Exif(); exif[0x0112] = orientation
        add(f"orientation{orientation}", odd, quality=92, subsampling=0, exif=exif.tobytes())
    # A big-endian ("MM") TIFF header, as many cameras write it: one IFD entry, orientation 8.
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 8, 0) + struct.pack(">I", 0)
    add("orientation8_big_endian", odd, quality=92, subsampling=0, exif=b"Exif\x00\x00" + tiff)
    # Layouts Pillow cannot write, from the encoder above; Pillow's decoding is the reference.
    def add_encoded(name, data):
        put(f"jpeg/{name}.jpg", data)
        ref = Image.open(io.BytesIO(data)).convert("RGB")
        put(f"jpeg/{name}.rgb", np.array(ref).tobytes())
        manifest.append({"file": f"{name}.jpg", "rgb": f"{name}.rgb", "width": ref.width, "height": ref.height})
    rgb = np.array(odd)
    add_encoded("enc_411", encode_baseline(rgb, [(4, 1), (1, 1), (1, 1)]))
    add_encoded("enc_440", encode_baseline(rgb, [(1, 2), (1, 1), (1, 1)]))
    add_encoded("enc_410", encode_baseline(rgb, [(4, 2), (1, 1), (1, 1)]))
    add_encoded("enc_420_separate_scans", encode_baseline(rgb, [(2, 2), (1, 1), (1, 1)], interleaved=False, restart=2))
    add_encoded("enc_444_separate_scans", encode_baseline(np.array(pic), [(1, 1), (1, 1), (1, 1)], interleaved=False))
    add_encoded("enc_gray_2x2_factors", encode_baseline(rgb, [(2, 2)], restart=1))
    put_json("jpeg/valid.json", manifest)

    bad = []
    def bad_add(name, data, expect):
        put(f"jpeg/corrupt/{name}.jpg", data); bad.append({"file": f"{name}.jpg", "expect": expect})
    buf = io.BytesIO(); pic.save(buf, "JPEG", quality=80, progressive=True); progressive = buf.getvalue()
    put("jpeg/progressive.jpg", progressive)
    bad_add("progressive", progressive, "progressive JPEG (SOF2) is not supported, re-save it as baseline")
    buf = io.BytesIO(); pic.convert("CMYK").save(buf, "JPEG", quality=80); bad_add("cmyk", buf.getvalue(), "4 components is not supported")
    base = open(os.path.join(ROOT, "jpeg/ycc420.jpg"), "rb").read()
    segs = segments(base)
    sof = segs[0xC0]
    def patched(offset, value):
        d = bytearray(base); d[offset:offset + len(value)] = value; return bytes(d)
    bad_add("truncated", base[: len(base) * 2 // 3], "truncated")
    bad_add("twelve_bit", patched(sof + 4, bytes([12])), "12-bit JPEG is not supported")
    bad_add("zero_height", patched(sof + 5, b"\x00\x00"), "height 0")
    bad_add("huge", patched(sof + 5, struct.pack(">HH", 20000, 20000)), "at most 16384")
    bad_add("lossless", patched(sof + 1, b"\xC3"), "lossless JPEG (SOF3) is not supported")
    bad_add("arithmetic", patched(sof + 1, b"\xC9"), "arithmetic-coded JPEG (SOF9) is not supported")
    sos = segs[0xDA]
    bad_add("undefined_huffman", patched(sos + 6, b"\x30"), "DC Huffman table 3, which is not defined")
    dqt = segs[0xDB]; length = struct.unpack(">H", base[dqt + 2:dqt + 4])[0]
    no_dqt = base[:dqt] + base[dqt + 2 + length:]
    while 0xDB in segments(no_dqt):
        d = segments(no_dqt)[0xDB]; length = struct.unpack(">H", no_dqt[d + 2:d + 4])[0]; no_dqt = no_dqt[:d] + no_dqt[d + 2 + length:]
    bad_add("missing_dqt", no_dqt, "quantisation table 0, which is not defined")
    bad_add("no_scan", base[:sos] + b"\xFF\xD9", "no scan data for component")
    bad_add("no_frame", b"\xFF\xD8\xFF\xD9", "no frame header")
    rst = restart.index(b"\xFF\xD1")
    bad_add("missing_restart", restart[:rst] + restart[rst + 2:], "restart marker RST1 expected")
    put_json("jpeg/corrupt.json", bad)


class JpegBits:
    """MSB-first entropy-coded bytes with 0xFF stuffing (T.81 F.1.2.3)."""
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, value, count):
        for i in reversed(range(count)):
            self.acc = (self.acc << 1) | ((value >> i) & 1); self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF: self.out.append(0)
                self.acc, self.n = 0, 0

    def pad(self):
        while self.n: self.put(1, 1)


def huffman_from_dht(counts, values):
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            codes[values[k]] = (code, length); code += 1; k += 1
        code <<= 1
    return codes


def baseline_tables(quality):
    """Quantisation and Huffman tables as libjpeg writes them (taken from a Pillow file)."""
    buf = io.BytesIO(); Image.new("RGB", (16, 16)).save(buf, "JPEG", quality=quality, subsampling=0); data = buf.getvalue()
    quant, dht, p = {}, {}, 2
    while True:
        marker = data[p + 1]; length = struct.unpack(">H", data[p + 2:p + 4])[0]; body = data[p + 4:p + 2 + length]
        if marker == 0xDB:
            q = 0
            while q < len(body):
                quant[body[q] & 15] = list(body[q + 1:q + 65]); q += 65
        if marker == 0xC4:
            q = 0
            while q < len(body):
                counts = list(body[q + 1:q + 17]); n = sum(counts)
                dht[(body[q] >> 4, body[q] & 15)] = (counts, list(body[q + 17:q + 17 + n])); q += 17 + n
        if marker == 0xDA: return quant, dht
        p += 2 + length


ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
          28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
          47, 55, 62, 63]


def encode_baseline(rgb, factors, interleaved=True, restart=0, quality=90):
    """A small baseline JPEG encoder for layouts Pillow cannot write (any sampling factors, one
    scan per component). Pillow's decoder is the oracle for what it writes."""
    h, w = rgb.shape[:2]
    x = rgb.astype(np.float64)
    ycc = [0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2],
           -0.168736 * x[..., 0] - 0.331264 * x[..., 1] + 0.5 * x[..., 2] + 128,
           0.5 * x[..., 0] - 0.418688 * x[..., 1] - 0.081312 * x[..., 2] + 128][:len(factors)]
    hmax, vmax = max(f[0] for f in factors), max(f[1] for f in factors)
    mx, my = -(-w // (8 * hmax)), -(-h // (8 * vmax))
    quant, dht = baseline_tables(quality)
    n = np.arange(8)
    basis = np.sqrt(2 / 8) * np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16); basis[0] /= np.sqrt(2)
    planes = []
    for c, (fh, fv) in enumerate(factors):
        full = np.pad(ycc[c], ((0, my * 8 * vmax - h), (0, mx * 8 * hmax - w)), mode="edge")
        sy, sx = vmax // fv, hmax // fh
        plane = full.reshape(full.shape[0] // sy, sy, full.shape[1] // sx, sx).mean(axis=(1, 3))
        planes.append(plane)
    def blocks(c, bx, by):
        block = planes[c][by * 8:by * 8 + 8, bx * 8:bx * 8 + 8] - 128
        coef = basis @ block @ basis.T
        q = np.array(quant[min(c, 1)], dtype=np.float64)
        return np.round(coef.reshape(-1)[ZIGZAG] / q).astype(int)
    codes = {k: huffman_from_dht(*v) for k, v in dht.items()}
    def category(v): return 0 if v == 0 else int(abs(v)).bit_length()
    def bits(v, s): return v if v >= 0 else v + (1 << s) - 1
    def encode_block(out, z, c, pred):
        dc, ac = codes[(0, min(c, 1))], codes[(1, min(c, 1))]
        diff = z[0] - pred; s = category(diff); out.put(*dc[s]); out.put(bits(diff, s), s)
        run = 0
        for k in range(1, 64):
            if z[k] == 0: run += 1; continue
            while run > 15: out.put(*ac[0xF0]); run -= 16
            s = category(z[k]); out.put(*ac[(run << 4) | s]); out.put(bits(z[k], s), s); run = 0
        if run: out.put(*ac[0x00])
        return z[0]
    def scan(members):
        out, preds, unit = JpegBits(), [0] * len(members), 0
        if len(members) == 1:
            c = members[0]; fh, fv = factors[c]
            cw, ch = -(-w * fh // hmax), -(-h * fv // vmax)
            units = [(bx, by, [(c, bx, by)]) for by in range(-(-ch // 8)) for bx in range(-(-cw // 8))]
        else:
            units = [(ux, uy, [(c, ux * factors[c][0] + bx, uy * factors[c][1] + by)
                               for c in members for by in range(factors[c][1]) for bx in range(factors[c][0])])
                     for uy in range(my) for ux in range(mx)]
        for i, (_, _, blist) in enumerate(units):
            if restart and i and i % restart == 0:
                out.pad(); out.out += bytes([0xFF, 0xD0 + (i // restart - 1) % 8]); preds = [0] * len(members)
            for c, bx, by in blist:
                m = members.index(c)
                preds[m] = encode_block(out, blocks(c, bx, by), c, preds[m])
        out.pad()
        header = bytes([len(members)]) + b"".join(bytes([c + 1, 0x00 if c == 0 else 0x11]) for c in members) + bytes([0, 63, 0])
        return b"\xFF\xDA" + struct.pack(">H", 2 + len(header)) + header + bytes(out.out)
    seg = lambda m, body: bytes([0xFF, m]) + struct.pack(">H", 2 + len(body)) + body
    out = b"\xFF\xD8"
    for t in sorted(quant)[:min(2, len(factors))]: out += seg(0xDB, bytes([t]) + bytes(quant[t]))
    out += seg(0xC0, struct.pack(">BHHB", 8, h, w, len(factors)) +
               b"".join(bytes([c + 1, (fh << 4) | fv, min(c, 1)]) for c, (fh, fv) in enumerate(factors)))
    for (tc, th), (counts, values) in sorted(dht.items()):
        if th < min(2, len(factors)): out += seg(0xC4, bytes([(tc << 4) | th]) + bytes(counts) + bytes(values))
    if restart: out += seg(0xDD, struct.pack(">H", restart))
    for members in ([list(range(len(factors)))] if interleaved else [[c] for c in range(len(factors))]):
        out += scan(members)
    return out + b"\xFF\xD9"


def segments(data):
    """First offset of each marker (the 0xFF byte) up to the first scan."""
    found, p = {}, 2
    while p + 4 <= len(data):
        marker = data[p + 1]
        found.setdefault(marker, p)
        if marker == 0xD9: break
        length = struct.unpack(">H", data[p + 2:p + 4])[0]
        if marker == 0xDA: break
        p += 2 + length
    return found


# ---------------------------------------------------------------- preparation (LLaVA "pad" + CLIP processor)

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def expand2square(img, background):
    """LLaVA's pad mode: centre the image on a square of the processor's mean colour."""
    w, h = img.size
    if w == h: return img
    side = max(w, h)
    result = Image.new(img.mode, (side, side), background)
    result.paste(img, (0, (w - h) // 2) if w > h else ((h - w) // 2, 0))
    return result


def prep_fixtures():
    cases = []
    for name, (w, h), size in [("landscape", (160, 100), 64), ("portrait", (80, 123), 64), ("upscale", (70, 64), 80)]:
        im = ecg_picture(w, h, seed=len(name))
        png = io.BytesIO(); im.save(png, "PNG"); put(f"prep/{name}.png", png.getvalue())
        square = expand2square(im, tuple(int(x * 255) for x in MEAN))
        resized = square.resize((size, size), resample=Image.BICUBIC)
        put(f"prep/{name}_resized.rgb", np.array(resized).tobytes())
        x = np.array(resized).astype(np.float64) * (1 / 255)
        x = (x.astype(np.float32) - MEAN) / STD
        np.save(os.path.join(ROOT, f"prep/{name}.npy"), np.ascontiguousarray(x.transpose(2, 0, 1)).astype(np.float32))
        cases.append({"image": f"{name}.png", "size": size, "expected": f"{name}.npy", "resized": f"{name}_resized.rgb"})
    put_json("prep/cases.json", cases)


if __name__ == "__main__":
    deflate_fixtures()
    png_fixtures()
    jpeg_fixtures()
    prep_fixtures()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"fixtures written to {os.path.normpath(ROOT)}: {total} bytes")
