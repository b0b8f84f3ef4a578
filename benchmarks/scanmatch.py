"""Benchmark: what laser odometry costs per frame in the Preprocessor (shipped observation, guidance included).

Records the frames of one simulated test episode driven by the privileged expert (nominal sensor with its noise,
``--beams`` beams), then times in the same run, on one pinned core with one thread, the shipped default policy's
Preprocessor without and with ``laser_odometry`` on the same frames, and the scan matcher's ``correct`` alone;
prints microseconds per frame (mean and p99) and the ratio, and writes results/bench/scanmatch.json.

    .venv/bin/python benchmarks/scanmatch.py [--beams 128 360] [--repeats 3] [--core N]
"""

from __future__ import annotations

import argparse
import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def record(beams: int, steps: int) -> list:
    """Frames (copied) of test episode 0 driven by the expert, with a ``beams``-beam nominal scanner."""
    from robonav.eval.episodes import make_episodes
    from robonav.eval.runner import eval_config
    from robonav.sim.config import ScannerConfig, SimConfig
    from robonav.sim.core import MazeSim
    from robonav.sim.expert import GeodesicExpert

    sim = MazeSim(1, eval_config(SimConfig(scanner=ScannerConfig(num_beams=beams))), seed=0)
    sim.reset_env(0, make_episodes("test", 1)[0])
    expert, frames = GeodesicExpert(), []
    for _ in range(steps):
        f = sim.frames[0]
        assert f is not None
        frames.append(dataclasses.replace(f, ranges=f.ranges.copy(), odom_delta=f.odom_delta.copy()))
        _, _, terminated, truncated = sim.step(expert(sim))
        if terminated[0] or truncated[0]:
            break
    sim.close()
    return frames


def time_frames(call, frames: list, repeats: int) -> dict:
    """Mean and p99 microseconds of ``call(frame)`` over ``repeats`` passes (the first frame of each is warm-up)."""
    times = []
    for _ in range(repeats):
        for k, f in enumerate(frames):
            t = time.perf_counter_ns()
            call(f)
            if k:
                times.append(time.perf_counter_ns() - t)
    us = np.array(times) / 1000.0
    return {"mean_us": round(float(us.mean()), 1), "p99_us": round(float(np.percentile(us, 99)), 1),
            "frames": len(us)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beams", type=int, nargs="+", default=[128, 360], help="beam counts to measure")
    ap.add_argument("--steps", type=int, default=1500, help="frames recorded (the episode may end sooner)")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the frames")
    ap.add_argument("--core", type=int, default=None, help="CPU to pin to (default: the last one allowed)")
    ap.add_argument("--out", default="results/bench/scanmatch.json")
    args = ap.parse_args()
    core = args.core if args.core is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})

    from robonav.atomic import write_text_atomic
    from robonav.eval.guided import shipped_spec
    from robonav.sensors.preprocessor import Preprocessor
    from robonav.sensors.scanmatch import ScanMatcher

    config = shipped_spec().config
    rows = []
    for beams in args.beams:
        frames = record(beams, args.steps)
        plain = Preprocessor(config)
        laser = Preprocessor(dataclasses.replace(config, laser_odometry=True))
        matcher = ScanMatcher()
        pose = np.zeros(3)
        for pre in (plain, laser):
            pre.warmup()

        def match(f, matcher=matcher, pose=pose):
            matcher.correct(pose, tuple(f.odom_delta.tolist()), f.ranges, f.scan)

        match(frames[0])
        matcher.reset()
        row = {"beams": beams, "frames": len(frames),
               "preprocessor": time_frames(lambda f, p=plain: p(f, (0.0, 0.0)), frames, args.repeats),
               "preprocessor_laser_odometry": time_frames(lambda f, p=laser: p(f, (0.0, 0.0)), frames, args.repeats),
               "scan_match_alone": time_frames(match, frames, args.repeats)}
        row["ratio_mean"] = round(row["preprocessor_laser_odometry"]["mean_us"] / row["preprocessor"]["mean_us"], 2)
        rows.append(row)
        print(f"{beams} beams, {len(frames)} frames x {args.repeats}: Preprocessor {row['preprocessor']['mean_us']} us "
              f"(p99 {row['preprocessor']['p99_us']}), with laser odometry "
              f"{row['preprocessor_laser_odometry']['mean_us']} us (p99 {row['preprocessor_laser_odometry']['p99_us']})"
              f", ratio {row['ratio_mean']}x; scan match alone {row['scan_match_alone']['mean_us']} us")
    settings = {"machine": f"{platform.machine()} {platform.processor()} ({os.cpu_count()} cores, shared)",
                "core": core, "threads": 1, "repeats": args.repeats, "observation": "shipped default (guidance on)",
                "episode": "test episode 0, expert driver, nominal sensor noise",
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "load_average_1min": round(os.getloadavg()[0], 1)}
    print(f"settings: {settings}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
