"""Maze generators: six families on the passage lattice, reproducible from (family, size, seed).

A generated maze of W x H passage cells is a (2H+1) x (2W+1) grid: passage cells at odd (row, col), the
cells between two passages at (odd, even) or (even, odd), lattice posts at (even, even), and an outer ring
of wall. Families (`FAMILIES`):

- ``perfect``   randomized depth-first backtracker: a spanning tree with long winding corridors.
- ``wilson``    Wilson's algorithm (loop-erased random walks): a uniformly random spanning tree.
- ``braided``   perfect, then most dead ends knocked through to a neighbour: loops, few dead ends.
- ``rooms``     rectangular rooms of several passage cells, tree-connected by doors and corridors.
- ``halls``     open hall(s) divided by walls with doorways, scattered with pillar cells.
- ``deadends``  Prim-like growing tree whose new cells often stay one-cell stubs: many short dead ends.

and, off the lattice (`ALL_FAMILIES`; the generated suites' default families stay `FAMILIES`):

- ``office``    rooms of different sizes (a binary partition of the floor) separated by one-cell walls and by
                corridors one to three cells wide, joined by one-cell doors (a spanning tree over rooms and
                corridors, plus a few more), with furniture blocks and pillars inside the rooms.

Every generated maze is solvable for the robot's footprint, checked before it is returned: cells are wider than
the widest robot (``cell > 2 * FOOTPRINT_RADIUS``, the wide-robot condition and the top of randomization's range)
and all free cells are 4-connected, which lets a disc of that radius pass centre to centre between any two of
them with at least ``cell / 2`` to spare; the office family's free-form floor is also checked geometrically
(`footprint_connected`: a disc of that radius on a sub-cell grid), as the tests check every family.

Each family draws from its own stream, ``default_rng(SeedSequence([crc32(family), W, H, seed]))``, so the same
arguments give the same maze and families never share random numbers. Start and goal are drawn from the same
stream among free cells at least half the geodesic diameter apart (`sample_start_goal`), or put in opposite
corner passages with ``corner_to_corner=True``.

>>> m = generate_maze("wilson", 5, seed=3)
>>> m.name, m.rows, m.cols
('wilson-5x5-s3', 11, 11)
>>> m == generate_maze("wilson", 5, seed=3)
True
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from robonav.errors import UserError
from robonav.sim.geodesic import sample_start_goal
from robonav.sim.maze import Maze

FAMILIES: tuple[str, ...] = ("perfect", "wilson", "braided", "rooms", "halls", "deadends")
"""The lattice families: the families of a generated suite unless it names one."""
ALL_FAMILIES: tuple[str, ...] = (*FAMILIES, "office")
"""Every family `generate_maze` builds."""
MIN_SIZE, MAX_SIZE = 3, 25
FOOTPRINT_RADIUS = 0.21
"""Radius (m) of the widest robot (the wide-robot condition, the top of randomization's range): every generated
maze must let it through."""
_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))


class GeneratorError(UserError, ValueError):
    """`generate_maze` was asked for an unknown family, a size out of range or an unknown parameter."""


# ------------------------------------------------------------------------------------- lattice helpers
def _solid(height: int, width: int) -> np.ndarray:
    return np.ones((2 * height + 1, 2 * width + 1), dtype=bool)


def _open_cell(walls: np.ndarray, i: int, j: int) -> None:
    walls[2 * i + 1, 2 * j + 1] = False


def _carve(walls: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> None:
    """Open passage cells a and b (adjacent) and the wall cell between them."""
    walls[2 * a[0] + 1, 2 * a[1] + 1] = False
    walls[2 * b[0] + 1, 2 * b[1] + 1] = False
    walls[a[0] + b[0] + 1, a[1] + b[1] + 1] = False


def _neighbours(i: int, j: int, height: int, width: int) -> list[tuple[int, int]]:
    return [(i + di, j + dj) for di, dj in _STEPS if 0 <= i + di < height and 0 <= j + dj < width]


def _degree(walls: np.ndarray, i: int, j: int) -> int:
    r, c = 2 * i + 1, 2 * j + 1
    return int(4 - walls[r - 1, c] - walls[r + 1, c] - walls[r, c - 1] - walls[r, c + 1])


def _connected(walls: np.ndarray) -> bool:
    """True if every free cell is 4-connected to every other."""
    free = ~walls
    cells = np.argwhere(free)
    seen = np.zeros_like(free)
    first = (int(cells[0][0]), int(cells[0][1]))
    seen[first] = True
    queue = deque([first])
    count = 1
    while queue:
        r, c = queue.popleft()
        for dr, dc in _STEPS:
            nr, nc = r + dr, c + dc
            if free[nr, nc] and not seen[nr, nc]:
                seen[nr, nc] = True
                count += 1
                queue.append((nr, nc))
    return count == len(cells)


# ------------------------------------------------------------------------------------------- families
def _perfect(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Randomized depth-first backtracker."""
    walls = _solid(height, width)
    visited = np.zeros((height, width), dtype=bool)
    start = (int(rng.integers(height)), int(rng.integers(width)))
    visited[start] = True
    _open_cell(walls, *start)
    stack = [start]
    while stack:
        i, j = stack[-1]
        options = [n for n in _neighbours(i, j, height, width) if not visited[n]]
        if not options:
            stack.pop()
            continue
        nxt = options[int(rng.integers(len(options)))]
        _carve(walls, (i, j), nxt)
        visited[nxt] = True
        stack.append(nxt)
    return walls


def _wilson(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Wilson's algorithm: loop-erased random walks into the growing tree give a uniform spanning tree."""
    walls = _solid(height, width)
    in_tree = np.zeros((height, width), dtype=bool)
    root = (int(rng.integers(height)), int(rng.integers(width)))
    in_tree[root] = True
    _open_cell(walls, *root)
    for flat in rng.permutation(height * width).tolist():
        cell = divmod(flat, width)
        if in_tree[cell]:
            continue
        exit_to: dict[tuple[int, int], tuple[int, int]] = {}
        walk = cell
        while not in_tree[walk]:  # the last exit from each cell erases the loops
            options = _neighbours(walk[0], walk[1], height, width)
            exit_to[walk] = options[int(rng.integers(len(options)))]
            walk = exit_to[walk]
        walk = cell
        while not in_tree[walk]:
            in_tree[walk] = True
            _carve(walls, walk, exit_to[walk])
            walk = exit_to[walk]
    return walls


def _braided(rng: np.random.Generator, height: int, width: int, braid: float = 0.9) -> np.ndarray:
    """Perfect maze, then each dead end (in random order) is opened with probability ``braid``,
    preferring a neighbour that is itself a dead end (removes two at once)."""
    walls = _perfect(rng, height, width)
    for flat in rng.permutation(height * width).tolist():
        i, j = divmod(flat, width)
        if _degree(walls, i, j) != 1 or rng.random() >= braid:
            continue
        closed = [n for n in _neighbours(i, j, height, width) if walls[i + n[0] + 1, j + n[1] + 1]]
        dead = [n for n in closed if _degree(walls, *n) == 1]
        pool = dead or closed
        _carve(walls, (i, j), pool[int(rng.integers(len(pool)))])
    return walls


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[rb] = ra
        return True


def _rooms(rng: np.random.Generator, height: int, width: int, room_min: int = 2, room_max: int = 4,
           room_fraction: float = 0.45, loops: float = 0.05) -> np.ndarray:
    """Rooms of room_min..room_max passage cells per side (not touching each other, a corridor's width
    apart), covering about ``room_fraction`` of the passages; then a random spanning tree (Kruskal) over
    rooms and the remaining passage cells opens doors and corridors; ``loops`` opens extra walls."""
    walls = _solid(height, width)
    taken = np.zeros((height + 2, width + 2), dtype=bool)  # padded by one so the margin test is simple
    uf = _UnionFind(height * width)
    covered = 0
    for _ in range(60):
        if covered >= room_fraction * height * width:
            break
        rh = int(rng.integers(min(room_min, height), min(room_max, height) + 1))
        rw = int(rng.integers(min(room_min, width), min(room_max, width) + 1))
        i0, j0 = int(rng.integers(height - rh + 1)), int(rng.integers(width - rw + 1))
        if taken[i0:i0 + rh + 2, j0:j0 + rw + 2].any():  # the room plus a one-cell margin
            continue
        taken[i0 + 1:i0 + rh + 1, j0 + 1:j0 + rw + 1] = True
        walls[2 * i0 + 1:2 * (i0 + rh), 2 * j0 + 1:2 * (j0 + rw)] = False
        for i in range(i0, i0 + rh):
            for j in range(j0, j0 + rw):
                uf.union(i0 * width + j0, i * width + j)
        covered += rh * rw
    edges = [((i, j), (i + di, j + dj)) for i in range(height) for j in range(width)
             for di, dj in ((1, 0), (0, 1)) if i + di < height and j + dj < width]
    for k in rng.permutation(len(edges)).tolist():
        a, b = edges[k]
        if uf.union(a[0] * width + a[1], b[0] * width + b[1]) or rng.random() < loops:
            _carve(walls, a, b)
    return walls


def _halls(rng: np.random.Generator, height: int, width: int, pillars: float = 0.35,
           halls: int = 0) -> np.ndarray:
    """Open interior split into ``halls`` halls (0 = random 1..3) along the longer side by walls with one
    or two doorways each; each free lattice post becomes a pillar with probability ``pillars``."""
    walls = _solid(height, width)
    walls[1:-1, 1:-1] = False
    long_side = max(height, width)
    count = int(halls) if halls else int(rng.integers(1, min(3, long_side // 2) + 1))
    count = max(1, min(count, long_side // 2))
    depths = 2 + rng.multinomial(long_side - 2 * count, np.full(count, 1.0 / count))  # each >= 2 passages
    cuts = np.cumsum(depths)[:-1].tolist()
    view = walls if width >= height else walls.T  # cut across columns of `view`
    short_side = min(height, width)
    for k in cuts:
        view[:, 2 * k] = True
        doors = rng.choice(short_side, size=int(rng.integers(1, min(2, short_side) + 1)), replace=False)
        for d in doors.tolist():
            view[2 * d + 1, 2 * k] = False
    posts = rng.random((height - 1, width - 1)) < pillars
    walls[2:-2:2, 2:-2:2] |= posts
    return walls


def _deadends(rng: np.random.Generator, height: int, width: int, stub: float = 0.5) -> np.ndarray:
    """Growing tree that extends from a random active cell (Prim-like); each new cell stays a one-cell stub
    (never extended) with probability ``stub``, which sprouts many short dead-end branches. If every
    active cell is spent while cells remain, a random visited cell next to them resumes the growth."""
    walls = _solid(height, width)
    visited = np.zeros((height, width), dtype=bool)
    start = (int(rng.integers(height)), int(rng.integers(width)))
    visited[start] = True
    _open_cell(walls, *start)
    active = [start]
    remaining = height * width - 1
    while remaining:
        if not active:
            frontier = [(i, j) for i, j in np.argwhere(visited).tolist()
                        if any(not visited[n] for n in _neighbours(i, j, height, width))]
            active.append(frontier[int(rng.integers(len(frontier)))])
        k = int(rng.integers(len(active)))
        i, j = active[k]
        options = [n for n in _neighbours(i, j, height, width) if not visited[n]]
        if not options:
            active[k] = active[-1]
            active.pop()
            continue
        nxt = options[int(rng.integers(len(options)))]
        _carve(walls, (i, j), nxt)
        visited[nxt] = True
        remaining -= 1
        if rng.random() >= stub:
            active.append(nxt)
    return walls


def _partition(rng: np.random.Generator, box: tuple[int, int, int, int], room_min: int, room_max: int,
               corridors: list[int], rooms: list[tuple[int, int, int, int]],
               halls: list[tuple[int, int, int, int]]) -> None:
    """Split the free box (rows r0..r1, cols c0..c1, inclusive) into rooms (appended to ``rooms``): across its
    longer side by a one-cell wall, or by a corridor (width ``corridors.pop()``, walls on both sides, appended to
    ``halls``) while corridor widths remain; a side of at most ``room_max`` cells may stay whole."""
    r0, r1, c0, c1 = box
    h, w = r1 - r0 + 1, c1 - c0 + 1
    across_rows = h > w or (h == w and rng.random() < 0.5)
    side = h if across_rows else w
    width = corridors[-1] if corridors else 0
    gap = width + 2 if width else 1  # cells the separator takes
    if side < 2 * room_min + gap:  # no room for a corridor here: try a wall
        width, gap = 0, 1
    small = h <= room_max and w <= room_max
    if side < 2 * room_min + gap or (small and rng.random() < 0.7):
        rooms.append(box)
        return
    if width:
        corridors.pop()
    cut = int(rng.integers(room_min, side - room_min - gap + 1))  # cells before the separator
    lo = (r0 if across_rows else c0)
    a_hi, b_lo = lo + cut - 1, lo + cut + gap
    if across_rows:
        first, second = (r0, a_hi, c0, c1), (b_lo, r1, c0, c1)
        if width:
            halls.append((lo + cut + 1, lo + cut + width, c0, c1))
    else:
        first, second = (r0, r1, c0, a_hi), (r0, r1, b_lo, c1)
        if width:
            halls.append((r0, r1, lo + cut + 1, lo + cut + width))
    for part in (first, second):
        _partition(rng, part, room_min, room_max, corridors, rooms, halls)


def _office(rng: np.random.Generator, height: int, width: int, room_min: int = 2, room_max: int = 6,
            corridors: int = 2, furniture: float = 0.12, loops: float = 0.15) -> np.ndarray:
    """Rooms of room_min..room_max cells a side and up to ``corridors`` corridors of one to three cells width
    (different widths where there are several), doors between neighbours (spanning tree, then each further
    neighbouring pair with probability ``loops``), then furniture: about ``furniture`` of each room's inner cells
    (its border ring stays free) as pillars and blocks, each kept only if the floor stays connected."""
    rows, cols = 2 * height + 1, 2 * width + 1
    walls = np.ones((rows, cols), dtype=bool)
    widths = rng.permutation(3)[:corridors] + 1  # distinct widths, in a random order
    rooms: list[tuple[int, int, int, int]] = []
    halls: list[tuple[int, int, int, int]] = []
    _partition(rng, (1, rows - 2, 1, cols - 2), room_min, room_max, [int(x) for x in widths], rooms, halls)
    label = np.full((rows, cols), -1, dtype=np.int64)
    for k, (r0, r1, c0, c1) in enumerate(rooms + halls):
        walls[r0:r1 + 1, c0:c1 + 1] = False
        label[r0:r1 + 1, c0:c1 + 1] = k
    # Doors: a wall cell between two different areas, across it vertically or horizontally.
    pairs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for r in range(1, rows - 1):
        for c in range(1, cols - 1):
            if not walls[r, c]:
                continue
            for (ar, ac), (br, bc) in (((r - 1, c), (r + 1, c)), ((r, c - 1), (r, c + 1))):
                a, b = label[ar, ac], label[br, bc]
                if a >= 0 and b >= 0 and a != b:
                    pairs.setdefault((int(min(a, b)), int(max(a, b))), []).append((r, c))
    uf = _UnionFind(len(rooms) + len(halls))
    keys = sorted(pairs)
    for k in rng.permutation(len(keys)).tolist():
        a, b = keys[k]
        if uf.union(a, b) or rng.random() < loops:
            cells = pairs[a, b]
            walls[cells[int(rng.integers(len(cells)))]] = False
    # Furniture: pillars (1x1) and blocks (up to 2x3) inside each room's border ring.
    for r0, r1, c0, c1 in rooms:
        inner = (r1 - r0 - 1) * (c1 - c0 - 1)
        for _ in range(int(round(furniture * max(inner, 0)))):
            bh, bw = (1, 1) if rng.random() < 0.4 else (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
            if rng.random() < 0.5:
                bh, bw = bw, bh
            if r1 - r0 - 1 < bh or c1 - c0 - 1 < bw:
                continue
            i = int(rng.integers(r0 + 1, r1 - bh + 1))
            j = int(rng.integers(c0 + 1, c1 - bw + 1))
            block = walls[i:i + bh, j:j + bw]
            if block.any():
                continue
            block[:] = True
            if not _connected(walls):
                block[:] = False
    return walls


def footprint_connected(walls: np.ndarray, cell: float, radius: float = FOOTPRINT_RADIUS, refine: int = 3) -> bool:
    """True if a disc of ``radius`` can reach every free cell's centre from every other: on a grid of ``refine``
    x ``refine`` points per cell, the points at least ``radius`` from every wall cell (outside the grid is wall)
    must hold every free cell's centre point and be 4-connected among them. Needs radius < cell (only the
    eight neighbouring cells can then come nearer than ``radius``) and an odd ``refine`` (a point at each centre)."""
    if not (0 < radius < cell and refine % 2 == 1):
        raise ValueError(f"footprint_connected needs 0 < radius < cell and an odd refine, got radius={radius}, "
                         f"cell={cell}, refine={refine}")
    rows, cols = walls.shape
    padded = np.ones((rows + 2, cols + 2), dtype=bool)
    padded[1:-1, 1:-1] = walls
    local = (np.arange(refine) + 0.5) / refine * cell  # sub-point offsets from a cell's low edge
    gap = {-1: local, 0: np.zeros(refine), 1: cell - local}  # distance to the neighbour's box, per axis
    blocked = np.repeat(np.repeat(walls, refine, axis=0), refine, axis=1)  # [rows*refine, cols*refine]
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            near = np.hypot(gap[dr][:, None], gap[dc][None, :]) < radius  # [refine, refine]: inside the reach
            wall = padded[1 + dr:rows + 1 + dr, 1 + dc:cols + 1 + dc]  # the neighbour (dr, dc) of every cell
            blocked |= np.kron(wall, near).astype(bool)
    free = ~blocked
    mid = refine // 2
    centres = ~walls
    if not free[mid::refine, mid::refine][centres].all():
        return False
    seen = np.zeros_like(free)
    first = np.argwhere(free[mid::refine, mid::refine] & centres)[0] * refine + mid
    seen[tuple(first)] = True
    queue = deque([(int(first[0]), int(first[1]))])
    height, width = free.shape
    while queue:
        r, c = queue.popleft()
        for dr, dc in _STEPS:
            nr, nc = r + dr, c + dc
            if 0 <= nr < height and 0 <= nc < width and free[nr, nc] and not seen[nr, nc]:
                seen[nr, nc] = True
                queue.append((nr, nc))
    return bool(seen[mid::refine, mid::refine][centres].all())


_BUILDERS: dict[str, tuple[Callable[..., np.ndarray], dict[str, Any]]] = {
    "perfect": (_perfect, {}),
    "wilson": (_wilson, {}),
    "braided": (_braided, {"braid": 0.9}),
    "rooms": (_rooms, {"room_min": 2, "room_max": 4, "room_fraction": 0.45, "loops": 0.05}),
    "halls": (_halls, {"pillars": 0.35, "halls": 0}),
    "deadends": (_deadends, {"stub": 0.5}),
    "office": (_office, {"room_min": 2, "room_max": 6, "corridors": 2, "furniture": 0.12, "loops": 0.15}),
}


def family_params(family: str) -> dict[str, Any]:
    """The parameters a family accepts, with their defaults."""
    if family not in _BUILDERS:
        raise GeneratorError(f"unknown maze family {family!r}; expected one of {', '.join(ALL_FAMILIES)}")
    return dict(_BUILDERS[family][1])


def _check_params(family: str, params: dict[str, Any]) -> None:
    accepted = family_params(family)
    for key, value in params.items():
        if key not in accepted:
            raise GeneratorError(f"family {family!r} takes no parameter {key!r}; it accepts "
                                 f"{sorted(accepted) or 'none'}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GeneratorError(f"family {family!r} parameter {key!r} must be a number, got {value!r}")
    merged = {**accepted, **params}
    for key in ("braid", "room_fraction", "loops", "pillars", "stub", "furniture"):
        if key in merged and not 0.0 <= merged[key] <= 1.0:
            raise GeneratorError(f"family {family!r} parameter {key!r} must lie in [0, 1], "
                                 f"got {merged[key]!r}")
    for key in ("room_min", "room_max", "halls", "corridors"):
        if key in merged and not float(merged[key]).is_integer():
            raise GeneratorError(f"family {family!r} parameter {key!r} must be a whole number, "
                                 f"got {merged[key]!r}")
    if family == "office" and not 0 <= merged["corridors"] <= 3:
        raise GeneratorError(f"family 'office' parameter 'corridors' must lie in 0..3 (one of each width 1, 2, 3 "
                             f"cells at most), got {merged['corridors']}")
    if family in ("rooms", "office") and not 1 <= merged["room_min"] <= merged["room_max"]:
        raise GeneratorError(f"family {family!r} needs 1 <= room_min <= room_max, got room_min="
                             f"{merged['room_min']}, room_max={merged['room_max']}")
    if family == "halls" and merged["halls"] < 0:
        raise GeneratorError(f"family 'halls' parameter 'halls' must be >= 0 (0 = random), "
                             f"got {merged['halls']}")


def generate_maze(family: str = "perfect", width: int = 7, height: int | None = None, seed: int = 0,
                  cell: float = 1.0, corner_to_corner: bool = False, **params: Any) -> Maze:
    """A maze of ``width`` x ``height`` passage cells (3..25 each; height defaults to width) from ``family``.

    Same arguments, same maze. ``params`` tune the family (`family_params` lists them and their defaults).
    """
    height = width if height is None else height
    if family not in _BUILDERS:
        raise GeneratorError(f"unknown maze family {family!r}; expected one of {', '.join(ALL_FAMILIES)}")
    if not cell > 2 * FOOTPRINT_RADIUS:
        raise GeneratorError(f"cell {cell!r} m is too narrow: a one-cell corridor must let the widest robot "
                             f"(radius {FOOTPRINT_RADIUS} m) through; give cell > {2 * FOOTPRINT_RADIUS:g} m")
    for what, n in (("width", width), ("height", height)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not MIN_SIZE <= n <= MAX_SIZE:
            raise GeneratorError(f"maze {what} must be an integer number of passage cells in "
                                 f"{MIN_SIZE}..{MAX_SIZE}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GeneratorError(f"seed must be an integer >= 0, got {seed!r}")
    _check_params(family, params)
    width, height, seed = int(width), int(height), int(seed)
    builder, defaults = _BUILDERS[family]
    rng = np.random.default_rng(np.random.SeedSequence([zlib.crc32(family.encode()), width, height, seed]))
    typed = {k: int(v) if isinstance(defaults[k], int) else float(v) for k, v in params.items()}
    walls = builder(rng, height, width, **typed)
    if not _connected(walls) or (family == "office" and not footprint_connected(walls, cell)):
        raise AssertionError(f"generator bug: {family} {width}x{height} seed {seed} is not connected for a robot "
                             f"of radius {FOOTPRINT_RADIUS} m on {cell} m cells")
    name = f"{family}-{width}x{height}-s{seed}"
    name += "".join(f"-{k}{v}" for k, v in sorted(params.items()))
    corners = (1, 1), (2 * height - 1, 2 * width - 1)
    if corner_to_corner:
        return Maze(walls, corners[0], corners[1], cell, name + "-c2c", family)
    placeholder = Maze(walls, corners[0], corners[1], cell, name, family)
    start, goal = sample_start_goal(placeholder, rng)
    return placeholder.with_start_goal(start, goal)
