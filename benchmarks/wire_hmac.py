"""What signing costs on the robot wire: encode and decode per message, unsigned (CRC32) against signed
(HMAC-SHA256 truncated to 16 bytes, with the counter), side by side in one run on one pinned core.

Messages: a SCAN frame of 360 beams (one datagram), one of 1,080 beams (two datagrams: 680 + 400 beams) and a
COMMAND (the loop's hot path, encode_command_into into a preallocated buffer). Encode is what a sender pays, decode
(with the key: the tag checked in constant time) what a receiver pays before the replay window and reassembly.
Each figure is the median of ``--repeats`` runs of ``--number`` calls; times in microseconds per message.

    python benchmarks/wire_hmac.py --json          # writes results/bench/wire_hmac.json
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import ssl
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from robonav.runtime import wire
from robonav.sensors.frame import ScanSpec

KEY = bytes(range(32))  # a test key


def per_call_us(fn, number: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls, in microseconds."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter_ns() - t0) / number / 1e3)
    return statistics.median(runs)


def cases(number: int, repeats: int) -> list[dict]:
    sign_r2t, sign_t2r = wire.Signer(KEY, wire.ROBOT_TO_RUNTIME), wire.Signer(KEY, wire.RUNTIME_TO_ROBOT)
    r2t, t2r = wire.link_key(KEY, wire.ROBOT_TO_RUNTIME), wire.link_key(KEY, wire.RUNTIME_TO_ROBOT)
    rng = np.random.default_rng(0)
    rows = []
    for beams in (360, 1080):
        spec = ScanSpec.evenly_spaced(beams, range_max=12.0, spec_id=1)
        frame = wire.ScanFrame(rng.uniform(0.1, 12.0, beams).astype(np.float32), spec, np.zeros(3), np.ones(2), 1,
                               0.5, 7)
        plain, signed = wire.encode_frame(frame), wire.encode_frame(frame, signer=sign_r2t)
        rows.append({"message": f"scan {beams} beams", "datagrams": len(plain),
                     "bytes_unsigned": sum(map(len, plain)), "bytes_signed": sum(map(len, signed)),
                     "encode": (per_call_us(lambda f=frame: wire.encode_frame(f), number, repeats),
                                per_call_us(lambda f=frame: wire.encode_frame(f, signer=sign_r2t), number, repeats)),
                     "decode": (per_call_us(lambda p=plain: [wire.decode(d) for d in p], number, repeats),
                                per_call_us(lambda s=signed: [wire.decode(d, r2t) for d in s], number, repeats))})
    buf = bytearray(wire.COMMAND_SIZE)
    plain_cmd = bytes(wire.encode_command_into(buf, 0.3, -0.1, 7, False, 1, 1, 0.5))
    signed_cmd = bytes(wire.encode_command_into(buf, 0.3, -0.1, 7, False, 1, 1, 0.5, sign_t2r))
    rows.append({"message": "command", "datagrams": 1, "bytes_unsigned": len(plain_cmd),
                 "bytes_signed": len(signed_cmd),
                 "encode": (per_call_us(lambda: wire.encode_command_into(buf, 0.3, -0.1, 7, False, 1, 1, 0.5),
                                        number, repeats),
                            per_call_us(lambda: wire.encode_command_into(buf, 0.3, -0.1, 7, False, 1, 1, 0.5,
                                                                         sign_t2r), number, repeats)),
                 "decode": (per_call_us(lambda: wire.decode(plain_cmd), number, repeats),
                            per_call_us(lambda: wire.decode(signed_cmd, t2r), number, repeats))})
    for r in rows:
        for op in ("encode", "decode"):
            u, s = r.pop(op)
            r[op] = {"unsigned_us": round(u, 2), "signed_us": round(s, 2), "ratio": round(s / u, 2),
                     "added_us": round(s - u, 2)}
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--number", type=int, default=2000, help="calls per timed run")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per figure (the median is reported)")
    p.add_argument("--cpu", type=int, default=0, help="the core to pin to")
    p.add_argument("--out", default="results/bench/wire_hmac.json")
    p.add_argument("--json", action="store_true", help="write --out and print one JSON line last")
    args = p.parse_args(argv)
    os.sched_setaffinity(0, {args.cpu})  # one pinned thread: hmac, zlib and numpy run on the caller's thread
    rows = cases(args.number, args.repeats)
    settings = {"cpu": args.cpu, "threads": 1, "number": args.number, "repeats": args.repeats,
                "tag_bytes": wire.TAG_SIZE, "wire_version": wire.VERSION, "chunk_beams": wire.MAX_CHUNK_BEAMS}
    machine = {"node": platform.node(), "machine": platform.machine(), "processor": platform.processor(),
               "cpus": os.cpu_count(), "python": platform.python_version(), "openssl": ssl.OPENSSL_VERSION,
               "hashlib_sha256": hashlib.sha256().name}
    print(f"robot wire: unsigned (CRC32) vs signed (HMAC-SHA256/128 + counter), us per message, median of "
          f"{args.repeats} x {args.number} calls, 1 thread pinned to CPU {args.cpu}", file=sys.stderr)
    print(f"{'message':<18}{'bytes':>12}  {'encode us':>22}{'ratio':>7}  {'decode us':>22}{'ratio':>7}",
          file=sys.stderr)
    for r in rows:
        e, d = r["encode"], r["decode"]
        print(f"{r['message']:<18}{r['bytes_unsigned']:>5} {r['bytes_signed']:>5}  "
              f"{e['unsigned_us']:>10.2f} -> {e['signed_us']:>7.2f}{e['ratio']:>7.2f}  "
              f"{d['unsigned_us']:>10.2f} -> {d['signed_us']:>7.2f}{d['ratio']:>7.2f}", file=sys.stderr)
    result = {"benchmark": "wire_hmac", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "machine": machine, "settings": settings, "results": rows}
    if args.json:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
