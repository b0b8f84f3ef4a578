"""Evaluation during training: best.pt holds the best validation success so far and survives a resume; the run
folder's settings.yaml loads back into the run's config; a judged suite is refused."""

from __future__ import annotations

import json

import pytest

from robonav.policy.actor_critic import PolicyConfig
from robonav.policy.checkpoint import load_checkpoint, save_checkpoint
from robonav.settings import load_settings
from robonav.sim.config import MazeConfig, RandomizationConfig, SimConfig
from robonav.train.config import CurriculumConfig, PPOTrainConfig, TrainConfig, TrainConfigError
from robonav.train.ppo import PPOConfig
from robonav.train.trainer import Trainer

STEPS = 2 * 16  # env steps per update


def _cfg(tmp_path, updates: int, **eval_settings) -> PPOTrainConfig:
    sim = SimConfig(observation="plain", randomization=RandomizationConfig(enabled=True),
                    maze=MazeConfig(width=(3, 3)))
    return PPOTrainConfig(run="r", out=str(tmp_path), total_steps=STEPS * updates, workers=0, seed=3,
                          checkpoint_every=10, sim=sim, policy=PolicyConfig(encoder=(16,), hidden=8),
                          ppo=PPOConfig(num_envs=2, steps=16, seq_len=8, epochs=1, minibatches=1),
                          curriculum=CurriculumConfig(stages=((3, 3),)), **eval_settings)


