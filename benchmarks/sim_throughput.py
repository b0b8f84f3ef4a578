"""Simulator throughput: env steps per second per core, robonav's batched world beside a naive baseline.

Compared in one run, same mazes (16 generated 7x7 mazes, all families), same beams and substeps (the training
default), the shipped observation (the default policy's ObservationSpec from its sidecar, guidance on), random
actions with a fixed seed, autoreset on:
  naive     one PyBullet body per wall cell, one rayTestBatch per env (what a first simulator does)
  single    robonav/Maze-v0, one env (merged compound walls, Numba grid raycaster)
  batched   MazeVectorEnv, 16 envs in one PyBullet world, one stepSimulation and one batched range query
  no-guid   the batched world with the same observation less its guidance block
  per-env   the batched world observing env by env in Python (Preprocessor, frame, geodesic per env: the tick
            before the batched observation kernel), with and without guidance
  2 procs   ProcessVectorEnv, 2 worker processes x 16 envs (per-core figure = total / 2)
Every measured process is pinned to one core with one thread (NUMBA/OMP/MKL threads = 1); each rate is given
per wall second and per CPU second of the process (the steadier one where other jobs share the core). The figures go to
results/bench/sim_throughput.json (``--out``) with machine, CPU, date, threads and load.

    python benchmarks/sim_throughput.py [--steps 300] [--envs 16] [--observation plain|preprocessor] [--no-procs]
    python benchmarks/sim_throughput.py --movers   # batched world without vs with moving obstacles
                                                   # (sim.dynamic.density = DYNAMIC_DENSITY, 4 per 7x7 maze),
                                                   # shipped observation, batched and per-env observation;
                                                   # writes results/bench/sim_movers.json (``--out`` to move it)
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _mazes(n):
    from robonav.sim.generate import FAMILIES, generate_maze
    from robonav.sim.suites import split_seed

    return [generate_maze(FAMILIES[i % len(FAMILIES)], 7, 7, seed=split_seed("val", i)) for i in range(n)]


def _shipped(guidance: bool = True):
    """The default policy's PreprocessorConfig (its sidecar's observation spec), guidance on or off."""
    from robonav.data import resource
    from robonav.sensors.spec import ObservationSpec

    spec = ObservationSpec.from_dict(json.loads(resource("policies", "default.json").read_text())["observation_spec"])
    return spec.config if guidance else dataclasses.replace(spec.config, guidance=False)


def _measure(env, steps, num_envs):
    return _measure_both(env, steps, num_envs)[0]


def _measure_both(env, steps, num_envs):
    """(env steps per wall second, per CPU second of this process). On a shared machine the second is the
    steadier figure: a pinned one-thread process is charged only for the time it ran."""
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(10):  # warm-up: Numba compilation, caches
        env.step(rng.uniform(-1, 1, (num_envs, 2)).astype(np.float32))
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        env.step(rng.uniform(-1, 1, (num_envs, 2)).astype(np.float32))
    return steps * num_envs / (time.perf_counter() - t), steps * num_envs / (time.process_time() - c)


def movers_case(args) -> None:
    """Batched world without and with movers (batched and per-env observation), alternated ``--repeats`` times in
    one pinned process; the medians."""
    import datetime
    import platform

    from robonav.sim.config import DYNAMIC_DENSITY, DynamicConfig, SimConfig
    from robonav.sim.vector import MazeVectorEnv

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    base = SimConfig(observation=args.observation, preprocessor=_shipped())
    with_movers = dataclasses.replace(base, dynamic=DynamicConfig(density=DYNAMIC_DENSITY))
    mazes, n = _mazes(args.envs), args.envs
    envs = {"without": MazeVectorEnv(n, maze=mazes, config=base),
            "with": MazeVectorEnv(n, maze=mazes, config=with_movers),
            "without, per-env observe": MazeVectorEnv(n, maze=mazes, config=base, per_env_observe=True),
            "with, per-env observe": MazeVectorEnv(n, maze=mazes, config=with_movers, per_env_observe=True)}
    rates: dict[str, list[float]] = {k: [] for k in envs}
    for _ in range(args.repeats):
        for name, env in envs.items():
            rates[name].append(_measure(env, args.steps, n))
    movers = envs["with"].sim.crowd.count.copy()
    for env in envs.values():
        env.close()
    med = {k: float(np.median(v)) for k, v in rates.items()}
    ratio = med["with"] / med["without"]
    settings = {"envs": n, "mazes": "7x7, all families (val seeds)", "beams": base.scanner.num_beams,
                "substeps": base.substeps, "period": base.period, "observation": args.observation,
                "spec": "robonav/data/policies/default.json (guidance on)",
                "threads": 1, "pinned_cores": 1, "ticks": args.steps, "repeats": args.repeats,
                "density": DYNAMIC_DENSITY, "movers_per_maze_mean": float(movers.mean()),
                "movers_per_maze": movers.tolist()}
    print(f"settings: {json.dumps(settings)}")
    print(f"{'variant':<36}{'env steps/s (median)':>22}    runs")
    for k in envs:
        print(f"{k + ' movers':<36}{med[k]:>22,.0f}    {'  '.join(f'{r:,.0f}' for r in rates[k])}")
    for k in ("without", "with"):
        print(f"{k} movers: batched / per-env observe = {med[k] / med[k + ', per-env observe']:.2f}")
    print(f"with / without = {ratio:.2f} (required >= 0.8: {'PASS' if ratio >= 0.8 else 'FAIL'})")
    out = {"name": "sim_movers", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "python": platform.python_version(), "cpus": os.cpu_count(),
                       "load_average_1min": os.getloadavg()[0]},
           "settings": settings, "steps_per_s": med, "runs": rates, "ratio": ratio}
    path = Path(args.out or Path(__file__).resolve().parents[1] / "results" / "bench" / "sim_movers.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    from robonav.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="ticks per measurement")
    ap.add_argument("--envs", type=int, default=16, help="mazes per batched world")
    ap.add_argument("--observation", default="preprocessor", help="observation builder (preprocessor or plain)")
    ap.add_argument("--no-procs", action="store_true", help="skip the 2-process row (it needs both cores)")
    ap.add_argument("--out", default=None, help="where to write the JSON (default results/bench/sim_throughput.json, "
                    "or sim_movers.json with --movers)")
    ap.add_argument("--movers", action="store_true", help="only the moving-obstacles case (without vs with)")
    ap.add_argument("--repeats", type=int, default=9, help="alternated measurements per variant (--movers)")
    args = ap.parse_args()
    if args.movers:
        movers_case(args)
        return
    from benchmarks.bench_common import bench_header, write_json
    from robonav.sim.config import SimConfig
    from robonav.sim.env import MazeEnv
    from robonav.sim.vector import MazeVectorEnv, ProcessVectorEnv

    shipped = _shipped()
    cfg = SimConfig(observation=args.observation, preprocessor=shipped)
    bare_cfg = SimConfig(observation=args.observation, preprocessor=_shipped(guidance=False))
    mazes = _mazes(args.envs)
    n = args.envs
    r_procs = float("nan")
    if not args.no_procs:  # worker processes first, before this process pins itself (children inherit the mask)
        procs = ProcessVectorEnv(2 * n, workers=2, maze=mazes, config=cfg)
        r_procs = _measure(procs, args.steps, 2 * n)
        procs.close()
    core = None
    if hasattr(os, "sched_setaffinity"):
        core = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {core})
    header = bench_header(core)
    naive = MazeVectorEnv(n, maze=mazes, config=SimConfig(observation=args.observation, raycaster="pybullet"),
                          wall_mode="cells", per_env_rays=True)
    r_naive, c_naive = _measure_both(naive, max(30, args.steps // 5), n)
    naive.close()

    class _One:  # MazeEnv behind the same (batched) call shape
        def __init__(self):
            self.env = MazeEnv(maze=mazes, config=cfg)

        def reset(self, seed):
            return self.env.reset(seed=seed)

        def step(self, a):
            out = self.env.step(a[0])
            if out[2] or out[3]:
                self.env.reset()
            return out

    one = _One()
    r_single, c_single = _measure_both(one, args.steps * 4, 1)
    one.env.close()
    worlds = {"batched": MazeVectorEnv(n, maze=mazes, config=cfg),
              "bare": MazeVectorEnv(n, maze=mazes, config=bare_cfg),
              "per_env": MazeVectorEnv(n, maze=mazes, config=cfg, per_env_observe=True),
              "per_env_bare": MazeVectorEnv(n, maze=mazes, config=bare_cfg, per_env_observe=True)}
    rate, cpu = dict.fromkeys(worlds, 0.0), dict.fromkeys(worlds, 0.0)
    for _ in range(2):  # interleaved halves, so load falls on all alike
        for name, world in worlds.items():
            wall_rate, cpu_rate = _measure_both(world, args.steps // 2, n)
            rate[name] += wall_rate / 2
            cpu[name] += cpu_rate / 2
    for world in worlds.values():
        world.close()
    r_batched, r_bare = rate["batched"], rate["bare"]

    print(f"settings: {n} mazes of 7x7 cells (all families), {cfg.scanner.num_beams} beams, "
          f"{cfg.substeps} substeps per {cfg.period} s tick, observation={args.observation} (the shipped spec, "
          f"guidance {'on' if shipped.guidance else 'off'}), 1 thread per process, {args.steps} ticks; "
          f"{header['cpu_model']}, core {core}, load {header['load_avg']}")
    print(f"{'variant':<34}{'env steps/s':>14}{'per core':>12}{'vs naive':>10}")
    nan = float("nan")
    rows = [("naive (body per cell, rays per env)", r_naive, 1, c_naive), ("single env", r_single, 1, c_single),
            (f"batched world ({n} envs)", r_batched, 1, cpu["batched"]),
            (f"batched, no guidance ({n} envs)", r_bare, 1, cpu["bare"]),
            ("batched, per-env observe", rate["per_env"], 1, cpu["per_env"]),
            ("batched, per-env observe, no guid.", rate["per_env_bare"], 1, cpu["per_env_bare"]),
            (f"2 processes x {n} envs", r_procs, 2, nan)]
    print(f"{'':<34}{'':>14}{'':>12}{'':>10}{'per CPU-s':>12}{'vs naive':>10}")
    for name, r, cores, c in rows:
        print(f"{name:<34}{r:>14,.0f}{r / cores:>12,.0f}{r / cores / r_naive:>9.1f}x{c:>12,.0f}{c / c_naive:>9.1f}x")
    print(f"batched with the shipped observation / without guidance: {r_batched / r_bare:.2f}")
    print(f"batched / per-env observe: {r_batched / rate['per_env']:.2f} with guidance, "
          f"{r_bare / rate['per_env_bare']:.2f} without (per CPU-s: {cpu['batched'] / cpu['per_env']:.2f}, "
          f"{cpu['bare'] / cpu['per_env_bare']:.2f})")
    print(f"required: batched >= 8x naive -> {'PASS' if r_batched / r_naive >= 8 else 'FAIL'} "
          f"({r_batched / r_naive:.1f}x); target 10,000 steps/s per core -> {r_batched:,.0f}")
    record = {**header, "benchmark": "sim_throughput",
              "settings": {"envs": n, "maze": "7x7, all families, val seeds", "beams": cfg.scanner.num_beams,
                           "substeps": cfg.substeps, "period": cfg.period, "observation": args.observation,
                           "spec": "robonav/data/policies/default.json", "steps": args.steps,
                           "threads_per_process": 1},
              "env_steps_per_s": {"naive": r_naive, "single": r_single, "batched": r_batched,
                                  "batched_no_guidance": r_bare, "per_env_observe": rate["per_env"],
                                  "per_env_observe_no_guidance": rate["per_env_bare"],
                                  "two_processes_per_core": r_procs / 2},
              "env_steps_per_cpu_s": {"naive": c_naive, "single": c_single, "batched": cpu["batched"],
                                      "batched_no_guidance": cpu["bare"], "per_env_observe": cpu["per_env"],
                                      "per_env_observe_no_guidance": cpu["per_env_bare"]},
              "batched_over_per_env_observe": r_batched / rate["per_env"],
              "cpu_batched_over_naive": cpu["batched"] / c_naive,
              "cpu_batched_over_per_env_observe": cpu["batched"] / cpu["per_env"],
              "batched_over_naive": r_batched / r_naive, "no_guidance_over_naive": r_bare / r_naive,
              "batched_over_no_guidance": r_batched / r_bare}
    print(f"wrote {write_json(args.out or 'results/bench/sim_throughput.json', record)}")


if __name__ == "__main__":
    main()
