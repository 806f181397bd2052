"""Cost models of FINN's vector-vector (depthwise) unit: ``VVAU_hls`` and ``VVAU_rtl``.

The numbers reproduce FINN's ``node_res_estimation`` and ``get_exp_cycles`` (sources:
``custom_op/fpgadataflow/vectorvectoractivation.py`` for memory and cycles,
``hls/vectorvectoractivation_hls.py`` and ``rtl/vectorvectoractivation_rtl.py`` for LUT/DSP) for
FINN dev (73ba5ed) and v0.10.1, which estimate identically.

Notation: P = PE (channels in parallel), Q = SIMD (kernel taps in parallel), K = k_h * k_w,
C = Channels, WMEM = K*C/(P*Q) weight words of P*Q*W bits, TMEM = C/P threshold words.

VVAU's memory rules are FINN's own copy of the MVAU ones and differ from them (see ``_memory``
for the shared ladder): BRAM uses 8/16/32-bit rungs, ram_style "auto" with WMEM <= 128 counts no
BRAM, and internal_embedded never counts URAM.
"""

from __future__ import annotations

from typing import Any

from bsopt.estimate.base import Issue, NodeModel, register
from bsopt.estimate.nodes._memory import (
    BRAM18_CAPACITY_BITS,
    URAM_CAPACITY_BITS,
    VVAU_BRAM_WIDTHS,
    bram18_blocks,
    efficiency,
    uram_blocks,
)
from bsopt.estimate.nodes.mvau import (
    FLAGS,
    MEM_MODES,
    RAM_STYLES,
    RES_TYPES,
    binary_issue,
    divides,
    dtype_facts,
    finn_r_lut_core,
    has_dsp58,
    hls_stream_issues,
    int_list,
    one_of,
    output_dtype_issue,
    positive_int,
    require_dtype,
    uram_writeable_issue,
)

_VVAU_DEFAULTS = {
    "SIMD": 1,
    "resType": "auto",
    "ActVal": 0,
    "accDataType": "INT32",
    "noActivation": 0,
    "mem_mode": "internal_decoupled",
    "runtime_writeable_weights": 0,
    "ram_style": "auto",
    "binaryXnorMode": 0,
}


