"""The co-design sections of a blueprint: ``quantization:`` (which bit widths each layer may take) and
``training:`` (how a quantisation's accuracy is measured). See docs/codesign.md.

.. code-block:: yaml

    quantization:
      model: digits_mlp            # bsopt's digits MLP, or package.module:function (your factory)
      options: {hidden: [64, 32]}  # passed to the factory
      groups:                      # layers sharing bit widths; every layer in exactly one group
        first: {layers: [0], weight_bits: [2, 4, 8], act_bits: [2, 4, 8]}
        rest:  {layers: [1, 2], weight_bits: [1, 2, 4], act_bits: [1, 2, 4]}
    training:
      data: digits                 # or trainer: package.module:function (your data and loop)
      epochs: 20
      pruner: {name: median, n_warmup_steps: 3}

Reading needs neither torch nor the user's module: references are checked when a study starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bsopt.blueprint.diagnostics import Diagnostics

QUANTIZATION_KEYS = ("model", "options", "layers", "groups", "weight_bits", "act_bits", "input_shape", "prepost",
                     "front_points")
GROUP_KEYS = ("layers", "weight_bits", "act_bits")
TRAINING_KEYS = ("data", "trainer", "epochs", "seed", "lr", "batch_size", "pruner")
#: bit widths a quantiser may take (1 = bipolar); Brevitas and FINN accept every one of them
BITS = tuple(range(1, 9))
#: Optuna's pruners by the names a blueprint uses
PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "threshold", "none")
#: what proposes quantisations (NSGA-II/III need their own generations; the exact strategies solve folding)
CODESIGN_STRATEGIES = ("auto", "tpe", "random", "gp", "grid", "exhaustive")
#: bsopt's own factories
BUILTIN_MODELS = {"digits_mlp": "TFC-style quantised MLP for 8x8 digits: 64 inputs, hidden layers, 10 classes"}
DATASETS = ("digits",)
_REFERENCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class QuantGroup:
    """Layers that share one weight and one activation bit width."""

    name: str
    layers: tuple[int, ...]
    weight_bits: tuple[int, ...]
    act_bits: tuple[int, ...]


@dataclass
class QuantizationSpec:
    """What a blueprint's ``quantization:`` section says."""

    model: str  # a BUILTIN_MODELS name or package.module:function
    layers: int  # quantised layers (a weight and an output activation each)
    groups: list[QuantGroup]
    options: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    prepost: bool = True  # FINN's pre/post-processing (UINT8 input, TopK output) in the exported model
    front_points: int = 0  # hardware front points stored per quantisation (0: all)

    @property
    def size(self) -> int:
        n = 1
        for g in self.groups:
            n *= len(g.weight_bits) * len(g.act_bits)
        return n


@dataclass
class TrainingSpec:
    """What a blueprint's ``training:`` section says."""

    data: str = "digits"
    trainer: str | None = None  # package.module:function
    epochs: int = 20
    seed: int = 0
    lr: float = 0.01
    batch_size: int = 64
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})


def _bits(d: Diagnostics, value, path) -> tuple[int, ...] | None:
    values = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(values, list) or not values:
        d.error(path, f"expected a bit width or a list of them, got {value!r}", "e.g. [1, 2, 4, 8] (1 = bipolar)")
        return None
    bad = [v for v in values if isinstance(v, bool) or v not in BITS]
    if bad:
        d.error(path, f"unsupported bit width {bad[0]!r}", "bit widths 1..8 (1 = bipolar)")
        return None
    if len(set(values)) != len(values):
        d.error(path, f"bit width {next(v for v in values if values.count(v) > 1)} is listed twice")
        return None
    return tuple(sorted(values))


def _reference(d: Diagnostics, value, path, what: str) -> str | None:
    if not isinstance(value, str) or not _REFERENCE.fullmatch(value.strip()):
        d.error(path, f"expected {what} as package.module:function, got {value!r}",
                "e.g. my_project.nets:build (the module must be importable where bsopt runs)")
        return None
    return value.strip()


def _section(d: Diagnostics, value, name: str, keys) -> dict | None:
    m = d.mapping(value, (name,))
    if m is not None:
        d.keys(m, (name,), keys, name)
    return m


