"""Benchmark: the whole Preprocessor call (scan, odometry, both memories, both patch scales, guidance), Numba vs
NumPy, on the configuration that ships: the default policy's ObservationSpec, read from its sidecar
(robonav/data/policies/default.json; ``--policy`` names another sidecar), beside the same spec without guidance.

For 360, 720 and 1080 beams it drives a robot through a generated 7x7 maze (1 m cells, 0.5 m/s, 10 Hz, scans
cast exactly, 1 cm range noise and 1 % NaN dropouts), precomputes the frames, then times in the same run, on one
pinned core, the Numba Preprocessor (shipped spec and no-guidance spec, passes interleaved) and the NumPy
ReferencePreprocessor on the same frames, and prints microseconds per frame and the ratios, with the settings; it
writes every figure to results/bench/preprocess.json. Run it from the repository root:

    .venv/bin/python benchmarks/preprocess.py [--frames 2000] [--reference-frames 300] [--core N] [--json]
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
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402

from benchmarks.bench_common import bench_header, write_json  # noqa: E402
from robonav.data import resource  # noqa: E402
from robonav.sensors import Preprocessor, ScanSpec, SensorFrame  # noqa: E402
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


def perfect_maze(n: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Walls [2n+1, 2n+1] (True = wall, 1 m cells) of a depth-first perfect maze, and the depth-first walk
    (with its backtracking) through the passage cells: a route that explores and revisits."""
    rng = np.random.default_rng(seed)
    walls = np.ones((2 * n + 1, 2 * n + 1), bool)
    walk, stack, seen = [(0, 0)], [(0, 0)], {(0, 0)}
    walls[1, 1] = False
    while stack:
        i, j = stack[-1]
        options = [(i + di, j + dj) for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))
                   if 0 <= i + di < n and 0 <= j + dj < n and (i + di, j + dj) not in seen]
        if options:
            a, b = options[rng.integers(len(options))]
            walls[2 * a + 1, 2 * b + 1] = walls[i + a + 1, j + b + 1] = False
            seen.add((a, b))
            stack.append((a, b))
        else:
            stack.pop()
        if stack:
            walk.append(stack[-1])
    return walls, walk


def cast(walls: np.ndarray, pose: np.ndarray, angles: np.ndarray, range_max: float) -> np.ndarray:
    """Exact ranges from ``pose`` (maze coordinates, 1 m cells) along ``angles`` (robot frame); +inf beyond."""
    a = pose[2] + angles
    dx, dy = np.cos(a), np.sin(a)
    i = np.full(a.shape, math.floor(pose[0]))
    j = np.full(a.shape, math.floor(pose[1]))
    step_i, step_j = np.where(dx > 0, 1, -1), np.where(dy > 0, 1, -1)
    with np.errstate(divide="ignore"):
        delta_x, delta_y = 1.0 / np.abs(dx), 1.0 / np.abs(dy)
    next_x = np.where(dx > 0, i + 1 - pose[0], pose[0] - i) * delta_x
    next_y = np.where(dy > 0, j + 1 - pose[1], pose[1] - j) * delta_y
    dist = np.full(a.shape, np.inf)
    for _ in range(2 * math.ceil(range_max) + 4):
        open_, along_x = np.isinf(dist), next_x < next_y
        t = np.where(along_x, next_x, next_y)
        i, j = np.where(open_ & along_x, i + step_i, i), np.where(open_ & ~along_x, j + step_j, j)
        next_x = np.where(open_ & along_x, next_x + delta_x, next_x)
        next_y = np.where(open_ & ~along_x, next_y + delta_y, next_y)
        dist = np.where(open_ & walls[np.clip(i, 0, walls.shape[0] - 1), np.clip(j, 0, walls.shape[1] - 1)], t, dist)
    dist[dist > range_max] = np.inf
    return dist


