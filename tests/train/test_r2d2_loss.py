"""The R2D2 loss: stored states reproduce the actor's Q exactly, burn-in takes no loss and passes no gradient,
episodes in a batch are independent, padding changes nothing, and the weighted loss is pinned by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from robonav.policy.actor_critic import PolicyConfig
from robonav.policy.q_network import QNetwork
from robonav.policy.state import LstmState
from robonav.train.r2d2.loss import r2d2_loss, unroll, weighted_td_loss
from robonav.train.r2d2.replay import PrioritizedReplay, ReplayBatch
from robonav.train.r2d2.sequencer import Sequencer

D, SEQ_LEN, OVERLAP, BURN_IN = 5, 6, 3, 3
ENDS = {(0, 7): "term", (0, 20): "trunc", (1, 13): "term", (1, 31): "trunc"}  # (env, stream step) -> episode end


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(seed: int = 0) -> QNetwork:
    torch.manual_seed(seed)
    net = QNetwork(D, PolicyConfig(encoder=(16,), hidden=8))
    with torch.no_grad():
        net.normalizer.mean.uniform_(-1, 1)
        net.normalizer.var.uniform_(0.5, 2)
        net.advantage_head.weight.mul_(5.0)
    return net


def _obs_id(env: int, j: int, final: bool = False) -> float:
    return 100.0 * env + j + (50.0 if final else 0.0) + 1.0


def _act(net: QNetwork, steps: int = 40, burn_in: int = BURN_IN) -> tuple[ReplayBatch, dict[float, torch.Tensor]]:
    """An actor stepping a made-up 2-env stream with ``net`` as robonav's learner does (state masked at episode
    starts, input states recorded); returns every emitted sequence as one batch and the actor's Q by obs id."""
    g = torch.Generator().manual_seed(1)
    sequencer = Sequencer(2, SEQ_LEN, OVERLAP, burn_in)
    replay = PrioritizedReplay(64)
    state, starts = net.initial_state(2), torch.ones(2)
    actor_q: dict[float, torch.Tensor] = {}

    def observe(j: int, final: tuple[bool, bool] = (False, False)) -> torch.Tensor:
        o = torch.randn(2, D, generator=g)
        o[:, 0] = torch.tensor([_obs_id(e, j, final[e]) for e in (0, 1)])
        return o

    obs = observe(0)
    for j in range(steps):
        s_in = state.masked(starts)
        with torch.no_grad():
            q, state = net(obs[None], s_in, torch.zeros(1, 2))
        for e in (0, 1):
            actor_q[float(obs[e, 0])] = q[0, e]
        actions = q[0].argmax(-1)
        flag = [ENDS.get((e, j)) for e in (0, 1)]
        term = np.array([f == "term" for f in flag])
        trunc = np.array([f == "trunc" for f in flag])
        done = term | trunc
        nxt = observe(j + 1)
        final = observe(j + 1, tuple(done))  # the final observation of an ending episode
        next_obs = torch.where(torch.as_tensor(done)[:, None], final, nxt)
        rewards = torch.randn(2, generator=g).numpy()
        for s in sequencer.add(obs.numpy(), s_in.h.numpy(), s_in.c.numpy(), actions.numpy(), rewards, term, trunc,
                               next_obs.numpy()):
            replay.add(s)
        obs, starts = nxt, torch.as_tensor(done, dtype=torch.float32)
    for s in sequencer.end_episodes([0, 1]):
        replay.add(s)
    return replay.gather(np.arange(len(replay))), actor_q


def _loss(net: QNetwork, batch: ReplayBatch, **kw):
    args = {"burn_in": BURN_IN, "n_step": 3, "gamma": 0.97, **kw}
    return r2d2_loss(net, net, batch, **args)  # type: ignore[arg-type]


def test_unroll_from_the_stored_state_reproduces_the_actors_q_exactly():
    net = _net()
    batch, actor_q = _act(net)
    assert batch.obs.shape[1] >= 10 and bool(batch.starts[BURN_IN:].any()), "some windows start an episode"
    for burn_in in (0, BURN_IN):
        q, _ = unroll(net, net, batch, burn_in, "stored")
        valid = batch.valid[burn_in:-1]
        ids = batch.obs[burn_in:-1, :, 0]
        checked = 0
        for t, b in valid.nonzero().tolist():
            torch.testing.assert_close(q[t, b], actor_q[float(ids[t, b])], atol=1e-6, rtol=0)
            checked += 1
        assert checked > 60
    out = _loss(net, batch)
    assert out.metrics["discrepancy_first"] < 1e-6 and out.metrics["discrepancy_last"] < 1e-6


def test_discrepancy_sees_changed_weights_and_the_zero_start_state():
    net = _net()
    batch, _ = _act(net)
    assert _loss(net, batch, init_state="zero", burn_in=0).metrics["discrepancy_first"] > 1e-3
    with torch.no_grad():
        net.body.core.weight_hh_l0.add_(0.3 * torch.randn_like(net.body.core.weight_hh_l0))
    changed = _loss(net, batch).metrics
    assert changed["discrepancy_first"] > 1e-3 and changed["discrepancy_last"] > 1e-3


