"""A training run's bookkeeping, one object every learner holds (PPO's Trainer, R2D2's QTrainer, the Ray trainer).

`RunBook` owns the run's folder (settings.yaml, progress.jsonl, last.pt, best.pt) and the checkpoint and validation
schedule; `RunBook.sitting` opens one sitting
(from ``train()`` until it stops): the SIGINT/SIGTERM handler, the progress bar and the TensorBoard writer, given
back when the sitting ends. `Curriculum` holds the stage and the success window with the promotion rule. A learner
calls them; none of them calls back into the learner except through the ``save`` function it hands over::

    book = RunBook(cfg, LOSS_KEYS, "update", progress=True)
    with book.sitting(global_step, rounds, max_rounds, max_seconds) as sitting:
        while global_step < cfg.total_steps:
            ...                                              # one round: an update or a chunk
            rounds += 1
            sitting.log(row, global_step)                    # progress.jsonl, TensorBoard
            sitting.advance(steps, sps=f"{sps:.0f}")         # the progress bar
            if sitting.round_done(rounds, global_step, save):
                break                                        # checkpointed: a budget or a signal ended it
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np

from robonav import __version__
from robonav.atomic import atomic_path
from robonav.settings import to_dict, write_settings
from robonav.sim.config import MazeConfig
from robonav.train.config import RunConfig

__all__ = ["Curriculum", "RunBook", "Sitting", "StopOnSignal", "observation_spec", "policy_meta", "stage_config"]


def stage_config(cfg: RunConfig, stage: int) -> MazeConfig:
    """The maze settings of curriculum stage ``stage``: its width range, for width and height alike."""
    lo, hi = cfg.curriculum.stages[stage]
    return dataclasses.replace(cfg.sim.maze, width=(lo, hi), height=(lo, hi))


def policy_meta(cfg: RunConfig, obs_dim: int, obs_spec: dict | None) -> dict[str, Any]:
    """What deployment needs to rebuild and run the policy without the trainer."""
    rc = cfg.sim.robot
    return {"policy": to_dict(cfg.policy), "obs_dim": obs_dim, "observation_spec": obs_spec,
            "action_limits": [rc.v_max, rc.omega_max], "control_period": cfg.sim.period,
            "observation": cfg.sim.observation, "code_version": __version__}


def observation_spec(cfg: RunConfig) -> dict | None:
    """The ObservationSpec (as a dict) the run's observer writes, saved with every checkpoint; None for the plain
    observation. Read from the settings, without building a Preprocessor."""
    from robonav.model.meta import observation_spec as spec_of

    sim = cfg.sim
    spec = spec_of(sim.observation, sim.preprocessor, sim.robot.v_max, sim.robot.omega_max)
    return None if spec is None else spec.to_dict()


def val_key(suite: str, condition: str, suites: int) -> str:
    """The name of one validation cell in the progress row (after ``val_success_``): the condition alone where
    there is one suite, else ``<suite>|<condition>``."""
    return condition if suites == 1 else f"{suite}|{condition}"


class StopOnSignal:
    """SIGINT/SIGTERM end the sitting after the current round, with a checkpoint; a second signal stops at once
    (KeyboardInterrupt). Installed from the main thread only (elsewhere ``stopped`` stays False)."""

    def __init__(self, round_name: str = "update") -> None:
        self.stopped = False
        self._round = round_name
        self._old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._set)

    def _set(self, signum: int, frame: FrameType | None) -> None:
        if self.stopped:  # a second signal: stop now
            raise KeyboardInterrupt
        self.stopped = True
        print(f"robonav train: stopping after this {self._round} (checkpointing); signal again to stop now",
              file=sys.stderr)

    def restore(self) -> None:
        """Give the signal handlers that were there before back."""
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


class Curriculum:
    """Maze sizes grow as the policy succeeds: the stage and the window of recent episode successes."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.stage = 0
        self.stage_start = 0  # global step at which the current stage began
        self.successes: deque[float] = deque(maxlen=cfg.curriculum.window)

    def record(self, successes: Iterable[float]) -> None:
        """Add finished episodes' successes (1.0 or 0.0) to the window."""
        self.successes.extend(successes)

    @property
    def success_rate(self) -> float:
        """Mean success over the window (0.0 while it is empty)."""
        return float(np.mean(self.successes)) if self.successes else 0.0

    def maze(self) -> MazeConfig:
        """The maze settings of the current stage."""
        return stage_config(self.cfg, self.stage)

    def promote(self, global_step: int) -> bool:
        """Move to the next stage when the full window reaches ``promote_success``, or when the stage has had
        ``stage_steps`` steps (if set); the window starts over. True when it moved, so the learner gives its envs
        `maze()`."""
        cc = self.cfg.curriculum
        if self.stage + 1 >= len(cc.stages):
            return False
        earned = len(self.successes) == cc.window and np.mean(self.successes) >= cc.promote_success
        served = cc.stage_steps > 0 and global_step - self.stage_start >= cc.stage_steps
        if not (earned or served):
            return False
        self.stage += 1
        self.stage_start = global_step
        self.successes.clear()
        why = "success" if earned else f"{cc.stage_steps} steps in the stage"
        print(f"curriculum: stage {self.stage} {cc.stages[self.stage]} at step {global_step} ({why})",
              file=sys.stderr)
        return True

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: ``stage``, ``successes`` and ``stage_start``."""
        return {"stage": self.stage, "successes": list(self.successes), "stage_start": self.stage_start}

    def load(self, stage: int, successes: Iterable[float], stage_start: int = 0) -> None:
        """Continue from a checkpoint's `state()` (one written before stage_start was kept: the stage counts
        from step 0)."""
        self.stage = int(stage)
        self.stage_start = int(stage_start)
        self.successes.clear()
        self.successes.extend(successes)


class RunBook:
    """A run's folder (<out>/<run>/), its progress.jsonl and its checkpoint schedule; `sitting` opens a sitting."""

    def __init__(self, cfg: RunConfig, loss_keys: tuple[str, ...], round_name: str, progress: bool = True) -> None:
        """``loss_keys``: row keys TensorBoard groups under losses/ (the rest under charts/); ``round_name``:
        'update' or 'chunk', the stem of the kept numbered checkpoints; ``progress``: show a progress bar."""
        self.cfg, self.loss_keys, self.round_name, self.progress = cfg, loss_keys, round_name, progress
        self.dir = Path(cfg.out) / cfg.run

    @property
    def last(self) -> Path:
        """The newest checkpoint, <dir>/last.pt (what --resume reads)."""
        return self.dir / "last.pt"

    @property
    def best(self) -> Path:
        """The checkpoint of the best validation success so far, <dir>/best.pt (train.eval_every > 0)."""
        return self.dir / "best.pt"

    def best_success(self) -> float | None:
        """val_success in best.pt's meta (None without best.pt): what a later evaluation must beat."""
        if not self.best.is_file():
            return None
        from robonav.policy.checkpoint import load_checkpoint

        return float(load_checkpoint(self.best)["meta"]["val_success"])

    def validate(self, done: int, global_step: int) -> dict[str, float]:
        """Evaluate last.pt greedily on each validation list (train.eval_suites, eval_episodes each, seed 0) under
        each of train.eval_conditions as ``robonav eval`` would; copy it to best.pt (atomically, with the round and
        val_success, the mean over the cells, in its meta) when it beats best.pt. Returns the progress row."""
        import torch

        from robonav.eval.conditions import apply_conditions
        from robonav.eval.episodes import make_episodes
        from robonav.eval.metrics import summarize
        from robonav.eval.policies import resolve_policy
        from robonav.eval.runner import run_episodes
        from robonav.policy.checkpoint import load_checkpoint, save_checkpoint

        cfg = self.cfg
        each: dict[str, float] = {}
        with torch.random.fork_rng(devices=[]):  # building the policy draws from torch's stream: not the run's
            resolved = resolve_policy(str(self.last))
            for suite in cfg.eval_suites:
                episodes = make_episodes(suite, cfg.eval_episodes, 0)
                for name in cfg.eval_conditions:
                    sim = apply_conditions(resolved.sim_config, [name])
                    results = run_episodes(resolved.factory, episodes, sim, num_envs=min(8, len(episodes)))
                    each[val_key(suite, name, len(cfg.eval_suites))] = float(summarize(results)["success_rate"])
        success = float(np.mean(list(each.values())))
        best = self.best_success()
        if best is None or success > best:
            ck = load_checkpoint(self.last)
            meta = {**ck["meta"], "best_round": done, "val_success": success, "val_suites": list(cfg.eval_suites),
                    "val_episodes": cfg.eval_episodes, "val_conditions": list(cfg.eval_conditions)}
            save_checkpoint(self.best, ck["model"], meta, ck["optimizer"])
            best = success
        row = {"global_step": global_step, self.round_name: done, "val_success": success, "val_best": best}
        if len(each) > 1:
            row.update({f"val_success_{key}": value for key, value in each.items()})
        return row

    def write_row(self, row: dict[str, float]) -> None:
        """Append one row to progress.jsonl."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "progress.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def write_settings(self) -> Path:
        """The run's resolved settings (launch file, --set and flags applied) as <dir>/settings.yaml, atomically: a
        launch file whose ``train:`` section loads back into the same config."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return write_settings(self.dir / "settings.yaml", {"train": self.cfg})

    def keep(self, done: int) -> Path:
        """Copy last.pt to <round_name>-NNNNNN.pt (atomically), a numbered checkpoint that stays."""
        kept = self.dir / f"{self.round_name}-{done:06d}.pt"
        with atomic_path(kept) as tmp:
            shutil.copyfile(self.last, tmp)
        return kept

    def sitting(self, global_step: int, first_round: int, max_rounds: int | None = None,
                max_seconds: float | None = None) -> Sitting:
        """Open a sitting at ``global_step``, after round ``first_round``: signal handler, progress bar, TensorBoard
        writer (use it with ``with``). It ends, with a checkpoint, after ``max_rounds`` rounds or ``max_seconds``
        of wall time (None: no such budget) or a signal."""
        return Sitting(self, global_step, first_round, max_rounds, max_seconds)


