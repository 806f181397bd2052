"""Brevitas network definitions behind :mod:`bsopt.models.zoo` (imports torch and brevitas):
FINN's TFC/CNV, a small MLP and DS-CNN, and a BERT-style encoder.

This module is imported lazily by :func:`bsopt.models.zoo.build_model`, so ``import bsopt.models``
works without the ``models`` extra.

Quantisation follows the FINN / bnn_pynq conventions:

* every quantiser is per-tensor, has a constant scale and no zero point, so the exported
  ``Quant`` nodes carry constant scale/zero-point/bit-width initializers;
* a bit width of 1 selects a bipolar ({-1, +1}) quantiser, exported as ``BipolarQuant``;
* wider bit widths use signed, narrow-range integers (``[-(2^(b-1)-1), 2^(b-1)-1]``) over
  ``[-1, 1]``; weights and activations share that range.

The networks draw from the torch RNG in the same order as brevitas' ``bnn_pynq`` examples
(default layer initialisation, two draws in :class:`TensorNorm`, then ``uniform(-1, 1)`` over the
quantised weights), so ``seed=0`` reproduces the weights of FINN's golden TFC/CNV networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from brevitas.core.bit_width import BitWidthImplType
from brevitas.core.quant import QuantType
from brevitas.core.restrict_val import FloatToIntImplType, RestrictValueType
from brevitas.core.scaling import ScalingImplType
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.inject import ExtendedInjector, value
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver
from torch import nn

__all__ = [
    "ActQuant",
    "Fixed8InputQuant",
    "QuantBertEncoder",
    "QuantCNV",
    "QuantDSCNN",
    "QuantEncoderLayer",
    "QuantMLP",
    "TensorNorm",
    "UnsignedActQuant",
    "WeightQuant",
    "snap_weights_to_grid",
]


class _ConstScaleQuant(ExtendedInjector):
    """Per-tensor, constant-scale, zero-point-free signed quantiser; 1 bit selects bipolar."""

    bit_width_impl_type = BitWidthImplType.CONST
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    zero_point_impl = ZeroZeroPoint
    float_to_int_impl_type = FloatToIntImplType.ROUND
    scaling_per_output_channel = False
    signed = True
    narrow_range = True

    @value
    def quant_type(bit_width):
        """Bipolar for one bit, signed integer otherwise (brevitas injects ``bit_width`` by name)."""
        return QuantType.BINARY if bit_width == 1 else QuantType.INT


class WeightQuant(_ConstScaleQuant, WeightQuantSolver):
    """Weight quantiser: the integer grid spans [-1, 1] (scale = 1 / (2^(b-1) - 1))."""

    scaling_const = 1.0


class ActQuant(_ConstScaleQuant, ActQuantSolver):
    """Activation quantiser over [-1, 1] (a quantised hard-tanh)."""

    min_val = -1.0
    max_val = 1.0


class Fixed8InputQuant(ActQuant):
    """Q1.7 fixed-point input quantiser: 8-bit full-range signed, power-of-two scale 2^-7."""

    bit_width = 8
    min_val = -1.0
    max_val = 1.0 - 2.0**-7
    narrow_range = False
    restrict_scaling_type = RestrictValueType.POWER_OF_TWO


class TensorNorm(nn.Module):
    """Affine normalisation with a single (scalar) mean, variance, scale and shift.

    In eval mode it computes ``(x - mean) / (var + eps) ** 0.5 * weight + bias``, which exports as
    ``Sub -> Pow -> Div -> Mul -> Add``, the network tail FINN streamlines away.  In training mode
    the statistics of the whole batch are used and the running estimates updated.
    """

    def __init__(self, eps: float = 1e-4, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        # Two draws, as bnn_pynq's TensorNorm makes, keep a seed's RNG stream aligned with the
        # reference networks; the values are overwritten by reset_parameters().
        self.weight = nn.Parameter(torch.rand(1))
        self.bias = nn.Parameter(torch.rand(1))
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_var", torch.ones(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset to the identity transform: mean 0, variance 1, scale 1, shift 0."""
        with torch.no_grad():
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.weight.fill_(1.0)
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean()
            with torch.no_grad():
                self.running_mean.mul_(1.0 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1.0 - self.momentum).add_(self.momentum * x.var(unbiased=True))
            return (x - mean) / (x.var(unbiased=False) + self.eps).pow(0.5) * self.weight + self.bias
        return (x - self.running_mean) / (self.running_var + self.eps).pow(0.5) * self.weight + self.bias


