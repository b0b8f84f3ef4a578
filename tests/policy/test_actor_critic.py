"""The actor-critic's three forms agree, and the one masking rule really resets the state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.policy.actor_critic import ActorCritic, PolicyConfig
from robonav.policy.normalizer import ObsNormalizer
from robonav.policy.state import LstmState


def _model(**kw) -> ActorCritic:
    torch.manual_seed(0)
    m = ActorCritic(7, PolicyConfig(encoder=(16,), hidden=8, **kw))
    with torch.no_grad():  # non-trivial normaliser statistics: they must be inside every form
        m.normalizer.mean.uniform_(-1, 1)
        m.normalizer.var.uniform_(0.5, 2)
    return m


def _random_state(m: ActorCritic, batch: int) -> LstmState:
    s = m.initial_state(batch)
    return LstmState(torch.randn_like(s.h), torch.randn_like(s.c))


@pytest.mark.parametrize("kw", [{}, {"separate_critic": True}, {"layers": 2}, {"core": "mlp"}])
def test_single_step_form_equals_sequence_form_from_nonzero_state(kw):
    m = _model(**kw)
    t_len, batch = 9, 3
    obs = torch.randn(t_len, batch, 7)
    starts = torch.zeros(t_len, batch)
    starts[4, 1] = 1.0
    s0 = _random_state(m, batch)
    mean, _, s_seq = m(obs, s0, starts)
    # The deployment step, env by env, feeding h, c back and resetting where an episode starts.
    for b in range(batch):
        h, c = s0.h[:, b:b + 1], s0.c[:, b:b + 1]
        for t in range(t_len):
            if starts[t, b]:
                h, c = torch.zeros_like(h), torch.zeros_like(c)
            action, h, c = m.step(obs[t, b:b + 1], h, c)
            expected = mean[t, b].clamp(-1, 1) * m.action_scale
            torch.testing.assert_close(action[0], expected, atol=1e-6, rtol=0)
        n = m.cfg.layers
        if m.cfg.core == "lstm":  # a memoryless core carries no state to compare
            torch.testing.assert_close(h[:n], s_seq.h[:n, b:b + 1], atol=1e-6, rtol=0)


def test_episode_start_really_resets_the_state():
    m = _model()
    obs = torch.randn(8, 1, 7)
    starts = torch.zeros(8, 1)
    starts[5, 0] = 1.0
    s0 = _random_state(m, 1)
    mean, _, _ = m(obs, s0, starts)
    fresh, _, _ = m(obs[5:], m.initial_state(1), torch.zeros(3, 1))
    torch.testing.assert_close(mean[5:], fresh, atol=1e-6, rtol=0)
    unmasked, _, _ = m(obs, s0, torch.zeros(8, 1))
    assert (unmasked[5:] - fresh).abs().max() > 1e-4, "without the mask the tail must differ (test can fail)"


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), t_len=st.integers(1, 12), batch=st.integers(1, 5))
def test_split_and_pad_equals_a_per_step_loop(seed, t_len, batch):
    m = _model(layers=2)
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(t_len, batch, 7, generator=g)
    starts = (torch.rand(t_len, batch, generator=g) < 0.3).float()
    s0 = _random_state(m, batch)
    mean, value, s_last = m(obs, s0, starts)
    s = s0
    for t in range(t_len):
        mu, v, s = m.act(obs[t], s, starts[t])
        torch.testing.assert_close(mu, mean[t], atol=1e-5, rtol=0)
        torch.testing.assert_close(v, value[t], atol=1e-5, rtol=0)
    torch.testing.assert_close(s.h, s_last.h, atol=1e-5, rtol=0)
    torch.testing.assert_close(s.c, s_last.c, atol=1e-5, rtol=0)


def test_the_module_keeps_no_hidden_state():
    m = _model()
    obs = torch.randn(1, 7)
    s = _random_state(m, 1)
    a1 = m.act(obs, s, torch.zeros(1))[0]
    m.act(torch.randn(1, 7), s, torch.zeros(1))  # an extra forward must change nothing
    a2 = m.act(obs, s, torch.zeros(1))[0]
    torch.testing.assert_close(a1, a2)


def test_normalizer_matches_numpy_statistics():
    rng = np.random.default_rng(0)
    data = [rng.normal(3.0, 2.0, (n, 4)).astype(np.float32) for n in (5, 17, 1, 40)]
    norm = ObsNormalizer(4)
    for d in data:
        norm.update(torch.as_tensor(d))
    alld = np.concatenate(data)
    np.testing.assert_allclose(norm.mean.numpy(), alld.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(norm.var.numpy(), alld.var(0), rtol=1e-3, atol=1e-3)
