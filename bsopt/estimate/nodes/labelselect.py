"""LabelSelect_hls: top-K label selection (the TopK at the end of a classifier).

Sources: ``custom_op/fpgadataflow/labelselect.py`` and ``hls/labelselect_hls.py`` (FINN dev
73ba5ed and 0.10.1, identical for the estimates); the HLS kernel is ``LabelSelect_Batch`` in
finn-hlslib ``maxpool.h``.

Estimate model: no resources (HWCustomOp defaults); ``get_exp_cycles`` is ``int(Labels / PE)``.
FINN does not check that PE divides Labels there (only ``get_folded_input_shape`` asserts it);
bsopt rejects such folding.

When ``outputDataType`` is left empty FINN picks the smallest type that holds ``Labels - 1``,
widened to a multiple of 8 bits (LabelSelect.__init__).
"""

from __future__ import annotations

from typing import Any

from qonnx.core.datatype import DataType

from bsopt.estimate.base import (
    NodeModel,
    check_pe_divides,
    register,
    stream_width_issues,
    zero_resources,
)


def default_output_dtype(labels: int):
    """FINN's choice of outputDataType when none is given."""
    odt = DataType.get_smallest_possible(labels - 1)
    bw = -(-odt.bitwidth() // 8) * 8  # qonnx's roundup_to_integer_multiple(bits, 8)
    return DataType[odt.name.replace(str(odt.bitwidth()), str(bw))]


def _dtype(name: str | None):
    try:
        return DataType[name] if name else None
    except KeyError:
        return None


@register
class LabelSelectHLS(NodeModel):
    op_type = "LabelSelect_hls"
    folds = {"PE": lambda a: a["Labels"]}

    def defaults(self, version: str) -> dict[str, Any]:
        return {"outputDataType": "", "numInputVectors": [1]}

    def check(self, a: dict[str, Any], part: str, version: str) -> None:
        check_pe_divides(a, self.op_type, "Labels", hint="FINN asserts 'PE must divide Labels' when building the folded input shape")

    def codegen_issues(self, a: dict[str, Any], part: str, version: str) -> list[str]:
        issues: list[str] = []
        labels = a["Labels"]
        idt = _dtype(a.get("inputDataType"))
        odt = _dtype(a["outputDataType"]) if a["outputDataType"] else default_output_dtype(labels)
        if idt is None or odt is None:
            issues.append("inputDataType and outputDataType must name valid FINN data types")
            return issues
        # finn-hlslib maxpool.h, LabelSelect_Batch: static_assert(clog2(NumClasses) <= Out_T::width - sign)
        index_bits = (labels - 1).bit_length() if labels > 1 else 0
        if index_bits > odt.bitwidth() - int(odt.signed()):
            issues.append(f"outputDataType {odt.name} cannot hold label indices up to {labels - 1} "
                          f"(static_assert in finn-hlslib LabelSelect_Batch)")
        if "K" not in a:
            issues.append("required attribute K (number of labels to select) is not set")
        width = max(a["PE"] * idt.bitwidth(), odt.bitwidth())
        issues += stream_width_issues(width)
        return issues

    def streams(self, a: dict[str, Any]):
        odt = a["outputDataType"] or default_output_dtype(a["Labels"]).name
        return [(a["PE"], a["inputDataType"])], [(1, odt)]

    def resources(self, a: dict[str, Any], part: str, version: str) -> dict[str, Any]:
        return zero_resources()

    def cycles(self, a: dict[str, Any], version: str) -> int:
        return int(a["Labels"] / a["PE"])
