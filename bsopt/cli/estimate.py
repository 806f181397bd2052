"""``bsopt estimate`` and ``bsopt fold``: FINN's estimates and auto folding, without FINN."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from bsopt.cli.common import Console, model_file, read_json, resolve_part
from bsopt.errors import InputError

console = Console(width=None if sys.stdout.isatty() else 160)

MODEL = typer.Option(..., "--model", "-m", help="QONNX model (.onnx or .onnx.gz), or a zoo reference such as "
                     "'zoo:tfc?w=2&a=2'.")
PART = typer.Option(None, "--part", help="FPGA part, e.g. xc7z020clg400-1.")
BOARD = typer.Option(None, "--board", help="Board name, e.g. Pynq-Z1, ZCU104 (instead of --part).")
CLOCK = typer.Option(10.0, "--clock-ns", help="Clock period in ns.")
VERSION = typer.Option("latest", "--finn-version", help="FINN whose formulas to use: latest | 0.10.1.")


def _check_clock(clock_ns: float) -> None:
    if clock_ns <= 0:
        raise InputError(f"clock period must be positive, got {clock_ns}", where="--clock-ns")


def _load_graph(model: Path, part: str, finn_version: str):
    from bsopt.lowering import LoweringOptions, lower

    return lower(model_file(model), LoweringOptions(finn_version=finn_version, fpgapart=part))


def estimate(
    model: Path = MODEL,
    folding: Path = typer.Option(None, "--folding", "-f", help="FINN folding-config JSON (default: FINN's "
                                 "creation defaults, mostly PE=SIMD=1)."),
    part: str = PART,
    board: str = BOARD,
    clock_ns: float = CLOCK,
    finn_version: str = VERSION,
    out: Path = typer.Option(None, "--out", "-o", help="Write FINN's estimate report files into this folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    insert: str = typer.Option("none", "--insert", help="Also estimate the nodes a real FINN build inserts: "
                               "none | dwc (data-width converters) | dwc_fifo (and FIFOs: FINN's res_estimation "
                               "after InsertDWC + InsertFIFO)."),
):
    """Estimate resources, cycles and throughput per layer, as FINN's estimate reports would."""
    from bsopt.choices import INSERT_MODES
    from bsopt.estimate.network import estimate_network

    _check_clock(clock_ns)
    if insert not in INSERT_MODES:
        raise InputError(f"unknown insert mode {insert!r}", where="--insert", hint="modes: " + ", ".join(INSERT_MODES))
    fpgapart = resolve_part(part, board)
    graph = _load_graph(model, fpgapart, finn_version)
    cfg = None
    if folding:
        from bsopt.ir.folding_config import check_folding_config

        cfg = check_folding_config(read_json(folding, "folding config JSON"), str(folding))
    est = estimate_network(graph, cfg, part=fpgapart, clock_ns=clock_ns, finn_version=finn_version, insert=insert,
                           codegen=True)
    if out is not None:
        est.write_reports(out)
    if as_json:
        print(json.dumps(_finite({"layers": est.layer_resources, "cycles": est.layer_cycles, "total": est.total,
                                  "performance": est.performance(), "fit": est.fit.to_dict(),
                                  "metrics": est.metrics(), "codegen_issues": est.codegen}), indent=1))
        return
    table = Table(title=f"FINN estimates — {fpgapart} @ {clock_ns} ns (FINN {finn_version})")
    for col in ("layer", "PE", "SIMD", "cycles", "LUT", "BRAM_18K", "URAM", "DSP"):
        table.add_column(col, justify="left" if col == "layer" else "right", no_wrap=col == "layer")
    folded = {layer.name: layer.attrs for layer in graph.layers}
    if cfg:
        for name, entry in cfg.items():
            if name in folded:
                folded[name] = {**folded[name], **entry}
    for name, res in est.layer_resources.items():
        a = folded.get(name, {}) if not name.startswith(("StreamingDataWidthConverter", "StreamingFIFO")) else {}
        style = "bold" if name == est.max_cycles_node_name else None
        table.add_row(name, str(a.get("PE", "")), str(a.get("SIMD", "")), f"{est.layer_cycles[name]:,}",
                      _num(res.get("LUT")), _num(res.get("BRAM_18K")), _num(res.get("URAM")), _num(res.get("DSP")),
                      style=style)
    tot = est.total
    table.add_section()
    table.add_row("total", "", "", f"max {est.max_cycles:,}", _num(tot["LUT"]), _num(tot["BRAM_18K"]),
                  _num(tot["URAM"]), _num(tot["DSP"]), style="bold")
    console.print(table)
    console.print(f"throughput {est.estimated_throughput_fps:,.1f} fps (bottleneck {est.max_cycles_node_name}), "
                  f"latency {est.estimated_latency_ns / 1e3:,.1f} µs")
    fit = est.fit
    if not fit.known:
        console.print(f"[yellow]device fit unknown:[/] bsopt has no resource table for {escape(fpgapart)}")
    else:
        util = ", ".join(f"{k} {v:.1%}" if v != float("inf") else f"{k} {est.total.get(k, 0):,.0f} used (the part has "
                         "none)" for k, v in fit.utilisation.items())
        verdict = "[green]fits[/]" if fit.fits else f"[red]exceeds limits: {', '.join(fit.exceeded)}[/]"
        console.print(f"utilisation: {util} — {verdict}")
    for name, issues in est.codegen.items():
        console.print(f"[yellow]{escape(name)}: FINN's code generation would reject it:[/] {escape('; '.join(issues))}")
    if out is not None:
        console.print(f"reports written to [bold]{escape(str(out))}[/]")


