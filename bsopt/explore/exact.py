"""Exact Pareto fronts of estimate-backed design spaces, without enumerating them.

With FINN's analytical estimates a network's resources are sums, and its ``max_cycles`` a max, of
per-layer values that depend only on that layer's own choices (PE, SIMD, ram_style, resType, …).
So the feasible Pareto front of a space of 10^28 configurations follows from per-layer option
tables:

1. **Decompose** the space: a parameter is *local* to a layer when changing it changes only that
   layer's entry of the FINN folding config; every other parameter (clock, kernel/backend choices,
   flags, parameters that change bit-width minimisation) is *global*. The front is solved per
   combination of global values and the results merged.
2. **Tabulate** each layer's options: its cycles and LUT/BRAM_18K/URAM/DSP from bsopt's node cost
   models (options FINN would reject are dropped).
3. For every distinct cycle value ``C`` (ascending), keep each layer's options with ``cycles <= C``,
   reduce them to their own non-dominated set over the summed dimensions, and merge the layers one by
   one (Minkowski sum, pruned to non-dominated points and to the resource bounds: the device budget
   and the blueprint's constraints). A merged point belongs to the 3-D front iff its max cycles is
   exactly ``C`` and no point of the previous bound's front weakly dominates it.

Supported objectives: ``max_cycles``/``throughput_fps`` (one max dimension), ``LUT``, ``BRAM_18K``,
``URAM``, ``DSP`` and their ``*_util`` (sums), in their natural directions; constraints: upper
bounds on those sums, and ``max_cycles <=`` / ``throughput_fps >=``. Anything else raises
:class:`NotSeparable` (the study then uses a sampler).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from bsopt.errors import BsoptError

SUM_METRICS = ("LUT", "BRAM_18K", "URAM", "DSP")
CYCLE_METRICS = ("max_cycles", "throughput_fps")
MINIMIZE_KEYS = ("mem_mode", "runtime_writeable_weights")
MAX_GLOBAL_COMBINATIONS = 256


class NotSeparable(BsoptError):
    """The space, objectives or constraints are not sums/maxes over independent layers."""


@dataclass
class LayerTable:
    layer: str
    params: list[str]
    values: list[tuple[Any, ...]]  # per option: the values of ``params``
    cycles: np.ndarray  # (n,)
    sums: np.ndarray  # (n, len(SUM_METRICS))
    #: per option, each layer's stream key (bsopt.estimate.inserted.stream_key), when the estimate
    #: includes the nodes FINN inserts between layers
    keys: list[dict[str, tuple]] | None = None
    #: inserted nodes on edges to the previous table's layers: their sums by (previous table's
    #: ``out_state``, this table's ``in_state``) — the pairwise terms of a chain
    pair: np.ndarray | None = None  # (previous states, states, len(SUM_METRICS))
    in_state: np.ndarray | None = None  # (n,) ints
    out_state: np.ndarray | None = None  # (n,) ints


@dataclass
class ExactFront:
    """The exact feasible Pareto front: parameter values and metrics of each point."""

    points: list[dict[str, Any]]  # {"values": {...}, "metrics": {...}}
    layers: int
    options: int  # per-layer estimates computed
    global_combinations: int
    seconds: float
    space_size: int | None = None
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ checks
def _objective_dims(objectives) -> tuple[bool, list[int]]:
    """(has a cycle objective, indices into SUM_METRICS that are objectives)."""
    cycle, sums = False, []
    for m, d in zip(objectives.metrics, objectives.directions, strict=True):
        base = m[:-5] if m.endswith("_util") else m
        if m in CYCLE_METRICS:
            if (m == "max_cycles") != (d == "minimize"):
                raise NotSeparable(f"objective {d} {m} runs against the cost models' structure")
            cycle = True
        elif base in SUM_METRICS:
            if d != "minimize":
                raise NotSeparable(f"objective {d} {m}: only minimised resources are separable")
            sums.append(SUM_METRICS.index(base))
        else:
            raise NotSeparable(f"objective {m} is not a per-layer sum or max")
    return cycle, sorted(set(sums))


def _bounds(objectives, part: str, clock_ns: float, *, strict: bool = True) -> tuple[np.ndarray, float]:
    """Upper bounds on the summed resources and on max cycles, from the constraints (``strict``:
    NotSeparable for any other constraint; else it is left out)."""
    from bsopt.hw.parts import part_resources

    avail = part_resources(part) or {}
    bound = np.full(len(SUM_METRICS), np.inf)
    cyc = np.inf
    for c in objectives.constraints:
        m, op, v = c.metric, c.operator, c.value
        base = m[:-5] if m.endswith("_util") else m
        if base in SUM_METRICS and op in ("<=", "<"):
            limit = v * avail.get(base, 0) if m.endswith("_util") else v
            if op == "<":
                limit = np.nextafter(limit, -np.inf)
            i = SUM_METRICS.index(base)
            bound[i] = min(bound[i], limit)
        elif m == "max_cycles" and op in ("<=", "<"):
            cyc = min(cyc, v if op == "<=" else np.nextafter(v, -np.inf))
        elif m == "throughput_fps" and op in (">=", ">"):
            cyc = min(cyc, 1e9 / clock_ns / v)
        elif m.endswith("_util") and base == "FF":
            continue  # the estimates have no flip-flop count: never violated
        elif m == "codegen_issues" and op in ("<=", "<"):
            continue  # the option tables hold only what FINN's code generation accepts
        elif strict:
            raise NotSeparable(f"constraint '{c}' is not a bound on a per-layer sum or max")
    return bound, cyc


def why_not_separable(space, objectives) -> str | None:
    """None when :func:`exact_front` can solve the space under the estimate backend, else the reason."""
    try:
        _objective_dims(objectives)
        target = space.fixed_target()
        _bounds(objectives, target["part"], float(target.get("clock_ns") or 10.0))
        _, global_params = decompose(space)
    except NotSeparable as exc:
        return exc.message
    except BsoptError as exc:
        return exc.message
    combos = 1
    for p in global_params:
        combos *= p.size
    if combos > MAX_GLOBAL_COMBINATIONS:
        names = [p.name for p in global_params]
        return (f"{combos} combinations of global choices exceed {MAX_GLOBAL_COMBINATIONS}: "
                + ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
                + " (choices that change more than one layer, e.g. mem_mode and runtime_writeable_weights change "
                  "FINN's bit-width minimisation)")
    if space.blueprint.backend == "estimate" and space.blueprint.backend_options.get("insert", "none") != "none":
        graph = space.model_info.dataflow if space.model_info is not None else None
        if graph is not None and any(layer.kind == "DuplicateStreams" for layer in graph):
            return ("with FINN's inserted converters and FIFOs costed, a branching graph couples layers beyond "
                    "a chain of neighbours")
    return None


# ------------------------------------------------------------------------------ decomposition
def decompose(space, base: dict[str, Any] | None = None) -> tuple[list[tuple[tuple[str, ...], list]], list]:
    """(groups, global parameters) of a design space. A group is a set of layers with the parameters
    that change only their folding-config entries (a parameter that sets two layers, such as a pool's
    PE mirrored into the sliding window feeding it, joins them into one group). ``base``: the values
    the other parameters keep while one is varied (default: every parameter's first value)."""
    base = base if base is not None else space.values_at(0)
    cfg0 = space.config_from_values(base)
    if cfg0.folding_config is None:
        raise NotSeparable("the space has no per-layer folding (e.g. target_fps mode)")
    ref = _shape(cfg0)
    touches: list[tuple[Any, set[str]]] = []
    global_params = []
    for p in space.parameters:
        if not p.is_choice:
            continue
        if p.size is None:
            raise NotSeparable(f"parameter {p.name} is continuous")
        layers: set[str] = set()
        is_global = False
        attr = p.name.rsplit(".", 1)[-1]
        declared = space.entries_set_by(p.name, base) if attr not in MINIMIZE_KEYS else None
        if declared is not None:  # a per-layer folding parameter: the entries it sets are known, no probing
            touches.append((p, declared))
            continue
        for i in range(1, p.size):
            shape = _shape(space.config_from_values({**base, p.name: p.value_at(i)}))
            if shape["rest"] != ref["rest"]:
                is_global = True
                break
            changed = {k for k in set(shape["folding"]) | set(ref["folding"])
                       if shape["folding"].get(k) != ref["folding"].get(k)}
            if "Defaults" in changed or any((shape["folding"].get(k) or {}).get(key) !=
                                            (ref["folding"].get(k) or {}).get(key)
                                            for k in changed for key in MINIMIZE_KEYS):
                is_global = True
                break
            layers |= changed
        if is_global:
            global_params.append(p)
        elif layers:
            touches.append((p, layers))
    # union-find over layers joined by a parameter
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for _, layers in touches:
        first, *rest = sorted(layers)
        for other in rest:
            parent[find(other)] = find(first)
    groups: dict[str, tuple[set[str], list]] = {}
    for p, layers in touches:
        root = find(next(iter(layers)))
        g = groups.setdefault(root, (set(), []))
        g[0].update(layers)
        g[1].append(p)
    order = list(cfg0.folding_config)
    return [(tuple(sorted(ls, key=lambda n: order.index(n) if n in order else 0)), ps)
            for ls, ps in groups.values()], global_params


_NOT_SHAPE = ("folding_config", "config_id", "params", "index")


def _shape(cfg) -> dict[str, Any]:
    """A configuration's folding config and everything else but its name — compared, not copied (a deep
    copy of every field per probe was most of decompose's time on transformer spaces)."""
    rest = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in _NOT_SHAPE}
    return {"folding": cfg.folding_config or {}, "rest": rest}


