"""Cost models of FINN's sliding window generators (``ConvolutionInputGenerator_rtl`` and, in FINN
0.10.1 only, ``ConvolutionInputGenerator_hls``).

ConvolutionInputGenerator_rtl (identical estimates in FINN dev and 0.10.1). The RTL generator picks
one of two implementation styles, and every estimate depends on it:

* ``parallel`` when ``parallel_window=1`` (output window width ``M*k_h*k_w > 1``) or for a 1x1
  kernel: shift registers plus ``k_h-1`` line buffers; buffer depth
  ``((k_h-1)*dil_h*W + (k_w-1)*dil_w) * C/SIMD + 2``; cycles ``H*W*C/SIMD + 2``.
* ``default`` otherwise: one addressable circular buffer of depth
  ``((k_h-1)*dil_h*W + (k_w-1)*dil_w + 1) * C/SIMD`` plus stride slack; cycles from the
  read/write block model of FINN's get_exp_cycles (1D and 2D, depthwise variants).

Memory: ``ram_style`` block/auto -> BRAM (width ladder on the buffer depth, cascades of 16384),
ultra -> URAM (72x4096), distributed -> LUT ``SIMD*bits*ceil(depth/38)``; LUT always adds 300.
For the parallel style the BRAM/URAM line-buffer depth is ``(W - kernel_width) + W*(dil_h-1)``
*without* the channel fold (FINN's estimate; the generated line buffers are ``C/SIMD`` times deeper)
and 1D windows need none.

ConvolutionInputGenerator_hls (0.10.1): the finn-hlslib variant is chosen from is1D, depthwise,
stride, dilation and parallel_window; the 2D resource formulas use only the first (H) entry of
each pair (square layers assumed).
FINN quirks reproduced: the 2D BRAM depth factor is always 1; the 1D parallel variant's LUTRAM is
only counted for ``ram_style="distributed"`` (for "auto" the else branch resets it to 0); the 2D
URAM estimate divides the width by 64 (the 1D one by 72).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import HLS_MAX_STREAM_WIDTH, EstimateError, Issue, NodeModel, register

_RAM_STYLES = ("auto", "block", "distributed", "ultra")
_REQUIRED = ("ConvKernelDim", "IFMChannels", "IFMDim", "OFMDim", "SIMD", "Stride", "Dilation",
             "inputDataType", "outputDataType")


@cache
def _bits(name: str) -> int:
    try:
        return DataType[name].bitwidth()
    except KeyError:
        raise EstimateError(f"unknown FINN DataType {name!r}") from None


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _bram_width(depth: int) -> int:
    """Port width (bits) of an 18K BRAM configured for ``depth`` entries (FINN's SWG ladder)."""
    if depth <= 512:
        return 36
    if depth <= 1024:
        return 18
    if depth <= 2048:
        return 9
    if depth <= 4096:
        return 4
    if depth <= 8192:
        return 2
    return 1


def _common_check(op: str, a: dict[str, Any]) -> None:
    missing = [k for k in _REQUIRED if k not in a]
    if missing:
        raise EstimateError(f"{op}: required attribute(s) {', '.join(missing)} not set")
    if a["ram_style"] not in _RAM_STYLES:
        raise EstimateError(f"{op}: ram_style = {a['ram_style']!r} not in {list(_RAM_STYLES)}", attrs=("ram_style",))
    for key in ("depthwise", "parallel_window", "dynamic_mode"):
        if a[key] not in (0, 1):
            raise EstimateError(f"{op}: {key} = {a[key]!r} must be 0 or 1", attrs=(key,))
    for key in ("ConvKernelDim", "IFMDim", "OFMDim", "Stride", "Dilation"):
        if not isinstance(a[key], (list, tuple)) or len(a[key]) != 2:
            raise EstimateError(f"{op}: {key} must have two entries [H, W], got {a[key]!r}")
    _bits(a["inputDataType"])
    _bits(a["outputDataType"])
    if a["SIMD"] < 1 or a["IFMChannels"] < 1:
        raise EstimateError(f"{op}: SIMD and IFMChannels must be positive", attrs=("SIMD",))


def _normalized_1d(a: dict[str, Any]):
    """FINN's get_1d_conv_attrs_normalized: map a [D, 1] layout to [1, D]."""
    k, ifm, ofm, s, d = a["ConvKernelDim"], a["IFMDim"], a["OFMDim"], a["Stride"], a["Dilation"]
    if ifm[1] == 1:
        return ifm[::-1], ofm[::-1], k[::-1], s[::-1], d[::-1]
    return ifm, ofm, k, s, d


def _conv_out(dim: int, k: int, stride: int, dil: int) -> int:
    return (dim - dil * (k - 1) - 1) // stride + 1


# ---------------------------------------------------------------- RTL
def _rtl_style(a: dict[str, Any]) -> str:
    k_h, k_w = a["ConvKernelDim"]
    mmv_out = a["M"] * k_h * k_w if a["parallel_window"] else 1
    return "parallel" if mmv_out > 1 or (k_h == 1 and k_w == 1) else "default"


def _rtl_buffer_depth(a: dict[str, Any], style: str) -> int:
    k_h, k_w = a["ConvKernelDim"]
    w = a["IFMDim"][1]
    s_h, s_w = a["Stride"]
    d_h, d_w = a["Dilation"]
    cf = a["IFMChannels"] // a["SIMD"]
    if style == "default":
        window = k_h * k_w
        return (((k_h - 1) * d_h * w + (k_w - 1) * d_w + 1) * cf
                + max(0, (s_w - 1 - window) * cf)
                + max(0, ((s_h - 1) * w - window) * cf))
    return ((k_h - 1) * d_h * w + (k_w - 1) * d_w) * cf + 2


def _rtl_line_buffers(a: dict[str, Any], style: str) -> tuple[int, int]:
    """(depth, count) of the buffers FINN's BRAM/URAM estimates size."""
    if style == "default":
        return _rtl_buffer_depth(a, style), 1
    h, w = a["IFMDim"]
    if h == 1 or w == 1:
        return 0, 0  # 1D parallel: registers only
    k_h, k_w = a["ConvKernelDim"]
    d_h, d_w = a["Dilation"]
    # FINN's estimate omits the channel fold here (the generated line buffers include it)
    return (w - ((k_w - 1) * d_w + 1)) + w * (d_h - 1), k_h - 1


def _cntr_width_fails(loops: tuple[int, ...]) -> bool:
    """FINN computes ceil(log2(max(n - 1 for n in loops))); a max <= 0 raises a math domain error."""
    return max(n - 1 for n in loops) <= 0


@register
class ConvolutionInputGeneratorRTL(NodeModel):
    op_type = "ConvolutionInputGenerator_rtl"
    folds = {"SIMD": lambda a: a["IFMChannels"]}

    def choices(self, a: dict[str, Any], version: str) -> dict[str, tuple[Any, ...]]:
        return {"ram_style": ("auto", "block", "distributed", "ultra"), "parallel_window": (0, 1)}

    def defaults(self, version: str) -> dict[str, Any]:
        return {"depthwise": 0, "ram_style": "distributed", "parallel_window": 0, "is1D": 0,
                "dynamic_mode": 0, "M": 1}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        _common_check(op, a)
        k_h, k_w = a["ConvKernelDim"]
        h, w = a["IFMDim"]
        s_h, s_w = a["Stride"]
        d_h, d_w = a["Dilation"]
        simd, ch = a["SIMD"], a["IFMChannels"]
        # the checks of FINN's select_impl_style, in its order
        if not ((k_h - 1) * d_h + 1 <= h and (k_w - 1) * d_w + 1 <= w and s_h <= h and s_w <= w):
            raise EstimateError(f"{op}: Illegal conv configuration: kernel or stride > FM dimension")
        if not a["parallel_window"] and ch % simd:
            raise EstimateError(f"{op}: Constraint violated: SIMD must divide IFMChannels",
                                hint="choose SIMD among the divisors of IFMChannels", attrs=("SIMD",))
        if _rtl_style(a) == "parallel":
            if a["depthwise"] or (k_h == 1 and k_w == 1):
                if ch % simd:
                    raise EstimateError(f"{op}: Constraint violated: SIMD must divide IFMChannels",
                                        hint="choose SIMD among the divisors of IFMChannels", attrs=("SIMD",))
            elif ch != simd:
                raise EstimateError(f"{op}: Constraint violated: SIMD must be equal to IFMChannels",
                                    hint="parallel_window=1 needs SIMD = IFMChannels unless depthwise",
                                    attrs=("parallel_window", "SIMD"))

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        style = _rtl_style(a)
        k_h, k_w = a["ConvKernelDim"]
        h, w = a["IFMDim"]
        s_h, s_w = a["Stride"]
        d_h, d_w = a["Dilation"]
        cf = a["IFMChannels"] // a["SIMD"]
        out_h, out_w = _conv_out(h, k_h, s_h, d_h), _conv_out(w, k_w, s_w, d_w)
        issues = []
        # the style follows parallel_window (except for 1x1 kernels, always parallel)
        style_attrs = () if (k_h == 1 and k_w == 1) else ("parallel_window",)
        if style == "parallel":
            # generate_hdl / prepare_codegen_parallel
            if a["dynamic_mode"]:
                issues.append(Issue("dynamic_mode is not compatible with the parallel implementation style",
                                    style_attrs))
            if a["M"] != 1:
                issues.append(Issue("M > 1 (multiple output windows) is not implemented: not all output "
                                    "vector elements get connected", style_attrs))
            loops = [out_h, out_w, cf, 1, 1]
            if cf == 1:
                if out_w == 1:
                    loops[0] -= 1
                else:
                    loops[1] -= 1
            else:
                loops[2] -= 1
        else:
            # prepare_codegen_default: the address increments must stay within the buffer
            buf_min = ((k_h - 1) * d_h * w + (k_w - 1) * d_w + 1) * cf
            buf = _rtl_buffer_depth(a, style)
            kernel_w = (k_w - 1) * d_w + 1
            skip_cols = w % (kernel_w + (out_w - 1) * s_w)
            incr_w = -buf_min + s_w * cf + 1
            incr_h = -buf_min + (skip_cols + kernel_w) * cf + (s_h - 1) * w * cf + 1
            if abs(incr_w) > buf:
                issues.append(Issue("W increment > buffer size (FINN suggests parallel_window=1)",
                                    ("SIMD", "parallel_window")))
            if abs(incr_h) > buf:
                issues.append(Issue("H increment > buffer size (FINN suggests parallel_window=1)",
                                    ("SIMD", "parallel_window")))
            if a["depthwise"] and cf > 1:
                loops = [out_h, out_w, cf, k_h, k_w]
            else:
                loops = [out_h, out_w, k_h, k_w, cf]
            if loops[4] == 1:
                if loops[3] == 1:
                    loops[2] -= 1
                else:
                    loops[3] -= 1
            else:
                loops[4] -= 1
        if _cntr_width_fails(tuple(loops)):
            issues.append(Issue("the RTL generator cannot size its loop counters for this single-iteration "
                                "window configuration (math domain error in log2)", ("SIMD",) + style_attrs))
        return issues

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        style = _rtl_style(a)
        ram_style = a["ram_style"]
        width = a["SIMD"] * _bits(a["inputDataType"])
        bram = uram = 0
        lut = 300
        if ram_style == "distributed":
            lut += width * _ceil(_rtl_buffer_depth(a, style), 38)
        elif ram_style == "ultra":
            depth, count = _rtl_line_buffers(a, style)
            uram = _ceil(depth, 4096) * _ceil(width, 72) * count
        else:  # block / auto
            depth, count = _rtl_line_buffers(a, style)
            cascade_w = _ceil(width, _bram_width(depth))
            savings = 0
            if depth > 16384:
                savings = cascade_w - _ceil(width, _bram_width(depth % 16384))
            bram = (_ceil(depth, 16384) * cascade_w - savings) * count
        return {"BRAM_18K": bram, "BRAM_efficiency": 1, "LUT": lut, "URAM": uram,
                "URAM_efficiency": 1, "DSP": 0}

    def streams(self, a: dict[str, Any]):
        # convolutioninputgenerator.py get_folded_output_shape: a window per transfer with parallel_window
        k_h, k_w = a["ConvKernelDim"]
        out = a["SIMD"] * k_h * k_w if a["parallel_window"] else a["SIMD"]
        return [(a["SIMD"], a["inputDataType"])], [(out, a["outputDataType"])]

    def cycles(self, a: dict[str, Any], version: str) -> int:
        cf = a["IFMChannels"] // a["SIMD"]
        h, w = a["IFMDim"]
        if _rtl_style(a) == "parallel":
            return h * w * cf + 2
        if h == 1 or w == 1:
            _, (_, ofm_w), (_, k_w), (_, s_w), _ = _normalized_1d(a)
            if a["depthwise"]:
                return ofm_w * k_w * cf + cf * (k_w - 1) * (s_w - 1) - (k_w - 1) + 2
            return ofm_w * k_w * cf + 2
        k_h, k_w = a["ConvKernelDim"]
        ofm_h, ofm_w = a["OFMDim"]
        s_h, s_w = a["Stride"]
        d_h, d_w = a["Dilation"]
        buf_min = ((k_h - 1) * d_h * w + (k_w - 1) * d_w + 1) * cf
        block = max(ofm_w * k_w * k_h * cf, s_w * w * cf)
        if a["depthwise"]:
            block += ofm_w * (s_w - 1) * (cf - 1)
            return buf_min + ofm_h * block + (s_h - 1) * w * cf
        return buf_min + ofm_h * block


# ---------------------------------------------------------------- HLS (FINN 0.10.1)
_P1D = "ConvolutionInputGenerator_1D_parallel"
_1D = "ConvolutionInputGenerator_1D"
_1D_DWS = "ConvolutionInputGenerator_1D_dws"
_1D_DWS_STRIDE = "ConvolutionInputGenerator_1D_dws_stride"
_1D_DWS_NAIVE = "ConvolutionInputGenerator_1D_dws_naive"


def _hls_parallel_output(a: dict[str, Any]) -> bool:
    """ConvolutionInputGenerator_hls.use_parallel_window_output (1D parallel variant usable)."""
    if not a["is1D"] or a["parallel_window"] != 1:
        return False
    s_h, s_w = a["Stride"]
    d_h, d_w = a["Dilation"]
    return (a["SIMD"] == a["IFMChannels"] and a["depthwise"] == 0 and s_h == s_w == 1
            and d_h == d_w == 1 and a["ram_style"] in ("auto", "distributed"))


def _hls_variant(a: dict[str, Any]) -> str:
    if a["is1D"]:
        s = a["Stride"][0] * a["Stride"][1]
        dil = a["Dilation"][0] * a["Dilation"][1]
        if _hls_parallel_output(a):
            return _P1D
        if not a["depthwise"]:
            return _1D
        if (s > 1 and s != 2) or dil > 1:
            return _1D_DWS_NAIVE
        return _1D_DWS_STRIDE if s == 2 else _1D_DWS
    name = "ConvolutionInputGenerator"
    if a["ConvKernelDim"][0] % a["Stride"][0]:
        name += "_kernel_stride"
    if a["depthwise"]:
        name += "_dws"
    return name


@register
class ConvolutionInputGeneratorHLS(NodeModel):
    op_type = "ConvolutionInputGenerator_hls"
    folds = {"SIMD": lambda a: a["IFMChannels"]}

    def choices(self, a: dict[str, Any], version: str) -> dict[str, tuple[Any, ...]]:
        return {"ram_style": ("auto", "block", "distributed", "ultra"), "parallel_window": (0, 1)}
    versions = ("0.10.1",)

    def defaults(self, version: str) -> dict[str, Any]:
        return {"depthwise": 0, "ram_style": "distributed", "parallel_window": 0, "is1D": 0,
                "dynamic_mode": 0}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        _common_check(op, a)
        if a["Stride"][0] < 1 or a["Stride"][1] < 1:
            raise EstimateError(f"{op}: Stride must be positive")
        if a["IFMChannels"] % a["SIMD"]:
            # FINN's estimates do not check this; its folded shapes and finn-hlslib do
            raise EstimateError(f"{op}: SIMD must divide IFMChannels",
                                hint="choose SIMD among the divisors of IFMChannels", attrs=("SIMD",))

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues = []
        variant = _hls_variant(a)
        width = a["SIMD"] * _bits(a["inputDataType"])
        if variant == _P1D:
            width *= a["ConvKernelDim"][0] * a["ConvKernelDim"][1]
        if width > HLS_MAX_STREAM_WIDTH:
            issues.append(Issue(f"stream width {width} bits exceeds AP_INT_MAX_W={HLS_MAX_STREAM_WIDTH} (HLS)",
                                ("SIMD", "parallel_window") if variant == _P1D else ("SIMD",)))
        if a["dynamic_mode"]:
            issues.append("dynamic_mode is only supported by the RTL sliding window generator")
        if not a["is1D"]:
            k, ifm, ofm, s, d = (a[x] for x in ("ConvKernelDim", "IFMDim", "OFMDim", "Stride", "Dilation"))
            # FINN's _swg_hls_possible; the HLS code only passes the first entry of each pair
            if not (k[0] == k[1] and ifm[0] == ifm[1] and ofm[0] == ofm[1] and s[0] == s[1]
                    and d[0] == d[1] == 1):
                issues.append("the 2D HLS sliding window supports only square kernel/image/stride and "
                              "no dilation (FINN specializes such layers to the RTL variant)")
        elif variant in (_1D, _1D_DWS, _1D_DWS_STRIDE):
            # finn-hlslib static_assert on OFMDim_x (these variants know no dilation)
            ifm, ofm, k, s, _ = _normalized_1d(a)
            stride = 1 if variant == _1D_DWS else s[1]
            if ofm[1] != (ifm[1] - k[1]) // stride + 1:
                issues.append(f"finn-hlslib {variant} rejects OFMDim {ofm[1]} (expects "
                              f"{(ifm[1] - k[1]) // stride + 1}; dilation is not supported)")
        return issues

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        simd = a["SIMD"]
        ibits = _bits(a["inputDataType"])
        cf = a["IFMChannels"] // simd
        ram_style = a["ram_style"]
        variant = _hls_variant(a)
        bram = uram = ram_luts = 0
        if a["is1D"]:
            ifm, _, k, _, _ = _normalized_1d(a)
            ifm_w, k_w = ifm[1], k[1]
            ch = a["IFMChannels"]
            if variant == _P1D:
                if ram_style == "distributed":
                    ram_luts = _ceil(simd * ibits * (k_w + 1), 64)
            else:
                if variant == _1D:
                    depth = (k_w - 1) * cf
                    lut_elems = (k_w - 1) * ch
                elif variant == _1D_DWS_NAIVE:
                    depth = ifm_w * cf
                    lut_elems = ifm_w * ch
                else:  # dws, dws_stride
                    depth = k_w * cf
                    lut_elems = k_w * ch
                if ram_style in ("block", "auto"):
                    bram = _ceil(simd * ibits, _bram_width(depth)) * _ceil(depth, 18432)
                elif ram_style == "ultra":
                    uram = _ceil(simd * ibits, 72) * _ceil(depth, 4096)
                else:
                    ram_luts = _ceil(ibits * lut_elems, 64)
        else:
            k = a["ConvKernelDim"][0]
            stride = a["Stride"][0]
            depth = a["IFMDim"][0] * cf
            if ram_style in ("block", "auto"):
                # FINN's depth factor ceil(depth / depth) is always 1
                bram = (k + stride) * _ceil(simd * ibits, _bram_width(depth))
            elif ram_style == "ultra":
                uram = (k + stride) * _ceil(simd * ibits, 64) * _ceil(depth, 4096)
            else:
                ram_luts = (k + stride) * simd * ibits * _ceil(depth, 64)
        return {"BRAM_18K": bram, "BRAM_efficiency": 1, "LUT": 300 + ram_luts, "URAM": uram,
                "URAM_efficiency": 1, "DSP": 0}

    def streams(self, a: dict[str, Any]):
        k_h, k_w = a["ConvKernelDim"]
        out = a["SIMD"] * k_h * k_w if _hls_parallel_output(a) else a["SIMD"]
        return [(a["SIMD"], a["inputDataType"])], [(out, a["outputDataType"])]

    def cycles(self, a: dict[str, Any], version: str) -> int:
        cf = a["IFMChannels"] // a["SIMD"]
        if not a["is1D"]:
            k_h, k_w = a["ConvKernelDim"]
            ifm_w = a["IFMDim"][1]
            ofm_h, ofm_w = a["OFMDim"]
            s_w = a["Stride"][1]
            d_h = a["Dilation"][0]
            block = max(ofm_w * k_w * k_h * cf, s_w * ifm_w * cf)
            return ifm_w * k_h * d_h * cf + ofm_h * block
        ifm, ofm, k, _, _ = _normalized_1d(a)
        ifm_w, ofm_w, k_w = ifm[1], ofm[1], k[1]
        variant = _hls_variant(a)
        if variant == _P1D:
            return k_w + ofm_w
        if variant == _1D:
            return 1 + ofm_w * k_w * cf
        if variant == _1D_DWS_NAIVE:
            return ifm_w * cf + ofm_w * k_w * cf
        return 1 + ofm_w * k_w * cf + cf * (k_w - 1) - (k_w - 1)
