"""The run bookkeeping every learner holds (robonav.train.run) and the per-learner settings types."""

from __future__ import annotations

import ast
import json
import os
import signal
from pathlib import Path

import pytest

from robonav.settings import SettingsError, from_dict, load_settings, to_dict
from robonav.train.config import (
    CurriculumConfig,
    PPOTrainConfig,
    R2D2TrainConfig,
    TrainConfig,
    TrainConfigError,
    saved_config,
    train_config,
)
from robonav.train.imitation import ImitationConfig
from robonav.train.run import Curriculum, RunBook, StopOnSignal


def _book(tmp_path: Path, **fields) -> RunBook:
    cfg = PPOTrainConfig(out=str(tmp_path), run="r", total_steps=1000, **fields)
    return RunBook(cfg, ("policy_loss",), "update", progress=False)


def test_round_done_saves_on_schedule_keeps_numbered_copies_and_stops_on_the_round_budget(tmp_path):
    book = _book(tmp_path, checkpoint_every=3, keep_every=4)
    saved: list[int] = []
    done = 0

    def save() -> Path:
        book.dir.mkdir(parents=True, exist_ok=True)
        book.last.write_text(f"after round {done}")
        saved.append(done)
        return book.last

    stops = []
    with book.sitting(global_step=0, first_round=2, max_rounds=5) as sitting:  # a resumed run: rounds 3 to 7
        for done in range(3, 8):
            stops.append(sitting.round_done(done, global_step=10 * done, save=save))
    # checkpoint_every 3 -> rounds 3 and 6; keep_every 4 -> round 4 (saved, then copied); round 7 = 2 + 5: stop
    assert stops == [False, False, False, False, True]
    assert saved == [3, 4, 6, 7]
    assert sorted(p.name for p in book.dir.glob("update-*.pt")) == ["update-000004.pt"]
    assert (book.dir / "update-000004.pt").read_text() == "after round 4"


def test_round_done_saves_at_total_steps(tmp_path):
    book = _book(tmp_path, checkpoint_every=100, keep_every=0)
    saved = []
    with book.sitting(0, 0) as sitting:
        assert not sitting.round_done(1, 999, lambda: saved.append(1) or book.last)
        assert not sitting.round_done(2, 1000, lambda: saved.append(2) or book.last)  # the loop ends it there
    assert saved == [2]


def test_log_appends_rows_to_progress_jsonl(tmp_path):
    book = _book(tmp_path)
    with book.sitting(0, 0) as sitting:
        sitting.log({"global_step": 10.0, "policy_loss": 0.5}, 10)
        sitting.log({"global_step": 20.0, "policy_loss": 0.25}, 20)
    rows = [json.loads(line) for line in (book.dir / "progress.jsonl").read_text().splitlines()]
    assert rows == [{"global_step": 10.0, "policy_loss": 0.5}, {"global_step": 20.0, "policy_loss": 0.25}]


