"""``bsopt model …``: export zoo or user models to QONNX, and inspect QONNX models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from bsopt.cli.common import Console, model_file, read_json, resolve_part
from bsopt.errors import InputError

model_app = typer.Typer(help="Export quantized models to QONNX and inspect them.", no_args_is_help=True)
# wide enough for the layer table when output goes to a file or pipe
console = Console(width=None if sys.stdout.isatty() else 160)


def parse_shape(text: str) -> tuple[int, ...]:
    import re

    parts = re.split(r"[,x]", text.strip())
    shape = tuple(int(p) for p in parts) if all(p.strip().isdigit() for p in parts) else ()
    if not shape or any(v <= 0 for v in shape):
        raise InputError(
            f"invalid --input-shape {text!r}",
            where="--input-shape",
            hint="give positive integers separated by commas, batch first, e.g. 1,3,32,32",
        )
    return shape


@model_app.command("zoo")
def zoo_list(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List the models of the built-in zoo, their bit widths and architecture options."""
    from bsopt.models import ZOO

    if as_json:
        print(json.dumps({n: {"input_shape": list(e.input_shape), "kind": e.kind, "bits": list(e.allowed_bits),
                              "default_bits": list(e.default_bits), "options": dict(e.options),
                              "description": e.description}
                          for n, e in ZOO.items()}, indent=2))
        return
    table = Table(title="bsopt model zoo")
    table.add_column("name")
    table.add_column("input shape")
    table.add_column("bits")
    table.add_column("options (defaults)")
    table.add_column("description")
    for name, entry in ZOO.items():
        table.add_row(name, "x".join(map(str, entry.input_shape)), ",".join(map(str, entry.allowed_bits)),
                      " ".join(f"{k}={v}" for k, v in entry.options), entry.description)
    console.print(table)


