"""Which folding and implementation values are legal for each dataflow layer.

Legal means FINN accepts the value not only in its estimates but also when it generates code:
PE and SIMD divide the dimension they fold, HLS stream widths stay within ``AP_INT_MAX_W``
(8191 bits), and MVAU_hls keeps ``MW / SIMD <= 1024`` (FINN's code generation asserts
``SIMD >= MW / 1024``). ``max_stream_width`` optionally bounds ``SIMD x weight bits`` like FINN's
``mvau_wwidth_max``.
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.ir.layers import Layer

AP_INT_MAX_W = 8191

#: folding attribute -> function(layer) giving the dimension it must divide
FOLD_DIMS: dict[str, dict[str, Any]] = {
    "MVAU": {"PE": lambda a: a["MH"], "SIMD": lambda a: a["MW"]},
    "VVAU": {"PE": lambda a: a["Channels"], "SIMD": lambda a: math.prod(a["Kernel"])},
    "Thresholding": {"PE": lambda a: a["NumChannels"]},
    "ConvolutionInputGenerator": {"SIMD": lambda a: a["IFMChannels"]},
    "FMPadding": {"SIMD": lambda a: a["NumChannels"]},
    "Pool": {"PE": lambda a: a["Channels"]},
    "StreamingMaxPool": {"PE": lambda a: a["NumChannels"]},
    "LabelSelect": {"PE": lambda a: a["Labels"]},
    "DuplicateStreams": {"PE": lambda a: a["NumChannels"]},
    "GlobalAccPool": {"PE": lambda a: a["NumChannels"]},
    "AddStreams": {"PE": lambda a: a["NumChannels"]},
    "ElementwiseAdd": {"PE": lambda a: _elementwise_dim(a)},
    "ElementwiseSub": {"PE": lambda a: _elementwise_dim(a)},
    "ElementwiseMul": {"PE": lambda a: _elementwise_dim(a)},
    "LayerNorm": {"SIMD": lambda a: a["ifm_dim"][-1]},
    "HWSoftmax": {"SIMD": lambda a: a["ifm_dim"][-1]},
    # the decomposition allows SIMD dividing the last axis; OuterShuffle folds its input's last axis,
    # InnerShuffle's RTL also needs SIMD to divide I (the second-to-last axis)
    "OuterShuffle": {"SIMD": lambda a: math.gcd(a["in_shape"][-1], a["transpose_in_shape"][-1])},
    "InnerShuffle": {"SIMD": lambda a: math.gcd(a["in_shape"][-1], a["in_shape"][-2])},
}


def _elementwise_dim(a: dict[str, Any]) -> int:
    """PE divides the output's last axis and every operand's last axis that does not broadcast."""
    dim = a["out_shape"][-1]
    for side in ("lhs_shape", "rhs_shape"):
        if a[side][-1] != 1:
            dim = math.gcd(dim, a[side][-1])
    return dim

#: a dynamic-weight MVAU (dynamic_input=1) streams its weights through FINN's dynamic loader, which
#: exists only for mem_mode internal_decoupled; FINN's weight-memory choices do not apply to it
DYNAMIC_MVAU_FIXED = ("mem_mode", "runtime_writeable_weights", "ram_style")

#: implementation attributes with their allowed values, per layer kind (and backend where it matters)
IMPL_CHOICES: dict[str, dict[str, tuple[Any, ...]]] = {
    "MVAU": {
        "ram_style": ("auto", "block", "distributed", "ultra"),
        "ram_style_thresholds": ("auto", "block", "distributed"),
        "resType": ("auto", "lut", "dsp"),
        "mem_mode": ("internal_embedded", "internal_decoupled", "external"),
        "runtime_writeable_weights": (0, 1),
    },
    "VVAU": {
        "ram_style": ("auto", "block", "distributed", "ultra"),
        "resType": ("auto", "lut", "dsp"),
        "mem_mode": ("internal_embedded", "internal_decoupled", "external"),
        "runtime_writeable_weights": (0, 1),
    },
    "Thresholding": {"runtime_writeable_weights": (0, 1)},
    "ConvolutionInputGenerator": {"ram_style": ("auto", "block", "distributed", "ultra")},
}

#: attributes that only exist on one backend
BACKEND_ONLY = {("MVAU", "resType"): "hls", ("VVAU", "resType"): "hls",
                ("MVAU", "ram_style_thresholds"): "hls"}


def divisors(n: int) -> list[int]:
    small, large = [], []
    i = 1
    while i * i <= n:
        if n % i == 0:
            small.append(i)
            if i * i != n:
                large.append(n // i)
        i += 1
    return small + large[::-1]


def _bits(name: str) -> int:
    return DataType[name].bitwidth()


def legal_fold_values(layer: Layer, attr: str, max_stream_width: int | None = None,
                      backend: str | None = None) -> list[int]:
    """Legal PE/SIMD values of a layer, ascending."""
    kind = layer.kind
    dims = FOLD_DIMS.get(kind, {})
    if attr not in dims:
        return []
    a = layer.attrs
    values = divisors(int(dims[attr](a)))
    backend = backend or layer.backend
    if kind == "MVAU":
        ibits, wbits = _bits(a["inputDataType"]), _bits(a["weightDataType"])
        if attr == "SIMD":
            if backend == "hls":
                values = [v for v in values if v * 1024 >= a["MW"]]  # SIMD >= MW/1024
                values = [v for v in values if v * ibits <= AP_INT_MAX_W]
            if max_stream_width is not None:
                values = [v for v in values if v * wbits <= max_stream_width] or values[:1]
        if attr == "PE" and backend == "hls":
            obits = _bits(a["outputDataType"])
            values = [v for v in values if v * obits <= AP_INT_MAX_W]
    if kind == "VVAU" and attr == "PE" and backend == "hls":
        ibits = _bits(a["inputDataType"])
        values = [v for v in values if v * ibits <= AP_INT_MAX_W]
    if kind == "Thresholding" and attr == "PE" and backend == "hls":
        ibits = _bits(a["inputDataType"])
        values = [v for v in values if v * ibits <= AP_INT_MAX_W]
    return values


def impl_choices(layer: Layer, attr: str, part_resources: dict[str, int] | None) -> tuple[Any, ...]:
    """Allowed values of an implementation attribute ('ultra' only on parts with UltraRAM)."""
    if layer.kind == "MVAU" and layer.attrs.get("dynamic_input") and attr in DYNAMIC_MVAU_FIXED:
        return ()
    allowed = IMPL_CHOICES.get(layer.kind, {}).get(attr, ())
    if part_resources is not None and part_resources.get("URAM", 0) == 0:
        allowed = tuple(v for v in allowed if v != "ultra")
    return allowed


def layer_attrs(layer: Layer) -> list[str]:
    """Every attribute of a layer the design space may vary, in a stable order."""
    out = ["backend"] if layer.kind in ("MVAU", "VVAU", "Thresholding", "ConvolutionInputGenerator",
                                        "FMPadding") else []
    out += list(FOLD_DIMS.get(layer.kind, {}))
    impl = list(IMPL_CHOICES.get(layer.kind, {}))
    if layer.kind == "MVAU" and layer.attrs.get("dynamic_input"):
        impl = [k for k in impl if k not in DYNAMIC_MVAU_FIXED]
    out += impl
    return out