def read_quantization(d: Diagnostics, value) -> QuantizationSpec | None:
    """The section, or None when it has errors (then no model is built from it)."""
    before = len(d.errors)
    spec = _read_quantization(d, value)
    return spec if len(d.errors) == before else None


def _read_quantization(d: Diagnostics, value) -> QuantizationSpec | None:
    path = ("quantization",)
    q = _section(d, value, "quantization", QUANTIZATION_KEYS)
    if q is None:
        return None
    model = q.get("model", "digits_mlp")
    if not isinstance(model, str):
        d.error(path + ("model",), f"expected a model factory name, got {model!r}")
        return None
    options = d.mapping(q.get("options"), path + ("options",)) or {}
    if model in BUILTIN_MODELS:
        from bsopt.models.train import DIGITS_HIDDEN

        hidden = options.get("hidden", list(DIGITS_HIDDEN))
        extra = [k for k in options if k != "hidden"]
        if extra:
            d.error(path + ("options", extra[0]), f"unknown option '{extra[0]}' of {model}", "options: hidden")
        if not isinstance(hidden, list) or not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1
                                                             for h in hidden):
            d.error(path + ("options", "hidden"), f"expected a list of layer widths, got {hidden!r}", "e.g. [64, 32]")
            return None
        layers = len(hidden) + 1
        if "layers" in q and q["layers"] != layers:
            d.error(path + ("layers",), f"{model} with hidden {hidden} has {layers} quantised layers, not "
                    f"{q['layers']!r}", "drop 'layers' (bsopt knows it)")
    elif ":" in model:
        model = _reference(d, model, path + ("model",), "a model factory")
        layers = q.get("layers")
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            d.error(path + ("layers",), "your factory's number of quantised layers is needed" if layers is None
                    else f"expected a positive number of layers, got {layers!r}",
                    "layers: N (the length of the weight_bits and act_bits lists your factory receives)")
            return None
    else:
        from bsopt.blueprint.diagnostics import suggest

        d.error(path + ("model",), f"unknown model factory '{model}'",
                suggest(model, BUILTIN_MODELS) or "bsopt's: " + ", ".join(BUILTIN_MODELS) +
                "; your own: package.module:function")
        return None
    if model is None:
        return None
    groups: list[QuantGroup] = []
    raw_groups = q.get("groups")
    if raw_groups is not None and ("weight_bits" in q or "act_bits" in q):
        d.error(path + ("groups",), "both 'groups' and top-level weight_bits/act_bits given",
                "top-level bit widths are one group of every layer; use one form")
        return None
    if raw_groups is None:
        w = _bits(d, q.get("weight_bits", [1, 2, 4, 8]), path + ("weight_bits",))
        a = _bits(d, q.get("act_bits", [1, 2, 4, 8]), path + ("act_bits",))
        if w is None or a is None:
            return None
        groups.append(QuantGroup("all", tuple(range(layers)), w, a))
    else:
        gm = d.mapping(raw_groups, path + ("groups",))
        if not gm:
            if gm is not None:
                d.error(path + ("groups",), "no groups", "e.g. groups: {all: {layers: all, weight_bits: [2, 4]}}")
            return None
        owner: dict[int, str] = {}
        for name, spec in gm.items():
            gp = path + ("groups", name)
            g = d.mapping(spec, gp)
            if g is None:
                continue
            d.keys(g, gp, GROUP_KEYS, f"group {name}")
            members = g.get("layers", "all")
            if members == "all":
                members = list(range(layers))
            if not isinstance(members, list) or not members or any(
                    isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < layers for i in members):
                d.error(gp + ("layers",), f"expected 'all' or layer indices 0..{layers - 1}, got {members!r}")
                continue
            for i in members:
                if i in owner:
                    d.error(gp + ("layers",), f"layer {i} is in groups '{owner[i]}' and '{name}'",
                            "each layer belongs to one group")
                owner.setdefault(i, str(name))
            w = _bits(d, g.get("weight_bits", [1, 2, 4, 8]), gp + ("weight_bits",))
            a = _bits(d, g.get("act_bits", [1, 2, 4, 8]), gp + ("act_bits",))
            if w is not None and a is not None:
                groups.append(QuantGroup(str(name), tuple(sorted(members)), w, a))
        missing = [i for i in range(layers) if i not in owner]
        if missing:
            d.error(path + ("groups",), f"layer{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                    "in no group", f"the model has {layers} quantised layers (0..{layers - 1}); add "
                    "the missing ones to a group")
            return None
    shape = q.get("input_shape")
    if shape is not None and (not isinstance(shape, list) or not shape or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)):
        d.error(path + ("input_shape",), f"expected a list of positive sizes, got {shape!r}", "e.g. [1, 1, 8, 8]")
        shape = None
    prepost = q.get("prepost", True)
    if not isinstance(prepost, bool):
        d.error(path + ("prepost",), f"expected true or false, got {prepost!r}")
        prepost = True
    points = q.get("front_points", 0)
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        d.error(path + ("front_points",), f"expected a number of points (0: all), got {points!r}")
        points = 0
    return QuantizationSpec(model, layers, groups, dict(options), tuple(shape) if shape else None, prepost, points)


