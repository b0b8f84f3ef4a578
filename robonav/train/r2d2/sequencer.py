"""Cut the actor's per-step stream from a vector env into R2D2 replay sequences.

R2D2 stores fixed-length sequences of m steps (default 80), adjacent ones overlapping by m/2 (default 40), never
crossing an episode boundary, each with the recurrent state that was the INPUT of its first step; in the burn-in
experiments each sequence also carries a prefix of l steps (default 40) that only rebuilds the state (the paper's
Table 2: "80 (+ prefix of l = 40 in burn-in experiments)"). So in one episode of E steps, window k trains on steps
[s_k, s_k + m) with s_k = k (m - overlap), and is stored as [s_k - l, s_k + m): L = l + m transitions. Then:

- an episode end flushes the earliest window still open, its tail padded and masked; later open windows, whose
  trained steps it already holds, are dropped;
- the first windows of an episode start their prefix before the episode: that part is front padding, the stored
  state is zero and ``starts`` marks the episode's first step (the one masking rule zeroes the state there, so the
  padding changes nothing). Every step of an episode is thus trained, the first m too: a stated choice (Acme
  starts the first window at step 0 and never trains the steps that fall in its burn-in);
- after the L transitions comes one more observation, the one after the last valid transition (the next
  observation, or the episode's final observation where it ended), so every valid step has a bootstrap state.

Example, m = 4, overlap 2, l = 2 (L = 6), an episode of 7 steps 0..6 (. = padding, | = trained from here):

    window 0   . . | 0 1 2 3   + obs after 3      state 0, starts at position 2
    window 1   0 1 | 2 3 4 5   + obs after 5      state: the actor's input state of step 0
    window 2   2 3 | 4 5 6 .   + final obs        state: the input state of step 2; window 3 (6 .) is dropped
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class Sequence:
    """One replay entry. Positions 0..L-1 are transitions, position L only holds an observation; ``valid`` marks
    real transitions (padding is False), and the observation after the last valid transition sits right after it."""

    obs: np.ndarray
    """[L + 1, D] float32 observations; zeros where padded."""
    actions: np.ndarray
    """[L + 1] int64 primitive index taken at each position."""
    rewards: np.ndarray
    """[L + 1] float32."""
    terminated: np.ndarray
    """[L + 1] bool: the episode terminated after this transition (no bootstrap)."""
    truncated: np.ndarray
    """[L + 1] bool: the episode hit its time limit after this transition (bootstrapped from the final obs)."""
    starts: np.ndarray
    """[L + 1] bool: episode_starts, true where obs[t] is the first observation of the episode."""
    valid: np.ndarray
    """[L + 1] bool: a real transition (false on front and tail padding and always at position L)."""
    state: tuple[np.ndarray, np.ndarray]
    """(h, c), each [layers, hidden]: the actor's input state of position 0 (zero where that is padding)."""
    first_state: tuple[np.ndarray, np.ndarray]
    """The actor's input state of position ``burn_in``, the first trained step (for the Q discrepancy)."""
    last_state: tuple[np.ndarray, np.ndarray]
    """The actor's input state of the last valid transition (for the Q discrepancy)."""
    version: int
    """Learner updates made when the first real step of the sequence was acted (for the parameter lag)."""


@dataclass
class _Step:
    obs: np.ndarray
    h: np.ndarray
    c: np.ndarray
    action: int
    reward: float
    terminated: bool
    truncated: bool
    next_obs: np.ndarray
    version: int


class _Episode:
    """The open part of one env's current episode."""

    def __init__(self) -> None:
        self.steps: list[_Step] = []
        self.offset = 0  # episode step index of steps[0]
        self.length = 0  # steps taken in the episode
        self.window = 0  # earliest window not yet emitted
        self.covered = 0  # end (exclusive) of the trained part of the last emitted window


