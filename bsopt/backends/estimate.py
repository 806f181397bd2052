"""The default Phase 3 backend: a BuildConfig's metrics from FINN's estimates, in milliseconds."""

from __future__ import annotations

import json
import time
from typing import Any

from bsopt.backends.result import BuildMetrics, BuildResult, BuildStatus
from bsopt.choices import INSERT_MODES
from bsopt.errors import BsoptError, InputError
from bsopt.estimate.autofold import set_folding, set_folding_spread, target_cycles
from bsopt.estimate.base import estimate_node, normalize_version
from bsopt.estimate.network import NetworkEstimate, configured_graph, estimate_network
from bsopt.lowering import LoweringOptions, bit_width_passes, lower, standalone_thresholds


class EstimateBackend:
    """Evaluates BuildConfigs of one model with bsopt's embedded cost models.

    Backend choices (a BuildConfig's ``specialize_config``) re-lower the model with FINN's
    preferred implementation styles; each distinct choice is lowered once and cached. In
    ``target_fps`` mode the folding comes from FINN's SetFolding, as in FINN's own flow.
    """

    name = "estimate"

    def __init__(self, model_path: str, finn_version: str = "latest", part: str | None = None,
                 options: dict[str, Any] | None = None):
        self.model_path = model_path
        self.finn_version = finn_version
        self.part = part
        options = dict(options or {})
        self.insert = options.pop("insert", "none")
        if self.insert not in INSERT_MODES or options:
            bad = f"insert: {self.insert!r}" if self.insert not in INSERT_MODES else ", ".join(options)
            raise InputError(f"the estimate backend has no option {bad}", where="backend.options",
                             hint="options: insert (" + " | ".join(INSERT_MODES) + "): the nodes FINN inserts "
                             "between layers to cost (data-width converters, FIFOs)")
        self._graphs: dict[tuple[str, str, str], Any] = {}
        #: lower with the weight and threshold matrices (bsopt.lowering.LoweringOptions.keep_parameters)
        self.keep_parameters = False

    @classmethod
    def for_space(cls, space) -> EstimateBackend:
        """The estimate backend of a DesignSpace's model on its fixed target (part, FINN version), with
        the blueprint's estimate options (also when the study builds with FINN: the staged gate)."""
        target = space.fixed_target()
        options = space.blueprint.backend_options if space.blueprint.backend == "estimate" else {}
        return cls(space.model_path, target["finn_version"], target["part"], options)

    def table_key(self) -> tuple | None:
        """What its estimates depend on besides the space, for memoising option tables across instances
        (the fit check and the exact strategy of one command each make one); None for subclasses."""
        if type(self) is not EstimateBackend:
            return None
        return (self.model_path, self.finn_version, self.part, self.insert)

    def cache_identity(self) -> dict[str, Any] | None:
        """Options that change results (the build cache keys on them)."""
        return {"insert": self.insert} if self.insert != "none" else None

    def graph(self, part: str, version: str, specialize: dict[str, Any] | None = None, *,
              standalone_thresholds: bool = False, bit_widths: tuple[bool, bool] = (True, True)):
        pref = {k: v["preferred_impl_style"] for k, v in (specialize or {}).items()
                if k != "Defaults" and "preferred_impl_style" in v}
        key = (part, version, json.dumps(pref, sort_keys=True), standalone_thresholds, bit_widths)
        if key not in self._graphs:
            self._graphs[key] = lower(self.model_path, LoweringOptions(
                finn_version=version, fpgapart=part, preferred_impl_style=pref,
                standalone_thresholds=standalone_thresholds, minimize_bit_width=bit_widths[0],
                round_thresholds=bit_widths[1], keep_parameters=self.keep_parameters))
        return self._graphs[key]

    def graph_for(self, cfg, part: str, version: str):
        """The lowered graph a BuildConfig builds on: its backend choices, standalone_thresholds, and
        whether its flow minimises bit widths (a blueprint may skip FINN's step)."""
        return self.graph(part, version, cfg.specialize_config,
                          standalone_thresholds=standalone_thresholds(cfg.config_flags, cfg.finn_config),
                          bit_widths=bit_width_passes(cfg.config_flags, cfg.finn_config, cfg.build_steps))

    def estimate(self, cfg) -> NetworkEstimate:
        """FINN's estimate reports for a BuildConfig (see bsopt.space.build_config)."""
        target = cfg.target or {}
        part = target.get("part") or self.part
        version = target.get("finn_version") or self.finn_version
        clock = float(target.get("clock_ns") or cfg.finn_config.get("synth_clk_period_ns") or 10.0)
        graph = self.graph_for(cfg, part, version)
        folding = cfg.folding_config
        if folding is None and cfg.finn_config.get("target_fps"):
            folding = set_folding(graph, target_cycles(cfg.finn_config["target_fps"], clock),
                                  mvau_wwidth_max=int(cfg.finn_config.get("mvau_wwidth_max", 36)),
                                  finn_version=version, part=part).config
        # what FINN's code generation would reject although its estimates accept it is collected:
        # such a configuration is infeasible (the 'codegen_issues' metric), as its build would fail
        return estimate_network(graph, folding, part=part, clock_ns=clock, finn_version=version,
                                resource_limits=target.get("resource_limits"), codegen=True, insert=self.insert)

    # -- per layer: what the exact solver and the seeds ask (they never reach into bsopt.estimate) ------
    @staticmethod
    def version(requested: str | None, default: str = "latest") -> str:
        """FINN's version as the cost models name it (``dev`` → ``latest``); InputError if unknown."""
        return normalize_version(requested or default)

    @staticmethod
    def configured(graph, folding: dict[str, Any] | None):
        """``graph`` with a FINN folding config applied (a shallow copy; bit widths re-minimised)."""
        return configured_graph(graph, folding)

    @staticmethod
    def node_estimate(op_type: str, attrs: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        """FINN's estimate of one node (resources and ``cycles``); EstimateError where FINN rejects it,
        in its estimates or its code generation (as :meth:`build` does)."""
        return estimate_node(op_type, attrs, part, version, strict=True)

    @staticmethod
    def stream_key(op_type: str, attrs: dict[str, Any], version: str, name: str = "", shape=()) -> tuple:
        """What decides the nodes FINN inserts around a layer (its streams, FIFO depths, output shape)."""
        from bsopt.estimate.inserted import stream_key

        return stream_key(op_type, attrs, version, name, shape)

    def inserted_on_edge(self, producer: tuple, out_idx: int, consumer: tuple, in_idx: int) -> list:
        """The nodes FINN inserts on one edge (this backend's ``insert`` mode), from two stream keys."""
        from bsopt.estimate.inserted import edge_nodes

        return edge_nodes(producer, out_idx, consumer, in_idx, self.insert)

    def inserted_at_boundary(self, key: tuple, side: str, index: int = 0) -> list:
        """The FIFO FINN inserts before the first (``side="in"``) or after the last layer."""
        from bsopt.estimate.inserted import boundary_nodes

        return boundary_nodes(key, side, index, self.insert)

    @staticmethod
    def folding_spread(graph, count: int) -> list[dict[str, Any]]:
        """FINN's SetFolding at ``count`` frame rates from the slowest to the fastest design."""
        return set_folding_spread(graph, count)

    def metrics(self, cfg) -> BuildMetrics:
        return BuildMetrics.from_estimate(self.estimate(cfg))

    def build(self, cfg) -> BuildResult:
        """A BuildResult for a BuildConfig: SUCCESS with metrics, or FAILED with FINN's reason."""
        start = time.time()
        try:
            est = self.estimate(cfg)
        except BsoptError as exc:
            return BuildResult(cfg.config_id, BuildStatus.FAILED, start, time.time(), error_message=str(exc),
                               backend=self.name)
        metrics = BuildMetrics.from_estimate(est)
        values = {k: float(v) for k, v in est.metrics().items()}
        warnings = [f"{name}: {issue} (FINN's code generation rejects it)" for name, issues in est.codegen.items()
                    for issue in issues]
        return BuildResult(cfg.config_id, BuildStatus.SUCCESS, start, time.time(), metrics=metrics,
                           values=values, backend=self.name, warnings=warnings)
