"""The recurrent Q-network of R2D2: the actor-critic's encoder and LSTM core, a dueling head over motion primitives.

The observation normaliser and the body (encoder MLP -> LSTM core) are the same classes as ``ActorCritic``'s, so a
Q policy is the same network up to its last layer. The head scores a fixed set of motion primitives, (v, omega)
pairs in SI units from ``QConfig``; acting greedily means driving the best-scored primitive. Two forms share
weights, and recurrent state is passed in and returned (``LstmState``), never kept in the module:

    forward(obs [T,B,D], state, episode_starts [T,B]) -> (q [T,B,A], state)   replayed sequences and acting
    step(obs [1,D], h, c) -> (action [1,2] SI, h, c)                          the deployment form export traces

``step`` has ``ActorCritic.step``'s contract, so export, quantization, the runtimes and HIL take a Q policy
unchanged: the greedy primitive is picked with argmax and gathered from a registered buffer (no Python branch on
values, so the traced graph holds ArgMax + Gather).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robonav.errors import UserError
from robonav.policy.actor_critic import PolicyConfig, _Body
from robonav.policy.normalizer import ObsNormalizer
from robonav.policy.state import LstmState

DEFAULT_PRIMITIVES: tuple[tuple[float, float], ...] = (
    (0.5, 0.0),  # forward fast
    (0.35, 0.0),  # forward slow: at 0.2 m/s a greedy Q policy chose it on 67 % of ticks on the hand-drawn spiral and
    # timed out (the action gap to fast forward is ~0.01 per tick, below the Q noise); 0.35 is the arcs' speed
    (0.35, 1.0),  # arc left
    (0.35, -1.0),  # arc right
    (0.0, 1.5),  # turn in place left
    (0.0, -1.5),  # turn in place right
    (-0.15, 0.0),  # slow reverse
)


class QConfigError(UserError, ValueError):
    """A Q-network setting that cannot describe a Q policy."""


@dataclass(frozen=True)
class QConfig:
    """The Q head; saved in every Q checkpoint beside the PolicyConfig."""

    primitives: tuple[tuple[float, float], ...] = DEFAULT_PRIMITIVES
    """The discrete actions: (v m/s, omega rad/s) pairs, REP 103 signs (omega > 0 turns left)."""
    dueling: bool = True
    """Dueling head (Wang et al. 2016): Q = V + A - mean(A); False: one linear layer to Q."""

    def __post_init__(self) -> None:
        if len(self.primitives) < 2:
            raise QConfigError(f"q.primitives needs at least 2 (v, omega) pairs to choose from, got "
                               f"{len(self.primitives)}: list the motion primitives in the launch file")
        for i, p in enumerate(self.primitives):
            if len(p) != 2:
                raise QConfigError(f"q.primitives[{i}] must be a (v, omega) pair, got {p!r}")


class QNetwork(nn.Module):
    """Q values of every motion primitive from one observation vector and the recurrent state."""

    primitives: torch.Tensor

    def __init__(self, obs_dim: int, policy_cfg: PolicyConfig | None = None, q_cfg: QConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = policy_cfg or PolicyConfig()
        self.q_cfg = q_cfg = q_cfg or QConfig()
        if cfg.separate_critic:
            raise QConfigError("policy.separate_critic=true has no meaning for a Q-network (there is no critic): "
                               "set policy.separate_critic=false for the Q learner")
        self.obs_dim = obs_dim
        self.num_actions = len(q_cfg.primitives)
        self.normalizer = ObsNormalizer(obs_dim)
        self.body = _Body(obs_dim, cfg)
        if q_cfg.dueling:
            self.value_head: nn.Linear | None = nn.Linear(cfg.hidden, 1)
            self.advantage_head = nn.Linear(cfg.hidden, self.num_actions)
        else:
            self.value_head = None
            self.advantage_head = nn.Linear(cfg.hidden, self.num_actions)
        self.register_buffer("primitives", torch.tensor(q_cfg.primitives, dtype=torch.float32))

    @property
    def state_layers(self) -> int:
        """Layers of the LstmState (the same layout as ActorCritic without a separate critic)."""
        return self.cfg.layers

    def initial_state(self, batch: int) -> LstmState:
        z = torch.zeros(self.state_layers, batch, self.cfg.hidden)
        return LstmState(z, z.clone())

    def head(self, feat: torch.Tensor) -> torch.Tensor:
        """Q values [..., A] from core features [..., H]: V + A - mean_a(A) when dueling."""
        adv = self.advantage_head(feat)
        if self.value_head is None:
            return adv
        return self.value_head(feat) + adv - adv.mean(dim=-1, keepdim=True)

    def forward(self, obs: torch.Tensor, state: LstmState, episode_starts: torch.Tensor
                ) -> tuple[torch.Tensor, LstmState]:
        """Sequences: obs [T, B, D] -> (q [T, B, A], state after step T-1); the state is zeroed before every step
        whose ``episode_starts`` [T, B] is 1 (robonav's one masking rule)."""
        feat, state = self.body(self.normalizer(obs), state, episode_starts)
        return self.head(feat), state

    def step(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Deployment form: obs [1, D], h, c [L, 1, H] -> (action [1, 2] (v, omega) in SI units, h', c').

        The greedy primitive (argmax, first index on ties, as ``torch.argmax``) gathered from the buffer.
        """
        feat, h, c = self.body.step(self.normalizer(obs), h, c)
        best = torch.argmax(self.head(feat), dim=-1)  # [1]
        return self.primitives[best], h, c