def _finite(value):
    """JSON without Infinity/NaN (not JSON): such numbers become null."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _num(v) -> str:
    if v is None:
        return ""
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def fold(
    model: Path = MODEL,
    target_fps: float = typer.Option(..., "--target-fps", help="Frames per second to fold for."),
    clock_ns: float = CLOCK,
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the folding config JSON."),
    mvau_wwidth_max: int = typer.Option(36, "--mvau-wwidth-max", help="FINN's bound on SIMD x weight bits."),
    part: str = PART,
    board: str = BOARD,
    finn_version: str = VERSION,
    single_pass: bool = typer.Option(False, "--single-pass", help="Disable FINN's two-pass relaxation."),
):
    """FINN's auto folding (SetFolding) for a target frame rate; writes FINN's folding-config JSON."""
    from bsopt.estimate.autofold import set_folding, target_cycles

    _check_clock(clock_ns)
    if target_fps <= 0:
        raise InputError(f"target fps must be positive, got {target_fps}", where="--target-fps")
    fpgapart = resolve_part(part, board)
    graph = _load_graph(model, fpgapart, finn_version)
    target = target_cycles(target_fps, clock_ns)
    if target < 1:
        raise InputError(f"{target_fps:g} fps at {clock_ns} ns leaves less than one cycle per frame",
                         where="--target-fps", hint="lower the frame rate or the clock period")
    result = set_folding(graph, target, mvau_wwidth_max=mvau_wwidth_max, two_pass_relaxation=not single_pass,
                         finn_version=finn_version, part=fpgapart)
    from bsopt.paths import output_file

    output_file(out, "the folding config file").write_text(json.dumps(result.config, indent=2))
    fps = 1e9 / clock_ns / result.max_cycles
    console.print(f"wrote [bold]{escape(str(out))}[/]: target {target:,} cycles/frame, reached {result.max_cycles:,} "
                  f"({escape(result.max_cycles_node_name)}) = {fps:,.1f} fps in {result.passes} pass(es)")
    if not result.buildable:
        console.print("[yellow]warning:[/] FINN's code generation would reject this folding (FINN's SetFolding "
                      "does not check it):")
        for layer, issues in result.codegen_issues.items():
            for msg in issues:
                console.print(f"  {escape(layer)}: {escape(msg)}")