def make_frames(beams: int, count: int, seed: int = 0) -> list[SensorFrame]:
    """``count`` frames of a robot following the depth-first walk of a 7x7 maze (turn in place, then drive)."""
    walls, walk = perfect_maze(7, seed)
    scan = ScanSpec.evenly_spaced(beams)
    angles = scan.beam_angles()
    rng = np.random.default_rng(seed + 1)
    pose = np.array([1.5, 1.5, 0.0])
    goal = np.array([12.0, 12.0])  # odometry frame: from the start cell's centre
    out: list[SensorFrame] = []
    previous = pose.copy()

    def emit() -> None:
        nonlocal previous
        c, s = math.cos(previous[2]), math.sin(previous[2])
        ex, ey = pose[0] - previous[0], pose[1] - previous[1]
        dth = (pose[2] - previous[2] + math.pi) % (2 * math.pi) - math.pi
        r = cast(walls, pose, angles, scan.range_max) + rng.normal(0.0, 0.01, beams)
        r[rng.random(beams) < 0.01] = np.nan
        out.append(SensorFrame(r.astype(np.float32), scan, np.array([c * ex + s * ey, c * ey - s * ex, dth]), goal))
        previous = pose.copy()

    k = 1
    while len(out) < count:
        ci, cj = walk[k % len(walk)]
        k += 1
        target = (2 * ci + 1.5, 2 * cj + 1.5)  # through the passage between cells, one 1 m step at a time
        for wx, wy in (((pose[0] + target[0]) / 2, (pose[1] + target[1]) / 2), target):
            heading = math.atan2(wy - pose[1], wx - pose[0])
            while abs(err := (heading - pose[2] + math.pi) % (2 * math.pi) - math.pi) > 1e-9 and len(out) < count:
                pose[2] += max(-0.2, min(0.2, err))  # 2 rad/s
                emit()
            while (dist := math.hypot(wx - pose[0], wy - pose[1])) > 1e-9 and len(out) < count:
                stride = min(dist, 0.05)  # 0.5 m/s
                pose[0] += stride * math.cos(pose[2])
                pose[1] += stride * math.sin(pose[2])
                emit()
    return out


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
    pres = {"shipped": Preprocessor(spec), "no_guidance": Preprocessor(bare),
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
    print("  shipped: guidance in the kernel; no-guid: the same spec without guidance; py-guide: main's path (the bare "
          "kernel, then the Python Guide), the same observation")
    print(f"  all calls (first line per beam count) and each frame's fastest of the {args.repeats} passes (second "
          "line, 'best'): on a loaded machine the first carries other processes' time slices")
    print(f"  {'beams':>5}  {'':>4}  {'shipped mean':>12}  {'p50':>6}  {'p99':>7}  {'max':>7}  {'no-guid mean':>12}  "
          f"{'p99':>6}  {'ship/bare':>9}  {'py-guide mean':>13}  {'p99':>7}  {'py/ship':>7}  {'numpy mean':>10}  "
          f"{'numpy/ship':>10}")
    results = []
    for beams in args.beams:
        frames = make_frames(beams, max(args.frames, args.reference_frames))
        fast = time_interleaved(pres, frames[:args.frames], args.repeats)
        slow = time_per_frame(ref, frames[:args.reference_frames], 1)
        row = {"beams": beams, "shipped_us": fast["shipped"], "no_guidance_us": fast["no_guidance"],
               "python_guide_us": fast["python_guide"], "numpy_shipped_us": slow}
        for label, key in (("all", None), ("best", "best_of_passes")):
            ship, bare_t, py = (fast[v] if key is None else fast[v][key]
                                for v in ("shipped", "no_guidance", "python_guide"))
            ratios = {"shipped_over_no_guidance": ship["mean"] / bare_t["mean"],
                      "python_guide_over_shipped": py["mean"] / ship["mean"],
                      "numpy_over_shipped": slow["mean"] / ship["mean"]}
            row["ratios" if key is None else "ratios_best_of_passes"] = ratios
            print(f"  {beams:>5}  {label:>4}  {ship['mean']:>9.1f} us  {ship['p50']:>6.1f}  {ship['p99']:>7.1f}  "
                  f"{ship['max']:>7.0f}  {bare_t['mean']:>9.1f} us  {bare_t['p99']:>6.1f}  "
                  f"{ratios['shipped_over_no_guidance']:>8.2f}x  {py['mean']:>10.1f} us  {py['p99']:>7.1f}  "
                  f"{ratios['python_guide_over_shipped']:>6.1f}x  {slow['mean']:>7.0f} us  "
                  f"{ratios['numpy_over_shipped']:>9.0f}x")
        results.append(row)
    print()
    print("  required (shipped spec, 360 beams): mean <= 40 us (target 25), p99 <= 150 us (target 60), >= 20x the "
          "NumPy reference")
    record = {**header, "benchmark": "preprocess", "D": spec.size, "D_no_guidance": bare.size,
              "settings": {"frames": args.frames, "repeats": args.repeats, "reference_frames": args.reference_frames,
                           "policy": args.policy or "robonav/data/policies/default.json", "warmup_s": warmup_s,
                           "config": c.to_dict()},
              "results": results}
    path = write_json(args.out, record)
    print(f"  wrote {path}")
    if args.json:
        print(json.dumps(record))


if __name__ == "__main__":
    main()
