// The line scanner of the receive path (see CStatorSys_scan_lines in the header and
// LineScanner.swift): bit masks of a datagram's `\n`, `:` and `|` bytes, 16 bytes per compare
// (SSE2, every x86-64 has it; a byte loop elsewhere), then each line's delimiters found with a
// count of trailing zeros instead of a visit per byte.
#include "CStatorSys.h"
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// A set is four ways of two 8-byte words (LineIdentityCache.Way), one cache line.
_Static_assert(CStatorSys_CACHE_SET_BYTES == 4 * 2 * sizeof(uint64_t), "a key cache set is four 16-byte ways");
_Static_assert(CStatorSys_CACHE_SET_SHIFT + 13 <= 64, "the set index (8,192 sets) fits in the identity hash");

// Datagrams are at most 65,535 bytes (UDP): 1,024 words of 64 bytes per mask.
#define MAX_WORDS 1025

static inline uint64_t load_word(const uint8_t *bytes, size_t count, size_t i) {
    uint64_t w = 0;
    if (i + 8 <= count) {
        memcpy(&w, bytes + i, 8);
    } else if (count >= 8) {
        memcpy(&w, bytes + count - 8, 8);
        w >>= (i + 8 - count) * 8;
    } else {
        for (size_t k = count; k > i; k--) w = (w << 8) | bytes[k - 1];
    }
    return w;
}

static inline uint64_t mix(uint64_t h, uint64_t w) { return (h ^ w) * 0xBF58476D1CE4E5B9ULL; }

static inline uint64_t mix_range(uint64_t h, const uint8_t *bytes, size_t count, size_t start, size_t length) {
    size_t i = start, end = start + length;
    if (end + 8 <= count) {
        // Every word loads whole from inside the bytes (the usual case: not the last line).
        for (; i + 8 <= end; i += 8) {
            uint64_t w;
            memcpy(&w, bytes + i, 8);
            h = mix(h, w);
        }
        if (i < end) {
            uint64_t w;
            memcpy(&w, bytes + i, 8);
            h = mix(h, w & ((1ULL << ((end - i) * 8)) - 1));
        }
        return h;
    }
    for (; i + 8 <= end; i += 8) h = mix(h, load_word(bytes, count, i));
    if (i < end) h = mix(h, load_word(bytes, count, i) & ((1ULL << ((end - i) * 8)) - 1));
    return h;
}

static inline uint64_t finish(uint64_t h, size_t name_length, size_t suffix_length) {
    h ^= (uint64_t)((name_length << 16) | suffix_length) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ULL;
    h ^= h >> 29;
    return h | 1;
}

uint64_t CStatorSys_identity_hash(const uint8_t *bytes, size_t count, size_t name, size_t name_length, size_t suffix,
                                  size_t suffix_length, uint64_t seed) {
    uint64_t h = mix_range(seed, bytes, count, name, name_length);
    h = mix_range(h, bytes, count, suffix, suffix_length);
    return finish(h, name_length, suffix_length);
}

// The masks of one 64-byte block (fewer bytes at the end, the rest as zero bytes).
static inline void block_masks(const uint8_t *p, uint64_t *newline, uint64_t *colon, uint64_t *pipe) {
#if defined(__SSE2__)
    const __m128i nl = _mm_set1_epi8('\n'), co = _mm_set1_epi8(':'), pi = _mm_set1_epi8('|');
    uint64_t n = 0, c = 0, q = 0;
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * k));
        n |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) << (16 * k);
        c |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, co)) << (16 * k);
        q |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, pi)) << (16 * k);
    }
    *newline = n; *colon = c; *pipe = q;
#else
    uint64_t n = 0, c = 0, q = 0;
    for (int k = 0; k < 64; k++) {
        n |= (uint64_t)(p[k] == '\n') << k;
        c |= (uint64_t)(p[k] == ':') << k;
        q |= (uint64_t)(p[k] == '|') << k;
    }
    *newline = n; *colon = c; *pipe = q;
#endif
}

// The first set bit of `mask` at or after bit `from`, or `limit` if none is below it.
static inline size_t next_bit(const uint64_t *mask, size_t from, size_t limit) {
    if (from >= limit) return limit;
    size_t i = from >> 6;
    uint64_t w = mask[i] & (~0ULL << (from & 63));
    while (w == 0) {
        i++;
        if ((i << 6) >= limit) return limit;
        w = mask[i];
    }
    size_t r = (i << 6) + (size_t)__builtin_ctzll(w);
    return r < limit ? r : limit;
}

size_t CStatorSys_scan_lines(const uint8_t *bytes, size_t count, uint64_t seed, CStatorSys_line *out,
                             const void *sets, uint64_t set_mask) {
    if (count == 0) return 0;
    size_t words = (count + 63) / 64, full = count / 64;
    uint64_t stack[3 * MAX_WORDS];
    uint64_t *masks = stack;
    if (words > MAX_WORDS) {  // larger than a UDP datagram: a large Unix datagram, a TCP read behind a long partial line
        masks = malloc(3 * words * sizeof(uint64_t));
        if (masks == NULL) abort();
    }
    uint64_t *newlines = masks, *colons = masks + words, *pipes = masks + 2 * words;
    for (size_t b = 0; b < full; b++) block_masks(bytes + 64 * b, &newlines[b], &colons[b], &pipes[b]);
    if (full < words) {
        uint8_t tail[64] = {0};
        memcpy(tail, bytes + 64 * full, count - 64 * full);
        block_masks(tail, &newlines[full], &colons[full], &pipes[full]);
    }
    size_t n = 0, start = 0;
    while (start < count) {
        size_t end = next_bit(newlines, start, count);
        size_t line_end = end;
        if (line_end > start && bytes[line_end - 1] == '\r') line_end--;
        if (line_end > start) {
            CStatorSys_line *line = &out[n++];
            line->start = (int64_t)start;
            line->end = (int64_t)line_end;
            line->colon = -1;
            line->pipe = -1;
            line->identity = 0;
            line->record = UINT64_MAX;
            size_t colon = next_bit(colons, start, line_end);
            if (colon < line_end) {
                size_t pipe = next_bit(pipes, colon + 1, line_end);
                if (pipe < line_end && next_bit(colons, colon + 1, pipe) == pipe &&
                    (colon - start) + (line_end - pipe) <= CStatorSys_IDENTITY_MAX_BYTES) {
                    uint64_t h = mix_range(seed, bytes, count, start, colon - start);
                    h = finish(mix_range(h, bytes, count, pipe, line_end - pipe), colon - start, line_end - pipe);
                    line->colon = (int64_t)colon;
                    line->pipe = (int64_t)pipe;
                    line->identity = h;
                    __builtin_prefetch(
                        (const uint8_t *)sets + ((h >> CStatorSys_CACHE_SET_SHIFT) & set_mask) * CStatorSys_CACHE_SET_BYTES, 0, 3);
                }
            }
        }
        start = end + 1;
    }
    if (masks != stack) free(masks);
    return n;
}
