"""Nav2 occupancy maps as worlds: a building's map (the YAML map_server and map_saver write) becomes a `Maze`.

    robonav eval --policy classical --mazes office.yaml                       # start and goal drawn
    robonav eval --policy classical --mazes office.yaml --start 1.0,2.0 --goal 8.5,3.0   # map-frame metres

The YAML names ``image`` (PGM P2/P5, read here; PNG through matplotlib), ``resolution`` (m per pixel), ``origin``
([x, y, yaw] of the lower-left pixel; yaw is ignored, as most Nav2 users keep it 0), ``negate``,
``occupied_thresh``, ``free_thresh`` and ``mode`` (trinary, scale, raw), with map_server's rules: a pixel's
occupancy is 1 - shade (shade if negate; raw: the value in percent); above occupied_thresh it is occupied,
below free_thresh free, else unknown. Occupied and unknown become wall (the simulator has no unknown space).
Pixels are merged into cells of about ``cell`` metres (a whole number of pixels; a cell with any wall pixel is
wall), padded with wall at the top and right so the map's origin stays the maze's lower-left corner: a point
(x, y) of the map frame is (x - origin_x, y - origin_y) in the maze's world.

Start and goal are drawn, per episode, among cells with at least ``clearance`` metres to the nearest wall, at
least half the geodesic diameter apart (as for generated mazes), or given in map coordinates. A bad map is
refused naming the file and the field (`Nav2MapError`, a MazeError).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from robonav.sim.maze import Maze, MazeError

__all__ = ["Nav2Map", "Nav2MapError", "is_nav2_map", "load_nav2_map", "nav2_mazes", "read_pgm"]

MODES = ("trinary", "scale", "raw")


class Nav2MapError(MazeError):
    """A Nav2 map YAML or its image that robonav cannot use."""


def is_nav2_map(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` is an existing .yaml / .yml file (a Nav2 map, as --mazes takes it)."""
    p = Path(name)
    return p.suffix in (".yaml", ".yml") and p.is_file()


def read_pgm(path: Path) -> np.ndarray:
    """float64 [rows, cols] shades in [0, 1] of a PGM (P2 ASCII or P5 binary, 8 or 16 bit); row 0 is the top."""
    data = path.read_bytes()
    tokens: list[bytes] = []
    i = 0
    while len(tokens) < 4:  # magic, width, height, maxval; '#' comments run to the end of the line
        while i < len(data) and data[i:i + 1].isspace():
            i += 1
        if i >= len(data):
            raise Nav2MapError(f"{path}: PGM header ends early; expected P2/P5, width, height, maxval")
        if data[i:i + 1] == b"#":
            while i < len(data) and data[i:i + 1] not in (b"\n", b"\r"):
                i += 1
            continue
        j = i
        while j < len(data) and not data[j:j + 1].isspace() and data[j:j + 1] != b"#":
            j += 1
        tokens.append(data[i:j])
        i = j
    magic = tokens[0]
    if magic not in (b"P2", b"P5"):
        raise Nav2MapError(f"{path}: not a PGM image (magic {magic[:8]!r}, expected P2 or P5); save the map as "
                           "PGM or PNG")
    try:
        width, height, maxval = (int(t) for t in tokens[1:])
    except ValueError as e:
        raise Nav2MapError(f"{path}: PGM header width/height/maxval are not integers: {tokens[1:]}") from e
    if width < 1 or height < 1 or not 0 < maxval < 65536:
        raise Nav2MapError(f"{path}: PGM size {width}x{height}, maxval {maxval}: expected >= 1 and 1..65535")
    n = width * height
    if magic == b"P5":
        raster = data[i + 1:]
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
        if len(raster) < n * dtype.itemsize:
            raise Nav2MapError(f"{path}: PGM raster holds {len(raster)} bytes, {n * dtype.itemsize} expected for "
                               f"{width}x{height}; the file is truncated")
        values = np.frombuffer(raster, dtype=dtype, count=n).astype(np.float64)
    else:
        try:
            values = np.array([int(t) for t in data[i:].split()[:n]], dtype=np.float64)
        except ValueError as e:
            raise Nav2MapError(f"{path}: P2 raster holds a non-integer sample") from e
        if values.size < n:
            raise Nav2MapError(f"{path}: P2 raster holds {values.size} samples, {n} expected; the file is truncated")
    return values.reshape(height, width) / maxval


