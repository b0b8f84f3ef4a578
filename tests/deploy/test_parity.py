"""Parity: ONNX Runtime against torch step by step on recorded episodes through resets, and in closed loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robonav.deploy.parity import (
    TOLERANCE,
    CheckpointMismatchError,
    Recording,
    action_deviation_rate,
    backend_actions,
    closed_loop_comparison,
    compare_actions,
    export_parity,
    step_parity,
    torch_actions,
)
from robonav.model.sidecar import read_sidecar
from robonav.runtime.backends.onnx_backend import OnnxBackend


def test_fp32_matches_torch_step_by_step_through_resets(exported, policy, recording):
    report = step_parity(policy, exported.onnx, recording)
    print(f"FP32 ONNX Runtime vs torch: max |action error| {report.max_abs_error:.3g} over {report.steps} steps of "
          f"{report.episodes} episodes (tolerance {TOLERANCE:g})")
    assert report.steps >= 1000 and report.episodes >= 2
    assert report.passed and report.max_abs_error <= 1e-5
    assert report.tolerance == TOLERANCE


def test_the_recording_crosses_resets_that_matter(exported, recording, fp32_actions):
    """Without the resets the second episode starts from the first one's state and its actions differ."""
    obs, starts = recording.sequence()
    second = int(np.flatnonzero(starts)[1])
    assert starts[0] and starts.sum() == len(recording.segments)
    with OnnxBackend(exported.onnx) as backend:
        carried = np.stack([backend.step(o) for o in obs[: second + 1]])
    np.testing.assert_array_equal(carried[:second], fp32_actions[:second])
    assert np.abs(carried[second] - fp32_actions[second]).max() > 1e-4


def test_recorded_segments_are_whole_episodes(recording):
    assert [len(s) for s in recording.segments] == [r.steps for r in recording.results]
    assert all(s.dtype == np.float32 and s.shape[1] == 101 for s in recording.segments)


def test_parity_catches_a_changed_weight(exported, policy, recording):
    """The comparison bites: a bias moved by 1e-3 shows as an action error above the tolerance."""
    import copy

    changed = copy.deepcopy(policy)
    with torch.no_grad():
        changed.mu.bias += 1e-3
    report = step_parity(changed, exported.onnx, recording)
    assert not report.passed and report.max_abs_error > 1e-4


def test_compare_actions_reports_largest_errors_by_hand():
    ref = np.array([[0.1, -1.0], [0.2, 0.5], [0.0, 2.0]])
    got = ref + np.array([[0, 0], [0, 2e-5], [1e-6, 0]])
    r = compare_actions(got, ref, episodes=1)
    assert r.worst_step == 1 and r.max_abs_error == pytest.approx(2e-5, rel=1e-3)
    assert r.max_rel_error == pytest.approx(1e-6 / 1e-6, rel=1e-2)  # 1e-6 against a reference of 0
    assert not r.passed and compare_actions(got, ref, 1, tolerance=3e-5).passed


def test_action_deviation_rate_counts_steps_past_five_percent_of_the_range():
    ref = np.zeros((4, 2))
    got = np.array([[0.049, 0.0], [0.051, 0.0], [0.0, -0.21], [0.0, 0.19]])  # 5 % of [-0.5, 0.5] is 0.05
    assert action_deviation_rate(got, ref, (0.5, 2.0)) == pytest.approx(0.5)  # steps 1 and 2


def test_torch_actions_reset_at_episode_starts(policy, recording):
    one = Recording(recording.segments[1:2], recording.results[1:2])
    alone = torch_actions(policy, one)
    both = torch_actions(policy, Recording(recording.segments[:2], recording.results[:2]))
    np.testing.assert_array_equal(both[len(recording.segments[0]):], alone)


def test_closed_loop_flips_and_noise_floor_in_the_sidecar(exported, checkpoint, tmp_path):
    import shutil

    onnx_copy = tmp_path / exported.onnx.name  # a copy: the sidecar gains the parity results
    shutil.copy(exported.onnx, onnx_copy)
    shutil.copy(exported.sidecar, tmp_path / exported.sidecar.name)
    parity = export_parity(checkpoint, onnx_copy, steps=1, parity_suite="val-3x3", episodes=2, suite="val-3x3",
                           num_envs=2)
    closed = parity["closed_loop"]
    assert closed["episodes"] == 2 and 0 <= closed["flips"] <= 2
    assert parity["step"]["passed"] and parity["step"]["suite"] == "val-3x3"
    assert read_sidecar(onnx_copy).extra["parity"] == parity      # the noise floor travels with the model


def test_export_parity_refuses_another_checkpoint(exported, helpers, tmp_path):
    from robonav.policy.actor_critic import PolicyConfig

    other = helpers.make_checkpoint(tmp_path / "other.pt", PolicyConfig(encoder=(32,), hidden=16), seed=9)
    with pytest.raises(CheckpointMismatchError, match=r"is not the checkpoint .* was exported from"):
        export_parity(other, exported.onnx, episodes=0)


def test_closed_loop_comparison_counts_flips(recording):
    import dataclasses

    a = recording.results
    b = [dataclasses.replace(r, success=not r.success) if k == 0 else r for k, r in enumerate(a)]
    c = closed_loop_comparison(a, b)
    assert c["flips"] == 1 and c["episodes"] == len(a)


def test_backend_actions_equal_the_fp32_fixture(exported, recording, fp32_actions):
    with OnnxBackend(exported.onnx) as backend:
        np.testing.assert_array_equal(backend_actions(backend, recording), fp32_actions)
