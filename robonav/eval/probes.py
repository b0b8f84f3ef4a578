"""What a policy's memory holds: record episodes with features and privileged targets, then probe them linearly.

On each tick of an evaluation (`robonav.eval.runner.run_episodes`, so the same settings and episodes as
`robonav eval`), `RecordingPolicy` drives with a checkpoint and keeps, per episode:

- features: ``core`` (the LSTM's h and c after the tick, or an MLP core's hidden layer), ``encoder`` (what the
  core received this tick: the memoryless part of the same network), ``observation`` (the vector itself), and
  the core features of ``shadow`` checkpoints fed the same observations (``memoryless``: an MLP-core policy);
- privileged state the policy never sees (`Trajectory`): true pose, the odometry heading increments, distance
  travelled, geodesic distance to the goal, and every mover's position, velocity and visibility to the scanner.

`trajectory_targets` turns a trajectory into the probed quantities (`TARGETS`), each with the ticks where it is
defined; robonav.eval.linear_probe fits and judges the probes by episode. The tool imports torch only through the
checkpoint it loads; the on-robot path never imports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from robonav.eval.runner import run_episodes
from robonav.sim.config import SimConfig
from robonav.sim.episodes import EpisodeSpec

__all__ = ["RECENT_TICKS", "TARGETS", "VISIBLE_TOL", "EpisodeRecord", "RecordingPolicy", "Target", "Trajectory",
           "probe_table", "record_episodes", "trajectory_targets", "visible_movers"]

VISIBLE_TOL = 0.05
"""m: a beam's end point this close to a mover's rim (beyond scanner noise) counts as a return from the mover."""
RECENT_TICKS = 50
"""``mover_seen_recently``: a mover was visible within this many ticks (5 s at the default period: near the
median gap on ``val`` under ``dynamic`` with the default policy, so neither answer is rare)."""


@dataclass(frozen=True)
class Target:
    """One probed quantity."""

    kind: str
    """'regression' (scored by R^2) or 'classification' (accuracy)."""
    movers: bool
    """Defined only where the episode has movers (the ``dynamic`` condition)."""
    doc: str


TARGETS: dict[str, Target] = {
    "mover_velocity": Target("regression", True, "velocity (m/s) of the nearest visible mover, in the robot frame; "
                             "ticks where a mover is visible"),
    "last_seen_position": Target("regression", True, "where (m, robot frame now) the mover seen last was at its "
                                 "last sighting; ticks where none is visible now but one was before"),
    "ticks_since_seen": Target("regression", True, "log(1 + ticks since a mover was last visible); ticks where "
                               "none is visible now but one was before"),
    "mover_seen_recently": Target("classification", True, f"a mover was visible within the last {RECENT_TICKS} "
                                  "ticks; ticks where none is visible now but one was before"),
    "heading_drift": Target("regression", False, "true heading change minus the odometry's (rad) since the start"),
    "distance_travelled": Target("regression", False, "true path length (m) since the start"),
    "geodesic_to_goal": Target("regression", False, "geodesic distance (m) to the goal from the true position"),
}
"""What the probes try to read; none of it is in the observation of the moment, some is partly in its memory grids."""


@dataclass
class Trajectory:
    """Privileged state of one episode, one row per tick at which the policy acted (T ticks, M movers)."""

    pose: np.ndarray
    """[T, 3] true x, y (m), heading (rad, unwrapped: continuous over turns)."""
    odom_dtheta: np.ndarray
    """[T] heading increment of the odometry delta in the frame the policy saw at tick t (0 at the first)."""
    path_length: np.ndarray
    """[T] true distance travelled (m)."""
    geodesic: np.ndarray
    """[T] geodesic distance to the goal (m)."""
    mover_pos: np.ndarray
    """[T, M, 2] mover centres (m, maze frame)."""
    mover_vel: np.ndarray
    """[T, M, 2] mover velocities over the last tick (m/s, maze frame)."""
    mover_visible: np.ndarray
    """[T, M] bool: some beam of the scan at tick t returned from the mover (`visible_movers`)."""


@dataclass
class EpisodeRecord:
    """One recorded episode: features per set and its trajectory."""

    index: int
    """Position in the episode list."""
    features: dict[str, np.ndarray]
    """Feature set name -> [T, F] float32."""
    trajectory: Trajectory
    success: bool


def visible_movers(pose: np.ndarray, beam_rel: np.ndarray, ranges: np.ndarray, mover_pos: np.ndarray,
                   mover_radius: np.ndarray, tol: float = VISIBLE_TOL) -> np.ndarray:
    """bool [M]: movers that some beam returned from: a finite range whose end point lies within the mover's
    radius plus ``tol`` of its centre. ``pose`` (x, y, heading), ``beam_rel`` [B] beam angles in the robot
    frame, ``ranges`` [B] REP 117 (inf and NaN returned from nothing), mover_pos [M, 2], mover_radius [M]."""
    r = np.asarray(ranges, dtype=np.float64)
    ok = np.isfinite(r) & (r > 0)
    if not ok.any() or len(mover_pos) == 0:
        return np.zeros(len(mover_pos), dtype=bool)
    ang = pose[2] + beam_rel[ok]
    ends = np.stack([pose[0] + r[ok] * np.cos(ang), pose[1] + r[ok] * np.sin(ang)], axis=1)  # [b, 2]
    dist = np.hypot(ends[None, :, 0] - mover_pos[:, None, 0], ends[None, :, 1] - mover_pos[:, None, 1])  # [M, b]
    return (dist <= (mover_radius + tol)[:, None]).any(axis=1)


def _to_robot(vec: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Maze-frame vectors [T, 2] rotated into the robot frame of headings [T]."""
    c, s = np.cos(heading), np.sin(heading)
    return np.stack([c * vec[:, 0] + s * vec[:, 1], -s * vec[:, 0] + c * vec[:, 1]], axis=1)


