"""The sequencer on a hand-made two-env stream with episode ends at awkward places: exactly the expected sequences,
in order, with the actor's input states at their first, first-trained and last steps."""

from __future__ import annotations

import numpy as np
import pytest

from robonav.train.r2d2.sequencer import Sequence, Sequencer

# m = 4 trained steps, overlap 2, burn-in prefix 2: stored L = 6 transitions + 1 bootstrap observation.
M, OVERLAP, BURN_IN, L = 4, 2, 2, 6
STEPS = 22
# Episode lengths per env (the last one is still running when the stream stops).
EPISODES = {0: [(1, "term"), (5, "trunc"), (7, "term"), (6, "trunc"), (3, None)],
            1: [(4, "term"), (8, "trunc"), (10, None)]}


def _obs(env: int, j: int) -> float:
    """Observation of env at stream step j (never 0, so padding is visible)."""
    return 1000.0 * env + j + 1


def _final(env: int, j: int) -> float:
    """The final observation of an episode that ended at stream step j."""
    return 1000.0 * env + 500.0 + j + 1


def _ends(env: int) -> dict[int, str]:
    out, j = {}, 0
    for length, kind in EPISODES[env]:
        j += length
        if kind is not None:
            out[j - 1] = kind
    return out


def _run() -> tuple[list[tuple[int, Sequence]], Sequencer]:
    seq = Sequencer(2, M, OVERLAP, BURN_IN)
    ends = {e: _ends(e) for e in (0, 1)}
    got: list[tuple[int, Sequence]] = []
    for j in range(STEPS):
        obs = np.array([[_obs(0, j)], [_obs(1, j)]], np.float32)
        h = obs.reshape(1, 2, 1).copy()  # the input state is the observation's value: easy to recognise
        c = -h
        term = np.array([ends[e].get(j) == "term" for e in (0, 1)])
        trunc = np.array([ends[e].get(j) == "trunc" for e in (0, 1)])
        nxt = np.array([[_final(e, j) if e_end else _obs(e, j + 1)] for e, e_end in enumerate(term | trunc)],
                       np.float32)
        for s in seq.add(obs, h, c, np.array([j % 3, (j + 1) % 3]), np.array([0.5 * j, -0.5 * j]), term, trunc,
                         nxt, version=j):
            got.append((int(s.obs[s.valid][0, 0] // 1000), s))
    for s in seq.end_episodes([0, 1]):
        got.append((int(s.obs[s.valid][0, 0] // 1000), s))
    return got, seq


# (env, stream step at each of the 6 positions or None for padding, bootstrap observation, starts position or
#  None, flag position and kind or None), in emission order (env 0 before env 1 within a step).
EXPECTED = [
    (0, [None, None, 0, None, None, None], _final(0, 0), 2, (2, "term")),  # a one-step episode
    (1, [None, None, 0, 1, 2, 3], _final(1, 3), 2, (5, "term")),  # full exactly at its end: no second window
    (0, [None, None, 1, 2, 3, 4], _obs(0, 5), 2, None),
    (0, [1, 2, 3, 4, 5, None], _final(0, 5), 0, (4, "trunc")),
    (1, [None, None, 4, 5, 6, 7], _obs(1, 8), 2, None),
    (0, [None, None, 6, 7, 8, 9], _obs(0, 10), 2, None),
    (1, [4, 5, 6, 7, 8, 9], _obs(1, 10), 0, None),
    (0, [6, 7, 8, 9, 10, 11], _obs(0, 12), 0, None),
    (1, [6, 7, 8, 9, 10, 11], _final(1, 11), None, (5, "trunc")),  # the 8-step episode ends with a full window
    (0, [8, 9, 10, 11, 12, None], _final(0, 12), None, (4, "term")),  # 7 steps: the third window, padded
    (1, [None, None, 12, 13, 14, 15], _obs(1, 16), 2, None),
    (0, [None, None, 13, 14, 15, 16], _obs(0, 17), 2, None),
    (1, [12, 13, 14, 15, 16, 17], _obs(1, 18), 0, None),
    (0, [13, 14, 15, 16, 17, 18], _final(0, 18), 0, (5, "trunc")),  # 6 steps: two windows, nothing left
    (1, [14, 15, 16, 17, 18, 19], _obs(1, 20), None, None),
    (1, [16, 17, 18, 19, 20, 21], _obs(1, 22), None, None),  # env 1's running episode: nothing left to flush
    (0, [None, None, 19, 20, 21, None], _obs(0, 22), 2, None),  # flushed by end_episodes, no flag
]


def test_hand_made_stream_gives_exactly_the_expected_sequences():
    got, _ = _run()
    assert len(got) == len(EXPECTED)
    for n, ((env, s), (e_env, steps, boot, start, flag)) in enumerate(zip(got, EXPECTED)):
        where = f"sequence {n}"
        assert env == e_env, where
        real = [p for p, j in enumerate(steps) if j is not None]
        obs = np.zeros(L + 1, np.float32)
        for p in real:
            obs[p] = _obs(env, steps[p])
        obs[real[-1] + 1] = boot
        np.testing.assert_array_equal(s.obs[:, 0], obs, err_msg=where)
        np.testing.assert_array_equal(s.valid, [j is not None for j in steps] + [False], err_msg=where)
        sign = 1 if env == 0 else -1
        for p in real:
            j = steps[p]
            assert s.actions[p] == (j + env) % 3 and s.rewards[p] == sign * 0.5 * j, where
        assert not s.actions[~s.valid].any() and not s.rewards[~s.valid].any(), where
        starts = np.zeros(L + 1, bool)
        if start is not None:
            starts[start] = True
        np.testing.assert_array_equal(s.starts, starts, err_msg=where)
        term, trunc = np.zeros(L + 1, bool), np.zeros(L + 1, bool)
        if flag is not None:
            (term if flag[1] == "term" else trunc)[flag[0]] = True
        np.testing.assert_array_equal(s.terminated, term, err_msg=where)
        np.testing.assert_array_equal(s.truncated, trunc, err_msg=where)
        # States: the actor's input state of position 0 (zero on padding), of the first trained position
        # (BURN_IN) and of the last valid transition; the version is the first real step's.
        h0 = _obs(env, steps[0]) if steps[0] is not None else 0.0
        assert s.state[0].item() == h0 and s.state[1].item() == -h0, where
        assert s.first_state[0].item() == _obs(env, steps[BURN_IN]) == -s.first_state[1].item(), where
        assert s.last_state[0].item() == _obs(env, steps[real[-1]]), where
        assert s.version == steps[real[0]], where


def test_held_steps_stay_bounded_and_flush_empties():
    _, seq = _run()
    assert seq.pending_steps() == 0
    seq = Sequencer(1, M, OVERLAP, BURN_IN)
    z = np.zeros((1, 1), np.float32)
    f = np.zeros(1, bool)
    for _ in range(50):
        seq.add(z, z[None], z[None], np.zeros(1), np.zeros(1), f, f, z)
        assert seq.pending_steps() <= L


@pytest.mark.parametrize(("length", "windows"), [(1, 1), (40, 1), (80, 1), (81, 2), (100, 2), (120, 2),
                                                  (121, 3), (200, 4)])
def test_paper_defaults_without_burn_in_count_windows(length, windows):
    """m = 80, overlap 40, no prefix: windows at 0, 40, 80, ... while the previous one did not reach the end."""
    seq = Sequencer(1, 80, 40, 0)
    z = np.zeros((1, 3), np.float32)
    out = []
    for j in range(length):
        end = np.array([j == length - 1])
        out += seq.add(z + j, np.zeros((1, 1, 4)), np.zeros((1, 1, 4)), np.zeros(1), np.ones(1), end,
                       np.zeros(1, bool), z)
    assert len(out) == windows
    assert all(s.obs.shape == (81, 3) for s in out)
    firsts = [int(s.obs[0, 0]) for s in out]
    assert firsts == [40 * k for k in range(windows)]
    assert sum(int(s.valid.sum()) for s in out) >= length
    assert out[-1].terminated[int(out[-1].valid.sum()) - 1]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="overlap < seq_len"):
        Sequencer(1, 4, 4, 0)
