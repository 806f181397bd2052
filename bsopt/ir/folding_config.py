"""A FINN folding config (``{"Defaults": {attr: value | [value, [op types]]}, "<layer>": {attr: value}}``)
checked at the edge, before any layer reads it: its shape, and the types of the attributes whose type
FINN fixes. What a value means for one layer (a PE that does not divide its channels …) is the cost
models' check, as in FINN.
"""

from __future__ import annotations

import math
from typing import Any

from bsopt.errors import InputError

#: attributes that are whole numbers >= 1
POSITIVE = {"PE", "SIMD"}
#: 0/1 switches
FLAGS = {"runtime_writeable_weights", "parallel_window", "pumpedCompute", "pumpedMemory"}
#: whole numbers >= 0
COUNTS = {"depth_trigger_uram", "depth_trigger_bram", "depth"}
#: strings
TEXT = {"ram_style", "ram_style_thresholds", "resType", "mem_mode", "preferred_impl_style", "impl_style"}
#: lists of whole numbers >= 0
DEPTH_LISTS = {"inFIFODepths", "outFIFODepths"}

#: every node attribute name FINN (dev 73ba5ed) and its qonnx define (``get_nodeattr_types`` of their
#: custom ops): FINN's ApplyConfig sets a folding entry's attributes with ``set_nodeattr``, which raises
#: for a name the node does not define — a name outside this set fails on every node
FINN_NODE_ATTRS = frozenset({
    "AccumBits", "ActVal", "BatchSize", "Channels", "ChannelsPerStream", "ConvKernelDim", "CropEast", "CropNorth",
    "CropSouth", "CropWest", "DataType", "Dilation", "Dim", "Direction", "DynIters", "ElemWidth", "EmbeddingDim",
    "EmbeddingType", "Function", "HI", "HO", "IFMChannels", "IFMDim", "ImgDim", "InputDataType", "InputShape",
    "InputType", "K", "Kernel", "KernelSize", "Labels", "M", "MH", "MW", "NumChannels", "NumEmbeddings",
    "NumIters", "NumOutputStreams", "OFMDim", "OutImgDims", "OutputDataType", "PE", "Padding", "Protocol", "SIMD",
    "Size", "StreamWidth", "Stride", "WI", "WO", "accDataType", "backend", "batchSize", "binaryXnorMode", "body",
    "burstMode", "ceil_mode", "code_gen_dir_cppsim", "code_gen_dir_ipgen", "cpp_interface", "cycles_estimate",
    "cycles_rtlsim", "dataType", "data_layout", "data_type", "deep_pipeline", "depth", "depth_monitor",
    "depth_trigger_bram", "depth_trigger_uram", "depthwise", "device_id", "dilations", "direction",
    "dynamic_input", "dynamic_mode", "epsilon", "exec_mode", "executable_path", "export_debug_name",
    "ext_mem_width", "folded_shape", "gen_top_module", "group", "has_inf", "has_nan", "has_subnormal", "hls_style",
    "ibits", "ifm_dim", "impl_style", "inFIFODepths", "inWidth", "in_shape", "inputDataType", "inputDataTypes",
    "input_data_type", "input_shape", "instance_name", "intfName", "intfWidth", "io_chrc_in", "io_chrc_out",
    "io_chrc_pads_in", "io_chrc_pads_out", "io_chrc_period", "ip_path", "ip_vlnv", "ipgen_path", "is1D",
    "items_per_word", "iteration", "iteration_context_path", "kernel", "kernel_shape", "kernel_size", "lhs_dtype",
    "lhs_shape", "lhs_style", "loop_coeffs", "mem_mode", "mem_port", "mlo_max_iter", "model", "momentum", "narrow",
    "noActivation", "normal_shape", "numInputVectors", "numSteps", "obits", "original_node_name", "original_simd",
    "outFIFODepths", "outWidth", "out_bias", "out_dtype", "out_scale", "out_shape", "outputDataType",
    "output_hook", "pad_amount", "pad_value", "pads", "parallel_window", "partition_id", "perm",
    "preferred_impl_style", "pumpedCompute", "pumpedMemory", "ram_style", "ram_style_thresholds", "resType",
    "res_estimate", "res_hls", "res_synth", "return_full_exec_context", "rhs_dtype", "rhs_shape", "rhs_style",
    "rounding_mode", "rtlsim_so", "rtlsim_trace", "runtime_writeable_weights", "saturation", "shape", "signed",
    "slr", "streamWidth", "stride", "strides", "transpose_in_shape", "transpose_out_shape", "uniform_thres",
    "weightDataType", "words_per_frame",
})

_SHAPE_HINT = 'a FINN folding config is {"Defaults": {}, "<layer name>": {"PE": 4, "SIMD": 8, …}, …}'


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v))


def _check_value(attr: str, value: Any, where: str, entry: str) -> None:
    def bad(expected: str) -> InputError:
        return InputError(f"{entry}: {attr} must be {expected}, got {value!r}"[:300], where=where,
                          hint=_SHAPE_HINT)

    if attr in POSITIVE and not (_is_int(value) and value >= 1):
        raise bad("a whole number >= 1")
    if attr in FLAGS and not (_is_int(value) and value in (0, 1)):
        raise bad("0 or 1")
    if attr in COUNTS and not (_is_int(value) and value >= 0):
        raise bad("a whole number >= 0")
    if attr in TEXT and not isinstance(value, str):
        raise bad("a string")
    if attr in DEPTH_LISTS:
        if not (isinstance(value, list) and all(_is_int(v) and v >= 0 for v in value)):
            raise bad("a list of whole numbers >= 0")
        return
    if not (_scalar(value) or (isinstance(value, list) and all(_scalar(v) for v in value))):
        raise bad("a number, a string or a list of them")


def check_folding_config(config: Any, where: str = "folding config") -> dict[str, Any]:
    """``config`` if it has a folding config's shape and typed attributes; else one InputError naming
    the entry, the attribute and what it must be."""
    if not isinstance(config, dict):
        raise InputError(f"expected a JSON object of layers, got {type(config).__name__}", where=where,
                         hint=_SHAPE_HINT)
    for name, entry in config.items():
        if not isinstance(entry, dict):
            raise InputError(f"entry '{name}' must be an object of attributes, got {entry!r}"[:300], where=where,
                             hint=_SHAPE_HINT)
        for attr, value in entry.items():
            if name != "Defaults" and attr not in FINN_NODE_ATTRS:
                from bsopt.blueprint.diagnostics import suggest

                raise InputError(f"{name}: '{attr}' is not an attribute of any FINN node (FINN's ApplyConfig "
                                 "rejects it)"[:300], where=where,
                                 hint=suggest(str(attr), sorted(FINN_NODE_ATTRS)) or _SHAPE_HINT)
            if name == "Defaults" and isinstance(value, list) and len(value) == 2 and isinstance(value[1], list):
                if not all(isinstance(k, str) for k in value[1]):
                    raise InputError(f"Defaults: {attr}'s op types must be names, got {value[1]!r}"[:300],
                                     where=where, hint='e.g. "Defaults": {"ram_style": ["block", ["MVAU_hls"]]}')
                value = value[0]
            _check_value(attr, value, where, name)
    return config
