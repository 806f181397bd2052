"""``bsopt quickstart``: the main job on embedded defaults.

For now: export the zoo's TFC-w2a2 to QONNX and inspect its FINN dataflow layers. Later this
becomes a short design-space exploration study on the same model.
"""

from __future__ import annotations

from pathlib import Path

import typer


def quickstart(
    workdir: Path = typer.Option(None, "--out", "--workdir", help="Where to write the model (default: quickstart/ "
                                 "in the study root)."),
    model: str = typer.Option("tfc", "--model", help="Zoo model to use."),
    weight_bits: int = typer.Option(2, "--weight-bits", "-w"),
    act_bits: int = typer.Option(2, "--act-bits", "-a"),
):
    """Export a zoo model and show the FINN dataflow layers bsopt derives from it."""
    from bsopt import settings
    from bsopt.cli.model import console, inspect
    from bsopt.models import export_model

    workdir = workdir or settings.study_dir("quickstart")
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{model}_w{weight_bits}a{act_bits}.onnx"
    with console.status(f"exporting {model} w{weight_bits}a{act_bits} with Brevitas…"):
        export_model(model, weight_bits, act_bits, out)
    console.print(f"exported [bold]{out}[/]")
    inspect(out, as_json=False, finn_version="latest", part="xc7z020clg400-1", standalone_thresholds=False,
            folding_config=None)
