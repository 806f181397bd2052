"""FINN's rules the finalisation passes (:mod:`bsopt.lowering.passes`) apply: which backends each op
type has and when RTL is possible (SpecializeLayers), FINN's default implementation attributes, and
where DuplicateStreams layers go."""

from __future__ import annotations

from qonnx.core.datatype import DataType

from bsopt.errors import ModelError
from bsopt.hw.parts import dsp_block, is_versal
from bsopt.ir.layers import Layer

#: Generic op types FINN implements, per version, with their available backends.
BACKENDS = {
    "latest": {
        "MVAU": ("hls", "rtl"),
        "VVAU": ("hls", "rtl"),
        "Thresholding": ("hls", "rtl"),
        "ConvolutionInputGenerator": ("rtl",),
        "FMPadding": ("rtl",),
        "Pool": ("hls",),
        "LabelSelect": ("hls",),
        "DuplicateStreams": ("hls",),
        "GlobalAccPool": ("hls",),
        "ElementwiseAdd": ("hls", "rtl"),
        "ElementwiseSub": ("hls", "rtl"),
        "ElementwiseMul": ("hls", "rtl"),
        "LayerNorm": ("hls", "rtl"),
        "HWSoftmax": ("hls",),
        "OuterShuffle": ("hls",),
        "InnerShuffle": ("rtl",),
        "StreamingDataWidthConverter": ("hls", "rtl"),
        "StreamingFIFO": ("rtl",),
    },
    "0.10.1": {
        "MVAU": ("hls", "rtl"),
        "VVAU": ("hls", "rtl"),
        "Thresholding": ("hls", "rtl"),
        "ConvolutionInputGenerator": ("hls", "rtl"),
        "FMPadding": ("hls", "rtl"),
        "Pool": ("hls",),
        "StreamingMaxPool": ("hls",),
        "LabelSelect": ("hls",),
        "DuplicateStreams": ("hls",),
        "GlobalAccPool": ("hls",),
        "AddStreams": ("hls",),
        "ChannelwiseOp": ("hls",),
        "StreamingDataWidthConverter": ("hls", "rtl"),
        "StreamingFIFO": ("rtl",),
    },
}

#: FINN's default values of the implementation attributes that bsopt's DesignSpace varies.
IMPL_DEFAULTS = {
    "MVAU": {"mem_mode": "internal_decoupled", "ram_style": "auto", "ram_style_thresholds": "auto",
             "runtime_writeable_weights": 0},
    "VVAU": {"mem_mode": "internal_decoupled", "ram_style": "auto", "runtime_writeable_weights": 0},
    "Thresholding": {"runtime_writeable_weights": 0},
    "ConvolutionInputGenerator": {"parallel_window": 0},
}


def _mvu_rtl_possible(layer: Layer, part: str, legacy: bool) -> bool:
    a = layer.attrs
    if a["noActivation"] == 0 or a["binaryXnorMode"] == 1:
        return False
    wdt, idt = DataType[a["weightDataType"]], DataType[a["inputDataType"]]
    if not wdt.signed():
        return False
    # dynamic weights may take any value of their type: never narrow
    narrow = layer.weights is not None and float(layer.weights.min()) != wdt.min()
    if not narrow and dsp_block(part) == "DSP48E1":
        return False
    lo_in = 1 if legacy else 2
    inp_ok = (lo_in <= idt.bitwidth() <= 8) or (idt.bitwidth() == 9 and idt.signed())
    w_ok = (lo_in <= wdt.bitwidth() <= 8)
    return inp_ok and w_ok


def _vvu_rtl_possible(layer: Layer, part: str) -> bool:
    a = layer.attrs
    if not a["noActivation"] or not is_versal(part):
        return False
    idt, wdt = DataType[a["inputDataType"]], DataType[a["weightDataType"]]
    in_ok = idt.bitwidth() <= 8 or (idt.bitwidth() == 9 and idt.min() < 0)
    return in_ok and wdt.bitwidth() <= 8 and wdt.min() < 0


