"""The shipped URDF and the simulated robot describe the same body."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pybullet as p
import pytest

from robonav.data import resource
from robonav.sim.config import RobotConfig


def test_urdf_matches_the_simulated_robot():
    path = resource("sim", "robot", "robonav_diffbot.urdf")
    root = ET.parse(path).getroot()
    cyl = root.find("./link[@name='base_link']/collision/geometry/cylinder")
    mass = root.find("./link[@name='base_link']/inertial/mass")
    scan = root.find("./joint[@name='scan_joint']/origin")
    cfg = RobotConfig()
    assert float(cyl.get("radius")) == pytest.approx(cfg.radius)
    assert float(cyl.get("length")) == pytest.approx(cfg.height)
    assert float(mass.get("value")) == pytest.approx(cfg.mass)
    assert float(scan.get("xyz").split()[2]) == pytest.approx(0.75 * cfg.height)  # the world's ray height
    cid = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(str(path), physicsClientId=cid)
        assert p.getNumJoints(body, physicsClientId=cid) == 3
    finally:
        p.disconnect(cid)
