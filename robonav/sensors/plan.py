"""The guidance block inside the step kernel: A* on the obstacle memory with no allocation and no Python.

It computes exactly what `robonav.sensors.guidance.Guide` computes (the shipped policies were trained on that
block), in preallocated buffers:

- the cost map is kept for the whole level-0 grid as one byte per cell, the squared distance in cells to the
  nearest blocked cell (``SQ_FAR`` beyond ``soft_radius``), and a 256-entry table turns it into the cost per metre
  with the same float arithmetic as `planner.cost_map`. Only the cells whose blocked state changed since the last
  plan (found in the union of the old and new known boxes) update it; a recentre or a reset rebuilds it. Every
  blocked cell lies in the known box and so in the search window, so the global distances equal the window's.
- A* runs in grid coordinates, confined to the window `planner.search_window` would cut. Items are the flat
  grid index, which orders cells like the window's flat index, so ties break the same way; an indexed heap with
  decrease-key pops the live entries of the lazy heap in the same order. A cell's search state is one 16-byte
  record (g, and a word with the plan's id, closed, the step it was reached by and its heap slot), so a
  neighbour costs one cache line, not five; the plan id means nothing is cleared between plans.
- With ``guidance_budget`` > 0 a plan expands at most that many cells per step: it searches the cost map of the
  step it began (nothing updates it until the search ends), and the previous path is followed until the new one
  is finished (`BudgetedGuide` is the reference). 0 runs each plan to its end in one step, as the shipped
  policies were trained.
- Following the path (nearest point, the two bearings, the remaining length) is `Guide.write` with NumPy's
  pairwise sum for the length.

Work per plan is bounded by the window (at most the grid) and happens every ``guidance_every`` steps, as in
`Guide`; exactness, not a cheaper plan, is the constraint, because the policies read this block. A budget
bounds the work per step and delivers the same plan some steps later.
"""

from __future__ import annotations

import math

import numpy as np

from robonav.sensors.guidance import (
    LETHAL_COST,
    LETHAL_MARGIN,
    PATH_CLIP,
    ROBOT_RADIUS,
    SEARCH_AHEAD,
    SOFT_RADIUS,
    SOFT_WEIGHT,
    WINDOW_MARGIN,
)
from robonav.sensors.jit import inline_kernel, kernel
from robonav.sensors.planner import BLOCKED_ENDPOINT_COST, SQRT2
from robonav.sensors.spec import PreprocessorConfig

__all__ = ["make_plan_buffers", "plan_step", "reset_plan_buffers"]

SQ_FAR = 255
"""Squared-distance code of a cell with no blocked cell within soft_radius."""
REMOVED = 2
"""``blocked`` value of a cell unblocked since the last plan, until its neighbourhood is recomputed."""
SQ_ENDPOINT = 254
"""Code a blocked start or goal cell takes during its plan: cost BLOCKED_ENDPOINT_COST, as `planner.astar` gives."""

# plan_i header (int32): settings, per-episode state (P_K..P_RECENTRES, the known box), the plan id, the
# pending search (its heap size, window, start, goal and their cost codes)
(P_EVERY, P_OFF, P_REACH, P_K, P_INDEX, P_SINCE, P_RECENTRES, P_LO_I, P_HI_I, P_LO_J, P_HI_J, P_PLAN_ID, P_BUDGET,
 P_SEARCH, P_SIZE, P_W_LO_I, P_W_HI_I, P_W_LO_J, P_W_HI_J, P_START, P_GOAL, P_CODE_START, P_CODE_GOAL) = range(23)
P_HEAD = 32
MAX_PLAN_ID = 2**31 - 2
# plan_f header (float64): the cost table, then scalars (the lookahead; origin and goal when the search began)
PF_LOOK, PF_OX, PF_OY, PF_GX, PF_GY = range(256, 261)
PF_HEAD = 264
FOUND, EXHAUSTED, PENDING = 0, 1, 2
"""What `_search` returns: the goal was reached, the window holds no path, the budget ran out first."""


