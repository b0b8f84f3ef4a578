"""The LSTM actor-critic (and its memoryless twin): encoder MLP -> LSTM core -> Gaussian action head, value head.

Recurrent state is passed in and returned (``LstmState``), never kept in the module. Three forms share weights:
    forward(obs [T,B,D], state, episode_starts [T,B])  sequences for the PPO update (one LSTM call, split-and-pad)
    act(obs [B,D], state, episode_starts [B])           one step for rollouts (sampling)
    step(obs [1,D], h, c) -> (action, h, c)              the deterministic deployment form that export traces:
                                                         normalisation and SI scaling inside, the LSTM written as
                                                         matmuls plus element-wise gates (docs/design.md)
Actions inside the model are normalised to [-1, 1] per axis; ``step`` returns (v, omega) in SI units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robonav.policy.normalizer import ObsNormalizer
from robonav.policy.sequence import lstm_sequence
from robonav.policy.state import LstmState


@dataclass(frozen=True)
class PolicyConfig:
    """Network shape; saved in every checkpoint."""

    encoder: tuple[int, ...] = (256, 256)
    """Hidden widths of the observation encoder MLP."""
    core: str = "lstm"
    """'lstm' (memory) or 'mlp' (memoryless baseline with the same encoder)."""
    hidden: int = 128
    """LSTM hidden size (or the MLP core's width)."""
    layers: int = 1
    """LSTM layers."""
    separate_critic: bool = False
    """Give the critic its own encoder and LSTM instead of sharing the actor's."""
    init_log_std: float = -0.5
    """Initial log standard deviation of the Gaussian over normalised actions."""

    def __post_init__(self) -> None:
        if self.core not in ("lstm", "mlp"):
            raise ValueError(f"policy.core must be 'lstm' or 'mlp', got {self.core!r}")


class _Body(nn.Module):
    """Encoder MLP plus the recurrent (or feed-forward) core."""

    def __init__(self, obs_dim: int, cfg: PolicyConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for w in cfg.encoder:
            layers += [nn.Linear(width, w), nn.ELU()]
            width = w
        self.encoder = nn.Sequential(*layers)
        self.recurrent = cfg.core == "lstm"
        if self.recurrent:
            self.core: nn.Module = nn.LSTM(width, cfg.hidden, cfg.layers)
        else:
            self.core = nn.Sequential(nn.Linear(width, cfg.hidden), nn.Tanh())

    def forward(self, x: torch.Tensor, state: LstmState, starts: torch.Tensor) -> tuple[torch.Tensor, LstmState]:
        z = self.encoder(x)
        if not self.recurrent:
            return self.core(z), state
        assert isinstance(self.core, nn.LSTM)
        return lstm_sequence(self.core, z, state, starts)

    def step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                            torch.Tensor]:
        """One step with explicit matmuls and gates (PyTorch gate order i, f, g, o)."""
        z = self.encoder(x)
        if not self.recurrent:
            return self.core(z), h, c
        lstm = self.core
        assert isinstance(lstm, nn.LSTM)
        hs, cs = [], []
        for layer in range(lstm.num_layers):
            w_ih = getattr(lstm, f"weight_ih_l{layer}")
            w_hh = getattr(lstm, f"weight_hh_l{layer}")
            b = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
            gates = z @ w_ih.t() + h[layer] @ w_hh.t() + b
            i, f, g, o = gates.chunk(4, dim=-1)
            c_new = torch.sigmoid(f) * c[layer] + torch.sigmoid(i) * torch.tanh(g)
            z = torch.sigmoid(o) * torch.tanh(c_new)
            hs.append(z)
            cs.append(c_new)
        return z, torch.stack(hs), torch.stack(cs)


class ActorCritic(nn.Module):
    """Gaussian policy and value function over one observation vector."""

    action_scale: torch.Tensor

    def __init__(self, obs_dim: int, config: PolicyConfig | None = None,
                 action_scale: tuple[float, float] = (0.5, 2.0)) -> None:
        super().__init__()
        self.cfg = cfg = config or PolicyConfig()
        self.obs_dim = obs_dim
        self.normalizer = ObsNormalizer(obs_dim)
        self.actor = _Body(obs_dim, cfg)
        self.critic = _Body(obs_dim, cfg) if cfg.separate_critic else None
        self.mu = nn.Linear(cfg.hidden, 2)
        self.value_head = nn.Linear(cfg.hidden, 1)
        self.log_std = nn.Parameter(torch.full((2,), cfg.init_log_std))
        self.register_buffer("action_scale", torch.tensor(action_scale, dtype=torch.float32))
        nn.init.orthogonal_(self.mu.weight, 0.01)
        nn.init.zeros_(self.mu.bias)
        nn.init.orthogonal_(self.value_head.weight, 1.0)

    @property
    def state_layers(self) -> int:
        """Layers of the LstmState: the actor's, then the critic's if it has its own."""
        return self.cfg.layers * (2 if self.critic is not None else 1)

    def initial_state(self, batch: int) -> LstmState:
        z = torch.zeros(self.state_layers, batch, self.cfg.hidden)
        return LstmState(z, z.clone())

    def _split(self, state: LstmState) -> tuple[LstmState, LstmState | None]:
        n = self.cfg.layers
        if self.critic is None:
            return state, None
        return LstmState(state.h[:n], state.c[:n]), LstmState(state.h[n:], state.c[n:])

    def forward(self, obs: torch.Tensor, state: LstmState, episode_starts: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, LstmState]:
        """Sequences: obs [T, B, D] -> (mean [T, B, 2] normalised, value [T, B], state after step T-1)."""
        x = self.normalizer(obs)
        actor_state, critic_state = self._split(state)
        feat, actor_state = self.actor(x, actor_state, episode_starts)
        mean = self.mu(feat)
        if self.critic is None:
            value = self.value_head(feat).squeeze(-1)
            return mean, value, actor_state
        assert critic_state is not None
        cfeat, critic_state = self.critic(x, critic_state, episode_starts)
        value = self.value_head(cfeat).squeeze(-1)
        return mean, value, LstmState(torch.cat([actor_state.h, critic_state.h]),
                                      torch.cat([actor_state.c, critic_state.c]))

    def distribution(self, mean: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def act(self, obs: torch.Tensor, state: LstmState, episode_starts: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, LstmState]:
        """One rollout step: obs [B, D] -> (mean [B, 2], value [B], new state)."""
        mean, value, state = self.forward(obs[None], state, episode_starts[None])
        return mean[0], value[0], state

    def step(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Deployment form: obs [1, D], h, c [L, 1, H] -> (action [1, 2] in SI units, h', c'), deterministic.

        The critic is not part of it: a separate critic's state rows pass through unchanged.
        """
        n = self.cfg.layers
        feat, h_a, c_a = self.actor.step(self.normalizer(obs), h[:n], c[:n])
        action = torch.clamp(self.mu(feat), -1.0, 1.0) * self.action_scale
        if self.critic is not None:
            h_a, c_a = torch.cat([h_a, h[n:]]), torch.cat([c_a, c[n:]])
        return action, h_a, c_a
