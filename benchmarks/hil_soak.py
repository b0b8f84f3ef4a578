"""HIL soak: the runtime and the sim-robot as two processes over UDP at 1x real time, with packet loss, for ten
minutes: crashes, stale commands applied, deadline-miss rate and the command-age distribution.

    python benchmarks/hil_soak.py                          # 10 minutes, 10 % loss both ways, test mazes
    python benchmarks/hil_soak.py --minutes 2 --loss 0.2 --json

It is `robonav hil` (robonav.hil.runner) with a real clock, ``duration`` set so the sim-robot replays the test
episode list until the time is up, and the proxy dropping ``--loss`` of the datagrams in each direction. Besides
the HIL report it prints the same run's figures side by side with the same settings and no loss where
``--baseline`` asks for it (a second soak of the same length). Results: results/hil/soak[-<loss>].json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robonav.hil.faults import FaultConfig
from robonav.hil.runner import HilSettings, run_hil


def soak(minutes: float, loss: float, suite: str, backend: str, out: Path) -> dict:
    settings = HilSettings(episodes=50, suite=suite, clock="real", clock_factor=1.0, duration=60.0 * minutes,
                           timeout=60.0 * minutes + 600.0, out=str(out), faults=FaultConfig(loss=loss, seed=1))
    return run_hil(settings, "hil", [f"run.backend={backend}"])


def row(name: str, r: dict) -> dict:
    t, f = r["timing"], r["faults"]
    return {"run": name, "episodes": r["episodes"], "success_rate": r["success_rate"], "spl": r["spl"],
            "ticks": t["ticks"], "deadline_misses": t["deadline_misses"], "miss_rate": t["miss_rate"],
            "loop_p50_us": t["loop_p50_us"], "loop_p99_us": t["loop_p99_us"], "loop_max_us": t["loop_max_us"],
            "frames_sent": t["frames_sent"], "frames_received": t["frames_received"], "frame_loss": t["frame_loss"],
            "command_age_ms": t["command_age_ms"], "watchdog_stops": t["watchdog_stops"],
            "watchdog_stop_delay_ms": t["watchdog_stop_delay_ms"], "stale_dropped": f["stale_dropped"],
            "stale_applied": f["stale_applied"], "runtime_exit_code": r["runtime_exit"]["code"],
            "crashes": sum(p["exit_code"] not in (0, None) for p in r["processes"]),
            "verdict": r["verdict"]["passed"], "wall_s": r["wall_s"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--loss", type=float, default=0.1, help="datagram loss each way")
    p.add_argument("--suite", default="test")
    p.add_argument("--backend", default="numba")
    p.add_argument("--baseline", action="store_true", help="also soak without loss, for a side-by-side")
    p.add_argument("--out", default="results/hil")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    runs = [(f"loss {args.loss:g}", args.loss)] + ([("no loss", 0.0)] if args.baseline else [])
    rows = []
    for name, loss in runs:
        print(f"soak: {name}, {args.minutes:g} min at 1x, backend {args.backend}, suite {args.suite}", file=sys.stderr,
              flush=True)
        report = soak(args.minutes, loss, args.suite, args.backend, out / f"soak-{loss:g}")
        rows.append(row(name, report))
    result = {"rows": rows, "settings": {"minutes": args.minutes, "suite": args.suite, "backend": args.backend,
                                         "clock": "real 1x", "machine": platform.processor() or platform.machine(),
                                         "cpus": __import__("os").cpu_count()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"soak-{args.loss:g}.json").write_text(json.dumps(result, indent=1))
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    keys = ("episodes", "success_rate", "ticks", "deadline_misses", "miss_rate", "loop_p50_us", "loop_p99_us",
            "frame_loss", "watchdog_stops", "stale_dropped", "stale_applied", "crashes", "verdict")
    print(f"{'':<22}" + "".join(f"{r['run']:>16}" for r in rows))
    for k in keys:
        print(f"{k:<22}" + "".join(f"{round(r[k], 4) if isinstance(r[k], float) else r[k]!s:>16}" for r in rows))
    for r in rows:
        print(f"{r['run']}: command age at the robot (ms, robot clock) {r['command_age_ms']}; watchdog stop delay "
              f"(ms) {r['watchdog_stop_delay_ms']}")
    print(f"settings: {result['settings']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
