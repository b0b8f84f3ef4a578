"""n-step double-Q targets: pinned by hand on a trajectory with a termination and a truncation inside, equal to
the per-transition loop, blind to padding, and double (the online net selects, the target net evaluates)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.train.r2d2.rescale import h, h_inv
from robonav.train.r2d2.targets import n_step_targets, reference_targets

N, GAMMA = 3, 0.9
# One column, T = 12: episode A = transitions 0..3 (terminated after 3), B = 4..7 (truncated after 7, bootstrapped
# from its final observation), C = 8..9 (the stored sequence ends after 9: bootstrap from the next observation);
# 10 and 11 are padding whose garbage rewards must not leak in.
REWARDS = [1.0, 2.0, 3.0, 4.0, 0.5, -1.0, 2.0, 1.0, 3.0, -2.0, 99.0, 99.0]
TERMINATED = [False, False, False, True] + [False] * 8
TRUNCATED = [False] * 7 + [True] + [False] * 4
VALID = [True] * 10 + [False] * 2
# Value (before rescaling) of the state after transition j, at the action the ONLINE net prefers (index SEL[j]);
# the target net rates another action 100 higher, so plain max-Q targets would differ (double Q is tested).
V = [10.0, 20.0, 30.0, 40.0, 5.0, 6.0, 7.0, 8.0, 2.0, 4.0, 0.0, 0.0]
SEL = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
# Pre-rescaling targets by hand (gamma = 0.9, n = 3):
#   t=0: 1 + .9*2 + .81*3 + .729*V2(30)             = 27.1
#   t=1: 2 + .9*3 + .81*4, terminated at 3: no V     = 7.94
#   t=2: 3 + .9*4                                    = 6.6
#   t=3: 4                                           = 4.0
#   t=4: .5 - .9 + .81*2 + .729*V6(7)                = 6.323
#   t=5: -1 + .9*2 + .81*1 + .729*V7(8, final obs)   = 7.442
#   t=6: 2 + .9*1 + .81*V7(8): truncated at 7        = 9.38
#   t=7: 1 + .9*V7(8)                                = 8.2
#   t=8: 3 - .9*2 + .81*V9(4): the sequence ends     = 4.44
#   t=9: -2 + .9*V9(4)                               = 1.6
BY_HAND = [27.1, 7.94, 6.6, 4.0, 6.323, 7.442, 9.38, 8.2, 4.44, 1.6]


def _q_tables(values: list[float], sel: list[int], actions: int = 3) -> tuple[list[list[float]], list[list[float]]]:
    online, target = [], []
    for v, s in zip(values, sel):
        online.append([1.0 if a == s else 0.0 for a in range(actions)])
        raw = [v + 100.0 if a != s else v for a in range(actions)]
        target.append([float(h(torch.tensor(x, dtype=torch.float64))) for x in raw])
    return online, target


def _batched(columns: list[dict], n: int = N, gamma: float = GAMMA) -> torch.Tensor:
    def stack(key: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor([col[key] for col in columns], dtype=dtype).transpose(0, 1).contiguous()

    return n_step_targets(stack("q_online", torch.float64), stack("q_target", torch.float64),
                          stack("rewards", torch.float64), stack("terminated", torch.bool),
                          stack("truncated", torch.bool), stack("valid", torch.bool), n, gamma)


def _column(pad: int = 0) -> dict:
    q_online, q_target = _q_tables(V + [0.0] * pad, SEL + [0] * pad)
    return {"rewards": REWARDS + [-50.0] * pad, "terminated": TERMINATED + [True] * pad,
            "truncated": TRUNCATED + [False] * pad, "valid": VALID + [False] * pad,
            "q_online": q_online, "q_target": q_target}


def _reference(col: dict, n: int = N, gamma: float = GAMMA) -> list[float | None]:
    return reference_targets(col["rewards"], col["terminated"], col["truncated"], col["valid"], col["q_online"],
                             col["q_target"], n, gamma)


def test_hand_made_trajectory_pinned_and_equal_to_the_loop():
    col = _column()
    y = _batched([col])[:, 0]
    expected = h(torch.tensor(BY_HAND, dtype=torch.float64))
    torch.testing.assert_close(y[:10], expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_inv(y[:10]), torch.tensor(BY_HAND, dtype=torch.float64), rtol=1e-10, atol=1e-10)
    assert torch.equal(y[10:], torch.zeros(2, dtype=torch.float64)), "padding gets no target"
    ref = _reference(col)
    assert ref[10:] == [None, None]
    torch.testing.assert_close(y[:10], torch.tensor(ref[:10], dtype=torch.float64), rtol=1e-9, atol=1e-9)


def test_targets_are_double_q():
    col = _column()
    y = _batched([col])[:, 0]
    single_q = dict(col, q_online=col["q_target"])  # the target net selecting its own max: plain (not double) Q
    y_single = _batched([single_q])[:, 0]
    boots = [0, 4, 5, 6, 7, 8, 9]  # the transitions that bootstrap (1, 2, 3 end in the termination)
    assert (h_inv(y_single[boots]) - h_inv(y[boots])).abs().min() > 1.0
    assert torch.equal(y_single[1:4], y[1:4])


def test_padding_length_and_neighbours_change_nothing():
    short = _batched([_column()])[:, 0]
    other = _column(pad=4)
    other["rewards"] = [0.0] * 16
    long = _batched([_column(pad=4), other])
    torch.testing.assert_close(long[:12, 0], short, rtol=0, atol=0)


def test_n_equal_one_is_one_step_q_learning():
    col = _column()
    y = _batched([col], n=1)[:, 0]
    # t=0: 1 + .9*V0(10) = 10;  t=3: 4 (terminated);  t=7: 1 + .9*V7(8) = 8.2
    torch.testing.assert_close(h_inv(y[[0, 3, 7]]), torch.tensor([10.0, 4.0, 8.2], dtype=torch.float64))
    with pytest.raises(ValueError, match="n >= 1"):
        _batched([col], n=0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), t_len=st.integers(1, 14), n=st.integers(1, 6), length=st.integers(0, 14))
def test_random_streams_equal_the_loop(seed, t_len, n, length):
    g = torch.Generator().manual_seed(seed)
    length = min(length, t_len)
    rewards = (torch.randn(t_len, generator=g) * 3).tolist()
    terminated = (torch.rand(t_len, generator=g) < 0.15).tolist()
    truncated = (torch.rand(t_len, generator=g) < 0.15).tolist()
    valid = [t < length for t in range(t_len)]
    q_online = torch.randn(t_len, 4, generator=g).tolist()
    q_target = (torch.randn(t_len, 4, generator=g) * 5).tolist()
    col = {"rewards": rewards, "terminated": terminated, "truncated": truncated, "valid": valid,
           "q_online": q_online, "q_target": q_target}
    y = _batched([col], n=n, gamma=0.97)[:, 0]
    ref = _reference(col, n=n, gamma=0.97)
    for t in range(t_len):
        r = ref[t]
        if r is None:
            assert y[t] == 0.0
        else:
            assert abs(float(y[t]) - r) <= 1e-9 * max(1.0, abs(r)), (t, float(y[t]), r)
