"""A hyper-parameter sweep with Ray Tune over launch-file settings: each trial is a robonav training run.

    python examples/tune_sweep.py --smoke                       # 2 CPUs, a few minutes: tiny nets, 3x3 mazes
    python examples/tune_sweep.py --address auto --samples 16 --minutes 60   # on a cluster (`ray start --head`)

A trial is ``robonav train --launch LAUNCH --set KEY=VALUE ...`` in-process: the sampled settings are --set
overrides (any `TrainConfig` field, e.g. ``train.ppo.lr``), its run folder is <out>/<trial id>/ (last.pt,
progress.jsonl, TensorBoard), and it reports after every update ``success_rate`` (over the curriculum window),
``stage``, ``global_step`` and the update's losses. ASHA stops trials that trail their peers at the same step, so
the budget goes to the promising settings. Trials run the local trainer with ``train.workers`` env processes
and reserve that many CPUs (at least one); a bigger trial (e.g. 32 envs over 4 processes) just asks for more.

To sweep more settings, add them to SPACE (names as in launch/train.yaml, with the ``train.`` prefix).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

SMOKE = [  # tiny and fast: a few updates of a small net on 3x3 mazes, in the learner's process
    "train.sim.observation=plain", "train.sim.maze.width=[3,3]", "train.sim.maze.height=[3,3]",
    "train.curriculum.stages=[[3,3]]", "train.curriculum.window=20", "train.policy.encoder=[32]",
    "train.policy.hidden=16", "train.ppo.num_envs=4", "train.ppo.steps=32", "train.ppo.seq_len=16",
    "train.ppo.epochs=2", "train.ppo.minibatches=2", "train.imitation.updates=0", "train.workers=0",
]


def space(smoke: bool) -> dict[str, Any]:
    """The sampled settings: --set keys -> Tune search domains."""
    from ray import tune

    return {
        "train.ppo.lr": tune.loguniform(3e-5, 1e-3),
        "train.ppo.ent_coef": tune.choice([0.0, 0.003, 0.01]),
        "train.ppo.clip": tune.choice([0.1, 0.2]) if not smoke else 0.2,
    }


def trial(config: dict[str, Any]) -> None:
    """One training run with the sampled settings; reports to Tune after every update."""
    from ray import tune

    from robonav.settings import load_settings
    from robonav.train.config import TrainConfig
    from robonav.train.trainer import Trainer

    ctx = tune.get_context()
    base, sampled = config["base"], {k: v for k, v in config.items() if k.startswith("train.")}
    overrides = [*config["overrides"], *(f"{k}={v}" for k, v in sampled.items()), f"train.out={config['out']}",
                 f"train.run={ctx.get_trial_id()}", f"train.total_steps={config['steps']}"]
    cfg = load_settings(TrainConfig, base, overrides, section="train")
    trainer = Trainer(cfg, progress=False)
    try:
        while trainer.global_step < cfg.total_steps:
            row = trainer.train(max_updates=1)
            tune.report({k: v for k, v in row.items() if isinstance(v, (int, float))})
    finally:
        trainer.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launch", default="train", help="launch file of every trial (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed overrides of every trial (repeatable)")
    p.add_argument("--address", default=None, help="Ray cluster ('auto' after `ray start`); default: a local one")
    p.add_argument("--samples", type=int, default=8, help="trials (default: %(default)s)")
    p.add_argument("--steps", type=int, default=2_000_000, help="env steps per trial at most (default: %(default)s)")
    p.add_argument("--out", default="runs/tune", help="folder of the trials' run folders (default: %(default)s)")
    p.add_argument("--smoke", action="store_true", help="tiny trials on 2 CPUs: 4 samples of 8 updates")
    args = p.parse_args()

    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    overrides = list(args.overrides)
    samples, steps = args.samples, args.steps
    if args.smoke:
        overrides = SMOKE + overrides
        samples, steps = 4, 8 * 4 * 32
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ray.init(address=args.address, **({} if args.address else {"include_dashboard": False}))
    try:
        from robonav.settings import load_settings
        from robonav.train.config import TrainConfig

        cpus = max(1, load_settings(TrainConfig, args.launch, overrides, section="train").workers)
        out = str(Path(args.out).resolve())
        param_space = {**space(args.smoke), "base": args.launch, "overrides": overrides, "out": out, "steps": steps}
        tuner = tune.Tuner(
            tune.with_resources(trial, {"cpu": cpus}),
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric="success_rate", mode="max", num_samples=samples,
                scheduler=ASHAScheduler(time_attr="global_step", grace_period=max(1, steps // 4), max_t=steps)),
            run_config=tune.RunConfig(name="robonav-sweep", storage_path=out, verbose=1),
        )
        results = tuner.fit()
        best = results.get_best_result()
        chosen = {k: v for k, v in best.config.items() if k.startswith("train.")}
        print(f"best of {len(results)} trials: success_rate {best.metrics['success_rate']:.3f} at step "
              f"{best.metrics['global_step']} with " + " ".join(f"--set {k}={v}" for k, v in chosen.items()))
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
