"""GAE pinned by hand: three steps, a termination, and a truncation bootstrapped from its final observation."""

from __future__ import annotations

import torch

from robonav.train.gae import bootstrap_truncations, compute_gae

GAMMA, LAM = 0.9, 0.8


def test_three_steps_with_a_termination():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the episode terminates after step 1
    adv, ret = compute_gae(rewards, values, dones, torch.tensor([2.0]), GAMMA, LAM)
    # t=2: delta = 3 + 0.9 * 2.0 - 1.5 = 3.3                  A2 = 3.3
    # t=1: delta = 2 + 0 (terminal) - 1.0 = 1.0                A1 = 1.0 (nothing flows back across the end)
    # t=0: delta = 1 + 0.9 * 1.0 - 0.5 = 1.4                   A0 = 1.4 + 0.9 * 0.8 * 1.0 = 2.12
    torch.testing.assert_close(adv[:, 0], torch.tensor([2.12, 1.0, 3.3]))
    torch.testing.assert_close(ret[:, 0], torch.tensor([2.62, 2.0, 4.8]))


def test_truncation_bootstraps_from_the_final_observation():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the episode is TRUNCATED after step 1, V(final_obs) = 4
    rewards[1] = bootstrap_truncations(rewards[1], torch.tensor([0]), torch.tensor([4.0]), GAMMA)
    # r1' = 2 + 0.9 * 4 = 5.6
    # t=1: A1 = 5.6 - 1.0 = 4.6
    # t=0: A0 = (1 + 0.9 * 1.0 - 0.5) + 0.72 * 4.6 = 1.4 + 3.312 = 4.712
    adv, _ = compute_gae(rewards, values, dones, torch.tensor([2.0]), GAMMA, LAM)
    torch.testing.assert_close(adv[:, 0], torch.tensor([4.712, 4.6, 3.3]))


def test_envs_are_independent_columns():
    rewards = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    values = torch.tensor([[0.5, 0.0], [1.0, 0.0], [1.5, 0.0]])
    dones = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    adv, _ = compute_gae(rewards, values, dones, torch.tensor([2.0, 0.0]), GAMMA, LAM)
    torch.testing.assert_close(adv[:, 0], torch.tensor([2.12, 1.0, 3.3]))
    torch.testing.assert_close(adv[:, 1], torch.zeros(3))
