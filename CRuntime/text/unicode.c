/* Unicode look-ups over the generated tables, and canonical normalisation (UAX #15: full
 * canonical decomposition, canonical ordering, canonical composition with Hangul handled
 * algorithmically). */
#include "unicode.h"

#include "unicode_tables.h"

#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int uniecg__unicode_category(uint32_t cp) {
    if (cp < 128) return uniecg__gc_ascii[cp];
    if (cp > 0x10FFFF) return UNIECG_GC_CN;
    size_t lo = 0, hi = COUNT(uniecg__gc_runs); /* last run start <= cp */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((uniecg__gc_runs[mid] >> 5) <= cp) lo = mid; else hi = mid;
    }
    return (int)(uniecg__gc_runs[lo] & 31);
}

uint8_t uniecg__unicode_ccc(uint32_t cp) {
    if (cp < 0x300 || cp > 0x10FFFF) return 0;
    size_t lo = 0, hi = COUNT(uniecg__ccc_runs);
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((uniecg__ccc_runs[mid] >> 8) <= cp) lo = mid; else hi = mid;
    }
    return (uint8_t)(uniecg__ccc_runs[lo] & 255);
}

bool uniecg__unicode_is_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000: return true;
    default: return cp >= 0x2000 && cp <= 0x200A;
    }
}

/* Property names as Oniguruma reads them: letters compared case-insensitively, '_', '-' and
 * spaces ignored. */