def _val_rows(run) -> list[dict]:
    rows = [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    return [r for r in rows if "val_success" in r]


@pytest.mark.slow
def test_best_holds_the_best_val_success_and_survives_a_resume(tmp_path, one_torch_thread):
    pytest.importorskip("pybullet")
    cfg = _cfg(tmp_path, 4, eval_every=2, eval_suites=("val-3x3",), eval_episodes=2)
    run = tmp_path / "r"
    first = Trainer(cfg, progress=False)
    first.train(max_updates=2)
    first.close()
    rows = _val_rows(run)
    assert [r["update"] for r in rows] == [2]
    meta = load_checkpoint(run / "best.pt")["meta"]
    assert meta["best_round"] == 2 and meta["val_success"] == rows[0]["val_success"]
    assert meta["val_suites"] == ["val-3x3"] and meta["val_episodes"] == 2

    # A best.pt no policy can beat (success 2 > 1): the resumed run must keep it, not overwrite it.
    ck = load_checkpoint(run / "best.pt")
    save_checkpoint(run / "best.pt", ck["model"], {**ck["meta"], "val_success": 2.0}, None)
    resumed = Trainer(cfg, resume=True, progress=False)
    resumed.train()
    resumed.close()
    rows = _val_rows(run)
    assert [r["update"] for r in rows] == [2, 4]
    assert rows[1]["val_best"] == 2.0
    meta = load_checkpoint(run / "best.pt")["meta"]
    assert meta["best_round"] == 2 and meta["val_success"] == 2.0

    # Now a beatable one (-1): the next evaluation replaces it with update 4's.
    save_checkpoint(run / "best.pt", ck["model"], {**ck["meta"], "val_success": -1.0}, None)
    again = Trainer(cfg, resume=True, progress=False)
    assert again.book.validate(4, 4 * STEPS)["val_best"] >= 0.0
    again.close()
    meta = load_checkpoint(run / "best.pt")["meta"]
    assert meta["best_round"] == 4 and 0.0 <= meta["val_success"] <= 1.0

    # settings.yaml beside them: the run's config, loaded back as `robonav train` loads a launch file.
    assert load_settings(TrainConfig, run / "settings.yaml", section="train") == cfg


def test_settings_yaml_loads_back_into_the_same_config(tmp_path):
    from robonav.train.run import RunBook

    cfg = _cfg(tmp_path, 4, eval_every=3, eval_suites=("val-5x5",), eval_episodes=7)
    path = RunBook(cfg, (), "update", progress=False).write_settings()
    assert path == tmp_path / "r" / "settings.yaml"
    assert load_settings(TrainConfig, path, section="train") == cfg


@pytest.mark.slow
def test_validation_under_several_conditions_keeps_their_mean(tmp_path, one_torch_thread):
    pytest.importorskip("pybullet")
    cfg = _cfg(tmp_path, 2, eval_every=2, eval_suites=("val-3x3",), eval_episodes=2,
               eval_conditions=("nominal", "noisy"))
    trainer = Trainer(cfg, progress=False)
    trainer.train()
    trainer.close()
    (row,) = _val_rows(tmp_path / "r")
    assert row["val_success"] == pytest.approx((row["val_success_nominal"] + row["val_success_noisy"]) / 2)
    meta = load_checkpoint(tmp_path / "r" / "best.pt")["meta"]
    assert meta["val_conditions"] == ["nominal", "noisy"] and meta["val_success"] == row["val_success"]


@pytest.mark.slow
def test_validation_over_several_suites_keeps_the_mean_of_every_cell(tmp_path, one_torch_thread):
    pytest.importorskip("pybullet")
    cfg = _cfg(tmp_path, 2, eval_every=2, eval_suites=("val-3x3", "val-3x3-c0.8"), eval_episodes=2,
               eval_conditions=("nominal", "noisy"))
    trainer = Trainer(cfg, progress=False)
    trainer.train()
    trainer.close()
    (row,) = _val_rows(tmp_path / "r")
    cells = [f"val_success_{s}|{c}" for s in ("val-3x3", "val-3x3-c0.8") for c in ("nominal", "noisy")]
    assert sorted(k for k in row if k.startswith("val_success_")) == sorted(cells)
    assert row["val_success"] == pytest.approx(sum(row[k] for k in cells) / 4)
    assert load_checkpoint(tmp_path / "r" / "best.pt")["meta"]["val_suites"] == ["val-3x3", "val-3x3-c0.8"]


def test_an_empty_validation_suite_list_is_refused(tmp_path):
    with pytest.raises(TrainConfigError, match=r"train.eval_suites is empty"):
        _cfg(tmp_path, 1, eval_suites=())


def test_an_unknown_validation_condition_is_refused(tmp_path):
    with pytest.raises(TrainConfigError, match=r"train.eval_conditions: unknown condition 'foggy'; accepted: nominal"):
        _cfg(tmp_path, 1, eval_conditions=("foggy",))


@pytest.mark.parametrize("suite", ["test", "hand", "test-9x9", "train"])
def test_a_judged_or_training_suite_is_refused(tmp_path, suite):
    with pytest.raises(TrainConfigError, match=f"train.eval_suites: '{suite}' is not a validation suite"):
        _cfg(tmp_path, 1, eval_suites=("val", suite))


@pytest.mark.slow
def test_r2d2_keeps_best_pt_through_the_same_run_book(tmp_path, one_torch_thread):
    pytest.importorskip("pybullet")
    from robonav.train.config import R2D2TrainConfig
    from robonav.train.q_trainer import QTrainer
    from robonav.train.r2d2.learner import R2D2Config

    chunk = 32
    r2d2 = R2D2Config(num_envs=2, chunk_steps=chunk, seq_len=8, overlap=4, burn_in=4, n_step=3, batch=4, capacity=64,
                      warmup_steps=32, target_every=5, replay_ratio=2.0, lr=1e-3, adam_eps=1e-6)
    cfg = R2D2TrainConfig(run="q", out=str(tmp_path), total_steps=2 * chunk, workers=0, seed=5, checkpoint_every=10,
                          keep_every=0, sim=SimConfig(observation="plain", maze=MazeConfig(width=(3, 3))),
                          policy=PolicyConfig(encoder=(16,), hidden=8), r2d2=r2d2,
                          curriculum=CurriculumConfig(stages=((3, 3),)), eval_every=1, eval_suites=("val-3x3",),
                          eval_episodes=2)
    q = QTrainer(cfg, progress=False)
    q.train()
    q.close()
    rows = _val_rows(tmp_path / "q")
    assert [r["chunk"] for r in rows] == [1, 2]
    meta = load_checkpoint(tmp_path / "q" / "best.pt")["meta"]
    assert meta["algo"] == "r2d2" and meta["val_success"] == max(r["val_success"] for r in rows)
    assert meta["best_round"] == next(r["chunk"] for r in rows if r["val_success"] == meta["val_success"])
    assert load_settings(TrainConfig, tmp_path / "q" / "settings.yaml", section="train") == cfg