def make_plan_buffers(config: PreprocessorConfig, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(plan_f float64, plan_i int32, plan_u8 uint8) for a grid of ``config``; the guidance block starts at
    ``offset`` of the observation (-1: off, and the buffers are placeholders)."""
    if not config.guidance:
        pi = np.zeros(P_HEAD, np.int32)
        pi[P_OFF] = -1
        return np.zeros(PF_HEAD, np.float64), pi, np.zeros(1, np.uint8)
    n = config.grid_cells * config.grid_cells
    res = config.grid_resolution
    reach = int(math.floor(SOFT_RADIUS / res))
    if 2 * reach * reach >= SQ_ENDPOINT:
        raise ValueError(f"guidance needs grid_resolution >= {SOFT_RADIUS / 11:.3f} m (soft radius {SOFT_RADIUS} m "
                         f"in at most 11 cells), got {res}: use a coarser grid")
    if n >= 1 << DIR_SHIFT:
        raise ValueError(f"guidance needs grid_cells**2 < 2**{DIR_SHIFT}, got {config.grid_cells} cells a side")
    # plan_f: header, search records (2n), heap keys (n), path (2n + 2), scratch of the path length (n + 64)
    plan_f = np.zeros(PF_HEAD + 6 * n + 66, np.float64)
    lethal, span = ROBOT_RADIUS + LETHAL_MARGIN, SOFT_RADIUS - (ROBOT_RADIUS + LETHAL_MARGIN)
    for code in range(256):  # the arithmetic of planner._cost_map, per squared distance
        d = res * math.sqrt(code)
        if code == SQ_FAR or not d < SOFT_RADIUS:
            plan_f[code] = 1.0
        elif d == 0.0:
            plan_f[code] = math.inf
        elif d < lethal:
            plan_f[code] = LETHAL_COST
        else:
            plan_f[code] = 1.0 + SOFT_WEIGHT * (SOFT_RADIUS - d) / span
    plan_f[SQ_ENDPOINT] = BLOCKED_ENDPOINT_COST
    plan_f[PF_LOOK] = config.guidance_lookahead
    plan_i = np.zeros(P_HEAD + n + 192, np.int32)  # header, heap items (n), scratch of the path length (192)
    plan_i[P_EVERY], plan_i[P_OFF], plan_i[P_REACH] = config.guidance_every, offset, reach
    plan_i[P_BUDGET] = config.guidance_budget
    plan_u8 = np.zeros(2 * n, np.uint8)
    reset_plan_buffers(plan_i, plan_u8)
    return plan_f, plan_i, plan_u8


def reset_plan_buffers(plan_i: np.ndarray, plan_u8: np.ndarray) -> None:
    """Forget the path and the cost map (a new episode); the settings and the plan id (so the per-cell stamps
    of earlier plans stay stale without a clear) stay."""
    if plan_i[P_OFF] < 0:
        return
    plan_i[P_K:P_LO_I] = 0
    plan_i[P_LO_I:P_HI_J + 1] = -1
    plan_i[P_SEARCH] = plan_i[P_SIZE] = 0
    plan_u8[:] = 0
    plan_u8[plan_u8.shape[0] // 2:] = SQ_FAR


# ------------------------------------------------------------------------------------------------ cost map
@kernel
def _stamp(sq: np.ndarray, n0: int, reach: int, i: int, j: int) -> None:
    """Blocked cell (i, j) lowers the squared-distance code of its neighbourhood."""
    for di in range(-reach, reach + 1):
        ii = i + di
        if ii < 0 or ii >= n0:
            continue
        for dj in range(-reach, reach + 1):
            jj = j + dj
            if jj < 0 or jj >= n0:
                continue
            code = di * di + dj * dj
            if code < sq[ii * n0 + jj]:
                sq[ii * n0 + jj] = code


@kernel
def _restamp(blocked: np.ndarray, sq: np.ndarray, n0: int, reach: int, i: int, j: int) -> None:
    """Cell (i, j) was unblocked: recompute the code of every cell in its neighbourhood from scratch."""
    for ci in range(max(i - reach, 0), min(i + reach, n0 - 1) + 1):
        for cj in range(max(j - reach, 0), min(j + reach, n0 - 1) + 1):
            best = SQ_FAR
            for bi in range(max(ci - reach, 0), min(ci + reach, n0 - 1) + 1):
                for bj in range(max(cj - reach, 0), min(cj + reach, n0 - 1) + 1):
                    if blocked[bi * n0 + bj] == 1:
                        code = (bi - ci) * (bi - ci) + (bj - cj) * (bj - cj)
                        if code < best:
                            best = code
            sq[ci * n0 + cj] = best


@kernel
def _update_costs(occ: np.ndarray, plan_i: np.ndarray, plan_u8: np.ndarray, n0: int, full: bool, lo_i: int,
                  hi_i: int, lo_j: int, hi_j: int) -> None:
    """Bring ``blocked`` (occ > 0) and the codes up to date over rows lo_i..hi_i, columns lo_j..hi_j (the
    whole grid and from scratch if ``full``)."""
    n = n0 * n0
    blocked = plan_u8[:n]
    sq = plan_u8[n:]
    reach = plan_i[P_REACH]
    if full:
        sq[:] = SQ_FAR
        for idx in range(n):
            blocked[idx] = 1 if occ[idx] > 0 else 0
        for idx in range(n):
            if blocked[idx]:
                _stamp(sq, n0, reach, idx // n0, idx % n0)
        return
    if hi_i < 0:
        return
    removed = False
    for i in range(lo_i, hi_i + 1):  # pass 1: additions stamp at once, removals are marked REMOVED
        for j in range(lo_j, hi_j + 1):
            idx = i * n0 + j
            now = 1 if occ[idx] > 0 else 0
            if now != blocked[idx]:
                if now:
                    blocked[idx] = 1
                    _stamp(sq, n0, reach, i, j)
                else:
                    blocked[idx] = REMOVED
                    removed = True
    if not removed:
        return
    for i in range(lo_i, hi_i + 1):  # pass 2 (rare): recompute around each removed cell, against the new state
        for j in range(lo_j, hi_j + 1):
            idx = i * n0 + j
            if blocked[idx] == REMOVED:
                blocked[idx] = 0
                _restamp(blocked, sq, n0, reach, i, j)


@kernel
def _row_ends(occ: np.ndarray, words: np.ndarray, n0: int, i: int) -> tuple[int, int]:
    """First and last nonzero column of level-0 row i, (-1, -1) if none; a word (8 cells) at a time where the
    rows are whole words (``words`` is then level 0 seen as uint64)."""
    row = i * n0
    first = -1
    if n0 % 8 == 0 and words.shape[0] * 8 >= n0 * n0:
        per_row = n0 // 8
        w0 = i * per_row
        for w in range(per_row):
            if words[w0 + w] != 0:
                for j in range(8 * w, 8 * w + 8):
                    if occ[row + j] != 0:
                        first = j
                        break
                break
        if first < 0:
            return -1, -1
        for w in range(per_row - 1, first // 8 - 1, -1):
            if words[w0 + w] != 0:
                for j in range(8 * w + 7, 8 * w - 1, -1):
                    if occ[row + j] != 0:
                        return first, j
        return first, first
    for j in range(n0):
        if occ[row + j] != 0:
            first = j
            break
    if first < 0:
        return -1, -1
    for j in range(n0 - 1, first - 1, -1):
        if occ[row + j] != 0:
            return first, j
    return first, first


@kernel
def _known_box(occ: np.ndarray, words: np.ndarray, n0: int, box: np.ndarray) -> None:
    """box[0:4] = (lo_i, hi_i, lo_j, hi_j) of the nonzero level-0 cells, all -1 if none (`nonzero_bounds`)."""
    lo_i, hi_i, lo_j, hi_j = n0, -1, n0, -1
    for i in range(n0):
        first, last = _row_ends(occ, words, n0, i)
        if first < 0:
            continue
        if lo_i == n0:
            lo_i = i
        hi_i = i
        lo_j = min(lo_j, first)
        hi_j = max(hi_j, last)
    if hi_i < 0:
        box[0] = box[1] = box[2] = box[3] = -1
    else:
        box[0], box[1], box[2], box[3] = lo_i, hi_i, lo_j, hi_j


# ------------------------------------------------------------------------------------------------------ A*
# Per-cell search state: one 16-byte record per grid cell in plan_f (g, then a word seen as int64) so a cell's
# whole state is one cache line away: the plan id (high 32 bits; == pid: g and the word are this plan's),
# CLOSED, the step it was reached by (parent = cell - _delta(dir); DIR_START for the start) and its heap slot.
CLOSED = 1 << 31
DIR_SHIFT = 27
DIR_BITS = 0xF << DIR_SHIFT
DIR_START = 8
POS_BITS = (1 << DIR_SHIFT) - 1


@kernel
def _octile(i: int, j: int, gi: int, gj: int, res: float) -> float:
    a = abs(i - gi)
    b = abs(j - gj)
    return res * (max(a, b) + (SQRT2 - 1.0) * min(a, b))


@inline_kernel
def _delta(d: int, n0: int) -> int:
    """Flat-index step of move ``d``: 0..3 = +i, -i, +j, -j; 4..7 = (+i+j), (+i-j), (-i+j), (-i-j)."""
    di = 1 if d == 0 or d == 4 or d == 5 else (-1 if d == 1 or d >= 6 else 0)
    dj = 1 if d == 2 or d == 4 or d == 6 else (-1 if d == 3 or d == 5 or d == 7 else 0)
    return di * n0 + dj


@inline_kernel
def _sift_up(keys: np.ndarray, items: np.ndarray, word: np.ndarray, i: int, key: float, item: int) -> None:
    """Place (key, item) at heap slot i or above: parents greater in (key, item) order move down into the hole."""
    while i > 0:
        p = (i - 1) // 2
        kp = keys[p]
        ip = items[p]
        if key < kp or (key == kp and item < ip):
            keys[i] = kp
            items[i] = ip
            word[2 * ip + 1] = (word[2 * ip + 1] & ~POS_BITS) | i
            i = p
        else:
            break
    keys[i] = key
    items[i] = item
    word[2 * item + 1] = (word[2 * item + 1] & ~POS_BITS) | i


@inline_kernel
def _pop(keys: np.ndarray, items: np.ndarray, word: np.ndarray, n: int) -> int:
    """Remove the smallest (key, item) of the heap of size ``n``; returns its item."""
    top = items[0]
    n -= 1
    key = keys[n]
    item = items[n]
    i = 0
    while True:
        m = 2 * i + 1
        if m >= n:
            break
        km = keys[m]
        im = items[m]
        if m + 1 < n:
            kr = keys[m + 1]
            ir = items[m + 1]
            if kr < km or (kr == km and ir < im):
                m += 1
                km = kr
                im = ir
        if km < key or (km == key and im < item):
            keys[i] = km
            items[i] = im
            word[2 * im + 1] = (word[2 * im + 1] & ~POS_BITS) | i
            i = m
        else:
            break
    if n > 0:
        keys[i] = key
        items[i] = item
        word[2 * item + 1] = (word[2 * item + 1] & ~POS_BITS) | i
    return top


@inline_kernel
def _relax(rec: np.ndarray, word: np.ndarray, keys: np.ndarray, items: np.ndarray, size: int, tag: int, v: int,
           d: int, nd: float, vi: int, vj: int, gi: int, gj: int, res: float) -> int:
    """`planner._astar`'s relaxation of v = (vi, vj), reached by move d, at cost nd; returns the heap size."""
    w = word[2 * v + 1]
    if (w >> 32) << 32 == tag:
        if not nd < rec[2 * v]:
            return size
        rec[2 * v] = nd
        word[2 * v + 1] = (w & ~DIR_BITS) | (d << DIR_SHIFT)
        if not w & CLOSED:  # in the heap: decrease its key (the lazy heap pushes and skips the stale entry)
            _sift_up(keys, items, word, w & POS_BITS, nd + _octile(vi, vj, gi, gj, res), v)
        return size
    rec[2 * v] = nd
    word[2 * v + 1] = tag | (d << DIR_SHIFT)
    _sift_up(keys, items, word, size, nd + _octile(vi, vj, gi, gj, res), v)
    return size + 1


@kernel
def _search(plan_f: np.ndarray, plan_i: np.ndarray, sq: np.ndarray, n0: int, res: float, budget: int) -> int:
    """Continue the pending A* (`planner._astar` on grid cells confined to the window) for at most ``budget``
    expansions (0: to the end); returns FOUND, EXHAUSTED or PENDING. The neighbours are relaxed in another order
    than planner's, which changes nothing: each is a different cell, and the heap orders by (key, item) alone."""
    n = n0 * n0
    cost = plan_f[:256]
    rec = plan_f[PF_HEAD:PF_HEAD + 2 * n]
    word = rec.view(np.int64)
    keys = plan_f[PF_HEAD + 2 * n:PF_HEAD + 3 * n]
    items = plan_i[P_HEAD:P_HEAD + n]
    lo_i, hi_i, lo_j, hi_j = plan_i[P_W_LO_I], plan_i[P_W_HI_I], plan_i[P_W_LO_J], plan_i[P_W_HI_J]
    goal = plan_i[P_GOAL]
    tag = np.int64(plan_i[P_PLAN_ID]) << 32
    size = plan_i[P_SIZE]
    inf = np.inf
    gi = goal // n0
    gj = goal - gi * n0
    diag = SQRT2 * res
    inv = 1.0 / n0
    done = 0
    while size > 0:
        if budget > 0 and done == budget:
            plan_i[P_SIZE] = size
            return PENDING
        done += 1
        u = _pop(keys, items, word, size)
        size -= 1
        word[2 * u + 1] |= CLOSED
        if u == goal:
            plan_i[P_SIZE] = size
            return FOUND
        i = int((u + 0.5) * inv)  # u // n0 without a division (exact: u < 2**27)
        j = u - i * n0
        cu = cost[sq[u]]
        gu = rec[2 * u]
        # the four sides: cost inf where outside the window (then both diagonals beside it are outside too)
        c_ip = cost[sq[u + n0]] if i < hi_i else inf
        c_im = cost[sq[u - n0]] if i > lo_i else inf
        c_jp = cost[sq[u + 1]] if j < hi_j else inf
        c_jm = cost[sq[u - 1]] if j > lo_j else inf
        if c_ip != inf:
            size = _relax(rec, word, keys, items, size, tag, u + n0, 0, gu + res * 0.5 * (cu + c_ip), i + 1, j, gi,
                          gj, res)
        if c_im != inf:
            size = _relax(rec, word, keys, items, size, tag, u - n0, 1, gu + res * 0.5 * (cu + c_im), i - 1, j, gi,
                          gj, res)
        if c_jp != inf:
            size = _relax(rec, word, keys, items, size, tag, u + 1, 2, gu + res * 0.5 * (cu + c_jp), i, j + 1, gi,
                          gj, res)
        if c_jm != inf:
            size = _relax(rec, word, keys, items, size, tag, u - 1, 3, gu + res * 0.5 * (cu + c_jm), i, j - 1, gi,
                          gj, res)
        if c_ip != inf and c_jp != inf:
            cv = cost[sq[u + n0 + 1]]
            if cv != inf:
                size = _relax(rec, word, keys, items, size, tag, u + n0 + 1, 4, gu + diag * 0.5 * (cu + cv), i + 1,
                              j + 1, gi, gj, res)
        if c_ip != inf and c_jm != inf:
            cv = cost[sq[u + n0 - 1]]
            if cv != inf:
                size = _relax(rec, word, keys, items, size, tag, u + n0 - 1, 5, gu + diag * 0.5 * (cu + cv), i + 1,
                              j - 1, gi, gj, res)
        if c_im != inf and c_jp != inf:
            cv = cost[sq[u - n0 + 1]]
            if cv != inf:
                size = _relax(rec, word, keys, items, size, tag, u - n0 + 1, 6, gu + diag * 0.5 * (cu + cv), i - 1,
                              j + 1, gi, gj, res)
        if c_im != inf and c_jm != inf:
            cv = cost[sq[u - n0 - 1]]
            if cv != inf:
                size = _relax(rec, word, keys, items, size, tag, u - n0 - 1, 7, gu + diag * 0.5 * (cu + cv), i - 1,
                              j - 1, gi, gj, res)
    plan_i[P_SIZE] = 0
    return EXHAUSTED


@kernel
def _cell(u: float, n0: int) -> int:
    """min(max(floor(u), 0), n0 - 1), clamped before the conversion so a far pose cannot overflow."""
    if u < 0.0:
        return 0
    if u >= n0 - 1:
        return n0 - 1
    return int(math.floor(u))


@kernel
def _begin(occ: np.ndarray, words: np.ndarray, plan_f: np.ndarray, plan_i: np.ndarray, plan_u8: np.ndarray, n0: int,
           res: float, x: float, y: float, ox: float, oy: float, gx: float, gy: float, recentres: int) -> None:
    """The start of `Guide.plan`: bring the cost map up to date, cut the window, push the robot's cell."""
    n = n0 * n0
    box = plan_i[P_LO_I:P_HI_J + 1]
    old_lo_i, old_hi_i, old_lo_j, old_hi_j = box[0], box[1], box[2], box[3]
    _known_box(occ, words, n0, box)
    full = plan_i[P_RECENTRES] != recentres  # a recentre shifted the memory: rebuild
    if full or old_hi_i < 0:
        _update_costs(occ, plan_i, plan_u8, n0, full, box[0], box[1], box[2], box[3])
    elif box[1] < 0:
        _update_costs(occ, plan_i, plan_u8, n0, False, old_lo_i, old_hi_i, old_lo_j, old_hi_j)
    else:
        _update_costs(occ, plan_i, plan_u8, n0, False, min(old_lo_i, box[0]), max(old_hi_i, box[1]),
                      min(old_lo_j, box[2]), max(old_hi_j, box[3]))
    plan_i[P_RECENTRES] = recentres

    ri = _cell((x - ox) / res, n0)  # search_window's cells and box
    rj = _cell((y - oy) / res, n0)
    gi = _cell((gx - ox) / res, n0)
    gj = _cell((gy - oy) / res, n0)
    lo_i, hi_i, lo_j, hi_j = min(ri, gi), max(ri, gi), min(rj, gj), max(rj, gj)
    if box[1] >= 0:
        lo_i, hi_i = min(lo_i, box[0]), max(hi_i, box[1])
        lo_j, hi_j = min(lo_j, box[2]), max(hi_j, box[3])
    m = math.ceil(WINDOW_MARGIN / res)
    plan_i[P_W_LO_I], plan_i[P_W_LO_J] = max(lo_i - m, 0), max(lo_j - m, 0)
    plan_i[P_W_HI_I], plan_i[P_W_HI_J] = min(hi_i + m, n0 - 1), min(hi_j + m, n0 - 1)

    sq = plan_u8[n:]
    start = ri * n0 + rj
    goal = gi * n0 + gj
    cost = plan_f[:256]
    plan_i[P_START], plan_i[P_GOAL] = start, goal
    plan_i[P_CODE_START], plan_i[P_CODE_GOAL] = sq[start], sq[goal]
    if cost[sq[start]] == np.inf:
        sq[start] = SQ_ENDPOINT
    if cost[sq[goal]] == np.inf:
        sq[goal] = SQ_ENDPOINT
    plan_f[PF_OX], plan_f[PF_OY], plan_f[PF_GX], plan_f[PF_GY] = ox, oy, gx, gy
    pid = plan_i[P_PLAN_ID] + 1
    rec = plan_f[PF_HEAD:PF_HEAD + 2 * n]
    word = rec.view(np.int64)
    if pid > MAX_PLAN_ID:  # once in 2**31 plans: clear the stamps
        for v in range(n):
            word[2 * v + 1] = 0
        pid = 1
    plan_i[P_PLAN_ID] = pid
    rec[2 * start] = 0.0
    word[2 * start + 1] = (np.int64(pid) << 32) | (DIR_START << DIR_SHIFT)
    _sift_up(plan_f[PF_HEAD + 2 * n:PF_HEAD + 3 * n], plan_i[P_HEAD:P_HEAD + n], word, 0,
             _octile(ri, rj, gi, gj, res), start)
    plan_i[P_SIZE] = 1
    plan_i[P_SEARCH] = 1
    plan_i[P_SINCE] = 0


@kernel
def _finish(plan_f: np.ndarray, plan_i: np.ndarray, plan_u8: np.ndarray, n0: int, res: float, found: bool) -> None:
    """The end of `Guide.plan`: the path's points (plan-time origin, goal last) go to plan_f, their count to P_K."""
    n = n0 * n0
    sq = plan_u8[n:]
    start, goal = plan_i[P_START], plan_i[P_GOAL]
    sq[start] = plan_i[P_CODE_START]
    sq[goal] = plan_i[P_CODE_GOAL]
    plan_i[P_SEARCH] = 0
    plan_i[P_INDEX] = 0
    rec = plan_f[PF_HEAD:PF_HEAD + 2 * n]
    word = rec.view(np.int64)
    if not found or not math.isfinite(rec[2 * goal]):
        plan_i[P_K] = 0
        return
    count = 1
    u = goal
    while True:
        d = (word[2 * u + 1] & DIR_BITS) >> DIR_SHIFT
        if d == DIR_START:
            break
        u -= _delta(d, n0)
        count += 1
    ox, oy = plan_f[PF_OX], plan_f[PF_OY]
    path = plan_f[PF_HEAD + 3 * n:]
    u = goal
    for k in range(count - 1, -1, -1):
        ci = u // n0
        path[2 * k] = ox + (ci + 0.5) * res
        path[2 * k + 1] = oy + (u - ci * n0 + 0.5) * res
        d = (word[2 * u + 1] & DIR_BITS) >> DIR_SHIFT
        if d != DIR_START:
            u -= _delta(d, n0)
    path[2 * count] = plan_f[PF_GX]
    path[2 * count + 1] = plan_f[PF_GY]
    plan_i[P_K] = count + 1


@kernel
def _plan(plan_f: np.ndarray, plan_i: np.ndarray, plan_u8: np.ndarray, n0: int, res: float, budget: int) -> None:
    """Run the pending search for at most ``budget`` expansions (0: to the end); finish it if it ended."""
    status = _search(plan_f, plan_i, plan_u8[n0 * n0:], n0, res, budget)
    if status != PENDING:
        _finish(plan_f, plan_i, plan_u8, n0, res, status == FOUND)


# ---------------------------------------------------------------------------------------------- following
@kernel
def _block_sum(a: np.ndarray, lo: int, n: int) -> float:
    """numpy's pairwise_sum on a block of at most 128 values: eight running sums, then the rest in order."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@kernel
def _pairwise_sum(a: np.ndarray, n: int, stack: np.ndarray, left: np.ndarray) -> float:
    """numpy's pairwise summation of a[:n] (so lengths match `Guide.write`'s ``.sum()`` bit for bit): halve
    (rounded down to a multiple of 8) until a block has at most 128 values. Iterative, with ``stack`` (int32,
    3 x 64) and ``left`` (float64, 64) as scratch: numba's cache mishandles recursive functions."""
    if n <= 128:
        return _block_sum(a, 0, n)
    depth = 64
    sp = 1
    stack[0], stack[depth], stack[2 * depth] = 0, n, 0  # lo, count, state (0 new, 1 left done, 2 both done)
    value = 0.0
    while sp > 0:
        top = sp - 1
        lo = stack[top]
        cnt = stack[depth + top]
        state = stack[2 * depth + top]
        if cnt <= 128 or state == 2:
            value = _block_sum(a, lo, cnt) if cnt <= 128 else left[top] + value
            sp -= 1
            if sp > 0:  # hand the value to the parent
                parent = sp - 1
                if stack[2 * depth + parent] == 0:
                    left[parent] = value
                    stack[2 * depth + parent] = 1
                    n2 = stack[depth + parent] // 2
                    n2 -= n2 % 8
                    stack[sp], stack[depth + sp], stack[2 * depth + sp] = stack[parent] + n2, \
                        stack[depth + parent] - n2, 0
                    sp += 1
                else:
                    stack[2 * depth + parent] = 2
            continue
        n2 = cnt // 2
        n2 -= n2 % 8
        stack[sp], stack[depth + sp], stack[2 * depth + sp] = lo, n2, 0
        sp += 1
    return value


