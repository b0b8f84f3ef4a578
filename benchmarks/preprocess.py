"""Benchmark: the whole Preprocessor call (scan, odometry, both memories, both patch scales, guidance), Numba vs
NumPy, on the configuration that ships: the default policy's ObservationSpec, read from its sidecar
(robonav/data/policies/default.json; ``--policy`` names another sidecar), beside the same spec with a budget of
A* expansions per step (``--budget``, guidance_budget) and without guidance.

For 360, 720 and 1080 beams it drives a robot through a generated 7x7 maze (1 m cells, 0.5 m/s, 10 Hz, scans
cast exactly, 1 cm range noise and 1 % NaN dropouts), precomputes the frames, then times in the same run, on one
pinned core, the Numba Preprocessor (shipped, budgeted and no-guidance specs, passes interleaved) and the NumPy
ReferencePreprocessor on the same frames, and prints microseconds per frame and the ratios, with the settings; it
writes every figure to results/bench/preprocess.json. Run it from the repository root:

    .venv/bin/python benchmarks/preprocess.py [--frames 2000] [--reference-frames 300] [--budget 500] [--core N]
        [--json]
"""

from __future__ import annotations

import argparse
import os


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Preprocessor per-frame time, Numba vs NumPy reference")
    parser.add_argument("--frames", type=int, default=2000, help="frames per Numba pass (one episode)")
    parser.add_argument("--repeats", type=int, default=3, help="Numba passes over the episode")
    parser.add_argument("--reference-frames", type=int, default=300, help="frames for the NumPy reference")
    parser.add_argument("--core", type=int, default=None, help="CPU to pin to (default: the last one allowed)")
    parser.add_argument("--beams", type=int, nargs="+", default=[360, 720, 1080], help="beam counts to run")
    parser.add_argument("--policy", default=None, help="sidecar (.json) whose ObservationSpec to measure "
                        "(default: the shipped default policy's)")
    parser.add_argument("--budget", type=int, default=500, help="guidance_budget of the budgeted variant "
                        "(most A* expansions per step)")
    parser.add_argument("--out", default="results/bench/preprocess.json", help="where to write the JSON")
    parser.add_argument("--json", action="store_true", help="also print one JSON line with every figure")
    return parser.parse_args()


# Pinned to one core with one thread everywhere, before numpy and numba are imported (threads they start
# inherit both).
ARGS = parse_args()
CORE = ARGS.core if ARGS.core is not None else max(os.sched_getaffinity(0))
os.sched_setaffinity(0, {CORE})
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402

from benchmarks.bench_common import bench_header, write_json  # noqa: E402
from benchmarks.maze_drive import make_frames  # noqa: E402
from robonav.data import resource  # noqa: E402
from robonav.sensors import Preprocessor, SensorFrame  # noqa: E402
from robonav.sensors.guidance import Guide  # noqa: E402
from robonav.sensors.reference import ReferencePreprocessor  # noqa: E402
from robonav.sensors.spec import ObservationSpec  # noqa: E402


class PythonGuidePreprocessor:
    """main's shipped path before the guidance moved into the kernel: the bare Preprocessor, then the Python
    `Guide` (planner's Numba cost map and allocating A*) on its memory. The same observation, bit for bit."""

    def __init__(self, spec: ObservationSpec) -> None:
        self.bare = Preprocessor(ObservationSpec(dataclasses.replace(spec.config, guidance=False)))
        self.guide = Guide(spec.config)
        self.obs = np.zeros(spec.size, np.float32)
        self.out = np.zeros(6)
        n0 = spec.config.grid_cells
        self.occ0 = self.bare._b.occ[:n0 * n0].reshape(n0, n0)

    def reset(self) -> None:
        self.bare.reset()
        self.guide.reset()

    def warmup(self) -> None:
        self.bare.warmup()

    def __call__(self, frame: SensorFrame, command: np.ndarray) -> np.ndarray:
        obs = self.bare(frame, command)
        self.guide(self.occ0, self.bare.grid_origin, self.bare._b.work_f[:3], frame.goal, self.out)
        self.obs[:obs.shape[0]] = obs
        self.obs[obs.shape[0]:] = self.out
        return self.obs