# ------------------------------------------------------------------------------ tables
def tabulate(space, global_values: dict[str, Any], groups, estimator) -> tuple[
        list[LayerTable], np.ndarray, float, int]:
    """Per-group option tables for one combination of global values, plus the constant contribution
    of layers without choices (sums, max cycles) and the number of node estimates made."""
    base = {**space.values_at(0), **global_values}
    cfg0 = space.config_from_values(base)
    target = cfg0.target or {}
    part = target.get("part") or estimator.part
    version = estimator.version(target.get("finn_version"), estimator.finn_version)
    graph = estimator.graph_for(cfg0, part, version)
    g0 = estimator.configured(graph, cfg0.folding_config)
    base_attrs = {layer.name: (layer.op_type, dict(layer.attrs)) for layer in g0.layers}
    # the attributes before a layer's own folding entry (the graph's, with the config's Defaults)
    defaults = cfg0.folding_config.get("Defaults")
    plain = {layer.name: dict(layer.attrs) for layer in
             estimator.configured(graph, {"Defaults": defaults} if defaults else None).layers}
    grouped = {name for layers, _ in groups for name in layers}
    insert = getattr(estimator, "insert", "none")
    if insert != "none":
        stream_key = estimator.stream_key
        shapes = {layer.name: tuple(layer.out_shape) for layer in g0.layers}
    const = np.zeros(len(SUM_METRICS))
    const_cycles = 0.0
    memo: dict[tuple, Any] = {}  # identical layers (a transformer's encoder blocks) are estimated once

    def estimate(op: str, attrs: dict[str, Any]):
        k = (op, json.dumps(attrs, sort_keys=True, default=str))
        if k not in memo:
            try:
                memo[k] = estimator.node_estimate(op, attrs, part, version)
            except BsoptError as exc:
                memo[k] = exc
        if isinstance(memo[k], BsoptError):
            raise memo[k]
        return memo[k]

    for name, (op, attrs) in base_attrs.items():
        if name in grouped:
            continue
        try:
            est = estimate(op, attrs)
        except BsoptError as exc:
            raise BsoptError(f"{name}: FINN rejects its configuration, which the space does not vary: {exc.message}",
                             hint="add the attribute it names to the folding section (`bsopt blueprint validate` "
                                  "checks it)") from exc
        const += [float(est.get(k, 0)) for k in SUM_METRICS]
        const_cycles = max(const_cycles, float(est["cycles"]))
    tables: list[LayerTable] = []
    shared: dict[tuple, LayerTable] = {}
    for layers, params in groups:
        sig = None if insert != "none" else _signature(space, base, layers, params, plain, base_attrs)
        if sig is not None and sig in shared:  # a copy of a group tabulated before: same options, same values
            t = shared[sig]
            tables.append(LayerTable("+".join(layers), [p.name for p in params], t.values, t.cycles, t.sums))
            continue
        entries_of = space.folding_entries_at(base, layers)
        values, cycles, sums, keys = [], [], [], []
        seen: set[str] = set()
        rejected = ""
        for combo in itertools.product(*[[p.value_at(i) for i in range(p.size)] for p in params]):
            folding = entries_of({p.name: v for p, v in zip(params, combo, strict=True)})
            # a value whose requirement this combination misses falls back to FINN's default: the
            # same entries as another combination, which is kept instead
            entries = json.dumps([folding.get(name) for name in layers], sort_keys=True, default=str)
            if entries in seen:
                continue
            seen.add(entries)
            c, sm, ok, key = 0.0, np.zeros(len(SUM_METRICS)), True, {}
            for name in layers:
                if name not in plain:  # a FINN-side alias (a transpose's Shuffle name), not a layer
                    continue
                a = dict(plain[name])
                a.update(folding.get(name) or {})
                try:
                    est = estimate(base_attrs[name][0], a)
                except BsoptError as exc:
                    ok = False  # FINN would reject this folding: not an option
                    rejected = rejected or exc.message
                    break
                c = max(c, float(est["cycles"]))
                sm += [float(est.get(k, 0)) for k in SUM_METRICS]
                if insert != "none":
                    key[name] = stream_key(base_attrs[name][0], a, version, name, shapes[name])
            if ok:
                values.append(combo)
                cycles.append(c)
                sums.append(sm)
                keys.append(key)
        if not values:
            raise BsoptError(f"{', '.join(layers)}: FINN rejects every folding option the space offers "
                             f"(e.g. {rejected})", hint="check the folding section with `bsopt blueprint validate`")
        tables.append(LayerTable("+".join(layers), [p.name for p in params], values, np.array(cycles),
                                 np.array(sums), keys if insert != "none" else None))
        if sig is not None:
            shared[sig] = tables[-1]
    if insert != "none":
        const_keys = {name: stream_key(op, attrs, version, name, shapes[name]) for name, (op, attrs) in base_attrs.items()
                      if name not in grouped}
        tables, const = _with_inserted_costs(tables, const, g0, const_keys, part, version, estimator)
    return tables, const, const_cycles, len(memo)