static const struct { const char *name; uint32_t mask; } NAMES[] = {
    {"l", UNIECG_GC_L}, {"letter", UNIECG_GC_L},
    {"lc", UNIECG_GC_MASK(UNIECG_GC_LU) | UNIECG_GC_MASK(UNIECG_GC_LL) | UNIECG_GC_MASK(UNIECG_GC_LT)},
    {"casedletter", UNIECG_GC_MASK(UNIECG_GC_LU) | UNIECG_GC_MASK(UNIECG_GC_LL) | UNIECG_GC_MASK(UNIECG_GC_LT)},
    {"m", 0x7u << UNIECG_GC_MN}, {"mark", 0x7u << UNIECG_GC_MN}, {"combiningmark", 0x7u << UNIECG_GC_MN},
    {"n", UNIECG_GC_N}, {"number", UNIECG_GC_N},
    {"p", 0x7Fu << UNIECG_GC_PC}, {"punctuation", 0x7Fu << UNIECG_GC_PC}, {"punct", 0x7Fu << UNIECG_GC_PC},
    {"s", 0xFu << UNIECG_GC_SM}, {"symbol", 0xFu << UNIECG_GC_SM},
    {"z", 0x7u << UNIECG_GC_ZS}, {"separator", 0x7u << UNIECG_GC_ZS},
    {"c", 0x1Fu << UNIECG_GC_CC}, {"other", 0x1Fu << UNIECG_GC_CC},
    {"lu", UNIECG_GC_MASK(UNIECG_GC_LU)}, {"uppercaseletter", UNIECG_GC_MASK(UNIECG_GC_LU)},
    {"ll", UNIECG_GC_MASK(UNIECG_GC_LL)}, {"lowercaseletter", UNIECG_GC_MASK(UNIECG_GC_LL)},
    {"lt", UNIECG_GC_MASK(UNIECG_GC_LT)}, {"titlecaseletter", UNIECG_GC_MASK(UNIECG_GC_LT)},
    {"lm", UNIECG_GC_MASK(UNIECG_GC_LM)}, {"modifierletter", UNIECG_GC_MASK(UNIECG_GC_LM)},
    {"lo", UNIECG_GC_MASK(UNIECG_GC_LO)}, {"otherletter", UNIECG_GC_MASK(UNIECG_GC_LO)},
    {"mn", UNIECG_GC_MASK(UNIECG_GC_MN)}, {"nonspacingmark", UNIECG_GC_MASK(UNIECG_GC_MN)},
    {"mc", UNIECG_GC_MASK(UNIECG_GC_MC)}, {"spacingmark", UNIECG_GC_MASK(UNIECG_GC_MC)},
    {"me", UNIECG_GC_MASK(UNIECG_GC_ME)}, {"enclosingmark", UNIECG_GC_MASK(UNIECG_GC_ME)},
    {"nd", UNIECG_GC_MASK(UNIECG_GC_ND)}, {"decimalnumber", UNIECG_GC_MASK(UNIECG_GC_ND)},
    {"digit", UNIECG_GC_MASK(UNIECG_GC_ND)},
    {"nl", UNIECG_GC_MASK(UNIECG_GC_NL)}, {"letternumber", UNIECG_GC_MASK(UNIECG_GC_NL)},
    {"no", UNIECG_GC_MASK(UNIECG_GC_NO)}, {"othernumber", UNIECG_GC_MASK(UNIECG_GC_NO)},
    {"pc", UNIECG_GC_MASK(UNIECG_GC_PC)}, {"connectorpunctuation", UNIECG_GC_MASK(UNIECG_GC_PC)},
    {"pd", UNIECG_GC_MASK(UNIECG_GC_PD)}, {"dashpunctuation", UNIECG_GC_MASK(UNIECG_GC_PD)},
    {"ps", UNIECG_GC_MASK(UNIECG_GC_PS)}, {"openpunctuation", UNIECG_GC_MASK(UNIECG_GC_PS)},
    {"pe", UNIECG_GC_MASK(UNIECG_GC_PE)}, {"closepunctuation", UNIECG_GC_MASK(UNIECG_GC_PE)},
    {"pi", UNIECG_GC_MASK(UNIECG_GC_PI)}, {"initialpunctuation", UNIECG_GC_MASK(UNIECG_GC_PI)},
    {"pf", UNIECG_GC_MASK(UNIECG_GC_PF)}, {"finalpunctuation", UNIECG_GC_MASK(UNIECG_GC_PF)},
    {"po", UNIECG_GC_MASK(UNIECG_GC_PO)}, {"otherpunctuation", UNIECG_GC_MASK(UNIECG_GC_PO)},
    {"sm", UNIECG_GC_MASK(UNIECG_GC_SM)}, {"mathsymbol", UNIECG_GC_MASK(UNIECG_GC_SM)},
    {"sc", UNIECG_GC_MASK(UNIECG_GC_SC)}, {"currencysymbol", UNIECG_GC_MASK(UNIECG_GC_SC)},
    {"sk", UNIECG_GC_MASK(UNIECG_GC_SK)}, {"modifiersymbol", UNIECG_GC_MASK(UNIECG_GC_SK)},
    {"so", UNIECG_GC_MASK(UNIECG_GC_SO)}, {"othersymbol", UNIECG_GC_MASK(UNIECG_GC_SO)},
    {"zs", UNIECG_GC_MASK(UNIECG_GC_ZS)}, {"spaceseparator", UNIECG_GC_MASK(UNIECG_GC_ZS)},
    {"zl", UNIECG_GC_MASK(UNIECG_GC_ZL)}, {"lineseparator", UNIECG_GC_MASK(UNIECG_GC_ZL)},
    {"zp", UNIECG_GC_MASK(UNIECG_GC_ZP)}, {"paragraphseparator", UNIECG_GC_MASK(UNIECG_GC_ZP)},
    {"cc", UNIECG_GC_MASK(UNIECG_GC_CC)}, {"control", UNIECG_GC_MASK(UNIECG_GC_CC)},
    {"cntrl", UNIECG_GC_MASK(UNIECG_GC_CC)},
    {"cf", UNIECG_GC_MASK(UNIECG_GC_CF)}, {"format", UNIECG_GC_MASK(UNIECG_GC_CF)},
    {"cs", UNIECG_GC_MASK(UNIECG_GC_CS)}, {"surrogate", UNIECG_GC_MASK(UNIECG_GC_CS)},
    {"co", UNIECG_GC_MASK(UNIECG_GC_CO)}, {"privateuse", UNIECG_GC_MASK(UNIECG_GC_CO)},
    {"cn", UNIECG_GC_MASK(UNIECG_GC_CN)}, {"unassigned", UNIECG_GC_MASK(UNIECG_GC_CN)},
};