def _read_image(path: Path) -> np.ndarray:
    """Shades [rows, cols] in [0, 1] (colour averaged, alpha ignored), row 0 the top."""
    if not path.is_file():
        raise Nav2MapError(f"{path}: the map's image does not exist; check the YAML's image field")
    if path.suffix.lower() == ".pgm":
        return read_pgm(path)
    try:
        from matplotlib import image as mpimg

        img = np.asarray(mpimg.imread(path), dtype=np.float64)
    except Exception as e:
        raise Nav2MapError(f"{path}: cannot read the image ({e}); give a PGM or PNG") from e
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2) if img.shape[2] >= 3 else img[..., 0]
    if img.max() > 1.0:  # 8-bit samples from a reader that does not normalise
        img = img / 255.0
    return img


class Nav2Map:
    """A Nav2 map file read and checked: the wall grid at the map's resolution, and its metadata."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import yaml

        self.path = Path(path)
        try:
            meta = yaml.safe_load(self.path.read_text())
        except OSError as e:
            raise Nav2MapError(f"{self.path}: cannot read it ({e.strerror})") from e
        except yaml.YAMLError as e:
            raise Nav2MapError(f"{self.path}: not YAML ({str(e).splitlines()[0]})") from e
        if not isinstance(meta, dict):
            raise Nav2MapError(f"{self.path}: expected a Nav2 map YAML (image, resolution, origin, ...), got "
                               f"{type(meta).__name__}")
        self.resolution = self._number(meta, "resolution", lambda v: v > 0, "> 0 metres per pixel")
        self.occupied_thresh = self._number(meta, "occupied_thresh", lambda v: 0 <= v <= 1, "in [0, 1]", 0.65)
        self.free_thresh = self._number(meta, "free_thresh", lambda v: 0 <= v <= 1, "in [0, 1]", 0.25)
        if not self.free_thresh < self.occupied_thresh:
            self._fail("free_thresh", f"{self.free_thresh} must be below occupied_thresh {self.occupied_thresh}")
        origin = meta.get("origin")
        if (not isinstance(origin, list) or len(origin) != 3
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in origin)):
            self._fail("origin", f"expected [x, y, yaw] finite numbers, got {origin!r}")
        self.origin = (float(origin[0]), float(origin[1]))
        negate = meta.get("negate", 0)
        if negate not in (0, 1, True, False):
            self._fail("negate", f"expected 0 or 1, got {negate!r}")
        self.mode = meta.get("mode", "trinary")
        if self.mode not in MODES:
            self._fail("mode", f"expected one of {list(MODES)}, got {self.mode!r}")
        image = meta.get("image")
        if not isinstance(image, str) or not image:
            self._fail("image", f"expected the image file name, got {image!r}")
        shade = _read_image(self.path.parent / image)
        if self.mode == "raw":
            occ = shade * (65535.0 if shade.max() > 1.0 else 255.0) / 100.0  # raw values are percent
            unknown = occ > 1.0
        else:
            occ = shade if negate else 1.0 - shade
            unknown = np.zeros(occ.shape, bool)
        free = (occ < self.free_thresh) & ~unknown
        self.walls = ~free  # occupied and unknown: wall  [rows, cols], row 0 the top
        if free.sum() < 2:
            self._fail("image", "has fewer than 2 free pixels under free_thresh; check negate and the thresholds")

    def _fail(self, field: str, cause: str) -> NoReturn:
        raise Nav2MapError(f"{self.path}: field {field}: {cause}")

    def _number(self, meta: dict[str, Any], field: str, ok: Any, expected: str, default: float | None = None
                ) -> float:
        value = meta.get(field, default)
        if value is None:
            self._fail(field, f"missing; expected a number {expected}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
            self._fail(field, f"expected a number {expected}, got {value!r}")
        return float(value)

    def grid(self, cell: float) -> tuple[np.ndarray, float]:
        """(walls [rows, cols] at about ``cell`` metres per cell, the cell size): pixels merged in blocks (any
        wall pixel makes a wall cell), padded with wall at the top and right."""
        f = max(1, round(cell / self.resolution))
        rows, cols = self.walls.shape
        r2, c2 = -(-rows // f) * f, -(-cols // f) * f
        padded = np.ones((r2, c2), bool)
        padded[r2 - rows:, :cols] = self.walls  # the bottom-left corner stays the map's origin
        blocks = padded.reshape(r2 // f, f, c2 // f, f).any(axis=(1, 3))  # [rows, f, cols, f] -> [rows, cols]
        return np.asarray(blocks, dtype=bool), self.resolution * f

    def to_cell(self, walls: np.ndarray, cell: float, xy: tuple[float, float], what: str) -> tuple[int, int]:
        """The (row, col) of the map-frame point ``xy``; Nav2MapError if outside the map or on a wall."""
        c = math.floor((xy[0] - self.origin[0]) / cell)
        r = walls.shape[0] - 1 - math.floor((xy[1] - self.origin[1]) / cell)
        if not (0 <= r < walls.shape[0] and 0 <= c < walls.shape[1]):
            raise Nav2MapError(f"{self.path}: --{what} {xy[0]:g},{xy[1]:g} lies outside the map (x from "
                               f"{self.origin[0]:g} to {self.origin[0] + walls.shape[1] * cell:g}, y from "
                               f"{self.origin[1]:g} to {self.origin[1] + walls.shape[0] * cell:g} m)")
        if walls[r, c]:
            raise Nav2MapError(f"{self.path}: --{what} {xy[0]:g},{xy[1]:g} lies in a wall or unknown cell; give a "
                               "point in free space (map frame, metres)")
        return r, c


def _clear(walls: np.ndarray, k: int) -> np.ndarray:
    """Cells at least k cells (square neighbourhood) from every wall."""
    grown = walls.copy()
    rows, cols = walls.shape
    for dr in range(-k, k + 1):
        for dc in range(-k, k + 1):
            shifted = np.ones_like(walls)
            shifted[max(dr, 0):rows + min(dr, 0), max(dc, 0):cols + min(dc, 0)] = \
                walls[max(-dr, 0):rows + min(-dr, 0), max(-dc, 0):cols + min(-dc, 0)]
            grown |= shifted
    return ~grown


def nav2_mazes(path: str | os.PathLike[str], count: int, seed: int = 0, start: tuple[float, float] | None = None,
               goal: tuple[float, float] | None = None, cell: float = 0.25, clearance: float = 0.35) -> list[Maze]:
    """``count`` mazes of the map, one per episode: start and goal given (map frame, m) or drawn per episode
    among cells ``clearance`` m from walls, at least half the geodesic diameter apart; deterministic in ``seed``
    (robonav.eval.episodes gives each its noise seed)."""
    from robonav.sim.geodesic import sample_start_goal

    m = Nav2Map(path)
    walls, size = m.grid(cell)
    name = Path(path).stem
    given = {w: m.to_cell(walls, size, xy, w) for w, xy in (("start", start), ("goal", goal)) if xy is not None}
    clear = _clear(walls, math.ceil(clearance / size))
    free = np.argwhere(clear)
    if len(free) < 2:
        raise Nav2MapError(f"{path}: fewer than 2 cells with {clearance} m clearance to walls; the robot does not fit "
                           "(check resolution, negate and the thresholds)")
    roomy = Maze(~clear, tuple(free[0]), tuple(free[-1]), size, name, "nav2")
    mazes = []
    for k in range(count):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), k, 0]))
        s, g = sample_start_goal(roomy, rng)
        s, g = given.get("start", s), given.get("goal", g)
        try:
            mazes.append(Maze(walls, s, g, size, name, "nav2"))
        except MazeError as e:
            raise Nav2MapError(f"{path}: {e}") from e
    return mazes


def load_nav2_map(path: str | os.PathLike[str]) -> Maze:
    """The map as a Maze with the first drawn start and goal (seed 0), for one-world uses (sim, suites)."""
    return nav2_mazes(path, 1)[0]