def parse_options(items: list[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not (value.strip().isascii() and value.strip().isdigit()):
            raise InputError(f"invalid --set {item!r}", where="--set",
                             hint="give KEY=INTEGER, e.g. --set layers=2 --set seq=64")
        if key.strip() in out:
            raise InputError(f"--set {key.strip()} is given twice", where="--set", hint="give each option once")
        out[key.strip()] = int(value)
    return out


@model_app.command("export")
def export(
    name: str = typer.Argument(None, help="Zoo model name (see `bsopt model zoo`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .onnx path."),
    weight_bits: int = typer.Option(None, "--weight-bits", "-w",
                                    help="Weight bits: 1 (bipolar), 2, 4 or 8 (default: the model's, e.g. 2; bert 8)."),
    act_bits: int = typer.Option(None, "--act-bits", "-a", help="Activation bits (default: the model's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the (untrained) weights."),
    options: list[str] = typer.Option(None, "--set", help="Architecture option KEY=VALUE, repeatable "
                                      "(bert: layers, hidden, heads, seq, ff)."),
    module: str = typer.Option(None, "--module", help="Export your own module: 'pkg.mod:factory'."),
    input_shape: str = typer.Option(None, "--input-shape", help="Input shape for --module, e.g. 1,3,32,32."),
    opset: int = typer.Option(13, "--opset", help="ONNX opset for --module (17 keeps LayerNormalization whole)."),
    prepost: bool = typer.Option(
        None, "--prepost/--no-prepost",
        help="Build FINN's UINT8 input (x/255) and TopK output into the model "
        "(default: on for zoo classifiers, off for encoders and --module).",
    ),
):
    """Export a zoo model (or your own Brevitas module) to a cleaned-up QONNX file."""
    from bsopt.models import export_model, export_module
    from bsopt.models.zoo import get_entry

    if module:
        if name:
            raise InputError("give either a zoo model NAME or --module, not both", where="bsopt model export")
        if not input_shape:
            raise InputError("--module needs --input-shape", where="bsopt model export",
                             hint="e.g. --input-shape 1,3,32,32")
        path = export_module(module, parse_shape(input_shape), out, prepost=bool(prepost), opset=opset)
        what = module
    else:
        if not name:
            raise InputError("missing model NAME", where="bsopt model export",
                             hint="run `bsopt model zoo` for the names, or pass --module pkg.mod:factory")
        dw, da = get_entry(name).default_bits
        weight_bits = dw if weight_bits is None else weight_bits
        act_bits = da if act_bits is None else act_bits
        path = export_model(name, weight_bits, act_bits, out, seed=seed, prepost=prepost, **parse_options(options))
        what = f"{name} w{weight_bits}a{act_bits}"
    console.print(f"exported {what} -> [bold]{path}[/]")


@model_app.command("inspect")
def inspect(
    path: Path = typer.Argument(..., help="QONNX model (.onnx or .onnx.gz), or a zoo reference such as "
                                "'zoo:bert?w=4&a=4&layers=2'."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (ModelInfo)."),
    finn_version: str = typer.Option("latest", "--finn-version", help="FINN whose lowering to mimic: latest | 0.10.1."),
    part: str = typer.Option("xc7z020clg400-1", "--part", help="FPGA part (affects the MVAU/VVAU backend choice)."),
    standalone_thresholds: bool = typer.Option(
        False, "--standalone-thresholds", help="Keep activations as separate Thresholding layers."),
    folding_config: Path = typer.Option(None, "--folding-config", help="Apply a FINN folding-config JSON."),
):
    """Show a model's inputs, outputs, operators and FINN dataflow layers."""
    from bsopt.lowering import LoweringOptions
    from bsopt.lowering.info import inspect_model, layer_costs

    part = resolve_part(part, None)  # a typo'd part is an error, not silently estimated
    path = model_file(path)
    info = inspect_model(path, LoweringOptions(finn_version=finn_version, fpgapart=part,
                                               standalone_thresholds=standalone_thresholds))
    if folding_config is not None:
        from bsopt.estimate.network import estimate_network
        from bsopt.lowering.passes import apply_folding

        apply_folding(info.dataflow, read_json(folding_config, "folding config JSON"), where=str(folding_config))
        estimate_network(info.dataflow, part=part, finn_version=finn_version)  # what FINN rejects, as estimate does
    if as_json:
        print(json.dumps(info.to_dict(), indent=1))
        return
    console.print(f"[bold]{path}[/]  sha256 {info.sha256[:16]}…  FINN {info.dataflow.finn_version}, "
                  f"part {info.dataflow.fpgapart}")
    for kind, tensors in (("input", info.inputs), ("output", info.outputs)):
        for t in tensors:
            console.print(f"  {kind} {t.name}: {t.datatype} {list(t.shape)}")
    console.print("  ONNX ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(info.op_histogram.items())))
    table = Table(title="FINN dataflow layers")
    for col in ("#", "layer", "in shape", "out shape", "in dt", "w dt", "out dt", "MACs", "params", "param bits"):
        table.add_column(col, justify="right" if col in ("#", "MACs", "params", "param bits") else "left",
                         no_wrap=col in ("layer", "#"), overflow="fold")
    for i, layer in enumerate(info.layers):
        c = layer_costs(layer)
        table.add_row(
            str(i), layer.name, "x".join(map(str, layer.in_shape)), "x".join(map(str, layer.out_shape)),
            c["input_datatype"] or "", c["weight_datatype"] or c["threshold_datatype"] or "",
            c["output_datatype"] or "", f"{c['macs']:,}", f"{c['params']:,}",
            f"{c['param_bits'] + c['threshold_bits']:,}",
        )
    console.print(table)
    t = info.totals
    qonnx_macs = t.get("total_macs")
    console.print(
        f"  total MACs {t.get('dataflow_macs', 0):,} (qonnx: "
        f"{f'{qonnx_macs:,}' if isinstance(qonnx_macs, (int, float)) else 'n/a'}), "
        f"weights {t.get('dataflow_params', 0):,} ({t.get('dataflow_param_bits', 0):,} bits), "
        f"threshold bits {t.get('dataflow_threshold_bits', 0):,}"
    )
    for w in info.dataflow.warnings:
        console.print(f"  [yellow]warning:[/] {w}")
