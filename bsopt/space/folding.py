"""Which folding and implementation values a design space offers for each dataflow layer.

The rules are FINN's, read from the cost models (:mod:`bsopt.estimate.legality`): a value is offered
when FINN accepts it on that layer — in its estimates and in its code generation — for some choice
of the layer's other attributes. This module maps a lowered layer (kind, backend, attributes) to
those rules; ``max_stream_width`` adds bsopt's own optional bound ``SIMD x weight bits`` on MVAUs
(like FINN's ``mvau_wwidth_max`` for SetFolding).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bsopt.estimate import legality
from bsopt.estimate.legality import divisors
from bsopt.ir.layers import Layer

__all__ = ["divisors", "layer_attrs", "attr_backends", "legal_fold_values", "impl_choices", "backends_of",
           "is_fold", "op_type_of"]

#: layer kinds whose backend (HLS or RTL) a design space may choose per layer
BACKEND_KINDS = ("MVAU", "VVAU", "Thresholding", "ConvolutionInputGenerator", "FMPadding")


def backends_of(kind: str, version: str = "latest") -> tuple[str, ...]:
    """FINN's backends of a layer kind (SpecializeLayers' table)."""
    from bsopt.lowering.finalize import BACKENDS

    return BACKENDS["0.10.1" if version == "0.10.1" else "latest"].get(kind, ())


def op_type_of(layer: Layer, backend: str | None) -> str:
    """The layer's FINN op type with ``backend`` (its own where None)."""
    return f"{layer.kind}_{backend}" if backend else layer.op_type


@lru_cache(maxsize=4096)
def _candidates_cached(op_type: str, key: tuple, version: str) -> dict[str, tuple[Any, ...]]:
    return legality.candidates(op_type, dict(key), version)


def _candidates(layer: Layer, backend: str | None, version: str) -> dict[str, tuple[Any, ...]]:
    try:
        key = tuple(sorted((k, _hashable(v)) for k, v in layer.attrs.items()))
    except TypeError:
        return legality.candidates(op_type_of(layer, backend), layer.attrs, version)
    return _candidates_cached(op_type_of(layer, backend), key, version)


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        raise TypeError
    return v


def is_fold(layer: Layer, attr: str, version: str = "latest") -> bool:
    """Whether ``attr`` is a folding factor (PE/SIMD) of the layer, rather than an implementation choice."""
    for backend in backends_of(layer.kind, version) or (layer.backend,):
        model = legality.model_for(op_type_of(layer, backend), version)
        if model is not None and attr in model.folds:
            return True
    return False


def attr_backends(layer: Layer, attr: str, version: str = "latest") -> tuple[str, ...]:
    """The backends of the layer whose FINN node has the attribute (e.g. resType: hls only)."""
    return tuple(b for b in backends_of(layer.kind, version)
                 if attr in _candidates(layer, b, version))


def layer_attrs(layer: Layer, version: str = "latest") -> list[str]:
    """Every attribute of a layer the design space may vary, in a stable order: the backend, the
    folding factors, then the implementation attributes of any of its backends."""
    out = ["backend"] if layer.kind in BACKEND_KINDS else []
    backends = backends_of(layer.kind, version) or (layer.backend,)
    seen: dict[str, None] = {}
    folds: dict[str, None] = {}
    for b in [layer.backend] + [b for b in backends if b != layer.backend]:
        model = legality.model_for(op_type_of(layer, b), version)
        if model is None:
            continue
        for attr in _candidates(layer, b, version):
            (folds if attr in model.folds else seen)[attr] = None
    return out + list(folds) + list(seen)


def legal_fold_values(layer: Layer, attr: str, max_stream_width: int | None = None,
                      backend: str | None = None, *, part: str = "", version: str = "latest",
                      others: dict[str, Any] | None = None, values: list[int] | None = None) -> list[int]:
    """Legal PE/SIMD values of a layer (of ``values``, default: every divisor), ascending (see
    :func:`bsopt.estimate.legality.legal_values`)."""
    backend = backend or layer.backend
    op_type = op_type_of(layer, backend)
    cands = _candidates(layer, backend, version).get(attr)
    if not cands:
        return []
    if values is not None:
        cands = tuple(v for v in values if v in cands)
    values = legality.legal_values(op_type, attr, layer.attrs, part, version, values=cands, others=others)
    if layer.kind == "MVAU" and attr == "SIMD" and max_stream_width is not None:
        from qonnx.core.datatype import DataType

        wbits = DataType[layer.attrs["weightDataType"]].bitwidth()
        values = [v for v in values if v * wbits <= max_stream_width] or values[:1]
    return values


def impl_choices(layer: Layer, attr: str, part: str = "", backend: str | None = None, *,
                 version: str = "latest", others: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The values of an implementation attribute FINN accepts on the layer, in FINN's declared order
    ('ultra' only on parts with UltraRAM)."""
    backend = backend or layer.backend
    if attr not in _candidates(layer, backend, version):
        backend = next(iter(attr_backends(layer, attr, version)), backend)
    cands = _candidates(layer, backend, version).get(attr)
    if not cands:
        return ()
    return tuple(legality.legal_values(op_type_of(layer, backend), attr, layer.attrs, part, version,
                                       values=cands, others=others))