uint32_t uniecg__unicode_category_mask(const char *name, size_t length) {
    char key[32];
    size_t k = 0;
    for (size_t i = 0; i < length; i++) {
        char c = name[i];
        if (c == '_' || c == '-' || c == ' ') continue;
        if (k + 1 >= sizeof key) return 0;
        key[k++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    key[k] = 0;
    for (size_t i = 0; i < COUNT(NAMES); i++)
        if (strcmp(NAMES[i].name, key) == 0) return NAMES[i].mask;
    return 0;
}

/* ---- normalisation ---- */

enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7, L_COUNT = 19, V_COUNT = 21,
       T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT };

static bool decomposition(uint32_t cp, uint32_t *a, uint32_t *b) {
    size_t lo = 0, hi = COUNT(uniecg__decompositions);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t key = (uint32_t)(uniecg__decompositions[mid] >> 42);
        if (key == cp) {
            *a = (uint32_t)(uniecg__decompositions[mid] >> 21 & 0x1FFFFF);
            *b = (uint32_t)(uniecg__decompositions[mid] & 0x1FFFFF);
            return true;
        }
        if (key < cp) lo = mid + 1; else hi = mid;
    }
    return false;
}

/* Full canonical decomposition of cp appended at out[n..]; returns the new length. The tables
 * never nest deeper than 4 code points. */
static size_t decompose(uint32_t cp, uint32_t *out, size_t n) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        out[n++] = L_BASE + s / N_COUNT;
        out[n++] = V_BASE + s % N_COUNT / T_COUNT;
        if (s % T_COUNT) out[n++] = T_BASE + s % T_COUNT;
        return n;
    }
    uint32_t a, b;
    if (cp < 0xC0 || !decomposition(cp, &a, &b)) {
        out[n++] = cp;
        return n;
    }
    n = decompose(a, out, n);
    if (b) n = decompose(b, out, n);
    return n;
}

static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE && b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    uint64_t key = (uint64_t)a << 21 | b;
    size_t lo = 0, hi = COUNT(uniecg__compositions);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t d = uniecg__decompositions[uniecg__compositions[mid]];
        uint64_t k = d & 0x3FFFFFFFFFFULL;
        if (k == key) return (uint32_t)(d >> 42);
        if (k < key) lo = mid + 1; else hi = mid;
    }
    return 0;
}

size_t uniecg__unicode_normalize(const uint32_t *in, size_t n, bool compose_, uint32_t *out, size_t out_capacity) {
    if (out_capacity < 4 * n) return 4 * n;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m = decompose(in[i], out, m);
    /* canonical ordering: stable insertion sort of each run of non-starters */
    for (size_t i = 1; i < m; i++) {
        uint8_t c = uniecg__unicode_ccc(out[i]);
        if (!c) continue;
        size_t j = i;
        uint32_t v = out[i];
        while (j > 0) {
            uint8_t p = uniecg__unicode_ccc(out[j - 1]);
            if (p <= c) break; /* p == 0 (a starter) also stops */
            out[j] = out[j - 1];
            j--;
        }
        out[j] = v;
    }
    if (!compose_ || m == 0) return m;
    size_t starter = 0, w = 1;
    int last = uniecg__unicode_ccc(out[0]) ? 256 : 0;
    bool have_starter = last == 0;
    for (size_t i = 1; i < m; i++) {
        uint32_t ch = out[i];
        int c = uniecg__unicode_ccc(ch);
        uint32_t composite = have_starter ? compose(out[starter], ch) : 0;
        if (composite && (last < c || last == 0)) {
            out[starter] = composite;
            continue;
        }
        if (c == 0) {
            starter = w;
            have_starter = true;
        }
        last = c;
        out[w++] = ch;
    }
    return w;
}