def _act(bits: int) -> QuantIdentity:
    return QuantIdentity(act_quant=ActQuant, bit_width=bits)


def _linear(in_features: int, out_features: int, weight_bits: int) -> QuantLinear:
    return QuantLinear(
        in_features, out_features, bias=False, weight_quant=WeightQuant, weight_bit_width=weight_bits
    )


def _conv(
    in_ch: int, out_ch: int, kernel: int, weight_bits: int, *, groups: int = 1, padding: int = 0
) -> QuantConv2d:
    return QuantConv2d(
        in_ch,
        out_ch,
        kernel_size=kernel,
        padding=padding,
        groups=groups,
        bias=False,
        weight_quant=WeightQuant,
        weight_bit_width=weight_bits,
    )


def _init_quant_weights(module: nn.Module) -> None:
    """Draw every quantised weight from U(-1, 1), in module order (as bnn_pynq does)."""
    for m in module.modules():
        if isinstance(m, QuantConv2d | QuantLinear):
            nn.init.uniform_(m.weight.data, -1.0, 1.0)


@torch.no_grad()
def snap_weights_to_grid(module: nn.Module) -> nn.Module:
    """Replace each quantised layer's float weights by their quantised values, in place.

    The network computes the same function afterwards (quantisation with a constant scale is
    idempotent), but the exported initializers hold only grid values, so files compress well and
    match FINN's golden exports.  Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, QuantConv2d | QuantLinear):
            m.weight.copy_(m.quant_weight().value)
    return module


class QuantMLP(nn.Module):
    """Fully connected quantised network in the layout of FINN's TFC/SFC/LFC.

    ``features`` holds: input quantiser, dropout, then per hidden layer
    ``QuantLinear -> BatchNorm1d -> QuantIdentity -> Dropout``, and finally ``QuantLinear`` and
    :class:`TensorNorm`.  The input is flattened and mapped from [0, 1] to [-1, 1] first.  Bit widths
    are one for every layer, or per layer: a weight width per linear layer and an activation width per
    hidden layer (a last activation width, for the classifier's output, is accepted and unused).
    """

    def __init__(
        self,
        *,
        in_features: int,
        hidden: Sequence[int],
        num_classes: int,
        weight_bits: int | Sequence[int],
        act_bits: int | Sequence[int],
        in_bits: int,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        n = len(hidden) + 1
        w = [weight_bits] * n if isinstance(weight_bits, int) else list(weight_bits)
        a = [act_bits] * n if isinstance(act_bits, int) else list(act_bits)
        if len(w) != n or len(a) not in (n - 1, n):
            raise ValueError(f"QuantMLP with {n} layers takes {n} weight and {n - 1} activation bit widths, "
                             f"got {len(w)} and {len(a)}")
        self.features = nn.ModuleList([_act(in_bits), nn.Dropout(dropout)])
        width = in_features
        for i, out_features in enumerate(hidden):
            self.features.extend(
                [
                    _linear(width, out_features, w[i]),
                    nn.BatchNorm1d(out_features),
                    _act(a[i]),
                    nn.Dropout(dropout),
                ]
            )
            width = out_features
        self.features.extend([_linear(width, num_classes, w[-1]), TensorNorm()])
        _init_quant_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        # [0, 1] -> [-1, 1]; written inline (not in a helper) so the exported graph input keeps
        # the name torch gives it in FINN's reference exports
        x = 2.0 * x - torch.tensor([1.0], device=x.device)
        for layer in self.features:
            x = layer(x)
        return x


class _ConvClassifier(nn.Module):
    """Shared forward pass: [-1, 1] input mapping, ``conv_features``, flatten, ``linear_features``."""

    conv_features: nn.ModuleList
    linear_features: nn.ModuleList

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = 2.0 * x - torch.tensor([1.0], device=x.device)  # [0, 1] -> [-1, 1], see QuantMLP.forward
        for layer in self.conv_features:
            x = layer(x)
        x = x.reshape(x.shape[0], -1)
        for layer in self.linear_features:
            x = layer(x)
        return x


class QuantCNV(_ConvClassifier):
    """FINN's CNV: six unpadded 3x3 convolutions, two max-pools, two hidden FC layers.

    ``conv_features``: Q1.7 input quantiser, then per convolution
    ``QuantConv2d -> BatchNorm2d -> QuantIdentity`` (+ ``MaxPool2d(2)`` after the 2nd and 4th).
    ``linear_features``: ``QuantLinear -> BatchNorm1d -> QuantIdentity`` twice, then the
    classifier ``QuantLinear`` and :class:`TensorNorm`.  32x32 inputs reach 1x1 before flattening.
    """

    CONV_CHANNELS_POOL: tuple[tuple[int, bool], ...] = (
        (64, False),
        (64, True),
        (128, False),
        (128, True),
        (256, False),
        (256, False),
    )
    HIDDEN_FEATURES: tuple[int, ...] = (512, 512)

    def __init__(self, *, in_channels: int, num_classes: int, weight_bits: int, act_bits: int) -> None:
        super().__init__()
        eps = 1e-4
        self.conv_features = nn.ModuleList([QuantIdentity(act_quant=Fixed8InputQuant)])
        channels = in_channels
        for out_ch, pool in self.CONV_CHANNELS_POOL:
            self.conv_features.extend(
                [_conv(channels, out_ch, 3, weight_bits), nn.BatchNorm2d(out_ch, eps=eps), _act(act_bits)]
            )
            if pool:
                self.conv_features.append(nn.MaxPool2d(kernel_size=2))
            channels = out_ch
        self.linear_features = nn.ModuleList()
        width = channels
        for out_features in self.HIDDEN_FEATURES:
            self.linear_features.extend(
                [
                    _linear(width, out_features, weight_bits),
                    nn.BatchNorm1d(out_features, eps=eps),
                    _act(act_bits),
                ]
            )
            width = out_features
        self.linear_features.extend([_linear(width, num_classes, weight_bits), TensorNorm()])
        _init_quant_weights(self)


class QuantDSCNN(_ConvClassifier):
    """Small depthwise-separable CNN for 32x32 inputs (1x1 spatial before the classifier).

    Layout (spatial size after each step, for 32x32 inputs)::

        Q1.7 input quant
        conv 3x3 pad 1, c_in -> 16                      32   (the only padded layer)
        dw 3x3 (16)  -> pw 1x1 16 -> 32, maxpool 2      30 -> 15
        dw 3x3 (32)  -> pw 1x1 32 -> 64, maxpool 2      13 -> 6
        dw 3x3 (64)  -> pw 1x1 64 -> 64                 4
        dw 3x3 (64)  -> pw 1x1 64 -> 128, maxpool 2     2 -> 1
        flatten -> QuantLinear 128 -> classes -> TensorNorm

    Every convolution is followed by ``BatchNorm2d`` and a quantised activation.  Depthwise
    convolutions have ``groups == channels``.  Padding is applied only where the input is the
    8-bit signed input quantiser (zero is on its grid at every configuration).
    """

    STEM_CHANNELS = 16
    # (pointwise output channels, max-pool after the block)
    BLOCKS: tuple[tuple[int, bool], ...] = ((32, True), (64, True), (64, False), (128, True))

    def __init__(self, *, in_channels: int, num_classes: int, weight_bits: int, act_bits: int) -> None:
        super().__init__()
        eps = 1e-4
        channels = self.STEM_CHANNELS
        self.conv_features = nn.ModuleList(
            [
                QuantIdentity(act_quant=Fixed8InputQuant),
                _conv(in_channels, channels, 3, weight_bits, padding=1),
                nn.BatchNorm2d(channels, eps=eps),
                _act(act_bits),
            ]
        )
        for out_ch, pool in self.BLOCKS:
            self.conv_features.extend(
                [
                    _conv(channels, channels, 3, weight_bits, groups=channels),
                    nn.BatchNorm2d(channels, eps=eps),
                    _act(act_bits),
                    _conv(channels, out_ch, 1, weight_bits),
                    nn.BatchNorm2d(out_ch, eps=eps),
                    _act(act_bits),
                ]
            )
            if pool:
                self.conv_features.append(nn.MaxPool2d(kernel_size=2))
            channels = out_ch
        self.linear_features = nn.ModuleList([_linear(channels, num_classes, weight_bits), TensorNorm()])
        _init_quant_weights(self)


class _RangeActQuant(ActQuant):
    """Signed activation quantiser over [-4, 4]: LayerNorm outputs and residual sums leave [-1, 1]."""

    min_val = -4.0
    max_val = 4.0


class UnsignedActQuant(ActQuant):
    """Unsigned quantiser over [0, max_val] (default 1): attention probabilities, ReLU outputs."""

    signed = False
    narrow_range = False
    min_val = 0.0
    max_val = 1.0


def _qact(bits: int, quant=_RangeActQuant) -> QuantIdentity:
    return QuantIdentity(act_quant=quant, bit_width=bits)


def _qlinear(in_features: int, out_features: int, weight_bits: int) -> QuantLinear:
    return QuantLinear(
        in_features, out_features, bias=True, weight_quant=WeightQuant, weight_bit_width=weight_bits
    )


class QuantEncoderLayer(nn.Module):
    """One post-LayerNorm BERT encoder layer with quantised weights and activations.

    ``x`` is a quantised ``(1, seq, hidden)`` tensor; every matrix product has quantised inputs::

        q, k, v = Linear(x) each, quantised          (1, S, hidden)
        heads: reshape (1, S, H, D), transpose (0, 2, 1, 3)     (1, H, S, D); k also -> (1, H, D, S)
        scores = q @ k * 1/sqrt(D); probs = quant_unsigned(softmax(scores))
        ctx = probs @ v -> transpose/reshape back to (1, S, hidden), quantised
        y = LayerNorm(x + quant(Linear(ctx)))                     residual and LayerNorm
        out = LayerNorm(y + quant(Linear(ReLU(Linear(y)))))       feed-forward

    The residual inputs are quantised by quantisers with the same constant scale, so the
    residual adds are integer additions of equal-scale streams.
    """

    def __init__(self, hidden: int, heads: int, ff: int, weight_bits: int, act_bits: int) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of the number of heads {heads}")
        self.heads, self.head_dim = heads, hidden // heads
        self.q, self.k, self.v = (_qlinear(hidden, hidden, weight_bits) for _ in range(3))
        self.q_act, self.k_act, self.v_act = (_qact(act_bits) for _ in range(3))
        self.prob_act = _qact(act_bits, UnsignedActQuant)
        self.ctx_act = _qact(act_bits)
        self.attn_out = _qlinear(hidden, hidden, weight_bits)
        self.attn_act = _qact(act_bits)
        self.norm1 = nn.LayerNorm(hidden)
        self.norm1_act = _qact(act_bits)
        self.ff1 = _qlinear(hidden, ff, weight_bits)
        self.ff_act = QuantIdentity(act_quant=UnsignedActQuant, bit_width=act_bits, max_val=4.0)
        self.ff2 = _qlinear(ff, hidden, weight_bits)
        self.ff2_act = _qact(act_bits)
        self.norm2 = nn.LayerNorm(hidden)
        self.out_act = _qact(act_bits)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, s, _ = t.shape
        return t.reshape(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        q = self._split(self.q_act(self.q(x)))
        k = self._split(self.k_act(self.k(x)))
        v = self._split(self.v_act(self.v(x)))
        scores = torch.matmul(q, k.transpose(2, 3)) * (1.0 / self.head_dim**0.5)
        probs = self.prob_act(torch.softmax(scores, dim=-1))
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(b, s, h)
        attn = self.attn_act(self.attn_out(self.ctx_act(ctx)))
        y = self.norm1_act(self.norm1(x + attn))
        ff = self.ff2_act(self.ff2(self.ff_act(torch.relu(self.ff1(y)))))
        return self.out_act(self.norm2(y + ff))


class QuantBertEncoder(nn.Module):
    """A BERT-style encoder without embeddings: input quantiser, then ``layers`` encoder layers.

    The input is a ``(1, seq, hidden)`` float tensor (the embeddings' output); weights are drawn
    from U(-1, 1) like the other zoo models, biases and LayerNorm parameters keep torch's defaults.
    """

    def __init__(self, *, layers: int, hidden: int, heads: int, ff: int, weight_bits: int, act_bits: int) -> None:
        super().__init__()
        self.input_act = _qact(act_bits)
        self.layers = nn.ModuleList(
            QuantEncoderLayer(hidden, heads, ff, weight_bits, act_bits) for _ in range(layers)
        )
        _init_quant_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_act(x)
        for layer in self.layers:
            x = layer(x)
        return x