def trajectory_targets(traj: Trajectory, recent: int = RECENT_TICKS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every `TARGETS` quantity of one episode: name -> (values [T, k], defined [T] bool).

    Mover targets are defined nowhere in an episode without movers."""
    t_len = len(traj.pose)
    th = traj.pose[:, 2]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "heading_drift": (((th - th[0]) - np.cumsum(traj.odom_dtheta))[:, None], np.ones(t_len, dtype=bool)),
        "distance_travelled": (traj.path_length[:, None], np.ones(t_len, dtype=bool)),
        "geodesic_to_goal": (traj.geodesic[:, None], np.ones(t_len, dtype=bool)),
    }
    vis = traj.mover_visible.reshape(t_len, -1)
    m = vis.shape[1]
    # Nearest visible mover's velocity.
    vel = np.zeros((t_len, 2))
    any_vis = np.asarray(vis.any(axis=1), dtype=bool)  # [T]
    nearest = np.zeros(t_len, dtype=np.int64)
    if m:
        d = np.hypot(traj.mover_pos[:, :, 0] - traj.pose[:, None, 0], traj.mover_pos[:, :, 1] - traj.pose[:, None, 1])
        nearest = np.argmin(np.where(vis, d, np.inf), axis=1)  # [T]
        vel = _to_robot(traj.mover_vel[np.arange(t_len), nearest], th)
    out["mover_velocity"] = (vel, any_vis)
    # Last sighting: tick, and where the mover then seen (the nearest if several) was.
    last_tick = np.full(t_len, -1)
    last_pos = np.zeros((t_len, 2))
    tick, pos = -1, np.zeros(2)
    for t in range(t_len):
        if any_vis[t]:
            tick, pos = t, traj.mover_pos[t, nearest[t]]
        last_tick[t], last_pos[t] = tick, pos
    hidden = ~any_vis & (last_tick >= 0)
    since = np.arange(t_len) - last_tick
    out["last_seen_position"] = (_to_robot(last_pos - traj.pose[:, :2], th), hidden)
    out["ticks_since_seen"] = (np.log1p(np.maximum(since, 0)).astype(np.float64)[:, None], hidden)
    out["mover_seen_recently"] = ((since <= recent).astype(np.int64)[:, None], hidden)
    return out


class _Tap:
    """Captures a model's encoder output (and an MLP core's output) on every forward, via forward hooks."""

    def __init__(self, model: Any) -> None:
        body = model.actor if hasattr(model, "actor") else model.body
        self.layers = int(model.cfg.layers)
        self.recurrent = bool(body.recurrent)
        self.encoder: Any = None
        self.core: Any = None
        body.encoder.register_forward_hook(lambda _m, _i, out: setattr(self, "encoder", out))
        if not self.recurrent:
            body.core.register_forward_hook(lambda _m, _i, out: setattr(self, "core", out))

    def features(self, state: Any) -> tuple[np.ndarray, np.ndarray]:
        """(core [N, F], encoder [N, E]) of the last forward; an LSTM core's are h and c after it."""
        enc = self.encoder[0].numpy()  # [1, N, E] -> [N, E]
        if self.recurrent:
            h, c = state.h[: self.layers], state.c[: self.layers]  # [L, N, H] each, actor layers only
            core = np.concatenate([h.permute(1, 0, 2).reshape(h.shape[1], -1).numpy(),
                                   c.permute(1, 0, 2).reshape(c.shape[1], -1).numpy()], axis=1)
        else:
            core = self.core[0].numpy()
        return core.astype(np.float32), enc.astype(np.float32)