def _signature(space, base, layers, params, plain, base_attrs) -> tuple | None:
    """What a group's option table depends on: each layer's op type and attributes before its folding
    entry (in group order), and each parameter's attribute, values and the positions of the layers it
    sets. Two groups with the same signature (the copies of an encoder block) have the same table.
    None when a parameter's layers are not declared (a probed parameter: no sharing)."""
    pos = {name: i for i, name in enumerate(layers)}
    out = []
    for p in params:
        declared = space.entries_set_by(p.name, base)
        if declared is None or not declared <= pos.keys():
            return None
        out.append((p.name.rsplit(".", 1)[-1], tuple(sorted(pos[n] for n in declared)),
                    tuple(p.value_at(i) for i in range(p.size))))
    layer_part = tuple((base_attrs[n][0], json.dumps(plain[n], sort_keys=True, default=str)) if n in plain else None
                       for n in layers)
    return layer_part, tuple(out)


# ------------------------------------------------------------------------------ inserted nodes
def _with_inserted_costs(tables, const, g0, const_keys, part, version, estimator):
    """Add the cost of the nodes FINN inserts between layers (converters, FIFOs) to the tables: an
    edge inside a group or between a group and a layer without choices is part of that group's
    options; an edge between two groups is a pairwise term, supported between consecutive tables (a
    chain, as in CNNs and MLPs) and NotSeparable otherwise (branching encoders: use a sampler)."""
    edge_nodes, boundary_nodes = estimator.inserted_on_edge, estimator.inserted_at_boundary
    owner = {name: i for i, t in enumerate(tables) for name in (t.keys[0] if t.keys else {})}
    memo: dict[tuple, np.ndarray] = {}

    def cost(nodes) -> np.ndarray:
        """The inserted nodes' summed resources; infinite where FINN rejects one (no option)."""
        out = np.zeros(len(SUM_METRICS))
        for n in nodes:
            k = (n.op_type, json.dumps(n.attrs, sort_keys=True))
            if k not in memo:
                try:
                    est = estimator.node_estimate(n.op_type, n.attrs, part, version)
                    memo[k] = np.array([float(est.get(m, 0)) for m in SUM_METRICS])
                except BsoptError:
                    memo[k] = np.full(len(SUM_METRICS), np.inf)
            out = out + memo[k]
        return out

    def key_of(name, i_opt=None):
        return const_keys[name] if name not in owner else tables[owner[name]].keys[i_opt][name]

    # the edges FINN inserts nodes on (a DuplicateStreams layer feeds its readers in graph order)
    producer = {layer.output: layer for layer in g0.layers}
    readers: dict[str, list] = {}
    for layer in g0.layers:
        for t in layer.inputs:
            readers.setdefault(t, []).append(layer)
    edges = []
    for layer in g0.layers:
        key = key_of(layer.name, 0)
        for in_idx, t in enumerate(layer.inputs):
            p = producer.get(t)
            if p is None or in_idx >= len(key[0]) or key[0][in_idx] is None:
                continue
            users = readers.get(t, [])
            if len(key_of(p.name, 0)[1]) < 2 and len(users) != 1:
                continue  # FINN inserts nothing on a fan-out it cannot stitch
            edges.append((p.name, users.index(layer), layer.name, in_idx))
    consumed = {t for layer in g0.layers for t in layer.inputs}
    first = next((layer for layer in g0.layers if any(t not in producer for t in layer.inputs[:1])), None)
    last = next((layer for layer in reversed(g0.layers) if layer.output not in consumed), None)

    tables = [LayerTable(t.layer, t.params, t.values, t.cycles, np.array(t.sums, dtype=float), t.keys)
              for t in tables]
    const = np.array(const, dtype=float)
    pairs: dict[int, list] = {}
    for p_name, out_idx, c_name, in_idx in edges:
        gp, gc = owner.get(p_name), owner.get(c_name)
        if gp is None and gc is None:
            const += cost(edge_nodes(const_keys[p_name], out_idx, const_keys[c_name], in_idx))
        elif gp is None or gc is None or gp == gc:
            g = gc if gp is None else gp
            t = tables[g]
            for o in range(len(t.values)):
                t.sums[o] += cost(edge_nodes(key_of(p_name, o), out_idx, key_of(c_name, o), in_idx))
        elif gc == gp + 1:
            pairs.setdefault(gc, []).append((p_name, out_idx, c_name, in_idx))
        else:
            raise NotSeparable(f"with FINN's inserted nodes costed, the edge {p_name} -> {c_name} couples layers "
                               "whose choices are not neighbours in a chain (a branching graph): use a sampler")
    for side, layer, index in (("in", first, 0), ("out", last, 0)):
        if layer is None:
            continue
        if layer.name in owner:
            t = tables[owner[layer.name]]
            for o in range(len(t.values)):
                t.sums[o] += cost(boundary_nodes(key_of(layer.name, o), side, index))
        else:
            const += cost(boundary_nodes(const_keys[layer.name], side, index))
    for gc, pair_edges in pairs.items():
        prev, t = tables[gc - 1], tables[gc]
        out_keys = [tuple(prev.keys[o][p] for p, _, _, _ in pair_edges) for o in range(len(prev.values))]
        in_keys = [tuple(t.keys[o][c] for _, _, c, _ in pair_edges) for o in range(len(t.values))]
        out_ids, in_ids = {k: i for i, k in enumerate(dict.fromkeys(out_keys))}, \
            {k: i for i, k in enumerate(dict.fromkeys(in_keys))}
        pair = np.zeros((len(out_ids), len(in_ids), len(SUM_METRICS)))
        for ok_, i in out_ids.items():
            for ik, j in in_ids.items():
                for (_, out_idx, _, in_idx), pk, ck in zip(pair_edges, ok_, ik, strict=True):
                    pair[i, j] += cost(edge_nodes(pk, out_idx, ck, in_idx))
        prev.out_state = np.array([out_ids[k] for k in out_keys])
        t.in_state = np.array([in_ids[k] for k in in_keys])
        t.pair = pair
    return tables, const