def test_a_signal_stops_the_sitting_after_the_round_and_a_second_one_at_once(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    book = _book(tmp_path, checkpoint_every=100, keep_every=0)
    saved = []
    with book.sitting(0, 0) as sitting:
        assert not sitting.round_done(1, 1, lambda: saved.append(1) or book.last)
        os.kill(os.getpid(), signal.SIGTERM)
        assert sitting.round_done(2, 2, lambda: saved.append(2) or book.last)  # stops, with a checkpoint
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert saved == [2]
    assert signal.getsignal(signal.SIGTERM) is before  # handlers given back when the sitting ends


def test_stop_on_signal_gives_the_old_handlers_back():
    before = signal.getsignal(signal.SIGINT)
    stop = StopOnSignal("chunk")
    assert signal.getsignal(signal.SIGINT) != before and not stop.stopped
    stop.restore()
    assert signal.getsignal(signal.SIGINT) is before


def test_curriculum_promotes_on_a_full_window_at_the_threshold_and_starts_the_window_over():
    cfg = PPOTrainConfig(curriculum=CurriculumConfig(stages=((3, 3), (5, 5), (7, 7)), promote_success=0.75,
                                                     window=4))
    cur = Curriculum(cfg)
    cur.record([1.0, 1.0, 1.0])
    assert not cur.promote(100)  # 3 of a window of 4: not full yet
    cur.record([0.0])
    assert cur.success_rate == 0.75 and cur.promote(200)  # 3/4 = 0.75 reaches the threshold
    assert cur.stage == 1 and list(cur.successes) == [] and cur.maze().width == (5, 5) == cur.maze().height
    cur.record([1.0, 0.0, 1.0, 0.0, 1.0])  # the window keeps the last 4: 0, 1, 0, 1 -> 0.5
    assert cur.success_rate == 0.5 and not cur.promote(300)
    cur.load(**cur.state())
    assert cur.state() == {"stage": 1, "successes": [0.0, 1.0, 0.0, 1.0], "stage_start": 200}
    cur.load(2, [1.0] * 4)
    assert not cur.promote(400) and cur.stage == 2  # the last stage stays


def test_a_stage_cap_moves_on_after_its_steps_whatever_the_success():
    cfg = PPOTrainConfig(curriculum=CurriculumConfig(stages=((3, 3), (5, 5), (7, 7)), promote_success=0.9,
                                                     window=4, stage_steps=1000))
    cur = Curriculum(cfg)
    cur.record([0.0] * 4)
    assert not cur.promote(999) and cur.promote(1000) and cur.stage == 1  # served 1000 steps at 0 % success
    cur.record([1.0] * 4)
    assert cur.promote(1200) and cur.stage == 2  # earned: the window counts as before
    assert cur.state()["stage_start"] == 1200
    old = Curriculum(cfg)
    old.load(1, [])  # a checkpoint from before stage_start was kept: the stage counts from step 0
    assert not old.promote(999) and old.promote(1000) and old.stage == 2


# -- settings: one type per learner, the launch files unchanged ------------------------------------------------

def test_the_launch_files_load_into_their_learners_settings():
    assert type(load_settings(TrainConfig, "train", section="train")) is PPOTrainConfig
    q = load_settings(TrainConfig, "train_q", section="train")
    assert type(q) is R2D2TrainConfig and q.algo == "r2d2" and not hasattr(q, "ppo") and not hasattr(q, "ray")
    assert not hasattr(load_settings(TrainConfig, "train", section="train"), "r2d2")


def test_a_learner_refuses_the_other_learners_sections():
    with pytest.raises(SettingsError, match=r"unknown key\(s\) \['ray'\]"):
        from_dict(TrainConfig, {"algo": "r2d2", "ray": {"workers": 2}})
    with pytest.raises(SettingsError, match=r"unknown key\(s\) \['r2d2'\]"):
        from_dict(TrainConfig, {"r2d2": {"num_envs": 4}})
    with pytest.raises(TrainConfigError, match="the imitation warm start is PPO's"):
        train_config(algo="r2d2", imitation=ImitationConfig(updates=3))
    with pytest.raises(TrainConfigError, match=r"train\.algo is 'ppo', but these are the settings of 'r2d2'"):
        R2D2TrainConfig(algo="ppo")  # type: ignore[arg-type]


def test_a_checkpoint_config_from_before_the_split_still_resumes():
    """Checkpoints written before the split hold one object with every learner's sections."""
    ppo = to_dict(PPOTrainConfig(run="old"))
    q = to_dict(R2D2TrainConfig(run="old-q"))
    old_ppo = {**ppo, "r2d2": q["r2d2"], "q": q["q"]}
    old_q = {**q, "ppo": ppo["ppo"], "ray": ppo["ray"]}
    assert saved_config(PPOTrainConfig, old_ppo, "old.pt:config") == PPOTrainConfig(run="old")
    assert saved_config(R2D2TrainConfig, old_q, "old-q.pt:config") == R2D2TrainConfig(run="old-q")
    with pytest.raises(SettingsError, match=r"unknown key\(s\) \['colour'\]"):
        saved_config(PPOTrainConfig, {**old_ppo, "colour": 1}, "x")


def test_no_training_module_imports_a_private_name_from_another_module():
    folder = Path(__file__).resolve().parents[2] / "robonav" / "train"
    private = []
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("robonav"):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.endswith("__")]
    assert private == []
