"""Evaluation metrics: per-episode results, their summary with intervals, and paired comparisons of two policies.

SPL (success weighted by path length, Anderson et al. 2018): ``S * l / max(p, l)`` per episode, with S = 1 on
success, l the shortest path and p the path the robot drove; its mean over episodes is the suite's SPL.

Intervals (95 %, z = 1.96 unless given):

- success rate: Wilson score interval (good coverage for small n and rates near 0 or 1);
- mean SPL: normal approximation, mean +- z * s / sqrt(n) with the sample standard deviation s, clipped to
  [0, 1]; with fewer than two episodes it is the whole range [0, 1];
- paired success difference: Newcombe's hybrid score interval for paired proportions (Newcombe 1998, method 10),
  built from the two Wilson intervals and the phi correlation of the paired outcomes;
- paired SPL difference: normal approximation on the per-episode differences ([-1, 1] below two episodes);
- McNemar's exact test: two-sided binomial test of the discordant pairs (one policy succeeds, the other fails).

A difference whose interval contains 0 (McNemar p >= 0.05) is within the noise of that many episodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robonav.errors import UserError

__all__ = [
    "EpisodeResult",
    "PairingError",
    "mcnemar_exact",
    "newcombe_paired_interval",
    "paired_comparison",
    "spl_value",
    "summarize",
    "wilson_interval",
]

Z95 = 1.959963984540054
"""Two-sided 95 % normal quantile."""


class PairingError(UserError, ValueError):
    """Two result lists that are not the same episodes in the same order, so they cannot be compared pairwise."""


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / n``; (0, 1) when n is 0.

    >>> [round(x, 3) for x in wilson_interval(8, 10)]
    [0.49, 0.943]
    """
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"wilson_interval needs 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # the ends are exact at 0 and n, not rounded
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def spl_value(success: bool, shortest_path_length: float, path_length: float) -> float:
    """SPL of one episode: ``S * l / max(p, l)`` (0 on failure; 1 for a success along the shortest path).

    >>> spl_value(True, 10.0, 12.5), spl_value(False, 10.0, 10.0)
    (0.8, 0.0)
    """
    if not success:
        return 0.0
    if not shortest_path_length > 0:
        return 1.0
    return float(shortest_path_length / max(path_length, shortest_path_length))


