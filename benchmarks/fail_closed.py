"""What failing closed costs: the safety layer's blind-direction rule (SafetyConfig.min_valid_fraction) against
the rule before it (min_valid_fraction = 0: NaN beams never limit), on the same episodes.

Two parts, one run:
  threshold   how often a clear scan (every beam +inf, i.i.d. NaN dropout) is found blind ahead by the real
              SafetyLayer: Monte Carlo counts over many scans per beam count and dropout, beside the exact
              binomial tail of the same event (fewer than min_valid_fraction of the corridor's beams valid)
  closed loop each policy on the same ``test`` episodes with the new rule and the old one, paired, nominal (the
              eval settings: randomization off) and with domain randomization on (beams 90 to 180, field of
              view 240 to 360 degrees, dropout 0 to 8 %, ...): success [95 % Wilson], the paired difference
              new - old [95 % Newcombe], the flips, SPL, how many ticks the new rule held a command back, and
              how many episodes came out the same in every field under both rules

Jobs run ``--workers`` at a time in worker processes (one thread each, ``--envs`` episodes batched per
simulator); each finished job is cached in ``--out`` (atomic), so a killed run resumes. Writes
results/bench/fail_closed.json.

    python benchmarks/fail_closed.py [--policies default default-q classical] [--episodes 200] [--json]
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

RULES = {"new": None, "old": 0.0}  # min_valid_fraction: None keeps SafetyConfig's default
CONDITIONS = ("nominal", "randomized")


# ---- threshold: clear scans with dropout ---------------------------------------------------------------------


def _binomial_below(n: int, p_drop: float, fraction: float) -> float:
    """P(valid < fraction * n) for n beams, each valid with probability 1 - p_drop."""
    if n == 0:
        return 1.0
    top = math.ceil(fraction * n) - 1  # the most valid beams that are still too few
    return sum(math.comb(n, j) * (1 - p_drop) ** j * p_drop ** (n - j) for j in range(0, top + 1))


def threshold_table(scans: int, seed: int = 0) -> list[dict[str, Any]]:
    """Per (scanner, dropout): corridor beams, Monte Carlo blind rate of the real SafetyLayer, exact tail."""
    from robonav.control.safety import SafetyConfig, SafetyLayer

    cfg = SafetyConfig()
    rng = np.random.default_rng(seed)
    rows = []
    scanners = [(72, 360.0), (360, 360.0), (1080, 360.0), (90, 240.0)]  # the last: randomization's sparsest
    for beams, fov in scanners:
        full = fov >= 360.0
        step = math.radians(fov) / (beams if full else beams - 1)
        angles = -math.radians(fov) / 2 + step * np.arange(beams)
        ahead = int((np.cos(angles) >= np.abs(np.sin(angles)) - 1e-9).sum())
        for p in (0.01, 0.08) if beams != 72 else (0.01, 0.08, 0.4):  # 0.4: a rate MC resolves, to check it
            batch = max(1, min(scans, 2_000_000 // beams))
            layer = SafetyLayer(cfg, num_envs=batch)
            blind = done = 0
            while done < scans:
                ranges = np.where(rng.random((batch, beams)) < p, np.nan, np.inf).astype(np.float32)
                layer.reset()
                layer.filter(np.tile([0.5, 0.0], (batch, 1)), ranges, angles, 0.1)
                blind += int(layer.blind[:, 0].sum())
                done += batch
            rows.append({"beams": beams, "fov_deg": fov, "dropout": p, "corridor_beams": ahead, "scans": done,
                         "blind_scans": blind, "blind_rate_mc": blind / done,
                         "blind_rate_exact": _binomial_below(ahead, p, cfg.min_valid_fraction),
                         "min_valid_fraction": cfg.min_valid_fraction})
    return rows


# ---- closed loop -------------------------------------------------------------------------------------------


class _Counting:
    """Wraps a Policy and counts, per episode, the ticks whose commanded direction the safety layer found blind.

    The runner resets slots in queue order, so the k-th slot reset starts episode k."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.n = inner, n
        self.episode = np.full(n, -1)
        self.last_v = np.zeros(n)
        self.fresh = np.ones(n, dtype=bool)
        self.next = 0
        self.blind_ticks: dict[int, int] = {}

    def reset(self, env_ids: np.ndarray) -> None:
        for i in np.asarray(env_ids).tolist():
            self.episode[i] = self.next
            self.blind_ticks[self.next] = 0
            self.next += 1
            self.fresh[i] = True
        self.inner.reset(env_ids)

    def act(self, obs: np.ndarray, frames: list, sim: Any) -> np.ndarray:
        blind = sim.safety.blind  # from the filter of the previous tick, which acted on last_v
        held = (blind[:, 0] & (self.last_v > 0)) | (blind[:, 1] & (self.last_v < 0))
        for i in np.flatnonzero(held & ~self.fresh).tolist():
            self.blind_ticks[int(self.episode[i])] += 1
        actions = np.asarray(self.inner.act(obs, frames, sim), dtype=np.float64).reshape(self.n, 2)
        self.last_v = actions[:, 0].copy()
        self.fresh[:] = False
        return actions


