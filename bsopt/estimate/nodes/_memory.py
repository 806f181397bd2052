"""Weight-memory helpers shared by the MVAU and VVAU cost models.

FINN estimates the on-chip weight storage of a matrix/vector unit from the shape of the weight
memory: ``depth`` words (WMEM, one word per fold step) of ``width`` bits (PE * SIMD * weight bits).

* BRAM_18K follows a ladder over the word width, modelled on the simple-dual-port RAMB18 aspect
  ratios (UG573): 16K x 1, 8K x 2, 4K x 4, 2K x 9, 1K x 18 and 512 x 36. MVAU counts the parity
  bits (9/18/36 bit wide ports); VVAU's copy of the formula uses 8/16/32 instead.
* URAM assumes 4K x 72 blocks.
* Efficiencies compare the stored weight bits with the capacity of the counted blocks; FINN
  reports the integer ``1`` when no block is counted.

All functions take plain Python integers and use integer arithmetic only: for the integral depths
that legal folding produces they give the same numbers as FINN's float-based ``math.ceil`` code.
"""

from __future__ import annotations

#: Port widths of the three widest rungs of the BRAM ladder (2K, 1K and 512 words deep).
MVAU_BRAM_WIDTHS = (9, 18, 36)
VVAU_BRAM_WIDTHS = (8, 16, 32)

#: Capacity FINN assumes per counted block when computing efficiencies.
BRAM18_CAPACITY_BITS = 36 * 512
URAM_CAPACITY_BITS = 72 * 4096


def bram18_blocks(depth: int, width: int, widths: tuple[int, int, int] = MVAU_BRAM_WIDTHS) -> int:
    """RAMB18 count for a ``depth`` x ``width`` memory (FINN's ladder, ``widths`` = 2K/1K/512 rungs)."""
    w9, w18, w36 = widths
    if width == 1:
        return -(-depth // 16384)
    if width == 2:
        return -(-depth // 8192)
    if width <= 4:
        return -(-depth // 4096) * -(-width // 4)
    if width <= 9:
        return -(-depth // 2048) * -(-width // w9)
    if width <= 18 or depth > 512:
        return -(-depth // 1024) * -(-width // w18)
    return -(-depth // 512) * -(-width // w36)


def uram_blocks(depth: int, width: int) -> int:
    """UltraRAM count for a ``depth`` x ``width`` memory (4K x 72 blocks)."""
    return -(-width // 72) * -(-depth // 4096)


def efficiency(stored_bits: int, blocks: int, capacity_bits: int) -> int | float:
    """Fraction of the counted blocks' capacity the weights occupy; ``1`` (an int) without blocks."""
    if blocks == 0:
        return 1
    return stored_bits / (blocks * capacity_bits)