class Sitting:
    """One sitting of a run: logs rows, advances the bar, checkpoints when due and says when to stop."""

    def __init__(self, book: RunBook, global_step: int, first_round: int, max_rounds: int | None,
                 max_seconds: float | None) -> None:
        self.book, self.first_round, self.max_rounds, self.max_seconds = book, first_round, max_rounds, max_seconds
        self.start = time.perf_counter()
        book.write_settings()
        self.signal = StopOnSignal(book.round_name)
        self.writer = _tensorboard(book.dir)
        self.bar = None
        if book.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=book.cfg.total_steps, initial=global_step, unit="step", file=sys.stderr,
                            dynamic_ncols=True)

    def log(self, row: dict[str, float], global_step: int) -> None:
        """One row to progress.jsonl and each scalar to TensorBoard (losses/ or charts/) at ``global_step``."""
        self.book.write_row(row)
        if self.writer is not None:
            for k, v in row.items():
                self.writer.add_scalar(f"{'losses' if k in self.book.loss_keys else 'charts'}/{k}", v, global_step)

    def advance(self, steps: int, **postfix: Any) -> None:
        """Move the progress bar by ``steps`` environment steps and show ``postfix``."""
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix(**postfix)

    def round_done(self, done: int, global_step: int, save: Callable[[], Path]) -> bool:
        """After round ``done`` of the run: ``save()`` when a checkpoint is due (every checkpoint_every rounds, at
        total_steps, when stopping, with a kept numbered copy every keep_every rounds, and before a validation
        every eval_every rounds, which then may update best.pt); True when the sitting should stop (its round or
        time budget spent, or a signal)."""
        cfg = self.book.cfg
        stop = (self.max_rounds is not None and done - self.first_round >= self.max_rounds) or (
            self.max_seconds is not None and time.perf_counter() - self.start >= self.max_seconds
        ) or self.signal.stopped
        keep = cfg.keep_every > 0 and done % cfg.keep_every == 0
        evaluate = cfg.eval_every > 0 and done % cfg.eval_every == 0
        if done % cfg.checkpoint_every == 0 or global_step >= cfg.total_steps or stop or keep or evaluate:
            save()
        if keep:
            self.book.keep(done)
        if evaluate:
            self.log(self.book.validate(done, global_step), global_step)
        return stop

    def close(self) -> None:
        """Give the signal handlers back and close the progress bar and the TensorBoard writer."""
        self.signal.restore()
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> Sitting:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _tensorboard(folder: Path) -> Any:
    """A TensorBoard SummaryWriter in <folder>/tb, or None without tensorboard (progress.jsonl is always written)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is in the [train] extra
        return None
    return SummaryWriter(str(folder / "tb"))