class Sequencer:
    """Turns ``add`` calls (one per vector-env step) into ``Sequence`` objects for the replay."""

    def __init__(self, num_envs: int, seq_len: int = 80, overlap: int = 40, burn_in: int = 40) -> None:
        if seq_len < 1 or not 0 <= overlap < seq_len or burn_in < 0:
            raise ValueError(f"sequences need seq_len >= 1, 0 <= overlap < seq_len and burn_in >= 0, got seq_len="
                             f"{seq_len}, overlap={overlap}, burn_in={burn_in}")
        self.num_envs, self.seq_len, self.overlap, self.burn_in = num_envs, seq_len, overlap, burn_in
        self.period = seq_len - overlap
        self.length = burn_in + seq_len
        self._episodes = [_Episode() for _ in range(num_envs)]

    def add(self, obs: np.ndarray, h: np.ndarray, c: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray, next_obs: np.ndarray, version: int = 0
            ) -> list[Sequence]:
        """One step of every env: obs [N, D] acted on from input states h, c [layers, N, H] with ``actions`` [N],
        giving ``rewards``, ``terminated``, ``truncated`` [N] and ``next_obs`` [N, D] (the final observation where
        the episode ended). An env whose episode ended starts a new one at its next ``add``. Returns the
        sequences completed by this step."""
        out: list[Sequence] = []
        for i in range(self.num_envs):
            ep = self._episodes[i]
            ep.steps.append(_Step(obs[i].copy(), h[:, i].copy(), c[:, i].copy(), int(actions[i]), float(rewards[i]),
                                  bool(terminated[i]), bool(truncated[i]), next_obs[i].copy(), version))
            ep.length += 1
            start = ep.window * self.period
            if ep.length == start + self.seq_len:  # window full
                out.append(self._emit(ep))
            if terminated[i] or truncated[i]:
                out.extend(self._end(i))
            else:
                self._trim(ep)
        return out

    def end_episodes(self, env_ids: Iterable[int]) -> list[Sequence]:
        """Close the given envs' episodes here without an episode end (no terminated/truncated flag: the last step
        bootstraps from its next observation) and return their open sequences; the next ``add`` starts new
        episodes. Used where the envs restart their episodes (a checkpoint boundary)."""
        out: list[Sequence] = []
        for i in env_ids:
            out.extend(self._end(int(i)))
        return out

    def pending_steps(self) -> int:
        """Steps held for windows that are not complete yet (all envs)."""
        return sum(len(ep.steps) for ep in self._episodes)

    # -- internals ------------------------------------------------------------------------------------------

    def _end(self, i: int) -> list[Sequence]:
        ep = self._episodes[i]
        out = []
        if ep.length > ep.window * self.period and ep.covered < ep.length:
            out.append(self._emit(ep))
        self._episodes[i] = _Episode()
        return out

    def _trim(self, ep: _Episode) -> None:
        keep_from = max(0, ep.window * self.period - self.burn_in)
        drop = keep_from - ep.offset
        if drop > 0:
            del ep.steps[:drop]
            ep.offset = keep_from

    def _emit(self, ep: _Episode) -> Sequence:
        """Window ``ep.window`` over what the episode holds so far; advances the window."""
        start = ep.window * self.period  # first trained episode step
        first = start - self.burn_in  # episode step of position 0 (negative: front padding)
        end = min(start + self.seq_len, ep.length)  # exclusive
        size = self.length + 1
        s0 = ep.steps[0]
        obs = np.zeros((size, s0.obs.shape[0]), np.float32)
        actions = np.zeros(size, np.int64)
        rewards = np.zeros(size, np.float32)
        terminated = np.zeros(size, bool)
        truncated = np.zeros(size, bool)
        starts = np.zeros(size, bool)
        valid = np.zeros(size, bool)
        zero = (np.zeros_like(s0.h), np.zeros_like(s0.c))
        state = zero
        for t in range(max(first, 0), end):
            p = t - first
            s = ep.steps[t - ep.offset]
            obs[p], actions[p], rewards[p] = s.obs, s.action, s.reward
            terminated[p], truncated[p], valid[p] = s.terminated, s.truncated, True
            if t == 0:
                starts[p] = True
            if p == 0:
                state = (s.h, s.c)
        last = ep.steps[end - 1 - ep.offset]
        obs[end - first] = last.next_obs
        first_step = ep.steps[start - ep.offset]
        version = ep.steps[max(first, 0) - ep.offset].version
        ep.window += 1
        ep.covered = end
        return Sequence(obs, actions, rewards, terminated, truncated, starts, valid, state,
                        (first_step.h, first_step.c), (last.h, last.c), version)
