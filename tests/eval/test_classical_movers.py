"""The classical navigator's handling of moving obstacles: which returns it calls dynamic, and what it does."""

from __future__ import annotations

import math

import numpy as np

from robonav.eval.classical import ClassicalConfig, _Navigator

ANGLES = np.linspace(-math.pi, math.pi, 128, endpoint=False)


def _ring(radius: float) -> np.ndarray:
    return np.full(len(ANGLES), radius)


def test_a_return_in_front_of_where_the_last_scan_saw_through_is_dynamic() -> None:
    nav = _Navigator(ClassicalConfig())
    pose = np.zeros(3)
    # First scan: a round room 3 m away everywhere. Nothing to compare with yet: nothing dynamic.
    out = nav._split_dynamic(pose, _ring(3.0), ANGLES, 3.5)
    assert len(nav.people) == 0 and np.array_equal(out, _ring(3.0))
    nav.previous = (pose, _ring(3.0), ANGLES)
    # The robot moved 5 cm forward; the room is the same (beams ahead are 5 cm shorter): still nothing dynamic.
    moved = np.array([0.05, 0.0, 0.0])
    room = _ring(3.0) - 0.05 * np.cos(ANGLES)
    nav._split_dynamic(moved, room, ANGLES, 3.5)
    assert len(nav.people) == 0
    # Someone stepped in 1 m ahead, covering beams 62-66 (around 0 rad): those five returns, and no other, are
    # dynamic, and they come back as NaN (kept out of the matcher and the map).
    scan = room.copy()
    scan[62:67] = 1.0
    out = nav._split_dynamic(moved, scan, ANGLES, 3.5)
    assert len(nav.people) == 5
    np.testing.assert_allclose(np.hypot(nav.people[:, 0], nav.people[:, 1]), 1.0)
    assert np.isnan(out[62:67]).all() and np.array_equal(out[:62], scan[:62]) and np.array_equal(out[67:], scan[67:])


def test_a_person_who_stops_stays_dynamic_for_track_ticks() -> None:
    cfg = ClassicalConfig()
    nav = _Navigator(cfg)
    pose = np.zeros(3)
    room = _ring(3.0)
    room[96] = 1.0  # a pillar 1 m to the left (+pi/2), there from the start
    nav._split_dynamic(pose, room, ANGLES, 3.5)
    nav.previous = (pose, room, ANGLES)
    scan = room.copy()
    scan[62:67] = 1.0  # someone steps in 1 m ahead: dynamic (the last scan saw through)
    nav._split_dynamic(pose, scan, ANGLES, 3.5)
    assert len(nav.people) == 5
    nav.previous = (pose, scan, ANGLES)
    # Next tick they stand still: the last scan ended there too, and the cell was never seen free, so only the
    # track of recent dynamic returns keeps them a person; the pillar, far from them, stays a wall.
    nav.tick += 1
    still = scan.copy()
    nav._split_dynamic(pose, still, ANGLES, 3.5)
    assert len(nav.people) == 5 and np.allclose(nav.people[:, 1], np.sin(ANGLES[62:67]) * 1.0)
    # After track_ticks without a fresh dynamic return the track is forgotten: a person never seen moving since
    # is an obstacle like any other.
    nav.tick += cfg.track_ticks
    nav._split_dynamic(pose, still, ANGLES, 3.5)
    assert len(nav.people) == 0


def test_a_lone_dynamic_return_seeds_no_track() -> None:
    nav = _Navigator(ClassicalConfig())
    pose = np.zeros(3)
    room = _ring(3.0)
    nav._split_dynamic(pose, room, ANGLES, 3.5)
    nav.previous = (pose, room, ANGLES)
    speck = room.copy()
    speck[64] = 1.0  # one spurious short return (sensor noise): dynamic this tick, but not a body to track
    nav._split_dynamic(pose, speck, ANGLES, 3.5)
    assert len(nav.people) == 1 and nav.track == []


def test_backs_off_only_from_someone_coming_closer_and_slows_only_for_people_in_the_way() -> None:
    cfg = ClassicalConfig()
    goal = np.array([10.0, 0.0])
    nav = _Navigator(cfg)
    nav.people = np.array([[1.0, 0.9]])  # off to the side (beyond the lane), standing: no limit
    assert nav._mind_people(goal, 0.5, 0.0) == (0.5, 0.0)
    nav.people = np.array([[1.0, 0.0]])  # in the lane, 0.82 m gap: limited
    assert nav._mind_people(goal, 0.5, 0.0) == (cfg.people_speed, 0.0)
    nav = _Navigator(cfg)  # the robot stands (last command 0); gaps 0.12 m, then the same: not coming closer
    nav.people = np.array([[0.3, 0.0]])
    nav._mind_people(goal, 0.5, 0.3)
    assert nav._mind_people(goal, 0.5, 0.3) == (0.0, 0.3)  # wait, do not back off: backing invites them on
    nav.people = np.array([[0.25, 0.0]])  # 5 cm closer in one 0.1 s tick: 0.5 m/s toward the robot
    assert nav._mind_people(goal, 0.5, 0.3) == (-cfg.backoff_speed, 0.0)


def test_a_person_ahead_slows_then_stops_the_robot_and_one_behind_does_not() -> None:
    cfg = ClassicalConfig()
    nav = _Navigator(cfg)
    goal = np.array([10.0, 0.0])
    nav.people = np.array([[1.0, 0.0]])  # 1 m ahead: gap 0.82 m, inside people_radius, beyond wait_gap
    assert nav._mind_people(goal, 0.5, 0.0) == (cfg.people_speed, 0.0)
    nav.people = np.array([[0.5, 0.05]])  # gap 0.32 m < wait_gap 0.45: wait, turning allowed
    assert nav._mind_people(goal, 0.5, 0.3) == (0.0, 0.3)
    nav.people = np.array([[0.3, 0.0]])  # gap 0.12 m < backoff_gap 0.2: back off
    assert nav._mind_people(goal, 0.5, 0.3) == (-cfg.backoff_speed, 0.0)
    nav.people = np.array([[-0.5, 0.0]])  # behind: no limit (slowing would let them walk into the robot)
    assert nav._mind_people(goal, 0.5, 0.0) == (0.5, 0.0)