@dataclass(frozen=True)
class EpisodeResult:
    """What one evaluation episode gave."""

    maze_hash: str
    """`Maze.hash()` of the episode's maze (walls, start, goal, cell)."""
    maze_name: str
    """The maze's name (may be empty)."""
    seed: int
    """The episode's noise seed."""
    success: bool
    """The robot centre came within the goal radius before the time limit."""
    spl: float
    """``success * shortest_path_length / max(path_length, shortest_path_length)``."""
    path_length: float
    """Metres the robot drove (true pose)."""
    shortest_path_length: float
    """Geodesic metres from start to goal."""
    steps: int
    """Control ticks the episode lasted."""
    collisions: int
    """Contacts with walls begun during the episode."""
    family: str = ""
    """Generator family of the maze, or 'file'."""
    mover_contacts: int = 0
    """Contacts with moving obstacles begun during the episode (0 where the world has none)."""
    duration: float = math.nan
    """Seconds the episode lasted (steps times the control period)."""
    min_clearance: float = math.nan
    """Smallest distance (m) from the robot's edge to a wall over the episode (true geometry; 0 in contact)."""
    min_clearance_movers: float = math.nan
    """Smallest distance (m) from the robot's edge to a mover's body over the episode (true geometry; 0 in
    contact; inf in an episode without movers, NaN where not measured)."""
    conditions: tuple[str, ...] = ("nominal",)
    """The named conditions the episode ran under (robonav.eval.conditions)."""

    @classmethod
    def from_info(cls, info: dict[str, Any], family: str = "", period: float = math.nan,
                  min_clearance: float = math.nan, conditions: tuple[str, ...] = ("nominal",),
                  min_clearance_movers: float = math.nan) -> EpisodeResult:
        """Build from `MazeSim.info` at the end of an episode (whose ``maze`` is the name, or the hash if unnamed);
        ``mover_contacts`` is read with a default of 0 (a world without movers)."""
        success = bool(info["is_success"])
        shortest, path = float(info["shortest_path_length"]), float(info["path_length"])
        name = str(info["maze"])
        steps = int(info["episode_steps"])
        return cls(maze_hash=str(info["maze_hash"]), maze_name="" if name == info["maze_hash"] else name,
                   seed=int(info["episode_seed"]), success=success, spl=spl_value(success, shortest, path),
                   path_length=path, shortest_path_length=shortest, steps=steps,
                   collisions=int(info["collisions"]), family=family,
                   mover_contacts=int(info.get("mover_contacts", 0)), duration=steps * period,
                   min_clearance=min_clearance, min_clearance_movers=min_clearance_movers,
                   conditions=tuple(conditions))

    @property
    def contact(self) -> bool:
        """The episode had any contact, with a wall or a mover."""
        return self.collisions + self.mover_contacts > 0


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _normal_interval(xs: list[float], lo: float, hi: float, z: float = Z95) -> list[float]:
    """mean +- z * s / sqrt(n), clipped to [lo, hi]; [lo, hi] itself below two samples."""
    n = len(xs)
    if n < 2:
        return [lo, hi]
    m = _mean(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    half = z * s / math.sqrt(n)
    return [max(lo, m - half), min(hi, m + half)]


def _group(results: list[EpisodeResult]) -> dict[str, Any]:
    n = len(results)
    wins = sum(r.success for r in results)
    spls = [r.spl for r in results]
    return {
        "episodes": n,
        "success_rate": wins / n if n else math.nan,
        "success_ci95": list(wilson_interval(wins, n)),
        "spl": _mean(spls),
        "spl_ci95": _normal_interval(spls, 0.0, 1.0),
        "collisions_per_episode": _mean([float(r.collisions) for r in results]),
        "collision_episodes": _mean([float(r.contact) for r in results]),
        "mover_contacts": _mean([float(r.mover_contacts) for r in results]),
        "time_to_goal": _mean([r.duration for r in results if r.success]),
        "min_clearance": _mean([r.min_clearance for r in results]),
        "min_clearance_movers": _mean([r.min_clearance_movers for r in results
                                       if math.isfinite(r.min_clearance_movers)]),
        "mean_steps": _mean([float(r.steps) for r in results]),
    }


def _by(results: list[EpisodeResult], key: Callable[[EpisodeResult], str]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[EpisodeResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return {k: _group(v) for k, v in groups.items()}


def _maze_keys(results: list[EpisodeResult]) -> Callable[[EpisodeResult], str]:
    """Key of a maze in ``per_maze``: its name, or ``name@hash`` where one name covers several mazes, or the hash
    of an unnamed maze."""
    hashes: dict[str, set[str]] = {}
    for r in results:
        hashes.setdefault(r.maze_name, set()).add(r.maze_hash)

    def key(r: EpisodeResult) -> str:
        if not r.maze_name:
            return r.maze_hash
        return r.maze_name if len(hashes[r.maze_name]) == 1 else f"{r.maze_name}@{r.maze_hash}"

    return key


def summarize(results: list[EpisodeResult]) -> dict[str, Any]:
    """Overall, per-maze and per-family figures (plain JSON types), in the keys `robonav eval --json` prints.

    Each group has ``episodes``, ``success_rate``, ``success_ci95`` [lo, hi], ``spl``, ``spl_ci95`` [lo, hi],
    ``collisions_per_episode``, ``collision_episodes`` (share of episodes with any contact), ``mover_contacts``
    (per episode), ``time_to_goal`` (mean seconds over successes), ``min_clearance`` (mean of the per-episode
    minimum distance from the robot's edge to a wall, m), ``min_clearance_movers`` (the same to the movers'
    bodies, over the episodes that had movers; NaN when none had) and ``mean_steps``; the top level adds ``conditions``,
    ``per_maze`` (keyed by maze name, see `_maze_keys`, each with its ``maze_hash``), ``per_family``, and the
    ``maze_hashes`` and ``seeds`` of the episodes in order. Means over no episodes are NaN.
    """
    out = _group(results)
    key = _maze_keys(results)
    per_maze = _by(results, key)
    for r in results:
        per_maze[key(r)]["maze_hash"] = r.maze_hash
    out["per_maze"] = per_maze
    out["per_family"] = _by(results, lambda r: r.family or "unknown")
    out["maze_hashes"] = [r.maze_hash for r in results]
    out["seeds"] = [r.seed for r in results]
    out["conditions"] = list(_conditions(results, "summary"))
    return out


def _conditions(results: list[EpisodeResult], what: str) -> tuple[str, ...]:
    """The one condition list of ``results`` (nominal when empty); mixed lists are refused."""
    found = {r.conditions for r in results}
    if len(found) > 1:
        raise PairingError(f"{what}: the results mix conditions {sorted(','.join(c) for c in found)}; summarize "
                           "each condition's results on its own")
    return found.pop() if found else ("nominal",)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (A succeeded alone, B succeeded alone)."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_a} and {only_b}")
    m = only_a + only_b
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(only_a, only_b) + 1)) / 2.0**m
    return min(1.0, 2.0 * tail)


