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
