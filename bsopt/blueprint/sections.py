"""bsopt's own blueprint sections, shared by both formats: model, target, folding, parameters,
objectives, search, global, backend. Every key is documented in docs/blueprint.md."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from bsopt.blueprint.diagnostics import Diagnostics, suggest
from bsopt.blueprint.model import Blueprint, Constraint, FoldingSpec, NumSpec, Objective
from bsopt.choices import FinnVersion, OutputStage, StrategyName
from bsopt.errors import InputError
from bsopt.hw.parts import BOARD_PARTS, DEFAULT_RESOURCE_LIMITS, is_part_name, resolve_board
from bsopt.metrics import METRICS, OPERATORS, RESOURCES, resolve_metric

COMMON_KEYS = ("model", "target", "folding", "parameters", "objectives", "search", "global", "backend",
               "quantization", "training")

SAMPLERS = tuple(s.value for s in StrategyName)
BACKENDS = ("estimate", "finn", "synthetic")
OUTPUT_STAGES = tuple(OutputStage)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FOLDING_MODES = ("per_layer", "target_fps", "none")

SEARCH_KEYS = ("strategy", "sampler", "constraints", "max_evaluations", "timeout_minutes", "parallel_builds", "seed",
               "max_consecutive_failures")
GLOBAL_KEYS = ("output_stage", "working_directory", "cache_results", "save_artifacts", "log_level",
               "max_combinations", "timeout_minutes", "start_step", "stop_step", "input_type", "output_type")
TARGET_KEYS = ("part", "board", "clock_ns", "resource_limits", "finn_version")
FOLDING_KEYS = ("mode", "defaults", "kinds", "layers", "max_stream_width", "target_fps")

ZOO_RE = re.compile(r"^zoo:(?P<name>[A-Za-z0-9_]+)(\?(?P<query>.*))?$")


def num_spec(d: Diagnostics, value, path, *, integer: bool = False, positive: bool = False) -> NumSpec | None:
    """A fixed number, ``{choices: [...]}`` or ``{low, high, step, log}``."""
    path = tuple(path)
    if isinstance(value, bool):
        d.error(path, "expected a number or a search range, got a boolean")
        return None
    if isinstance(value, (int, float)):
        if positive and value <= 0:
            d.error(path, f"must be positive, got {value}")
            return None
        return NumSpec(fixed=value, integer=integer, path=path)
    if not isinstance(value, dict):
        d.error(path, f"expected a number, {{choices: [...]}} or {{low, high, step, log}}, got {value!r}")
        return None
    if "choices" in value:
        d.keys(value, path, ("choices",))
        choices = d.sequence(value["choices"], path + ("choices",))
        if not choices:
            if choices is not None:
                d.error(path + ("choices",), "empty choices")
            return None
        if len(set(map(repr, choices))) != len(choices):
            d.error(path + ("choices",), "duplicate choices")
        for i, c in enumerate(choices):
            if positive and (not isinstance(c, (int, float)) or isinstance(c, bool) or c <= 0):
                d.error(path + ("choices", i), f"must be a positive number, got {c!r}")
        return NumSpec(choices=list(choices), integer=integer, path=path)
    d.keys(value, path, ("low", "high", "step", "log"))
    low, high = value.get("low"), value.get("high")
    ok = True
    for key, v in (("low", low), ("high", high)):
        if v is None:
            d.error(path, f"a range needs '{key}'", "write {low: ..., high: ...} or {choices: [...]}")
            ok = False
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            d.error(path + (key,), f"expected a number, got {v!r}")
            ok = False
    if not ok:
        return None
    step = value.get("step")
    log = value.get("log", False)
    if not isinstance(log, bool):
        d.error(path + ("log",), f"expected true or false, got {log!r}")
        return None
    if low >= high:
        d.error(path, f"empty range: low ({low}) must be below high ({high})",
                "swap the bounds, or use a fixed number for a single value")
        return None
    if positive and low <= 0:
        d.error(path + ("low",), f"must be positive, got {low}")
        return None
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
        d.error(path + ("step",), f"step must be a positive number, got {step!r}")
        return None
    if log and low <= 0:
        d.error(path + ("low",), "a log range needs low > 0")
        return None
    is_int = integer or (isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int)))
    if log and step not in (None, 1) and is_int:
        d.error(path + ("step",), "a log-scaled integer range takes no step other than 1")
        return None
    if log and step is not None and not is_int:
        d.error(path + ("step",), "a log-scaled float range cannot have a step", "drop 'step' or 'log'")
        return None
    return NumSpec(low=low, high=high, step=step, log=log, integer=is_int, path=path)


def read_common(d: Diagnostics, raw: dict, bp: Blueprint, base_dir: Path) -> None:
    """Fill ``bp`` from the sections both formats share."""
    if "model" in raw:
        _model(d, raw["model"], bp, base_dir)
    if "target" in raw:
        _target(d, raw["target"], bp)
    if "folding" in raw:
        bp.folding = _folding(d, raw["folding"])
    if "parameters" in raw:
        _parameters(d, raw["parameters"], bp)
    if "search" in raw:
        _search(d, raw["search"], bp)
    if "global" in raw:
        _global(d, raw["global"], bp)
    if "backend" in raw:
        _backend(d, raw["backend"], bp)
    if "quantization" in raw or "training" in raw:
        from bsopt.blueprint.codesign import read_quantization, read_training

        if "quantization" not in raw:
            d.error(("training",), "a training section without a quantization section",
                    "add quantization: {...} (the bit widths to explore), or drop training")
        bp.codesign = True
        bp.quantization = read_quantization(d, raw.get("quantization"))
        bp.training = read_training(d, raw.get("training"))
        if "model" in raw and "quantization" in raw:
            d.error(("model",), "a co-design blueprint's models come from its quantization section",
                    "drop 'model:' (quantization.model names the factory)")
            bp.model = None  # (not read: one message, not a second about the file)
    if "objectives" in raw:
        bp.objectives = read_objectives(d, raw["objectives"], ("objectives",), base_dir)
    if not bp.objectives:
        from bsopt.metrics import CODESIGN_OBJECTIVES, DEFAULT_OBJECTIVES

        defaults = CODESIGN_OBJECTIVES if bp.codesign else DEFAULT_OBJECTIVES
        bp.objectives = [Objective(m, direction, ("objectives",)) for m, direction in defaults]
        bp.objectives_defaulted = True
    if bp.codesign:
        from bsopt.blueprint.codesign import check_codesign

        check_codesign(d, bp)


@dataclass(frozen=True)
class ZooReference:
    """A checked ``zoo:NAME?key=value&…`` reference: bit widths and seed with the entry's defaults filled
    in, the architecture options as given."""

    text: str
    name: str
    weight_bits: int
    act_bits: int
    seed: int
    options: dict[str, int]


def parse_zoo_reference(value: str) -> tuple[ZooReference | None, list[tuple[str, str | None]]]:
    """Read and check a zoo reference: ``(reference, [])`` when it names a zoo model with known options
    and good values, else ``(None, problems)``, each a (message, hint) pair."""
    m = ZOO_RE.match(value)
    if not m:
        return None, [(f"malformed zoo reference {value!r}", "write e.g. zoo:tfc?w=2&a=2")]
    from bsopt.models import ZOO

    if m["name"] not in ZOO:
        return None, [(f"unknown zoo model '{m['name']}'",
                       suggest(m["name"], ZOO) or "zoo models: " + ", ".join(ZOO))]
    entry = ZOO[m["name"]]
    arch = dict(entry.options)
    given: dict[str, int] = {}
    problems: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for part in filter(None, (m["query"] or "").split("&")):
        key, _, val = part.partition("=")
        if key in seen:
            problems.append((f"zoo option '{key}' is given twice", "give each option once"))
        elif key not in ("w", "a", "seed") and key not in arch:
            problems.append((f"unknown zoo option '{key}'", suggest(key.lower(), ["w", "a", "seed", *arch]) or
                             "zoo options: w (weight bits), a (activation bits), seed"
                             + "".join(f", {k} (default {v})" for k, v in entry.options)))
        elif not (val.isascii() and val.isdigit()) or (key in ("w", "a") and int(val) not in entry.allowed_bits) or (
                key in arch and int(val) <= 0):
            problems.append((f"bad value for zoo option {key}: {val!r}",
                             f"bits are one of {', '.join(map(str, entry.allowed_bits))}" if key in ("w", "a")
                             else "a positive integer" if key in arch else "a non-negative whole number"))
        else:
            given[key] = int(val)
        seen.add(key)
    options = {k: v for k, v in given.items() if k in arch}
    try:
        entry.resolve_options(options)
    except InputError as exc:
        problems.append((exc.message, exc.hint))
    if problems:
        return None, problems
    dw, da = entry.default_bits
    return ZooReference(value, entry.name, given.get("w", dw), given.get("a", da), given.get("seed", 0),
                        options), []


def _model(d: Diagnostics, value, bp: Blueprint, base_dir: Path) -> None:
    if not isinstance(value, str) or not value.strip():
        d.error(("model",), f"expected a model path or 'zoo:NAME?w=W&a=A', got {value!r}")
        return
    value = value.strip()
    if value.startswith("zoo:"):
        for message, hint in parse_zoo_reference(value)[1]:
            d.error(("model",), message, hint)
        bp.model = value  # also with problems: they are reported here, and no model is read from it
        return
    path = Path(os.path.expandvars(value))
    if not path.is_absolute():
        path = base_dir / path
    bp.model = str(path)


def _target(d: Diagnostics, value, bp: Blueprint) -> None:
    t = d.mapping(value, ("target",))
    if t is None:
        return
    d.keys(t, ("target",), TARGET_KEYS, "target")
    if "board" in t:
        board = t["board"]
        if not isinstance(board, str):
            d.error(("target", "board"), f"expected a board name, got {board!r}")
        else:
            bp.board = board
            part = resolve_board(board)
            if part is None and "part" not in t:
                d.error(("target", "board"), f"unknown board '{board}'",
                        (suggest(board, BOARD_PARTS) or "known boards: " + ", ".join(BOARD_PARTS))
                        + "; or give the FPGA part with target.part")
            elif part is not None:
                bp.part = part
    if "part" in t:
        part = t["part"]
        if not is_part_name(part):
            d.error(("target", "part"), f"expected a Xilinx part name such as xc7z020clg400-1, got {part!r}")
        else:
            bp.part = part
    if "clock_ns" in t:
        bp.clock_ns = num_spec(d, t["clock_ns"], ("target", "clock_ns"), positive=True)
    if "resource_limits" in t:
        limits = d.mapping(t["resource_limits"], ("target", "resource_limits"))
        if limits is not None:
            d.keys(limits, ("target", "resource_limits"), RESOURCES, "resource_limits")
            for k, v in limits.items():
                if k in RESOURCES:
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
                        d.error(("target", "resource_limits", k), f"expected a fraction in (0, 1], got {v!r}")
                    else:
                        bp.resource_limits[k] = float(v)
    if "finn_version" in t:
        try:
            bp.finn_version = FinnVersion.parse(t["finn_version"])
        except InputError as exc:
            d.error(("target", "finn_version"), exc.message, exc.hint)


def _folding(d: Diagnostics, value) -> FoldingSpec | None:
    f = d.mapping(value, ("folding",))
    if f is None:
        return None
    d.keys(f, ("folding",), FOLDING_KEYS, "folding")
    spec = FoldingSpec()
    mode = f.get("mode", "target_fps" if "target_fps" in f else "per_layer")
    if d.choice(mode, ("folding", "mode"), FOLDING_MODES, "folding mode") is None:
        return None
    spec.mode = mode
    if "max_stream_width" in f:
        msw = f["max_stream_width"]
        if isinstance(msw, bool) or not isinstance(msw, int) or msw < 1:
            d.error(("folding", "max_stream_width"), f"expected a positive integer (bits), got {msw!r}")
        else:
            spec.max_stream_width = msw
    for section in ("defaults", "kinds", "layers"):
        if section not in f:
            continue
        m = d.mapping(f[section], ("folding", section))
        if m is None:
            continue
        if section == "defaults":
            spec.defaults = m
        else:
            for name, attrs in m.items():
                am = d.mapping(attrs, ("folding", section, name), "a mapping of attribute: values")
                if am is not None:
                    getattr(spec, section)[str(name)] = am
    if mode == "target_fps":
        if "target_fps" not in f:
            d.error(("folding",), "mode target_fps needs 'target_fps'",
                    "e.g. target_fps: {low: 1000, high: 1000000, log: true}")
        else:
            spec.target_fps = num_spec(d, f["target_fps"], ("folding", "target_fps"), positive=True)
        for section in ("defaults", "kinds", "layers"):
            if f.get(section):
                d.error(("folding", section), f"'{section}' applies to mode per_layer, not target_fps",
                        "FINN's folding from target_fps sets PE/SIMD itself")
    elif "target_fps" in f:
        d.error(("folding", "target_fps"), f"'target_fps' needs mode: target_fps (mode is {mode})")
    return spec


def _parameters(d: Diagnostics, value, bp: Blueprint) -> None:
    m = d.mapping(value, ("parameters",))
    if m is None:
        return
    for name, spec in m.items():
        path = ("parameters", name)
        if not isinstance(name, str) or not name.startswith(("config_flags.", "finn_config.")):
            d.error(path, f"parameter '{name}' must name where its value goes",
                    "prefix it with config_flags. or finn_config., e.g. finn_config.mvau_wwidth_max",
                    key=True)
            continue
        if isinstance(spec, (str, bool)) or spec is None:
            d.error(path, "a parameter needs a search range: {choices: [...]} or {low, high, step, log}")
            continue
        ns = num_spec(d, spec, path)
        if ns is not None:
            bp.parameters[name] = ns


def _search(d: Diagnostics, value, bp: Blueprint) -> None:
    s = d.mapping(value, ("search",))
    if s is None:
        return
    d.keys(s, ("search",), SEARCH_KEYS, "search")
    strategy = s.get("sampler", s.get("strategy"))
    if "sampler" in s and "strategy" in s and s["sampler"] != s["strategy"]:
        d.error(("search", "sampler"), "both 'sampler' and 'strategy' given, with different values",
                "they mean the same; keep one")
    if strategy is not None:
        key = "sampler" if "sampler" in s else "strategy"
        if d.choice(str(strategy), ("search", key), SAMPLERS, "search strategy") is not None:
            bp.search["strategy"] = str(strategy)
    for key in ("max_evaluations", "parallel_builds", "seed", "max_consecutive_failures"):
        if key in s:
            v = s[key]
            if isinstance(v, bool) or not isinstance(v, int):
                d.error(("search", key), f"expected an integer, got {v!r}", f"e.g. {key}: 4")
            elif key == "parallel_builds" and v < 1:
                d.error(("search", key), f"parallel_builds must be at least 1, got {v}",
                        "the number of builds run at once, e.g. parallel_builds: 4")
            elif key == "max_evaluations" and v < 1:
                d.error(("search", key), f"max_evaluations must be at least 1, got {v}",
                        "the number of configurations to evaluate, e.g. max_evaluations: 300")
            elif key == "max_consecutive_failures" and v < 0:
                d.error(("search", key), f"max_consecutive_failures must be 0 or more, got {v}",
                        "a study stops after this many builds failed in a row with none succeeding "
                        "(default 5; 0: never stop)")
            else:
                bp.search[key] = v
    if "timeout_minutes" in s:
        v = s["timeout_minutes"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            d.error(("search", "timeout_minutes"), f"expected a positive number of minutes, got {v!r}")
        else:
            bp.search["timeout_minutes"] = v
    if "constraints" in s:
        bp.constraints = read_constraints(d, s["constraints"], ("search", "constraints"))


def read_constraints(d: Diagnostics, value, path) -> list[Constraint]:
    out = []
    items = d.sequence(value, path)
    for i, c in enumerate(items or []):
        p = tuple(path) + (i,)
        cm = d.mapping(c, p, "a constraint {metric, operator, value}")
        if cm is None:
            continue
        d.keys(cm, p, ("metric", "operator", "value"), "constraint")
        missing = [k for k in ("metric", "operator", "value") if k not in cm]
        if missing:
            d.error(p, "constraint is missing " + ", ".join(missing), "write {metric: LUT, operator: '<=', "
                    "value: 20000}")
            continue
        metric, op, val = resolve_metric(cm["metric"]) or cm["metric"], str(cm["operator"]), cm["value"]
        ok = True
        if not isinstance(metric, str):
            d.error(p + ("metric",), f"expected a metric name, got {metric!r}"[:200], "metrics: " + ", ".join(METRICS))
            ok = False
        elif metric not in METRICS:
            d.error(p + ("metric",), f"unknown metric '{metric}'", suggest(str(metric), METRICS) or
                    "metrics: " + ", ".join(METRICS))
            ok = False
        if op not in OPERATORS:
            d.error(p + ("operator",), f"unknown operator {op!r}", "one of: " + ", ".join(OPERATORS))
            ok = False
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            d.error(p + ("value",), f"expected a number, got {val!r}")
            ok = False
        if ok:
            out.append(Constraint(metric, op, float(val), p))
    return out


def _global(d: Diagnostics, value, bp: Blueprint) -> None:
    g = d.mapping(value, ("global",))
    if g is None:
        return
    d.keys(g, ("global",), GLOBAL_KEYS, "global")
    if "output_stage" in g and d.choice(g["output_stage"], ("global", "output_stage"), OUTPUT_STAGES,
                                        "output stage") is None:
        return
    if "log_level" in g and d.choice(str(g["log_level"]).upper(), ("global", "log_level"), LOG_LEVELS,
                                     "log level") is None:
        return
    if "working_directory" in g:
        wd = g["working_directory"]
        if not isinstance(wd, str) or not wd.strip():
            d.error(("global", "working_directory"), "working_directory must not be empty",
                    "give a directory path, e.g. studies/my_study")
    for key in ("log_level", "input_type", "output_type"):
        if key in g:  # Brainsmith's keys that change nothing in bsopt: said, not silently dropped
            d.warning(("global", key), f"global.{key} is read for Brainsmith compatibility and has no effect in "
                      "bsopt", "remove it, or keep it for Brainsmith")
    for key in ("cache_results", "save_artifacts"):
        if key in g and not isinstance(g[key], bool):
            d.error(("global", key), f"expected true or false, got {g[key]!r}")
    if "max_combinations" in g:
        v = g["max_combinations"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            d.error(("global", "max_combinations"), f"expected a positive integer, got {v!r}")
    if "timeout_minutes" in g:
        v = g["timeout_minutes"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            d.error(("global", "timeout_minutes"), f"expected a positive number of minutes, got {v!r}")
    bp.global_config.update(g)


def _backend(d: Diagnostics, value, bp: Blueprint) -> None:
    if isinstance(value, str):
        name, options = value, {}
    else:
        m = d.mapping(value, ("backend",), "a backend name or {name, options}")
        if m is None:
            return
        d.keys(m, ("backend",), ("name", "options"), "backend")
        name = m.get("name", "estimate")
        options = d.mapping(m.get("options"), ("backend", "options")) or {}
    if d.choice(name, ("backend",) if isinstance(value, str) else ("backend", "name"), BACKENDS, "backend"):
        bp.backend = name
        bp.backend_options = options
        if name == "estimate" and options:
            from bsopt.choices import INSERT_MODES

            d.keys(options, ("backend", "options"), ("insert",), "estimate backend option")
            if "insert" in options:
                d.choice(options["insert"], ("backend", "options", "insert"), INSERT_MODES, "insert mode")


def objectives_search_dirs(base_dir: Path) -> list[Path]:
    repo = Path(__file__).resolve().parents[2] / "objectives"
    return [base_dir / "objectives", base_dir.parent / "objectives", Path.cwd() / "objectives", repo]


def read_objectives(d: Diagnostics, value, path, base_dir: Path) -> list[Objective]:
    """Objectives inline (a list of metric names or {metric, direction}) or by name of an objectives file."""
    if isinstance(value, str):
        return _objectives_file(d, value, path, base_dir)
    items = d.sequence(value, path, "a list of objectives or the name of an objectives file")
    out: list[Objective] = []
    for i, item in enumerate(items or []):
        p = tuple(path) + (i,)
        if isinstance(item, str):
            metric, direction = resolve_metric(item) or item, None
        else:
            m = d.mapping(item, p, "a metric name or {metric, direction}")
            if m is None:
                continue
            d.keys(m, p, ("metric", "direction"), "objective")
            metric, direction = m.get("metric"), m.get("direction")
            if not isinstance(metric, str):
                d.error(p + ("metric",), f"expected a metric name, got {metric!r}"[:200],
                        "metrics: " + ", ".join(METRICS))
                continue
        metric = resolve_metric(metric) or metric
        if metric not in METRICS:
            d.error(p, f"unknown metric '{metric}'", suggest(str(metric), METRICS) or "metrics: " + ", ".join(METRICS))
            continue
        direction = direction or METRICS[metric].direction
        if direction not in ("maximize", "minimize"):
            d.error(p + ("direction",), f"direction must be maximize or minimize, got {direction!r}")
            continue
        if any(o.metric == metric for o in out):
            d.error(p, f"objective '{metric}' is listed twice")
            continue
        out.append(Objective(metric, direction, p))
    if items is not None and not items:
        d.error(path, "empty list of objectives", "list at least one metric, or drop the key for the defaults")
    return out


def _objectives_file(d: Diagnostics, name: str, path, base_dir: Path) -> list[Objective]:
    from bsopt.blueprint.yamlloc import load_yaml

    candidates = [base_dir / name] if name.endswith((".yaml", ".yml")) else []
    candidates += [p / f"{name}.yaml" for p in objectives_search_dirs(base_dir)]
    for cand in candidates:
        try:
            found = cand.is_file()
        except (OSError, ValueError):  # a name no file can have (too long, NUL)
            found = False
        if found:
            data, locs = load_yaml(cand)
            sub = Diagnostics(locs)
            m = sub.mapping(data, ())
            result: list[Objective] = []
            if m is not None:
                sub.keys(m, (), ("name", "description", "objectives"), "objectives file")
                if "objectives" not in m:
                    sub.error((), "an objectives file needs an 'objectives' list")
                else:
                    result = read_objectives(sub, m["objectives"], ("objectives",), cand.parent)
            d.items.extend(sub.items)
            return result
    known = sorted({p.stem for dir_ in objectives_search_dirs(base_dir) if dir_.is_dir()
                    for p in dir_.glob("*.yaml")})
    d.error(path, f"no objectives file named '{name}'",
            suggest(name, known) or ("known objective sets: " + ", ".join(known) if known else
                                      "write the objectives inline as a list"))
    return []


def default_resource_limits(bp: Blueprint) -> dict[str, float]:
    limits = dict(DEFAULT_RESOURCE_LIMITS)
    limits.update(bp.resource_limits)
    return limits
