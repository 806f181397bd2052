"""FPGA part facts the lowering and the cost models need."""

from __future__ import annotations

#: Zynq/Alveo board names FINN knows, mapped to their parts.
BOARD_PARTS = {
    "Pynq-Z1": "xc7z020clg400-1",
    "Pynq-Z2": "xc7z020clg400-1",
    "Ultra96": "xczu3eg-sbva484-1-e",
    "Ultra96-V2": "xczu3eg-sbva484-1-i",
    "ZCU102": "xczu9eg-ffvb1156-2-e",
    "ZCU104": "xczu7ev-ffvc1156-2-e",
    "ZCU111": "xczu28dr-ffvg1517-2-e",
    "KV260_SOM": "xck26-sfvc784-2LV-c",
    "U50": "xcu50-fsvh2104-2L-e",
    "U200": "xcu200-fsgd2104-2-e",
    "U250": "xcu250-figd2104-2L-e",
    "U280": "xcu280-fsvh2892-2L-e",
    "U55C": "xcu55c-fsvh2892-2L-e",
    "V80": "xcv80-lsva4737-2MHP-e-S",
}

DEFAULT_PART = "xc7z020clg400-1"


def is_versal(part: str) -> bool:
    """Versal parts (DSP58), by FINN's prefixes."""
    p = part.lower()
    return p[:4] in ("xcvc", "xcve", "xcvp", "xcvm", "xqvc", "xqvm") or p[:5] in ("xqrvc", "xcv80")


def dsp_block(part: str) -> str:
    """The DSP slice of a part family, as FINN classifies it (7-series parts: 'xc7…')."""
    if is_versal(part):
        return "DSP58"
    if len(part) > 2 and part[2] == "7":
        return "DSP48E1"
    return "DSP48E2"
