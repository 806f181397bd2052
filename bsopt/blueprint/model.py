"""A blueprint after reading, the same shape whatever format it was written in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bsopt.blueprint.entries import Entry
from bsopt.blueprint.yamlloc import Locations
from bsopt.choices import FinnVersion, StrategyName  # noqa: F401  (StrategyName re-exported)


@dataclass
class NumSpec:
    """A value that may be a search parameter: fixed, ``{choices: [...]}`` or ``{low, high, step, log}``."""

    fixed: Any = None
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    integer: bool = False
    path: tuple[Any, ...] = ()

    @property
    def is_fixed(self) -> bool:
        return self.choices is None and self.low is None


@dataclass
class Objective:
    metric: str
    direction: str
    path: tuple[Any, ...] = ()


@dataclass
class Constraint:
    metric: str
    operator: str
    value: float
    path: tuple[Any, ...] = ()

    def holds(self, x: float) -> bool:
        return {"<": x < self.value, "<=": x <= self.value, ">": x > self.value, ">=": x >= self.value,
                "==": x == self.value}[self.operator]


@dataclass
class FoldingSpec:
    """bsopt's per-layer folding choices (see docs/blueprint.md)."""

    mode: str = "per_layer"  # "per_layer" | "target_fps" | "none"
    defaults: dict[str, Any] = field(default_factory=dict)  # attr -> spec, for every layer having attr
    kinds: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind or op_type -> attr -> spec
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)  # layer name -> attr -> spec
    max_stream_width: int | None = None
    target_fps: NumSpec | None = None
    path: tuple[Any, ...] = ("folding",)


@dataclass
class Blueprint:
    file: str
    format: str  # "v3" | "0.1"
    name: str
    description: str
    locs: Locations
    kernels: list[Entry] = field(default_factory=list)
    transforms: list[Entry] = field(default_factory=list)
    steps: list[Entry] = field(default_factory=list)
    config_flags: dict[str, Any] = field(default_factory=dict)
    finn_config: dict[str, Any] = field(default_factory=dict)
    processing: list[tuple[str, str, list[Any], tuple[Any, ...]]] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)
    constraints: list[Constraint] = field(default_factory=list)
    global_config: dict[str, Any] = field(default_factory=dict)
    objectives: list[Objective] = field(default_factory=list)
    objectives_defaulted: bool = False
    model: str | None = None
    model_path: tuple[Any, ...] = ("model",)
    part: str | None = None
    board: str | None = None
    clock_ns: NumSpec | None = None
    resource_limits: dict[str, float] = field(default_factory=dict)
    finn_version: FinnVersion = FinnVersion.LATEST
    backend: str = "estimate"
    backend_options: dict[str, Any] = field(default_factory=dict)
    folding: FoldingSpec | None = None
    parameters: dict[str, NumSpec] = field(default_factory=dict)
    start_step: str | None = None
    stop_step: str | None = None
    extends_chain: list[str] = field(default_factory=list)
    codesign: bool = False  # a quantization: (or training:) section is present
    quantization: Any = None  # bsopt.blueprint.codesign.QuantizationSpec (None: absent or with errors)
    training: Any = None  # bsopt.blueprint.codesign.TrainingSpec
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