def _chain_merge(full, state, t, sel, dims, bound):
    """Merge a table's options ``sel`` into a partial front with the pairwise terms to the previous
    table: candidates are pruned to the bounds and to the non-dominated ones per outgoing state.
    Returns (sums, states, parent row of each, option of each)."""
    opts = t.sums[sel]
    add = opts[None, :, :]
    if t.pair is not None:
        add = add + t.pair[state[:, None], t.in_state[sel][None, :], :]
    cand = full[:, None, :] + add  # (n, m, all sums)
    n, m = cand.shape[:2]
    cand = cand.reshape(n * m, -1)
    idx_f = np.repeat(np.arange(n), m)
    idx_o = np.tile(np.arange(m), n)
    ok = np.all(cand[:, dims] <= bound + 1e-9, axis=1) & np.all(np.isfinite(cand), axis=1)
    cand, idx_f, idx_o = cand[ok], idx_f[ok], idx_o[ok]
    new_state = t.out_state[sel][idx_o] if t.out_state is not None else np.zeros(len(idx_o), dtype=int)
    keep = []
    for s in np.unique(new_state):
        rows = np.nonzero(new_state == s)[0]
        keep.extend(rows[_nondominated(cand[rows][:, dims])])
    keep = np.array(sorted(keep), dtype=int)
    return cand[keep], new_state[keep], idx_f[keep], sel[idx_o[keep]]


