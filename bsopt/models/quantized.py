"""One quantisation of a co-design blueprint's model: build it, train it, export it — cached.

A :class:`Quantization` is a weight and an activation bit width per quantised layer. The model comes
from the blueprint's factory (``quantization.model``): bsopt's ``digits_mlp`` or a user's
``package.module:function``. The **factory contract**::

    def build(weight_bits: list[int], act_bits: list[int], seed: int, **options) -> torch.nn.Module

``weight_bits[i]`` / ``act_bits[i]`` belong to quantised layer ``i`` (its weights and its output
activation; a model may ignore the last layer's activation width); 1 means bipolar. ``options`` are the
blueprint's ``quantization.options``. The module must be a Brevitas network QONNX export accepts.

The **trainer contract** (``training.trainer``)::

    def train(model, *, weight_bits, act_bits, epochs, seed, report) -> float

trains ``model`` in place for up to ``epochs`` epochs and returns its held-out accuracy in [0, 1];
after each epoch it may call ``report(epoch, accuracy)``, which returns True when the pruner stops this
quantisation (the trainer then returns at once). Without a trainer, ``training.data: digits`` trains
on scikit-learn's digits (:mod:`bsopt.models.train`).

:func:`train_and_export` caches what a finished training produced (held-out accuracy per epoch, the
trained weights, the exported QONNX model) under a key of everything that determines it — the factory,
its options, the bit widths, the data or trainer, epochs, learning rate, batch size and seed — so a
quantisation is trained and exported once, whichever study or process asks again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bsopt.errors import BsoptError, InputError, ModelError, require

#: bump when training or export changes what a cached entry holds
CACHE_VERSION = 2
#: the uniform bit widths of a hand sweep (the joint study's first proposals)
BITS_SWEEP = (1, 2, 4, 8)


@dataclass(frozen=True)
class Quantization:
    """A weight and an activation bit width per quantised layer."""

    weight_bits: tuple[int, ...]
    act_bits: tuple[int, ...]

    @property
    def label(self) -> str:
        return "w" + "-".join(map(str, self.weight_bits)) + " a" + "-".join(map(str, self.act_bits))

    def to_dict(self) -> dict[str, list[int]]:
        return {"weight_bits": list(self.weight_bits), "act_bits": list(self.act_bits)}

    @classmethod
    def from_dict(cls, d: dict) -> Quantization:
        return cls(tuple(int(b) for b in d["weight_bits"]), tuple(int(b) for b in d["act_bits"]))

    def at_most(self, other: Quantization) -> bool:
        """Every bit width no larger than ``other``'s: never more hardware than ``other`` needs."""
        return all(a <= b for a, b in zip(self.weight_bits + self.act_bits, other.weight_bits + other.act_bits,
                                          strict=True))


def finn_cannot_build(q: Quantization) -> str | None:
    """Why FINN cannot build a quantisation's layers, known before any training, or None.

    A 1-bit activation feeds the next layer binary inputs, which FINN's matrix-vector units take only in
    XNOR mode, i.e. with 1-bit (bipolar) weights too (MVAU_hls raises 'True binary (non-bipolar) inputs
    not yet supported' otherwise; MVAU_rtl takes no 1-bit operands). Layers are a chain: ``act_bits[i]``
    is layer ``i + 1``'s input."""
    bad = _xnor_violations(q)
    if not bad:
        return None
    return (f"layer {bad[0]} gets 1-bit activations with {q.weight_bits[bad[0]]}-bit weights: FINN's matrix-vector "
            "units take binary inputs only with 1-bit (bipolar) weights (XNOR mode)")


def _xnor_violations(q: Quantization) -> list[int]:
    """The layers whose 1-bit inputs meet multi-bit weights."""
    return [i for i in range(1, len(q.weight_bits)) if q.act_bits[i - 1] == 1 and q.weight_bits[i] != 1]


def buildable_neighbour(spec, q: Quantization) -> Quantization | None:
    """The nearest quantisation FINN can build: each 1-bit activation that feeds multi-bit weights raised
    to its group's next width (or, where the group offers none, those weights lowered to 1 bit); None
    when neither is possible."""
    params = to_params(spec, q)
    for _ in range(len(q.weight_bits) + 1):  # each step mends one layer
        q = from_params(spec, params)
        bad = _xnor_violations(q)
        if not bad:
            return q
        i = bad[0]
        act = next(((n, g) for n, kind, g in param_names(spec) if kind == "act_bits" and i - 1 in g.layers))
        weight = next(((n, g) for n, kind, g in param_names(spec) if kind == "weight_bits" and i in g.layers))
        if len(act[1].act_bits) > 1 and any(b > 1 for b in act[1].act_bits):
            params[act[0]] = min(b for b in act[1].act_bits if b > 1)
        elif len(weight[1].weight_bits) > 1 and 1 in weight[1].weight_bits:
            params[weight[0]] = 1
        else:
            return None
    return None


