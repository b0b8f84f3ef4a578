/* robonav robot wire, version 2: the authenticated UDP messages between a robot and the robonav runtime.
 *
 * The reference is robonav/runtime/wire/protocol.py; tests/runtime/wire/golden/ holds one byte vector per message,
 * signed with the published TEST key 00 01 .. 1f (never a robot's key), and tests/runtime/wire/test_protocol.py
 * compiles this header, checks its sizes and builds a signed COMMAND byte for byte.
 *
 * Every datagram: rnw_header_t | payload (header.payload_len bytes) | trailer.
 *   - header.flags bit 0 (RNW_FLAG_SIGNED) set: trailer = uint64 counter | 16-byte tag, where
 *       tag = first 16 bytes of HMAC-SHA256(link key, header | payload | counter)
 *       link key = HMAC-SHA256(robot key, "robonav wire v2 robot->runtime") for what the robot sends,
 *                  HMAC-SHA256(robot key, "robonav wire v2 runtime->robot") for what it receives (rnw_link_key).
 *     The robot key is the per-robot secret the runtime also holds (>= 16 bytes, 32 recommended); keep it out of
 *     logs. Compare tags in constant time (rnw_tag_equal).
 *   - Counter: strictly increasing over every datagram you sign, never reused, also across reboots: start it at
 *     the wall clock in microseconds since the Unix epoch, and send max(counter + 1, now_us). Without a real-time
 *     clock, persist it (at least once a minute, and start from the stored value plus a minute of counts), as
 *     MAVLink 2 signing does. The runtime refuses counters more than 10 s from its own clock: keep clocks in sync.
 *   - Receiving (COMMAND, HELLO from the runtime): once you hold a key, drop every unsigned datagram, every bad
 *     tag and every counter not above the last one you accepted (the runtime keeps a window for reordering;
 *     firmware may use the strict rule: a late command is stale anyway). Only then look at the payload: a forged
 *     HELLO must change nothing.
 *   - flags bit 0 clear: trailer = uint32 CRC32 (zlib / IEEE 802.3: reflected polynomial 0xEDB88320, init and final
 *     XOR 0xFFFFFFFF) over header and payload. Unsigned datagrams are for development on loopback only.
 *   - All fields little-endian (this header assumes a little-endian target: ARM, x86).
 *   - A datagram is at most RNW_DATAGRAM_BUDGET bytes (no IP fragmentation on a 1500-byte MTU).
 *   - Each sender numbers each message type on its own uint32 counter, from 0 at boot, wrapping; the chunks of one
 *     frame share the frame's seq. Receivers drop old or duplicate seqs (serial arithmetic, RFC 1982). Send a
 *     HELLO with a fresh random boot_id at start so the peer starts its sequence counts over.
 *   - Robot: send HELLO and DESCRIPTION at connect, DESCRIPTION on change (with a new spec_id) and about once a
 *     second; one SCAN set per sensor frame. Stop the motors when no COMMAND arrived for the watchdog time.
 *     Watchdog: your own configured maximum is the ceiling. A runtime HELLO may shorten it, never lengthen it or
 *     switch it off: apply rnw_clamp_watchdog(hello.watchdog_s, your_max) (0, negative, NaN, inf: your maximum).
 *     Command age = now - stamp of the frame numbered answers_seq, on your clock.
 *   - Ranges: uint16 millimetres, rounded; reserved codes below (ROS REP 117). A finite range >= 65.5325 m is sent
 *     as +inf, a negative one as NaN; range_max must be <= 65.532 m.
 *   - NaN or infinity is allowed nowhere else: such a message is dropped.
 */
#ifndef ROBONAV_WIRE_H
#define ROBONAV_WIRE_H

#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "robonav_wire.h: the wire is little-endian; byte-swap every field on a big-endian target"
#endif

#define RNW_MAGIC "RNAV" /* header bytes 0..3 */
#define RNW_VERSION 2
#define RNW_DATAGRAM_BUDGET 1472
#define RNW_FLAG_SIGNED 1u /* rnw_header_t.flags: counter and tag follow the payload (else a CRC32) */
#define RNW_TAG_SIZE 16
#define RNW_SIG_SIZE (8 + RNW_TAG_SIZE) /* counter + tag */

enum rnw_type { RNW_HELLO = 1, RNW_DESCRIPTION = 2, RNW_SCAN = 3, RNW_COMMAND = 4 };
enum rnw_role { RNW_ROLE_ROBOT = 1, RNW_ROLE_RUNTIME = 2 };

#define RNW_RANGE_POS_INF 0xFFFFu /* no return within range */
#define RNW_RANGE_NAN 0xFFFEu     /* invalid reading */
#define RNW_RANGE_NEG_INF 0xFFFDu /* too close to measure */
#define RNW_RANGE_MAX_MM 0xFFFCu  /* largest finite range: 65.532 m */