# ------------------------------------------------------------------------------ fronts
def _nondominated(pts: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows (minimisation; identical rows: one kept)."""
    n, d = pts.shape
    if n == 0:
        return np.zeros(0, dtype=int)
    if d == 1:
        return np.array([int(np.argmin(pts[:, 0]))])
    if n <= 64:  # a table's options: one pairwise comparison
        le = np.all(pts[:, None, :] <= pts[None, :, :], axis=2)  # [j, i]: row j <= row i
        lt = le & ~le.T  # strictly better somewhere
        same = le & le.T
        earlier_same = np.triu(same, k=1)  # [j, i], j < i: identical rows keep the first
        return np.nonzero(~(lt.any(axis=0) | earlier_same.any(axis=0)))[0]
    if d == 2:
        order = np.lexsort(pts.T[::-1])
        p = pts[order]
        best = np.minimum.accumulate(p[:, 1])
        keep = np.ones(n, dtype=bool)
        keep[1:] = p[1:, 1] < best[:-1]
        return order[keep]
    from bsopt.pareto import front_indices

    return np.asarray(front_indices(pts), dtype=int)


def _merge(front: np.ndarray, opts: np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minkowski sum of a partial front and a layer's options, pruned to bounds and non-dominated:
    (sums, parent row of each, option of each)."""
    if len(opts) == 1:  # a translation keeps the front non-dominated: only the bounds prune
        s = front + opts[0]
        ok = np.nonzero(np.all(s <= bound + 1e-9, axis=1))[0]
        return s[ok], ok, np.zeros(len(ok), dtype=int)
    s = (front[:, None, :] + opts[None, :, :]).reshape(-1, front.shape[1])
    idx_f = np.repeat(np.arange(len(front)), len(opts))
    idx_o = np.tile(np.arange(len(opts)), len(front))
    ok = np.all(s <= bound + 1e-9, axis=1)
    s, idx_f, idx_o = s[ok], idx_f[ok], idx_o[ok]
    keep = _nondominated(s)
    return s[keep], idx_f[keep], idx_o[keep]


_TABLES: dict[tuple, tuple[Any, tuple]] = {}


def _tables(space, gvals: dict[str, Any], groups, estimator):
    """tabulate(), memoised per space, global values and estimator (refits reuse the tables; two
    estimators with the same ``table_key()`` share them)."""
    table_key = getattr(estimator, "table_key", None)
    est = (table_key() if callable(table_key) else None) or ("instance", id(estimator))
    key = (space.space_id, tuple(sorted(gvals.items(), key=lambda kv: kv[0])), est)
    if key not in _TABLES:
        if len(_TABLES) > 64:
            _TABLES.clear()
        # the estimator is kept with its tables, so that an id in a key is never a later object's
        _TABLES[key] = (estimator, tabulate(space, gvals, groups, estimator))
    return _TABLES[key][1]


def per_global_choice(space, objectives, estimator, groups, global_params, *, strict: bool = True):
    """Per combination of global values: (values, clock, resource bounds, cycle bound, tables)."""
    global_names = {p.name for p in global_params}
    for combo in itertools.product(*[[p.value_at(i) for i in range(p.size)] for p in global_params]):
        gvals = {p.name: v for p, v in zip(global_params, combo, strict=True)}
        if global_params:  # layer names and groups can depend on global choices (e.g. a kernel's backend)
            groups, more = decompose(space, {**space.values_at(0), **gvals})
            if {p.name for p in more} - global_names:
                raise NotSeparable("parameters couple layers differently under other global choices: "
                                   + ", ".join(sorted({p.name for p in more} - global_names)))
        cfg0 = space.config_from_values({**space.values_at(0), **gvals})
        part = (cfg0.target or {}).get("part") or estimator.part
        clock = float((cfg0.target or {}).get("clock_ns") or 10.0)
        bound, cyc_bound = _bounds(objectives, part, clock, strict=strict)
        yield gvals, clock, bound, cyc_bound, _tables(space, gvals, groups, estimator)


def exact_front(space, objectives, estimator=None, *, time_limit: float | None = None,
                correction=None, status=None) -> ExactFront:
    """The exact feasible Pareto front of ``space`` under the estimate backend (see the module doc).

    ``status(text)``: told how far the solve is (per cycle bound), for a progress line.

    ``correction(table) -> (cycles, sums)``: replaces each group's option values before the merge
    (e.g. a per-layer-type surrogate of real builds); the points then also carry their uncorrected
    ``estimate`` metrics."""
    t0 = time.time()
    cycle_obj, sum_idx = _objective_dims(objectives)
    if estimator is None:
        from bsopt.backends.estimate import EstimateBackend

        estimator = EstimateBackend.for_space(space)
    groups, global_params = decompose(space)
    combos = 1
    for p in global_params:
        combos *= p.size
    if combos > MAX_GLOBAL_COMBINATIONS:
        raise NotSeparable(f"{combos} combinations of global choices ({', '.join(p.name for p in global_params)}) "
                           f"exceed {MAX_GLOBAL_COMBINATIONS}")
    points: list[dict[str, Any]] = []
    notes: dict[str, list] = {}  # why global combinations have no feasible configuration -> which
    n_est = 0
    layers = 0
    for done, (gvals, clock, bound, cyc_bound, (tables, const, const_cycles, n)) in enumerate(per_global_choice(
            space, objectives, estimator, groups, global_params)):
        n_est += n
        layers = len(tables)
        original = tables
        if correction is not None:
            tables = []
            for t in original:
                cyc, sums = correction(t)
                tables.append(LayerTable(t.layer, t.params, t.values, np.asarray(cyc, dtype=float),
                                         np.asarray(sums, dtype=float)))
        # the summed dimensions the merge keeps: objectives, and bounded resources (for exactness)
        used = {i for i in range(len(SUM_METRICS)) if const[i] or any(t.sums[:, i].any() for t in tables)
                or any(t.pair is not None and t.pair[..., i].any() for t in tables)}
        dims = sorted(set(sum_idx) | {i for i in used if np.isfinite(bound[i])})
        chain = any(t.keys is not None for t in tables)
        if chain and correction is not None:
            raise NotSeparable("surrogate corrections with FINN's inserted nodes costed are not supported")
        why = why_empty(tables, const, const_cycles, bound, cyc_bound, clock)
        if why:  # a lower bound already exceeds a limit: no configuration of these global choices fits
            notes.setdefault(why, []).append(gvals)
            continue
        fronts = []
        found = len(points)
        bounds = _cycle_bounds(tables, const_cycles, cyc_bound, cycle_obj)
        for i, front in enumerate(_fronts_by_cycle(tables, const, const_cycles, dims, bound, bounds, cycle_obj,
                                                   sum_idx, chain)):
            fronts.append(front)
            found += len(front[0])
            if status is not None:
                status(f"exact front: cycle bound {i + 1}/{len(bounds)}"
                       + (f" of global choices {done + 1}/{combos}" if combos > 1 else "") + f", {found:,} points")
        for cycles, sums, choice in fronts:
            for c, s, ch in zip(cycles, sums, choice, strict=True):
                values = dict(gvals)
                for tab, k in zip(tables, ch, strict=True):
                    values.update(dict(zip(tab.params, tab.values[k], strict=True)))
                metrics = {"max_cycles": c, "throughput_fps": 1e9 / clock / c if c else float("inf")}
                metrics.update({m: float(s[i]) for i, m in enumerate(SUM_METRICS)})
                point = {"values": values, "metrics": metrics}
                if correction is not None:
                    ec = max([const_cycles] + [t.cycles[k] for t, k in zip(original, ch, strict=True)])
                    es = const + sum(t.sums[k] for t, k in zip(original, ch, strict=True))
                    point["estimate"] = {"max_cycles": ec, "throughput_fps": 1e9 / clock / ec if ec else float("inf"),
                                         **{m: float(es[i]) for i, m in enumerate(SUM_METRICS)}}
                points.append(point)
        if time_limit is not None and time.time() - t0 > time_limit:
            raise BsoptError(f"exact front: over the time limit of {time_limit:g} s")
    if len(global_params):  # merge the per-combination fronts
        keep = _nondominated(np.array([_vector(p["metrics"], objectives) for p in points], dtype=float)) \
            if points else []
        points = [points[i] for i in sorted(keep)]
    size = None
    try:
        size = space.get_total_combinations()
    except BsoptError:
        pass
    why = [m if len(combos_) == combos else f"{m} (global choices {', '.join(map(str, combos_))})"
           for m, combos_ in notes.items()]
    return ExactFront(points, layers, n_est, combos, time.time() - t0, size, why if not points else [])


class Shortfall(NamedTuple):
    metric: str  # the first resource short (LUT, BRAM_18K, URAM, DSP), or max_cycles
    message: str
    over: float  # that resource's lower bound / its limit (> 1)


def why_empty(tables, const, const_cycles, bound, cyc_bound, clock_ns: float | None = None) -> str | None:
    """Why no configuration can meet the bounds (see :func:`shortfall`), or None."""
    short = shortfall(tables, const, const_cycles, bound, cyc_bound, clock_ns)
    return short.message if short else None


def shortfall(tables, const, const_cycles, bound, cyc_bound, clock_ns: float | None = None) -> Shortfall | None:
    """Why no configuration can meet the bounds, from a lower bound: each resource's sum over layers
    of that layer's cheapest option (plus the fixed layers), and the slowest layer's fastest option.
    The message names the resource, the shortfall and the layers that dominate it; None when no
    single bound explains it (the bounds conflict only together)."""
    names = {"LUT": "LUTs", "BRAM_18K": "BRAM_18K", "URAM": "URAMs", "DSP": "DSPs"}
    short = []  # every resource that cannot fit, the first in full
    for i, m in enumerate(SUM_METRICS):
        if not np.isfinite(bound[i]) or not tables:
            continue
        least = np.array([float(t.sums[:, i].min()) for t in tables])
        need = float(const[i] + least.sum())
        if need <= bound[i] + 1e-9:  # the merge's tolerance
            continue
        top = np.argsort(-least)[:3]
        share = ", ".join(f"{tables[k].layer} {least[k]:,.0f}" for k in top if least[k] > 0)
        by_kind: dict[str, float] = {}
        for t, v in zip(tables, least, strict=True):
            by_kind[layer_type(t.layer)] = by_kind.get(layer_type(t.layer), 0.0) + float(v)
        kinds = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])[:3] if v > 0)
        help_ = {"BRAM_18K": "fewer weight bits, URAM for weights (ram_style: ultra) on a part with UltraRAM, a "
                 "larger part, or FINN's external weights (mem_mode: external) for the largest layers",
                 "URAM": "fewer weight bits, a larger part, or BRAM/LUTRAM for some layers",
                 "LUT": "fewer bits, less parallelism (smaller PE/SIMD choices), or a larger part",
                 "DSP": "LUT-based arithmetic (resType: lut), fewer bits, or a larger part"}[m]
        top_kind = max(by_kind, key=by_kind.get)
        if top_kind.startswith("Thresholding") and m in ("LUT", "BRAM_18K"):  # FINN's default: LUTRAM
            help_ = ("threshold memories in block RAM or URAM (Thresholding_rtl's depth_trigger_bram/"
                     "depth_trigger_uram, or ram_style for Thresholding_hls, in the folding section), fewer "
                     "activation bits (2^bits - 1 thresholds per channel), or a larger part")
        if short:
            short.append(f"{names[m]}: needs {need:,.0f} against {bound[i]:,.0f} (by kind: {kinds})")
            continue
        first = (m, need / bound[i] if bound[i] > 0 else float("inf"))
        short.append(f"nothing can fit: even with every layer at its cheapest option the design needs {need:,.0f} "
                     f"{names[m]} against a limit of {bound[i]:,.0f} (short by {need - bound[i]:,.0f}); by kind: "
                     f"{kinds}; largest layers: {share or 'the fixed layers'}. What would help: {help_}")
    if short:
        return Shortfall(first[0], short[0] + ("" if len(short) == 1 else ". Also short of " + "; ".join(short[1:])),
                         first[1])
    if np.isfinite(cyc_bound) and tables:
        fastest = [float(t.cycles.min()) for t in tables]
        k = int(np.argmax(fastest))
        slow, who = (fastest[k], f"the slowest layer ({tables[k].layer})") if fastest[k] >= const_cycles else \
            (float(const_cycles), "a layer without folding choices")
        if slow > cyc_bound:
            fps = (f" (at most {1e9 / clock_ns / slow:,.0f} inferences/s at {clock_ns:g} ns, against "
                   f"{1e9 / clock_ns / cyc_bound:,.4g})") if clock_ns else ""
            return Shortfall("max_cycles", f"nothing can meet the throughput: {who} needs {slow:,.0f} cycles at its most "
                                  f"parallel option, more than the {cyc_bound:,.4g} the constraint allows{fps}; a "
                                  "faster clock or a throughput target within reach would help", slow / cyc_bound)
    return None