def shipped_spec(policy: str | None) -> ObservationSpec:
    """The ObservationSpec in a policy sidecar (default: the shipped default policy's)."""
    path = Path(policy) if policy else resource("policies", "default.json")
    return ObservationSpec.from_dict(json.loads(path.read_text())["observation_spec"])


def time_interleaved(pres: dict, frames: list[SensorFrame], repeats: int) -> dict[str, dict]:
    """Per-call wall times (us) of each Preprocessor over ``repeats`` passes of the episode, the passes of the
    different Preprocessors interleaved so machine load falls on all alike: mean, median, p99 and max of all
    calls, and the same of each frame's fastest pass ("best_of_passes": a call the scheduler preempted in one pass
    is timed from another; every pass computes the same thing, so this removes other processes' time slices)."""
    command = np.array([0.5, 0.0])
    times = {name: np.empty((repeats, len(frames)), np.int64) for name in pres}
    for r in range(repeats):
        for name, pre in pres.items():
            pre.reset()
            out = times[name][r]
            for k, frame in enumerate(frames):
                start = time.perf_counter_ns()
                pre(frame, command)
                out[k] = time.perf_counter_ns() - start
    return {name: {**summary(t.reshape(-1) / 1000.0), "best_of_passes": summary(t.min(axis=0) / 1000.0)}
            for name, t in times.items()}


def summary(us: np.ndarray) -> dict:
    return {"mean": float(us.mean()), "p50": float(np.median(us)), "p99": float(np.percentile(us, 99)),
            "max": float(us.max())}


def time_per_frame(pre: Preprocessor | ReferencePreprocessor, frames: list[SensorFrame], repeats: int) -> dict:
    """Per-call wall times (us) over ``repeats`` passes of the episode: mean, median and 99th percentile."""
    command = np.array([0.5, 0.0])
    times = []
    for _ in range(repeats):
        pre.reset()
        for frame in frames:
            start = time.perf_counter_ns()
            pre(frame, command)
            times.append(time.perf_counter_ns() - start)
    return summary(np.array(times) / 1000.0)


