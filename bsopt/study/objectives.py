"""Objective values and constraint violations from a build's metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bsopt.errors import InputError

#: metrics each backend produces (the estimate backend has no power, fmax or accuracy)
BACKEND_METRICS = {
    "estimate": {"throughput_fps", "latency_ns", "max_cycles", "critical_path_cycles", "LUT", "BRAM_18K",
                 "URAM", "DSP", "LUT_util", "BRAM_18K_util", "URAM_util", "DSP_util", "max_util", "codegen_issues"},
}
BACKEND_METRICS["synthetic"] = BACKEND_METRICS["estimate"] - {"codegen_issues"}
#: the constraint every estimate-backed study has: no node that FINN's code generation rejects
CODEGEN_CONSTRAINT = "FINN code generation"
# real builds add what synthesis measures (present when the output stage runs it)
BACKEND_METRICS["finn"] = BACKEND_METRICS["synthetic"] | {"FF", "FF_util", "fmax_mhz", "power_w"}


@dataclass(frozen=True)
class Constraint:
    """``metric op value``; violation > 0 means violated (Optuna's set_constraint convention)."""

    name: str
    metric: str
    operator: str
    value: float

    def violation(self, x: float) -> float:
        v = self.value
        scale = max(abs(v), 1e-12)
        eps = 1e-9
        if self.operator == "<=":
            return (x - v) / scale
        if self.operator == "<":
            return (x - v) / scale + eps
        if self.operator == ">=":
            return (v - x) / scale
        if self.operator == ">":
            return (v - x) / scale + eps
        return abs(x - v) / scale  # ==

    def __str__(self) -> str:
        return f"{self.metric} {self.operator} {self.value:g}"


@dataclass
class ObjectiveSet:
    metrics: list[str]
    directions: list[str]
    constraints: list[Constraint]

    @classmethod
    def from_space(cls, space) -> ObjectiveSet:
        objs = space.search_config.objectives
        cons = [Constraint(f"{c.metric} {c.operator} {c.value:g}", c.metric, c.operator, float(c.value))
                for c in space.search_config.constraints]
        # the device budget: FINN's resource limits on the target part
        target = space.fixed_target()
        from bsopt.hw.parts import part_resources

        known = part_resources(target["part"]) is not None
        relative = sorted({m for m in [o.metric for o in objs] + [c.metric for c in cons]
                           if m.endswith("_util")})
        if relative and not known:
            from bsopt.hw.parts import PART_RESOURCES

            raise InputError(
                f"{', '.join(relative)} need the resources of part {target['part']}, which bsopt does not know",
                where="objectives/constraints",
                hint="use absolute limits (e.g. {metric: LUT, operator: '<=', value: 1000000}) or a part whose "
                     "resources bsopt knows: " + ", ".join(PART_RESOURCES),
            )
        if known:
            for res, limit in sorted(target["resource_limits"].items()):
                if res == "FF":  # the estimates have no flip-flop count
                    continue
                if any(c.metric == f"{res}_util" and c.operator in ("<=", "<") and c.value <= limit for c in cons):
                    continue  # a blueprint constraint at least as tight says it already (one message, not two)
                cons.append(Constraint(f"device {res} <= {limit:g}", f"{res}_util", "<=", float(limit)))
        if space.blueprint.backend == "estimate":
            # a configuration FINN estimates but its code generation rejects would fail to build
            cons.append(Constraint(CODEGEN_CONSTRAINT, "codegen_issues", "<=", 0.0))
        return cls([o.metric for o in objs], [o.direction for o in objs], cons)

    def check_backend(self, backend: str) -> None:
        available = BACKEND_METRICS.get(backend)
        if available is None:
            return
        missing = [m for m in self.metrics + [c.metric for c in self.constraints] if m not in available]
        if missing:
            raise InputError(
                f"the {backend} backend does not report {', '.join(sorted(set(missing)))}",
                where="objectives/constraints",
                hint=f"metrics of the {backend} backend: " + ", ".join(sorted(available)),
            )

    def values(self, metrics: dict[str, float]) -> list[float]:
        out = []
        for m in self.metrics:
            v = metrics.get(m)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                raise KeyError(f"metric '{m}' missing from the build result")
            out.append(float(v))
        return out

    def violations(self, metrics: dict[str, float]) -> dict[str, float]:
        return {c.name: c.violation(float(metrics.get(c.metric, math.inf))) for c in self.constraints}

    def describe(self) -> dict[str, Any]:
        return {"objectives": [{"metric": m, "direction": d} for m, d in zip(self.metrics, self.directions,
                                                                             strict=True)],
                "constraints": [str(c) for c in self.constraints]}
