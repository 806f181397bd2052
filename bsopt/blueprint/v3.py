"""Brainsmith DSE v3 blueprints (``version: "3.0"``)."""

from __future__ import annotations

from pathlib import Path

from bsopt.blueprint.diagnostics import Diagnostics
from bsopt.blueprint.entries import Entry, Option, parse_entry
from bsopt.blueprint.model import Blueprint
from bsopt.blueprint.sections import COMMON_KEYS, num_spec, read_common

TOP_KEYS = ("version", "name", "description", "hw_compiler", "processing", "finn_config") + COMMON_KEYS
HW_KEYS = ("kernels", "transforms", "build_steps", "config_flags")


def read_v3(d: Diagnostics, raw: dict, file: str, base_dir: Path) -> Blueprint:
    d.keys(raw, (), TOP_KEYS, "a v3 blueprint")
    bp = Blueprint(file=file, format="v3", name=str(raw.get("name", Path(file).stem)),
                   description=str(raw.get("description", "")), locs=d.locs, raw=raw)
    if str(raw.get("version")) not in ("3.0", "3"):
        d.error(("version",), f"unsupported blueprint version {raw.get('version')!r}",
                "v3 blueprints say version: \"3.0\"")
    hw = d.mapping(raw.get("hw_compiler"), ("hw_compiler",))
    if hw is not None:
        d.keys(hw, ("hw_compiler",), HW_KEYS, "hw_compiler")
        read_kernels(d, hw.get("kernels"), ("hw_compiler", "kernels"), bp)
        _transforms(d, hw.get("transforms"), bp)
        _build_steps(d, hw, bp)
        flags = d.mapping(hw.get("config_flags"), ("hw_compiler", "config_flags"))
        if flags is not None:
            bp.config_flags = dict(flags)
    _processing(d, raw.get("processing"), bp)
    if "finn_config" in raw:  # real v3 blueprints carry it; bsopt passes it to FINN
        fc = d.mapping(raw["finn_config"], ("finn_config",))
        if fc is not None:
            bp.finn_config = dict(fc)
    read_common(d, raw, bp, base_dir)
    # v3 puts the device and clock into config_flags; bsopt's target section takes precedence
    flags = bp.config_flags
    if bp.part is None and isinstance(flags.get("target_device"), str):
        from bsopt.hw.parts import resolve_board

        dev = flags["target_device"]
        bp.part = resolve_board(dev) or (dev if dev.lower().startswith("xc") else None)
        if bp.part is None:
            bp.board = dev
    if bp.clock_ns is None and "target_clock_ns" in flags:
        bp.clock_ns = num_spec(d, flags["target_clock_ns"], ("hw_compiler", "config_flags", "target_clock_ns"),
                               positive=True)
    return bp


def read_kernels(d: Diagnostics, value, path, bp: Blueprint) -> None:
    items = d.sequence(value, path)
    for i, item in enumerate(items or []):
        entry = parse_entry(d, item, tuple(path) + (i,), "kernel", with_backends=True)
        if entry is not None:
            bp.kernels.append(entry)


def _transforms(d: Diagnostics, value, bp: Blueprint) -> None:
    path = ("hw_compiler", "transforms")
    if value is None:
        return
    if isinstance(value, dict):
        for phase, items in value.items():
            seq = d.sequence(items, path + (phase,), f"a list of transforms for phase '{phase}'")
            for i, item in enumerate(seq or []):
                entry = parse_entry(d, item, path + (phase, i), "transform", with_backends=False, phase=str(phase))
                if entry is not None:
                    bp.transforms.append(entry)
        return
    seq = d.sequence(value, path, "a list of transforms or a mapping of phases")
    for i, item in enumerate(seq or []):
        entry = parse_entry(d, item, path + (i,), "transform", with_backends=False)
        if entry is not None:
            bp.transforms.append(entry)


def _build_steps(d: Diagnostics, hw: dict, bp: Blueprint) -> None:
    path = ("hw_compiler", "build_steps")
    if "build_steps" not in hw:
        return
    steps = d.sequence(hw["build_steps"], path)
    if steps is None:
        return
    if not steps:
        d.error(path, "empty build_steps", "list the build steps, e.g. [step_qonnx_to_finn, step_tidy_up, ...]")
    for i, step in enumerate(steps):
        if not isinstance(step, str) or not step.strip():
            d.error(path + (i,), f"expected a step name, got {step!r}")
            continue
        bp.steps.append(Entry("step", [Option(step.strip())], path + (i,)))


def _processing(d: Diagnostics, value, bp: Blueprint) -> None:
    m = d.mapping(value, ("processing",))
    if m is None:
        return
    d.keys(m, ("processing",), ("preprocessing", "postprocessing"), "processing")
    for stage in ("preprocessing", "postprocessing"):
        items = d.sequence(m.get(stage), ("processing", stage))
        for i, item in enumerate(items or []):
            p = ("processing", stage, i)
            im = d.mapping(item, p, "a step {name, options: [...]}")
            if im is None:
                continue
            d.keys(im, p, ("name", "options"), "processing step")
            name = im.get("name")
            if not isinstance(name, str) or not name:
                d.error(p, "a processing step needs a 'name'")
                continue
            options = d.sequence(im.get("options"), p + ("options",), "a list of option sets")
            if options is None:
                continue
            if not options:
                d.error(p + ("options",), f"processing step '{name}' has no options",
                        "give at least one option set, e.g. options: [{}]")
                continue
            bp.processing.append((stage, name, list(options), p))
