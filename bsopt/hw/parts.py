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


#: Device resources from FINN's own part table (finn.util.platforms / alveo resource tables):
#: LUT, FF, BRAM_18K, URAM, DSP. Vendor datasheets differ slightly.
PART_RESOURCES = {
    "xc7z020": {"LUT": 53200, "FF": 106400, "BRAM_18K": 280, "URAM": 0, "DSP": 220},
    "xczu3eg": {"LUT": 71000, "FF": 142000, "BRAM_18K": 412, "URAM": 0, "DSP": 360},
    "xczu7ev": {"LUT": 230000, "FF": 460000, "BRAM_18K": 610, "URAM": 92, "DSP": 1728},
    "xczu9eg": {"LUT": 274000, "FF": 548000, "BRAM_18K": 1824, "URAM": 0, "DSP": 2520},
    "xczu28dr": {"LUT": 425000, "FF": 850000, "BRAM_18K": 2160, "URAM": 80, "DSP": 4272},
    "xcu250": {"LUT": 4 * 375000, "FF": 4 * 750000, "BRAM_18K": 4 * 1152, "URAM": 4 * 320, "DSP": 4 * 2880},
}

#: FINN's default fractions of each resource a design may use when fitting a part.
DEFAULT_RESOURCE_LIMITS = {"LUT": 0.7, "FF": 0.5, "BRAM_18K": 0.8, "URAM": 0.8, "DSP": 0.8}


def part_family(part: str) -> str | None:
    """The known device a part belongs to: 'xc7z020clg400-1' -> 'xc7z020', 'xczu7ev-ffvc1156-2-e' -> 'xczu7ev'."""
    p = part.lower()
    matches = [dev for dev in PART_RESOURCES if p.startswith(dev)]
    return max(matches, key=len) if matches else None


def part_resources(part: str) -> dict[str, int] | None:
    """Resources of a part, or None when bsopt does not know the device."""
    family = part_family(part)
    return PART_RESOURCES[family] if family else None


def is_part_name(part) -> bool:
    """Whether ``part`` reads as an AMD/Xilinx part number (xc…, xq…, xa…: xc7z020clg400-1,
    xcu250-figd2104-2L-e, xck26-sfvc784-2LV-c …). bsopt estimates any such part; it knows the
    resources of those in PART_RESOURCES."""
    import re

    return isinstance(part, str) and re.fullmatch(r"x[cqa][a-z0-9]{3,}[a-z0-9-]*", part.strip().lower()) is not None


def resolve_board(board: str) -> str | None:
    """The part of a board name (case-insensitive), or None."""
    for name, part in BOARD_PARTS.items():
        if name.lower() == board.lower():
            return part
    return None
