"""Prioritized sequence replay: hand-computed priorities and weights, sampling that follows them (seeded
chi-square), the sum tree against a cumsum reference, FIFO overwrite, and a state_dict round trip."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.train.r2d2.replay import PrioritizedReplay, ReplayError, SumTree, sequence_priorities
from robonav.train.r2d2.sequencer import Sequence

T, D, LAYERS, H = 5, 3, 1, 2


def _seq(tag: float, valid: int = T - 1) -> Sequence:
    obs = np.full((T, D), tag, np.float32)
    v = np.arange(T) < valid
    z = np.full((LAYERS, H), tag, np.float32)
    return Sequence(obs, np.arange(T) % 3, np.full(T, tag, np.float32), np.zeros(T, bool), np.zeros(T, bool),
                    np.eye(1, T, 0, dtype=bool)[0], v, (z, -z), (2 * z, -2 * z), (3 * z, -3 * z), int(tag))


def test_priorities_by_hand_over_valid_steps_only():
    abs_td = torch.tensor([[1.0, 0.5], [3.0, 9.0], [2.0, 0.5], [100.0, 2.0]])
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [0, 1]])
    # column 0: max 3, mean (1 + 3 + 2) / 3 = 2       -> 0.9 * 3 + 0.1 * 2 = 2.9   (the masked 100 is ignored)
    # column 1: max 2, mean (0.5 + 0.5 + 2) / 3 = 1   -> 0.9 * 2 + 0.1 * 1 = 1.9   (the masked 9 is ignored)
    np.testing.assert_allclose(sequence_priorities(abs_td, mask, 0.9), [2.9, 1.9], rtol=1e-12)
    padded = torch.cat([abs_td, torch.full((6, 2), 55.0)])
    np.testing.assert_array_equal(sequence_priorities(padded, torch.cat([mask, torch.zeros(6, 2)]), 0.9),
                                  sequence_priorities(abs_td, mask, 0.9))


def test_new_sequences_enter_at_the_max_priority_seen():
    r = PrioritizedReplay(8, alpha=0.9)
    for k in range(3):
        r.add(_seq(k))
    np.testing.assert_array_equal(r.priorities[:3], [1.0, 1.0, 1.0])
    r.update_priorities(np.array([0, 1, 2]), np.array([2.0, 0.5, 5.0]))
    r.add(_seq(3))
    assert r.priorities[3] == 5.0
    r.update_priorities(np.array([3]), np.array([0.1]))
    r.add(_seq(4))
    assert r.priorities[4] == 5.0, "the max seen, not the current max"


def test_probabilities_and_importance_weights_by_hand():
    r = PrioritizedReplay(4, alpha=0.5)
    for k in range(4):
        r.add(_seq(k))
    r.update_priorities(np.arange(4), np.array([1.0, 4.0, 9.0, 16.0]))
    # p^0.5 = 1, 2, 3, 4 (sum 10): P = 0.1, 0.2, 0.3, 0.4
    np.testing.assert_allclose(r.probabilities(), [0.1, 0.2, 0.3, 0.4], rtol=1e-12)
    b = r.sample(64, beta=1.0)
    # w = (N P)^-1 = 1 / (4 P) -> 2.5, 1.25, 0.8333, 0.625; divided by the batch max (2.5 if slot 0 is drawn)
    probs = np.array([0.1, 0.2, 0.3, 0.4])[b.indices]
    raw = 1.0 / (4 * probs)
    np.testing.assert_allclose(b.weights.numpy(), raw / raw.max(), rtol=1e-6)
    assert float(b.weights.max()) == 1.0
    assert torch.equal(r.sample(8, beta=0.0).weights, torch.ones(8)), "beta = 0: no importance weighting"


def test_sampling_follows_priorities_chi_square():
    r = PrioritizedReplay(6, alpha=0.9, seed=7)
    for k in range(6):
        r.add(_seq(k))
    pri = np.array([0.2, 1.0, 2.0, 3.0, 5.0, 10.0])
    r.update_priorities(np.arange(6), pri)
    expected_p = pri ** 0.9 / (pri ** 0.9).sum()
    draws = np.concatenate([r.sample(100, beta=0.6).indices for _ in range(300)])  # 30,000 draws
    counts = np.bincount(draws, minlength=6)
    expected = expected_p * len(draws)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 20.5, f"chi-square {chi2:.1f} above the 0.1 % critical value for 5 degrees of freedom"
    # The test can fail: the same counts against uniform sampling, or against the priorities without alpha.
    for wrong in (np.full(6, 1 / 6), pri / pri.sum()):
        e = wrong * len(draws)
        assert float(((counts - e) ** 2 / e).sum()) > 100.0


@settings(max_examples=50, deadline=None)
@given(leaves=st.lists(st.integers(0, 20), min_size=1, max_size=37), seed=st.integers(0, 1000))
def test_sum_tree_equals_a_cumsum_reference(leaves, seed):
    tree = SumTree(len(leaves))
    tree.set(np.arange(len(leaves)), np.array(leaves, np.float64))
    assert tree.total() == sum(leaves)
    if sum(leaves) == 0:
        return
    mass = np.random.default_rng(seed).integers(0, sum(leaves), 50).astype(np.float64)
    mass = np.concatenate([mass, mass + 0.5])
    expected = np.searchsorted(np.cumsum(leaves), mass, side="right")
    np.testing.assert_array_equal(tree.find(mass), expected)


def test_full_replay_overwrites_the_oldest_and_batches_are_time_major():
    r = PrioritizedReplay(3)
    for k in range(5):
        r.add(_seq(k + 1))
    assert len(r) == 3
    assert sorted(float(r.data["obs"][i, 0, 0]) for i in range(3)) == [3.0, 4.0, 5.0]
    b = r.sample(4, beta=0.6)
    assert b.obs.shape == (T, 4, D) and b.actions.shape == (T, 4) and b.valid.shape == (T, 4)
    assert b.state.h.shape == (LAYERS, 4, H)
    tags = b.obs[0, :, 0]
    torch.testing.assert_close(b.rewards[0], tags)
    torch.testing.assert_close(b.first_state.h[0, :, 0], 2 * tags)
    torch.testing.assert_close(b.last_state.c[0, :, 0], -3 * tags)
    assert torch.equal(b.versions.float(), tags)


def test_state_dict_round_trip_resumes_sampling_exactly():
    r = PrioritizedReplay(5, alpha=0.9, seed=3)
    for k in range(7):
        r.add(_seq(k + 1, valid=1 + k % 4))
    r.update_priorities(np.array([0, 2, 4]), np.array([0.3, 7.0, 2.0]))
    r.sample(3, beta=0.6)
    buf = io.BytesIO()
    torch.save(r.state_dict(), buf)
    buf.seek(0)
    other = PrioritizedReplay(5, alpha=0.9, seed=99)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert (other.size, other.cursor, other.max_priority) == (r.size, r.cursor, r.max_priority)
    np.testing.assert_array_equal(other.tree.tree, r.tree.tree)
    for k in r.data:
        assert torch.equal(other.data[k], r.data[k]), k
    a, b = r.sample(16, beta=0.6), other.sample(16, beta=0.6)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert torch.equal(a.weights, b.weights) and torch.equal(a.obs, b.obs)
    r.add(_seq(50))
    other.add(_seq(50))
    np.testing.assert_array_equal(other.priorities, r.priorities)
    with pytest.raises(ReplayError, match="resume with the run's settings"):
        PrioritizedReplay(6).load_state_dict(r.state_dict())


def test_empty_and_mismatched_use_is_refused():
    r = PrioritizedReplay(2)
    with pytest.raises(ReplayError, match="empty replay"):
        r.sample(1, 0.6)
    r.add(_seq(1))
    bad = _seq(2)
    bad.obs = np.zeros((T + 1, D), np.float32)
    with pytest.raises(ReplayError, match="does not fit"):
        r.add(bad)
