"""Quantisation-aware training of zoo-style Brevitas networks on a real dataset (first piece of
accuracy × hardware co-design).

:func:`digits` loads scikit-learn's bundled handwritten digits (8×8, 1,797 images, no download) as a
seeded, stratified train/held-out split; :func:`digits_mlp` builds a TFC-style quantised MLP for
them at given weight/activation bit widths; :func:`train` runs Brevitas QAT (Adam, cross-entropy)
and returns the held-out accuracy after every epoch, calling ``on_epoch(epoch, accuracy)`` so that a
pruner can stop a bad quantisation early (return True to stop). Everything is seeded: the same
arguments give the same accuracies. Needs the ``models`` extra (torch, brevitas, scikit-learn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bsopt.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


@dataclass
class Dataset:
    """A classification dataset as tensors: images (N, 1, H, W) in [0, 1], labels (N,)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, *self.x_train.shape[1:])


def digits(seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's 8×8 digits, pixel values 0..16 scaled to [0, 1] on the UINT8/255 grid, split
    stratified by ``seed``."""
    try:
        import numpy as np
        import torch
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - the models extra installs torch
        raise InputError(f"training needs torch ({exc.name} is missing)",
                         hint='pip install "bsopt[models]"') from exc
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    data = load_digits()
    # pixel values 0..16 on FINN's input grid: a UINT8 value / 255 (the exported model's pre-processing),
    # so the hardware sees exactly the images the model was trained and evaluated on
    x = (np.round(data.images * (255 / 16)) / 255).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(x, data.target, test_size=test_fraction,
                                                        random_state=seed, stratify=data.target)

    def images(a):
        return torch.tensor(a).unsqueeze(1)

    return Dataset(images(x_train), torch.tensor(y_train), images(x_test), torch.tensor(y_test), 10)


#: the hidden layer widths of :func:`digits_mlp` when none are given
DIGITS_HIDDEN = (64, 32)


def digits_mlp(weight_bits: int | Sequence[int], act_bits: int | Sequence[int], *, hidden: Sequence[int] = DIGITS_HIDDEN,
               in_bits: int = 8, seed: int = 0) -> nn.Module:
    """A TFC-style quantised MLP (64 inputs, ``hidden``, 10 classes) at the given bit widths (1 =
    bipolar; one for every layer, or one per layer: ``len(hidden) + 1`` weight widths and as many
    activation widths, the last unused), its initial weights drawn from ``seed``."""
    import torch

    from bsopt.models import _nets

    n = len(hidden) + 1
    for what, bits in (("weight_bits", weight_bits), ("act_bits", act_bits)):
        widths = [bits] if isinstance(bits, int) else list(bits)
        if not isinstance(bits, int) and len(widths) not in (n, n - 1 if what == "act_bits" else n):
            raise InputError(f"{what} has {len(widths)} entries; the MLP has {n} layers")
        bad = [b for b in widths if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 8]
        if bad:
            raise InputError(f"{what}={bad[0]!r} is not a bit width", hint="1..8 (1 = bipolar)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _nets.QuantMLP(in_features=64, hidden=tuple(hidden), num_classes=10, weight_bits=weight_bits,
                              act_bits=act_bits, in_bits=in_bits)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` the model classifies as ``y`` (evaluation mode, no gradients)."""
    import torch

    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def train(model: nn.Module, data: Dataset, *, epochs: int = 10, lr: float = 0.01, batch_size: int = 64,
          seed: int = 0, on_epoch: Callable[[int, float], bool | None] | None = None) -> list[float]:
    """Quantisation-aware training; the held-out accuracy after each epoch (fewer than ``epochs``
    values when ``on_epoch`` returned True to stop)."""
    import torch

    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise InputError(f"epochs and batch_size must be positive and lr > 0 (got {epochs}, {batch_size}, {lr})")
    curve: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        n = len(data.x_train)
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(n)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                optimiser.zero_grad()
                loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
                loss.backward()
                optimiser.step()
            curve.append(accuracy(model, data.x_test, data.y_test))
            if on_epoch is not None and on_epoch(epoch, curve[-1]):
                break
    model.eval()
    return curve