def read_training(d: Diagnostics, value) -> TrainingSpec | None:
    path = ("training",)
    t = _section(d, value, "training", TRAINING_KEYS)
    if t is None:
        return None
    spec = TrainingSpec()
    if "trainer" in t:
        spec.trainer = _reference(d, t["trainer"], path + ("trainer",), "a trainer")
        if "data" in t:
            d.error(path + ("data",), "'data' and 'trainer' both given",
                    "your trainer brings its own data: drop 'data'")
    elif "data" in t:
        spec.data = d.choice(t["data"], path + ("data",), DATASETS, "dataset") or spec.data
    for key, low in (("epochs", 1), ("seed", 0), ("batch_size", 2)):
        if key in t:
            v = t[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                d.error(path + (key,), f"expected an integer >= {low}, got {v!r}")
            else:
                setattr(spec, key, v)
    if "lr" in t:
        v = t["lr"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            d.error(path + ("lr",), f"expected a positive learning rate, got {v!r}")
        else:
            spec.lr = float(v)
    if "pruner" in t:
        raw = t["pruner"]
        pruner = {"name": raw} if isinstance(raw, str) else raw
        if not isinstance(pruner, dict) or "name" not in pruner:
            d.error(path + ("pruner",), f"expected a pruner name or {{name: ..., options}}, got {raw!r}",
                    "e.g. pruner: median, or pruner: {name: percentile, percentile: 25}")
        elif d.choice(pruner["name"], path + ("pruner", "name") if isinstance(raw, dict) else path + ("pruner",),
                      PRUNERS, "pruner") is not None:
            spec.pruner = dict(pruner)  # its options are checked by Optuna when a study starts
    return spec


def check_codesign(d: Diagnostics, bp) -> None:
    """What a co-design blueprint needs besides its sections: the estimate backend, a strategy that
    proposes quantisations, accuracy among its objectives or constraints (a fraction, not a percentage)."""
    if bp.backend != "estimate":
        d.error(("backend",), f"co-design studies solve each quantisation's folding with the estimate backend, not "
                f"{bp.backend}", "drop 'backend:' (a design's FINN build is `bsopt study export` + FINN)")
    strategy = bp.search.get("strategy")
    if strategy is not None and strategy not in CODESIGN_STRATEGIES:
        d.error(("search", "strategy"), f"co-design studies cannot use the {strategy} strategy",
                "a sampler proposes quantisations and each one's folding is solved exactly: use "
                + ", ".join(CODESIGN_STRATEGIES))
    if all(o.metric != "accuracy" for o in bp.objectives) and all(c.metric != "accuracy" for c in bp.constraints):
        d.error(("objectives",), "a co-design blueprint needs accuracy as an objective or a constraint",
                "add {metric: accuracy, direction: maximize}")
    if all(o.metric == "accuracy" for o in bp.objectives):
        d.error(("objectives",), "a co-design blueprint needs a hardware objective besides accuracy",
                "e.g. {metric: LUT, direction: minimize}")
    for c in bp.constraints:
        if c.metric == "accuracy" and not 0 <= c.value <= 1:
            d.error(c.path or ("search", "constraints"), f"accuracy is a fraction in [0, 1], got {c.value:g}",
                    f"write {c.value / 100:g} for {c.value:g} %" if 1 < c.value <= 100 else None)
