"""Which folding and implementation values FINN accepts on a node, read from the cost models' rules.

FINN's limits live in one place: each cost model's :meth:`~bsopt.estimate.base.NodeModel.issues`
(its estimate-time checks and the code-generation limits: divisibility, AP_INT_MAX_W, MVAU_hls'
``SIMD >= MW/1024``, ``parallel_window`` needing ``SIMD = IFMChannels`` …). Every issue names the
choice attributes it depends on (:class:`~bsopt.estimate.base.Issue`). This module derives from them

* :func:`candidates`: the values a design space may offer for an attribute (divisors of the folded
  dimension for PE/SIMD, FINN's declared values for implementation attributes);
* :func:`legal_values`: those FINN accepts on this node for *some* choice of the node's other
  attributes (a value every completion makes FINN reject is never offered);
* :func:`requirements`: for a non-default value, which values of another varied attribute it needs
  (``parallel_window=1`` needs ``SIMD = IFMChannels``), each judged with the node's other attributes
  at their values in ``a``; the design space marks such values and, where a configuration pairs one
  with values FINN rejects it with (:func:`check` on the whole entry), falls back to FINN's default.

Rules that couple two folding factors (an MVAU_hls weight stream ``PE * SIMD * bits``, at most the
ap_int headers' 32768 bits; a VVAU_hls input stream ``PE * SIMD * bits <= 8191``) stay
with the estimates: ``estimate_node(strict=True)`` rejects such configurations, the exact solver
drops them from its option tables, and the estimate backend marks them infeasible (its
``codegen_issues`` metric, the studies' "FINN code generation" constraint).
"""

from __future__ import annotations

from typing import Any

from bsopt.estimate.base import REGISTRY, Issue, NodeModel, normalize_version


def divisors(n: int) -> list[int]:
    """Positive divisors of ``n``, ascending."""
    small, large = [], []
    i = 1
    while i * i <= n:
        if n % i == 0:
            small.append(i)
            if i * i != n:
                large.append(n // i)
        i += 1
    return small + large[::-1]


def model_for(op_type: str, version: str = "latest") -> NodeModel | None:
    """The cost model of an op type in a FINN version (None when bsopt has none)."""
    from bsopt.estimate import nodes  # noqa: F401  (registers the models)

    model = REGISTRY.get(op_type)
    if model is None or normalize_version(version) not in model.versions:
        return None
    return model


def candidates(op_type: str, a: dict[str, Any], version: str = "latest") -> dict[str, tuple[Any, ...]]:
    """Every attribute a design space may vary on this node, with the values to consider: divisors
    of the folded dimension for each folding factor, FINN's declared values (in FINN's order) for
    each implementation attribute. Empty for op types without a cost model."""
    model = model_for(op_type, version)
    if model is None:
        return {}
    full = {**model.defaults(normalize_version(version)), **a}
    out: dict[str, tuple[Any, ...]] = {}
    for attr, dim in model.folds.items():
        try:
            n = int(dim(full))
        except (KeyError, TypeError, ValueError, IndexError):
            continue
        if n >= 1:
            out[attr] = tuple(divisors(n))
    out.update(model.choices(full, normalize_version(version)))
    return out


def _blocking(issues: list[Issue], attr: str) -> list[Issue]:
    return [i for i in issues if attr in i.attrs]


def legal_values(op_type: str, attr: str, a: dict[str, Any], part: str, version: str = "latest", *,
                 values: tuple[Any, ...] | list[Any] | None = None,
                 others: dict[str, tuple[Any, ...] | list[Any]] | None = None) -> list[Any]:
    """The values of ``attr`` (default: all :func:`candidates`) FINN accepts on a node with attributes
    ``a`` for some choice of the node's other varied attributes.

    ``others``: the values each other varied attribute may take (default: all their candidates);
    attributes not listed keep their value in ``a``. A value is kept when FINN accepts it as is, or
    when changing one other attribute to one of its values makes FINN accept it.
    """
    version = normalize_version(version)
    model = model_for(op_type, version)
    if model is None:
        return list(values or ())
    base = {**model.defaults(version), **a}
    if values is None or others is None:
        cands = candidates(op_type, a, version)
        values = cands.get(attr, ()) if values is None else values
        others = cands if others is None else others
    others = {k: v for k, v in others.items() if k != attr and len(v) > 1}
    out = []
    for v in values:
        trial = {**base, attr: v}
        found = _blocking(model.issues(trial, part, version), attr)
        if not found or _witness(model, trial, attr, found, others, part, version):
            out.append(v)
    return out


def _witness(model: NodeModel, trial: dict[str, Any], attr: str, found: list[Issue],
             others: dict[str, Any], part: str, version: str) -> bool:
    """Whether changing one other varied attribute named by the issues makes FINN accept ``attr``'s value."""
    names = sorted({n for i in found for n in i.attrs} & set(others))
    for name in names:
        for w in others[name]:
            if w == trial.get(name):
                continue
            if not _blocking(model.issues({**trial, name: w}, part, version), attr):
                return True
    return False


def requirements(op_type: str, attr: str, value: Any, a: dict[str, Any], part: str, version: str,
                 others: dict[str, tuple[Any, ...] | list[Any]]) -> dict[str, tuple[Any, ...]]:
    """For ``attr = value``: the other varied attributes that restrict it, each with the values FINN
    accepts together with it (two-attribute rules; the node's remaining attributes at ``a``'s values).
    ``{}`` when the value goes with every listed value of every other attribute."""
    version = normalize_version(version)
    model = model_for(op_type, version)
    if model is None:
        return {}
    base = {**model.defaults(version), **a, attr: value}
    out: dict[str, tuple[Any, ...]] = {}
    for name, options in others.items():
        if name == attr or len(options) < 2:
            continue
        ok = tuple(w for w in options
                   if not [i for i in model.issues({**base, name: w}, part, version)
                           if attr in i.attrs and name in i.attrs])
        if len(ok) < len(options):
            out[name] = ok
    return out


def check(op_type: str, a: dict[str, Any], part: str, version: str = "latest") -> list[Issue]:
    """Every reason FINN rejects the node configuration ``a`` (empty: FINN accepts it)."""
    version = normalize_version(version)
    model = model_for(op_type, version)
    if model is None:
        return []
    return model.issues({**model.defaults(version), **a}, part, version)
