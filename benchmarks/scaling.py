"""Env steps/s of recurrent PPO: the local trainer beside 1 and 2 Ray rollout workers, in one run; and the bytes
that cross the network per update.

    python benchmarks/scaling.py                    # launch/train.yaml's recipe at 8 envs x 64 steps, 3 updates
    python benchmarks/scaling.py --envs 32 --steps 128 --updates 5

Every configuration trains the same launch file (imitation off, so every update is a PPO update) for one warm-up
update (actor start, first-touch costs) and then ``--updates`` timed updates; steps/s = env steps / (rollout +
learner time) of the timed updates, as the trainer's own steps_per_s counts them (checkpoints not counted).
The local trainer steps its envs in its own process (train.workers=0); Ray runs start a private local Ray
instance with 2 CPUs (one per worker; the learner is the driver process). torch runs one thread in the learner
and in each worker (OMP_NUM_THREADS=1).

Bytes per update (float32): the weights go out once as one object (`ray.put`): 4 x params (plus the observation
normaliser's statistics); each worker sends back its rollout: 4 x T x n x (D + 7) for obs, actions (2), logprobs,
values, rewards, dones, episode starts (+ 2 x 4 x T x n for teacher labels while imitating), the sequence-start
LSTM states 2 x 4 x (T / S) x L x n x H, and 4 x n bootstrap values; over all workers n sums to num_envs.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _cfg(args: argparse.Namespace, run: str, workers: int | None):
    from robonav.settings import load_settings
    from robonav.train.config import TrainConfig

    sets = [f"train.ppo.num_envs={args.envs}", f"train.ppo.steps={args.steps}", "train.imitation.updates=0",
            "train.workers=0", f"train.out={args.out}", f"train.run={run}", "train.checkpoint_every=100000",
            "train.keep_every=0", "train.threads=1"]
    if workers is not None:
        sets += ["train.ray.address=local", f"train.ray.workers={workers}"]
    return load_settings(TrainConfig, args.launch, sets, section="train")


def _measure(trainer, updates: int) -> tuple[float, float, float]:
    """(env steps/s, rollout s, update s) over ``updates`` updates after one warm-up update, from the trainer's
    own per-update timings (rollout + learner; the checkpoint each sitting ends with is not counted)."""
    trainer.train(max_updates=1)  # warm-up
    steps0 = trainer.global_step
    roll = learn = 0.0
    for _ in range(updates):
        row = trainer.train(max_updates=1)
        roll, learn = roll + row["rollout_s"], learn + row["update_s"]
    return (trainer.global_step - steps0) / (roll + learn), roll / updates, learn / updates


def _bytes(trainer) -> tuple[int, int, int]:
    """(pickled weights, one rollout batch from all workers, params) of a DistributedTrainer, measured."""
    import ray

    weights = {k: v.numpy() for k, v in trainer.model.state_dict().items()}
    w_bytes = len(pickle.dumps(weights, protocol=5))
    parts = trainer.pool.rollout(ray.put(weights), False, 0.0)
    r_bytes = sum(v.nbytes for p in parts for v in p.values() if hasattr(v, "nbytes"))
    params = sum(p.numel() for p in trainer.model.parameters())
    return w_bytes, r_bytes, params


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launch", default="train", help="launch file (default: %(default)s)")
    p.add_argument("--envs", type=int, default=8, help="ppo.num_envs (a multiple of 2)")
    p.add_argument("--steps", type=int, default=64, help="ppo.steps (a multiple of ppo.seq_len)")
    p.add_argument("--updates", type=int, default=3, help="timed updates per configuration")
    args = p.parse_args()
    args.out = tempfile.mkdtemp(prefix="robonav-scaling-")

    import ray
    import torch

    from robonav.train.distributed import DistributedTrainer
    from robonav.train.trainer import Trainer

    torch.set_num_threads(1)
    rows: list[tuple[str, tuple[float, float, float]]] = []
    local = Trainer(_cfg(args, "local", None), progress=False)
    rows.append(("local trainer (in-process envs)", _measure(local, args.updates)))
    obs_dim = local.obs_dim
    local.close()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        measured = None
        for workers in (1, 2):
            dist = DistributedTrainer(_cfg(args, f"ray{workers}", workers), progress=False)
            rows.append((f"Ray, {workers} rollout worker{'s' if workers > 1 else ''}", _measure(dist, args.updates)))
            if workers == 2:
                measured = _bytes(dist)
            dist.close()
    finally:
        ray.shutdown()
    cfg = _cfg(args, "x", None)
    ppo, pol = cfg.ppo, cfg.policy
    print(f"settings: {args.launch}.yaml, num_envs {ppo.num_envs}, steps {ppo.steps}, seq_len {ppo.seq_len}, "
          f"obs {obs_dim}, hidden {pol.hidden}, {args.updates} timed updates after 1 warm-up, torch threads 1 per "
          f"process, {os.cpu_count()} CPUs on this machine")
    base = rows[0][1][0]
    for name, (sps, roll, learn) in rows:
        print(f"  {name:<34} {sps:8.0f} env steps/s   x{sps / base:.2f} of local   (per update: rollout "
              f"{roll:.2f} s, learner {learn:.2f} s)")
    assert measured is not None
    w_bytes, r_bytes, params = measured
    t, n, s, h, lay = ppo.steps, ppo.num_envs, ppo.seq_len, pol.hidden, pol.layers
    formula_r = 4 * t * n * (obs_dim + 7) + 2 * 4 * (t // s) * lay * n * h + 4 * n
    print(f"bytes per update: weights {w_bytes:,} pickled (4 x {params:,} params = {4 * params:,} + normaliser), "
          f"rollouts {r_bytes:,} measured, formula 4*T*N*(D+7) + 8*(T/S)*L*N*H + 4*N = {formula_r:,}")
    d_t, d_n, d_d, d_h = 128, 32, 651, 128
    print(f"at the launch file's 32 envs x 128 steps (obs 651, hidden 128, 430k params): weights ~{4 * 430_000:,} B "
          f"out, rollouts {4 * d_t * d_n * (d_d + 7) + 8 * (d_t // 32) * d_n * d_h + 4 * d_n:,} B back per update")
    return 0


if __name__ == "__main__":
    sys.exit(main())
