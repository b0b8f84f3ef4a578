"""The guided baseline: pure pursuit on the guidance block only, numbers by hand, and a run that reaches goals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robonav.eval.episodes import make_episodes
from robonav.eval.guided import TURN_GAIN, GuidedPolicy, guided_setup, shipped_spec
from robonav.eval.runner import run_episodes


def block(near: float, far: float, length: float, found: float = 1.0) -> np.ndarray:
    """A guidance block: sin, cos of the near and far bearings, path length / 40 m, found."""
    return np.array([math.sin(near), math.cos(near), math.sin(far), math.cos(far), length / 40.0, found])


def test_pure_pursuit_numbers_by_hand() -> None:
    p = GuidedPolicy(1)
    assert p.lookahead == 0.6
    # Near point 0.3 rad left, far point straight on, 10 m to go: full speed, curvature 2 sin(0.3) / 0.6.
    v, w = p.command(block(0.3, 0.0, 10.0))
    assert v == pytest.approx(0.5) and w == pytest.approx(2 * math.sin(0.3) / 0.6 * 0.5)
    # The far point 60 degrees off: speed falls to cos(60 deg) = 0.5 of v_max.
    v, _ = p.command(block(0.0, math.pi / 3, 10.0))
    assert v == pytest.approx(0.25)
    # 0.5 m from the goal: the speed follows the remaining distance (0.5 / 1.0 of v_max).
    v, _ = p.command(block(0.0, 0.0, 0.5))
    assert v == pytest.approx(0.25)
    # The near point 1 rad right (beyond 0.8): turn in place toward it, 2.5 rad/s per rad clipped to omega_max 2.
    v, w = p.command(block(-1.0, -1.0, 10.0))
    assert TURN_GAIN == 2.5 and v == 0.0 and w == -2.0


def test_it_reads_only_the_guidance_block() -> None:
    spec = shipped_spec()
    p = GuidedPolicy(2, spec)
    obs = np.random.default_rng(0).uniform(-1, 1, (2, spec.size)).astype(np.float32)
    want = p.act(obs, [None, None])
    g = spec.block("guidance").slice
    scrambled = np.random.default_rng(1).uniform(-1, 1, obs.shape).astype(np.float32)
    scrambled[:, g] = obs[:, g]
    np.testing.assert_array_equal(p.act(scrambled, [None, None]), want)


def test_guided_reaches_goals_in_small_mazes() -> None:
    factory, config = guided_setup()
    assert config.preprocessor == shipped_spec().config and config.preprocessor.guidance
    results = run_episodes(factory, make_episodes("val-3x3", 4, seed=0), config, num_envs=2)
    assert sum(r.success for r in results) >= 3
