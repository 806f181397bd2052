"""Whole-network estimates: FINN's estimate reports for a lowered model, a folding and a part.

Reproduces what FINN's ``step_generate_estimate_reports`` writes: per-layer resources
(``estimate_layer_resources.json``, with a ``total`` that sums BRAM_18K, LUT, URAM and DSP as floats),
per-layer cycles (``estimate_layer_cycles.json``) and ``estimate_network_performance.json``
(``critical_path_cycles`` — the longest path sum —, ``max_cycles`` and its node, throughput
``1e9 / clk_ns / max_cycles`` and latency ``critical_path_cycles * clk_ns``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bsopt.estimate.base import EstimateError, estimate_node, normalize_version
from bsopt.hw.parts import DEFAULT_RESOURCE_LIMITS, part_resources
from bsopt.ir.bitwidths import DT_ATTRS, minimize_bit_widths
from bsopt.ir.layers import DataflowGraph

TOTAL_KEYS = ("BRAM_18K", "LUT", "URAM", "DSP")
#: folding-config attributes that change FINN's bit-width minimisation
MINIMIZE_ATTRS = ("runtime_writeable_weights", "mem_mode")


@dataclass
class DeviceFit:
    """Utilisation of a part against resource limits (fractions of the part's resources)."""

    part: str
    known: bool
    utilisation: dict[str, float] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)
    exceeded: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.known and not self.exceeded

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"fits": self.fits}


def sum_totals(layer_resources: dict[str, dict[str, Any]]) -> dict[str, float]:
    """FINN's ``total``: BRAM_18K, LUT, URAM and DSP summed over layers, as floats."""
    tot = {k: 0.0 for k in TOTAL_KEYS}
    for res in layer_resources.values():
        for k in TOTAL_KEYS:
            tot[k] += res.get(k, 0)
    return tot


def device_fit(totals: dict[str, float], part: str, limits: dict[str, float] | None = None) -> DeviceFit:
    """Per-resource utilisation fractions and which limits (FINN's defaults unless given) are exceeded."""
    res = part_resources(part)
    lim = dict(DEFAULT_RESOURCE_LIMITS)
    lim.update(limits or {})
    if res is None:
        return DeviceFit(part, False, {}, lim, [])
    util, exceeded = {}, []
    for key in ("LUT", "FF", "BRAM_18K", "URAM", "DSP"):
        if key not in totals:
            continue
        avail = res.get(key, 0)
        used = float(totals[key])
        util[key] = used / avail if avail else (0.0 if used == 0 else float("inf"))
        if util[key] > lim.get(key, 1.0):
            exceeded.append(key)
    return DeviceFit(part, True, util, lim, exceeded)


