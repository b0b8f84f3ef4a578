"""R2D2 (Kapturowski et al. 2019) on one machine: an epsilon-greedy actor on a vector env, a sequence replay, a learner.

Top to bottom, one ``train`` loop:

    act      every env steps with its own epsilon (the Ape-X ladder eps_i = base^(1 + 7 i / (N - 1))); the actor
             keeps h, c explicitly, zeroes them where an episode starts (the one masking rule) and records each
             step's INPUT state; demonstrators (``demo_every`` > 0) are envs a teacher drives instead, its command
             snapped to the nearest primitive (R2D3's demonstrations, as actors sharing the one replay)
    store    the sequencer cuts each env's stream into burn_in + seq_len windows (robonav.train.r2d2.sequencer)
             that enter the prioritized replay at max priority
    learn    after ``warmup_steps``, as many learner steps as keep the replay ratio at or under its bound:
             sample -> burn-in + n-step double-Q loss (robonav.train.r2d2.loss) -> Adam -> new priorities; the
             target network is copied from the online one when learning starts and every ``target_every`` steps

Stated choices where the paper has no single answer:
- The observation normaliser's statistics are updated from the actor's observations during the warmup only and
  frozen when learning starts (the target copy is taken then), so the inputs of replayed sequences never drift
  (warmup_steps = 0: the normaliser stays the identity).
- The actor acts with the current online weights (one process: no actor parameter lag); the parameter lag of a
  sampled sequence is the number of learner steps since its first step was acted.
- A checkpoint changes nothing, as in robonav's PPO trainer: ``state_dict`` is a snapshot and the episodes in
  flight run on. A learner that loads it restarts those episodes from their saved (maze, seed) with a zero state
  and drops the open sequences (never stored); everything else continues exactly. (Restarting them at every
  checkpoint made resume exact, but then no episode longer than the checkpoint period could ever end.)
- A state saved without its replay (``state_dict(include_replay=False)``, what ``robonav train`` checkpoints: the
  replay is ~1 GB at the default capacity) is resumed by refilling: the replay starts empty (its sampling RNG
  continues) and learning waits for ``warmup_steps`` more environment steps, acted by the loaded online network;
  weights, target, optimiser, counters and the other RNG streams continue exactly. The replay-ratio bound keeps
  counting from the first warmup, so the refill's steps allow a few catch-up updates (ratio * warmup_steps /
  (batch * seq_len): about 8 at the defaults).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from robonav.errors import UserError
from robonav.policy.actor_critic import PolicyConfig
from robonav.policy.q_network import QConfig, QNetwork
from robonav.sim.episodes import EpisodeSpec
from robonav.sim.maze import parse_maze
from robonav.train.r2d2.loss import r2d2_loss
from robonav.train.r2d2.replay import PrioritizedReplay
from robonav.train.r2d2.sequencer import Sequencer

STATE_FORMAT = "robonav.r2d2/1"


class R2D2Error(UserError, ValueError):
    """Settings or an environment the R2D2 learner cannot run with."""


@dataclass(frozen=True)
class R2D2Config:
    """Settings of the recurrent Q learner (defaults: the paper's, where it has them)."""

    n_step: int = 5
    """Steps of the n-step return before bootstrapping."""
    gamma: float = 0.997
    """Discount per control step."""
    burn_in: int = 40
    """Prefix steps per sequence that only rebuild the recurrent state (no loss, no gradient); 0: none."""
    seq_len: int = 80
    """Trained steps per replay sequence (m); stored sequences hold burn_in + seq_len steps + 1 observation."""
    overlap: int = 40
    """Trained steps shared by adjacent sequences of an episode (m / 2)."""
    batch: int = 32
    """Sequences per learner step."""
    lr: float = 1e-4
    """Adam learning rate (at the start, with ``lr_schedule: linear``)."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """'linear': ``robonav train`` anneals the learning rate to 0 at ``train.total_steps`` env steps (as PPO's
    recipe does), so the greedy policy settles instead of drifting; 'constant': the paper's."""
    adam_eps: float = 1e-3
    """Adam epsilon."""
    target_every: int = 2500
    """Learner steps between copies of the online network into the target network."""
    capacity: int = 4000
    """Replay capacity in sequences (about capacity * (seq_len - overlap) environment steps of history)."""
    eta: float = 0.9
    """Priority mix: eta * max |delta| + (1 - eta) * mean |delta| over a sequence's trained steps."""
    alpha: float = 0.9
    """Priority exponent: P(i) = p_i^alpha / sum_k p_k^alpha."""
    beta: float = 0.6
    """Importance-sampling exponent (the paper's Table 2; its text says the weights brought no benefit: 0 turns
    them off)."""
    eps_base: float = 0.4
    """Epsilon ladder base: env i of N explores with eps_base^(1 + eps_alpha * i / (N - 1))."""
    eps_alpha: float = 7.0
    """Epsilon ladder exponent span."""
    replay_ratio: float = 1.0
    """Upper bound on trained transitions sampled per environment step (each update samples batch * seq_len);
    learner steps run whenever they keep the ratio at or under it."""
    init_state: Literal["zero", "stored"] = "stored"
    """Start state of replayed sequences: the actor's stored state, or zeros (the paper's ablation)."""
    warmup_steps: int = 20_000
    """Environment steps (all envs) acted before learning starts."""
    loss: Literal["squared", "huber"] = "squared"
    """TD loss on the rescaled errors: delta^2 / 2 or Huber (delta 1)."""
    rescale_eps: float = 1e-3
    """eps of the value rescaling h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x."""
    max_grad_norm: float = 0.0
    """Gradient-norm clip (0: off; the paper does not clip)."""
    window: int = 200
    """Finished episodes the reported success rate is computed over."""
    demo_every: int = 0
    """Demonstrators (R2D3's idea, Gulcehre et al. 2019, as actors): every ``demo_every``-th env of each env
    worker is driven by ``demo_teacher``, its command snapped to the nearest motion primitive, and its steps join
    the same replay (0: none). Their episodes are left out of the success rate and the curriculum."""
    demo_teacher: str = "classical"
    """The demonstrators' driver: 'classical' (frontier + A* on its own sensors) or 'expert' (privileged)."""
    num_envs: int = 32
    """Environments acted in side by side by ``robonav train`` (the learner itself acts in the env it is given)."""
    chunk_steps: int = 4096
    """Environment steps (all envs) per chunk of ``robonav train``: its unit of logging, curriculum checks and
    ``checkpoint_every`` (PPO's update, 128 steps x 32 envs)."""

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.seq_len:
            raise R2D2Error(f"r2d2.overlap must be in [0, seq_len), got overlap={self.overlap}, "
                            f"seq_len={self.seq_len}")
        if self.n_step < 1 or self.burn_in < 0 or self.batch < 1 or self.target_every < 1:
            raise R2D2Error("r2d2 needs n_step >= 1, burn_in >= 0, batch >= 1 and target_every >= 1, got "
                            f"{self.n_step}, {self.burn_in}, {self.batch}, {self.target_every}")
        if self.lr_schedule not in ("constant", "linear"):
            raise R2D2Error(f"r2d2.lr_schedule must be 'constant' or 'linear', got {self.lr_schedule!r}")
        if self.init_state not in ("zero", "stored"):
            raise R2D2Error(f"r2d2.init_state must be 'zero' or 'stored', got {self.init_state!r}")
        if self.num_envs < 1 or self.chunk_steps < 1:
            raise R2D2Error(f"r2d2.num_envs and r2d2.chunk_steps must be >= 1, got {self.num_envs}, {self.chunk_steps}")
        if self.demo_every < 0 or self.demo_teacher not in ("classical", "expert"):
            raise R2D2Error(f"r2d2.demo_every must be >= 0 and r2d2.demo_teacher 'classical' or 'expert', got "
                            f"{self.demo_every}, {self.demo_teacher!r}")
        if self.replay_ratio <= 0:
            raise R2D2Error(f"r2d2.replay_ratio must be > 0, got {self.replay_ratio}")


def epsilon_ladder(num_envs: int, base: float = 0.4, alpha: float = 7.0) -> np.ndarray:
    """[N] exploration rates eps_i = base^(1 + alpha * i / (N - 1)) (Ape-X); one env gets ``base``."""
    if num_envs == 1:
        return np.array([base])
    return base ** (1.0 + alpha * np.arange(num_envs) / (num_envs - 1))


def nearest_primitive(table: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """[N] index of the row of ``table`` [A, 2] nearest (Euclidean, normalised units) to each of ``actions`` [N, 2]."""
    d = ((np.asarray(actions, np.float64)[:, None, :] - np.asarray(table, np.float64)[None]) ** 2).sum(-1)
    return d.argmin(axis=1)


class R2D2Learner:
    """Acts in ``envs`` (a gymnasium vector env, autoreset SAME_STEP, actions normalised to [-1, 1]), stores and
    learns; ``train(max_steps)`` advances the run."""

    def __init__(self, envs: Any, cfg: R2D2Config | None = None, policy_cfg: PolicyConfig | None = None,
                 q_cfg: QConfig | None = None, action_limits: tuple[float, float] | None = None, seed: int = 0
                 ) -> None:
        """``action_limits`` (v_max, omega_max) scale the SI primitives to the env's normalised actions; by default
        they are read from ``envs.config.robot`` (robonav's vector envs)."""
        self.cfg = cfg = cfg or R2D2Config()
        self.envs, self.seed = envs, seed
        mode = envs.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise R2D2Error(f"the R2D2 learner handles vector envs with autoreset_mode SAME_STEP only, got {mode}: "
                            "final observations are needed to bootstrap truncated episodes")
        self.num_envs = int(envs.num_envs)
        obs_dim = int(envs.single_observation_space.shape[0])
        torch.manual_seed(seed)
        self.online = QNetwork(obs_dim, policy_cfg, q_cfg)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.action_table = self._action_table(action_limits)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        self.replay = PrioritizedReplay(cfg.capacity, cfg.alpha, seed)
        self.sequencer = Sequencer(self.num_envs, cfg.seq_len, cfg.overlap, cfg.burn_in)
        self.rng = np.random.default_rng(seed)
        self.epsilons = epsilon_ladder(self.num_envs, cfg.eps_base, cfg.eps_alpha)
        self.env_steps = self.updates = self.episodes = 0
        self.successes: deque[float] = deque(maxlen=cfg.window)
        self.demo_successes: deque[float] = deque(maxlen=cfg.window)
        self.finished: deque[float] = deque(maxlen=1 << 16)
        """Successes of the episodes that ended, oldest first, for a driver to drain (the curriculum)."""
        self.learn_from = cfg.warmup_steps
        """Environment steps (all envs) before which no learner step runs: the warmup, or a refill after resume."""
        self._simulated = hasattr(envs, "episodes_in_flight")
        self.demo, self.demo_actions = np.zeros(self.num_envs, bool), np.zeros(self.num_envs, np.int64)
        """Which envs a teacher drives (demonstrators) and its commands as primitive indices (none: all False)."""
        obs, info = envs.reset(seed=seed)
        self._begin(obs, info)

    def _read_teacher(self, info: dict[str, Any]) -> None:
        """The demonstrators (envs a teacher drives) and their commands as primitive indices, for the next step."""
        if self.cfg.demo_every == 0:  # no demonstrators: the arrays set in __init__ stay all False
            return
        if "teacher_action" not in info:
            raise R2D2Error(f"r2d2.demo_every={self.cfg.demo_every} needs an env with a teacher (infos "
                            "'teacher_action'): build it with a TeacherFactory, as robonav train does")
        self.demo = np.asarray(info["_teacher_action"], bool)
        self.demo_actions = nearest_primitive(self.action_table, info["teacher_action"])

    def _action_table(self, limits: tuple[float, float] | None) -> np.ndarray:
        if limits is None:
            robot = getattr(getattr(self.envs, "config", None), "robot", None)
            if robot is None:
                raise R2D2Error("give action_limits=(v_max, omega_max): the env has no config.robot to read them from")
            limits = (robot.v_max, robot.omega_max)
        prims = self.online.primitives.numpy().astype(np.float64)
        scale = np.asarray(limits, np.float64)
        over = np.flatnonzero((np.abs(prims) > scale + 1e-9).any(axis=1))
        if len(over):
            raise R2D2Error(f"motion primitives {prims[over].tolist()} exceed the robot's limits (v_max, omega_max) = "
                            f"{tuple(limits)}: shrink them in q.primitives or raise the limits")
        return (prims / scale).astype(np.float32)

    def _begin(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        """Fresh episodes in every env: zero state, every env at an episode start."""
        self.obs = np.asarray(obs, np.float32)
        self._read_teacher(info)
        self.state = self.online.initial_state(self.num_envs)
        self.starts = torch.ones(self.num_envs)
        self.returns = np.zeros(self.num_envs)

    # -- the loop -------------------------------------------------------------------------------------------

    def train(self, max_steps: int) -> dict[str, float]:
        """Act for ``max_steps`` more environment steps (all envs together), learning as the replay ratio allows.
        Returns the run's counters and the means of this call's episode and learner metrics."""
        stop = self.env_steps + max_steps
        t0, steps0, updates0 = time.perf_counter(), self.env_steps, self.updates
        sums: dict[str, float] = {}
        returns: list[float] = []
        while self.env_steps < stop:
            returns += self._act()
            while self._may_learn():
                for k, v in self._learn().items():
                    sums[k] = sums.get(k, 0.0) + v
        n_updates = self.updates - updates0
        out = {"env_steps": float(self.env_steps), "updates": float(self.updates), "episodes": float(self.episodes),
               "replay_size": float(len(self.replay)),
               "success_rate": float(np.mean(self.successes)) if self.successes else 0.0,
               "steps_per_s": (self.env_steps - steps0) / max(time.perf_counter() - t0, 1e-9)}
        if returns:
            out["episode_return"] = float(np.mean(returns))
        if self.demo_successes:
            out["demo_success_rate"] = float(np.mean(self.demo_successes))
        if n_updates:
            out.update({k: v / n_updates for k, v in sums.items()})
        out["learner_steps"] = float(n_updates)
        return out

    def _act(self) -> list[float]:
        """One step of every env; returns the returns of the episodes that ended."""
        obs_t = torch.as_tensor(self.obs)
        s_in = self.state.masked(self.starts)
        with torch.no_grad():
            q, self.state = self.online(obs_t[None], s_in, torch.zeros(1, self.num_envs))
        greedy = q[0].argmax(-1).numpy()
        explore = self.rng.random(self.num_envs) < self.epsilons
        random_actions = self.rng.integers(0, len(self.action_table), self.num_envs)
        actions = np.where(self.demo, self.demo_actions, np.where(explore, random_actions, greedy))
        obs, rewards, terminated, truncated, info = self.envs.step(self.action_table[actions])
        done = np.asarray(terminated | truncated)
        next_obs = np.array(obs, np.float32)
        for i in np.flatnonzero(done):  # robonav's envs give a dense array, Gymnasium's an object array
            next_obs[i] = np.asarray(info["final_obs"][i], np.float32)
        if self.env_steps < self.cfg.warmup_steps:  # statistics from the warmup's observations, then frozen
            self.online.normalizer.update(obs_t)
        for seq in self.sequencer.add(self.obs, s_in.h.numpy(), s_in.c.numpy(), actions, rewards, terminated,
                                      truncated, next_obs, self.updates):
            self.replay.add(seq)
        self.returns += rewards
        ended: list[float] = []
        if "final_info" in info and "is_success" in info["final_info"]:
            fi = info["final_info"]
            for i in np.flatnonzero(info["_final_info"]):
                if self.demo[i]:  # a demonstrator's episode: not the learner's success
                    self.demo_successes.append(float(fi["is_success"][i]))
                    continue
                self.successes.append(float(fi["is_success"][i]))
                self.finished.append(float(fi["is_success"][i]))
        for i in np.flatnonzero(done):
            if not self.demo[i]:
                ended.append(float(self.returns[i]))
            self.returns[i] = 0.0
            self.episodes += 1
        self.obs = np.asarray(obs, np.float32)
        self._read_teacher(info)
        self.starts = torch.as_tensor(done, dtype=torch.float32)
        self.env_steps += self.num_envs
        return ended

    def set_lr(self, lr: float) -> None:
        """The learning rate of the learner steps from now on (a schedule's driver calls it)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _may_learn(self) -> bool:
        cfg = self.cfg
        if self.env_steps < self.learn_from or len(self.replay) == 0:
            return False
        sampled = (self.updates + 1) * cfg.batch * cfg.seq_len
        return sampled <= cfg.replay_ratio * (self.env_steps - cfg.warmup_steps)

    def _learn(self) -> dict[str, float]:
        cfg = self.cfg
        if self.updates == 0:
            self.target.load_state_dict(self.online.state_dict())
        batch = self.replay.sample(cfg.batch, cfg.beta)
        out = r2d2_loss(self.online, self.target, batch, burn_in=cfg.burn_in, n_step=cfg.n_step, gamma=cfg.gamma,
                        eta=cfg.eta, init_state=cfg.init_state, loss=cfg.loss, rescale_eps=cfg.rescale_eps)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.online.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.replay.update_priorities(batch.indices, out.priorities)
        lag = float((self.updates - batch.versions).float().mean())
        self.updates += 1
        if self.updates % cfg.target_every == 0:
            self.target.load_state_dict(self.online.state_dict())
        return {**out.metrics, "param_lag": lag}

    # -- resume ---------------------------------------------------------------------------------------------

    def state_dict(self, include_replay: bool = True) -> dict[str, Any]:
        """Everything an exact resume needs, as tensors and plain values (``torch.load(weights_only=True)``);
        ``include_replay=False`` leaves out the replay's contents (kept: its sampling RNG), for a refill resume.

        A snapshot: the run goes on untouched (module docstring); the learner that loads it restarts the
        episodes in flight."""
        env_state = None
        if self._simulated:
            episodes = self.envs.episodes_in_flight()
            env_state = {"episodes": [{"maze": e.maze.to_text(), "seed": e.seed} for e in episodes],
                         "rng_states": self.envs.rng_states()}
        state = copy.deepcopy({  # a snapshot: later training must not change what was returned
            "format": STATE_FORMAT, "config": self._settings(),
            "online": self.online.state_dict(), "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "counters": {"env_steps": self.env_steps, "updates": self.updates, "episodes": self.episodes},
            "successes": list(self.successes), "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "env": env_state,
        })
        if include_replay:
            state["replay"] = self.replay.state_dict()  # already a copy (the largest part: not copied twice)
        else:
            state["replay_rng"] = copy.deepcopy(self.replay.rng.bit_generator.state)
        return state

    def _settings(self) -> dict[str, Any]:
        return {"r2d2": dataclasses.asdict(self.cfg), "policy": dataclasses.asdict(self.online.cfg),
                "q": dataclasses.asdict(self.online.q_cfg)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the run ``state`` came from (same settings, same kind of env); a state without a replay is
        resumed by refilling (module docstring)."""
        if state.get("format") != STATE_FORMAT:
            raise R2D2Error(f"expected an R2D2 learner state ({STATE_FORMAT}), found {state.get('format')!r}")
        saved, mine = state["config"], self._settings()
        differ = sorted(k for k in mine if saved.get(k) != mine[k])
        if differ:
            raise R2D2Error(f"the saved {', '.join(differ)} settings differ from this learner's: resume with the "
                            "settings the run started with")
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        c = state["counters"]
        self.env_steps, self.updates, self.episodes = int(c["env_steps"]), int(c["updates"]), int(c["episodes"])
        if "replay" in state:
            self.replay.load_state_dict(state["replay"])
            self.learn_from = self.cfg.warmup_steps
        else:  # refill: an empty replay, its RNG stream continued, and the warmup again
            self.replay = PrioritizedReplay(self.cfg.capacity, self.cfg.alpha, self.seed)
            self.replay.rng.bit_generator.state = state["replay_rng"]
            self.learn_from = self.env_steps + self.cfg.warmup_steps
        self.successes.clear()
        self.successes.extend(state["successes"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.sequencer = Sequencer(self.num_envs, self.cfg.seq_len, self.cfg.overlap, self.cfg.burn_in)
        if state["env"] is not None and self._simulated:
            self.envs.set_rng_states(state["env"]["rng_states"])
        self._restart(state["env"])

    def _restart(self, env_state: dict[str, Any] | None) -> None:
        if env_state is not None and self._simulated:
            episodes = [EpisodeSpec(parse_maze(d["maze"], "<checkpoint>"), int(d["seed"]))
                        for d in env_state["episodes"]]
            obs, info = self.envs.reset(options={"episodes": episodes, "rebuild": True})
        else:
            obs, info = self.envs.reset()
        self._begin(obs, info)
