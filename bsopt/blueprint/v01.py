"""Brainsmith 0.1 blueprints: ``clock_ns``, ``design_space`` (kernels, steps), ``extends``."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from bsopt.blueprint.diagnostics import Diagnostics
from bsopt.blueprint.entries import SKIP, Entry, Option, parse_entry
from bsopt.blueprint.model import Blueprint
from bsopt.blueprint.sections import COMMON_KEYS, OUTPUT_STAGES, num_spec, read_common
from bsopt.blueprint.yamlloc import Locations, load_yaml
from bsopt.errors import InputError

TOP_KEYS = ("name", "description", "clock_ns", "output", "board", "start_step", "stop_step", "finn_config",
            "extends", "design_space") + COMMON_KEYS
DESIGN_KEYS = ("kernels", "steps")
STEP_OPS = ("after", "before", "replace", "remove", "at_start", "at_end")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_vars(text: str, blueprint_dir: Path) -> tuple[str, list[str]]:
    """``${VAR}``/``$VAR`` from the environment, plus ``BLUEPRINT_DIR``; returns the unknown names."""
    missing: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name == "BLUEPRINT_DIR":
            return str(blueprint_dir)
        if name in os.environ:
            return os.environ[name]
        missing.append(name)
        return m.group(0)

    return _VAR.sub(sub, text), missing


def _deep_merge(parent: Any, child: Any) -> Any:
    if isinstance(parent, dict) and isinstance(child, dict):
        out = dict(parent)
        for k, v in child.items():
            out[k] = _deep_merge(parent[k], v) if k in parent else v
        return out
    return child


def _merge_locs(parent: Locations, child: Locations) -> Locations:
    merged = Locations(child.file, dict(parent.values), dict(parent.keys))
    merged.values.update(child.values)
    merged.keys.update(child.keys)
    return merged


def resolve_extends(path: Path, d_outer: Diagnostics | None = None, chain: tuple[Path, ...] = ()):
    """The raw mapping of a blueprint with its ``extends`` chain merged in; steps merged by operations.

    Returns (raw, locs, chain of files, diagnostics of the chain).
    """
    raw, locs = load_yaml(path)
    d = Diagnostics(locs)
    if not isinstance(raw, dict):
        return raw, locs, [str(path)], d
    files = [str(path)]
    parent_ref = raw.get("extends")
    if parent_ref is None:
        raw = dict(raw)
        raw["__steps_resolved__"] = _apply_step_ops(d, [], raw.get("design_space", {}) or {})
        return raw, locs, files, d
    if not isinstance(parent_ref, str) or not parent_ref.strip() or "\x00" in parent_ref:
        d.error(("extends",), f"expected the path of a parent blueprint, got {parent_ref!r}")
        raw = dict(raw)
        raw["__steps_resolved__"] = _apply_step_ops(d, [], raw.get("design_space", {}) or {})
        return raw, locs, files, d
    expanded, missing = expand_vars(parent_ref, path.resolve().parent)
    for name in missing:
        d.error(("extends",), f"environment variable '{name}' is not set",
                f"export {name}=... or use ${{BLUEPRINT_DIR}} for paths next to this blueprint")
    parent = Path(expanded)
    if not parent.is_absolute():
        parent = path.resolve().parent / parent
    parent = parent.resolve()
    if parent in chain or parent == path.resolve():
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve(), parent))
        d.error(("extends",), f"'extends' makes a cycle: {cycle}", "a blueprint cannot extend itself, even "
                "through others")
        raw = {k: v for k, v in raw.items() if k != "extends"}
        raw["__steps_resolved__"] = _apply_step_ops(d, [], raw.get("design_space", {}) or {})
        return raw, locs, files, d
    if not parent.is_file():
        d.error(("extends",), f"parent blueprint not found: {parent}", "check the path; relative paths are "
                "relative to this blueprint's folder")
        raw = {k: v for k, v in raw.items() if k != "extends"}
        raw["__steps_resolved__"] = _apply_step_ops(d, [], raw.get("design_space", {}) or {})
        return raw, locs, files, d
    try:
        p_raw, p_locs, p_files, p_d = resolve_extends(parent, d, (*chain, path.resolve()))
    except InputError as exc:
        d.error(("extends",), f"cannot read parent blueprint: {exc}")
        raw = {k: v for k, v in raw.items() if k != "extends"}
        raw["__steps_resolved__"] = _apply_step_ops(d, [], raw.get("design_space", {}) or {})
        return raw, locs, files, d
    if not isinstance(p_raw, dict):
        d.error(("extends",), f"parent blueprint {parent} is not a mapping")
        p_raw = {}
    parent_steps = p_raw.get("__steps_resolved__", [])
    child_ds = raw.get("design_space", {}) or {}
    merged = _deep_merge({k: v for k, v in p_raw.items() if k not in ("extends", "__steps_resolved__")},
                         {k: v for k, v in raw.items() if k != "extends"})
    merged_locs = _merge_locs(p_locs, locs)
    d_all = Diagnostics(merged_locs)
    d_all.items.extend(p_d.items)
    d_all.items.extend(d.items)
    if isinstance(child_ds, dict) and "steps" in child_ds:
        merged["__steps_resolved__"] = _apply_step_ops(d_all, parent_steps, child_ds)
    else:
        merged["__steps_resolved__"] = parent_steps
    return merged, merged_locs, p_files + files, d_all


def _norm(value):
    """A step or branch for matching: branches compare as sets with skips as '~'."""
    if isinstance(value, list):
        return frozenset(SKIP if v in (None, "", SKIP) else _hashable(v) for v in value)
    return _hashable(value)


def _hashable(value):
    """``value`` itself, or its text when it cannot be hashed (a mapping or list where a step belongs:
    it then matches nothing and the operation reports it)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _spec_items(value, path) -> list[tuple[Any, tuple]]:
    """Steps inserted by an operation: a string is one step; a list inserts each element in order
    (a nested list element is a branch point)."""
    if isinstance(value, list):
        return [(v, path + (j,)) for j, v in enumerate(value)]
    return [(SKIP if value is None else value, path)]