def main() -> None:
    args, core = ARGS, CORE
    spec = shipped_spec(args.policy)
    bare = ObservationSpec(dataclasses.replace(spec.config, guidance=False))
    budgeted = ObservationSpec(dataclasses.replace(spec.config, guidance_budget=args.budget))
    pres = {"shipped": Preprocessor(spec), "budgeted": Preprocessor(budgeted), "no_guidance": Preprocessor(bare),
            "python_guide": PythonGuidePreprocessor(spec)}
    ref = ReferencePreprocessor(spec)
    c = spec.config
    t0 = time.perf_counter()
    for pre in pres.values():
        pre.warmup()
    warmup_s = time.perf_counter() - t0
    channels = [b.name for b in spec.blocks if b.name.startswith(("obstacle", "trajectory", "guidance"))]
    header = bench_header(core)
    print("robonav.sensors Preprocessor: the shipped spec vs without guidance (Numba) vs NumPy reference, per frame")
    print(f"  machine: {header['cpu_model']}, pinned to core {core}; threads: "
          + ", ".join(f"{k}={v}" for k, v in header["threads"].items())
          + f"; numba {numba.__version__}, numpy {np.__version__}, Python {platform.python_version()}; "
          f"load {header['load_avg']}")
    print(f"  spec: {args.policy or 'robonav/data/policies/default.json'} (D = {spec.size}; without guidance "
          f"D = {bare.size}); guidance_every {c.guidance_every}, lookahead {c.guidance_lookahead} m")
    print(f"  bins {c.num_bins}, max_range {c.max_range} m; grid {c.grid_cells} x {c.grid_cells} cells of "
          f"{c.grid_resolution} m ({c.grid_cells * c.grid_resolution:g} m); fine patch {c.fine_pixels} x "
          f"{c.fine_pixels} px of {c.fine_pixel_size} m; coarse patch {c.coarse_pixels} x {c.coarse_pixels} px of "
          f"{c.coarse_pixel_size} m; clear_rays {c.clear_rays}; map_range {c.map_range} m")
    print(f"  channels: {', '.join(channels)}")
    print(f"  scene: 7x7 perfect maze (1 m cells), depth-first walk at 0.5 m/s and 10 Hz, 1 cm noise, 1 % NaN; "
          f"Numba {args.repeats} x {args.frames} frames per variant (passes interleaved), reference "
          f"{args.reference_frames} frames of the shipped spec; warmup {warmup_s:.1f} s")
    print()
    print(f"  shipped: guidance in the kernel; budget: the same with guidance_budget {args.budget} (at most "
          f"{args.budget} A* expansions a step, the plan arrives steps later); no-guid: the same spec without "
          "guidance; py-guide: main's path (the bare kernel, then the Python Guide), the same observation")
    print(f"  all calls (first line per beam count) and each frame's fastest of the {args.repeats} passes (second "
          "line, 'best'): on a loaded machine the first carries other processes' time slices")
    print(f"  {'beams':>5}  {'':>4}  {'shipped mean':>12}  {'p50':>6}  {'p99':>7}  {'max':>7}  {'budget mean':>11}  "
          f"{'p50':>6}  {'p99':>7}  {'max':>6}  {'no-guid mean':>12}  {'p99':>6}  {'ship/bare':>9}  "
          f"{'py-guide mean':>13}  {'p99':>7}  {'py/ship':>7}  {'numpy mean':>10}  {'numpy/ship':>10}")
    results = []
    for beams in args.beams:
        frames = make_frames(beams, max(args.frames, args.reference_frames))
        fast = time_interleaved(pres, frames[:args.frames], args.repeats)
        slow = time_per_frame(ref, frames[:args.reference_frames], 1)
        row = {"beams": beams, "shipped_us": fast["shipped"], "budgeted_us": fast["budgeted"],
               "no_guidance_us": fast["no_guidance"],
               "python_guide_us": fast["python_guide"], "numpy_shipped_us": slow}
        for label, key in (("all", None), ("best", "best_of_passes")):
            ship, budg, bare_t, py = (fast[v] if key is None else fast[v][key]
                                      for v in ("shipped", "budgeted", "no_guidance", "python_guide"))
            ratios = {"shipped_over_no_guidance": ship["mean"] / bare_t["mean"],
                      "numpy_over_budgeted": slow["mean"] / budg["mean"],
                      "python_guide_over_shipped": py["mean"] / ship["mean"],
                      "numpy_over_shipped": slow["mean"] / ship["mean"]}
            row["ratios" if key is None else "ratios_best_of_passes"] = ratios
            print(f"  {beams:>5}  {label:>4}  {ship['mean']:>9.1f} us  {ship['p50']:>6.1f}  {ship['p99']:>7.1f}  "
                  f"{ship['max']:>7.0f}  {budg['mean']:>8.1f} us  {budg['p50']:>6.1f}  {budg['p99']:>7.1f}  "
                  f"{budg['max']:>6.0f}  {bare_t['mean']:>9.1f} us  {bare_t['p99']:>6.1f}  "
                  f"{ratios['shipped_over_no_guidance']:>8.2f}x  {py['mean']:>10.1f} us  {py['p99']:>7.1f}  "
                  f"{ratios['python_guide_over_shipped']:>6.1f}x  {slow['mean']:>7.0f} us  "
                  f"{ratios['numpy_over_shipped']:>9.0f}x")
        results.append(row)
    print()
    print("  required (shipped spec, 360 beams): mean <= 40 us (target 25), p99 <= 150 us (target 60), >= 20x the "
          "NumPy reference; the budgeted spec is the option that bounds the work per step")
    record = {**header, "benchmark": "preprocess", "D": spec.size, "D_no_guidance": bare.size,
              "settings": {"frames": args.frames, "repeats": args.repeats, "reference_frames": args.reference_frames,
                           "guidance_budget": args.budget,
                           "policy": args.policy or "robonav/data/policies/default.json", "warmup_s": warmup_s,
                           "config": c.to_dict()},
              "results": results}
    path = write_json(args.out, record)
    print(f"  wrote {path}")
    if args.json:
        print(json.dumps(record))


if __name__ == "__main__":
    main()
