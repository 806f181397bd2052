"""Choice points of a design space, as a flat, typed description.

Each :class:`Parameter` is one independent choice: a categorical list, an integer range or a
discretised float range (a float range without a step is continuous: searchable, not countable).
A space's configurations are the mixed-radix product of its parameters' values; parameter 0 is the
most significant digit, so configuration 0 takes every parameter's first value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bsopt.errors import InputError


@dataclass(frozen=True)
class Parameter:
    """One choice point.

    ``condition`` (parent name, parent values) says when the parameter matters (e.g. ``resType``
    only for an HLS backend); counting and decoding treat parameters as independent, as Brainsmith
    does, so the count is the plain product.
    """

    name: str
    group: str
    kind: str = "categorical"  # "categorical" | "int" | "float"
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    condition: tuple[str, tuple[Any, ...]] | None = None
    #: (value, other parameter, its values): a value that FINN accepts only together with some values
    #: of another parameter (judged with the rest at the model's values; several entries for one value
    #: are alternatives). Where FINN's rule rejects a configuration's whole entry, the value falls back
    #: to FINN's default. E.g. parallel_window=1 needs SIMD = IFMChannels.
    requires: tuple[tuple[Any, str, tuple[Any, ...]], ...] = ()
    source: tuple[Any, ...] = field(default=(), compare=False)  # key path in the blueprint
    labels: tuple[str, ...] | None = field(default=None, compare=False)

    @property
    def size(self) -> int | None:
        """Number of values, or None for a continuous range."""
        if self.kind == "categorical":
            return len(self.choices or ())
        if self.kind == "int":
            step = int(self.step or 1)
            return (int(self.high) - int(self.low)) // step + 1
        if self.step is None:
            return None
        return int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1

    @property
    def is_choice(self) -> bool:
        """True if there is more than one value to choose from."""
        return self.size is None or self.size > 1

    def value_at(self, i: int) -> Any:
        n = self.size
        if n is None:
            raise InputError(f"parameter '{self.name}' is continuous: it has no value number {i}")
        if not 0 <= i < n:
            raise IndexError(i)
        if self.kind == "categorical":
            return self.choices[i]
        if self.kind == "int":
            return int(self.low) + i * int(self.step or 1)
        return _round_float(self.low + i * self.step)

    def index_of(self, value: Any) -> int:
        if self.kind == "categorical":
            for i, c in enumerate(self.choices):
                if c == value and isinstance(c, bool) == isinstance(value, bool):
                    return i
            raise KeyError(f"{value!r} is not a choice of '{self.name}'")
        if self.size is None:
            raise KeyError(f"parameter '{self.name}' is continuous")
        step = self.step or 1
        i = round((value - self.low) / step)
        if not 0 <= i < self.size or abs(self.value_at(i) - value) > 1e-9 * max(1.0, abs(value)):
            raise KeyError(f"{value!r} is not on the grid of '{self.name}'")
        return int(i)

    def contains(self, value: Any) -> bool:
        if self.size is None:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high
        try:
            self.index_of(value)
            return True
        except KeyError:
            return False

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "group": self.group, "kind": self.kind, "size": self.size}
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update({"low": self.low, "high": self.high, "step": self.step, "log": self.log})
        if self.condition:
            out["condition"] = {"parent": self.condition[0], "values": list(self.condition[1])}
        if self.requires:
            out["requires"] = [{"value": v, "parent": parent, "values": list(allowed)}
                               for v, parent, allowed in self.requires]
        return out


def _round_float(x: float) -> float:
    return float(f"{x:.12g}")


def count(params: Sequence[Parameter]) -> int:
    """Exact number of configurations: the product of the parameters' sizes (a Python int)."""
    total = 1
    for p in params:
        n = p.size
        if n is None:
            raise InputError(
                f"parameter '{p.name}' is a continuous range: the space has infinitely many configurations",
                hint="give the range a 'step' (or 'choices') to make it countable",
            )
        total *= n
    return total


def radices(params: Sequence[Parameter]) -> list[int]:
    sizes = []
    for p in params:
        n = p.size
        if n is None:
            count([p])  # raises the explanatory error
        sizes.append(n)
    return sizes


def decode(params: Sequence[Parameter], k: int) -> dict[str, Any]:
    """The values of configuration number ``k`` (0 <= k < count)."""
    digits = decode_digits(radices(params), k)
    return {p.name: p.value_at(d) for p, d in zip(params, digits, strict=True)}


def decode_digits(sizes: Sequence[int], k: int) -> list[int]:
    total = math.prod(sizes)
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < total:
        raise IndexError(f"configuration number {k} is outside 0..{total - 1}")
    digits = [0] * len(sizes)
    for i in range(len(sizes) - 1, -1, -1):
        k, digits[i] = divmod(k, sizes[i])
    return digits


def encode(params: Sequence[Parameter], values: dict[str, Any]) -> int:
    """The configuration number of a full assignment of values (inverse of :func:`decode`)."""
    k = 0
    for p in params:
        if p.name not in values:
            raise KeyError(f"missing value for parameter '{p.name}'")
        k = k * p.size + p.index_of(values[p.name])
    return k


def iterate(params: Sequence[Parameter], start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream (k, values) from configuration ``start`` on, without materialising the space."""
    sizes = radices(params)
    total = math.prod(sizes)
    if start >= total:
        return
    digits = decode_digits(sizes, start)
    k = start
    while True:
        yield k, {p.name: p.value_at(d) for p, d in zip(params, digits, strict=True)}
        k += 1
        if k >= total:
            return
        i = len(sizes) - 1
        while True:  # odometer increment, last parameter fastest
            digits[i] += 1
            if digits[i] < sizes[i]:
                break
            digits[i] = 0
            i -= 1