def newcombe_paired_interval(both: int, only_a: int, only_b: int, neither: int,
                             z: float = Z95) -> tuple[float, float]:
    """Newcombe's (1998, method 10) interval for p_A - p_B from paired binary outcomes."""
    n = both + only_a + only_b + neither
    if n == 0:
        return -1.0, 1.0
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson_interval(both + only_a, n, z)
    l2, u2 = wilson_interval(both + only_b, n, z)
    denom = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(denom) if denom > 0 else 0.0
    delta = p1 - p2
    down = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    up = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, delta - down), min(1.0, delta + up)


def paired_comparison(a: list[EpisodeResult], b: list[EpisodeResult]) -> dict[str, Any]:
    """Compare policy A with policy B on the same episodes (same maze hash and seed at every position).

    Returns ``episodes``, ``success_rate_a``/``_b``, ``success_diff`` (A - B) with ``success_diff_ci95``
    (Newcombe), ``only_a``/``only_b`` (discordant episodes), ``mcnemar_p``, ``spl_a``/``_b``, ``spl_diff`` with
    ``spl_diff_ci95`` (paired normal approximation) and ``significant`` (McNemar p < 0.05).
    """
    if len(a) != len(b):
        raise PairingError(f"paired comparison needs the same episodes: A has {len(a)} results, B has {len(b)}; "
                           "run both policies on one episode-list file")
    for k, (ra, rb) in enumerate(zip(a, b)):
        if (ra.maze_hash, ra.seed) != (rb.maze_hash, rb.seed):
            raise PairingError(f"paired comparison needs the same episodes: episode {k} is maze {ra.maze_hash} seed "
                               f"{ra.seed} in A but maze {rb.maze_hash} seed {rb.seed} in B; run both policies on "
                               "one episode-list file")
    ca, cb = _conditions(a, "paired comparison A"), _conditions(b, "paired comparison B")
    if ca != cb:
        raise PairingError(f"paired comparison needs the same conditions: A ran under {','.join(ca)}, B under "
                           f"{','.join(cb)}; run both policies with the same --condition")
    n = len(a)
    both = sum(ra.success and rb.success for ra, rb in zip(a, b))
    only_a = sum(ra.success and not rb.success for ra, rb in zip(a, b))
    only_b = sum(rb.success and not ra.success for ra, rb in zip(a, b))
    diffs = [ra.spl - rb.spl for ra, rb in zip(a, b)]
    p = mcnemar_exact(only_a, only_b)
    return {
        "episodes": n,
        "success_rate_a": (both + only_a) / n if n else math.nan,
        "success_rate_b": (both + only_b) / n if n else math.nan,
        "success_diff": (only_a - only_b) / n if n else math.nan,
        "success_diff_ci95": list(newcombe_paired_interval(both, only_a, only_b, n - both - only_a - only_b)),
        "only_a": only_a,
        "only_b": only_b,
        "mcnemar_p": p,
        "spl_a": _mean([r.spl for r in a]),
        "spl_b": _mean([r.spl for r in b]),
        "spl_diff": _mean(diffs),
        "spl_diff_ci95": _normal_interval(diffs, -1.0, 1.0),
        "significant": p < 0.05,
    }