class RecordingPolicy:
    """The runner's Policy: a TorchAgent drives; shadows see the same observations and resets; every tick's
    features and privileged state are kept per episode id (`episodes` turns them into records)."""

    def __init__(self, model: Any, num_envs: int, shadows: dict[str, Any] | None = None) -> None:
        from robonav.policy.agent import TorchAgent

        self.agent = TorchAgent(model, num_envs)
        self.tap = _Tap(model)
        self.shadows = {name: (TorchAgent(m, num_envs), _Tap(m)) for name, m in (shadows or {}).items()}
        self.ticks: dict[int, dict[str, list[Any]]] = {}  # episode id -> column -> per-tick values
        self.spec: dict[int, EpisodeSpec] = {}

    def reset(self, env_ids: np.ndarray) -> None:
        self.agent.reset(env_ids)
        for agent, _ in self.shadows.values():
            agent.reset(env_ids)

    def act(self, obs: np.ndarray, frames: Any, sim: Any) -> np.ndarray:
        actions = self.agent.act(obs)
        core, enc = self.tap.features(self.agent.state)
        shadow = {}
        for name, (agent, tap) in self.shadows.items():
            agent.act(obs)
            shadow[name] = tap.features(agent.state)[0]
        for i in range(sim.num_envs):
            eid = int(sim.episode_id[i])
            rows = self.ticks.get(eid)
            if rows is None:
                rows = self.ticks[eid] = {k: [] for k in ("step", "core", "encoder", "observation", "pose", "odom",
                                                          "path", "geo", "mpos", "mvel", "mvis", *shadow)}
                self.spec[eid] = sim.episodes[i]
            k = int(sim.crowd.count[i])
            pos = sim.crowd.pos[i, :k].copy()
            nb = int(sim.counts[i])
            vis = visible_movers(sim.pose[i], sim.beam_rel[i, :nb], sim.ranges[i, :nb], pos, sim.crowd.radius[i, :k])
            frame = frames[i]
            for key, value in (("step", int(sim.steps[i])), ("core", core[i]), ("encoder", enc[i]),
                               ("observation", np.asarray(obs[i], dtype=np.float32).copy()),
                               ("pose", sim.pose[i].copy()), ("odom", float(frame.odom_delta[2])),
                               ("path", float(sim.path_length[i])), ("geo", float(sim.geo[i])), ("mpos", pos),
                               ("mvel", sim.crowd.vel[i, :k].copy()), ("mvis", vis)):
                rows[key].append(value)
            for name, feats in shadow.items():
                rows[name].append(feats[i])
        return actions

    def episodes(self, episodes: list[EpisodeSpec], results: list[Any]) -> list[EpisodeRecord]:
        """Records in episode order, each cut to its episode's ticks (an idle slot keeps ticking after its end)."""
        index = {id(spec): k for k, spec in enumerate(episodes)}
        records: list[EpisodeRecord | None] = [None] * len(episodes)
        for eid, rows in self.ticks.items():
            k = index[id(self.spec[eid])]
            t_len = int(results[k].steps)
            steps = np.asarray(rows["step"][:t_len])
            if not np.array_equal(steps, np.arange(t_len)):
                raise RuntimeError(f"episode {k}: recorded ticks {steps[:5]}... are not 0..{t_len - 1}")
            feats = {name: np.stack(rows[name][:t_len]) for name in ("core", "encoder", "observation", *self.shadows)}
            traj = Trajectory(
                pose=np.stack(rows["pose"][:t_len]), odom_dtheta=np.asarray(rows["odom"][:t_len]),
                path_length=np.asarray(rows["path"][:t_len]), geodesic=np.asarray(rows["geo"][:t_len]),
                mover_pos=np.stack(rows["mpos"][:t_len]), mover_vel=np.stack(rows["mvel"][:t_len]),
                mover_visible=np.stack(rows["mvis"][:t_len]))
            records[k] = EpisodeRecord(k, feats, traj, bool(results[k].success))
        missing = [k for k, r in enumerate(records) if r is None]
        if missing:
            raise RuntimeError(f"episodes {missing} were never recorded")
        return [r for r in records if r is not None]


