"""A binary min-heap on preallocated arrays for Numba kernels: A* on the robot's own memory, Dijkstra in the sim.

Ties break on the smaller item, so searches are deterministic.
"""

from __future__ import annotations

import numpy as np

from robonav.sensors.jit import allocating_kernel


@allocating_kernel
def heap_push(keys: np.ndarray, items: np.ndarray, n: int, key: float, item: int) -> int:
    """Push (key, item) on the binary min-heap held in keys[:n], items[:n]; returns the new size."""
    i = n
    keys[i] = key
    items[i] = item
    while i > 0:
        p = (i - 1) // 2
        if keys[i] < keys[p] or (keys[i] == keys[p] and items[i] < items[p]):
            keys[i], keys[p] = keys[p], keys[i]
            items[i], items[p] = items[p], items[i]
            i = p
        else:
            break
    return n + 1


@allocating_kernel
def heap_pop(keys: np.ndarray, items: np.ndarray, n: int) -> tuple[float, int, int]:
    """Pop the smallest (key, item) (ties: smallest item); returns (key, item, new size)."""
    key = keys[0]
    item = items[0]
    n -= 1
    keys[0] = keys[n]
    items[0] = items[n]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        m = left
        right = left + 1
        if right < n and (keys[right] < keys[left]
                          or (keys[right] == keys[left] and items[right] < items[left])):
            m = right
        if keys[m] < keys[i] or (keys[m] == keys[i] and items[m] < items[i]):
            keys[i], keys[m] = keys[m], keys[i]
            items[i], items[m] = items[m], items[i]
            i = m
        else:
            break
    return key, item, n
