"""A user's own Brevitas model and trainer, written against bsopt's co-design contract only
(docs/codesign.md): ``build(weight_bits, act_bits, seed, **options)`` and
``train(model, *, weight_bits, act_bits, epochs, seed, report)``. Nothing here comes from bsopt.

Every call is appended as a JSON line to the file ``$CODESIGN_USER_LOG`` (when set), so a test can
check what bsopt asked for and what the trainer returned.
"""

from __future__ import annotations

import json
import os

import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from torch import nn


def _log(**record) -> None:
    path = os.environ.get("CODESIGN_USER_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(record) + "\n")


def _linear(n_in, n_out, bits):
    if bits == 1:  # bipolar weights: Brevitas' binary quantiser (FINN's XNOR mode)
        return QuantLinear(n_in, n_out, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
    return QuantLinear(n_in, n_out, bias=True, weight_bit_width=bits)


def _act(bits):
    if bits == 1:  # bipolar activations
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
    return QuantReLU(bit_width=bits)


class SmallMLP(nn.Module):
    """FINN's tutorial layout: 8-bit input quantiser, QuantLinear -> BatchNorm -> activation, QuantLinear."""

    def __init__(self, weight_bits, act_bits, width):
        super().__init__()
        self.body = nn.Sequential(
            QuantIdentity(bit_width=8, return_quant_tensor=True),
            _linear(64, width, weight_bits[0]),
            nn.BatchNorm1d(width),
            _act(act_bits[0]),
            _linear(width, 10, weight_bits[1]),
        )

    def forward(self, x):
        return self.body(x.reshape(x.shape[0], -1))


def build(weight_bits, act_bits, seed, width=24):
    _log(call="build", weight_bits=list(weight_bits), act_bits=list(act_bits), seed=seed, width=width)
    torch.manual_seed(seed)
    return SmallMLP(weight_bits, act_bits, width)


def _data(seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype("float32")
    xa, xb, ya, yb = train_test_split(x, d.target, test_size=0.3, random_state=seed, stratify=d.target)
    return torch.tensor(xa), torch.tensor(ya), torch.tensor(xb), torch.tensor(yb)


def train(model, *, weight_bits, act_bits, epochs, seed, report):
    xa, ya, xb, yb = _data(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    curve = []
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(xa)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xa[idx]), ya[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(xb).argmax(1) == yb).float().mean())
        curve.append(acc)
        if report(epoch, acc):
            break
    _log(call="train", weight_bits=list(weight_bits), act_bits=list(act_bits), epochs=epochs, seed=seed,
         curve=curve)
    return curve[-1]