def param_names(spec) -> list[tuple[str, str, Any]]:
    """(Optuna parameter name, 'weight_bits' | 'act_bits', group) for each choice of a spec."""
    return [(f"q.{g.name}.{kind[0]}", kind, g) for g in spec.groups for kind in ("weight_bits", "act_bits")]


def from_params(spec, params: dict[str, Any]) -> Quantization:
    """The quantisation trial parameters (``q.<group>.w``/``q.<group>.a``) name; single choices are fixed."""
    w, a = [0] * spec.layers, [0] * spec.layers
    for name, kind, g in param_names(spec):
        choices = getattr(g, kind)
        bits = int(params.get(name, choices[0]) if len(choices) > 1 else choices[0])
        for i in g.layers:
            (w if kind == "weight_bits" else a)[i] = bits
    return Quantization(tuple(w), tuple(a))


def to_params(spec, q: Quantization) -> dict[str, int]:
    """The trial parameters of a quantisation (only groups with a choice)."""
    out = {}
    for name, kind, g in param_names(spec):
        if len(getattr(g, kind)) > 1:
            out[name] = (q.weight_bits if kind == "weight_bits" else q.act_bits)[g.layers[0]]
    return out


def uniform_quantizations(spec) -> list[Quantization]:
    """The quantisations a FINN user sweeps by hand: every layer at one bit width b (w1a1, w2a2, …), for
    each b every group offers (a group with a single choice keeps it), that FINN can build."""
    out = []
    for b in BITS_SWEEP:
        params, ok = {}, True
        for name, kind, g in param_names(spec):
            choices = getattr(g, kind)
            if b in choices:
                params[name] = b
            elif len(choices) != 1:
                ok = False
        q = from_params(spec, params) if ok else None
        if q is not None and finn_cannot_build(q) is None and q not in out:
            out.append(q)
    return out


def every_quantization(spec):
    """Every quantisation of a spec, in parameter order (a grid's order)."""
    from itertools import product

    names = param_names(spec)
    for combo in product(*(getattr(g, kind) for _, kind, g in names)):
        yield from_params(spec, {n: v for (n, _, _), v in zip(names, combo, strict=True)})


# ------------------------------------------------------------------------------------- building
def build_module(spec, q: Quantization, seed: int):
    """The untrained model of a quantisation, from the spec's factory."""
    if spec.model == "digits_mlp":
        from bsopt.models.train import digits_mlp

        return digits_mlp(list(q.weight_bits), list(q.act_bits), seed=seed,
                          **({"hidden": tuple(spec.options["hidden"])} if "hidden" in spec.options else {}))
    from bsopt.models.export import resolve_reference

    torch = require("torch", "models", "co-design")
    factory = resolve_reference(spec.model)
    if not callable(factory):
        raise InputError(f"{spec.model} is a {type(factory).__name__}, not a factory", where="quantization.model",
                         hint="def build(weight_bits, act_bits, seed, **options) -> torch.nn.Module")
    try:
        module = factory(list(q.weight_bits), list(q.act_bits), seed, **spec.options)
    except TypeError as exc:
        raise InputError(f"calling {spec.model}(weight_bits, act_bits, seed, **options) failed: {exc}",
                         where="quantization.model",
                         hint="the factory takes weight_bits, act_bits (lists, one per layer), seed and the "
                         "blueprint's quantization.options as keywords") from exc
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{spec.model} returned a {type(module).__name__}, not a torch nn.Module",
                         where="quantization.model")
    return module


def input_shape(spec, training) -> tuple[int, ...]:
    """The exported model's input shape (batch 1)."""
    if spec.input_shape:
        return tuple(spec.input_shape)
    if spec.model == "digits_mlp":
        return (1, 1, 8, 8)
    raise InputError("the input shape of your model is needed to export it", where="quantization.input_shape",
                     hint="add input_shape: [1, C, H, W] (batch 1) to the quantization section")


def _digits_trainer(training):
    from bsopt.models import train as qat

    data = qat.digits(training.seed)

    def run(model, *, weight_bits, act_bits, epochs, seed, report):
        curve = qat.train(model, data, epochs=epochs, lr=training.lr, batch_size=training.batch_size, seed=seed,
                          on_epoch=report)
        return curve[-1]

    return run


def trainer_for(training) -> Callable:
    """The training function of a spec: the user's hook or bsopt's digits loop."""
    if training.trainer is None:
        return _digits_trainer(training)
    from bsopt.models.export import resolve_reference

    fn = resolve_reference(training.trainer)
    if not callable(fn):
        raise InputError(f"{training.trainer} is not a function", where="training.trainer",
                         hint="def train(model, *, weight_bits, act_bits, epochs, seed, report) -> float")
    return fn