class _VVAU(NodeModel):
    """Memory, cycles and checks common to VVAU_hls and VVAU_rtl."""

    folds = {"PE": lambda a: a["Channels"], "SIMD": lambda a: a["Kernel"][0] * a["Kernel"][1]}

    def choices(self, a: dict[str, Any], version: str) -> dict[str, tuple[Any, ...]]:
        return {"ram_style": ("auto", "block", "distributed", "ultra"),
                "mem_mode": ("internal_embedded", "internal_decoupled", "external"),
                "runtime_writeable_weights": (0, 1)}

    def defaults(self, version: str) -> dict[str, Any]:
        return dict(_VVAU_DEFAULTS)

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        channels = positive_int(a, "Channels", op)
        pe = positive_int(a, "PE", op)
        simd = positive_int(a, "SIMD", op)
        k_h, k_w = int_list(a, "Kernel", op, length=2)
        int_list(a, "Dim", op, length=2)
        require_dtype(a, "inputDataType", op)
        require_dtype(a, "weightDataType", op)
        dtype_facts(a["accDataType"], f"{op}: accDataType")
        if a.get("outputDataType"):
            dtype_facts(a["outputDataType"], f"{op}: outputDataType")
        one_of(a, "mem_mode", MEM_MODES, op)
        one_of(a, "ram_style", RAM_STYLES, op)
        one_of(a, "resType", RES_TYPES, op)
        for flag in ("noActivation", "binaryXnorMode", "runtime_writeable_weights"):
            one_of(a, flag, FLAGS, op)
        # FINN's estimates never check these (calc_wmem floors silently); only the folded shapes
        # assert them. bsopt rejects uneven folding outright.
        divides("PE", pe, "Channels", channels, op)
        divides("SIMD", simd, "Kernel size k_h*k_w", k_h * k_w, op)

    def _luts(self, a: dict[str, Any], wmem: int) -> int:
        return 0

    def _dsps(self, a: dict[str, Any], part: str, version: str) -> int:
        return 0

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        pe, simd, channels = a["PE"], a["SIMD"], a["Channels"]
        k_h, k_w = a["Kernel"]
        w_bits = dtype_facts(a["weightDataType"])[0]
        width = simd * w_bits * pe
        wmem = (k_h * k_w * channels // pe) // simd
        mode, style = a["mem_mode"], a["ram_style"]

        if (mode == "external" or (mode == "internal_decoupled" and style in ("distributed", "ultra"))
                or (wmem <= 128 and (style == "auto" or mode == "internal_embedded"))):
            bram = 0
        else:
            bram = bram18_blocks(wmem, width, VVAU_BRAM_WIDTHS)
        uram = uram_blocks(wmem, width) if (mode == "internal_decoupled" and style == "ultra") else 0

        return {
            "BRAM_18K": bram,
            # FINN bug, reproduced: the stored bits are taken as W * PE * WMEM, leaving out the
            # SIMD factor of the word width, so BRAM efficiency is under-reported by 1/SIMD.
            "BRAM_efficiency": efficiency(w_bits * pe * wmem, bram, BRAM18_CAPACITY_BITS),
            "LUT": self._luts(a, wmem),
            "URAM": uram,
            "URAM_efficiency": efficiency(w_bits * k_h * k_w * channels, uram, URAM_CAPACITY_BITS),
            "DSP": self._dsps(a, part, version),
        }

    def streams(self, a: dict[str, Any]):
        return [(a["SIMD"] * a["PE"], a["inputDataType"])], [(a["PE"], a["outputDataType"])]

    def cycles(self, a: dict[str, Any], version: str) -> int:
        # FINN: int((C * k_h * k_w) / PE / SIMD * (dim_h * dim_w)), in floating point (batch 1).
        k_h, k_w = a["Kernel"]
        dim_h, dim_w = a["Dim"]
        return int(a["Channels"] * k_h * k_w / a["PE"] / a["SIMD"] * (dim_h * dim_w))


@register
class VVAUHls(_VVAU):
    """VVAU_hls: finn-hlslib Vector_Vector_Activate(_Stream)_Batch."""

    op_type = "VVAU_hls"

    def choices(self, a: dict[str, Any], version: str) -> dict[str, tuple[Any, ...]]:
        out = super().choices(a, version)
        return {"ram_style": out.pop("ram_style"), "resType": ("auto", "lut", "dsp"), **out}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        super().check(a, part, version)
        if a["noActivation"] == 0:
            require_dtype(a, "outputDataType", self.op_type)

    def _luts(self, a: dict[str, Any], wmem: int) -> int:
        # Same FINN-R model as MVAU_hls, with the dot-product length K in the accumulator bound.
        pe = a["PE"]
        k_h, k_w = a["Kernel"]
        acc, core, lutram = finn_r_lut_core(a, wmem, k_h * k_w)
        thr = comp = 0
        if a["noActivation"] == 0:
            levels = 2 ** dtype_facts(a["outputDataType"])[0] - 1
            # Unlike MVAU_hls: no ceil on TMEM/64 (a fractional LUT count) and counted whatever
            # the threshold memory style (VVAU has no ram_style_thresholds attribute).
            thr = levels * acc * (a["Channels"] // pe) / 64
            comp = levels * acc
        return int(300 + 1.1 * (pe * (core + thr + comp)) + lutram)

    def _dsps(self, a: dict[str, Any], part: str, version: str) -> int:
        if a["resType"] != "dsp":
            return 0
        wa = dtype_facts(a["weightDataType"])[0] + dtype_facts(a["inputDataType"])[0]
        return a["PE"] * -(-wa // 48)

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        op = self.op_type
        pe, simd = a["PE"], a["SIMD"]
        streams = [
            ("input stream (PE * SIMD * input bits)", pe * simd * dtype_facts(a["inputDataType"])[0], ("PE", "SIMD")),
            ("output stream (PE * output bits)",
             pe * dtype_facts(a["outputDataType"])[0] if a.get("outputDataType") else 0, ("PE",)),
        ]
        # (VVAU_hls leaves its weight stream out of AP_INT_MAX_W: no limit from it)
        issues = hls_stream_issues(op, streams, checked=2)
        issues += binary_issue(op, a)
        issues += uram_writeable_issue(op, a, part, version)
        issues += output_dtype_issue(op, a)
        return issues


@register
class VVAURtl(_VVAU):
    """VVAU_rtl: finn-rtllib mvu_vvu_axi in VVU mode, DSP58 only (FINN estimates LUT = 0)."""

    op_type = "VVAU_rtl"

    def _dsps(self, a: dict[str, Any], part: str, version: str) -> int:
        # 3 MACs per DSP58 along SIMD, on every part (FINN does not look at the part here).
        return a["PE"] * -(-a["SIMD"] // 3)

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        op = self.op_type
        issues = []
        # rtl/vectorvectoractivation_rtl.py: _resolve_dsp_version (dev) / _resolve_impl_style (0.10.1)
        if a["resType"] == "lut":
            issues.append(Issue(f"{op} has no LUT-based implementation: resType 'lut' is rejected "
                                "(use 'dsp' or 'auto', or VVAU_hls)", ("resType",)))
        if not has_dsp58(part, version):
            issues.append(f"{op} is only supported on Versal (DSP58) parts, not {part}")
        # transformation/fpgadataflow/specialize_layers.py: _vvu_rtl_possible
        if a["noActivation"] == 0:
            issues.append(f"{op} cannot apply embedded thresholds (noActivation=0); FINN only "
                          "builds VVAUs with noActivation=1 as RTL")
        a_bits, _, a_min = dtype_facts(a["inputDataType"])
        w_bits, _, w_min = dtype_facts(a["weightDataType"])
        if not (a_bits <= 8 or (a_bits == 9 and a_min < 0)):
            issues.append(f"{op} supports inputs up to 8 bits (9 if signed), not {a['inputDataType']}")
        if w_bits > 8 or w_min >= 0:
            issues.append(f"{op} needs signed weights of at most 8 bits, not {a['weightDataType']}")
        if a["mem_mode"] == "internal_embedded":
            issues.append(Issue(f"{op} has no embedded weight memory: with mem_mode='internal_embedded' its "
                                "weight stream is left unconnected (use internal_decoupled or external)",
                                ("mem_mode",)))
        issues += uram_writeable_issue(op, a, part, version)
        issues += output_dtype_issue(op, a)
        return issues

