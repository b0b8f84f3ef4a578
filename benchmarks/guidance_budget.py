"""Benchmark: what a guidance budget (at most N A* expansions per step) costs in plan quality, against the
shipped one-step plan, on the recorded 7x7 maze drives of benchmarks/maze_drive.py (one per seed).

For each drive both Preprocessors (the shipped spec, and the same with ``guidance_budget``) see the same frames.
It reports how many steps after its start each budgeted plan arrives, and, every step, how the budgeted guidance
block differs from the shipped one: the path length it reports (relative difference; the brief's bar is 2 %),
the bearing to the near path point (degrees) and the 'found' flag. Run it from the repository root:

    .venv/bin/python benchmarks/guidance_budget.py [--budget 500] [--seeds 0 1 2 3 4] [--frames 2000] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_common import bench_header, write_json
from benchmarks.maze_drive import make_frames
from robonav.data import resource
from robonav.sensors import Preprocessor
from robonav.sensors.guidance import PATH_CLIP
from robonav.sensors.plan import P_PLAN_ID, P_SEARCH
from robonav.sensors.spec import ObservationSpec


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="guidance_budget's plan delay and quality vs the shipped plan")
    parser.add_argument("--budget", type=int, nargs="+", default=[500], help="guidance_budget values to compare")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="maze drives (seeds)")
    parser.add_argument("--frames", type=int, default=2000, help="frames per drive")
    parser.add_argument("--out", default="results/bench/guidance_budget.json", help="where to write the JSON")
    parser.add_argument("--json", action="store_true", help="also print one JSON line with every figure")
    return parser.parse_args()


def compare(spec: ObservationSpec, budget: int, frames: list) -> dict[str, list[float]]:
    """Per step: relative length difference, near-bearing difference (deg), found mismatch; per plan: delay."""
    off = spec.block("guidance").offset
    exact = Preprocessor(spec)
    budgeted = Preprocessor(ObservationSpec(dataclasses.replace(spec.config, guidance_budget=budget)))
    command = np.array([0.5, 0.0])
    out: dict[str, list[float]] = {"length": [], "bearing": [], "found": [], "delay": []}
    began = -1
    for t, frame in enumerate(frames):
        want = exact(frame, command)[off:off + 6].astype(np.float64)
        plans = int(budgeted._b.plan_i[P_PLAN_ID])
        got = budgeted(frame, command)[off:off + 6].astype(np.float64)
        if int(budgeted._b.plan_i[P_PLAN_ID]) != plans:
            began = t
        if began >= 0 and not budgeted._b.plan_i[P_SEARCH]:
            out["delay"].append(t - began)
            began = -1
        out["found"].append(float(got[5] != want[5]))
        if got[5] and want[5]:
            length_got, length_want = got[4] * PATH_CLIP, want[4] * PATH_CLIP
            out["length"].append(abs(length_got - length_want) / max(length_want, 1e-9))
            angle = math.atan2(got[0], got[1]) - math.atan2(want[0], want[1])
            out["bearing"].append(abs(math.degrees((angle + math.pi) % (2 * math.pi) - math.pi)))
    return out


def main() -> None:
    args = parse_args()
    spec = ObservationSpec.from_dict(json.loads(resource("policies", "default.json").read_text())["observation_spec"])
    print("guidance_budget vs the shipped one-step plan (robonav/data/policies/default.json), 360 beams, 7x7 maze "
          f"drives {args.seeds}, {args.frames} frames each")
    print(f"  {'budget':>6}  {'plans':>5}  {'delay mean':>10}  {'p95':>4}  {'max':>4}  {'|dlen| mean':>11}  "
          f"{'p95':>6}  {'<=2 %':>6}  {'bearing mean':>12}  {'p95':>6}  {'found differs':>13}")
    results = []
    drives = [make_frames(360, args.frames, seed=s) for s in args.seeds]
    for budget in args.budget:
        agg: dict[str, list[float]] = {"length": [], "bearing": [], "found": [], "delay": []}
        for frames in drives:
            for key, values in compare(spec, budget, frames).items():
                agg[key] += values
        delay, length, bearing = (np.array(agg[k]) for k in ("delay", "length", "bearing"))
        row = {"budget": budget, "plans": int(delay.size), "delay_steps": {
            "mean": float(delay.mean()), "p95": float(np.percentile(delay, 95)), "max": float(delay.max()),
            "share_same_step": float(np.mean(delay == 0))},
            "length_rel_diff": {"mean": float(length.mean()), "p95": float(np.percentile(length, 95)),
                                "share_within_2pct": float(np.mean(length <= 0.02))},
            "near_bearing_diff_deg": {"mean": float(bearing.mean()), "p95": float(np.percentile(bearing, 95))},
            "found_differs_share": float(np.mean(agg["found"]))}
        results.append(row)
        print(f"  {budget:>6}  {row['plans']:>5}  {delay.mean():>10.2f}  {np.percentile(delay, 95):>4.0f}  "
              f"{delay.max():>4.0f}  {100 * length.mean():>9.2f} %  {100 * np.percentile(length, 95):>4.1f} %  "
              f"{100 * row['length_rel_diff']['share_within_2pct']:>4.1f} %  {bearing.mean():>8.2f} deg  "
              f"{np.percentile(bearing, 95):>6.1f}  {100 * row['found_differs_share']:>11.2f} %")
    record = {**bench_header(None), "benchmark": "guidance_budget",
              "settings": {"seeds": args.seeds, "frames": args.frames, "beams": 360}, "results": results}
    path = write_json(args.out, record)
    print(f"  wrote {path}")
    if args.json:
        print(json.dumps(record))


if __name__ == "__main__":
    main()