@dataclass
class NetworkEstimate:
    """FINN's estimate reports for one configuration, plus device fit."""

    layer_resources: dict[str, dict[str, Any]]
    layer_cycles: dict[str, int]
    critical_path_cycles: int
    max_cycles: int
    max_cycles_node_name: str
    estimated_throughput_fps: float
    estimated_latency_ns: float
    clock_ns: float
    part: str
    fit: DeviceFit
    #: per node, what FINN's code generation would reject although its estimates accept it (only
    #: collected with ``estimate_network(codegen=True)``)
    codegen: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def total(self) -> dict[str, float]:
        return sum_totals(self.layer_resources)

    def performance(self) -> dict[str, Any]:
        return {
            "critical_path_cycles": self.critical_path_cycles,
            "max_cycles": self.max_cycles,
            "max_cycles_node_name": self.max_cycles_node_name,
            "estimated_throughput_fps": self.estimated_throughput_fps,
            "estimated_latency_ns": self.estimated_latency_ns,
        }

    def resources_report(self) -> dict[str, Any]:
        return {**self.layer_resources, "total": self.total}

    def write_reports(self, out_dir: str | Path) -> list[Path]:
        """Write FINN's three estimate report files into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "estimate_layer_resources.json": self.resources_report(),
            "estimate_layer_cycles.json": self.layer_cycles,
            "estimate_network_performance.json": self.performance(),
        }
        paths = []
        for name, data in files.items():
            p = out / name
            p.write_text(json.dumps(data, indent=2))
            paths.append(p)
        return paths

    def metrics(self) -> dict[str, Any]:
        """Flat metrics for studies (names from bsopt.metrics)."""
        tot = self.total
        m = {
            "throughput_fps": self.estimated_throughput_fps,
            "latency_ns": self.estimated_latency_ns,
            "max_cycles": self.max_cycles,
            "critical_path_cycles": self.critical_path_cycles,
            **{k: tot[k] for k in TOTAL_KEYS},
        }
        for k, v in self.fit.utilisation.items():
            m[f"{k}_util"] = v
        if self.fit.utilisation:
            m["max_util"] = max(self.fit.utilisation.values())
        m["codegen_issues"] = len(self.codegen)
        return m


def configured_graph(graph: DataflowGraph, folding: dict[str, Any] | None, *, where: str = "folding config"):
    """A shallow copy of ``graph`` with a FINN folding config applied (weights are shared, not copied)."""
    layers = [dataclasses.replace(layer, attrs=dict(layer.attrs)) for layer in graph.layers]
    g = DataflowGraph(layers, list(graph.inputs), list(graph.outputs), graph.finn_version, graph.fpgapart,
                      list(graph.warnings))
    if folding:
        g.apply_folding_config(folding, where=where)
        # bit widths are minimised again only when an attribute they depend on changed; results are
        # memoised per combination of those attributes
        key = tuple((layer.name, *(layer.attrs.get(k) for k in MINIMIZE_ATTRS)) for layer in g.layers
                    if layer.weights is not None or layer.thresholds is not None)
        base = tuple((layer.name, *(layer.attrs.get(k) for k in MINIMIZE_ATTRS)) for layer in graph.layers
                     if layer.weights is not None or layer.thresholds is not None)
        if key != base:
            cache = graph.minimize_cache
            if key not in cache:
                minimize_bit_widths(g)
                if len(cache) > 1024:
                    cache.clear()
                cache[key] = [({k: layer.attrs[k] for k in DT_ATTRS if k in layer.attrs}, layer.hw_thresholds)
                              for layer in g.layers]
            for layer, (dts, hw_thr) in zip(g.layers, cache[key], strict=True):
                layer.attrs.update(dts)
                layer.hw_thresholds = hw_thr
    return g


def estimate_network(
    graph: DataflowGraph,
    folding: dict[str, Any] | None = None,
    *,
    part: str | None = None,
    clock_ns: float = 10.0,
    finn_version: str | None = None,
    resource_limits: dict[str, float] | None = None,
    strict: bool = False,
    node_cache: dict | None = None,
    insert: str = "none",
    codegen: bool = False,
) -> NetworkEstimate:
    """FINN's estimate reports for ``graph`` with a folding config, on ``part`` at ``clock_ns``.

    ``node_cache``: a dict to memoise per-node estimates in across calls (useful when successive
    configurations change few layers); keyed by op type, attributes, part and FINN version.
    ``insert``: also estimate the nodes a real FINN build inserts between layers (``dwc``: the
    data-width converters; ``dwc_fifo``: and the FIFOs, as FINN's res_estimation reports them after
    InsertDWC + InsertFIFO; see :mod:`bsopt.estimate.inserted`). The reports list them in FINN's
    node order. ``codegen``: collect what FINN's code generation would reject per node
    (``NetworkEstimate.codegen``) instead of raising as ``strict`` does.
    """
    version = normalize_version(finn_version or graph.finn_version)
    part = part or graph.fpgapart
    g = configured_graph(graph, folding)
    layer_res: dict[str, dict[str, Any]] = {}
    layer_cyc: dict[str, int] = {}
    rejected: dict[str, list[str]] = {}
    for layer in g.layers:
        key = None
        if node_cache is not None:
            key = (layer.op_type, part, version, strict, codegen,
                   tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in layer.attrs.items()))
            est = node_cache.get(key)
            if est is not None:
                layer_res[layer.name] = est[0]
                layer_cyc[layer.name] = est[1]
                if est[2]:
                    rejected[layer.name] = est[2]
                continue
        issues: list = []
        try:
            est = estimate_node(layer.op_type, layer.attrs, part, version, strict=strict,
                                rejected=issues if codegen else None)
        except EstimateError as exc:
            raise EstimateError(f"layer {layer.name}: {exc.message}", hint=exc.hint) from exc
        cycles = est.pop("cycles")
        issues = [str(i) for i in issues]
        if key is not None:
            node_cache[key] = (est, int(cycles), issues)
        layer_res[layer.name] = est
        layer_cyc[layer.name] = int(cycles)
        if issues:
            rejected[layer.name] = issues
    renamed: dict[str, str] = {}
    if insert != "none":
        from bsopt.estimate.inserted import with_inserted

        res, cyc = {}, {}
        nodes = with_inserted(g.layers, version, insert)
        for node in nodes:
            if node.inserted:
                issues = []
                try:
                    est = estimate_node(node.op_type, node.attrs, part, version, strict=strict,
                                        rejected=issues if codegen else None)
                except EstimateError as exc:
                    raise EstimateError(f"{node.name} (inserted by FINN): {exc.message}", hint=exc.hint) from exc
                cyc[node.name] = int(est.pop("cycles"))
                res[node.name] = est
                if issues:
                    rejected[node.name] = [str(i) for i in issues]
            else:  # under FINN's name after insertion (on branching graphs it can differ)
                res[node.name], cyc[node.name] = layer_res[node.layer], layer_cyc[node.layer]
        renamed = {node.layer: node.name for node in nodes if not node.inserted}
        layer_res, layer_cyc = res, cyc
        rejected = {renamed.get(k, k): v for k, v in rejected.items()}
    # FINN's dataflow_performance: first slowest node wins; critical path = longest path sum (the
    # inserted nodes take no cycles in FINN's estimates)
    max_cycles, max_name = 0, ""
    at_output: dict[str, int] = {}
    producer = {layer.output: layer.name for layer in g.layers}
    for layer in g.layers:
        c = layer_cyc[renamed.get(layer.name, layer.name)]
        if c > max_cycles:
            max_cycles, max_name = c, renamed.get(layer.name, layer.name)
        preds = [producer[t] for t in layer.inputs if t in producer]
        at_output[layer.name] = c + (max(at_output[p] for p in preds) if preds else 0)
    critical = max(at_output.values()) if at_output else 0
    fps = 1e9 / clock_ns / max_cycles if max_cycles else float("inf")
    return NetworkEstimate(layer_res, layer_cyc, critical, max_cycles, max_name, fps, critical * clock_ns,
                           clock_ns, part, device_fit(sum_totals(layer_res), part, resource_limits), rejected)


__all__ = ["DeviceFit", "NetworkEstimate", "device_fit", "estimate_network", "configured_graph",
           "minimize_bit_widths"]