#define RNW_DESC_PER_BEAM_ANGLES 1u /* rnw_description_t.flags: num_beams float angles follow */
#define RNW_CMD_STOP 1u             /* rnw_command_t.flags */

#pragma pack(push, 1)

typedef struct {
    uint8_t magic[4];     /* "RNAV" */
    uint8_t version;      /* RNW_VERSION */
    uint8_t type;         /* enum rnw_type */
    uint16_t flags;       /* RNW_FLAG_SIGNED or 0 */
    uint32_t seq;         /* per-type counter of the sender */
    uint32_t episode_id;  /* changes on a new goal or reset */
    double stamp;         /* sender clock, seconds */
    uint32_t payload_len; /* bytes between header and CRC */
    uint32_t reserved;    /* 0 */
} rnw_header_t;

typedef struct {
    uint32_t boot_id;  /* random per process start */
    uint8_t role;      /* enum rnw_role */
    uint8_t pad[3];
    double watchdog_s; /* runtime: stop after this long without a command (rnw_clamp_watchdog); robot: 0 */
} rnw_hello_t;

typedef struct {
    uint32_t spec_id;
    uint32_t num_beams;
    uint32_t flags; /* RNW_DESC_PER_BEAM_ANGLES: float angles[num_beams] follow (<= RNW_MAX_DESCRIPTION_ANGLES) */
    uint32_t reserved;
    double angle_min;       /* rad, beam 0, counter-clockwise from x forward */
    double angle_increment; /* rad */
    double range_min;       /* m */
    double range_max;       /* m, <= 65.532 */
} rnw_description_t;

typedef struct {
    uint32_t spec_id;     /* a described spec_id, else the scan is dropped */
    uint32_t num_beams;   /* the description's */
    uint16_t chunk_index; /* chunk i holds beams [i*chunk_beams, min((i+1)*chunk_beams, num_beams)) */
    uint16_t chunk_count; /* ceil(num_beams / chunk_beams) */
    uint16_t chunk_beams; /* 1 .. RNW_MAX_CHUNK_BEAMS, the same in every chunk of a frame */
    uint16_t reserved;
    double odom_x, odom_y, odom_theta;    /* pose in the odometry frame (origin: pose at episode start), m, rad */
    double goal_x, goal_y;                /* odometry frame (origin: pose at episode start), m */
    /* then uint16_t ranges[beams of this chunk] */
} rnw_scan_chunk_t;

typedef struct {
    uint32_t answers_seq; /* seq of the SCAN frame this command answers */
    uint32_t flags;       /* RNW_CMD_STOP */
    double v;             /* m/s */
    double omega;         /* rad/s */
} rnw_command_t;

#pragma pack(pop)

#define RNW_HEADER_SIZE 32
#define RNW_CRC_SIZE 4
#define RNW_HELLO_SIZE (RNW_HEADER_SIZE + 16 + RNW_SIG_SIZE)   /* signed */
#define RNW_COMMAND_SIZE (RNW_HEADER_SIZE + 24 + RNW_SIG_SIZE) /* signed */
#define RNW_MAX_CHUNK_BEAMS ((RNW_DATAGRAM_BUDGET - RNW_HEADER_SIZE - 56 - RNW_SIG_SIZE) / 2)
#define RNW_MAX_DESCRIPTION_ANGLES ((RNW_DATAGRAM_BUDGET - RNW_HEADER_SIZE - 48 - RNW_SIG_SIZE) / 4)

#if defined(__cplusplus)
#define RNW_STATIC_ASSERT static_assert
#else
#define RNW_STATIC_ASSERT _Static_assert
#endif
RNW_STATIC_ASSERT(sizeof(rnw_header_t) == 32, "rnw_header_t must be 32 bytes");
RNW_STATIC_ASSERT(sizeof(rnw_hello_t) == 16, "rnw_hello_t must be 16 bytes");
RNW_STATIC_ASSERT(sizeof(rnw_description_t) == 48, "rnw_description_t must be 48 bytes");
RNW_STATIC_ASSERT(sizeof(rnw_scan_chunk_t) == 56, "rnw_scan_chunk_t must be 56 bytes");
RNW_STATIC_ASSERT(sizeof(rnw_command_t) == 24, "rnw_command_t must be 24 bytes");
RNW_STATIC_ASSERT(offsetof(rnw_header_t, stamp) == 16, "rnw_header_t.stamp at byte 16");
RNW_STATIC_ASSERT(RNW_MAX_CHUNK_BEAMS == 680, "680 beams per SCAN chunk");
RNW_STATIC_ASSERT(RNW_MAX_DESCRIPTION_ANGLES == 342, "342 per-beam angles per DESCRIPTION");

/* CRC32 (zlib) over n bytes; chain calls with the previous result as crc, starting from 0. */
static inline uint32_t rnw_crc32(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104): small and portable; use your platform's crypto if it has one. */
typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} rnw_sha256_t;