def record_episodes(model: Any, episodes: list[EpisodeSpec], config: SimConfig,
                    shadows: dict[str, Any] | None = None, num_envs: int = 8) -> list[EpisodeRecord]:
    """Run ``episodes`` with ``model`` (an ActorCritic or QNetwork in eval mode) under ``config`` (as given: pass
    an eval config) and return one `EpisodeRecord` per episode, in order."""
    # Distinct objects, so each record finds its episode even when the list repeats one.
    episodes = [dataclasses.replace(e) for e in episodes]
    holder: dict[str, RecordingPolicy] = {}

    def factory(n: int) -> RecordingPolicy:
        holder["p"] = RecordingPolicy(model, n, shadows)
        return holder["p"]

    results = run_episodes(factory, episodes, config, num_envs=num_envs)
    return holder["p"].episodes(episodes, results)


def probe_table(records: list[EpisodeRecord], test_fraction: float = 0.3, seed: int = 0, stride: int = 2,
                resamples: int = 1000) -> dict[str, Any]:
    """Every target probed from every feature set: held-out score, 95 % interval and the paired difference to
    the ``observation`` probe (from resampling held-out episodes). Ticks are thinned to every ``stride``-th.

    A target with no defined ticks in the training or the held-out episodes is reported with ``skipped``."""
    from robonav.eval.linear_probe import bootstrap_scores, probe_score, split_episodes

    train, test = split_episodes(len(records), test_fraction, seed)
    sets = list(records[0].features)
    targets = [trajectory_targets(r.trajectory) for r in records]
    table: dict[str, Any] = {"split": {"train": train.tolist(), "test": test.tolist()}, "targets": {}}
    for name, target in TARGETS.items():
        ys, groups = [], []
        feats: dict[str, list[np.ndarray]] = {s: [] for s in sets}
        for k, (rec, tg) in enumerate(zip(records, targets)):
            values, defined = tg[name]
            keep = defined & (np.arange(len(defined)) % stride == 0)
            ys.append(values[keep])
            groups.append(np.full(int(keep.sum()), k))
            for s in sets:
                feats[s].append(rec.features[s][keep])
        y, g = np.concatenate(ys), np.concatenate(groups)
        entry: dict[str, Any] = {"kind": target.kind, "doc": target.doc}
        y = y[:, 0] if target.kind == "classification" else y
        tr_eps, te_eps = np.intersect1d(np.unique(g), train), np.intersect1d(np.unique(g), test)
        if len(tr_eps) < 2 or len(te_eps) < 1:
            entry["skipped"] = (f"defined in {len(tr_eps)} training and {len(te_eps)} held-out episodes; needs at "
                                "least 2 and 1")
            table["targets"][name] = entry
            continue
        scores = {s: probe_score(np.concatenate(feats[s]), y, g, train, test, target.kind, seed=seed) for s in sets}
        held = np.isin(g, test)
        boot = bootstrap_scores(y[held], g[held], {s: sc.predictions for s, sc in scores.items()}, target.kind,
                                resamples=resamples, seed=seed)
        entry.update(rows_train=scores[sets[0]].train_rows, rows_test=scores[sets[0]].test_rows,
                     episodes_train=len(tr_eps), episodes_test=len(te_eps))
        if target.kind == "classification":
            majority = float(np.mean(y[~held]) >= 0.5)
            entry["majority_accuracy"] = float(np.mean(y[held] == majority))
        entry["scores"] = {s: {"score": scores[s].score, "alpha": scores[s].alpha,
                               "ci95": np.nanpercentile(boot[:, j], [2.5, 97.5]).tolist()}
                           for j, s in enumerate(sets)}
        if "observation" in sets:
            base = sets.index("observation")
            entry["minus_observation"] = {
                s: {"difference": scores[s].score - scores["observation"].score,
                    "ci95": np.nanpercentile(boot[:, j] - boot[:, base], [2.5, 97.5]).tolist()}
                for j, s in enumerate(sets) if s != "observation"}
        table["targets"][name] = entry
    return table
