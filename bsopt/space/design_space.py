"""DesignSpace: a blueprint and a model, as every choice a build can make.

The space is the product of independent choice points (:mod:`bsopt.space.parameters`): kernel and
transform alternatives, build-step branches, processing options, the clock, typed parameters,
and per-layer folding and implementation attributes limited to legal values. It is never
enumerated: counting is a product of sizes, configuration ``k`` is decoded in mixed radix, and
iteration streams from any start index.
"""

from __future__ import annotations

import hashlib
import math
from collections import ChainMap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bsopt import settings
from bsopt.blueprint.config import GlobalConfig, SearchConfig
from bsopt.blueprint.diagnostics import BlueprintError, Diagnostics, ValidationError, suggest
from bsopt.blueprint.entries import SKIP, Entry
from bsopt.blueprint.loader import read_blueprint
from bsopt.blueprint.model import Blueprint, NumSpec
from bsopt.blueprint.registry import (
    FINN_STEPS,
    INFRASTRUCTURE,
    KERNELS,
    KNOWN_STEPS,
    KNOWN_TRANSFORMS,
    finn_step_name,
    kernel_info,
    known_step,
    normalize_backend,
)
from bsopt.blueprint.sections import ZooReference, default_resource_limits
from bsopt.errors import BsoptError, InputError
from bsopt.hw.parts import DEFAULT_PART, part_resources
from bsopt.lowering.passes import FinnNames
from bsopt.space import parameters as P
from bsopt.space.build_config import BuildConfig, canonical_json
from bsopt.space.folding import (
    attr_backends,
    impl_choices,
    is_fold,
    layer_attrs,
    legal_fold_values,
    op_type_of,
)
from bsopt.space.parameters import Parameter


