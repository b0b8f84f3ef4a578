"""n-step double-Q targets in the rescaled space (R2D2, eq. in section 2), batched over [T, B] sequences.

For transition t (observation s_t, action a_t, reward r_t) the target is

    y_t = h( sum_{k<m} gamma^k r_{t+k}  +  gamma^m (1 - terminated_{t+m-1}) h^-1( Q_tgt(s', argmax_a Q_onl(s', a)) ) )

where s' is the observation after transition t+m-1, and m <= n is the n-step window shortened where it must be:
the window stops at the first transition that ends the episode (terminated OR truncated) or is the last valid
one of its column (the end of a stored sequence, before its padding). A termination cuts the bootstrap; a
truncation (the time limit) does not: s' is then the episode's final observation, whose Q bootstraps like any
other (the stored sequence carries that observation after its last step).

Q values are indexed by transition: ``next_q_*[t]`` is Q at the observation AFTER transition t (for a stored
sequence unrolled over obs[0..T], that is q[1:]). ``reference_targets`` is the same rule as a plain
per-transition Python loop with the paper's literal h; tests hold the two equal.
"""

from __future__ import annotations

import torch

from robonav.train.r2d2.rescale import EPS, h, h_inv, h_inv_paper, h_paper


def n_step_targets(next_q_online: torch.Tensor, next_q_target: torch.Tensor, rewards: torch.Tensor,
                   terminated: torch.Tensor, truncated: torch.Tensor, valid: torch.Tensor, n: int, gamma: float,
                   eps: float = EPS) -> torch.Tensor:
    """Targets y [T, B] (0 where ``valid`` is false) from Q after each transition [T, B, A] (online: selects the
    action, target: evaluates it) and per-transition rewards, terminated, truncated and valid flags [T, B].

    No Python loop over time: the window ends come from one reversed cumulative minimum, the sums from n
    shifted gathers.
    """
    if n < 1:
        raise ValueError(f"n-step targets need n >= 1, got n={n}")
    t_len, batch = rewards.shape
    valid = valid.bool()
    terminated = terminated.bool()
    next_valid = torch.cat([valid[1:], valid.new_zeros(1, batch)])  # [T, B]; nothing follows the last row
    stop = terminated | truncated.bool() | ~next_valid  # transition t is the last of its run
    pos = torch.arange(t_len, device=rewards.device).unsqueeze(1).expand(t_len, batch)  # [T, B]
    stop_pos = torch.where(stop, pos, torch.full_like(pos, t_len))
    next_stop = torch.flip(torch.cummin(torch.flip(stop_pos, [0]), dim=0).values, [0])  # first stop at or after t
    end = torch.minimum(pos + (n - 1), next_stop).clamp(max=t_len - 1)  # last transition of t's window
    steps = end - pos + 1  # m_t (meaningful where valid)
    ret = torch.zeros_like(rewards)
    for k in range(n):
        r_k = rewards.gather(0, (pos + k).clamp(max=t_len - 1))
        ret = ret + torch.where(steps > k, (gamma ** k) * r_k, torch.zeros_like(r_k))
    best = next_q_online.argmax(dim=-1, keepdim=True)  # double Q: the online net selects ...
    q_eval = next_q_target.gather(-1, best).squeeze(-1)  # ... the target net evaluates     [T, B]
    bootstrap = h_inv(q_eval.gather(0, end), eps)
    keep = (~terminated.gather(0, end)).to(rewards.dtype)
    discount = torch.pow(torch.full_like(rewards, gamma), steps.to(rewards.dtype)) * keep
    y = h(ret + discount * bootstrap, eps)
    return torch.where(valid, y, torch.zeros_like(y))


def reference_targets(rewards: list[float], terminated: list[bool], truncated: list[bool], valid: list[bool],
                      next_q_online: list[list[float]], next_q_target: list[list[float]], n: int, gamma: float,
                      eps: float = EPS) -> list[float | None]:
    """The same targets for one column, one transition at a time (None where not valid): the plain reading of
    the rule above, kept independent of ``n_step_targets`` on purpose."""
    t_len = len(rewards)
    out: list[float | None] = []
    for t in range(t_len):
        if not valid[t]:
            out.append(None)
            continue
        ret, bootstrap = 0.0, 0.0
        for k in range(n):
            j = t + k
            ret += gamma ** k * rewards[j]
            if terminated[j]:  # the episode is over: nothing to bootstrap
                bootstrap = 0.0
                break
            last_valid = j + 1 >= t_len or not valid[j + 1]
            if truncated[j] or last_valid or k == n - 1:  # bootstrap from the observation after transition j
                q_sel = next_q_online[j]
                a = max(range(len(q_sel)), key=lambda i: (q_sel[i], -i))  # argmax, first index on ties
                bootstrap = gamma ** (k + 1) * h_inv_paper(next_q_target[j][a], eps)
                break
        out.append(h_paper(ret + bootstrap, eps))
    return out
