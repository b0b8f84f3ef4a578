"""Nav2 maps as worlds: PGM (P2, P5) read by hand, map_server's occupancy rules, cells merged with the origin
kept, start and goal drawn far apart or given in map coordinates, bad maps refused by file and field, and
`robonav eval --policy classical --mazes map.yaml` on a drawn floor plan through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robonav.sim.geodesic import cell_distances, geodesic_diameter
from robonav.sim.maze import Maze, load_maze
from robonav.sim.nav2map import Nav2Map, Nav2MapError, _clear, nav2_mazes, read_pgm

ROOT = Path(__file__).resolve().parents[2]
META = "image: {image}\nresolution: 0.05\norigin: [-1.0, -2.0, 0.0]\nnegate: 0\noccupied_thresh: 0.65\n" \
       "free_thresh: 0.196\nmode: trinary\n"


def floor_plan() -> np.ndarray:
    """10 m x 6 m at 0.05 m: outer walls, a wall at x = 5 m with a 1.2 m door, an unknown patch (uint8 shades)."""
    img = np.full((120, 200), 254, np.uint8)  # free (white)
    img[:4, :] = img[-4:, :] = 0
    img[:, :4] = img[:, -4:] = 0
    img[:, 98:102] = 0
    img[40:64, 98:102] = 254  # the door
    img[80:100, 150:170] = 205  # unknown (map_saver's grey)
    return img


def write_map(folder: Path, img: np.ndarray | None = None, meta: str = META, image: str = "office.pgm") -> Path:
    img = floor_plan() if img is None else img
    (folder / image).write_bytes(b"P5\n# a comment\n%d %d\n255\n" % (img.shape[1], img.shape[0]) + img.tobytes())
    (folder / "office.yaml").write_text(meta.format(image=image))
    return folder / "office.yaml"


def test_pgm_p2_and_p5_read_the_same(tmp_path):
    img = np.array([[0, 128, 255], [205, 254, 1]], np.uint8)
    (tmp_path / "a.pgm").write_bytes(b"P5 3 2 255\n" + img.tobytes())
    (tmp_path / "b.pgm").write_text("P2\n# c\n3 2\n255\n0 128 255\n205 254 1\n")
    np.testing.assert_array_equal(read_pgm(tmp_path / "a.pgm"), img / 255.0)
    np.testing.assert_array_equal(read_pgm(tmp_path / "b.pgm"), img / 255.0)
    (tmp_path / "c.pgm").write_bytes(b"P5 2 2 65535\n" + np.array([0, 65535, 32768, 1], ">u2").tobytes())
    np.testing.assert_allclose(read_pgm(tmp_path / "c.pgm"), [[0, 1], [32768 / 65535, 1 / 65535]])


def test_occupancy_rules_and_cells(tmp_path):
    m = Nav2Map(write_map(tmp_path))
    assert m.walls.shape == (120, 200) and m.origin == (-1.0, -2.0)
    assert m.walls[0, 50] and not m.walls[10, 50]  # wall (occ 1.0), free (occ 0.004)
    assert m.walls[90, 160]  # unknown: 205 -> occupancy 50/255 = 0.19608, not below free_thresh 0.196: wall
    walls, cell = m.grid(0.25)
    assert cell == pytest.approx(0.25) and walls.shape == (24, 40)  # 5x5 pixels per cell
    assert walls[:, 0].all() and walls[0].all() and not walls[10, 10]
    assert not walls[10, 19] and not walls[10, 20]  # the door: rows 40..63 px -> cells 8..12
    assert walls[2, 19] or walls[2, 20]  # the wall at x = 5 m
    # map point (0, 0) is maze (1, 2): column 4, row 24 - 1 - 8 = 15
    assert m.to_cell(walls, cell, (0.0, 0.0), "start") == (15, 4)
    with pytest.raises(Nav2MapError, match=r"--goal 9.5,0 lies outside the map \(x from -1 to 9"):
        m.to_cell(walls, cell, (9.5, 0.0), "goal")
    with pytest.raises(Nav2MapError, match=r"--start 4,0 lies in a wall or unknown cell"):
        m.to_cell(walls, cell, (4.0, 0.0), "start")


def test_grid_pads_top_and_right_keeping_the_origin(tmp_path):
    img = np.full((7, 6), 254, np.uint8)
    img[6, 0] = 0  # the bottom-left pixel: a wall
    m = Nav2Map(write_map(tmp_path, img))
    walls, cell = m.grid(0.15)  # 3x3 pixels per cell: 7x6 -> 9x6 padded -> 3x2 cells
    assert walls.shape == (3, 2) and cell == pytest.approx(0.15)
    assert walls[2, 0] and not walls[2, 1] and not walls[1, 0]  # origin cell keeps its wall; padding only on top
    assert walls[0].all()  # the top row holds the padding (7 rows -> 9)


def test_drawn_start_goal_far_apart_with_clearance_and_deterministic(tmp_path):
    path = write_map(tmp_path)
    mazes = nav2_mazes(path, 6, seed=3)
    assert [m.hash() for m in mazes] == [m.hash() for m in nav2_mazes(path, 6, seed=3)]
    assert len({(m.start, m.goal) for m in mazes}) > 1
    clear = _clear(mazes[0].walls, 2)  # the cells start and goal are drawn from (0.35 m / 0.25 m -> 2 cells)
    free = np.argwhere(clear)
    roomy = Maze(~clear, tuple(free[0]), tuple(free[-1]), 0.25)
    diameter = geodesic_diameter(roomy)
    for m in mazes:
        assert isinstance(m, Maze) and m.family == "nav2" and m.cell == pytest.approx(0.25)
        assert cell_distances(roomy, m.start)[m.goal] >= 0.5 * diameter - 1e-9
        for r, c in (m.start, m.goal):  # 0.35 m clearance: two cells each way are free
            assert not m.walls[r - 2:r + 3, c - 2:c + 3].any()
    given = nav2_mazes(path, 2, start=(0.0, 0.0), goal=(7.5, 1.5))
    assert given[0].start == (15, 4) and given[0].goal == given[1].goal
    assert load_maze(path).hash() == nav2_mazes(path, 1)[0].hash()  # load_maze reads a Nav2 map too


@pytest.mark.parametrize(("meta", "match"), [
    (META.replace("resolution: 0.05\n", ""), r"field resolution: missing; expected a number > 0"),
    (META.replace("resolution: 0.05", "resolution: -1"), r"field resolution: expected a number > 0 metres"),
    (META.replace("mode: trinary", "mode: fancy"), r"field mode: expected one of \['trinary', 'scale', 'raw'\]"),
    (META.replace("free_thresh: 0.196", "free_thresh: 0.7"), r"field free_thresh: 0.7 must be below occupied"),
    (META.replace("origin: [-1.0, -2.0, 0.0]", "origin: [1, 2]"), r"field origin: expected \[x, y, yaw\]"),
    (META.replace("negate: 0", "negate: 2"), r"field negate: expected 0 or 1, got 2"),
    (META.replace("image: {image}", "image: gone.pgm"), r"gone.pgm: the map's image does not exist"),
    ("- just\n- a list\n", r"expected a Nav2 map YAML"),
])
def test_bad_maps_name_the_file_and_field(tmp_path, meta, match):
    path = write_map(tmp_path, meta=meta)
    with pytest.raises(Nav2MapError, match=match) as e:
        Nav2Map(path)
    assert str(path.parent) in str(e.value)


def test_truncated_or_foreign_image_refused(tmp_path):
    path = write_map(tmp_path)
    (tmp_path / "office.pgm").write_bytes(b"P5 200 120 255\n" + bytes(100))
    with pytest.raises(Nav2MapError, match=r"office.pgm: PGM raster holds 100 bytes, 24000 expected"):
        Nav2Map(path)
    (tmp_path / "office.pgm").write_bytes(b"P6 2 2 255\n" + bytes(12))
    with pytest.raises(Nav2MapError, match=r"not a PGM image \(magic b'P6'"):
        Nav2Map(path)


def test_negate_and_png(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib import image as mpimg

    img = floor_plan()
    mpimg.imsave(tmp_path / "office.png", np.stack([img] * 3, axis=-1))
    png = Nav2Map(write_map(tmp_path, meta=META.replace("{image}", "office.png")))
    pgm = Nav2Map(write_map(tmp_path))
    np.testing.assert_array_equal(png.walls, pgm.walls)
    negated = Nav2Map(write_map(tmp_path, 255 - floor_plan(), META.replace("negate: 0", "negate: 1")))
    np.testing.assert_array_equal(negated.walls, pgm.walls)


def _robonav(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robonav.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_eval_classical_on_a_nav2_floor_plan(tmp_path):
    pytest.importorskip("pybullet")
    path = write_map(tmp_path)
    r = _robonav("eval", "--policy", "classical", "--mazes", str(path), "--episodes", "3", "--envs", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["episodes"] == 3 and out["success_rate"] == 1.0 and list(out["per_family"]) == ["nav2"]
    r = _robonav("eval", "--policy", "classical", "--mazes", str(path), "--episodes", "1", "--envs", "1",
                 "--start", "0,0", "--goal", "7.5,1.5", "--json")  # through the door into the other room
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["success_rate"] == 1.0
    r = _robonav("eval", "--policy", "classical", "--mazes", str(path), "--episodes", "1", "--start", "4,0")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == (
        f"robonav eval: {path}: --start 4,0 lies in a wall or unknown cell; give a point in free space (map frame, "
        "metres)")