@kernel
def _along(path: np.ndarray, count: int, index: int, distance: float) -> tuple[float, float]:
    """`Guide._along`: the point ``distance`` m along the path past its point ``index``."""
    k = index
    left = distance
    while k + 1 < count:
        ax, ay = path[2 * k], path[2 * k + 1]
        bx, by = path[2 * k + 2], path[2 * k + 3]
        seg = math.hypot(bx - ax, by - ay)
        if seg >= left:
            t = left / seg
            return ax + (bx - ax) * t, ay + (by - ay) * t
        left -= seg
        k += 1
    return path[2 * k], path[2 * k + 1]


@kernel
def _follow(plan_f: np.ndarray, plan_i: np.ndarray, n: int, x: float, y: float, th: float, gx: float, gy: float,
            obs: np.ndarray) -> None:
    """`Guide.write`: advance to the path point nearest the robot and write the block into obs."""
    off = plan_i[P_OFF]
    count = plan_i[P_K]
    look = plan_f[PF_LOOK]
    if count == 0:
        nx, ny, fx, fy = gx, gy, gx, gy
        length = math.hypot(gx - x, gy - y)
        found = 0.0
    else:
        path = plan_f[PF_HEAD + 3 * n:PF_HEAD + 5 * n + 2]
        index = plan_i[P_INDEX]
        best = index
        best_d = math.inf
        for k in range(index, min(index + SEARCH_AHEAD, count)):
            d = np.hypot(path[2 * k] - x, path[2 * k + 1] - y)
            if d < best_d:
                best_d = d
                best = k
        index = best
        plan_i[P_INDEX] = index
        nx, ny = _along(path, count, index, look)
        fx, fy = _along(path, count, index, 3.0 * look)
        seg = plan_f[PF_HEAD + 5 * n + 2:PF_HEAD + 6 * n + 2]
        for k in range(index, count - 1):
            seg[k - index] = np.hypot(path[2 * k + 2] - path[2 * k], path[2 * k + 3] - path[2 * k + 1])
        left = plan_f[PF_HEAD + 6 * n + 2:PF_HEAD + 6 * n + 66]
        length = math.hypot(path[2 * index] - x, path[2 * index + 1] - y) + _pairwise_sum(
            seg, count - 1 - index, plan_i[P_HEAD + n:P_HEAD + n + 192], left)
        found = 1.0
    c = math.cos(th)
    s = math.sin(th)
    for k in range(2):
        px, py = (nx, ny) if k == 0 else (fx, fy)
        ex = px - x
        ey = py - y
        lx = c * ex + s * ey
        ly = c * ey - s * ex
        r = math.hypot(lx, ly)
        if r > 0.0:
            obs[off + 2 * k] = ly / r
            obs[off + 2 * k + 1] = lx / r
        else:
            obs[off + 2 * k] = 0.0
            obs[off + 2 * k + 1] = 1.0
    obs[off + 4] = min(length, PATH_CLIP) / PATH_CLIP
    obs[off + 5] = found


@kernel
def plan_step(occ: np.ndarray, words: np.ndarray, plan_f: np.ndarray, plan_i: np.ndarray, plan_u8: np.ndarray,
              n0: int, res: float, x: float, y: float, th: float, ox: float, oy: float, gx: float, gy: float,
              recentres: int, obs: np.ndarray) -> None:
    """`Guide.__call__` on the level-0 obstacle units ``occ`` (``words``: the same bytes as uint64 where the
    grid's side is a multiple of 8, else anything): plan when due, then write the block."""
    since = plan_i[P_SINCE] + 1
    plan_i[P_SINCE] = since
    count = plan_i[P_K]
    if plan_i[P_SEARCH]:
        _plan(plan_f, plan_i, plan_u8, n0, res, plan_i[P_BUDGET])
    elif count == 0 or since >= plan_i[P_EVERY] or plan_i[P_INDEX] >= count - 2:
        _begin(occ, words, plan_f, plan_i, plan_u8, n0, res, x, y, ox, oy, gx, gy, recentres)
        _plan(plan_f, plan_i, plan_u8, n0, res, plan_i[P_BUDGET])
    _follow(plan_f, plan_i, n0 * n0, x, y, th, gx, gy, obs)
