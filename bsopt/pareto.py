"""Pareto fronts of plain objective matrices (minimisation), shared by the strategies and the queries."""

from __future__ import annotations

import numpy as np


def front_indices(pts: np.ndarray) -> list[int]:
    """Indices of the non-dominated rows of a minimisation matrix (identical rows: the first is kept),
    in their original order."""
    if len(pts) == 0:
        return []
    _, first = np.unique(pts, axis=0, return_index=True)
    first.sort()
    sub = pts[first]
    order = np.lexsort(sub.T[::-1])  # ascending by the first objective: dominators come first
    front: list[int] = []
    front_pts = np.empty((0, pts.shape[1]))
    for i in order:
        p = sub[i]
        if len(front_pts) and np.any(np.all(front_pts <= p, axis=1)):
            continue  # dominated (rows are unique, so <= everywhere means strictly better somewhere)
        front.append(int(first[i]))
        front_pts = np.vstack([front_pts, p])
    return sorted(front)


def hypervolume(pts: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume dominated by minimisation points and bounded by ``reference`` (points not strictly
    better than the reference in every objective add nothing). Exact; in 3-D by a sweep in
    O(n log n) time and O(n) memory (Optuna's 3-D method needs n² memory: 1.2 GB at 7,000 points)."""
    pts = np.asarray(pts, dtype=float)
    reference = np.asarray(reference, dtype=float)
    if len(pts) == 0:
        return 0.0
    pts = pts[np.all(pts < reference, axis=1)]
    if len(pts) == 0:
        return 0.0
    d = pts.shape[1]
    if d == 1:
        return float(reference[0] - pts[:, 0].min())
    if d == 3:
        return _hypervolume_3d(pts, reference)
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(pts, reference))


def _hypervolume_3d(pts: np.ndarray, ref: np.ndarray) -> float:
    """Sweep along the third objective, keeping the 2-D staircase of the points below the sweep plane
    (x ascending, y descending) and the area it dominates, updated per inserted point."""
    from bisect import bisect_left, bisect_right

    rx, ry, rz = (float(v) for v in ref)
    order = np.argsort(pts[:, 2], kind="stable")
    xs: list[float] = []
    ys: list[float] = []
    area = volume = 0.0
    z_prev = None
    for i in order:
        px, py, pz = (float(v) for v in pts[i])
        if z_prev is not None:
            volume += area * (pz - z_prev)
        z_prev = pz
        k = bisect_right(xs, px)
        if k > 0 and ys[k - 1] <= py:
            continue  # dominated in (x, y) by a point already below the plane
        start = bisect_left(xs, px)
        height = ys[start - 1] if start > 0 else ry  # the staircase's height just left of px
        end = start
        x_next = xs[start] if start < len(xs) else rx
        gained = (x_next - px) * (height - py)
        while end < len(xs) and ys[end] >= py:  # points p dominates in (x, y)
            x_after = xs[end + 1] if end + 1 < len(xs) else rx
            gained += (x_after - xs[end]) * (ys[end] - py)
            end += 1
        area += gained
        xs[start:end] = [px]
        ys[start:end] = [py]
    return volume + area * (rz - z_prev)
