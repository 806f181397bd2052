"""``bsopt blueprint …``: validate a blueprint, count its design space, show its choice points."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.tree import Tree

from bsopt.cli.common import Console

blueprint_app = typer.Typer(help="Validate blueprints and explore their design spaces.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

BLUEPRINT = typer.Argument(..., help="Blueprint YAML (Brainsmith DSE v3 or 0.1 format).")
MODEL = typer.Option(None, "--model", "-m", help="Model (.onnx, or a zoo reference such as "
                     "'zoo:bert?w=4&a=4&layers=2'); overrides the blueprint's 'model'.")


def _space(blueprint: Path, model: Path | None):
    from bsopt.space.design_space import load_design_space

    return load_design_space(blueprint, model)


def _print_items(items) -> None:
    for item in items:
        style = "red" if item.severity == "error" else "yellow"
        err.print(f"{escape(item.place)}: [{style}]{item.severity}[/]: {escape(item.key_path)}: {escape(item.message)}",
                  highlight=False, soft_wrap=True)
        if item.hint:
            err.print(f"  hint: {escape(item.hint)}", highlight=False, soft_wrap=True)


def _count_text(space) -> str:
    try:
        return f"{space.get_total_combinations():,}"
    except Exception:
        return "infinite (continuous parameters)"


def _misfit(space) -> list:
    """The located error when the constraints rule out every configuration (a lower bound from the
    per-layer estimates: bsopt.explore.fit), else nothing."""
    from bsopt.explore.fit import misfit_error
    from bsopt.study.objectives import ObjectiveSet

    try:
        objectives = ObjectiveSet.from_space(space)
    except Exception:  # noqa: BLE001 - objectives the study would reject: `study create` says why
        return []
    found = misfit_error(space, objectives)
    return [found] if found else []


@blueprint_app.command("validate")
def validate(blueprint: Path = BLUEPRINT, model: Path = MODEL):
    """Check a blueprint (and model); print every error located as file:line:column."""
    space = _space(blueprint, model)
    items = space.validate()
    if not any(i.severity == "error" for i in items):
        items += _misfit(space)
    _print_items(items)
    errors = [i for i in items if i.severity == "error"]
    if errors:
        outside = all(e.file == "--model" for e in errors)  # the blueprint itself is fine
        err.print(f"[red]{len(errors)} error(s)[/] in {'--model' if outside else escape(str(blueprint))}",
                  highlight=False)
        raise typer.Exit(2)  # a blueprint with errors is bad input
    bp = space.blueprint
    console.print(
        f"{blueprint}: valid {bp.format} blueprint '{escape(bp.name)}': {_count_text(space)} configurations, "
        f"{len(space.choice_parameters)} choice points, {len(items)} warning(s)", highlight=False)


@blueprint_app.command("count")
def count(blueprint: Path = BLUEPRINT, model: Path = MODEL):
    """Print the exact number of configurations (alone on the last line)."""
    space = _space(blueprint, model)
    items = space.validate()
    errors = [i for i in items if i.severity == "error"]
    if errors:
        _print_items(errors)
        raise typer.Exit(2)  # a blueprint with errors is bad input
    print(space.get_total_combinations())


@blueprint_app.command("show")
def show(
    blueprint: Path = BLUEPRINT,
    model: Path = MODEL,
    as_json: bool = typer.Option(False, "--json", help="Print the parameter description as JSON."),
):
    """Show the choice points of a design space as a tree, with their sizes."""
    space = _space(blueprint, model)
    items = space.validate()
    _print_items(items)
    if any(i.severity == "error" for i in items):
        raise typer.Exit(2)  # a blueprint with errors is bad input
    if as_json:
        print(json.dumps({"count": str(space.get_total_combinations()) if all(
            p.size is not None for p in space.parameters) else None,
            "parameters": space.parameter_space()}, indent=1, default=str))
        return
    bp = space.blueprint
    root = Tree(f"[bold]{escape(bp.name)}[/] ({bp.format}) — {_count_text(space)} configurations")
    if bp.quantization is not None:  # a co-design space: its quantisations, then the widest one's folding
        q = bp.quantization
        node = root.add(f"[bold]quantization[/] ({q.size:,} quantisations of {escape(q.model)}, "
                        f"{bp.training.epochs} epochs each; folding below is of the widest)")
        for g in q.groups:
            node.add(f"{escape(g.name)} (layers {', '.join(map(str, g.layers))}): weights "
                     f"{', '.join(map(str, g.weight_bits))} · activations {', '.join(map(str, g.act_bits))}")
        from bsopt.models.quantized import every_quantization, finn_cannot_build

        if q.size <= 10**6:
            n = sum(finn_cannot_build(x) is None for x in every_quantization(q))
            node.add(f"FINN can build {n:,} of them (1-bit activations feed only 1-bit weights)")
        t = bp.training
        pruner = ", ".join(f"{k}: {v}" for k, v in t.pruner.items() if k != "name")
        root.add(f"[bold]training[/]: {escape(t.trainer or t.data)}, {t.epochs} epochs, seed {t.seed}, lr {t.lr:g}, "
                 f"batch {t.batch_size}; pruner {escape(t.pruner.get('name', 'median'))}"
                 + (f" ({escape(pruner)})" if pruner else ""))
    groups: dict[str, Tree] = {}
    for p in space.parameters:
        if not p.is_choice:
            continue
        node = groups.get(p.group)
        if node is None:
            node = groups[p.group] = root.add(f"[bold]{p.group}[/]")
        size = "continuous" if p.size is None else f"{p.size}"
        if p.kind == "categorical":
            shown = ", ".join(map(str, p.choices[:10])) + (" …" if len(p.choices) > 10 else "")
        else:
            shown = f"[{p.low}, {p.high}]" + (f" step {p.step}" if p.step else "") + (" log" if p.log else "")
        node.add(f"{escape(p.name)} [cyan]×{size}[/]: {escape(shown)}")
    fixed = space.fixed_folding
    if fixed:
        node = root.add("[bold]fixed folding[/]")
        for layer, attrs in fixed.items():
            node.add(f"{escape(layer)}: {escape(json.dumps(attrs))}")
    if bp.objectives:
        note = " (defaults)" if bp.objectives_defaulted else ""
        root.add("[bold]objectives[/]" + note + ": " + ", ".join(f"{o.direction} {o.metric}" for o in bp.objectives))
    if bp.constraints:
        root.add("[bold]constraints[/]: " + ", ".join(f"{c.metric} {c.operator} {c.value:g}" for c in bp.constraints))
    console.print(root)
