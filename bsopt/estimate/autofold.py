"""FINN's auto folding (``SetFolding``) from a target frame rate, reproduced on bsopt's IR.

For each layer in graph order: MVAUs raise SIMD over the divisors of MW while the weight stream
(``SIMD x weight bits``, weight datatype before minimisation) stays within ``mvau_wwidth_max``, then PE
over the divisors of MH; PE-folded ops and SIMD-folded ops raise their one attribute; depthwise
consumers (VVAU, Pool) set their sliding window's SIMD to their PE; LayerNorm_rtl raises SIMD only
while ``C/SIMD > 12``; a transpose (FINN folds the Shuffle before splitting it into Outer/InnerShuffle
stages) raises one SIMD for all its stages against their slowest. HWSoftmax and LayerNorm_hls are
not folded (FINN's SetFolding does not know them). Each search stops at the first
value whose cycles are *below* the target. With two-pass relaxation, a second pass runs with the
achieved bottleneck as the target. The result is FINN's ``auto_folding_config.json``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bsopt.estimate.base import REGISTRY, normalize_version
from bsopt.estimate.legality import divisors
from bsopt.ir.layers import DataflowGraph

#: attributes FINN's step_target_fps_parallelization writes, in its order
HW_ATTRS = ("PE", "SIMD", "parallel_window", "ram_style", "resType", "mem_mode", "runtime_writeable_weights",
            "depth_trigger_uram", "depth_trigger_bram")

#: which of HW_ATTRS each specialised op type has (FINN node attribute sets)
CONFIG_ATTRS = {
    "MVAU_hls": ("PE", "SIMD", "ram_style", "resType", "mem_mode", "runtime_writeable_weights"),
    "MVAU_rtl": ("PE", "SIMD", "ram_style", "resType", "mem_mode", "runtime_writeable_weights"),
    "VVAU_hls": ("PE", "SIMD", "ram_style", "resType", "mem_mode", "runtime_writeable_weights"),
    "VVAU_rtl": ("PE", "SIMD", "ram_style", "resType", "mem_mode", "runtime_writeable_weights"),
    "Thresholding_rtl": ("PE", "runtime_writeable_weights", "depth_trigger_uram", "depth_trigger_bram"),
    "Thresholding_hls": ("PE", "ram_style", "mem_mode", "runtime_writeable_weights"),
    "ConvolutionInputGenerator_rtl": ("SIMD", "parallel_window", "ram_style"),
    "ConvolutionInputGenerator_hls": ("SIMD", "ram_style"),
    "FMPadding_rtl": ("SIMD",),
    "FMPadding_hls": ("SIMD",),
    "ChannelwiseOp_hls": ("PE", "ram_style"),
    "LayerNorm_hls": ("SIMD",),
    "LayerNorm_rtl": ("SIMD",),
    "HWSoftmax_hls": ("SIMD",),
    "OuterShuffle_hls": ("SIMD",),
    "InnerShuffle_rtl": ("SIMD",),
    **{f"Elementwise{fn}_{b}": ("PE", "ram_style", "mem_mode") for fn in ("Add", "Sub", "Mul") for b in ("hls", "rtl")},
}

PE_OPS = {
    # FINN folds the HLS elementwise ops only (its list comes from the hls module's classes)
    "latest": ("DuplicateStreams_hls", "GlobalAccPool_hls", "Thresholding_hls", "Thresholding_rtl",
               "ElementwiseAdd_hls", "ElementwiseSub_hls", "ElementwiseMul_hls"),
    "0.10.1": ("AddStreams_hls", "ChannelwiseOp_hls", "DuplicateStreams_hls", "GlobalAccPool_hls",
               "Thresholding_hls", "Thresholding_rtl"),
}
SIMD_OPS = {
    "latest": ("FMPadding_rtl", "ConvolutionInputGenerator_rtl"),
    "0.10.1": ("DownSampler_hls", "FMPadding_hls", "ConvolutionInputGenerator_hls", "ConvolutionInputGenerator_rtl"),
}
DEPTHWISE_OPS = ("VVAU_hls", "VVAU_rtl", "Pool_hls")


def target_cycles(target_fps: float, clock_ns: float) -> int:
    """FINN's cycles-per-frame target: int(1e9 / clk_ns / target_fps)."""
    return int(10**9 / clock_ns / target_fps)


