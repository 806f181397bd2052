"""The model zoo: quantised Brevitas networks FINN can compile, by name.

:data:`ZOO` (names, input shapes, descriptions) is plain metadata and imports without torch.
:func:`build_model` needs the ``models`` extra (torch + brevitas); the network classes live in
:mod:`bsopt.models._nets`, imported on first use.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from bsopt.errors import InputError, require

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["ALLOWED_BITS", "ZOO", "ZooEntry", "build_model", "check_bits", "get_entry", "require_brevitas"]

#: Bit widths the zoo models accept for weights and activations (1 = bipolar).
ALLOWED_BITS: tuple[int, ...] = (1, 2, 4, 8)


@dataclass(frozen=True)
class ZooEntry:
    """Metadata of one zoo model.

    Attributes:
        name: the zoo key.
        input_shape: NCHW shape of the (float, [0, 1]-ranged) input, batch size 1.
        num_classes: length of the logits vector.
        input_bits: bit width of the input quantiser; ``None`` means "same as ``act_bits``".
        description: one line for listings.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    input_bits: int | None
    description: str


ZOO: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        ZooEntry(
            "tfc",
            (1, 1, 28, 28),
            10,
            None,
            "FINN TFC: MNIST MLP 784-64-64-64-10, BatchNorm + quantised hard-tanh, input at act bits",
        ),
        ZooEntry(
            "cnv",
            (1, 3, 32, 32),
            10,
            8,
            "FINN CNV: CIFAR-10 VGG-like, 6 conv 3x3 (64,64,128,128,256,256), 2 maxpool, FC 512-512-10",
        ),
        ZooEntry(
            "mlp",
            (1, 1, 28, 28),
            10,
            None,
            "small MNIST MLP 784-128-64-10, TFC-style quantisation, input at act bits",
        ),
        ZooEntry(
            "dscnn",
            (1, 3, 32, 32),
            10,
            8,
            "depthwise-separable CNN: conv 3x3 pad 1, 4x (depthwise 3x3 + pointwise 1x1), 3 maxpool, FC 128-10",
        ),
    )
}


def require_brevitas(feature: str) -> ModuleType:
    """Import brevitas (``models`` extra) without its import-time warnings about optional kernels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = require("brevitas", "models", feature)
        # brevitas.export pulls in brevitas.graph, which warns about deprecated and optional parts
        importlib.import_module("brevitas.nn")
        importlib.import_module("brevitas.export")
    return module


def get_entry(name: str) -> ZooEntry:
    """Return the zoo entry called ``name`` or raise :class:`InputError` listing the zoo."""
    try:
        return ZOO[name]
    except KeyError:
        raise InputError(
            f"unknown zoo model {name!r}",
            hint=f"choose one of: {', '.join(ZOO)}",
        ) from None


def check_bits(weight_bits: int, act_bits: int) -> None:
    """Raise :class:`InputError` unless both bit widths are in :data:`ALLOWED_BITS`."""
    for what, bits in (("weight_bits", weight_bits), ("act_bits", act_bits)):
        if isinstance(bits, bool) or not isinstance(bits, int) or bits not in ALLOWED_BITS:
            raise InputError(
                f"{what}={bits!r} is not supported by the zoo models",
                hint=f"allowed values: {', '.join(map(str, ALLOWED_BITS))} (1 = bipolar)",
            )


def build_model(name: str, weight_bits: int, act_bits: int, seed: int = 0) -> nn.Module:
    """Build zoo model ``name`` with the given bit widths, deterministically, in eval mode.

    The torch RNG is seeded with ``seed`` inside a forked RNG context, so the global RNG state
    of the caller is left untouched.  Weights are untrained: ``U(-1, 1)`` for quantised layers,
    identity BatchNorm statistics.  With ``seed=0``, ``tfc`` and ``cnv`` have the same weights as
    brevitas' ``bnn_pynq`` models FINN's golden reference networks were exported from.

    Raises:
        InputError: unknown ``name`` or bit widths outside :data:`ALLOWED_BITS`.
        MissingDependencyError: torch or brevitas is not installed.
    """
    entry = get_entry(name)
    check_bits(weight_bits, act_bits)
    torch = require("torch", "models", "building zoo models")
    require_brevitas("building zoo models")
    from bsopt.models import _nets

    in_bits = entry.input_bits if entry.input_bits is not None else act_bits
    channels = entry.input_shape[1]
    features = 1
    for dim in entry.input_shape[1:]:
        features *= dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: nn.Module
        if name == "tfc":
            model = _nets.QuantMLP(
                in_features=features,
                hidden=(64, 64, 64),
                num_classes=entry.num_classes,
                weight_bits=weight_bits,
                act_bits=act_bits,
                in_bits=in_bits,
            )
        elif name == "mlp":
            model = _nets.QuantMLP(
                in_features=features,
                hidden=(128, 64),
                num_classes=entry.num_classes,
                weight_bits=weight_bits,
                act_bits=act_bits,
                in_bits=in_bits,
            )
        elif name in ("cnv", "dscnn"):
            cls = _nets.QuantCNV if name == "cnv" else _nets.QuantDSCNN
            model = cls(
                in_channels=channels,
                num_classes=entry.num_classes,
                weight_bits=weight_bits,
                act_bits=act_bits,
            )
        else:  # pragma: no cover - ZOO and this dispatch are kept in sync by the tests
            raise AssertionError(f"zoo entry {name!r} has no builder")
    return model.eval()
