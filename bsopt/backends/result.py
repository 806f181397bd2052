"""What a build returns: BuildMetrics (the seed's fields) and, later, the full BuildResult."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BuildMetrics:
    """The seed's metric fields. Utilisations are fractions of the device; unknown values are None."""

    throughput: float | None = None  # inferences per second
    latency: float | None = None  # ns
    clock_frequency: float | None = None  # MHz
    lut_utilization: float | None = None
    dsp_utilization: float | None = None
    bram_utilization: float | None = None
    uram_utilization: float | None = None
    total_power: float | None = None  # W; None when no power report exists
    accuracy: float | None = None
    raw_metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_estimate(cls, est) -> BuildMetrics:
        """From a :class:`bsopt.estimate.network.NetworkEstimate` (power stays unknown)."""
        util = est.fit.utilisation
        raw = est.metrics()
        raw["part"] = est.part
        raw["clock_ns"] = est.clock_ns
        raw["fits"] = est.fit.fits
        raw["exceeded"] = list(est.fit.exceeded)
        return cls(
            throughput=est.estimated_throughput_fps,
            latency=est.estimated_latency_ns,
            clock_frequency=1e3 / est.clock_ns,
            lut_utilization=util.get("LUT"),
            dsp_utilization=util.get("DSP"),
            bram_utilization=util.get("BRAM_18K"),
            uram_utilization=util.get("URAM"),
            raw_metrics=raw,
        )


class BuildStatus:
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    PRUNED = "PRUNED"  # never built: the estimate gate stopped it (recorded on trials, not by backends)


@dataclass
class BuildResult:
    """The seed's BuildResult: what one build of one BuildConfig produced."""

    config_id: str
    status: str
    start_time: float
    end_time: float
    metrics: BuildMetrics | None = None
    #: flat metric values by bsopt metric name (throughput_fps, LUT, …) used for objectives/constraints
    values: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    error_message: str | None = None
    warnings: list[str] = field(default_factory=list)
    logs: str = ""
    backend: str = ""
    cache_hit: bool = False
    recoverable: bool = False  # a failure worth retrying (worker lost, transient I/O)
    #: False for a failure of the environment rather than of the configuration (the tool is missing or
    #: is not the tool): it must not be cached as a fact about the configuration
    cacheable: bool = True
    worker: str = ""  # where it ran: "local:host:pid", "ray:node:pid", "inprocess:host:pid"

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time

    @property
    def ok(self) -> bool:
        return self.status == BuildStatus.SUCCESS

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration"] = self.duration
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BuildResult:
        d = {k: v for k, v in d.items() if k != "duration"}
        if d.get("metrics") is not None:
            d["metrics"] = BuildMetrics(**d["metrics"])
        return cls(**d)
