"""The default policy's report card: a policy and the classical baseline on the same paired episodes per suite.

Suites (episode lists are written once to ``--out`` and reused, so every later run is paired with this one):
  test        the 7x7 test split over all families (500 episodes: the acceptance figure)
  test-9x9    larger mazes than the test split (200)
  test-11x11  larger still (200)
  test-c0.8   the test split's 7x7 grids on 0.8 m cells: narrower corridors than the 1 m of default training (200)
  hand        the hand-drawn mazes shipped in robonav/data/mazes, never trained on (10 seeds each)

For each suite it prints success [95 % Wilson], SPL and collisions for both, the SPL ratio, success per family,
and the paired comparison (Newcombe interval of the success difference, exact McNemar). Jobs run two at a time in
worker processes (one thread each); each finished job is cached in ``--out`` (atomic), so a killed run resumes.

    python benchmarks/default_policy.py --policy default [--json]
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

SUITES = {"test": 500, "test-9x9": 200, "test-11x11": 200, "test-c0.8": 200, "hand": 80}


def _episodes(out: Path, suite: str, count: int):
    from robonav.eval.episodes import load_episodes, make_episodes, save_episodes

    path = out / f"episodes-{suite}-{count}.jsonl"
    if not path.exists():
        save_episodes(path, make_episodes(suite, count, seed=0))
    return load_episodes(path)


def _job(policy: str, suite: str, count: int, out: str) -> list[dict]:
    """Run one policy on one suite; per-episode results as dicts (cached)."""
    import torch

    torch.set_num_threads(1)
    from robonav.eval.policies import resolve_policy
    from robonav.eval.runner import run_episodes

    folder = Path(out)
    tag = hashlib.sha256(policy.encode()).hexdigest()[:8] if policy not in ("classical", "default") else policy
    cache = folder / f"results-{tag}-{suite}-{count}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    resolved = resolve_policy(policy)
    factory, config = resolved.factory, resolved.sim_config
    results = run_episodes(factory, _episodes(folder, suite, count), config, num_envs=8)
    rows = [dataclasses.asdict(r) for r in results]
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows))
    tmp.replace(cache)
    print(f"  done: {policy} on {suite} ({count} episodes)", file=sys.stderr, flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default="default", help="checkpoint path or 'default'")
    p.add_argument("--suites", nargs="+", default=list(SUITES), choices=list(SUITES))
    p.add_argument("--out", default="results/default_policy")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    from robonav.eval.metrics import EpisodeResult, paired_comparison, summarize

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for suite in args.suites:  # write the lists once, before the workers read them
        _episodes(out, suite, SUITES[suite])
    jobs = [(pol, s, SUITES[s], str(out)) for s in args.suites for pol in (args.policy, "classical")]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_job, *zip(*jobs)))
    by = {(j[0], j[1]): [EpisodeResult(**r) for r in rs] for j, rs in zip(jobs, rows)}
    report: dict = {"policy": args.policy, "suites": {}}
    print(f"\n{args.policy} vs classical, paired episodes per suite (episode lists in {out})")
    print(f"{'suite':<11}{'eps':>5}  {'policy success [95%]':<24}{'SPL':>6}  {'classical success [95%]':<26}"
          f"{'SPL':>6}{'SPL ratio':>10}{'McNemar p':>11}")
    for s in args.suites:
        a, b = by[(args.policy, s)], by[("classical", s)]
        sa, sb, pc = summarize(a), summarize(b), paired_comparison(a, b)
        ratio = sa["spl"] / sb["spl"] if sb["spl"] > 0 else float("nan")
        report["suites"][s] = {"episodes": len(a), "policy": _strip(sa), "classical": _strip(sb),
                               "spl_ratio": ratio, "paired": pc}
        ca, cb = sa["success_ci95"], sb["success_ci95"]
        print(f"{s:<11}{len(a):>5}  {sa['success_rate']:.3f} [{ca[0]:.3f}, {ca[1]:.3f}]{'':<5}{sa['spl']:>6.3f}  "
              f"{sb['success_rate']:.3f} [{cb[0]:.3f}, {cb[1]:.3f}]{'':<7}{sb['spl']:>6.3f}{ratio:>10.3f}"
              f"{pc['mcnemar_p']:>11.3g}")
        fams = ", ".join(f"{f} {r['success_rate']:.2f}/{sb['per_family'][f]['success_rate']:.2f}"
                         for f, r in sorted(sa["per_family"].items()))
        print(f"{'':<11}per family (policy/classical success): {fams}")
    if args.json:
        print(json.dumps(report, sort_keys=True))
    return 0


def _strip(summary: dict) -> dict:
    """The summary without the per-episode lists (kept in the cache files)."""
    return {k: v for k, v in summary.items() if k not in ("maze_hashes", "seeds")}


if __name__ == "__main__":
    raise SystemExit(main())
