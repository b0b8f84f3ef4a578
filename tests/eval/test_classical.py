"""The classical baseline: it solves small mazes from frames alone, never reading the simulator's state."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.eval.classical import ClassicalConfig, ClassicalPolicy, _compose, _relative
from robonav.eval.episodes import make_episodes
from robonav.eval.metrics import summarize
from robonav.eval.runner import eval_config, run_episodes
from robonav.sensors.frame import SensorFrame
from robonav.sim.core import MazeSim
from robonav.sim.suites import suite_mazes


class Privileged:
    """Stands in for the simulator (and the observation): any attribute read is a privileged read and fails."""

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def __getattribute__(self, name: str) -> object:
        raise AssertionError(f"the classical planner read {object.__getattribute__(self, '_what')}.{name}")

    def __getitem__(self, key: object) -> object:
        raise AssertionError(f"the classical planner indexed {object.__getattribute__(self, '_what')}[{key!r}]")

    def __array__(self, *args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError(f"the classical planner converted {object.__getattribute__(self, '_what')} to an array")


class FramesOnly:
    """Runs ClassicalPolicy with only the raw frames: the simulator and the observations are `Privileged`."""

    def __init__(self, num_envs: int) -> None:
        self.inner = ClassicalPolicy(num_envs)

    def reset(self, env_ids: np.ndarray) -> None:
        self.inner.reset(env_ids)

    def act(self, obs: np.ndarray, frames: list[SensorFrame | None], sim: MazeSim) -> np.ndarray:
        return self.inner.act(Privileged("obs"), frames, Privileged("sim"))  # type: ignore[arg-type]


def test_the_guard_bites() -> None:
    sim = Privileged("sim")
    for read in (lambda: sim.pose, lambda: sim.goal_xy, lambda: sim[0], lambda: np.asarray(sim)):
        try:
            read()
        except AssertionError as e:
            assert "the classical planner" in str(e)
        else:
            raise AssertionError("Privileged let a read through")


def test_it_solves_small_mazes_from_frames_alone() -> None:
    episodes = make_episodes("val-5x5", 3, seed=0) + make_episodes("hand", 8, seed=0)[7:8]  # warehouse: 0.8 m aisles
    assert episodes[-1].maze.name == "warehouse"
    results = run_episodes(FramesOnly, episodes, eval_config(), num_envs=4)
    summary = summarize(results)
    assert [r.success for r in results] == [True] * 4, summary["per_maze"]
    assert summary["spl"] >= 0.6, summary["per_maze"]
    assert summary["collisions_per_episode"] == 0.0


def test_it_finds_its_way_out_of_a_u_trap() -> None:
    (trap,) = [m for m in suite_mazes("hand") if m.name == "u_trap"]
    from robonav.sim.episodes import EpisodeSpec

    (result,) = run_episodes(lambda n: ClassicalPolicy(n), [EpisodeSpec(trap, 3)], eval_config(), num_envs=1)
    assert result.success and result.spl > 0.5


def test_a_new_episode_id_resets_the_navigator_even_without_reset() -> None:
    sim = MazeSim(1, eval_config(), seed=0)
    episodes = make_episodes("val-3x3", 2, seed=0)
    sim.reset_env(0, episodes[0])
    policy = ClassicalPolicy(1, ClassicalConfig())
    nav = policy.navigators[0]
    for _ in range(30):
        sim.step(policy.act(sim.obs, sim.frames, None))
    assert nav.pre.step_count == 30 and np.hypot(*nav.pre.pose[:2]) > 0.1
    sim.reset_env(0, episodes[1])
    policy.act(sim.obs, sim.frames, None)  # no policy.reset(): the frame's episode id changed
    assert nav.pre.step_count == 1 and np.allclose(nav.pre.pose, 0.0)
    assert nav.marks == [] and nav.episode == sim.frames[0].episode_id  # type: ignore[union-attr]
    assert policy.act(sim.obs, [None], None).tolist() == [[0.0, 0.0]]  # no frame, no motion
    sim.close()


def test_the_baseline_needs_no_simulator() -> None:
    # numpy and numba only, like the on-robot floors: `--policy classical` can drive HIL or a robot.
    code = ("import sys, robonav.eval.classical; "
            "print([m for m in ('pybullet', 'gymnasium', 'torch', 'robonav.sim') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@settings(max_examples=50, deadline=None)
@given(st.tuples(*[st.floats(-20, 20)] * 2, st.floats(-math.pi, math.pi)),
       st.tuples(*[st.floats(-20, 20)] * 2, st.floats(-math.pi, math.pi)))
def test_relative_undoes_compose(a: tuple[float, float, float], b: tuple[float, float, float]) -> None:
    pa, pb = np.array(a), np.array(b)
    back = _compose(pa, _relative(pa, pb))
    assert np.allclose(back[:2], pb[:2], atol=1e-9)
    assert abs(math.remainder(back[2] - pb[2], 2 * math.pi)) < 1e-9
