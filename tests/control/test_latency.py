"""Command latency: hand-pinned sequences for delays 0, 1 and 2 in one batch, and per-env resets."""

from __future__ import annotations

import numpy as np
import pytest

from robonav.control.latency import CommandDelay, CommandShapeError, DelayValueError


def tick(k: int, n: int = 3) -> np.ndarray:
    """The command pushed at tick k: v = k, omega = -k / 10 for every env."""
    return np.tile([float(k), -k / 10.0], (n, 1))


def test_delays_0_1_2_in_one_batch():
    delay = CommandDelay(num_envs=3, max_delay=2, delays=np.array([0, 1, 2]))
    applied_v = [delay.push(tick(k))[:, 0].tolist() for k in range(1, 6)]
    # env 0 applies tick k at tick k; env 1 one tick later; env 2 two ticks later, zeros before that
    assert applied_v == [
        [1.0, 0.0, 0.0],
        [2.0, 1.0, 0.0],
        [3.0, 2.0, 1.0],
        [4.0, 3.0, 2.0],
        [5.0, 4.0, 3.0],
    ]


def test_omega_travels_with_v_and_inputs_are_copied():
    delay = CommandDelay(num_envs=1, max_delay=1, delays=1)
    command = np.array([[0.3, 0.7]])
    assert delay.push(command).tolist() == [[0.0, 0.0]]
    command[0] = 9.0  # the caller reuses its array: the queued copy must not change
    assert delay.push(np.array([[0.0, 0.0]])).tolist() == [[0.3, 0.7]]


def test_default_delay_is_zero():
    delay = CommandDelay(num_envs=2)
    np.testing.assert_array_equal(delay.delays, [0, 0])
    np.testing.assert_array_equal(delay.push(tick(4, 2)), tick(4, 2))


def test_reset_of_one_env_does_not_disturb_another():
    delay = CommandDelay(num_envs=3, max_delay=2, delays=2)
    for k in range(1, 4):
        delay.push(tick(k))
    delay.reset([1])  # env 1's queue is cleared; envs 0 and 2 keep theirs
    out = delay.push(tick(4))
    assert out[:, 0].tolist() == [2.0, 0.0, 2.0]
    out = delay.push(tick(5))
    assert out[:, 0].tolist() == [3.0, 0.0, 3.0]
    out = delay.push(tick(6))
    assert out[:, 0].tolist() == [4.0, 4.0, 4.0]  # env 1 applies its first command after the reset


def test_reset_can_change_one_envs_delay():
    delay = CommandDelay(num_envs=3, max_delay=2, delays=1)
    delay.push(tick(1))
    delay.reset(np.array([False, False, True]), delays=0)
    np.testing.assert_array_equal(delay.delays, [1, 1, 0])
    assert delay.push(tick(2))[:, 0].tolist() == [1.0, 1.0, 2.0]
    delay.reset(delays=np.array([2, 0, 1]))  # all envs, one delay each
    assert delay.push(tick(3))[:, 0].tolist() == [0.0, 3.0, 0.0]
    assert delay.push(tick(4))[:, 0].tolist() == [0.0, 4.0, 3.0]
    assert delay.push(tick(5))[:, 0].tolist() == [3.0, 5.0, 4.0]


def test_max_delay_zero_is_a_pass_through():
    delay = CommandDelay(num_envs=2, max_delay=0)
    for k in range(3):
        np.testing.assert_array_equal(delay.push(tick(k, 2)), tick(k, 2))


def test_errors_say_what_was_expected():
    with pytest.raises(DelayValueError, match=r"delays must lie in \[0, 2\] ticks.*actual: \[3\]"):
        CommandDelay(num_envs=1, max_delay=2, delays=3)
    delay = CommandDelay(num_envs=2, max_delay=2)
    with pytest.raises(
        DelayValueError, match=r"delays must be one int, or one int per reset env \(2\).*shape \(3,\)"
    ):
        delay.reset(delays=np.array([0, 1, 1]))
    with pytest.raises(DelayValueError, match=r"one int per reset env \(1\), actual: dtype float64"):
        delay.reset([0], delays=np.array([0.5]))
    with pytest.raises(DelayValueError, match=r"env_ids must lie in \[0, 2\), actual: \[5\]"):
        delay.reset([5])
    with pytest.raises(CommandShapeError, match=r"commands must have shape \(2, 2\).*actual: \(2,\)"):
        delay.push(np.zeros(2))
    with pytest.raises(DelayValueError, match="max_delay must be >= 0 ticks, actual: -1"):
        CommandDelay(num_envs=1, max_delay=-1)
