/* XXH64, written from the published xxHash specification (the 64-bit variant). Used for
 * every checksum in the model format; see ModelFormat.md §7. */
#include "internal.h"

static const uint64_t PRIME1 = 0x9E3779B185EBCA87ULL;
static const uint64_t PRIME2 = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t PRIME3 = 0x165667B19E3779F9ULL;
static const uint64_t PRIME4 = 0x85EBCA77C2B2AE63ULL;
static const uint64_t PRIME5 = 0x27D4EB2F165667C5ULL;

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t round_step(uint64_t acc, uint64_t lane) {
    acc += lane * PRIME2;
    return rotl(acc, 31) * PRIME1;
}

static inline uint64_t merge_step(uint64_t acc, uint64_t lane) {
    acc ^= round_step(0, lane);
    return acc * PRIME1 + PRIME4;
}

uint64_t uniecg_xxh64(const void *data, size_t length, uint64_t seed) {
    const uint8_t *p = data;
    const uint8_t *end = p + length;
    uint64_t h;
    if (length >= 32) {
        uint64_t v1 = seed + PRIME1 + PRIME2, v2 = seed + PRIME2, v3 = seed, v4 = seed - PRIME1;
        const uint8_t *last_stripe = end - 32;
        do {
            v1 = round_step(v1, uniecg__get_u64(p));
            v2 = round_step(v2, uniecg__get_u64(p + 8));
            v3 = round_step(v3, uniecg__get_u64(p + 16));
            v4 = round_step(v4, uniecg__get_u64(p + 24));
            p += 32;
        } while (p <= last_stripe);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = merge_step(h, v1);
        h = merge_step(h, v2);
        h = merge_step(h, v3);
        h = merge_step(h, v4);
    } else {
        h = seed + PRIME5;
    }
    h += (uint64_t)length;
    while (end - p >= 8) {
        h ^= round_step(0, uniecg__get_u64(p));
        h = rotl(h, 27) * PRIME1 + PRIME4;
        p += 8;
    }
    if (end - p >= 4) {
        h ^= (uint64_t)uniecg__get_u32(p) * PRIME1;
        h = rotl(h, 23) * PRIME2 + PRIME3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p) * PRIME5;
        h = rotl(h, 11) * PRIME1;
        p++;
    }
    h ^= h >> 33;
    h *= PRIME2;
    h ^= h >> 29;
    h *= PRIME3;
    h ^= h >> 32;
    return h;
}