def _apply_step_ops(d: Diagnostics, base: list, ds: dict) -> list:
    """Brainsmith 0.1 step semantics. Plain items (strings, branch lists) form the sequence and replace
    inherited steps; dict items are operations applied in order to every matching step:
    {after|before: T, insert: X}, {replace: T, with: X}, {remove: T}, {at_start|at_end: {insert: X}}."""
    items = ds.get("steps") if isinstance(ds, dict) else None
    if items is None:
        return list(base)
    if not isinstance(items, list):
        d.error(("design_space", "steps"), "expected a list of steps")
        return list(base)
    plain = [(item, ("design_space", "steps", i)) for i, item in enumerate(items) if not isinstance(item, dict)]
    steps = plain if plain else list(base)
    for i, item in enumerate(items):
        if isinstance(item, dict):
            steps = _apply_op(d, steps, item, ("design_space", "steps", i))
    return steps


def _apply_op(d: Diagnostics, steps: list, item: dict, path: tuple) -> list:
    ops = [k for k in STEP_OPS if k in item]
    d.keys(item, path, STEP_OPS + ("insert", "with"), "step operation")
    if not ops:
        d.error(path, "a step operation needs one of " + ", ".join(STEP_OPS))
        return steps
    if len(ops) > 1:
        d.error(path, "one operation per entry: found " + ", ".join(ops), "split it into separate list entries")
        return steps
    op = ops[0]
    target = item[op]
    if op in ("at_start", "at_end"):
        if not isinstance(target, dict) or "insert" not in target:
            d.error(path + (op,), f"'{op}' takes {{insert: step or [steps]}}")
            return steps
        new = _spec_items(target["insert"], path + (op, "insert"))
        return new + steps if op == "at_start" else steps + new
    matches = [j for j, (v, _) in enumerate(steps) if _norm(v) == _norm(target)]
    if not matches:
        d.error(path + (op,), f"step {target!r} not found for '{op}'",
                "steps at this point: " + ", ".join(str(v) for v, _ in steps))
        return steps
    if op == "remove":
        return [s for j, s in enumerate(steps) if j not in matches]
    key = "with" if op == "replace" else "insert"
    if key not in item:
        d.error(path, f"'{op}' needs '{key}'")
        return steps
    new = _spec_items(item[key], path + (key,))
    out = []
    for j, s in enumerate(steps):
        if j not in matches:
            out.append(s)
        elif op == "replace":
            out.extend(new)
        elif op == "after":
            out.extend([s, *new])
        else:
            out.extend([*new, s])
    return out