@dataclass
class DesignSpace:
    """The seed's DesignSpace contract (see docs/blueprint.md)."""

    blueprint: Blueprint
    model_path: str | None
    model_info: Any  # bsopt.lowering.info.ModelInfo when the model was lowered, else None
    hw_compiler_space: dict[str, Any]
    search_config: SearchConfig
    global_config: GlobalConfig
    processing_space: list[dict[str, Any]]
    parameters: list[Parameter]
    fixed_folding: dict[str, dict[str, Any]] = field(default_factory=dict)
    diagnostics: Diagnostics | None = field(default=None, repr=False)
    model_sha256: str | None = None
    onnx_ops: dict[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------------ counting
    def get_total_combinations(self) -> int:
        """Exact number of configurations (a Python int), without enumerating anything; a co-design
        space multiplies its folding configurations by its quantisations."""
        n = P.count(self.parameters)
        return n * self.blueprint.quantization.size if self.blueprint.quantization is not None else n

    @property
    def choice_parameters(self) -> list[Parameter]:
        return [p for p in self.parameters if p.is_choice]

    @cached_property
    def space_id(self) -> str:
        """Fingerprint of the space: parameters, fixed settings and the model (computed once)."""
        content = {
            "params": [p.describe() for p in self.parameters],
            "fixed_folding": self.fixed_folding,
            "hw": {k: v for k, v in self.hw_compiler_space.items() if k != "entries"},
            "global": str(self.global_config.output_stage),
            "model": self.model_sha256 or self.model_path,
            "target": self.fixed_target(),
        }
        if self.blueprint.quantization is not None:
            content["codesign"] = repr((self.blueprint.quantization, self.blueprint.training))
        return hashlib.sha256(canonical_json(content).encode()).hexdigest()[:12]

    # ------------------------------------------------------------------ validation
    def validate(self) -> list[ValidationError]:
        """Every problem found, located (file:line:column, key path), errors before warnings."""
        items = list(self.diagnostics.items) if self.diagnostics else []
        return sorted(items, key=lambda e: (e.severity != "error", e.file, e.line, e.column))

    @property
    def errors(self) -> list[ValidationError]:
        return [e for e in self.validate() if e.severity == "error"]

    def require_valid(self) -> DesignSpace:
        if self.errors:
            raise BlueprintError(self.errors)
        return self

    # ------------------------------------------------------------------ configurations
    def values_at(self, k: int) -> dict[str, Any]:
        return P.decode(self.parameters, k)

    def index_of(self, values: dict[str, Any]) -> int:
        return P.encode(self.parameters, self._complete(values))

    def config(self, k: int) -> BuildConfig:
        """Configuration number k (0 <= k < get_total_combinations())."""
        return self._build(self.values_at(k), k)

    def config_from_values(self, values: dict[str, Any]) -> BuildConfig:
        """A BuildConfig from parameter values (missing single-valued parameters are filled in)."""
        full = self._complete(values)
        for p in self.parameters:
            if not p.contains(full[p.name]):
                raise BsoptError(f"value {full[p.name]!r} is not allowed for parameter '{p.name}'")
        unknown = set(values) - {p.name for p in self.parameters}
        if unknown:
            raise BsoptError("unknown parameters: " + ", ".join(sorted(unknown)))
        index = None
        if all(p.size is not None for p in self.parameters):
            index = P.encode(self.parameters, full)
        return self._build(full, index)

    def iter_configs(self, start: int = 0) -> Iterator[BuildConfig]:
        """Stream configurations from number ``start`` on (for exhaustive/grid search and resume)."""
        for k, values in P.iterate(self.parameters, start):
            yield self._build(values, k)

    def config_id(self, k: int | None, values: dict[str, Any] | None = None) -> str:
        if k is None:  # continuous parameters: identify by content
            digest = hashlib.sha256(canonical_json(values).encode()).hexdigest()[:10]
            return f"dse_{self.space_id[:6]}_config_c{digest}"
        return f"dse_{self.space_id[:6]}_config_{k:05d}"

    def index_from_config_id(self, config_id: str) -> int:
        """The configuration number in an id such as ``dse_abc123_config_00101`` (for resuming)."""
        prefix = f"dse_{self.space_id[:6]}_config_"
        if not config_id.startswith(prefix) or not config_id[len(prefix):].isdigit():
            raise BsoptError(f"'{config_id}' is not a configuration id of this space (ids look like {prefix}00042)",
                             hint="the blueprint or model changed since the id was made, or it is from another space")
        return int(config_id[len(prefix):])

    def parameter_space(self) -> list[dict[str, Any]]:
        """The flat, typed description the explorer builds Optuna distributions from."""
        return [p.describe() for p in self.parameters]

    # ------------------------------------------------------------------ internals
    def _complete(self, values: dict[str, Any]) -> dict[str, Any]:
        full = dict(values)
        for p in self.parameters:
            if p.name not in full:
                if p.size == 1:
                    full[p.name] = p.value_at(0)
                else:
                    raise KeyError(f"missing value for parameter '{p.name}'")
        return full

    def fixed_target(self) -> dict[str, Any]:
        """Part, board, clock (None when the clock is a search parameter), FINN version, limits."""
        bp = self.blueprint
        clock = bp.clock_ns.fixed if bp.clock_ns is not None and bp.clock_ns.is_fixed else None
        return {"part": bp.part or DEFAULT_PART, "board": bp.board, "clock_ns": clock,
                "finn_version": bp.finn_version, "resource_limits": default_resource_limits(bp)}

    def _kernels(self, values: dict[str, Any]) -> dict[str, str | None]:
        kernels: dict[str, str | None] = {}
        for entry, pname in self.hw_compiler_space["kernel_params"]:
            label = values[pname] if pname else entry.options[0].label
            if label == SKIP:
                continue
            name, _, backend = label.partition("/")
            kernels[name] = backend or None
        return kernels

    def folding_entries(self, values: dict[str, Any], names) -> dict[str, dict[str, Any] | None]:
        """The folding-config entries of the named layers (FINN's names) at a point: what
        :meth:`config_from_values` writes for them, computed from those layers' parameters only (the
        exact solver tabulates a group's options this way; a whole configuration per option would cost
        O(layers + parameters) each)."""
        return self.folding_entries_at(values, names)({})

    def folding_entries_at(self, base: dict[str, Any], names) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """``f(changes)``: :meth:`folding_entries` at ``base`` with ``changes`` (values of the named
        layers' own parameters) on top. The point is completed and the layers named once, so each call
        costs O(the named layers), not O(parameters) — the exact solver calls it once per option."""
        full = self._complete(base)
        kernels = self._kernels(full)
        names = list(names)
        wanted = set(names)

        def chosen_rows(values):
            rows = self._naming(kernels, values)
            return [r for r in rows.values() if r[4] in wanted or r[5] in wanted]

        fixed_rows = chosen_rows(full)
        layer_names = [r[0].name for r in fixed_rows]
        backend_params = set(self._backend_params)

        def entries(changes: dict[str, Any]) -> dict[str, Any]:
            values = ChainMap(changes, full) if changes else full
            rows = chosen_rows(values) if backend_params.intersection(changes) else fixed_rows
            per_layer = self._per_layer(values, layer_names if rows is fixed_rows else [r[0].name for r in rows])
            cfg: dict[str, Any] = {}
            for row in rows:
                self._entry(row, per_layer, cfg, None)
            return {n: cfg.get(n) for n in names}

        return entries

    def entries_set_by(self, name: str, values: dict[str, Any]) -> set[str] | None:
        """The FINN names of the folding-config entries a per-layer folding parameter can change at a
        point (its layer's, the depthwise window that takes its PE, the later stages of a transpose that
        take its SIMD, and the Shuffle a stage was decomposed from); None for any other parameter (a
        backend choice renames layers: it is not per layer)."""
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != "folding" or parts[2] == "backend":
            return None
        _, layer, attr = parts
        full = self._complete(values)
        rows = self._naming(self._kernels(full), full)
        if layer not in rows:
            return None
        windows, leaders = self._sources
        takers = [layer]
        if attr == "PE":
            takers += [w for w, consumer in windows.items() if consumer == layer]
        if attr == "SIMD":
            takers += [f for f, first in leaders.items() if first == layer]
        out = set()
        for n in takers:
            if n in rows:
                out.add(rows[n][4])
                if rows[n][5] and attr == "SIMD":
                    out.add(rows[n][5])
        return out

    def _build(self, values: dict[str, Any], k: int | None) -> BuildConfig:
        hw = self.hw_compiler_space
        kernels = self._kernels(values)
        transforms = []
        for entry, pname in hw["transform_params"]:
            label = values[pname] if pname else entry.options[0].label
            if label != SKIP:
                transforms.append(label)
        steps = []
        for entry, pname in hw["step_params"]:
            label = values[pname] if pname else entry.options[0].label
            if label != SKIP:
                steps.append(label)
        target = self.fixed_target()
        if "target.clock_ns" in values:
            target["clock_ns"] = values["target.clock_ns"]
        flags = dict(self.blueprint.config_flags)
        finn_config = dict(self.blueprint.finn_config)
        for name, v in values.items():
            if name.startswith("config_flags."):
                flags[name.split(".", 1)[1]] = v
            elif name.startswith("finn_config."):
                finn_config[name.split(".", 1)[1]] = v
        processing = {}
        for item in self.processing_space:
            idx = values[item["param"]] if item["param"] else 0
            processing[f"{item['stage']}.{item['name']}"] = item["options"][idx]
        folding = specialize = None
        if "folding.target_fps" in values or self._target_fps_fixed() is not None:
            finn_config["target_fps"] = values.get("folding.target_fps", self._target_fps_fixed())
        elif self.model_info is not None and (self.fixed_folding or any(
                p.group == "folding" for p in self.parameters)):
            folding, specialize = self._folding_config(values, kernels)
        return BuildConfig(
            config_id=self.config_id(k, values),
            model_path=self.model_path,
            kernel_selections=kernels,
            transform_sequence=transforms,
            build_steps=steps,
            backend=self.blueprint.backend,
            config_flags=flags,
            global_config=self.global_config.as_dict(),
            target=target,
            folding_config=folding,
            specialize_config=specialize,
            finn_config=finn_config,
            processing=processing,
            params=dict(values),
            index=k,
            space_id=self.space_id,
            model_sha256=self.model_sha256,
        )

    def _target_fps_fixed(self):
        f = self.blueprint.folding
        if f is not None and f.mode == "target_fps" and f.target_fps is not None and f.target_fps.is_fixed:
            return f.target_fps.fixed
        return None

    @cached_property
    def _folding_plan(self) -> list[tuple[Any, int, tuple[str, ...], str | None]]:
        """Per layer, computed once: (layer, index among its kind, usable backends, the depthwise
        sliding window it feeds its PE to, if any)."""
        graph = self.model_info.dataflow
        producers = {layer.output: layer for layer in graph.layers}
        plan, generic = [], FinnNames()  # the generic names FINN's specialize config uses (MVAU_0, …)
        for layer in graph.layers:
            gidx = generic.index(layer.kind)
            window = None
            if layer.kind in ("VVAU", "Pool"):
                producer = producers.get(layer.inputs[0])
                if producer is not None and producer.kind == "ConvolutionInputGenerator" and \
                        producer.attrs.get("depthwise"):
                    window = producer.name
            plan.append((layer, gidx, _backend_choices(layer, self.blueprint), window))
        return plan

    @cached_property
    def _conditional(self) -> dict[str, set[str]]:
        """Per layer, its attributes with values FINN accepts only together with some values of the
        layer's other attributes (Parameter.requires)."""
        out: dict[str, set[str]] = {}
        for p in self.parameters:
            if p.requires and p.group == "folding" and p.name.count(".") == 2:
                _, layer, attr = p.name.split(".")
                out.setdefault(layer, set()).add(attr)
        return out

    @cached_property
    def _backend_only(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """Per layer: the attributes of its folding entry that only some backends have (resType:
        HLS only, pumpedCompute: RTL only), with those backends."""
        version = self.blueprint.finn_version
        out: dict[str, dict[str, tuple[str, ...]]] = {}
        for layer, _, usable, _ in self._folding_plan:
            if len(usable) < 2:
                continue
            for attr in layer_attrs(layer, version):
                if attr == "backend":
                    continue
                only = attr_backends(layer, attr, version)
                if set(usable) - set(only):
                    out.setdefault(layer.name, {})[attr] = only
        return out

    def _folding_config(self, values: dict[str, Any], kernels: dict[str, str | None]) -> tuple[dict, dict | None]:
        """FINN folding-config JSON for a point; layer names follow the chosen backends (a per-layer
        backend choice first, else the kernel's backend from hw_compiler.kernels where FINN has it)."""
        per_layer = self._per_layer(values)
        cfg: dict[str, Any] = {"Defaults": {}}
        spec: dict[str, Any] = {"Defaults": {}}
        for row in self._naming(kernels, values).values():
            self._entry(row, per_layer, cfg, spec)
        return cfg, (spec if len(spec) > 1 else None)

    @cached_property
    def _layer_params(self) -> dict[str, list[tuple[str, str]]]:
        """Per layer: (parameter, attribute) of its folding parameters."""
        out: dict[str, list[tuple[str, str]]] = {}
        for p in self.parameters:
            if p.group == "folding" and p.name.count(".") == 2:
                _, layer, attr = p.name.split(".")
                out.setdefault(layer, []).append((p.name, attr))
        return out

    @cached_property
    def _sources(self) -> tuple[dict[str, str], dict[str, str]]:
        """(depthwise sliding window -> the layer whose PE it takes, transpose stage -> its first stage)."""
        windows = {window: layer.name for layer, _, _, window in self._folding_plan if window}
        leaders = {name: first for first, followers in _shuffle_groups(self.model_info.dataflow).items()
                   for name in followers}
        return windows, leaders

    def _per_layer(self, values: dict[str, Any], layers=None) -> dict[str, dict[str, Any]]:
        """Each layer's folding attributes at a point (``layers``: of these layers only, with the layers
        they take values from)."""
        windows, leaders = self._sources
        if layers is None:
            names = set(self._layer_params) | set(self.fixed_folding) | set(windows) | set(leaders)
        else:
            names = set(layers)
            names |= {windows[n] for n in names if n in windows} | {leaders[n] for n in names if n in leaders}
        per_layer: dict[str, dict[str, Any]] = {}
        for name in names:
            entry = dict(self.fixed_folding.get(name, {}))
            for pname, attr in self._layer_params.get(name, ()):
                entry[attr] = values[pname]
            if entry:
                per_layer[name] = entry
        # depthwise sliding windows follow their consumer's PE (FINN's SetFolding rule)
        for window, consumer in windows.items():
            if window in names and "PE" in per_layer.get(consumer, {}):
                per_layer.setdefault(window, {})["SIMD"] = per_layer[consumer]["PE"]
        # the stages of one transpose share the SIMD of its first stage (FINN folds the Shuffle whole)
        for name, first in leaders.items():
            if name in names and "SIMD" in per_layer.get(first, {}):
                per_layer.setdefault(name, {})["SIMD"] = per_layer[first]["SIMD"]
        return per_layer

    def _naming(self, kernels: dict[str, str | None], values: dict[str, Any]) -> dict[str, tuple]:
        """Per layer (by its name, in graph order): (layer, index among its kind, backend, op type, FINN's
        name, the node it was decomposed from) — FINN renames per op type in graph order after backend
        choices. Computed once per combination of backend choices."""
        from bsopt.blueprint.registry import normalize_backend

        key = (tuple(sorted(kernels.items())), tuple(values[p] for p in self._backend_params))
        rows = self._names_by_backends.get(key)
        if rows is not None:
            return rows
        kernel_backend = {}
        for name, backend in kernels.items():
            if backend:
                base = name.split(":")[-1]
                for kind in kernel_kinds(base):
                    kernel_backend.setdefault(kind, normalize_backend(base, backend))
        names = FinnNames()
        rows = {}
        for layer, gidx, usable, _ in self._folding_plan:
            preferred = kernel_backend.get(layer.kind)
            if preferred not in usable:
                preferred = None  # FINN falls back to the default where a backend cannot be used
            chosen = self.fixed_folding.get(layer.name, {}).get("backend")
            for pname, attr in self._layer_params.get(layer.name, ()):
                if attr == "backend":
                    chosen = values[pname]
            backend = chosen or preferred or layer.backend
            op_type = op_type_of(layer, backend)
            rows[layer.name] = (layer, gidx, backend, op_type, names.next(op_type), layer.attrs.get("original_node_name"))
        if len(self._names_by_backends) > 256:
            self._names_by_backends.clear()
        self._names_by_backends[key] = rows
        return rows

    @cached_property
    def _backend_params(self) -> tuple[str, ...]:
        return tuple(p for ps in self._layer_params.values() for p, attr in ps if attr == "backend")

    @cached_property
    def _names_by_backends(self) -> dict[tuple, dict[str, tuple]]:
        return {}

    def _entry(self, row: tuple, per_layer: dict[str, dict[str, Any]], cfg: dict, spec: dict | None) -> None:
        """One layer's folding-config entry (and its specialize-config entry) at a point."""
        layer, gidx, backend, op_type, name, original = row
        entry = dict(per_layer.get(layer.name, {}))
        entry.pop("backend", None)
        if spec is not None and backend != layer.backend:  # backend choices go to FINN's specialize config,
            spec[f"{layer.kind}_{gidx}"] = {"preferred_impl_style": backend}  # by generic names (MVAU_0, …)
        for attr, only in self._backend_only.get(layer.name, {}).items():
            if backend not in only:
                entry.pop(attr, None)
        conditional = self._conditional.get(layer.name)
        if conditional:
            _fall_back(layer, op_type, entry, conditional, self.fixed_target()["part"], self.blueprint.finn_version)
        if entry:
            cfg[name] = entry
        if original and "SIMD" in entry:  # FINN applies it to the Shuffle before decomposing it
            cfg[original] = {"SIMD": entry["SIMD"]}


def _fall_back(layer, op_type: str, entry: dict[str, Any], conditional: set[str], part: str, version: str) -> None:
    """Drop from a layer's folding entry the conditional values FINN rejects together with the entry's
    other values (they fall back to FINN's defaults): ``parallel_window=1`` with SIMD < IFMChannels,
    ``ram_style=ultra`` with decoupled, non-writeable weights, … — FINN's own rules decide
    (bsopt.estimate.legality), so a value is kept whenever any of its alternatives holds."""
    from bsopt.estimate import legality

    for _ in range(len(conditional)):
        issues = legality.check(op_type, {**layer.attrs, **entry}, part, version)
        culprits = [a for a in sorted(conditional) if a in entry and any(a in i.attrs for i in issues)]
        if not culprits:
            return
        entry.pop(culprits[0])


# ============================================================================ construction
def load_design_space(blueprint: str | Path, model: str | Path | None = None, *,
                      for_builds: bool = False) -> DesignSpace:
    """Read a blueprint (either format) and a model into a DesignSpace.

    Problems in the blueprint do not raise here (except unreadable YAML): they are collected and
    returned by :meth:`DesignSpace.validate`. ``model`` overrides the blueprint's ``model`` key.
    ``for_builds``: the space's configurations will be built, so a zoo model is exported to a file
    even where the space itself does not need the model (e.g. FINN's target_fps folding).
    """
    bp, d = read_blueprint(blueprint)
    return build_design_space(bp, d, model, for_builds=for_builds)


def build_design_space(bp: Blueprint, d: Diagnostics, model: str | Path | None = None, *,
                       for_builds: bool = False) -> DesignSpace:
    model_path = str(model) if model is not None else bp.model
    model_where = "--model" if model is not None else None
    if model_path is None and bp.quantization is not None and not d.errors:  # co-design: its widest quantisation
        model_path = _materialise_codesign(d, bp)
    needs_ir = _needs_ir(bp)
    info = None
    sha = None
    ops: dict[str, int] = {}
    readable = False  # a model file that exists and parses (problems are reported once, here)
    if model_path is not None and model_path.startswith("zoo:"):
        from bsopt.blueprint.sections import parse_zoo_reference

        zoo, problems = parse_zoo_reference(model_path)
        if model is not None:  # the blueprint's own `model:` was checked when it was read
            for message, hint in problems:
                d.items.append(ValidationError("--model", 0, 0, "model", message, hint))
        if zoo is None:
            model_path = None  # said once; nothing below reports it again
        elif needs_ir or for_builds:
            exported = _materialise_zoo(d, bp, zoo, model_where)
            if exported is not None:
                model_path, readable = exported, True
                if not needs_ir:
                    sha, ops = _read_model(d, bp, model_path, model_where)
    elif model_path is not None:
        sha, ops = _read_model(d, bp, model_path, model_where)
        readable = sha is not None
    if needs_ir:
        if model_path is None and bp.codesign:
            pass  # the co-design model could not be built: its sections' errors say why
        elif model_path is None and model is None and bp.model is None:
            d.error(bp.folding.path, "per-layer folding needs the model",
                    "add 'model: path/to/model.onnx' (or zoo:tfc?w=2&a=2) to the blueprint, or pass --model")
        elif readable:
            info = _lower(d, bp, model_path, model_where)
            if info is not None:
                sha = info.sha256
                ops = info.op_histogram

    params: list[Parameter] = []
    kernel_params = _entries(d, bp.kernels, "kernel", params)
    transform_params = _entries(d, bp.transforms, "transform", params)
    step_params = _entries(d, bp.steps, "step", params)
    _check_kernels(d, bp, ops if model_path else None, info)
    _check_steps(d, bp)
    _check_finn_conversion(d, bp, ops)
    processing = []
    for stage, name, options, path in bp.processing:
        pname = f"{stage}.{name}" if len(options) > 1 else None
        if pname:
            params.append(Parameter(pname, "processing", choices=tuple(range(len(options))), source=path,
                                    labels=tuple(canonical_json(o) for o in options)))
        processing.append({"stage": stage, "name": name, "options": options, "param": pname})
    if bp.clock_ns is not None and not bp.clock_ns.is_fixed:
        params.append(_num_param("target.clock_ns", "target", bp.clock_ns))
    for name, spec in bp.parameters.items():
        params.append(_num_param(name, "parameters", spec))
    fixed_folding: dict[str, dict[str, Any]] = {}
    if bp.folding is not None and bp.folding.mode == "target_fps" and bp.folding.target_fps is not None:
        if not bp.folding.target_fps.is_fixed:
            params.append(_num_param("folding.target_fps", "folding", bp.folding.target_fps))
    elif info is not None:
        fixed_folding = _folding_params(d, bp, info.dataflow, params)
    space = DesignSpace(
        blueprint=bp,
        model_path=model_path,
        model_info=info,
        hw_compiler_space={
            "kernels": [e.options for e in bp.kernels],
            "kernel_params": kernel_params,
            "transform_params": transform_params,
            "step_params": step_params,
            "config_flags": bp.config_flags,
            "finn_config": bp.finn_config,
        },
        search_config=SearchConfig.from_blueprint(bp),
        global_config=GlobalConfig.from_blueprint(bp),
        processing_space=processing,
        parameters=params,
        fixed_folding=fixed_folding,
        diagnostics=d,
        model_sha256=sha,
        onnx_ops=ops,
    )
    _check_limits(d, bp, space)
    _check_relative_metrics(d, bp)
    _check_inserted(d, bp)
    return space


def _check_inserted(d: Diagnostics, bp: Blueprint) -> None:
    """FINN dev's FIFO estimate counts a BRAM and a URAM for every FIFO, whatever its depth and style
    (reproduced): with FIFOs costed on a part without UltraRAM, no configuration fits."""
    if bp.backend != "estimate" or bp.backend_options.get("insert") != "dwc_fifo":
        return
    res = part_resources(bp.part or DEFAULT_PART)
    if res is not None and res.get("URAM", 0) == 0:
        d.warning(("backend", "options", "insert"), f"FINN's FIFO estimate counts UltraRAM for every FIFO (a bug of "
                  f"FINN's, reproduced to equal its reports), and {bp.part or DEFAULT_PART} has none: every "
                  "configuration would exceed the URAM budget", "use 'insert: dwc' (the data-width converters "
                  "only), or a part with UltraRAM")


def _needs_ir(bp: Blueprint) -> bool:
    f = bp.folding
    return f is not None and f.mode == "per_layer" and bool(f.defaults or f.kinds or f.layers)


def _read_model(d: Diagnostics, bp: Blueprint, path: str, where: str | None):
    """Check a model file exists and parses; its sha256 and ONNX op histogram (once per content:
    :mod:`bsopt.lowering.cache`)."""
    from bsopt.lowering.cache import cached

    try:
        hist = cached(path, "ops", None, lambda: _op_histogram(path))
    except BsoptError as exc:
        _model_error(d, bp, exc, where)
        return None, {}
    data = Path(path).read_bytes()
    return hashlib.sha256(data).hexdigest(), hist


def _op_histogram(path: str) -> dict[str, int]:
    from bsopt.intake.load import read_onnx

    hist: dict[str, int] = {}
    for node in read_onnx(path).graph.node:
        hist[node.op_type] = hist.get(node.op_type, 0) + 1
    return hist


def _model_error(d: Diagnostics, bp: Blueprint, exc: BsoptError, where: str | None) -> None:
    message = exc.message if hasattr(exc, "message") else str(exc)
    if exc.where:
        message = f"{exc.where}: {message}"
    if where:  # from the command line: not a blueprint position
        d.items.append(ValidationError(where, 0, 0, "model", message, exc.hint))
    else:
        d.error(bp.model_path, message, exc.hint)


def _lower(d: Diagnostics, bp: Blueprint, path: str, where: str | None):
    from bsopt.lowering import LoweringOptions
    from bsopt.lowering.info import inspect_model

    try:
        from bsopt.lowering import standalone_thresholds

        return inspect_model(path, LoweringOptions(finn_version=bp.finn_version, fpgapart=bp.part or DEFAULT_PART,
                                                   standalone_thresholds=standalone_thresholds(
                                                       bp.config_flags, bp.finn_config)), qonnx_totals=False)
    except BsoptError as exc:
        _model_error(d, bp, exc, where)
        return None


def materialise_zoo(ref: str | ZooReference) -> Path:
    """The file of a zoo reference (``zoo:bert?w=4&a=4&layers=2``): exported once into the study root's
    models/ (or $BSOPT_MODEL_CACHE), in a child process where that saves memory.

    Raises:
        InputError: a malformed reference, an unknown model or option, a bad value, a failed export.
    """
    from bsopt.blueprint.sections import parse_zoo_reference
    from bsopt.models import ZOO

    if isinstance(ref, str):
        parsed, problems = parse_zoo_reference(ref)
        if parsed is None:
            message, hint = problems[0]
            raise InputError(message, where=ref, hint=hint)
        ref = parsed
    defaults = dict(ZOO[ref.name].options)
    tag = "".join(f"_{k}{v}" for k, v in sorted(ref.options.items()) if v != defaults.get(k))
    out = settings.model_cache() / f"{ref.name}_w{ref.weight_bits}a{ref.act_bits}_s{ref.seed}{tag}.onnx"
    if not out.exists():
        from bsopt.models.export import export_model_apart

        try:
            export_model_apart(ref.name, ref.weight_bits, ref.act_bits, out, seed=ref.seed, **ref.options)
        except BsoptError as exc:
            raise InputError(f"cannot export {ref.text}: {exc.message}", hint=exc.hint) from exc
    return out


def _materialise_zoo(d: Diagnostics, bp: Blueprint, ref: ZooReference, where: str | None) -> str | None:
    """:func:`materialise_zoo`, its failure reported in ``d``."""
    try:
        return str(materialise_zoo(ref))
    except InputError as exc:
        _model_error(d, bp, InputError(exc.message, hint=exc.hint), where)
        return None


def _materialise_codesign(d: Diagnostics, bp: Blueprint) -> str | None:
    """The untrained export of a co-design blueprint's widest quantisation: the model whose layers the
    folding space is read from (every quantisation has the same layers; each trial's own model is its
    trained export)."""
    from bsopt.models.quantized import Quantization, build_module, cache_key, input_shape

    spec, training = bp.quantization, bp.training
    if training.trainer:  # a trainer that does not import is found here, not in every training
        from bsopt.models.export import resolve_reference

        try:
            if not callable(resolve_reference(training.trainer)):
                d.error(("training", "trainer"), f"{training.trainer} is not a function",
                        "def fit(model, *, weight_bits, act_bits, epochs, seed, report) -> float")
        except BsoptError as exc:
            d.error(("training", "trainer"), exc.message, exc.hint)
            return None
    w, a = [0] * spec.layers, [0] * spec.layers
    for g in spec.groups:
        for i in g.layers:
            w[i], a[i] = max(g.weight_bits), max(g.act_bits)
    q = Quantization(tuple(w), tuple(a))
    out = settings.model_cache() / f"codesign_{cache_key(spec, training, q)}_untrained.onnx"
    if not out.exists():
        try:
            from bsopt.models.export import export_trained

            export_trained(build_module(spec, q, training.seed), input_shape(spec, training), out,
                           prepost=spec.prepost)
        except BsoptError as exc:
            d.error(("quantization", "model"), f"cannot build the model of {q.label}: {exc.message}", exc.hint)
            return None
    return str(out)


def _entries(d: Diagnostics, entries: list[Entry], kind: str, params: list[Parameter]):
    out = []
    seen: dict[str, int] = {}
    for entry in entries:
        if not entry.is_choice:
            out.append((entry, None))
            continue
        base = f"{kind}.{entry.phase + '.' if entry.phase else ''}{entry.key}"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}#{seen[base]}"
        params.append(Parameter(name, kind + "s", choices=tuple(o.label for o in entry.options),
                                source=entry.path))
        out.append((entry, name))
    return out


def _check_kernels(d: Diagnostics, bp: Blueprint, ops: dict[str, int] | None, info) -> None:
    kinds = set(info.dataflow.op_histogram()) if info is not None else set()
    kinds |= {k.rsplit("_", 1)[0] for k in kinds}
    for entry in bp.kernels:
        for opt in entry.options:
            if opt.name is None:
                continue
            k = kernel_info(opt.name)
            if k is None:
                d.error(entry.path, f"unknown kernel '{opt.name}'",
                        suggest(opt.name.split(":")[-1], KERNELS) or "known kernels: " + ", ".join(sorted(KERNELS)))
                continue
            if opt.backend is not None and normalize_backend(opt.name, opt.backend) is None:
                from bsopt.blueprint.registry import backends_of

                d.error(entry.path, f"unknown backend '{opt.backend}' for kernel '{opt.name}'",
                        "backends of " + opt.name + ": " + ", ".join(backends_of(opt.name)))
            if ops is not None and (ops or kinds) and k.name not in INFRASTRUCTURE:
                present = set(ops) | kinds
                if not any(t in present for t in k.implements):  # Brainsmith: a kernel that matches nothing
                    d.warning(entry.path, f"kernel '{opt.name}' matches no layer of this model (it has no "
                              + " / ".join(k.implements) + " layer): it changes nothing",
                              "drop the kernel, or check that the blueprint and the model belong together")


#: the QONNX quantisers whose presence makes FINN's step_qonnx_to_finn run (dev 73ba5ed and v0.10.1)
QONNX_TRIGGERS = ("Quant", "Trunc", "BinaryQuant")


def _check_finn_conversion(d: Diagnostics, bp: Blueprint, ops: dict[str, int]) -> None:
    """FINN's step_qonnx_to_finn converts a model only when it holds a Quant, Trunc or BinaryQuant node:
    a model whose quantisers are all BipolarQuant (1-bit weights *and* activations, e.g. TFC-w1a1) is
    left in QONNX and a real FINN build fails in step_streamline."""
    if not ops.get("BipolarQuant") or any(ops.get(t) for t in QONNX_TRIGGERS):
        return
    steps = [o.name for e in bp.steps for o in e.options if o.name]
    if steps and not any(finn_step_name(s) == "step_qonnx_to_finn" for s in steps):
        return
    d.warning(bp.model_path,
              "every quantiser of this model is a BipolarQuant (1-bit weights and activations): FINN's "
              "step_qonnx_to_finn converts a model only when it has a Quant, Trunc or BinaryQuant node, so a "
              "real FINN build skips the conversion and fails in step_streamline ('Could not find upstream "
              "bipolar'); bsopt's estimates assume the conversion (as FINN's own tests do with a patched step)",
              "use activations of 2 bits or more (e.g. zoo:tfc?w=1&a=2), or a FINN whose qonnx_to_finn step "
              "also counts BipolarQuant nodes")


def _check_steps(d: Diagnostics, bp: Blueprint) -> None:
    finn = bp.backend == "finn"
    for entry in bp.steps + bp.transforms:
        for opt in entry.options:
            if opt.name is None:
                continue
            if finn and entry.kind == "step":
                # FINN's build_dataflow looks string steps up in its own table; nothing else runs
                if finn_step_name(opt.name) is None:
                    hint = suggest(opt.name.split(":")[-1].removeprefix("step_"),
                                   {s.removeprefix("step_") for s in FINN_STEPS})
                    d.error(entry.path, f"FINN's build_dataflow has no step '{opt.name}'",
                            (hint + "; " if hint else "") + "the finn backend runs `python -m "
                            "finn.builder.build_dataflow`, which knows only FINN's own steps: "
                            + ", ".join(s.removeprefix("step_") for s in FINN_STEPS))
                continue
            if known_step(opt.name) or "." in opt.name:
                continue
            msg = f"unknown {entry.kind} '{opt.name}' (no registry knows it)"
            hint = suggest(opt.name.split(":")[-1], KNOWN_STEPS | KNOWN_TRANSFORMS) or \
                "custom steps are fine if your build flow defines them"
            d.warning(entry.path, msg, hint)


def _num_param(name: str, group: str, spec: NumSpec) -> Parameter:
    if spec.choices is not None:
        return Parameter(name, group, choices=tuple(spec.choices), source=spec.path)
    if spec.is_fixed:
        return Parameter(name, group, choices=(spec.fixed,), source=spec.path)
    kind = "int" if spec.integer else "float"
    return Parameter(name, group, kind=kind, low=spec.low, high=spec.high, step=spec.step, log=spec.log,
                     source=spec.path)


def _check_relative_metrics(d: Diagnostics, bp: Blueprint) -> None:
    """*_util objectives and constraints need the part's resource totals."""
    part = bp.part or DEFAULT_PART
    if part_resources(part) is not None:
        return
    from bsopt.hw.parts import PART_RESOURCES

    for item in list(bp.objectives) + list(bp.constraints):
        if item.metric.endswith("_util"):
            d.error(item.path or ("search",), f"{item.metric} needs the resources of part {part}, which bsopt "
                    "does not know", "use an absolute limit (e.g. LUT <= 1000000) or a part whose resources "
                    "bsopt knows: " + ", ".join(PART_RESOURCES))


def _check_limits(d: Diagnostics, bp: Blueprint, space: DesignSpace) -> None:
    strategy = space.search_config.strategy
    if strategy.enumerates and bp.quantization is None:  # (a co-design grid enumerates quantisations only)
        limit = space.global_config.max_combinations
        try:
            total = space.get_total_combinations()
        except BsoptError:
            d.error(("search", "strategy"), f"strategy '{strategy}' needs a countable space, but a parameter "
                    "is a continuous range", "give ranges a step, or use a sampler such as tpe")
            return
        if limit is not None and total > limit:
            path = ("search", "strategy") if "strategy" in (bp.raw.get("search") or {}) else ("search",)
            d.error(path, f"exhaustive search over {total:,} combinations exceeds global.max_combinations "
                    f"({limit:,})", "use a sampler (search.strategy: auto, tpe, nsga2, random) or raise "
                    "global.max_combinations")


# ---------------------------------------------------------------------------- folding
def _folding_params(d: Diagnostics, bp: Blueprint, graph, params: list[Parameter]) -> dict[str, dict[str, Any]]:
    f = bp.folding
    part = bp.part or DEFAULT_PART
    version = bp.finn_version
    fixed: dict[str, dict[str, Any]] = {}
    names = set(graph.names)
    kinds_in_model = {layer.kind for layer in graph} | {layer.op_type for layer in graph}
    for name in f.layers:
        if name not in names:
            d.error(f.path + ("layers", name), f"layer '{name}' is not in the model",
                    suggest(name, names) or "the model's layers: " + ", ".join(graph.names), key=True)
    for kind in f.kinds:
        if kind not in kinds_in_model:
            from bsopt.blueprint.registry import KERNELS

            if kind not in KERNELS and kind.rsplit("_", 1)[0] not in KERNELS:
                d.error(f.path + ("kinds", kind), f"unknown layer kind '{kind}'",
                        suggest(kind, sorted(kinds_in_model)) or None, key=True)
            else:
                d.warning(f.path + ("kinds", kind), f"the model has no {kind} layer; the entry is unused",
                          key=True)
    attrs_of = {layer.name: layer_attrs(layer, version) for layer in graph}
    for key in f.defaults:
        if not any(key in attrs for attrs in attrs_of.values()):
            d.error(f.path + ("defaults", key), f"no layer of the model has an attribute '{key}'",
                    suggest(str(key), {a for attrs in attrs_of.values() for a in attrs}), key=True)
    # a kind's entry applies to the layers of that kind that have the attribute (a dynamic MVAU has no
    # weight memory, so no ram_style): an error only when none of them has it
    for kind, spec in f.kinds.items():
        members = [layer for layer in graph if kind in (layer.kind, layer.op_type)]
        if not members:
            continue
        have = {a for layer in members for a in attrs_of[layer.name]}
        for key in spec:
            if key not in have:
                d.error(f.path + ("kinds", kind, key), f"'{key}' is not a choice for {kind} layers",
                        suggest(str(key), have) or ("choices: " + ", ".join(sorted(have)) if have else
                                                    f"{kind} has nothing to choose"), key=True)
    shuffle_groups = _shuffle_groups(graph)
    followers = {name for names in shuffle_groups.values() for name in names}
    # kinds whose backend a kernel entry of the blueprint chooses
    kernel_varies = {kind for entry in bp.kernels for opt in entry.options if opt.name and opt.backend
                     for kind in kernel_kinds(opt.name)}
    unusable: dict[tuple, tuple[str, ...]] = {}  # (spec path, attribute) -> the backends that have it
    applied: set[tuple] = set()
    for layer in graph.layers:
        attrs = attrs_of[layer.name]
        sources = [(f.path + ("layers", layer.name), f.layers.get(layer.name, {})),
                   (f.path + ("kinds", layer.op_type), f.kinds.get(layer.op_type, {})),
                   (f.path + ("kinds", layer.kind), f.kinds.get(layer.kind, {})),
                   (f.path + ("defaults",), f.defaults)]
        for key in sources[0][1]:
            if key not in attrs:
                d.error(sources[0][0] + (key,), f"'{key}' is not a choice for {layer.name} ({layer.op_type})",
                        suggest(str(key), attrs) or ("choices: " + ", ".join(attrs) if attrs else
                                                    f"{layer.op_type} has nothing to choose"), key=True)
        # pass 1: each attribute's values from its spec, among those FINN accepts for some choice of
        # the layer's other attributes
        chosen: dict[str, tuple[list[Any], tuple]] = {}
        specified: set[str] = set()
        backend_values: list[str] | None = None
        for attr in attrs:
            if layer.kind == "ConvolutionInputGenerator" and attr == "SIMD" and layer.attrs.get("depthwise"):
                continue  # follows the consumer's PE
            if layer.name in followers and attr == "SIMD":
                continue  # follows the first stage of its transpose
            possible = backend_values or (_backend_choices(layer, bp) if layer.kind in kernel_varies
                                          else (layer.backend,))
            if attr != "backend" and not set(possible) & set(attr_backends(layer, attr, version) or possible):
                for path, spec in sources[:3]:  # e.g. pumpedCompute exists on MVAU_rtl only
                    if attr in spec:
                        unusable.setdefault((path, attr), attr_backends(layer, attr, version))
                continue
            specific = sources[:3]
            if attr == "SIMD":  # a transpose's later stages may carry its spec (before any defaults)
                for name in shuffle_groups.get(layer.name, ()):
                    stage = graph[name]
                    specific = specific + [(f.path + ("layers", name), f.layers.get(name, {})),
                                           (f.path + ("kinds", stage.op_type), f.kinds.get(stage.op_type, {})),
                                           (f.path + ("kinds", stage.kind), f.kinds.get(stage.kind, {}))]
            found = next(((p, s[attr]) for p, s in specific + sources[3:] if attr in s), None)
            if found is None:
                continue
            specified.add(attr)
            path, spec = found
            applied.add((path, attr))
            path = path + (attr,)
            backend = _rule_backend(layer, attr, backend_values, version)
            if attr == "backend":
                allowed = _backend_choices(layer, bp)
            elif is_fold(layer, attr, version):
                allowed = legal_fold_values(layer, attr, f.max_stream_width, backend, part=part, version=version)
                for name in shuffle_groups.get(layer.name, ()):  # values every stage accepts
                    ok = set(legal_fold_values(graph[name], attr, part=part, version=version))
                    allowed = [v for v in allowed if v in ok]
            else:
                allowed = impl_choices(layer, attr, part, backend, version=version)
            values = _select(d, path, spec, allowed, attr, layer,
                             why=None if attr == "backend" else _reason(layer, attr, backend, part, version))
            if attr == "backend":
                backend_values = values
            if values:
                chosen[attr] = (values, path)
        # pass 2: the values FINN accepts together with what the section chose for the other attributes
        _joint_rules(d, layer, chosen, backend_values, part, version)
        _unset_folds(d, f, layer, chosen | dict.fromkeys(specified, ([], ())), followers, backend_values, part, version)
        for attr, (values, path) in chosen.items():
            if len(values) == 1:
                fixed.setdefault(layer.name, {})[attr] = values[0]
                continue
            cond = None
            only = attr_backends(layer, attr, version) if attr != "backend" else ()
            if only and backend_values and len(backend_values) > 1 and set(backend_values) - set(only):
                cond = (f"folding.{layer.name}.backend", tuple(b for b in backend_values if b in only))
            requires = _requirements(layer, attr, values, chosen, backend_values, part, version)
            params.append(Parameter(f"folding.{layer.name}.{attr}", "folding", choices=tuple(values),
                                    source=path, condition=cond, requires=requires))
    for (path, attr), only in unusable.items():
        if (path, attr) not in applied:
            d.warning(path + (attr,), f"'{attr}' exists only on the {'/'.join(only)} backend, which no layer this "
                      "entry applies to has: the entry changes nothing", "choose that backend (a backend choice "
                      "in the folding section or a kernel's backend), or drop the entry")
    return fixed


def _unset_folds(d: Diagnostics, f, layer, chosen: dict, followers: set[str], backend_values, part: str,
                 version: str) -> None:
    """A folding factor the section leaves at the model's value (1) that FINN rejects on this layer
    (e.g. MVAU_hls with MW > 1024 needs SIMD >= MW/1024): every configuration would fail to build."""
    for attr in ("PE", "SIMD"):
        if attr in chosen or attr not in layer.attrs or not is_fold(layer, attr, version):
            continue
        if attr == "SIMD" and (layer.name in followers or (layer.kind == "ConvolutionInputGenerator"
                                                            and layer.attrs.get("depthwise"))):
            continue  # set from another layer's choice
        backend = _rule_backend(layer, attr, backend_values, version)
        value = layer.attrs[attr]
        if legal_fold_values(layer, attr, None, backend, part=part, version=version, values=[value]):
            continue
        legal = legal_fold_values(layer, attr, None, backend, part=part, version=version)
        d.error(f.path, f"{layer.name}: {attr}={value}, its value where the folding section sets none, is "
                f"rejected by FINN's code generation: no configuration of this space would build",
                  f"add {attr} to the folding section (e.g. kinds: {{{layer.kind}: {{{attr}: all}}}}); legal values: "
                  + ", ".join(map(str, legal[:12])) + (" …" if len(legal) > 12 else ""))


def _reason(layer, attr: str, backend: str | None, part: str, version: str):
    """FINN's reason to reject a value of ``attr`` on the layer, the others at the model's values."""
    from bsopt.estimate import legality

    op_type = op_type_of(layer, backend)

    def why(value) -> str | None:
        try:
            issues = legality.check(op_type, {**layer.attrs, attr: value}, part, version)
        except Exception:  # noqa: BLE001 - a value of the wrong type: the message says it is not legal
            return None
        return next((str(i) for i in issues if attr in i.attrs), None)
    return why


def _rule_backend(layer, attr: str, backend_values, version: str) -> str | None:
    """The backend whose FINN rules decide an attribute's values: the one backend chosen, else the
    layer's own, else the first backend that has the attribute."""
    backend = backend_values[0] if backend_values and len(backend_values) == 1 else layer.backend
    if attr != "backend":
        only = attr_backends(layer, attr, version)
        if only and backend not in only:
            backend = only[0]
    return backend


def _joint_rules(d: Diagnostics, layer, chosen: dict, backend_values, part: str, version: str) -> None:
    """Drop the values FINN rejects with every combination of the other attributes' chosen values
    (e.g. parallel_window=1 when SIMD = IFMChannels is not among the SIMD values); a spec left with
    nothing is an error at its position, a dropped value a warning."""
    from bsopt.estimate import legality

    fixed = {a: v[0][0] for a, v in chosen.items() if len(v[0]) == 1 and a != "backend"}
    varied = {a: tuple(v[0]) for a, v in chosen.items() if len(v[0]) > 1 and a != "backend"}
    if fixed:  # values the section fixes that FINN rejects together (with the layer's other values)
        backend = _rule_backend(layer, next(iter(fixed)), backend_values, version)
        op_type = op_type_of(layer, backend)
        for issue in legality.check(op_type, {**layer.attrs, **fixed}, part, version):
            named = [a for a in fixed if a in issue.attrs]
            if named and not issue.attrs & set(varied):
                others = sorted(issue.attrs - set(named))
                d.error(chosen[named[0]][1], f"{layer.name}: " + ", ".join(f"{a}={fixed[a]}" for a in named)
                        + f" is rejected by FINN{' with ' + ', '.join(f'{o}={layer.attrs.get(o)}' for o in others) if others else ''}"
                        f" ({issue})", "choose values FINN accepts together"
                        + (f": set {' or '.join(others)} in the folding section too" if others else ""))
                for a in named:
                    chosen.pop(a, None)
                    fixed.pop(a, None)
                break
    for attr in list(varied):
        values, path = chosen[attr]
        backend = _rule_backend(layer, attr, backend_values, version)
        op_type = op_type_of(layer, backend)
        base = {**layer.attrs, **fixed}
        others = {k: v for k, v in varied.items() if k != attr}
        keep = legality.legal_values(op_type, attr, base, part, version, values=values, others=others)
        if len(keep) == len(values):
            continue
        dropped = [v for v in values if v not in keep]
        why = [i for i in legality.check(op_type, {**base, **{k: v[0] for k, v in others.items()}, attr: dropped[0]},
                                         part, version) if attr in i.attrs]
        reason = f" (FINN: {why[0]})" if why else ""
        involved = sorted(set().union(*(i.attrs for i in why)) - {attr}) if why else []
        with_what = ", ".join(f"{k}={fixed[k]}" if k in fixed else f"{k} in {list(others[k])}" for k in involved
                              if k in fixed or k in others) or "the other choices of the folding section"
        if not keep:
            d.error(path, f"no {attr} value of {layer.name} goes with {with_what}{reason}",
                    "widen the other attributes' values (e.g. SIMD: all), or drop the value that needs them")
            chosen.pop(attr)
        else:
            d.warning(path, f"{attr}={', '.join(map(str, dropped))} dropped for {layer.name}: FINN rejects it with "
                      f"{with_what}{reason}",
                      "widen the other attributes' values (e.g. SIMD: all), or drop the value")
            chosen[attr] = (keep, path)
            varied[attr] = tuple(keep)


def _requirements(layer, attr: str, values: list[Any], chosen: dict, backend_values, part: str,
                  version: str) -> tuple[tuple[Any, str, tuple[Any, ...]], ...]:
    """(value, parameter, its values) for each non-default value of an implementation attribute that
    FINN accepts only with some values of another of the layer's parameters."""
    from bsopt.estimate import legality

    if attr == "backend" or is_fold(layer, attr, version):
        return ()
    backend = _rule_backend(layer, attr, backend_values, version)
    op_type = op_type_of(layer, backend)
    fixed = {a: v[0][0] for a, v in chosen.items() if len(v[0]) == 1 and a != "backend"}
    others = {a: tuple(v[0]) for a, v in chosen.items() if len(v[0]) > 1 and a not in ("backend", attr)}
    if not others:
        return ()
    model = legality.model_for(op_type, version)
    default = model.defaults(legality.normalize_version(version)).get(attr) if model is not None else None
    out = []
    for v in values:
        if v == default:
            continue
        for parent, allowed in legality.requirements(op_type, attr, v, {**layer.attrs, **fixed}, part, version,
                                                     others).items():
            out.append((v, f"folding.{layer.name}.{parent}", allowed))
    return tuple(out)


def kernel_kinds(kernel: str) -> tuple[str, ...]:
    """The dataflow-layer kinds a blueprint kernel's backend choice applies to: the kind of that name
    (``MVAU``, ``LayerNorm``, ``Thresholding`` …), else the kinds an ONNX-level or Brainsmith name
    stands for (``MatMul`` -> MVAU, ``Softmax`` -> HWSoftmax, ``ElementwiseBinaryOp`` -> Elementwise*)."""
    from bsopt.blueprint.registry import kernel_info
    from bsopt.lowering.finalize import BACKENDS

    base = kernel.split(":")[-1]
    kinds = set(BACKENDS["latest"]) | set(BACKENDS["0.10.1"])
    if base in kinds:
        return (base,)
    info = kernel_info(base)
    if info is None:
        return ()
    if info.name in kinds:
        return (info.name,)
    return tuple(k for k in info.implements if k in kinds)


def _shuffle_groups(graph) -> dict[str, list[str]]:
    """First stage -> the later stages of each transpose FINN decomposes into several shuffles."""
    return {layers[0].name: [layer.name for layer in layers[1:]]
            for layers in graph.transpose_stages().values() if len(layers) > 1}


def _backend_choices(layer, bp: Blueprint) -> tuple[str, ...]:
    from bsopt.lowering.finalize import BACKENDS, rtl_possible

    table = BACKENDS["0.10.1" if bp.finn_version == "0.10.1" else "latest"]
    options = table.get(layer.kind, ())
    if "rtl" in options and not rtl_possible(layer, bp.finn_version, bp.part or DEFAULT_PART):
        options = tuple(o for o in options if o != "rtl")
    return options


def _select(d: Diagnostics, path, spec, allowed, attr: str, layer, why=None) -> list[Any]:
    """Resolve a value spec ("all", a value, a list, {min, max}) against the legal values; ``why(v)``:
    FINN's reason to reject an illegal value (for the message)."""
    allowed = list(allowed)
    if not allowed:
        d.error(path, f"{layer.name} has no legal value for {attr}")
        return []
    if spec == "all":
        return allowed
    if isinstance(spec, dict):
        d.keys(spec, path, ("min", "max"), attr)
        lo, hi = spec.get("min", -math.inf), spec.get("max", math.inf)
        bad = [(k, b) for k, b in (("min", lo), ("max", hi)) if isinstance(b, bool) or not isinstance(b, (int, float))]
        if bad:
            d.error(path + (bad[0][0],), f"{attr} {bad[0][0]} must be a number, got {bad[0][1]!r}"[:200])
            return []
        values = [v for v in allowed if isinstance(v, (int, float)) and lo <= v <= hi]
        if not values:
            d.error(path, f"no legal {attr} of {layer.name} lies in [{lo}, {hi}]",
                    "legal values: " + ", ".join(map(str, allowed)))
        return values
    items = spec if isinstance(spec, list) else [spec]
    if not items:
        d.error(path, "empty list of values", "write 'all' or list at least one value")
        return []
    out = []
    for i, v in enumerate(items):
        p = path + (i,) if isinstance(spec, list) else path
        if isinstance(v, str) and not any(isinstance(a, str) for a in allowed):  # the same for every layer: once
            d.error(p, f"{attr}={v!r} is no value: write 'all', a number, a list of numbers or {{min, max}}",
                    suggest(v.lower(), ["all"]))
        elif v not in allowed or isinstance(v, bool) != isinstance(allowed[0], bool):
            reason = why(v) if why is not None else None
            d.error(p, f"{attr}={v!r} is not legal for {layer.name}" + (f" (FINN: {reason})" if reason else ""),
                    _legal_hint(attr, layer, allowed))
        elif v not in out:
            out.append(v)
    return out


def _legal_hint(attr: str, layer, allowed) -> str:
    shown = ", ".join(map(str, allowed[:24])) + (" …" if len(allowed) > 24 else "")
    why = ""
    if attr in ("PE", "SIMD"):
        dim = {"PE": "output channels", "SIMD": "input size"}[attr]
        why = f" (divisors of the {dim}; FINN's code generation limits apply)"
    return f"legal values{why}: {shown}"
