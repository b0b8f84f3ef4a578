/* robonav robot wire, version 1: the UDP messages between a robot and the robonav runtime.
 *
 * The reference is robonav/runtime/wire/protocol.py; tests/runtime/wire/golden/ holds one byte vector per message and
 * tests/runtime/wire/test_protocol.py compiles this header and checks its sizes and a COMMAND against them.
 *
 * Every datagram: rnw_header_t | payload (header.payload_len bytes) | uint32 CRC32.
 *   - All fields little-endian (this header assumes a little-endian target: ARM, x86).
 *   - CRC32 = zlib / IEEE 802.3 (reflected polynomial 0xEDB88320, init 0xFFFFFFFF, final XOR 0xFFFFFFFF)
 *     over header and payload; stored right after the payload.
 *   - A datagram is at most RNW_DATAGRAM_BUDGET bytes (no IP fragmentation on a 1500-byte MTU).
 *   - Each sender numbers each message type on its own uint32 counter, from 0 at boot, wrapping; the chunks of one
 *     frame share the frame's seq. Receivers drop old or duplicate seqs (serial arithmetic, RFC 1982). Send a
 *     HELLO with a fresh random boot_id at start so the peer starts its counts over.
 *   - Robot: send HELLO and DESCRIPTION at connect, DESCRIPTION on change (with a new spec_id) and about once a
 *     second; one SCAN set per sensor frame. Stop the motors when no COMMAND arrived for the watchdog time (the
 *     runtime's HELLO carries it). Command age = now - stamp of the frame numbered answers_seq, on your clock.
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
#define RNW_VERSION 1
#define RNW_DATAGRAM_BUDGET 1472

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
    uint16_t flags;       /* 0 */
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
    double watchdog_s; /* runtime: stop after this long without a command; robot: 0 */
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
#define RNW_HELLO_SIZE (RNW_HEADER_SIZE + 16 + RNW_CRC_SIZE)
#define RNW_COMMAND_SIZE (RNW_HEADER_SIZE + 24 + RNW_CRC_SIZE)
#define RNW_MAX_CHUNK_BEAMS ((RNW_DATAGRAM_BUDGET - RNW_HEADER_SIZE - 56 - RNW_CRC_SIZE) / 2)
#define RNW_MAX_DESCRIPTION_ANGLES ((RNW_DATAGRAM_BUDGET - RNW_HEADER_SIZE - 48 - RNW_CRC_SIZE) / 4)

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
RNW_STATIC_ASSERT(RNW_MAX_CHUNK_BEAMS == 690, "690 beams per SCAN chunk");
RNW_STATIC_ASSERT(RNW_MAX_DESCRIPTION_ANGLES == 347, "347 per-beam angles per DESCRIPTION");

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

/* Range code of one beam in metres (REP 117: +inf, NaN, -inf). */
static inline uint16_t rnw_range_code(float r) {
    if (r != r) return RNW_RANGE_NAN;
    if (r < 0.0f) return r < -3.4028235e38f ? RNW_RANGE_NEG_INF : RNW_RANGE_NAN; /* -inf : negative */
    if (r >= 65.5325f) return RNW_RANGE_POS_INF;
    return (uint16_t)(r * 1000.0f + 0.5f);
}

#endif /* ROBONAV_WIRE_H */