def layer_type(group: str) -> str:
    """A table's layer type: ``MVAU_hls_3+…`` → ``MVAU_hls``."""
    return group.split("+")[0].rstrip("0123456789").rstrip("_")


def _vector(metrics: dict[str, float], objectives) -> list[float]:
    out = []
    for m, d in zip(objectives.metrics, objectives.directions, strict=True):
        v = metrics[m] if m in metrics else metrics[m[:-5]]  # *_util is monotone in its sum
        out.append(-v if d == "maximize" else v)
    return out


def _fronts_by_cycle(tables, const, const_cycles, dims, bound, bounds, cycle_obj, sum_idx, chain=False):
    """Yield (max_cycles, full sums, per-layer option indices) of the front points, one yield per cycle
    bound of ``bounds`` (:func:`_cycle_bounds`; a bound without new points yields empty arrays).
    ``chain``: the tables carry pairwise terms between neighbours (FINN's inserted converters and
    FIFOs); the partial fronts then keep, per point, the state of the last merged table."""
    sub_bound = (bound - const)[dims]
    prev = None  # the previous bound's front (objective sums), to drop points it dominates
    obj_cols = [dims.index(i) for i in sum_idx]
    empty = (np.zeros(0), np.zeros((0, len(SUM_METRICS))), np.zeros((0, len(tables)), dtype=int))
    for C in bounds:
        merged = _merge_tables(tables, C, dims, sub_bound, chain)
        if merged is None:
            yield empty
            continue
        sums, choice = merged  # chain: every summed metric; else the merge dimensions only
        # reduce to the objective dimensions (bounded-only dimensions were kept for exactness)
        objs = (sums[:, sum_idx] if chain else sums[:, obj_cols]) if obj_cols else np.zeros((len(sums), 0))
        keep = _nondominated(objs) if obj_cols else np.array([0])
        sums, choice, objs = sums[keep], choice[keep], objs[keep]
        actual, mask = _new_points(tables, const_cycles, choice, objs, C, prev, cycle_obj)
        if mask.any():
            if chain:
                full = sums[mask] + const
            else:
                full = np.tile(const, (int(mask.sum()), 1))
                for t, col in zip(tables, choice[mask].T, strict=True):
                    full += t.sums[col]
            yield actual[mask], full, choice[mask]
        else:
            yield empty
        prev = objs  # each bound's front contains the previous one's


