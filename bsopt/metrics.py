"""The metrics a build can report, with their units and the direction that is better."""

from __future__ import annotations

from dataclasses import dataclass

RESOURCES = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    direction: str  # "maximize" | "minimize"
    description: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("throughput_fps", "1/s", "maximize", "inferences per second (estimate, or rtlsim when available)"),
        Metric("latency_ns", "ns", "minimize", "latency of one inference"),
        Metric("max_cycles", "cycles", "minimize", "cycles of the slowest layer (the pipeline's bottleneck)"),
        Metric("critical_path_cycles", "cycles", "minimize", "cycles along the longest path"),
        Metric("LUT", "LUTs", "minimize", "look-up tables"),
        Metric("FF", "FFs", "minimize", "flip-flops"),
        Metric("BRAM_18K", "BRAM18", "minimize", "18 Kbit block RAMs"),
        Metric("URAM", "URAM", "minimize", "UltraRAM blocks"),
        Metric("DSP", "DSPs", "minimize", "DSP slices"),
        Metric("power_w", "W", "minimize", "total on-chip power (needs a power report)"),
        Metric("fmax_mhz", "MHz", "maximize", "achieved clock frequency (needs synthesis)"),
        Metric("accuracy", "", "maximize", "held-out accuracy of the trained model (co-design studies)"),
        *(
            Metric(f"{r}_util", "fraction", "minimize", f"{r} used as a fraction of the device's {r}")
            for r in RESOURCES
        ),
        Metric("max_util", "fraction", "minimize", "largest resource utilisation fraction"),
    )
}

#: Metric names used by Brainsmith blueprints, mapped to bsopt's.
METRIC_ALIASES = {
    "throughput": "throughput_fps", "fps": "throughput_fps", "latency": "latency_ns", "lut": "LUT",
    "ff": "FF", "bram": "BRAM_18K", "uram": "URAM", "dsp": "DSP", "power": "power_w",
    "lut_utilization": "LUT_util", "ff_utilization": "FF_util", "bram_utilization": "BRAM_18K_util",
    "uram_utilization": "URAM_util", "dsp_utilization": "DSP_util",
}


def resolve_metric(name) -> str | None:
    """A metric's canonical name (aliases included), or None."""
    if not isinstance(name, str):
        return None
    if name in METRICS:
        return name
    return METRIC_ALIASES.get(name.lower())


#: What a blueprint without objectives optimises (documented in docs/blueprint.md).
DEFAULT_OBJECTIVES = (("throughput_fps", "maximize"), ("LUT", "minimize"), ("BRAM_18K", "minimize"))
#: ... and a blueprint with a ``quantization:`` section (accuracy × hardware co-design)
CODESIGN_OBJECTIVES = (("accuracy", "maximize"), ("throughput_fps", "maximize"), ("LUT", "minimize"))

OPERATORS = ("<", "<=", ">", ">=", "==")
