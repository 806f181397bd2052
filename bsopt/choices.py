"""The closed choices a user makes, as str-Enums (FINN's style: ``DataflowOutputType`` …).

Each member compares equal to its string (``FinnVersion.LATEST == "latest"``), so blueprints,
command lines and stored studies keep plain strings while code names the members.
"""

from __future__ import annotations

import enum

from bsopt.errors import InputError


class FinnVersion(enum.StrEnum):
    """Which FINN's lowering and estimates bsopt reproduces."""

    LATEST = "latest"  # FINN dev, commit 73ba5ed (the FINN ../shared/finn_src builds)
    V0_10_1 = "0.10.1"

    @classmethod
    def parse(cls, value: str | FinnVersion) -> FinnVersion:
        """The version a user's spelling names (``dev``/``main`` are ``latest``); InputError otherwise."""
        text = str(value).strip().lower()
        if text in ("dev", "main"):
            return cls.LATEST
        try:
            return cls(text)
        except ValueError:
            hint = "use " + " or ".join(f"'{v.value}'" for v in cls) + " ('dev' means latest)"
            if isinstance(value, (int, float)):  # YAML read 0.10 as the number 0.1
                hint += "; write a version in quotes, e.g. finn_version: \"0.10.1\""
            raise InputError(f"unknown FINN version {str(value)!r}", hint=hint) from None


class OutputStage(enum.StrEnum):
    """How far a build goes (blueprint ``global.output_stage``, v0.1 ``output``)."""

    ESTIMATES = "estimates"
    DATAFLOW_GRAPH = "dataflow_graph"
    RTL = "rtl"
    STITCHED_IP = "stitched_ip"
    BITFILE = "bitfile"


class StrategyName(enum.StrEnum):
    """What ``search.strategy`` (or ``--sampler``) can ask for; :mod:`bsopt.explore` resolves it."""

    AUTO = "auto"
    TPE = "tpe"
    NSGA2 = "nsga2"
    NSGA3 = "nsga3"
    GP = "gp"
    RANDOM = "random"
    GRID = "grid"
    EXHAUSTIVE = "exhaustive"
    EXACT = "exact"
    SURROGATE = "surrogate"

    @property
    def enumerates(self) -> bool:
        """Evaluates every configuration in turn (so the space must be countable and not too large)."""
        return self in (StrategyName.GRID, StrategyName.EXHAUSTIVE)


#: the estimate backend's ``insert`` option: which nodes a real FINN build inserts between layers the
#: network estimate includes (none; the data-width converters; and the FIFOs, as FINN's res_estimation
#: reports them after InsertDWC + InsertFIFO)
INSERT_MODES = ("none", "dwc", "dwc_fifo")
