"""Recurrent PPO with Ray rollout workers: the same update as the local learner for the same data, and a worker
killed mid-rollout is survived with only complete rollouts in the update."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray", reason="ray is not installed: pip install robonav[dist]")

from robonav.policy.actor_critic import PolicyConfig  # noqa: E402
from robonav.sim.config import MazeConfig, RandomizationConfig, SimConfig  # noqa: E402
from robonav.train.config import CurriculumConfig, RayConfig, PPOTrainConfig  # noqa: E402
from robonav.train.distributed import DistributedTrainer, RolloutWorker, concat_rollouts, worker_seeds  # noqa: E402
from robonav.train.ppo import PPOConfig  # noqa: E402
from robonav.train.trainer import Trainer, stage_config  # noqa: E402

STEPS, ENVS = 16, 4


def _cfg(tmp_path: Path, run: str, workers: int) -> PPOTrainConfig:
    sim = SimConfig(observation="plain", randomization=RandomizationConfig(enabled=True),
                    maze=MazeConfig(width=(3, 3)))
    return PPOTrainConfig(run=run, out=str(tmp_path), total_steps=10**6, workers=0, seed=3, checkpoint_every=100,
                       keep_every=0, sim=sim, policy=PolicyConfig(encoder=(16,), hidden=8),
                       ppo=PPOConfig(num_envs=ENVS, steps=STEPS, seq_len=8, epochs=2, minibatches=2),
                       curriculum=CurriculumConfig(stages=((3, 3),)), ray=RayConfig(address="local", workers=workers))


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: {k} differs, max |diff| {(a[k] - b[k]).abs().max().item()}"


def _learn_from_local_workers(tmp_path: Path, cfg: PPOTrainConfig, workers: list[int]) -> dict[str, torch.Tensor]:
    """The first update made in this process from RolloutWorkers ``workers`` (first incarnations) run here."""
    local = Trainer(dataclasses.replace(cfg, ray=RayConfig(), run=cfg.run + "-ref"), progress=False)
    weights = {k: v.numpy() for k, v in local.model.state_dict().items()}
    parts = []
    for w in workers:
        worker = RolloutWorker(cfg, w, 0, stage_config(cfg, 0), teacher=False)
        worker.restart(True, None)
        parts.append(worker.rollout(weights, False, 0.0))
        worker.collector.envs.close()
    batch, last_value = concat_rollouts(parts, cfg.ppo.seq_len)
    local.global_step = batch.steps * batch.num_envs  # as the loop counts before the update (lr annealing)
    local.learn(batch, last_value)
    out = _params(local.model)
    local.close()
    return out


def test_one_ray_worker_makes_the_local_trainers_first_update(tmp_path, ray_cluster):
    """One worker steps the envs a local run steps (seed + 0); with the worker's sampling stream given to the
    local Collector, the whole first update is bitwise equal: rollout, transport, GAE, PPO epochs, normaliser."""
    cfg = _cfg(tmp_path, "one", 1)
    dist = DistributedTrainer(cfg, progress=False)
    try:
        dist.train(max_updates=1)
        p_dist = _params(dist.model)
    finally:
        dist.close()
    local = Trainer(dataclasses.replace(cfg, ray=RayConfig(), run="one-local"), progress=False)
    local.collector.generator = torch.Generator().manual_seed(worker_seeds(cfg.seed, 0, 0)[1])
    p_init = _params(local.model)
    local.train(max_updates=1)
    p_local = _params(local.model)
    local.close()
    _assert_equal(p_dist, p_local, "1 Ray worker vs the local trainer")
    assert any(not torch.equal(p_init[k], p_local[k]) for k in p_init), "the update must change the weights"


def test_two_ray_workers_join_their_rollouts_along_the_env_axis(tmp_path, ray_cluster):
    """Two workers: the learner's first update equals the one made here from the same two workers' rollouts,
    joined worker 0 then worker 1 (envs [0, 2) then [2, 4))."""
    cfg = _cfg(tmp_path, "two", 2)
    dist = DistributedTrainer(cfg, progress=False)
    try:
        row = dist.train(max_updates=1)
        p_dist = _params(dist.model)
    finally:
        dist.close()
    assert row["rollout_envs"] == ENVS and row["workers_lost"] == 0 and row["global_step"] == STEPS * ENVS
    _assert_equal(p_dist, _learn_from_local_workers(tmp_path, cfg, [0, 1]), "2 Ray workers vs their rollouts here")


class StallingWorker(RolloutWorker):
    """Worker 0's first incarnation stops in the middle of its first rollout (after 3 env steps), says so in a
    marker file, and waits there to be killed."""

    marker = ""

    def rollout(self, weights, imitating, beta):
        if self.worker == 0 and self.incarnation == 0:
            envs, step, count = self.collector.envs, self.collector.envs.step, [0]

            def stalling_step(actions):
                count[0] += 1
                if count[0] == 4:
                    Path(self.marker).write_text("stalled mid-rollout")
                    time.sleep(600)
                return step(actions)

            envs.step = stalling_step
        return super().rollout(weights, imitating, beta)


def test_a_worker_killed_mid_rollout_is_replaced_and_its_rollout_dropped(tmp_path, ray_cluster):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's actor class travels by value
    StallingWorker.marker = str(tmp_path / "stalled")
    cfg = _cfg(tmp_path, "kill", 2)
    dist = DistributedTrainer(cfg, progress=False, worker_cls=StallingWorker)
    victim = dist.pool.actors[0]

    def kill_when_stalled() -> None:
        deadline = time.monotonic() + 120
        while not Path(StallingWorker.marker).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ray.kill(victim)

    killer = threading.Thread(target=kill_when_stalled, daemon=True)
    killer.start()
    try:
        first = dist.train(max_updates=1)
        p_first = _params(dist.model)
        second = dist.train(max_updates=1)
        assert dist.pool.actors[0] != victim and dist.pool.restarts == [1, 0]
    finally:
        dist.close()
    killer.join(timeout=5)
    assert Path(StallingWorker.marker).read_text() == "stalled mid-rollout"
    # update 1 used worker 1's complete rollout only; update 2 has the replacement back in
    assert first["rollout_envs"] == ENVS // 2 and first["workers_lost"] == 1 and first["worker_restarts"] == 1
    assert first["global_step"] == STEPS * ENVS // 2
    assert second["rollout_envs"] == ENVS and second["workers_lost"] == 0
    rows = [json.loads(line) for line in (tmp_path / "kill" / "progress.jsonl").read_text().splitlines()]
    assert [r["rollout_envs"] for r in rows] == [ENVS // 2, ENVS]
    _assert_equal(p_first, _learn_from_local_workers(tmp_path, cfg, [1]), "the update after the loss")


def _cli(tmp_path: Path, run: str, *extra: str) -> dict:
    from robonav.cli import main

    sets = ["train.sim.observation=plain", "train.sim.maze.width=[3,3]", "train.sim.maze.height=[3,3]",
            "train.curriculum.stages=[[3,3]]", "train.policy.encoder=[16]", "train.policy.hidden=8",
            f"train.ppo.num_envs={ENVS}", f"train.ppo.steps={STEPS}", "train.ppo.seq_len=8", "train.ppo.epochs=2",
            "train.ppo.minibatches=2", "train.imitation.updates=0", "train.seed=5", f"train.out={tmp_path}",
            f"train.run={run}", f"train.total_steps={3 * STEPS * ENVS}", "train.checkpoint_every=1"]
    argv = ["train", "--launch", "train", "--ray", "local", "--ray-workers", "2", "--quiet"]
    for s in sets:
        argv += ["--set", s]
    assert main([*argv, *extra]) == 0
    from robonav.policy.checkpoint import load_checkpoint

    return load_checkpoint(tmp_path / run / "last.pt")


def test_cli_resume_keeps_the_workers(tmp_path, ray_cluster):
    """`robonav train --ray` stops after 2 updates and --resume makes the third, with the same two workers."""
    first = _cli(tmp_path, "split", "--updates", "2")
    split = _cli(tmp_path, "split", "--resume")
    assert (first["meta"]["updates"], split["meta"]["updates"]) == (2, 3)
    assert split["meta"]["ray_workers"] == 2 and split["meta"]["worker_restarts"] == [0, 0]


def test_resume_with_the_same_workers_continues_the_workers_streams(tmp_path, ray_cluster):
    """A resume with the same workers == the uninterrupted run with its episodes in flight restarted where the
    checkpoint was taken (the resume rule): the workers' sampling streams continue exactly."""
    full = DistributedTrainer(_cfg(tmp_path, "full", 2), progress=False)
    try:
        full.train(max_updates=2)
        full.restart_envs(full.envs.episodes_in_flight())
        full.train(max_updates=1)
        p_full = _params(full.model)
    finally:
        full.close()
    first = DistributedTrainer(_cfg(tmp_path, "split", 2), progress=False)
    try:
        first.train(max_updates=2)
    finally:
        first.close()
    resumed = DistributedTrainer(_cfg(tmp_path, "split", 2), resume=True, progress=False)
    try:
        assert resumed.updates == 2 and resumed.pool.restarts == [0, 0]
        resumed.train(max_updates=1)
        p_resumed = _params(resumed.model)
    finally:
        resumed.close()
    _assert_equal(p_full, p_resumed, "resumed vs uninterrupted")
