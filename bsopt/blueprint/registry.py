"""Known kernels, their backends, and known build steps / transforms.

Kernel names are FINN's generic hardware op types (``MVAU``, ``Thresholding`` …, optionally
qualified ``finn:MVAU``), Brainsmith's kernels, and ONNX-level names used in Brainsmith DSE v3
blueprints (``MatMul``, ``Gemm``, ``LayerNorm`` …). Backends are written as the bare style
(``hls``, ``rtl``) or as FINN's specialised op type (``MVAU_hls``); both are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelInfo:
    name: str
    backends: tuple[str, ...]
    #: dataflow-layer kinds (bsopt IR) or ONNX op types this kernel implements
    implements: tuple[str, ...]
    source: str  # "finn" | "brainsmith" | "onnx"


def _k(name, backends, implements, source):
    return KernelInfo(name, tuple(backends), tuple(implements), source)


KERNELS: dict[str, KernelInfo] = {
    k.name: k
    for k in (
        # FINN hardware layers (FINN dev and 0.10.1)
        _k("MVAU", ("hls", "rtl"), ("MVAU", "MatMul", "Gemm", "Conv"), "finn"),
        _k("VVAU", ("hls", "rtl"), ("VVAU", "Conv"), "finn"),
        _k("Thresholding", ("hls", "rtl"), ("Thresholding", "MVAU", "VVAU", "Quant", "BipolarQuant", "MultiThreshold"), "finn"),
        _k("ConvolutionInputGenerator", ("hls", "rtl"), ("ConvolutionInputGenerator", "Conv", "MaxPool"), "finn"),
        _k("FMPadding", ("hls", "rtl"), ("FMPadding", "Pad"), "finn"),
        _k("FMPadding_Pixel", ("hls",), ("FMPadding_Pixel",), "finn"),
        _k("Pool", ("hls",), ("Pool", "MaxPool", "AveragePool"), "finn"),
        _k("StreamingMaxPool", ("hls",), ("StreamingMaxPool", "MaxPool"), "finn"),
        _k("LabelSelect", ("hls",), ("LabelSelect", "TopK", "ArgMax"), "finn"),
        _k("AddStreams", ("hls",), ("AddStreams", "ElementwiseAdd", "Add"), "finn"),
        _k("ChannelwiseOp", ("hls",), ("ChannelwiseOp",), "finn"),
        _k("DuplicateStreams", ("hls",), ("DuplicateStreams",), "finn"),
        _k("GlobalAccPool", ("hls",), ("GlobalAccPool", "GlobalAveragePool"), "finn"),
        _k("StreamingDataWidthConverter", ("hls", "rtl"), ("StreamingDataWidthConverter",), "finn"),
        _k("StreamingFIFO", ("rtl",), ("StreamingFIFO",), "finn"),
        _k("StreamingConcat", ("hls",), ("StreamingConcat",), "finn"),
        _k("StreamingSplit", ("hls",), ("StreamingSplit",), "finn"),
        _k("StreamingEltwise", ("hls",), ("StreamingEltwise",), "finn"),
        _k("DownSampler", ("hls",), ("DownSampler",), "finn"),
        _k("UpsampleNearestNeighbour", ("hls",), ("UpsampleNearestNeighbour",), "finn"),
        _k("Lookup", ("hls",), ("Lookup",), "finn"),
        _k("ElementwiseAdd", ("hls", "rtl"), ("ElementwiseAdd", "Add"), "finn"),
        _k("ElementwiseSub", ("hls", "rtl"), ("ElementwiseSub",), "finn"),
        _k("ElementwiseMul", ("hls", "rtl"), ("ElementwiseMul",), "finn"),
        _k("ElementwiseBinaryOp", ("hls", "rtl"), ("ElementwiseAdd", "ElementwiseSub", "ElementwiseMul", "Add",
                                                  "Sub", "Mul", "Div"), "brainsmith"),
        _k("HWSoftmax", ("hls",), ("HWSoftmax", "Softmax"), "finn"),
        _k("LayerNorm", ("hls", "rtl"), ("LayerNorm", "LayerNormalization"), "finn"),
        # FINN's Shuffle is split by step_transpose_decomposition into OuterShuffle_hls + InnerShuffle_rtl
        _k("Shuffle", ("hls", "rtl"), ("Shuffle", "Transpose", "OuterShuffle", "InnerShuffle"), "finn"),
        _k("OuterShuffle", ("hls",), ("OuterShuffle", "Transpose"), "finn"),
        _k("InnerShuffle", ("rtl",), ("InnerShuffle", "Transpose"), "finn"),
        _k("Crop", ("hls",), ("Crop",), "finn"),
        _k("Requant", ("hls", "rtl"), ("Requant",), "finn"),
        # ONNX-level names used by Brainsmith DSE v3 blueprints
        _k("MatMul", ("hls", "rtl"), ("MVAU", "MatMul"), "onnx"),
        _k("Gemm", ("hls", "rtl"), ("MVAU", "Gemm"), "onnx"),
        _k("Conv", ("hls", "rtl"), ("MVAU", "VVAU", "ConvolutionInputGenerator", "Conv"), "onnx"),
        _k("Softmax", ("hls",), ("HWSoftmax", "Softmax"), "onnx"),
        _k("Transpose", ("hls", "rtl"), ("Shuffle", "Transpose", "OuterShuffle", "InnerShuffle"), "onnx"),
        _k("MaxPool", ("hls",), ("Pool", "StreamingMaxPool", "MaxPool"), "onnx"),
        _k("RMSNorm", ("hls",), ("RMSNorm",), "onnx"),
    )
}

#: Other names for kernels, as older Brainsmith blueprints write them.
KERNEL_ALIASES = {"MatrixVectorUnit": "MVAU", "VectorVectorUnit": "VVAU", "ElementwiseBinary": "ElementwiseBinaryOp",
                  "ElementwiseBinaryOperation": "ElementwiseBinaryOp", "InnerShuffle": "Shuffle",
                  "OuterShuffle": "Shuffle"}

#: Brainsmith's backend variants beyond FINN's hls/rtl (accepted for the kernels they belong to).
EXTRA_BACKENDS: dict[str, tuple[str, ...]] = {
    "LayerNorm": ("standard", "quantized"),
    "Softmax": ("standard", "flash", "quantized"),
    "HWSoftmax": ("standard", "flash"),
    "RMSNorm": ("standard", "quantized"),
}

#: FINN builder steps (finn.builder.build_dataflow_steps), both versions.
FINN_STEPS = (
    "step_qonnx_to_finn", "step_tidy_up", "step_streamline", "step_convert_to_hw",
    "step_create_dataflow_partition", "step_specialize_layers", "step_target_fps_parallelization",
    "step_apply_folding_config", "step_minimize_bit_width", "step_transpose_decomposition",
    "step_generate_estimate_reports", "step_hw_codegen", "step_hw_ipgen", "step_set_fifo_depths",
    "step_create_stitched_ip", "step_measure_rtlsim_performance", "step_out_of_context_synthesis",
    "step_synthesize_bitfile", "step_make_driver", "step_deployment_package", "step_loop_rolling",
)



def finn_step_name(step: str) -> str | None:
    """FINN's name for a blueprint step (``qonnx_to_finn``, ``finn:streamline``, ``step_tidy_up``), or
    None when FINN's ``build_dataflow`` has no such step (it looks string steps up by name only: any
    other string is a KeyError before the first step runs)."""
    base = step.split(":", 1)[1] if step.startswith("finn:") else step
    name = base if base.startswith("step_") else f"step_{base}"
    return name if name in FINN_STEPS else None


#: Brainsmith's registered steps (0.1) and the custom steps its BERT examples register.
BRAINSMITH_STEPS = (
    "qonnx_to_finn", "specialize_layers", "constrain_folding_and_set_pumped_compute", "bert_cleanup",
    "bert_streamlining", "shell_metadata_handover", "build_dataflow_graph", "build_hw_graph",
    "normalize_dataflow_layouts", "apply_parallelization_config", "target_fps_parallelization",
    "explore_kernel_params", "infer_kernels",
)


def _transform_names() -> frozenset[str]:
    from importlib.resources import files

    text = (files("bsopt.blueprint") / "data" / "transforms.txt").read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


#: Transformation class names of FINN and qonnx (v3 blueprints list them as transforms).
KNOWN_TRANSFORMS = _transform_names()

#: Step names a registry knows: FINN's (with or without step_), Brainsmith's.
KNOWN_STEPS = (frozenset(FINN_STEPS) | {s.removeprefix("step_") for s in FINN_STEPS}
               | frozenset(BRAINSMITH_STEPS))


def known_step(name: str) -> bool:
    """A known step or transform name, bare or qualified (finn:streamline, brainsmith:…)."""
    _, base = split_qualified(name)
    return base in KNOWN_STEPS or base in KNOWN_TRANSFORMS


#: Kernels FINN inserts into any dataflow graph (never "not applicable").
INFRASTRUCTURE = frozenset({"DuplicateStreams", "StreamingDataWidthConverter", "StreamingFIFO"})


def split_qualified(name: str) -> tuple[str | None, str]:
    """'finn:MVAU' -> ('finn', 'MVAU')."""
    if ":" in name:
        ns, _, base = name.partition(":")
        return ns, base
    return None, name


def kernel_info(name: str) -> KernelInfo | None:
    _, base = split_qualified(name)
    return KERNELS.get(KERNEL_ALIASES.get(base, base))


def normalize_backend(kernel: str, backend: str) -> str | None:
    """'MVAU_hls', 'finn:MVAU_rtl', 'ThresholdingHLS' or 'hls' -> the bare style; None if unknown."""
    info = kernel_info(kernel)
    if info is None:
        return None
    b = backend.split(":")[-1]
    for prefix in {split_qualified(kernel)[1], info.name}:
        if b.lower().startswith(prefix.lower()):
            b = b[len(prefix):].lstrip("_")
            break
    b = b.lower() if b.lower() in ("hls", "rtl") else b
    allowed = info.backends + EXTRA_BACKENDS.get(info.name, ())
    return b if b in allowed else None


def backends_of(kernel: str) -> tuple[str, ...]:
    info = kernel_info(kernel)
    return (info.backends + EXTRA_BACKENDS.get(info.name, ())) if info else ()