static inline uint32_t rnw_ror(uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }

static inline void rnw_sha256_block(rnw_sha256_t *s, const uint8_t *p) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rnw_ror(w[i - 15], 7) ^ rnw_ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rnw_ror(w[i - 2], 17) ^ rnw_ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    for (int i = 0; i < 8; i++) a[i] = s->h[i];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = a[7] + (rnw_ror(a[4], 6) ^ rnw_ror(a[4], 11) ^ rnw_ror(a[4], 25)) +
                      ((a[4] & a[5]) ^ (~a[4] & a[6])) + k[i] + w[i];
        uint32_t t2 = (rnw_ror(a[0], 2) ^ rnw_ror(a[0], 13) ^ rnw_ror(a[0], 22)) +
                      ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
        for (int j = 7; j > 0; j--) a[j] = a[j - 1];
        a[4] += t1;
        a[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) s->h[i] += a[i];
}

static inline void rnw_sha256_init(rnw_sha256_t *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    for (int i = 0; i < 8; i++) s->h[i] = h0[i];
    s->len = 0;
    s->n = 0;
}

static inline void rnw_sha256_update(rnw_sha256_t *s, const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    s->len += n;
    while (n--) {
        s->buf[s->n++] = *p++;
        if (s->n == 64) {
            rnw_sha256_block(s, s->buf);
            s->n = 0;
        }
    }
}

static inline void rnw_sha256_final(rnw_sha256_t *s, uint8_t out[32]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80, zero = 0, len[8];
    rnw_sha256_update(s, &pad, 1);
    while (s->n != 56) rnw_sha256_update(s, &zero, 1);
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    rnw_sha256_update(s, len, 8);
    for (int i = 0; i < 32; i++) out[i] = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}

/* HMAC-SHA256 of n bytes under a key of at most 64 bytes. */
static inline void rnw_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t n, uint8_t out[32]) {
    uint8_t pad[64], inner[32];
    rnw_sha256_t s;
    for (int i = 0; i < 64; i++) pad[i] = (uint8_t)(((size_t)i < key_len ? key[i] : 0) ^ 0x36);
    rnw_sha256_init(&s);
    rnw_sha256_update(&s, pad, 64);
    rnw_sha256_update(&s, data, n);
    rnw_sha256_final(&s, inner);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36 ^ 0x5c;
    rnw_sha256_init(&s);
    rnw_sha256_update(&s, pad, 64);
    rnw_sha256_update(&s, inner, 32);
    rnw_sha256_final(&s, out);
}

/* The link key of one direction: direction is "robot->runtime" (what a robot signs) or "runtime->robot". */
static inline void rnw_link_key(const uint8_t *key, size_t key_len, const char *direction, uint8_t out[32]) {
    uint8_t label[64] = "robonav wire v2 ";
    size_t n = 16;
    while (*direction && n < sizeof label) label[n++] = (uint8_t)*direction++;
    rnw_hmac_sha256(key, key_len, label, n, out);
}

/* Sign a datagram whose header and payload fill buf[0 .. len): appends counter and tag; returns the new length
 * (len + RNW_SIG_SIZE; buf must have room). Set RNW_FLAG_SIGNED in the header before calling. */
static inline size_t rnw_sign(uint8_t *buf, size_t len, uint64_t counter, const uint8_t link_key[32]) {
    uint8_t tag[32];
    for (int i = 0; i < 8; i++) buf[len + i] = (uint8_t)(counter >> (8 * i));
    rnw_hmac_sha256(link_key, 32, buf, len + 8, tag);
    for (int i = 0; i < RNW_TAG_SIZE; i++) buf[len + 8 + i] = tag[i];
    return len + RNW_SIG_SIZE;
}

/* 1 if the 16-byte tags are equal, compared in constant time. */
static inline int rnw_tag_equal(const uint8_t *a, const uint8_t *b) {
    uint8_t d = 0;
    for (int i = 0; i < RNW_TAG_SIZE; i++) d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

/* The watchdog to apply when a runtime HELLO asks for requested seconds: never above the robot's own maximum,
 * and 0, negative, NaN or infinity mean the maximum (a HELLO cannot raise or switch off the watchdog). */
static inline double rnw_clamp_watchdog(double requested, double maximum) {
    if (!(requested > 0.0) || requested > maximum) return maximum; /* NaN fails every comparison */
    return requested;
}

/* Range code of one beam in metres (REP 117: +inf, NaN, -inf). */
static inline uint16_t rnw_range_code(float r) {
    if (r != r) return RNW_RANGE_NAN;
    if (r < 0.0f) return r < -3.4028235e38f ? RNW_RANGE_NEG_INF : RNW_RANGE_NAN; /* -inf : negative */
    if (r >= 65.5325f) return RNW_RANGE_POS_INF;
    return (uint16_t)(r * 1000.0f + 0.5f);
}

#endif /* ROBONAV_WIRE_H */
