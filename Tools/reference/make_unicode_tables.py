"""Generates CRuntime/text/unicode_tables.h: the Unicode data the C tokenizer needs.

  - general categories (for regex classes such as \\p{L}, \\p{N}, \\p{P}) as sorted run starts;
  - canonical combining classes, canonical decompositions and composition pairs (NFC / NFD).

Data source: Python's unicodedata. Hugging Face `tokenizers` (the oracle) matches regexes
with Oniguruma, whose tables are Unicode 16.0, and normalises with a crate whose tables are
older; so:
  - categories come from `unicodedata2` 16.0.0 when it is importable (pip install
    unicodedata2==16.0.0; the standard module of Python 3.11 is Unicode 14.0, which differs
    from Oniguruma only on the characters assigned in 15.0 and 16.0);
  - normalisation data is restricted to the characters that the `tokenizers` normaliser itself
    decomposes / reorders (probed here, since canonical decompositions and combining classes
    never change once assigned, this selects exactly the oracle's Unicode version).
The probe needs `tokenizers` (the project venv has it); without it every character is kept.

Run from the repository root:
  /opt/uniecg-venv/bin/python Tools/reference/make_unicode_tables.py
Deterministic: the same inputs give the same file.
"""
import os
import sys

try:
    import unicodedata2 as unicodedata  # newer Unicode, same API
except ImportError:  # pragma: no cover
    import unicodedata
    print("warning: unicodedata2 not found; using unicodedata %s" % unicodedata.unidata_version, file=sys.stderr)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "CRuntime", "text", "unicode_tables.h")

CATEGORIES = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi",
              "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"]
# The White_Space property (what Oniguruma's \s and Rust's char::is_whitespace match). Python's
# str.isspace() adds U+001C..U+001F (bidi class B/S): checked below.
WHITE_SPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B)) + \
              [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]

ALL = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


def check_white_space():
    python = {c for c in ALL if chr(c).isspace()} - set(range(0x1C, 0x20))
    assert python == set(WHITE_SPACE), sorted(python ^ set(WHITE_SPACE))


def canonical_decomposition(c):
    d = unicodedata.decomposition(chr(c))
    if not d or d.startswith("<"):
        return None
    return [int(x, 16) for x in d.split()]


def oracle_filter(decomposable, marks):
    """The subsets of `decomposable` and `marks` that the tokenizers normaliser knows."""
    try:
        from tokenizers import normalizers
    except ImportError:
        print("warning: tokenizers not importable; normalisation tables are not version-filtered", file=sys.stderr)
        return set(decomposable), set(marks)
    sep = "\u0001"
    nfd = normalizers.NFD()
    chars = [chr(c) for c in decomposable]
    out = nfd.normalize_str(sep.join(chars)).split(sep)
    assert len(out) == len(chars)
    known_decomposition = {c for c, o in zip(decomposable, out) if o != chr(c)}
    # A mark is known when the normaliser moves it across a mark of another class.
    probes = []
    for m in marks:
        ccc = unicodedata.combining(chr(m))
        other = 0x0334 if ccc > 1 else 0x0301  # ccc 1 / ccc 230
        probes.append("a" + chr(m) + chr(other) if ccc > 1 else "a" + chr(other) + chr(m))
    out = nfd.normalize_str(sep.join(probes)).split(sep)
    known_marks = {m for m, p, o in zip(marks, probes, out) if o != p}
    return known_decomposition, known_marks


def rows(values, per_line, hexadecimal=True):
    lines = []
    for i in range(0, len(values), per_line):
        lines.append("    " + "".join((("0x%X," if hexadecimal else "%d,") % v) for v in values[i:i + per_line]))
    return "\n".join(lines)


def main():
    check_white_space()
    # General categories: run starts, packed start << 5 | category.
    gc_runs, previous = [], None
    for c in range(0x110000):
        cat = CATEGORIES.index(unicodedata.category(chr(c)))
        if cat != previous:
            gc_runs.append(c << 5 | cat)
            previous = cat
    ascii_gc = [CATEGORIES.index(unicodedata.category(chr(c))) for c in range(128)]

    decomposable = [c for c in ALL if canonical_decomposition(c)]
    marks = [c for c in ALL if unicodedata.combining(chr(c)) > 0]
    known_decomposition, known_marks = oracle_filter(decomposable, marks)

    ccc_runs, previous = [], None
    for c in range(0x110000):
        ccc = unicodedata.combining(chr(c)) if c in known_marks else 0
        if ccc != previous:
            ccc_runs.append(c << 8 | ccc)
            previous = ccc

    decompositions, compositions = [], []
    for c in decomposable:
        if c not in known_decomposition:
            continue
        d = canonical_decomposition(c)
        a, b = d[0], d[1] if len(d) > 1 else 0
        if b and unicodedata.normalize("NFC", chr(a) + chr(b)) == chr(c):
            compositions.append((a, b, len(decompositions)))
        decompositions.append(c << 42 | a << 21 | b)
    compositions = [index for _, _, index in sorted(compositions)]

    version = unicodedata.unidata_version
    text = f"""/* GENERATED by Tools/reference/make_unicode_tables.py from Unicode {version} data: do not edit.
 * Normalisation data restricted to the characters the Hugging Face tokenizers normaliser knows
 * ({len(decompositions)} decompositions, {len(known_marks)} combining marks). */
#ifndef UNIECG_UNICODE_TABLES_H
#define UNIECG_UNICODE_TABLES_H

#include <stdint.h>

#define UNIECG_UNICODE_VERSION "{version}"

/* General category of U+0000..U+007F (index into the category list of unicode.h). */
static const uint8_t uniecg__gc_ascii[128] = {{
{rows(ascii_gc, 32, False)}
}};

/* Runs of equal general category: start << 5 | category, sorted; a run ends where the next
 * starts, the last at U+10FFFF. */
static const uint32_t uniecg__gc_runs[{len(gc_runs)}] = {{
{rows(gc_runs, 12)}
}};

/* Runs of equal canonical combining class: start << 8 | class. */
static const uint32_t uniecg__ccc_runs[{len(ccc_runs)}] = {{
{rows(ccc_runs, 12)}
}};

/* Canonical decompositions (one level): cp << 42 | first << 21 | second (0 = none), by cp. */
static const uint64_t uniecg__decompositions[{len(decompositions)}] = {{
{rows(decompositions, 6)}
}};

/* Primary composites: indices into uniecg__decompositions, sorted by (first, second). */
static const uint16_t uniecg__compositions[{len(compositions)}] = {{
{rows(compositions, 20, False)}
}};

#endif
"""
    with open(OUT, "w") as out:
        out.write(text)
    print(f"wrote {OUT}: {len(gc_runs)} category runs, {len(ccc_runs)} ccc runs, "
          f"{len(decompositions)} decompositions, {len(compositions)} compositions, {len(text)} bytes")


if __name__ == "__main__":
    main()