# ------------------------------------------------------------------------------------- caching
def code_fingerprint(spec, training) -> str:
    """The source of what builds and trains the models: the user's factory and trainer modules (their
    files' contents: editing them trains again), or bsopt's own digits MLP and training loop."""
    import inspect

    from bsopt.models.export import resolve_reference

    h = hashlib.sha256()
    files = {Path(__file__).with_name(n) for n in ("train.py", "_nets.py", "export.py")}
    for ref in (spec.model, training.trainer):
        if ref and ":" in ref:
            try:
                files.add(Path(inspect.getsourcefile(resolve_reference(ref)) or ""))
            except (TypeError, BsoptError):  # a builtin, or not importable (reported where it is used)
                h.update(ref.encode())
    for f in sorted(files):
        h.update(f.name.encode())
        h.update(f.read_bytes() if f.is_file() else b"")
    return h.hexdigest()[:16]


def cache_key(spec, training, q: Quantization) -> str:
    """Everything that determines a trained, exported quantisation."""
    what = {"v": CACHE_VERSION, "code": _fingerprint(spec, training), "model": spec.model, "options": spec.options,
            "bits": q.to_dict(),
            "data": training.trainer or training.data, "epochs": training.epochs, "seed": training.seed,
            "lr": training.lr, "batch_size": training.batch_size, "prepost": spec.prepost,
            "shape": list(spec.input_shape or ())}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]


_FINGERPRINTS: dict[tuple, str] = {}


def _fingerprint(spec, training) -> str:
    key = (spec.model, training.trainer)  # once per process: the modules are imported once too
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = code_fingerprint(spec, training)
    return _FINGERPRINTS[key]


@dataclass
class Trained:
    """A quantisation's training: held-out accuracy per epoch and, unless pruned, the exported model."""

    quantization: Quantization
    curve: list[float] = field(default_factory=list)
    accuracy: float | None = None
    pruned: bool = False
    model_path: str | None = None
    weights_path: str | None = None
    seconds: float = 0.0
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"quantization": self.quantization.to_dict(), "curve": self.curve, "accuracy": self.accuracy,
                "pruned": self.pruned, "model_path": self.model_path, "weights_path": self.weights_path,
                "seconds": self.seconds, "cached": self.cached}

    @classmethod
    def from_dict(cls, d: dict) -> Trained:
        return cls(Quantization.from_dict(d["quantization"]), list(d["curve"]), d["accuracy"], d["pruned"],
                   d["model_path"], d["weights_path"], d["seconds"], d["cached"])


def train_and_export(spec, training, q: Quantization, cache_dir: str | Path, *,
                     report: Callable[[int, float], bool] | None = None, reuse: bool = True) -> Trained:
    """Train a quantisation (or read it from the cache) and export the trained model as QONNX.

    ``report(epoch, accuracy)`` is the pruner's hook; when it returns True training stops and the
    result is ``pruned`` (not cached: whether to stop depended on the other trainings). ``reuse=False``
    (a blueprint's ``global.cache_results: false``) trains again what the cache holds."""
    folder = Path(cache_dir) / cache_key(spec, training, q)
    done = folder / "result.json"
    if reuse and done.is_file():
        try:
            cached = Trained.from_dict(json.loads(done.read_text()))
            if cached.model_path and Path(cached.model_path).is_file():
                cached.cached = True
                return cached
        except (ValueError, KeyError, TypeError):
            pass  # a damaged entry is trained again
    import torch

    start = time.time()
    module = build_module(spec, q, training.seed)
    curve: list[float] = []
    stopped = False

    def on_epoch(epoch: int, accuracy: float) -> bool:
        nonlocal stopped
        curve.append(float(accuracy))
        if report is not None and report(epoch, float(accuracy)):
            stopped = True
        return stopped

    fn = trainer_for(training)
    accuracy = fn(module, weight_bits=list(q.weight_bits), act_bits=list(q.act_bits), epochs=training.epochs,
                  seed=training.seed, report=on_epoch)
    try:
        accuracy = float(accuracy)
    except (TypeError, ValueError):
        raise ModelError(f"the trainer returned {accuracy!r}, not an accuracy", where="training.trainer",
                         hint="return the held-out accuracy as a number in [0, 1]") from None
    if not 0.0 <= accuracy <= 1.0:
        raise ModelError(f"the trainer returned accuracy {accuracy}, outside [0, 1]", where="training.trainer",
                         hint="return a fraction (0.93), not a percentage")
    if stopped:
        return Trained(q, curve, accuracy, True, seconds=time.time() - start)
    if not curve:
        curve = [accuracy]
    from bsopt.models.export import export_trained

    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "weights.pt"
    torch.save(module.state_dict(), weights)
    model = export_trained(module, input_shape(spec, training), folder / "model.onnx", prepost=spec.prepost)
    result = Trained(q, curve, accuracy, False, str(model), str(weights), time.time() - start)
    tmp = folder / f"result.json.{os.getpid()}"
    tmp.write_text(json.dumps(result.to_dict()))
    os.replace(tmp, done)  # last: an entry is complete or absent
    return result
