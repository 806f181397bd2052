"""StreamingFIFO_rtl: inter-layer FIFOs, implemented as an SRL FIFO ("rtl") or Vivado's AXI4-Stream
Data FIFO IP ("vivado").

Sources: ``custom_op/fpgadataflow/streamingfifo.py`` (estimates) and ``rtl/streamingfifo_rtl.py``
(``impl_style`` attribute, ``get_adjusted_depth``), in FINN dev 73ba5ed and 0.10.1.

Estimate model
--------------
``depth`` is first adjusted: with ``impl_style="vivado"`` it is rounded up to a power of two (the
IP only supports those); with ``"rtl"`` it is used as given. ``W`` is the stream width,
``folded_shape[-1] * bits(dataType)``.

- BRAM_18K: the usual BRAM18 aspect-ratio ladder on (depth, W): 1 bit → 16K deep, 2 → 8K,
  ≤4 → 4K, ≤9 → 2K, ≤18 or depth > 512 → 1K×18, else 512×36.
- BRAM_efficiency: ``W*depth / (BRAM_18K * 36*512)``, or 1 when no BRAM is estimated.
- URAM: ``ceil(depth/4096) * ceil(W/72)``.
- LUT: ``2*ceil(log2(depth))`` address LUTs plus, for LUTRAM storage,
  ``ceil(depth/32) * ceil(W/2)``.
- URAM_efficiency 1, DSP 0, cycles 0 (HWCustomOp defaults).

Which terms apply depends on the FINN version:

- 0.10.1: ``rtl`` is LUTRAM only; ``vivado`` uses BRAM for ``ram_style="block"``, URAM for
  ``"ultra"``, LUTRAM for ``"distributed"`` and nothing but address LUTs for ``"auto"``.
- dev (FINN bug, reproduced on purpose): the estimators compute
  ``impl = get_nodeattr("impl_style") == "rtl"``, a bool, and then compare ``impl`` with the strings
  ``"rtl"``/``"vivado"``. Those comparisons are never true, so for every impl_style and ram_style
  the BRAM ladder and the URAM formula both apply and the LUTRAM term never does.
"""

from __future__ import annotations

import math
from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import NodeModel, ceil_div, register, require

IMPL_STYLES = ("rtl", "vivado")
RAM_STYLES = ("auto", "block", "distributed", "ultra")
# AXI4-Stream Data FIFO (axis_data_fifo v2.0, Xilinx PG085): FIFO_DEPTH is a power of two in
# 16..32768; FINN's SplitLargeFIFOs docstring states the same 32k maximum. TDATA is at most 512 bytes.
VIVADO_FIFO_MIN_DEPTH = 16
VIVADO_FIFO_MAX_DEPTH = 32768
VIVADO_FIFO_MAX_TDATA_BYTES = 512


def adjusted_depth(depth: int, impl_style: str) -> int:
    """The depth FINN estimates with: rounded up to a power of two for the Vivado IP."""
    if impl_style == "vivado":
        return 1 << (depth - 1).bit_length()
    return depth


def bram18_ladder(depth: int, width: int) -> int:
    """BRAM18 count for a ``depth`` x ``width`` memory, by the widest fitting BRAM18 aspect ratio."""
    if width == 1:
        return ceil_div(depth, 16384)
    if width == 2:
        return ceil_div(depth, 8192)
    if width <= 4:
        return ceil_div(depth, 4096) * ceil_div(width, 4)
    if width <= 9:
        return ceil_div(depth, 2048) * ceil_div(width, 9)
    if width <= 18 or depth > 512:
        return ceil_div(depth, 1024) * ceil_div(width, 18)
    return ceil_div(depth, 512) * ceil_div(width, 36)


def _width(a: dict[str, Any]) -> int:
    return a["folded_shape"][-1] * DataType[a["dataType"]].bitwidth()


@register
class StreamingFIFORTL(NodeModel):
    op_type = "StreamingFIFO_rtl"

    def defaults(self, version: str) -> dict[str, Any]:
        return {"impl_style": "rtl", "ram_style": "auto", "depth_monitor": 0}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        op = self.op_type
        for name in ("depth", "folded_shape", "dataType"):
            require(name in a, f"{op}: required attribute {name} is not set")
        require(a["impl_style"] in IMPL_STYLES, f"{op}: impl_style {a['impl_style']!r} not in {IMPL_STYLES}")
        require(a["ram_style"] in RAM_STYLES, f"{op}: ram_style {a['ram_style']!r} not in {RAM_STYLES}")
        require(len(a["folded_shape"]) > 0, f"{op}: folded_shape is empty")
        try:
            DataType[a["dataType"]]
        except KeyError:
            require(False, f"{op}: unknown dataType {a['dataType']!r}")
        # FINN takes log2 of the (adjusted) depth: a depth below 1 is a math domain error.
        depth = adjusted_depth(a["depth"], a["impl_style"])
        require(depth >= 1, f"{op}: depth {a['depth']} is below 1")

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues: list[str] = []
        if a["depth"] < 1:
            issues.append(f"FIFO depth {a['depth']} is below 1")
        if a["impl_style"] != "vivado":
            return issues
        depth = adjusted_depth(a["depth"], "vivado")
        if depth > VIVADO_FIFO_MAX_DEPTH:
            issues.append(
                f"impl_style=vivado depth {depth} exceeds the AXI4-Stream Data FIFO maximum of "
                f"{VIVADO_FIFO_MAX_DEPTH} (FINN's SplitLargeFIFOs splits such FIFOs; Xilinx PG085)"
            )
        if depth < VIVADO_FIFO_MIN_DEPTH:
            issues.append(
                f"impl_style=vivado depth {depth} is below the AXI4-Stream Data FIFO minimum of "
                f"{VIVADO_FIFO_MIN_DEPTH} (Xilinx PG085)"
            )
        tdata_bytes = ceil_div(_width(a), 8)
        if tdata_bytes > VIVADO_FIFO_MAX_TDATA_BYTES:
            issues.append(
                f"impl_style=vivado stream of {tdata_bytes} bytes exceeds the AXI4-Stream Data FIFO "
                f"TDATA_NUM_BYTES maximum of {VIVADO_FIFO_MAX_TDATA_BYTES} (Xilinx PG085)"
            )
        if a["ram_style"] == "ultra" and part.lower().startswith("xc7"):
            issues.append(f"ram_style=ultra (UltraRAM) is not available on the 7-series part {part}")
        return issues

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        impl, ram = a["impl_style"], a["ram_style"]
        depth = adjusted_depth(a["depth"], impl)
        width = _width(a)
        if version == "latest":
            # dev bug (see module docstring): impl_style/ram_style never select anything.
            use_bram, use_uram, use_lutram = True, True, False
        else:
            use_bram = impl == "vivado" and ram == "block"
            use_uram = impl == "vivado" and ram == "ultra"
            use_lutram = impl == "rtl" or ram == "distributed"
        bram = bram18_ladder(depth, width) if use_bram else 0
        uram = ceil_div(depth, 4096) * ceil_div(width, 72) if use_uram else 0
        luts = 2 * math.ceil(math.log(depth, 2))  # float log2, exactly as FINN evaluates it
        if use_lutram:
            luts += ceil_div(depth, 32) * ceil_div(width, 2)
        return {
            "BRAM_18K": bram,
            "BRAM_efficiency": (width * depth) / (bram * 36 * 512) if bram else 1,
            "LUT": int(luts),
            "URAM": uram,
            "URAM_efficiency": 1,
            "DSP": 0,
        }

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return 0
