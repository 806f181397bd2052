"""Seed trials: FINN's auto folding at a spread of frame rates, made legal for the space.

A study starts from what a FINN user would get from SetFolding, so it is at least as good. Where
FINN's choice is not a legal value of the space (e.g. SIMD < MW/1024 for MVAU_hls, which FINN's own
code generation rejects), the nearest legal value above it is used.
"""

from __future__ import annotations

from typing import Any


def _nearest(choices, value):
    above = [c for c in choices if c >= value]
    return min(above) if above else max(choices)


def folding_seeds(space, count: int = 8, clock_ns: float | None = None, estimator=None) -> list[dict[str, Any]]:
    """Parameter value dicts for ``count`` SetFolding results between the slowest and fastest designs
    (``estimator``: the estimate backend whose SetFolding is asked; one for the space by default)."""
    info = space.model_info
    fold_params = [p for p in space.parameters if p.group == "folding" and p.name.count(".") == 2]
    if info is None or not fold_params or count < 1:
        return []
    if estimator is None or not hasattr(estimator, "folding_spread"):
        from bsopt.backends.estimate import EstimateBackend

        estimator = EstimateBackend.for_space(space)
    seeds = []
    defaults = {p.name: p.value_at(0) for p in space.parameters if p.size}
    for cfg in estimator.folding_spread(info.dataflow, count):
        values = dict(defaults)
        for p in fold_params:
            _, layer, attr = p.name.split(".")
            v = cfg.get(layer, {}).get(attr)
            if v is None or p.size is None:
                continue
            values[p.name] = v if v in p.choices else (_nearest(p.choices, v) if isinstance(v, (int, float))
                                                         else p.value_at(0))
        if values not in seeds:
            seeds.append(values)
    return seeds