@dataclasses.dataclass
class AutoFolding:
    config: dict[str, Any]
    max_cycles: int
    max_cycles_node_name: str
    target_cycles: int
    passes: int
    codegen_issues: dict[str, list[str]]

    @property
    def buildable(self) -> bool:
        """False if FINN's own code generation would reject the folding FINN's SetFolding chose."""
        return not self.codegen_issues


def set_folding(graph: DataflowGraph, target_cycles_per_frame: int, *, mvau_wwidth_max: int = 36,
                two_pass_relaxation: bool = True, finn_version: str | None = None,
                part: str | None = None) -> AutoFolding:
    """FINN's SetFolding on a copy of ``graph``; the graph itself is not changed."""
    version = normalize_version(finn_version or graph.finn_version)
    from bsopt.estimate import nodes  # noqa: F401  (registers the cost models)

    layers = [dataclasses.replace(layer, attrs=dict(layer.attrs)) for layer in graph.layers]
    attrs = {}
    for layer in layers:
        model = REGISTRY.get(layer.op_type)
        attrs[layer.name] = {**(model.defaults(version) if model else {}), **layer.attrs}
    passes = 1
    _fold_pass(layers, attrs, target_cycles_per_frame, mvau_wwidth_max, version)
    cycles = _cycles(layers, attrs, version)
    max_name = _bottleneck(layers, cycles)
    if two_pass_relaxation and cycles[max_name] > target_cycles_per_frame:
        passes = 2
        _fold_pass(layers, attrs, cycles[max_name], mvau_wwidth_max, version)
        cycles = _cycles(layers, attrs, version)
        max_name = _bottleneck(layers, cycles)
    config: dict[str, Any] = {"Defaults": {}}
    issues: dict[str, list[str]] = {}
    for layer in layers:
        a = attrs[layer.name]
        keys = CONFIG_ATTRS.get(layer.op_type, ("PE",) if "PE" in a else ())
        config[layer.name] = {k: a[k] for k in HW_ATTRS if k in keys and k in a}
        model = REGISTRY.get(layer.op_type)
        if model is not None:
            found = model.issues(a, part or graph.fpgapart, version)
            if found:
                issues[layer.name] = found
    return AutoFolding(config, cycles[max_name], max_name, target_cycles_per_frame, passes, issues)


def _cycles(layers, attrs, version) -> dict[str, int]:
    return {layer.name: int(REGISTRY[layer.op_type].cycles(attrs[layer.name], version)) for layer in layers}


def _bottleneck(layers, cycles) -> str:
    best, name = 0, layers[0].name if layers else ""
    for layer in layers:
        if cycles[layer.name] > best:
            best, name = cycles[layer.name], layer.name
    return name


