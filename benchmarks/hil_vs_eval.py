"""Does the wire change navigation? The same policy on the same episodes, closed loop in process (`robonav eval`)
and over UDP with the runtime and the sim-robot as two processes (`robonav hil`), paired.

    python benchmarks/hil_vs_eval.py --episodes 30                # default policy, Numba backend, test, 8x clock

Prints success and SPL of both, the discordant episodes and McNemar's exact p (robonav.eval.metrics). The HIL
side runs at ``--clock-factor`` times real time; at 1x the loop's period is the model's 0.1 s either way.
Results: results/hil/hil_vs_eval.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robonav.eval.episodes import make_episodes
from robonav.eval.metrics import EpisodeResult, paired_comparison
from robonav.eval.policies import resolve_policy
from robonav.eval.runner import run_episodes
from robonav.hil.runner import HilSettings, run_hil
from robonav.runtime.run import model_path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--backend", default="numba")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--suite", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock-factor", type=float, default=8.0)
    p.add_argument("--out", default="results/hil")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    model = model_path(args.model).resolve()
    t = time.perf_counter()
    hil = run_hil(HilSettings(episodes=args.episodes, suite=args.suite, seed=args.seed, clock="scaled",
                              clock_factor=args.clock_factor, out=str(Path(args.out) / "hil_vs_eval")), "hil",
                  [f"run.model={model}", f"run.backend={args.backend}"])
    hil_s = time.perf_counter() - t
    t = time.perf_counter()
    resolved = resolve_policy(str(model))
    factory, cfg = resolved.factory, resolved.sim_config
    ev = run_episodes(factory, make_episodes(args.suite, args.episodes, args.seed), cfg, num_envs=4)
    eval_s = time.perf_counter() - t
    hil_results = [EpisodeResult(**r) for r in hil["results"]]
    cmp = paired_comparison(hil_results, ev)
    result = {"model": str(model), "backend": args.backend, "suite": args.suite, "seed": args.seed,
              "clock_factor": args.clock_factor, "hil_s": round(hil_s, 1), "eval_s": round(eval_s, 1),
              "hil_verdict": hil["verdict"]["passed"], **cmp}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hil_vs_eval.json").write_text(json.dumps(result, indent=1))
    print(f"{'':<12}{'success':>9}{'SPL':>8}")
    print(f"{'HIL (UDP)':<12}{cmp['success_rate_a']:>9.3f}{cmp['spl_a']:>8.3f}   {hil_s:.0f} s at "
          f"{args.clock_factor:g}x, backend {args.backend}, two processes")
    print(f"{'eval':<12}{cmp['success_rate_b']:>9.3f}{cmp['spl_b']:>8.3f}   {eval_s:.0f} s, ONNX Runtime in process")
    print(f"{cmp['episodes']} paired {args.suite} episodes (seed {args.seed}): only HIL {cmp['only_a']}, only eval "
          f"{cmp['only_b']}, McNemar p {cmp['mcnemar_p']:.3g}; SPL diff {cmp['spl_diff']:+.3f} "
          f"{[round(x, 3) for x in cmp['spl_diff_ci95']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
