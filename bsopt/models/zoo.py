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
        input_shape: shape of the input at the default architecture options, batch size 1 (NCHW
            ``[0, 1]``-ranged images for classifiers, ``(1, seq, hidden)`` for encoders).
        num_classes: length of the logits vector (0 for encoders, whose output is a sequence).
        input_bits: bit width of the input quantiser; ``None`` means "same as ``act_bits``".
        description: one line for listings.
        kind: ``"classifier"`` (FINN's pre/post-processing applies: UINT8 input, TopK output) or
            ``"encoder"`` (sequence in, sequence out; no pre/post-processing).
        options: architecture options and their defaults (e.g. ``layers``, ``hidden``).
        allowed_bits: the weight/activation bit widths the model accepts.
        default_bits: (weight_bits, act_bits) used when a reference gives none.
        opset: ONNX opset of the export (17 keeps ``LayerNormalization`` whole).
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    input_bits: int | None
    description: str
    kind: str = "classifier"
    options: tuple[tuple[str, int], ...] = ()
    allowed_bits: tuple[int, ...] = ALLOWED_BITS
    default_bits: tuple[int, int] = (2, 2)
    opset: int = 13

    @property
    def prepost(self) -> bool:
        """Whether FINN's pre/post-processing (UINT8 input, TopK output) belongs to this model."""
        return self.kind == "classifier"

    def resolve_options(self, options: dict | None = None) -> dict[str, int]:
        """The architecture options with defaults filled in; raises :class:`InputError` for bad ones."""
        given = dict(options or {})
        known = dict(self.options)
        out = {}
        for key in given:
            if key not in known:
                hint = (f"options of {self.name}: {', '.join(known)}" if known
                        else f"{self.name} has no architecture options")
                raise InputError(f"unknown option {key!r} for zoo model {self.name!r}", hint=hint)
        for key, default in self.options:
            value = given.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"option {key}={value!r} of zoo model {self.name!r} must be a positive integer")
            out[key] = value
        if self.name == "bert":
            if out["hidden"] % out["heads"]:
                raise InputError(f"bert: hidden={out['hidden']} is not a multiple of heads={out['heads']}",
                                 hint="choose heads dividing hidden, e.g. hidden=128 heads=4")
        return out

    def shape_for(self, options: dict | None = None) -> tuple[int, ...]:
        """The input shape at the given architecture options."""
        if self.kind != "encoder":
            return self.input_shape
        o = self.resolve_options(options)
        return (1, o["seq"], o["hidden"])


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
        ZooEntry(
            "bert",
            (1, 32, 128),
            0,
            None,
            "BERT-style encoder (no embeddings): multi-head attention, LayerNorm, ReLU feed-forward",
            kind="encoder",
            options=(("layers", 1), ("hidden", 128), ("heads", 4), ("seq", 32), ("ff", 512)),
            allowed_bits=(2, 4, 8),
            default_bits=(8, 8),
            opset=17,
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


def check_bits(weight_bits: int, act_bits: int, allowed: tuple[int, ...] = ALLOWED_BITS) -> None:
    """Raise :class:`InputError` unless both bit widths are in ``allowed``."""
    for what, bits in (("weight_bits", weight_bits), ("act_bits", act_bits)):
        if isinstance(bits, bool) or not isinstance(bits, int) or bits not in allowed:
            raise InputError(
                f"{what}={bits!r} is not supported by {'this zoo model' if allowed != ALLOWED_BITS else 'the zoo models'}",
                hint=f"allowed values: {', '.join(map(str, allowed))}" + (" (1 = bipolar)" if 1 in allowed else ""),
            )


def build_model(name: str, weight_bits: int, act_bits: int, seed: int = 0, **options: int) -> nn.Module:
    """Build zoo model ``name`` with the given bit widths, deterministically, in eval mode.

    The torch RNG is seeded with ``seed`` inside a forked RNG context, so the global RNG state
    of the caller is left untouched.  Weights are untrained: ``U(-1, 1)`` for quantised layers,
    identity BatchNorm statistics.  With ``seed=0``, ``tfc`` and ``cnv`` have the same weights as
    brevitas' ``bnn_pynq`` models FINN's golden reference networks were exported from.

    ``options`` are the entry's architecture options (``bert``: ``layers``, ``hidden``, ``heads``,
    ``seq``, ``ff``); missing ones take the entry's defaults.

    Raises:
        InputError: unknown ``name``, bit widths the model does not accept, bad options.
        MissingDependencyError: torch or brevitas is not installed.
    """
    entry = get_entry(name)
    check_bits(weight_bits, act_bits, entry.allowed_bits)
    opts = entry.resolve_options(options)
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
        elif name == "bert":
            model = _nets.QuantBertEncoder(
                layers=opts["layers"], hidden=opts["hidden"], heads=opts["heads"], ff=opts["ff"],
                weight_bits=weight_bits, act_bits=act_bits,
            )
        else:  # pragma: no cover - ZOO and this dispatch are kept in sync by the tests
            raise AssertionError(f"zoo entry {name!r} has no builder")
    return model.eval()