def _merge_tables(tables, C, dims, sub_bound, chain):
    """The tables' options with cycles <= C merged one by one: (sums, choices), None when empty.

    A partial sum is dropped as soon as it exceeds a bound together with the cheapest options of the
    tables still to merge (a lower bound on what they add: no completion of it could fit). Without
    pairwise terms the tables are merged with identical ones side by side (a transformer's encoder
    blocks): k copies of a table add only their multisets of options to the front, not k-fold
    products interleaved with other layers' choices."""
    sels = []
    for t in tables:
        sel = np.nonzero(t.cycles <= C)[0]
        if len(sel) == 0:
            return None
        sels.append(sel)
    order = list(range(len(tables))) if chain else _identical_side_by_side(tables, sels, dims)
    least = np.array([tables[k].sums[sels[k]].min(axis=0) for k in order]).reshape(len(order), -1)
    rest = np.vstack([np.cumsum(least[::-1], axis=0)[::-1][1:], np.zeros((1, least.shape[1]))])
    if chain:
        sums, state = np.zeros((1, len(SUM_METRICS))), np.zeros(1, dtype=int)
    else:
        sums = np.zeros((1, len(dims)))
    steps = []  # per merge: (parent row in the previous partial front, option) of each row
    for step, k in enumerate(order):
        t, sel = tables[k], sels[k]
        room = sub_bound - rest[step][dims]
        if chain:
            sums, state, parent, option = _chain_merge(sums, state, t, sel, dims, room)
        else:
            red = sel[_nondominated(t.sums[sel][:, dims])]
            sums, parent, option = _merge(sums, t.sums[red][:, dims], room)
            option = red[option]
        if len(sums) == 0:
            return None
        steps.append((parent, option))
    choice = np.zeros((len(sums), len(tables)), dtype=int)  # back from the last merge to the first
    row = np.arange(len(sums))
    for k, (parent, option) in zip(reversed(order), reversed(steps), strict=True):
        choice[:, k] = option[row]
        row = parent[row]
    return sums, choice


