"""The options of lowering a model (a small module: reading them needs neither onnx nor the builder)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bsopt.choices import FinnVersion
from bsopt.errors import InputError, ModelError


@dataclass
class LoweringOptions:
    """Choices that change the dataflow graph FINN builds from the same model.

    ``finn_version``: ``"latest"`` (FINN dev, the default) or ``"0.10.1"``.
    ``standalone_thresholds``: keep activations as separate Thresholding layers (FINN's
    ``standalone_thresholds`` build option) instead of absorbing them into MVAU/VVAU.
    ``preferred_impl_style``: per generic op type (``"MVAU"``) or per layer name, ``"hls"``/``"rtl"``.
    ``minimize_bit_width``: FINN's MinimizeWeightBitWidth/MinimizeAccumulatorWidth ran (its
    ``minimize_bit_width`` option with ``step_minimize_bit_width`` in the flow).
    ``round_thresholds``: FINN dev's RoundAndClipThresholds ran (``step_minimize_bit_width`` always runs
    it); a flow without that step leaves standalone thresholds FLOAT32, as its streamlining made them.
    ``keep_parameters``: layers keep their weight and threshold matrices; by default they keep only what
    FINN's estimates read of them (:mod:`bsopt.ir.params`), which makes a large model's IR small.
    """

    finn_version: FinnVersion = FinnVersion.LATEST
    fpgapart: str = "xc7z020clg400-1"
    standalone_thresholds: bool = False
    preferred_impl_style: dict[str, str] = field(default_factory=dict)
    minimize_bit_width: bool = True
    round_thresholds: bool = True
    keep_parameters: bool = False

    def __post_init__(self):
        try:
            self.finn_version = FinnVersion.parse(self.finn_version)
        except InputError as exc:
            raise ModelError(exc.message, hint=exc.hint) from None

    @property
    def legacy(self) -> bool:
        return self.finn_version == FinnVersion.V0_10_1
