"""Metrics on hand-made results: Wilson and Newcombe intervals, the SPL rule, summaries and paired comparisons."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robonav.eval.metrics import (
    EpisodeResult,
    PairingError,
    mcnemar_exact,
    newcombe_paired_interval,
    paired_comparison,
    spl_value,
    summarize,
    wilson_interval,
)


def result(success: bool, spl: float, collisions: int = 0, steps: int = 100, maze: str = "m", seed: int = 0,
           family: str = "perfect", maze_hash: str | None = None) -> EpisodeResult:
    return EpisodeResult(maze_hash=maze_hash or f"h-{maze}", maze_name=maze, seed=seed, success=success, spl=spl,
                         path_length=10.0, shortest_path_length=8.0, steps=steps, collisions=collisions,
                         family=family)


# ------------------------------------------------------------------------------------------------- Wilson
def test_wilson_matches_the_textbook_values() -> None:
    # 8/10: p = 0.8, z^2/n = 0.38416; centre = (0.8 + 0.19208) / 1.38416 = 0.716738;
    # half = 1.96 * sqrt(0.016 + 0.009604) / 1.38416 = 0.226580  ->  (0.4902, 0.9433), as tables give.
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.490162, abs=1e-6)
    assert hi == pytest.approx(0.943318, abs=1e-6)
    # 0/10: the lower end is 0, the upper z^2/n / (1 + z^2/n) = 0.38415 / 1.38415.
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    # Symmetry: 10/10 mirrors 0/10.
    assert wilson_interval(10, 10) == pytest.approx((1 - 0.277533, 1.0), abs=1e-6)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        wilson_interval(11, 10)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(1, 400))
def test_wilson_contains_the_rate_and_stays_in_0_1(k: int, n: int) -> None:
    k = min(k, n)
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


# ---------------------------------------------------------------------------------------------------- SPL
def test_spl_rule() -> None:
    assert spl_value(True, 10.0, 12.5) == pytest.approx(0.8)      # 10 / max(12.5, 10)
    assert spl_value(True, 10.0, 9.0) == 1.0                      # a path shorter than l counts as l
    assert spl_value(False, 10.0, 10.0) == 0.0                    # S = 0
    assert spl_value(True, 0.0, 3.0) == 1.0                       # degenerate l: success is all there is


def test_episode_result_from_sim_info() -> None:
    info = {"is_success": True, "collisions": 2, "path_length": 12.5, "shortest_path_length": 10.0,
            "episode_steps": 250, "maze": "rooms", "maze_hash": "abc", "episode_seed": 7}
    r = EpisodeResult.from_info(info, "file")
    assert (r.maze_name, r.maze_hash, r.seed, r.success, r.steps, r.collisions, r.family) == \
        ("rooms", "abc", 7, True, 250, 2, "file")
    assert r.spl == pytest.approx(0.8)
    unnamed = EpisodeResult.from_info({**info, "maze": "abc", "is_success": False})
    assert unnamed.maze_name == "" and unnamed.spl == 0.0


# ---------------------------------------------------------------------------------------------- summarize
def test_summary_numbers_by_hand() -> None:
    rs = [result(True, 1.0, 0, 100, "a"), result(True, 0.5, 2, 200, "a", seed=1),
          result(False, 0.0, 1, 300, "b", family="rooms"), result(True, 0.8, 1, 400, "b", seed=1, family="rooms")]
    s = summarize(rs)
    assert s["episodes"] == 4
    assert s["success_rate"] == 0.75
    assert s["success_ci95"] == pytest.approx(list(wilson_interval(3, 4)))
    assert s["spl"] == pytest.approx(0.575)
    # deviations 0.425, -0.075, -0.575, 0.225: sum of squares 0.5675, s = sqrt(0.5675 / 3) = 0.434933;
    # half = 1.959964 * 0.434933 / 2 = 0.426226  ->  [0.148774, 1.001226 clipped to 1].
    assert s["spl_ci95"] == pytest.approx([0.148774, 1.0], abs=1e-6)
    assert s["collisions_per_episode"] == 1.0
    assert s["mean_steps"] == 250.0
    assert set(s["per_maze"]) == {"a", "b"}
    assert s["per_maze"]["a"]["success_rate"] == 1.0 and s["per_maze"]["a"]["spl"] == pytest.approx(0.75)
    assert s["per_maze"]["b"]["maze_hash"] == "h-b"
    assert s["per_family"]["rooms"]["episodes"] == 2 and s["per_family"]["rooms"]["success_rate"] == 0.5
    assert s["maze_hashes"] == ["h-a", "h-a", "h-b", "h-b"] and s["seeds"] == [0, 1, 0, 1]


def test_per_maze_keys_tell_apart_mazes_that_share_a_name() -> None:
    rs = [result(True, 1.0, maze="x", maze_hash="h1"), result(False, 0.0, maze="x", maze_hash="h2"),
          result(True, 1.0, maze="", maze_hash="h3")]
    assert set(summarize(rs)["per_maze"]) == {"x@h1", "x@h2", "h3"}


def test_one_episode_gives_the_whole_spl_range() -> None:
    assert summarize([result(True, 0.9)])["spl_ci95"] == [0.0, 1.0]


# ------------------------------------------------------------------------------------------------ paired
def paired(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[EpisodeResult], list[EpisodeResult]]:
    outcomes = [(True, True)] * both + [(True, False)] * only_a + [(False, True)] * only_b + [(False, False)] * neither
    a = [result(x, 0.9 if x else 0.0, seed=k) for k, (x, _) in enumerate(outcomes)]
    b = [result(y, 0.7 if y else 0.0, seed=k) for k, (_, y) in enumerate(outcomes)]
    return a, b


def test_mcnemar_exact_by_hand() -> None:
    # 1 vs 9 discordant pairs: 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024.
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0  # the two-sided tail is capped at 1


def test_newcombe_paired_interval_by_hand() -> None:
    # both 5, A only 1, B only 9, neither 5 (n = 20): p1 = 0.3, p2 = 0.7, delta = -0.4;
    # Wilson(6, 20) = (0.145477, 0.518973), Wilson(14, 20) = (0.481027, 0.854523);
    # phi = (5*5 - 1*9) / sqrt(6*14*14*6) = 16 / 84;
    # down = sqrt(0.154523^2 (2 - 2 phi)) = 0.196617, up = sqrt(0.218973^2 (2 - 2 phi)) = 0.278625.
    lo, hi = newcombe_paired_interval(5, 1, 9, 5)
    assert lo == pytest.approx(-0.4 - 0.196617, abs=1e-6)
    assert hi == pytest.approx(-0.4 + 0.278625, abs=1e-6)
    # Swapping the policies mirrors the interval.
    assert newcombe_paired_interval(5, 9, 1, 5) == pytest.approx((-hi, -lo), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
def test_newcombe_interval_contains_the_difference(both: int, only_a: int, only_b: int, neither: int) -> None:
    n = both + only_a + only_b + neither
    lo, hi = newcombe_paired_interval(both, only_a, only_b, neither)
    delta = (only_a - only_b) / n if n else 0.0
    assert -1.0 <= lo <= delta + 1e-12 and delta - 1e-12 <= hi <= 1.0


def test_paired_comparison_by_hand() -> None:
    a, b = paired(5, 1, 9, 5)
    c = paired_comparison(a, b)
    assert c["episodes"] == 20 and (c["only_a"], c["only_b"]) == (1, 9)
    assert c["success_rate_a"] == 0.3 and c["success_rate_b"] == 0.7 and c["success_diff"] == pytest.approx(-0.4)
    assert c["success_diff_ci95"] == pytest.approx([-0.596617, -0.121375], abs=1e-6)
    assert c["mcnemar_p"] == pytest.approx(22 / 1024) and c["significant"]
    # SPL: A has 0.9 on its 6 successes, B 0.7 on its 14: means 0.27 and 0.49.
    assert c["spl_a"] == pytest.approx(0.27) and c["spl_b"] == pytest.approx(0.49)
    assert c["spl_diff"] == pytest.approx(-0.22)


def test_paired_spl_interval_by_hand() -> None:
    a = [result(True, x, seed=k) for k, x in enumerate([0.9, 0.5, 0.4, 1.0])]
    b = [result(True, x, seed=k) for k, x in enumerate([0.7, 0.5, 0.5, 0.7])]
    # differences 0.2, 0.0, -0.1, 0.3: mean 0.1, s = sqrt((0.01 + 0.01 + 0.04 + 0.04) / 3) = 0.182574;
    # half = 1.959964 * 0.182574 / 2 = 0.178919.
    c = paired_comparison(a, b)
    assert c["spl_diff"] == pytest.approx(0.1)
    assert c["spl_diff_ci95"] == pytest.approx([0.1 - 0.178919, 0.1 + 0.178919], abs=1e-6)
    assert not c["significant"] and c["mcnemar_p"] == 1.0


def test_paired_comparison_refuses_different_episodes() -> None:
    a, b = paired(2, 1, 1, 0)
    with pytest.raises(PairingError, match="A has 4 results, B has 3"):
        paired_comparison(a, b[:3])
    b[2] = result(False, 0.0, seed=99)
    with pytest.raises(PairingError, match=r"episode 2 is maze h-m seed 2 in A but maze h-m seed 99 in B"):
        paired_comparison(a, b)


def test_summary_of_nothing_is_nan_not_an_error() -> None:
    s = summarize([])
    assert s["episodes"] == 0 and math.isnan(s["success_rate"]) and s["per_maze"] == {}


# ---------------------------------------------------------------------------- contacts, time, clearance
def test_from_info_reads_mover_contacts_with_a_default_and_the_new_fields() -> None:
    info = {"is_success": True, "collisions": 0, "path_length": 12.5, "shortest_path_length": 10.0,
            "episode_steps": 250, "maze": "rooms", "maze_hash": "abc", "episode_seed": 7}
    r = EpisodeResult.from_info(info, "file", period=0.1, min_clearance=0.12, conditions=("fov90",))
    assert (r.mover_contacts, r.duration, r.min_clearance, r.conditions, r.contact) == (0, 25.0, 0.12, ("fov90",),
                                                                                       False)
    moved = EpisodeResult.from_info({**info, "mover_contacts": 2})
    assert moved.mover_contacts == 2 and moved.contact and moved.conditions == ("nominal",)


def test_contact_time_and_clearance_summaries_by_hand() -> None:
    base = result(True, 1.0)
    rs = [dataclasses.replace(base, collisions=1, duration=20.0, min_clearance=0.0),
          dataclasses.replace(base, mover_contacts=3, duration=30.0, min_clearance=0.1, seed=1),
          dataclasses.replace(base, success=False, spl=0.0, duration=99.0, min_clearance=0.2, seed=2),
          dataclasses.replace(base, duration=40.0, min_clearance=0.3, seed=3)]
    s = summarize(rs)
    assert s["collision_episodes"] == 0.5  # two of four episodes touched something
    assert s["mover_contacts"] == 0.75  # 3 contacts over 4 episodes
    assert s["time_to_goal"] == 30.0  # (20 + 30 + 40) / 3 successes; the failure's 99 s does not count
    assert s["min_clearance"] == pytest.approx(0.15)  # (0 + 0.1 + 0.2 + 0.3) / 4
    assert s["conditions"] == ["nominal"]
    assert math.isnan(s["min_clearance_movers"])  # no episode had movers


def test_mover_clearance_is_averaged_over_the_episodes_with_movers_only() -> None:
    base = result(True, 1.0)
    rs = [dataclasses.replace(base, min_clearance_movers=0.0),
          dataclasses.replace(base, min_clearance_movers=0.4, seed=1),
          dataclasses.replace(base, min_clearance_movers=math.inf, seed=2),  # no movers: left out
          dataclasses.replace(base, seed=3)]  # not measured (NaN): left out
    assert summarize(rs)["min_clearance_movers"] == pytest.approx(0.2)  # (0 + 0.4) / 2


def test_pairing_refuses_different_conditions_and_summaries_refuse_mixed_ones() -> None:
    a = [result(True, 1.0, seed=k) for k in range(3)]
    b = [dataclasses.replace(r, conditions=("fov90",)) for r in a]
    with pytest.raises(PairingError, match=r"needs the same conditions: A ran under nominal, B under fov90"):
        paired_comparison(a, b)
    assert paired_comparison(b, b)["episodes"] == 3
    with pytest.raises(PairingError, match=r"summary: the results mix conditions \['fov90', 'nominal'\]"):
        summarize(a + b)