def _expand_values(value, blueprint_dir: Path):
    """${VAR} expansion of string values after merging (unknown variables stay as written)."""
    if isinstance(value, dict):
        return {k: _expand_values(v, blueprint_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_values(v, blueprint_dir) for v in value]
    if isinstance(value, str) and "$" in value:
        return expand_vars(value, blueprint_dir)[0]
    return value


def read_v01(d_outer: Diagnostics, raw_child: dict, path: Path) -> Blueprint:
    raw, locs, files, d = resolve_extends(path)
    steps_resolved = raw.pop("__steps_resolved__", []) if isinstance(raw, dict) else []
    raw = _expand_values(raw, path.resolve().parent)
    d_outer.locs = locs
    d_outer.items.extend(d.items)
    d = d_outer
    d.keys(raw, (), TOP_KEYS, "a Brainsmith 0.1 blueprint")
    bp = Blueprint(file=str(path), format="0.1", name=str(raw.get("name", path.stem)),
                   description=str(raw.get("description", "")), locs=locs, raw=raw, extends_chain=files)
    if "clock_ns" not in raw:
        d.error((), "missing 'clock_ns' (required in Brainsmith 0.1 blueprints)", "add e.g. clock_ns: 5.0")
    else:
        bp.clock_ns = num_spec(d, raw["clock_ns"], ("clock_ns",), positive=True)
    if "output" in raw:
        out = raw["output"]
        if d.choice(out, ("output",), OUTPUT_STAGES, "output stage") is not None:
            bp.global_config["output_stage"] = out
    output = raw.get("output", "estimates")
    if output != "estimates" and not raw.get("board") and "target" not in raw:
        d.error(("output",), f"output '{output}' requires a board", "add board: (e.g. Pynq-Z1, ZCU104, V80)")
    if "board" in raw:
        from bsopt.hw.parts import resolve_board

        if not isinstance(raw["board"], str):
            d.error(("board",), f"expected a board name, got {raw['board']!r}")
        else:
            bp.board = raw["board"]
            bp.part = resolve_board(raw["board"])
    for key in ("start_step", "stop_step"):
        if key in raw:
            if not isinstance(raw[key], str):
                d.error((key,), f"expected a step name, got {raw[key]!r}")
            else:
                setattr(bp, key, raw[key])
    if "finn_config" in raw:
        fc = d.mapping(raw["finn_config"], ("finn_config",))
        if fc is not None:
            bp.finn_config = copy.deepcopy(fc)
    ds = d.mapping(raw.get("design_space"), ("design_space",))
    if ds is not None:
        d.keys(ds, ("design_space",), DESIGN_KEYS, "design_space")
        kernels = d.sequence(ds.get("kernels"), ("design_space", "kernels"))
        for i, item in enumerate(kernels or []):
            entry = parse_entry(d, item, ("design_space", "kernels", i), "kernel", with_backends=True)
            if entry is not None:
                bp.kernels.append(entry)
    for value, spath in steps_resolved:
        if isinstance(value, list):
            options = []
            for j, v in enumerate(value):
                if v is None or v == SKIP:
                    opt = Option(None)
                elif isinstance(v, str):
                    opt = Option(v)
                else:
                    d.error(spath + (j,), f"expected a step name or '~', got {v!r}")
                    continue
                if opt not in options:
                    options.append(opt)
            if not options:
                d.error(spath, "empty step branch")
                continue
            bp.steps.append(Entry("step", options, spath))
        elif isinstance(value, str):
            bp.steps.append(Entry("step", [Option(value)], spath))
        else:
            d.error(spath, f"expected a step name, a branch list or a step operation, got {value!r}")
    if ds is not None and "steps" in (ds or {}) and not bp.steps:
        d.error(("design_space", "steps"), "empty build steps", "list the steps of the build flow")
    names = {o.name for e in bp.steps for o in e.options if o.name}
    for key in ("start_step", "stop_step"):
        value = getattr(bp, key)
        if value and bp.steps and value not in names:
            d.error((key,), f"{key} '{value}' is not one of the design space's steps")
    read_common(d, raw, bp, path.resolve().parent)
    if bp.part is None and "board" in raw and isinstance(raw["board"], str) and bp.board and \
            "target" not in raw:
        from bsopt.hw.parts import BOARD_PARTS

        d.warning(("board",), f"board '{bp.board}' is not in bsopt's board table; resources and the DSP family "
                  "are unknown", "set target.part to the board's FPGA part (known boards: "
                  + ", ".join(BOARD_PARTS) + ")")
    return bp