def _identical_side_by_side(tables, sels, dims) -> list[int]:
    """The merge order: tables with one non-dominated option first (each only shifts the front and,
    early, tightens what the others may add), then tables whose options (below the bound) are
    identical next to each other, in order of first appearance."""
    runs: dict[bytes, list[int]] = {}
    single = []
    for k, (t, sel) in enumerate(zip(tables, sels, strict=True)):
        opts = t.sums[sel][:, dims]
        if np.all(opts.min(axis=0) == opts, axis=1).any():  # one option is best in every dimension
            single.append(k)
            continue
        key = t.cycles[sel].tobytes() + b"|" + t.sums[sel].tobytes()
        runs.setdefault(key, []).append(k)
    return single + [k for run in runs.values() for k in run]


def _cycle_bounds(tables, const_cycles, cyc_bound, cycle_obj) -> list[float]:
    """The max-cycle bounds to solve for: every distinct feasible cycle value (a cycle objective), or
    the one loosest bound."""
    if not cycle_obj:
        top = max([const_cycles] + [t.cycles.max() for t in tables])
        return [min(top, cyc_bound)]
    lowest = max([const_cycles] + [t.cycles.min() for t in tables])
    return [c for c in sorted({c for t in tables for c in t.cycles} | {const_cycles}) if lowest <= c <= cyc_bound]


def _new_points(tables, const_cycles, choice, objs, C, prev, cycle_obj):
    """(actual max cycles, mask) of a bound's front points that are on the whole front: max cycles
    exactly ``C`` and not weakly dominated by the previous bound's front."""
    actual = np.array([max([const_cycles] + [t.cycles[k] for t, k in zip(tables, ch, strict=True)])
                       for ch in choice])
    mask = actual == C if cycle_obj else np.ones(len(choice), dtype=bool)
    if prev is not None and len(prev) and objs.shape[1]:
        mask &= ~np.array([np.any(np.all(prev <= o, axis=1)) for o in objs])
    elif prev is not None and not objs.shape[1]:
        mask[:] = False  # only cycles matter: the smallest feasible bound is the front
    return actual, mask


def spread(points: list[dict[str, Any]], objectives, k: int | None) -> list[dict[str, Any]]:
    """At most ``k`` front points spread over the front: each objective's best first, then farthest
    -point selection in normalised objectives (log10 for cycles and throughput)."""
    if k is None or k >= len(points):
        return list(points)
    if k <= 0:
        return []
    X = np.array([_vector(p["metrics"], objectives) for p in points], dtype=float)
    for j, m in enumerate(objectives.metrics):
        if m in CYCLE_METRICS:
            X[:, j] = np.sign(X[:, j]) * np.log10(np.abs(X[:, j]) + 1e-12)
    lo, hi = X.min(axis=0), X.max(axis=0)
    X = (X - lo) / np.where(hi > lo, hi - lo, 1.0)
    chosen = []
    for j in range(X.shape[1]):
        i = int(np.argmin(X[:, j]))
        if i not in chosen:
            chosen.append(i)
    chosen = chosen[:k]
    dist = np.min(np.linalg.norm(X[:, None, :] - X[None, chosen, :], axis=2), axis=1)
    while len(chosen) < k:
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(X - X[i], axis=1))
    return [points[i] for i in sorted(chosen)]
