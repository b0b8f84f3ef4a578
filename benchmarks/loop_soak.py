"""Soak the fixed-step loop on the real clock: deadline misses per tick and per-stage latency, at the policy's
own period and in the stress mode, side by side in one run.

The loop (robonav.runtime.loop) replays sensor frames the simulator produced (a selftest recording: the model's
``<model>.selftest.npz`` if present, else recorded now with ONNX Runtime), so what is timed is the runtime alone:
driver read, Numba Preprocessor, backend step, safety layer, publish. Each mode runs ``--minutes`` of real time
on robonav.control's RealClock (sleep, then spin for the last 0.5 ms) with the garbage collector frozen, with the
robot launch file's ``spin`` and ``prewarm`` (the stages warmed in the last ``spin`` before each tick; compare
with ``--spin 0 --no-prewarm``).

    python benchmarks/loop_soak.py                                  # shipped policy and settings, 10 + 10 minutes
    python benchmarks/loop_soak.py --minutes 1 --stress 50   # the shipped backend; --backend ort for another
    python benchmarks/loop_soak.py --model policy.onnx --modes stress --cpu 1 --json

Every figure goes to results/bench/loop_soak.json (``--out``) with the machine, CPU, date, threads and load. The
shipped policy reads the guidance block (D = 651), so its loop cannot run without it: the Preprocessor's cost with
and without guidance is compared side by side in benchmarks/preprocess.py.

Deadline miss: a tick whose work ends after the next tick's start (see robonav.runtime.loop). The issue's target
is at most 1 miss per 10,000 ticks on this shared machine. Latencies are real microseconds (time.perf_counter);
"wake" is how late the tick woke past its scheduled start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_common import bench_header, write_json

STAGES_SHOWN = ("wake", "pre", "policy", "safety", "tick")


def _recording(model: Path, steps: int):
    """The model's selftest recording, or one recorded now on the simulator (3x3 to 7x7 validation episodes)."""
    import dataclasses

    from robonav.runtime.selftest import SelftestRecording, record, recording_path

    path = recording_path(model)
    if path.is_file():
        return SelftestRecording.load(path), str(path)
    from robonav.deploy.parity import sim_config
    from robonav.eval.episodes import make_episodes
    from robonav.runtime.backends.onnx_backend import OnnxBackend
    from robonav.sim.driver import SimDriver

    with OnnxBackend(model) as reference:
        config = dataclasses.replace(sim_config(reference.sidecar))
        driver = SimDriver(config, make_episodes("val", 8, 0))
        try:
            return record(reference, driver, steps, suite="val"), f"recorded now: {steps} ticks of val episodes"
        finally:
            driver.close()