def _fold_pass(layers, attrs, target: int, wwidth_max: int, version: str) -> None:
    producers = {layer.output: layer for layer in layers}

    def cyc(layer) -> int:
        return REGISTRY[layer.op_type].cycles(attrs[layer.name], version)

    def optimize(layer, max_val: int, attr: str) -> None:
        a = attrs[layer.name]
        a[attr] = 1
        for v in divisors(int(max_val)):
            a[attr] = v
            if cyc(layer) < target:
                break

    shuffles: dict[str, list] = {}
    for layer in layers:  # the copies' stages, by FINN's Shuffle name (DataflowGraph.transpose_stages)
        if "original_node_name" in layer.attrs:
            shuffles.setdefault(layer.attrs["original_node_name"], []).append(layer)
    done: set[str] = set()

    for layer in layers:
        op, a = layer.op_type, attrs[layer.name]
        if "original_node_name" in layer.attrs:
            key = layer.attrs["original_node_name"]
            if key not in done:
                done.add(key)
                _fold_shuffle(shuffles[key], attrs, target, version)
            continue
        if op == "LayerNorm_rtl":
            a["SIMD"] = 1
            dim = int(a["ifm_dim"][-1])
            for v in divisors(dim):
                if dim // v <= 12:
                    break
                a["SIMD"] = v
                if cyc(layer) < target:
                    break
            continue
        if op in ("MVAU_hls", "MVAU_rtl"):
            a["PE"], a["SIMD"] = 1, 1
            wbits = _bits(layer.base_attrs.get("weightDataType", a["weightDataType"]))
            for v in divisors(int(a["MW"])):
                prev = a["SIMD"]
                a["SIMD"] = v
                if cyc(layer) < target:
                    break
                if wbits * a["SIMD"] > wwidth_max:
                    a["SIMD"] = prev
                    break
            optimize(layer, a["MH"], "PE")
        elif op in PE_OPS[version]:
            optimize(layer, a.get("NumChannels", layer.in_shape[-1]), "PE")
        elif op == "LabelSelect_hls":
            optimize(layer, a["Labels"], "PE")
        elif op in DEPTHWISE_OPS:
            if op.startswith("VVAU"):
                a["SIMD"] = 1
            optimize(layer, a["Channels"], "PE")
            pe = a["PE"]
            if op.startswith("VVAU") and pe == a["Channels"] and cyc(layer) > target:
                k = 1
                for d in a["Kernel"]:
                    k *= d
                optimize(layer, k, "SIMD")
            swu = producers.get(layer.inputs[0])
            if swu is not None and swu.kind == "ConvolutionInputGenerator":
                attrs[swu.name]["SIMD"] = pe
                if swu.op_type == "ConvolutionInputGenerator_rtl":
                    attrs[swu.name]["parallel_window"] = int(op.startswith("VVAU") and a["SIMD"] > 1)
        elif op in SIMD_OPS[version]:
            if op.startswith("ConvolutionInputGenerator"):
                if a.get("depthwise", 0):
                    continue
                if op == "ConvolutionInputGenerator_rtl":
                    a["parallel_window"] = 0
                optimize(layer, a["IFMChannels"], "SIMD")
                if op == "ConvolutionInputGenerator_rtl" and a["SIMD"] == a["IFMChannels"] and cyc(layer) > target:
                    a["parallel_window"] = 1
            else:
                optimize(layer, a["NumChannels"], "SIMD")


def _fold_shuffle(stages, attrs, target: int, version: str) -> None:
    """One transpose's SIMD (FINN folds the Shuffle before decomposing it): the first divisor of its
    channel count at which every stage accepts it and the slowest stage is below the target."""
    from bsopt.estimate.base import EstimateError

    first = attrs[stages[0].name]
    channels = first["transpose_in_shape"][-1] if "transpose_in_shape" in first else first["in_shape"][-1]
    chosen = 1
    for v in divisors(int(channels)):
        try:
            worst = 0
            for stage in stages:
                a = {**attrs[stage.name], "SIMD": v}
                model = REGISTRY[stage.op_type]
                model.check(a, "", version)
                if model.issues(a, "", version):
                    raise EstimateError("not buildable")
                worst = max(worst, model.cycles(a, version))
        except EstimateError:
            continue
        chosen = v
        if worst < target:
            break
    for stage in stages:
        attrs[stage.name]["SIMD"] = chosen


def _bits(name: str) -> int:
    from qonnx.core.datatype import DataType

    return DataType[name].bitwidth()


def set_folding_spread(graph: DataflowGraph, count: int = 8) -> list[dict[str, Any]]:
    """FINN's SetFolding folding configs at ``count`` cycle targets spread geometrically between the
    slowest design (every PE = SIMD = 1) and the fastest the formulas allow."""
    from bsopt.estimate import nodes  # noqa: F401 - registers the cost models in REGISTRY

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
    return [set_folding(graph, max(t, 2)).config for t in targets]