def _episodes(out: Path, count: int):
    from robonav.eval.episodes import load_episodes, make_episodes, save_episodes

    path = out / f"episodes-test-{count}.jsonl"
    if not path.exists():
        save_episodes(path, make_episodes("test", count, seed=0))
    return load_episodes(path)


def _job(policy: str, condition: str, rule: str, count: int, envs: int, out: str) -> list[dict]:
    """One policy, condition and rule on the episode list; per-episode dicts (cached in ``out``)."""
    import torch

    torch.set_num_threads(1)
    from robonav.atomic import write_text_atomic
    from robonav.eval.policies import resolve_policy
    from robonav.eval.runner import run_episodes

    folder = Path(out)
    cache = folder / f"results-{policy}-{condition}-{rule}-{count}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    resolved = resolve_policy(policy)
    factory, config = resolved.factory, resolved.sim_config
    fraction = RULES[rule]
    if fraction is not None:
        config = dataclasses.replace(config, safety=dataclasses.replace(config.safety, min_valid_fraction=fraction))
    if condition == "randomized":
        config = dataclasses.replace(config, randomization=dataclasses.replace(config.randomization, enabled=True))
    wrappers: list[_Counting] = []

    def counting(n: int) -> _Counting:
        wrappers.append(_Counting(factory(n), n))
        return wrappers[-1]

    t0 = time.perf_counter()
    results = run_episodes(counting, _episodes(folder, count), config, num_envs=envs)
    rows = [{**dataclasses.asdict(r), "blind_ticks": wrappers[0].blind_ticks.get(k, 0)}
            for k, r in enumerate(results)]
    write_text_atomic(cache, json.dumps(rows))
    print(f"  done: {policy} {condition} {rule} ({count} episodes, {time.perf_counter() - t0:.0f} s)",
          file=sys.stderr, flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policies", nargs="+", default=["default", "default-q", "classical"])
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--envs", type=int, default=8, help="episodes batched per simulator")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scans", type=int, default=200_000, help="Monte Carlo scans per threshold cell")
    p.add_argument("--out", default="results/fail_closed", help="cache folder (episode list, per-job results)")
    p.add_argument("--bench", default="results/bench/fail_closed.json")
    p.add_argument("--cached-only", action="store_true",
                   help="report only the (policy, condition) pairs whose both rules are cached in --out; run nothing")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    from robonav.atomic import write_text_atomic
    from robonav.control.safety import SafetyConfig
    from robonav.eval.metrics import EpisodeResult, paired_comparison, summarize

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    missing: list[str] = []
    _episodes(out, args.episodes)  # written once, before the workers read it
    jobs = [(pol, cond, rule, args.episodes, args.envs, str(out))
            for cond in args.conditions for pol in args.policies for rule in RULES]
    if args.cached_only:
        def cached_pair(job: tuple) -> bool:
            return all((out / f"results-{job[0]}-{job[1]}-{rule}-{args.episodes}.json").exists() for rule in RULES)
        missing = sorted({f"{j[0]} {j[1]}" for j in jobs if not cached_pair(j)})  # "policy condition"
        jobs = [j for j in jobs if cached_pair(j)]
        if missing:
            print(f"  not run (--cached-only): {', '.join(missing)}", file=sys.stderr, flush=True)
    with ProcessPoolExecutor(args.workers) as pool:
        pending = pool.map(_job, *zip(*jobs))
        cached = out / f"threshold-{args.scans}.json"
        if cached.exists():
            table = json.loads(cached.read_text())
        else:
            t0 = time.perf_counter()
            table = threshold_table(args.scans)  # in the parent while the workers run
            write_text_atomic(cached, json.dumps(table))
            print(f"  threshold table: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        rows = list(pending)
    by = {(j[0], j[1], j[2]): [{k: v for k, v in r.items() if k != "blind_ticks"} for r in rs]
          for j, rs in zip(jobs, rows)}
    held = {(j[0], j[1], j[2]): [r["blind_ticks"] for r in rs] for j, rs in zip(jobs, rows)}
    identical = {(j[0], j[1]): 0 for j in jobs}  # episodes whose result is the same in every field under both rules
    for pol, cond, _, *_ in jobs:
        identical[(pol, cond)] = sum(a == b for a, b in zip(by[(pol, cond, "new")], by[(pol, cond, "old")]))

    default = SafetyConfig().min_valid_fraction
    print(f"\nthreshold: min_valid_fraction {default}; a clear scan (all +inf) with i.i.d. NaN dropout, found blind "
          "ahead by SafetyLayer (Monte Carlo) and the exact binomial tail")
    print(f"{'beams':>6}{'fov':>6}{'corridor':>9}{'dropout':>8}{'scans':>10}{'blind':>7}{'MC rate':>10}"
          f"{'exact':>11}")
    for t in table:
        print(f"{t['beams']:>6}{t['fov_deg']:>6.0f}{t['corridor_beams']:>9}{t['dropout']:>8.2f}{t['scans']:>10}"
              f"{t['blind_scans']:>7}{t['blind_rate_mc']:>10.2e}{t['blind_rate_exact']:>11.2e}")

    report: dict[str, Any] = {
        "benchmark": "fail_closed", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": {"episodes": args.episodes, "suite": "test", "episode_seed": 0, "envs": args.envs,
                     "workers": args.workers, "threads_per_worker": 1, "min_valid_fraction_new": default,
                     "min_valid_fraction_old": RULES["old"], "scans_per_cell": args.scans},
        "threshold": table, "closed_loop": [], "not_run": missing}
    print(f"\nclosed loop: new rule (min_valid_fraction {default}) vs old (0) on the same {args.episodes} test "
          f"episodes, {args.envs} batched, one thread per worker")
    print(f"{'policy':<11}{'condition':<12}{'new success [95%]':<23}{'old success [95%]':<23}"
          f"{'new - old [95%]':<25}{'flips +/-':>10}{'SPL new/old':>13}{'held ticks':>11}{'same eps':>9}")
    for cond in args.conditions:
        for pol in args.policies:
            if (pol, cond, "new") not in by:
                continue
            new = [EpisodeResult(**r) for r in by[(pol, cond, "new")]]
            old = [EpisodeResult(**r) for r in by[(pol, cond, "old")]]
            sn, so, pc = summarize(new), summarize(old), paired_comparison(new, old)
            cn, co, cd = sn["success_ci95"], so["success_ci95"], pc["success_diff_ci95"]
            ticks = held[(pol, cond, "new")]
            steps = sum(r.steps for r in new)
            print(f"{pol:<11}{cond:<12}{sn['success_rate']:.3f} [{cn[0]:.3f}, {cn[1]:.3f}]{'':<4}"
                  f"{so['success_rate']:.3f} [{co[0]:.3f}, {co[1]:.3f}]{'':<4}"
                  f"{pc['success_diff']:+.3f} [{cd[0]:+.3f}, {cd[1]:+.3f}]{'':<4}"
                  f"{pc['only_a']:>5}/{pc['only_b']:<4}{sn['spl']:>6.3f}/{so['spl']:.3f}{sum(ticks):>11}"
                  f"{identical[(pol, cond)]:>9}")
            report["closed_loop"].append({
                "policy": pol, "condition": cond, "episodes": len(new),
                "new": {"success_rate": sn["success_rate"], "success_ci95": cn, "spl": sn["spl"],
                        "collisions_per_episode": sn.get("collisions_per_episode")},
                "old": {"success_rate": so["success_rate"], "success_ci95": co, "spl": so["spl"],
                        "collisions_per_episode": so.get("collisions_per_episode")},
                "success_diff": pc["success_diff"], "success_diff_ci95": cd, "flips_new_only": pc["only_a"],
                "flips_old_only": pc["only_b"], "mcnemar_p": pc["mcnemar_p"], "spl_diff": pc["spl_diff"],
                "spl_diff_ci95": pc["spl_diff_ci95"], "held_ticks": sum(ticks), "ticks": steps,
                "episodes_with_held_ticks": sum(t > 0 for t in ticks),
                "identical_episodes": identical[(pol, cond)]})
    bench = Path(args.bench)
    bench.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(bench, json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(f"\nwrote {bench}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