def soak(backend, recording, period_hz: float | None, minutes: float, telemetry: str | None, spin: float = 0.0,
         prewarm: bool = False) -> dict:
    """One real-clock run of the loop over the recording's frames (cycled); returns the summary dict."""
    from robonav.control.clock import RealClock
    from robonav.runtime.driver import ReplayDriver
    from robonav.runtime.loop import ControlLoop, LoopConfig

    period = 1.0 / period_hz if period_hz else backend.sidecar.control_period
    ticks = max(1, round(60.0 * minutes / period))
    config = LoopConfig.for_model(backend.sidecar, period_hz, ticks=ticks, telemetry=telemetry, handle_signals=True,
                                  spin=spin, prewarm=prewarm)
    loop = ControlLoop.for_backend(backend, ReplayDriver(recording.frames(), cycle=True), RealClock(), config)
    t0 = time.perf_counter()
    summary = loop.run().to_dict()
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="step model (.onnx; 'default': the shipped policy)")
    p.add_argument("--backend", default=None, choices=("ort", "numba", "torch", "trt"),
                   help="inference backend (default: the shipped one, launch/robot.yaml's run.backend)")
    p.add_argument("--minutes", type=float, default=10.0, help="real minutes per mode (default: %(default)s)")
    p.add_argument("--stress", type=float, default=50.0, help="stress-mode rate in Hz (default: %(default)s)")
    p.add_argument("--modes", default="period,stress", help="which runs: period, stress or both (comma-separated)")
    p.add_argument("--steps", type=int, default=600, help="ticks to record when the model has no recording")
    p.add_argument("--cpu", type=int, help="pin the process to this CPU core")
    p.add_argument("--telemetry", help="folder for one JSON-lines telemetry file per mode")
    p.add_argument("--spin", type=float, default=None,
                   help="microseconds before each tick the loop polls instead of sleeping (LoopConfig.spin; "
                        "default: launch/robot.yaml's run.spin)")
    p.add_argument("--prewarm", default=None, action=argparse.BooleanOptionalAction,
                   help="warm the tick's stages in the spin window (default: launch/robot.yaml's run.prewarm)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--out", default="results/bench/loop_soak.json", help="where to write the JSON")
    args = p.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    header = bench_header(args.cpu)

    from robonav.runtime.backends.registry import open_backend
    from robonav.runtime.run import model_path

    if None in (args.backend, args.spin, args.prewarm):  # what ships: the robot launch file's settings
        from robonav.runtime.run import RunSettings
        from robonav.settings import load_settings

        shipped = load_settings(RunSettings, "robot", section="run")
        args.backend = shipped.backend if args.backend is None else args.backend
        args.spin = shipped.spin * 1e6 if args.spin is None else args.spin
        args.prewarm = shipped.prewarm if args.prewarm is None else args.prewarm
    model = model_path(args.model)
    recording, source = _recording(model, args.steps)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results: dict[str, dict] = {}
    with open_backend(args.backend, model) as backend, tempfile.TemporaryDirectory() as tmp:
        side = backend.sidecar
        print(f"loop soak: {backend.name}, D={side.obs_dim}, H={side.hidden}, {args.minutes:g} min per mode, "
              f"frames: {source} ({recording.steps} ticks, {recording.scan.num_beams} beams), python "
              f"{platform.python_version()}, {os.cpu_count()} cpus, affinity {sorted(os.sched_getaffinity(0))}",
              file=sys.stderr)
        for mode in modes:
            hz = None if mode == "period" else args.stress
            folder = Path(args.telemetry) if args.telemetry else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            print(f"  {mode}: {args.minutes:g} min at {1.0 / hz if hz else side.control_period:g} s ...",
                  file=sys.stderr, flush=True)
            results[mode] = soak(backend, recording, hz, args.minutes, str(folder / f"soak-{mode}.jsonl"),
                                 args.spin * 1e-6, args.prewarm)
            if results[mode]["exit_reason"] not in ("ticks",):
                break
    _print(results)
    record = {**header, "benchmark": "loop_soak", "model": str(model), "backend": args.backend,
              "minutes": args.minutes, "stress_hz": args.stress, "recording": source, "spin_us": args.spin,
              "prewarm": args.prewarm,
              "nice": os.nice(0), "runs": results}
    print(f"wrote {write_json(args.out, record)}", file=sys.stderr)
    if args.json:
        print(json.dumps(record, sort_keys=True))
    return 0


def _print(results: dict[str, dict]) -> None:
    names = list(results)
    print(f"{'':<22}" + "".join(f"{n:>22}" for n in names))
    rows = [("period (ms)", lambda r: f"{1e3 * r['period']:g}"), ("ticks", lambda r: str(r["ticks"])),
            ("deadline misses", lambda r: str(r["deadline_misses"])),
            ("misses per 10,000", lambda r: f"{1e4 * r['miss_rate']:.2f}"),
            ("skipped slots", lambda r: str(r["skipped_ticks"])), ("exit", lambda r: r["exit_reason"])]
    for label, cell in rows:
        print(f"{label:<22}" + "".join(f"{cell(results[n]):>22}" for n in names))
    for stage in STAGES_SHOWN:
        for q in ("p50", "p99", "p999", "max"):
            label = f"{stage} {q} (us)"
            print(f"{label:<22}" + "".join(f"{results[n]['latency'][stage].get(q + '_us', float('nan')):>22.1f}"
                                            for n in names))


if __name__ == "__main__":
    sys.exit(main())