def rtl_possible(layer: Layer, version: str, part: str) -> bool:
    """Whether FINN's SpecializeLayers can give this layer its RTL backend."""
    table = BACKENDS["0.10.1" if version == "0.10.1" else "latest"]
    kind = layer.kind
    if kind == "MVAU":
        return _mvu_rtl_possible(layer, part, version == "0.10.1")
    if kind == "VVAU":
        return _vvu_rtl_possible(layer, part)
    if kind.startswith("Elementwise"):  # Add/Sub/Mul of a float stream and a float constant on Versal
        a = layer.attrs
        return (is_versal(part) and a.get("lhs_dtype") == a.get("rhs_dtype") == a.get("out_dtype") == "FLOAT32"
                and a.get("lhs_style") == "input" and a.get("rhs_style") == "const")
    if kind == "LayerNorm":  # float input on Versal
        return is_versal(part) and layer.attrs["inputDataType"] == "FLOAT32"
    return "rtl" in table.get(kind, ())


def choose_backend(layer: Layer, version: str, part: str, preferred: str = "") -> str:
    """FINN's SpecializeLayers decision for one layer (before bit-width minimisation)."""
    table = BACKENDS["0.10.1" if version == "0.10.1" else "latest"]
    kind = layer.kind
    if kind not in table:
        raise ModelError(f"FINN {version} has no hardware implementation of {kind} (layer {layer.name})")
    options = table[kind]
    rtl_ok = rtl_possible(layer, version, part)
    if preferred == "hls":
        return "hls" if "hls" in options else "rtl"
    if preferred == "rtl":
        return "rtl" if rtl_ok else "hls"
    if kind.startswith("Elementwise") or kind == "LayerNorm":
        return "rtl" if rtl_ok else "hls"
    if kind in ("MVAU", "VVAU"):
        a = layer.attrs
        fits = DataType[a["inputDataType"]].bitwidth() >= 4 and DataType[a["weightDataType"]].bitwidth() >= 4
        return "rtl" if fits and rtl_ok else "hls"
    return "rtl" if "rtl" in options else "hls"


def insert_duplicate_streams(layers: list[Layer], inputs, outputs, version: str) -> list[Layer]:
    """FINN (dev) feeds a tensor read by several layers through a DuplicateStreams layer.

    In bsopt's IR the DuplicateStreams layer has one output tensor that all former readers consume
    (each gets its own copy of the stream in hardware); ``NumOutputStreams`` counts them.
    """
    readers: dict[str, list[Layer]] = {}
    for layer in layers:
        for t in layer.inputs:
            readers.setdefault(t, []).append(layer)
    result: list[Layer] = []

    def fan_out(tensor: str, shape, dtype: str) -> None:
        users = readers.get(tensor, [])
        n = len(users) + (1 if tensor in outputs else 0)
        if n < 2:
            return
        attrs = {"NumChannels": shape[-1], "PE": 1, "inputDataType": dtype, "numInputVectors": list(shape[:-1]),
                 "NumOutputStreams": n}
        if version != "0.10.1":
            attrs.update({"cpp_interface": "hls_vector", "hls_style": "freerunning"})
        index = sum(1 for x in result if x.kind == "DuplicateStreams")
        dup = Layer(f"DuplicateStreams_{index}", "DuplicateStreams", attrs, [tuple(shape)], tuple(shape),
                    [tensor], f"{tensor}_dup", [])
        for user in users:
            user.inputs = [dup.output if t == tensor else t for t in user.inputs]
        if tensor in outputs:
            outputs[outputs.index(tensor)] = dup.output
        result.append(dup)

    for t in inputs:
        if readers.get(t):
            first = readers[t][0]
            fan_out(t, first.in_shapes[first.inputs.index(t)], first.attrs.get("inputDataType", ""))
    for layer in layers:
        result.append(layer)
        fan_out(layer.output, layer.out_shape, layer.attrs.get("outputDataType", layer.attrs.get("inputDataType", "")))
    return result