def test_burn_in_takes_no_loss_and_passes_no_gradient():
    net = _net()
    batch, _ = _act(net)
    obs = batch.obs.clone().requires_grad_(True)
    h = batch.state.h.clone().requires_grad_(True)
    graded = dataclasses.replace(batch, obs=obs, state=LstmState(h, batch.state.c))
    out = _loss(net, graded)
    out.loss.backward()
    assert obs.grad is not None
    assert torch.count_nonzero(obs.grad[:BURN_IN]) == 0, "no gradient into burn-in observations"
    assert obs.grad[BURN_IN:].abs().sum() > 0
    assert h.grad is None, "no gradient into the stored state"
    # No loss there: burn-in rewards, actions and flags do not enter the loss or the priorities.
    noisy = dataclasses.replace(batch, rewards=batch.rewards.clone(), actions=batch.actions.clone(),
                                terminated=batch.terminated.clone())
    noisy.rewards[:BURN_IN] += 100.0
    noisy.actions[:BURN_IN] = (noisy.actions[:BURN_IN] + 1) % 7
    noisy.terminated[:BURN_IN] = True
    again = _loss(net, noisy)
    assert float(again.loss.detach()) == float(out.loss.detach())
    np.testing.assert_array_equal(again.priorities, out.priorities)
    assert out.q_taken.shape[0] == SEQ_LEN


def test_changing_one_episode_leaves_the_others_unchanged():
    net = _net()
    batch, _ = _act(net)
    out = _loss(net, batch)
    other = dataclasses.replace(batch, obs=batch.obs.clone())
    other.obs[:, 1] += torch.randn_like(other.obs[:, 1])
    changed = _loss(net, other)
    keep = [b for b in range(batch.obs.shape[1]) if b != 1]
    torch.testing.assert_close(changed.q_taken[:, keep], out.q_taken[:, keep], atol=1e-6, rtol=0)
    torch.testing.assert_close(changed.targets[:, keep], out.targets[:, keep], atol=1e-6, rtol=0)
    np.testing.assert_allclose(changed.priorities[keep], out.priorities[keep], atol=1e-6, rtol=0)
    assert (changed.q_taken[:, 1] - out.q_taken[:, 1]).abs().max() > 1e-3


def _pad(batch: ReplayBatch, extra: int) -> ReplayBatch:
    def grow(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.zeros((extra, *x.shape[1:]), dtype=x.dtype)])

    return dataclasses.replace(batch, obs=grow(batch.obs), actions=grow(batch.actions), rewards=grow(batch.rewards),
                               terminated=grow(batch.terminated), truncated=grow(batch.truncated),
                               starts=grow(batch.starts), valid=grow(batch.valid))


@pytest.mark.parametrize("kind", ["squared", "huber"])
def test_padding_length_changes_neither_loss_nor_priorities(kind):
    net = _net()
    batch, _ = _act(net)
    base = _loss(net, batch, loss=kind)
    for extra in (1, 7):
        padded = _loss(net, _pad(batch, extra), loss=kind)
        torch.testing.assert_close(padded.loss, base.loss, atol=1e-7, rtol=1e-6)
        np.testing.assert_allclose(padded.priorities, base.priorities, atol=1e-6, rtol=1e-6)
        assert padded.metrics["discrepancy_last"] == pytest.approx(base.metrics["discrepancy_last"], abs=1e-6)


def test_weighted_loss_pinned_by_hand():
    td = torch.tensor([[1.0, 2.0], [3.0, -4.0]])
    mask = torch.tensor([[True, True], [True, False]])
    w = torch.tensor([1.0, 0.5])
    # squared: (0.5 * 1 * 1 + 0.5 * 4 * 0.5 + 0.5 * 9 * 1) / 3 masked steps = (0.5 + 1 + 4.5) / 3 = 2
    assert float(weighted_td_loss(td, mask, w, "squared")) == pytest.approx(2.0)
    # huber (delta 1): 0.5 * 1 + (2 - 0.5) * 0.5 + (3 - 0.5) * 1 = 0.5 + 0.75 + 2.5 = 3.75, / 3 = 1.25
    assert float(weighted_td_loss(td, mask, w, "huber")) == pytest.approx(1.25)
    with pytest.raises(ValueError, match="'squared' or 'huber'"):
        weighted_td_loss(td, mask, w, "l1")  # type: ignore[arg-type]


def test_importance_weights_scale_each_sequences_share():
    net = _net()
    batch, _ = _act(net)
    w = torch.zeros(batch.obs.shape[1])
    w[2] = 1.0
    only = _loss(net, dataclasses.replace(batch, weights=w))
    full = _loss(net, batch)
    m = full.mask.float()
    td2 = (full.q_taken[:, 2] - full.targets[:, 2]) * m[:, 2]
    assert float(only.loss.detach()) == pytest.approx(float(0.5 * td2.pow(2).sum() / m.sum()), rel=1e-5)
