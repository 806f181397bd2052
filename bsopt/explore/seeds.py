"""Seed trials: FINN's auto folding at a spread of frame rates, made legal for the space.

A study starts from what a FINN user would get from SetFolding, so it is at least as good. Where
FINN's choice is not a legal value of the space (e.g. SIMD < MW/1024 for MVAU_hls, which FINN's own
code generation rejects), the nearest legal value above it is used.
"""

from __future__ import annotations

from typing import Any

from bsopt.estimate.autofold import set_folding


def _nearest(choices, value):
    above = [c for c in choices if c >= value]
    return min(above) if above else max(choices)


def folding_seeds(space, count: int = 8, clock_ns: float | None = None) -> list[dict[str, Any]]:
    """Parameter value dicts for ``count`` SetFolding results between the slowest and fastest designs."""
    info = space.model_info
    fold_params = [p for p in space.parameters if p.group == "folding" and p.name.count(".") == 2]
    if info is None or not fold_params or count < 1:
        return []
    graph = info.dataflow
    from bsopt.estimate import nodes  # noqa: F401 - registers the cost models in REGISTRY
    from bsopt.estimate.base import REGISTRY

    # slowest bottleneck (everything at PE=SIMD=1) and a lower bound on the fastest
    slow = 1
    for layer in graph.layers:
        model = REGISTRY.get(layer.op_type)
        if model is None:
            continue
        a = {**model.defaults(graph.finn_version), **layer.attrs}
        for k in ("PE", "SIMD"):
            if k in a:
                a[k] = 1
        try:
            slow = max(slow, int(model.cycles(a, graph.finn_version)))
        except Exception:  # noqa: BLE001 - a layer the formulas cannot fold; ignore for the spread
            continue
    targets = sorted({max(1, int(slow / (slow ** (i / max(count - 1, 1))))) for i in range(count)}, reverse=True)
    seeds = []
    defaults = {p.name: p.value_at(0) for p in space.parameters if p.size}
    for target in targets:
        cfg = set_folding(graph, max(target, 2)).config
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
